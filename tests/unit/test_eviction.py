"""Eviction keeps alias targets: the pure policy, then LocalCache's store on its own (no AWS)."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from versioned_async import LocalCache
from versioned_async._policy.eviction import StoredContent, pinned_content, plan_eviction
from versioned_async.cache.content import Staged
from versioned_async.cache.keys import (
    AliasKey,
    ContentKey,
    LeaseKey,
    RepositoryId,
    VersionKey,
    lookups_from_disk,
)

REPO = RepositoryId("endpoint", "bucket", "prefix", "", "table")


def alias_key(name: str, alias: str = "prod", repo: RepositoryId = REPO) -> AliasKey:
    return AliasKey(repo, name, alias)


def version_key(name: str, stored: str, repo: RepositoryId = REPO) -> VersionKey:
    return VersionKey(repo, name, stored)


def alias_value(version: str, secondary: str | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"pk": "__app-alias", "sk": "prod", "update_at": "x"}
    value["version"] = version
    if secondary is not None:
        value.update(secondary_version=secondary, secondary_version_weight=10)
    return value


def entry(value: Any) -> tuple[float, Any]:
    return (1_800_000_000.0, value)


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


# -- which content is pinned ---------------------------------------------------------------


def test_an_alias_pins_its_primary_and_its_canary() -> None:
    lookups = [
        (alias_key("app"), entry(alias_value("000001", "000002"))),
        (version_key("app", "000001"), entry(("sha-1", 10))),
        (version_key("app", "000002"), entry(("sha-2", 10))),
        (version_key("app", "000003"), entry(("sha-3", 10))),
    ]
    assert pinned_content(lookups) == {"sha-1", "sha-2"}


def test_a_target_never_looked_up_pins_nothing() -> None:
    lookups = [(alias_key("app"), entry(alias_value("000001", "000002")))]
    lookups.append((version_key("app", "000002"), entry(("sha-2", 10))))
    assert pinned_content(lookups) == {"sha-2"}


def test_an_alias_pins_only_its_own_repositorys_versions() -> None:
    other = RepositoryId("endpoint", "other-bucket", "prefix", "", "table")
    lookups = [
        (alias_key("app"), entry(alias_value("000001"))),
        (version_key("app", "000001", repo=other), entry(("sha-other", 10))),
        (version_key("app", "000001"), entry(("sha-mine", 10))),
        (version_key("web", "000001"), entry(("sha-web", 10))),
    ]
    assert pinned_content(lookups) == {"sha-mine"}


def test_an_alias_on_latest_pins_what_latest_holds() -> None:
    lookups = [
        (alias_key("app"), entry(alias_value("LATEST"))),
        (version_key("app", "LATEST"), entry(("sha-now", 10))),
    ]
    assert pinned_content(lookups) == {"sha-now"}


def test_other_keys_and_odd_values_pin_nothing() -> None:
    """Rows as the store reads them: keys in their on-disk form, decoded first."""
    stored: list[tuple[object, Any]] = [
        (("path", "sha-1"), "/some/path"),
        (LeaseKey(version_key("app", "000001")).to_disk(), "token"),
        ("plain", entry(alias_value("000001"))),
        (alias_key("app").to_disk(), entry("not a dict")),
        (alias_key("web").to_disk(), "not an entry"),
        (version_key("app", "000001").to_disk(), entry(None)),
        (version_key("web", "000001").to_disk(), entry(("sha-web", 10))),
    ]
    assert pinned_content(lookups_from_disk(stored)) == frozenset()


# -- what eviction removes ----------------------------------------------------------------


def lru(*rows: tuple[str, int]) -> list[StoredContent]:
    """Stored content, least recently used first."""
    return [StoredContent(sha256=s, size=size) for s, size in rows]


def total(content: list[StoredContent]) -> int:
    return sum(c.size for c in content)


def test_nothing_is_removed_while_the_content_fits() -> None:
    content = lru(("a", 40), ("b", 60))
    plan = plan_eviction(content, total(content), set(), 100)
    assert plan.evict == ()
    assert plan.kept_bytes == 100


def test_unpinned_content_goes_least_recently_used_first_until_it_fits() -> None:
    content = lru(("older", 40), ("old", 40), ("mid", 40), ("new", 40))
    plan = plan_eviction(content, total(content), set(), 100)
    assert plan.evict == ("older", "old")
    assert plan.kept_bytes == 80


def test_the_walk_stops_as_soon_as_the_content_fits() -> None:
    def walk() -> Iterator[StoredContent]:
        yield StoredContent("old", 40)
        raise AssertionError("read past what had to go")

    assert plan_eviction(walk(), 130, set(), 100).evict == ("old",)


def test_pinned_content_counts_toward_the_size_but_stays() -> None:
    content = lru(("pinned", 60), ("a", 30), ("b", 30), ("c", 30))
    plan = plan_eviction(content, total(content), {"pinned"}, 100)
    assert plan.evict == ("a", "b")
    assert plan.kept_bytes == 90
    assert not plan.pinned_exceed(100)


def test_the_content_just_stored_stays_even_over_the_limit() -> None:
    content = lru(("pinned", 80), ("stored-now", 30))  # a coarse LRU clock
    plan = plan_eviction(content, total(content), {"pinned"}, 100, keep="stored-now")
    assert plan.evict == ()
    assert plan.kept_bytes == 110
    assert not plan.pinned_exceed(100)  # over only until the next store


def test_pinned_content_over_the_limit_is_all_kept_and_reported() -> None:
    content = lru(("p1", 80), ("p2", 80), ("a", 10))
    plan = plan_eviction(content, total(content), {"p1", "p2"}, 100)
    assert plan.evict == ("a",)
    assert plan.kept_bytes == 160
    assert plan.pinned_bytes == 160
    assert plan.pinned_exceed(100)


# -- LocalCache's content store ---------------------------------------------------------------


async def store(cache: LocalCache, content: bytes) -> str | None:
    part = cache._store.content.new_staging_path()
    part.write_bytes(content)
    try:
        return await cache._store.content.publish(Staged(part, sha(content), len(content)))
    finally:
        part.unlink()


async def point_alias(cache: LocalCache, name: str, content: bytes) -> None:
    """What the Repository remembers when it reads ``name``'s alias ``prod`` and its content."""
    await cache._store.lookups.remember(version_key(name, "000001"), (sha(content), len(content)))
    await cache._store.lookups.remember(alias_key(name), alias_value("000001"))


async def test_an_alias_target_outlives_newer_content(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path, size_limit=3000)
    prod = b"p" * 1000
    await point_alias(cache, "app", prod)
    await store(cache, prod)
    for n in range(5):
        await store(cache, bytes([n]) * 1000)
    assert await cache._store.content.path(sha(prod)) is not None
    assert cache.content_bytes == 3000
    assert cache.content_count == 3


async def test_content_read_lately_outlives_content_stored_later_but_unread(
    tmp_path: Path,
) -> None:
    cache = LocalCache(tmp_path, size_limit=3000)
    first, second, third = b"1" * 1000, b"2" * 1000, b"3" * 1000
    for content in (first, second, third):
        await store(cache, content)
    assert await cache._store.content.path(sha(first)) is not None  # a read: now the most recent
    await store(cache, b"4" * 1000)
    assert await cache._store.content.path(sha(first)) is not None
    assert await cache._store.content.path(sha(second)) is None


async def test_an_evicted_file_stays_readable_by_a_reader_that_opened_it(
    tmp_path: Path,
) -> None:
    cache = LocalCache(tmp_path, size_limit=2000)
    first = b"1" * 1000
    path = await store(cache, first)
    assert path is not None
    with open(path, "rb") as reading:  # noqa: ASYNC230 - a reader holding the file is the point
        for n in range(3):
            await store(cache, bytes([n]) * 1000)
        assert await cache._store.content.path(sha(first)) is None  # evicted
        assert not Path(path).exists()
        assert reading.read() == first


async def test_fingerprints_are_kept_only_for_stored_content(tmp_path: Path) -> None:
    """A long-running service storing ever new content: what this process remembers of
    each stored file (its fingerprint) goes with the file, evicted or discarded."""
    cache = LocalCache(tmp_path, size_limit=3000)
    for n in range(200):
        await store(cache, n.to_bytes(2, "big") * 500)
        assert len(cache._store.content._fingerprints) <= cache.content_count <= 3
    stored = set((tmp_path / "content").rglob("*.val"))
    assert {Path(p) for p in cache._store.content._fingerprints} == stored
    # discarded: a stored file replaced
    victim = next(iter(stored))
    victim.write_bytes(b"x" * 1000)
    shas = [sha(n.to_bytes(2, "big") * 500) for n in range(197, 200)]
    assert [await cache._store.content.path(s) is None for s in shas].count(True) == 1
    assert len(cache._store.content._fingerprints) == cache.content_count == 2
    # gone without this process: another one (here, another instance) removed it
    other = LocalCache(tmp_path, size_limit=3000)
    for s in shas:
        other._store.database.content.delete(ContentKey(s).to_disk())
    other.close()
    for s in shas:
        assert await cache._store.content.path(s) is None
    assert cache._store.content._fingerprints == {}
    cache.close()


_OTHER_PROCESS = textwrap.dedent(
    """
    import asyncio, hashlib, sys
    from versioned_async import LocalCache
    from versioned_async.cache.content import Staged

    async def main():
        cache = LocalCache(sys.argv[1], size_limit=3000)
        for n in range(6):
            content = bytes([n]) * 1000
            store = cache._store.content
            part = store.new_staging_path()
            part.write_bytes(content)
            await store.publish(Staged(part, hashlib.sha256(content).hexdigest(), 1000))
            part.unlink()
        cache.close()

    asyncio.run(main())
    """
)


async def test_another_process_keeps_the_content_this_one_pins(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path, size_limit=3000)
    prod = b"p" * 1000
    await point_alias(cache, "app", prod)
    await store(cache, prod)
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _OTHER_PROCESS, str(tmp_path), stderr=asyncio.subprocess.PIPE
    )
    _, err = await other.communicate()
    assert other.returncode == 0, err.decode()[-2000:]
    assert await cache._store.content.path(sha(prod)) is not None
    assert cache.content_count == 3


async def test_a_lookup_forgotten_releases_its_content(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path, size_limit=3000)
    kept, released = b"k" * 1000, b"r" * 1000
    for name, content in (("web", kept), ("app", released)):
        await point_alias(cache, name, content)
        await store(cache, content)
    await cache._store.lookups.forget(alias_key("app"))  # the alias was deleted
    for n in range(3):
        await store(cache, bytes([n]) * 1000)
    assert await cache._store.content.path(sha(kept)) is not None
    assert await cache._store.content.path(sha(released)) is None


async def test_eviction_falls_back_when_the_bulk_reads_are_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = LocalCache(tmp_path, size_limit=3000)
    # as if a diskcache release changed the table that the one-query reads assume
    original = type(cache._store.database.content)._sql
    refused: list[str] = []

    def sql_without_bulk_reads(self: Any) -> Any:
        run = original.__get__(self)

        def query(statement: str, *args: Any) -> Any:
            for bulk in ("FROM Cache ORDER BY access_time", "FROM Cache WHERE mode = ?"):
                if bulk in statement:
                    refused.append(bulk)
                    raise sqlite3.OperationalError("no such column")
            return run(statement, *args)

        return query

    monkeypatch.setattr(
        type(cache._store.database.content), "_sql", property(sql_without_bulk_reads)
    )
    prod, first, second, third = (bytes([n]) * 1000 for n in range(4))
    await point_alias(cache, "app", prod)
    for content in (prod, first, second):
        await store(cache, content)
    assert await cache._store.content.path(sha(first)) is not None  # a read the fallback cannot see
    await store(cache, third)
    assert sorted(set(refused)) == ["FROM Cache ORDER BY access_time", "FROM Cache WHERE mode = ?"]
    assert await cache._store.content.path(sha(prod)) is not None  # the pin still holds
    assert cache.content_bytes == 3000
    # without the LRU clock: oldest stored first
    assert await cache._store.content.path(sha(first)) is None
    assert await cache._store.content.path(sha(second)) is not None
