"""Repository: the async public API over S3 (content) and DynamoDB (metadata).

It orchestrates: arguments are validated by :mod:`._layout`, items converted
by :mod:`._codec`, purges planned by :mod:`._retention`, and every AWS call
made through :mod:`._aws`. The layout is `versioned` 1.0's, so both libraries
can work on one repository at the same time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import shutil
from collections.abc import Awaitable, Iterable
from contextlib import AsyncExitStack
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import attrs
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from . import _codec, _layout, _retention
from ._aws import AwsBackend, ObjectInfo
from ._codec import AliasItem, VersionItem
from ._freshness import Freshness, freshness, may_serve_stale
from ._layout import LATEST, VersionLike
from ._s3_options import S3Options
from .cache import LocalCache, Staged
from .exc import (
    AliasNotFoundError,
    ArtifactNotFoundError,
    BackendUnavailableError,
    ConflictError,
    IntegrityError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RepositoryClosedError,
)
from .models import Alias, Artifact, bind

__all__ = ["Repository"]

log = logging.getLogger("versioned_async")

_T = TypeVar("_T")

#: hashing a large body blocks the event loop; above this, hash in a thread
_HASH_IN_THREAD_BYTES = 1 << 20
#: how many numbers a publisher tries past the top one before giving up
_PUBLISH_ATTEMPTS = 1000
#: how often a put re-reads LATEST to converge with concurrent puts before giving up
_CONVERGE_ATTEMPTS = 8
#: concurrent requests one bulk operation (purge) keeps in flight
_BULK_CONCURRENCY = 16

_VISIBLE = "attribute_exists(sha256) AND is_deleted = :false"


@attrs.frozen
class ContentRef:
    """Where verified content sits in the cache."""

    sha256: str
    path: str
    size: int | None  # as recorded; a cached file of another size is corrupt


class _DamagedEntry(Exception):
    """A cached file is not the size recorded for it (truncated or replaced)."""


#: below this, reading a file inline is cheaper than a thread hop (~140 us)
_READ_INLINE_BYTES = 1 << 20


async def _read_file(ref: ContentRef) -> bytes:
    """Read a cached file; its content was verified when it was written, its size is
    checked on every read (free: one fstat), so a truncated file is never served."""
    with open(ref.path, "rb") as handle:  # noqa: ASYNC230 - small reads inline, see below
        size = os.fstat(handle.fileno()).st_size
        if ref.size is not None and size != ref.size:
            raise _DamagedEntry(ref.path)
        body = handle.read() if size <= _READ_INLINE_BYTES else await asyncio.to_thread(handle.read)
    if len(body) != size:
        raise _DamagedEntry(ref.path)
    return body


def _describe_object(name: str, stored: str, sha256: str, info: ObjectInfo) -> VersionItem:
    """The visible version item for an object: its own metadata is the truth."""
    return VersionItem(
        pk=name,
        sk=stored,
        is_deleted=False,
        sha256=sha256,
        update_at=info.last_modified,
        size=info.size,
        content_type=info.content_type,
        metadata=info.metadata or None,
    )


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


async def _hash_source(source: bytes | Path) -> tuple[str, int]:
    """sha256 and size of bytes or of a file (read in chunks, in a thread)."""
    if isinstance(source, bytes):
        return await _sha256(source), len(source)

    def hash_file() -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        with open(source, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    return await asyncio.to_thread(hash_file)


async def _sha256(content: bytes) -> str:
    if len(content) >= _HASH_IN_THREAD_BYTES:
        return await asyncio.to_thread(lambda: hashlib.sha256(content).hexdigest())
    return hashlib.sha256(content).hexdigest()


class Repository:
    """A versioned artifact repository: content in S3, metadata in one DynamoDB table.

    Open it with ``async with``: that creates one pooled S3 client and one
    DynamoDB client, shared by every call and closed on exit::

        async with Repository(aws_region="us-east-1", s3_bucket="my-bucket") as repo:
            await repo.bootstrap()
            await repo.put_artifact("model", b"...")

    ``endpoint_url`` sends both clients to one endpoint (moto, LocalStack). Left
    ``None``, botocore's own configuration applies untouched:
    ``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL_DYNAMODB``
    and profiles. ``client_config`` is merged over the defaults (standard
    retries, 5 attempts, a pool of ``max_pool_connections``).

    Security settings, carried by every S3 request: ``server_side_encryption``
    (``"AES256"`` for SSE-S3, ``"aws:kms"`` for SSE-KMS with ``sse_kms_key_id``)
    for the objects written, and ``expected_bucket_owner`` (a 12-digit account
    id) so that S3 refuses to talk to a bucket another account owns. Uploads
    always carry a SHA-256 checksum that S3 verifies on arrival.
    """

    def __init__(
        self,
        aws_region: str | None = None,
        s3_bucket: str = "",
        s3_prefix: str = _layout.DEFAULT_S3_PREFIX,
        dynamodb_table_name: str = _layout.DEFAULT_TABLE_NAME,
        suffix: str = "",
        endpoint_url: str | None = None,
        session: AioSession | None = None,
        *,
        cache: LocalCache | None = None,
        max_pool_connections: int = 64,
        client_config: AioConfig | None = None,
        server_side_encryption: str | None = None,
        sse_kms_key_id: str | None = None,
        expected_bucket_owner: str | None = None,
    ) -> None:
        for what, value in (
            ("s3_bucket", s3_bucket),
            ("s3_prefix", s3_prefix),
            ("dynamodb_table_name", dynamodb_table_name),
            ("suffix", suffix),
        ):
            if not isinstance(value, str):
                raise InvalidArgumentTypeError(f"{what} must be a str, not {type(value).__name__}")
        if not s3_bucket:
            raise InvalidArgumentError("s3_bucket is required: the bucket that holds the content")
        if not dynamodb_table_name:
            raise InvalidArgumentError("dynamodb_table_name must not be empty")
        self.aws_region = aws_region
        self.s3_bucket = s3_bucket
        self.s3_prefix = s3_prefix.strip("/")
        self.dynamodb_table_name = dynamodb_table_name
        self.suffix = suffix
        self.endpoint_url = endpoint_url
        self.layout = _layout.Layout(bucket=s3_bucket, prefix=s3_prefix, suffix=suffix)
        self._session = session
        if cache is not None and not isinstance(cache, LocalCache):
            raise InvalidArgumentTypeError(
                f"cache must be a LocalCache, not {type(cache).__name__}"
            )
        self.cache = cache
        self.s3_options = S3Options(server_side_encryption, sse_kms_key_id, expected_bucket_owner)
        self._alias_memo: dict[tuple[str, ...], tuple[float, Alias]] = {}
        # name -> {version: token}: reservations a failed publish may have left behind
        self._unreleased: dict[str, dict[str, str]] = {}
        # cache keys name the repository, so one cache directory can serve several
        self._identity = (
            endpoint_url or "aws",
            s3_bucket,
            self.layout.prefix,
            suffix,
            dynamodb_table_name,
        )
        config = AioConfig(
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=max_pool_connections,
            connect_timeout=10,
            read_timeout=60,
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        self._client_config = config.merge(client_config) if client_config else config
        self._stack: AsyncExitStack | None = None
        self._aws: AwsBackend | None = None

    def __repr__(self) -> str:
        return (
            f"Repository(aws_region={self.aws_region!r}, s3_bucket={self.s3_bucket!r}, "
            f"s3_prefix={self.s3_prefix!r}, dynamodb_table_name={self.dynamodb_table_name!r}, "
            f"suffix={self.suffix!r}, endpoint_url={self.endpoint_url!r})"
        )

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Repository:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the clients; ``async with repo`` calls this for you."""
        if self._aws is not None:
            raise RepositoryClosedError("this Repository is already open")
        session = self._session or get_session()
        stack = AsyncExitStack()
        try:
            clients = [
                await stack.enter_async_context(
                    session.create_client(
                        service,
                        region_name=self.aws_region,
                        endpoint_url=self.endpoint_url,
                        config=self._client_config,
                    )
                )
                for service in ("s3", "dynamodb")
            ]
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self._aws = AwsBackend(
            clients[0], clients[1], self.s3_bucket, self.dynamodb_table_name, self.s3_options
        )

    async def close(self) -> None:
        """Close the clients and their connection pools. Safe to call twice."""
        stack, self._stack, self._aws = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    @property
    def is_open(self) -> bool:
        return self._aws is not None

    @property
    def _backend(self) -> AwsBackend:
        if self._aws is None:
            raise RepositoryClosedError(
                "the Repository is not open: use `async with repo:` (or `await repo.open()`)"
            )
        return self._aws

    # -- set-up ----------------------------------------------------------------------

    async def bootstrap(
        self,
        dynamodb_write_capacity_units: int | None = None,
        dynamodb_read_capacity_units: int | None = None,
    ) -> None:
        """Create the bucket and the table when missing. Idempotent.

        The table is on-demand unless both capacities are given.
        """
        if (dynamodb_write_capacity_units is None) != (dynamodb_read_capacity_units is None):
            raise InvalidArgumentError(
                "give both dynamodb_write_capacity_units and dynamodb_read_capacity_units, "
                "or neither for an on-demand table"
            )
        await asyncio.gather(
            self._backend.ensure_bucket(self.aws_region),
            self._backend.ensure_table(dynamodb_read_capacity_units, dynamodb_write_capacity_units),
        )

    # -- artifacts -------------------------------------------------------------------

    async def put_artifact(
        self,
        name: str,
        content: bytes | os.PathLike[str],
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> Artifact:
        """Store ``content`` (bytes, or the path of a file) as the LATEST version of ``name``.

        A file is streamed: hashed and uploaded in parts (multipart above 16
        MiB), so memory stays bounded whatever its size. When LATEST already
        holds the same content (and the same content type and metadata,
        where given) nothing is uploaded. The S3 object is written before the
        table item, so a failed upload leaves the item as it was; calling
        again after a failure repairs a half-done put.
        """
        _layout.validate_name(name)
        body = _layout.validate_content(content)
        content_type = _layout.validate_content_type(content_type)
        user_meta = _layout.validate_metadata(metadata)
        tag_map = _layout.validate_tags(tags)
        aws = self._backend
        key = self.layout.key(name, LATEST)
        (sha, size), (head, raw_item) = await asyncio.gather(
            _hash_source(body),
            asyncio.gather(aws.head_object(key), aws.get_item(name, LATEST)),
        )
        item = None if raw_item is None else _codec.structure_version_item(raw_item)
        unchanged = (
            head is not None
            and head.sha256 == sha
            and not tag_map
            and (content_type is None or content_type == head.content_type)
            and (metadata is None or user_meta == head.metadata)
        )
        if unchanged and head is not None:
            if item is not None and item.is_visible and item.sha256 == sha:
                return self._artifact(item)
            info = head  # the object is right, the item is not: repair it
        else:
            meta = {_layout.META_NAME: name, _layout.META_SHA256: sha, **user_meta}
            await aws.upload(key, body, size, meta, content_type, tag_map, sha)
            written = await aws.head_object(key)
            if written is None:
                raise ConflictError(f"LATEST of {name!r} was deleted while it was being put; retry")
            info = written
        return await self._record_latest(name, info)

    async def _record_latest(self, name: str, info: ObjectInfo) -> Artifact:
        """Point the LATEST item at the object ``info`` describes, until they agree.

        Writes only move ``update_at`` forward, and after each write the object
        is read again: when a concurrent put replaced it meanwhile, the item is
        rewritten to match. So racing puts converge on an item that describes
        the object S3 kept.
        """
        aws = self._backend
        key = self.layout.key(name, LATEST)
        for _attempt in range(_CONVERGE_ATTEMPTS):
            if info.sha256 is None:
                raise IntegrityError(name, LATEST, "<sha256 in object metadata>", "<none>")
            record = _describe_object(name, LATEST, info.sha256, info)
            written = await aws.put_item(
                _codec.to_item(record),
                condition="attribute_not_exists(update_at) OR update_at <= :u",
                values={":u": {"S": _codec.format_update_at(info.last_modified)}},
            )
            fresh = await aws.head_object(key)
            if fresh is None:
                raise ConflictError(f"LATEST of {name!r} was deleted while it was being put; retry")
            if written and fresh.sha256 == record.sha256:
                await self._remember_version(record)
                return self._artifact(record)
            if not written:  # a newer put recorded its own object: fine if they agree
                raw = await aws.get_item(name, LATEST)
                current = None if raw is None else _codec.structure_version_item(raw)
                if current is not None and current.is_visible and current.sha256 == fresh.sha256:
                    return self._artifact(current)
            info = fresh
        raise ConflictError(f"LATEST of {name!r} kept changing while it was being put; retry")

    async def get_artifact_version(self, name: str, version: VersionLike = None) -> Artifact:
        """One version (LATEST by default); ``ArtifactNotFoundError`` when missing or deleted."""
        _layout.validate_name(name)
        stored = _layout.encode_version(version)
        return self._artifact(await self._visible_item(name, stored))

    async def list_artifact_versions(self, name: str) -> list[Artifact]:
        """Every visible version: LATEST first, then newest to oldest. ``[]`` for none."""
        _layout.validate_name(name)
        out: list[Artifact] = []
        async for raw in self._backend.query(name, descending=True):
            item = _codec.structure_version_item(raw)
            if item.is_visible:
                out.append(self._artifact(item))
        return out

    async def list_artifact_names(self) -> list[str]:
        """Names of every artifact with content in the repository, sorted."""
        return sorted(await self._backend.list_folders(self.layout.root))

    async def publish_artifact_version(self, name: str) -> Artifact:
        """Snapshot LATEST as the next immutable version and return it.

        Safe under concurrency: each publisher first claims its number with a
        conditional write (a hidden reservation item), so concurrent
        publishers, in one process or many, get distinct numbers. The recorded
        sha256 is read from the copied object itself, so it matches the
        content even when a put races the publish.
        """
        _layout.validate_name(name)
        aws = self._backend
        await self._release_leftovers(name)
        latest, top = None, 0
        async for raw in aws.query(name, descending=True, limit=2):
            item = _codec.structure_version_item(raw)
            if item.sk == LATEST:
                latest = item
            elif top == 0:
                top = int(item.sk)
        if latest is None or not latest.is_visible:
            raise ArtifactNotFoundError(name, LATEST)
        number, token = await self._reserve_version(name, top + 1)
        stored = _layout.encode_version(number)
        try:
            if not await aws.copy_object(
                self.layout.key(name, LATEST), self.layout.key(name, stored)
            ):
                raise ArtifactNotFoundError(name, LATEST)
            info = await aws.head_object(self.layout.key(name, stored))
            if info is None:
                raise ConflictError(
                    f"version {number} of {name!r} vanished while publishing; retry"
                )
            sha = info.sha256 or await self._hash_object(name, stored)
            record = _describe_object(name, stored, sha, info)
            plain = _codec.unstructure(record)
            plain.pop("pk")
            plain.pop("sk")
            names = {f"#{k}": k for k in plain}
            values = _codec.to_attribute_values({f":{k}": v for k, v in plain.items()})
            values[":token"] = {"S": token}
            assignments = ", ".join(f"#{k} = :{k}" for k in plain)
            done = await aws.update_item(
                name,
                stored,
                update=f"SET {assignments} REMOVE publish_token",
                condition="publish_token = :token",
                values=values,
                names=names,
            )
            if not done and not await self._is_published(name, stored, sha):
                raise ConflictError(
                    f"version {number} of {name!r} was overwritten by a writer that does not "
                    "reserve numbers (an older `versioned` client?); publish again"
                )
        except BaseException:
            await self._release_reservation(name, stored, token)
            raise
        await self._remember_version(record)
        return self._artifact(record)

    async def _reserve_version(self, name: str, first: int) -> tuple[int, str]:
        """Claim the lowest free number from ``first`` on with a conditional put."""
        token = secrets.token_hex(16)
        for number in range(first, first + _PUBLISH_ATTEMPTS):
            if number > _layout.MAX_VERSION:
                break
            reservation = VersionItem(
                pk=name,
                sk=_layout.encode_version(number),
                is_deleted=True,  # invisible to both libraries until complete
                update_at=_utcnow(),
                publish_token=token,
            )
            stored = reservation.sk
            try:
                placed = await self._backend.put_item(
                    _codec.to_item(reservation), condition="attribute_not_exists(pk)"
                )
            except BaseException:  # the answer was lost: it may have been placed
                self._unreleased.setdefault(name, {})[stored] = token
                raise
            if placed or await self._is_our_reservation(name, stored, token):
                return number, token
        if first + _PUBLISH_ATTEMPTS <= _layout.MAX_VERSION:
            raise ConflictError(f"could not claim a version number for {name!r}; retry")
        raise InvalidArgumentError(
            f"{name!r} has used every version number up to {_layout.MAX_VERSION}"
        )

    async def _is_published(self, name: str, stored: str, sha: str) -> bool:
        """Whether a refused completion had in fact landed: an attempt whose answer
        was lost, retried by botocore, finds its own token already removed."""
        raw = await self._backend.get_item(name, stored)
        item = None if raw is None else _codec.structure_version_item(raw)
        return item is not None and item.is_visible and item.sha256 == sha

    async def _is_our_reservation(self, name: str, stored: str, token: str) -> bool:
        """Whether a refused reservation was our own, placed by an attempt whose answer
        was lost and which botocore then retried."""
        raw = await self._backend.get_item(name, stored)
        return raw is not None and raw.get("publish_token", {}).get("S") == token

    async def _release_reservation(self, name: str, stored: str, token: str) -> None:
        try:
            await asyncio.shield(
                self._backend.delete_item(
                    name, stored, condition="publish_token = :t", values={":t": {"S": token}}
                )
            )
        except Exception:  # the publish already failed; report that, not this
            log.warning("could not release the reservation of %r version %s", name, stored)
            self._unreleased.setdefault(name, {})[stored] = token
        else:
            self._unreleased.get(name, {}).pop(stored, None)

    async def _release_leftovers(self, name: str) -> None:
        """Release reservations an earlier failed publish could not, so no number is skipped."""
        for stored, token in list(self._unreleased.get(name, {}).items()):
            await self._release_reservation(name, stored, token)

    async def _hash_object(self, name: str, stored: str) -> str:
        """sha256 of an object written without our metadata (by some other tool)."""
        got = await self._backend.get_object(self.layout.key(name, stored))
        if got is None:
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return await _sha256(got[0])

    async def delete_artifact_version(self, name: str, version: VersionLike = None) -> None:
        """Soft-delete a version: hidden from get and list, its number never reused.

        Deleting a version that does not exist changes nothing.
        """
        _layout.validate_name(name)
        stored = _layout.encode_version(version)
        await self._backend.update_item(
            name,
            stored,
            update="SET is_deleted = :true",
            condition="attribute_exists(pk)",
            values={":true": {"BOOL": True}},
        )
        if self.cache is not None:
            await self.cache.forget(self._lookup_key("v", name, stored))

    # -- reading content -------------------------------------------------------------

    async def get_content(self, name: str, version: VersionLike = None) -> bytes:
        """The content of a version (LATEST by default), checked against its sha256.

        Without a cache, the item lookup and the download run concurrently:
        one round trip. With a :class:`LocalCache`, a version seen within the
        TTL is read from local disk without any request.
        """
        _layout.validate_name(name)
        stored = _layout.encode_version(version)
        if self.cache is None:
            return await self._get_content_direct(name, stored)
        for _attempt in range(2):
            ref = await self._cached_content(name, stored)
            if ref is None:  # larger than the cache may hold
                return await self._get_content_direct(name, stored)
            try:
                return await _read_file(ref)
            except FileNotFoundError:  # evicted by another process just now
                self.cache.forget_content_path(ref.sha256)
            except _DamagedEntry:
                log.warning("cached content %s is damaged; fetching it again", ref.sha256)
                await self.cache.discard(ref.sha256)
        return await self._get_content_direct(name, stored)

    async def get_alias_content(
        self, name: str, alias: str, routing_key: str | bytes | None = None
    ) -> bytes:
        """Resolve ``alias``, pick a version (sticky for ``routing_key``), return its content.

        Cold, this costs two round trips: the alias, then the version lookup
        and the download together. With a cache, none inside the TTL.
        """
        resolved = await self.resolve_alias(name, alias)
        return await self.get_content(name, resolved.choose_version(routing_key))

    async def download(
        self,
        name: str,
        path: str | os.PathLike[str],
        version: VersionLike = None,
        alias: str | None = None,
        routing_key: str | bytes | None = None,
    ) -> Path:
        """Write a version's content to the file ``path``, streaming; returns the Path.

        Give ``version`` or ``alias`` (with an optional ``routing_key``), not
        both. Memory stays bounded whatever the size. The file appears
        complete and verified, or not at all (it is written beside ``path``
        and renamed into place).
        """
        _layout.validate_name(name)
        if alias is not None and version is not None:
            raise InvalidArgumentError("give version or alias, not both")
        target = Path(path)
        if target.is_dir():
            raise InvalidArgumentError(f"{target} is a directory; give the file path to write")
        if alias is not None:
            version = (await self.resolve_alias(name, alias)).choose_version(routing_key)
        stored = _layout.encode_version(version)
        part = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
        try:
            ref = None if self.cache is None else await self._cached_content(name, stored)
            if ref is not None:
                try:
                    await asyncio.to_thread(shutil.copyfile, ref.path, part)
                    if ref.size is not None and part.stat().st_size != ref.size:
                        raise _DamagedEntry(ref.path)
                except FileNotFoundError:  # evicted just now: go to S3
                    ref = None
                except _DamagedEntry:
                    log.warning("cached content %s is damaged; fetching it again", ref.sha256)
                    await self._require_cache().discard(ref.sha256)
                    ref = None
            if ref is None:
                await self._download_direct(name, stored, part)
            os.replace(part, target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return target

    async def _get_content_direct(self, name: str, stored: str) -> bytes:
        for attempt in range(2):
            body, item, info = await self._fetch_with_item(name, stored)
            assert item.sha256 is not None
            actual = await _sha256(body)
            if actual == item.sha256 or await self._repaired_latest(name, stored, actual, info):
                return body
            if stored != LATEST or attempt:
                raise IntegrityError(name, _layout.decode_version(stored), item.sha256, actual)
            # LATEST may have been put between the two reads: read both again
        raise AssertionError("unreachable")  # pragma: no cover

    async def _repaired_latest(self, name: str, stored: str, actual: str, info: ObjectInfo) -> bool:
        """Whether content that disagrees with LATEST's item is a half-done put, now repaired.

        put_artifact writes the object before the item; when it failed between
        the two, the object (whose own metadata carries the sha256 its bytes
        have) is newer than the item. The item is brought up to date, as the
        put would have done, and the content served.
        """
        if stored != LATEST or info.sha256 != actual:
            return False
        log.info("LATEST of %r is newer than its item (a put was cut short); repairing", name)
        await self._record_latest(name, info)
        return True

    async def _fetch_with_item(
        self, name: str, stored: str
    ) -> tuple[bytes, VersionItem, ObjectInfo]:
        aws = self._backend
        download = asyncio.ensure_future(aws.get_object(self.layout.key(name, stored)))
        try:
            item = await self._visible_item(name, stored)
            got = await download
        except BaseException:
            download.cancel()
            raise
        if got is None:
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return got[0], item, got[1]

    async def _download_direct(self, name: str, stored: str, part: Path) -> None:
        """Stream a version into ``part``, overlapping the lookup; verify the sha256."""
        for attempt in range(2):
            sha, item, info = await self._stream_with_item(name, stored, part)
            if sha == item.sha256 or await self._repaired_latest(name, stored, sha, info):
                return
            part.unlink(missing_ok=True)
            if stored != LATEST or attempt:
                raise IntegrityError(name, _layout.decode_version(stored), str(item.sha256), sha)

    async def _stream_with_item(
        self, name: str, stored: str, part: Path
    ) -> tuple[str, VersionItem, ObjectInfo]:
        aws = self._backend
        download = asyncio.ensure_future(aws.download_to(self.layout.key(name, stored), part))
        try:
            item = await self._visible_item(name, stored)
            got = await download
        except BaseException:
            download.cancel()
            part.unlink(missing_ok=True)
            raise
        if got is None:
            part.unlink(missing_ok=True)
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        if self.cache is not None:
            self.cache.count("downloads")
            self.cache.count("bytes_downloaded", got[1])
        return got[0], item, got[2]

    # -- the cached read path ----------------------------------------------------------

    def _lookup_key(self, kind: str, name: str, which: str) -> tuple[str, ...]:
        return (kind, *self._identity, name, which)

    async def _cached_content(self, name: str, stored: str) -> ContentRef | None:
        """The cached file for a version, downloading it when needed.

        Fresh lookup + known file: no request. Stale lookup: revalidate (one
        GetItem), serving the old answer when AWS is down and stale-if-error
        is on. Never seen: lookup and download together, verified.
        """
        cache = self._require_cache()
        key = self._lookup_key("v", name, stored)
        entry = cache.lookup(key) or await cache.load_lookup(key)
        state = freshness(None if entry is None else entry[0], cache.clock(), cache.ttl)
        if state is Freshness.FRESH and entry is not None:
            cache.count("lookup_hits")
            sha = entry[1][0]
            path = cache.content_path_now(sha) or await cache.content_path(sha)
            if path is not None:
                cache.hit(sha)
                return ContentRef(sha, path, entry[1][1])
            return await cache.single_flight(
                ("sha", sha), lambda: self._fetch_into_cache(name, stored, expected=sha)
            )
        return await cache.single_flight(
            ("version", key), lambda: self._revalidate_and_fetch(name, stored, key, entry)
        )

    async def _revalidate_and_fetch(
        self, name: str, stored: str, key: tuple[str, ...], entry: tuple[float, Any] | None
    ) -> ContentRef | None:
        cache = self._require_cache()
        known_sha: str | None = None if entry is None else entry[1][0]
        known_path = (
            None
            if known_sha is None
            else cache.content_path_now(known_sha) or await cache.content_path(known_sha)
        )
        if known_sha is None or known_path is None:
            # nothing usable locally: look up and download in one round trip
            try:
                return await self._fetch_into_cache(name, stored, expected=None)
            except ArtifactNotFoundError:
                await cache.forget(key)
                raise
        try:
            item = await self._visible_item(name, stored)
        except BackendUnavailableError as err:
            assert entry is not None
            if not may_serve_stale(Freshness.STALE, stale_if_error=cache.stale_if_error):
                raise
            self._serve_stale(f"{name!r} version {_layout.decode_version(stored)}", entry, err)
            cache.count("hits")
            return ContentRef(known_sha, known_path, entry[1][1])
        except ArtifactNotFoundError:
            await cache.forget(key)
            raise
        assert item.sha256 is not None
        cache.count("lookup_refreshes")
        await cache.remember(key, (item.sha256, item.size))
        if item.sha256 == known_sha:
            cache.count("hits")
            return ContentRef(known_sha, known_path, item.size)
        path = await cache.content_path(item.sha256)
        if path is not None:
            cache.count("hits")
            return ContentRef(item.sha256, path, item.size)
        return await self._fetch_into_cache(name, stored, expected=item.sha256)

    async def _fetch_into_cache(
        self, name: str, stored: str, expected: str | None
    ) -> ContentRef | None:
        """Download a version into the cache, once per cache directory.

        Processes sharing the directory take a lease per version: one
        downloads, the others wait and then find the lookup and the content
        it left in the cache (a crashed holder's lease expires).
        """
        cache = self._require_cache()
        key = self._lookup_key("v", name, stored)
        async with cache.download_lease(key):
            # another process may have finished it just before we took the lease
            entry = await cache.reload_lookup(key)
            fresh = entry is not None and (
                freshness(entry[0], cache.clock(), cache.ttl) is Freshness.FRESH
            )
            if entry is not None and fresh and expected in (None, entry[1][0]):
                sha, size = entry[1]
                path = await cache.content_path(sha)
                if path is not None:
                    cache.count("hits")
                    return ContentRef(sha, path, size)
            return await self._download_into_cache(name, stored, expected)

    async def _download_into_cache(
        self, name: str, stored: str, expected: str | None
    ) -> ContentRef | None:
        """Download a version into staging, verify it, publish it into the cache.

        With ``expected`` (the sha256 a fresh lookup gave) only the object is
        fetched; without, the item is looked up at the same time.
        """
        cache = self._require_cache()
        key = self._lookup_key("v", name, stored)
        for attempt in range(2):
            part = cache.new_staging_path()
            if expected is None:
                sha, item, info = await self._stream_with_item(name, stored, part)
                recorded = str(item.sha256)
                if sha != recorded and await self._repaired_latest(name, stored, sha, info):
                    recorded = sha
            else:
                got = await self._backend.download_to(self.layout.key(name, stored), part)
                if got is None:
                    await cache.forget(key)
                    raise ArtifactNotFoundError(name, _layout.decode_version(stored))
                cache.count("downloads")
                cache.count("bytes_downloaded", got[1])
                sha, recorded = got[0], expected
            try:
                cache.count("misses")
                if sha != recorded:
                    cache.count("integrity_failures")
                    if stored == LATEST and not attempt:  # LATEST moved meanwhile: re-read
                        expected = None
                        continue
                    raise IntegrityError(name, _layout.decode_version(stored), recorded, sha)
                size = part.stat().st_size
                await cache.remember(key, (sha, size))
                path = await cache.publish(Staged(part, sha, size))
                return None if path is None else ContentRef(sha, path, size)
            finally:
                part.unlink(missing_ok=True)
        raise AssertionError("unreachable")  # pragma: no cover

    async def resolve_alias(self, name: str, alias: str) -> Alias:
        """The alias as the read path sees it: from the cache within the TTL, and the
        last known one when AWS is down (stale-if-error). Without a cache, ``get_alias``.

        For routing many keys, resolve once and call ``choose_version`` per key.
        """
        if self.cache is None:
            return await self.get_alias(name, alias)
        cache = self.cache
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        key = self._lookup_key("a", name, alias)
        entry = cache.lookup(key) or await cache.load_lookup(key)
        state = freshness(None if entry is None else entry[0], cache.clock(), cache.ttl)
        if state is Freshness.FRESH and entry is not None:
            cache.count("lookup_hits")
            memo = self._alias_memo.get(key)
            if memo is None or memo[0] != entry[0]:  # build the model once per lookup
                memo = (entry[0], self._alias(_codec.converter.structure(entry[1], AliasItem)))
                self._alias_memo[key] = memo
            return memo[1]
        try:  # one request for many concurrent callers; get_alias refreshes the lookup
            return await cache.single_flight(("alias", key), lambda: self.get_alias(name, alias))
        except BackendUnavailableError as err:
            if entry is None or not may_serve_stale(state, stale_if_error=cache.stale_if_error):
                raise
            self._serve_stale(f"alias {alias!r} of {name!r}", entry, err)
            return self._alias(_codec.converter.structure(entry[1], AliasItem))
        except AliasNotFoundError:
            await cache.forget(key)
            raise

    async def _remember_alias(self, record: AliasItem) -> None:
        if self.cache is not None:
            self.cache.count("lookup_refreshes")
            name = _layout.name_from_alias_pk(record.pk)
            await self.cache.remember(
                self._lookup_key("a", name, record.sk), _codec.unstructure(record)
            )

    async def _remember_version(self, record: VersionItem) -> None:
        if self.cache is not None and record.sha256 is not None:
            await self.cache.remember(
                self._lookup_key("v", record.pk, record.sk), (record.sha256, record.size)
            )

    def _serve_stale(self, what: str, entry: tuple[float, Any], err: Exception) -> None:
        cache = self._require_cache()
        cache.count("stale_serves")
        age = cache.clock() - entry[0]
        log.warning("serving %s from the local cache, %.0f s old: %s", what, age, err)

    def _require_cache(self) -> LocalCache:
        assert self.cache is not None, "only called with a cache"
        return self.cache

    async def _read_verified(self, artifact: Artifact) -> bytes:
        """Content of a model read earlier, checked against its own sha256."""
        stored = _layout.encode_version(artifact.version)
        got = await self._backend.get_object(self.layout.key(artifact.name, stored))
        if got is None:
            raise ArtifactNotFoundError(artifact.name, artifact.version)
        actual = await _sha256(got[0])
        if actual != artifact.sha256:
            if artifact.is_latest:
                raise ConflictError(
                    f"LATEST of {artifact.name!r} changed since this Artifact was read; "
                    "read it again with get_artifact_version()"
                )
            raise IntegrityError(artifact.name, artifact.version, artifact.sha256, actual)
        return got[0]

    async def _visible_item(self, name: str, stored: str) -> VersionItem:
        raw = await self._backend.get_item(name, stored)
        item = None if raw is None else _codec.structure_version_item(raw)
        if item is None or not item.is_visible:
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return item

    # -- aliases ---------------------------------------------------------------------

    async def put_alias(
        self,
        name: str,
        alias: str,
        version: VersionLike = None,
        secondary_version: VersionLike = None,
        secondary_version_weight: int | None = None,
    ) -> Alias:
        """Point ``alias`` at ``version`` (LATEST by default), optionally splitting traffic.

        With ``secondary_version``, ``secondary_version_weight`` (an int, 0 <= w
        < 100) percent of traffic goes to it. The versions must exist and
        differ; the check and the write are one DynamoDB transaction, so an
        alias never points at a version deleted meanwhile.
        """
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        primary = _layout.encode_version(version)
        secondary: str | None = None
        weight: int | None = None
        if secondary_version is not None:
            secondary = _layout.encode_version(secondary_version)
            weight = _layout.validate_weight(secondary_version_weight)
            if secondary == primary:
                raise InvalidArgumentError(
                    f"version {_layout.decode_version(primary)!r} and secondary_version "
                    f"{_layout.decode_version(secondary)!r} must differ"
                )
        elif secondary_version_weight is not None:
            raise InvalidArgumentError(
                "secondary_version_weight is only allowed with a secondary_version"
            )
        record = AliasItem(
            pk=_layout.alias_pk(name),
            sk=alias,
            update_at=_utcnow(),
            version=primary,
            secondary_version=secondary,
            secondary_version_weight=weight,
        )
        targets = [primary] if secondary is None else [primary, secondary]
        checks: list[dict[str, Any]] = [
            {
                "ConditionCheck": {
                    "Key": {"pk": {"S": name}, "sk": {"S": stored}},
                    "ConditionExpression": _VISIBLE,
                    "ExpressionAttributeValues": {":false": {"BOOL": False}},
                }
            }
            for stored in targets
        ]
        reasons = await self._backend.transact_write(
            f"put alias {alias!r} of {name!r}",
            [*checks, {"Put": {"Item": _codec.to_item(record)}}],
        )
        for stored, reason in zip(targets, reasons, strict=False):
            if reason == "ConditionalCheckFailed":
                raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        await self._remember_alias(record)
        return self._alias(record)

    async def get_alias(self, name: str, alias: str) -> Alias:
        """The alias; ``AliasNotFoundError`` when it does not exist."""
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        raw = await self._backend.get_item(_layout.alias_pk(name), alias)
        if raw is None:
            raise AliasNotFoundError(name, alias)
        record = _codec.structure_alias_item(raw)
        await self._remember_alias(record)
        return self._alias(record)

    async def list_aliases(self, name: str) -> list[Alias]:
        """Every alias of ``name``, sorted by alias name."""
        _layout.validate_name(name)
        return [
            self._alias(_codec.structure_alias_item(raw))
            async for raw in self._backend.query(_layout.alias_pk(name))
        ]

    async def delete_alias(self, name: str, alias: str) -> None:
        """Delete the alias; deleting a missing alias changes nothing."""
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        await self._backend.delete_item(_layout.alias_pk(name), alias)
        if self.cache is not None:
            await self.cache.forget(self._lookup_key("a", name, alias))

    # -- retention -------------------------------------------------------------------

    async def purge_artifact_versions(
        self,
        name: str,
        keep_last_n: int = 10,
        purge_older_than_secs: float = 90 * 24 * 60 * 60,
    ) -> tuple[datetime, list[Artifact]]:
        """Soft-delete old numbered versions; returns the purge time and what was deleted.

        Kept: LATEST, the newest ``keep_last_n`` numbered versions, versions
        younger than ``purge_older_than_secs``, and every version an alias
        points at (primary or canary).
        """
        _layout.validate_name(name)
        keep, older_than = _retention.validate_retention(keep_last_n, purge_older_than_secs)
        versions, aliases = await asyncio.gather(
            self.list_artifact_versions(name), self.list_aliases(name)
        )
        purge_time = _utcnow()
        doomed = _retention.plan_purge(
            versions, aliases, keep_last_n=keep, purge_older_than_secs=older_than, now=purge_time
        )
        await _bounded_gather(
            (self.delete_artifact_version(name, v.version) for v in doomed), _BULK_CONCURRENCY
        )
        return purge_time, doomed

    async def purge_artifact(self, name: str) -> None:
        """Delete an artifact for good: every object, version item and alias."""
        _layout.validate_name(name)
        aws = self._backend
        # items first: a failure half-way leaves orphan objects, never items without content
        keys = [raw async for raw in aws.query(_layout.alias_pk(name))]
        keys += [raw async for raw in aws.query(name)]
        await aws.batch_delete(keys)
        await aws.delete_prefix(self.layout.artifact_dir(name))

    async def purge_all(self) -> None:
        """Delete every artifact under the prefix and every item in the table."""
        aws = self._backend
        await aws.batch_delete([raw async for raw in aws.scan_keys()])
        await aws.delete_prefix(self.layout.root)

    # -- models ----------------------------------------------------------------------

    def _artifact(self, item: VersionItem) -> Artifact:
        model = _codec.item_to_artifact(item, self.layout)
        bind(model, self)
        return model

    def _alias(self, item: AliasItem) -> Alias:
        model = _codec.item_to_alias(item, self.layout)
        bind(model, self)
        return model


async def _bounded_gather(coros: Iterable[Awaitable[_T]], limit: int) -> list[_T]:
    """``gather`` with at most ``limit`` awaitables in flight."""
    semaphore = asyncio.Semaphore(limit)

    async def run(aw: Awaitable[_T]) -> _T:
        async with semaphore:
            return await aw

    tasks = [asyncio.ensure_future(run(c)) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        # the caller is told the whole call failed: nothing of it may land afterwards
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
