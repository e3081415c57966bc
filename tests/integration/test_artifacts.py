"""put, get, list, publish and delete of artifact versions against the moto server."""

from __future__ import annotations

import hashlib
from datetime import timezone
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE
from versioned_async import Artifact, Repository, exc

pytestmark = pytest.mark.both_backends


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_put_artifact_returns_latest_with_sha256_and_s3uri(
    repo: Repository, object_key: Any
) -> None:
    art = await repo.put_artifact("app", b"hello")
    assert art.name == "app"
    assert art.version == "LATEST"
    assert art.sha256 == sha(b"hello")
    assert art.s3uri == f"s3://{BUCKET}/{object_key('app')}"
    assert art.size == 5
    assert art.update_at.tzinfo is timezone.utc


async def test_put_artifact_records_content_type_and_metadata(repo: Repository) -> None:
    await repo.put_artifact(
        "db", b"x", content_type="application/x-sqlite3", metadata={"team": "data"}
    )
    art = await repo.get_artifact_version("db")
    assert art.content_type == "application/x-sqlite3"
    assert art.metadata == {"team": "data"}


async def test_put_artifact_stores_tags_on_the_object(
    repo: Repository, s3: Any, object_key: Any
) -> None:
    await repo.put_artifact("app", b"x", tags={"env": "dev", "owner": "a b@c.d"})
    resp = await s3.get_object_tagging(Bucket=BUCKET, Key=object_key("app"))
    assert {t["Key"]: t["Value"] for t in resp["TagSet"]} == {"env": "dev", "owner": "a b@c.d"}


async def test_put_artifact_with_same_content_uploads_nothing(
    repo: Repository, s3: Any, object_key: Any
) -> None:
    first = await repo.put_artifact("app", b"same")
    before = await s3.head_object(Bucket=BUCKET, Key=object_key("app"))
    again = await repo.put_artifact("app", b"same")
    after = await s3.head_object(Bucket=BUCKET, Key=object_key("app"))
    assert again == first
    assert after["LastModified"] == before["LastModified"]
    assert after["ETag"] == before["ETag"]


async def test_put_artifact_with_same_content_but_new_metadata_uploads(repo: Repository) -> None:
    await repo.put_artifact("app", b"same", metadata={"build": "1"})
    art = await repo.put_artifact("app", b"same", metadata={"build": "2"})
    assert art.metadata == {"build": "2"}
    assert (await repo.get_artifact_version("app")).metadata == {"build": "2"}


async def test_put_artifact_repairs_an_item_missing_behind_its_object(
    repo: Repository, dynamodb: Any
) -> None:
    await repo.put_artifact("app", b"content")
    await dynamodb.delete_item(
        TableName=TABLE, Key={"pk": {"S": "app"}, "sk": {"S": "LATEST"}}
    )  # as if the item write had failed after the upload
    art = await repo.put_artifact("app", b"content")
    assert (await repo.get_artifact_version("app")).sha256 == art.sha256 == sha(b"content")


async def test_put_artifact_accepts_bytearray_and_memoryview(repo: Repository) -> None:
    await repo.put_artifact("a", bytearray(b"ba"))
    await repo.put_artifact("b", memoryview(b"mv"))
    assert await repo.get_content("a") == b"ba"
    assert await repo.get_content("b") == b"mv"


async def test_get_artifact_version_of_missing_name_raises_not_found(repo: Repository) -> None:
    with pytest.raises(exc.ArtifactNotFoundError, match="'nope'") as info:
        await repo.get_artifact_version("nope")
    assert info.value.name == "nope"
    assert info.value.version == "LATEST"


async def test_get_artifact_version_accepts_int_and_padded_str(repo: Repository) -> None:
    await repo.put_artifact("app", b"v1")
    await repo.publish_artifact_version("app")
    for version in (1, "1", "000001"):
        assert (await repo.get_artifact_version("app", version)).version == "1"


async def test_list_artifact_versions_is_latest_first_then_newest(repo: Repository) -> None:
    for n in range(3):
        await repo.put_artifact("app", f"v{n}".encode())
        await repo.publish_artifact_version("app")
    versions = [a.version for a in await repo.list_artifact_versions("app")]
    assert versions == ["LATEST", "3", "2", "1"]


async def test_list_artifact_versions_of_unknown_name_is_empty(repo: Repository) -> None:
    assert await repo.list_artifact_versions("nothing") == []


async def test_list_artifact_versions_pages_through_more_than_one_megabyte(
    repo: Repository, dynamodb: Any
) -> None:
    """DynamoDB returns at most 1 MB a page; every version must still be listed."""
    digest = sha(b"x")
    pad = "p" * 600
    items = [
        {
            "PutRequest": {
                "Item": {
                    "pk": {"S": "big"},
                    "sk": {"S": f"{n:06d}"},
                    "sha256": {"S": digest},
                    "is_deleted": {"BOOL": False},
                    "update_at": {"S": "2026-01-01T00:00:00.000000+0000"},
                    "pad": {"S": pad},
                    # as we write them: without it, each would cost a HeadObject
                    "metadata": {"M": {}},
                }
            }
        }
        for n in range(1, 2201)
    ]
    for start in range(0, len(items), 25):
        await dynamodb.batch_write_item(RequestItems={TABLE: items[start : start + 25]})
    versions = await repo.list_artifact_versions("big")
    assert len(versions) == 2200
    assert versions[0].version == "2200"
    assert versions[-1].version == "1"


async def test_list_artifact_names_is_sorted(repo: Repository) -> None:
    for name in ("zeta", "alpha", "mid"):
        await repo.put_artifact(name, b"x")
    assert await repo.list_artifact_names() == ["alpha", "mid", "zeta"]


async def test_list_artifact_names_pages_past_a_thousand(repo: Repository, s3: Any) -> None:
    names = [f"n{i:04d}" for i in range(1005)]
    for name in names:
        await s3.put_object(Bucket=BUCKET, Key=f"versioned-artifacts/{name}/LATEST", Body=b"")
    assert await repo.list_artifact_names() == names


async def test_list_artifact_names_respects_prefix_and_suffix(
    make_repo: Any, object_key: Any
) -> None:
    async with make_repo(s3_prefix="/team/a/", suffix=".sqlite") as repo:
        await repo.bootstrap()
        art = await repo.put_artifact("db", b"x")
        key = object_key("db", prefix="team/a", suffix=".sqlite")
        assert art.s3uri == f"s3://{BUCKET}/{key}"
        assert await repo.list_artifact_names() == ["db"]
    async with make_repo(s3_prefix="team/b") as other:
        assert await other.list_artifact_names() == []


async def test_get_content_of_each_version(repo: Repository) -> None:
    await repo.put_artifact("app", b"one")
    await repo.publish_artifact_version("app")
    await repo.put_artifact("app", b"two")
    assert await repo.get_content("app", 1) == b"one"
    assert await repo.get_content("app") == b"two"


async def test_get_content_refuses_an_object_replaced_outside_the_library(
    repo: Repository, s3: Any, object_key: Any
) -> None:
    await repo.put_artifact("app", b"genuine")
    await repo.publish_artifact_version("app")
    key = object_key("app", 1)
    head = await s3.head_object(Bucket=BUCKET, Key=key)
    await s3.put_object(Bucket=BUCKET, Key=key, Body=b"tampered", Metadata=head["Metadata"])
    with pytest.raises(exc.IntegrityError, match="sha256") as info:
        await repo.get_content("app", 1)
    assert info.value.expected == sha(b"genuine")
    assert info.value.actual == sha(b"tampered")


async def test_artifact_model_fetches_its_own_content(repo: Repository, object_key: Any) -> None:
    art = await repo.put_artifact("app", b"payload")
    assert await art.get_content() == b"payload"
    assert art.console_url == (
        f"https://console.aws.amazon.com/s3/object/{BUCKET}?prefix={object_key('app')}"
    )


async def test_latest_model_read_before_a_new_put_refuses_the_new_content(
    repo: Repository,
) -> None:
    old = await repo.put_artifact("app", b"old")
    await repo.put_artifact("app", b"new")
    with pytest.raises(exc.ConflictError, match="changed since"):
        await old.get_content()


async def test_model_from_a_repository_equals_one_built_by_keyword(repo: Repository) -> None:
    art = await repo.put_artifact("app", b"x")
    rebuilt = Artifact(
        name=art.name,
        version=art.version,
        update_at=art.update_at,
        sha256=art.sha256,
        s3uri=art.s3uri,
        size=art.size,
        content_type=art.content_type,
        metadata=dict(art.metadata),
    )
    assert rebuilt == art
    assert repr(rebuilt) == repr(art)


# -- publish ---------------------------------------------------------------------


async def test_publish_numbers_versions_from_one(repo: Repository, object_key: Any) -> None:
    await repo.put_artifact("app", b"x")
    first = await repo.publish_artifact_version("app")
    await repo.put_artifact("app", b"y")
    second = await repo.publish_artifact_version("app")
    assert (first.version, second.version) == ("1", "2")
    assert first.s3uri == f"s3://{BUCKET}/{object_key('app', 1)}"


@pytest.mark.dynamodb_layout("the S3-only layout returns the top version instead (as `versioned`)")
async def test_publish_of_an_unchanged_latest_makes_a_new_version(repo: Repository) -> None:
    await repo.put_artifact("app", b"x")
    first = await repo.publish_artifact_version("app")
    second = await repo.publish_artifact_version("app")
    assert (first.version, second.version) == ("1", "2")


async def test_publish_copies_content_metadata_and_sha256(repo: Repository) -> None:
    await repo.put_artifact("app", b"data", content_type="text/csv", metadata={"k": "v"})
    art = await repo.publish_artifact_version("app")
    assert art.sha256 == sha(b"data")
    assert (art.content_type, dict(art.metadata), art.size) == ("text/csv", {"k": "v"}, 4)
    assert await repo.get_content("app", art.version) == b"data"


async def test_publish_without_latest_raises_not_found(repo: Repository) -> None:
    with pytest.raises(exc.ArtifactNotFoundError, match="'ghost'"):
        await repo.publish_artifact_version("ghost")


@pytest.mark.dynamodb_layout("the S3-only layout cannot delete LATEST on its own")
async def test_publish_after_latest_is_deleted_raises_not_found(repo: Repository) -> None:
    await repo.put_artifact("app", b"x")
    await repo.delete_artifact_version("app")
    with pytest.raises(exc.ArtifactNotFoundError):
        await repo.publish_artifact_version("app")


async def test_published_version_is_immutable_when_latest_changes(repo: Repository) -> None:
    await repo.put_artifact("app", b"first")
    await repo.publish_artifact_version("app")
    await repo.put_artifact("app", b"second")
    assert await repo.get_content("app", 1) == b"first"


@pytest.mark.dynamodb_layout("soft deletes keep the number; the S3-only layout reuses it")
async def test_publish_skips_numbers_of_deleted_versions(repo: Repository) -> None:
    await repo.put_artifact("app", b"x")
    await repo.publish_artifact_version("app")
    await repo.delete_artifact_version("app", 1)
    assert (await repo.publish_artifact_version("app")).version == "2"


async def test_publish_leaves_no_reservation_behind(repo: Repository, dynamodb: Any) -> None:
    await repo.put_artifact("app", b"x")
    await repo.publish_artifact_version("app")
    item = (
        await dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "app"}, "sk": {"S": "000001"}})
    )["Item"]
    assert "publish_token" not in item
    assert item["is_deleted"] == {"BOOL": False}


# -- delete ----------------------------------------------------------------------


async def test_deleted_version_is_invisible_to_get_and_list(repo: Repository) -> None:
    await repo.put_artifact("app", b"x")
    await repo.publish_artifact_version("app")
    await repo.delete_artifact_version("app", 1)
    with pytest.raises(exc.ArtifactNotFoundError):
        await repo.get_artifact_version("app", 1)
    with pytest.raises(exc.ArtifactNotFoundError):
        await repo.get_content("app", 1)
    assert [a.version for a in await repo.list_artifact_versions("app")] == ["LATEST"]


async def test_deleting_a_missing_version_writes_nothing(repo: Repository, dynamodb: Any) -> None:
    await repo.delete_artifact_version("app", 7)
    resp = await dynamodb.scan(TableName=TABLE)
    # bootstrap's table record (issue 17) is the one item: no artifact's
    assert [i for i in resp["Items"] if i["pk"]["S"] != "__table"] == []


@pytest.mark.dynamodb_layout("the S3-only layout cannot delete LATEST on its own")
async def test_put_after_delete_makes_latest_visible_again(repo: Repository) -> None:
    await repo.put_artifact("app", b"x")
    await repo.delete_artifact_version("app")
    await repo.put_artifact("app", b"x")
    assert (await repo.get_artifact_version("app")).sha256 == sha(b"x")


async def test_stub_items_left_by_versioned_are_invisible(repo: Repository, dynamodb: Any) -> None:
    """`versioned` 1.0.1 leaves {pk, sk, is_deleted} when deleting a missing version."""
    await repo.put_artifact("app", b"x")
    await dynamodb.put_item(
        TableName=TABLE,
        Item={"pk": {"S": "app"}, "sk": {"S": "000001"}, "is_deleted": {"BOOL": True}},
    )
    await dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "app"}, "sk": {"S": "000002"}})
    assert [a.version for a in await repo.list_artifact_versions("app")] == ["LATEST"]
    with pytest.raises(exc.ArtifactNotFoundError):
        await repo.get_artifact_version("app", 2)
    assert (await repo.publish_artifact_version("app")).version == "3"
