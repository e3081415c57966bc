"""Metadata search (find_artifact_versions) and the metadata, size and content type
that listings carry, for versions written by us and by `versioned` 1.0.1."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from types import MappingProxyType
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE
from tests.interop import conftest as interop
from tests.proxy import CountingProxy
from versioned_async import Artifact, Repository, exc

pytestmark = pytest.mark.both_backends

# `versioned` 1.0.1 on this test's moto server: the interop suite's fixtures, reused
aws_endpoint_env = interop.aws_endpoint_env
botocore_loader = interop.botocore_loader
bsm = interop.bsm
make_theirs = interop.make_theirs


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def found(artifacts: list[Artifact]) -> list[tuple[str, str]]:
    return [(a.name, a.version) for a in artifacts]


def facts(artifact: Artifact) -> tuple[str, dict[str, str], int | None, str | None]:
    return (artifact.version, dict(artifact.metadata), artifact.size, artifact.content_type)


async def put_and_publish(repo: Repository, name: str, content: bytes, /, **meta: str) -> None:
    await repo.put_artifact(name, content, metadata=meta)
    await repo.publish_artifact_version(name)


@pytest.fixture
def theirs(repo: Repository, make_theirs: Callable[..., Any]) -> Any:
    """`versioned` 1.0.1 on ``repo``'s bucket and table."""
    return make_theirs(repo)


@pytest.fixture
async def reader(repo: Repository, make_proxied_repo: Any) -> AsyncIterator[Repository]:
    """Our repository on ``repo``'s data, through the counting proxy."""
    async with make_proxied_repo() as proxied:
        # the table's record is checked once per repository (issue 17): paid here, so
        # that the requests counted are the reads' own
        await proxied.check_table()
        yield proxied


# -- within one name (a Query) -------------------------------------------------------


async def test_find_within_a_name_returns_the_matching_versions_latest_first(
    repo: Repository,
) -> None:
    await put_and_publish(repo, "app", b"one", stage="prod")
    await put_and_publish(repo, "app", b"two", stage="dev")
    await put_and_publish(repo, "app", b"three", stage="prod")
    await put_and_publish(repo, "other", b"x", stage="prod")

    hits = await repo.find_artifact_versions("app", {"stage": "prod"})

    assert found(hits) == [("app", "LATEST"), ("app", "3"), ("app", "1")]
    assert all(dict(a.metadata) == {"stage": "prod"} for a in hits)
    assert await hits[-1].get_content() == b"one"


async def test_find_requires_every_given_entry_to_match(repo: Repository) -> None:
    await put_and_publish(repo, "app", b"one", stage="prod", team="a")
    await put_and_publish(repo, "app", b"two", stage="prod", team="b")
    await put_and_publish(repo, "app", b"three", stage="dev", team="a")

    hits = await repo.find_artifact_versions("app", {"stage": "prod", "team": "a"})

    assert found(hits) == [("app", "1")]


async def test_find_matches_values_exactly(repo: Repository) -> None:
    await put_and_publish(repo, "app", b"one", build="12")
    await put_and_publish(repo, "app", b"two", build="123")
    await put_and_publish(repo, "app", b"three", build="Prod")

    assert found(await repo.find_artifact_versions("app", {"build": "12"})) == [("app", "1")]
    assert await repo.find_artifact_versions("app", {"build": "prod"}) == []
    assert await repo.find_artifact_versions("app", {"missing": "12"}) == []


async def test_find_handles_keys_with_dots_dashes_and_reserved_words(repo: Repository) -> None:
    meta = {"git.sha": "abc", "ci-run": "7", "size": "big", "name": "n", "status": "ok"}
    await put_and_publish(repo, "app", b"one", **meta)
    await put_and_publish(repo, "app", b"two", **{**meta, "git.sha": "def"})

    hits = await repo.find_artifact_versions("app", meta, include_latest=False)

    assert found(hits) == [("app", "1")]


async def test_find_leaves_out_deleted_versions(repo: Repository, backend: str) -> None:
    await put_and_publish(repo, "app", b"one", stage="prod")
    await put_and_publish(repo, "app", b"two", stage="prod")
    await repo.delete_artifact_version("app", 1)
    if backend == "dynamodb":  # the S3-only layout cannot delete LATEST on its own
        await repo.delete_artifact_version("app")
        expected = [("app", "2")]
    else:
        expected = [("app", "LATEST"), ("app", "2")]

    assert found(await repo.find_artifact_versions("app", {"stage": "prod"})) == expected
    assert found(await repo.find_artifact_versions(None, {"stage": "prod"})) == expected


async def test_find_without_latest_returns_numbered_versions_only(repo: Repository) -> None:
    await put_and_publish(repo, "app", b"one", stage="prod")
    await put_and_publish(repo, "web", b"two", stage="prod")

    within = await repo.find_artifact_versions("app", {"stage": "prod"}, include_latest=False)
    across = await repo.find_artifact_versions(metadata={"stage": "prod"}, include_latest=False)

    assert found(within) == [("app", "1")]
    assert found(across) == [("app", "1"), ("web", "1")]


async def test_find_with_no_metadata_returns_every_visible_version(repo: Repository) -> None:
    await put_and_publish(repo, "app", b"one", stage="prod")
    await repo.put_artifact("app", b"two")
    await repo.publish_artifact_version("app")
    await repo.delete_artifact_version("app", 1)

    for metadata in (None, {}):
        hits = await repo.find_artifact_versions("app", metadata)
        assert found(hits) == [("app", "LATEST"), ("app", "2")]


async def test_find_within_a_name_stops_at_limit_newest_first(repo: Repository) -> None:
    for content in (b"one", b"two", b"three"):
        await put_and_publish(repo, "app", content, stage="prod")

    hits = await repo.find_artifact_versions("app", {"stage": "prod"}, limit=2)
    numbered = await repo.find_artifact_versions(
        "app", {"stage": "prod"}, include_latest=False, limit=1
    )

    assert found(hits) == [("app", "LATEST"), ("app", "3")]
    assert found(numbered) == [("app", "3")]


async def test_find_accepts_any_mapping(repo: Repository) -> None:
    await put_and_publish(repo, "app", b"one", stage="prod")

    hits = await repo.find_artifact_versions("app", MappingProxyType({"stage": "prod"}))

    assert found(hits) == [("app", "LATEST"), ("app", "1")]


async def test_find_of_an_unknown_name_is_empty(repo: Repository) -> None:
    assert await repo.find_artifact_versions("nothing", {"stage": "prod"}) == []


# -- across the repository (a Scan) --------------------------------------------------


async def test_find_across_names_sorts_by_name_then_latest_first(repo: Repository) -> None:
    await put_and_publish(repo, "web", b"w1", stage="prod")
    await put_and_publish(repo, "app", b"a1", stage="prod")
    await put_and_publish(repo, "app", b"a2", stage="dev")
    await put_and_publish(repo, "app", b"a3", stage="prod")
    await put_and_publish(repo, "db", b"d1", stage="dev")

    hits = await repo.find_artifact_versions(metadata={"stage": "prod"})

    assert found(hits) == [
        ("app", "LATEST"),
        ("app", "3"),
        ("app", "1"),
        ("web", "LATEST"),
        ("web", "1"),
    ]


async def test_find_across_names_ignores_alias_and_other_items(
    repo: Repository, dynamodb: Any
) -> None:
    await put_and_publish(repo, "app", b"one", stage="prod")
    await repo.put_alias("app", "prod", version=1)
    # an item of some other kind under a "__" partition, shaped like a version item
    await dynamodb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": "__app-holds"},
            "sk": {"S": "000001"},
            "sha256": {"S": sha(b"one")},
            "is_deleted": {"BOOL": False},
            "update_at": {"S": "2026-01-01T00:00:00.000000+0000"},
            "metadata": {"M": {"stage": {"S": "prod"}}},
        },
    )

    everything = await repo.find_artifact_versions()

    assert found(everything) == [("app", "LATEST"), ("app", "1")]


async def test_find_across_names_limit_keeps_the_first_in_order(repo: Repository) -> None:
    await put_and_publish(repo, "web", b"w1", stage="prod")
    await put_and_publish(repo, "app", b"a1", stage="prod")
    await put_and_publish(repo, "app", b"a2", stage="prod")

    hits = await repo.find_artifact_versions(metadata={"stage": "prod"}, limit=3)

    assert found(hits) == [("app", "LATEST"), ("app", "2"), ("app", "1")]


async def test_find_across_names_pages_through_more_than_one_megabyte(
    repo: Repository, dynamodb: Any
) -> None:
    """A Scan returns at most 1 MB a page; matches on every page must be found."""
    digest = sha(b"x")
    items = [
        {
            "PutRequest": {
                "Item": {
                    "pk": {"S": f"svc-{n % 3}"},
                    "sk": {"S": f"{n:06d}"},
                    "sha256": {"S": digest},
                    "is_deleted": {"BOOL": False},
                    "update_at": {"S": "2026-01-01T00:00:00.000000+0000"},
                    "metadata": {"M": {"even": {"S": "yes" if n % 2 == 0 else "no"}}},
                    "pad": {"S": "p" * 40_000},
                }
            }
        }
        for n in range(1, 61)
    ]
    for start in range(0, len(items), 25):
        await dynamodb.batch_write_item(RequestItems={TABLE: items[start : start + 25]})

    hits = await repo.find_artifact_versions(metadata={"even": "yes"})

    assert len(hits) == 30
    assert {int(a.version) % 2 for a in hits} == {0}
    assert [a.name for a in hits] == sorted(a.name for a in hits)


@pytest.mark.dynamodb_layout("the S3-only layout has no table: every version is a HeadObject")
async def test_our_search_sends_no_head_object(
    repo: Repository, reader: Repository, proxy: CountingProxy
) -> None:
    await put_and_publish(repo, "app", b"one", stage="prod")
    await put_and_publish(repo, "web", b"two")
    proxy.reset_counts()

    within = await reader.find_artifact_versions("app", {"stage": "prod"})
    across = await reader.find_artifact_versions(metadata={"stage": "prod"})

    assert found(within) == found(across) == [("app", "LATEST"), ("app", "1")]
    assert proxy.counts() == {"Query": 1, "Scan": 1}


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": "__app-alias"}, ValueError, "must not start with '__'"),
        ({"name": 3}, TypeError, "artifact name must be a str"),
        ({"metadata": {"Stage": "prod"}}, ValueError, "lower case"),
        ({"metadata": {"artifact_sha256": "x"}}, ValueError, "reserved"),
        ({"metadata": {"artifact_name": "app"}}, ValueError, "reserved"),
        ({"metadata": {"": "x"}}, ValueError, "non-empty"),
        ({"metadata": {"k": 1}}, TypeError, "map str to str"),
        ({"metadata": {"k": "caf\u00e9"}}, ValueError, "printable ASCII"),
        ({"metadata": {"k": " v"}}, ValueError, "white space"),
        ({"metadata": [("k", "v")]}, TypeError, "dict of str to str"),
        ({"metadata": "stage=prod"}, TypeError, "dict of str to str"),
        ({"include_latest": "no"}, TypeError, "include_latest must be a bool"),
        ({"limit": 0}, ValueError, "limit must be None or an int of at least 1"),
        ({"limit": True}, ValueError, "limit must be None or an int of at least 1"),
        ({"limit": 2.5}, ValueError, "limit must be None or an int of at least 1"),
    ],
)
async def test_bad_search_arguments_are_refused_before_any_request(
    reader: Repository,
    proxy: CountingProxy,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    proxy.reset_counts()
    with pytest.raises(error, match=message) as info:
        await reader.find_artifact_versions(**kwargs)
    assert isinstance(info.value, exc.VersionedError)
    assert proxy.counts() == {}


# -- what we write, and what listings carry -----------------------------------------------


async def test_our_version_items_record_metadata_even_when_empty(
    repo: Repository, dynamodb: Any
) -> None:
    """An item without a metadata attribute means "written by `versioned`": ours never lack it."""
    await repo.put_artifact("app", b"one")
    await repo.publish_artifact_version("app")

    items = (await dynamodb.scan(TableName=TABLE))["Items"]
    items = [i for i in items if i["pk"]["S"] != "__table"]  # bootstrap's record (issue 17)

    assert {i["sk"]["S"]: i["metadata"] for i in items} == {
        "LATEST": {"M": {}},
        "000001": {"M": {}},
    }


@pytest.mark.dynamodb_layout("the S3-only layout has no table: every version is a HeadObject")
async def test_our_listing_and_get_carry_metadata_size_and_type_without_head_object(
    repo: Repository, reader: Repository, proxy: CountingProxy
) -> None:
    await repo.put_artifact("app", b"one", content_type="text/csv", metadata={"build": "1"})
    await repo.publish_artifact_version("app")
    await repo.put_artifact("app", b"three", content_type="text/plain")
    proxy.reset_counts()

    listed = await reader.list_artifact_versions("app")
    got = await reader.get_artifact_version("app", 1)

    assert [facts(a) for a in listed] == [
        ("LATEST", {}, 5, "text/plain"),
        ("1", {"build": "1"}, 3, "text/csv"),
    ]
    assert facts(got) == ("1", {"build": "1"}, 3, "text/csv")
    assert proxy.counts() == {"Query": 1, "GetItem": 1}


# -- versions written by `versioned` 1.0.1 ------------------------------------------------


def publish_with_theirs(theirs: Any, name: str, content: bytes, /, **meta: str) -> None:
    theirs.put_artifact(name, content, content_type="text/csv", metadata=meta)
    theirs.publish_artifact_version(name)


async def test_their_listing_gets_metadata_size_and_type_from_one_head_each(
    theirs: Any, reader: Repository, proxy: CountingProxy, dynamodb: Any
) -> None:
    publish_with_theirs(theirs, "app", b"one", build="1")
    publish_with_theirs(theirs, "app", b"two!", build="2")
    items = (await dynamodb.scan(TableName=TABLE))["Items"]
    assert items
    assert not any("metadata" in i or "size" in i for i in items)  # nothing but S3 knows
    proxy.reset_counts()

    listed = await reader.list_artifact_versions("app")

    assert [facts(a) for a in listed] == [
        ("LATEST", {"build": "2"}, 4, "text/csv"),
        ("2", {"build": "2"}, 4, "text/csv"),
        ("1", {"build": "1"}, 3, "text/csv"),
    ]
    assert proxy.counts() == {"Query": 1, "HeadObject": 3}


async def test_their_get_artifact_version_costs_one_head_object(
    theirs: Any, reader: Repository, proxy: CountingProxy
) -> None:
    publish_with_theirs(theirs, "app", b"one", build="1")
    proxy.reset_counts()

    got = await reader.get_artifact_version("app", 1)

    assert facts(got) == ("1", {"build": "1"}, 3, "text/csv")
    assert proxy.counts() == {"GetItem": 1, "HeadObject": 1}


async def test_a_listing_mixing_both_writers_heads_only_their_versions(
    repo: Repository, theirs: Any, reader: Repository, proxy: CountingProxy
) -> None:
    publish_with_theirs(theirs, "app", b"one", build="1")
    await repo.put_artifact("app", b"two", content_type="text/csv", metadata={"build": "2"})
    await repo.publish_artifact_version("app")
    proxy.reset_counts()

    listed = await reader.list_artifact_versions("app")

    assert [facts(a) for a in listed] == [
        ("LATEST", {"build": "2"}, 3, "text/csv"),
        ("2", {"build": "2"}, 3, "text/csv"),
        ("1", {"build": "1"}, 3, "text/csv"),
    ]
    assert proxy.counts() == {"Query": 1, "HeadObject": 1}


async def test_find_finds_their_versions_by_the_metadata_of_their_objects(
    repo: Repository, theirs: Any, reader: Repository, proxy: CountingProxy
) -> None:
    publish_with_theirs(theirs, "app", b"one", stage="prod")
    publish_with_theirs(theirs, "app", b"two", stage="dev")
    await put_and_publish(repo, "app", b"three", stage="prod")
    publish_with_theirs(theirs, "web", b"four", stage="prod", team="a")
    proxy.reset_counts()

    within = await reader.find_artifact_versions("app", {"stage": "prod"})
    heads_within = proxy.counts()["HeadObject"]
    across = await reader.find_artifact_versions(metadata={"stage": "prod"})

    assert found(within) == [("app", "LATEST"), ("app", "3"), ("app", "1")]
    assert found(across) == [*found(within), ("web", "LATEST"), ("web", "1")]
    assert dict(across[-1].metadata) == {"stage": "prod", "team": "a"}
    assert across[-1].size == 4
    # only their items were checked against S3: 1 and 2 of app, then also web's two
    assert heads_within == 2
    assert proxy.counts() == {"Query": 1, "Scan": 1, "HeadObject": 6}


async def test_find_sees_a_latest_they_rewrote_over_ours(repo: Repository, theirs: Any) -> None:
    await repo.put_artifact("app", b"ours", metadata={"stage": "dev"})
    theirs.put_artifact("app", b"theirs", metadata={"stage": "prod"})

    hits = await repo.find_artifact_versions("app", {"stage": "prod"})

    assert found(hits) == [("app", "LATEST")]
    assert hits[0].sha256 == sha(b"theirs")
    assert await repo.find_artifact_versions("app", {"stage": "dev"}) == []


async def test_find_leaves_out_versions_they_deleted(repo: Repository, theirs: Any) -> None:
    publish_with_theirs(theirs, "app", b"one", stage="prod")
    publish_with_theirs(theirs, "app", b"two", stage="prod")
    theirs.delete_artifact_version("app", 1)
    theirs.delete_artifact_version("app", 5)  # a stub item: never a match

    assert found(await repo.find_artifact_versions("app", {"stage": "prod"})) == [
        ("app", "LATEST"),
        ("app", "2"),
    ]
    assert found(await repo.find_artifact_versions(include_latest=False)) == [("app", "2")]


async def test_an_object_replaced_behind_their_item_lends_it_nothing(
    repo: Repository, theirs: Any, s3: Any
) -> None:
    """The object holds other content than the item records: its metadata is not the item's."""
    theirs.put_artifact("app", b"one", content_type="text/csv", metadata={"stage": "prod"})
    await s3.put_object(
        Bucket=BUCKET,
        Key="versioned-artifacts/app/LATEST",
        Body=b"other",
        Metadata={"artifact_name": "app", "artifact_sha256": sha(b"other"), "stage": "prod"},
    )

    [listed] = await repo.list_artifact_versions("app")

    assert (listed.sha256, dict(listed.metadata), listed.size) == (sha(b"one"), {}, None)
    assert await repo.find_artifact_versions("app", {"stage": "prod"}) == []


async def test_our_put_of_their_unchanged_latest_returns_its_metadata(
    repo: Repository, theirs: Any
) -> None:
    theirs.put_artifact("app", b"same", content_type="text/csv", metadata={"stage": "prod"})

    art = await repo.put_artifact("app", b"same")

    assert (dict(art.metadata), art.size, art.content_type) == ({"stage": "prod"}, 4, "text/csv")
