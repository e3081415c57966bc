"""What a failure of the local cache means, and what to tell the operator. Pure.

The cache is an optimisation: when its database is locked by another
process, damaged, or its disk is full, reads go to S3 instead (see
:meth:`~versioned_async.cache.LocalCache.degrade`). This module names the
failure from the exception SQLite, diskcache or the OS raised, so that the
adapter can act on it (rebuild a damaged database, say "free space" for a
full disk) and log one line that says what to do.
"""

from __future__ import annotations

import enum
import errno
import sqlite3

import diskcache

from .._wording import Words
from ..exc import CacheUnavailableError

__all__ = ["CacheFault", "advice", "classify", "is_disk_full"]


class CacheFault(enum.Enum):
    """Why the cache could not be used."""

    LOCKED = "locked by another process"
    DAMAGED = "damaged"
    FULL = "on a full disk"
    OTHER = "failing"


#: errnos that mean "no room": a full disk, a full quota, a file-size limit
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: SQLite's primary result codes (the low byte of extended ones)
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 5, 6, 11, 13, 26


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` is an OS error meaning that no more bytes could be written."""
    return isinstance(err, OSError) and err.errno in _FULL_ERRNOS


def classify(err: BaseException) -> CacheFault:
    """The kind of cache failure ``err`` is (``OTHER`` when it is not recognised).

    A :class:`CacheUnavailableError` is what the cache raised about another
    error (``raise ... from``): it is named from that cause, so that a full disk
    or an unopenable database is not reported as locked.
    """
    if isinstance(err, CacheUnavailableError):
        cause = err.__cause__
        return CacheFault.OTHER if cause is None or cause is err else classify(cause)
    if is_disk_full(err):
        return CacheFault.FULL
    if isinstance(err, diskcache.Timeout):
        return CacheFault.LOCKED
    if isinstance(err, sqlite3.Error):
        code = getattr(err, "sqlite_errorcode", None)
        primary = None if code is None else code & 0xFF
        text = str(err).lower()
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "locked" in text or "busy" in text:
            return CacheFault.LOCKED
        if primary == _SQLITE_FULL or "disk is full" in text:
            return CacheFault.FULL
        if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or (
            "malformed" in text or "not a database" in text
        ):
            return CacheFault.DAMAGED
    return CacheFault.OTHER


def advice(fault: CacheFault) -> Words:
    """What the operator can do about ``fault``, in the words of each interface."""
    if fault is CacheFault.FULL:
        return Words(
            "free space on that disk, lower LocalCache's size_limit, or point the cache "
            "elsewhere (LocalCache(directory=...), or --cache-dir)",
            "free space on that disk, or point the cache elsewhere with --cache-dir",
        )
    if fault is CacheFault.LOCKED:
        return _same(
            "find the process holding its cache.db (e.g. `fuser cache.db`); the cache is "
            "tried again in a while"
        )
    if fault is CacheFault.DAMAGED:
        return _same("it is moved aside and a fresh database started; the cache refills from S3")
    return _same(
        "check the disk it is on (free space, file-size limits, errors); "
        "the cache is tried again in a while"
    )


def _same(text: str) -> Words:
    """Advice worded the same for every interface."""
    return Words(text, text)
