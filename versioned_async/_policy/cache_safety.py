"""Pure decisions that keep a cache directory from serving bytes it did not store.

Three questions, each a function of stat results and records, so the rules are
unit-tested without making files of another user:

- may this folder of the cache be used (:func:`judge_folder`)? As OpenSSH's
  StrictModes: a folder another user owns, or that others may write in, lets
  them swap what we serve; a symbolic link sends our reads elsewhere. And the
  folders above it (:func:`judge_ancestor`): whoever may rename in one of
  them can swap the whole cache directory.
- is this open cached file the one we stored (:func:`content_problem`)? A
  :class:`Fingerprint` (device, inode, size, mtime) taken when the content was
  published and compared with the open file's ``fstat``: a file replaced (a new
  inode) or written in place (a new mtime) is caught without re-hashing.
- is a download lease's holder gone (:func:`holder_is_gone`)? A lease records
  its holder's process (:class:`LeaseHolder`); on the same machine and pid
  namespace a dead pid, or a pid now owned by a process started at another
  time, means the holder was killed and the lease can be taken over at once.
"""

from __future__ import annotations

import stat

import attrs

from .._wording import Words

__all__ = [
    "Fingerprint",
    "AncestorVerdict",
    "FolderVerdict",
    "LeaseHolder",
    "content_problem",
    "folder_advice",
    "holder_is_gone",
    "judge_ancestor",
    "judge_folder",
]

#: permission bits that let another user change what a folder holds
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


# -- folders -----------------------------------------------------------------------------


@attrs.frozen
class FolderVerdict:
    """What to do with one folder: use it, tighten it first (``chmod``), or refuse it."""

    tighten_to: int | None = None  #: the mode to chmod to before use
    refuse: str | None = None  #: why it cannot be used; the error message's middle
    #: whether ``refuse`` is a risk of another user's swap, or the path is just unusable
    unsafe: bool = True

    @property
    def ok(self) -> bool:
        return self.tighten_to is None and self.refuse is None


#: why a path that should be a folder is refused when it is a file (or anything else)
NOT_A_DIRECTORY = "is not a directory"


def judge_folder(mode: int, uid: int, *, me: int, top: bool) -> FolderVerdict:
    """May a folder of the cache, ``lstat``-ed as (``mode``, ``uid``), be used by uid ``me``?

    Refused: a symbolic link or not a directory (inside the cache we never
    follow links), or owned by another user, root included (whoever owns it can
    swap its files; we could not fix its mode either). Tightened: a folder we
    own that others may write in (the top folder: that others may enter at all,
    as it always was), because a too open mode on a folder we own is usually a
    umask or a ``mkdir -m 777``, and after the chmod nobody else can change it;
    what they might have planted while it was open is caught by the other checks
    (every folder below is judged too, every file is fingerprinted).
    """
    if stat.S_ISLNK(mode):
        return FolderVerdict(refuse="is a symbolic link (the cache never follows links)")
    if not stat.S_ISDIR(mode):
        return FolderVerdict(refuse=NOT_A_DIRECTORY, unsafe=False)
    if uid != me:
        return FolderVerdict(refuse=f"is owned by uid {uid}, not by uid {me} running this process")
    perms = stat.S_IMODE(mode)
    loose = perms & (0o077 if top else _OTHERS_WRITE)
    if loose:
        return FolderVerdict(tighten_to=perms & ~0o077)
    return _USABLE


_USABLE = FolderVerdict()


@attrs.frozen
class AncestorVerdict:
    """What to do about one folder above the cache directory: nothing, warn, or refuse."""

    warn: str | None = None  #: the risk, for a log line (after the folder's name)
    refuse: str | None = None  #: why the cache directory cannot be used below it
    #: whether ``refuse`` is a risk of another user's swap, or the path is just unusable
    unsafe: bool = True

    @property
    def ok(self) -> bool:
        return self.warn is None and self.refuse is None


def judge_ancestor(mode: int, uid: int, *, me: int) -> AncestorVerdict:
    """May the cache directory sit below a folder ``lstat``-ed as (``mode``, ``uid``)?

    Whoever may rename entries of a folder above the cache directory can move
    the cache directory away and put a tree of their own in its place, after
    it was checked. Refused: a folder owned by another user than us or root
    (OpenSSH's StrictModes rule for the folders above ``~/.ssh``), a symbolic
    link (the caller resolved the path: one now is a swap) or not a directory.
    Warned about, not refused: a folder of ours or root's that others may
    write in without the sticky bit (``/shared`` 0777). A Kubernetes
    ``emptyDir`` volume is exactly that (root, 0777, not sticky), and a cache
    folder inside such a volume is the documented recipe: there, only
    containers of the same pod can write it. With the sticky bit (``/tmp``)
    only an entry's owner may rename it: fine.
    """
    if stat.S_ISLNK(mode):
        return AncestorVerdict(refuse="is a symbolic link (the cache directory was resolved)")
    if not stat.S_ISDIR(mode):
        return AncestorVerdict(refuse=NOT_A_DIRECTORY, unsafe=False)
    if uid not in (me, 0):
        return AncestorVerdict(
            refuse=f"is owned by uid {uid}, who could rename the cache directory away "
            "and put their own in its place"
        )
    if stat.S_IMODE(mode) & _OTHERS_WRITE and not mode & stat.S_ISVTX:
        return AncestorVerdict(
            warn="is writable by other users and has no sticky bit: another user could "
            "rename the cache directory away and put their own in its place"
        )
    return _NOTHING_TO_SAY


_NOTHING_TO_SAY = AncestorVerdict()


def folder_advice(path: str, me: int, refuse: str, *, ancestor: bool = False) -> Words:
    """What the person running the service can do about a refused folder (``ancestor``:
    one above the cache directory), in Python's words and the command line's."""
    if ancestor and refuse == NOT_A_DIRECTORY:
        return Words(
            f"give LocalCache a cache directory whose path has folders only ({path} is not one)",
            f"pass a --cache-dir whose path has folders only ({path} is not one)",
        )
    if ancestor:
        return Words(
            f"give LocalCache a cache directory inside a folder of your own (uid {me})",
            f"pass a --cache-dir inside a folder of your own (uid {me})",
        )
    if "owned by" in refuse:
        return Words(
            f"chown -R {me} {path} if it is yours, or give LocalCache another cache directory",
            f"chown -R {me} {path} if it is yours, or pass another --cache-dir",
        )
    return Words(
        f"remove {path} (LocalCache creates what it needs), or use another cache directory",
        f"remove {path} (the cache creates what it needs), or pass another --cache-dir",
    )


# -- content files -------------------------------------------------------------------------


@attrs.frozen
class Fingerprint:
    """Which file, of which size and last write, a content file was when it was stored.

    Hard links keep all four (publishing links the staged file into the store);
    replacing the file changes the inode, writing into it changes the mtime.
    """

    dev: int
    ino: int
    size: int
    mtime_ns: int

    def to_text(self) -> str:
        return f"{self.dev}:{self.ino}:{self.size}:{self.mtime_ns}"

    @classmethod
    def parse(cls, text: object) -> Fingerprint | None:
        """The fingerprint written by :meth:`to_text`; ``None`` for anything else."""
        if not isinstance(text, str):
            return None
        parts = text.split(":")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            return None
        dev, ino, size, mtime_ns = (int(p) for p in parts)
        return cls(dev, ino, size, mtime_ns)


def content_problem(mode: int, now: Fingerprint, recorded: Fingerprint | None) -> str | None:
    """Why an open cached file (``fstat``: ``mode``, ``now``) is not the content stored,
    or ``None`` when it is. ``recorded`` is ``None`` for content stored before
    fingerprints were: the caller verifies it by its sha256 instead."""
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    if recorded is None or now == recorded:
        return None
    if (now.dev, now.ino) != (recorded.dev, recorded.ino):
        return "was replaced by another file"
    return "was written to since it was stored"


def split_hint(text: object) -> tuple[Fingerprint, str] | None:
    """A path hint (``"<fingerprint> <path>"``); ``None`` for an older bare path."""
    if not isinstance(text, str) or " " not in text:
        return None
    head, path = text.split(" ", 1)
    fingerprint = Fingerprint.parse(head)
    return None if fingerprint is None else (fingerprint, path)


def join_hint(fingerprint: Fingerprint, path: str) -> str:
    return f"{fingerprint.to_text()} {path}"


# -- download leases -------------------------------------------------------------------------


@attrs.frozen
class LeaseHolder:
    """Who holds a download lease: a process on a machine, and a token of its own.

    ``machine`` names the kernel and pid namespace (boot id + pid namespace),
    so a pid is only ever judged where it means the same process; ``started``
    is the process's start time (kernel clock ticks since boot, ``None`` where
    unknown), which tells a reused pid from the holder.
    """

    machine: str
    pid: int
    started: int | None
    token: str

    def to_text(self) -> str:
        return f"v1 {self.machine} {self.pid} {self.started or '-'} {self.token}"

    @classmethod
    def parse(cls, text: object) -> LeaseHolder | None:
        """The holder written by :meth:`to_text`; ``None`` for an older, bare token."""
        if not isinstance(text, str):
            return None
        parts = text.split(" ")
        if len(parts) != 5 or parts[0] != "v1" or not parts[2].isdigit():
            return None
        started = None if parts[3] == "-" else int(parts[3]) if parts[3].isdigit() else None
        return cls(parts[1], int(parts[2]), started, parts[4])


def holder_is_gone(
    holder: LeaseHolder | None, *, machine: str, running: bool, started: int | None
) -> bool:
    """Whether the lease's holder is known to be dead, so its lease may be taken now.

    ``running`` and ``started`` describe the process that has the holder's pid
    on this machine now (whether one exists; its start time, ``None`` where
    unknown). Only provable on the same ``machine``: elsewhere (another host,
    container or boot) the lease expires on its own. An unreadable or older
    lease record is never taken over.
    """
    if holder is None or holder.machine != machine:
        return False
    if not running:
        return True
    # a pid reused by a process started at another time is not the holder
    return holder.started is not None and started is not None and started != holder.started
