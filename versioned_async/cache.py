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
open file readable after it is unlinked). A stored file is read only if it is
still the file stored: opened without following links and checked against the
fingerprint (device, inode, size, mtime) taken when it was published; the
directory itself must be this user's alone (see :mod:`._cache_safety`).

Eviction is ours, not diskcache's: content that an alias the cache knows
points at is kept (see :mod:`._eviction`), so a service restarting while AWS
is down still finds it; other content goes least recently used first.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import math
import os
import random
import secrets
import socket
import sqlite3
import stat
import sys
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
from typing import Any, BinaryIO, TypeVar

import attrs
import diskcache

from . import _cache_errors, _cache_safety, _eviction
from ._cache_errors import CacheFault
from ._cache_safety import Fingerprint, LeaseHolder
from ._coalesce import Coalescer
from .exc import (
    CacheDirectoryError,
    CacheUnavailableError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
)

if sys.platform != "win32":
    import fcntl

__all__ = ["CacheStats", "LocalCache"]

log = logging.getLogger("versioned_async")

_T = TypeVar("_T")

#: staged files older than this are left over from a crashed process
_STALE_STAGING_SECONDS = 3600.0
#: a download lease lasts this long unless its holder renews it (every third of it)
LEASE_SECONDS = 30.0
#: below this, reading a cached file inline is cheaper than a thread hop (~140 us)
_READ_INLINE_BYTES = 1 << 20
_COPY_CHUNK = 1 << 20
#: seconds a cache operation waits for a database another process holds (diskcache's
#: default is 60): a locked cache costs a read about this much, once, then it goes to S3.
#: Not less: 8 processes starting on one directory (tests/integration/test_load.py) wait
#: up to 1.8 s for a write on a busy 2-core machine, and 1 s made them bypass the cache
SQLITE_TIMEOUT = 2.0
#: after a cache failure, reads go straight to S3 for this long before it is tried again
BYPASS_SECONDS = 30.0
#: what a failing cache raises (its database locked or damaged, its disk full): a read
#: that meets one goes around the cache (LocalCache.degrade), never fails for it
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


@attrs.frozen
class Staged:
    """A verified download waiting in the staging directory, owned by its creator."""

    path: Path
    sha256: str
    size: int


class DamagedContent(Exception):
    """A cached file is not the content stored under its sha256: discard it, fetch again."""


#: open a cached file: never through a symlink, never blocking on a FIFO planted there
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def _open_no_follow(path: str) -> tuple[BinaryIO, os.stat_result]:
    """Open a cached file to read, and ``fstat`` it; a symlink or a non-regular file
    is :class:`DamagedContent`."""
    try:
        handle = open(path, "rb", opener=_no_follow_opener)  # noqa: SIM115
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.EMLINK):  # a symlink (EMLINK: the BSDs)
            raise DamagedContent(f"{path} is a symbolic link") from err
        raise
    st = os.fstat(handle.fileno())
    if not stat.S_ISREG(st.st_mode):
        handle.close()
        raise DamagedContent(f"{path} is not a regular file")
    return handle, st


def _no_follow_opener(path: str, _flags: int) -> int:
    return os.open(path, _OPEN_FLAGS)


def _fingerprint(st: os.stat_result) -> Fingerprint:
    return Fingerprint(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _send_file(source: BinaryIO, out: BinaryIO, length: int) -> int:
    """Copy in the kernel (``sendfile``, as ``shutil.copyfile`` does) what it will;
    the caller copies the rest, if any, by reading."""
    copied = 0
    with contextlib.suppress(OSError, AttributeError):  # no sendfile between files here
        while copied < length:
            sent = os.sendfile(out.fileno(), source.fileno(), copied, length - copied)
            if sent == 0:
                break
            copied += sent
    source.seek(copied)
    out.seek(copied)  # the writer's idea of its position, past what the kernel wrote
    return copied


def _hash_handle(handle: BinaryIO) -> str:
    handle.seek(0)
    digest = hashlib.sha256()
    while chunk := handle.read(_COPY_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


# -- the directory: only ours -------------------------------------------------------------


def _secure_directory(directory: Path, folders: Sequence[str]) -> Path:
    """Create the cache directory and its ``folders`` private (0700), or check that
    existing ones are only ours, all the way down, before anything is read from them;
    returns the resolved path checked, the one every later open must use.

    Each folder is judged before anything inside it is looked at or created
    (:func:`._cache_safety.judge_folder`): refused with
    :class:`~versioned_async.exc.CacheDirectoryError`, tightened, or used. A
    symlink to a folder anywhere inside is refused; a symlink where a content
    file should be is left to the read path, which discards it. The folders
    above are judged too (:func:`._cache_safety.judge_ancestor`): one of
    another user is refused, one others may rename in is warned about.
    """
    me = os.geteuid() if hasattr(os, "geteuid") else -1
    if me == -1:  # no POSIX owners (Windows): nothing to judge
        for folder in (directory, *(directory / f for f in folders)):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return directory
    _judge_ancestors(directory, me)
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700, parents=True)
    # a symlink given as the directory itself is the caller's choice: judge its target
    top = os.path.realpath(directory)

    def judge(folder: str, st: os.stat_result, *, is_top: bool = False) -> None:
        verdict = _cache_safety.judge_folder(st.st_mode, st.st_uid, me=me, top=is_top)
        if verdict.refuse is not None:
            advice = _cache_safety.folder_advice(folder, me, verdict.refuse)
            raise CacheDirectoryError(str(directory), folder, verdict.refuse, advice)
        if verdict.tighten_to is not None:
            try:
                os.chmod(folder, verdict.tighten_to, follow_symlinks=False)
            except (OSError, NotImplementedError) as err:
                raise CacheDirectoryError(
                    str(directory),
                    folder,
                    f"is writable by other users and could not be made private ({err})",
                    f"chmod 700 {folder}, or give LocalCache another cache directory",
                ) from err
            log.warning(
                "cache folder %s was open to other users (mode %o); made it private (%o)",
                folder,
                stat.S_IMODE(st.st_mode),
                verdict.tighten_to,
            )

    judge(str(directory) if top == os.path.abspath(directory) else top, os.lstat(top), is_top=True)
    for name in folders:
        known = os.path.join(top, name)
        try:
            st = os.lstat(known)
        except FileNotFoundError:
            os.mkdir(known, 0o700)
        else:
            judge(known, st)
    # every folder below, parents before children. The leaves of the content store
    # (content/xx/yy) are judged but not listed: they hold only content files, each
    # checked against its fingerprint when read, and listing them all would cost a
    # start-up ~10 us per file
    content = os.path.join(top, "content")
    pending = [(top, False)]  # (a folder, whether what it holds are content leaves)
    while pending:
        parent, holds_leaves = pending.pop()
        with os.scandir(parent) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    mine = st.st_uid == me and not st.st_mode & 0o022  # the common case, fast
                    if not mine and (parent != top or entry.name not in folders):
                        judge(entry.path, st)
                    if not holds_leaves:
                        pending.append((entry.path, parent == content))
                elif entry.is_symlink() and entry.is_dir():
                    judge(entry.path, entry.stat(follow_symlinks=False))  # refused: a link
    return Path(top)


#: folders above a cache directory already warned about, so each is logged once
_warned_ancestors: set[str] = set()


def _judge_ancestors(directory: Path, me: int) -> None:
    """Judge every folder above the cache directory, resolved, up to ``/``: refuse
    (:class:`~versioned_async.exc.CacheDirectoryError`) or warn, once per folder.

    Run before the cache directory is created, so nothing is made below a
    refused folder. The deepest existing folder is where the path starts.
    """
    path = os.path.realpath(directory)
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)  # not there yet: created below what exists
    if os.path.lexists(path) and path == os.path.realpath(directory):
        path = os.path.dirname(path)  # the cache directory itself is judged by the caller
    while True:
        st = os.lstat(path)
        verdict = _cache_safety.judge_ancestor(st.st_mode, st.st_uid, me=me)
        if verdict.refuse is not None:
            advice = _cache_safety.folder_advice(path, me, verdict.refuse, ancestor=True)
            raise CacheDirectoryError(str(directory), path, verdict.refuse, advice)
        if verdict.warn is not None and path not in _warned_ancestors:
            _warned_ancestors.add(path)
            log.warning(
                "the folder %s above the cache directory %s %s; chmod +t %s, or give "
                "LocalCache a cache directory inside a folder only you can write in",
                path,
                directory,
                verdict.warn,
                path,
            )
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


# -- the lease holder's process -------------------------------------------------------------


def _machine_id() -> str:
    """This kernel and pid namespace: where a pid names one process. Elsewhere than
    Linux, the host name (a pid namespace is a Linux thing)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        if os.path.isdir("/proc/self"):  # a Linux without them: pids cannot be judged
            return f"unknown-{secrets.token_hex(8)}"
        boot, namespace = socket.gethostname(), "-"
    return "".join(c if c.isprintable() and not c.isspace() else "_" for c in boot + namespace)


def _process_state(pid: int) -> tuple[bool, int | None]:
    """Whether a process ``pid`` runs here (a zombie does not), and its start time."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, None
    except PermissionError:
        pass  # it exists, as another user
    except OSError:
        return True, None  # cannot tell: assume it runs
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True, None
    if fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent
        return False, None
    return True, int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def _holder_is_gone(record: object) -> bool:
    holder = LeaseHolder.parse(record)
    if holder is None or holder.machine != _MACHINE:
        return False
    running, started = _process_state(holder.pid)
    return _cache_safety.holder_is_gone(holder, machine=_MACHINE, running=running, started=started)


def _own_start() -> int | None:
    """This process's start time, read again after a fork (a worker forked from a
    parent that imported this module is a process of its own)."""
    pid = os.getpid()
    known = _OWN_START.get(pid)
    if known is None:
        _OWN_START.clear()
        known = _OWN_START[pid] = (_process_state(pid)[1],)
    return known[0]


_MACHINE = _machine_id()
#: {pid: (start time,)} of this process, so that a forked child reads its own
_OWN_START: dict[int, tuple[int | None]] = {}


class _ContentDisk(diskcache.Disk):  # type: ignore[misc]
    """A diskcache Disk that stores a :class:`Staged` file by hard-linking it: no copy,
    and opens stored files without following symlinks."""

    def fetch(self, mode: int, filename: str, value: Any, read: bool) -> Any:
        if mode == diskcache.core.MODE_BINARY and read:
            return _open_no_follow(os.path.join(self._directory, filename))[0]
        return super().fetch(mode, filename, value, read)

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


class _BoundedCache(diskcache.Cache):  # type: ignore[misc]
    """diskcache's Cache, whose set-up gives up on a locked database after
    :data:`SQLITE_TIMEOUT` instead of retrying for 60 s.

    diskcache retries the statements of its ``__init__`` (and ``reset``) for a
    fixed 60 s whatever ``timeout`` says; this bounds them by that timeout.
    Should diskcache rename the hook, the override is simply not called.
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
    def _sql_retry(self) -> Callable[..., Any]:
        sql = self._sql

        def execute(statement: str, *args: Any, **kwargs: Any) -> Any:
            deadline = time.monotonic() + SQLITE_TIMEOUT
            while True:
                try:
                    return sql(statement, *args, **kwargs)
                except sqlite3.OperationalError as err:
                    if str(err) != "database is locked" or time.monotonic() > deadline:
                        raise
                    time.sleep(0.005)

        return execute


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


class _LetGo:
    """The per-thread slot of a store let go (see :func:`_let_go`): it holds no
    connection, and refuses to open one, so that a thread still working on the
    old store fails (a cache failure, handled as one) instead of reopening the
    damaged database."""

    def __getattr__(self, name: str) -> None:
        return None

    def __setattr__(self, name: str, value: object) -> None:
        raise sqlite3.ProgrammingError("this cache database was let go after a failure")


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

    The directory must be this user's alone, as OpenSSH's StrictModes asks of
    ``~/.ssh``: a folder in it that another user owns, or that is a symbolic
    link, raises :class:`~versioned_async.exc.CacheDirectoryError`; a folder
    this user owns but others may write in is made private (``chmod go-rwx``)
    with a warning.
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
    ) -> None:
        if not isinstance(verify_on_read, bool):
            raise InvalidArgumentTypeError(
                f"verify_on_read must be True or False, not {verify_on_read!r}"
            )
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
        self.verify_on_read = verify_on_read
        self.staging = self.directory / "staging"
        # created private, or checked to be only ours, before anything is read from it
        # and every later open (diskcache's connection per thread, content files) uses
        # the resolved path that was checked, not one a symlink could re-point
        self.directory = _secure_directory(self.directory, ("staging", "content", "lookups"))
        self.staging = self.directory / "staging"
        self._counts_lock = threading.Lock()
        self._counts = dict.fromkeys(attrs.fields_dict(CacheStats), 0)
        # the two diskcache stores, opened here and again after a failure (see _store)
        self._stores: dict[str, diskcache.Cache | None] = dict.fromkeys(_STORE_SETTINGS)
        self._store_lock = threading.Lock()
        self._bypass_until = -math.inf  # clock() until which reads skip the cache
        #: stores to check when reopened, after a damaged database was seen
        self._check_stores: set[str] = set()
        for which in _STORE_SETTINGS:  # a locked or damaged database does not stop the cache
            with contextlib.suppress(CacheUnavailableError):
                self._store(which)
        for db in self.directory.glob("*/cache.db*"):
            with contextlib.suppress(OSError):
                db.chmod(0o600)
        self._memory_lookups: dict[Hashable, tuple[float, Any]] = {}
        self._memory_paths: dict[str, str] = {}
        #: path -> what the file was when stored; paths are random, never reused.
        #: Kept only while the content is stored (see _remember_fingerprint)
        self._fingerprints: dict[str, Fingerprint] = {}
        #: sha256 -> its path in _fingerprints, to forget it when the content goes
        self._fingerprint_paths: dict[str, str] = {}
        self._fingerprints_lock = threading.Lock()  # threads store, evict and discard
        # a discard deletes and counts under this lock, so whoever sees the entry gone
        # (a reader falling back to S3) also sees it counted
        self._discard_lock = threading.Lock()
        self._preloaded = False
        # lookups asked or written in one loop turn share one thread trip (a cold
        # start-up asks for all of them at once)
        self._disk_reads: Coalescer[Hashable, Any] = Coalescer(self._read_lookups)
        self._disk_writes: Coalescer[Hashable, None] = Coalescer(self._write_lookups)
        self._unwritten: dict[Hashable, tuple[float, Any] | None] = {}
        #: lookups forgotten while the disk could not be written: key -> clock() then.
        #: Older entries on disk are not read back, and are deleted at the next write
        self._tombstones: dict[Hashable, float] = {}
        self._writer: ThreadPoolExecutor | None = None  # started on the first write
        self._touched: dict[str, float] = {}
        self._inflight: dict[tuple[int, Hashable], asyncio.Future[Any]] = {}
        self._warned_pinned_over = False
        self._sweep_staging()

    def __repr__(self) -> str:
        return (
            f"LocalCache({str(self.directory)!r}, ttl={self.ttl}, size_limit={self.size_limit}, "
            f"stale_if_error={self.stale_if_error})"
        )

    # -- the stores, and what happens when they fail -------------------------------

    @property
    def _content(self) -> diskcache.Cache:
        return self._store("content")

    @property
    def _lookups(self) -> diskcache.Cache:
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
        if self.__dict__.pop("_hints_stale", False):  # outside the lock: opens the lookups
            self._forget_path_hints()
        return store

    def _forget_path_hints(self) -> None:
        """After the content database was moved aside, the path hints (in memory and in
        the lookups) name files the fresh one does not know: drop them, so that content
        is looked up, and stored again, there. Best effort: a hint left behind serves a
        file that is still checked against its fingerprint."""
        paths: dict[str, str] | None = getattr(self, "_memory_paths", None)
        if paths is not None:
            paths.clear()
        try:
            lookups = self._lookups
            with lookups.transact():
                for key in list(lookups.iterkeys()):
                    if isinstance(key, tuple) and key[:1] == ("path",):
                        lookups.delete(key)
        except CACHE_FAILURES as err:
            log.debug("could not drop the cached content's path hints: %r", err)

    def _open_store(self, which: str) -> diskcache.Cache:
        """Open a store; a damaged database is moved aside and a fresh one started."""
        folder = self.directory / which
        settings = dict(_STORE_SETTINGS[which])
        if which == "content":
            settings.update(size_limit=self.size_limit, disk=_ContentDisk)
        check = which in self._check_stores
        for attempt in range(2):
            seen = _identity(folder / "cache.db")  # the file found damaged, if it is
            try:
                store = _BoundedCache(str(folder), timeout=SQLITE_TIMEOUT, **settings)
                if check:  # a damaged page may hide past what opening reads
                    (verdict,) = store._sql("PRAGMA quick_check").fetchone()
                    if verdict != "ok":
                        _let_go(store)
                        raise sqlite3.DatabaseError(f"database disk image is malformed: {verdict}")
            except (sqlite3.Error, diskcache.Timeout) as err:
                fault = _cache_errors.classify(err)
                if fault is CacheFault.LOCKED:
                    raise CacheUnavailableError(
                        f"the local cache database {folder / 'cache.db'} is locked by another "
                        f"process ({err or 'timed out'}): {_cache_errors.advice(fault)}"
                    ) from err
                if fault is not CacheFault.DAMAGED or attempt:
                    raise CacheUnavailableError(
                        f"the local cache database {folder / 'cache.db'} cannot be opened "
                        f"({err}): {_cache_errors.advice(fault)}"
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
        ``clear()`` or the folder is removed (see the README).
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
        self.count("cache_errors")
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
        now = self.clock()  # a clock set back does not stretch the bypass
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
        fault = _cache_errors.classify(err)
        self.count("cache_errors")
        self._bypass_until = self.clock() + BYPASS_SECONDS
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
            _cache_errors.advice(fault),
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
        if found is not None or self.bypassed:
            return found
        if not self._preloaded:
            try:
                await self.single_flight("preload", lambda: asyncio.to_thread(self._preload))
            except CACHE_FAILURES as err:  # a broken cache: as if it held nothing
                self.degrade(err)
                return None
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
        """The lookup as stored on disk now (another process may have written it);
        ``None`` as well while the cache fails (see :meth:`degrade`)."""
        if self.bypassed:
            return None
        try:
            found = await self._disk_reads(key)
        except CACHE_FAILURES as err:
            self.degrade(err)
            return None
        if found is not None and self._is_buried(key, found):
            found = None
        if found is not None:
            known = self._memory_lookups.get(key)
            if known is None or known[0] < found[0]:
                self._memory_lookups[key] = found
        return found

    def _is_buried(self, key: Hashable, entry: tuple[float, Any]) -> bool:
        """Whether ``entry``, read from disk, was forgotten by this process since
        (a ``forget`` that could not reach the disk: see :meth:`_write_through`)."""
        forgotten_at = self._tombstones.get(key)
        return forgotten_at is not None and entry[0] <= forgotten_at

    # -- cross-process download leases -------------------------------------------------

    @contextlib.asynccontextmanager
    async def download_lease(self, key: Hashable) -> AsyncIterator[bool]:
        """Hold the directory-wide lease on downloading ``key``; yields whether it waited.

        Why: processes that share a cache directory (workers of one service)
        would otherwise all download the same content at start-up. The lease
        is a diskcache ``add`` (atomic across processes) with an expiry that
        the holder renews while it works. The lease names its holder (machine,
        pid, process start time): a waiter on the same machine that finds the
        holder dead (SIGKILL, OOM) takes the lease over at once; a holder on
        another machine frees it when it expires, within :data:`LEASE_SECONDS`.
        Waiters poll with backoff on the event loop; no thread blocks.
        """
        lease = ("lease", key)
        token = LeaseHolder(_MACHINE, os.getpid(), _own_start(), secrets.token_hex(8)).to_text()
        waited = False
        pause = 0.01
        while not await asyncio.to_thread(self._take_lease, lease, token):
            waited = True
            await asyncio.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 0.25)
        renewing = asyncio.ensure_future(self._renew_lease(lease, token))
        try:
            yield waited
        finally:
            renewing.cancel()
            await asyncio.shield(asyncio.to_thread(self._end_lease, lease, token))

    def _take_lease(self, lease: Hashable, token: str) -> bool:
        """Take the lease if it is free, or if its holder is a dead process of this machine."""
        if self._lookups.add(lease, token, expire=LEASE_SECONDS):
            return True
        held_by = self._lookups.get(lease)
        if held_by is None or not _holder_is_gone(held_by):
            return False
        with self._lookups.transact():  # only if no other waiter took it over first
            if self._lookups.get(lease) != held_by:
                return False
            self._lookups.set(lease, token, expire=LEASE_SECONDS)
        self.count("lease_takeovers")
        log.warning("took over a download lease from a process that died holding it: %s", held_by)
        return True

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
        graves = dict(self._tombstones)

        def write() -> None:
            with self._lookups.transact():
                for key, forgotten_at in graves.items():  # only what is older than the forget
                    stored = self._lookups.get(key)
                    if stored is not None and stored[0] <= forgotten_at:
                        self._lookups.delete(key)
                for key, entry in entries:
                    if entry is None:
                        self._lookups.delete(key)
                    else:
                        self._lookups.set(key, entry)

        # one writer thread: a later write never lands before an earlier one
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="versioned-async-cache")
        await asyncio.get_running_loop().run_in_executor(self._writer, write)
        for key, forgotten_at in graves.items():  # on disk now
            if self._tombstones.get(key) == forgotten_at:
                del self._tombstones[key]
        return {}

    def _preload(self) -> None:
        for key, value in self._all_lookups():
            if isinstance(key, tuple) and key[:1] == ("lease",):
                continue
            if isinstance(key, tuple) and key[:1] == ("path",):
                hint = _cache_safety.split_hint(value)
                if hint is None:  # written before fingerprints: the store is asked instead
                    continue
                if key[1] not in self._fingerprint_paths:
                    self._remember_fingerprint(key[1], hint[1], hint[0])
                self._memory_paths.setdefault(key[1], hint[1])
                self._touched.setdefault(key[1], self.clock())  # no LRU write per hit at start
            elif not self._is_buried(key, value):
                self._memory_lookups.setdefault(key, value)
        self._preloaded = True

    async def remember(self, key: Hashable, value: Any) -> None:
        """Record a lookup just fetched from AWS."""
        entry = (self.clock(), value)
        self._memory_lookups[key] = entry
        await self._write_through(key, entry)

    async def _write_through(self, key: Hashable, entry: tuple[float, Any] | None) -> None:
        """Write (``None``: delete) a lookup on disk; best effort: a failing cache is
        bypassed (:meth:`degrade`), and the lookup stays in this process's memory.

        A delete that cannot reach the disk is kept as a tombstone: the entry
        left on disk (a deleted alias's old target, still within its TTL) is
        not read back once the cache is used again, and is deleted at the next
        write that succeeds.
        """
        if self.bypassed:
            if entry is None:
                self._tombstones[key] = self.clock()
            return
        self._unwritten[key] = entry
        try:
            await self._disk_writes(key)
        except CACHE_FAILURES as err:
            self._unwritten.pop(key, None)
            if entry is None:
                self._tombstones[key] = self.clock()
            self.degrade(err)

    async def forget(self, key: Hashable) -> None:
        """Drop a lookup AWS says no longer exists."""
        self._memory_lookups.pop(key, None)
        await self._write_through(key, None)

    # -- content -------------------------------------------------------------------

    def content_path_now(self, sha256: str) -> str | None:
        """The file holding ``sha256`` if this process knows it: no I/O.

        The file may have been evicted since; opening it then fails with
        :class:`FileNotFoundError` and :meth:`content_path` asks the store.
        """
        return self._memory_paths.get(sha256)

    async def content_path(self, sha256: str) -> str | None:
        """The file holding ``sha256`` according to the store, or ``None``.

        The stored file is checked against its fingerprint; one that changed is
        discarded (counted in ``damaged_content``) and ``None`` returned.
        """
        path = await asyncio.to_thread(self._find_content, sha256)
        if path is None:
            self._memory_paths.pop(sha256, None)
        else:
            self._memory_paths[sha256] = path
            self._touched[sha256] = self.clock()  # the store lookup counted as a use
        return path

    def _find_content(self, sha256: str) -> str | None:
        """The stored file of ``sha256`` if it is the file stored; a changed one is discarded.

        Runs in a thread. Content stored before fingerprints were recorded is
        checked once by its sha256 instead, and its fingerprint kept in memory.
        """
        try:
            handle, tag = self._content.get(("c", sha256), read=True, tag=True)
        except DamagedContent as err:  # a symlink, a FIFO: never opened through
            self._discard_stored(sha256, str(err))
            return None
        if handle is None or isinstance(handle, bytes):  # bytes: not ours, never stored so
            self._forget_fingerprint(sha256)  # evicted or discarded, maybe by another process
            return None
        with handle:
            path = str(handle.name)
            st = os.fstat(handle.fileno())
            now = _fingerprint(st)
            recorded = Fingerprint.parse(tag) or self._fingerprints.get(path)
            problem = _cache_safety.content_problem(st.st_mode, now, recorded)
            if problem is None and recorded is None and _hash_handle(handle) != sha256:
                problem = f"does not hash to {sha256}"
        if problem is not None:
            self._discard_stored(sha256, f"{path} {problem}")
            return None
        self._remember_fingerprint(sha256, path, now)
        return path

    def _remember_fingerprint(self, sha256: str, path: str, fingerprint: Fingerprint) -> None:
        """Keep what ``sha256``'s stored file at ``path`` is; one path per content, so
        the map holds no more than the content stored (a service runs for months)."""
        with self._fingerprints_lock:
            old = self._fingerprint_paths.get(sha256)
            if old is not None and old != path:  # stored again, under a new name
                self._fingerprints.pop(old, None)
            self._fingerprint_paths[sha256] = path
            self._fingerprints[path] = fingerprint

    def _forget_fingerprint(self, sha256: str) -> None:
        """The content is no longer stored (evicted, discarded, gone): forget its file."""
        with self._fingerprints_lock:
            path = self._fingerprint_paths.pop(sha256, None)
            if path is not None:
                self._fingerprints.pop(path, None)

    def _discard_stored(self, sha256: str, why: str) -> None:
        """Remove damaged content, counted once, by whoever removed it.

        Counted before the content is forgotten: a hit marks content used in a
        thread it does not wait for, which may find the damage first, and a reader
        that then misses the forgotten file must find the damage counted.
        """
        removed = self._delete_counted(sha256)
        self._memory_paths.pop(sha256, None)
        self._forget_fingerprint(sha256)
        if removed:
            log.warning("cached content %s is damaged (%s); it is downloaded again", sha256, why)

    def _delete_counted(self, sha256: str) -> bool:
        with self._discard_lock:
            removed = bool(self._content.delete(("c", sha256)))
            if removed:
                self.count("damaged_content")
        return removed

    def _open_checked(self, path: str, size: int | None) -> tuple[BinaryIO, int]:
        """Open a cached file, refusing anything but the file stored (:class:`DamagedContent`);
        returns it and its size.

        No symlink is followed, and the open file must match the fingerprint
        taken when it was stored and the size its lookup recorded. A path whose
        fingerprint this process does not know raises :class:`FileNotFoundError`,
        so the caller asks the store (:meth:`content_path`), which checks it.
        """
        recorded = self._fingerprints.get(path)
        if recorded is None:
            raise FileNotFoundError(errno.ENOENT, "not known to this process; ask the store", path)
        try:
            handle, st = _open_no_follow(path)
        except FileNotFoundError:
            # removed just now, perhaps by a discard that has not counted it yet (it
            # holds the lock from its delete to its count): let it finish first
            with self._discard_lock:
                pass
            raise
        try:
            now = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            problem = (  # the common case first: one tuple compare on every warm hit
                None
                if now == (recorded.dev, recorded.ino, recorded.size, recorded.mtime_ns)
                else _cache_safety.content_problem(st.st_mode, _fingerprint(st), recorded)
            )
            if problem is None and size is not None and st.st_size != size:
                problem = f"is {st.st_size} bytes, not {size}"
            if problem is not None:
                raise DamagedContent(f"{path} {problem}")
        except BaseException:
            handle.close()
            raise
        return handle, st.st_size

    async def read_content(self, sha256: str, path: str, size: int | None) -> bytes:
        """The content of a cached file: the file stored (see :meth:`_open_checked`), and
        with ``verify_on_read`` re-hashed. Raises :class:`DamagedContent` (discard it and
        fetch again) or :class:`FileNotFoundError` (evicted: look it up again)."""
        handle, length = self._open_checked(path, size)
        with handle:
            if length <= _READ_INLINE_BYTES:
                body = handle.read()
            else:
                body = await asyncio.to_thread(handle.read)
        if len(body) != length:
            raise DamagedContent(f"{path} changed while it was read")
        if self.verify_on_read:
            if length <= _READ_INLINE_BYTES:
                digest = hashlib.sha256(body).hexdigest()
            else:
                digest = await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
            if digest != sha256:
                raise DamagedContent(f"{path} does not hash to {sha256}")
        return body

    async def copy_content(self, sha256: str, path: str, size: int | None, target: Path) -> None:
        """Copy a cached file to ``target`` (created or truncated), checked as
        :meth:`read_content` checks, in a thread, in bounded memory."""

        def copy() -> None:
            try:
                copy_checked()
            except BaseException:
                target.unlink(missing_ok=True)  # the caller writes it afresh from S3
                raise

        def copy_checked() -> None:
            source, length = self._open_checked(path, size)
            with source, open(target, "wb") as out:
                digest = hashlib.sha256() if self.verify_on_read else None
                copied = 0 if digest is not None else _send_file(source, out, length)
                while copied < length and (chunk := source.read(_COPY_CHUNK)):
                    if digest is not None:
                        digest.update(chunk)
                    out.write(chunk)
                    copied += len(chunk)
            if copied != length:
                raise DamagedContent(f"{path} changed while it was read")
            if digest is not None and digest.hexdigest() != sha256:
                raise DamagedContent(f"{path} does not hash to {sha256}")

        await asyncio.to_thread(copy)

    def forget_content_path(self, sha256: str) -> None:
        self._memory_paths.pop(sha256, None)

    async def discard(self, sha256: str) -> None:
        """Remove damaged content so that it is downloaded again (counted in
        ``damaged_content``)."""
        self._memory_paths.pop(sha256, None)
        await asyncio.to_thread(self._delete_counted, sha256)

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
            # the stored file is a hard link to the staged one: the same inode, size and
            # mtime, which every later read checks (the tag keeps it with the entry)
            tag = _fingerprint(os.stat(staged.path, follow_symlinks=False)).to_text()
            # add, not set: when another process stored it meanwhile, keep its file
            # (a set would delete that file from under the process reading it)
            key = ("c", staged.sha256)
            added = self._content.add(key, staged, read=True, tag=tag)
            path = self._find_content(staged.sha256)
            if path is None and not added:
                # a row whose file is gone (removed from under the database, say while
                # another process's was moved aside): without this, every read of it
                # would go to S3 until a restart. Replaced once, if still unreadable
                with self._content.transact():
                    if self._find_content(staged.sha256) is None:
                        self._content.delete(key)
                        added = self._content.add(key, staged, read=True, tag=tag)
                path = self._find_content(staged.sha256)
            if added:
                self._evict(keep=staged.sha256)
        # (None: discarded or evicted by another thread meanwhile, its fingerprint gone)
        if path is not None and (fingerprint := self._fingerprints.get(path)) is not None:
            # a hint for the next process's preload; a stale one fails to open and is
            # looked up in the store again
            hint = _cache_safety.join_hint(fingerprint, path)
            self._lookups.set(("path", staged.sha256), hint)
        return path

    def touch(self, sha256: str) -> None:
        """Mark content as recently used (for LRU eviction) in a thread, not waiting.

        Hits served from memory skip the store, whose LRU bookkeeping would
        otherwise see the hottest content as unused.
        """
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to schedule on
            done = asyncio.get_running_loop().run_in_executor(None, self._find_content, sha256)
            done.add_done_callback(self._after_touch)

    def _after_touch(self, done: asyncio.Future[Any]) -> None:
        """A touch that failed (the store locked, say) only loses an LRU mark: note it."""
        if not done.cancelled() and (err := done.exception()) is not None:
            log.debug("could not mark cached content as used: %r", err)

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
            self._forget_fingerprint(sha)
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
        try:
            handle = self._content.get(key, read=True)
        except DamagedContent:  # a symlink in the store: not content, evicted by a read
            return None
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
        """Drop every cached lookup and all content.

        :raises CacheUnavailableError: the cache's database is locked or failing.
        """
        self._memory_lookups.clear()
        self._memory_paths.clear()
        with self._unavailable_on_failure("clear the cache"):
            self._content.clear()
            self._lookups.clear()

    @property
    def content_bytes(self) -> int:
        """Bytes of cached content (what ``size_limit`` bounds)."""
        with self._unavailable_on_failure("read the cache's size"):
            return int(self._content.reset("size"))

    @property
    def content_count(self) -> int:
        """How many distinct contents (by sha256) are cached."""
        with self._unavailable_on_failure("count the cached content"):
            return len(self._content)

    @contextlib.contextmanager
    def _unavailable_on_failure(self, what: str) -> Iterator[None]:
        """A direct call on a failing cache raises the library's error, saying what to do."""
        try:
            yield
        except (sqlite3.Error, diskcache.Timeout) as err:
            fault = _cache_errors.classify(err)
            raise CacheUnavailableError(
                f"could not {what} in {self.directory}: its database is {fault.value} "
                f"({err or 'timed out'}); {_cache_errors.advice(fault)}"
            ) from err

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=True)  # lookups written before close are on disk
        for store in self._stores.values():  # never opens one only to close it
            if store is not None:
                store.close()
