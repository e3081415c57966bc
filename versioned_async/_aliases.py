"""Alias operations of a Repository: moves, compare-and-set, history, roll-outs, watching.

:class:`AliasOperations` is a mixin of :class:`~versioned_async.Repository`:
the alias half of the API, kept in its own module because every write here is
one DynamoDB transaction of the alias, its version checks and its history
record (see :mod:`._history` for the decisions, :mod:`._rollout` for the plan).
It relies on the Repository for the backend, the models and the cache.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
from aiobotocore.session import AioSession, get_session

from . import _codec, _history, _layout, _rollout
from ._aws import AwsBackend, caller_arn
from ._codec import AliasItem, AliasState, HistoryItem
from ._gather import gather_or_cancel
from ._layout import VersionLike
from ._pacing import pause
from .cache import LocalCache
from .exc import (
    AliasNotFoundError,
    ArtifactNotFoundError,
    BackendUnavailableError,
    ConcurrentModificationError,
    ConflictError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NoHistoryError,
)
from .models import Alias, AliasChange, AliasHistoryPage, RolloutResult

if TYPE_CHECKING:
    from .cache.reader import VersionSource

__all__ = ["AliasOperations"]

log = logging.getLogger("versioned_async")

#: how often an alias change without ``if_update_at`` re-reads and retries when another
#: writer got in between: each round one of the racing writers lands, so this many
#: concurrent moves of one alias all land even without pauses (measured: 20 and 100)
_ALIAS_ATTEMPTS = 100
#: the pause before a retry grows from this (seconds), doubling, up to _ALIAS_PAUSE_MAX;
#: a random part of it (full jitter) spreads the racing writers apart
_ALIAS_PAUSE_FIRST = 0.01
_ALIAS_PAUSE_MAX = 0.5
#: longest actor or reason kept in an alias history record
_MAX_NOTE = _layout.MAX_NOTE_LENGTH
_UNKNOWN: Any = object()

#: (primary, secondary, weight), versions in stored form
_AliasTarget = tuple[str, str | None, int | None]


def _alias_target(
    version: VersionLike, secondary_version: VersionLike, secondary_version_weight: object
) -> _AliasTarget:
    """Check and encode an alias's versions: they must differ, a weight needs a secondary."""
    primary = _layout.encode_version(version)
    if secondary_version is None:
        if secondary_version_weight is not None:
            raise InvalidArgumentError(
                "secondary_version_weight is only allowed with a secondary_version"
            )
        return primary, None, None
    secondary = _layout.encode_version(secondary_version)
    weight = _layout.validate_weight(secondary_version_weight)
    if secondary == primary:
        raise InvalidArgumentError(
            f"version {_layout.decode_version(primary)!r} and secondary_version "
            f"{_layout.decode_version(secondary)!r} must differ"
        )
    return primary, secondary, weight


async def _back_off(attempt: int) -> None:
    """Before another attempt at an alias change: a random pause (full jitter) below a
    ceiling that doubles per attempt, so that racing writers spread apart."""
    if attempt:
        ceiling = min(_ALIAS_PAUSE_MAX, _ALIAS_PAUSE_FIRST * 2**attempt)
        await pause(random.uniform(0, ceiling))


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
        aws_region: str | None
        endpoint_url: str | None
        _session: AioSession | None
        _caller_arn: str | None
        _identity_lock: asyncio.Lock
        _source: VersionSource

        @property
        def _backend(self) -> AwsBackend: ...

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
        target = _alias_target(version, secondary_version, secondary_version_weight)
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
        return [
            self._alias(_codec.structure_alias_item(raw))
            async for raw in self._backend.query(_layout.alias_pk(name))
        ]

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
        raw = await self._backend.get_item(_layout.alias_pk(name), alias)
        newest = await self._newest_history(name, alias)  # after the alias: see _change_alias
        current = None if raw is None else _codec.structure_alias_item(raw)
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
        low, high = _history.sk_range(alias)
        if page_token is not None:
            if not isinstance(page_token, str) or not page_token.startswith(low):
                raise InvalidArgumentError(
                    f"page_token {page_token!r} is not a history page token of alias {alias!r}; "
                    "pass the next_page_token of a page of this alias"
                )
            high = page_token
        current: AliasState | None = None
        if page_token is None:  # the alias before its history: see _history.changed_outside
            found = await self._backend.get_item(_layout.alias_pk(name), alias)
            current = _history.state_of(
                None if found is None else _codec.structure_alias_item(found)
            )
        records: list[HistoryItem] = []
        async for raw in self._backend.query(
            _layout.history_pk(name),
            descending=True,
            sk_between=(low, high),
            page_size=limit + 1,
        ):
            record = _codec.structure_history_item(raw)
            if record.alias != alias or record.sk == page_token:
                continue
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
        raw = await self._backend.get_item(_layout.alias_pk(name), alias)
        current = None if raw is None else _codec.structure_alias_item(raw)
        records: list[HistoryItem] = []
        async for record in self._history_records(name, alias, page_size=25):
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

    async def _history_records(
        self, name: str, alias: str, *, page_size: int
    ) -> AsyncIterator[HistoryItem]:
        """The alias's history records, newest first (in the order made)."""
        async for raw in self._backend.query(
            _layout.history_pk(name),
            descending=True,
            sk_between=_history.sk_range(alias),
            page_size=page_size,
        ):
            record = _codec.structure_history_item(raw)
            if record.alias == alias:
                yield record

    async def _newest_history(self, name: str, alias: str) -> HistoryItem | None:
        """The alias's newest history record (the last change made), or ``None``."""
        async for record in self._history_records(name, alias, page_size=10):
            return record
        return None

    async def _change_alias(
        self,
        name: str,
        alias: str,
        target: _AliasTarget | None,
        action: str,
        *,
        if_update_at: datetime | None,
        actor: str | None,
        reason: str | None,
        expect_absent: bool = False,
    ) -> AliasItem | None:
        """Move (``target``) or delete (``None``) the alias and record it, atomically.

        Reads the alias and its newest record, then writes the alias (on the
        condition that it is still as read), the history record and, if the
        alias was changed outside since its newest record, a record of that
        change, in one transaction. Retries when another writer got in
        between, unless the caller pinned the state it expects.
        """
        expected = None if if_update_at is None else _aware(if_update_at, "if_update_at")
        pinned = expected is not None or expect_absent
        actor = _layout.validate_note("actor", actor)
        reason = _layout.validate_note("reason", reason)
        if actor is None:
            actor = await self._default_actor()
        pk, history_pk = _layout.alias_pk(name), _layout.history_pk(name)
        for attempt in range(_ALIAS_ATTEMPTS):
            await _back_off(attempt)
            # in this order: a change committed between the two reads is then seen in
            # the history, never in the alias alone (see _history.changed_outside)
            raw = await self._backend.get_item(pk, alias)
            newest = await self._newest_history(name, alias)
            prev = None if raw is None else _codec.structure_alias_item(raw)
            if (expected is not None and (prev is None or prev.update_at != expected)) or (
                expect_absent and prev is not None
            ):
                raise ConcurrentModificationError(
                    name, alias, expected, None if prev is None else prev.update_at
                )
            if prev is None and target is None:
                return None  # nothing to delete, nothing happened
            current = _history.state_of(prev)
            now = _codec.utcnow()
            external = (
                _history.external_record(name, alias, current, newest, now)
                if _history.changed_outside(current, newest)
                else None
            )
            # after the newest record (and the outside change) in order; dated by our
            # clock, even when an earlier change is dated later (see _history)
            seq = _history.next_seq(external or newest)
            changed_at = _history.change_time(now, None if prev is None else prev.update_at)
            after = None
            if target is not None:
                after = AliasState(changed_at, target[0], target[1], target[2])
            record = HistoryItem(
                pk=history_pk,
                sk=_history.sk(alias, seq),
                alias=alias,
                changed_at=changed_at,
                action=action,
                seq=seq,
                before=current,
                after=after,
                actor=actor,
                reason=reason,
            )
            # each version pointed at must be visible, and is marked as pointed at (its
            # alias_epoch goes up), so a purge that read it before cannot delete it now
            checks: list[dict[str, Any]] = [
                _codec.pin_version(name, stored)
                for stored in ([] if target is None else [v for v in target[:2] if v is not None])
            ]
            # the stored text itself, not our rendering of it: the condition must match
            # whatever writer wrote it
            unchanged: dict[str, Any] = (
                {"ConditionExpression": "attribute_not_exists(pk)"}
                if raw is None
                else {
                    "ConditionExpression": "update_at = :seen",
                    "ExpressionAttributeValues": {":seen": raw["update_at"]},
                }
            )
            new_item = None if after is None else _history.alias_item(name, alias, after)
            write = (
                {"Put": {"Item": _codec.to_item(new_item), **unchanged}}
                if new_item is not None
                else {"Delete": {"Key": {"pk": {"S": pk}, "sk": {"S": alias}}, **unchanged}}
            )
            fresh = {"ConditionExpression": "attribute_not_exists(pk)"}
            records = [r for r in (external, record) if r is not None]
            reasons = await self._transact_change(
                f"{action} alias {alias!r} of {name!r}",
                [
                    *checks,
                    write,
                    *({"Put": {"Item": _codec.to_item(r), **fresh}} for r in records),
                ],
            )
            landed = not reasons
            if not landed:
                for check, code in zip(checks, reasons, strict=False):
                    if code == "ConditionalCheckFailed":
                        stored = check["Update"]["Key"]["sk"]["S"]
                        raise ArtifactNotFoundError(name, _layout.decode_version(stored))
                # our own earlier attempt may have landed with only its answer lost (a
                # retry the engine did not recognise by its ClientRequestToken)
                landed = await self._backend.get_item(history_pk, record.sk) is not None
            if landed:
                if new_item is not None:
                    await self._remember_alias(new_item)
                else:
                    await self._forget_alias(name, alias)
                return new_item
            if pinned and reasons[len(checks)] == "ConditionalCheckFailed":
                again = await self._backend.get_item(pk, alias)
                raise ConcurrentModificationError(
                    name,
                    alias,
                    expected,
                    None if again is None else _codec.structure_alias_item(again).update_at,
                )
            # another writer moved the alias (or recorded a change) in between: read again
        raise ConflictError(
            f"alias {alias!r} of {name!r} was changed by another writer before each of "
            f"{_ALIAS_ATTEMPTS} attempts to {action} it; nothing was changed by this call: "
            "retry later, or move it with if_update_at"
        )

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
            return await self._backend.transact_write(what, actions)
        except BackendUnavailableError as err:
            if err.code != "TransactionCanceledException":
                raise
            return ["TransactionConflict"] * len(actions)

    async def _default_actor(self) -> str | None:
        """The repository's ``actor``, else the caller's AWS identity (ARN), once per
        repository; ``None`` when STS cannot tell (no STS on the endpoint, no rights)."""
        if self.actor is not None:
            return self.actor
        async with self._identity_lock:
            if self._caller_arn is _UNKNOWN:
                self._caller_arn = await caller_arn(
                    self._session or get_session(), self.aws_region, self.endpoint_url
                )
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
            self._backend.get_item(_layout.alias_pk(name), alias),
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
            target: _AliasTarget, action: str, if_update_at: datetime, note: str
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
