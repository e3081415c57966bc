"""The cached read path: the cache's policy over a disk store and a version source.

As hishel's ``AsyncCacheTransport(transport, storage, controller)``: the
:class:`CachedContentReader` holds the :class:`~.local_cache.Store` (disk and
memory), the :class:`~.reader.DirectReader` over the repository's
:class:`~.reader.VersionSource` (S3, and DynamoDB), and decides:

- **freshness**: a lookup younger than the TTL is served with no request
  (:mod:`versioned_async._policy.freshness`); an older one is revalidated;
- **stale-if-error**: when AWS cannot be reached, the last known lookup is
  served (with a warning and a :class:`~.events.StaleServed` event);
- **single flight**: concurrent readers of one version make one request, and
  processes sharing the directory one download (a lease, :mod:`.leases`);
- **verification**: every download goes through the one sha256 check of
  :meth:`.reader.DirectReader.verified` before it is published;
- **degrading**: a cache that fails (locked, damaged, full) costs a download,
  never the read (:meth:`.database.Database.degrade`).

The path flows down: façade -> this reader -> store (disk) | source (S3);
nothing here calls back into the repository.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import attrs

from .. import _codec, _layout, _staging
from .._codec import AliasItem, VersionItem
from .._policy.freshness import Freshness, freshness, may_serve_stale
from .._telemetry import CacheOutcome, report_outcome
from ..exc import (
    AliasNotFoundError,
    ArtifactNotFoundError,
    BackendUnavailableError,
    CacheUnavailableError,
    VersionedError,
)
from ..models import Alias, Artifact
from .content import DamagedContent, Staged
from .database import CACHE_FAILURES
from .events import CacheHit, LookupHit, LookupRefreshed, StaleServed
from .keys import AliasKey, Entry, RepositoryId, VersionKey
from .local_cache import LocalCache, Store
from .reader import ContentReader, DirectReader, VersionSource, write_file

__all__ = ["CachedContentReader", "content_reader", "size_to_record"]

log = logging.getLogger("versioned_async")

#: content downloaded and verified but not stored (the cache failed) is served from
#: memory up to this size; a larger one is read from S3 again, streaming
_SERVE_UNSTORED_BYTES = 256 << 20


@attrs.frozen
class ContentRef:
    """Where verified content sits in the cache."""

    sha256: str
    path: str
    size: int | None  # as recorded; a cached file of another size is corrupt
    #: the content itself when it could not be stored (the cache failed): serve this
    body: bytes | None = None
    #: how the cache served it, reported by each caller (single flight shares the ref)
    outcome: CacheOutcome = CacheOutcome.HIT


def size_to_record(sha256: str, item_size: int | None, known: Entry | None) -> int | None:
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


def _is_cache_failure(err: BaseException) -> bool:
    """Whether ``err`` (one of CACHE_FAILURES) is the local cache failing, not a
    network error that aiohttp raises as an OSError."""
    return not isinstance(err, aiohttp.ClientError | VersionedError) or isinstance(
        err, CacheUnavailableError
    )


class CachedContentReader:
    """Reads content and resolves aliases through a :class:`~.local_cache.LocalCache`.

    ``repository`` names the repository in the cache's keys; ``direct`` reads
    from its source when the cache cannot serve (too large, failing).
    """

    def __init__(
        self,
        store: Store,
        direct: DirectReader,
        source: VersionSource,
        repository: RepositoryId,
        alias_model: Callable[[AliasItem], Alias],
    ) -> None:
        self._store = store
        self._lookups = store.lookups
        self._content = store.content
        self._db = store.database
        self._settings = store.settings
        self._emit = store.events.emit
        self._direct = direct
        self._source = source
        self._repository = repository
        self._alias_model = alias_model
        #: each alias lookup's item and model, made once per lookup (by its fetched_at)
        self._alias_items: dict[AliasKey, tuple[float, AliasItem]] = {}
        self._alias_models: dict[AliasKey, tuple[float, Alias]] = {}

    # -- content -----------------------------------------------------------------------

    async def get_content(self, name: str, stored: str) -> bytes:
        """The content of a version: a version seen within the TTL is read from local
        disk without any request; otherwise looked up, downloaded and stored."""
        content = self._content
        for _attempt in range(2):
            ref = await self._cached_content(name, stored)
            report_outcome(CacheOutcome.MISS if ref is None else ref.outcome)
            if ref is None:  # larger than the cache may hold, or the cache is failing
                return await self._direct.get_content(name, stored)
            if ref.body is not None:  # downloaded, verified, not stored: from memory
                return ref.body
            try:
                # the file stored, its size as recorded (a truncated or replaced file,
                # a symlink are damage), re-hashed with verify_on_read: see ContentStore
                return await content.read(ref.sha256, ref.path, ref.size)
            except FileNotFoundError:  # evicted by another process just now
                content.forget_path(ref.sha256)
            except DamagedContent:
                log.warning("cached content %s is damaged; fetching it again", ref.sha256)
                await content.discard(ref.sha256)
        report_outcome(CacheOutcome.MISS)
        return await self._direct.get_content(name, stored)

    async def download(self, name: str, stored: str, target: Path) -> None:
        await write_file(target, lambda part: self._fill(name, stored, part))

    async def read_artifact(self, artifact: Artifact) -> bytes:
        return await self._direct.read_artifact(artifact)

    async def _fill(self, name: str, stored: str, part: Path) -> None:
        ref = await self._cached_content(name, stored)
        report_outcome(CacheOutcome.MISS if ref is None else ref.outcome)
        if ref is not None and ref.body is not None:
            # downloaded and verified, but the cache could not store it (its staged
            # file is gone): write what is in memory, never fetch it a second time
            await asyncio.to_thread(part.write_bytes, ref.body)
            return
        if ref is not None:
            try:
                await self._content.copy(ref.sha256, ref.path, ref.size, part)
                return
            except FileNotFoundError:  # evicted just now: go to S3
                pass
            except DamagedContent:
                log.warning("cached content %s is damaged; fetching it again", ref.sha256)
                await self._content.discard(ref.sha256)
        report_outcome(CacheOutcome.MISS)
        await self._direct.stream_verified(name, stored, part)

    async def _cached_content(self, name: str, stored: str) -> ContentRef | None:
        """The cached file for a version, downloading it when needed; ``None``: read it
        from S3 without the cache (too large for it, or the cache is failing).

        Fresh lookup + known file: no request. Stale lookup: revalidate (one
        GetItem), serving the old answer when AWS is down and stale-if-error
        is on. Never seen: lookup and download together, verified.

        A cache that fails (its database locked or damaged, its disk full) costs a
        download, never the read: it is logged, counted (``cache_errors``) and
        bypassed for a while (:meth:`.database.Database.degrade`).
        """
        if self._db.bypassed:
            return None
        try:
            key = VersionKey(self._repository, name, stored)
            entry = self._lookups.get(key) or await self._lookups.load(key)
            settings = self._settings
            state = freshness(None if entry is None else entry[0], settings.clock(), settings.ttl)
            # a lookup without a size (written before sizes were recorded) cannot catch a
            # truncated file: it is revalidated, and the content measured by a download
            if state is Freshness.FRESH and entry is not None and entry[1][1] is not None:
                self._emit(LookupHit())
                sha = entry[1][0]
                path = self._content.path_now(sha) or await self._content.path(sha)
                if path is not None:
                    self._emit(CacheHit(sha))
                    self._content.hit(sha)
                    return ContentRef(sha, path, entry[1][1])
                return await self._store.flights.run(
                    ("sha", sha), partial(self._fetch_into_cache, key, sha)
                )
            return await self._store.flights.run(
                ("version", key), partial(self._revalidate_and_fetch, key, entry)
            )
        except CACHE_FAILURES as err:
            if not _is_cache_failure(err):
                raise
            self._db.degrade(err)
            return None

    async def _revalidate_and_fetch(
        self, key: VersionKey, entry: Entry | None
    ) -> ContentRef | None:
        content = self._content
        known_sha: str | None = None if entry is None else entry[1][0]
        known_path = (
            None
            if known_sha is None
            else content.path_now(known_sha) or await content.path(known_sha)
        )
        if known_sha is None or known_path is None:
            # nothing usable locally: look up and download in one round trip
            return await self._fetch_into_cache(key, expected=None)
        assert entry is not None
        try:
            item = await self._source.version_item(key.name, key.version)
        except BackendUnavailableError as err:
            if not may_serve_stale(Freshness.STALE, stale_if_error=self._settings.stale_if_error):
                raise
            self._serve_stale(
                f"{key.name!r} version {_layout.decode_version(key.version)}", entry, err
            )
            self._emit(CacheHit(known_sha))
            return ContentRef(known_sha, known_path, entry[1][1], outcome=CacheOutcome.STALE)
        except ArtifactNotFoundError:
            await self._lookups.forget(key)
            raise
        assert item.sha256 is not None
        self._emit(LookupRefreshed())
        size = size_to_record(item.sha256, item.size, entry)
        if size is None:  # `versioned` 1.0's item, content not measured yet: download it
            return await self._fetch_into_cache(key, expected=item.sha256)
        await self._lookups.remember(key, (item.sha256, size))
        if item.sha256 == known_sha:
            self._emit(CacheHit(known_sha))
            return ContentRef(known_sha, known_path, size, outcome=CacheOutcome.REVALIDATED)
        path = await content.path(item.sha256)
        if path is not None:
            self._emit(CacheHit(item.sha256))
            return ContentRef(item.sha256, path, size, outcome=CacheOutcome.REVALIDATED)
        return await self._fetch_into_cache(key, expected=item.sha256)

    async def _fetch_into_cache(self, key: VersionKey, expected: str | None) -> ContentRef | None:
        """Download a version into the cache, once per cache directory.

        Processes sharing the directory take a lease per version: one
        downloads, the others wait and then find the lookup and the content
        it left in the cache (a crashed holder's lease expires).
        """
        store = self._store
        async with store.leases.download_lease(key):
            # another process may have finished it just before we took the lease
            entry = await self._lookups.reload(key)
            fresh = entry is not None and (
                freshness(entry[0], self._settings.clock(), self._settings.ttl) is Freshness.FRESH
            )
            if entry is not None and fresh and expected in (None, entry[1][0]):
                sha, size = entry[1]
                path = None if size is None else await self._content.path(sha)
                if path is not None:
                    self._emit(CacheHit(sha))
                    return ContentRef(sha, path, size)
            # download into staging, verify, publish into the cache: with ``expected``
            # (the sha256 a fresh lookup gave) only the object is fetched; without, the
            # item is looked up at the same time. A version found missing is forgotten
            part = self._content.new_staging_path()
            fill = partial(self._direct.fill, key.name, key.version, part)
            # every way out (a cut, a cancellation, a full disk) removes the staged file;
            # while it is written it is claimed, so a crash's leftover is told apart
            with _staging.claimed(part):
                try:
                    try:
                        got = await self._direct.verified(key.name, key.version, fill, expected)
                    except ArtifactNotFoundError:
                        await self._lookups.forget(key)
                        raise
                    sha = got.sha256
                    size = part.stat().st_size
                    await self._lookups.remember(key, (sha, size))
                    try:
                        path = await self._content.publish(Staged(part, sha, size))
                    except CACHE_FAILURES as err:
                        if not _is_cache_failure(err):
                            raise
                        # verified but not stored (a full disk, a locked database): serve it
                        self._db.degrade(err)
                        if size > _SERVE_UNSTORED_BYTES:
                            return None  # a caller streams it from S3 instead
                        body = await asyncio.to_thread(part.read_bytes)
                        return ContentRef(sha, str(part), size, body, CacheOutcome.MISS)
                    miss = CacheOutcome.MISS
                    return None if path is None else ContentRef(sha, path, size, outcome=miss)
                finally:
                    part.unlink(missing_ok=True)

    # -- aliases -----------------------------------------------------------------------

    async def resolve_alias(self, name: str, alias: str) -> Alias:
        """The alias: from the cache within the TTL, and the last known one when AWS
        is down (stale-if-error). Its model is built once per lookup."""
        key = AliasKey(self._repository, name, alias)
        fetched_at, item = await self._alias_entry(key)
        model = self._alias_models.get(key)
        if model is None or model[0] != fetched_at:
            model = (fetched_at, self._alias_model(item))
            self._alias_models[key] = model
        return model[1]

    async def alias_item(self, name: str, alias: str) -> AliasItem:
        """:meth:`resolve_alias`'s answer as stored, for routing: no model is built."""
        return (await self._alias_entry(AliasKey(self._repository, name, alias)))[1]

    async def _alias_entry(self, key: AliasKey) -> tuple[float, AliasItem]:
        """``(fetched_at, item)``: fresh from the lookups, else from the source (one
        request for many concurrent callers), else stale when AWS is down."""
        lookups = self._lookups
        entry = lookups.get(key) or await lookups.load(key)
        settings = self._settings
        state = freshness(None if entry is None else entry[0], settings.clock(), settings.ttl)
        if state is Freshness.FRESH and entry is not None:
            self._emit(LookupHit())
            report_outcome(CacheOutcome.HIT)
            item = self._alias_items.get(key)
            if item is None or item[0] != entry[0]:  # structured once per lookup
                item = (entry[0], _structure_alias(entry[1]))
                self._alias_items[key] = item
            return item
        try:
            fetched = await self._store.flights.run(("alias", key), partial(self._fetch_alias, key))
        except BackendUnavailableError as err:
            if entry is None or not may_serve_stale(state, stale_if_error=settings.stale_if_error):
                raise
            self._serve_stale(f"alias {key.alias!r} of {key.name!r}", entry, err)
            report_outcome(CacheOutcome.STALE)
            return entry[0], _structure_alias(entry[1])
        except AliasNotFoundError:
            await lookups.forget(key)
            raise
        report_outcome(CacheOutcome.MISS if entry is None else CacheOutcome.REVALIDATED)
        return fetched

    async def _fetch_alias(self, key: AliasKey) -> tuple[float, AliasItem]:
        record = await self._source.alias_item(key.name, key.alias)
        if record is None:
            raise AliasNotFoundError(key.name, key.alias)
        value = _codec.unstructure(record)
        fetched_at = await self._lookups.remember(key, value)
        self._emit(LookupRefreshed())
        self._alias_items[key] = (fetched_at, record)
        return fetched_at, record

    # -- what the repository learnt --------------------------------------------------

    async def remember_alias(self, record: AliasItem) -> None:
        key = AliasKey(self._repository, _layout.name_from_alias_pk(record.pk), record.sk)
        self._emit(LookupRefreshed())
        await self._lookups.remember(key, _codec.unstructure(record))

    async def remember_version(self, record: VersionItem) -> None:
        if record.sha256 is None:
            return
        key = VersionKey(self._repository, record.pk, record.sk)
        size = size_to_record(record.sha256, record.size, self._lookups.get(key))
        if size is None:  # unmeasured (`versioned` 1.0): the next cached read measures it
            await self._lookups.forget(key)
        else:
            await self._lookups.remember(key, (record.sha256, size))

    async def forget_alias(self, name: str, alias: str) -> None:
        await self._lookups.forget(AliasKey(self._repository, name, alias))

    async def forget_version(self, name: str, stored: str) -> None:
        await self._lookups.forget(VersionKey(self._repository, name, stored))

    def _serve_stale(self, what: str, entry: Entry, err: Exception) -> None:
        age = self._settings.clock() - entry[0]
        self._emit(StaleServed(what, age))
        log.warning("serving %s from the local cache, %.0f s old: %s", what, age, err)


def _structure_alias(value: Any) -> AliasItem:
    return _codec.converter.structure(value, AliasItem)


def content_reader(
    cache: LocalCache | None,
    source: VersionSource,
    repository: RepositoryId,
    alias_model: Callable[[AliasItem], Alias],
) -> ContentReader:
    """The reader a repository reads through: cached over ``cache``, else direct."""
    if cache is None:
        return DirectReader(source, alias_model)
    store = cache._store
    direct = DirectReader(source, alias_model, store.events.emit)
    return CachedContentReader(store, direct, source, repository, alias_model)
