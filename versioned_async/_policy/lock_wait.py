"""How long a cache write waits for a database another process is writing to.

SQLite gives the write lock to whoever asks at the right moment, not to who
waited longest: a writer that sleeps in SQLite's busy handler can lose it to
busier processes for seconds on end while they all make progress (eight
worker processes starting on one cache directory on a loaded 2-core machine
do). That is *contention*, and waiting is right: going around the cache costs
a download and :data:`~versioned_async.cache.BYPASS_SECONDS` without it. A lock
held by a process that commits nothing (stopped, stuck in a transaction) is a
*locked* cache, and waiting longer only delays the read.

So the wait is judged by progress: each wait of
:data:`~versioned_async.cache.SQLITE_TIMEOUT` that ends with the lock still
taken is followed by another if some other connection committed meanwhile
(SQLite's ``PRAGMA data_version``), up to :data:`CONTENTION_SECONDS` in all.
"""

from __future__ import annotations

__all__ = ["CONTENTION_SECONDS", "keep_waiting"]

#: the longest a cache write waits for the lock while other processes keep committing;
#: past it, a download is faster than the cache
CONTENTION_SECONDS = 30.0


def keep_waiting(*, others_committed: bool, waited: float) -> bool:
    """Whether to wait again for a write lock after a wait that ended without it.

    ``others_committed``: whether another connection committed during the last
    wait (the lock changes hands: contention); ``waited``: seconds waited so far.
    """
    return others_committed and waited < CONTENTION_SECONDS
