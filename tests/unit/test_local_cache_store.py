"""LocalCache's lookup store on its own: batched writes, one-query preload, no AWS."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from versioned_async import LocalCache
from versioned_async.cache.keys import AliasKey, LeaseKey, RepositoryId, VersionKey

REPO = RepositoryId("endpoint", "bucket", "prefix", "", "table")


def key(i: int) -> AliasKey:
    return AliasKey(REPO, f"name-{i}", "prod")


def version(i: int) -> VersionKey:
    """A version lookup's key: what a download lease is on."""
    return VersionKey(REPO, f"name-{i}", "000001")


def lease(i: int) -> tuple[str, tuple[str, ...]]:
    """The lease on ``version(i)`` as the lookups store holds it."""
    return LeaseKey(version(i)).to_disk()


async def test_concurrent_remembers_are_all_on_disk_after_close(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path)
    await asyncio.gather(
        *(cache._store.lookups.remember(key(i), {"version": str(i)}) for i in range(200))
    )
    cache.close()
    reopened = LocalCache(tmp_path)
    found = await asyncio.gather(*(reopened._store.lookups.load(key(i)) for i in range(200)))
    assert [entry[1] for entry in found if entry] == [{"version": str(i)} for i in range(200)]


async def test_the_last_write_of_a_key_wins(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path)
    await cache._store.lookups.remember(key(1), "first")
    await asyncio.gather(
        cache._store.lookups.remember(key(1), "second"),
        cache._store.lookups.remember(key(2), "other"),
    )
    await cache._store.lookups.forget(key(2))
    await cache._store.lookups.remember(key(1), "third")
    cache.close()
    reopened = LocalCache(tmp_path)
    assert (await reopened._store.lookups.load(key(1)) or (0, None))[1] == "third"
    assert await reopened._store.lookups.load(key(2)) is None


async def test_preload_reads_what_the_public_api_reads(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path)
    for i in range(50):
        await cache._store.lookups.remember(key(i), {"i": i, "nested": [i, str(i)]})
    await cache._store.lookups.forget(key(7))
    cache.close()
    store = LocalCache(tmp_path)._store.database.lookups
    one_by_one = {k: store.get(k) for k in store.iterkeys()}
    assert dict(LocalCache(tmp_path)._store.database.stored_rows()) == one_by_one
    assert len(one_by_one) == 49


async def test_preload_falls_back_when_the_bulk_read_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = LocalCache(tmp_path)
    await cache._store.lookups.remember(key(1), "value")
    cache.close()
    reopened = LocalCache(tmp_path)

    # as if a diskcache release changed the table that the one-query read assumes
    original = type(reopened._store.database.lookups)._sql

    def sql_without_bulk_reads(self: Any) -> Any:
        run = original.__get__(self)

        def query(statement: str, *args: Any) -> Any:
            if statement.startswith("SELECT key, raw, mode, filename, value FROM Cache"):
                raise sqlite3.OperationalError("no such column: expire_time")
            return run(statement, *args)

        return query

    monkeypatch.setattr(
        type(reopened._store.database.lookups), "_sql", property(sql_without_bulk_reads)
    )
    assert dict(reopened._store.database.stored_rows())[key(1).to_disk()][1] == "value"


async def test_a_lookup_written_by_another_process_after_the_preload_is_found(
    tmp_path: Path,
) -> None:
    mine = LocalCache(tmp_path)
    assert await mine._store.lookups.load(key(1)) is None  # preloads an empty store
    other = LocalCache(tmp_path)
    await other._store.lookups.remember(key(1), "from the other process")
    other.close()
    found = await asyncio.gather(*(mine._store.lookups.load(key(i)) for i in (1, 2)))
    assert found[0] is not None
    assert found[0][1] == "from the other process"
    assert found[1] is None


async def test_a_download_lease_makes_another_process_wait_its_turn(tmp_path: Path) -> None:
    """Two LocalCache objects on one directory stand for two processes."""
    first, second = LocalCache(tmp_path), LocalCache(tmp_path)
    order: list[str] = []

    async def hold(cache: LocalCache, who: str) -> bool:
        async with cache._store.leases.download_lease(version(1)) as waited:
            order.append(f"{who} in")
            await asyncio.sleep(0.2)
            order.append(f"{who} out")
            return waited

    a = asyncio.ensure_future(hold(first, "a"))
    await asyncio.sleep(0.05)
    b = asyncio.ensure_future(hold(second, "b"))
    assert await asyncio.gather(a, b) == [False, True]
    assert order == ["a in", "a out", "b in", "b out"]


async def test_leases_on_different_keys_do_not_wait(tmp_path: Path) -> None:
    first, second = LocalCache(tmp_path), LocalCache(tmp_path)
    async with (
        first._store.leases.download_lease(version(1)) as waited_1,
        second._store.leases.download_lease(version(2)) as waited_2,
    ):
        assert (waited_1, waited_2) == (False, False)


async def test_a_crashed_holders_lease_expires(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path)
    # what a SIGKILLed holder leaves: its lease, which nobody will release or renew
    cache._store.database.lookups.add(lease(1), "dead-holder", expire=0.3)
    async with cache._store.leases.download_lease(version(1)) as waited:
        assert waited
    assert cache._store.database.lookups.get(lease(1)) is None


async def test_only_the_holder_releases_its_lease(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path)
    async with cache._store.leases.download_lease(version(1)):
        stolen = cache._store.database.lookups.get(lease(1))
        cache._store.leases._end_lease(lease(1), "someone-else")
        assert cache._store.database.lookups.get(lease(1)) == stolen


async def test_leases_are_not_preloaded_as_lookups(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path)
    cache._store.database.lookups.add(lease(1), "holder", expire=60)
    reopened = LocalCache(tmp_path)
    assert await reopened._store.lookups.load(key(2)) is None  # triggers the preload
    # the lease is not a lookup: neither decoded nor kept as a row to decode
    assert reopened._store.lookups._memory == reopened._store.lookups._rows == {}
