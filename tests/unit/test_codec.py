"""Table items <-> records <-> models, in the exact form `versioned` 1.0.1 writes."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from versioned import dynamodb as versioned_dynamodb

from versioned_async import exc
from versioned_async._codec import (
    AliasItem,
    VersionItem,
    format_update_at,
    from_attribute_values,
    item_to_alias,
    item_to_artifact,
    parse_update_at,
    structure_alias_item,
    structure_version_item,
    to_attribute_values,
    to_item,
    unstructure,
)
from versioned_async._layout import Layout
from versioned_async.models import Alias, Artifact

SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
WHEN = datetime(2026, 11, 24, 22, 20, 19, 929848, tzinfo=timezone.utc)
WHEN_TEXT = "2026-11-24T22:20:19.929848+0000"
LAYOUT = Layout(bucket="bkt", prefix="artifacts")

# Items as `versioned` 1.0.1 writes them (read off a table it wrote on a moto server).
VERSIONED_VERSION_ITEM = {
    "pk": {"S": "app"},
    "sk": {"S": "000003"},
    "sha256": {"S": SHA},
    "is_deleted": {"BOOL": False},
    "update_at": {"S": WHEN_TEXT},
}
VERSIONED_LATEST_ITEM = {**VERSIONED_VERSION_ITEM, "sk": {"S": "LATEST"}}
VERSIONED_DELETED_ITEM = {**VERSIONED_VERSION_ITEM, "is_deleted": {"BOOL": True}}
VERSIONED_STUB_ITEM = {"pk": {"S": "app"}, "sk": {"S": "000004"}, "is_deleted": {"BOOL": True}}
VERSIONED_ALIAS_ITEM = {
    "pk": {"S": "__app-alias"},
    "sk": {"S": "prod"},
    "update_at": {"S": WHEN_TEXT},
    "version": {"S": "000003"},
}
VERSIONED_SPLIT_ALIAS_ITEM = {
    **VERSIONED_ALIAS_ITEM,
    "secondary_version": {"S": "000004"},
    "secondary_version_weight": {"N": "20"},
}


# -- update_at text ------------------------------------------------------------------


def test_format_update_at_is_pynamodb_utc_datetime_text() -> None:
    assert format_update_at(WHEN) == WHEN_TEXT


def sample_datetimes() -> list[datetime]:
    """Seeded random UTC datetimes from year 1000 to 9999, plus the edges."""
    rng = random.Random(31)
    low, high = datetime(1000, 1, 1, tzinfo=timezone.utc), datetime.max.replace(tzinfo=timezone.utc)
    span = int((high - low).total_seconds())
    randoms = [
        low + timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(1_000_000))
        for _ in range(300)
    ]
    return [low, high, WHEN, datetime(2026, 1, 1, tzinfo=timezone.utc), *randoms]


def test_format_update_at_is_always_31_characters_in_pynamodb_format() -> None:
    for value in sample_datetimes():
        text = format_update_at(value)
        assert len(text) == 31, text
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000", text), text


def test_format_update_at_writes_whole_seconds_with_six_zero_microseconds() -> None:
    assert format_update_at(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == (
        "2026-01-02T03:04:05.000000+0000"
    )


def test_format_update_at_converts_other_time_zones_to_utc() -> None:
    cest = timezone(timedelta(hours=2))
    value = datetime(2026, 6, 1, 12, 0, 0, 5, tzinfo=cest)
    assert format_update_at(value) == "2026-06-01T10:00:00.000005+0000"


def test_format_update_at_matches_what_pynamodb_writes() -> None:
    item = _versioned_alias_orm()(
        pk="__app-alias", sk="prod", version="000001", update_at=WHEN
    ).serialize()
    assert item["update_at"] == {"S": format_update_at(WHEN)}


def test_parse_update_at_reads_pynamodb_text_as_aware_utc() -> None:
    parsed = parse_update_at(WHEN_TEXT)
    assert parsed == WHEN
    assert parsed.utcoffset() == timedelta(0)


def test_parse_update_at_inverts_format_update_at() -> None:
    for value in sample_datetimes():
        assert parse_update_at(format_update_at(value)) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-24T22:20:19.929848+00:00", WHEN),
        ("2026-11-24T23:20:19.929848+01:00", WHEN),
        ("2026-11-24T22:20:19.929848", WHEN),
        ("2026-11-24T22:20:19.929848Z", WHEN),
        ("2026-11-25T00:20:19.929848+0200", WHEN),
    ],
)
def test_parse_update_at_reads_other_iso_8601_text_as_utc(text: str, expected: datetime) -> None:
    parsed = parse_update_at(text)
    assert parsed == expected
    assert parsed.tzinfo == timezone.utc


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01T00:00:00.000000+0000"])
def test_parse_update_at_refuses_text_that_is_not_a_timestamp(text: str) -> None:
    with pytest.raises(ValueError, match=r"does not match format|Invalid isoformat|month must be"):
        parse_update_at(text)


# -- records -> items ------------------------------------------------------------------


def test_version_item_becomes_the_item_versioned_writes() -> None:
    record = VersionItem(pk="app", sk="000003", sha256=SHA, update_at=WHEN)
    assert to_item(record) == VERSIONED_VERSION_ITEM


def test_is_deleted_is_written_even_when_false() -> None:
    record = VersionItem(pk="app", sk="000003", sha256=SHA, update_at=WHEN)
    assert unstructure(record)["is_deleted"] is False


def test_is_deleted_true_is_written_as_bool() -> None:
    record = VersionItem(pk="app", sk="000003", is_deleted=True, sha256=SHA, update_at=WHEN)
    assert to_item(record)["is_deleted"] == {"BOOL": True}


@pytest.mark.parametrize(
    "field", ["sha256", "update_at", "size", "content_type", "metadata", "publish_token"]
)
def test_none_fields_of_a_version_item_are_absent_not_null(field: str) -> None:
    item = to_item(VersionItem(pk="app", sk="000004", is_deleted=True))
    assert field not in item
    assert {"NULL": True} not in item.values()


def test_extra_version_attributes_are_written_in_their_dynamodb_types() -> None:
    record = VersionItem(
        pk="app",
        sk="000003",
        sha256=SHA,
        update_at=WHEN,
        size=1234,
        content_type="application/x-sqlite3",
        metadata={"team": "data", "build": "42"},
        publish_token="tok",
    )
    item = to_item(record)
    assert item["size"] == {"N": "1234"}
    assert item["content_type"] == {"S": "application/x-sqlite3"}
    assert item["metadata"] == {"M": {"team": {"S": "data"}, "build": {"S": "42"}}}
    assert item["publish_token"] == {"S": "tok"}


def test_alias_item_without_split_becomes_the_item_versioned_writes() -> None:
    record = AliasItem(pk="__app-alias", sk="prod", update_at=WHEN, version="000003")
    assert to_item(record) == VERSIONED_ALIAS_ITEM


def test_split_alias_item_becomes_the_item_versioned_writes() -> None:
    record = AliasItem(
        pk="__app-alias",
        sk="prod",
        update_at=WHEN,
        version="000003",
        secondary_version="000004",
        secondary_version_weight=20,
    )
    assert to_item(record) == VERSIONED_SPLIT_ALIAS_ITEM


@pytest.mark.parametrize("field", ["secondary_version", "secondary_version_weight"])
def test_unsplit_alias_item_has_no_secondary_attributes_not_even_null(field: str) -> None:
    item = to_item(AliasItem(pk="__app-alias", sk="prod", update_at=WHEN, version="LATEST"))
    assert field not in item


def test_a_weight_of_zero_is_written_not_omitted() -> None:
    record = AliasItem(
        pk="__app-alias",
        sk="prod",
        update_at=WHEN,
        version="000003",
        secondary_version="000004",
        secondary_version_weight=0,
    )
    assert to_item(record)["secondary_version_weight"] == {"N": "0"}


@pytest.mark.parametrize(
    ("orm", "fields"),
    [
        ("artifact", {"pk": "app", "sk": "000003", "sha256": SHA, "update_at": WHEN}),
        ("artifact", {"pk": "app", "sk": "LATEST", "sha256": SHA, "update_at": WHEN}),
        ("alias", {"pk": "__app-alias", "sk": "prod", "update_at": WHEN, "version": "000003"}),
        (
            "alias",
            {
                "pk": "__app-alias",
                "sk": "prod",
                "update_at": WHEN,
                "version": "000003",
                "secondary_version": "000004",
                "secondary_version_weight": 20,
            },
        ),
    ],
)
def test_our_items_equal_the_items_versioned_orm_serializes(
    orm: str, fields: dict[str, Any]
) -> None:
    if orm == "artifact":
        theirs = _versioned_artifact_orm()(**fields).serialize()
        ours = to_item(VersionItem(**fields))
    else:
        theirs = _versioned_alias_orm()(**fields).serialize()
        ours = to_item(AliasItem(**fields))
    assert ours == theirs


# -- items -> records ------------------------------------------------------------------


def test_a_version_item_written_by_versioned_structures_into_a_visible_record() -> None:
    record = structure_version_item(VERSIONED_VERSION_ITEM)
    assert record == VersionItem(
        pk="app", sk="000003", is_deleted=False, sha256=SHA, update_at=WHEN
    )
    assert record.is_visible


def test_a_soft_deleted_item_is_not_visible() -> None:
    assert not structure_version_item(VERSIONED_DELETED_ITEM).is_visible


def test_the_stub_versioned_leaves_when_deleting_a_missing_version_is_not_visible() -> None:
    record = structure_version_item(VERSIONED_STUB_ITEM)
    assert (record.pk, record.sk, record.is_deleted) == ("app", "000004", True)
    assert (record.sha256, record.update_at) == (None, None)
    assert not record.is_visible


def test_an_unfinished_reservation_without_sha256_is_not_visible() -> None:
    record = VersionItem(pk="app", sk="000005", update_at=WHEN, publish_token="tok")
    assert not record.is_visible


def test_an_item_without_update_at_is_not_visible() -> None:
    assert not VersionItem(pk="app", sk="000005", sha256=SHA).is_visible


def test_is_deleted_defaults_to_false_when_absent() -> None:
    item = {k: v for k, v in VERSIONED_VERSION_ITEM.items() if k != "is_deleted"}
    assert structure_version_item(item).is_deleted is False


def test_unknown_extra_attributes_are_ignored_when_reading() -> None:
    item = {**VERSIONED_VERSION_ITEM, "future_field": {"S": "x"}, "ttl": {"N": "1700000000"}}
    assert structure_version_item(item) == structure_version_item(VERSIONED_VERSION_ITEM)


def test_extra_version_attributes_are_read_back() -> None:
    item = {
        **VERSIONED_VERSION_ITEM,
        "size": {"N": "1234"},
        "content_type": {"S": "application/x-sqlite3"},
        "metadata": {"M": {"team": {"S": "data"}}},
    }
    record = structure_version_item(item)
    assert (record.size, record.content_type, record.metadata) == (
        1234,
        "application/x-sqlite3",
        {"team": "data"},
    )


def test_a_split_alias_written_by_versioned_structures_with_an_int_weight() -> None:
    record = structure_alias_item(VERSIONED_SPLIT_ALIAS_ITEM)
    assert record == AliasItem(
        pk="__app-alias",
        sk="prod",
        update_at=WHEN,
        version="000003",
        secondary_version="000004",
        secondary_version_weight=20,
    )


def test_an_alias_written_by_versioned_without_split_has_no_secondary() -> None:
    record = structure_alias_item(VERSIONED_ALIAS_ITEM)
    assert (record.secondary_version, record.secondary_version_weight) == (None, None)


def test_alias_items_ignore_unknown_extra_attributes() -> None:
    item = {**VERSIONED_ALIAS_ITEM, "history_hint": {"S": "x"}}
    assert structure_alias_item(item) == structure_alias_item(VERSIONED_ALIAS_ITEM)


@pytest.mark.parametrize(
    "record",
    [
        VersionItem(pk="app", sk="000003", sha256=SHA, update_at=WHEN),
        VersionItem(pk="app", sk="000004", is_deleted=True),
        VersionItem(
            pk="app",
            sk="LATEST",
            sha256=SHA,
            update_at=WHEN,
            size=0,
            content_type="text/plain",
            metadata={},
            publish_token="t",
        ),
    ],
)
def test_version_records_survive_a_round_trip_through_items(record: VersionItem) -> None:
    assert structure_version_item(to_item(record)) == record


@pytest.mark.parametrize(
    "record",
    [
        AliasItem(pk="__app-alias", sk="prod", update_at=WHEN, version="LATEST"),
        AliasItem(
            pk="__my-app-alias",
            sk="canary",
            update_at=WHEN,
            version="000001",
            secondary_version="000002",
            secondary_version_weight=99,
        ),
    ],
)
def test_alias_records_survive_a_round_trip_through_items(record: AliasItem) -> None:
    assert structure_alias_item(to_item(record)) == record


def _without(item: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != key}


@pytest.mark.parametrize(
    "item",
    [
        pytest.param(_without(VERSIONED_VERSION_ITEM, "pk"), id="no pk"),
        pytest.param(_without(VERSIONED_VERSION_ITEM, "sk"), id="no sk"),
        pytest.param(
            {**VERSIONED_VERSION_ITEM, "update_at": {"S": "yesterday"}}, id="bad update_at"
        ),
        pytest.param(
            {**VERSIONED_VERSION_ITEM, "update_at": {"N": "1700000000"}}, id="N update_at"
        ),
        pytest.param({**VERSIONED_VERSION_ITEM, "size": {"S": "big"}}, id="non-numeric size"),
        pytest.param({**VERSIONED_VERSION_ITEM, "is_deleted": {"S": "false"}}, id="S is_deleted"),
    ],
)
def test_a_malformed_version_item_raises_backend_error(item: dict[str, Any]) -> None:
    with pytest.raises(exc.BackendError, match="is not a valid VersionItem"):
        structure_version_item(item)


@pytest.mark.parametrize(
    "item",
    [
        pytest.param(_without(VERSIONED_ALIAS_ITEM, "version"), id="no version"),
        pytest.param(_without(VERSIONED_ALIAS_ITEM, "update_at"), id="no update_at"),
        pytest.param({**VERSIONED_ALIAS_ITEM, "update_at": {"S": "soon"}}, id="bad update_at"),
        pytest.param(
            {**VERSIONED_SPLIT_ALIAS_ITEM, "secondary_version_weight": {"S": "twenty"}},
            id="non-numeric weight",
        ),
    ],
)
def test_a_malformed_alias_item_raises_backend_error(item: dict[str, Any]) -> None:
    with pytest.raises(exc.BackendError, match="is not a valid AliasItem"):
        structure_alias_item(item)


def test_the_backend_error_of_a_malformed_item_keeps_the_cause() -> None:
    with pytest.raises(exc.BackendError) as info:
        structure_alias_item(_without(VERSIONED_ALIAS_ITEM, "version"))
    assert info.value.__cause__ is not None


# -- the AttributeValue form -------------------------------------------------------------


@pytest.mark.parametrize(
    ("plain", "av"),
    [
        ({"s": "text"}, {"s": {"S": "text"}}),
        ({"b": True}, {"b": {"BOOL": True}}),
        ({"b": False}, {"b": {"BOOL": False}}),
        ({"n": 20}, {"n": {"N": "20"}}),
        ({"n": -3}, {"n": {"N": "-3"}}),
        ({"n": 1.5}, {"n": {"N": "1.5"}}),
        ({"m": {"k": "v"}}, {"m": {"M": {"k": {"S": "v"}}}}),
        ({"l": ["a", 1]}, {"l": {"L": [{"S": "a"}, {"N": "1"}]}}),
        ({"z": None}, {"z": {"NULL": True}}),
    ],
)
def test_attribute_values_round_trip(plain: dict[str, Any], av: dict[str, Any]) -> None:
    assert to_attribute_values(plain) == av
    assert from_attribute_values(av) == plain


def test_n_values_that_are_integers_read_back_as_int() -> None:
    value = from_attribute_values({"n": {"N": "20"}})["n"]
    assert (type(value), value) == (int, 20)


def test_storing_an_unsupported_type_raises_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="cannot store object in DynamoDB"):
        to_attribute_values({"x": object()})


# -- records -> models ----------------------------------------------------------------


def test_item_to_artifact_gives_the_public_version_and_its_s3uri() -> None:
    artifact = item_to_artifact(structure_version_item(VERSIONED_VERSION_ITEM), LAYOUT)
    assert artifact == Artifact(
        name="app",
        version="3",
        update_at=WHEN,
        sha256=SHA,
        s3uri="s3://bkt/artifacts/app/000003",
    )


def test_item_to_artifact_keeps_latest_as_latest() -> None:
    artifact = item_to_artifact(structure_version_item(VERSIONED_LATEST_ITEM), LAYOUT)
    assert (artifact.version, artifact.s3uri) == ("LATEST", "s3://bkt/artifacts/app/LATEST")


def test_item_to_artifact_uses_the_layout_suffix_and_prefix() -> None:
    layout = Layout(bucket="b2", prefix="/a/b/", suffix=".db")
    artifact = item_to_artifact(structure_version_item(VERSIONED_VERSION_ITEM), layout)
    assert artifact.s3uri == "s3://b2/a/b/app/000003.db"


def test_item_to_artifact_of_a_versioned_item_has_no_size_type_or_metadata() -> None:
    artifact = item_to_artifact(structure_version_item(VERSIONED_VERSION_ITEM), LAYOUT)
    assert (artifact.size, artifact.content_type, artifact.metadata) == (None, None, {})


def test_item_to_artifact_carries_the_extra_attributes() -> None:
    record = VersionItem(
        pk="app",
        sk="000010",
        sha256=SHA,
        update_at=WHEN,
        size=7,
        content_type="text/plain",
        metadata={"team": "data"},
    )
    artifact = item_to_artifact(record, LAYOUT)
    assert (artifact.version, artifact.size, artifact.content_type, artifact.metadata) == (
        "10",
        7,
        "text/plain",
        {"team": "data"},
    )


def test_item_to_alias_gives_public_versions_and_s3uris() -> None:
    alias = item_to_alias(structure_alias_item(VERSIONED_SPLIT_ALIAS_ITEM), LAYOUT)
    assert alias == Alias(
        name="app",
        alias="prod",
        update_at=WHEN,
        version="3",
        secondary_version="4",
        secondary_version_weight=20,
        version_s3uri="s3://bkt/artifacts/app/000003",
        secondary_version_s3uri="s3://bkt/artifacts/app/000004",
    )


def test_item_to_alias_without_split_has_no_secondary_fields() -> None:
    alias = item_to_alias(structure_alias_item(VERSIONED_ALIAS_ITEM), LAYOUT)
    assert (alias.secondary_version, alias.secondary_version_weight) == (None, None)
    assert alias.secondary_version_s3uri is None


def test_item_to_alias_of_latest_points_at_the_latest_object() -> None:
    record = AliasItem(pk="__app-alias", sk="dev", update_at=WHEN, version="LATEST")
    alias = item_to_alias(record, LAYOUT)
    assert (alias.version, alias.version_s3uri) == ("LATEST", "s3://bkt/artifacts/app/LATEST")


@pytest.mark.parametrize("name", ["my-app", "x-alias", "_x", "a b"])
def test_item_to_alias_recovers_names_with_dashes_and_underscores(name: str) -> None:
    record = AliasItem(pk=f"__{name}-alias", sk="prod", update_at=WHEN, version="000001")
    alias = item_to_alias(record, LAYOUT)
    assert (alias.name, alias.version_s3uri) == (name, f"s3://bkt/artifacts/{name}/000001")


def test_item_to_alias_drops_a_weight_stored_without_a_secondary_version() -> None:
    record = AliasItem(
        pk="__app-alias", sk="prod", update_at=WHEN, version="000001", secondary_version_weight=30
    )
    assert item_to_alias(record, LAYOUT).secondary_version_weight is None


# -- versioned's own ORM, to serialize items without a table ------------------------------


def _versioned_artifact_orm() -> type[versioned_dynamodb.Artifact]:
    class ArtifactOrm(versioned_dynamodb.Artifact):
        class Meta:
            table_name = "unit"
            region = "us-east-1"

    return ArtifactOrm


def _versioned_alias_orm() -> type[versioned_dynamodb.Alias]:
    class AliasOrm(versioned_dynamodb.Alias):
        class Meta:
            table_name = "unit"
            region = "us-east-1"

    return AliasOrm
