"""Coalescing: requests made at the same time share one call.

- :class:`Coalescer`: requests for many keys made in one event-loop turn
  become one call. Why: a service starting 100 artifacts at once asks for 100
  aliases, then 100 versions, in the same few loop turns. Sent one by one they
  cost 100 requests (or 100 thread hops to the cache's SQLite) each, and
  request rate, not round-trip time, is what limits a start-up. Gathered per
  turn they cost one call per step, and every lookup still leaves in the turn
  it was asked, so a lone lookup is not delayed.
- :class:`SingleFlight`: concurrent requests for one key share one call (50
  readers of a version that is not cached make one download).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["Coalescer", "SingleFlight"]

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")
_T = TypeVar("_T")


class Coalescer(Generic[_K, _V]):
    """``await coalescer(key)``: the value ``fetch_many`` returns for ``key``, or ``None``.

    Keys asked in one loop turn are passed to ``fetch_many`` together, at most
    ``limit`` per call, each key once (duplicates share the answer). A key
    missing from the returned mapping gives ``None``. An exception raised by
    ``fetch_many`` is raised to every caller of that call. A caller that is
    cancelled does not cancel the call for the others.
    """

    def __init__(
        self,
        fetch_many: Callable[[Sequence[_K]], Awaitable[Mapping[_K, _V]]],
        *,
        limit: int | None = None,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        self._fetch_many = fetch_many
        self._limit = limit
        # per loop, so one instance may serve event loops in several threads
        self._pending: dict[asyncio.AbstractEventLoop, dict[_K, asyncio.Future[_V | None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, key: _K) -> _V | None:
        loop = asyncio.get_running_loop()
        pending = self._pending.get(loop)
        if pending is None:  # the first key of this turn: the batch leaves at its end
            pending = self._pending[loop] = {}
            loop.call_soon(self._flush, loop)
        future = pending.get(key)
        if future is None:
            future = pending[key] = loop.create_future()
            future.add_done_callback(_retrieve)
        return await asyncio.shield(future)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending.pop(loop, {})
        keys = list(batch)
        step = self._limit or len(keys) or 1
        for start in range(0, len(keys), step):
            chunk = {k: batch[k] for k in keys[start : start + step]}
            task = loop.create_task(self._run(chunk))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, chunk: dict[_K, asyncio.Future[_V | None]]) -> None:
        try:
            found = await self._fetch_many(list(chunk))
        except Exception as err:  # every caller raises it
            for future in chunk.values():
                if not future.done():
                    future.set_exception(err)
            return
        except BaseException:  # cancelled (the loop is shutting down): so are the callers
            for future in chunk.values():
                future.cancel()
            raise
        for key, future in chunk.items():
            if not future.done():
                future.set_result(found.get(key))


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark an exception as seen: every caller may have been cancelled meanwhile."""
    if not future.cancelled():
        future.exception()


class SingleFlight:
    """``await flights.run(key, make)``: ``make()`` run once for concurrent callers of ``key``.

    Per event loop (one instance may serve loops in several threads). A caller
    that is cancelled does not cancel the shared work; the work's result or
    exception goes to every caller waiting, and is forgotten when it is done.
    """

    def __init__(self) -> None:
        self._inflight: dict[tuple[int, Hashable], asyncio.Future[Any]] = {}

    async def run(self, key: Hashable, make: Callable[[], Awaitable[_T]]) -> _T:
        loop = asyncio.get_running_loop()
        flight_key = (id(loop), key)
        future = self._inflight.get(flight_key)
        if future is None:
            future = asyncio.ensure_future(make())
            self._inflight[flight_key] = future

            def done(fut: asyncio.Future[Any]) -> None:
                self._inflight.pop(flight_key, None)
                _retrieve(fut)  # every waiter may have gone

            future.add_done_callback(done)
        result: _T = await asyncio.shield(future)
        return result

    def in_flight(self) -> list[asyncio.Future[Any]]:
        """The work running now (for a test that cancels it as a shutdown would)."""
        return list(self._inflight.values())
