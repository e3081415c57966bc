"""`versioned` 1.0.1 on a table that records which repository it serves (issue 17).

The record (``pk`` ``__table``, ``sk`` ``serves``) is ours: `versioned` never
reaches it with a query, never lists it, keeps working beside it, and our
guard lets it be (the guard is ours: `versioned` 1.0 checks nothing). Its
``purge_all`` (a Scan that deletes every item) removes the record with
everything else; the table is then unrecorded, and ``adopt_table`` records it
again.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import BUCKET, TableRepoFactory
from versioned_async import Repository, exc

from .conftest import MakeUpstream, Upstream
from .test_interop import publish_with_upstream, scan

RECORD = ("__table", "serves")


def has_record(items: list[dict[str, Any]]) -> bool:
    return any((i["pk"]["S"], i["sk"]["S"]) == RECORD for i in items)


async def test_upstream_works_beside_the_record_and_never_lists_it(
    ours: Repository, theirs: Upstream, raw_dynamodb: Any
) -> None:
    assert await ours.check_table() is True  # bootstrapped by us: recorded
    theirs.bootstrap()  # finds the bucket and the table: nothing to do
    publish_with_upstream(theirs, "app", [b"one", b"two"])
    theirs.put_alias("app", "prod", version=1, secondary_version=2, secondary_version_weight=10)
    theirs.delete_artifact_version("app", 1)

    assert theirs.list_artifact_names() == ["app"]
    assert [a.version for a in theirs.list_artifact_versions("app")] == ["LATEST", "2"]
    assert [a.alias for a in theirs.list_aliases("app")] == ["prod"]
    assert theirs.get_artifact_version("app", 2).get_content(theirs.bsm) == b"two"
    theirs.purge_artifact_versions("app", keep_last_n=1, purge_older_than_secs=0)
    theirs.purge_artifact("app")
    assert theirs.list_artifact_names() == []

    items = await scan(raw_dynamodb, ours.dynamodb_table_name)
    assert has_record(items)  # none of that touched it
    assert await ours.check_table() is True


async def test_we_read_what_upstream_writes_on_a_recorded_table(
    ours: Repository, theirs: Upstream, raw_dynamodb: Any
) -> None:
    assert has_record(await scan(raw_dynamodb, ours.dynamodb_table_name))
    publish_with_upstream(theirs, "app", [b"one"])
    theirs.put_alias("app", "prod", version=1)

    assert [a.version for a in await ours.list_artifact_versions("app")] == ["LATEST", "1"]
    assert (await ours.get_alias("app", "prod")).version == "1"
    assert await ours.get_alias_content("app", "prod") == b"one"
    assert await ours.list_artifact_names() == ["app"]
    assert [(a.name, a.version) for a in await ours.find_artifact_versions()] == [
        ("app", "LATEST"),
        ("app", "1"),
    ]


async def test_upstreams_purge_all_removes_the_record_and_adopt_table_brings_it_back(
    ours: Repository,
    theirs: Upstream,
    make_table_repo: TableRepoFactory,
    raw_dynamodb: Any,
) -> None:
    publish_with_upstream(theirs, "app", [b"one"])
    theirs.purge_all()

    assert await scan(raw_dynamodb, ours.dynamodb_table_name) == []
    async with make_table_repo() as fresh:
        assert await fresh.check_table() is False  # unrecorded: works as before
        assert await fresh.adopt_table() is True
    assert has_record(await scan(raw_dynamodb, ours.dynamodb_table_name))
    theirs.put_artifact("app", b"again")  # and upstream goes on
    assert await ours.get_content("app") == b"again"


async def test_upstream_on_another_prefix_is_not_refused_but_we_are(
    ours: Repository,
    make_theirs: MakeUpstream,
    make_table_repo: TableRepoFactory,
    raw_dynamodb: Any,
) -> None:
    """`versioned` 1.0 knows no record (it is what the record cannot stop); ours refuses."""
    elsewhere = make_theirs(ours, s3_prefix="team-b/")
    elsewhere.put_artifact("app", b"team b's")
    items = await scan(raw_dynamodb, ours.dynamodb_table_name)
    async with make_table_repo(s3_prefix="team-b") as repo:
        with pytest.raises(exc.TableMismatchError) as refused:
            await repo.get_artifact_version("app")
    assert (refused.value.served_bucket, refused.value.served_prefix) == (
        BUCKET,
        "versioned-artifacts",
    )
    assert await scan(raw_dynamodb, ours.dynamodb_table_name) == items
