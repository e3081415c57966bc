"""Lookups with a TTL: alias -> versions, version -> (sha256, size), in memory and on disk.

A lookup is recorded when it is fetched from AWS (:meth:`Lookups.remember`)
as ``(fetched_at, value)``, so that any process sharing the directory can
tell its age; the cached reader decides what that age allows
(:mod:`versioned_async._policy.freshness`). Memory answers every hit: no SQLite, no
thread hop. Disk is read once per process at start-up, all lookups in one
query (:meth:`Lookups.load`), and again for a key only when memory does not
have it (another process may have written it). Writes go through to disk in
the background, batched per loop turn, in order, on one writer thread.

The preload keeps the rows as they are on disk and decodes a row into its
typed key only when that lookup is asked for: decoding all of them up front
cost a start-up a quarter more (0.3 ms on 300 lookups).

The preload's one query runs when the cache is opened (:meth:`Lookups.start_preload`),
on the thread opening it, whose database connection is open already; the first
lookup takes the rows with no thread trip. In a thread at the first lookup, it
cost a restarted service ~3 ms of waiting (a thread and its own connection)
against ~0.5-1 ms here (``python -m benchmarks --only restart``; 120 rows).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .._coalesce import Coalescer, SingleFlight
from .database import CACHE_FAILURES, Database
from .keys import Entry, LookupKey, PathHintKey, from_disk
from .settings import CacheSettings

__all__ = ["Lookups"]

#: what the start-up query read: every stored ``(key, value)`` row
_Preloaded = list[tuple[Any, Any]]

log = logging.getLogger("versioned_async")


class Lookups:
    """The lookups of one cache directory, as this process knows them.

    ``on_path_hint(sha256, hint)`` receives the path hints the start-up
    preload finds (where content was stored: see
    :meth:`.content.ContentStore.adopt_hint`).
    """

    def __init__(
        self,
        database: Database,
        settings: CacheSettings,
        flights: SingleFlight,
        on_path_hint: Callable[[str, object], None],
    ) -> None:
        self._db = database
        self._settings = settings
        self._flights = flights
        self._on_path_hint = on_path_hint
        self._memory: dict[LookupKey, Entry] = {}
        #: what the preload read, by on-disk tuple, not yet asked for (see get)
        self._rows: dict[object, Entry] = {}
        self._preloaded = False
        #: the rows start_preload read when the cache was opened, not taken yet
        self._startup_rows: _Preloaded | None = None
        # lookups asked or written in one loop turn share one thread trip (a cold
        # start-up asks for all of them at once)
        self._disk_reads: Coalescer[LookupKey, Entry] = Coalescer(self._read)
        self._disk_writes: Coalescer[LookupKey, None] = Coalescer(self._write)
        self._unwritten: dict[LookupKey, Entry | None] = {}
        #: lookups forgotten while the disk could not be written: key -> clock() then.
        #: Older entries on disk are not read back, and are deleted at the next write
        self._tombstones: dict[LookupKey, float] = {}
        self._writer: ThreadPoolExecutor | None = None  # started on the first write

    def get(self, key: LookupKey) -> Entry | None:
        """``(fetched_at, value)`` from memory, or ``None`` when memory has not seen it."""
        found = self._memory.get(key)
        if found is None and self._rows:
            found = self._rows.pop(key.to_disk(), None)
            if found is not None:
                self._memory[key] = found
        return found

    async def load(self, key: LookupKey) -> Entry | None:
        """The lookup from memory, else from disk (another process or an earlier run).

        The first miss of a process takes every stored lookup and content path,
        read when the cache was opened (else read now, in one thread trip), so a
        service starting on a warm cache pays no hop per artifact.
        """
        found = self.get(key)
        if found is not None:
            return found
        if self._startup_rows is not None:  # read when the cache was opened: no hop
            rows, self._startup_rows = self._startup_rows, None
            self._apply_preload(rows)
            return self.get(key)
        if self._db.bypassed:
            return None
        if not self._preloaded:
            try:
                await self._flights.run("preload", self._read_preload)
            except CACHE_FAILURES as err:  # a broken cache: as if it held nothing
                self._db.degrade(err)
                return None
            return self.get(key)  # the disk was read just now
        # written by another process since the preload, perhaps
        return await self.reload(key)

    async def reload(self, key: LookupKey) -> Entry | None:
        """The lookup as stored on disk now (another process may have written it);
        ``None`` as well while the cache fails (see :meth:`.database.Database.degrade`)."""
        if self._db.bypassed:
            return None
        try:
            found = await self._disk_reads(key)
        except CACHE_FAILURES as err:
            self._db.degrade(err)
            return None
        if found is not None and self._is_buried(key, found):
            found = None
        if found is not None:
            known = self._memory.get(key)
            if known is None or known[0] < found[0]:
                self._memory[key] = found
        return found

    async def remember(self, key: LookupKey, value: Any) -> float:
        """Record a lookup just fetched from AWS; returns when (``fetched_at``)."""
        entry = (self._settings.clock(), value)
        self._memory[key] = entry
        await self._write_through(key, entry)
        return entry[0]

    async def forget(self, key: LookupKey) -> None:
        """Drop a lookup AWS says no longer exists."""
        self._memory.pop(key, None)
        if self._rows:
            self._rows.pop(key.to_disk(), None)
        await self._write_through(key, None)

    def clear_memory(self) -> None:
        self._memory.clear()
        self._rows.clear()

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=True)  # lookups written before close are on disk

    # -- disk ------------------------------------------------------------------------

    def _is_buried(self, key: LookupKey, entry: Entry) -> bool:
        """Whether ``entry``, read from disk, was forgotten by this process since
        (a ``forget`` that could not reach the disk: see :meth:`_write_through`)."""
        forgotten_at = self._tombstones.get(key)
        return forgotten_at is not None and entry[0] <= forgotten_at

    def start_preload(self) -> None:
        """Read every stored row now, on this thread (the one opening the cache, whose
        connection to the database is open already); the first :meth:`load` takes
        them. A failure is left for that load, which reads again and judges it."""
        if self._preloaded or self._startup_rows is not None:
            return
        try:
            self._startup_rows = self._db.stored_rows()
        except CACHE_FAILURES as err:
            log.debug("reading the lookups at start-up failed (%s); the first read retries", err)

    async def _read_preload(self) -> None:
        """The start-up rows, read now in a thread (opening the cache could not)."""
        self._apply_preload(await asyncio.to_thread(self._db.stored_rows))

    def _apply_preload(self, rows: _Preloaded) -> None:
        """Every stored lookup into memory (as its row: see :meth:`get`), and every
        path hint to the content store; lookups forgotten since are left out."""
        buried = {key.to_disk(): at for key, at in self._tombstones.items()}
        for raw, value in rows:
            kind = raw[0] if type(raw) is tuple and raw else None
            if kind == "path":
                hint = from_disk(raw)
                if isinstance(hint, PathHintKey):
                    self._on_path_hint(hint.sha256, value)
            elif kind in ("v", "a"):
                forgotten_at = buried.get(raw)
                if forgotten_at is None or value[0] > forgotten_at:
                    self._rows.setdefault(raw, value)
        self._preloaded = True

    async def _read(self, keys: Sequence[LookupKey]) -> dict[LookupKey, Entry]:
        def read() -> dict[LookupKey, Entry]:
            store = self._db.lookups
            found = ((k, store.get(k.to_disk())) for k in keys)
            return {k: v for k, v in found if v is not None}

        return await asyncio.to_thread(read)

    async def _write_through(self, key: LookupKey, entry: Entry | None) -> None:
        """Write (``None``: delete) a lookup on disk; best effort: a failing cache is
        bypassed (:meth:`.database.Database.degrade`), and the lookup stays in this
        process's memory.

        A delete that cannot reach the disk is kept as a tombstone: the entry
        left on disk (a deleted alias's old target, still within its TTL) is
        not read back once the cache is used again, and is deleted at the next
        write that succeeds.
        """
        if self._db.bypassed:
            if entry is None:
                self._tombstones[key] = self._settings.clock()
            return
        self._unwritten[key] = entry
        try:
            await self._disk_writes(key)
        except CACHE_FAILURES as err:
            self._unwritten.pop(key, None)
            if entry is None:
                self._tombstones[key] = self._settings.clock()
            self._db.degrade(err)

    async def _write(self, keys: Sequence[LookupKey]) -> dict[LookupKey, None]:
        """Write the entries queued for ``keys``, all in one thread trip and transaction."""
        entries = [(k, self._unwritten.pop(k)) for k in keys if k in self._unwritten]
        graves = dict(self._tombstones)

        def write() -> None:
            store = self._db.lookups
            with store.transact():
                for key, forgotten_at in graves.items():  # only what is older than the forget
                    stored = store.get(key.to_disk())
                    if stored is not None and stored[0] <= forgotten_at:
                        store.delete(key.to_disk())
                for key, entry in entries:
                    if entry is None:
                        store.delete(key.to_disk())
                    else:
                        store.set(key.to_disk(), entry)

        # one writer thread: a later write never lands before an earlier one
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="versioned-async-cache")
        await asyncio.get_running_loop().run_in_executor(self._writer, write)
        for key, forgotten_at in graves.items():  # on disk now
            if self._tombstones.get(key) == forgotten_at:
                del self._tombstones[key]
        return {}
