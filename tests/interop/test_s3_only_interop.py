"""S3OnlyRepository and `versioned` 1.0.1's S3-only backend share one bucket on one moto.

Each test states one thing a user of both libraries relies on. ``ours_s3`` is a
:class:`versioned_async.S3OnlyRepository`; ``theirs_s3`` is
``versioned.api.s3_only_backend.Repository`` on the same bucket, prefix and
suffix (sync, called directly: it blocks the event loop briefly, which is
harmless here). The layout is the one docs/S3_ONLY_WIRE_FORMAT.md describes;
keys are spelled out here from that document, not from either library.

Times: upstream reports ``LastModified.isoformat()`` (a string), we report a
datetime. For versions both are the object's LastModified. For aliases
upstream always uses LastModified (its body says ``"unknown"``), we use the
body's time when we wrote it and LastModified when upstream did.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from datetime import datetime
from typing import Any

import pytest
from versioned import exc as upstream_exc
from versioned.api import s3_only_backend as upstream_s3_only

from versioned_async import S3OnlyRepository
from versioned_async.exc import AliasNotFoundError, ArtifactNotFoundError, InvalidArgumentError

from .conftest import CUSTOM_PREFIX, CUSTOM_SUFFIX, UpstreamS3Only

PREFIX = "versioned-artifacts"

#: `versioned`'s alias body keys, in the order its dataclass (and so json.dumps) has them
UPSTREAM_ALIAS_KEYS = [
    "name",
    "alias",
    "update_at",
    "version",
    "secondary_version",
    "secondary_version_weight",
    "version_s3uri",
    "secondary_version_s3uri",
]


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def version_key(name: str, version: int | str, prefix: str = PREFIX, suffix: str = "") -> str:
    """Where the layout keeps a version: ``000000_LATEST`` or ``{1000000-n:06d}_{n:06d}``."""
    stem = (
        "000000_LATEST"
        if version == "LATEST"
        else f"{1000000 - int(version):06d}_{int(version):06d}"
    )
    return f"{prefix}/{name}/versions/{stem}{suffix}"


def alias_key(name: str, alias: str, prefix: str = PREFIX) -> str:
    return f"{prefix}/{name}/aliases/{alias}.json"


def uri(key: str, bucket: str) -> str:
    return f"s3://{bucket}/{key}"


def upstream_artifact(artifact: upstream_s3_only.Artifact) -> tuple[Any, ...]:
    """An upstream Artifact's fields, its ISO time parsed."""
    return (
        artifact.name,
        artifact.version,
        datetime.fromisoformat(artifact.update_at),
        artifact.s3uri,
        artifact.sha256,
    )


def our_artifact(artifact: Any) -> tuple[Any, ...]:
    """The same fields of one of our Artifacts."""
    return (artifact.name, artifact.version, artifact.update_at, artifact.s3uri, artifact.sha256)


def alias_target(alias: Any) -> tuple[Any, ...]:
    """Every alias field except the time, the same on both libraries' models."""
    return (
        alias.name,
        alias.alias,
        alias.version,
        alias.secondary_version,
        alias.secondary_version_weight,
        alias.version_s3uri,
        alias.secondary_version_s3uri,
    )


def publish_with_upstream(theirs: UpstreamS3Only, name: str, contents: list[bytes]) -> None:
    for content in contents:
        theirs.put_artifact(name, content)
        theirs.publish_artifact_version(name)


async def publish_with_ours(ours: S3OnlyRepository, name: str, contents: list[bytes]) -> None:
    for content in contents:
        await ours.put_artifact(name, content)
        await ours.publish_artifact_version(name)


async def keys_under(raw_s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    async for page in raw_s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix
    ):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


async def head(raw_s3: Any, bucket: str, key: str) -> dict[str, Any]:
    resp: dict[str, Any] = await raw_s3.head_object(Bucket=bucket, Key=key)
    return resp


async def body_of(raw_s3: Any, bucket: str, key: str) -> bytes:
    resp = await raw_s3.get_object(Bucket=bucket, Key=key)
    async with resp["Body"] as stream:
        data: bytes = await stream.read()
    return data


async def tags_of(raw_s3: Any, bucket: str, key: str) -> dict[str, str]:
    resp = await raw_s3.get_object_tagging(Bucket=bucket, Key=key)
    return {t["Key"]: t["Value"] for t in resp["TagSet"]}


# -- the test setup itself -------------------------------------------------------


async def test_upstream_s3_only_talks_to_this_tests_moto_server(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only, aws_endpoint_env: str, raw_s3: Any
) -> None:
    assert theirs_s3.bsm.s3_client.meta.endpoint_url == aws_endpoint_env

    theirs_s3.put_artifact("app", b"hello")

    stored = await head(raw_s3, ours_s3.s3_bucket, version_key("app", "LATEST"))
    assert stored["Metadata"]["artifact_sha256"] == sha256(b"hello")


# -- (1) what `versioned` writes, we read ------------------------------------------


async def test_we_read_the_latest_upstream_put(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    put = theirs_s3.put_artifact(
        "app", b"v2-content", content_type="application/zip", metadata={"build": "42"}
    )

    got = await ours_s3.get_artifact_version("app")

    assert our_artifact(got) == upstream_artifact(put)
    assert got.sha256 == sha256(b"v2-content")
    assert (got.content_type, dict(got.metadata), got.size) == (
        "application/zip",
        {"build": "42"},
        10,
    )
    assert await ours_s3.get_content("app") == b"v2-content"


async def test_we_list_versions_upstream_published_latest_first_then_newest(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    publish_with_upstream(theirs_s3, "app", [b"one", b"two", b"three"])

    listed = await ours_s3.list_artifact_versions("app")

    assert [a.version for a in listed] == ["LATEST", "3", "2", "1"]
    assert [a.sha256 for a in listed] == [sha256(c) for c in (b"three", b"three", b"two", b"one")]
    assert [our_artifact(a) for a in listed] == [
        upstream_artifact(a) for a in theirs_s3.list_artifact_versions("app")
    ]


async def test_we_read_the_content_of_every_version_upstream_published(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    publish_with_upstream(theirs_s3, "app", [b"one", b"two"])

    assert await ours_s3.get_content("app", 1) == b"one"
    assert await ours_s3.get_content("app", "2") == b"two"
    assert await ours_s3.get_content("app") == b"two"


async def test_we_list_artifact_names_upstream_created(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    theirs_s3.put_artifact("beta", b"b")
    theirs_s3.put_artifact("alpha", b"a")

    names = await ours_s3.list_artifact_names()

    assert names == ["alpha", "beta"]
    assert names == theirs_s3.list_artifact_names()


async def test_we_read_an_alias_upstream_put_without_a_split(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only, raw_s3: Any
) -> None:
    publish_with_upstream(theirs_s3, "app", [b"one"])
    put = theirs_s3.put_alias("app", "prod", version=1)

    got = await ours_s3.get_alias("app", "prod")

    assert alias_target(got) == alias_target(put)
    assert (got.version, got.secondary_version, got.secondary_version_weight) == ("1", None, None)
    # upstream's body says "unknown": the time is the object's LastModified
    stored = alias_key("app", "prod")
    assert json.loads(await body_of(raw_s3, ours_s3.s3_bucket, stored))["update_at"] == "unknown"
    assert got.update_at == (await head(raw_s3, ours_s3.s3_bucket, stored))["LastModified"]
    assert got.update_at == datetime.fromisoformat(put.update_at)
    assert await ours_s3.get_alias_content("app", "prod") == b"one"


async def test_we_read_a_canary_alias_upstream_put(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    publish_with_upstream(theirs_s3, "app", [b"one", b"two"])
    put = theirs_s3.put_alias(
        "app", "prod", version=1, secondary_version=2, secondary_version_weight=20
    )

    got = await ours_s3.get_alias("app", "prod")

    assert alias_target(got) == alias_target(put)
    assert (got.version, got.secondary_version, got.secondary_version_weight) == ("1", "2", 20)
    assert got.version_s3uri == uri(version_key("app", 1), ours_s3.s3_bucket)
    assert got.secondary_version_s3uri == uri(version_key("app", 2), ours_s3.s3_bucket)
    assert await got.get_version_content() == b"one"
    assert await got.get_secondary_version_content() == b"two"
    assert set(got.choose_versions(f"user{i}" for i in range(200))) == {"1", "2"}


async def test_we_route_nothing_to_a_weight_zero_canary_upstream_put(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    publish_with_upstream(theirs_s3, "app", [b"one", b"two"])
    theirs_s3.put_alias("app", "prod", version=1, secondary_version=2, secondary_version_weight=0)

    got = await ours_s3.get_alias("app", "prod")

    assert (got.version, got.secondary_version, got.secondary_version_weight) == ("1", "2", 0)
    assert set(got.choose_versions(f"user{i}" for i in range(200))) == {"1"}
    assert {got.random_artifact(random.Random(seed)) for seed in range(50)} == {got.version_s3uri}
    assert await ours_s3.get_alias_content("app", "prod", routing_key="user7") == b"one"


async def test_we_read_upstreams_alias_with_a_weight_but_no_secondary_as_no_split(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    # upstream stores the weight as given:
    # {"secondary_version": null, "secondary_version_weight": 30, ...}
    publish_with_upstream(theirs_s3, "app", [b"one"])
    theirs_s3.put_alias("app", "prod", version=1, secondary_version_weight=30)

    got = await ours_s3.get_alias("app", "prod")

    assert (got.version, got.secondary_version, got.secondary_version_s3uri) == ("1", None, None)
    assert set(got.choose_versions(f"user{i}" for i in range(200))) == {"1"}
    assert await ours_s3.get_alias_content("app", "prod") == b"one"


async def test_we_follow_an_upstream_alias_to_latest(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    theirs_s3.put_artifact("app", b"one")
    theirs_s3.put_alias("app", "dev")

    got = await ours_s3.get_alias("app", "dev")
    theirs_s3.put_artifact("app", b"two")

    assert (got.version, got.version_s3uri) == (
        "LATEST",
        uri(version_key("app", "LATEST"), ours_s3.s3_bucket),
    )
    assert await ours_s3.get_alias_content("app", "dev") == b"two"


async def test_we_list_the_aliases_upstream_put(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    publish_with_upstream(theirs_s3, "app", [b"one", b"two"])
    theirs_s3.put_alias("app", "prod", version=2, secondary_version=1, secondary_version_weight=5)
    theirs_s3.put_alias("app", "dev")

    listed = await ours_s3.list_aliases("app")

    assert [(a.alias, a.version, a.secondary_version) for a in listed] == [
        ("dev", "LATEST", None),
        ("prod", "2", "1"),
    ]
    assert [(alias_target(a), a.update_at) for a in listed] == [
        (alias_target(a), datetime.fromisoformat(a.update_at))
        for a in theirs_s3.list_aliases("app")
    ]


# -- (2) what we write, `versioned` reads ------------------------------------------


async def test_upstream_reads_the_latest_we_put(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    put = await ours_s3.put_artifact(
        "app", b"v2-content", content_type="application/zip", metadata={"build": "42"}
    )

    got = theirs_s3.get_artifact_version("app")

    assert upstream_artifact(got) == our_artifact(put)
    assert got.sha256 == sha256(b"v2-content")
    assert got.get_content(theirs_s3.bsm) == b"v2-content"


async def test_upstream_lists_versions_we_published_latest_first_then_newest(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    await publish_with_ours(ours_s3, "app", [b"one", b"two", b"three"])

    listed = theirs_s3.list_artifact_versions("app")

    assert [a.version for a in listed] == ["LATEST", "3", "2", "1"]
    assert [a.sha256 for a in listed] == [sha256(c) for c in (b"three", b"three", b"two", b"one")]
    assert [upstream_artifact(a) for a in listed] == [
        our_artifact(a) for a in await ours_s3.list_artifact_versions("app")
    ]


async def test_upstream_reads_the_content_of_every_version_we_published(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    await publish_with_ours(ours_s3, "app", [b"one", b"two"])

    contents = {
        a.version: a.get_content(theirs_s3.bsm) for a in theirs_s3.list_artifact_versions("app")
    }

    assert contents == {"LATEST": b"two", "2": b"two", "1": b"one"}


async def test_upstream_lists_artifact_names_we_created(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    await ours_s3.put_artifact("beta", b"b")
    await ours_s3.put_artifact("alpha", b"a")

    assert theirs_s3.list_artifact_names() == ["alpha", "beta"]


async def test_upstream_reads_an_alias_we_put_without_a_split(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only, raw_s3: Any
) -> None:
    await publish_with_ours(ours_s3, "app", [b"one", b"two"])
    put = await ours_s3.put_alias("app", "prod", version=1)

    got = theirs_s3.get_alias("app", "prod")

    assert alias_target(got) == alias_target(put)
    assert (got.version, got.secondary_version, got.secondary_version_weight) == ("1", None, None)
    stored = await head(raw_s3, ours_s3.s3_bucket, alias_key("app", "prod"))
    assert got.update_at == stored["LastModified"].isoformat()
    assert got.random_artifact() == got.version_s3uri
    assert got.get_version_content(theirs_s3.bsm) == b"one"


async def test_upstream_reads_a_canary_alias_we_put(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    await publish_with_ours(ours_s3, "app", [b"one", b"two"])
    put = await ours_s3.put_alias(
        "app", "prod", version=1, secondary_version=2, secondary_version_weight=20
    )

    got = theirs_s3.get_alias("app", "prod")

    assert alias_target(got) == alias_target(put)
    assert (got.version, got.secondary_version, got.secondary_version_weight) == ("1", "2", 20)
    assert got.version_s3uri == theirs_s3._get_artifact_s3path("app", 1).uri
    assert got.secondary_version_s3uri == theirs_s3._get_artifact_s3path("app", 2).uri
    assert got.get_version_content(theirs_s3.bsm) == b"one"
    assert got.get_secondary_version_content(theirs_s3.bsm) == b"two"
    random.seed(20)  # upstream draws from the module's generator
    assert {got.random_artifact() for _ in range(200)} == {
        got.version_s3uri,
        got.secondary_version_s3uri,
    }


async def test_upstream_routes_nothing_to_a_weight_zero_canary_we_put(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    await publish_with_ours(ours_s3, "app", [b"one", b"two"])
    await ours_s3.put_alias(
        "app", "prod", version=1, secondary_version=2, secondary_version_weight=0
    )

    got = theirs_s3.get_alias("app", "prod")

    assert (got.version, got.secondary_version, got.secondary_version_weight) == ("1", "2", 0)
    random.seed(0)
    assert {got.random_artifact() for _ in range(200)} == {got.version_s3uri}


async def test_upstream_lists_the_aliases_we_put(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    await publish_with_ours(ours_s3, "app", [b"one", b"two"])
    await ours_s3.put_alias("app", "dev")
    await ours_s3.put_alias(
        "app", "prod", version=2, secondary_version=1, secondary_version_weight=5
    )

    listed = theirs_s3.list_aliases("app")

    assert [alias_target(a) for a in listed] == [
        alias_target(a) for a in await ours_s3.list_aliases("app")
    ]
    assert [(a.alias, a.version, a.secondary_version) for a in listed] == [
        ("dev", "LATEST", None),
        ("prod", "2", "1"),
    ]
    assert listed[0].version_s3uri == uri(version_key("app", "LATEST"), ours_s3.s3_bucket)


# -- (3) both libraries publishing one artifact -------------------------------------


async def test_publishes_alternating_between_the_libraries_continue_one_sequence(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    published = []
    for i in range(1, 5):
        content = f"content {i}".encode()
        if i % 2:
            await ours_s3.put_artifact("app", content)
            published.append((await ours_s3.publish_artifact_version("app")).version)
        else:
            theirs_s3.put_artifact("app", content)
            published.append(theirs_s3.publish_artifact_version("app").version)

    assert published == ["1", "2", "3", "4"]
    for number in (1, 2, 3, 4):
        expected = f"content {number}".encode()
        assert await ours_s3.get_content("app", number) == expected
        assert theirs_s3.get_artifact_version("app", number).get_content(theirs_s3.bsm) == expected


async def test_upstream_publish_of_an_unchanged_latest_returns_our_top_version(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only, raw_s3: Any
) -> None:
    # our version object is a fresh upload of LATEST's bytes: the same ETag, so upstream dedups
    await publish_with_ours(ours_s3, "app", [b"one", b"two"])
    before = await keys_under(raw_s3, ours_s3.s3_bucket, f"{PREFIX}/app/")

    again = theirs_s3.publish_artifact_version("app")

    assert (again.version, again.sha256) == ("2", sha256(b"two"))
    assert await keys_under(raw_s3, ours_s3.s3_bucket, f"{PREFIX}/app/") == before


async def test_our_publish_of_an_unchanged_latest_returns_upstreams_top_version(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only, raw_s3: Any
) -> None:
    # S3_ONLY_WIRE_FORMAT.md: "Skip publishing, and return the highest version, when
    # LATEST's ETag equals that version's ETag, as upstream does."
    publish_with_upstream(theirs_s3, "app", [b"one", b"two"])
    before = await keys_under(raw_s3, ours_s3.s3_bucket, f"{PREFIX}/app/")

    again = await ours_s3.publish_artifact_version("app")

    assert (again.version, again.sha256) == ("2", sha256(b"two"))
    assert await keys_under(raw_s3, ours_s3.s3_bucket, f"{PREFIX}/app/") == before


async def test_our_publish_after_upstreams_put_takes_the_next_number(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    publish_with_upstream(theirs_s3, "app", [b"one", b"two"])
    theirs_s3.put_artifact("app", b"three")

    published = await ours_s3.publish_artifact_version("app")

    assert (published.version, published.sha256) == ("3", sha256(b"three"))
    assert theirs_s3.get_latest_published_artifact_version_number("app") == 3
    assert theirs_s3.get_artifact_version("app", 3).sha256 == sha256(b"three")


async def test_our_publish_keeps_what_upstream_put_on_latest(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only, raw_s3: Any
) -> None:
    theirs_s3.put_artifact(
        "app", b"zip", content_type="application/zip", metadata={"build": "42"}, tags={"env": "dev"}
    )

    await ours_s3.publish_artifact_version("app")

    key = version_key("app", 1)
    stored = await head(raw_s3, ours_s3.s3_bucket, key)
    assert stored["Metadata"] == {
        "artifact_name": "app",
        "artifact_sha256": sha256(b"zip"),
        "build": "42",
    }
    assert stored["ContentType"] == "application/zip"
    assert await tags_of(raw_s3, ours_s3.s3_bucket, key) == {"env": "dev"}
    assert theirs_s3.get_artifact_version("app", 1).sha256 == sha256(b"zip")


async def test_upstream_publish_keeps_what_we_put_on_latest(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only, raw_s3: Any
) -> None:
    await ours_s3.put_artifact(
        "app", b"zip", content_type="application/zip", metadata={"build": "42"}, tags={"env": "dev"}
    )

    theirs_s3.publish_artifact_version("app")

    got = await ours_s3.get_artifact_version("app", 1)
    assert (got.sha256, got.content_type, dict(got.metadata)) == (
        sha256(b"zip"),
        "application/zip",
        {"build": "42"},
    )
    assert await tags_of(raw_s3, ours_s3.s3_bucket, version_key("app", 1)) == {"env": "dev"}


# -- (4) deletes and purges ----------------------------------------------------------


async def test_a_version_upstream_deleted_is_gone_for_us(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    await publish_with_ours(ours_s3, "app", [b"one", b"two"])

    theirs_s3.delete_artifact_version("app", 1)

    assert [a.version for a in await ours_s3.list_artifact_versions("app")] == ["LATEST", "2"]
    with pytest.raises(ArtifactNotFoundError):
        await ours_s3.get_artifact_version("app", 1)
    with pytest.raises(ArtifactNotFoundError):
        await ours_s3.get_content("app", 1)


async def test_a_version_we_deleted_is_gone_for_upstream(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    publish_with_upstream(theirs_s3, "app", [b"one", b"two"])

    await ours_s3.delete_artifact_version("app", 1)

    assert [a.version for a in theirs_s3.list_artifact_versions("app")] == ["LATEST", "2"]
    with pytest.raises(upstream_exc.ArtifactNotFoundError):
        theirs_s3.get_artifact_version("app", 1)


async def test_we_refuse_to_delete_latest_so_upstream_never_sees_a_damaged_artifact(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    publish_with_upstream(theirs_s3, "app", [b"one"])

    with pytest.raises(InvalidArgumentError):
        await ours_s3.delete_artifact_version("app")

    # without LATEST first, upstream would raise "contaminated"
    assert [a.version for a in theirs_s3.list_artifact_versions("app")] == ["LATEST", "1"]
    assert theirs_s3.publish_artifact_version("app").version == "1"


async def test_an_alias_upstream_deleted_is_gone_for_us(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    await publish_with_ours(ours_s3, "app", [b"one"])
    await ours_s3.put_alias("app", "prod", version=1)
    await ours_s3.put_alias("app", "dev")

    theirs_s3.delete_alias("app", "prod")

    with pytest.raises(AliasNotFoundError):
        await ours_s3.get_alias("app", "prod")
    assert [a.alias for a in await ours_s3.list_aliases("app")] == ["dev"]


async def test_an_alias_we_deleted_is_gone_for_upstream(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    publish_with_upstream(theirs_s3, "app", [b"one"])
    theirs_s3.put_alias("app", "prod", version=1)
    theirs_s3.put_alias("app", "dev")

    await ours_s3.delete_alias("app", "prod")

    with pytest.raises(upstream_exc.AliasNotFoundError):
        theirs_s3.get_alias("app", "prod")
    assert [a.alias for a in theirs_s3.list_aliases("app")] == ["dev"]


async def test_upstreams_purge_artifact_leaves_nothing_of_what_we_wrote(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only, raw_s3: Any
) -> None:
    for name in ("app", "other"):
        await publish_with_ours(ours_s3, name, [b"one", b"two"])
        await ours_s3.put_alias(
            name, "prod", version=2, secondary_version=1, secondary_version_weight=10
        )

    theirs_s3.purge_artifact("app")

    assert await keys_under(raw_s3, ours_s3.s3_bucket, f"{PREFIX}/app/") == []
    assert await ours_s3.list_artifact_versions("app") == []
    assert await ours_s3.list_aliases("app") == []
    assert await ours_s3.list_artifact_names() == ["other"]
    assert [a.version for a in await ours_s3.list_artifact_versions("other")] == [
        "LATEST",
        "2",
        "1",
    ]


async def test_our_purge_artifact_leaves_nothing_of_what_upstream_wrote(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only, raw_s3: Any
) -> None:
    for name in ("app", "other"):
        publish_with_upstream(theirs_s3, name, [b"one", b"two"])
        theirs_s3.put_alias(
            name, "prod", version=2, secondary_version=1, secondary_version_weight=10
        )

    await ours_s3.purge_artifact("app")

    assert await keys_under(raw_s3, ours_s3.s3_bucket, f"{PREFIX}/app/") == []
    assert theirs_s3.list_artifact_versions("app") == []
    assert theirs_s3.list_aliases("app") == []
    assert theirs_s3.list_artifact_names() == ["other"]
    assert [a.version for a in theirs_s3.list_artifact_versions("other")] == ["LATEST", "2", "1"]


# -- (5) numbers are reused after the top version is deleted (the layout's behaviour) ---


async def test_our_publish_reuses_the_number_of_the_top_version_upstream_deleted(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    publish_with_upstream(theirs_s3, "app", [b"one", b"two"])
    theirs_s3.delete_artifact_version("app", 2)
    await ours_s3.put_artifact("app", b"three")

    published = await ours_s3.publish_artifact_version("app")

    # the next number is the highest remaining one + 1: no counter, so 2 again
    assert (published.version, published.sha256) == ("2", sha256(b"three"))
    assert theirs_s3.get_artifact_version("app", 2).sha256 == sha256(b"three")


async def test_upstream_reuses_the_number_of_the_top_version_we_deleted_under_our_alias(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    await publish_with_ours(ours_s3, "app", [b"one", b"two"])
    await ours_s3.put_alias("app", "canary", version=2)
    await ours_s3.delete_artifact_version("app", 2)
    theirs_s3.put_artifact("app", b"three")

    published = theirs_s3.publish_artifact_version("app")

    assert (published.version, published.sha256) == ("2", sha256(b"three"))
    # the alias was not touched, yet it now serves the new version 2's bytes
    assert (await ours_s3.get_alias("app", "canary")).version == "2"
    assert await ours_s3.get_alias_content("app", "canary") == b"three"


# -- (6) the bytes we store are upstream's layout ------------------------------------


async def test_our_keys_are_exactly_the_layouts(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only, raw_s3: Any
) -> None:
    await publish_with_ours(ours_s3, "app", [b"one", b"two"])
    await ours_s3.put_alias("app", "prod", version=1)

    keys = await keys_under(raw_s3, ours_s3.s3_bucket, "")

    assert keys == [
        "versioned-artifacts/app/aliases/prod.json",
        "versioned-artifacts/app/versions/000000_LATEST",
        "versioned-artifacts/app/versions/999998_000002",
        "versioned-artifacts/app/versions/999999_000001",
    ]
    assert keys[1:] == [theirs_s3._get_artifact_s3path("app", v).key for v in ("LATEST", 2, 1)]
    assert keys[0] == theirs_s3._get_alias_s3path("app", "prod").key


async def test_our_version_objects_carry_upstreams_metadata(
    ours_s3: S3OnlyRepository, raw_s3: Any
) -> None:
    await ours_s3.put_artifact("app", b"one", content_type="text/csv", metadata={"build": "7"})
    await ours_s3.publish_artifact_version("app")

    for version in ("LATEST", 1):
        stored = await head(raw_s3, ours_s3.s3_bucket, version_key("app", version))
        assert stored["Metadata"] == {
            "artifact_name": "app",
            "artifact_sha256": sha256(b"one"),
            "build": "7",
        }
        assert stored["ContentType"] == "text/csv"


@pytest.mark.parametrize("split", [True, False], ids=["split", "no-split"])
async def test_our_alias_body_is_upstreams_8_keys_in_order(
    ours_s3: S3OnlyRepository, raw_s3: Any, split: bool
) -> None:
    await publish_with_ours(ours_s3, "app", [b"one", b"two"])
    if split:
        await ours_s3.put_alias(
            "app", "prod", version=2, secondary_version=1, secondary_version_weight=20
        )
    else:
        await ours_s3.put_alias("app", "prod", version=2)

    body = await body_of(raw_s3, ours_s3.s3_bucket, alias_key("app", "prod"))
    document = json.loads(body)

    assert list(document) == UPSTREAM_ALIAS_KEYS
    assert [f.name for f in dataclasses.fields(upstream_s3_only.Alias)] == UPSTREAM_ALIAS_KEYS
    parsed = upstream_s3_only.Alias(**document)
    bucket = ours_s3.s3_bucket
    assert alias_target(parsed) == (
        "app",
        "prod",
        "2",
        "1" if split else None,
        20 if split else None,
        uri(version_key("app", 2), bucket),
        uri(version_key("app", 1), bucket) if split else None,
    )


# -- (7) a custom prefix and suffix ----------------------------------------------------


async def test_custom_layout_upstream_reads_what_we_wrote(
    ours_s3_custom: S3OnlyRepository, theirs_s3_custom: UpstreamS3Only, raw_s3: Any
) -> None:
    await publish_with_ours(ours_s3_custom, "m", [b"one", b"two"])
    await ours_s3_custom.put_alias("m", "prod", version=1)

    keys = await keys_under(raw_s3, ours_s3_custom.s3_bucket, "")
    assert keys == [
        "team/models/m/aliases/prod.json",
        "team/models/m/versions/000000_LATEST.sqlite",
        "team/models/m/versions/999998_000002.sqlite",
        "team/models/m/versions/999999_000001.sqlite",
    ]
    assert theirs_s3_custom.list_artifact_names() == ["m"]
    listed = theirs_s3_custom.list_artifact_versions("m")
    assert [(a.version, a.get_content(theirs_s3_custom.bsm)) for a in listed] == [
        ("LATEST", b"two"),
        ("2", b"two"),
        ("1", b"one"),
    ]
    alias = theirs_s3_custom.get_alias("m", "prod")
    assert alias.version_s3uri == uri(
        version_key("m", 1, CUSTOM_PREFIX, CUSTOM_SUFFIX), ours_s3_custom.s3_bucket
    )
    assert alias.get_version_content(theirs_s3_custom.bsm) == b"one"


async def test_custom_layout_we_read_what_upstream_wrote(
    ours_s3_custom: S3OnlyRepository, theirs_s3_custom: UpstreamS3Only
) -> None:
    publish_with_upstream(theirs_s3_custom, "m", [b"one", b"two"])
    theirs_s3_custom.put_alias(
        "m", "prod", version=2, secondary_version=1, secondary_version_weight=10
    )

    assert await ours_s3_custom.list_artifact_names() == ["m"]
    listed = await ours_s3_custom.list_artifact_versions("m")
    assert [a.version for a in listed] == ["LATEST", "2", "1"]
    assert listed[2].s3uri == uri(
        version_key("m", 1, CUSTOM_PREFIX, CUSTOM_SUFFIX), ours_s3_custom.s3_bucket
    )
    assert await ours_s3_custom.get_content("m", 1) == b"one"
    alias = await ours_s3_custom.get_alias("m", "prod")
    assert (alias.version, alias.secondary_version, alias.secondary_version_weight) == (
        "2",
        "1",
        10,
    )
    assert await alias.get_secondary_version_content() == b"one"
    # and the number sequence continues across the libraries under the custom layout too
    await ours_s3_custom.put_artifact("m", b"three")
    assert (await ours_s3_custom.publish_artifact_version("m")).version == "3"
    assert theirs_s3_custom.get_latest_published_artifact_version_number("m") == 3
