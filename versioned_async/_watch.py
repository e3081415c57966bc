"""Following an alias: the poll loop behind
:meth:`~versioned_async._base.ArtifactRepository.watch_alias`.

It reads the alias through the callables it is given (a consistent read of
the catalog, the façade's model and cache), so it serves both layouts and
knows neither.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import AsyncGenerator, Awaitable, Callable

from ._codec import AliasItem
from .exc import BackendError, InvalidArgumentError, InvalidArgumentTypeError, RepositoryClosedError
from .models import Alias

__all__ = ["check_polling", "watch"]

log = logging.getLogger("versioned_async")


def _seconds(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentTypeError(f"{what} must be a number, not {type(value).__name__}")
    return float(value)


def check_polling(interval: object, jitter: object) -> tuple[float, float]:
    """``interval`` (seconds, > 0) and ``jitter`` (0 to less than 1) as floats, or a
    clear error."""
    seconds, spread = _seconds("interval", interval), _seconds("jitter", jitter)
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidArgumentError(f"interval must be a number of seconds > 0, got {interval}")
    if not 0 <= spread < 1:
        raise InvalidArgumentError(f"jitter must be from 0 to less than 1, got {jitter}")
    return seconds, spread


async def watch(
    read: Callable[[], Awaitable[AliasItem | None]],
    model: Callable[[AliasItem], Alias],
    remember: Callable[[AliasItem], Awaitable[None]],
    is_open: Callable[[], bool],
    where: tuple[str, str],
    interval: float,
    jitter: float,
) -> AsyncGenerator[Alias, None]:
    """Yield the alias ``read`` returns, now and each time it changes, polling every
    ``interval`` seconds times a random factor within ``1 ± jitter``; ``where`` is
    ``(name, alias)`` for the logs and errors."""
    name, alias = where
    seen: Alias | None = None
    absent = False  # logged that it does not exist
    while True:
        try:  # a closed repository raises RepositoryClosedError here
            record = await read()
        except BackendError as err:
            if not is_open():
                raise RepositoryClosedError(
                    f"the Repository was closed while watching alias {alias!r} of {name!r}"
                ) from err
            log.warning("watching alias %r of %r: %s; polling on", alias, name, err)
        else:
            if record is None:
                if not absent:
                    log.info("watching alias %r of %r: it does not exist", alias, name)
                absent = True
            else:
                absent = False
                now = model(record)
                if now != seen:
                    seen = now
                    await remember(record)
                    yield now
        await asyncio.sleep(interval * random.uniform(1 - jitter, 1 + jitter))
