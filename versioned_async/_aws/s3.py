"""S3 objects in one bucket: the object operations the repositories need.

:class:`ObjectStore` knows S3's API and nothing of artifacts beyond keys and
metadata. Expected outcomes (a missing object, a write whose condition
failed) are return values; everything else leaves as a library error
(:func:`.errors.aws_errors`). Downloads resume where a cut transfer stopped;
large downloads go in parallel parts (:mod:`.s3_download`), large uploads in
parts (:mod:`.s3_upload`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import attrs
import botocore.exceptions as bce

from .. import _layout, _pacing, _staging
from .._policy.part_size import uses_multipart
from .._wording import BOOTSTRAP
from ..exc import BackendError, BackendUnavailableError, RepositoryNotFoundError
from . import progress, s3_download, s3_upload
from .clients import AwsClients
from .errors import aws_errors, error_code, scrub, unless_missing
from .s3_params import b64_sha256, condition_failed, object_params, write_conditions

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = ["CHUNK_SIZE", "MAX_RESUMES", "ListedObject", "ObjectInfo", "ObjectStore"]

log = logging.getLogger("versioned_async")

#: read size of a streamed download
CHUNK_SIZE = 1 << 20
#: how many times a cut download resumes before giving up
MAX_RESUMES = 5

#: how S3 answers HeadObject and GetObjectTagging for an object that is not there
_NO_OBJECT = ("404", "NoSuchKey", "NotFound")
#: ... and GetObject and CopyObject
_NO_SUCH_KEY = ("NoSuchKey", "404")
#: how S3 answers HeadBucket for a bucket that is not there
_NO_BUCKET = ("404", "NoSuchBucket", "NotFound")

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


def _length(resp: Mapping[str, Any]) -> int:
    """The object's size, as a (whole-object) GetObject response says."""
    return int(resp.get("ContentLength", 0))


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


class ObjectStore:
    """The objects of one bucket, through the repository's S3 client (created on first use)."""

    def __init__(self, clients: AwsClients, bucket: str) -> None:
        self._clients = clients
        self._client: Any = None
        self.bucket = bucket
        #: whether the server enforces CopyObject's If-None-Match (None: not asked yet)
        self._conditional_copy: bool | None = None
        self._probe_lock = asyncio.Lock()

    async def _s3(self) -> Any:
        """The S3 client, asked of the repository's clients once and then kept."""
        if self._client is None:
            self._client = await self._clients.client("s3")
        return self._client

    async def head_object(self, key: str) -> ObjectInfo | None:
        """The object's info, or ``None`` when it does not exist."""
        s3 = await self._s3()
        with aws_errors(f"HeadObject s3://{self.bucket}/{key}"):
            resp = await unless_missing(s3.head_object(Bucket=self.bucket, Key=key), _NO_OBJECT)
        return None if resp is None else ObjectInfo.from_response(resp)

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
        s3 = await self._s3()
        kwargs = object_params(metadata, content_type, tags)
        kwargs.update(write_conditions(if_match, if_none_match))
        if sha256 is not None:
            kwargs["ChecksumSHA256"] = b64_sha256(sha256)
        with aws_errors(f"PutObject s3://{self.bucket}/{key}"):
            try:
                resp = await s3.put_object(Bucket=self.bucket, Key=key, Body=body, **kwargs)
            except bce.ClientError as err:
                if condition_failed(err, if_match, if_none_match):
                    return None
                raise
        return str(resp.get("ETag", ""))

    async def delete_object(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete an object (a missing one is no error); ``False`` when ``if_match``
        (an ETag) is not the object's any more, or it is already gone."""
        s3 = await self._s3()
        kwargs = {} if if_match is None else {"IfMatch": if_match}
        with aws_errors(f"DeleteObject s3://{self.bucket}/{key}"):
            try:
                await s3.delete_object(Bucket=self.bucket, Key=key, **kwargs)
            except bce.ClientError as err:
                if condition_failed(err, if_match, False):
                    return False
                raise
        return True

    async def get_tags(self, key: str) -> dict[str, str] | None:
        """The object's tags, or ``None`` when it does not exist."""
        s3 = await self._s3()
        with aws_errors(f"GetObjectTagging s3://{self.bucket}/{key}"):
            resp = await unless_missing(
                s3.get_object_tagging(Bucket=self.bucket, Key=key), _NO_OBJECT
            )
        if resp is None:
            return None
        return {tag["Key"]: tag["Value"] for tag in resp.get("TagSet", ())}

    async def list_objects(self, prefix: str, *, limit: int | None = None) -> list[ListedObject]:
        """The objects whose key starts with ``prefix``, in key order; the first ``limit``."""
        s3 = await self._s3()
        paging: dict[str, int] = {}
        if limit is not None:
            paging = {"MaxItems": limit, "PageSize": min(limit, 1000)}
        found: list[ListedObject] = []
        paginator = s3.get_paginator("list_objects_v2")
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
        s3 = await self._s3()
        with aws_errors(f"CopyObject s3://{self.bucket}/{src_key} to {dst_key}"):
            copied = await unless_missing(
                s3.copy_object(
                    Bucket=self.bucket,
                    Key=dst_key,
                    CopySource={"Bucket": self.bucket, "Key": src_key},
                    MetadataDirective="COPY",
                    TaggingDirective="COPY",
                    ChecksumAlgorithm="SHA256",
                ),
                _NO_SUCH_KEY,
            )
        return copied is not None

    async def copy_if_absent(
        self,
        src_key: str,
        src_etag: str,
        dst_key: str,
        metadata: Mapping[str, str],
        content_type: str | None,
        tags: Mapping[str, str] | None,
    ) -> bool:
        """Server-side copy of the object ``src_etag`` names onto ``dst_key``, only where
        no object is (``If-None-Match: *``); metadata, content type and tags replaced by
        those given. ``False`` when refused: ``dst_key`` exists, or ``src_key`` is no
        longer that object (``x-amz-copy-source-if-match``) or is gone.

        Only for a server that enforces both conditions (see
        :meth:`honours_conditional_copy`): moto ignores them and copies anyway.
        """
        s3 = await self._s3()
        kwargs = object_params(metadata, content_type, tags)
        kwargs.update(write_conditions(None, if_none_match=True))
        with aws_errors(f"CopyObject s3://{self.bucket}/{src_key} to {dst_key}"):
            try:
                await s3.copy_object(
                    Bucket=self.bucket,
                    Key=dst_key,
                    CopySource={"Bucket": self.bucket, "Key": src_key},
                    CopySourceIfMatch=src_etag,
                    MetadataDirective="REPLACE",
                    TaggingDirective="REPLACE",
                    **kwargs,
                )
            except bce.ClientError as err:
                if condition_failed(err, src_etag, if_none_match=True):
                    return False
                raise
        return True

    async def honours_conditional_copy(self, probe_key: str) -> bool:
        """Whether this server refuses a CopyObject with ``If-None-Match: *`` onto an
        existing object, asked once per store and remembered.

        The probe copies a new empty object at ``probe_key`` onto itself with the
        condition: a server that enforces it answers 412; one that ignores it (moto)
        rewrites the probe with itself, which harms nothing. The probe is deleted
        after. Any other answer (no permission to write the probe, not implemented...)
        is a "no" too: the caller then takes the path that never relies on the
        condition. Only an unreachable server raises.
        """
        async with self._probe_lock:
            if self._conditional_copy is None:
                self._conditional_copy = await self._probe_conditional_copy(probe_key)
            return self._conditional_copy

    async def _probe_conditional_copy(self, probe_key: str) -> bool:
        s3 = await self._s3()
        where = f"s3://{self.bucket}/{probe_key}"
        with aws_errors(f"conditional CopyObject probe {where}"):
            try:
                await s3.put_object(Bucket=self.bucket, Key=probe_key, Body=b"")
            except bce.ClientError as err:
                log.info("could not write %s (%s): publish will not copy", where, error_code(err))
                return False
            try:
                await s3.copy_object(
                    Bucket=self.bucket,
                    Key=probe_key,
                    CopySource={"Bucket": self.bucket, "Key": probe_key},
                    MetadataDirective="REPLACE",
                    Metadata={"probe": "conditional-copy"},
                    IfNoneMatch="*",
                )
            except bce.ClientError as err:
                verdict = error_code(err) in ("PreconditionFailed", "412")
                if not verdict:
                    log.info("%s: CopyObject under If-None-Match gave %s", where, error_code(err))
            else:
                log.info("%s does not enforce If-None-Match on CopyObject", self.bucket)
                verdict = False
            try:
                await s3.delete_object(Bucket=self.bucket, Key=probe_key)
            except bce.ClientError as err:
                log.warning("could not delete %s (%s); delete it", where, error_code(err))
        return verdict

    async def get_object(self, key: str) -> tuple[bytes, ObjectInfo] | None:
        """The whole body and info, or ``None`` when the object does not exist.

        A transfer cut in the middle resumes where it stopped (see
        :meth:`_read_body`); a large object is read in parts, in parallel, into
        one preallocated buffer (:mod:`.s3_download`).
        """
        with aws_errors(f"GetObject s3://{self.bucket}/{key}"):
            for _ in range(MAX_RESUMES + 1):
                resp = await self._get_object_or_none(key)
                if resp is None:
                    return None
                if not s3_download.in_parts(_length(resp), self._clients.transfer):
                    chunks: list[bytes] = []
                    came_from = await self._read_body(key, resp, chunks.append, chunks.clear)
                    if came_from is None:
                        return None
                    return b"".join(chunks), ObjectInfo.from_response(came_from)
                target = s3_download.BufferTarget(_length(resp))
                try:
                    if not await self._read_in_parts(key, resp, target):
                        return None
                except s3_download.Replaced:
                    self._log_replaced(key)
                    continue
                return target.release(), ObjectInfo.from_response(resp)
            raise self._replaced_too_often(key)

    async def _get_object_or_none(self, key: str, **kwargs: Any) -> dict[str, Any] | None:
        """GetObject's response (its body still to read), or ``None`` for a missing key."""
        s3 = await self._s3()
        resp: dict[str, Any] | None = await unless_missing(
            s3.get_object(Bucket=self.bucket, Key=key, **kwargs), _NO_SUCH_KEY
        )
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
                        progress.moved(len(chunk))
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
        """Stream an object into a new file at ``path`` (mode 0600; or the staging file
        claimed there, see :mod:`.._staging`), hashing as it goes.

        Returns ``(sha256, size, info)``, or ``None`` when the object does not
        exist; the file is complete when this returns (on failure the caller
        removes it). Memory stays at one chunk per request in flight whatever
        the object's size; a cut transfer resumes (:meth:`_read_body`); a
        large object is read in parts, in parallel, each written at its offset
        (:mod:`.s3_download`).
        """
        with aws_errors(f"GetObject s3://{self.bucket}/{key}"):
            resp = await self._get_object_or_none(key)
            if resp is None:
                return None
            target = s3_download.FileTarget(_staging.open_new(path))
            try:
                for _ in range(MAX_RESUMES + 1):
                    if not s3_download.in_parts(_length(resp), self._clients.transfer):
                        return await self._stream_to(key, resp, target)
                    digest = hashlib.sha256()
                    try:
                        if not await self._read_in_parts(key, resp, target, digest):
                            return None
                    except s3_download.Replaced:
                        self._log_replaced(key)
                        target.truncate()
                        again = await self._get_object_or_none(key)
                        if again is None:
                            return None
                        resp = again
                        continue
                    return digest.hexdigest(), _length(resp), ObjectInfo.from_response(resp)
                raise self._replaced_too_often(key)
            finally:
                os.close(target.fd)

    async def _stream_to(
        self, key: str, resp: dict[str, Any], target: s3_download.FileTarget
    ) -> tuple[str, int, ObjectInfo] | None:
        """One GetObject stream into ``target``, hashed chunk by chunk on the way."""
        digest = [hashlib.sha256()]
        written = [0]

        def write(chunk: bytes) -> None:
            digest[0].update(chunk)
            target.write_at(written[0], chunk)
            written[0] += len(chunk)

        def start_over() -> None:
            target.truncate()
            digest[0] = hashlib.sha256()
            written[0] = 0

        came_from = await self._read_body(key, resp, write, start_over)
        if came_from is None:
            return None
        return digest[0].hexdigest(), written[0], ObjectInfo.from_response(came_from)

    async def _read_in_parts(
        self,
        key: str,
        first: dict[str, Any],
        target: s3_download.Target,
        digest: _Hash | None = None,
    ) -> bool:
        """:func:`.s3_download.read_in_parts` for ``key``, whose plain GetObject is ``first``."""

        async def get(**request: Any) -> dict[str, Any] | None:
            return await self._get_object_or_none(key, **request)

        return await s3_download.read_in_parts(
            get,
            first,
            target,
            self._clients.transfer,
            f"s3://{self.bucket}/{key}",
            stream_errors=_STREAM_ERRORS,
            max_resumes=MAX_RESUMES,
            read_size=CHUNK_SIZE,
            digest=digest,
        )

    def _log_replaced(self, key: str) -> None:
        log.info("s3://%s/%s was replaced while being read; reading it again", self.bucket, key)

    def _replaced_too_often(self, key: str) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"GetObject s3://{self.bucket}/{key}: the object was replaced {MAX_RESUMES + 1} "
            "times while it was read; retry once it stops changing"
        )

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
        """Upload bytes or a file: one PutObject, or a multipart upload above the
        repository's :attr:`~versioned_async.TransferConfig.multipart_threshold`.

        A multipart upload reads a file one part at a time, so memory stays
        bounded by ``max_concurrency`` parts whatever its size (see
        :mod:`.s3_upload`). Every request carries a SHA-256 checksum that S3
        verifies: the whole body's (``sha256``, hex) for a single PutObject,
        each part's for multipart. So a file that changes while it is uploaded
        is refused, not stored under a hash it does not have. ``if_none_match``
        stores it only where no object is; ``False`` when one was. The bytes
        sent are told to :func:`.progress.moved`.
        """
        transfer = self._clients.transfer
        if not uses_multipart(size, transfer.multipart_threshold):
            body = (
                source if isinstance(source, bytes) else await asyncio.to_thread(source.read_bytes)
            )
            etag = await self.put_object(
                key, body, metadata, content_type, tags, sha256, if_none_match=if_none_match
            )
            if etag is not None:
                progress.moved(len(body))
            return etag is not None
        params = object_params(metadata, content_type, tags)
        s3 = await self._s3()
        return await s3_upload.upload_in_parts(
            s3,
            self.bucket,
            key,
            source,
            size,
            params,
            sha256,
            transfer=transfer,
            if_none_match=if_none_match,
        )

    async def list_folders(self, prefix: str) -> list[str]:
        """Names of the "folders" directly below ``prefix``."""
        s3 = await self._s3()
        names: list[str] = []
        paginator = s3.get_paginator("list_objects_v2")
        with aws_errors(f"ListObjectsV2 s3://{self.bucket}/{prefix}"):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                for common in page.get("CommonPrefixes", ()):
                    names.append(common["Prefix"][len(prefix) :].rstrip("/"))
        return names

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix``; returns how many."""
        s3 = await self._s3()
        deleted = 0
        paginator = s3.get_paginator("list_objects_v2")
        with aws_errors(f"delete s3://{self.bucket}/{prefix}*"):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", ())]
                if not keys:
                    continue
                resp = await s3.delete_objects(
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
        s3 = await self._s3()
        with aws_errors(f"HeadBucket {self.bucket}"):
            try:
                await s3.head_bucket(Bucket=self.bucket)
            except bce.ClientError as err:
                if error_code(err) not in _NO_BUCKET:
                    raise
                raise RepositoryNotFoundError(
                    f"bucket {self.bucket} does not exist; ", BOOTSTRAP
                ) from err

    async def ensure_bucket(self, region: str | None) -> bool:
        """Create the bucket unless it exists; ``True`` when it was created."""
        s3 = await self._s3()
        with aws_errors(f"create bucket {self.bucket}"):
            if await unless_missing(s3.head_bucket(Bucket=self.bucket), _NO_BUCKET) is not None:
                return False
            kwargs: dict[str, Any] = {}
            if region and region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            try:
                await s3.create_bucket(Bucket=self.bucket, **kwargs)
            except bce.ClientError as err:
                if error_code(err) in ("BucketAlreadyOwnedByYou",):
                    return False
                raise
        log.info("created S3 bucket %s", self.bucket)
        return True
