"""How long the library waits between attempts, and the testing switch that removes the waits.

Why: a retry is only as good as the pause before it. In production botocore
backs off exponentially with jitter (up to 20 s for throttling), and the
library's own loops (a resumed download, unprocessed BatchGetItem keys) pause
briefly too. A test suite that injects hundreds of faults would spend most of
its time asleep in those pauses while proving nothing more than that the retry
was sent. :func:`set_testing` (the idea of stamina's ``set_testing``) keeps
every attempt and takes the waits away: botocore still decides whether and how
often to retry, each retry is still sent, and only the sleep before it becomes
a bare event-loop turn. Timeouts shrink too, so a fault that holds a response
back fails an attempt in seconds, not a minute.

Switched when a repository is opened: its clients, created on first use, get
the pace of that moment and keep it until the repository is closed.
"""

from __future__ import annotations

import asyncio
from math import inf
from typing import Any

import attrs
from aiobotocore.config import AioConfig

__all__ = ["TestingPace", "client_config", "is_testing", "pace_client", "pause", "set_testing"]


@attrs.frozen
class TestingPace:
    """What changes while testing: no backoff, and these timeouts (seconds)."""

    connect_timeout: float = 2.0
    read_timeout: float = 10.0


_testing: TestingPace | None = None


def set_testing(testing: bool, *, connect_timeout: float = 2.0, read_timeout: float = 10.0) -> None:
    """Turn the testing pace on (no backoff, short timeouts) or off (production)."""
    global _testing  # noqa: PLW0603 - one process-wide switch, as stamina's
    for what, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < inf:
            raise ValueError(f"{what} must be a positive number of seconds, got {value!r}")
    _testing = TestingPace(float(connect_timeout), float(read_timeout)) if testing else None


def is_testing() -> bool:
    """Whether repositories opened now get the testing pace (their clients keep it)."""
    return _testing is not None


def client_config(production: AioConfig) -> AioConfig:
    """``production``, with the testing timeouts merged over it while testing."""
    if _testing is None:
        return production
    return production.merge(
        AioConfig(connect_timeout=_testing.connect_timeout, read_timeout=_testing.read_timeout)
    )


async def _next_turn(_seconds: float) -> None:
    await asyncio.sleep(0)


def pace_client(client: Any, *, testing: bool | None = None) -> None:
    """While testing, make botocore's retry backoff on ``client`` a bare loop turn.

    aiobotocore's endpoint sleeps the delay that the retry handler computed in
    its ``_sleep`` method (a seam it keeps for its anyio endpoint); replacing it
    on this client's endpoint keeps every retry decision and attempt as they are.
    ``testing``: the switch as it was when the repository was opened (its
    clients are created later, on first use); ``None``: as it is now.
    """
    if not (is_testing() if testing is None else testing):
        return
    endpoint = getattr(client, "_endpoint", None)
    if endpoint is None or not callable(getattr(endpoint, "_sleep", None)):
        raise RuntimeError(
            "set_testing(True) cannot remove botocore's backoff from this aiobotocore "
            "version (its endpoint has no _sleep); call set_testing(False)"
        )
    endpoint._sleep = _next_turn


async def pause(seconds: float) -> None:
    """The library's own pause before another attempt: ``seconds``, or one loop turn
    while testing."""
    await asyncio.sleep(0 if _testing is not None else seconds)
