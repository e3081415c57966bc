"""The cached read path, watched on the wire through a counting proxy."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import FakeClock
from tests.proxy import CountingProxy
from versioned_async import LocalCache, Repository, exc


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(tmp_path: Path, clock: FakeClock) -> LocalCache:
    return LocalCache(tmp_path / "cache", ttl=30.0, clock=clock)


@pytest.fixture
async def reader(make_proxied_repo: Any, cache: LocalCache) -> AsyncIterator[Repository]:
    """The service side: cached, through the proxy."""
    async with make_proxied_repo(cache=cache) as repo:
        yield repo


@pytest.fixture
async def released(writer: Repository) -> Repository:
    for content in (b"version one", b"version two"):
        await writer.put_artifact("app", content)
        await writer.publish_artifact_version("app")
    await writer.put_alias("app", "prod", 1)
    return writer


async def test_cold_alias_read_costs_two_round_trips(
    released: Repository, reader: Repository, proxy: CountingProxy
) -> None:
    assert await reader.get_alias_content("app", "prod") == b"version one"
    assert proxy.counts() == {"GetItem": 2, "GetObject": 1}
    # the version lookup and the download went out together, after the alias
    ops = [r.op for r in proxy.requests]
    assert ops[0] == "GetItem"
    assert sorted(ops[1:]) == ["GetItem", "GetObject"]


async def test_content_is_downloaded_once(
    released: Repository, reader: Repository, proxy: CountingProxy, clock: FakeClock
) -> None:
    for _ in range(3):
        await reader.get_content("app", 1)
        clock.advance(60)  # past the TTL: lookups are revalidated, content is not
    assert proxy.count("GetObject") == 1
    assert proxy.count("GetItem") == 3


async def test_inside_the_ttl_reads_make_no_request(
    released: Repository, reader: Repository, proxy: CountingProxy, clock: FakeClock
) -> None:
    await reader.get_alias_content("app", "prod")
    await reader.get_content("app", 2)
    proxy.reset_counts()
    clock.advance(29)
    for _ in range(5):
        assert await reader.get_alias_content("app", "prod") == b"version one"
        assert await reader.get_content("app", 2) == b"version two"
    assert proxy.requests == []


async def test_alias_moves_are_seen_after_the_ttl(
    released: Repository, reader: Repository, clock: FakeClock
) -> None:
    assert await reader.get_alias_content("app", "prod") == b"version one"
    await released.put_alias("app", "prod", 2)
    assert await reader.get_alias_content("app", "prod") == b"version one"  # within TTL
    clock.advance(31)
    assert await reader.get_alias_content("app", "prod") == b"version two"


async def test_stale_lookups_are_served_during_an_outage(
    released: Repository,
    reader: Repository,
    proxy: CountingProxy,
    clock: FakeClock,
    cache: LocalCache,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await reader.get_alias_content("app", "prod")
    clock.advance(3600)
    proxy.go_down()
    with caplog.at_level(logging.WARNING, logger="versioned_async"):
        assert await reader.get_alias_content("app", "prod") == b"version one"
    assert cache.stats().stale_serves == 2  # the alias and the version lookup
    assert "from the local cache" in caplog.text
    proxy.come_back()
    await released.put_alias("app", "prod", 2)
    assert await reader.get_alias_content("app", "prod") == b"version two"


async def test_a_fresh_cache_on_the_same_directory_starts_with_the_backend_down(
    released: Repository,
    reader: Repository,
    proxy: CountingProxy,
    make_proxied_repo: Any,
    tmp_path: Path,
    clock: FakeClock,
) -> None:
    await reader.get_alias_content("app", "prod")
    proxy.go_down()
    clock.advance(86_400)  # a restart a day later, AWS unreachable
    restarted = LocalCache(tmp_path / "cache", ttl=30.0, clock=clock)
    async with make_proxied_repo(cache=restarted) as service:
        assert await service.get_alias_content("app", "prod") == b"version one"
    assert restarted.stats().downloads == 0
    assert restarted.stats().stale_serves == 2


async def test_a_restart_with_the_backend_down_resolves_the_alias_from_the_cache(
    released: Repository,
    reader: Repository,
    proxy: CountingProxy,
    make_proxied_repo: Any,
    tmp_path: Path,
    clock: FakeClock,
) -> None:
    """What a service's start-up reads (the alias, to know which version it serves)
    comes from the cache too: the table check waits for AWS to be back."""
    served = await reader.resolve_alias("app", "prod")
    await reader.get_content("app", served.version)
    proxy.go_down()
    clock.advance(86_400)
    restarted = LocalCache(tmp_path / "cache", ttl=30.0, clock=clock)
    async with make_proxied_repo(cache=restarted) as service:
        prod = await service.resolve_alias("app", "prod")
        assert (prod.version, await service.get_content("app", prod.version)) == (
            "1",
            b"version one",
        )
    assert restarted.stats().stale_serves == 2  # the alias and the version lookup


async def test_a_lookup_never_seen_fails_clearly_during_an_outage(
    released: Repository, reader: Repository, proxy: CountingProxy
) -> None:
    proxy.go_down()
    with pytest.raises(exc.BackendUnavailableError, match="could not reach AWS"):
        await reader.get_alias_content("app", "prod")


async def test_stale_if_error_off_fails_during_an_outage(
    released: Repository,
    make_proxied_repo: Any,
    proxy: CountingProxy,
    tmp_path: Path,
    clock: FakeClock,
) -> None:
    strict = LocalCache(tmp_path / "strict", ttl=30.0, stale_if_error=False, clock=clock)
    async with make_proxied_repo(cache=strict) as repo:
        await repo.get_alias_content("app", "prod")
        clock.advance(31)
        proxy.go_down()
        with pytest.raises(exc.BackendUnavailableError):
            await repo.get_alias_content("app", "prod")


async def test_fifty_concurrent_cold_reads_make_one_download(
    released: Repository, reader: Repository, proxy: CountingProxy
) -> None:
    bodies = await asyncio.gather(*(reader.get_alias_content("app", "prod") for _ in range(50)))
    assert set(bodies) == {b"version one"}
    assert proxy.counts() == {"GetItem": 2, "GetObject": 1}


async def test_deleted_versions_disappear_after_the_ttl(
    released: Repository, reader: Repository, clock: FakeClock
) -> None:
    await reader.get_content("app", 2)
    await released.delete_artifact_version("app", 2)
    clock.advance(31)
    with pytest.raises(exc.ArtifactNotFoundError):
        await reader.get_content("app", 2)


async def test_latest_changes_are_seen_after_the_ttl(
    released: Repository, reader: Repository, clock: FakeClock
) -> None:
    assert await reader.get_content("app") == b"version two"
    await released.put_artifact("app", b"version three")
    clock.advance(31)
    assert await reader.get_content("app") == b"version three"


async def test_own_writes_are_read_back_at_once(
    make_proxied_repo: Any, cache: LocalCache, proxy: CountingProxy
) -> None:
    async with make_proxied_repo(cache=cache) as repo:
        await repo.bootstrap()
        await repo.put_artifact("app", b"one")
        await repo.publish_artifact_version("app")
        await repo.put_alias("app", "prod", 1)
        await repo.put_artifact("app", b"two")
        await repo.publish_artifact_version("app")
        await repo.put_alias("app", "prod", 2)  # no TTL wait for our own move
        assert await repo.get_alias_content("app", "prod") == b"two"


async def test_large_content_round_trips_through_the_proxy(
    writer: Repository, reader: Repository, tmp_path: Path
) -> None:
    content = os.urandom(6 << 20)
    await writer.put_artifact("big", content)
    await writer.publish_artifact_version("big")
    target = await reader.download("big", tmp_path / "big.bin", version=1)
    assert target.read_bytes() == content
