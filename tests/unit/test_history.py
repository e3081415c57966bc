"""The pure decisions of the alias audit trail (versioned_async._history)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from versioned_async import _history
from versioned_async._codec import (
    AliasState,
    HistoryItem,
    structure_history_item,
    to_item,
)

T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=timezone.utc)
SEC = timedelta(seconds=1)


def state(at: datetime, version: str = "000001", secondary: str | None = None) -> AliasState:
    return AliasState(at, version, secondary, None if secondary is None else 20)


def record(at: datetime, before: AliasState | None, after: AliasState | None) -> HistoryItem:
    return HistoryItem(
        pk="__app-alias-history",
        sk=_history.sk("prod", at, "00000000"),
        alias="prod",
        changed_at=at,
        action=_history.PUT,
        before=before,
        after=after,
    )


def test_sort_keys_order_by_time_and_stay_inside_their_alias_range() -> None:
    keys = [_history.sk("prod", T0 + n * SEC) for n in (0, 1, 10, 100)]
    assert keys == sorted(keys)
    low, high = _history.sk_range("prod")
    assert all(low <= k <= high for k in keys)
    assert not low <= _history.sk("prodx", T0) <= high
    assert not low <= _history.sk("pro", T0) <= high


def test_the_range_until_a_time_includes_that_time_and_not_later() -> None:
    low, high = _history.sk_range("prod", T0)
    assert low <= _history.sk("prod", T0, "ffffffff") <= high
    assert not low <= _history.sk("prod", T0 + timedelta(microseconds=1), "00000000") <= high


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


def test_an_external_record_is_dated_after_the_newest_one_even_with_a_clock_behind() -> None:
    newest = record(T0, None, state(T0))
    behind = state(T0 - SEC, "000002")
    assert _history.external_record("app", "prod", behind, newest, T0).changed_at > T0


def test_change_time_is_after_every_earlier_time() -> None:
    assert _history.change_time(T0, None, T0 - SEC) == T0
    assert _history.change_time(T0, T0 + SEC, None) == T0 + SEC + timedelta(microseconds=1)


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
    newest = record(T0, state(T0 - SEC), state(T0, "000002"))
    current = state(T0 + 10 * SEC, "000003")
    assert _history.state_as_of(T0 + SEC, current, newest) == newest.after


def test_state_as_of_is_the_current_alias_when_it_was_set_before_then() -> None:
    current = state(T0)
    assert _history.state_as_of(T0 + SEC, current, None) == current
    assert _history.state_as_of(T0 + SEC, current, record(T0 - SEC, None, state(T0 - SEC))) == (
        current
    )


def test_state_as_of_before_any_record_is_unknown() -> None:
    with pytest.raises(LookupError):
        _history.state_as_of(T0 - SEC, state(T0), None)


def test_state_as_of_after_a_recorded_delete_is_none() -> None:
    deleted = record(T0, state(T0 - SEC), None)
    assert _history.state_as_of(T0 + SEC, None, deleted) is None


def test_a_record_newer_than_the_alias_read_is_not_an_outside_change() -> None:
    # the alias was read just before a change committed, its record just after
    before = state(T0)
    newest = record(T0 + SEC, before, state(T0 + SEC, "000002"))
    assert not _history.changed_outside(before, newest)
    assert _history.changed_outside(state(T0 + 2 * SEC, "000003"), newest)
