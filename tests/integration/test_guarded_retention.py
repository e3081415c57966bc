"""Guarded retention: purges keep aliased and held versions, even when aliases and
holds change while the purge runs; dry runs; protect/unprotect; deletes of held versions.

The races are made deterministic by running a second repository's write (a real
request to the server) just before the purge sends its first delete: the purge's own
``Table.transact_write`` is wrapped, the AWS clients are not touched.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import TABLE, PurgeSettings
from tests.integration.conftest import versions
from versioned_async import Hold, Repository, exc

#: PynamoDB's UTCDateTimeAttribute text: 31 characters, microseconds, "+0000"
UPDATE_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+0000")
PURGE_ALL: PurgeSettings = {"keep_last_n": 0, "purge_older_than_secs": 0}


async def scan(dynamodb: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    async for page in dynamodb.get_paginator("scan").paginate(TableName=TABLE):
        items += page["Items"]
    return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


async def items_of(dynamodb: Any, pk: str) -> list[dict[str, Any]]:
    resp = await dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
    )
    return list(resp["Items"])


def before_the_first_delete(
    monkeypatch: pytest.MonkeyPatch, repo: Repository, meanwhile: Callable[[], Awaitable[object]]
) -> list[str]:
    """Run ``meanwhile`` after the purge read its plan, before any of its deletes is
    sent (the deletes wait for it). Returns the deletes seen, to prove it ran."""
    table = repo._catalog.table
    original = table.transact_write
    seen: list[str] = []
    done = asyncio.Event()

    async def transact_write(what: str, items: Any) -> list[str]:
        if what.startswith("purge version"):
            seen.append(what)
            if len(seen) == 1:
                await meanwhile()
                done.set()
            await done.wait()
        return await original(what, items)

    monkeypatch.setattr(table, "transact_write", transact_write)
    return seen


# -- dry run ---------------------------------------------------------------------------


async def test_a_dry_run_returns_the_plan_the_purge_then_carries_out(
    five_versions: Repository,
) -> None:
    await five_versions.put_alias("app", "prod", 2)
    await five_versions.protect("app", 4)
    _, plan = await five_versions.purge_artifact_versions("app", **PURGE_ALL, dry_run=True)
    assert [a.version for a in plan] == ["5", "3", "1"]
    _, deleted = await five_versions.purge_artifact_versions("app", **PURGE_ALL)
    assert deleted == plan


async def test_a_dry_run_changes_nothing_in_the_table(
    five_versions: Repository, dynamodb: Any
) -> None:
    await five_versions.put_alias("app", "prod", 2)
    before = await scan(dynamodb)
    purge_time, plan = await five_versions.purge_artifact_versions("app", **PURGE_ALL, dry_run=True)
    assert [a.version for a in plan] == ["5", "4", "3", "1"]
    assert purge_time.tzinfo is not None
    assert await scan(dynamodb) == before
    assert await versions(five_versions) == ["LATEST", "5", "4", "3", "2", "1"]


async def test_dry_run_must_be_a_bool(five_versions: Repository) -> None:
    with pytest.raises(exc.InvalidArgumentTypeError, match="dry_run must be a bool"):
        await five_versions.purge_artifact_versions("app", dry_run="yes")  # type: ignore[arg-type]


# -- holds -----------------------------------------------------------------------------


async def test_protect_returns_the_hold_and_lists_it(five_versions: Repository) -> None:
    hold = await five_versions.protect("app", 3, reason="audit 2026-11")
    assert isinstance(hold, Hold)
    assert (hold.name, hold.version, hold.reason) == ("app", "3", "audit 2026-11")
    assert hold.created_at.tzinfo is not None
    assert await five_versions.list_protected("app") == [hold]


async def test_a_hold_is_an_item_of_its_own_partition_in_the_shared_time_format(
    five_versions: Repository, dynamodb: Any
) -> None:
    await five_versions.protect("app", 3, reason="audit")
    await five_versions.protect("app", 4)
    items = await items_of(dynamodb, "__app-holds")
    assert [sorted(i) for i in items] == [
        ["created_at", "pk", "reason", "sk"],
        ["created_at", "pk", "sk"],
    ]
    assert [i["sk"]["S"] for i in items] == ["000003", "000004"]
    assert items[0]["reason"] == {"S": "audit"}
    assert all(UPDATE_AT.fullmatch(i["created_at"]["S"]) for i in items)


async def test_list_protected_is_in_version_order(repo: Repository) -> None:
    for _ in range(10):
        await repo.put_artifact("app", f"c{_}".encode())
        await repo.publish_artifact_version("app")
    await repo.protect("app", 10)
    await repo.protect("app", 2)
    assert [h.version for h in await repo.list_protected("app")] == ["2", "10"]


async def test_list_protected_is_empty_without_holds(five_versions: Repository) -> None:
    assert await five_versions.list_protected("app") == []


async def test_protecting_again_replaces_the_hold(five_versions: Repository) -> None:
    first = await five_versions.protect("app", 3, reason="one")
    second = await five_versions.protect("app", 3, reason="two")
    assert second.created_at >= first.created_at
    assert await five_versions.list_protected("app") == [second]


@pytest.mark.parametrize("version", [9, 2], ids=["missing", "deleted"])
async def test_only_a_visible_version_can_be_protected(
    five_versions: Repository, dynamodb: Any, version: int
) -> None:
    await five_versions.delete_artifact_version("app", 2)
    with pytest.raises(exc.ArtifactNotFoundError) as info:
        await five_versions.protect("app", version)
    assert (info.value.name, info.value.version) == ("app", str(version))
    assert await items_of(dynamodb, "__app-holds") == []


async def test_latest_cannot_be_protected(five_versions: Repository, dynamodb: Any) -> None:
    with pytest.raises(exc.InvalidArgumentError, match="it is mutable; protect a published"):
        await five_versions.protect("app", "LATEST")
    assert await items_of(dynamodb, "__app-holds") == []


async def test_unprotect_releases_the_hold(five_versions: Repository) -> None:
    await five_versions.protect("app", 3)
    await five_versions.protect("app", 4)
    await five_versions.unprotect("app", 3)
    assert [h.version for h in await five_versions.list_protected("app")] == ["4"]


async def test_unprotecting_a_version_that_is_not_held_changes_nothing(
    five_versions: Repository, dynamodb: Any
) -> None:
    before = await scan(dynamodb)
    await five_versions.unprotect("app", 3)
    await five_versions.unprotect("ghost", 1)
    assert await scan(dynamodb) == before


# -- purge and delete respect holds ----------------------------------------------------


async def test_purge_keeps_a_held_version(five_versions: Repository) -> None:
    await five_versions.protect("app", 2)
    _, deleted = await five_versions.purge_artifact_versions("app", **PURGE_ALL)
    assert [a.version for a in deleted] == ["5", "4", "3", "1"]
    assert await versions(five_versions) == ["LATEST", "2"]


async def test_purge_removes_a_version_once_it_is_unprotected(five_versions: Repository) -> None:
    await five_versions.protect("app", 2)
    await five_versions.purge_artifact_versions("app", **PURGE_ALL)
    await five_versions.unprotect("app", 2)
    _, deleted = await five_versions.purge_artifact_versions("app", **PURGE_ALL)
    assert [a.version for a in deleted] == ["2"]
    assert await versions(five_versions) == ["LATEST"]


async def test_deleting_a_held_version_raises_and_keeps_it(five_versions: Repository) -> None:
    await five_versions.protect("app", 3)
    with pytest.raises(exc.VersionProtectedError) as info:
        await five_versions.delete_artifact_version("app", 3)
    assert (info.value.name, info.value.version) == ("app", "3")
    assert "unprotect('app', '3') first" in str(info.value)
    assert (await five_versions.get_artifact_version("app", 3)).version == "3"


async def test_a_held_version_can_be_deleted_once_unprotected(five_versions: Repository) -> None:
    await five_versions.protect("app", 3)
    await five_versions.unprotect("app", 3)
    await five_versions.delete_artifact_version("app", 3)
    assert await versions(five_versions) == ["LATEST", "5", "4", "2", "1"]


async def test_deleting_a_missing_version_is_still_a_no_op(
    five_versions: Repository, dynamodb: Any
) -> None:
    before = await scan(dynamodb)
    await five_versions.delete_artifact_version("app", 9)
    await five_versions.delete_artifact_version("ghost", 1)
    assert await scan(dynamodb) == before


async def test_deleting_an_unheld_version_still_works_beside_a_held_one(
    five_versions: Repository,
) -> None:
    await five_versions.protect("app", 3)
    await five_versions.delete_artifact_version("app", 4)
    await five_versions.delete_artifact_version("app")
    assert await versions(five_versions) == ["5", "3", "2", "1"]


async def test_purge_artifact_removes_the_holds_too(
    five_versions: Repository, dynamodb: Any
) -> None:
    await five_versions.protect("app", 3)
    await five_versions.put_artifact("keep", b"k")
    await five_versions.publish_artifact_version("keep")
    await five_versions.protect("keep", 1)
    await five_versions.purge_artifact("app")
    assert await items_of(dynamodb, "__app-holds") == []
    assert [h.version for h in await five_versions.list_protected("keep")] == ["1"]


# -- races: aliases and holds that change while a purge runs ---------------------------


async def test_a_hold_placed_after_the_plan_was_read_keeps_its_version(
    five_versions: Repository, other: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = before_the_first_delete(
        monkeypatch, five_versions, lambda: other.protect("app", 3, reason="late")
    )
    _, deleted = await five_versions.purge_artifact_versions("app", **PURGE_ALL)
    assert len(seen) == 5  # every planned version was tried, 3 too
    assert [a.version for a in deleted] == ["5", "4", "2", "1"]
    assert await versions(five_versions) == ["LATEST", "3"]


async def test_an_alias_moved_after_the_plan_was_read_stops_the_deletes(
    five_versions: Repository, other: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    await five_versions.put_alias("app", "prod", 5)
    seen = before_the_first_delete(
        monkeypatch, five_versions, lambda: other.put_alias("app", "prod", 1)
    )
    _, deleted = await five_versions.purge_artifact_versions("app", **PURGE_ALL)
    assert seen  # the plan (4, 3, 2, 1) was read before prod moved
    assert deleted == []
    assert await versions(five_versions) == ["LATEST", "5", "4", "3", "2", "1"]
    assert (await five_versions.get_alias("app", "prod")).version == "1"


async def test_an_alias_deleted_after_the_plan_was_read_stops_the_deletes(
    five_versions: Repository, other: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    await five_versions.put_alias("app", "prod", 5)
    before_the_first_delete(monkeypatch, five_versions, lambda: other.delete_alias("app", "prod"))
    _, deleted = await five_versions.purge_artifact_versions("app", **PURGE_ALL)
    assert deleted == []
    assert await versions(five_versions) == ["LATEST", "5", "4", "3", "2", "1"]


@pytest.mark.parametrize("aliased", [False, True], ids=["no-alias-before", "prod-before"])
async def test_an_alias_created_after_the_plan_was_read_gets_its_version_back(
    five_versions: Repository,
    other: Repository,
    monkeypatch: pytest.MonkeyPatch,
    aliased: bool,
) -> None:
    if aliased:
        await five_versions.put_alias("app", "prod", 5)
    seen = before_the_first_delete(
        monkeypatch, five_versions, lambda: other.put_alias("app", "hotfix", 2)
    )
    _, deleted = await five_versions.purge_artifact_versions("app", **PURGE_ALL)
    assert seen
    assert [a.version for a in deleted] == (["4", "3", "1"] if aliased else ["5", "4", "3", "1"])
    assert await versions(five_versions) == (["LATEST", "5", "2"] if aliased else ["LATEST", "2"])
    assert await five_versions.get_content("app", 2) == b"v2"


async def test_a_version_another_purge_deleted_meanwhile_is_reported_deleted(
    five_versions: Repository, other: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the version's own condition failed: it is gone, as planned (this is also
    how our own delete looks when botocore re-sends it after its answer was lost)."""
    before_the_first_delete(
        monkeypatch, five_versions, lambda: other.delete_artifact_version("app", 3)
    )
    _, deleted = await five_versions.purge_artifact_versions("app", **PURGE_ALL)
    assert [a.version for a in deleted] == ["5", "4", "3", "2", "1"]
    assert await versions(five_versions) == ["LATEST"]


# -- more aliases than one transaction can check ----------------------------------------


async def add_aliases(dynamodb: Any, count: int, stored_version: str) -> None:
    """``count`` alias items in the shared layout, written as `versioned` writes them."""
    items = [
        {
            "pk": {"S": "__app-alias"},
            "sk": {"S": f"a{i:03d}"},
            "update_at": {"S": "2026-11-24T22:20:19.929848+0000"},
            "version": {"S": stored_version},
        }
        for i in range(count)
    ]
    for start in range(0, count, 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        resp = await dynamodb.batch_write_item(RequestItems={TABLE: batch})
        assert not resp.get("UnprocessedItems")


async def test_purge_works_with_more_aliases_than_a_transaction_can_check(
    five_versions: Repository, dynamodb: Any
) -> None:
    await add_aliases(dynamodb, 120, "000005")
    _, deleted = await five_versions.purge_artifact_versions("app", **PURGE_ALL)
    assert [a.version for a in deleted] == ["4", "3", "2", "1"]
    assert await versions(five_versions) == ["LATEST", "5"]


async def test_with_many_aliases_a_version_one_was_moved_to_comes_back(
    five_versions: Repository,
    other: Repository,
    dynamodb: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await add_aliases(dynamodb, 120, "000005")
    seen = before_the_first_delete(
        monkeypatch, five_versions, lambda: other.put_alias("app", "a007", 3)
    )
    _, deleted = await five_versions.purge_artifact_versions("app", **PURGE_ALL)
    assert len(seen) == 4  # no alias checks; the mark put_alias left on 3 kept it
    assert [a.version for a in deleted] == ["4", "2", "1"]
    assert await versions(five_versions) == ["LATEST", "5", "3"]
