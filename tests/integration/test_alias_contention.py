"""Concurrent alias moves without a token: each one lands (issue 15, item 13)."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import RepoFactory
from tests.integration.conftest import published
from versioned_async import Repository

pytestmark = pytest.mark.both_backends

#: concurrent writers on one alias, over two clients
WRITERS = 20


async def test_twenty_concurrent_moves_without_a_token_all_succeed(
    make_repo: RepoFactory, backend: str
) -> None:
    async with make_repo() as a, make_repo() as b:
        await a.bootstrap()
        await published(a)
        results = await asyncio.gather(
            *((a if n % 2 else b).put_alias("app", "prod", 1 + n % 3) for n in range(WRITERS)),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        assert failures == [], f"{len(failures)} of {WRITERS} moves failed: {failures[:2]!r}"
        final = await a.get_alias("app", "prod")
        assert final in results
        if backend == "dynamodb":  # each move is recorded, one chain
            assert isinstance(a, Repository)  # the DynamoDB layout's history
            changes = [c async for c in a.iter_alias_history("app", "prod")]
            assert len(changes) == WRITERS
            assert all(c.recorded for c in changes)
