"""Alias history and ``as_of`` with writers whose clocks disagree (issue 15, item 12).

The skewed writer is a real process whose clock runs an hour fast: it stamps what it
writes with ``versioned_async._codec.utcnow`` (every item the library writes is
stamped through that one function), which that process replaces with a fast one.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from datetime import datetime, timedelta, timezone

from tests.conftest import BUCKET, REGION, TABLE, TableRepoFactory
from tests.integration.conftest import published

FAST_WRITER = """
import asyncio, sys
from datetime import timedelta
from versioned_async import Repository, _codec

_real = _codec.utcnow
_codec.utcnow = lambda: _real() + timedelta(hours=1)  # this machine's clock is an hour fast


async def main() -> None:
    async with Repository(
        aws_region=sys.argv[2], s3_bucket=sys.argv[3], dynamodb_table_name=sys.argv[4],
        endpoint_url=sys.argv[1], actor="fast-clock",
    ) as repo:
        await repo.put_alias("app", "prod", int(sys.argv[5]))


asyncio.run(main())
"""


async def move_with_a_fast_clock(endpoint_url: str, version: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        FAST_WRITER,
        endpoint_url,
        REGION,
        BUCKET,
        TABLE,
        str(version),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()


async def test_a_writer_with_a_fast_clock_does_not_hold_back_later_changes(
    make_table_repo: TableRepoFactory, endpoint_url: str
) -> None:
    async with make_table_repo() as repo:
        await repo.bootstrap()
        await published(repo)
        await repo.put_alias("app", "prod", 1)
        await move_with_a_fast_clock(endpoint_url, 2)
        third = await repo.put_alias("app", "prod", 3)
        now = datetime.now(timezone.utc)

        assert await repo.get_alias("app", "prod") == third
        assert (await repo.get_alias("app", "prod", as_of=now)).version == "3"
        # the correct clock's change is dated by the correct clock
        assert abs(third.update_at - now) < timedelta(minutes=1)

        changes = [c async for c in repo.iter_alias_history("app", "prod")]
        assert [c.after.version for c in changes if c.after] == ["3", "2", "1"]  # as made
        assert [c.actor for c in changes] == ["tests", "fast-clock", "tests"]
        for newer, older in itertools.pairwise(changes):
            assert newer.before == older.after  # one chain, nothing lost


async def test_after_the_fast_writers_date_the_newest_change_still_wins(
    make_table_repo: TableRepoFactory, endpoint_url: str
) -> None:
    """``as_of`` a time after every change's date: the newest change, as made."""
    async with make_table_repo() as repo:
        await repo.bootstrap()
        await published(repo)
        await repo.put_alias("app", "prod", 1)
        await move_with_a_fast_clock(endpoint_url, 2)
        await repo.put_alias("app", "prod", 3)
        later = datetime.now(timezone.utc) + timedelta(hours=2)
        assert (await repo.get_alias("app", "prod", as_of=later)).version == "3"
