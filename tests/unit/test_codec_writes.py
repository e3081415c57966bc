"""Typed table writes, spelled as DynamoDB requests (versioned_async._codec.writes).

Each expected request is the one the repository sent before the writes were
typed, key for key and in the same order (compared as JSON text, which keeps
the order): conditions, update expressions and attribute values are the wire
format, and `versioned` 1.0 shares the table.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from tests.unit.test_codec import SHA, WHEN, WHEN_TEXT
from versioned_async import _codec
from versioned_async._codec import (
    AliasItem,
    ChangeToken,
    HistoryItem,
    HoldItem,
    VersionItem,
    change_token,
    delete_item_args,
    publish_token_of,
    put_item_args,
    search_filter,
    to_item,
    transact_items,
    update_item_args,
)
from versioned_async._policy import history as _history
from versioned_async._table_writes import (
    AppendHistory,
    CompleteReservation,
    DeleteAliasIfUnchanged,
    PinVersion,
    PurgeVersion,
    PutAliasIfUnchanged,
    PutHold,
    RecordLatest,
    ReleaseReservation,
    RequireAliasUnchanged,
    RequireNotHeld,
    RequireVisible,
    ReserveNumber,
    RestorePurgedVersion,
    SoftDeleteVersion,
    TableWrite,
    TakeOverReservation,
)

LATER = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)
LATER_TEXT = "2026-11-25T08:00:00.000000+0000"
VISIBLE = "attribute_exists(sha256) AND is_deleted = :false"
#: an update_at as another writer may have stored it: not our rendering of any time
FOREIGN_STAMP = {"S": "2026-11-24T22:20:19.929848+00:00"}

#: a published version as our publish completes it: every attribute but the token
VERSION = VersionItem("app", "000003", False, SHA, WHEN, 3, "text/plain", {"team": "ml"})
RESERVATION = VersionItem(
    pk="app", sk="000004", is_deleted=True, update_at=WHEN, publish_token="theirs"
)
ALIAS = AliasItem(pk="__app-alias", sk="prod", update_at=WHEN, version="000003")
RECORD = HistoryItem(
    pk="__app-alias-history",
    sk=_history.sk("prod", 7, "00c0ffee"),
    alias="prod",
    changed_at=WHEN,
    action=_history.PUT,
    seq=7,
)


def wire(value: Any) -> str:
    """JSON text: equal only with the same keys and values in the same order."""
    return json.dumps(value)


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


# -- single writes: the adapter's put_item / update_item / delete_item -------------------


def test_recording_latest_puts_the_item_unless_a_newer_put_recorded_its_own() -> None:
    latest = VersionItem(pk="app", sk="LATEST", sha256=SHA, update_at=WHEN, metadata={})
    assert wire(put_item_args(RecordLatest(latest, LATER))) == wire(
        {
            "item": to_item(latest),
            "condition": "attribute_not_exists(update_at) OR update_at <= :u",
            "values": {":u": {"S": LATER_TEXT}},
        }
    )


def test_reserving_a_number_puts_the_reservation_where_no_item_is() -> None:
    assert put_item_args(ReserveNumber(RESERVATION)) == {
        "item": to_item(RESERVATION),
        "condition": "attribute_not_exists(pk)",
        "values": None,
    }


def test_completing_a_reservation_sets_every_attribute_by_name_and_removes_the_token() -> None:
    args = update_item_args(CompleteReservation(VERSION, "tok"))
    fields = ["is_deleted", "sha256", "update_at", "size", "content_type", "metadata"]
    assert wire(args) == wire(
        {
            "pk": "app",
            "sk": "000003",
            "update": f"SET {', '.join(f'#{f} = :{f}' for f in fields)} REMOVE publish_token",
            "condition": "publish_token = :token",
            "values": {
                ":is_deleted": {"BOOL": False},
                ":sha256": {"S": SHA},
                ":update_at": {"S": WHEN_TEXT},
                ":size": {"N": "3"},
                ":content_type": {"S": "text/plain"},
                ":metadata": {"M": {"team": {"S": "ml"}}},
                ":token": {"S": "tok"},
            },
            "names": {f"#{f}": f for f in fields},
        }
    )


def test_taking_over_a_reservation_checks_its_token_and_update_at_as_read() -> None:
    assert wire(update_item_args(TakeOverReservation(RESERVATION, "mine", LATER))) == wire(
        {
            "pk": "app",
            "sk": "000004",
            "update": "SET publish_token = :mine, update_at = :now",
            "condition": (
                "publish_token = :theirs AND attribute_not_exists(sha256) AND update_at = :seen"
            ),
            "values": {
                ":theirs": {"S": "theirs"},
                ":mine": {"S": "mine"},
                ":now": {"S": LATER_TEXT},
                ":seen": {"S": WHEN_TEXT},
            },
            "names": None,
        }
    )


def test_taking_over_a_reservation_without_update_at_checks_the_token_alone() -> None:
    undated = VersionItem(pk="app", sk="000004", is_deleted=True, publish_token="theirs")
    args = update_item_args(TakeOverReservation(undated, "mine", LATER))
    assert args["condition"] == "publish_token = :theirs AND attribute_not_exists(sha256)"
    assert list(args["values"] or {}) == [":theirs", ":mine", ":now"]


def test_releasing_a_reservation_deletes_it_only_while_it_carries_the_token() -> None:
    assert wire(delete_item_args(ReleaseReservation("app", "000004", "tok"))) == wire(
        {
            "pk": "app",
            "sk": "000004",
            "condition": "publish_token = :t",
            "values": {":t": {"S": "tok"}},
        }
    )


def test_a_soft_delete_marks_an_existing_version_deleted() -> None:
    assert wire(update_item_args(SoftDeleteVersion("app", "LATEST"))) == wire(
        {
            "pk": "app",
            "sk": "LATEST",
            "update": "SET is_deleted = :true",
            "condition": "attribute_exists(pk)",
            "values": {":true": {"BOOL": True}},
            "names": None,
        }
    )


def test_restoring_a_purged_version_needs_it_deleted_with_the_same_content() -> None:
    assert wire(update_item_args(RestorePurgedVersion("app", "000003", SHA))) == wire(
        {
            "pk": "app",
            "sk": "000003",
            "update": "SET is_deleted = :false REMOVE purged_at",
            "condition": "is_deleted = :true AND sha256 = :sha",
            "values": {":true": {"BOOL": True}, ":false": {"BOOL": False}, ":sha": {"S": SHA}},
            "names": None,
        }
    )


# -- transactions ----------------------------------------------------------------------


def test_deleting_a_numbered_version_checks_in_one_transaction_that_it_is_not_held() -> None:
    items = transact_items([SoftDeleteVersion("app", "000003"), RequireNotHeld("app", "000003")])
    assert wire(items) == wire(
        [
            {
                "Update": {
                    "Key": key("app", "000003"),
                    "UpdateExpression": "SET is_deleted = :true",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeValues": {":true": {"BOOL": True}},
                }
            },
            {
                "ConditionCheck": {
                    "Key": key("__app-holds", "000003"),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
    )


@pytest.mark.parametrize(
    ("epoch", "unpinned", "epoch_value"),
    [
        (None, "attribute_not_exists(alias_epoch)", {}),
        (4, "alias_epoch = :epoch", {":epoch": {"N": "4"}}),
    ],
)
def test_a_purge_deletes_a_version_only_if_no_alias_write_pointed_at_it_since(
    epoch: int | None, unpinned: str, epoch_value: dict[str, Any]
) -> None:
    [item] = transact_items([PurgeVersion("app", "000003", epoch, LATER)])
    assert wire(item) == wire(
        {
            "Update": {
                "Key": key("app", "000003"),
                "UpdateExpression": "SET is_deleted = :true, purged_at = :now",
                "ConditionExpression": f"{VISIBLE} AND {unpinned}",
                "ExpressionAttributeValues": {
                    ":true": {"BOOL": True},
                    ":false": {"BOOL": False},
                    ":now": {"S": LATER_TEXT},
                    **epoch_value,
                },
            }
        }
    )


def test_a_purge_guard_compares_the_alias_update_at_exactly_as_stored() -> None:
    [item] = transact_items([RequireAliasUnchanged("app", "prod", ChangeToken(FOREIGN_STAMP))])
    assert wire(item) == wire(
        {
            "ConditionCheck": {
                "Key": key("__app-alias", "prod"),
                "ConditionExpression": "update_at = :u",
                "ExpressionAttributeValues": {":u": FOREIGN_STAMP},
            }
        }
    )


def test_protecting_checks_the_version_is_visible_and_puts_the_hold() -> None:
    hold = HoldItem(pk="__app-holds", sk="000003", created_at=WHEN, reason="audit")
    assert wire(transact_items([RequireVisible("app", "000003"), PutHold(hold)])) == wire(
        [
            {
                "ConditionCheck": {
                    "Key": key("app", "000003"),
                    "ConditionExpression": VISIBLE,
                    "ExpressionAttributeValues": {":false": {"BOOL": False}},
                }
            },
            {"Put": {"Item": to_item(hold)}},
        ]
    )


def test_pinning_a_version_needs_it_visible_and_counts_its_alias_epoch_up() -> None:
    assert wire(transact_items([PinVersion("app", "000003")])) == wire(
        [
            {
                "Update": {
                    "Key": key("app", "000003"),
                    "UpdateExpression": "ADD alias_epoch :one",
                    "ConditionExpression": VISIBLE,
                    "ExpressionAttributeValues": {":false": {"BOOL": False}, ":one": {"N": "1"}},
                }
            }
        ]
    )


def test_an_alias_read_absent_is_put_only_where_none_is() -> None:
    assert wire(transact_items([PutAliasIfUnchanged(ALIAS, None)])) == wire(
        [{"Put": {"Item": to_item(ALIAS), "ConditionExpression": "attribute_not_exists(pk)"}}]
    )


def test_an_alias_read_is_put_only_while_its_stored_update_at_is_unchanged() -> None:
    assert wire(transact_items([PutAliasIfUnchanged(ALIAS, ChangeToken(FOREIGN_STAMP))])) == wire(
        [
            {
                "Put": {
                    "Item": to_item(ALIAS),
                    "ConditionExpression": "update_at = :seen",
                    "ExpressionAttributeValues": {":seen": FOREIGN_STAMP},
                }
            }
        ]
    )


def test_an_alias_is_deleted_only_while_unchanged() -> None:
    deleted = DeleteAliasIfUnchanged("app", "prod", ChangeToken(FOREIGN_STAMP))
    assert wire(transact_items([deleted])) == wire(
        [
            {
                "Delete": {
                    "Key": key("__app-alias", "prod"),
                    "ConditionExpression": "update_at = :seen",
                    "ExpressionAttributeValues": {":seen": FOREIGN_STAMP},
                }
            }
        ]
    )


def test_a_history_record_is_appended_never_overwritten() -> None:
    assert wire(transact_items([AppendHistory(RECORD)])) == wire(
        [{"Put": {"Item": to_item(RECORD), "ConditionExpression": "attribute_not_exists(pk)"}}]
    )


def test_every_request_is_new_so_the_adapter_may_add_the_table_name() -> None:
    writes: list[TableWrite] = [PinVersion("app", "000003"), RequireNotHeld("app", "000003")]
    first = transact_items(writes)
    for entry in first:
        for action in entry.values():
            action["TableName"] = "t"
    assert all("TableName" not in a for e in transact_items(writes) for a in e.values())


def test_a_value_that_is_no_table_write_is_refused() -> None:
    with pytest.raises(TypeError, match="not a table write"):
        transact_items(["Put"])  # type: ignore[list-item]


# -- values read off items -------------------------------------------------------------


def test_the_change_token_is_the_stored_update_at_untouched() -> None:
    assert change_token({"update_at": FOREIGN_STAMP, "sk": {"S": "prod"}}) == ChangeToken(
        FOREIGN_STAMP
    )


@pytest.mark.parametrize(
    ("item", "token"),
    [
        ({"publish_token": {"S": "tok"}}, "tok"),
        ({}, None),
        ({"publish_token": {"N": "1"}}, None),
    ],
)
def test_the_publish_token_is_read_off_an_item_without_judging_the_rest(
    item: dict[str, Any], token: str | None
) -> None:
    assert publish_token_of({"pk": {"S": "app"}, "sk": {"BOOL": True}, **item}) == token


def test_a_key_is_the_partition_and_the_sort_key_as_strings() -> None:
    assert _codec.key("app", "000001") == key("app", "000001")


# -- metadata search filters -----------------------------------------------------------


def test_a_search_in_one_name_filters_on_visibility_and_the_metadata_map() -> None:
    condition, values, names = search_filter(
        {"team": "ml", "a-b": "x"}, across_names=False, include_latest=True
    )
    assert condition == (
        "attribute_exists(sha256) AND attribute_exists(update_at) AND is_deleted = :false"
        " AND ((#meta.#k0 = :v0 AND #meta.#k1 = :v1) OR attribute_not_exists(#meta))"
    )
    assert values == {":false": {"BOOL": False}, ":v0": {"S": "x"}, ":v1": {"S": "ml"}}
    assert names == {"#meta": "metadata", "#k0": "a-b", "#k1": "team"}


def test_a_search_across_names_skips_other_item_kinds_and_may_skip_latest() -> None:
    condition, values, names = search_filter({}, across_names=True, include_latest=False)
    assert condition == (
        "NOT begins_with(pk, :dunder) AND attribute_exists(sha256)"
        " AND attribute_exists(update_at) AND is_deleted = :false AND sk <> :latest"
    )
    assert values == {
        ":false": {"BOOL": False},
        ":dunder": {"S": "__"},
        ":latest": {"S": "LATEST"},
    }
    assert names == {}
