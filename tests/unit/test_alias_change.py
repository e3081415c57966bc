"""The decision of one alias change (versioned_async._policy.alias_change), without AWS."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from versioned_async import exc
from versioned_async._codec import AliasItem, AliasState, ChangeToken, HistoryItem
from versioned_async._policy import history as _history
from versioned_async._policy.alias_change import (
    ChangeRequest,
    PlannedChange,
    alias_target,
    plan_change,
)
from versioned_async._table_writes import (
    AppendHistory,
    DeleteAliasIfUnchanged,
    PinVersion,
    PutAliasIfUnchanged,
)

T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(minutes=5)
SEEN = ChangeToken({"S": "2026-11-30T12:00:00.000000+0000"})


def alias(version: str = "000001", at: datetime = T0) -> AliasItem:
    return AliasItem(pk="__app-alias", sk="prod", update_at=at, version=version)


def state_of(item: AliasItem) -> AliasState:
    state = _history.state_of(item)
    assert state is not None
    return state


def record_of(
    item: AliasItem | None, before: AliasState | None = None, seq: int = 1
) -> HistoryItem:
    """The newest record of a change that left the alias as ``item``."""
    return HistoryItem(
        pk="__app-alias-history",
        sk=_history.sk("prod", seq, "00000000"),
        alias="prod",
        changed_at=T0 if item is None else item.update_at,
        action=_history.PUT,
        seq=seq,
        before=before,
        after=None if item is None else state_of(item),
    )


def plan(
    target: tuple[str, str | None, int | None] | None,
    current: AliasItem | None,
    newest: HistoryItem | None,
    *,
    now: datetime = NOW,
    action: str = _history.PUT,
) -> PlannedChange | None:
    return plan_change(
        ChangeRequest("app", "prod", target, action, actor="ci", reason="release"),
        current=current,
        seen=None if current is None else SEEN,
        newest=newest,
        now=now,
    )


# -- the target ------------------------------------------------------------------------


def test_a_target_is_the_versions_in_stored_form() -> None:
    assert alias_target(3, None, None) == ("000003", None, None)
    assert alias_target(None, "2", 20) == ("LATEST", "000002", 20)


def test_a_weight_without_a_secondary_version_is_refused() -> None:
    with pytest.raises(exc.InvalidArgumentError, match="only allowed with a secondary_version"):
        alias_target(3, None, 20)


def test_a_target_splitting_traffic_with_itself_is_refused() -> None:
    with pytest.raises(exc.InvalidArgumentError, match="must differ"):
        alias_target(3, "3", 20)


# -- what the caller pinned ------------------------------------------------------------


def request(if_update_at: datetime | None = None, expect_absent: bool = False) -> ChangeRequest:
    return ChangeRequest(
        "app", "prod", ("000002", None, None), _history.PUT, None, None, if_update_at, expect_absent
    )


def test_a_request_without_expectations_is_not_pinned_and_takes_the_alias_as_it_is() -> None:
    assert not request().pinned
    assert not request().is_unexpected(alias())
    assert not request().is_unexpected(None)


def test_an_alias_as_the_caller_expects_is_not_unexpected() -> None:
    assert request(T0).pinned
    assert not request(T0).is_unexpected(alias())
    assert request(expect_absent=True).pinned
    assert not request(expect_absent=True).is_unexpected(None)


@pytest.mark.parametrize(
    ("current", "if_update_at", "expect_absent"),
    [
        (alias(), T0 + timedelta(seconds=1), False),
        (None, T0, False),
        (alias(), None, True),
    ],
)
def test_an_alias_that_moved_appeared_or_vanished_is_unexpected(
    current: AliasItem | None, if_update_at: datetime | None, expect_absent: bool
) -> None:
    assert request(if_update_at, expect_absent).is_unexpected(current)


# -- the plan --------------------------------------------------------------------------


def test_deleting_an_absent_alias_plans_nothing() -> None:
    assert plan(None, None, None) is None
    assert plan(None, None, record_of(None, state_of(alias()))) is None


def test_a_new_alias_is_put_where_none_is_and_recorded_first() -> None:
    change = plan(("000002", "000003", 10), None, None)
    assert change is not None
    assert change.new_item == AliasItem("__app-alias", "prod", NOW, "000002", "000003", 10)
    assert change.external is None
    record = change.record
    assert (record.pk, record.alias, record.seq, record.action) == (
        "__app-alias-history",
        "prod",
        1,
        "put",
    )
    assert record.sk.startswith(f"{_history.prefix('prod')}000000000001#")
    assert (record.before, record.after) == (None, state_of(change.new_item))
    assert (record.changed_at, record.actor, record.reason) == (NOW, "ci", "release")
    assert change.writes() == [
        PinVersion("app", "000002"),
        PinVersion("app", "000003"),
        PutAliasIfUnchanged(change.new_item, None),
        AppendHistory(record),
    ]


def test_a_move_comes_after_the_newest_record_and_is_conditional_on_the_alias_read() -> None:
    current = alias("000001")
    change = plan(("000002", None, None), current, record_of(current, seq=4))
    assert change is not None
    assert change.external is None
    assert change.record.seq == 5
    assert change.record.before == state_of(current)
    assert change.seen == SEEN
    assert change.new_item is not None
    assert change.writes() == [
        PinVersion("app", "000002"),
        PutAliasIfUnchanged(change.new_item, SEEN),
        AppendHistory(change.record),
    ]


def test_a_change_made_outside_since_the_newest_record_is_recorded_before_ours() -> None:
    recorded = alias("000001")
    current = alias("000007", at=T0 + timedelta(minutes=1))  # moved by `versioned`
    change = plan(("000002", None, None), current, record_of(recorded, seq=4))
    assert change is not None
    external = change.external
    assert external is not None
    assert (external.action, external.seq, external.actor) == ("external", 5, None)
    assert (external.before, external.after) == (state_of(recorded), state_of(current))
    assert external.changed_at == current.update_at
    assert change.record.seq == 6
    assert change.record.before == state_of(current)
    assert change.writes()[-2:] == [AppendHistory(external), AppendHistory(change.record)]


def test_an_alias_with_no_history_is_recorded_as_set_outside_first() -> None:
    change = plan(("000002", None, None), alias("000001"), None)
    assert change is not None
    assert change.external is not None
    assert (change.external.seq, change.record.seq) == (1, 2)


def test_a_deletion_deletes_the_alias_read_and_pins_nothing() -> None:
    current = alias("000001")
    change = plan(None, current, record_of(current), action=_history.DELETE)
    assert change is not None
    assert change.new_item is None
    assert change.pinned == ()
    assert (change.record.action, change.record.after) == ("delete", None)
    assert change.writes() == [
        DeleteAliasIfUnchanged("app", "prod", SEEN),
        AppendHistory(change.record),
    ]


def test_a_change_at_the_very_time_of_the_alias_moves_its_update_at_on() -> None:
    current = alias("000001")
    change = plan(("000002", None, None), current, record_of(current), now=T0)
    assert change is not None
    assert change.record.changed_at == T0 + timedelta(microseconds=1)
    assert change.new_item is not None
    assert change.new_item.update_at == T0 + timedelta(microseconds=1)


def test_a_change_behind_the_alias_keeps_the_writers_clock() -> None:
    current = alias("000001", at=NOW)
    change = plan(("000002", None, None), current, record_of(current), now=T0)
    assert change is not None
    assert change.record.changed_at == T0


# -- reading the cancelled transaction back --------------------------------------------


def test_the_first_failed_pin_names_the_missing_version() -> None:
    change = plan(("000002", "000003", 10), None, None)
    assert change is not None
    failed, fine = "ConditionalCheckFailed", "None"
    assert change.missing_version([fine, failed, fine, fine]) == "000003"
    assert change.missing_version([failed, failed, fine, fine]) == "000002"
    assert change.missing_version([fine, fine, failed, fine]) is None
    assert change.missing_version(["TransactionConflict"] * 4) is None


def test_a_failed_alias_condition_means_the_alias_moved() -> None:
    change = plan(("000002", None, None), alias(), record_of(alias()))
    assert change is not None
    assert change.alias_moved(["None", "ConditionalCheckFailed", "None"])
    assert not change.alias_moved(["None", "None", "ConditionalCheckFailed"])
    assert not change.alias_moved(["TransactionConflict"] * 3)
