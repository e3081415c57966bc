"""A purge never leaves an alias pointing at a version it deleted (issue 15, item 2).

The purge is cut short the way a crash cuts it: an alias is created after the purge
read its plan (a real request by a second client, run just before the purge's first
delete is sent), and the purge then dies before its re-read of the aliases (that
read raises). Before the fix the version stayed deleted under the new alias for good.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import TABLE
from tests.integration.test_guarded_retention import PURGE_ALL, before_the_first_delete
from versioned_async import Repository, exc


def die_at_the_reread(monkeypatch: pytest.MonkeyPatch, repo: Repository, seen: list[str]) -> None:
    """Reading the aliases raises once the purge has sent a delete: the purge stops there,
    as a process killed at that point would (nothing after it runs)."""
    original = repo._catalog.alias_tokens

    async def alias_tokens(name: str) -> Any:
        if seen:
            raise exc.BackendUnavailableError("the purge died here")
        return await original(name)

    monkeypatch.setattr(repo._catalog, "alias_tokens", alias_tokens)


async def dangling(repo: Repository) -> list[tuple[str, str]]:
    """(alias, version) of every alias of ``app`` whose version is not readable."""
    out = []
    for alias in await repo.list_aliases("app"):
        for version in (alias.version, alias.secondary_version):
            if version is None:
                continue
            try:
                await repo.get_artifact_version("app", version)
            except exc.ArtifactNotFoundError:
                out.append((alias.alias, version))
    return out


async def test_an_alias_created_during_a_purge_that_dies_never_dangles(
    five_versions: Repository, other: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = before_the_first_delete(
        monkeypatch, five_versions, lambda: other.put_alias("app", "hotfix", 5)
    )
    die_at_the_reread(monkeypatch, five_versions, seen)
    with pytest.raises(exc.BackendUnavailableError, match="died"):
        await five_versions.purge_artifact_versions("app", **PURGE_ALL)
    assert seen  # the deletes were sent
    assert await dangling(other) == []
    assert await other.get_content("app", 5) == b"v5"


async def test_the_next_purge_repairs_what_a_dead_purge_left_dangling(
    five_versions: Repository,
    other: Repository,
    dynamodb: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An alias that `versioned` 1.0 writes (an unconditional PutItem, which no
    transaction of ours can see coming) during a purge that then dies: the next purge
    brings its version back."""

    async def versioned_puts_alias() -> None:
        await dynamodb.put_item(
            TableName=TABLE,
            Item={
                "pk": {"S": "__app-alias"},
                "sk": {"S": "legacy"},
                "update_at": {"S": "2026-11-24T22:20:19.929848+0000"},
                "version": {"S": "000004"},
            },
        )

    seen = before_the_first_delete(monkeypatch, five_versions, versioned_puts_alias)
    die_at_the_reread(monkeypatch, five_versions, seen)
    with pytest.raises(exc.BackendUnavailableError, match="died"):
        await five_versions.purge_artifact_versions("app", **PURGE_ALL)
    monkeypatch.undo()

    await other.purge_artifact_versions("app", **PURGE_ALL)
    assert await dangling(other) == []
    assert await other.get_content("app", 4) == b"v4"
    assert [a.version for a in await other.list_artifact_versions("app")] == ["LATEST", "4"]


async def test_a_version_deleted_on_purpose_under_an_alias_stays_deleted(
    five_versions: Repository,
) -> None:
    """The repair undoes a purge's deletes only: delete_artifact_version is obeyed."""
    await five_versions.put_alias("app", "prod", 3)
    await five_versions.delete_artifact_version("app", 3)
    await five_versions.purge_artifact_versions("app", **PURGE_ALL)
    with pytest.raises(exc.ArtifactNotFoundError):
        await five_versions.get_artifact_version("app", 3)
