"""The S3 and DynamoDB calls: a thin adapter over two aiobotocore clients.

It knows the AWS APIs and nothing of artifacts beyond keys and items. All
botocore errors become :mod:`versioned_async.exc` errors here, in
:func:`aws_errors`, the one place that knows AWS error codes. Expected
outcomes (a missing object, a failed condition) are return values, not
exceptions.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import random
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import attrs
import botocore.exceptions as bce
from aiobotocore.config import AioConfig

from . import _layout, _pacing
from ._coalesce import Coalescer
from ._gather import gather_or_cancel
from ._redact import redact_text
from ._s3_options import S3Options
from .exc import (
    BackendError,
    BackendUnavailableError,
    ConflictError,
    InvalidArgumentError,
    RepositoryNotFoundError,
)

log = logging.getLogger("versioned_async")

Item = dict[str, dict[str, Any]]

#: read size of a streamed download
CHUNK_SIZE = 1 << 20
#: uploads above this use multipart, in parts of PART_SIZE, a few at a time
MULTIPART_THRESHOLD = 16 << 20
PART_SIZE = 8 << 20
MULTIPART_CONCURRENCY = 2  # parts in flight: memory stays under ~32 MiB whatever the size
#: how many times a cut download resumes before giving up
MAX_RESUMES = 5
#: BatchGetItem takes at most 100 keys
BATCH_GET_LIMIT = 100
_BATCH_GET_TRIES = 5

_UNAVAILABLE_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "TransactionInProgressException",
    }
)
_NETWORK_ERRORS = (
    bce.EndpointConnectionError,
    bce.ConnectTimeoutError,
    bce.ReadTimeoutError,
    bce.ConnectionClosedError,
    bce.HTTPClientError,
    bce.ConnectionError,
)

#: a body cut in the middle: what aiobotocore/aiohttp raise while it is read
_STREAM_ERRORS = (
    bce.ResponseStreamingError,
    bce.IncompleteReadError,
    bce.ReadTimeoutError,
    aiohttp.ClientPayloadError,
    aiohttp.ClientConnectionError,
    asyncio.TimeoutError,
    ConnectionError,
)


#: what aiohttp and asyncio raise when the network fails outside botocore's own
#: handling (a body read after botocore returned, a connection reset mid-stream)
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)


def error_code(err: bce.ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def scrub(err: BaseException) -> BaseException:
    """Mask URL credentials in the messages of ``err`` and of what it chains, in place.

    botocore puts the endpoint URL, with any ``user:password@``, into its
    connection errors; these are chained to ours and printed in tracebacks and
    ``log.exception`` output, so their text is masked too (see ``_redact``).
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(isinstance(arg, str) and "@" in arg for arg in current.args):
            current.args = tuple(
                redact_text(arg) if isinstance(arg, str) else arg for arg in current.args
            )
        kwargs = getattr(current, "kwargs", None)  # botocore formats str() from these
        if isinstance(kwargs, dict):
            for key, value in kwargs.items():
                if isinstance(value, str) and "@" in value:
                    kwargs[key] = redact_text(value)
        current = current.__cause__ or current.__context__
    return err


#: cancellation reasons that are a race with another transaction: read again, retry
_RACE_REASONS = frozenset({"None", "ConditionalCheckFailed", "TransactionConflict"})
#: cancellation reasons that are throttling, still there after botocore's retries
_THROTTLE_REASONS = frozenset(
    {"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)


def cancellation_error(
    what: str, codes: Sequence[str], messages: Sequence[str] = ()
) -> BackendError | None:
    """What a cancelled transaction (one reason code per action) means for the caller.

    ``None`` when every reason is ``None``/``ConditionalCheckFailed``: the
    caller reads the codes. A ``TransactionConflict`` (another transaction on
    the same items in flight) is a race, the one cancellation worth retrying:
    ``BackendUnavailableError`` coded ``TransactionCanceledException``.
    Throttling is ``BackendUnavailableError`` with its own code (botocore has
    already retried). Anything else (``ValidationError``,
    ``ItemCollectionSizeLimitExceeded``, ...) will not go away by retrying:
    ``BackendError`` with that code. Nothing of a cancelled transaction applied.
    """
    if all(c in ("None", "ConditionalCheckFailed") for c in codes):
        return None
    padded = [*messages, *([""] * len(codes))]
    told = "; ".join(
        f"action {n + 1}: {code}" + (f" ({padded[n]})" if padded[n] else "")
        for n, code in enumerate(codes)
        if code != "None"
    )
    if all(c in _RACE_REASONS for c in codes):
        return BackendUnavailableError(
            f"{what}: cancelled by a concurrent transaction on the same items ({told}); "
            "nothing was changed: retry",
            code="TransactionCanceledException",
            operation="TransactWriteItems",
        )
    refused = next(c for c in codes if c not in _RACE_REASONS)
    if refused in _THROTTLE_REASONS:
        return BackendUnavailableError(
            f"{what}: DynamoDB kept throttling the transaction ({told}); nothing was "
            "changed: retry later",
            code=refused,
            operation="TransactWriteItems",
        )
    return BackendError(
        f"{what}: DynamoDB refused the transaction ({told}); nothing was changed, and "
        "retrying will not help: fix the item it names",
        code=refused,
        operation="TransactWriteItems",
    )


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Translate botocore errors raised inside into the library's error tree.

    Network failures that reach us from aiohttp or asyncio directly (a body
    cut while it is read) are ``BackendUnavailableError`` like botocore's own;
    messages never carry the credentials of an endpoint URL.
    """
    what = redact_text(what)
    try:
        yield
    except bce.ClientError as err:
        code = error_code(err)
        op = getattr(err, "operation_name", None)
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in ("NoSuchBucket", "ResourceNotFoundException"):
            raise RepositoryNotFoundError(
                f"{what}: {err.response['Error'].get('Message', code)}; "
                "create the repository with `await repo.bootstrap()`"
            ) from err
        if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
            raise BackendError(
                f"{what}: S3 refused the content, which did not match its checksum "
                "(corrupted on the way, or the file changed while it was uploaded); "
                "nothing was stored; retry",
                code=code,
                operation=op,
            ) from err
        if code in _UNAVAILABLE_CODES or status >= 500:
            raise BackendUnavailableError(
                f"{what}: AWS kept failing with {code or status} after retries; retry later",
                code=code,
                operation=op,
            ) from err
        raise BackendError(f"{what}: {err}", code=code, operation=op) from err
    except _NETWORK_ERRORS as err:
        raise BackendUnavailableError(
            f"{what}: could not reach AWS ({scrub(err)}); check the endpoint and network, "
            "then retry"
        ) from err
    except _TRANSPORT_ERRORS as err:
        raise BackendUnavailableError(
            f"{what}: the connection failed ({type(err).__name__}: {redact_text(str(err))}); "
            "retry later"
        ) from scrub(err)
    except bce.NoRegionError as err:
        raise InvalidArgumentError(
            f"{what}: no AWS region is configured; pass aws_region= to the repository "
            "(--region on the command line) or set AWS_DEFAULT_REGION"
        ) from err
    except bce.NoCredentialsError as err:
        raise BackendError(
            f"{what}: no AWS credentials found; configure them as for the AWS CLI "
            "(environment variables, ~/.aws, or an instance role)"
        ) from err
    except bce.BotoCoreError as err:
        raise BackendError(f"{what}: {scrub(err)}") from err


@attrs.frozen
class ObjectInfo:
    """What HeadObject/GetObject tell about an object, with our metadata split out."""

    sha256: str | None
    metadata: dict[str, str]
    last_modified: datetime
    size: int
    content_type: str | None
    etag: str

    @classmethod
    def from_response(cls, resp: Mapping[str, Any]) -> ObjectInfo:
        raw_meta: dict[str, str] = dict(resp.get("Metadata") or {})
        sha = raw_meta.pop(_layout.META_SHA256, None)
        raw_meta.pop(_layout.META_NAME, None)
        content_type = resp.get("ContentType")
        return cls(
            sha256=sha,
            metadata=raw_meta,
            last_modified=resp["LastModified"].astimezone(timezone.utc),
            size=int(resp.get("ContentLength", 0)),
            content_type=None if content_type in (None, "binary/octet-stream") else content_type,
            etag=str(resp.get("ETag", "")),
        )


@attrs.frozen
class ListedObject:
    """One entry of a listing: enough to tell objects apart without reading them."""

    key: str
    etag: str
    size: int
    last_modified: datetime


class AwsBackend:
    """S3 objects in one bucket and items in one DynamoDB table (``dynamodb`` is
    ``None`` for the S3-only layout, which has no table)."""

    def __init__(
        self,
        s3: Any,
        dynamodb: Any,
        bucket: str,
        table: str,
        options: S3Options | None = None,
    ) -> None:
        (options or S3Options()).install(s3)
        self.s3 = s3
        self.dynamodb = dynamodb
        self.bucket = bucket
        self.table = table
        self._item_lookups = Coalescer(self._get_items, limit=BATCH_GET_LIMIT)

    # -- S3 ----------------------------------------------------------------------

    async def head_object(self, key: str) -> ObjectInfo | None:
        """The object's info, or ``None`` when it does not exist."""
        with aws_errors(f"HeadObject s3://{self.bucket}/{key}"):
            try:
                resp = await self.s3.head_object(Bucket=self.bucket, Key=key)
            except bce.ClientError as err:
                if error_code(err) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        return ObjectInfo.from_response(resp)

    async def put_object(
        self,
        key: str,
        body: bytes,
        metadata: Mapping[str, str],
        content_type: str | None,
        tags: Mapping[str, str] | None,
        sha256: str | None = None,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str | None:
        """Upload ``body``; returns the ETag, or ``None`` when a condition failed.

        With ``sha256`` (hex) S3 checks the body against it on arrival and
        refuses a corrupted upload (``x-amz-checksum-sha256``). ``if_match``
        (an ETag) writes only over that object, ``if_none_match`` only where
        no object is: S3's conditional writes, so a concurrent writer is
        noticed instead of overwritten.
        """
        kwargs = _object_kwargs(metadata, content_type, tags)
        kwargs.update(_write_conditions(if_match, if_none_match))
        if sha256 is not None:
            kwargs["ChecksumSHA256"] = _b64_sha256(sha256)
        with aws_errors(f"PutObject s3://{self.bucket}/{key}"):
            try:
                resp = await self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, **kwargs)
            except bce.ClientError as err:
                if _condition_failed(err, if_match, if_none_match):
                    return None
                raise
        return str(resp.get("ETag", ""))

    async def delete_object(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete an object (a missing one is no error); ``False`` when ``if_match``
        (an ETag) is not the object's any more, or it is already gone."""
        kwargs = {} if if_match is None else {"IfMatch": if_match}
        with aws_errors(f"DeleteObject s3://{self.bucket}/{key}"):
            try:
                await self.s3.delete_object(Bucket=self.bucket, Key=key, **kwargs)
            except bce.ClientError as err:
                if _condition_failed(err, if_match, False):
                    return False
                raise
        return True

    async def get_tags(self, key: str) -> dict[str, str] | None:
        """The object's tags, or ``None`` when it does not exist."""
        with aws_errors(f"GetObjectTagging s3://{self.bucket}/{key}"):
            try:
                resp = await self.s3.get_object_tagging(Bucket=self.bucket, Key=key)
            except bce.ClientError as err:
                if error_code(err) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        return {tag["Key"]: tag["Value"] for tag in resp.get("TagSet", ())}

    async def list_objects(self, prefix: str, *, limit: int | None = None) -> list[ListedObject]:
        """The objects whose key starts with ``prefix``, in key order; the first ``limit``."""
        paging: dict[str, int] = {}
        if limit is not None:
            paging = {"MaxItems": limit, "PageSize": min(limit, 1000)}
        found: list[ListedObject] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        with aws_errors(f"ListObjectsV2 s3://{self.bucket}/{prefix}"):
            async for page in paginator.paginate(
                Bucket=self.bucket, Prefix=prefix, PaginationConfig=paging
            ):
                found.extend(
                    ListedObject(
                        key=obj["Key"],
                        etag=str(obj.get("ETag", "")),
                        size=int(obj.get("Size", 0)),
                        last_modified=obj["LastModified"].astimezone(timezone.utc),
                    )
                    for obj in page.get("Contents", ())
                )
        return found if limit is None else found[:limit]

    async def copy_object(self, src_key: str, dst_key: str) -> bool:
        """Server-side copy with metadata; ``False`` when the source does not exist."""
        with aws_errors(f"CopyObject s3://{self.bucket}/{src_key} to {dst_key}"):
            try:
                await self.s3.copy_object(
                    Bucket=self.bucket,
                    Key=dst_key,
                    CopySource={"Bucket": self.bucket, "Key": src_key},
                    MetadataDirective="COPY",
                    TaggingDirective="COPY",
                    ChecksumAlgorithm="SHA256",
                )
            except bce.ClientError as err:
                if error_code(err) in ("NoSuchKey", "404"):
                    return False
                raise
        return True

    async def get_object(self, key: str) -> tuple[bytes, ObjectInfo] | None:
        """The whole body and info, or ``None`` when the object does not exist.

        A transfer cut in the middle resumes where it stopped (see
        :meth:`_read_body`).
        """
        chunks: list[bytes] = []
        with aws_errors(f"GetObject s3://{self.bucket}/{key}"):
            resp = await self._get_object_or_none(key)
            if resp is None:
                return None
            resp = await self._read_body(key, resp, chunks.append, chunks.clear)
            if resp is None:
                return None
        return b"".join(chunks), ObjectInfo.from_response(resp)

    async def _get_object_or_none(self, key: str, **kwargs: Any) -> dict[str, Any] | None:
        """GetObject's response (its body still to read), or ``None`` for a missing key."""
        try:
            resp: dict[str, Any] = await self.s3.get_object(Bucket=self.bucket, Key=key, **kwargs)
        except bce.ClientError as err:
            if error_code(err) in ("NoSuchKey", "404"):
                return None
            raise
        return resp

    async def _read_body(
        self,
        key: str,
        resp: dict[str, Any],
        sink: Callable[[bytes], object],
        restart: Callable[[], object],
    ) -> dict[str, Any] | None:
        """Feed the body to ``sink`` chunk by chunk; returns the response it came from.

        Why: botocore retries a request that fails, but not a body cut in the
        middle (a reset connection, a read timeout), and a large download
        would start over. Here a cut transfer resumes with a ranged GET from
        the first missing byte, pinned to the same object with ``If-Match``
        on its ETag. When the object was replaced meanwhile (412), ``restart``
        is called and the new object is read from its first byte, so the
        bytes never mix two objects. ``None``: the object was deleted meanwhile.
        """
        etag = resp.get("ETag")
        received = 0
        current = resp
        for cut in range(MAX_RESUMES + 1):
            try:
                async with current["Body"] as stream:
                    while chunk := await stream.read(CHUNK_SIZE):
                        sink(chunk)
                        received += len(chunk)
                return resp
            except _STREAM_ERRORS as err:
                if cut == MAX_RESUMES:
                    raise BackendUnavailableError(
                        f"GetObject s3://{self.bucket}/{key}: the transfer was cut "
                        f"{MAX_RESUMES + 1} times ({type(err).__name__}), the last time after "
                        f"{received} bytes; retry later"
                    ) from scrub(err)
                log.info(
                    "GetObject s3://%s/%s cut after %d bytes (%s); resuming",
                    self.bucket,
                    key,
                    received,
                    type(err).__name__,
                )
            await _pacing.pause(random.uniform(0, min(0.05 * 2**cut, 1.0)))
            try:
                resumed = await self._get_object_or_none(
                    key, Range=f"bytes={received}-", IfMatch=etag
                )
            except bce.ClientError as err:
                if error_code(err) not in ("PreconditionFailed", "412"):
                    raise
                log.info(
                    "s3://%s/%s was replaced while being read; reading it again", self.bucket, key
                )
                restart()
                received = 0
                resumed = await self._get_object_or_none(key)
                if resumed is not None:
                    resp, etag = resumed, resumed.get("ETag")
            if resumed is None:
                return None
            current = resumed
        raise AssertionError("unreachable")  # pragma: no cover

    async def download_to(self, key: str, path: Path) -> tuple[str, int, ObjectInfo] | None:
        """Stream an object into a new file at ``path`` (mode 0600), hashing as it goes.

        Returns ``(sha256, size, info)``, or ``None`` when the object does not exist.
        Memory stays at one chunk whatever the object's size; a cut transfer
        resumes (:meth:`_read_body`).
        """
        with aws_errors(f"GetObject s3://{self.bucket}/{key}"):
            resp = await self._get_object_or_none(key)
            if resp is None:
                return None
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(fd, "wb") as out:  # noqa: ASYNC230 - a local file, written chunk by chunk
                digest = [hashlib.sha256()]

                def write(chunk: bytes) -> None:
                    digest[0].update(chunk)
                    out.write(chunk)

                def start_over() -> None:
                    out.seek(0)
                    out.truncate()
                    digest[0] = hashlib.sha256()

                came_from = await self._read_body(key, resp, write, start_over)
                if came_from is None:
                    return None
                size = out.tell()
        return digest[0].hexdigest(), size, ObjectInfo.from_response(came_from)

    async def upload(
        self,
        key: str,
        source: bytes | Path,
        size: int,
        metadata: Mapping[str, str],
        content_type: str | None,
        tags: Mapping[str, str] | None,
        sha256: str | None = None,
        *,
        if_none_match: bool = False,
    ) -> bool:
        """Upload bytes or a file; multipart above :data:`MULTIPART_THRESHOLD`.

        A file is read one part at a time, so memory stays bounded by
        ``MULTIPART_CONCURRENCY`` parts whatever its size. Every request
        carries a SHA-256 checksum that S3 verifies: the whole body's
        (``sha256``, hex) for a single PutObject, each part's for multipart.
        So a file that changes while it is uploaded is refused, not stored
        under a hash it does not have. ``if_none_match`` stores it only where
        no object is; ``False`` when one was.
        """
        if size <= MULTIPART_THRESHOLD:
            body = (
                source if isinstance(source, bytes) else await asyncio.to_thread(source.read_bytes)
            )
            etag = await self.put_object(
                key, body, metadata, content_type, tags, sha256, if_none_match=if_none_match
            )
            return etag is not None
        kwargs = _object_kwargs(metadata, content_type, tags)
        kwargs["ChecksumAlgorithm"] = "SHA256"
        what = f"multipart upload s3://{self.bucket}/{key}"
        with aws_errors(what):
            created = await self.s3.create_multipart_upload(Bucket=self.bucket, Key=key, **kwargs)
        upload_id = created["UploadId"]
        try:
            parts = await self._upload_parts(key, upload_id, source, size, sha256)
            with aws_errors(what):
                try:
                    await self.s3.complete_multipart_upload(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        MultipartUpload={"Parts": parts},
                        **_write_conditions(None, if_none_match),
                    )
                except bce.ClientError as err:
                    if not _condition_failed(err, None, if_none_match):
                        raise
                    with contextlib.suppress(Exception):
                        await self.s3.abort_multipart_upload(
                            Bucket=self.bucket, Key=key, UploadId=upload_id
                        )
                    return False
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                )
            raise
        return True

    async def _upload_parts(
        self, key: str, upload_id: str, source: bytes | Path, size: int, sha256: str | None
    ) -> list[dict[str, Any]]:
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
                with aws_errors(f"UploadPart {number} s3://{self.bucket}/{key}"):
                    resp = await self.s3.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
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

    async def list_folders(self, prefix: str) -> list[str]:
        """Names of the "folders" directly below ``prefix``."""
        names: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        with aws_errors(f"ListObjectsV2 s3://{self.bucket}/{prefix}"):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                for common in page.get("CommonPrefixes", ()):
                    names.append(common["Prefix"][len(prefix) :].rstrip("/"))
        return names

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix``; returns how many."""
        deleted = 0
        paginator = self.s3.get_paginator("list_objects_v2")
        with aws_errors(f"delete s3://{self.bucket}/{prefix}*"):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", ())]
                if not keys:
                    continue
                resp = await self.s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                )
                if errors := resp.get("Errors"):
                    raise BackendError(
                        f"could not delete {len(errors)} objects under {prefix!r}: {errors[0]}"
                    )
                deleted += len(keys)
        return deleted

    async def require_bucket(self) -> None:
        """Raise :class:`RepositoryNotFoundError` unless the bucket exists: a HeadObject's
        404 does not say whether the key or the whole bucket is missing."""
        with aws_errors(f"HeadBucket {self.bucket}"):
            try:
                await self.s3.head_bucket(Bucket=self.bucket)
            except bce.ClientError as err:
                if error_code(err) not in ("404", "NoSuchBucket", "NotFound"):
                    raise
                raise RepositoryNotFoundError(
                    f"bucket {self.bucket} does not exist; "
                    "create the repository with `await repo.bootstrap()`"
                ) from err

    async def ensure_bucket(self, region: str | None) -> bool:
        """Create the bucket unless it exists; ``True`` when it was created."""
        with aws_errors(f"create bucket {self.bucket}"):
            try:
                await self.s3.head_bucket(Bucket=self.bucket)
                return False
            except bce.ClientError as err:
                if error_code(err) not in ("404", "NoSuchBucket", "NotFound"):
                    raise
            kwargs: dict[str, Any] = {}
            if region and region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            try:
                await self.s3.create_bucket(Bucket=self.bucket, **kwargs)
            except bce.ClientError as err:
                if error_code(err) in ("BucketAlreadyOwnedByYou",):
                    return False
                raise
        log.info("created S3 bucket %s", self.bucket)
        return True

    # -- DynamoDB ------------------------------------------------------------------

    async def get_item(self, pk: str, sk: str) -> Item | None:
        """The item (strongly consistent), or ``None``.

        Lookups issued in the same event-loop turn share BatchGetItem requests
        (see :mod:`._coalesce`): a service starting 100 artifacts at once sends
        one request per step instead of 100. A lone lookup is a GetItem.
        """
        with aws_errors(f"GetItem {self.table} {pk!r}/{sk!r}"):
            return await self._item_lookups((pk, sk))

    async def _get_items(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        if len(keys) == 1:
            [(pk, sk)] = keys
            item = await self._get_one(pk, sk)
            return {} if item is None else {(pk, sk): item}
        return await self._get_many(keys)

    async def _get_one(self, pk: str, sk: str) -> Item | None:
        resp = await self.dynamodb.get_item(
            TableName=self.table,
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            ConsistentRead=True,
        )
        item: Item | None = resp.get("Item")
        return item

    async def _get_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        """Up to 100 items by key in one BatchGetItem, retrying unprocessed keys."""
        pending = [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in keys]
        found: dict[tuple[str, str], Item] = {}
        for attempt in range(_BATCH_GET_TRIES):
            resp = await self.dynamodb.batch_get_item(
                RequestItems={self.table: {"Keys": pending, "ConsistentRead": True}}
            )
            for item in resp.get("Responses", {}).get(self.table, ()):
                found[item["pk"]["S"], item["sk"]["S"]] = item
            pending = resp.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
            if not pending:
                return found
            await _pacing.pause(random.uniform(0, 0.05 * 2**attempt))  # jitter
        for key in pending:  # still throttled: one GetItem each, with botocore's retries
            pk, sk = key["pk"]["S"], key["sk"]["S"]
            item = await self._get_one(pk, sk)
            if item is not None:
                found[pk, sk] = item
        return found

    async def put_item(
        self,
        item: Item,
        condition: str | None = None,
        values: Item | None = None,
    ) -> bool:
        """Write ``item``; ``False`` when ``condition`` did not hold (nothing written)."""
        kwargs = _expression_kwargs(condition, values)
        return await self._conditional(
            f"PutItem {self.table} {_key_text(item)}",
            self.dynamodb.put_item(TableName=self.table, Item=item, **kwargs),
        )

    async def update_item(
        self,
        pk: str,
        sk: str,
        update: str,
        condition: str | None = None,
        values: Item | None = None,
        names: Mapping[str, str] | None = None,
    ) -> bool:
        """Apply ``update``; ``False`` when ``condition`` did not hold (nothing written)."""
        kwargs = {"UpdateExpression": update, **_expression_kwargs(condition, values, names)}
        return await self._conditional(
            f"UpdateItem {self.table} {pk!r}/{sk!r}",
            self.dynamodb.update_item(
                TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, **kwargs
            ),
        )

    async def delete_item(
        self, pk: str, sk: str, condition: str | None = None, values: Item | None = None
    ) -> bool:
        """Delete an item; ``False`` when ``condition`` did not hold (nothing deleted)."""
        kwargs = _expression_kwargs(condition, values)
        return await self._conditional(
            f"DeleteItem {self.table} {pk!r}/{sk!r}",
            self.dynamodb.delete_item(
                TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, **kwargs
            ),
        )

    async def transact_write(self, what: str, items: Sequence[Mapping[str, Any]]) -> list[str]:
        """TransactWriteItems; returns the cancellation reason code of each action
        (``"None"`` for those that were fine) when the transaction was cancelled,
        or ``[]`` when it was applied."""
        for entry in items:
            for action in entry.values():
                action.setdefault("TableName", self.table)
        with aws_errors(what):
            try:
                await self.dynamodb.transact_write_items(TransactItems=list(items))
            except bce.ClientError as err:
                if error_code(err) != "TransactionCanceledException":
                    raise
                reasons = err.response.get("CancellationReasons") or []
                codes = [str(r.get("Code", "None")) for r in reasons]
                refused = cancellation_error(
                    what, codes, [str(r.get("Message") or "") for r in reasons]
                )
                if refused is not None:
                    raise refused from err
                return codes or ["ConditionalCheckFailed"]
        return []

    async def query(
        self,
        pk: str,
        *,
        descending: bool = False,
        limit: int | None = None,
        sk_between: tuple[str, str] | None = None,
        page_size: int | None = None,
        filter: str | None = None,
        filter_values: Item | None = None,
        filter_names: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Item]:
        """Every item of partition ``pk`` (or the first ``limit``), following pages.

        ``filter`` is a FilterExpression (with its own ``:values`` and
        ``#names``; it may not use ``pk``/``sk``). DynamoDB applies it after
        reading: every item of the partition is still read and paid for, only
        fewer are returned. ``limit`` then counts the items that passed it.
        """
        condition = "pk = :pk"
        values: Item = {":pk": {"S": pk}, **(filter_values or {})}
        if sk_between is not None:
            condition += " AND sk BETWEEN :lo AND :hi"
            values[":lo"] = {"S": sk_between[0]}
            values[":hi"] = {"S": sk_between[1]}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not descending,
            "ConsistentRead": True,
        }
        if filter is not None:
            kwargs["FilterExpression"] = filter
        if filter_names:
            kwargs["ExpressionAttributeNames"] = dict(filter_names)
        if page_size is not None or (limit is not None and filter is None):
            kwargs["Limit"] = page_size or limit
        returned = 0
        with aws_errors(f"Query {self.table} pk={pk!r}"):
            while True:
                resp = await self.dynamodb.query(**kwargs)
                for item in resp.get("Items", ()):
                    yield item
                    returned += 1
                    if limit is not None and returned >= limit:
                        return
                if "LastEvaluatedKey" not in resp:
                    return
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    async def scan(
        self,
        filter: str,
        values: Item | None = None,
        names: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Item]:
        """Every item of the table that passes ``filter``, following pages.

        A Scan reads the whole table (every item of every partition, 1 MB a
        page) and is billed for all of it; the filter only trims what comes
        back. Strongly consistent, like :meth:`query`.
        """
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": filter,
            "ConsistentRead": True,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        if names:
            kwargs["ExpressionAttributeNames"] = dict(names)
        async for item in self._scan_pages(kwargs):
            yield item

    async def scan_keys(self) -> AsyncIterator[Item]:
        """The key of every item in the table."""
        async for item in self._scan_pages(
            {"TableName": self.table, "ProjectionExpression": "pk, sk"}
        ):
            yield item

    async def _scan_pages(self, kwargs: dict[str, Any]) -> AsyncIterator[Item]:
        """Every item a Scan with ``kwargs`` returns, page after page."""
        with aws_errors(f"Scan {self.table}"):
            while True:
                resp = await self.dynamodb.scan(**kwargs)
                for item in resp.get("Items", ()):
                    yield item
                if "LastEvaluatedKey" not in resp:
                    return
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    async def batch_delete(self, keys: Sequence[Item]) -> None:
        """Delete items by key, 25 per request, retrying what DynamoDB left unprocessed."""
        for start in range(0, len(keys), 25):
            pending: list[dict[str, Any]] = [
                {"DeleteRequest": {"Key": {"pk": k["pk"], "sk": k["sk"]}}}
                for k in keys[start : start + 25]
            ]
            with aws_errors(f"BatchWriteItem {self.table}"):
                for _attempt in range(10):
                    resp = await self.dynamodb.batch_write_item(RequestItems={self.table: pending})
                    pending = resp.get("UnprocessedItems", {}).get(self.table, [])
                    if not pending:
                        break
                else:
                    raise BackendUnavailableError(
                        f"DynamoDB left {len(pending)} deletes unprocessed after 10 tries; retry"
                    )

    async def ensure_table(
        self, read_capacity_units: int | None, write_capacity_units: int | None
    ) -> bool:
        """Create the table unless it exists and wait until it is active."""
        with aws_errors(f"create table {self.table}"):
            try:
                await self.dynamodb.describe_table(TableName=self.table)
                return False
            except bce.ClientError as err:
                if error_code(err) != "ResourceNotFoundException":
                    raise
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
            }
            if read_capacity_units is None:
                kwargs["BillingMode"] = "PAY_PER_REQUEST"
            else:
                kwargs["BillingMode"] = "PROVISIONED"
                kwargs["ProvisionedThroughput"] = {
                    "ReadCapacityUnits": read_capacity_units,
                    "WriteCapacityUnits": write_capacity_units,
                }
            try:
                await self.dynamodb.create_table(**kwargs)
            except bce.ClientError as err:
                if error_code(err) != "ResourceInUseException":
                    raise
            waiter = self.dynamodb.get_waiter("table_exists")
            await waiter.wait(TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        log.info("created DynamoDB table %s", self.table)
        return True

    async def _conditional(self, what: str, call: Any) -> bool:
        with aws_errors(what):
            try:
                await call
            except bce.ClientError as err:
                if error_code(err) == "ConditionalCheckFailedException":
                    return False
                raise
        return True


def _expression_kwargs(
    condition: str | None, values: Item | None, names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if condition is not None:
        kwargs["ConditionExpression"] = condition
    if values:
        kwargs["ExpressionAttributeValues"] = values
    if names:
        kwargs["ExpressionAttributeNames"] = dict(names)
    return kwargs


def _object_kwargs(
    metadata: Mapping[str, str], content_type: str | None, tags: Mapping[str, str] | None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"Metadata": dict(metadata)}
    if content_type is not None:
        kwargs["ContentType"] = content_type
    if tags:
        kwargs["Tagging"] = "&".join(
            f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in tags.items()
        )
    return kwargs


def _write_conditions(if_match: str | None, if_none_match: bool) -> dict[str, str]:
    conditions = {} if if_match is None else {"IfMatch": if_match}
    if if_none_match:
        conditions["IfNoneMatch"] = "*"
    return conditions


def _condition_failed(err: bce.ClientError, if_match: str | None, if_none_match: bool) -> bool:
    """Whether a conditional write was refused because of its condition.

    412: the condition is false. 409 ``ConditionalRequestConflict``: S3 saw a
    concurrent conditional write to the key (retry after reading again). A
    404 under ``If-Match``: the object it named is gone.
    """
    if if_match is None and not if_none_match:
        return False
    code = error_code(err)
    if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
        return True
    return if_match is not None and code in ("NoSuchKey", "404", "NotFound")


def _b64_sha256(hex_digest: str) -> str:
    """S3's checksum form of a sha256: base64 of the raw digest."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


async def _part_checksum(data: bytes) -> str:
    digest = await asyncio.to_thread(lambda: hashlib.sha256(data).digest())
    return base64.b64encode(digest).decode("ascii")


def _key_text(item: Item) -> str:
    return f"{item['pk'].get('S')!r}/{item['sk'].get('S')!r}"


async def caller_arn(session: Any, region: str | None, endpoint_url: str | None) -> str | None:
    """The caller's AWS identity (STS GetCallerIdentity ARN), or ``None`` when it
    cannot be had quickly: the default ``actor`` of alias history is only a hint,
    never a reason for an alias change to fail."""
    config = AioConfig(
        connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 2}
    )
    try:
        async with session.create_client(
            "sts", region_name=region or "us-east-1", endpoint_url=endpoint_url, config=config
        ) as sts:
            _pacing.pace_client(sts)
            arn = (await sts.get_caller_identity()).get("Arn")
    except Exception as err:
        log.info(
            "alias history: caller identity unknown (%s); actor left empty",
            redact_text(str(err)),
        )
        return None
    return arn if isinstance(arn, str) else None
