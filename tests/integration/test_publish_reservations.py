"""Reservations of publishers that crashed are reclaimed (issue 15, item 3).

Each crashed publisher is a real process SIGKILLed by itself at the worst moment: its
number reserved and LATEST copied to that number's key, the completion not yet sent.
A reservation is stale once older than ``Repository(reservation_timeout_secs=...)``
(an hour by default); the reclaiming side is moved two hours on through the
library's one clock, ``versioned_async._codec.utcnow``.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import BUCKET, REGION, TABLE
from tests.integration.test_faults import leftover_reservations
from versioned_async import Repository, _codec

CRASHING_PUBLISHER = """
import asyncio, os, signal, sys
from versioned_async import Repository


async def main() -> None:
    async with Repository(
        aws_region=sys.argv[2], s3_bucket=sys.argv[3], dynamodb_table_name=sys.argv[4],
        endpoint_url=sys.argv[1], actor="crash",
    ) as repo:
        table = repo._catalog.table

        async def update_item(*args, **kwargs):  # the completion: die before sending it
            os.kill(os.getpid(), signal.SIGKILL)

        table.update_item = update_item
        await repo.publish_artifact_version("app")


asyncio.run(main())
"""


async def crash_while_publishing(endpoint_url: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_PUBLISHER, endpoint_url, REGION, BUCKET, TABLE
    )
    assert await asyncio.wait_for(proc.wait(), 60) == -9  # killed by SIGKILL


async def objects(s3: Any) -> list[str]:
    resp = await s3.list_objects_v2(Bucket=BUCKET, Prefix="versioned-artifacts/app/")
    return sorted(o["Key"].rsplit("/", 1)[1] for o in resp.get("Contents", []))


def hours_later(monkeypatch: pytest.MonkeyPatch, hours: float = 2) -> None:
    real = _codec.utcnow
    monkeypatch.setattr(_codec, "utcnow", lambda: real() + timedelta(hours=hours))


async def test_crashed_publishers_leave_hidden_reservations_and_objects(
    repo: Repository, endpoint_url: str, dynamodb: Any, s3: Any
) -> None:
    """The crashed state itself, as the issue found it."""
    await repo.put_artifact("app", b"x")
    for _ in range(3):
        await crash_while_publishing(endpoint_url)
    assert await leftover_reservations(dynamodb, "app") == ["000001", "000002", "000003"]
    assert await objects(s3) == ["000001", "000002", "000003", "LATEST"]


async def test_a_later_publish_reclaims_stale_reservations_and_their_objects(
    repo: Repository, endpoint_url: str, dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await repo.put_artifact("app", b"x")
    for _ in range(3):
        await crash_while_publishing(endpoint_url)
    hours_later(monkeypatch)
    published = await repo.publish_artifact_version("app")
    assert published.version == "1"  # no number skipped: the crashed ones are handed out again
    assert await leftover_reservations(dynamodb, "app") == []
    assert await objects(s3) == ["000001", "LATEST"]
    assert [a.version for a in await repo.list_artifact_versions("app")] == ["LATEST", "1"]
    assert await repo.get_content("app", 1) == b"x"


async def test_a_young_reservation_is_left_to_its_publisher(
    repo: Repository, endpoint_url: str, dynamodb: Any
) -> None:
    await repo.put_artifact("app", b"x")
    await crash_while_publishing(endpoint_url)
    assert (await repo.publish_artifact_version("app")).version == "2"
    assert await leftover_reservations(dynamodb, "app") == ["000001"]


async def test_a_purge_reclaims_a_stale_reservation_below_published_versions(
    repo: Repository, endpoint_url: str, dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A number a crashed publisher held under a later version stays a gap (numbers
    only increase), but its reservation and its object go."""
    await repo.put_artifact("app", b"x")
    await crash_while_publishing(endpoint_url)
    assert (await repo.publish_artifact_version("app")).version == "2"
    hours_later(monkeypatch)
    await repo.purge_artifact_versions("app", keep_last_n=10)
    assert await leftover_reservations(dynamodb, "app") == []
    assert await objects(s3) == ["000002", "LATEST"]
    assert (await repo.publish_artifact_version("app")).version == "3"


async def test_the_timeout_is_a_setting(
    make_repo: Any, endpoint_url: str, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moved two minutes on, a reservation is stale under a one-minute timeout (the
    shortest accepted); under the default hour it is not (the test above)."""
    async with make_repo(reservation_timeout_secs=60) as repo:
        await repo.bootstrap()
        await repo.put_artifact("app", b"x")
        await crash_while_publishing(endpoint_url)
        hours_later(monkeypatch, hours=2 / 60)
        assert (await repo.publish_artifact_version("app")).version == "1"
        assert await leftover_reservations(dynamodb, "app") == []
