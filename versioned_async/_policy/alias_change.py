"""One alias change, decided: what the alias becomes, what history records it, and the
conditions the write needs. Pure: a function of the alias as read, its newest history
record and the time, tested without AWS.

A change is written as one DynamoDB transaction (:meth:`PlannedChange.writes`):
each version the alias will point at is pinned (it must be visible; see
:class:`~._table_writes.PinVersion`), the alias is put or deleted on the
condition that it is still as read, and the change is appended to the alias's
history, after a record of the change someone else made since its newest record
when there is one (see :func:`._history.changed_outside`). The transaction's
cancellation reasons, one per write, are read back here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import attrs

from .. import _layout
from .._codec import AliasItem, AliasState, ChangeToken, HistoryItem
from .._layout import VersionLike
from .._table_writes import (
    AppendHistory,
    DeleteAliasIfUnchanged,
    PinVersion,
    PutAliasIfUnchanged,
    TableWrite,
)
from .._wording import CANARY, WEIGHT
from ..exc import InvalidArgumentError
from . import history as _history

__all__ = ["AliasTarget", "ChangeRequest", "PlannedChange", "alias_target", "plan_change"]

#: (primary, secondary, weight), versions in stored form; ``None`` for a deletion
AliasTarget = tuple[str, str | None, int | None]

_FAILED = "ConditionalCheckFailed"


def alias_target(
    version: VersionLike, secondary_version: VersionLike, secondary_version_weight: object
) -> AliasTarget:
    """Check and encode an alias's versions: they must differ, a weight needs a secondary."""
    primary = _layout.encode_version(version)
    if secondary_version is None:
        if secondary_version_weight is not None:
            raise InvalidArgumentError(WEIGHT, " is only allowed with a ", CANARY)
        return primary, None, None
    secondary = _layout.encode_version(secondary_version)
    weight = _layout.validate_weight(secondary_version_weight)
    if secondary == primary:
        raise InvalidArgumentError(
            f"version {_layout.decode_version(primary)!r} and ",
            CANARY,
            f" {_layout.decode_version(secondary)!r} must differ",
        )
    return primary, secondary, weight


@attrs.frozen
class ChangeRequest:
    """An alias change a caller asked for, its arguments checked."""

    name: str
    alias: str
    #: where the alias is to point; ``None``: delete it
    target: AliasTarget | None
    #: what the history record says was done (``_history.PUT``, ``DELETE`` ...)
    action: str
    actor: str | None
    reason: str | None
    #: a compare-and-set: the change applies only to the alias with this ``update_at``
    if_update_at: datetime | None = None
    #: a compare-and-set: the change applies only where the alias does not exist
    expect_absent: bool = False

    @property
    def pinned(self) -> bool:
        """Whether the caller pinned the state it expects: then a change that finds the
        alias moved fails instead of reading it again and retrying."""
        return self.if_update_at is not None or self.expect_absent

    def is_unexpected(self, current: AliasItem | None) -> bool:
        """Whether the alias as read is not the one the caller pinned: another
        ``update_at`` than ``if_update_at`` (or none), or present when it was to be
        absent."""
        if self.if_update_at is not None and (
            current is None or current.update_at != self.if_update_at
        ):
            return True
        return self.expect_absent and current is not None


@attrs.frozen
class PlannedChange:
    """An alias change as it will be written; :meth:`writes` is its transaction."""

    name: str
    alias: str
    #: the alias as read (its ``update_at`` as stored); ``None``: it was absent
    seen: ChangeToken | None
    #: the alias after the change; ``None``: deleted
    new_item: AliasItem | None
    #: the change's own history record
    record: HistoryItem
    #: the record of a change made outside versioned_async since the newest record
    external: HistoryItem | None
    #: the versions the alias will point at (stored form), each pinned
    pinned: tuple[str, ...]

    def writes(self) -> list[TableWrite]:
        """The transaction: the pins, the alias write, then the history records."""
        alias: TableWrite = (
            DeleteAliasIfUnchanged(self.name, self.alias, self.seen)
            if self.new_item is None
            else PutAliasIfUnchanged(self.new_item, self.seen)
        )
        records = [r for r in (self.external, self.record) if r is not None]
        return [
            *(PinVersion(self.name, stored) for stored in self.pinned),
            alias,
            *(AppendHistory(r) for r in records),
        ]

    def missing_version(self, reasons: Sequence[str]) -> str | None:
        """The first version (stored form) whose pin failed in a cancelled transaction
        (it is not visible), or ``None``."""
        for stored, code in zip(self.pinned, reasons, strict=False):
            if code == _FAILED:
                return stored
        return None

    def alias_moved(self, reasons: Sequence[str]) -> bool:
        """Whether a cancelled transaction found the alias no longer as read."""
        return reasons[len(self.pinned)] == _FAILED


def plan_change(
    request: ChangeRequest,
    *,
    current: AliasItem | None,
    seen: ChangeToken | None,
    newest: HistoryItem | None,
    now: datetime,
) -> PlannedChange | None:
    """Make the change ``request`` asks for to the alias ``current`` as read (``seen``:
    its stored ``update_at``), whose newest history record, read after it, is
    ``newest``; ``None`` when there is nothing to do (deleting an absent alias).

    The change comes after the newest record (and after the outside change, when the
    alias moved since it) in order, and is dated by ``now``, this writer's clock,
    even when an earlier change is dated later (see :mod:`.history`).
    """
    name, alias, target = request.name, request.alias, request.target
    if current is None and target is None:
        return None
    before = _history.state_of(current)
    external = (
        _history.external_record(name, alias, before, newest, now)
        if _history.changed_outside(before, newest)
        else None
    )
    seq = _history.next_seq(external or newest)
    changed_at = _history.change_time(now, None if current is None else current.update_at)
    after = None if target is None else AliasState(changed_at, *target)
    record = HistoryItem(
        pk=_layout.history_pk(name),
        sk=_history.sk(alias, seq),
        alias=alias,
        changed_at=changed_at,
        action=request.action,
        seq=seq,
        before=before,
        after=after,
        actor=request.actor,
        reason=request.reason,
    )
    return PlannedChange(
        name=name,
        alias=alias,
        seen=seen,
        new_item=None if after is None else _history.alias_item(name, alias, after),
        record=record,
        external=external,
        pinned=() if target is None else tuple(v for v in target[:2] if v is not None),
    )
