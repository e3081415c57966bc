"""The local cache: :class:`LocalCache`, its :class:`CacheStats`, and the events
behind them (for :meth:`LocalCache.subscribe`).

Content is kept by sha256 and lookups with a TTL, on local disk; a repository
given a cache reads through it (:mod:`.cached_reader`). The modules:

- :mod:`.local_cache`: the :class:`LocalCache` users make, and what it is made of;
- :mod:`.database`: the diskcache stores, a damaged one rebuilt, a failing one
  bypassed for :data:`BYPASS_SECONDS`;
- :mod:`.lookups`, :mod:`.content`, :mod:`.eviction`, :mod:`.leases`: lookups with
  a TTL, content files (checked opens, publishing), eviction, cross-process
  download leases;
- :mod:`.keys`, :mod:`.events`: what each row is about, what the cache did;
- :mod:`.directory`: the directory must be this user's alone;
- :mod:`.reader`, :mod:`.cached_reader`: the read path (a version source, the
  one sha256 check, the cache's policy).
"""

from __future__ import annotations

from .database import BYPASS_SECONDS, CONTENTION_SECONDS, SQLITE_TIMEOUT
from .events import (
    CacheError,
    CacheEvent,
    CacheHit,
    CacheMiss,
    CacheStats,
    ContentDamaged,
    Downloaded,
    Evicted,
    IntegrityFailed,
    LeaseTakenOver,
    LookupHit,
    LookupRefreshed,
    StaleServed,
)
from .local_cache import LocalCache

__all__ = [
    "BYPASS_SECONDS",
    "CONTENTION_SECONDS",
    "SQLITE_TIMEOUT",
    "CacheError",
    "CacheEvent",
    "CacheHit",
    "CacheMiss",
    "CacheStats",
    "ContentDamaged",
    "Downloaded",
    "Evicted",
    "IntegrityFailed",
    "LeaseTakenOver",
    "LocalCache",
    "LookupHit",
    "LookupRefreshed",
    "StaleServed",
]
