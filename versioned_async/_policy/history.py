"""Alias history: the pure decisions behind the audit trail, tested without AWS.

Every alias change we make writes, in the same DynamoDB transaction, one
:class:`~._codec.HistoryItem` under the name's own history partition. Changes
made by others (`versioned` 1.0 knows nothing of history) are *detected*: the
alias's current ``update_at`` differs from the ``after`` state of its newest
record. A detected change is shown as ``external`` when listing, and recorded
as such by our next change to that alias.

Order and time are kept apart. The order of an alias's changes is their
sequence number ``seq`` (1, 2, 3 ...), given in the transaction that makes
each change, which is conditional on the alias as read: it is the order in
which the changes were made, whatever the writers' clocks say. A change's
time is the clock of the machine that made it, as it was, neither clamped to
its predecessor's (one fast clock would then date every later change after
its own) nor refused. ``as_of`` combines them: the alias at a time T is the
state left by the last change, in the order made, that is dated at or before
T. With clocks that agree, that is the alias as it was at T; a change dated
ahead by a fast clock counts from that date on, and never holds back or
reorders the changes made after it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from .. import _layout
from .._codec import AliasItem, AliasState, HistoryItem, format_update_at

#: what a history record says was done
PUT = "put"
DELETE = "delete"
ROLLBACK = "rollback"
ROLLOUT = "rollout"
EXTERNAL = "external"
ACTIONS = frozenset({PUT, DELETE, ROLLBACK, ROLLOUT, EXTERNAL})

_SEP = "#"
_TICK = timedelta(microseconds=1)
#: digits of the sequence number in a sort key: text order is number order
SEQ_WIDTH = 12


def prefix(alias: str) -> str:
    """Every history sort key of ``alias`` starts with this (see :func:`sk`)."""
    return f"{alias}{_SEP}"


def sk_range(alias: str) -> tuple[str, str]:
    """Sort-key bounds (inclusive) of ``alias``'s sequenced records.

    Their sequence number starts with ``0`` (below 10**11 changes), so the
    bound ``{alias}#0~`` leaves out the records of the build before sequence
    numbers (``{alias}#{changed_at}#...``, a year such as ``2026`` first): a
    query never reads them. Their state shows as a change made outside
    versioned_async (see :func:`changed_outside`).
    """
    return prefix(alias), f"{prefix(alias)}0~"


def sk(alias: str, seq: int, nonce: str | None = None) -> str:
    """``{alias}#{seq:012d}#{nonce}``: zero-padded, the text sorts in the order made.

    An alias name may itself contain ``#`` (``a#b`` shares the prefix ``a#``),
    so readers also check each record's ``alias`` attribute.
    """
    return f"{prefix(alias)}{seq:0{SEQ_WIDTH}d}{_SEP}{nonce or secrets.token_hex(4)}"


def next_seq(newest: HistoryItem | None) -> int:
    """The sequence number of the change after ``newest`` (the alias's newest record)."""
    return 1 if newest is None else newest.seq + 1


def state_of(item: AliasItem | None) -> AliasState | None:
    if item is None:
        return None
    return AliasState(
        update_at=item.update_at,
        version=item.version,
        secondary_version=item.secondary_version,
        secondary_version_weight=item.secondary_version_weight,
    )


def alias_item(name: str, alias: str, state: AliasState) -> AliasItem:
    return AliasItem(
        pk=_layout.alias_pk(name),
        sk=alias,
        update_at=state.update_at,
        version=state.version,
        secondary_version=state.secondary_version,
        secondary_version_weight=state.secondary_version_weight,
    )


def same_state(a: AliasState | None, b: AliasState | None) -> bool:
    """The same alias state, ``update_at`` compared as stored (to the microsecond)."""
    if a is None or b is None:
        return a is b
    return format_update_at(a.update_at) == format_update_at(b.update_at) and (
        a.version,
        a.secondary_version,
        a.secondary_version_weight,
    ) == (b.version, b.secondary_version, b.secondary_version_weight)


def same_target(a: AliasState | None, b: AliasState | None) -> bool:
    """Pointing at the same versions with the same weight, whenever it was set."""
    if a is None or b is None:
        return a is b
    return (a.version, a.secondary_version, a.secondary_version_weight) == (
        b.version,
        b.secondary_version,
        b.secondary_version_weight,
    )


def changed_outside(current: AliasState | None, newest: HistoryItem | None) -> bool:
    """Whether the alias moved since its newest record (or exists with no record).

    Read the alias first, then its newest record: a record committed in
    between has the alias as read for its ``before``, and that is not an
    outside change but a read that came just too early. (An alias read as
    absent stays ambiguous and counts as changed: a writer's condition on it
    catches a read that was only early.)
    """
    if newest is None:
        return current is not None
    if current is not None and same_state(current, newest.before):
        return False
    return not same_state(current, newest.after)


def external_record(
    name: str,
    alias: str,
    current: AliasState | None,
    newest: HistoryItem | None,
    detected_at: datetime,
) -> HistoryItem:
    """The record of a change someone else made: from the newest record's state to now.

    It comes right after the newest record in order. Its time is the alias's
    own ``update_at`` when it still exists (the other writer's clock); a
    deletion leaves no time behind, so it is dated when it was detected.
    """
    when = current.update_at if current is not None else detected_at
    seq = next_seq(newest)
    return HistoryItem(
        pk=_layout.history_pk(name),
        sk=sk(alias, seq),
        alias=alias,
        changed_at=when,
        action=EXTERNAL,
        seq=seq,
        before=None if newest is None else newest.after,
        after=current,
        actor=None,
        reason="changed outside versioned_async (detected)",
    )


def change_time(now: datetime, replaced: datetime | None) -> datetime:
    """When a change replacing an alias set at ``replaced`` is dated: ``now``, the
    writer's clock, even when it is behind ``replaced`` (order is kept by ``seq``,
    not by time); moved on by a microsecond only when it equals ``replaced`` as
    stored, so that the alias's ``update_at``, its compare-and-set token, changes."""
    if replaced is not None and format_update_at(now) == format_update_at(replaced):
        return now + _TICK
    return now


def rollback_target(current: AliasState | None, newest: HistoryItem | None) -> AliasState | None:
    """The state before the last change: the newest record's ``after`` if someone
    changed the alias since it, else its ``before``. ``None`` means "no alias".

    Raises ``LookupError`` when there is no recorded change to undo.
    """
    if newest is None:
        raise LookupError("no recorded change")
    if changed_outside(current, newest):
        return newest.after
    return newest.before


def in_effect_at(record: HistoryItem, as_of: datetime) -> bool:
    """Whether ``record`` is dated at or before ``as_of``: the newest such record, in
    the order made, tells the alias at ``as_of`` (see the module's docstring)."""
    return record.changed_at <= as_of


def state_as_of(
    as_of: datetime,
    current: AliasState | None,
    records: Iterable[HistoryItem],
    detected_at: datetime,
) -> AliasState | None:
    """The alias at ``as_of``: the state left by the last change, in the order made,
    dated at or before ``as_of``. ``None`` when that change deleted it.

    ``records`` are the alias's records newest first (in ``seq`` order, not by
    time); they may stop at the first one :func:`in_effect_at` ``as_of``.
    ``current`` is the alias now: a change made outside versioned_async since
    the newest record counts as the newest change, dated by its ``update_at``
    (a deletion outside, which leaves no time, by ``detected_at``). Raises
    ``LookupError`` when no change that old is known: the alias was created
    later, or before its history was recorded.
    """
    newest: HistoryItem | None = None
    for record in records:
        if newest is None:
            newest = record
            if changed_outside(current, record):
                outside = external_record("", record.alias, current, record, detected_at)
                if in_effect_at(outside, as_of):
                    return current
        if in_effect_at(record, as_of):
            return record.after
    if newest is None and current is not None and current.update_at <= as_of:
        return current  # no record at all: set outside versioned_async, at its update_at
    raise LookupError("no change that old is known")
