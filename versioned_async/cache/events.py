"""What the cache did, as typed events; :class:`CacheStats` is their tally.

Every counter of :class:`CacheStats` is the count of one event type (and
``bytes_downloaded`` the sum of :attr:`Downloaded.size`). A service that wants
more than the totals (a metric per event, a log line per stale serve)
subscribes with :meth:`LocalCache.subscribe <versioned_async.LocalCache.subscribe>`.

Events are emitted where they happen: on the event loop, or in one of the
cache's worker threads (a damaged file found while a hit is marked used, a
lease taken over). A subscriber is called synchronously in that thread, so it
must be quick and thread-safe; an exception it raises is logged and dropped,
never raised into the read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeAlias

import attrs

log = logging.getLogger("versioned_async")


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
    #: cached files found changed (replaced, a symlink, written to, or failing
    #: ``verify_on_read``), discarded and downloaded again
    damaged_content: int = 0
    #: download leases taken over from a holder that was killed (a dead pid on this machine)
    lease_takeovers: int = 0
    #: times the cache itself failed (its database locked or damaged, its disk full)
    #: and a read went to S3 (or was served from memory) instead; each is logged
    cache_errors: int = 0
    #: content files removed to bring the cache under its ``size_limit``
    evictions: int = 0


# -- the events: each counts toward one counter (see COUNTERS) ----------------------------


@attrs.frozen
class CacheHit:
    """Content was served from the cache: a stored file, no download."""

    sha256: str


@attrs.frozen
class LookupHit:
    """A lookup (alias -> versions, version -> sha256) was served within its TTL: no
    request was made."""


@attrs.frozen
class CacheMiss:
    """Content was downloaded into the cache: one per download, so a LATEST that moved
    while it was downloaded counts twice."""

    #: what the download hashed to
    sha256: str


@attrs.frozen
class LookupRefreshed:
    """A lookup was fetched from AWS and recorded."""


@attrs.frozen
class Downloaded:
    """An object was streamed from S3 to a file: into the cache, or ``download``'s.

    ``bytes_downloaded`` is the sum of their sizes.
    """

    size: int


@attrs.frozen
class StaleServed:
    """AWS could not be reached and a lookup older than the TTL was served instead."""

    #: what was served (``"alias 'prod' of 'app'"``)
    what: str
    #: seconds since it was fetched
    age: float


@attrs.frozen
class ContentDamaged:
    """A cached file was not the content stored (replaced, written to, a symlink, or
    failing ``verify_on_read``): it was discarded, to be downloaded again."""

    sha256: str


@attrs.frozen
class IntegrityFailed:
    """Content read from S3 did not hash to the sha256 its version records."""

    name: str
    version: str
    expected: str
    actual: str


@attrs.frozen
class LeaseTakenOver:
    """A download lease was taken from a process that died holding it."""

    #: the dead holder, as its lease named it
    holder: str


@attrs.frozen
class CacheError:
    """The cache itself failed (locked, damaged, full) and reads went around it."""

    #: the kind of failure: ``"locked by another process"``, ``"damaged"``, ...
    fault: str


@attrs.frozen
class Evicted:
    """Content was removed to bring the cache under its ``size_limit``."""

    sha256: str


CacheEvent: TypeAlias = (
    CacheHit
    | CacheMiss
    | Downloaded
    | LookupHit
    | LookupRefreshed
    | StaleServed
    | IntegrityFailed
    | ContentDamaged
    | LeaseTakenOver
    | CacheError
    | Evicted
)
Subscriber: TypeAlias = Callable[[CacheEvent], object]

#: the CacheStats counter each event type counts toward
COUNTERS: dict[type[CacheEvent], str] = {
    CacheHit: "hits",
    CacheMiss: "misses",
    Downloaded: "downloads",
    LookupHit: "lookup_hits",
    LookupRefreshed: "lookup_refreshes",
    StaleServed: "stale_serves",
    IntegrityFailed: "integrity_failures",
    ContentDamaged: "damaged_content",
    LeaseTakenOver: "lease_takeovers",
    CacheError: "cache_errors",
    Evicted: "evictions",
}


class Events:
    """Counts every event (the :class:`CacheStats`), then passes it to the subscribers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(attrs.fields_dict(CacheStats), 0)
        #: replaced, never changed in place: emit reads it without the lock
        self._subscribers: tuple[Subscriber, ...] = ()

    def emit(self, event: CacheEvent) -> None:
        with self._lock:
            self._counts[COUNTERS[type(event)]] += 1
            if type(event) is Downloaded:
                self._counts["bytes_downloaded"] += event.size
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("a cache event subscriber failed on %r", event)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(event)`` for every event from now on; returns the unsubscribe."""
        with self._lock:
            self._subscribers = (*self._subscribers, subscriber)

        def unsubscribe() -> None:
            with self._lock:
                kept = list(self._subscribers)
                if subscriber in kept:
                    kept.remove(subscriber)
                self._subscribers = tuple(kept)

        return unsubscribe

    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        with self._lock:
            return CacheStats(**self._counts)
