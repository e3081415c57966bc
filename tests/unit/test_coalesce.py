"""Coalescer: keys asked in one loop turn reach ``fetch_many`` together."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Mapping, Sequence

import pytest

from versioned_async._coalesce import Coalescer


class Recorder:
    """A ``fetch_many`` that records its calls and answers ``key * 10`` for even keys."""

    def __init__(self, *, fail: type[Exception] | None = None, pause: float = 0.0) -> None:
        self.calls: list[list[int]] = []
        self.fail = fail
        self.pause = pause

    async def __call__(self, keys: Sequence[int]) -> Mapping[int, int]:
        self.calls.append(list(keys))
        if self.pause:
            await asyncio.sleep(self.pause)
        if self.fail is not None:
            raise self.fail("down")
        return {k: k * 10 for k in keys if k % 2 == 0}


async def test_one_turn_is_one_call_and_missing_keys_give_none() -> None:
    fetch = Recorder()
    coalesce = Coalescer(fetch)
    assert await asyncio.gather(*(coalesce(k) for k in range(6))) == [0, None, 20, None, 40, None]
    assert fetch.calls == [[0, 1, 2, 3, 4, 5]]


async def test_separate_turns_are_separate_calls() -> None:
    fetch = Recorder()
    coalesce = Coalescer(fetch)
    assert await coalesce(2) == 20
    assert await coalesce(4) == 40
    assert fetch.calls == [[2], [4]]


async def test_duplicates_are_asked_once() -> None:
    fetch = Recorder()
    coalesce = Coalescer(fetch)
    assert await asyncio.gather(coalesce(2), coalesce(2), coalesce(3)) == [20, 20, None]
    assert fetch.calls == [[2, 3]]


async def test_limit_splits_a_turn_into_calls() -> None:
    fetch = Recorder()
    coalesce = Coalescer(fetch, limit=4)
    await asyncio.gather(*(coalesce(k) for k in range(10)))
    assert fetch.calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


async def test_an_error_reaches_every_caller_of_that_call() -> None:
    coalesce = Coalescer(Recorder(fail=OSError))
    results = await asyncio.gather(coalesce(1), coalesce(2), return_exceptions=True)
    assert [type(r) for r in results] == [OSError, OSError]


async def test_a_cancelled_caller_leaves_the_call_to_the_others() -> None:
    fetch = Recorder(pause=0.05)
    coalesce = Coalescer(fetch)
    first = asyncio.ensure_future(coalesce(2))
    second = asyncio.ensure_future(coalesce(2))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == 20
    assert first.cancelled()
    assert fetch.calls == [[2]]


async def test_an_error_nobody_awaits_is_not_reported_as_unretrieved() -> None:
    reported: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
    coalesce = Coalescer(Recorder(fail=OSError, pause=0.02))
    caller = asyncio.ensure_future(coalesce(1))
    await asyncio.sleep(0)
    caller.cancel()
    await asyncio.sleep(0.05)  # the call fails with nobody left waiting
    del caller, coalesce
    gc.collect()
    assert reported == []


def test_limit_must_be_positive() -> None:
    async def fetch(keys: Sequence[int]) -> Mapping[int, int]:
        return {}

    with pytest.raises(ValueError, match="at least 1"):
        Coalescer(fetch, limit=0)


def test_one_instance_serves_two_event_loops() -> None:
    fetch = Recorder()
    coalesce = Coalescer(fetch)

    async def ask() -> list[int | None]:
        return await asyncio.gather(coalesce(2), coalesce(4))

    assert asyncio.run(ask()) == [20, 40]
    assert asyncio.run(ask()) == [20, 40]
    assert fetch.calls == [[2, 4], [2, 4]]
