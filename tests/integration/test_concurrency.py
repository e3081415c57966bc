"""Race safety: concurrent publishers and a put racing a publish."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from versioned_async import Repository

pytestmark = pytest.mark.both_backends


def numbers_for_twenty_publishes(backend: str) -> list[int]:
    """What 20 concurrent publishes of one unchanged LATEST return: 20 new versions, or
    in the S3-only layout (which, as `versioned`, publishes an unchanged LATEST once)
    one version, the same for every publisher."""
    return list(range(1, 21)) if backend == "dynamodb" else [1] * 20


async def test_twenty_concurrent_publishers_get_distinct_dense_numbers(
    repo: Repository, backend: str
) -> None:
    await repo.put_artifact("app", b"x")
    published = await asyncio.gather(*(repo.publish_artifact_version("app") for _ in range(20)))
    numbers = numbers_for_twenty_publishes(backend)
    assert sorted(int(a.version) for a in published) == numbers
    listed = [a.version for a in await repo.list_artifact_versions("app")]
    assert listed == ["LATEST", *(str(n) for n in sorted(set(numbers), reverse=True))]


async def test_publishers_on_separate_clients_never_share_a_number(
    make_repo: Any, backend: str
) -> None:
    async with make_repo() as a, make_repo() as b:
        await a.bootstrap()
        await a.put_artifact("app", b"x")
        published = await asyncio.gather(*(r.publish_artifact_version("app") for r in [a, b] * 10))
    assert sorted(int(x.version) for x in published) == numbers_for_twenty_publishes(backend)


async def test_put_racing_publish_never_pairs_content_with_another_sha256(make_repo: Any) -> None:
    """Two clients: one keeps putting new content while the other publishes."""
    async with make_repo() as writer, make_repo() as publisher:
        await writer.bootstrap()
        await writer.put_artifact("app", b"content 0")

        async def keep_putting() -> None:
            for n in range(1, 16):
                await writer.put_artifact("app", f"content {n}".encode())

        async def keep_publishing() -> list[Any]:
            return [await publisher.publish_artifact_version("app") for _ in range(15)]

        _, published = await asyncio.gather(keep_putting(), keep_publishing())
        contents = {f"content {n}".encode() for n in range(16)}
        for art in published:
            body = await publisher.get_content("app", art.version)  # checks sha256 too
            assert hashlib.sha256(body).hexdigest() == art.sha256
            assert body in contents


async def test_concurrent_puts_leave_latest_item_matching_its_object(make_repo: Any) -> None:
    async with make_repo() as a, make_repo() as b:
        await a.bootstrap()
        await asyncio.gather(
            *(r.put_artifact("app", f"from {i}".encode()) for i, r in enumerate([a, b] * 5))
        )
        latest = await a.get_artifact_version("app")
        assert hashlib.sha256(await a.get_content("app")).hexdigest() == latest.sha256
