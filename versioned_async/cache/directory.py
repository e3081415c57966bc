"""The cache directory must be this user's alone, before anything is read from it.

As OpenSSH's StrictModes asks of ``~/.ssh``: a folder in it that another user
owns, or that is a symbolic link, is refused
(:class:`~versioned_async.exc.CacheDirectoryError`); a folder this user owns
but others may write in is made private (``chmod go-rwx``) with a warning; the
folders above it are judged too. The decisions are pure
(:mod:`versioned_async._policy.cache_safety`); this module walks the disk.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from .._policy import cache_safety as _cache_safety
from .._wording import Words
from ..exc import CacheDirectoryError

__all__ = ["secure_directory"]

log = logging.getLogger("versioned_async")


def secure_directory(directory: Path, folders: Sequence[str]) -> Path:
    """Create the cache directory and its ``folders`` private (0700), or check that
    existing ones are only ours, all the way down, before anything is read from them;
    returns the resolved path checked, the one every later open must use.

    Each folder is judged before anything inside it is looked at or created
    (:func:`.._policy.cache_safety.judge_folder`): refused with
    :class:`~versioned_async.exc.CacheDirectoryError`, tightened, or used. A
    symlink to a folder anywhere inside is refused; a symlink where a content
    file should be is left to the read path, which discards it. The folders
    above are judged too (:func:`.._policy.cache_safety.judge_ancestor`): one of
    another user is refused, one others may rename in is warned about.
    """
    me = os.geteuid() if hasattr(os, "geteuid") else -1
    if me == -1:  # no POSIX owners (Windows): nothing to judge
        for folder in (directory, *(directory / f for f in folders)):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return directory
    _judge_ancestors(directory, me)
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    except OSError as err:  # a read-only disk, no permission, a place folders cannot be
        raise CacheDirectoryError(
            str(directory),
            str(directory),
            f"cannot be created ({err.strerror or err})",
            Words(
                "give LocalCache a cache directory this process can create, or create it first",
                "pass a --cache-dir this process can create, or create it first",
            ),
            unsafe=False,
        ) from err
    # a symlink given as the directory itself is the caller's choice: judge its target
    top = os.path.realpath(directory)

    def judge(folder: str, st: os.stat_result, *, is_top: bool = False) -> None:
        verdict = _cache_safety.judge_folder(st.st_mode, st.st_uid, me=me, top=is_top)
        if verdict.refuse is not None:
            advice = _cache_safety.folder_advice(folder, me, verdict.refuse)
            raise CacheDirectoryError(
                str(directory), folder, verdict.refuse, advice, unsafe=verdict.unsafe
            )
        if verdict.tighten_to is not None:
            try:
                os.chmod(folder, verdict.tighten_to, follow_symlinks=False)
            except (OSError, NotImplementedError) as err:
                raise CacheDirectoryError(
                    str(directory),
                    folder,
                    f"is writable by other users and could not be made private ({err})",
                    Words(
                        f"chmod 700 {folder}, or give LocalCache another cache directory",
                        f"chmod 700 {folder}, or pass another --cache-dir",
                    ),
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
            raise CacheDirectoryError(
                str(directory), path, verdict.refuse, advice, unsafe=verdict.unsafe
            )
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
