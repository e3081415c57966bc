"""Alias history: the pure decisions behind the audit trail, tested without AWS.

Every alias change we make writes, in the same DynamoDB transaction, one
:class:`~._codec.HistoryItem` under the name's own history partition. Changes
made by others (`versioned` 1.0 knows nothing of history) are *detected*: the
alias's current ``update_at`` differs from the ``after`` state of its newest
record. A detected change is shown as ``external`` when listing, and recorded
as such by our next change to that alias.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from . import _layout
from ._codec import AliasItem, AliasState, HistoryItem, format_update_at

#: what a history record says was done
PUT = "put"
DELETE = "delete"
ROLLBACK = "rollback"
ROLLOUT = "rollout"
EXTERNAL = "external"
ACTIONS = frozenset({PUT, DELETE, ROLLBACK, ROLLOUT, EXTERNAL})

_SEP = "#"
_TICK = timedelta(microseconds=1)


def prefix(alias: str) -> str:
    """Every history sort key of ``alias`` starts with this (see :func:`sk`)."""
    return f"{alias}{_SEP}"


def sk_range(alias: str, until: datetime | None = None) -> tuple[str, str]:
    """Sort-key bounds (inclusive) of ``alias``'s records, up to ``until`` if given."""
    low = prefix(alias)
    if until is None:
        return low, f"{alias}{chr(ord(_SEP) + 1)}"
    return low, f"{low}{format_update_at(until)}{_SEP}~"  # "~" sorts after any nonce


def sk(alias: str, changed_at: datetime, nonce: str | None = None) -> str:
    """``{alias}#{changed_at}#{nonce}``: PynamoDB's fixed-width UTC text sorts by time.

    An alias name may itself contain ``#`` (``a#b`` shares the prefix ``a#``),
    so readers also check each record's ``alias`` attribute.
    """
    return f"{prefix(alias)}{format_update_at(changed_at)}{_SEP}{nonce or secrets.token_hex(4)}"


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

    Its time is the alias's own ``update_at`` when it still exists; a deletion
    leaves no time behind, so it is dated when it was detected.
    """
    when = current.update_at if current is not None else detected_at
    if newest is not None and when <= newest.changed_at:
        when = newest.changed_at + _TICK  # keep the records in order
    return HistoryItem(
        pk=_layout.history_pk(name),
        sk=sk(alias, when),
        alias=alias,
        changed_at=when,
        action=EXTERNAL,
        before=None if newest is None else newest.after,
        after=current,
        actor=None,
        reason="changed outside versioned_async (detected)",
    )


def change_time(now: datetime, *after: datetime | None) -> datetime:
    """``now``, or just after the latest of ``after`` if a clock is behind: a change
    is always dated after the state it replaces, so history and ``as_of`` stay ordered."""
    latest = max((t for t in after if t is not None), default=None)
    if latest is not None and now <= latest:
        return latest + _TICK
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


def state_as_of(
    as_of: datetime, current: AliasState | None, newest_until: HistoryItem | None
) -> AliasState | None:
    """The alias at ``as_of``; ``None`` when it did not exist then.

    ``newest_until`` is the newest record dated at or before ``as_of``. The
    current alias wins when it was set at or before ``as_of`` (then nothing
    changed it after: it would have a later ``update_at``). Raises
    ``LookupError`` when neither tells: no record that old, and the alias now
    is younger (or gone).
    """
    if (
        current is not None
        and current.update_at <= as_of
        and (newest_until is None or newest_until.changed_at <= current.update_at)
    ):
        return current
    if newest_until is None:
        raise LookupError("no record that old")
    return newest_until.after
