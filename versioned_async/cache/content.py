"""Content by sha256, on disk: checked opens, reads and copies, publishing, eviction.

Downloads are staged in ``directory/staging`` and verified before they are
hard-linked into the store (:meth:`ContentStore.publish`), so a reader never
sees a partial or unverified file, and eviction never pulls a file from under
a reader (POSIX keeps an open file readable after it is unlinked). A stored
file is read only if it is still the file stored: opened without following
links and checked against the fingerprint (device, inode, size, mtime) taken
when it was published (:meth:`ContentStore.open_checked`).

Eviction is ours, not diskcache's: content that an alias the cache knows
points at is kept (the pure policy is :mod:`versioned_async._policy.eviction`), so a
service restarting while AWS is down still finds it; other content goes least
recently used first.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import secrets
import sqlite3
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import attrs
import diskcache

from .. import _staging
from .._policy import cache_safety as _cache_safety
from .._policy.cache_safety import Fingerprint
from .events import ContentDamaged, Events, Evicted
from .eviction import evict
from .keys import ContentKey, PathHintKey
from .settings import CacheSettings

if TYPE_CHECKING:
    from .database import Database

__all__ = ["ContentDisk", "ContentStore", "DamagedContent", "Staged"]

log = logging.getLogger("versioned_async")

#: below this, reading a cached file inline is cheaper than a thread hop (~140 us)
_READ_INLINE_BYTES = 1 << 20
_COPY_CHUNK = 1 << 20


@attrs.frozen
class Staged:
    """A verified download waiting in the staging directory, owned by its creator."""

    path: Path
    sha256: str
    size: int


class DamagedContent(Exception):
    """A cached file is not the content stored under its sha256: discard it, fetch again."""


# -- content files --------------------------------------------------------------------------

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


class ContentDisk(diskcache.Disk):  # type: ignore[misc]
    """A diskcache Disk that stores a :class:`Staged` file by hard-linking it: no copy,
    and opens stored files without following symlinks."""

    def __init__(self, directory: str, **settings: Any) -> None:
        super().__init__(directory, **settings)
        self._root = directory

    def fetch(self, mode: int, filename: str, value: Any, read: bool) -> Any:
        if mode == diskcache.core.MODE_BINARY and read:
            return _open_no_follow(os.path.join(self._root, filename))[0]
        return super().fetch(mode, filename, value, read)

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        if not isinstance(value, Staged):
            return super().store(value, read, key=key)
        filename, full_path = self.filename(key, value)
        folder = Path(self._root)
        for part in Path(filename).parent.parts:  # each level 0700: makedirs sets only the last
            folder = folder / part
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=0o700)
        os.link(value.path, full_path)
        return value.size, diskcache.core.MODE_BINARY, filename, None


# -- the store ------------------------------------------------------------------------------


class ContentStore:
    """The cached content of one cache directory, and what this process knows of it:
    where each content is stored (a hit costs no SQLite) and each file's fingerprint.
    """

    def __init__(
        self,
        database: Database,
        staging: Path,
        settings: CacheSettings,
        events: Events,
    ) -> None:
        self._db, self._events = database, events
        #: read at each use: a setting changed on the LocalCache applies at once
        self._settings = settings
        #: where downloads wait, until verified and published
        self.staging = staging
        self._paths: dict[str, str] = {}
        #: path -> what the file was when stored; paths are random, never reused.
        #: Kept only while the content is stored (see _remember_fingerprint)
        self._fingerprints: dict[str, Fingerprint] = {}
        #: sha256 -> its path in _fingerprints, to forget it when the content goes
        self._fingerprint_paths: dict[str, str] = {}
        self._fingerprints_lock = threading.Lock()  # threads store, evict and discard
        # a discard deletes and counts under this lock, so whoever sees the entry gone
        # (a reader falling back to S3) also sees it counted
        self._discard_lock = threading.Lock()
        self._touched: dict[str, float] = {}
        self._warned_pinned_over = False
        database.on_content_replaced = self._paths.clear
        self._sweep_staging()

    # -- where content is -----------------------------------------------------------

    def path_now(self, sha256: str) -> str | None:
        """The file holding ``sha256`` if this process knows it: no I/O.

        The file may have been evicted since; opening it then fails with
        :class:`FileNotFoundError` and :meth:`path` asks the store.
        """
        return self._paths.get(sha256)

    async def path(self, sha256: str) -> str | None:
        """The file holding ``sha256`` according to the store, or ``None``.

        The stored file is checked against its fingerprint; one that changed is
        discarded (counted in ``damaged_content``) and ``None`` returned.
        """
        path = await asyncio.to_thread(self._find, sha256)
        if path is None:
            self._paths.pop(sha256, None)
        else:
            self._paths[sha256] = path
            self._touched[sha256] = self._settings.clock()  # the store lookup counted as a use
        return path

    def adopt_hint(self, sha256: str, text: object) -> None:
        """Take a path hint read at start-up (``"<fingerprint> <path>"``): the next read
        of ``sha256`` opens that file, checked against that fingerprint, with no SQLite."""
        hint = _cache_safety.split_hint(text)
        if hint is None:  # written before fingerprints: the store is asked instead
            return
        if sha256 not in self._fingerprint_paths:
            self._remember_fingerprint(sha256, hint[1], hint[0])
        self._paths.setdefault(sha256, hint[1])
        self._touched.setdefault(sha256, self._settings.clock())  # no LRU write per hit at start

    def forget_path(self, sha256: str) -> None:
        self._paths.pop(sha256, None)

    def forget_paths(self) -> None:
        self._paths.clear()

    def _find(self, sha256: str) -> str | None:
        """The stored file of ``sha256`` if it is the file stored; a changed one is discarded.

        Runs in a thread. Content stored before fingerprints were recorded is
        checked once by its sha256 instead, and its fingerprint kept in memory.
        """
        try:
            handle, tag = self._db.content.get(ContentKey(sha256).to_disk(), read=True, tag=True)
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
        self._paths.pop(sha256, None)
        self._forget_fingerprint(sha256)
        if removed:
            log.warning("cached content %s is damaged (%s); it is downloaded again", sha256, why)

    def _delete_counted(self, sha256: str) -> bool:
        with self._discard_lock:
            removed = bool(self._db.content.delete(ContentKey(sha256).to_disk()))
            if removed:
                self._events.emit(ContentDamaged(sha256))
        return removed

    # -- reading ---------------------------------------------------------------------

    def open_checked(self, path: str, size: int | None) -> tuple[BinaryIO, int]:
        """Open a cached file, refusing anything but the file stored (:class:`DamagedContent`);
        returns it and its size.

        No symlink is followed, and the open file must match the fingerprint
        taken when it was stored and the size its lookup recorded. A path whose
        fingerprint this process does not know raises :class:`FileNotFoundError`,
        so the caller asks the store (:meth:`path`), which checks it.
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

    async def read(self, sha256: str, path: str, size: int | None) -> bytes:
        """The content of a cached file: the file stored (see :meth:`_open_checked`), and
        with ``verify_on_read`` re-hashed. Raises :class:`DamagedContent` (discard it and
        fetch again) or :class:`FileNotFoundError` (evicted: look it up again)."""
        handle, length = self.open_checked(path, size)
        with handle:
            if length <= _READ_INLINE_BYTES:
                body = handle.read()
            else:
                body = await asyncio.to_thread(handle.read)
        if len(body) != length:
            raise DamagedContent(f"{path} changed while it was read")
        if self._settings.verify_on_read:
            if length <= _READ_INLINE_BYTES:
                digest = hashlib.sha256(body).hexdigest()
            else:
                digest = await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
            if digest != sha256:
                raise DamagedContent(f"{path} does not hash to {sha256}")
        return body

    async def copy(self, sha256: str, path: str, size: int | None, target: Path) -> None:
        """Copy a cached file to ``target`` (created or truncated), checked as
        :meth:`read` checks, in a thread, in bounded memory."""

        def copy() -> None:
            try:
                copy_checked()
            except BaseException:
                target.unlink(missing_ok=True)  # the caller writes it afresh from S3
                raise

        def copy_checked() -> None:
            source, length = self.open_checked(path, size)
            with source, open(target, "wb") as out:
                digest = hashlib.sha256() if self._settings.verify_on_read else None
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

    async def discard(self, sha256: str) -> None:
        """Remove damaged content so that it is downloaded again (counted in
        ``damaged_content``)."""
        self._paths.pop(sha256, None)
        await asyncio.to_thread(self._delete_counted, sha256)

    def hit(self, sha256: str) -> None:
        """A hit served from memory: tell the store it was used, at most once a TTL."""
        now = self._settings.clock()
        if now - self._touched.get(sha256, -1e18) >= max(self._settings.ttl, 1.0):
            self._touched[sha256] = now
            self.touch(sha256)

    def touch(self, sha256: str) -> None:
        """Mark content as recently used (for LRU eviction) in a thread, not waiting.

        Hits served from memory skip the store, whose LRU bookkeeping would
        otherwise see the hottest content as unused.
        """
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to schedule on
            done = asyncio.get_running_loop().run_in_executor(None, self._find, sha256)
            done.add_done_callback(self._after_touch)

    def _after_touch(self, done: asyncio.Future[Any]) -> None:
        """A touch that failed (the store locked, say) only loses an LRU mark: note it."""
        if not done.cancelled() and (err := done.exception()) is not None:
            log.debug("could not mark cached content as used: %r", err)

    # -- storing ---------------------------------------------------------------------

    def new_staging_path(self) -> Path:
        return self.staging / f"{secrets.token_hex(12)}.part"

    async def publish(self, staged: Staged) -> str | None:
        """Add a verified staged file to the store; returns its cached path.

        ``None`` when it is larger than the cache may hold. The staged file
        stays its creator's to read and then delete.
        """
        if staged.size > self._settings.size_limit:
            return None
        path = await asyncio.to_thread(self._publish, staged)
        if path is not None:
            self._paths[staged.sha256] = path
        return path

    def _publish(self, staged: Staged) -> str | None:
        path = self._find(staged.sha256)
        if path is None:
            # the stored file is a hard link to the staged one: the same inode, size and
            # mtime, which every later read checks (the tag keeps it with the entry)
            tag = _fingerprint(os.stat(staged.path, follow_symlinks=False)).to_text()
            # add, not set: when another process stored it meanwhile, keep its file
            # (a set would delete that file from under the process reading it)
            key = ContentKey(staged.sha256).to_disk()
            added = self._db.content.add(key, staged, read=True, tag=tag)
            path = self._find(staged.sha256)
            if path is None and not added:
                # a row whose file is gone (removed from under the database, say while
                # another process's was moved aside): without this, every read of it
                # would go to S3 until a restart. Replaced once, if still unreadable
                with self._db.content.transact():
                    if self._find(staged.sha256) is None:
                        self._db.content.delete(key)
                        added = self._db.content.add(key, staged, read=True, tag=tag)
                path = self._find(staged.sha256)
            if added:
                self._evict(keep=staged.sha256)
        # (None: discarded or evicted by another thread meanwhile, its fingerprint gone)
        if path is not None and (fingerprint := self._fingerprints.get(path)) is not None:
            # a hint for the next process's preload; a stale one fails to open and is
            # looked up in the store again
            hint = _cache_safety.join_hint(fingerprint, path)
            self._db.lookups.set(PathHintKey(staged.sha256).to_disk(), hint)
        return path

    # -- eviction --------------------------------------------------------------------

    def _evict(self, keep: str) -> None:
        """Bring content under ``size_limit`` (see :func:`.eviction.evict`), then forget
        what was removed. Called after each store, in its thread. Best effort: should
        the store be busy, the content stays over the limit until the next store."""
        try:
            plan = evict(self._db, self._settings.size_limit, keep=keep)
        except (diskcache.Timeout, sqlite3.Error, OSError) as err:
            log.warning("could not evict cached content (%s); trying again at the next store", err)
            return
        for sha in plan.evict:
            self._paths.pop(sha, None)
            self._forget_fingerprint(sha)
            self._events.emit(Evicted(sha))
        if plan.pinned_exceed(self._settings.size_limit) and not self._warned_pinned_over:
            self._warned_pinned_over = True
            log.warning(
                "content that aliases point at takes %d bytes, more than the cache's "
                "size_limit of %d: it is kept anyway; raise size_limit",
                plan.pinned_bytes,
                self._settings.size_limit,
            )

    def _sweep_staging(self) -> None:
        """Remove downloads a crashed process left half-way: the staging files no live
        process holds (:mod:`.._staging`)."""
        for part in _staging.sweep(self.staging, "*.part"):
            log.info("removed %s, a download a stopped process left half-way", part)
