"""Eviction keeps what aliases point at: a full cache still starts a service offline."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import FakeClock
from tests.proxy import CountingProxy
from versioned_async import LocalCache, Repository

pytestmark = pytest.mark.both_backends

SIZE = 20_000
LIMIT = 100_000  # five contents fit
OTHERS = 8


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def cache(cache_dir: Path, clock: FakeClock) -> LocalCache:
    return LocalCache(cache_dir, ttl=30.0, size_limit=LIMIT, clock=clock)


@pytest.fixture
async def others(writer: Repository) -> list[bytes]:
    """Unrelated artifacts ``other0``.. whose reads fill the cache."""
    contents = [os.urandom(SIZE) for _ in range(OTHERS)]
    for n, content in enumerate(contents):
        await publish(writer, f"other{n}", content)
    return contents


@pytest.fixture
async def reader(make_repo: Any, cache: LocalCache) -> AsyncIterator[Repository]:
    """The service: reads through the small cache."""
    async with make_repo(cache=cache) as repo:
        yield repo


async def publish(repo: Repository, name: str, content: bytes) -> str:
    await repo.put_artifact(name, content)
    return (await repo.publish_artifact_version(name)).version


async def fill(repo: Repository, others: list[bytes]) -> None:
    for n, content in enumerate(others):
        assert await repo.get_content(f"other{n}", 1) == content


async def cached(cache: LocalCache, content: bytes) -> bool:
    return await cache._store.content.path(sha(content)) is not None


async def test_alias_targets_survive_filling_the_cache_with_other_content(
    writer: Repository, reader: Repository, cache: LocalCache, others: list[bytes]
) -> None:
    prod = os.urandom(SIZE)
    await publish(writer, "app", prod)
    await writer.put_alias("app", "prod", 1)
    assert await reader.get_alias_content("app", "prod") == prod  # read once, never again
    await fill(reader, others)
    assert await cached(cache, prod)
    assert cache.content_bytes <= LIMIT
    assert not await cached(cache, others[0])  # the cache did evict, around it
    assert await reader.get_alias_content("app", "prod") == prod
    assert cache.stats().downloads == 1 + OTHERS


async def test_both_versions_of_a_canary_split_are_kept(
    writer: Repository, reader: Repository, cache: LocalCache, others: list[bytes]
) -> None:
    v1, v2 = os.urandom(SIZE), os.urandom(SIZE)
    await publish(writer, "app", v1)
    await publish(writer, "app", v2)
    await writer.put_alias("app", "prod", 1, secondary_version=2, secondary_version_weight=50)
    alias = await reader.resolve_alias("app", "prod")
    keys = {alias.choose_version(f"user-{i}"): f"user-{i}" for i in range(100)}
    assert sorted(keys) == ["1", "2"]
    for key in keys.values():
        await reader.get_alias_content("app", "prod", routing_key=key)
    await fill(reader, others)
    assert await cached(cache, v1)
    assert await cached(cache, v2)


async def test_after_the_alias_moves_only_its_new_target_is_kept(
    writer: Repository,
    reader: Repository,
    cache: LocalCache,
    clock: FakeClock,
    others: list[bytes],
) -> None:
    v1, v2 = os.urandom(SIZE), os.urandom(SIZE)
    await publish(writer, "app", v1)
    await publish(writer, "app", v2)
    await reader.put_alias("app", "prod", 1)
    assert await reader.get_alias_content("app", "prod") == v1
    clock.advance(1)  # the alias memo tells lookups apart by when they were fetched
    await reader.put_alias("app", "prod", 2)
    assert await reader.get_alias_content("app", "prod") == v2
    await fill(reader, others)
    assert await cached(cache, v2)
    assert not await cached(cache, v1)


async def test_a_deleted_alias_no_longer_keeps_its_content(
    writer: Repository, reader: Repository, cache: LocalCache, others: list[bytes]
) -> None:
    v1, v2 = os.urandom(SIZE), os.urandom(SIZE)
    await publish(writer, "app", v1)
    await publish(writer, "app", v2)
    await writer.put_alias("app", "prod", 1)
    await writer.put_alias("app", "beta", 2)
    await reader.get_alias_content("app", "prod")
    await reader.get_alias_content("app", "beta")
    await reader.delete_alias("app", "beta")
    await fill(reader, others)
    assert await cached(cache, v1)
    assert not await cached(cache, v2)


async def test_an_alias_on_latest_keeps_what_latest_holds_now(
    writer: Repository,
    reader: Repository,
    cache: LocalCache,
    clock: FakeClock,
    others: list[bytes],
) -> None:
    old, new = os.urandom(SIZE), os.urandom(SIZE)
    await writer.put_artifact("app", old)
    await writer.put_alias("app", "edge")  # LATEST
    assert await reader.get_alias_content("app", "edge") == old
    await writer.put_artifact("app", new)
    clock.advance(31)
    assert await reader.get_alias_content("app", "edge") == new
    await fill(reader, others)
    assert await cached(cache, new)
    assert not await cached(cache, old)


async def test_caches_sharing_a_directory_keep_each_others_alias_targets(
    writer: Repository,
    reader: Repository,
    make_repo: Any,
    cache: LocalCache,
    cache_dir: Path,
    others: list[bytes],
) -> None:
    prod = os.urandom(SIZE)
    await publish(writer, "app", prod)
    await writer.put_alias("app", "prod", 1)
    assert await reader.get_alias_content("app", "prod") == prod
    neighbour = LocalCache(cache_dir, ttl=30.0, size_limit=LIMIT)  # another worker's
    async with make_repo(cache=neighbour) as other_worker:
        await fill(other_worker, others)
    neighbour.close()
    assert neighbour.stats().downloads == OTHERS
    assert await cached(cache, prod)


async def test_a_service_restarting_while_aws_is_down_starts_from_a_full_cache(
    writer: Repository,
    make_proxied_repo: Any,
    proxy: CountingProxy,
    cache: LocalCache,
    cache_dir: Path,
    clock: FakeClock,
    others: list[bytes],
) -> None:
    contents = {name: os.urandom(SIZE) for name in ("model", "features")}
    for name, content in contents.items():
        await publish(writer, name, content)
        await writer.put_alias(name, "prod", 1)
    async with make_proxied_repo(cache=cache) as service:
        for name, content in contents.items():
            assert await service.get_alias_content(name, "prod") == content
        await fill(service, others)  # the same cache serves other work meanwhile
    cache.close()
    proxy.go_down()
    clock.advance(86_400)  # a restart a day later, AWS unreachable
    restarted = LocalCache(cache_dir, ttl=30.0, size_limit=LIMIT, clock=clock)
    async with make_proxied_repo(cache=restarted) as service:
        for name, content in contents.items():
            assert await service.get_alias_content(name, "prod") == content
    assert restarted.stats().downloads == 0
    assert restarted.stats().stale_serves == 2 * len(contents)


async def test_alias_targets_over_the_size_limit_are_kept_with_one_warning(
    writer: Repository,
    make_repo: Any,
    tmp_path: Path,
    others: list[bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    small = LocalCache(tmp_path / "small", size_limit=2 * SIZE + SIZE // 2)
    contents = {f"app{n}": os.urandom(SIZE) for n in range(3)}
    for name, content in contents.items():
        await publish(writer, name, content)
        await writer.put_alias(name, "prod", 1)
    with caplog.at_level(logging.WARNING, logger="versioned_async"):
        async with make_repo(cache=small) as service:
            for name, content in contents.items():
                assert await service.get_alias_content(name, "prod") == content
            await fill(service, others)
    for content in contents.values():
        assert await cached(small, content)
    assert small.content_count == len(contents) + 1  # and the one content just read
    warnings = [r for r in caplog.records if "raise size_limit" in r.getMessage()]
    assert len(warnings) == 1
