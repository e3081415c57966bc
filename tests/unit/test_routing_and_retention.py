"""Weighted, sticky version choice of aliases, and which versions a purge removes."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta, timezone

import attrs
import pytest

from versioned_async import exc
from versioned_async._policy import routing
from versioned_async._policy.retention import pinned_versions, plan_purge, validate_retention
from versioned_async.models import Alias, Artifact

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=timezone.utc)
KEYS = [f"user-{i}" for i in range(20_000)]
TOLERANCE = 0.015  # about four standard deviations of a 50 % share over 20,000 keys


def make_alias(
    secondary: str | None = "3",
    weight: int | None = 20,
    *,
    primary: str = "2",
    name: str = "app",
    alias: str = "prod",
) -> Alias:
    return Alias(
        name=name,
        alias=alias,
        update_at=NOW,
        version=primary,
        secondary_version=secondary,
        secondary_version_weight=weight if secondary is not None else None,
        version_s3uri=f"s3://bkt/artifacts/{name}/{primary.zfill(6)}",
        secondary_version_s3uri=(
            None if secondary is None else f"s3://bkt/artifacts/{name}/{secondary.zfill(6)}"
        ),
    )


# -- buckets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("routing_key", "bucket"),
    [("user-1", 92), ("user-2", 8), ("tenant-42", 75), ("", 49), ("\u00fc", 94)],
)
def test_bucket_for_key_never_changes_between_processes_or_releases(
    routing_key: str, bucket: int
) -> None:
    # pinned values: a key must keep its version across restarts, hosts and upgrades
    assert routing.bucket_for_key("app", "prod", routing_key) == bucket


def test_bucket_for_key_is_the_same_on_every_call() -> None:
    assert {routing.bucket_for_key("app", "prod", "user-7") for _ in range(50)} == {
        routing.bucket_for_key("app", "prod", "user-7")
    }


def test_bucket_for_key_is_always_in_0_to_99() -> None:
    assert {routing.bucket_for_key("app", "prod", k) for k in KEYS[:5000]} == set(range(100))


def test_bucket_for_key_treats_str_as_its_utf8_bytes() -> None:
    for key in ("user-1", "\u00fcber", ""):
        assert routing.bucket_for_key("app", "prod", key) == routing.bucket_for_key(
            "app", "prod", key.encode("utf-8")
        )


def test_bucket_for_key_differs_between_aliases_of_one_artifact() -> None:
    prod = [routing.bucket_for_key("app", "prod", k) for k in KEYS[:200]]
    beta = [routing.bucket_for_key("app", "beta", k) for k in KEYS[:200]]
    assert prod != beta


def test_bucket_for_key_separates_name_and_alias_unambiguously() -> None:
    left = [routing.bucket_for_key("ab", "c", k) for k in KEYS[:200]]
    right = [routing.bucket_for_key("a", "bc", k) for k in KEYS[:200]]
    assert left != right


@pytest.mark.parametrize(
    ("bucket", "weight", "secondary"),
    [
        (0, 0, False),
        (0, 1, True),
        (19, 20, True),
        (20, 20, False),
        (98, 99, True),
        (99, 99, False),
        (0, None, False),
        (50, None, False),
    ],
)
def test_goes_to_secondary_when_the_bucket_is_below_the_weight(
    bucket: int, weight: int | None, secondary: bool
) -> None:
    assert routing.goes_to_secondary(bucket, weight) is secondary


@pytest.mark.parametrize("weight", [1, 20, 50, 99])
def test_exactly_weight_buckets_of_100_go_to_secondary(weight: int) -> None:
    assert sum(routing.goes_to_secondary(b, weight) for b in range(100)) == weight


def test_random_bucket_with_a_seeded_rng_is_reproducible() -> None:
    first = [routing.random_bucket(random.Random(7)) for _ in range(3)]
    again = [routing.random_bucket(random.Random(7)) for _ in range(3)]
    assert first == again


def test_random_bucket_covers_0_to_99() -> None:
    rng = random.Random(1)
    assert {routing.random_bucket(rng) for _ in range(5000)} == set(range(100))


# -- Alias.choose_version ----------------------------------------------------------------


@pytest.mark.parametrize("routing_key", [None, "user-1", b"user-1"])
def test_an_alias_without_split_always_chooses_its_version(routing_key: str | bytes | None) -> None:
    assert make_alias(secondary=None).choose_version(routing_key) == "2"


def test_choose_version_is_sticky_for_a_routing_key() -> None:
    alias = make_alias(weight=50)
    for key in KEYS[:500]:
        assert len({alias.choose_version(key) for _ in range(3)}) == 1


def test_choose_version_is_sticky_across_equal_alias_objects() -> None:
    one, other = make_alias(weight=30), make_alias(weight=30)
    assert [one.choose_version(k) for k in KEYS[:1000]] == [
        other.choose_version(k) for k in KEYS[:1000]
    ]


@pytest.mark.parametrize("weight", [1, 10, 50, 99])
def test_share_of_keys_on_the_secondary_matches_the_weight(weight: int) -> None:
    alias = make_alias(weight=weight)
    share = Counter(alias.choose_version(k) for k in KEYS)["3"] / len(KEYS)
    assert abs(share - weight / 100) < TOLERANCE


def test_weight_zero_sends_no_key_to_the_secondary() -> None:
    alias = make_alias(weight=0)
    assert {alias.choose_version(k) for k in KEYS[:2000]} == {"2"}


def test_widening_the_canary_only_moves_keys_onto_it() -> None:
    at_10, at_50 = make_alias(weight=10), make_alias(weight=50)
    on_canary_at_10 = {k for k in KEYS if at_10.choose_version(k) == "3"}
    on_canary_at_50 = {k for k in KEYS if at_50.choose_version(k) == "3"}
    assert on_canary_at_10
    assert on_canary_at_10 <= on_canary_at_50


def test_changing_the_versions_keeps_keys_on_the_same_side() -> None:
    before = make_alias(primary="2", secondary="3", weight=25)
    after = make_alias(primary="3", secondary="4", weight=25)
    sides_before = [before.choose_version(k) == before.secondary_version for k in KEYS[:2000]]
    sides_after = [after.choose_version(k) == after.secondary_version for k in KEYS[:2000]]
    assert sides_before == sides_after


def test_choose_version_without_a_key_returns_one_of_the_two_versions() -> None:
    alias = make_alias(weight=50)
    assert {alias.choose_version() for _ in range(2000)} == {"2", "3"}


def test_a_split_alias_with_no_weight_chooses_the_primary() -> None:
    alias = attrs.evolve(make_alias(weight=50), secondary_version_weight=None)
    assert {alias.choose_version(k) for k in KEYS[:500]} == {"2"}


# -- Alias.random_artifact ----------------------------------------------------------------


def test_random_artifact_without_split_is_the_primary_s3uri() -> None:
    alias = make_alias(secondary=None)
    rng = random.Random(0)
    assert {alias.random_artifact(rng) for _ in range(200)} == {alias.version_s3uri}


def test_random_artifact_with_the_same_seed_picks_the_same_sequence() -> None:
    alias = make_alias(weight=50)
    rng_a, rng_b = random.Random(42), random.Random(42)
    assert [alias.random_artifact(rng_a) for _ in range(200)] == [
        alias.random_artifact(rng_b) for _ in range(200)
    ]


@pytest.mark.parametrize("weight", [10, 20, 50, 90])
def test_random_artifact_share_matches_the_weight(weight: int) -> None:
    alias = make_alias(weight=weight)
    rng = random.Random(2026)
    picks = Counter(alias.random_artifact(rng) for _ in range(20_000))
    share = picks[alias.secondary_version_s3uri] / 20_000
    assert abs(share - weight / 100) < TOLERANCE


def test_random_artifact_returns_only_the_two_s3uris() -> None:
    alias = make_alias(weight=50)
    rng = random.Random(3)
    picks = {alias.random_artifact(rng) for _ in range(500)}
    assert picks == {alias.version_s3uri, alias.secondary_version_s3uri}


def test_random_artifact_with_weight_zero_is_the_primary() -> None:
    alias = make_alias(weight=0)
    rng = random.Random(5)
    assert {alias.random_artifact(rng) for _ in range(500)} == {alias.version_s3uri}


# -- retention -----------------------------------------------------------------------------


def make_version(version: str, age: timedelta) -> Artifact:
    return Artifact(
        name="app",
        version=version,
        update_at=NOW - age,
        sha256="0" * 64,
        s3uri=f"s3://bkt/artifacts/app/{version.zfill(6) if version != 'LATEST' else version}",
    )


OLD = timedelta(days=365)
YOUNG = timedelta(hours=1)
DAY = 24 * 60 * 60


def old_versions(*numbers: int) -> list[Artifact]:
    return [make_version(str(n), OLD) for n in numbers]


def planned(
    versions: list[Artifact],
    aliases: list[Alias] | None = None,
    *,
    keep_last_n: int = 0,
    older_than: float = DAY,
) -> list[str]:
    doomed = plan_purge(
        versions,
        aliases or [],
        keep_last_n=keep_last_n,
        purge_older_than_secs=older_than,
        now=NOW,
    )
    return [v.version for v in doomed]


def test_plan_purge_never_removes_latest() -> None:
    versions = [make_version("LATEST", OLD), *old_versions(1, 2)]
    assert "LATEST" not in planned(versions, keep_last_n=0)


def test_plan_purge_keeps_the_newest_keep_last_n_numbered_versions() -> None:
    assert planned(old_versions(1, 2, 3, 4, 5), keep_last_n=2) == ["3", "2", "1"]


def test_plan_purge_orders_versions_by_number_not_text() -> None:
    assert planned(old_versions(9, 10, 11, 2), keep_last_n=2) == ["9", "2"]


def test_plan_purge_does_not_depend_on_the_order_versions_are_given_in() -> None:
    versions = old_versions(1, 2, 3, 4, 5, 6)
    shuffled = versions[:]
    random.Random(0).shuffle(shuffled)
    assert planned(shuffled, keep_last_n=2) == planned(versions, keep_last_n=2)


def test_plan_purge_returns_newest_first() -> None:
    assert planned(old_versions(3, 1, 2), keep_last_n=0) == ["3", "2", "1"]


def test_plan_purge_keep_count_does_not_depend_on_latest() -> None:
    without_latest = old_versions(1, 2, 3, 4)
    with_latest = [make_version("LATEST", OLD), *without_latest]
    assert planned(with_latest, keep_last_n=2) == planned(without_latest, keep_last_n=2)


def test_plan_purge_keeps_every_version_when_keep_last_n_covers_them() -> None:
    assert planned(old_versions(1, 2, 3), keep_last_n=3) == []


def test_plan_purge_keeps_versions_younger_than_the_age_limit() -> None:
    versions = [make_version("1", OLD), make_version("2", YOUNG), make_version("3", OLD)]
    assert planned(versions, keep_last_n=0, older_than=DAY) == ["3", "1"]


def test_plan_purge_keeps_a_version_exactly_at_the_age_limit() -> None:
    versions = [make_version("1", timedelta(seconds=DAY)), make_version("2", OLD)]
    assert planned(versions, keep_last_n=0, older_than=DAY) == ["2"]


def test_plan_purge_removes_a_version_just_past_the_age_limit() -> None:
    versions = [make_version("1", timedelta(seconds=DAY, microseconds=1))]
    assert planned(versions, keep_last_n=0, older_than=DAY) == ["1"]


def test_plan_purge_with_age_limit_zero_removes_all_but_the_newest_n() -> None:
    versions = [make_version(str(n), timedelta(seconds=1)) for n in (1, 2, 3)]
    assert planned(versions, keep_last_n=1, older_than=0) == ["2", "1"]


def test_plan_purge_keeps_the_primary_version_of_an_alias() -> None:
    alias = make_alias(primary="2", secondary=None)
    assert planned(old_versions(1, 2, 3, 4), [alias], keep_last_n=1) == ["3", "1"]


def test_plan_purge_keeps_the_secondary_version_of_an_alias() -> None:
    alias = make_alias(primary="4", secondary="1", weight=10)
    assert planned(old_versions(1, 2, 3, 4), [alias], keep_last_n=0) == ["3", "2"]


def test_plan_purge_keeps_versions_of_every_alias() -> None:
    aliases = [
        make_alias(alias="prod", primary="1", secondary=None),
        make_alias(alias="beta", primary="3", secondary="5", weight=50),
    ]
    assert planned(old_versions(1, 2, 3, 4, 5, 6), aliases, keep_last_n=0) == ["6", "4", "2"]


def test_plan_purge_of_no_versions_is_empty() -> None:
    assert planned([], keep_last_n=0) == []


def test_plan_purge_returns_the_artifacts_themselves() -> None:
    versions = old_versions(1, 2)
    doomed = plan_purge(versions, [], keep_last_n=1, purge_older_than_secs=DAY, now=NOW)
    assert doomed == [versions[0]]


def test_plan_purge_with_a_huge_age_limit_removes_nothing() -> None:
    # "never purge by age": far more seconds than lie between year 1 and now
    assert planned(old_versions(1, 2, 3), keep_last_n=0, older_than=10**12) == []


def test_pinned_versions_are_every_primary_and_secondary_version() -> None:
    aliases = [
        make_alias(alias="prod", primary="1", secondary=None),
        make_alias(alias="beta", primary="LATEST", secondary="5", weight=50),
    ]
    assert pinned_versions(aliases) == frozenset({"1", "LATEST", "5"})


# -- validate_retention -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keep_last_n", "older_than", "expected"),
    [(0, 0, (0, 0.0)), (10, 7776000, (10, 7776000.0)), (3, 1.5, (3, 1.5))],
)
def test_validate_retention_returns_an_int_and_a_float(
    keep_last_n: int, older_than: float, expected: tuple[int, float]
) -> None:
    result = validate_retention(keep_last_n, older_than)
    assert result == expected
    assert type(result[1]) is float


@pytest.mark.parametrize(
    ("keep_last_n", "older_than", "message"),
    [
        (-1, 0, "keep_last_n must be >= 0, got -1"),
        (0, -1, "purge_older_than_secs must be >= 0, got -1"),
        (0, -0.5, "purge_older_than_secs must be >= 0, got -0.5"),
    ],
)
def test_validate_retention_refuses_negative_values(
    keep_last_n: int, older_than: float, message: str
) -> None:
    with pytest.raises(exc.InvalidArgumentError, match=message):
        validate_retention(keep_last_n, older_than)


@pytest.mark.parametrize(
    ("keep_last_n", "older_than", "message"),
    [
        (True, 0, "keep_last_n must be a number, not bool"),
        ("3", 0, "keep_last_n must be a number, not str"),
        (None, 0, "keep_last_n must be a number, not NoneType"),
        (3, False, "purge_older_than_secs must be a number, not bool"),
        (3, "60", "purge_older_than_secs must be a number, not str"),
        (3, None, "purge_older_than_secs must be a number, not NoneType"),
        (2.5, 0, "keep_last_n must be an int, not float"),
        (2.0, 0, "keep_last_n must be an int, not float"),
    ],
)
def test_validate_retention_refuses_wrong_types(
    keep_last_n: object, older_than: object, message: str
) -> None:
    with pytest.raises(exc.InvalidArgumentTypeError, match=message):
        validate_retention(keep_last_n, older_than)


def test_validate_retention_refuses_a_nan_age_limit() -> None:
    with pytest.raises(exc.InvalidArgumentError, match="purge_older_than_secs must be"):
        validate_retention(3, float("nan"))


def test_choose_versions_gives_the_same_answers_as_choose_version() -> None:
    split = Alias(
        name="app",
        alias="prod",
        update_at=datetime.now(timezone.utc),
        version="2",
        secondary_version="3",
        secondary_version_weight=37,
        version_s3uri="s3://b/2",
        secondary_version_s3uri="s3://b/3",
    )
    keys: list[str | bytes] = [f"user-{i}" for i in range(5000)] + [b"raw-bytes", "caf\u00e9"]
    assert split.choose_versions(keys) == [split.choose_version(k) for k in keys]
    whole = Alias(
        name="app",
        alias="prod",
        update_at=datetime.now(timezone.utc),
        version="2",
        secondary_version=None,
        secondary_version_weight=None,
        version_s3uri="s3://b/2",
        secondary_version_s3uri=None,
    )
    assert whole.choose_versions(["a", "b"]) == ["2", "2"]


@pytest.mark.parametrize(
    "keys",
    [
        [f"user-{i}" for i in range(300)],
        [f"user-{i}".encode() for i in range(300)],
        ["user-1", b"user-2", bytearray(b"user-3"), memoryview(b"user-4"), "caf\u00e9", b""],
        [b"user-1", "user-2"],
    ],
    ids=["all str", "all bytes", "mixed, str first", "mixed, bytes first"],
)
def test_every_batch_path_routes_each_key_as_choose_version(keys: list[str | bytes]) -> None:
    """choose_versions hashes an all-str, an all-bytes and a mixed batch each its own
    way (for speed); each gives what one call per key gives."""
    split = make_alias(weight=37)
    assert split.choose_versions(keys) == [split.choose_version(k) for k in keys]
    assert routing.buckets_for_keys("app", "prod", keys) == [
        routing.bucket_for_key("app", "prod", k) for k in keys
    ]


@pytest.mark.parametrize(
    "keys", [["a", "b", 3], [b"a", b"b", 3], ["a", b"b", None], [3.0]], ids=str
)
def test_a_bad_key_is_named_whichever_batch_path_meets_it(keys: list[object]) -> None:
    split = make_alias(weight=37)
    position = len(keys) - 1
    with pytest.raises(exc.InvalidArgumentTypeError, match=rf"routing_keys\[{position}\]"):
        split.choose_versions(keys)  # type: ignore[arg-type]


@pytest.mark.parametrize("weight", [None, -5, 0, 1, 37, 99, 100, 250])
def test_the_outcome_of_each_bucket_is_what_goes_to_secondary_says(weight: int | None) -> None:
    table = routing.outcome_by_bucket(weight, "canary", "main")
    assert table == [
        "canary" if routing.goes_to_secondary(bucket, weight) else "main"
        for bucket in range(routing.BUCKETS)
    ]
