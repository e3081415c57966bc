"""Repository.watch_alias: the current alias first, then each change, whoever makes it.

Polls are tiny (``interval=0.01``); every wait is bounded by ``asyncio.wait_for``
and "nothing was yielded" is judged after a counted number of polls seen by the
proxy, never after a length of time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import RepoFactory
from tests.integration.conftest import published
from tests.interop import conftest as interop
from tests.proxy import CountingProxy
from versioned_async import Alias, ArtifactRepository, Repository
from versioned_async.exc import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RepositoryClosedError,
)

pytestmark = pytest.mark.both_backends

# `versioned` 1.0.1 on this test's moto server: the interop suite's fixtures, reused
aws_endpoint_env = interop.aws_endpoint_env
botocore_loader = interop.botocore_loader
bsm = interop.bsm
make_theirs = interop.make_theirs

#: seconds any single wait may take before the test fails (the server is shared and slow)
BOUND = 30
FAST = 0.01


def target(alias: Alias) -> tuple[str, str | None, int | None]:
    return (alias.version, alias.secondary_version, alias.secondary_version_weight)


async def next_of(changes: AsyncIterator[Alias]) -> Alias:
    return await asyncio.wait_for(changes.__anext__(), BOUND)


class Collector:
    """Consumes a watch in a task, keeping what it yields."""

    def __init__(self, changes: AsyncGenerator[Alias, None]) -> None:
        self.changes = changes
        self.seen: list[Alias] = []
        self.taken = 0  # how many of ``seen`` next() has returned
        self.arrived = asyncio.Event()
        self.task = asyncio.ensure_future(self._consume())

    async def _consume(self) -> None:
        async for alias in self.changes:
            self.seen.append(alias)
            self.arrived.set()

    async def next(self) -> Alias:
        """The next alias yielded that was not returned yet: one yielded before the
        call (while the test awaited its own write) counts, it is not waited past."""
        while len(self.seen) == self.taken:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), BOUND)
        self.taken += 1
        return self.seen[self.taken - 1]

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task
        await self.changes.aclose()


@pytest.fixture
def poll_op(backend: str) -> str:
    """The request one poll sends: the alias item, or in the S3-only layout its object."""
    return "GetObject" if backend == "s3" else "GetItem"


async def polls(proxy: CountingProxy, n: int, op: str) -> None:
    """Wait until ``n`` more ``op`` requests (polls) went through the proxy."""
    goal = proxy.count(op) + n

    async def enough() -> None:
        while proxy.count(op) < goal:  # noqa: ASYNC110 - counting the proxy's requests
            await asyncio.sleep(FAST)

    await asyncio.wait_for(enough(), BOUND)


@pytest.fixture
async def watcher(make_proxied_repo: RepoFactory) -> AsyncIterator[ArtifactRepository]:
    """The watching repository, talking through the counting proxy."""
    async with make_proxied_repo() as repository:
        yield repository


async def test_the_current_alias_comes_first(repo: Repository) -> None:
    await published(repo)
    alias = await repo.put_alias("app", "prod", 1)
    changes = repo.watch_alias("app", "prod", interval=FAST)
    try:
        assert await next_of(changes) == alias
    finally:
        await changes.aclose()


async def test_a_change_by_another_repository_is_seen(repo: Repository, other: Repository) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1)
    changes = repo.watch_alias("app", "prod", interval=FAST, jitter=0)
    try:
        await next_of(changes)
        moved = await other.put_alias(
            "app", "prod", 1, secondary_version=2, secondary_version_weight=10
        )
        assert await next_of(changes) == moved
        again = await other.put_alias("app", "prod", 2)
        assert await next_of(changes) == again
    finally:
        await changes.aclose()


@pytest.mark.dynamodb_layout("tests/interop covers the S3-only layout's `versioned`")
async def test_a_change_by_versioned_1_0_is_seen(
    repo: Repository, make_theirs: Callable[..., Any]
) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1)
    theirs = make_theirs(repo)
    changes = repo.watch_alias("app", "prod", interval=FAST)
    try:
        await next_of(changes)
        theirs.put_alias("app", "prod", version=2, secondary_version=3, secondary_version_weight=40)
        seen = await next_of(changes)
        assert target(seen) == ("2", "3", 40)
        assert seen == await repo.get_alias("app", "prod")
    finally:
        await changes.aclose()


async def test_nothing_is_yielded_while_nothing_changes(
    repo: Repository,
    watcher: Repository,
    proxy: CountingProxy,
    poll_op: str,
) -> None:
    await published(repo)
    alias = await repo.put_alias("app", "prod", 1)
    watch = Collector(watcher.watch_alias("app", "prod", interval=FAST))
    try:
        assert await watch.next() == alias
        await polls(proxy, 10, poll_op)
        assert watch.seen == [alias]
        moved = await repo.put_alias("app", "prod", 2)
        assert await watch.next() == moved
        await polls(proxy, 10, poll_op)
        assert watch.seen == [alias, moved]
    finally:
        await watch.stop()


async def test_a_move_to_the_same_versions_is_still_a_change(
    repo: Repository, other: Repository
) -> None:
    await published(repo)
    first = await repo.put_alias("app", "prod", 1)
    changes = repo.watch_alias("app", "prod", interval=FAST)
    try:
        assert await next_of(changes) == first
        again = await other.put_alias("app", "prod", 1)  # same target, new update_at
        seen = await next_of(changes)
        assert seen == again
        assert seen.update_at > first.update_at
    finally:
        await changes.aclose()


async def test_a_missing_alias_yields_nothing_until_it_exists_and_is_logged_once(
    repo: Repository,
    watcher: Repository,
    proxy: CountingProxy,
    caplog: pytest.LogCaptureFixture,
    poll_op: str,
) -> None:
    await published(repo)
    caplog.set_level(logging.INFO, logger="versioned_async")
    watch = Collector(watcher.watch_alias("app", "prod", interval=FAST))
    try:
        await polls(proxy, 10, poll_op)
        assert watch.seen == []
        created = await repo.put_alias("app", "prod", 1)
        assert await watch.next() == created
        await repo.delete_alias("app", "prod")
        await polls(proxy, 10, poll_op)
        assert watch.seen == [created]
        back = await repo.put_alias("app", "prod", 2)
        assert await watch.next() == back
    finally:
        await watch.stop()
    absent = [r for r in caplog.records if "does not exist" in r.getMessage()]
    assert [r.levelno for r in absent] == [logging.INFO, logging.INFO]  # once per absence


async def test_a_transient_outage_is_logged_and_survived(
    repo: Repository,
    watcher: Repository,
    proxy: CountingProxy,
    caplog: pytest.LogCaptureFixture,
    poll_op: str,
) -> None:
    await published(repo)
    alias = await repo.put_alias("app", "prod", 1)
    watch = Collector(watcher.watch_alias("app", "prod", interval=FAST))
    try:
        assert await watch.next() == alias
        proxy.inject_errors(6, 503, op=poll_op)  # two attempts per poll: three polls fail
        await polls(proxy, 8, poll_op)
        assert proxy.pending_faults == []
        moved = await repo.put_alias("app", "prod", 3)
        assert await watch.next() == moved
    finally:
        await watch.stop()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("watching alias 'prod' of 'app'" in r.getMessage() for r in warnings)


async def test_a_full_outage_is_survived(
    repo: Repository,
    watcher: Repository,
    proxy: CountingProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await published(repo)
    alias = await repo.put_alias("app", "prod", 1)
    watch = Collector(watcher.watch_alias("app", "prod", interval=FAST))

    async def failed_polls(n: int) -> None:
        while sum(r.levelno == logging.WARNING for r in caplog.records) < n:  # noqa: ASYNC110
            await asyncio.sleep(FAST)

    try:
        assert await watch.next() == alias
        proxy.go_down()
        moved = await repo.put_alias("app", "prod", 2)  # not through the proxy
        await asyncio.wait_for(failed_polls(2), BOUND)
        assert watch.seen == [alias]
        proxy.come_back()
        assert await watch.next() == moved
    finally:
        await watch.stop()


async def test_stopping_the_consumer_ends_the_watch_cleanly(repo: Repository) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1)
    changes = repo.watch_alias("app", "prod", interval=FAST)
    await next_of(changes)
    await changes.aclose()
    with pytest.raises(StopAsyncIteration):
        await changes.__anext__()

    seen = []
    async for alias in repo.watch_alias("app", "prod", interval=FAST):
        seen.append(alias)
        break
    assert len(seen) == 1


async def test_closing_the_repository_ends_the_watch_with_repository_closed(
    repo: Repository, make_repo: RepoFactory
) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1)
    closing = make_repo()
    await closing.open()
    changes = closing.watch_alias("app", "prod", interval=FAST)
    try:
        await next_of(changes)
        await closing.close()
        with pytest.raises(RepositoryClosedError):
            await next_of(changes)
    finally:
        await changes.aclose()
        await closing.close()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"interval": 0}, InvalidArgumentError),
        ({"interval": -1}, InvalidArgumentError),
        ({"interval": float("nan")}, InvalidArgumentError),
        ({"interval": float("inf")}, InvalidArgumentError),
        ({"interval": "30"}, InvalidArgumentTypeError),
        ({"interval": True}, InvalidArgumentTypeError),
        ({"jitter": 1}, InvalidArgumentError),
        ({"jitter": -0.1}, InvalidArgumentError),
        ({"jitter": float("nan")}, InvalidArgumentError),
        ({"jitter": None}, InvalidArgumentTypeError),
    ],
)
def test_bad_arguments_are_refused_when_called(
    make_repo: RepoFactory, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        make_repo().watch_alias("app", "prod", **kwargs)


def test_bad_names_are_refused_when_called(make_repo: RepoFactory) -> None:
    with pytest.raises(InvalidArgumentError):
        make_repo().watch_alias("app", "pr-od")
