"""The pure decisions of the alias audit trail (versioned_async._policy.history)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from versioned_async._codec import (
    AliasState,
    HistoryItem,
    structure_history_item,
    to_item,
)
from versioned_async._policy import history as _history

T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=timezone.utc)
SEC = timedelta(seconds=1)
HOUR = timedelta(hours=1)


def state(at: datetime, version: str = "000001", secondary: str | None = None) -> AliasState:
    return AliasState(at, version, secondary, None if secondary is None else 20)


def record(
    at: datetime, before: AliasState | None, after: AliasState | None, seq: int = 1
) -> HistoryItem:
    return HistoryItem(
        pk="__app-alias-history",
        sk=_history.sk("prod", seq, "00000000"),
        alias="prod",
        changed_at=at,
        action=_history.PUT,
        seq=seq,
        before=before,
        after=after,
    )


def chain(*dates: datetime) -> list[HistoryItem]:
    """Records of changes made in this order, dated as given (by whatever clock),
    each from the state the one before left, newest first, as a query returns them."""
    out: list[HistoryItem] = []
    before = None
    for n, at in enumerate(dates, start=1):
        after = state(at, f"{n:06d}")
        out.append(record(at, before, after, seq=n))
        before = after
    return out[::-1]


def test_sort_keys_order_by_sequence_and_stay_inside_their_alias_range() -> None:
    keys = [_history.sk("prod", n) for n in (1, 2, 10, 100, 10**6)]
    assert keys == sorted(keys)
    low, high = _history.sk_range("prod")
    assert all(low <= k <= high for k in keys)
    assert not low <= _history.sk("prodx", 1) <= high
    assert not low <= _history.sk("pro", 1) <= high
    assert low <= _history.sk("prod", 10**11 - 1) <= high


def test_records_written_before_sequence_numbers_are_outside_the_range() -> None:
    low, high = _history.sk_range("prod")
    assert not low <= "prod#2026-01-01T00:00:00.000000+0000#0badc0de" <= high
    assert not low <= "prod#1999-12-31T23:59:59.999999+0000#0badc0de" <= high


def test_the_sequence_follows_the_newest_record() -> None:
    assert _history.next_seq(None) == 1
    assert _history.next_seq(record(T0, None, state(T0), seq=41)) == 42


def test_a_history_item_round_trips_through_the_converter() -> None:
    item = record(T0, state(T0 - SEC), state(T0, "000002", "000001"))
    stored = to_item(item)
    assert stored["before"]["M"]["version"] == {"S": "000001"}
    assert "secondary_version" not in stored["before"]["M"]  # absent, not null
    assert structure_history_item(stored) == item
    deleted = to_item(record(T0, state(T0 - SEC), None))
    assert "after" not in deleted
    assert structure_history_item(deleted).after is None


def test_an_alias_with_no_record_was_changed_outside() -> None:
    assert _history.changed_outside(state(T0), None)
    assert not _history.changed_outside(None, None)


def test_a_change_is_outside_when_the_alias_differs_from_the_newest_record() -> None:
    newest = record(T0, None, state(T0))
    assert not _history.changed_outside(state(T0), newest)
    assert _history.changed_outside(state(T0 + SEC), newest)  # same versions, moved again
    assert _history.changed_outside(state(T0, "000002"), newest)
    assert _history.changed_outside(None, newest)  # deleted outside


def test_an_external_record_goes_from_the_newest_state_to_the_current_one() -> None:
    newest = record(T0, None, state(T0))
    now = state(T0 + SEC, "000002")
    external = _history.external_record("app", "prod", now, newest, T0 + 5 * SEC)
    assert (external.action, external.before, external.after) == ("external", newest.after, now)
    assert external.changed_at == now.update_at
    gone = _history.external_record("app", "prod", None, newest, T0 + 5 * SEC)
    assert gone.changed_at == T0 + 5 * SEC  # a deletion leaves no time: when it was seen


def test_an_external_record_comes_next_in_order_and_keeps_the_writers_date() -> None:
    newest = record(T0, None, state(T0), seq=7)
    behind = state(T0 - SEC, "000002")
    external = _history.external_record("app", "prod", behind, newest, T0)
    assert external.seq == 8
    assert external.changed_at == T0 - SEC  # not moved after T0: order is the seq


def test_change_time_is_the_writers_clock_even_behind_the_change_it_replaces() -> None:
    assert _history.change_time(T0, None) == T0
    assert _history.change_time(T0, T0 - SEC) == T0
    assert _history.change_time(T0, T0 + timedelta(hours=1)) == T0  # a fast clock before
    # only the same stored time moves on, so the compare-and-set token changes
    assert _history.change_time(T0, T0) == T0 + timedelta(microseconds=1)


def test_rollback_goes_to_the_state_before_the_newest_record() -> None:
    newest = record(T0, state(T0 - SEC), state(T0, "000002"))
    assert _history.rollback_target(state(T0, "000002"), newest) == state(T0 - SEC)
    created = record(T0, None, state(T0))
    assert _history.rollback_target(state(T0), created) is None  # delete it


def test_rollback_after_an_outside_change_undoes_that_change() -> None:
    newest = record(T0, state(T0 - SEC), state(T0, "000002"))
    assert _history.rollback_target(state(T0 + SEC, "000003"), newest) == newest.after


def test_rollback_with_no_record_is_refused() -> None:
    with pytest.raises(LookupError):
        _history.rollback_target(state(T0), None)


def test_state_as_of_uses_the_newest_record_up_to_then() -> None:
    records = chain(T0 - SEC, T0, T0 + 10 * SEC)
    current = records[0].after
    assert _history.state_as_of(T0 + SEC, current, records, T0 + HOUR) == records[1].after
    assert _history.state_as_of(T0 + 10 * SEC, current, records, T0 + HOUR) == current


def test_state_as_of_is_the_current_alias_when_it_has_no_record() -> None:
    current = state(T0)
    assert _history.state_as_of(T0 + SEC, current, [], T0 + HOUR) == current
    with pytest.raises(LookupError):
        _history.state_as_of(T0 - SEC, current, [], T0 + HOUR)


def test_state_as_of_counts_a_change_made_outside_since_the_newest_record() -> None:
    records = chain(T0)
    outside = state(T0 + 5 * SEC, "000009")
    assert _history.state_as_of(T0 + 6 * SEC, outside, records, T0 + HOUR) == outside
    assert _history.state_as_of(T0 + 4 * SEC, outside, records, T0 + HOUR) == records[0].after
    # a deletion outside leaves no date: it counts from when it was seen
    assert _history.state_as_of(T0 + HOUR, None, records, T0 + HOUR) is None
    assert _history.state_as_of(T0 + SEC, None, records, T0 + HOUR) == records[0].after


def test_state_as_of_before_any_record_is_unknown() -> None:
    records = chain(T0)
    with pytest.raises(LookupError):
        _history.state_as_of(T0 - SEC, records[0].after, records, T0 + HOUR)


def test_state_as_of_after_a_recorded_delete_is_none() -> None:
    deleted = record(T0, state(T0 - SEC), None, seq=2)
    assert _history.state_as_of(T0 + SEC, None, [deleted], T0 + HOUR) is None


def test_a_fast_clock_does_not_hold_back_the_changes_made_after_it() -> None:
    """Made in this order: 1 at T0, 2 by a clock an hour fast, 3 and 4 by right clocks."""
    records = chain(T0, T0 + HOUR + 5 * SEC, T0 + 10 * SEC, T0 + 20 * SEC)
    current = records[0].after
    now = T0 + 30 * SEC

    def version(as_of: datetime) -> str | None:
        found = _history.state_as_of(as_of, current, records, now)
        return None if found is None else found.version

    assert version(now) == "000004"  # the newest change, not the one two moves before
    assert version(T0 + 15 * SEC) == "000003"
    assert version(T0 + 5 * SEC) == "000001"  # 2 is dated later: it counts from its date
    assert version(T0 + 2 * HOUR) == "000004"  # and then 3 and 4, made after it, win


def test_a_slow_clock_counts_from_its_own_date_and_keeps_its_place() -> None:
    records = chain(T0, T0 - HOUR, T0 + 10 * SEC)
    current = records[0].after
    assert _history.state_as_of(T0 + 5 * SEC, current, records, T0 + HOUR).version == "000002"
    assert _history.state_as_of(T0 + HOUR, current, records, T0 + HOUR).version == "000003"


def test_the_walk_may_stop_at_the_first_record_in_effect() -> None:
    records = chain(T0, T0 + SEC, T0 + 2 * SEC)
    assert [_history.in_effect_at(r, T0 + SEC) for r in records] == [False, True, True]


def test_a_record_newer_than_the_alias_read_is_not_an_outside_change() -> None:
    # the alias was read just before a change committed, its record just after
    before = state(T0)
    newest = record(T0 + SEC, before, state(T0 + SEC, "000002"))
    assert not _history.changed_outside(before, newest)
    assert _history.changed_outside(state(T0 + 2 * SEC, "000003"), newest)
