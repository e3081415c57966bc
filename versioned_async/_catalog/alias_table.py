"""The aliases of the DynamoDB layout as the table holds them: alias items, their
history, and the transaction that changes one, with its retries.

:class:`AliasTable` is held by the DynamoDB layout's catalog
(:class:`~._catalog.table.TableCatalog`) and does the table's I/O for
:class:`~versioned_async.Repository`'s alias API: the decisions are
:mod:`._policy.alias_change` and :mod:`._policy.history`'s, the wire format :mod:`._codec`'s.
It knows nothing of the local cache, the models or who the caller is: the
repository validates the arguments, names the actor and updates the cache with
what a change returns.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from typing import Any

from .. import _codec, _layout
from .._aws.dynamodb import Table
from .._codec import AliasItem, ChangeToken, HistoryItem
from .._pacing import pause
from .._policy import alias_change as _alias_change
from .._policy import history as _history
from .._policy.alias_change import ChangeRequest, PlannedChange
from ..exc import (
    ArtifactNotFoundError,
    BackendUnavailableError,
    ConcurrentModificationError,
    ConflictError,
)

__all__ = ["AliasTable"]

#: how often an alias change without ``if_update_at`` re-reads and retries when another
#: writer got in between: each round one of the racing writers lands, so this many
#: concurrent moves of one alias all land even without pauses (measured: 20 and 100)
_ALIAS_ATTEMPTS = 100
#: the pause before a retry grows from this (seconds), doubling, up to _ALIAS_PAUSE_MAX;
#: a random part of it (full jitter) spreads the racing writers apart
_ALIAS_PAUSE_FIRST = 0.01
_ALIAS_PAUSE_MAX = 0.5


async def _back_off(attempt: int) -> None:
    """Before another attempt at an alias change: a random pause (full jitter) below a
    ceiling that doubles per attempt, so that racing writers spread apart."""
    if attempt:
        ceiling = min(_ALIAS_PAUSE_MAX, _ALIAS_PAUSE_FIRST * 2**attempt)
        await pause(random.uniform(0, ceiling))


class AliasTable:
    """Alias items and their history in one DynamoDB table (see the module)."""

    def __init__(self, table: Callable[[], Table]) -> None:
        #: the repository's DynamoDB adapter, while it is open
        self._open_table = table

    @property
    def _table(self) -> Table:
        return self._open_table()

    # -- reads ------------------------------------------------------------------------

    async def read_record(self, name: str, alias: str) -> AliasItem | None:
        """The alias as stored now (a consistent read); ``None``: absent."""
        raw = await self._table.get_item(_layout.alias_pk(name), alias)
        return None if raw is None else _codec.structure_alias_item(raw)

    async def read_with_newest(
        self, name: str, alias: str
    ) -> tuple[AliasItem | None, ChangeToken | None, HistoryItem | None]:
        """The alias as stored now (``None``: absent), its change token, and its newest
        history record.

        In this order: a change committed between the two reads is then seen in
        the history, never in the alias alone (see :func:`._history.changed_outside`).
        """
        raw = await self._table.get_item(_layout.alias_pk(name), alias)
        newest = await self.newest_record(name, alias)
        if raw is None:
            return None, None, newest
        return _codec.structure_alias_item(raw), _codec.change_token(raw), newest

    async def all_of(self, name: str) -> list[tuple[AliasItem, ChangeToken]]:
        """Every alias of ``name``, sorted by alias name, each with its change token."""
        return [
            (_codec.structure_alias_item(raw), _codec.change_token(raw))
            async for raw in self._table.query(_layout.alias_pk(name))
        ]

    async def history(
        self, name: str, alias: str, *, page_size: int, below: str | None = None
    ) -> AsyncIterator[HistoryItem]:
        """The alias's history records, newest first (in the order made): all of them, or
        those older than the record whose sort key is ``below`` (a page token)."""
        low, high = _history.sk_range(alias)
        async for raw in self._table.query(
            _layout.history_pk(name),
            descending=True,
            sk_between=(low, high if below is None else below),
            page_size=page_size,
        ):
            record = _codec.structure_history_item(raw)
            if record.alias == alias and record.sk != below:
                yield record

    async def newest_record(self, name: str, alias: str) -> HistoryItem | None:
        """The alias's newest history record (the last change made), or ``None``."""
        async for record in self.history(name, alias, page_size=10):
            return record
        return None

    # -- the change -------------------------------------------------------------------

    async def change(self, request: ChangeRequest) -> PlannedChange | None:
        """Make the alias change ``request`` asks for and record it, atomically: the
        change made, ``None`` when there was nothing to delete.

        Reads the alias and its newest record, then writes the alias (on the
        condition that it is still as read), the history record and, if the
        alias was changed outside since its newest record, a record of that
        change, in one transaction. Retries when another writer got in
        between, unless the caller pinned the state it expects.
        """
        name, alias = request.name, request.alias
        for attempt in range(_ALIAS_ATTEMPTS):
            await _back_off(attempt)
            current, seen, newest = await self.read_with_newest(name, alias)
            if request.is_unexpected(current):
                raise ConcurrentModificationError(
                    name,
                    alias,
                    request.if_update_at,
                    None if current is None else current.update_at,
                )
            plan = _alias_change.plan_change(
                request, current=current, seen=seen, newest=newest, now=_codec.utcnow()
            )
            if plan is None:
                return None  # nothing to delete, nothing happened
            if await self._apply(plan, request):
                return plan
            # another writer moved the alias (or recorded a change) in between: read again
        raise ConflictError(
            f"alias {alias!r} of {name!r} was changed by another writer before each of "
            f"{_ALIAS_ATTEMPTS} attempts to {request.action} it; nothing was changed by this "
            "call: retry later, or move it with if_update_at"
        )

    async def _apply(self, plan: PlannedChange, request: ChangeRequest) -> bool:
        """Write ``plan``'s transaction: whether it landed (``False``: read again and
        retry). A version not visible, or (when the request is pinned) the alias moved,
        raises."""
        name, alias = plan.name, plan.alias
        reasons = await self._transact_change(
            f"{request.action} alias {alias!r} of {name!r}", _codec.transact_items(plan.writes())
        )
        if not reasons:
            return True
        missing = plan.missing_version(reasons)
        if missing is not None:
            raise ArtifactNotFoundError(name, _layout.decode_version(missing))
        # our own earlier attempt may have landed with only its answer lost (a
        # retry the engine did not recognise by its ClientRequestToken)
        if await self._table.get_item(plan.record.pk, plan.record.sk) is not None:
            return True
        if request.pinned and plan.alias_moved(reasons):
            again = await self.read_record(name, alias)
            raise ConcurrentModificationError(
                name, alias, request.if_update_at, None if again is None else again.update_at
            )
        return False

    async def _transact_change(self, what: str, actions: list[dict[str, Any]]) -> list[str]:
        """The change's transaction: ``[]`` when applied, else a reason per action.

        A transaction cancelled as a whole by a conflicting one (another writer on
        this alias or its versions, in flight at the same moment) applied nothing:
        it is reported as a conflict of every action, and the caller reads again.
        Any other cancellation (a ``ValidationError``, throttling that outlasted
        botocore's retries, ...) is no race and is raised as it is (see
        ``_aws.cancellation_error``): retrying it would only end, many requests
        later, in a ConflictError that hides the cause.
        """
        try:
            return await self._table.transact_write(what, actions)
        except BackendUnavailableError as err:
            if err.code != "TransactionCanceledException":
                raise
            return ["TransactionConflict"] * len(actions)
