"""Directory-wide download leases: processes sharing a cache download each version once.

Why: processes that share a cache directory (workers of one service) would
otherwise all download the same content at start-up. A lease is a row of the
lookups store, taken with diskcache's ``add`` (atomic across processes), with
an expiry that its holder renews while it works, and the holder's name
(machine, pid, process start time) as its value: a waiter on the same machine
that finds the holder dead (SIGKILL, OOM) takes the lease over at once; a
holder on another machine frees it when it expires, within
:data:`LEASE_SECONDS`. Waiters poll with backoff on the event loop; no thread
blocks.

Not ``diskcache.Lock``: it spins in the calling thread with no timeout and no
owner check (blocking it in threads starves the default executor), and a lock
left by a killed process would hold until someone deletes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from .._policy import cache_safety as _cache_safety
from .._policy.cache_safety import LeaseHolder
from .database import Database
from .events import Events, LeaseTakenOver
from .keys import LeaseKey, VersionKey

__all__ = ["LEASE_SECONDS", "Leases"]

log = logging.getLogger("versioned_async")

#: a download lease lasts this long unless its holder renews it (every third of it)
LEASE_SECONDS = 30.0


class Leases:
    """The download leases of one cache directory."""

    def __init__(self, database: Database, events: Events) -> None:
        self._db = database
        self._events = events

    @contextlib.asynccontextmanager
    async def download_lease(self, key: VersionKey) -> AsyncIterator[bool]:
        """Hold the directory-wide lease on downloading ``key``; yields whether it waited.

        The lease's row, and the holder's name (the first one reads ``/proc``),
        are made in the worker thread that takes the lease, off the event loop.
        """
        lease = LeaseKey(key)
        nonce = secrets.token_hex(8)
        waited = False
        pause = 0.01
        while not await asyncio.to_thread(self._take, lease, nonce):
            waited = True
            await asyncio.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 0.25)
        renewing = asyncio.ensure_future(self._renew_lease(lease, nonce))
        try:
            yield waited
        finally:
            renewing.cancel()
            await asyncio.shield(asyncio.to_thread(self._end, lease, nonce))

    def _take(self, lease: LeaseKey, nonce: str) -> bool:
        return self._take_lease(lease.to_disk(), _holder_token(nonce))

    def _end(self, lease: LeaseKey, nonce: str, *, renew: bool = False) -> None:
        self._end_lease(lease.to_disk(), _holder_token(nonce), renew=renew)

    def _take_lease(self, lease: object, token: str) -> bool:
        """Take the lease if it is free, or if its holder is a dead process of this machine.

        A lease seen held by a live process is not asked for: that is a read,
        which takes no lock, where ``add`` takes the database's write lock;
        waiters polling with ``add`` kept the write lock so busy that other
        processes' writes waited seconds for it.
        """
        held_by = self._db.lookups.get(lease)
        if held_by is None:
            if self._db.lookups.add(lease, token, expire=LEASE_SECONDS):
                return True
            held_by = self._db.lookups.get(lease)
        if held_by is None or not _holder_is_gone(held_by):
            return False
        with self._db.lookups.transact():  # only if no other waiter took it over first
            if self._db.lookups.get(lease) != held_by:
                return False
            self._db.lookups.set(lease, token, expire=LEASE_SECONDS)
        self._events.emit(LeaseTakenOver(str(held_by)))
        log.warning("took over a download lease from a process that died holding it: %s", held_by)
        return True

    async def _renew_lease(self, lease: LeaseKey, nonce: str) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            await asyncio.to_thread(self._end, lease, nonce, renew=True)

    def _end_lease(self, lease: object, token: str, *, renew: bool = False) -> None:
        """Release (or renew) the lease, only if this holder still owns it."""
        with self._db.lookups.transact():
            if self._db.lookups.get(lease) != token:
                return
            if renew:
                self._db.lookups.touch(lease, expire=LEASE_SECONDS)
            else:
                self._db.lookups.delete(lease)


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


def _holder_token(nonce: str) -> str:
    """This process's name on a lease it holds: machine, pid, start time, ``nonce``."""
    return LeaseHolder(_MACHINE, os.getpid(), _own_start(), nonce).to_text()


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
