"""Concurrent steps of one call, all or nothing: when one fails, the others are cancelled.

Why: ``asyncio.gather`` raises the first failure and leaves the other awaitables
running. In a library call that means a request (or a write) still going on
after the caller was told the call failed, racing whatever the caller does
next. Here a failure cancels the siblings and waits until they are gone before
it propagates, as a ``TaskGroup`` would (which Python 3.10 lacks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar, overload

__all__ = ["bounded_gather", "gather_or_cancel"]

_T = TypeVar("_T")
_T1 = TypeVar("_T1")
_T2 = TypeVar("_T2")
_T3 = TypeVar("_T3")


@overload
async def gather_or_cancel(a: Awaitable[_T1], b: Awaitable[_T2], /) -> tuple[_T1, _T2]: ...


@overload
async def gather_or_cancel(
    a: Awaitable[_T1], b: Awaitable[_T2], c: Awaitable[_T3], /
) -> tuple[_T1, _T2, _T3]: ...


@overload
async def gather_or_cancel(*aws: Awaitable[_T]) -> tuple[_T, ...]: ...


async def gather_or_cancel(*aws: Awaitable[Any]) -> tuple[Any, ...]:
    """The results of ``aws`` in order; on the first failure the rest are cancelled."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        return tuple(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def bounded_gather(coros: Iterable[Awaitable[_T]], limit: int) -> list[_T]:
    """:func:`gather_or_cancel` with at most ``limit`` awaitables in flight."""
    semaphore = asyncio.Semaphore(limit)

    async def run(aw: Awaitable[_T]) -> _T:
        async with semaphore:
            return await aw

    return list(await gather_or_cancel(*(run(c) for c in coros)))
