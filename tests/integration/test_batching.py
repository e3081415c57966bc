"""Item lookups made in the same event-loop turn share BatchGetItem requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE
from tests.proxy import CountingProxy
from tests.seed import seed_dynamodb_layout
from versioned_async import LocalCache, Repository, exc

NAMES = [f"svc-{i:03d}" for i in range(30)]


@pytest.fixture
async def published(repo: Repository, s3: Any, dynamodb: Any) -> Repository:
    """30 artifacts with version 1 published and ``prod`` on it (seeded: these tests
    are about reading)."""
    await seed_dynamodb_layout(
        s3,
        dynamodb,
        bucket=BUCKET,
        table=TABLE,
        artifacts={name: [f"content of {name}".encode()] for name in NAMES},
        aliases={(name, "prod"): (1, None, None) for name in NAMES},
    )
    return repo


@pytest.fixture
async def reader(published: Repository, make_proxied_repo: Any) -> AsyncIterator[Repository]:
    async with make_proxied_repo() as repo:
        # the table's record is checked once per repository (issue 17): paid here, so
        # that the requests counted are the lookups' own
        await repo.check_table()
        yield repo


async def test_concurrent_lookups_share_one_batch_get(
    reader: Repository, proxy: CountingProxy
) -> None:
    proxy.reset_counts()
    found = await asyncio.gather(*(reader.get_artifact_version(n, 1) for n in NAMES))
    assert [a.name for a in found] == NAMES
    assert all(a.version == "1" for a in found)
    assert proxy.counts() == {"BatchGetItem": 1}


async def test_a_lone_lookup_is_a_get_item(reader: Repository, proxy: CountingProxy) -> None:
    proxy.reset_counts()
    await reader.get_alias(NAMES[0], "prod")
    assert proxy.counts() == {"GetItem": 1}


async def test_missing_and_present_items_in_one_batch(
    reader: Repository, proxy: CountingProxy
) -> None:
    proxy.reset_counts()
    results = await asyncio.gather(
        reader.get_artifact_version(NAMES[0], 1),
        reader.get_artifact_version("never-put", 1),
        reader.get_artifact_version(NAMES[1], 2),
        reader.get_alias(NAMES[2], "prod"),
        reader.get_alias(NAMES[2], "staging"),
        return_exceptions=True,
    )
    assert proxy.counts() == {"BatchGetItem": 1}
    assert results[0].version == "1"  # type: ignore[union-attr]
    assert isinstance(results[1], exc.ArtifactNotFoundError)
    assert isinstance(results[2], exc.ArtifactNotFoundError)
    assert results[3].version == "1"  # type: ignore[union-attr]
    assert isinstance(results[4], exc.AliasNotFoundError)


async def test_the_same_key_twice_in_a_turn_is_asked_once(
    reader: Repository, proxy: CountingProxy
) -> None:
    proxy.reset_counts()
    a, b = await asyncio.gather(
        reader.get_alias(NAMES[0], "prod"), reader.get_alias(NAMES[0], "prod")
    )
    assert a == b
    assert proxy.counts() == {"GetItem": 1}


async def test_more_than_100_keys_split_into_batches(
    published: Repository, make_proxied_repo: Any, proxy: CountingProxy
) -> None:
    async with make_proxied_repo() as repo:
        await repo.check_table()  # once per repository (issue 17): not the lookups' requests
        proxy.reset_counts()
        results = await asyncio.gather(
            *(repo.get_artifact_version(n, v) for n in NAMES for v in ("LATEST", 1, 2, 3, 4)),
            return_exceptions=True,
        )
    assert len(results) == 150
    found = [r for r in results if not isinstance(r, BaseException)]
    assert len(found) == 60  # LATEST and 1 exist, 2-4 do not
    assert all(isinstance(r, exc.ArtifactNotFoundError) for r in results if r not in found)
    assert proxy.counts() == {"BatchGetItem": 2}


async def test_a_failed_batch_fails_each_waiter_with_a_versioned_error(
    reader: Repository, proxy: CountingProxy
) -> None:
    proxy.go_down()
    results = await asyncio.gather(
        *(reader.get_artifact_version(n, 1) for n in NAMES[:5]), return_exceptions=True
    )
    assert all(isinstance(r, exc.BackendUnavailableError) for r in results), results
    proxy.come_back()
    found = await asyncio.gather(*(reader.get_artifact_version(n, 1) for n in NAMES[:5]))
    assert [a.name for a in found] == NAMES[:5]


async def test_a_cancelled_waiter_does_not_cancel_the_others(
    reader: Repository, proxy: CountingProxy
) -> None:
    proxy.delay = 0.2
    first = asyncio.ensure_future(reader.get_alias(NAMES[0], "prod"))
    second = asyncio.ensure_future(reader.get_alias(NAMES[0], "prod"))
    await asyncio.sleep(0.05)
    first.cancel()
    alias = await second
    assert alias.version == "1"
    assert first.cancelled()


async def test_cold_start_up_sends_a_batch_per_step(
    published: Repository, make_proxied_repo: Any, proxy: CountingProxy, tmp_path: Path
) -> None:
    """30 services' aliases and versions: a few BatchGetItems, 30 GetObjects, all verified."""
    async with make_proxied_repo(cache=LocalCache(tmp_path / "cache")) as repo:
        proxy.reset_counts()
        bodies = await asyncio.gather(*(repo.get_alias_content(n, "prod") for n in NAMES))
    assert bodies == [f"content of {n}".encode() for n in NAMES]
    counts = proxy.counts()
    assert counts["GetObject"] == 30
    # one by one this is 60 GetItems (an alias and a version each). How many batches the
    # lookups fall into depends on when the cache's thread trips finish, so the bound is
    # "fewer lookup requests than artifacts", not an exact count.
    assert counts["BatchGetItem"] >= 1, counts
    assert counts["BatchGetItem"] + counts["GetItem"] < len(NAMES), counts
