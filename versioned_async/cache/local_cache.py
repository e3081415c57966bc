"""LocalCache: content by sha256 and lookups with a TTL, on local disk.

Content is keyed by its sha256, so an immutable version is downloaded once per
cache directory, across processes and restarts, and identical content under
two names is stored once. Lookups (alias -> versions, version -> sha256) are
kept for ``ttl`` seconds; after that they are revalidated, and served stale
only when AWS cannot be reached (``stale_if_error``).

:class:`LocalCache` is what a user makes, passes to a repository, asks for
:meth:`~LocalCache.stats` and closes. What it is made of (:class:`Store`) is
internal: the diskcache stores and their failures (:mod:`.database`), the
lookups (:mod:`.lookups`), the content files (:mod:`.content`, evicted by
:mod:`.eviction`), the download leases (:mod:`.leases`) and the events
(:mod:`.events`). The read policy over them is the repository's
:class:`~.cached_reader.CachedContentReader`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from .. import _telemetry
from .._coalesce import SingleFlight
from .content import ContentStore
from .database import Database
from .directory import secure_directory
from .events import CacheStats, Events, Subscriber
from .leases import Leases
from .lookups import Lookups
from .settings import CacheSettings, Setting

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

__all__ = ["LocalCache", "Store"]


@attrs.frozen
class Store:
    """What one :class:`LocalCache` is made of: the parts a cached reader reads and
    writes through, and the settings its policy needs."""

    database: Database
    lookups: Lookups
    content: ContentStore
    leases: Leases
    #: concurrent work on one key shared (one download for 50 readers)
    flights: SingleFlight
    events: Events
    #: the settings the read policy reads (ttl, stale_if_error, clock) at each use
    settings: CacheSettings


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
    :param verify_on_read: re-hash cached content on every read and, should it
        not match its sha256, discard it and download it again. Off by default:
        every file is already checked against the fingerprint (inode, size,
        mtime) taken when it was stored, which catches a file replaced or
        written to, for one ``fstat``; re-hashing also catches bytes changed
        with the inode, size and mtime kept (a disk error, or someone who can
        write as this user), at the cost measured by
        ``python -m benchmarks --only verify-on-read``.
    :param meter_provider: where the cache's OpenTelemetry metrics go (hits,
        misses, stale serves, evictions, bytes downloaded, integrity failures;
        see ``docs/opentelemetry.md``); by default the global provider, once the
        application has set one.

    The directory must be this user's alone, as OpenSSH's StrictModes asks of
    ``~/.ssh``: a folder in it that another user owns, or that is a symbolic
    link, raises :class:`~versioned_async.exc.CacheDirectoryError`; a folder
    this user owns but others may write in is made private (``chmod go-rwx``)
    with a warning.

    Close it with :meth:`close`, or use it as ``async with LocalCache(...) as
    cache:``, which closes it on the way out.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        ttl: float = 30.0,
        size_limit: int = 10 * 2**30,
        *,
        stale_if_error: bool = True,
        clock: Callable[[], float] = time.time,
        verify_on_read: bool = False,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        #: what the cache was made with or set to since; its parts read it when they use it
        self._settings = CacheSettings(
            ttl=ttl,
            size_limit=size_limit,
            stale_if_error=stale_if_error,
            clock=clock,
            verify_on_read=verify_on_read,
        )
        settings = self._settings
        # created private, or checked to be only ours, before anything is read from it
        # and every later open (diskcache's connection per thread, content files) uses
        # the resolved path that was checked, not one a symlink could re-point
        self.directory = secure_directory(Path(directory), ("staging", "content", "lookups"))
        events = Events()
        # its events on OpenTelemetry counters: a no-op unless the metrics API is loaded
        events.subscribe(_telemetry.cache_metrics(meter_provider))
        flights = SingleFlight()
        database = Database(self.directory, settings, events)
        content = ContentStore(database, self.directory / "staging", settings, events)
        self._store = Store(
            database=database,
            lookups=Lookups(database, settings, flights, content.adopt_hint),
            content=content,
            leases=Leases(database, events),
            flights=flights,
            events=events,
            settings=settings,
        )
        # the lookups' one start-up query, on this thread's open connection: see lookups
        self._store.lookups.start_preload()

    # -- its settings: each one may be changed later, checked as the constructor checks it
    ttl = Setting[float]("Seconds a lookup is served without asking AWS.")
    size_limit = Setting[int](
        "Bytes of content to keep; a lower limit applies at the next download."
    )
    stale_if_error = Setting[bool](
        "Whether a lookup older than ``ttl`` is served when AWS cannot be reached."
    )
    clock = Setting[Callable[[], float]]("The wall clock lookups are dated by.")
    verify_on_read = Setting[bool]("Whether cached content is re-hashed on every read.")

    def __repr__(self) -> str:
        return (
            f"LocalCache({str(self.directory)!r}, ttl={self.ttl}, size_limit={self.size_limit}, "
            f"stale_if_error={self.stale_if_error})"
        )

    # -- what a service asks of it -------------------------------------------------------

    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        return self._store.events.stats()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every cache event from now on (a
        :mod:`versioned_async.cache.events` class: ``CacheHit``, ``Downloaded``,
        ``StaleServed``, ...); returns a function that unsubscribes.

        For telemetry: each :class:`CacheStats` counter is the count of one event
        type. The callback runs synchronously in the thread that emitted the event
        (the event loop's, or a cache worker thread), so it must be quick and
        thread-safe; an exception it raises is logged, never raised into a read.
        """
        return self._store.events.subscribe(callback)

    @property
    def content_bytes(self) -> int:
        """Bytes of cached content (what ``size_limit`` bounds)."""
        return self._store.database.content_size()

    @property
    def content_count(self) -> int:
        """How many distinct contents (by sha256) are cached."""
        return self._store.database.content_count()

    def clear(self) -> None:
        """Drop every cached lookup and all content.

        :raises CacheUnavailableError: the cache's database is locked or failing.
        """
        store = self._store
        store.lookups.clear_memory()
        store.content.forget_paths()
        with store.database.unavailable_on_failure("clear the cache"):
            store.database.content.clear()
            store.database.lookups.clear()

    def close(self) -> None:
        """Write the lookups still queued, and close the cache's database connections."""
        self._store.lookups.close()
        self._store.database.close()

    async def __aenter__(self) -> LocalCache:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self._store.lookups.close)  # queued writes, off the loop
        self._store.database.close()
