"""All-or-nothing gathering: a failure cancels the siblings before it propagates."""

from __future__ import annotations

import asyncio

import pytest

from versioned_async._gather import bounded_gather, gather_or_cancel


async def test_results_come_back_in_order() -> None:
    async def after(seconds: float, value: str) -> str:
        await asyncio.sleep(seconds)
        return value

    assert await gather_or_cancel(after(0.02, "a"), after(0, "b"), after(0.01, "c")) == (
        "a",
        "b",
        "c",
    )


@pytest.mark.parametrize("gather", ["gather_or_cancel", "bounded_gather"])
async def test_a_failure_cancels_the_others_before_it_propagates(gather: str) -> None:
    started = asyncio.Event()
    cancelled: list[str] = []

    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise

    async def fails() -> None:
        await started.wait()
        raise LookupError("refused")

    both = (
        gather_or_cancel(slow(), fails())
        if gather == "gather_or_cancel"
        else bounded_gather([slow(), fails()], limit=2)
    )
    with pytest.raises(LookupError, match="refused"):
        await both
    assert cancelled == ["slow"]  # already gone when the caller hears of the failure


async def test_bounded_gather_keeps_at_most_limit_in_flight() -> None:
    in_flight = peak = 0

    async def step(n: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        in_flight -= 1
        return n

    assert await bounded_gather((step(n) for n in range(10)), limit=3) == list(range(10))
    assert peak == 3
