"""Aliases: put, get, list, delete, canary splits and their rules."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE
from versioned_async import Repository, exc

pytestmark = pytest.mark.both_backends


@pytest.fixture
async def three_versions(repo: Repository) -> Repository:
    for n in (1, 2, 3):
        await repo.put_artifact("app", f"content {n}".encode())
        await repo.publish_artifact_version("app")
    return repo


async def test_put_alias_points_at_a_version(three_versions: Repository, object_key: Any) -> None:
    al = await three_versions.put_alias("app", "prod", 2)
    assert (al.name, al.alias, al.version) == ("app", "prod", "2")
    assert al.secondary_version is None
    assert al.secondary_version_weight is None
    assert al.version_s3uri == f"s3://{BUCKET}/{object_key('app', 2)}"
    assert al.secondary_version_s3uri is None
    assert await three_versions.get_alias("app", "prod") == al


async def test_put_alias_defaults_to_latest(three_versions: Repository) -> None:
    al = await three_versions.put_alias("app", "dev")
    assert al.version == "LATEST"
    assert await al.get_version_content() == b"content 3"


async def test_put_alias_with_canary_splits_traffic(
    three_versions: Repository, object_key: Any
) -> None:
    al = await three_versions.put_alias("app", "prod", 2, 3, 20)
    assert (al.version, al.secondary_version, al.secondary_version_weight) == ("2", "3", 20)
    assert al.secondary_version_s3uri == f"s3://{BUCKET}/{object_key('app', 3)}"
    assert await al.get_version_content() == b"content 2"
    assert await al.get_secondary_version_content() == b"content 3"
    picks = {al.random_artifact() for _ in range(500)}
    assert picks == {al.version_s3uri, al.secondary_version_s3uri}


async def test_alias_without_split_stores_no_secondary_attributes(
    three_versions: Repository, dynamodb: Any
) -> None:
    await three_versions.put_alias("app", "prod", 1, 2, 50)
    await three_versions.put_alias("app", "prod", 3)
    item = (
        await dynamodb.get_item(
            TableName=TABLE, Key={"pk": {"S": "__app-alias"}, "sk": {"S": "prod"}}
        )
    )["Item"]
    assert set(item) == {"pk", "sk", "update_at", "version"}
    assert item["version"] == {"S": "000003"}


async def test_moving_an_alias_updates_it(three_versions: Repository) -> None:
    first = await three_versions.put_alias("app", "prod", 1)
    moved = await three_versions.put_alias("app", "prod", 2)
    assert (await three_versions.get_alias("app", "prod")).version == "2"
    assert moved.update_at >= first.update_at


async def test_list_aliases_is_sorted_by_alias(three_versions: Repository) -> None:
    for name in ("staging", "dev", "prod"):
        await three_versions.put_alias("app", name, 1)
    assert [a.alias for a in await three_versions.list_aliases("app")] == [
        "dev",
        "prod",
        "staging",
    ]
    assert await three_versions.list_aliases("other") == []


async def test_get_missing_alias_raises_alias_not_found(three_versions: Repository) -> None:
    with pytest.raises(exc.AliasNotFoundError, match="'prod'") as info:
        await three_versions.get_alias("app", "prod")
    assert (info.value.name, info.value.alias) == ("app", "prod")


async def test_delete_alias_removes_it_and_missing_is_a_no_op(three_versions: Repository) -> None:
    await three_versions.put_alias("app", "prod", 1)
    await three_versions.delete_alias("app", "prod")
    await three_versions.delete_alias("app", "prod")
    with pytest.raises(exc.AliasNotFoundError):
        await three_versions.get_alias("app", "prod")


async def test_alias_to_missing_version_raises_and_writes_nothing(
    three_versions: Repository,
) -> None:
    with pytest.raises(exc.ArtifactNotFoundError, match="'9'") as info:
        await three_versions.put_alias("app", "prod", 9)
    assert info.value.version == "9"
    with pytest.raises(exc.AliasNotFoundError):
        await three_versions.get_alias("app", "prod")


async def test_alias_to_missing_secondary_version_names_it(three_versions: Repository) -> None:
    with pytest.raises(exc.ArtifactNotFoundError) as info:
        await three_versions.put_alias("app", "prod", 1, 9, 10)
    assert info.value.version == "9"


async def test_alias_to_deleted_version_raises_not_found(three_versions: Repository) -> None:
    await three_versions.delete_artifact_version("app", 2)
    with pytest.raises(exc.ArtifactNotFoundError):
        await three_versions.put_alias("app", "prod", 2)


async def test_alias_of_unknown_artifact_raises_not_found(repo: Repository) -> None:
    with pytest.raises(exc.ArtifactNotFoundError):
        await repo.put_alias("ghost", "prod")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"secondary_version": 2, "secondary_version_weight": None}, TypeError, "int from 0 to 99"),
        ({"secondary_version": 2, "secondary_version_weight": 0.5}, TypeError, "int from 0 to 99"),
        ({"secondary_version": 2, "secondary_version_weight": True}, TypeError, "int from 0 to 99"),
        ({"secondary_version": 2, "secondary_version_weight": 100}, ValueError, "from 0 to 99"),
        ({"secondary_version": 2, "secondary_version_weight": -1}, ValueError, "from 0 to 99"),
        ({"secondary_version": 1, "secondary_version_weight": 10}, ValueError, "must differ"),
        ({"secondary_version_weight": 10}, ValueError, "only allowed with a secondary_version"),
    ],
)
async def test_put_alias_refuses_bad_splits_and_writes_nothing(
    three_versions: Repository, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        await three_versions.put_alias("app", "prod", 1, **kwargs)
    assert isinstance(info.value, exc.VersionedError)
    assert await three_versions.list_aliases("app") == []


async def test_alias_name_with_hyphen_is_refused(three_versions: Repository) -> None:
    with pytest.raises(ValueError, match="must not contain '-'"):
        await three_versions.put_alias("app", "blue-green", 1)


async def test_weight_zero_keeps_all_traffic_on_primary(three_versions: Repository) -> None:
    al = await three_versions.put_alias("app", "prod", 1, 2, 0)
    assert {al.choose_version(str(k)) for k in range(300)} == {"1"}
