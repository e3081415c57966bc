"""The cache directory's two diskcache stores, and what happens when they fail.

``content/`` holds the content files (by sha256), ``lookups/`` the lookups,
path hints and leases. :class:`Database` opens each store (again) when it is
needed; a damaged ``cache.db`` is moved aside and a fresh one started; a
locked one, or any cache failure a read meets, puts the cache in a *bypass*
for :data:`BYPASS_SECONDS` (:meth:`Database.degrade`) during which reads go to
S3: the cache is an optimisation, and a failing one costs a download, never
the read.

diskcache's private members are used here and nowhere else, each for a
measured reason (see :class:`_BoundedCache`, :func:`_let_go`,
:meth:`Database.stored_rows` and :meth:`Database.least_recently_used`), with
a fallback to the public API should a diskcache release change them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import diskcache

from .._policy import lock_wait
from .._policy.lock_wait import CONTENTION_SECONDS
from ..exc import CacheUnavailableError
from . import failures
from .content import ContentDisk, DamagedContent
from .events import CacheError, Events
from .failures import CacheFault
from .keys import PathHintKey, from_disk
from .settings import CacheSettings

if sys.platform != "win32":
    import fcntl

__all__ = ["BYPASS_SECONDS", "CACHE_FAILURES", "CONTENTION_SECONDS", "SQLITE_TIMEOUT", "Database"]

log = logging.getLogger("versioned_async")

#: seconds a cache operation waits for a database another process holds and makes no
#: progress in (diskcache's default is 60): a locked cache costs a read about this much,
#: once, then it goes to S3. A database other processes keep committing to is waited
#: for longer, up to CONTENTION_SECONDS: that is contention, not a locked cache
#: (_policy/lock_wait.py: 8 processes starting on one directory on a busy 2-core
#: machine wait over 2 s for a write, and bypassed the cache when this bounded it)
SQLITE_TIMEOUT = 2.0
#: after a cache failure, reads go straight to S3 for this long before it is tried again
BYPASS_SECONDS = 30.0
#: what a failing cache raises (its database locked or damaged, its disk full): a read
#: that meets one goes around the cache (Database.degrade), never fails for it
CACHE_FAILURES: tuple[type[BaseException], ...] = (
    sqlite3.Error,
    diskcache.Timeout,
    CacheUnavailableError,
    OSError,
)
#: the diskcache settings of each store (a folder of the cache directory)
_STORE_SETTINGS: dict[str, dict[str, Any]] = {
    # diskcache keeps the LRU clock (access_time); we evict (cull_limit 0: it never does)
    "content": {"eviction_policy": "least-recently-used", "cull_limit": 0},
    "lookups": {"size_limit": 2**62, "eviction_policy": "none"},
}


class Database:
    """The ``content`` and ``lookups`` stores of one cache directory.

    ``on_content_replaced`` is called when the content database was moved
    aside and a fresh one opened: whatever remembers where content was stored
    must forget it.
    """

    def __init__(self, directory: Path, settings: CacheSettings, events: Events) -> None:
        self.directory = directory
        #: read at each use: a setting changed on the LocalCache applies at once
        self._settings = settings
        self._events = events
        self.on_content_replaced: Callable[[], None] | None = None
        # the two diskcache stores, opened here and again after a failure (see _store)
        self._stores: dict[str, diskcache.Cache | None] = dict.fromkeys(_STORE_SETTINGS)
        self._store_lock = threading.Lock()
        self._bypass_until = -float("inf")  # clock() until which reads skip the cache
        #: stores to check when reopened, after a damaged database was seen
        self._check_stores: set[str] = set()
        self._hints_stale = False
        for which in _STORE_SETTINGS:  # a locked or damaged database does not stop the cache
            with contextlib.suppress(CacheUnavailableError):
                self._store(which)
        for db in self.directory.glob("*/cache.db*"):
            with contextlib.suppress(OSError):
                db.chmod(0o600)

    @property
    def content(self) -> diskcache.Cache:
        return self._store("content")

    @property
    def lookups(self) -> diskcache.Cache:
        return self._store("lookups")

    def _store(self, which: str) -> diskcache.Cache:
        """The open diskcache store ``which``, opening it (again) if needed.

        Raises :class:`CacheUnavailableError` while it cannot be opened (locked
        by another process: tried again after :data:`BYPASS_SECONDS`).
        """
        store = self._stores[which]
        if store is not None:
            return store
        with self._store_lock:
            store = self._stores[which]
            if store is None:
                if self.bypassed:
                    raise CacheUnavailableError(
                        f"the local cache in {self.directory} is unavailable for a while "
                        "(see the warning logged); reads go to S3"
                    )
                try:
                    store = self._open_store(which)
                except CacheUnavailableError as err:
                    self.degrade(err)
                    raise
                self._stores[which] = store
        if self._hints_stale:  # outside the lock: opens the lookups
            self._hints_stale = False
            self._forget_path_hints()
        return store

    def _forget_path_hints(self) -> None:
        """After the content database was moved aside, the path hints (in memory and in
        the lookups) name files the fresh one does not know: drop them, so that content
        is looked up, and stored again, there. Best effort: a hint left behind serves a
        file that is still checked against its fingerprint."""
        if self.on_content_replaced is not None:
            self.on_content_replaced()
        try:
            lookups = self.lookups
            with lookups.transact():
                for key in list(lookups.iterkeys()):
                    if isinstance(from_disk(key), PathHintKey):
                        lookups.delete(key)
        except CACHE_FAILURES as err:
            log.debug("could not drop the cached content's path hints: %r", err)

    def _open_store(self, which: str) -> diskcache.Cache:
        """Open a store; a damaged database is moved aside and a fresh one started."""
        folder = self.directory / which
        settings = dict(_STORE_SETTINGS[which])
        if which == "content":
            settings.update(size_limit=self._settings.size_limit, disk=ContentDisk)
        check = which in self._check_stores
        for attempt in range(2):
            seen = _identity(folder / "cache.db")  # the file found damaged, if it is
            try:
                store = _BoundedCache(str(folder), timeout=SQLITE_TIMEOUT, **settings)
                if check:  # a damaged page may hide past what opening reads
                    verdict = _quick_check(folder / "cache.db")
                    if verdict != "ok":
                        _let_go(store)
                        raise sqlite3.DatabaseError(f"database disk image is malformed: {verdict}")
            except (sqlite3.Error, diskcache.Timeout) as err:
                fault = failures.classify(err)
                if fault is CacheFault.LOCKED:
                    raise CacheUnavailableError(
                        f"the local cache database {folder / 'cache.db'} is locked by another "
                        f"process ({err or 'timed out'}): ",
                        failures.advice(fault),
                    ) from err
                if fault is not CacheFault.DAMAGED or attempt:
                    raise CacheUnavailableError(
                        f"the local cache database {folder / 'cache.db'} cannot be opened "
                        f"({err}): ",
                        failures.advice(fault),
                    ) from err
                self._move_aside(folder, err, seen)
                continue
            with contextlib.suppress(OSError):
                (folder / "cache.db").chmod(0o600)
            self._check_stores.discard(which)  # sound now: later reopens need no check
            return store
        raise AssertionError("unreachable")  # pragma: no cover

    def _move_aside(
        self, folder: Path, err: BaseException, damaged: tuple[int, int] | None
    ) -> None:
        """Keep a damaged database for a post-mortem, if it is still the one in place.

        Only the file found damaged (``damaged``: its device and inode) is moved,
        under a lock on the folder: two processes that find the damage at once
        move it once, and the second never moves aside the first one's fresh
        database. The content files are left where they are: a process that
        still has the old database open reads them through it. Those the fresh
        database does not know stay on disk, outside ``size_limit``, until
        ``clear()`` or the folder is removed (see docs/cache.md).
        """
        with _folder_lock(folder):
            if damaged is None or _identity(folder / "cache.db") != damaged:
                log.info("%s was moved aside by another process already", folder / "cache.db")
                return
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{secrets.token_hex(3)}"
            aside = folder / f"cache.db.damaged-{stamp}"
            (folder / "cache.db").rename(aside)
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    (folder / f"cache.db{suffix}").rename(folder / f"{aside.name}{suffix}")
        if folder.name == "content":
            self._hints_stale = True
        self._events.emit(CacheError(CacheFault.DAMAGED.value))
        log.warning(
            "the local cache database %s was damaged (%s): it was moved aside to %s and a "
            "fresh one started; the cache refills from S3",
            folder / "cache.db",
            err,
            aside,
        )

    @property
    def bypassed(self) -> bool:
        """Whether reads skip the cache for now, after it failed (see :meth:`degrade`)."""
        now = self._settings.clock()  # a clock set back does not stretch the bypass
        return self._bypass_until - BYPASS_SECONDS <= now < self._bypass_until

    def degrade(self, err: BaseException) -> None:
        """Record that the cache failed with ``err``: count it, log a warning once, and
        send reads straight to S3 for :data:`BYPASS_SECONDS` before trying it again.

        Why: the cache is an optimisation; a locked, damaged or full cache must
        cost a download, not the service. A damaged database is reopened (and
        rebuilt) when the cache is tried again.
        """
        if self.bypassed:  # already said; what fails meanwhile is the same trouble
            return
        fault = failures.classify(err)
        self._events.emit(CacheError(fault.value))
        self._bypass_until = self._settings.clock() + BYPASS_SECONDS
        if fault is CacheFault.DAMAGED:
            self._check_stores = set(_STORE_SETTINGS)
            with self._store_lock:  # reopened (checked, rebuilt if need be) next time
                old, self._stores = self._stores, dict.fromkeys(self._stores)
            for store in old.values():
                if store is not None:
                    _let_go(store)
        log.warning(
            "the local cache in %s is %s (%s: %s); reading from S3 without it for %.0f s: %s",
            self.directory,
            fault.value,
            type(err).__name__,
            err or "timed out",
            BYPASS_SECONDS,
            failures.advice(fault).python,
        )

    @contextlib.contextmanager
    def unavailable_on_failure(self, what: str) -> Iterator[None]:
        """A direct call on a failing cache raises the library's error, saying what to do."""
        try:
            yield
        except (sqlite3.Error, diskcache.Timeout) as err:
            fault = failures.classify(err)
            raise CacheUnavailableError(
                f"could not {what} in {self.directory}: its database is {fault.value} "
                f"({err or 'timed out'}); ",
                failures.advice(fault),
            ) from err

    def content_size(self) -> int:
        """Bytes of cached content (what ``size_limit`` bounds)."""
        with self.unavailable_on_failure("read the cache's size"):
            return int(self.content.reset("size"))

    def content_count(self) -> int:
        """How many distinct contents (by sha256) are cached."""
        with self.unavailable_on_failure("count the cached content"):
            return len(self.content)

    def close(self) -> None:
        """Close the stores' connections, every thread's; a later use opens new ones."""
        for store in self._stores.values():  # never opens one only to close it
            if store is not None:
                _close_every_thread(store)

    # -- bulk reads: diskcache's table, read as diskcache reads it ---------------------

    def stored_rows(self, *, pickled_only: bool = False) -> list[tuple[Any, Any]]:
        """Every unexpired ``(key, value)`` of the lookups store, in one SQL query
        (``pickled_only``: only the pickled values, the lookups' own, not the text of
        path hints and leases, which are most rows).

        diskcache has no bulk read; ``iterkeys`` plus a ``get`` each costs a
        query and a transaction per key (130 ms for 300 lookups on a busy
        machine, against 2-10 ms for one query), and a start-up (the preload)
        and every eviction pay it. So this reads diskcache's table the way its
        own ``get`` does, falling back to the public API should that change.
        """
        cache = self.lookups
        try:
            if pickled_only:
                rows = cache._sql(
                    "SELECT key, raw, mode, filename, value FROM Cache WHERE mode = ?",
                    (diskcache.core.MODE_PICKLE,),
                ).fetchall()
            else:
                rows = cache._sql(
                    "SELECT key, raw, mode, filename, value FROM Cache"
                    " WHERE expire_time IS NULL OR expire_time > ?",
                    (time.time(),),
                ).fetchall()
            disk = cache.disk
            found = [
                (disk.get(key, raw), disk.fetch(mode, filename, value, False))
                for key, raw, mode, filename, value in rows
            ]
        except (AttributeError, TypeError, ValueError, sqlite3.Error) as err:
            log.debug("bulk read of the lookups failed (%s); reading them one by one", err)
            found = [(k, cache.get(k)) for k in cache.iterkeys()]
        return [(k, v) for k, v in found if v is not None]

    def least_recently_used(self) -> Generator[tuple[Any, int], None, None]:
        """The content store's ``(key, size)`` rows, least recently used first, read lazily.

        diskcache has no public read of its LRU clock (``access_time``); this
        reads its table as its own cull does, falling back to the public API,
        and to oldest-stored-first order, should that change.
        """
        cache = self.content
        try:
            rows = cache._sql("SELECT key, raw, size FROM Cache ORDER BY access_time, rowid")
            found: Iterator[tuple[Any, int | None]] = (
                (cache.disk.get(key, raw), size) for key, raw, size in rows
            )
        except (AttributeError, TypeError, ValueError, sqlite3.Error) as err:
            log.debug("ordered read of the content store failed (%s); reading it in order", err)
            rows = None
            found = ((key, self._stored_size(key)) for key in cache)
        try:
            for key, size in found:
                if size is not None:
                    yield key, int(size)
        finally:
            if rows is not None:
                rows.close()

    def _stored_size(self, key: Any) -> int | None:
        try:
            handle = self.content.get(key, read=True)
        except DamagedContent:  # a symlink in the store: not content, evicted by a read
            return None
        if handle is None or isinstance(handle, bytes):
            return None
        with handle:
            return os.fstat(handle.fileno()).st_size


# -- diskcache, bounded and let go -------------------------------------------------------------


class _BoundedCache(diskcache.Cache):  # type: ignore[misc]
    """diskcache's Cache, which waits for a database other processes write to as
    long as they make progress, and gives up on a stuck one after
    :data:`SQLITE_TIMEOUT` (:mod:`.._policy.lock_wait`).

    diskcache retries the statements of its ``__init__`` (and ``reset``) for a
    fixed 60 s whatever ``timeout`` says, and its write transactions give up
    after ``timeout`` however busy (not stuck) the database is; both hooks are
    overridden. Should diskcache rename them, the overrides are simply not called.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            # its connection would stay open (on a damaged file about to be moved
            # aside) as long as the error's traceback holds this half-made store
            with contextlib.suppress(Exception):
                self.close()
            raise

    @property
    def _sql(self) -> Callable[..., Any]:
        """diskcache's statement runner, whose ``BEGIN IMMEDIATE`` (every write
        transaction starts with it) waits out contention (:func:`_begin`)."""
        connection = self._con
        execute = connection.execute

        def sql(statement: str, *args: Any, **kwargs: Any) -> Any:
            if statement == "BEGIN IMMEDIATE":
                return _begin(connection)
            return execute(statement, *args, **kwargs)

        return sql

    @property
    def _sql_retry(self) -> Callable[..., Any]:
        connection = self._con
        execute = connection.execute

        def run(statement: str, *args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            deadline = started + SQLITE_TIMEOUT
            seen = _data_version(connection)
            while True:
                try:
                    return execute(statement, *args, **kwargs)
                except sqlite3.OperationalError as err:
                    if not _is_locked(err):
                        raise
                    now = time.monotonic()
                    if now > deadline:
                        latest = _data_version(connection)
                        committed = latest is not None and latest != seen
                        if not lock_wait.keep_waiting(
                            others_committed=committed, waited=now - started
                        ):
                            raise
                        seen, deadline = latest, now + SQLITE_TIMEOUT
                    time.sleep(0.005)

        return run


def _begin(connection: sqlite3.Connection) -> sqlite3.Cursor:
    """Start a write transaction, waiting for the lock while others make progress.

    Each attempt waits :data:`SQLITE_TIMEOUT` in SQLite's busy handler; one that
    ends without the lock is tried again if another connection committed
    meanwhile (contention), and raises if none did (a stuck holder): see
    :mod:`.._policy.lock_wait`. Costs one ``PRAGMA data_version`` (~6 µs) per
    write transaction, against ~230 µs for the transaction itself.
    """
    started = time.monotonic()
    seen = _data_version(connection)
    while True:
        try:
            return connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            if not _is_locked(err):
                raise
            latest = _data_version(connection)
            committed = latest is not None and latest != seen
            if not lock_wait.keep_waiting(
                others_committed=committed, waited=time.monotonic() - started
            ):
                raise
            seen = latest


def _data_version(connection: sqlite3.Connection) -> int | None:
    """SQLite's count of other connections' commits, as this connection sees it;
    ``None`` when it cannot be read (which counts as no progress)."""
    try:
        (version,) = connection.execute("PRAGMA data_version").fetchone()
    except sqlite3.Error:
        return None
    return int(version)


def _is_locked(err: sqlite3.OperationalError) -> bool:
    return str(err) in ("database is locked", "database table is locked")


def _identity(path: Path) -> tuple[int, int] | None:
    """A file's (device, inode), ``None`` when there is none: which file a name holds."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return st.st_dev, st.st_ino


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock across processes on ``folder``'s database (``flock`` on a lock
    file beside it); no lock where there is no ``fcntl`` (Windows)."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(folder / "cache.db.lock", flags, 0o600)
    try:
        if sys.platform != "win32":
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _let_go(store: diskcache.Cache) -> None:
    """Close every connection ``store`` holds, so that no file handle stays on a
    database about to be moved aside.

    diskcache keeps one connection per thread (``_local``) and its ``close``
    closes only the calling thread's; the others are closed when their
    thread-local slot is dropped, which replacing ``_local`` does (a
    connection is closed when its last reference goes).
    """
    with contextlib.suppress(sqlite3.Error):
        store.close()
    with contextlib.suppress(AttributeError):
        store._local = _LetGo()


def _close_every_thread(store: diskcache.Cache) -> None:
    """Close ``store``'s connection in this thread and drop the other threads' (the
    cache's worker threads outlive it): as :func:`_let_go`, but the store stays
    usable, each thread opening a new connection when it next needs one."""
    with contextlib.suppress(sqlite3.Error):
        store.close()
    with contextlib.suppress(AttributeError):
        store._local = threading.local()


class _LetGo:
    """The per-thread slot of a store let go (see :func:`_let_go`): it holds no
    connection, and refuses to open one, so that a thread still working on the
    old store fails (a cache failure, handled as one) instead of reopening the
    damaged database."""

    def __getattr__(self, name: str) -> None:
        return None

    def __setattr__(self, name: str, value: object) -> None:
        raise sqlite3.ProgrammingError("this cache database was let go after a failure")


def _quick_check(db: Path) -> str:
    """SQLite's ``quick_check`` of a database file, on a connection of our own."""
    with contextlib.closing(sqlite3.connect(db, timeout=SQLITE_TIMEOUT)) as connection:
        (verdict,) = connection.execute("PRAGMA quick_check").fetchone()
    return str(verdict)
