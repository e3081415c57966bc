"""Bytes moved by a transfer, told to whoever watches (the command line's progress bar).

Why a context variable: a download or upload deep below the façade is the only
place that knows how many bytes have arrived, and the one that wants to know
is a caller several layers up (``versioned-async get`` drawing a bar). Setting
a callback for the duration of a call, rather than threading a parameter
through every layer, keeps the API unchanged; tasks started inside the call
inherit it (asyncio copies the context into each task).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["moved", "reporting"]

_WATCHER: ContextVar[Callable[[int], None] | None] = ContextVar(
    "versioned_async_transfer_progress", default=None
)


@contextmanager
def reporting(watcher: Callable[[int], None]) -> Iterator[None]:
    """Within this block, ``watcher(n)`` is called as each ``n`` bytes are transferred
    (received or sent; a part transferred again after a cut counts again)."""
    token = _WATCHER.set(watcher)
    try:
        yield
    finally:
        _WATCHER.reset(token)


def moved(count: int) -> None:
    """Tell the watcher, if any, that ``count`` more bytes were transferred."""
    watcher = _WATCHER.get()
    if watcher is not None:
        watcher(count)
