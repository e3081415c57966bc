"""versioned_async and `versioned` 1.0.1 share one repository on one moto server.

Each test states one thing a user of both libraries relies on. ``ours`` is a
:class:`versioned_async.Repository`; ``theirs`` is `versioned`'s sync
``Repository`` on the same bucket, table, prefix and suffix (called directly:
it blocks the event loop briefly, which is harmless here). The layout is the
one /work/shared/WIRE_FORMAT.md describes.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Any

import pytest
from pynamodb.attributes import UTCDateTimeAttribute
from pynamodb_session_manager.api import use_boto_session
from versioned import exc as upstream_exc

from tests.conftest import TableRepoFactory
from versioned_async import Repository
from versioned_async.exc import (
    AliasNotFoundError,
    ArtifactNotFoundError,
    ConcurrentModificationError,
)

from .conftest import CUSTOM_PREFIX, CUSTOM_SUFFIX, MakeUpstream, Upstream

#: PynamoDB's UTCDateTimeAttribute text: 31 characters, microseconds, "+0000"
UPDATE_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+0000")


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def artifact_view(artifact: Any) -> dict[str, Any]:
    """The fields both libraries' Artifact models have."""
    return {
        field: getattr(artifact, field)
        for field in ("name", "version", "update_at", "s3uri", "sha256")
    }


def alias_view(alias: Any) -> dict[str, Any]:
    """Every field of an Alias: both libraries' models have the same ones."""
    fields = (
        "name",
        "alias",
        "update_at",
        "version",
        "secondary_version",
        "secondary_version_weight",
        "version_s3uri",
        "secondary_version_s3uri",
    )
    return {field: getattr(alias, field) for field in fields}


async def scan(raw_dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    async for page in raw_dynamodb.get_paginator("scan").paginate(TableName=table):
        items.extend(page["Items"])
    return items


async def items_of(raw_dynamodb: Any, table: str, pk: str) -> dict[str, dict[str, Any]]:
    """The stored items under one partition key, by sort key."""
    return {i["sk"]["S"]: i for i in await scan(raw_dynamodb, table) if i["pk"]["S"] == pk}


async def object_keys(raw_s3: Any, bucket: str) -> set[str]:
    keys: set[str] = set()
    async for page in raw_s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.update(o["Key"] for o in page.get("Contents", []))
    return keys


async def head(raw_s3: Any, bucket: str, key: str) -> dict[str, Any]:
    resp: dict[str, Any] = await raw_s3.head_object(Bucket=bucket, Key=key)
    return resp


def parse_update_at(attribute: dict[str, Any]) -> datetime:
    """An item's update_at as PynamoDB (and so `versioned`) reads it."""
    parsed: datetime = UTCDateTimeAttribute().deserialize(attribute["S"])
    return parsed


def publish_with_upstream(theirs: Upstream, name: str, contents: list[bytes]) -> None:
    for content in contents:
        theirs.put_artifact(name, content)
        theirs.publish_artifact_version(name)


async def publish_with_ours(ours: Repository, name: str, contents: list[bytes]) -> None:
    for content in contents:
        await ours.put_artifact(name, content)
        await ours.publish_artifact_version(name)


# -- the test setup itself -------------------------------------------------------


def test_upstream_talks_to_this_tests_moto_server(theirs: Upstream, aws_endpoint_env: str) -> None:
    # S3 (s3pathlib) goes through the bsm's boto3 clients
    assert theirs.bsm.s3_client.meta.endpoint_url == aws_endpoint_env
    # DynamoDB goes through the connection pynamodb makes for upstream's model
    # classes inside `use_boto_session`, exactly as each upstream call does
    for model in (theirs.repository._ArtifactOrmClass, theirs.repository._AliasOrmClass):
        with use_boto_session(model, theirs.bsm):
            client = model._get_connection().connection.client
            assert client.meta.endpoint_url == aws_endpoint_env


async def test_what_upstream_writes_lands_where_our_clients_look(
    ours: Repository, theirs: Upstream, raw_dynamodb: Any
) -> None:
    theirs.put_artifact("app", b"hello")

    items = await items_of(raw_dynamodb, ours.dynamodb_table_name, "app")
    assert items["LATEST"]["sha256"] == {"S": sha256(b"hello")}


# -- (1) what `versioned` writes, we read ------------------------------------------


async def test_we_read_an_artifact_upstream_put(ours: Repository, theirs: Upstream) -> None:
    put = theirs.put_artifact("app", b"model v1", metadata={"build": "7"})

    got = await ours.get_artifact_version("app")

    assert artifact_view(got) == artifact_view(put)
    assert got.sha256 == sha256(b"model v1")
    assert await ours.get_content("app") == b"model v1"


async def test_we_list_versions_upstream_published_latest_first_then_newest(
    ours: Repository, theirs: Upstream
) -> None:
    publish_with_upstream(theirs, "app", [b"one", b"two", b"three"])

    listed = await ours.list_artifact_versions("app")

    assert [a.version for a in listed] == ["LATEST", "3", "2", "1"]
    assert [artifact_view(a) for a in listed] == [
        artifact_view(a) for a in theirs.list_artifact_versions("app")
    ]


async def test_we_read_the_content_of_every_version_upstream_published(
    ours: Repository, theirs: Upstream
) -> None:
    publish_with_upstream(theirs, "app", [b"one", b"two"])

    assert await ours.get_content("app", 1) == b"one"
    assert await ours.get_content("app", "2") == b"two"
    assert await ours.get_content("app") == b"two"


async def test_we_record_a_publish_of_upstreams_latest_with_its_sha256_and_metadata(
    ours: Repository, theirs: Upstream
) -> None:
    theirs.put_artifact("app", b"payload", content_type="application/zip", metadata={"b": "7"})

    published = await ours.publish_artifact_version("app")

    assert published.version == "1"
    assert published.sha256 == sha256(b"payload")
    assert published.content_type == "application/zip"
    assert dict(published.metadata) == {"b": "7"}
    assert theirs.get_artifact_version("app", 1).sha256 == sha256(b"payload")


async def test_we_list_artifact_names_upstream_created(ours: Repository, theirs: Upstream) -> None:
    theirs.put_artifact("beta", b"b")
    theirs.put_artifact("alpha", b"a")

    assert await ours.list_artifact_names() == ["alpha", "beta"]


async def test_we_do_not_reupload_content_upstream_already_put(
    ours: Repository, theirs: Upstream, raw_s3: Any
) -> None:
    theirs.put_artifact("app", b"same", metadata={"origin": "theirs"})
    key = theirs.get_artifact_s3path("app", "LATEST").key

    await ours.put_artifact("app", b"same")

    # a re-upload by us would have replaced upstream's metadata
    assert (await head(raw_s3, ours.s3_bucket, key))["Metadata"]["origin"] == "theirs"


async def test_we_read_an_alias_upstream_put_without_a_split(
    ours: Repository, theirs: Upstream
) -> None:
    publish_with_upstream(theirs, "app", [b"one"])
    theirs.put_alias("app", "prod", version=1)

    got = await ours.get_alias("app", "prod")

    assert alias_view(got) == alias_view(theirs.get_alias("app", "prod"))
    assert (got.version, got.secondary_version, got.secondary_version_weight) == ("1", None, None)
    assert got.secondary_version_s3uri is None


async def test_we_read_a_canary_alias_upstream_put(ours: Repository, theirs: Upstream) -> None:
    publish_with_upstream(theirs, "app", [b"one", b"two"])
    theirs.put_alias("app", "prod", version=1, secondary_version=2, secondary_version_weight=20)

    got = await ours.get_alias("app", "prod")

    assert alias_view(got) == alias_view(theirs.get_alias("app", "prod"))
    assert (got.version, got.secondary_version, got.secondary_version_weight) == ("1", "2", 20)
    assert await got.get_version_content() == b"one"
    assert await got.get_secondary_version_content() == b"two"


async def test_we_list_the_aliases_upstream_put(ours: Repository, theirs: Upstream) -> None:
    publish_with_upstream(theirs, "app", [b"one", b"two"])
    theirs.put_alias("app", "dev")
    theirs.put_alias("app", "prod", version=2, secondary_version=1, secondary_version_weight=5)

    listed = await ours.list_aliases("app")

    assert [alias_view(a) for a in listed] == [alias_view(a) for a in theirs.list_aliases("app")]
    assert [(a.alias, a.version) for a in listed] == [("dev", "LATEST"), ("prod", "2")]


async def test_a_version_upstream_soft_deleted_is_invisible_to_us(
    ours: Repository, theirs: Upstream
) -> None:
    publish_with_upstream(theirs, "app", [b"one", b"two"])
    theirs.delete_artifact_version("app", 1)

    assert [a.version for a in await ours.list_artifact_versions("app")] == ["LATEST", "2"]
    with pytest.raises(ArtifactNotFoundError):
        await ours.get_artifact_version("app", 1)
    with pytest.raises(ArtifactNotFoundError):
        await ours.get_content("app", 1)


async def test_we_never_reuse_the_number_of_a_version_upstream_soft_deleted(
    ours: Repository, theirs: Upstream
) -> None:
    publish_with_upstream(theirs, "app", [b"one", b"two"])
    theirs.delete_artifact_version("app", 2)

    assert (await ours.publish_artifact_version("app")).version == "3"


async def test_upstream_deleting_a_missing_version_leaves_a_stub_item(
    ours: Repository, theirs: Upstream, raw_dynamodb: Any
) -> None:
    # known defect of `versioned` 1.0.1 (WIRE_FORMAT.md): an update creates the item
    publish_with_upstream(theirs, "app", [b"one"])

    theirs.delete_artifact_version("app", 2)

    items = await items_of(raw_dynamodb, ours.dynamodb_table_name, "app")
    assert items["000002"] == {
        "pk": {"S": "app"},
        "sk": {"S": "000002"},
        "is_deleted": {"BOOL": True},
    }


async def test_upstreams_stub_is_invisible_to_us(ours: Repository, theirs: Upstream) -> None:
    publish_with_upstream(theirs, "app", [b"one"])
    theirs.delete_artifact_version("app", 2)  # 2 never existed: a stub

    assert [a.version for a in await ours.list_artifact_versions("app")] == ["LATEST", "1"]
    with pytest.raises(ArtifactNotFoundError):
        await ours.get_artifact_version("app", 2)


async def test_our_publish_skips_past_upstreams_stub_as_upstreams_own_does(
    ours: Repository, theirs: Upstream
) -> None:
    publish_with_upstream(theirs, "app", [b"one"])
    theirs.delete_artifact_version("app", 2)  # a stub at 2
    theirs.delete_artifact_version("app", 4)  # and one at 4

    ours_next = await ours.publish_artifact_version("app")
    theirs_next = theirs.publish_artifact_version("app")

    # both take the number after the highest stored one, stubs included
    assert (ours_next.version, theirs_next.version) == ("5", "6")


async def test_we_put_an_alias_on_versions_upstream_published(
    ours: Repository, theirs: Upstream
) -> None:
    publish_with_upstream(theirs, "app", [b"one", b"two"])

    await ours.put_alias("app", "prod", version=2, secondary_version=1, secondary_version_weight=30)

    got = theirs.get_alias("app", "prod")
    assert (got.version, got.secondary_version, got.secondary_version_weight) == ("2", "1", 30)


async def test_we_refuse_an_alias_to_a_version_upstream_deleted_or_stubbed(
    ours: Repository, theirs: Upstream
) -> None:
    publish_with_upstream(theirs, "app", [b"one"])
    theirs.delete_artifact_version("app", 1)  # soft-deleted
    theirs.delete_artifact_version("app", 2)  # a stub

    for version in (1, 2):
        with pytest.raises(ArtifactNotFoundError):
            await ours.put_alias("app", "prod", version=version)
    assert theirs.list_aliases("app") == []


async def test_our_put_over_upstreams_latest_stub_is_visible_to_both(
    ours: Repository, theirs: Upstream
) -> None:
    theirs.delete_artifact_version("app")  # "app" never existed: a LATEST stub

    await ours.put_artifact("app", b"fresh")

    assert theirs.get_artifact_version("app").sha256 == sha256(b"fresh")
    assert (await ours.get_artifact_version("app")).sha256 == sha256(b"fresh")


async def test_our_delete_of_a_missing_version_leaves_no_stub_for_upstream_to_skip(
    ours: Repository, theirs: Upstream
) -> None:
    publish_with_upstream(theirs, "app", [b"one"])

    await ours.delete_artifact_version("app", 2)

    assert theirs.publish_artifact_version("app").version == "2"


# -- (2) what we write, `versioned` reads ------------------------------------------


async def test_upstream_reads_an_artifact_we_put(ours: Repository, theirs: Upstream) -> None:
    put = await ours.put_artifact("app", b"model v1", metadata={"build": "7"})

    got = theirs.get_artifact_version("app")

    assert artifact_view(got) == artifact_view(put)
    assert got.update_at.tzinfo is not None
    assert got.get_content(theirs.bsm) == b"model v1"


async def test_upstream_lists_versions_we_published_latest_first_then_newest(
    ours: Repository, theirs: Upstream
) -> None:
    await publish_with_ours(ours, "app", [b"one", b"two", b"three"])

    listed = theirs.list_artifact_versions("app")

    assert [a.version for a in listed] == ["LATEST", "3", "2", "1"]
    assert [artifact_view(a) for a in listed] == [
        artifact_view(a) for a in await ours.list_artifact_versions("app")
    ]
    assert [a.sha256 for a in listed] == [sha256(c) for c in (b"three", b"three", b"two", b"one")]


async def test_upstream_reads_the_content_of_every_version_we_published(
    ours: Repository, theirs: Upstream
) -> None:
    await publish_with_ours(ours, "app", [b"one", b"two"])

    contents = {a.version: a.get_content(theirs.bsm) for a in theirs.list_artifact_versions("app")}

    assert contents == {"LATEST": b"two", "2": b"two", "1": b"one"}


async def test_upstream_lists_artifact_names_we_created(ours: Repository, theirs: Upstream) -> None:
    await ours.put_artifact("beta", b"b")
    await ours.put_artifact("alpha", b"a")

    assert sorted(theirs.list_artifact_names()) == ["alpha", "beta"]


async def test_upstream_does_not_reupload_content_we_already_put(
    ours: Repository, theirs: Upstream, raw_s3: Any
) -> None:
    await ours.put_artifact("app", b"same", metadata={"origin": "ours"})

    theirs.put_artifact("app", b"same")

    # upstream compares our artifact_sha256 metadata and skips the upload
    key = theirs.get_artifact_s3path("app", "LATEST").key
    assert (await head(raw_s3, ours.s3_bucket, key))["Metadata"]["origin"] == "ours"


async def test_upstream_reads_an_alias_we_put_without_a_split(
    ours: Repository, theirs: Upstream
) -> None:
    await publish_with_ours(ours, "app", [b"one"])
    put = await ours.put_alias("app", "prod", version=1)

    got = theirs.get_alias("app", "prod")

    assert alias_view(got) == alias_view(put)
    assert (got.version, got.secondary_version, got.secondary_version_weight) == ("1", None, None)


async def test_upstream_reads_a_canary_alias_we_put(ours: Repository, theirs: Upstream) -> None:
    await publish_with_ours(ours, "app", [b"one", b"two"])
    put = await ours.put_alias(
        "app", "prod", version=1, secondary_version=2, secondary_version_weight=20
    )

    got = theirs.get_alias("app", "prod")

    assert alias_view(got) == alias_view(put)
    assert (got.version, got.secondary_version, got.secondary_version_weight) == ("1", "2", 20)
    assert got.version_s3uri == theirs.get_artifact_s3path("app", 1).uri
    assert got.secondary_version_s3uri == theirs.get_artifact_s3path("app", 2).uri


async def test_upstream_downloads_both_versions_of_a_canary_alias_we_put(
    ours: Repository, theirs: Upstream
) -> None:
    await publish_with_ours(ours, "app", [b"one", b"two"])
    await ours.put_alias("app", "prod", version=1, secondary_version=2, secondary_version_weight=20)

    got = theirs.get_alias("app", "prod")

    assert got.get_version_content(theirs.bsm) == b"one"
    assert got.get_secondary_version_content(theirs.bsm) == b"two"


async def test_upstreams_random_artifact_splits_traffic_of_a_canary_alias_we_put(
    ours: Repository, theirs: Upstream
) -> None:
    await publish_with_ours(ours, "app", [b"one", b"two"])
    await ours.put_alias("app", "prod", version=1, secondary_version=2, secondary_version_weight=50)
    alias = theirs.get_alias("app", "prod")

    picked = {alias.random_artifact() for _ in range(200)}

    # both are picked (a miss has probability 2**-199)
    assert picked == {alias.version_s3uri, alias.secondary_version_s3uri}


async def test_upstream_routes_everything_to_the_primary_of_our_weight_0_canary(
    ours: Repository, theirs: Upstream
) -> None:
    await publish_with_ours(ours, "app", [b"one", b"two"])
    await ours.put_alias("app", "prod", version=1, secondary_version=2, secondary_version_weight=0)
    alias = theirs.get_alias("app", "prod")

    assert alias.secondary_version_weight == 0
    assert {alias.random_artifact() for _ in range(100)} == {alias.version_s3uri}


async def test_upstream_lists_the_aliases_we_put(ours: Repository, theirs: Upstream) -> None:
    await publish_with_ours(ours, "app", [b"one", b"two"])
    await ours.put_alias("app", "dev")
    await ours.put_alias("app", "prod", version=2, secondary_version=1, secondary_version_weight=5)

    listed = theirs.list_aliases("app")

    assert [alias_view(a) for a in listed] == [
        alias_view(a) for a in await ours.list_aliases("app")
    ]
    assert [(a.alias, a.version) for a in listed] == [("dev", "LATEST"), ("prod", "2")]


async def test_a_version_we_soft_deleted_is_invisible_to_upstream(
    ours: Repository, theirs: Upstream
) -> None:
    await publish_with_ours(ours, "app", [b"one", b"two"])

    await ours.delete_artifact_version("app", 1)

    assert [a.version for a in theirs.list_artifact_versions("app")] == ["LATEST", "2"]
    with pytest.raises(upstream_exc.ArtifactNotFoundError):
        theirs.get_artifact_version("app", 1)


async def test_upstream_never_reuses_the_number_of_a_version_we_soft_deleted(
    ours: Repository, theirs: Upstream
) -> None:
    await publish_with_ours(ours, "app", [b"one", b"two"])
    await ours.delete_artifact_version("app", 2)

    assert theirs.publish_artifact_version("app").version == "3"


async def test_upstream_puts_an_alias_on_versions_we_published(
    ours: Repository, theirs: Upstream
) -> None:
    await publish_with_ours(ours, "app", [b"one", b"two"])

    theirs.put_alias("app", "prod", version=2, secondary_version=1, secondary_version_weight=30)

    got = await ours.get_alias("app", "prod")
    assert (got.version, got.secondary_version, got.secondary_version_weight) == ("2", "1", 30)


# -- a custom prefix and suffix --------------------------------------------------------


async def test_upstream_reads_what_we_wrote_under_a_custom_prefix_and_suffix(
    ours_custom: Repository, theirs_custom: Upstream
) -> None:
    await publish_with_ours(ours_custom, "app", [b"one", b"two"])

    listed = theirs_custom.list_artifact_versions("app")

    assert [artifact_view(a) for a in listed] == [
        artifact_view(a) for a in await ours_custom.list_artifact_versions("app")
    ]
    assert listed[-1].s3uri.endswith(f"/{CUSTOM_PREFIX}/app/000001{CUSTOM_SUFFIX}")
    assert listed[-1].get_content(theirs_custom.bsm) == b"one"
    assert theirs_custom.list_artifact_names() == ["app"]


async def test_we_read_what_upstream_wrote_under_a_custom_prefix_and_suffix(
    ours_custom: Repository, theirs_custom: Upstream
) -> None:
    publish_with_upstream(theirs_custom, "app", [b"one", b"two"])

    listed = await ours_custom.list_artifact_versions("app")

    assert [artifact_view(a) for a in listed] == [
        artifact_view(a) for a in theirs_custom.list_artifact_versions("app")
    ]
    assert await ours_custom.get_content("app", 1) == b"one"
    assert await ours_custom.list_artifact_names() == ["app"]


# -- (3) one version sequence, two publishers ----------------------------------------


async def test_alternating_publishers_continue_one_version_sequence(
    ours: Repository, theirs: Upstream
) -> None:
    contents = [b"by upstream 1", b"by us 2", b"by upstream 3", b"by us 4"]

    theirs.put_artifact("app", contents[0])
    first = theirs.publish_artifact_version("app").version
    await ours.put_artifact("app", contents[1])
    second = (await ours.publish_artifact_version("app")).version
    theirs.put_artifact("app", contents[2])
    third = theirs.publish_artifact_version("app").version
    await ours.put_artifact("app", contents[3])
    fourth = (await ours.publish_artifact_version("app")).version

    assert [first, second, third, fourth] == ["1", "2", "3", "4"]
    for number, content in enumerate(contents, start=1):
        assert theirs.get_artifact_version("app", number).sha256 == sha256(content)
        assert theirs.get_artifact_version("app", number).get_content(theirs.bsm) == content
        assert (await ours.get_artifact_version("app", number)).sha256 == sha256(content)
        assert await ours.get_content("app", number) == content


# -- (4) bootstrap ---------------------------------------------------------------------


async def test_a_repository_upstream_bootstrapped_is_usable_by_us(
    make_table_repo: TableRepoFactory, make_theirs: MakeUpstream
) -> None:
    async with make_table_repo() as ours:
        theirs = make_theirs(ours)
        theirs.bootstrap()  # creates the bucket, and the table through pynamodb

        await ours.bootstrap()  # finds both: nothing to do
        await publish_with_ours(ours, "app", [b"one"])
        await ours.put_alias("app", "prod", version=1)

        assert await ours.get_content("app", 1) == b"one"
        assert theirs.get_alias("app", "prod").get_version_content(theirs.bsm) == b"one"


async def test_a_repository_we_bootstrapped_is_usable_by_upstream(
    make_table_repo: TableRepoFactory, make_theirs: MakeUpstream
) -> None:
    async with make_table_repo() as ours:
        await ours.bootstrap()  # creates the bucket, and the table with CreateTable
        theirs = make_theirs(ours)

        theirs.bootstrap()  # finds both: nothing to do
        publish_with_upstream(theirs, "app", [b"one"])
        theirs.put_alias("app", "prod", version=1)

        assert theirs.get_artifact_version("app", 1).get_content(theirs.bsm) == b"one"
        assert await (await ours.get_alias("app", "prod")).get_version_content() == b"one"


async def test_we_create_the_table_upstream_creates(
    make_table_repo: TableRepoFactory, make_theirs: MakeUpstream, raw_dynamodb: Any
) -> None:
    async with make_table_repo(dynamodb_table_name="made-by-us") as ours:
        await ours.bootstrap()
    make_theirs(ours, dynamodb_table_name="made-by-upstream").bootstrap()

    def shape(table: dict[str, Any]) -> dict[str, Any]:
        return {
            "KeySchema": table["KeySchema"],
            "AttributeDefinitions": sorted(
                table["AttributeDefinitions"], key=lambda d: d["AttributeName"]
            ),
            "BillingMode": table["BillingModeSummary"]["BillingMode"],
        }

    ours_table = (await raw_dynamodb.describe_table(TableName="made-by-us"))["Table"]
    theirs_table = (await raw_dynamodb.describe_table(TableName="made-by-upstream"))["Table"]
    assert shape(ours_table) == shape(theirs_table)
    assert shape(ours_table)["BillingMode"] == "PAY_PER_REQUEST"


# -- (5) purge_artifact ----------------------------------------------------------------


async def test_upstream_sees_nothing_of_an_artifact_we_purged(
    ours: Repository, theirs: Upstream
) -> None:
    publish_with_upstream(theirs, "app", [b"one", b"two"])
    theirs.put_alias("app", "prod", version=1)
    theirs.delete_artifact_version("app", 9)  # a stub, too
    theirs.put_artifact("other", b"kept")

    await ours.purge_artifact("app")

    assert theirs.list_artifact_versions("app") == []
    assert theirs.list_aliases("app") == []
    assert theirs.list_artifact_names() == ["other"]
    with pytest.raises(upstream_exc.ArtifactNotFoundError):
        theirs.get_artifact_version("app")
    with pytest.raises(upstream_exc.AliasNotFoundError):
        theirs.get_alias("app", "prod")
    assert theirs.get_artifact_version("other").get_content(theirs.bsm) == b"kept"


async def test_we_see_nothing_of_an_artifact_upstream_purged(
    ours: Repository, theirs: Upstream
) -> None:
    await publish_with_ours(ours, "app", [b"one", b"two"])
    await ours.put_alias("app", "prod", version=1, secondary_version=2, secondary_version_weight=10)
    await ours.put_artifact("other", b"kept")

    theirs.purge_artifact("app")

    assert await ours.list_artifact_versions("app") == []
    assert await ours.list_aliases("app") == []
    assert await ours.list_artifact_names() == ["other"]
    with pytest.raises(ArtifactNotFoundError):
        await ours.get_artifact_version("app")
    with pytest.raises(AliasNotFoundError):
        await ours.get_alias("app", "prod")
    assert await ours.get_content("other") == b"kept"


async def test_a_purge_by_either_leaves_no_item_or_object_of_the_artifact(
    ours: Repository, theirs: Upstream, raw_dynamodb: Any, raw_s3: Any
) -> None:
    publish_with_upstream(theirs, "by_them", [b"one"])
    theirs.put_alias("by_them", "prod", version=1)
    await publish_with_ours(ours, "by_us", [b"one"])
    await ours.put_alias("by_us", "prod", version=1)

    await ours.purge_artifact("by_them")
    theirs.purge_artifact("by_us")

    # `versioned` cannot know our alias history partition: only it is left behind (and
    # the table's record, issue 17, which is no artifact's)
    left = await scan(raw_dynamodb, ours.dynamodb_table_name)
    assert {item["pk"]["S"] for item in left} == {"__by_us-alias-history", "__table"}
    assert await object_keys(raw_s3, ours.s3_bucket) == set()
    await ours.purge_artifact("by_us")  # ours clears it
    left = await scan(raw_dynamodb, ours.dynamodb_table_name)
    assert [item["pk"]["S"] for item in left] == ["__table"]


# -- (6) aliases deleted by the other ----------------------------------------------------


async def test_we_delete_an_alias_upstream_put(ours: Repository, theirs: Upstream) -> None:
    publish_with_upstream(theirs, "app", [b"one", b"two"])
    theirs.put_alias("app", "prod", version=1, secondary_version=2, secondary_version_weight=20)
    theirs.put_alias("app", "dev")

    await ours.delete_alias("app", "prod")

    with pytest.raises(upstream_exc.AliasNotFoundError):
        theirs.get_alias("app", "prod")
    assert [a.alias for a in theirs.list_aliases("app")] == ["dev"]


async def test_upstream_deletes_an_alias_we_put(ours: Repository, theirs: Upstream) -> None:
    await publish_with_ours(ours, "app", [b"one", b"two"])
    await ours.put_alias("app", "prod", version=1, secondary_version=2, secondary_version_weight=20)
    await ours.put_alias("app", "dev")

    theirs.delete_alias("app", "prod")

    with pytest.raises(AliasNotFoundError):
        await ours.get_alias("app", "prod")
    assert [a.alias for a in await ours.list_aliases("app")] == ["dev"]


# -- the raw layout we write (WIRE_FORMAT.md) ------------------------------------------

ONE = b"SQLite format 3\x00 version one"
TWO = b"SQLite format 3\x00 version two"


@pytest.fixture
async def written_by_us(ours_custom: Repository) -> Repository:
    """Under prefix team/models, suffix .sqlite: two versions, a plain and a canary alias."""
    await ours_custom.put_artifact(
        "app", ONE, content_type="application/vnd.sqlite3", metadata={"build": "7"}
    )
    await ours_custom.publish_artifact_version("app")
    await ours_custom.put_alias("app", "prod", version=1)
    await ours_custom.put_artifact("app", TWO, content_type="application/vnd.sqlite3")
    await ours_custom.publish_artifact_version("app")
    await ours_custom.put_alias(
        "app", "canary", version=1, secondary_version=2, secondary_version_weight=10
    )
    return ours_custom


async def test_raw_our_version_items_have_upstreams_attributes(
    written_by_us: Repository, raw_dynamodb: Any
) -> None:
    items = await items_of(raw_dynamodb, written_by_us.dynamodb_table_name, "app")

    assert set(items) == {"LATEST", "000001", "000002"}
    expected_sha = {"LATEST": sha256(TWO), "000001": sha256(ONE), "000002": sha256(TWO)}
    for sk, item in items.items():
        assert item["pk"] == {"S": "app"}
        assert item["sk"] == {"S": sk}
        assert item["is_deleted"] == {"BOOL": False}
        assert item["sha256"] == {"S": expected_sha[sk]}
        assert UPDATE_AT.fullmatch(item["update_at"]["S"])
        assert len(item["update_at"]["S"]) == 31
        assert "publish_token" not in item  # the publish reservation is complete
        assert not any("NULL" in value for value in item.values())


async def test_raw_our_alias_items_have_exactly_upstreams_attributes(
    written_by_us: Repository, raw_dynamodb: Any
) -> None:
    items = await items_of(raw_dynamodb, written_by_us.dynamodb_table_name, "__app-alias")

    assert set(items) == {"prod", "canary"}
    prod, canary = items["prod"], items["canary"]
    # no split: the secondary attributes are absent, not NULL
    assert set(prod) == {"pk", "sk", "update_at", "version"}
    assert prod["pk"] == {"S": "__app-alias"}
    assert prod["version"] == {"S": "000001"}
    assert UPDATE_AT.fullmatch(prod["update_at"]["S"])
    assert canary == {
        "pk": {"S": "__app-alias"},
        "sk": {"S": "canary"},
        "update_at": canary["update_at"],
        "version": {"S": "000001"},
        "secondary_version": {"S": "000002"},
        "secondary_version_weight": {"N": "10"},
    }
    assert UPDATE_AT.fullmatch(canary["update_at"]["S"])


async def test_raw_our_objects_have_upstreams_keys_and_metadata(
    written_by_us: Repository, raw_s3: Any
) -> None:
    bucket = written_by_us.s3_bucket

    assert await object_keys(raw_s3, bucket) == {
        "team/models/app/LATEST.sqlite",
        "team/models/app/000001.sqlite",
        "team/models/app/000002.sqlite",
    }
    one = await head(raw_s3, bucket, "team/models/app/000001.sqlite")
    assert one["Metadata"] == {"artifact_name": "app", "artifact_sha256": sha256(ONE), "build": "7"}
    assert one["ContentType"] == "application/vnd.sqlite3"
    for key in ("team/models/app/LATEST.sqlite", "team/models/app/000002.sqlite"):
        meta = (await head(raw_s3, bucket, key))["Metadata"]
        assert meta == {"artifact_name": "app", "artifact_sha256": sha256(TWO)}


async def test_raw_update_at_of_our_versions_is_their_objects_last_modified(
    written_by_us: Repository, raw_dynamodb: Any, raw_s3: Any
) -> None:
    items = await items_of(raw_dynamodb, written_by_us.dynamodb_table_name, "app")

    for sk, item in items.items():
        key = f"team/models/app/{sk}.sqlite"
        last_modified = (await head(raw_s3, written_by_us.s3_bucket, key))["LastModified"]
        assert parse_update_at(item["update_at"]) == last_modified.astimezone(timezone.utc)


async def test_raw_our_update_at_parses_with_pynamodb(
    written_by_us: Repository, raw_dynamodb: Any
) -> None:
    for item in await scan(raw_dynamodb, written_by_us.dynamodb_table_name):
        if item["pk"]["S"].endswith("-alias-history"):  # our own partition: dated by changed_at
            assert parse_update_at(item["changed_at"]).tzinfo is not None
        else:
            assert parse_update_at(item["update_at"]).tzinfo is not None


async def test_raw_we_write_every_attribute_upstream_writes_with_the_same_types(
    ours: Repository, theirs: Upstream, raw_dynamodb: Any
) -> None:
    # the same operations, by each library on its own artifact name
    for name in ("by_them", "by_us"):
        if name == "by_them":
            publish_with_upstream(theirs, name, [b"one"])
            theirs.put_alias(name, "prod", version=1)
            theirs.put_alias(
                name, "canary", version="LATEST", secondary_version=1, secondary_version_weight=3
            )
        else:
            await publish_with_ours(ours, name, [b"one"])
            await ours.put_alias(name, "prod", version=1)
            await ours.put_alias(
                name, "canary", version="LATEST", secondary_version=1, secondary_version_weight=3
            )
    table = ours.dynamodb_table_name

    def types(item: dict[str, Any]) -> dict[str, str]:
        return {attr: next(iter(value)) for attr, value in item.items()}

    for them_pk, us_pk in (("by_them", "by_us"), ("__by_them-alias", "__by_us-alias")):
        theirs_items = await items_of(raw_dynamodb, table, them_pk)
        ours_items = await items_of(raw_dynamodb, table, us_pk)
        assert set(ours_items) == set(theirs_items)
        for sk, theirs_item in theirs_items.items():
            ours_types = types(ours_items[sk])
            # every upstream attribute, same type; extras (version items only) are hints
            assert types(theirs_item).items() <= ours_types.items()
            if us_pk.startswith("__"):
                assert ours_types == types(theirs_item)


# -- (issue 7) alias history and compare-and-set with `versioned` in between --------------


async def test_an_alias_upstream_moved_between_two_of_ours_shows_as_external(
    ours: Repository, theirs: Upstream
) -> None:
    await publish_with_ours(ours, "app", [b"one", b"two", b"three"])
    await ours.put_alias("app", "prod", version=1, reason="ours first")
    theirs.put_alias("app", "prod", version=2)

    detected = (await ours.list_alias_history("app", "prod")).changes
    assert [(c.action, c.recorded) for c in detected] == [("external", False), ("put", True)]
    assert detected[0].after is not None
    assert detected[0].after.version == "2"
    assert detected[0].before is not None
    assert detected[0].before.version == "1"

    await ours.put_alias("app", "prod", version=3, reason="ours second")

    changes = (await ours.list_alias_history("app", "prod")).changes
    assert [(c.action, c.recorded) for c in changes] == [
        ("put", True),
        ("external", True),
        ("put", True),
    ]
    versions = [(c.before and c.before.version, c.after and c.after.version) for c in changes]
    assert versions == [("2", "3"), ("1", "2"), (None, "1")]
    # the external change carries the time `versioned` stamped on the alias
    upstream_at = changes[1].after.update_at if changes[1].after else None
    assert upstream_at is not None
    assert changes[2].changed_at < upstream_at < changes[0].changed_at


async def test_an_alias_upstream_deleted_shows_as_external_and_rolls_back(
    ours: Repository, theirs: Upstream
) -> None:
    await publish_with_ours(ours, "app", [b"one"])
    await ours.put_alias("app", "prod", version=1)
    theirs.delete_alias("app", "prod")

    [external, _] = (await ours.list_alias_history("app", "prod")).changes
    assert (external.action, external.after) == ("external", None)

    back = await ours.rollback_alias("app", "prod")  # undoes their delete
    assert back is not None
    assert back.version == "1"
    assert theirs.get_alias("app", "prod").version == "1"


async def test_compare_and_set_sees_an_upstream_move(ours: Repository, theirs: Upstream) -> None:
    await publish_with_ours(ours, "app", [b"one", b"two", b"three"])
    read = await ours.put_alias("app", "prod", version=1)
    theirs.put_alias("app", "prod", version=2)

    with pytest.raises(ConcurrentModificationError):
        await ours.put_alias("app", "prod", version=3, if_update_at=read.update_at)
    assert theirs.get_alias("app", "prod").version == "2"


async def test_compare_and_set_accepts_the_token_of_an_upstream_alias(
    ours: Repository, theirs: Upstream
) -> None:
    publish_with_upstream(theirs, "app", [b"one", b"two"])
    theirs.put_alias("app", "prod", version=1)
    read = await ours.get_alias("app", "prod")  # written by `versioned`

    moved = await ours.put_alias("app", "prod", version=2, if_update_at=read.update_at)

    assert theirs.get_alias("app", "prod").version == moved.version == "2"
    [ours_change, theirs_change] = (await ours.list_alias_history("app", "prod")).changes
    assert (ours_change.action, theirs_change.action) == ("put", "external")
    assert theirs_change.after == read


async def test_upstream_still_reads_and_moves_aliases_we_keep_history_for(
    ours: Repository, theirs: Upstream
) -> None:
    await publish_with_ours(ours, "app", [b"one", b"two"])
    await ours.put_alias("app", "prod", version=1, secondary_version=2, secondary_version_weight=5)
    await ours.rollback_alias("app", "prod")
    await ours.put_alias("app", "prod", version=2)

    assert theirs.get_alias("app", "prod").version == "2"
    assert [a.alias for a in theirs.list_aliases("app")] == ["prod"]
    theirs.put_alias("app", "prod", version=1)
    assert (await ours.get_alias("app", "prod")).version == "1"
