"""Staging files: content on its way to a cache or a target, told apart from a crash's leftovers.

Why: a download is written to a staging file (the cache's ``staging/*.part``,
``.<target>.<hex>.part`` beside a download's target) and renamed into place
once complete and verified. A process killed in the middle (SIGKILL, the OOM
killer, a lost machine) leaves that file behind, often large. The next start
(or the next download to that target) must remove it, but never a staging file
another live process is still writing: several processes share a cache
directory, and two may download to one folder.

How: a staging file is *claimed* (:func:`claimed`) for its whole life by the
process that creates it: created with ``O_EXCL`` and held under an ``flock``
lock until it has been renamed into place or removed. The kernel drops the lock
when the process dies, however it dies, so a file nobody holds is a leftover
and :func:`sweep` removes it. Writers open it through :func:`open_new`, which
hands out the claimed file, so the lock is on whatever they write.

A file is created, then locked: in between, a sweep in another process may
find it unlocked and remove it. The creator notices (once locked, its file is no
longer at the path) and creates it again, so no staging file is ever trusted
that is not both locked and in place. Where there is no ``fcntl`` (Windows)
nothing can be held: files are removed once :data:`UNLOCKED_STALE_SECONDS` old.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

if sys.platform != "win32":
    import fcntl

__all__ = ["UNLOCKED_STALE_SECONDS", "claimed", "open_new", "sweep"]

#: without ``fcntl``, a staging file this old is taken for a crash's leftover
UNLOCKED_STALE_SECONDS = 3600.0

#: a new file, readable back (a download hashes what it wrote), never through a symlink
_NEW = (
    os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)
_PROBE = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)

#: the staging files this process holds: path -> a descriptor holding the file's lock
_CLAIMS: dict[str, int] = {}


#: how many times a file swept away between its creation and its lock is created again
_CREATE_ATTEMPTS = 5


def _create_locked(path: Path) -> int:
    """A new file at ``path``, locked and still there (see the module's docstring)."""
    for _ in range(_CREATE_ATTEMPTS):
        fd = os.open(path, _NEW, 0o600)
        if sys.platform == "win32":  # pragma: no cover - nothing to lock with
            return fd
        try:
            # blocking: only a sweep looking at the new (empty) file holds it, for an instant
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _is_at(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # swept before it was locked: the name is free again
    raise FileExistsError(f"{path} was removed {_CREATE_ATTEMPTS} times as it was created")


@contextlib.contextmanager
def claimed(path: Path) -> Iterator[Path]:
    """Create ``path`` (a new, empty staging file) and hold it as this process's until the
    block ends; the caller renames it into place or removes it within the block."""
    key = str(path)
    _CLAIMS[key] = _create_locked(path)
    try:
        yield path
    finally:
        os.close(_CLAIMS.pop(key))


def open_new(path: Path) -> int:
    """A descriptor (the caller closes it) on an empty new file at ``path``, read-write.

    A claimed ``path`` gives the claimed file, emptied (or, when it was removed
    meanwhile, a new one claimed in its place); any other is created (``O_EXCL``:
    never over an existing file).
    """
    key = str(path)
    held = _CLAIMS.get(key)
    if held is None:
        return os.open(path, _NEW, 0o600)
    if _is_at(held, path):
        # emptied only when it holds something: ext4 flushes a file truncated to zero
        # when it is closed (its auto_da_alloc), which cost every download ~100 ms per
        # 256 MiB for a file that was empty anyway
        if os.fstat(held).st_size:
            os.ftruncate(held, 0)
        return os.dup(held)
    fresh = _create_locked(path)  # removed meanwhile (content refused, read again)
    os.close(_CLAIMS[key])
    _CLAIMS[key] = fresh
    return os.dup(fresh)


def _is_at(fd: int, path: Path) -> bool:
    try:
        there = os.lstat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (there.st_dev, there.st_ino) == (held.st_dev, held.st_ino)


def sweep(directory: Path, pattern: str) -> list[Path]:
    """Remove the staging files in ``directory`` matching ``pattern`` that no live process
    holds; returns those removed. Blocking (a directory listing): call it in a thread."""
    removed = []
    now = time.time()
    for path in directory.glob(pattern):
        with contextlib.suppress(OSError):
            if _is_leftover(path, now):
                removed.append(path)
    return removed


def _is_leftover(path: Path, now: float) -> bool:
    """Whether ``path`` is a staging file nobody holds, and so removed now."""
    if sys.platform == "win32":  # pragma: no cover - no flock: go by age
        if path.stat().st_mtime < now - UNLOCKED_STALE_SECONDS:
            path.unlink()
            return True
        return False
    fd = os.open(path, _PROBE)  # a symlink or anything odd planted there: OSError, kept
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live process holds it
        if not _is_at(fd, path):
            return False  # replaced meanwhile: not the file looked at
        path.unlink()  # under the lock: its creator is gone, nobody takes it now
        return True
    finally:
        os.close(fd)
