"""Fixtures for tests that watch (or break) the wire: a counting proxy in front of moto."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from aiobotocore.config import AioConfig

from tests.conftest import (
    RepoFactory,
    RepoSettings,
    TableRepoFactory,
    TableRepoSettings,
)
from tests.proxy import CountingProxy
from versioned_async import ArtifactRepository, Repository

if TYPE_CHECKING:  # typing.Unpack is 3.11+; only the type checker reads it here
    from typing_extensions import Unpack

#: after this many seconds a test's proxy goes down, so a call stuck on it fails, not hangs
PROXY_DEADLINE_SECS = float(os.environ.get("PROXY_DEADLINE_SECS", "60"))


@pytest.fixture
async def proxy(endpoint_url: str) -> AsyncIterator[CountingProxy]:
    """A :class:`CountingProxy` in front of this test's (wiped) moto server.

    A watchdog takes it down after ``PROXY_DEADLINE_SECS``: whatever waits on it
    then gets a connection error, and the test fails at teardown instead of hanging.
    """

    async def watchdog() -> None:
        await asyncio.sleep(PROXY_DEADLINE_SECS)
        counting.errors.append(TimeoutError(f"test still running after {PROXY_DEADLINE_SECS} s"))
        counting.go_down()

    async with CountingProxy(endpoint_url) as counting:
        dog = asyncio.ensure_future(watchdog())
        try:
            yield counting
        finally:
            dog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dog
    assert counting.errors == [], f"the proxy failed: {counting.errors!r}"


def fail_fast_config() -> AioConfig:
    """Two attempts and short timeouts: an outage fails a call in a second or two."""
    return AioConfig(
        retries={"mode": "standard", "total_max_attempts": 2},
        connect_timeout=2,
        read_timeout=5,
    )


@pytest.fixture
def make_proxied_repo(proxy: CountingProxy, make_repo: RepoFactory) -> RepoFactory:
    """Build (unopened) repositories that talk to moto through ``proxy``, failing fast."""

    def make(**kwargs: Unpack[RepoSettings]) -> ArtifactRepository:
        settings: RepoSettings = {
            "endpoint_url": proxy.endpoint_url,
            "client_config": fail_fast_config(),
            **kwargs,
        }
        return make_repo(**settings)

    return make


@pytest.fixture
def make_proxied_table_repo(
    proxy: CountingProxy, make_table_repo: TableRepoFactory
) -> TableRepoFactory:
    """``make_proxied_repo`` for the tests of the DynamoDB layout's own methods and
    settings: a :class:`Repository` through ``proxy``, failing fast."""

    def make(**kwargs: Unpack[TableRepoSettings]) -> Repository:
        settings: TableRepoSettings = {
            "endpoint_url": proxy.endpoint_url,
            "client_config": fail_fast_config(),
            **kwargs,
        }
        return make_table_repo(**settings)

    return make


# -- shared by the feature tests -------------------------------------------------------


class FakeClock:
    """Wall-clock seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def published(repo: ArtifactRepository, name: str = "app", count: int = 3) -> None:
    """Versions 1..count of ``name``, with contents b"v1", b"v2", ..."""
    for n in range(count):
        await repo.put_artifact(name, f"v{n + 1}".encode())
        await repo.publish_artifact_version(name)


@pytest.fixture
async def other(make_repo: RepoFactory) -> AsyncIterator[ArtifactRepository]:
    """A second client of the same repository: "someone else", a concurrent writer."""
    async with make_repo() as repository:
        yield repository


@pytest.fixture
async def writer(make_repo: RepoFactory) -> AsyncIterator[ArtifactRepository]:
    """A bootstrapped repository without cache or proxy: the publisher side."""
    async with make_repo() as repo:
        await repo.bootstrap()
        yield repo


@pytest.fixture
async def five_versions(repo: ArtifactRepository) -> ArtifactRepository:
    """``app`` with versions 1..5 (contents b"v1".. b"v5") and LATEST = version 5."""
    for n in range(1, 6):
        await repo.put_artifact("app", f"v{n}".encode())
        await repo.publish_artifact_version("app")
    return repo


async def versions(repo: ArtifactRepository, name: str = "app") -> list[str]:
    """The visible versions of ``name``, as listed."""
    return [a.version for a in await repo.list_artifact_versions(name)]
