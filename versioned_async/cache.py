"""LocalCache: content by sha256 and lookups with a TTL, on local disk.

Content is keyed by its sha256, so an immutable version is downloaded once per
cache directory, across processes and restarts, and identical content under
two names is stored once. Lookups (alias -> versions, version -> sha256) are
kept for ``ttl`` seconds; after that they are revalidated, and served stale
only when AWS cannot be reached (``stale_if_error``).

Storage is diskcache (process-safe SQLite + files), behind an in-memory layer
so a warm hit is a dict lookup and a file read: no SQLite, no thread hop.
Downloads are staged in ``directory/staging`` and verified before they are
hard-linked into the store, so a reader never sees a partial or unverified
file, and eviction never pulls a file from under a reader (POSIX keeps an
open file readable after it is unlinked).

Eviction is ours, not diskcache's: content that an alias the cache knows
points at is kept (see :mod:`._eviction`), so a service restarting while AWS
is down still finds it; other content goes least recently used first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Hashable,
    Iterator,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import attrs
import diskcache

from . import _eviction
from ._coalesce import Coalescer
from .exc import InvalidArgumentError, InvalidArgumentTypeError

__all__ = ["CacheStats", "LocalCache"]

log = logging.getLogger("versioned_async")

_T = TypeVar("_T")

#: staged files older than this are left over from a crashed process
_STALE_STAGING_SECONDS = 3600.0
#: a download lease lasts this long unless its holder renews it (every third of it)
LEASE_SECONDS = 30.0


@attrs.frozen
class CacheStats:
    """Counters since the LocalCache was created, for a service to log."""

    hits: int
    misses: int
    downloads: int
    bytes_downloaded: int
    lookup_hits: int
    lookup_refreshes: int
    stale_serves: int
    integrity_failures: int


@attrs.frozen
class Staged:
    """A verified download waiting in the staging directory, owned by its creator."""

    path: Path
    sha256: str
    size: int


class _ContentDisk(diskcache.Disk):  # type: ignore[misc]
    """A diskcache Disk that stores a :class:`Staged` file by hard-linking it: no copy."""

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        if not isinstance(value, Staged):
            return super().store(value, read, key=key)
        filename, full_path = self.filename(key, value)
        folder = Path(self._directory)
        for part in Path(filename).parent.parts:  # each level 0700: makedirs sets only the last
            folder = folder / part
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=0o700)
        os.link(value.path, full_path)
        return value.size, diskcache.core.MODE_BINARY, filename, None


class LocalCache:
    """A local, process-safe cache of artifact content and lookups.

    :param directory: where to keep it; created with mode 0700. Processes may
        share one directory.
    :param ttl: seconds a lookup (alias -> versions, version -> sha256) is
        served without asking AWS.
    :param size_limit: bytes of content to keep. Beyond it, content is evicted
        least recently used first, except content that an alias the cache
        knows points at (primary or canary): that is kept, and counts toward
        the size. Should it alone exceed the limit, it is kept anyway and a
        warning logged once.
    :param stale_if_error: serve a lookup older than ``ttl`` (with a warning)
        when AWS cannot be reached, so a service still starts.
    :param clock: wall-clock seconds; lookups record when they were fetched,
        so another process can tell their age.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        ttl: float = 30.0,
        size_limit: int = 10 * 2**30,
        *,
        stale_if_error: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, int | float):
            raise InvalidArgumentTypeError(f"ttl must be seconds (a number), not {ttl!r}")
        if not ttl >= 0:
            raise InvalidArgumentError(f"ttl must be >= 0 seconds, got {ttl}")
        if isinstance(size_limit, bool) or not isinstance(size_limit, int) or size_limit <= 0:
            raise InvalidArgumentError(
                f"size_limit must be a positive int of bytes, got {size_limit!r}"
            )
        self.directory = Path(directory)
        self.ttl = float(ttl)
        self.size_limit = size_limit
        self.stale_if_error = stale_if_error
        self.clock = clock
        self.staging = self.directory / "staging"
        # every level private: diskcache would create its own folders 0777 & ~umask
        for folder in (self.directory, self.staging, self.directory / "content"):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.directory / "lookups").mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(OSError):
            self.directory.chmod(0o700)
        # diskcache keeps the LRU clock (access_time); we evict (cull_limit 0: it never does)
        self._content = diskcache.Cache(
            str(self.directory / "content"),
            size_limit=size_limit,
            eviction_policy="least-recently-used",
            cull_limit=0,
            disk=_ContentDisk,
        )
        self._lookups = diskcache.Cache(
            str(self.directory / "lookups"), size_limit=2**62, eviction_policy="none"
        )
        for db in self.directory.glob("*/cache.db*"):
            with contextlib.suppress(OSError):
                db.chmod(0o600)
        self._memory_lookups: dict[Hashable, tuple[float, Any]] = {}
        self._memory_paths: dict[str, str] = {}
        self._preloaded = False
        # lookups asked or written in one loop turn share one thread trip (a cold
        # start-up asks for all of them at once)
        self._disk_reads: Coalescer[Hashable, Any] = Coalescer(self._read_lookups)
        self._disk_writes: Coalescer[Hashable, None] = Coalescer(self._write_lookups)
        self._unwritten: dict[Hashable, tuple[float, Any] | None] = {}
        self._writer: ThreadPoolExecutor | None = None  # started on the first write
        self._touched: dict[str, float] = {}
        self._inflight: dict[tuple[int, Hashable], asyncio.Future[Any]] = {}
        self._counts_lock = threading.Lock()
        self._counts = dict.fromkeys(attrs.fields_dict(CacheStats), 0)
        self._warned_pinned_over = False
        self._sweep_staging()

    def __repr__(self) -> str:
        return (
            f"LocalCache({str(self.directory)!r}, ttl={self.ttl}, size_limit={self.size_limit}, "
            f"stale_if_error={self.stale_if_error})"
        )

    # -- counters ------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        with self._counts_lock:
            return CacheStats(**self._counts)

    def count(self, counter: str, by: int = 1) -> None:
        with self._counts_lock:
            self._counts[counter] += by

    # -- lookups -------------------------------------------------------------------

    def lookup(self, key: Hashable) -> tuple[float, Any] | None:
        """``(fetched_at, value)`` from memory, or ``None`` when memory has not seen it."""
        return self._memory_lookups.get(key)

    async def load_lookup(self, key: Hashable) -> tuple[float, Any] | None:
        """The lookup from memory, else from disk (another process or an earlier run).

        The first miss of a process loads every stored lookup and content path
        in one thread trip, so a service starting on a warm cache pays one hop,
        not one per artifact.
        """
        found = self._memory_lookups.get(key)
        if found is None and not self._preloaded:
            await self.single_flight("preload", lambda: asyncio.to_thread(self._preload))
            found = self._memory_lookups.get(key)
        if found is None:  # written by another process since the preload, perhaps
            found = await self.reload_lookup(key)
        return found

    def _all_lookups(self) -> Iterator[tuple[Any, Any]]:
        """Every stored lookup, read in one SQL query.

        diskcache has no bulk read; ``iterkeys`` plus a ``get`` each costs a
        query and a transaction per key (130 ms for 300 lookups on a busy
        machine, against 2-10 ms for one query), and it is paid on every
        process start. So this reads diskcache's table the way its own
        ``get`` does, falling back to the public API should that change.
        """
        cache = self._lookups
        try:
            rows = cache._sql(
                "SELECT key, raw, mode, filename, value FROM Cache"
                " WHERE expire_time IS NULL OR expire_time > ?",
                (time.time(),),
            ).fetchall()
            disk = cache._disk
            found = [
                (disk.get(key, raw), disk.fetch(mode, filename, value, False))
                for key, raw, mode, filename, value in rows
            ]
        except (AttributeError, TypeError, ValueError, sqlite3.Error) as err:
            log.debug("bulk read of the lookups failed (%s); reading them one by one", err)
            found = [(k, cache.get(k)) for k in cache.iterkeys()]
        return iter([(k, v) for k, v in found if v is not None])

    async def reload_lookup(self, key: Hashable) -> tuple[float, Any] | None:
        """The lookup as stored on disk now (another process may have written it)."""
        found = await self._disk_reads(key)
        if found is not None:
            known = self._memory_lookups.get(key)
            if known is None or known[0] < found[0]:
                self._memory_lookups[key] = found
        return found

    # -- cross-process download leases -------------------------------------------------

    @contextlib.asynccontextmanager
    async def download_lease(self, key: Hashable) -> AsyncIterator[bool]:
        """Hold the directory-wide lease on downloading ``key``; yields whether it waited.

        Why: processes that share a cache directory (workers of one service)
        would otherwise all download the same content at start-up. The lease
        is a diskcache ``add`` (atomic across processes) with an expiry that
        the holder renews while it works, so a crashed holder (SIGKILL) frees
        it within :data:`LEASE_SECONDS`. Waiters poll with backoff on the event
        loop; no thread blocks.
        """
        lease = ("lease", key)
        token = secrets.token_hex(8)
        waited = False
        pause = 0.01
        while not await asyncio.to_thread(self._lookups.add, lease, token, expire=LEASE_SECONDS):
            waited = True
            await asyncio.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 0.25)
        renewing = asyncio.ensure_future(self._renew_lease(lease, token))
        try:
            yield waited
        finally:
            renewing.cancel()
            await asyncio.shield(asyncio.to_thread(self._end_lease, lease, token))

    async def _renew_lease(self, lease: Hashable, token: str) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            await asyncio.to_thread(self._end_lease, lease, token, renew=True)

    def _end_lease(self, lease: Hashable, token: str, *, renew: bool = False) -> None:
        """Release (or renew) the lease, only if this holder still owns it."""
        with self._lookups.transact():
            if self._lookups.get(lease) != token:
                return
            if renew:
                self._lookups.touch(lease, expire=LEASE_SECONDS)
            else:
                self._lookups.delete(lease)

    async def _read_lookups(self, keys: Sequence[Hashable]) -> dict[Hashable, Any]:
        def read() -> dict[Hashable, Any]:
            found = ((k, self._lookups.get(k)) for k in keys)
            return {k: v for k, v in found if v is not None}

        return await asyncio.to_thread(read)

    async def _write_lookups(self, keys: Sequence[Hashable]) -> dict[Hashable, None]:
        """Write the entries queued for ``keys``, all in one thread trip and transaction."""
        entries = [(k, self._unwritten.pop(k)) for k in keys if k in self._unwritten]

        def write() -> None:
            with self._lookups.transact():
                for key, entry in entries:
                    if entry is None:
                        self._lookups.delete(key)
                    else:
                        self._lookups.set(key, entry)

        # one writer thread: a later write never lands before an earlier one
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="versioned-async-cache")
        await asyncio.get_running_loop().run_in_executor(self._writer, write)
        return {}

    def _preload(self) -> None:
        for key, value in self._all_lookups():
            if isinstance(key, tuple) and key[:1] == ("lease",):
                continue
            if isinstance(key, tuple) and key[:1] == ("path",):
                self._memory_paths.setdefault(key[1], value)
                self._touched.setdefault(key[1], self.clock())  # no LRU write per hit at start
            else:
                self._memory_lookups.setdefault(key, value)
        self._preloaded = True

    async def remember(self, key: Hashable, value: Any) -> None:
        """Record a lookup just fetched from AWS."""
        entry = (self.clock(), value)
        self._memory_lookups[key] = entry
        self._unwritten[key] = entry
        await self._disk_writes(key)

    async def forget(self, key: Hashable) -> None:
        """Drop a lookup AWS says no longer exists."""
        self._memory_lookups.pop(key, None)
        self._unwritten[key] = None
        await self._disk_writes(key)

    # -- content -------------------------------------------------------------------

    def content_path_now(self, sha256: str) -> str | None:
        """The file holding ``sha256`` if this process knows it: no I/O.

        The file may have been evicted since; opening it then fails with
        :class:`FileNotFoundError` and :meth:`content_path` asks the store.
        """
        return self._memory_paths.get(sha256)

    async def content_path(self, sha256: str) -> str | None:
        """The file holding ``sha256`` according to the store, or ``None``."""
        path = await asyncio.to_thread(self._find_content, sha256)
        if path is None:
            self._memory_paths.pop(sha256, None)
        else:
            self._memory_paths[sha256] = path
            self._touched[sha256] = self.clock()  # the store lookup counted as a use
        return path

    def _find_content(self, sha256: str) -> str | None:
        handle = self._content.get(("c", sha256), read=True)
        if handle is None:
            return None
        if isinstance(handle, bytes):  # not ours: never stored that way
            return None
        with handle:
            return str(handle.name)

    def forget_content_path(self, sha256: str) -> None:
        self._memory_paths.pop(sha256, None)

    async def discard(self, sha256: str) -> None:
        """Remove damaged content so that it is downloaded again."""
        self._memory_paths.pop(sha256, None)
        await asyncio.to_thread(self._content.delete, ("c", sha256))

    def hit(self, sha256: str) -> None:
        """Count a hit served from memory; tell the store it was used, at most once a TTL."""
        self.count("hits")
        now = self.clock()
        if now - self._touched.get(sha256, -1e18) >= max(self.ttl, 1.0):
            self._touched[sha256] = now
            self.touch(sha256)

    def new_staging_path(self) -> Path:
        return self.staging / f"{secrets.token_hex(12)}.part"

    async def publish(self, staged: Staged) -> str | None:
        """Add a verified staged file to the store; returns its cached path.

        ``None`` when it is larger than the cache may hold. The staged file
        stays its creator's to read and then delete.
        """
        if staged.size > self.size_limit:
            return None
        path = await asyncio.to_thread(self._publish, staged)
        if path is not None:
            self._memory_paths[staged.sha256] = path
        return path

    def _publish(self, staged: Staged) -> str | None:
        path = self._find_content(staged.sha256)
        if path is None:
            # add, not set: when another process stored it meanwhile, keep its file
            # (a set would delete that file from under the process reading it)
            if self._content.add(("c", staged.sha256), staged, read=True):
                self._evict(keep=staged.sha256)
            path = self._find_content(staged.sha256)
        if path is not None:
            # a hint for the next process's preload; a stale one fails to open and is
            # looked up in the store again
            self._lookups.set(("path", staged.sha256), path)
        return path

    def touch(self, sha256: str) -> None:
        """Mark content as recently used (for LRU eviction) in a thread, not waiting.

        Hits served from memory skip the store, whose LRU bookkeeping would
        otherwise see the hottest content as unused.
        """
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to schedule on
            asyncio.get_running_loop().run_in_executor(None, self._find_content, sha256)

    # -- eviction ------------------------------------------------------------------

    def _evict(self, keep: str) -> None:
        """Bring content under ``size_limit``; what aliases point at, and ``keep``, stay.

        Called after each store (in its thread). Planned and done in one
        transaction on the content store, so processes sharing the directory
        evict one at a time, each from the reads the others recorded; the pins
        come from the lookups on disk, so every process's aliases count. A
        removed file is unlinked: a reader that has it open reads on, one that
        only knew its path fetches it again. Best effort: should the store be
        busy, the content stays over the limit until the next store.
        """
        try:
            if self.content_bytes <= self.size_limit:
                return
            pinned = _eviction.pinned_content(self._pinning_lookups())
            with self._content.transact():
                with contextlib.closing(self._least_recently_used()) as walk:
                    plan = _eviction.plan_eviction(
                        walk, self.content_bytes, pinned, self.size_limit, keep=keep
                    )
                for sha in plan.evict:
                    self._content.delete(("c", sha))
            with self._lookups.transact():  # their path hints would only fail to open
                for sha in plan.evict:
                    self._lookups.delete(("path", sha))
        except (diskcache.Timeout, sqlite3.Error, OSError) as err:
            log.warning("could not evict cached content (%s); trying again at the next store", err)
            return
        for sha in plan.evict:
            self._memory_paths.pop(sha, None)
        if plan.pinned_exceed(self.size_limit) and not self._warned_pinned_over:
            self._warned_pinned_over = True
            log.warning(
                "content that aliases point at takes %d bytes, more than the cache's "
                "size_limit of %d: it is kept anyway; raise size_limit",
                plan.pinned_bytes,
                self.size_limit,
            )

    def _pinning_lookups(self) -> list[tuple[Any, Any]]:
        """The alias and version lookups, the ones pins derive from, in one SQL query.

        Their values are pickled; path hints and leases (text) are most rows
        and are skipped, as :meth:`_all_lookups` reads, with the same fallback.
        """
        cache = self._lookups
        try:
            rows = cache._sql(
                "SELECT key, raw, mode, filename, value FROM Cache WHERE mode = ?",
                (diskcache.core.MODE_PICKLE,),
            ).fetchall()
            disk = cache._disk
            return [
                (disk.get(key, raw), disk.fetch(mode, filename, value, False))
                for key, raw, mode, filename, value in rows
            ]
        except (AttributeError, TypeError, ValueError, sqlite3.Error) as err:
            log.debug("bulk read of the alias lookups failed (%s); reading them all", err)
            return list(self._all_lookups())

    def _least_recently_used(self) -> Generator[_eviction.StoredContent, None, None]:
        """Stored content, least recently used first, read lazily.

        diskcache has no public read of its LRU clock (``access_time``); this
        reads its table as its own cull does, falling back to the public API,
        and to oldest-stored-first order, should that change.
        """
        cache = self._content
        try:
            rows = cache._sql("SELECT key, raw, size FROM Cache ORDER BY access_time, rowid")
            found: Iterator[tuple[Any, int | None]] = (
                (cache._disk.get(key, raw), size) for key, raw, size in rows
            )
        except (AttributeError, TypeError, ValueError, sqlite3.Error) as err:
            log.debug("ordered read of the content store failed (%s); reading it in order", err)
            rows = None
            found = ((key, self._stored_size(key)) for key in cache)
        try:
            for key, size in found:
                if isinstance(key, tuple) and len(key) == 2 and key[0] == "c" and size is not None:
                    yield _eviction.StoredContent(key[1], int(size))
        finally:
            if rows is not None:
                rows.close()

    def _stored_size(self, key: Hashable) -> int | None:
        handle = self._content.get(key, read=True)
        if handle is None or isinstance(handle, bytes):
            return None
        with handle:
            return os.fstat(handle.fileno()).st_size

    # -- single flight -------------------------------------------------------------

    async def single_flight(self, key: Hashable, make: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``make()`` once for concurrent callers with the same ``key`` (per loop).

        A caller that is cancelled does not cancel the shared work.
        """
        loop = asyncio.get_running_loop()
        flight_key = (id(loop), key)
        future = self._inflight.get(flight_key)
        if future is None:
            future = asyncio.ensure_future(make())
            self._inflight[flight_key] = future

            def done(fut: asyncio.Future[Any]) -> None:
                self._inflight.pop(flight_key, None)
                if not fut.cancelled():
                    fut.exception()  # retrieved: every waiter may have gone

            future.add_done_callback(done)
        result: _T = await asyncio.shield(future)
        return result

    # -- housekeeping --------------------------------------------------------------

    def _sweep_staging(self) -> None:
        """Remove downloads a crashed process left half-way."""
        cutoff = time.time() - _STALE_STAGING_SECONDS
        for part in self.staging.glob("*.part"):
            with contextlib.suppress(OSError):
                if part.stat().st_mtime < cutoff:
                    part.unlink()

    def clear(self) -> None:
        """Drop every cached lookup and all content."""
        self._memory_lookups.clear()
        self._memory_paths.clear()
        self._content.clear()
        self._lookups.clear()

    @property
    def content_bytes(self) -> int:
        """Bytes of cached content (what ``size_limit`` bounds)."""
        return int(self._content.reset("size"))

    @property
    def content_count(self) -> int:
        """How many distinct contents (by sha256) are cached."""
        return len(self._content)

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=True)  # lookups written before close are on disk
        self._content.close()
        self._lookups.close()
