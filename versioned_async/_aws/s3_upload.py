"""A large object uploaded in parts, several at once, with bounded memory and every
part checksummed.

Why: one S3 connection carries far less than an instance's network, and a
single PutObject holds the whole body in memory and restarts from nothing when
it fails. Above :attr:`~versioned_async.TransferConfig.multipart_threshold`
the body goes as one multipart upload in parts of ``multipart_chunksize``
(adjusted to S3's limits: :mod:`.._policy.part_size`), ``max_concurrency`` of
them in flight. A part is read only when it may be sent (``os.pread`` in a
thread: parts share no file position), so memory holds at most
``max_concurrency`` parts whatever the size. Each part carries its SHA-256 for
S3 to verify; a failed part is retried on its own by botocore (5xx, throttling,
a connection reset before the answer), never the whole upload.

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
from collections.abc import Iterator, Mapping
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
        # the file hashed again in order: the number of the last part hashed, and the
        # condition a part waits on for its turn
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
        if self._is_file and self._sha256 is not None and self._rehash.hexdigest() != self._sha256:
            raise self._changed()
        return [done[n] for n in range(1, self._count + 1)]

    async def _work(self, done: dict[int, dict[str, Any]]) -> None:
        """Send parts, one at a time, until none is left to take."""
        for number in self._numbers:  # shared: each number is taken by one worker
            done[number] = await self._part(number)

    async def _part(self, number: int) -> dict[str, Any]:
        data, checksum = await asyncio.to_thread(self._read, number)
        if self._is_file:
            await self._hash_in_order(number, data)
        upload = self._upload
        with aws_errors(f"UploadPart {number} s3://{upload['Bucket']}/{upload['Key']}"):
            resp = await self._s3.upload_part(
                **upload,
                PartNumber=number,
                Body=data,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=checksum,
            )
        progress.moved(len(data))  # the whole part, once S3 has it
        return {"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": checksum}

    def _read(self, number: int) -> tuple[bytes, str]:
        """Part ``number``'s bytes and their SHA-256 (base64), in a worker thread."""
        start = (number - 1) * self._chunk
        length = min(self._chunk, self._size - start)
        if self._fd is None:
            assert isinstance(self._source, bytes)
            data = self._source[start : start + length]
        else:
            data = os.pread(self._fd, length, start)
            if len(data) != length:  # shorter than when it was hashed
                raise self._changed()
        return data, base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")

    async def _hash_in_order(self, number: int, data: bytes) -> None:
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
