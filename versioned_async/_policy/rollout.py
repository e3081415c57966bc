"""Progressive roll-outs: the plan is pure, the run talks to AWS only through a ``write``
it is handed, so both are tested without mocking a client.

A roll-out moves an alias from its primary version to ``to_version`` in steps
of traffic weight (10%, 50%, 100% by default). Each step below 100 splits
traffic: primary = the start's primary, secondary = ``to_version`` at that
weight; the step at 100 points the alias at ``to_version`` alone. Every write
is a compare-and-set on the state written (or read) before it, so a change
someone else makes mid-roll-out stops it instead of being overwritten. A
failed check, an error or a cancellation puts the alias back as it started.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

import attrs

from .. import _layout
from .._wording import REASON, STEPS, Words
from ..exc import (
    ConcurrentModificationError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RolloutFailedError,
)
from ..models import Alias
from . import history as _history

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: (primary, secondary, weight), versions in stored form: what an alias points at
Target = tuple[str, str | None, int | None]
#: writes ``target`` with the action and reason if the alias's update_at is still the given one
Write = Callable[[Target, str, datetime, str], Awaitable[Alias]]
#: the caller's health check: ``True`` when the alias as it now is serves well
Check = Callable[[Alias], Awaitable[bool]]

DEFAULT_STEPS = (10, 50, 100)


@attrs.frozen
class Step:
    """One planned write: step ``number`` of ``count``, ``weight`` percent to the new version."""

    number: int
    count: int
    weight: int
    target: Target
    #: "rollout to 3: step 2/3 (50%)"
    label: str
    #: the label with the caller's reason: the history record's reason
    reason: str


def validate_steps(steps: object) -> tuple[int, ...]:
    """Weights in percent, ints strictly increasing within 1..100, the last one 100."""
    if isinstance(steps, str | bytes) or not isinstance(steps, Sequence):
        raise InvalidArgumentTypeError(
            f"steps must be a sequence of ints such as (10, 50, 100), not {type(steps).__name__}"
        )
    weights = tuple(steps)
    given = Words(repr(weights), ",".join(str(w) for w in weights))
    if not weights:
        raise InvalidArgumentError("steps must not be empty: give at least (100,)")
    for weight in weights:
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise InvalidArgumentTypeError(
                STEPS, f" must be ints (percent of traffic), got {weight!r} in ", given
            )
        if not 1 <= weight <= 100:
            raise InvalidArgumentError(
                STEPS, f" must each be from 1 to 100 (percent), got {weight} in ", given
            )
    if any(a >= b for a, b in itertools.pairwise(weights)):
        raise InvalidArgumentError(STEPS, " must be strictly increasing, got ", given)
    if weights[-1] != 100:
        raise InvalidArgumentError(
            STEPS, " must end at 100 (all traffic on the new version), got ", given
        )
    return weights


def validate_bake(bake_seconds: object) -> float:
    """Seconds to wait after each step before checking it: a finite number >= 0."""
    if isinstance(bake_seconds, bool) or not isinstance(bake_seconds, int | float):
        raise InvalidArgumentTypeError(
            f"bake_seconds must be a number, not {type(bake_seconds).__name__}"
        )
    if not (math.isfinite(bake_seconds) and bake_seconds >= 0):
        raise InvalidArgumentError(f"bake_seconds must be a finite number >= 0, got {bake_seconds}")
    return float(bake_seconds)


def _with_reason(text: str, reason: str | None) -> str:
    return text if reason is None else f"{text}; {reason}"


def plan(
    start: Target, to_version: str, weights: Sequence[int], *, reason: str | None, limit: int
) -> list[Step]:
    """The writes that move an alias from ``start`` to ``to_version`` (stored forms).

    The roll-out goes from the start's primary. An alias that already splits
    traffic loses its other canary at the first step; one whose canary is
    already ``to_version`` skips the steps at or below its current weight.
    Each step's history reason, the caller's ``reason`` appended, must fit in
    ``limit`` characters.
    """
    primary, secondary, weight = start
    if to_version == primary:
        raise InvalidArgumentError(
            f"the alias already points at version {_layout.decode_version(to_version)!r}: "
            "nothing to roll out"
        )
    if secondary == to_version and weight is not None:
        weights = [w for w in weights if w > weight]
    public = _layout.decode_version(to_version)
    steps = []
    for n, w in enumerate(weights, start=1):
        label = f"rollout to {public}: step {n}/{len(weights)} ({w}%)"
        target: Target = (to_version, None, None) if w == 100 else (primary, to_version, w)
        steps.append(Step(n, len(weights), w, target, label, _with_reason(label, reason)))
    longest = max(len(step.reason) for step in steps)
    if longest > limit:
        raise InvalidArgumentError(
            REASON,
            f" is too long: with the step description it takes {longest} of the "
            f"{limit} characters a history record keeps; shorten it",
        )
    return steps


def abort_reason(step: Step, why: str, reason: str | None, limit: int) -> str:
    """History reason of putting the alias back after ``step`` failed, cut to ``limit``."""
    text = _with_reason(f"{step.label} failed: {why}; put back as it started", reason)
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def run(
    steps: Sequence[Step],
    *,
    start: Alias,
    start_target: Target,
    write: Write,
    check: Check | None,
    bake_seconds: float,
    reason: str | None,
    limit: int,
) -> list[Alias]:
    """Write ``steps`` one after another, baking and checking each; the aliases written.

    On a failed check (``False`` or an exception) the alias is put back to
    ``start_target`` and :class:`RolloutFailedError` raised, chained from the
    check's exception; the put-back is logged at INFO, as that error says it.
    On a write error or a cancellation it is put back, logged as a WARNING (the
    error does not say it), and the error re-raised. A
    :class:`ConcurrentModificationError` means someone else moved the alias:
    their change stands, nothing is put back.
    A write in flight when the roll-out is cancelled is awaited first, so the
    put-back knows which state it replaces.
    """
    written: list[Alias] = []

    async def put_back(step: Step, why: str, *, told: bool = False) -> None:
        # a warning, unless the error raised next says it (told): a failed check's
        # RolloutFailedError does; a write error or a cancellation does not
        note = abort_reason(step, why, reason, limit)
        level = logging.INFO if told else logging.WARNING
        log.log(level, "roll-out of alias %r of %r: %s", start.alias, start.name, note)
        await write(start_target, _history.ROLLBACK, written[-1].update_at, note)

    async def write_step(step: Step) -> None:
        token = (written[-1] if written else start).update_at
        written.append(await write(step.target, _history.ROLLOUT, token, step.reason))
        log.info("roll-out of alias %r of %r: %s", start.alias, start.name, step.reason)

    step, failure = steps[0], None
    try:
        for step in steps:
            await _to_the_end(write_step(step))
            if bake_seconds > 0:
                await asyncio.sleep(bake_seconds)
            failure = await _verdict(check, written[-1])
            if failure is not None:
                break
    except ConcurrentModificationError:
        raise  # someone else moved the alias: their change stands
    except BaseException as err:  # cancelled (Ctrl-C), or a write failed
        if written:
            why = "cancelled" if isinstance(err, asyncio.CancelledError) else _describe(err)
            try:
                await _to_the_end(put_back(step, why))
            except Exception as failed:
                if isinstance(err, Exception):
                    raise
                # a cancellation (or interrupt) must still end the caller's task
                log.error(
                    "roll-out of alias %r of %r was %s, and putting it back failed: %s",
                    start.alias,
                    start.name,
                    why,
                    _describe(failed),
                )
        raise
    if failure is None:
        return written
    why, cause = failure
    # a ConcurrentModificationError: theirs stands
    await _to_the_end(put_back(step, why, told=True))
    raise RolloutFailedError(start.name, start.alias, step.weight, why) from cause


async def _verdict(check: Check | None, alias: Alias) -> tuple[str, Exception | None] | None:
    """Why the step failed its check, with the check's exception; ``None`` if it passed."""
    if check is None:
        return None
    try:
        healthy: object = await check(alias)
    except Exception as err:  # a check that breaks is a failed check; cancellation is not
        return f"check raised {_describe(err)}", err
    if healthy is True:
        return None
    if healthy is False:
        return "check returned False", None
    return f"check returned {healthy!r:.80}, not True or False", None


def _describe(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


async def _to_the_end(aw: Awaitable[_T]) -> _T:
    """Await ``aw`` to its end even if cancelled meanwhile, then re-raise the cancellation:
    a write cut off half-way would leave the alias's state unknown. A second
    cancellation stops the waiting (the write still finishes in the background)."""
    task = asyncio.ensure_future(aw)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation is what the caller gets
        raise
