"""What every repository layout shares: the clients, the verified read path, the cache.

:class:`BaseRepository` holds the S3 client (and whatever else a layout needs),
reads content (checked against its sha256, streamed to disk, served from the
:class:`~versioned_async.cache.LocalCache` within its TTL and when AWS is
down) and builds the models. Where a layout keeps its metadata is left to the
subclasses: :class:`~versioned_async.Repository` (a DynamoDB table) and
:class:`~versioned_async.S3OnlyRepository` (S3 object metadata and alias JSON
objects) each supply the version and alias lookups.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import random
import secrets
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TypeVar

import aiohttp
import attrs
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from . import _cache_errors, _codec, _layout
from ._aws.clients import NOT_OPEN, AwsClients, default_config
from ._aws.s3 import ObjectInfo, ObjectStore
from ._codec import AliasItem, VersionItem
from ._freshness import Freshness, freshness, may_serve_stale
from ._layout import LATEST, VersionLike
from ._redact import redact_url
from ._s3_options import S3Options
from .cache import CACHE_FAILURES, DamagedContent, LocalCache, Staged
from .exc import (
    AliasNotFoundError,
    ArtifactNotFoundError,
    BackendError,
    BackendUnavailableError,
    CacheUnavailableError,
    ConflictError,
    DiskFullError,
    FolderNotFoundError,
    IntegrityError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RepositoryClosedError,
    VersionedError,
)
from .models import Alias, Artifact, bind

__all__ = ["BaseRepository"]

log = logging.getLogger("versioned_async")

_T = TypeVar("_T")
_Repo = TypeVar("_Repo", bound="BaseRepository")

#: hashing a large body blocks the event loop; above this, hash in a thread
_HASH_IN_THREAD_BYTES = 1 << 20
#: concurrent requests one bulk operation (listing, purge) keeps in flight
BULK_CONCURRENCY = 16


@attrs.frozen
class ContentRef:
    """Where verified content sits in the cache."""

    sha256: str
    path: str
    size: int | None  # as recorded; a cached file of another size is corrupt
    #: the content itself when it could not be stored (the cache failed): serve this
    body: bytes | None = None


#: content downloaded and verified but not stored (the cache failed) is served from
#: memory up to this size; a larger one is read from S3 again, streaming
_SERVE_UNSTORED_BYTES = 256 << 20


def _is_cache_failure(err: BaseException) -> bool:
    """Whether ``err`` (one of CACHE_FAILURES) is the local cache failing, not a
    network error that aiohttp raises as an OSError."""
    return not isinstance(err, aiohttp.ClientError | VersionedError) or isinstance(
        err, CacheUnavailableError
    )


def _check_folder(folder: Path) -> None:
    """Refuse a download into a folder that does not exist, before any request.

    Not created: a mistyped path would silently grow a folder tree (``cp``,
    ``open()`` and ``boto3``'s ``download_file`` refuse too), and creating it
    would need a mode and an owner this call cannot know.
    """
    if not folder.is_dir():
        raise FolderNotFoundError(str(folder), is_file=folder.exists())


def size_to_record(
    sha256: str, item_size: int | None, known: tuple[float, Any] | None
) -> int | None:
    """The size a version lookup records: the item's, else the one measured earlier.

    Why: `versioned` 1.0 writes no size in its items, and a lookup without a
    size cannot tell a truncated cache file from the content. The size a
    download measured (kept in the lookup ``known``, ``(fetched_at, (sha256,
    size))``) holds as long as the sha256 does. ``None``: not known yet (the
    content must be downloaded, which measures it).
    """
    if item_size is not None:
        return item_size
    if known is not None and known[1][0] == sha256:
        measured: int | None = known[1][1]
        return measured
    return None


def describe_object(name: str, stored: str, sha256: str, info: ObjectInfo) -> VersionItem:
    """The visible version item for an object: its own metadata is the truth."""
    return VersionItem(
        pk=name,
        sk=stored,
        is_deleted=False,
        sha256=sha256,
        update_at=info.last_modified,
        size=info.size,
        content_type=info.content_type,
        # always written, even empty: an item without it was written by `versioned`
        metadata=dict(info.metadata),
    )


async def hash_source(source: bytes | Path) -> tuple[str, int]:
    """sha256 and size of bytes or of a file (read in chunks, in a thread)."""
    if isinstance(source, bytes):
        return await sha256_of(source), len(source)

    def hash_file() -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        with open(source, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    return await asyncio.to_thread(hash_file)


async def sha256_of(content: bytes) -> str:
    if len(content) >= _HASH_IN_THREAD_BYTES:
        return await asyncio.to_thread(lambda: hashlib.sha256(content).hexdigest())
    return hashlib.sha256(content).hexdigest()


def _search_metadata(metadata: object) -> dict[str, str]:
    """The entries to search for: user metadata as put_artifact accepts it."""
    if isinstance(metadata, Mapping) and not isinstance(metadata, dict):
        metadata = dict(metadata)
    return _layout.validate_metadata(metadata)


def holds_already(
    head: ObjectInfo | None,
    sha256: str,
    tags: Mapping[str, str],
    content_type: str | None,
    metadata: Mapping[str, str] | None,
    user_meta: Mapping[str, str],
) -> bool:
    """Whether LATEST's object (``head``) already is what a put asks for, so that the put
    uploads nothing: the same content, and the same content type and metadata where
    given (``metadata`` as passed, ``user_meta`` as validated). Tags are not read back,
    so a put with tags always uploads."""
    return (
        head is not None
        and head.sha256 == sha256
        and not tags
        and (content_type is None or content_type == head.content_type)
        and (metadata is None or user_meta == head.metadata)
    )


def search_arguments(
    name: str | None, metadata: object, include_latest: object, limit: object
) -> dict[str, str]:
    """Check find_artifact_versions' arguments; the metadata entries to match."""
    if name is not None:
        _layout.validate_name(name)
    wanted = _search_metadata(metadata)
    if not isinstance(include_latest, bool):
        raise InvalidArgumentTypeError(
            f"include_latest must be a bool, not {type(include_latest).__name__}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidArgumentError(f"limit must be None or an int of at least 1, got {limit!r}")
    return wanted


def has_metadata(item: VersionItem, wanted: Mapping[str, str]) -> bool:
    """Whether the item's metadata holds every wanted entry (exact match)."""
    have = item.metadata or {}
    return all(have.get(key) == value for key, value in wanted.items())


class BaseRepository:
    """The API both layouts share; use :class:`~versioned_async.Repository` or
    :class:`~versioned_async.S3OnlyRepository`, not this class."""

    #: the AWS services this layout talks to (one client each, created on first use)
    _SERVICES: ClassVar[tuple[str, ...]] = ("s3",)

    def __init__(
        self,
        *,
        aws_region: str | None,
        s3_bucket: str,
        s3_prefix: str,
        suffix: str,
        endpoint_url: str | None,
        session: AioSession | None,
        cache: LocalCache | None,
        max_pool_connections: int,
        client_config: AioConfig | None,
        server_side_encryption: str | None,
        sse_kms_key_id: str | None,
        expected_bucket_owner: str | None,
        layout: type[_layout.Layout],
        table_name: str,
    ) -> None:
        for what, value in (("s3_bucket", s3_bucket), ("s3_prefix", s3_prefix), ("suffix", suffix)):
            if not isinstance(value, str):
                raise InvalidArgumentTypeError(f"{what} must be a str, not {type(value).__name__}")
        if not s3_bucket:
            raise InvalidArgumentError("s3_bucket is required: the bucket that holds the content")
        self.aws_region = aws_region
        self.s3_bucket = s3_bucket
        self.s3_prefix = s3_prefix.strip("/")
        self.suffix = suffix
        self.endpoint_url = endpoint_url
        self.layout = layout(bucket=s3_bucket, prefix=s3_prefix, suffix=suffix)
        self._session = session
        if cache is not None and not isinstance(cache, LocalCache):
            raise InvalidArgumentTypeError(
                f"cache must be a LocalCache, not {type(cache).__name__}"
            )
        self.cache = cache
        self.s3_options = S3Options(server_side_encryption, sse_kms_key_id, expected_bucket_owner)
        self._table_name = table_name
        self._alias_memo: dict[tuple[str, ...], tuple[float, Alias]] = {}
        # cache keys name the repository (and its layout), so one cache directory can
        # serve several
        self._identity = (
            # without its password: the cache database is a file, and the user part
            # does not change which repository this is
            redact_url(endpoint_url) or "aws",
            s3_bucket,
            self.layout.prefix,
            suffix,
            table_name or "s3-only",
        )
        self._client_defaults = default_config(max_pool_connections, endpoint_url)
        self._user_config = client_config
        self._aws_clients: AwsClients | None = None
        self._object_store: ObjectStore | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self: _Repo) -> _Repo:
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
        """Set up the clients, each created on its first use; ``async with repo`` calls
        this for you. Settings AWS would refuse (no region, a bad endpoint) fail here."""
        if self._aws_clients is not None:
            raise RepositoryClosedError("this Repository is already open")
        clients = AwsClients(
            self._session or get_session(),
            self.aws_region,
            self.endpoint_url,
            defaults=self._client_defaults,
            overrides=self._user_config,
            s3_options=self.s3_options,
            services=self._SERVICES,
        )
        self._aws_clients = clients
        self._object_store = ObjectStore(clients, self.s3_bucket)

    async def close(self) -> None:
        """Close the clients that were created, and their connection pools. Safe to call
        twice."""
        clients, self._aws_clients, self._object_store = self._aws_clients, None, None
        if clients is not None:
            await clients.aclose()

    @property
    def is_open(self) -> bool:
        return self._aws_clients is not None

    @property
    def _clients(self) -> AwsClients:
        if self._aws_clients is None:
            raise RepositoryClosedError(NOT_OPEN)
        return self._aws_clients

    @property
    def _objects(self) -> ObjectStore:
        if self._object_store is None:
            raise RepositoryClosedError(NOT_OPEN)
        return self._object_store

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
            if ref is None:  # larger than the cache may hold, or the cache is failing
                return await self._get_content_direct(name, stored)
            if ref.body is not None:  # downloaded, verified, not stored: from memory
                return ref.body
            try:
                # the file stored, its size as recorded (a truncated or replaced file,
                # a symlink are damage), re-hashed with verify_on_read: see LocalCache
                return await self.cache.read_content(ref.sha256, ref.path, ref.size)
            except FileNotFoundError:  # evicted by another process just now
                self.cache.forget_content_path(ref.sha256)
            except DamagedContent:
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
        _check_folder(target.parent)
        if alias is not None:
            version = (await self.resolve_alias(name, alias)).choose_version(routing_key)
        stored = _layout.encode_version(version)
        part = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
        try:
            ref = None if self.cache is None else await self._cached_content(name, stored)
            if ref is not None and ref.body is not None:
                # downloaded and verified, but the cache could not store it (its staged
                # file is gone): write what is in memory, never fetch it a second time
                await asyncio.to_thread(part.write_bytes, ref.body)
            elif ref is not None:
                try:
                    await self._require_cache().copy_content(ref.sha256, ref.path, ref.size, part)
                except FileNotFoundError:  # evicted just now: go to S3
                    ref = None
                except DamagedContent:
                    log.warning("cached content %s is damaged; fetching it again", ref.sha256)
                    await self._require_cache().discard(ref.sha256)
                    ref = None
            if ref is None:
                await self._download_direct(name, stored, part)
            os.replace(part, target)
        except BaseException as err:
            part.unlink(missing_ok=True)
            if (
                isinstance(err, OSError)
                and not isinstance(err, DiskFullError)
                and _cache_errors.is_disk_full(err)
            ):
                raise DiskFullError(
                    err.errno or 0, str(target), "free space there, or download elsewhere"
                ) from err
            raise
        return target

    async def _get_content_direct(self, name: str, stored: str) -> bytes:
        for attempt in range(2):
            body, item, info = await self._fetch_with_item(name, stored)
            assert item.sha256 is not None
            actual = await sha256_of(body)
            if actual == item.sha256 or await self._repaired_latest(name, stored, actual, info):
                return body
            if stored != LATEST or attempt:
                raise IntegrityError(name, _layout.decode_version(stored), item.sha256, actual)
            # LATEST may have been put between the two reads: read both again
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fetch_with_item(
        self, name: str, stored: str
    ) -> tuple[bytes, VersionItem, ObjectInfo]:
        objects = self._objects
        download = asyncio.ensure_future(objects.get_object(self.layout.key(name, stored)))
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
        objects = self._objects
        download = asyncio.ensure_future(objects.download_to(self.layout.key(name, stored), part))
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
        # the cache's eviction reads these keys to keep alias targets: see _eviction
        return (kind, *self._identity, name, which)

    async def _cached_content(self, name: str, stored: str) -> ContentRef | None:
        """The cached file for a version, downloading it when needed; ``None``: read it
        from S3 without the cache (too large for it, or the cache is failing).

        A cache that fails (its database locked or damaged, its disk full) costs a
        download, never the read: it is logged, counted (``cache_errors``) and
        bypassed for a while (:meth:`LocalCache.degrade`).
        """
        cache = self._require_cache()
        if cache.bypassed:
            return None
        try:
            return await self._cached_content_or_fail(name, stored)
        except CACHE_FAILURES as err:
            if not _is_cache_failure(err):
                raise
            cache.degrade(err)
            return None

    async def _cached_content_or_fail(self, name: str, stored: str) -> ContentRef | None:
        """The cached file for a version, downloading it when needed.

        Fresh lookup + known file: no request. Stale lookup: revalidate (one
        GetItem), serving the old answer when AWS is down and stale-if-error
        is on. Never seen: lookup and download together, verified.
        """
        cache = self._require_cache()
        key = self._lookup_key("v", name, stored)
        entry = cache.lookup(key) or await cache.load_lookup(key)
        state = freshness(None if entry is None else entry[0], cache.clock(), cache.ttl)
        # a lookup without a size (written before sizes were recorded) cannot catch a
        # truncated file: it is revalidated, and the content measured by a download
        if state is Freshness.FRESH and entry is not None and entry[1][1] is not None:
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
        size = size_to_record(item.sha256, item.size, entry)
        if size is None:  # `versioned` 1.0's item, content not measured yet: download it
            return await self._fetch_into_cache(name, stored, expected=item.sha256)
        await cache.remember(key, (item.sha256, size))
        if item.sha256 == known_sha:
            cache.count("hits")
            return ContentRef(known_sha, known_path, size)
        path = await cache.content_path(item.sha256)
        if path is not None:
            cache.count("hits")
            return ContentRef(item.sha256, path, size)
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
                path = None if size is None else await cache.content_path(sha)
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
            # every way out (a cut, a cancellation, a full disk) removes the staged file
            try:
                if expected is None:
                    sha, item, info = await self._stream_with_item(name, stored, part)
                    recorded = str(item.sha256)
                    if sha != recorded and await self._repaired_latest(name, stored, sha, info):
                        recorded = sha
                else:
                    got = await self._objects.download_to(self.layout.key(name, stored), part)
                    if got is None:
                        await cache.forget(key)
                        raise ArtifactNotFoundError(name, _layout.decode_version(stored))
                    cache.count("downloads")
                    cache.count("bytes_downloaded", got[1])
                    sha, recorded = got[0], expected
                cache.count("misses")
                if sha != recorded:
                    cache.count("integrity_failures")
                    if stored == LATEST and not attempt:  # LATEST moved meanwhile: re-read
                        expected = None
                        continue
                    raise IntegrityError(name, _layout.decode_version(stored), recorded, sha)
                size = part.stat().st_size
                await cache.remember(key, (sha, size))
                try:
                    path = await cache.publish(Staged(part, sha, size))
                except CACHE_FAILURES as err:
                    if not _is_cache_failure(err):
                        raise
                    # verified but not stored (a full disk, a locked database): serve it
                    cache.degrade(err)
                    if size > _SERVE_UNSTORED_BYTES:
                        return None  # a caller streams it from S3 instead
                    body = await asyncio.to_thread(part.read_bytes)
                    return ContentRef(sha, str(part), size, body)
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
            key = self._lookup_key("v", record.pk, record.sk)
            size = size_to_record(record.sha256, record.size, self.cache.lookup(key))
            if size is None:  # unmeasured (`versioned` 1.0): the next cached read measures it
                await self.cache.forget(key)
            else:
                await self.cache.remember(key, (record.sha256, size))

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
        got = await self._objects.get_object(self.layout.key(artifact.name, stored))
        if got is None:
            raise ArtifactNotFoundError(artifact.name, artifact.version)
        actual = await sha256_of(got[0])
        if actual != artifact.sha256:
            if artifact.is_latest:
                raise ConflictError(
                    f"LATEST of {artifact.name!r} changed since this Artifact was read; "
                    "read it again with get_artifact_version()"
                )
            raise IntegrityError(artifact.name, artifact.version, artifact.sha256, actual)
        return got[0]

    # -- artifacts -------------------------------------------------------------------

    async def list_artifact_names(self) -> list[str]:
        """Names of every artifact with content in the repository, sorted."""
        return sorted(await self._objects.list_folders(self.layout.root))

    async def _hash_object(self, name: str, stored: str) -> str:
        """sha256 of an object written without our metadata (by some other tool)."""
        got = await self._objects.get_object(self.layout.key(name, stored))
        if got is None:
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return await sha256_of(got[0])

    async def _visible_item(self, name: str, stored: str) -> VersionItem:
        """The readable version ``stored`` of ``name``, else ``ArtifactNotFoundError``."""
        raise NotImplementedError

    async def _repaired_latest(self, name: str, stored: str, actual: str, info: ObjectInfo) -> bool:
        """Whether content that disagrees with its lookup was a half-done put, now repaired."""
        return False

    async def _read_alias_record(self, name: str, alias: str) -> AliasItem | None:
        """The alias as stored now (a consistent read, past the cache); ``None``: absent."""
        raise NotImplementedError

    async def get_alias(self, name: str, alias: str) -> Alias:
        """The alias; ``AliasNotFoundError`` when it does not exist."""
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        record = await self._read_alias_record(name, alias)
        if record is None:
            raise AliasNotFoundError(name, alias)
        await self._remember_alias(record)
        return self._alias(record)

    def watch_alias(
        self, name: str, alias: str, *, interval: float = 30.0, jitter: float = 0.2
    ) -> AsyncGenerator[Alias, None]:
        """Follow an alias: yield it now, then again each time it changes.

        It polls every ``interval`` seconds, times a random factor within
        ``1 ± jitter`` (so that many watchers do not poll in step), with a
        consistent read that bypasses the LocalCache (and refreshes it when the
        alias changed): one read per poll (a GetItem; in the S3-only layout, a
        GetObject). A change is a new ``update_at`` or new versions, made by
        anyone (`versioned` 1.0 included). While the alias does not exist
        nothing is yielded. S3/DynamoDB errors are logged and the
        poll is retried; closing the repository ends the watch with
        :class:`~versioned_async.exc.RepositoryClosedError`. Arguments are
        checked when called; stop with ``break`` or ``aclose()``::

            async with contextlib.aclosing(repo.watch_alias("app", "prod")) as changes:
                async for alias in changes:
                    reload(alias)
        """
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        for what, value in (("interval", interval), ("jitter", jitter)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidArgumentTypeError(
                    f"{what} must be a number, not {type(value).__name__}"
                )
        if not (math.isfinite(interval) and interval > 0):
            raise InvalidArgumentError(f"interval must be a number of seconds > 0, got {interval}")
        if not 0 <= jitter < 1:
            raise InvalidArgumentError(f"jitter must be from 0 to less than 1, got {jitter}")
        return self._watch_alias(name, alias, float(interval), float(jitter))

    async def _watch_alias(
        self, name: str, alias: str, interval: float, jitter: float
    ) -> AsyncGenerator[Alias, None]:
        seen: Alias | None = None
        absent = False  # logged that it does not exist
        while True:
            try:  # a closed repository raises RepositoryClosedError here
                record = await self._read_alias_record(name, alias)
            except BackendError as err:
                if not self.is_open:
                    raise RepositoryClosedError(
                        f"the Repository was closed while watching alias {alias!r} of {name!r}"
                    ) from err
                log.warning("watching alias %r of %r: %s; polling on", alias, name, err)
            else:
                if record is None:
                    if not absent:
                        log.info("watching alias %r of %r: it does not exist", alias, name)
                    absent = True
                else:
                    absent = False
                    now = self._alias(record)
                    if now != seen:
                        seen = now
                        await self._remember_alias(record)
                        yield now
            await asyncio.sleep(interval * random.uniform(1 - jitter, 1 + jitter))

    # -- models ----------------------------------------------------------------------

    def _artifact(self, item: VersionItem) -> Artifact:
        model = _codec.item_to_artifact(item, self.layout)
        bind(model, self)
        return model

    def _alias(self, item: AliasItem) -> Alias:
        model = _codec.item_to_alias(item, self.layout)
        bind(model, self)
        return model
