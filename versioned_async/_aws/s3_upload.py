"""A large object uploaded in parts, several at once, with bounded memory and every
part checksummed.

Why: one S3 connection carries far less than an instance's network, and a
single PutObject holds the whole body in memory and restarts from nothing when
it fails. Above :attr:`~versioned_async.TransferConfig.multipart_threshold`
the body goes as one multipart upload in parts of ``multipart_chunksize``
(adjusted to S3's limits: :mod:`.._policy.part_size`), ``max_concurrency`` of
them in flight. Each of ``max_concurrency`` workers reads a part only when it
can send it, into its one buffer (``pread`` in a thread: parts share no file
position), and sends it without a second copy (:class:`_PartBody`), so memory
holds ``max_concurrency`` parts whatever the size (measured: 82 MiB of peak
RSS growth for 10 parts of 8 MiB). Each part carries its SHA-256 for S3 to
verify; a failed part is retried on its own by botocore (5xx, throttling, a
connection reset in the middle of its body), never the whole upload.

A file is hashed again as it is read, in order (each part waits until the
parts before it were hashed; they are already in memory, so the wait is one
hash), so one that changed since ``put_artifact`` hashed it is refused rather
than stored under a hash it does not have. Parts may still be sent and
finish in any order.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import botocore.exceptions as bce

from .._gather import gather_or_cancel
from .._policy.part_size import part_count, part_size
from ..exc import ConflictError
from ..transfer_config import TransferConfig
from . import progress
from .errors import aws_errors
from .s3_params import condition_failed, write_conditions

__all__ = ["upload_in_parts"]


async def upload_in_parts(
    s3: Any,
    bucket: str,
    key: str,
    source: bytes | Path,
    size: int,
    params: Mapping[str, Any],
    sha256: str | None,
    *,
    transfer: TransferConfig,
    if_none_match: bool,
) -> bool:
    """Upload ``source`` (``size`` bytes, the object's ``params``: see
    :func:`.s3_params.object_params`) as one multipart upload, as ``transfer``
    says; ``False`` when ``if_none_match`` found an object there. Aborted, never
    left half-done, when anything fails (or the caller is cancelled)."""
    what = f"multipart upload s3://{bucket}/{key}"
    with aws_errors(what):
        created = await s3.create_multipart_upload(
            Bucket=bucket, Key=key, **params, ChecksumAlgorithm="SHA256"
        )
    upload = {"Bucket": bucket, "Key": key, "UploadId": created["UploadId"]}
    try:
        parts = await _Parts(s3, upload, source, size, sha256, transfer).send()
        with aws_errors(what):
            try:
                await s3.complete_multipart_upload(
                    **upload,
                    MultipartUpload={"Parts": parts},
                    **write_conditions(None, if_none_match),
                )
            except bce.ClientError as err:
                if not condition_failed(err, None, if_none_match):
                    raise
                with contextlib.suppress(Exception):
                    await s3.abort_multipart_upload(**upload)
                return False
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(s3.abort_multipart_upload(**upload))
        raise
    return True


class _Parts:
    """The parts of one multipart upload, read, checksummed and sent by
    ``max_concurrency`` workers that take part numbers in order."""

    def __init__(
        self,
        s3: Any,
        upload: Mapping[str, str],
        source: bytes | Path,
        size: int,
        sha256: str | None,
        transfer: TransferConfig,
    ) -> None:
        self._s3 = s3
        self._upload = upload
        self._source = source
        self._size = size
        self._sha256 = sha256
        self._workers = transfer.max_concurrency
        self._chunk = part_size(transfer.multipart_chunksize, size)
        self._count = part_count(self._chunk, size)
        self._numbers: Iterator[int] = iter(range(1, self._count + 1))
        self._is_file = isinstance(source, Path)
        self._fd: int | None = None
        # a file is hashed again in order when there is a hash to compare with: the
        # number of the last part hashed, and the condition a part waits on for its turn
        self._rehashing = self._is_file and sha256 is not None
        self._rehash = hashlib.sha256()
        self._hashed = 0
        self._turn = asyncio.Condition()

    async def send(self) -> list[dict[str, Any]]:
        """Every part sent; their numbers, ETags and checksums, in order, as
        CompleteMultipartUpload takes them."""
        if isinstance(self._source, Path):
            self._fd = await asyncio.to_thread(os.open, self._source, os.O_RDONLY)
        fd = self._fd
        try:
            done: dict[int, dict[str, Any]] = {}
            workers = min(self._workers, self._count)
            await gather_or_cancel(*(self._work(done) for _ in range(workers)))
        finally:
            if fd is not None:
                os.close(fd)
        if self._rehashing and self._rehash.hexdigest() != self._sha256:
            raise self._changed()
        return [done[n] for n in range(1, self._count + 1)]

    async def _work(self, done: dict[int, dict[str, Any]]) -> None:
        """Send parts, one at a time, until none is left to take. A file's parts are
        read into this worker's one buffer, allocated once: memory is the workers'
        buffers, never a new allocation per part for the allocator to keep."""
        buffer = memoryview(bytearray(self._chunk)) if self._is_file else None
        for number in self._numbers:  # shared: each number is taken by one worker
            done[number] = await self._part(number, buffer)

    async def _part(self, number: int, buffer: memoryview | None) -> dict[str, Any]:
        data, checksum = await asyncio.to_thread(self._read, number, buffer)
        if self._rehashing:
            await self._hash_in_order(number, data)
        upload = self._upload
        with aws_errors(f"UploadPart {number} s3://{upload['Bucket']}/{upload['Key']}"):
            resp = await self._s3.upload_part(
                **upload,
                PartNumber=number,
                Body=_PartBody(data),
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=checksum,
            )
        progress.moved(len(data))  # the whole part, once S3 has it
        return {"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": checksum}

    def _read(self, number: int, buffer: memoryview | None) -> tuple[memoryview, str]:
        """Part ``number``'s bytes (a view of the content, or of ``buffer`` read from
        the file) and their SHA-256 (base64), in a worker thread."""
        start = (number - 1) * self._chunk
        length = min(self._chunk, self._size - start)
        if buffer is None:
            assert isinstance(self._source, bytes)
            data = memoryview(self._source)[start : start + length]
        else:
            assert self._fd is not None
            data = buffer[:length]
            if _pread_into(self._fd, data, start) != length:  # shorter than when hashed
                raise self._changed()
        return data, base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")

    async def _hash_in_order(self, number: int, data: memoryview) -> None:
        """Add part ``number`` to the whole file's hash once the parts before it are in."""
        async with self._turn:
            await self._turn.wait_for(lambda: self._hashed == number - 1)
            # under the condition's lock: no other part hashes meanwhile
            await asyncio.to_thread(self._rehash.update, data)
            self._hashed = number
            self._turn.notify_all()

    def _changed(self) -> ConflictError:
        return ConflictError(
            f"{str(self._source)!r} changed while it was being uploaded; nothing was stored. "
            "Retry once the file is complete"
        )


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    """Fill ``view`` from ``fd`` at ``offset`` (no shared file position); the number
    of bytes read, fewer only at the end of the file."""
    done = 0
    while done < len(view):
        if hasattr(os, "preadv"):
            got = os.preadv(fd, [view[done:]], offset + done)
        else:  # (platforms without preadv: a temporary copy)
            chunk = os.pread(fd, len(view) - done, offset + done)
            got = len(chunk)
            view[done : done + got] = chunk
        if got == 0:
            break
        done += got
    return done


class _PartBody:
    """A part's bytes, sent without a second copy of them.

    Given bytes, aiohttp hands them whole to the socket's transport, which
    copies what the socket does not take at once (most of a part) into its
    buffer; given a ``BytesIO``, it unshares the bytes. Either way memory holds
    every part in flight twice. This body is read by botocore as a seekable
    stream (its length, the payload's hash, a rewind before a retry) and
    written by aiohttp as an async iterable, a slice at a time as the socket
    drains.
    """

    #: the slice aiohttp writes at once (what it reads from a file at once)
    SLICE = 64 << 10

    def __init__(self, data: memoryview) -> None:
        self._view = data
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else min(self._position + size, len(self._view))
        chunk = bytes(self._view[self._position : end])
        self._position = max(end, self._position)
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: len(self._view)}
        self._position = min(max(base[whence] + offset, 0), len(self._view))
        return self._position

    def tell(self) -> int:
        return self._position

    async def __aiter__(self) -> AsyncIterator[memoryview]:
        while self._position < len(self._view):
            start = self._position
            self._position = min(start + self.SLICE, len(self._view))
            yield self._view[start : self._position]
