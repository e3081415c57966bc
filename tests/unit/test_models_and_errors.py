"""The public models (frozen, link to their repository invisible) and the error tree."""

from __future__ import annotations

import asyncio
import pickle
import threading
from collections.abc import Callable
from datetime import datetime, timezone

import attrs
import pytest

from versioned_async import Alias, Artifact, exc
from versioned_async.exc import RepositoryClosedError
from versioned_async.models import bind

WHEN = datetime(2026, 11, 24, 22, 20, 19, 929848, tzinfo=timezone.utc)
SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def make_artifact(**changes: object) -> Artifact:
    fields: dict[str, object] = {
        "name": "app",
        "version": "3",
        "update_at": WHEN,
        "sha256": SHA,
        "s3uri": "s3://bkt/artifacts/app/000003",
    }
    return Artifact(**{**fields, **changes})  # type: ignore[arg-type]


def make_alias(**changes: object) -> Alias:
    fields: dict[str, object] = {
        "name": "app",
        "alias": "prod",
        "update_at": WHEN,
        "version": "3",
        "secondary_version": "4",
        "secondary_version_weight": 20,
        "version_s3uri": "s3://bkt/artifacts/app/000003",
        "secondary_version_s3uri": "s3://bkt/artifacts/app/000004",
    }
    return Alias(**{**fields, **changes})  # type: ignore[arg-type]


class FakeRepository:
    """Stands in for a Repository; models only store the reference."""


# -- Artifact and Alias --------------------------------------------------------------


def test_artifact_is_constructible_by_keyword_with_optional_fields_defaulted() -> None:
    artifact = make_artifact()
    assert (artifact.name, artifact.version, artifact.update_at) == ("app", "3", WHEN)
    assert (artifact.size, artifact.content_type, artifact.metadata) == (None, None, {})


def test_alias_is_constructible_by_keyword() -> None:
    alias = make_alias()
    assert (alias.name, alias.alias, alias.version, alias.secondary_version) == (
        "app",
        "prod",
        "3",
        "4",
    )


@pytest.mark.parametrize("model", [make_artifact(), make_alias()])
def test_models_are_frozen(model: object) -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        model.version = "9"  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", [Artifact, Alias])
def test_models_are_attrs_classes(cls: type) -> None:
    assert attrs.has(cls)


def test_artifact_metadata_is_a_copy_of_the_mapping_given() -> None:
    metadata = {"team": "data"}
    artifact = make_artifact(metadata=metadata)
    metadata["team"] = "changed"
    assert artifact.metadata == {"team": "data"}


def test_artifact_metadata_none_becomes_empty() -> None:
    assert make_artifact(metadata=None).metadata == {}


def test_an_artifact_with_metadata_is_hashable() -> None:
    artifact = make_artifact(metadata={"team": "data"})
    assert hash(artifact) == hash(make_artifact(metadata={"team": "data"}))


@pytest.mark.parametrize(("version", "is_latest"), [("LATEST", True), ("1", False), ("10", False)])
def test_artifact_is_latest_only_for_latest(version: str, is_latest: bool) -> None:
    assert make_artifact(version=version).is_latest is is_latest


def test_artifact_console_url_links_its_object() -> None:
    assert make_artifact().console_url == (
        "https://console.aws.amazon.com/s3/object/bkt?prefix=artifacts/app/000003"
    )


@pytest.mark.parametrize(("secondary", "is_split"), [("4", True), (None, False)])
def test_alias_is_split_when_it_has_a_secondary_version(
    secondary: str | None, is_split: bool
) -> None:
    assert make_alias(secondary_version=secondary).is_split is is_split


# -- the repository link -------------------------------------------------------------


@pytest.mark.parametrize("make", [make_artifact, make_alias])
def test_binding_a_model_does_not_change_equality(make: object) -> None:
    bound, unbound = make(), make()  # type: ignore[operator]
    bind(bound, FakeRepository())  # type: ignore[arg-type]
    assert bound == unbound


@pytest.mark.parametrize("make", [make_artifact, make_alias])
def test_binding_a_model_does_not_change_its_repr(make: object) -> None:
    bound, unbound = make(), make()  # type: ignore[operator]
    bind(bound, FakeRepository())  # type: ignore[arg-type]
    assert repr(bound) == repr(unbound)
    assert "FakeRepository" not in repr(bound)


@pytest.mark.parametrize("make", [make_artifact, make_alias])
def test_binding_a_model_does_not_change_its_hash(make: object) -> None:
    bound, unbound = make(), make()  # type: ignore[operator]
    bind(bound, FakeRepository())  # type: ignore[arg-type]
    assert hash(bound) == hash(unbound)


@pytest.mark.parametrize("make", [make_artifact, make_alias])
def test_binding_a_model_does_not_change_asdict(make: object) -> None:
    bound, unbound = make(), make()  # type: ignore[operator]
    bind(bound, FakeRepository())  # type: ignore[arg-type]
    assert attrs.asdict(bound) == attrs.asdict(unbound)


async def test_get_content_of_an_unbound_artifact_raises_repository_closed() -> None:
    with pytest.raises(exc.RepositoryClosedError, match="use the repository's get_content"):
        await make_artifact().get_content()


async def test_get_version_content_of_an_unbound_alias_raises_repository_closed() -> None:
    with pytest.raises(exc.RepositoryClosedError, match="use the repository's get_content"):
        await make_alias().get_version_content()


async def test_get_secondary_version_content_of_an_unbound_alias_raises_repository_closed() -> None:
    with pytest.raises(exc.RepositoryClosedError, match="use the repository's get_content"):
        await make_alias().get_secondary_version_content()


async def test_get_secondary_version_content_without_a_secondary_is_an_invalid_argument() -> None:
    alias = make_alias(secondary_version=None, secondary_version_weight=None)
    with pytest.raises(exc.InvalidArgumentError, match="has no secondary version"):
        await alias.get_secondary_version_content()


# -- the error tree -------------------------------------------------------------------

ALL_ERRORS = [getattr(exc, name) for name in exc.__all__]


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_is_a_versioned_error(cls: type[Exception]) -> None:
    assert issubclass(cls, exc.VersionedError)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (exc.InvalidArgumentError, ValueError),
        (exc.InvalidArgumentTypeError, TypeError),
        (exc.NotFoundError, LookupError),
        (exc.ArtifactNotFoundError, LookupError),
        (exc.AliasNotFoundError, LookupError),
        (exc.RepositoryNotFoundError, LookupError),
    ],
)
def test_errors_are_also_the_matching_builtin_errors(
    cls: type[Exception], builtin: type[Exception]
) -> None:
    assert issubclass(cls, builtin)


@pytest.mark.parametrize(
    "cls",
    [exc.ArtifactNotFoundError, exc.AliasNotFoundError, exc.RepositoryNotFoundError],
)
def test_missing_things_are_not_found_errors(cls: type[Exception]) -> None:
    assert issubclass(cls, exc.NotFoundError)


def test_backend_unavailable_is_a_backend_error() -> None:
    assert issubclass(exc.BackendUnavailableError, exc.BackendError)


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_has_a_docstring(cls: type[Exception]) -> None:
    assert cls.__doc__
    assert cls.__doc__.strip()


def test_artifact_not_found_carries_name_and_version() -> None:
    err = exc.ArtifactNotFoundError("app", "3")
    assert (err.name, err.version) == ("app", "3")


def test_artifact_not_found_for_a_version_says_it_is_missing_or_deleted() -> None:
    assert str(exc.ArtifactNotFoundError("app", "3")) == (
        "artifact 'app' has no version '3' (missing or deleted)"
    )


def test_artifact_not_found_without_a_version_says_put_artifact_creates_it() -> None:
    err = exc.ArtifactNotFoundError("app")
    assert err.version is None
    assert "put_artifact() creates it" in str(err)


def test_alias_not_found_carries_name_and_alias_and_says_put_alias_creates_it() -> None:
    err = exc.AliasNotFoundError("app", "prod")
    assert (err.name, err.alias) == ("app", "prod")
    assert str(err) == "artifact 'app' has no alias 'prod': put_alias() creates it"


def test_integrity_error_carries_both_hashes() -> None:
    err = exc.IntegrityError("app", "3", expected="a" * 64, actual="b" * 64)
    assert (err.name, err.version, err.expected, err.actual) == ("app", "3", "a" * 64, "b" * 64)
    assert "changed outside this library" in str(err)


def test_backend_error_carries_code_and_operation() -> None:
    err = exc.BackendError("denied", code="AccessDenied", operation="GetObject")
    assert (str(err), err.code, err.operation) == ("denied", "AccessDenied", "GetObject")


def test_backend_error_code_and_operation_default_to_none() -> None:
    err = exc.BackendError("boom")
    assert (err.code, err.operation) == (None, None)


PICKLABLE_ERRORS = [
    exc.ArtifactNotFoundError("app", "3"),
    exc.ArtifactNotFoundError("app"),
    exc.AliasNotFoundError("app", "prod"),
    exc.IntegrityError("app", "3", "a" * 64, "b" * 64),
    exc.BackendError("denied", code="AccessDenied", operation="GetObject"),
    exc.BackendError("boom"),
    exc.BackendUnavailableError("timed out", code="RequestTimeout", operation="PutObject"),
    exc.InvalidArgumentError("version must be from 1 to 999999, got 0"),
    exc.InvalidArgumentTypeError("alias must be a str, not int"),
    exc.RepositoryNotFoundError("table t is missing: run bootstrap()"),
    exc.ConflictError("alias changed first; retry"),
    exc.RepositoryClosedError("use async with repo"),
    exc.VersionedError("base"),
]

FIELDS = ("name", "version", "alias", "expected", "actual", "code", "operation")


@pytest.mark.parametrize("err", PICKLABLE_ERRORS, ids=lambda e: type(e).__name__)
def test_errors_survive_a_pickle_round_trip(err: Exception) -> None:
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err)
    assert str(copy) == str(err)
    for field in FIELDS:
        assert getattr(copy, field, "absent") == getattr(err, field, "absent")


# -- snapshots for other processes ----------------------------------------------------


class _UnpicklableRepository:
    """Like a real repository: open clients and locks, which do not pickle."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


@pytest.mark.parametrize("make", [make_alias, make_artifact], ids=["Alias", "Artifact"])
def test_a_model_read_from_a_repository_pickles_as_a_snapshot_without_it(
    make: Callable[..., object],
) -> None:
    bound = make()
    bind(bound, _UnpicklableRepository())  # type: ignore[arg-type]
    copy = pickle.loads(pickle.dumps(bound))
    assert copy == bound
    assert not hasattr(copy, "_versioned_async_repository")
    assert hasattr(bound, "_versioned_async_repository")  # the original keeps it


def test_a_pickled_alias_routes_as_the_original_and_says_how_to_read_content() -> None:
    bound = make_alias()
    bind(bound, _UnpicklableRepository())  # type: ignore[arg-type]
    copy = pickle.loads(pickle.dumps(bound))
    keys = [f"user-{n}" for n in range(200)]
    assert copy.choose_versions(keys) == bound.choose_versions(keys)
    with pytest.raises(RepositoryClosedError, match="get_content"):
        asyncio.run(copy.get_version_content())
