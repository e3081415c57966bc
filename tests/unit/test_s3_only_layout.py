"""Keys and alias bodies of the S3-only layout, in the exact form `versioned` 1.0.1 writes.

The facts come from docs/S3_ONLY_WIRE_FORMAT.md. Where upstream has a pure
function for the same thing (file names, keys, its Alias dataclass), the
tests also check against it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import string
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from versioned.api import s3_only_backend as upstream

from versioned_async import exc
from versioned_async._codec import (
    AliasDocument,
    AliasItem,
    alias_document,
    item_to_alias,
    parse_alias_document,
)
from versioned_async._layout import alias_pk
from versioned_async._s3_only_layout import S3OnlyLayout, decode_file_stem, encode_file_stem

#: pure and fast: four times the profile's budget (120 by default)
PURE = settings(max_examples=4 * settings().max_examples, deadline=None)

LAST_MODIFIED = datetime(2026, 11, 30, 6, 39, 25, tzinfo=timezone.utc)
WHEN = datetime(2026, 11, 24, 22, 20, 19, 929848, tzinfo=timezone.utc)
LAYOUT = S3OnlyLayout(bucket="bkt", prefix="versioned-artifacts")

# Exact alias bodies `versioned` 1.0.1 stored (bucket "bkt", default prefix).
UPSTREAM_SPLIT_BODY = (
    b'{"name": "app", "alias": "canary", "update_at": "unknown", "version": "2", '
    b'"secondary_version": "1", "secondary_version_weight": 20, '
    b'"version_s3uri": "s3://bkt/versioned-artifacts/app/versions/999998_000002", '
    b'"secondary_version_s3uri": "s3://bkt/versioned-artifacts/app/versions/999999_000001"}'
)
UPSTREAM_PLAIN_BODY = (
    b'{"name": "app", "alias": "prod", "update_at": "unknown", "version": "1", '
    b'"secondary_version": null, "secondary_version_weight": null, '
    b'"version_s3uri": "s3://bkt/versioned-artifacts/app/versions/999999_000001", '
    b'"secondary_version_s3uri": null}'
)
UPSTREAM_KEYS = [
    "name",
    "alias",
    "update_at",
    "version",
    "secondary_version",
    "secondary_version_weight",
    "version_s3uri",
    "secondary_version_s3uri",
]

numbers = st.integers(min_value=1, max_value=999_999)
stored_versions = st.one_of(st.just("LATEST"), numbers.map(lambda n: f"{n:06d}"))
names = st.text(string.ascii_letters + string.digits + "._- ", min_size=1, max_size=30)
aliases = st.text(string.ascii_letters + string.digits + "._", min_size=1, max_size=30)
layouts = st.builds(
    S3OnlyLayout,
    bucket=st.sampled_from(["bkt", "my.bucket-1"]),
    prefix=st.sampled_from(["versioned-artifacts", "team/models", "/team/models/", ""]),
    suffix=st.sampled_from(["", ".sqlite", ".tar.gz"]),
)


def public(stored: str) -> str:
    return stored if stored == "LATEST" else str(int(stored))


# -- file stems ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "stem"),
    [
        ("LATEST", "000000_LATEST"),
        ("000001", "999999_000001"),
        ("000002", "999998_000002"),
        ("000010", "999990_000010"),
        ("000042", "999958_000042"),
        ("999999", "000001_999999"),
    ],
)
def test_a_stored_version_encodes_to_upstreams_file_stem_and_back(stored: str, stem: str) -> None:
    assert encode_file_stem(stored) == stem
    assert decode_file_stem(stem) == stored


@PURE
@given(stored=stored_versions)
def test_every_stored_version_round_trips_through_its_stem(stored: str) -> None:
    assert decode_file_stem(encode_file_stem(stored)) == stored


@PURE
@given(stored=stored_versions)
@example(stored="LATEST")
@example(stored="000001")
@example(stored="999999")
def test_the_stem_is_upstreams_encode_filename_and_decodes_with_upstream(stored: str) -> None:
    stem = encode_file_stem(stored)
    assert stem == upstream.encode_filename(public(stored))
    assert upstream.decode_filename(stem) == public(stored)


@PURE
@given(versions=st.lists(stored_versions, min_size=1, max_size=30, unique=True))
def test_stems_sort_latest_first_then_the_highest_number_first(versions: list[str]) -> None:
    listed = [decode_file_stem(stem) for stem in sorted(map(encode_file_stem, versions))]
    numbered = sorted((v for v in versions if v != "LATEST"), key=int, reverse=True)
    assert listed == (["LATEST"] if "LATEST" in versions else []) + numbered


@pytest.mark.parametrize(
    "stem",
    [
        "zzz_notes.txt",
        "999999_000002",  # each half is valid, but they do not belong together
        "000000_1000000",  # 1000000: upstream reads it as LATEST
        "000000_000000",  # version 0
        "1000000_000000",
        "1abc",
        "",
        "LATEST",
        "000000_latest",
        "000000_LATEST.txt",
        "000000_LATESTX",
        " 999999_000001",
        "999999_000001 ",
        "999999-000001",
        "999999_00001",
        "99999_000001",
        "999999_000001_x",
        "notes/999999_000001",
        "\u0669" * 6 + "_" + "\u0660" * 5 + "\u0661",  # Arabic-Indic digits: "999999_000001"
        "\uff19" * 6 + "_" + "\uff10" * 5 + "\uff11",  # full-width digits: "999999_000001"
    ],
)
def test_a_foreign_stem_decodes_to_none(stem: str) -> None:
    assert decode_file_stem(stem) is None


#: the zero of some Unicode digit sets: int() and the regex \d accept them all
UNICODE_ZEROS = [0x30, 0x660, 0x6F0, 0x966, 0xFF10, 0x1D7CE]


@st.composite
def lookalike_stems(draw: st.DrawFn) -> str:
    """A valid stem, its digits possibly swapped for another script's digits."""
    stem = encode_file_stem(f"{draw(numbers):06d}")
    zero = draw(st.sampled_from(UNICODE_ZEROS))
    return stem.translate({0x30 + d: zero + d for d in range(10)})


@PURE
@given(stem=st.one_of(st.text(max_size=16), lookalike_stems()))
@example(stem="999999_000002")
def test_a_stem_that_decodes_is_exactly_the_encoding_of_its_version(stem: str) -> None:
    decoded = decode_file_stem(stem)
    if decoded is not None:
        assert encode_file_stem(decoded) == stem


# -- keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "name", "stored", "key"),
    [
        (LAYOUT, "app", "000001", "versioned-artifacts/app/versions/999999_000001"),
        (LAYOUT, "app", "LATEST", "versioned-artifacts/app/versions/000000_LATEST"),
        (
            S3OnlyLayout("bkt", "team/models", ".tar.gz"),
            "m",
            "000002",
            "team/models/m/versions/999998_000002.tar.gz",
        ),
        (
            S3OnlyLayout("bkt", "team/models", ".sqlite"),
            "m",
            "LATEST",
            "team/models/m/versions/000000_LATEST.sqlite",
        ),
        (
            S3OnlyLayout("bkt", "/team/models/", ".sqlite"),
            "m",
            "999999",
            "team/models/m/versions/000001_999999.sqlite",
        ),
        (S3OnlyLayout("bkt", ""), "x", "LATEST", "x/versions/000000_LATEST"),
        (S3OnlyLayout("bkt", "/"), "x", "000010", "x/versions/999990_000010"),
    ],
)
def test_version_keys(layout: S3OnlyLayout, name: str, stored: str, key: str) -> None:
    assert layout.key(name, stored) == key
    assert layout.s3uri(name, stored) == f"s3://bkt/{key}"
    assert layout.version_of_key(name, key) == stored


@pytest.mark.parametrize("prefix", ["team/models", "team/models/", "/team/models", "/team/models/"])
def test_leading_and_trailing_slashes_of_the_prefix_do_not_matter(prefix: str) -> None:
    layout = S3OnlyLayout("bkt", prefix, ".sqlite")
    assert layout.versions_prefix("m") == "team/models/m/versions/"
    assert layout.aliases_prefix("m") == "team/models/m/aliases/"
    assert layout.key("m", "000001") == "team/models/m/versions/999999_000001.sqlite"
    assert layout.alias_key("m", "prod") == "team/models/m/aliases/prod.json"


def test_an_empty_prefix_is_the_bucket_root() -> None:
    layout = S3OnlyLayout("bkt", "")
    assert layout.versions_prefix("x") == "x/versions/"
    assert layout.aliases_prefix("x") == "x/aliases/"
    assert layout.alias_key("x", "prod") == "x/aliases/prod.json"
    assert layout.version_of_key("x", "x/versions/999998_000002") == "000002"
    assert layout.alias_of_key("x", "x/aliases/prod.json") == "prod"


def test_alias_keys_take_no_suffix() -> None:
    layout = S3OnlyLayout("bkt", "team/models", ".sqlite")
    assert layout.alias_key("m", "prod") == "team/models/m/aliases/prod.json"
    assert layout.alias_of_key("m", "team/models/m/aliases/prod.json") == "prod"
    assert layout.alias_of_key("m", "team/models/m/aliases/prod.json.sqlite") is None


@pytest.mark.parametrize("prefix", ["versioned-artifacts", "team/models", "/team/models/", ""])
@pytest.mark.parametrize("suffix", ["", ".sqlite"])
@pytest.mark.parametrize("stored", ["LATEST", "000001", "000002", "000010", "999999"])
def test_keys_are_the_keys_upstream_computes(prefix: str, suffix: str, stored: str) -> None:
    ours = S3OnlyLayout("bkt", prefix, suffix)
    theirs = upstream.Repository(
        aws_region="us-east-1", s3_bucket="bkt", s3_prefix=prefix, suffix=suffix
    )
    assert ours.s3uri("m", stored) == theirs._get_artifact_s3path("m", public(stored)).uri
    assert f"s3://bkt/{ours.alias_key('m', 'prod')}" == theirs._get_alias_s3path("m", "prod").uri


@PURE
@given(layout=layouts, name=names, stored=stored_versions)
def test_every_version_key_reads_back_as_its_version(
    layout: S3OnlyLayout, name: str, stored: str
) -> None:
    key = layout.key(name, stored)
    assert key.startswith(layout.versions_prefix(name))
    assert layout.version_of_key(name, key) == stored
    assert layout.alias_of_key(name, key) is None


@PURE
@given(layout=layouts, name=names, alias=aliases)
def test_every_alias_key_reads_back_as_its_alias(
    layout: S3OnlyLayout, name: str, alias: str
) -> None:
    key = layout.alias_key(name, alias)
    assert key.startswith(layout.aliases_prefix(name))
    assert layout.alias_of_key(name, key) == alias
    assert layout.version_of_key(name, key) is None


@PURE
@given(layout=layouts, versions=st.lists(stored_versions, min_size=1, max_size=30, unique=True))
def test_keys_in_s3_byte_order_list_latest_first_then_the_highest_number(
    layout: S3OnlyLayout, versions: list[str]
) -> None:
    keys = sorted((layout.key("m", v) for v in versions), key=lambda k: k.encode("utf-8"))
    listed = [layout.version_of_key("m", k) for k in keys]
    numbered = sorted((v for v in versions if v != "LATEST"), key=int, reverse=True)
    assert listed == (["LATEST"] if "LATEST" in versions else []) + numbered


@pytest.mark.parametrize(
    "key",
    [
        "team/models/m/versions/zzz_notes.txt",
        "team/models/m/versions/999999_000002.sqlite",
        "team/models/m/versions/000000_1000000.sqlite",
        "team/models/m/versions/1abc.sqlite",
        "team/models/m/versions/999999_000001",  # no suffix
        "team/models/m/versions/999999_000001.sqlite.sqlite",
        "team/models/m/versions/999999_000001.tar.gz",
        "team/models/m/versions/old/999999_000001.sqlite",
        "team/models/m/versions/",
        "team/models/m/versions/.sqlite",
        "team/models/m/versions_old/999999_000001.sqlite",
        "team/models/m/versions_old/foo",
        "team/models/m/999999_000001.sqlite",
        "team/models/m/aliases/prod.json",
        "team/models/other/versions/999999_000001.sqlite",
        "team/models/mm/versions/999999_000001.sqlite",
        "team/models/m/versions/999999_000001.sqlite/x",
        "other/m/versions/999999_000001.sqlite",
        "m/versions/999999_000001.sqlite",
    ],
)
def test_a_foreign_key_is_no_version(key: str) -> None:
    layout = S3OnlyLayout("bkt", "team/models", ".sqlite")
    assert layout.version_of_key("m", key) is None


@pytest.mark.parametrize(
    "key",
    [
        "team/models/m/aliases/.json",
        "team/models/m/aliases/prod",
        "team/models/m/aliases/prod.txt",
        "team/models/m/aliases/",
        "team/models/m/aliases_history/prod.json",
        "team/models/m/aliasesprod.json",
        "team/models/m/prod.json",
        "team/models/m/versions/000000_LATEST.sqlite",
        "team/models/other/aliases/prod.json",
        "other/m/aliases/prod.json",
    ],
)
def test_a_foreign_key_is_no_alias(key: str) -> None:
    layout = S3OnlyLayout("bkt", "team/models", ".sqlite")
    assert layout.alias_of_key("m", key) is None


@pytest.mark.parametrize("prefix", ["versioned-artifacts", ""])
def test_sibling_folders_are_outside_the_versions_and_aliases_prefixes(prefix: str) -> None:
    # upstream lists "{prefix}/{name}/versions" without the slash: versions_old/ is in its listing
    layout = S3OnlyLayout("bkt", prefix)
    root = f"{prefix}/" if prefix else ""
    assert layout.versions_prefix("m") == f"{root}m/versions/"
    assert layout.aliases_prefix("m") == f"{root}m/aliases/"
    for sibling in ("versions_old/foo", "versions_old/999999_000001", "versionsX"):
        assert not f"{root}m/{sibling}".startswith(layout.versions_prefix("m"))
        assert layout.version_of_key("m", f"{root}m/{sibling}") is None
    for sibling in ("aliases_history/x.json", "aliases.json"):
        assert not f"{root}m/{sibling}".startswith(layout.aliases_prefix("m"))
        assert layout.alias_of_key("m", f"{root}m/{sibling}") is None


# -- alias bodies: writing -------------------------------------------------------------


def alias_item(
    alias: str,
    version: str,
    secondary: str | None = None,
    weight: int | None = None,
    *,
    name: str = "app",
    update_at: datetime = WHEN,
) -> AliasItem:
    return AliasItem(
        pk=alias_pk(name),
        sk=alias,
        update_at=update_at,
        version=version,
        secondary_version=secondary,
        secondary_version_weight=weight,
    )


def with_unknown_time(body: bytes, update_at: datetime) -> bytes:
    stamp = f'"update_at": "{update_at.isoformat()}"'.encode()
    assert body.count(stamp) == 1, body
    return body.replace(stamp, b'"update_at": "unknown"')


def test_a_split_alias_body_is_upstreams_body_with_the_time_filled_in() -> None:
    body = alias_document(alias_item("canary", "000002", "000001", 20), LAYOUT)
    assert body == (
        b'{"name": "app", "alias": "canary", "update_at": "2026-11-24T22:20:19.929848+00:00", '
        b'"version": "2", "secondary_version": "1", "secondary_version_weight": 20, '
        b'"version_s3uri": "s3://bkt/versioned-artifacts/app/versions/999998_000002", '
        b'"secondary_version_s3uri": "s3://bkt/versioned-artifacts/app/versions/999999_000001"}'
    )
    assert with_unknown_time(body, WHEN) == UPSTREAM_SPLIT_BODY


def test_an_alias_body_without_a_split_has_null_secondary_fields() -> None:
    body = alias_document(alias_item("prod", "000001"), LAYOUT)
    assert with_unknown_time(body, WHEN) == UPSTREAM_PLAIN_BODY
    document = json.loads(body)
    assert list(document) == UPSTREAM_KEYS
    assert document["secondary_version"] is None
    assert document["secondary_version_weight"] is None
    assert document["secondary_version_s3uri"] is None


def test_a_weight_without_a_secondary_version_is_written_as_null() -> None:
    body = alias_document(alias_item("prod", "000001", None, 30), LAYOUT)
    assert with_unknown_time(body, WHEN) == UPSTREAM_PLAIN_BODY


def test_an_alias_to_latest_names_the_latest_object() -> None:
    document = json.loads(alias_document(alias_item("dev", "LATEST"), LAYOUT))
    assert document["version"] == "LATEST"
    assert document["version_s3uri"] == "s3://bkt/versioned-artifacts/app/versions/000000_LATEST"


def test_an_alias_body_uses_the_layouts_bucket_prefix_and_suffix() -> None:
    layout = S3OnlyLayout("other-bkt", "/team/models/", ".sqlite")
    item = alias_item("canary", "000010", "LATEST", 0, name="m")
    document = json.loads(alias_document(item, layout))
    assert document["version_s3uri"] == "s3://other-bkt/team/models/m/versions/999990_000010.sqlite"
    assert document["secondary_version_s3uri"] == (
        "s3://other-bkt/team/models/m/versions/000000_LATEST.sqlite"
    )
    assert (document["version"], document["secondary_version"]) == ("10", "LATEST")
    assert document["secondary_version_weight"] == 0


def test_the_alias_document_fields_are_upstreams_alias_fields_in_order() -> None:
    upstream_fields = [field.name for field in dataclasses.fields(upstream.Alias)]
    assert upstream_fields == UPSTREAM_KEYS
    assert [field.name for field in attrs.fields(AliasDocument)] == UPSTREAM_KEYS


def split_items(name: str, alias: str) -> st.SearchStrategy[AliasItem]:
    times = st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.builds(
            timezone, st.integers(-14 * 60, 14 * 60).map(lambda m: timedelta(minutes=m))
        ),
    )
    plain = st.builds(
        alias_item, st.just(alias), stored_versions, name=st.just(name), update_at=times
    )
    split = st.tuples(stored_versions, stored_versions, st.integers(0, 99), times).filter(
        lambda t: t[0] != t[1]
    )
    return st.one_of(
        plain,
        split.map(lambda t: alias_item(alias, t[0], t[1], t[2], name=name, update_at=t[3])),
    )


@st.composite
def alias_cases(draw: st.DrawFn) -> tuple[S3OnlyLayout, AliasItem]:
    name = draw(names)
    return draw(layouts), draw(split_items(name, draw(aliases)))


@PURE
@given(case=alias_cases())
def test_our_alias_body_round_trips_the_record(case: tuple[S3OnlyLayout, AliasItem]) -> None:
    layout, item = case
    body = alias_document(item, layout)
    parsed = parse_alias_document(body, item_to_alias(item, layout).name, item.sk, LAST_MODIFIED)
    assert parsed == item
    assert parsed.update_at == item.update_at  # the body's time, not LastModified


@PURE
@given(case=alias_cases())
def test_our_alias_body_is_byte_for_byte_what_upstream_writes_but_the_time(
    case: tuple[S3OnlyLayout, AliasItem],
) -> None:
    layout, item = case
    model = item_to_alias(item, layout)
    repo = upstream.Repository(
        aws_region="us-east-1",
        s3_bucket=layout.bucket,
        s3_prefix=layout.prefix,
        suffix=layout.suffix,
    )
    secondary = model.secondary_version
    theirs = upstream.Alias(
        name=model.name,
        alias=model.alias,
        update_at="unknown",
        version=model.version,
        secondary_version=secondary,
        secondary_version_weight=model.secondary_version_weight,
        version_s3uri=repo._get_artifact_s3path(model.name, model.version).uri,
        secondary_version_s3uri=(
            None if secondary is None else repo._get_artifact_s3path(model.name, secondary).uri
        ),
    )
    expected = json.dumps(theirs.to_dict()).encode("utf-8")
    assert with_unknown_time(alias_document(item, layout), item.update_at) == expected


@PURE
@given(case=alias_cases())
def test_upstreams_alias_model_reads_our_body(case: tuple[S3OnlyLayout, AliasItem]) -> None:
    layout, item = case
    body = alias_document(item, layout)
    model = item_to_alias(item, layout)
    theirs = upstream.Alias(**json.loads(body))
    assert theirs == upstream.Alias.from_dict(json.loads(body.decode("utf-8")))
    assert (theirs.name, theirs.alias, theirs.version) == (model.name, model.alias, model.version)
    assert theirs.secondary_version == model.secondary_version
    assert theirs.secondary_version_weight == model.secondary_version_weight
    assert theirs.version_s3uri == model.version_s3uri
    assert theirs.secondary_version_s3uri == model.secondary_version_s3uri
    assert theirs.update_datetime == item.update_at


# -- alias bodies: reading -------------------------------------------------------------


def test_upstreams_split_body_parses_with_last_modified_as_the_time() -> None:
    parsed = parse_alias_document(UPSTREAM_SPLIT_BODY, "app", "canary", LAST_MODIFIED)
    assert parsed == AliasItem(
        pk="__app-alias",
        sk="canary",
        update_at=LAST_MODIFIED,
        version="000002",
        secondary_version="000001",
        secondary_version_weight=20,
    )


def test_upstreams_plain_body_parses_with_last_modified_as_the_time() -> None:
    parsed = parse_alias_document(UPSTREAM_PLAIN_BODY, "app", "prod", LAST_MODIFIED)
    assert parsed == AliasItem(
        pk="__app-alias", sk="prod", update_at=LAST_MODIFIED, version="000001"
    )
    assert (
        item_to_alias(parsed, LAYOUT).version_s3uri
        == json.loads(UPSTREAM_PLAIN_BODY)["version_s3uri"]
    )


def body_with(base: bytes = UPSTREAM_PLAIN_BODY, **changes: Any) -> bytes:
    document = json.loads(base)
    document.update(changes)
    return json.dumps(document).encode("utf-8")


def test_an_alias_to_latest_parses() -> None:
    body = body_with(
        version="LATEST", version_s3uri="s3://bkt/versioned-artifacts/app/versions/000000_LATEST"
    )
    assert parse_alias_document(body, "app", "prod", LAST_MODIFIED).version == "LATEST"


def test_compact_separators_and_other_key_order_parse_alike() -> None:
    document = json.loads(UPSTREAM_SPLIT_BODY)
    compact = json.dumps(dict(reversed(document.items())), separators=(",", ":")).encode()
    assert parse_alias_document(compact, "app", "canary", LAST_MODIFIED) == parse_alias_document(
        UPSTREAM_SPLIT_BODY, "app", "canary", LAST_MODIFIED
    )


def test_extra_keys_are_ignored() -> None:
    body = body_with(UPSTREAM_SPLIT_BODY, comment="by hand", history=[1, 2], nested={"a": None})
    assert parse_alias_document(body, "app", "canary", LAST_MODIFIED) == parse_alias_document(
        UPSTREAM_SPLIT_BODY, "app", "canary", LAST_MODIFIED
    )


def test_a_real_time_in_the_body_is_used_instead_of_last_modified() -> None:
    body = body_with(update_at="2026-11-24T22:20:19.929848+00:00")
    assert parse_alias_document(body, "app", "prod", LAST_MODIFIED).update_at == WHEN


def test_a_weight_without_a_secondary_version_parses_and_means_no_split() -> None:
    body = body_with(secondary_version_weight=30)  # upstream stores this as given
    parsed = parse_alias_document(body, "app", "prod", LAST_MODIFIED)
    assert (parsed.version, parsed.secondary_version) == ("000001", None)
    model = item_to_alias(parsed, LAYOUT)
    assert not model.is_split
    assert model.secondary_version_weight is None


def test_the_key_names_the_alias_not_the_body() -> None:
    body = body_with(name="other", alias="staging")
    parsed = parse_alias_document(body, "app", "prod", LAST_MODIFIED)
    assert (parsed.pk, parsed.sk) == ("__app-alias", "prod")


def test_padded_versions_in_the_body_are_read_as_numbers() -> None:
    body = body_with(UPSTREAM_SPLIT_BODY, version="000002", secondary_version="01")
    parsed = parse_alias_document(body, "app", "canary", LAST_MODIFIED)
    assert (parsed.version, parsed.secondary_version) == ("000002", "000001")


def without(key: str) -> bytes:
    document = json.loads(UPSTREAM_SPLIT_BODY)
    del document[key]
    return json.dumps(document).encode("utf-8")


BAD_BODIES = {
    "empty": b"",
    "not json": b"{",
    "truncated": UPSTREAM_PLAIN_BODY[:-1],
    "not utf-8": b"\xff\xfe",
    "a list": b"[]",
    "null": b"null",
    "a string": b'"prod"',
    "a number": b"5",
    "an empty object": b"{}",
    **{f"no {key}": without(key) for key in UPSTREAM_KEYS},
    "version an int": body_with(version=1),
    "version null": body_with(version=None),
    "secondary_version an int": body_with(UPSTREAM_SPLIT_BODY, secondary_version=1),
    "weight a str": body_with(UPSTREAM_SPLIT_BODY, secondary_version_weight="20"),
    "weight a float": body_with(UPSTREAM_SPLIT_BODY, secondary_version_weight=20.5),
    "weight a bool": body_with(UPSTREAM_SPLIT_BODY, secondary_version_weight=True),
    # a split needs a weight `versioned` would accept: 0..99 (routing trusts it)
    "weight 100": body_with(UPSTREAM_SPLIT_BODY, secondary_version_weight=100),
    "weight 150": body_with(UPSTREAM_SPLIT_BODY, secondary_version_weight=150),
    "weight -1": body_with(UPSTREAM_SPLIT_BODY, secondary_version_weight=-1),
    "split without a weight": body_with(UPSTREAM_SPLIT_BODY, secondary_version_weight=None),
    "update_at null": body_with(update_at=None),
    "update_at a number": body_with(update_at=1764484765),
    "version_s3uri null": body_with(version_s3uri=None),
    "secondary_version_s3uri a list": body_with(secondary_version_s3uri=[]),
    "name null": body_with(name=None),
    "alias an int": body_with(alias=3),
    **{
        f"version {bad!r}": body_with(version=bad)
        for bad in ["", "abc", "0", "000000", "1000000", "-1", "1.0", "v1", "latest", " 1", "1e3"]
    },
    **{
        f"secondary_version {bad!r}": body_with(UPSTREAM_SPLIT_BODY, secondary_version=bad)
        for bad in ["", "abc", "0", "1000000", "LATEST "]
    },
}


@pytest.mark.parametrize("body", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_a_bad_body_is_a_backend_error_naming_the_alias_and_artifact(body: bytes) -> None:
    with pytest.raises(exc.BackendError) as caught:
        parse_alias_document(body, "app", "prod", LAST_MODIFIED)
    assert type(caught.value) is exc.BackendError
    assert re.search(r"alias 'prod' of 'app'", str(caught.value))


@pytest.mark.parametrize("key", UPSTREAM_KEYS)
def test_upstream_also_refuses_a_body_missing_a_key(key: str) -> None:
    # the same bodies our reader refuses: a missing key is a TypeError in upstream's Alias(**...)
    with pytest.raises(TypeError):
        upstream.Alias(**json.loads(without(key)))
