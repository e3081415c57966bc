"""Guarded retention next to `versioned` 1.0.1: its aliases protect versions from our
purges (even one it puts while we purge), and our holds do not disturb its reads."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import PurgeSettings
from versioned_async import Repository

from .conftest import Upstream

PURGE_ALL: PurgeSettings = {"keep_last_n": 0, "purge_older_than_secs": 0}


async def publish_five(ours: Repository) -> None:
    for n in range(1, 6):
        await ours.put_artifact("app", f"v{n}".encode())
        await ours.publish_artifact_version("app")


async def visible(ours: Repository) -> list[str]:
    return [a.version for a in await ours.list_artifact_versions("app")]


async def test_we_never_purge_a_version_an_upstream_alias_points_at(
    ours: Repository, theirs: Upstream
) -> None:
    await publish_five(ours)
    theirs.put_alias("app", "prod", version=2, secondary_version=4, secondary_version_weight=10)

    _, deleted = await ours.purge_artifact_versions("app", **PURGE_ALL)

    assert [a.version for a in deleted] == ["5", "3", "1"]
    assert await visible(ours) == ["LATEST", "4", "2"]
    assert theirs.get_alias("app", "prod").version == "2"


async def test_a_version_upstream_aliases_while_we_purge_comes_back(
    ours: Repository, theirs: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`versioned` puts aliases without checking the version: one it puts after our plan
    was read is found by the re-read after the deletes, and its version restored."""
    await publish_five(ours)
    table = ours._catalog.table
    original = table.transact_write
    seen: list[str] = []

    async def transact_write(what: str, items: Any) -> list[str]:
        if what.startswith("purge version"):
            seen.append(what)
            if len(seen) == 1:  # (a sync call: blocks the loop for its duration)
                theirs.put_alias("app", "hotfix", version=3)
        return await original(what, items)

    monkeypatch.setattr(table, "transact_write", transact_write)
    _, deleted = await ours.purge_artifact_versions("app", **PURGE_ALL)

    assert len(seen) == 5
    assert [a.version for a in deleted] == ["5", "4", "2", "1"]
    assert await visible(ours) == ["LATEST", "3"]
    assert (
        theirs.get_artifact_version("app", 3).sha256
        == (await ours.get_artifact_version("app", 3)).sha256
    )


async def test_holds_do_not_disturb_upstream_reads_and_publishes(
    ours: Repository, theirs: Upstream
) -> None:
    await publish_five(ours)
    theirs.put_alias("app", "prod", version=5)
    before = [(a.version, a.sha256) for a in theirs.list_artifact_versions("app")]

    await ours.protect("app", 2, reason="audit")
    await ours.protect("app", 3)

    assert [(a.version, a.sha256) for a in theirs.list_artifact_versions("app")] == before
    assert theirs.get_artifact_version("app", 2).version == "2"
    assert [a.alias for a in theirs.list_aliases("app")] == ["prod"]
    assert theirs.get_alias("app", "prod").version == "5"
    assert theirs.publish_artifact_version("app").version == "6"
    assert [h.version for h in await ours.list_protected("app")] == ["2", "3"]
