"""Which repository the table serves: its record, written by bootstrap, checked once.

A :class:`TableOwner` belongs to one repository's catalog. It reads the table
record (:class:`~.._codec.TableRecord`) at the first table operation that
needs it, lets :mod:`.._policy.table_record` judge it, and remembers the
verdict for the repository's lifetime: a table that serves another bucket or
prefix refuses every later call without another request, an unrecorded table
(`versioned` 1.0's, or one made before records) works as it always did.
:meth:`TableOwner.claim` writes the record (``bootstrap``, ``adopt_table``), on
the condition that there is none.
"""

from __future__ import annotations

import asyncio

from .. import _codec, _layout
from .._aws.dynamodb import Table
from .._codec import TableRecord
from .._policy import table_record
from .._policy.table_record import Verdict
from .._table_writes import ClaimTable
from ..exc import ConflictError, TableMismatchError

__all__ = ["TableOwner"]

#: how often a claim reads again a record that vanished between its write and its read
_CLAIM_ATTEMPTS = 3


class TableOwner:
    """The verdict on whether the table ``table_name`` serves the repository in
    ``bucket`` under ``prefix`` (see the module)."""

    def __init__(self, table_name: str, bucket: str, prefix: str) -> None:
        self.table_name = table_name
        self.bucket = bucket
        self.prefix = prefix
        self._verdict: Verdict | None = None
        self._record: TableRecord | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def verdict(self) -> Verdict | None:
        """What the record said, ``None`` until it was read."""
        return self._verdict

    async def check(self, table: Table) -> Verdict:
        """The verdict, reading the record the first time only (concurrent first calls
        share one read); :class:`~versioned_async.exc.TableMismatchError` when the
        table serves another repository."""
        if self._verdict is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self._verdict is None:
                    self._settle(await self._read(table))
        return self._enforce()

    async def claim(self, table: Table, by: str) -> bool:
        """Record that the table serves this repository unless a record exists: whether
        this call wrote it. ``TableMismatchError`` (nothing written) when the record
        names another repository."""
        record = table_record.new_record(self.bucket, self.prefix, _codec.utcnow(), by)
        for _attempt in range(_CLAIM_ATTEMPTS):
            if await table.put_item(**_codec.put_item_args(ClaimTable(record)), checked=False):
                self._settle(record)
                return True
            found = await self._read(table)
            if found is not None:
                self._settle(found)
                self._enforce()
                return False
        raise ConflictError(
            f"the record of table {self.table_name!r} kept vanishing while it was claimed; retry"
        )

    async def _read(self, table: Table) -> TableRecord | None:
        raw = await table.get_item(_layout.TABLE_RECORD_PK, _layout.TABLE_RECORD_SK, checked=False)
        return None if raw is None else _codec.structure_table_record(raw)

    def _settle(self, record: TableRecord | None) -> None:
        self._record = record
        self._verdict = table_record.verdict(record, self.bucket, self.prefix)

    def _enforce(self) -> Verdict:
        verdict = self._verdict
        assert verdict is not None
        if verdict is Verdict.OTHER:
            record = self._record
            assert record is not None
            raise TableMismatchError(
                self.table_name, record.s3_bucket, record.s3_prefix, self.bucket, self.prefix
            )
        return verdict
