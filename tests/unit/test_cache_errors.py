"""The pure decisions behind a failing cache (issue 15, items 5, 7, 8): what a failure
is, what to tell the operator, and which size a version lookup records."""

from __future__ import annotations

import errno
import pickle
import sqlite3

import diskcache
import pytest

from versioned_async import exc
from versioned_async.cache.cached_reader import size_to_record
from versioned_async.cache.failures import CacheFault, advice, classify, is_disk_full


def sqlite_error(cls: type[sqlite3.Error], message: str, code: int | None = None) -> sqlite3.Error:
    err = cls(message)
    if code is not None:
        err.sqlite_errorcode = code  # type: ignore[attr-defined]
    return err


@pytest.mark.parametrize(
    ("err", "fault"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), CacheFault.FULL),
        (OSError(errno.EFBIG, "File too large"), CacheFault.FULL),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), CacheFault.FULL),
        (sqlite_error(sqlite3.OperationalError, "database or disk is full", 13), CacheFault.FULL),
        (sqlite_error(sqlite3.OperationalError, "database or disk is full"), CacheFault.FULL),
        (sqlite_error(sqlite3.OperationalError, "database is locked", 5), CacheFault.LOCKED),
        (sqlite_error(sqlite3.OperationalError, "database is locked"), CacheFault.LOCKED),
        (diskcache.Timeout(), CacheFault.LOCKED),
        (sqlite_error(sqlite3.DatabaseError, "file is not a database", 26), CacheFault.DAMAGED),
        (
            sqlite_error(sqlite3.DatabaseError, "database disk image is malformed"),
            CacheFault.DAMAGED,
        ),
        (OSError(errno.EACCES, "Permission denied"), CacheFault.OTHER),
        (sqlite_error(sqlite3.OperationalError, "disk I/O error", 10), CacheFault.OTHER),
        (ValueError("nope"), CacheFault.OTHER),
    ],
)
def test_a_cache_failure_is_named_from_what_was_raised(
    err: BaseException, fault: CacheFault
) -> None:
    assert classify(err) is fault


def test_only_no_room_errors_are_a_full_disk() -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "x"))
    assert not is_disk_full(OSError(errno.EIO, "x"))
    assert not is_disk_full(sqlite3.OperationalError("database or disk is full"))


def test_a_full_disk_says_what_to_do_in_the_words_of_the_interface() -> None:
    text = advice(CacheFault.FULL).python
    assert "free space" in text
    assert "size_limit" in text
    assert "--cache-dir" in text
    cli = advice(CacheFault.FULL).cli  # the command line has no size_limit, no LocalCache
    assert cli == "free space on that disk, or point the cache elsewhere with --cache-dir"


def test_disk_full_error_is_a_versioned_error_and_an_os_error_that_pickles() -> None:
    err = exc.DiskFullError(errno.ENOSPC, "/srv/out.bin", "free space there")
    assert isinstance(err, exc.VersionedError)
    assert isinstance(err, OSError)
    assert err.errno == errno.ENOSPC
    assert (
        str(err)
        == "no space left to write /srv/out.bin (No space left on device): free space there"
    )
    again = pickle.loads(pickle.dumps(err))
    assert (type(again), str(again), again.errno) == (type(err), str(err), err.errno)


SHA = "a" * 64
OTHER = "b" * 64


@pytest.mark.parametrize(
    ("item_size", "known", "recorded"),
    [
        (10, None, 10),  # the item's own size wins
        (10, (1.0, (SHA, 99)), 10),
        (None, (1.0, (SHA, 99)), 99),  # `versioned` 1.0's item: the size measured before
        (None, (1.0, (OTHER, 99)), None),  # measured for other content: not this one's
        (None, (1.0, (SHA, None)), None),  # never measured
        (None, None, None),
    ],
)
def test_a_version_lookup_records_the_size_measured_when_the_item_has_none(
    item_size: int | None, known: tuple[float, tuple[str, int | None]] | None, recorded: int | None
) -> None:
    assert size_to_record(SHA, item_size, known) == recorded


def unavailable_from(cause: BaseException | None) -> exc.CacheUnavailableError:
    """A CacheUnavailableError as LocalCache raises it: ``raise ... from cause``."""
    try:
        raise exc.CacheUnavailableError("the cache database cannot be opened") from cause
    except exc.CacheUnavailableError as err:
        return err


@pytest.mark.parametrize(
    ("cause", "fault"),
    [
        (sqlite_error(sqlite3.OperationalError, "database is locked", 5), CacheFault.LOCKED),
        (diskcache.Timeout(), CacheFault.LOCKED),
        (sqlite_error(sqlite3.OperationalError, "database or disk is full", 13), CacheFault.FULL),
        (OSError(errno.ENOSPC, "No space left on device"), CacheFault.FULL),
        (sqlite_error(sqlite3.DatabaseError, "file is not a database", 26), CacheFault.DAMAGED),
        (sqlite_error(sqlite3.OperationalError, "disk I/O error", 10), CacheFault.OTHER),
        (None, CacheFault.OTHER),  # nothing says it is locked: do not send them to fuser
    ],
)
def test_a_cache_that_cannot_be_opened_is_named_from_its_cause(
    cause: BaseException | None, fault: CacheFault
) -> None:
    assert classify(unavailable_from(cause)) is fault
