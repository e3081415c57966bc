"""Retention purges and the removal of whole artifacts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE, artifact_items
from tests.integration.conftest import versions
from versioned_async import Repository

pytestmark = pytest.mark.both_backends


async def test_purge_keeps_latest_and_the_newest_n(five_versions: Repository) -> None:
    purge_time, deleted = await five_versions.purge_artifact_versions(
        "app", keep_last_n=2, purge_older_than_secs=0
    )
    assert [a.version for a in deleted] == ["3", "2", "1"]
    assert await versions(five_versions) == ["LATEST", "5", "4"]
    assert purge_time.tzinfo is not None


async def test_purge_keeps_versions_younger_than_the_age_limit(five_versions: Repository) -> None:
    _, deleted = await five_versions.purge_artifact_versions(
        "app", keep_last_n=0, purge_older_than_secs=3600
    )
    assert deleted == []
    assert await versions(five_versions) == ["LATEST", "5", "4", "3", "2", "1"]


async def test_purge_never_removes_a_version_an_alias_points_at(five_versions: Repository) -> None:
    await five_versions.put_alias("app", "prod", 1, 2, 10)
    await five_versions.put_alias("app", "old", 3)
    _, deleted = await five_versions.purge_artifact_versions(
        "app", keep_last_n=0, purge_older_than_secs=0
    )
    assert [a.version for a in deleted] == ["5", "4"]
    assert await versions(five_versions) == ["LATEST", "3", "2", "1"]


async def test_purge_is_a_soft_delete_that_keeps_the_objects(
    five_versions: Repository, s3: Any, dynamodb: Any, object_key: Any
) -> None:
    await five_versions.purge_artifact_versions("app", keep_last_n=4, purge_older_than_secs=0)
    item = await dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "app"}, "sk": {"S": "000001"}})
    assert item["Item"]["is_deleted"] == {"BOOL": True}
    await s3.head_object(Bucket=BUCKET, Key=object_key("app", 1))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"keep_last_n": -1}, ValueError, "keep_last_n must be >= 0"),
        ({"keep_last_n": 1.5}, TypeError, "keep_last_n must be an int"),
        ({"purge_older_than_secs": -5}, ValueError, "purge_older_than_secs must be >= 0"),
        ({"purge_older_than_secs": "1d"}, TypeError, "purge_older_than_secs must be a number"),
    ],
)
async def test_purge_refuses_bad_rules_and_deletes_nothing(
    five_versions: Repository, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await five_versions.purge_artifact_versions("app", **kwargs)
    assert len(await versions(five_versions)) == 6


async def test_purge_artifact_removes_objects_items_and_aliases_of_that_name_only(
    five_versions: Repository, s3: Any, dynamodb: Any
) -> None:
    await five_versions.put_artifact("keep", b"k")
    await five_versions.put_alias("app", "prod", 1)
    await five_versions.put_alias("keep", "prod")
    await five_versions.purge_artifact("app")
    assert await five_versions.list_artifact_names() == ["keep"]
    listing = await s3.list_objects_v2(Bucket=BUCKET)
    assert [o["Key"] for o in listing["Contents"]] == ["versioned-artifacts/keep/LATEST"]
    items = artifact_items((await dynamodb.scan(TableName=TABLE))["Items"])
    assert sorted(i["pk"]["S"] for i in items) == ["__keep-alias", "__keep-alias-history", "keep"]
    assert sorted((i["pk"]["S"], i["sk"]["S"]) for i in items if "history" not in i["pk"]["S"]) == [
        ("__keep-alias", "prod"),
        ("keep", "LATEST"),
    ]


async def test_purge_all_empties_the_repository_but_keeps_bucket_and_table(
    five_versions: Repository, s3: Any, dynamodb: Any
) -> None:
    await five_versions.put_alias("app", "prod", 1)
    await five_versions.purge_all()
    assert await five_versions.list_artifact_names() == []
    # every artifact's item; the table still serves this repository (issue 17)
    assert artifact_items((await dynamodb.scan(TableName=TABLE))["Items"]) == []
    assert "Contents" not in await s3.list_objects_v2(Bucket=BUCKET)
    await five_versions.put_artifact("app", b"again")  # still usable
