"""Alias operations of a Repository: moves, compare-and-set, history, roll-outs, watching.

:class:`AliasOperations` is a mixin of :class:`~versioned_async.Repository`:
the alias half of the API, kept in its own module. It validates, builds the
models and keeps the local cache up to date; the table's side (reads, history
pages, the transaction of a change and its retries) is the Repository's
:class:`~._alias_table.AliasTable`, the decisions are :mod:`._alias_change`'s,
:mod:`._history`'s and :mod:`._rollout`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from . import _alias_change, _codec, _history, _layout, _rollout
from ._alias_change import AliasTarget
from ._alias_table import AliasTable
from ._aws.clients import AwsClients
from ._aws.dynamodb import Table
from ._aws.sts import caller_arn
from ._codec import AliasItem, AliasState, HistoryItem
from ._gather import gather_or_cancel
from ._layout import VersionLike
from .cache import LocalCache
from .exc import (
    AliasNotFoundError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NoHistoryError,
)
from .models import Alias, AliasChange, AliasHistoryPage, RolloutResult

if TYPE_CHECKING:
    from .cache.reader import VersionSource

__all__ = ["AliasOperations"]

log = logging.getLogger("versioned_async")

#: longest actor or reason kept in an alias history record
_MAX_NOTE = _layout.MAX_NOTE_LENGTH
_UNKNOWN: Any = object()


def _aware(value: object, what: str) -> datetime:
    """A timezone-aware datetime, or a clear error (a naive one is ambiguous)."""
    if not isinstance(value, datetime):
        raise InvalidArgumentTypeError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgumentError(
            f"{what} must be timezone-aware (e.g. datetime.now(timezone.utc)), got {value!r}"
        )
    return value


class AliasOperations:
    """The alias API of :class:`~versioned_async.Repository` (a mixin: not used alone)."""

    if TYPE_CHECKING:  # provided by Repository
        cache: LocalCache | None
        actor: str | None
        _caller_arn: str | None
        _identity_lock: asyncio.Lock
        _alias_table: AliasTable
        _source: VersionSource

        @property
        def _clients(self) -> AwsClients: ...

        @property
        def _table(self) -> Table: ...

        @property
        def is_open(self) -> bool: ...

        def _alias(self, item: AliasItem) -> Alias: ...

        async def _remember_alias(self, record: AliasItem) -> None: ...

        async def _forget_alias(self, name: str, alias: str) -> None: ...

    async def put_alias(
        self,
        name: str,
        alias: str,
        version: VersionLike = None,
        secondary_version: VersionLike = None,
        secondary_version_weight: int | None = None,
        *,
        if_update_at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Alias:
        """Point ``alias`` at ``version`` (LATEST by default), optionally splitting traffic.

        With ``secondary_version``, ``secondary_version_weight`` (an int, 0 <= w
        < 100) percent of traffic goes to it. The versions must exist and
        differ; the check, the write and its history record are one DynamoDB
        transaction, so an alias never points at a version deleted meanwhile
        and no change goes unrecorded.

        Without ``if_update_at``, concurrent moves of one alias all land, one
        after the other, each recorded: a move that finds the alias changed
        between its read and its write reads again and retries, pausing a
        random, growing while (up to 100 attempts, 0.5 s apart at most), and
        raises :class:`~versioned_async.exc.ConflictError`, having changed
        nothing, only if another move landed before every one of them.

        ``if_update_at`` makes it a compare-and-set: pass the ``update_at`` of
        the Alias you read, and the move fails with
        :class:`~versioned_async.exc.ConcurrentModificationError` if anyone
        (us or `versioned`) changed the alias since. ``actor`` and ``reason``
        go into the history record; ``actor`` defaults to the repository's
        ``actor``, else the caller's AWS identity (STS), when known.
        """
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        target = _alias_change.alias_target(version, secondary_version, secondary_version_weight)
        record = await self._change_alias(
            name, alias, target, _history.PUT, if_update_at=if_update_at, actor=actor, reason=reason
        )
        assert record is not None
        return self._alias(record)

    async def get_alias(self, name: str, alias: str, *, as_of: datetime | None = None) -> Alias:
        """The alias; ``AliasNotFoundError`` when it does not exist.

        With ``as_of`` (an aware datetime), the alias as it was then, from its
        history: the state left by the last change, in the order the changes
        were made, that is dated at or before ``as_of``. Each change is dated
        by the clock of the machine that made it; when the clocks agree that is
        the alias as it was at ``as_of``, and a clock that is off misdates only
        its own changes, never holds back or reorders the others.
        ``AliasNotFoundError`` if it did not exist then, and
        :class:`~versioned_async.exc.NoHistoryError` if its history does not
        reach back that far. Cost: a GetItem and one Query page per 25
        changes made since ``as_of``.
        """
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        if as_of is not None:
            return await self._alias_as_of(name, alias, _aware(as_of, "as_of"))
        record = await self._source.alias_item(name, alias)
        if record is None:
            raise AliasNotFoundError(name, alias)
        await self._remember_alias(record)
        return self._alias(record)

    async def list_aliases(self, name: str) -> list[Alias]:
        """Every alias of ``name``, sorted by alias name."""
        _layout.validate_name(name)
        return [self._alias(record) for record, _ in await self._alias_table.all_of(name)]

    async def delete_alias(
        self,
        name: str,
        alias: str,
        *,
        if_update_at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Delete the alias, recording it in its history; deleting a missing alias
        changes nothing (unless ``if_update_at`` expected it to exist)."""
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        await self._change_alias(
            name,
            alias,
            None,
            _history.DELETE,
            if_update_at=if_update_at,
            actor=actor,
            reason=reason,
        )

    async def rollback_alias(
        self,
        name: str,
        alias: str,
        *,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Alias | None:
        """Put the alias back as it was before its last change, and record that.

        The last change is the newest history record, or a change made outside
        versioned_async since it. Returns the alias now, ``None`` when it did
        not exist before that change (it is deleted).
        :class:`~versioned_async.exc.NoHistoryError` when there is nothing
        recorded to undo; ``ConcurrentModificationError`` when the alias moved
        while rolling back (nothing changed).
        """
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        current, _, newest = await self._alias_table.read_with_newest(name, alias)
        try:
            state = _history.rollback_target(_history.state_of(current), newest)
        except LookupError:
            raise NoHistoryError(
                f"alias {alias!r} of {name!r} has no recorded change to roll back"
            ) from None
        target = (
            None
            if state is None
            else (state.version, state.secondary_version, state.secondary_version_weight)
        )
        if target is None and current is None:
            return None  # it was created outside and is already gone again
        record = await self._change_alias(
            name,
            alias,
            target,
            _history.ROLLBACK,
            if_update_at=None if current is None else current.update_at,
            expect_absent=current is None,
            actor=actor,
            reason=reason,
        )
        return None if record is None else self._alias(record)

    async def list_alias_history(
        self, name: str, alias: str, *, limit: int = 50, page_token: str | None = None
    ) -> AliasHistoryPage:
        """One page of the alias's changes, newest first (the audit trail): in the
        order they were made, whatever the clocks of the machines that made them.

        Pass the page's ``next_page_token`` to get the next one. The first page
        starts with an ``"external"`` change (``recorded=False``) when the alias
        was changed outside versioned_async since its newest record.
        """
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidArgumentError(f"limit must be an int from 1 to 1000, got {limit!r}")
        if page_token is not None and (
            not isinstance(page_token, str) or not page_token.startswith(_history.prefix(alias))
        ):
            raise InvalidArgumentError(
                f"page_token {page_token!r} is not a history page token of alias {alias!r}; "
                "pass the next_page_token of a page of this alias"
            )
        current: AliasState | None = None
        if page_token is None:  # the alias before its history: see _history.changed_outside
            current = _history.state_of(await self._source.alias_item(name, alias))
        records: list[HistoryItem] = []
        async for record in self._alias_table.history(
            name, alias, page_size=limit + 1, below=page_token
        ):
            records.append(record)
            if len(records) > limit:
                break
        more = len(records) > limit
        records = records[:limit]
        changes = [self._alias_change(name, r) for r in records]
        if page_token is None:
            newest = records[0] if records else None
            if _history.changed_outside(current, newest):
                detected = _history.external_record(name, alias, current, newest, _codec.utcnow())
                changes.insert(0, self._alias_change(name, detected, recorded=False))
        return AliasHistoryPage(changes, records[-1].sk if more and records else None)

    async def iter_alias_history(self, name: str, alias: str) -> AsyncIterator[AliasChange]:
        """Every change of the alias, newest first, fetching pages as it goes."""
        token: str | None = None
        while True:
            page = await self.list_alias_history(name, alias, limit=100, page_token=token)
            for change in page.changes:
                yield change
            token = page.next_page_token
            if token is None:
                return

    async def _alias_as_of(self, name: str, alias: str, as_of: datetime) -> Alias:
        # the alias before its history: see _history.changed_outside
        current = await self._source.alias_item(name, alias)
        records: list[HistoryItem] = []
        async for record in self._alias_table.history(name, alias, page_size=25):
            records.append(record)
            if _history.in_effect_at(record, as_of):
                break  # the newest change dated at or before as_of: older ones do not matter
        try:
            state = _history.state_as_of(
                as_of, _history.state_of(current), records, _codec.utcnow()
            )
        except LookupError:
            raise NoHistoryError(
                f"alias {alias!r} of {name!r} has no history reaching back to "
                f"{as_of.isoformat()}: it was created later, or before history was recorded"
            ) from None
        if state is None:
            raise AliasNotFoundError(name, alias)
        return self._alias(_history.alias_item(name, alias, state))

    async def _change_alias(
        self,
        name: str,
        alias: str,
        target: AliasTarget | None,
        action: str,
        *,
        if_update_at: datetime | None,
        actor: str | None,
        reason: str | None,
        expect_absent: bool = False,
    ) -> AliasItem | None:
        """Move (``target``) or delete (``None``) the alias and record it, atomically
        (see :meth:`AliasTable.change`), then keep the local cache in step: the alias
        now, ``None`` when deleted or when there was nothing to delete."""
        expected = None if if_update_at is None else _aware(if_update_at, "if_update_at")
        actor = _layout.validate_note("actor", actor)
        reason = _layout.validate_note("reason", reason)
        if actor is None:
            actor = await self._default_actor()
        request = _alias_change.ChangeRequest(
            name, alias, target, action, actor, reason, expected, expect_absent
        )
        change = await self._alias_table.change(request)
        if change is None:
            return None  # nothing to delete, nothing happened
        if change.new_item is not None:
            await self._remember_alias(change.new_item)
        else:
            await self._forget_alias(name, alias)
        return change.new_item

    async def _default_actor(self) -> str | None:
        """The repository's ``actor``, else the caller's AWS identity (ARN), once per
        repository; ``None`` when STS cannot tell (no STS on the endpoint, no rights)."""
        if self.actor is not None:
            return self.actor
        async with self._identity_lock:
            if self._caller_arn is _UNKNOWN:
                self._caller_arn = await caller_arn(self._clients)
        return self._caller_arn if isinstance(self._caller_arn, str) else None

    def _alias_change(
        self, name: str, record: HistoryItem, *, recorded: bool = True
    ) -> AliasChange:
        def model(state: AliasState | None) -> Alias | None:
            return (
                None
                if state is None
                else self._alias(_history.alias_item(name, record.alias, state))
            )

        return AliasChange(
            name=name,
            alias=record.alias,
            changed_at=record.changed_at,
            action=record.action,
            before=model(record.before),
            after=model(record.after),
            actor=record.actor,
            reason=record.reason,
            recorded=recorded,
            page_token=record.sk if recorded else None,
        )

    async def rollout(
        self,
        name: str,
        alias: str,
        to_version: VersionLike,
        *,
        steps: Sequence[int] = _rollout.DEFAULT_STEPS,
        bake_seconds: float = 60.0,
        check: Callable[[Alias], Awaitable[bool]] | None = None,
        actor: str | None = None,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> RolloutResult:
        """Move ``alias`` to ``to_version`` in steps of traffic (10%, 50%, 100% by default).

        A step below 100 splits traffic: the alias's primary keeps it, and
        ``to_version`` gets that many percent as the secondary; the step at 100
        points the alias at ``to_version`` alone. After each step, the last one
        too, it waits ``bake_seconds`` and awaits ``check(alias)``: anything but
        ``True``, or an exception, puts the alias back exactly as it started and
        raises :class:`~versioned_async.exc.RolloutFailedError` (chained from the
        check's exception). A cancellation (Ctrl-C) or a failed write puts it
        back too, then propagates.

        Each write is a compare-and-set on the state before it, recorded in the
        alias's history as ``"rollout"`` (a put-back as ``"rollback"``), its
        reason ``"rollout to 3: step 2/3 (50%)"`` followed by ``reason``.
        Someone else moving the alias mid-roll-out stops it with
        :class:`~versioned_async.exc.ConcurrentModificationError`, and their
        change stands.

        The alias must exist and ``to_version`` must exist and differ from its
        primary. An alias that already splits traffic is rolled out from its
        primary: its other canary goes at the first step (and comes back if the
        roll-out is put back); when its canary already is ``to_version``, steps
        at or below its weight are skipped. ``dry_run=True`` writes nothing,
        calls no check and returns the plan.
        """
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        weights = _rollout.validate_steps(steps)
        bake = _rollout.validate_bake(bake_seconds)
        if check is not None and not callable(check):
            raise InvalidArgumentTypeError(
                f"check must be an async function taking the Alias, not {type(check).__name__}"
            )
        if not isinstance(dry_run, bool):
            raise InvalidArgumentTypeError(f"dry_run must be a bool, not {type(dry_run).__name__}")
        actor = _layout.validate_note("actor", actor)
        reason = _layout.validate_note("reason", reason)
        wanted = _layout.encode_version(to_version)
        raw, _ = await gather_or_cancel(
            self._table.get_item(_layout.alias_pk(name), alias),
            self._source.version_item(name, wanted),
        )
        if raw is None:
            raise AliasNotFoundError(name, alias)
        item = _codec.structure_alias_item(raw)
        origin = (item.version, item.secondary_version, item.secondary_version_weight)
        plan = _rollout.plan(origin, wanted, weights, reason=reason, limit=_MAX_NOTE)
        start = self._alias(item)
        public = _layout.decode_version(wanted)
        if dry_run:
            planned = [
                self._alias(
                    attrs.evolve(
                        item,
                        version=step.target[0],
                        secondary_version=step.target[1],
                        secondary_version_weight=step.target[2],
                    )
                )
                for step in plan
            ]
            return RolloutResult(name, alias, public, start, planned, None, dry_run=True)

        async def write(
            target: AliasTarget, action: str, if_update_at: datetime, note: str
        ) -> Alias:
            record = await self._change_alias(
                name, alias, target, action, if_update_at=if_update_at, actor=actor, reason=note
            )
            assert record is not None
            return self._alias(record)

        written = await _rollout.run(
            plan,
            start=start,
            start_target=origin,
            write=write,
            check=check,
            bake_seconds=bake,
            reason=reason,
            limit=_MAX_NOTE,
        )
        return RolloutResult(name, alias, public, start, written, written[-1])
