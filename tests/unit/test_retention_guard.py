"""Guarded retention, the pure parts: held versions are never planned, versions an
alias points at after a purge come back, and what a hold accepts."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone

import pytest

from versioned_async import exc
from versioned_async._codec import ChangeToken
from versioned_async._layout import MAX_NOTE_LENGTH, validate_note
from versioned_async._policy import retention as _retention
from versioned_async._policy.retention import holdable_version, plan_purge, restorable
from versioned_async._table_writes import (
    PurgeVersion,
    RequireAliasUnchanged,
    RequireNotHeld,
    SoftDeleteVersion,
)
from versioned_async.models import Alias, Artifact

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=timezone.utc)
OLD = NOW - timedelta(days=365)


def artifact(version: str, update_at: datetime = OLD) -> Artifact:
    return Artifact(
        name="app",
        version=version,
        update_at=update_at,
        sha256="0" * 64,
        s3uri=f"s3://bkt/artifacts/app/{version}",
    )


def alias(version: str, secondary: str | None = None, name: str = "prod") -> Alias:
    return Alias(
        name="app",
        alias=name,
        update_at=NOW,
        version=version,
        secondary_version=secondary,
        secondary_version_weight=None if secondary is None else 10,
        version_s3uri=f"s3://bkt/artifacts/app/{version}",
        secondary_version_s3uri=None
        if secondary is None
        else f"s3://bkt/artifacts/app/{secondary}",
    )


VERSIONS = [artifact("LATEST"), *(artifact(str(n)) for n in range(6, 0, -1))]


def planned(**kwargs: object) -> list[str]:
    settings: dict[str, object] = {"keep_last_n": 0, "purge_older_than_secs": 0, "now": NOW}
    settings.update(kwargs)
    aliases = settings.pop("aliases", [])
    return [a.version for a in plan_purge(VERSIONS, aliases, **settings)]  # type: ignore[arg-type]


# -- plan_purge with holds -----------------------------------------------------------


def test_without_holds_every_old_numbered_version_is_planned() -> None:
    assert planned() == ["6", "5", "4", "3", "2", "1"]


def test_a_held_version_is_never_planned() -> None:
    assert planned(held=["3"]) == ["6", "5", "4", "2", "1"]


def test_held_versions_are_given_as_any_iterable_of_public_versions() -> None:
    assert planned(held=iter(["1", "6"])) == ["5", "4", "3", "2"]


def test_holds_and_aliases_are_both_kept() -> None:
    assert planned(held=("2",), aliases=[alias("5", secondary="4")]) == ["6", "3", "1"]


def test_a_held_version_still_counts_among_the_newest_n_kept() -> None:
    # 6 and 5 are the newest two whatever else holds them; the hold on 5 adds nothing
    assert planned(keep_last_n=2, held=["5"]) == ["4", "3", "2", "1"]


def test_a_hold_on_a_version_that_does_not_exist_plans_the_rest() -> None:
    assert planned(held=["42"]) == ["6", "5", "4", "3", "2", "1"]


def test_young_versions_stay_kept_whatever_the_holds() -> None:
    young = [artifact("2", NOW - timedelta(seconds=10)), artifact("1")]
    plan = plan_purge(young, [], keep_last_n=0, purge_older_than_secs=60, now=NOW, held=["1"])
    assert plan == []


# -- restorable: what the re-read of the aliases after a purge brings back ------------


def test_a_deleted_version_an_alias_now_points_at_is_restorable() -> None:
    deleted = [artifact("4"), artifact("3"), artifact("1")]
    assert restorable(deleted, [alias("3", name="hotfix")]) == [artifact("3")]


def test_a_canary_target_is_restorable_too() -> None:
    deleted = [artifact("4"), artifact("3")]
    assert restorable(deleted, [alias("5", secondary="4")]) == [artifact("4")]


def test_nothing_is_restorable_when_no_alias_points_at_a_deleted_version() -> None:
    assert restorable([artifact("2"), artifact("1")], [alias("5"), alias("LATEST")]) == []


def test_nothing_is_restorable_without_aliases() -> None:
    assert restorable([artifact("2")], []) == []


# -- which versions may be held, and the reason -----------------------------------------


@pytest.mark.parametrize(
    ("version", "stored"),
    [(3, "000003"), ("3", "000003"), ("0003", "000003")],
    ids=["int", "str", "padded"],
)
def test_a_published_version_can_be_held(version: object, stored: str) -> None:
    assert holdable_version(version) == stored  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [None, "LATEST"])
def test_latest_cannot_be_held_because_it_is_mutable(version: object) -> None:
    with pytest.raises(exc.InvalidArgumentError, match="LATEST cannot be protected: it is mutable"):
        holdable_version(version)  # type: ignore[arg-type]


def test_a_bad_version_is_refused_as_anywhere_else() -> None:
    with pytest.raises(exc.InvalidArgumentError, match="must be 'LATEST' or a number"):
        holdable_version("v1")


@pytest.mark.parametrize("reason", [None, "", "audit hold #17", "x" * MAX_NOTE_LENGTH])
def test_a_reason_is_an_optional_short_text(reason: str | None) -> None:
    assert validate_note("reason", reason) == reason


def test_a_reason_that_is_not_text_is_refused() -> None:
    with pytest.raises(exc.InvalidArgumentTypeError, match="reason must be a str or None, not int"):
        validate_note("reason", 17)


def test_a_reason_longer_than_the_limit_is_refused() -> None:
    with pytest.raises(exc.InvalidArgumentError, match="at most 1024"):
        validate_note("reason", "x" * (MAX_NOTE_LENGTH + 1))


# -- the error ------------------------------------------------------------------------


def test_version_protected_is_a_conflict_that_carries_name_and_version() -> None:
    err = exc.VersionProtectedError("app", "3")
    assert isinstance(err, exc.ConflictError)
    assert (err.name, err.version) == ("app", "3")


def test_version_protected_says_to_unprotect_first() -> None:
    assert str(exc.VersionProtectedError("app", "3")) == (
        "version '3' of 'app' is protected: call unprotect('app', '3') first to delete it"
    )


def test_version_protected_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(exc.VersionProtectedError("app", "3")))
    assert (type(err), err.name, err.version) == (exc.VersionProtectedError, "app", "3")


def test_version_protected_is_in_the_error_tree_of_the_docs() -> None:
    assert "VersionProtectedError" in exc.__all__
    assert "VersionProtectedError" in (exc.__doc__ or "")


# -- the transactions that delete a version, and their cancellation reasons -----------

FAILED, FINE = "ConditionalCheckFailed", "None"


def test_a_numbered_delete_is_the_soft_delete_then_the_hold_check() -> None:
    assert _retention.delete_writes("app", "000003") == [
        SoftDeleteVersion("app", "000003"),
        RequireNotHeld("app", "000003"),
    ]


@pytest.mark.parametrize(
    ("reasons", "held"),
    [
        ([FINE, FAILED], True),
        ([FAILED, FAILED], False),  # missing (and held): a no-op, as before holds
        ([FAILED, FINE], False),  # missing: a no-op
        (["ConditionalCheckFailed"], False),  # no reason per write: read as missing
        ([], False),
    ],
)
def test_a_delete_is_refused_for_its_hold_only_when_the_version_exists(
    reasons: list[str], held: bool
) -> None:
    assert _retention.delete_refused_for_hold(reasons) is held


def test_a_purge_delete_checks_the_aliases_read_and_the_hold_after_the_delete() -> None:
    token = ChangeToken({"S": "2026-11-24T12:00:00.000000+0000"})
    guards = [RequireAliasUnchanged("app", "prod", token)]
    assert _retention.purge_writes("app", "000003", 2, NOW, guards) == [
        PurgeVersion("app", "000003", 2, NOW),
        RequireAliasUnchanged("app", "prod", token),
        RequireNotHeld("app", "000003"),
    ]


@pytest.mark.parametrize(
    ("reasons", "kept"),
    [
        ([], False),  # applied
        ([FAILED, FINE, FINE], False),  # only the delete's own condition: look again
        ([FINE, FAILED, FINE], True),  # an alias moved
        ([FINE, FINE, FAILED], True),  # a hold appeared
        (["TransactionConflict"] * 3, True),
    ],
)
def test_a_purge_keeps_the_version_when_a_check_failed(reasons: list[str], kept: bool) -> None:
    assert _retention.purge_kept(reasons) is kept
