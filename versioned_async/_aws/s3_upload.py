"""A large object uploaded in parts, with bounded memory and every part checksummed.

Why: a single PutObject holds the whole body in memory and restarts from
nothing when it fails. Above :data:`MULTIPART_THRESHOLD` the body goes in
parts of :data:`PART_SIZE`, :data:`MULTIPART_CONCURRENCY` at a time, each with
its SHA-256 for S3 to verify; a file is read one part at a time and hashed
again on the way, so one that changes while it is uploaded is refused rather
than stored under a hash it does not have.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import botocore.exceptions as bce

from .._gather import gather_or_cancel
from ..exc import ConflictError
from .errors import aws_errors
from .s3_params import condition_failed, write_conditions

__all__ = ["MULTIPART_CONCURRENCY", "MULTIPART_THRESHOLD", "PART_SIZE", "upload_in_parts"]

#: uploads above this use multipart, in parts of PART_SIZE, a few at a time
MULTIPART_THRESHOLD = 16 << 20
PART_SIZE = 8 << 20
MULTIPART_CONCURRENCY = 2  # parts in flight: memory stays under ~32 MiB whatever the size


async def upload_in_parts(
    s3: Any,
    bucket: str,
    key: str,
    source: bytes | Path,
    size: int,
    params: Mapping[str, Any],
    sha256: str | None,
    *,
    if_none_match: bool,
) -> bool:
    """Upload ``source`` (``size`` bytes, the object's ``params``: see
    :func:`.s3_params.object_params`) as one multipart upload; ``False`` when
    ``if_none_match`` found an object there. Aborted, never left half-done, when
    anything fails (or the caller is cancelled)."""
    what = f"multipart upload s3://{bucket}/{key}"
    with aws_errors(what):
        created = await s3.create_multipart_upload(
            Bucket=bucket, Key=key, **params, ChecksumAlgorithm="SHA256"
        )
    upload = {"Bucket": bucket, "Key": key, "UploadId": created["UploadId"]}
    try:
        parts = await _upload_parts(s3, upload, source, size, sha256)
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


async def _upload_parts(
    s3: Any, upload: Mapping[str, str], source: bytes | Path, size: int, sha256: str | None
) -> list[dict[str, Any]]:
    """Every part of ``upload`` (its bucket, key and id), in order, as
    CompleteMultipartUpload takes them."""
    view = memoryview(source) if isinstance(source, bytes) else None
    handle = None if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115, ASYNC230
    read_lock = asyncio.Lock()
    slots = asyncio.Semaphore(MULTIPART_CONCURRENCY)
    # a file is re-hashed as its parts are read (in order: the semaphore and the
    # lock are FIFO), so one that changed since put_artifact hashed it is caught
    rehash = hashlib.sha256()
    read_next = [1]

    async def part(number: int) -> dict[str, Any]:
        start = (number - 1) * PART_SIZE
        async with slots:
            if view is not None:
                body: bytes | memoryview = view[start : start + PART_SIZE]
            else:
                assert handle is not None
                async with read_lock:
                    handle.seek(start)
                    body = await asyncio.to_thread(handle.read, PART_SIZE)
                    if read_next[0] == number:
                        rehash.update(body)
                        read_next[0] += 1
            data = bytes(body) if isinstance(body, memoryview) else body
            checksum = await _part_checksum(data)
            with aws_errors(f"UploadPart {number} s3://{upload['Bucket']}/{upload['Key']}"):
                resp = await s3.upload_part(
                    **upload,
                    PartNumber=number,
                    Body=data,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=checksum,
                )
            return {"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": checksum}

    try:
        count = max(1, -(-size // PART_SIZE))
        parts = list(await gather_or_cancel(*(part(n) for n in range(1, count + 1))))
    finally:
        if handle is not None:
            handle.close()
    changed = (
        isinstance(source, Path)
        and read_next[0] == count + 1
        and sha256 is not None
        and rehash.hexdigest() != sha256
    )
    if changed:
        raise ConflictError(
            f"{str(source)!r} changed while it was being uploaded; nothing was stored. "
            "Retry once the file is complete"
        )
    return parts


async def _part_checksum(data: bytes) -> str:
    digest = await asyncio.to_thread(lambda: hashlib.sha256(data).digest())
    return base64.b64encode(digest).decode("ascii")
