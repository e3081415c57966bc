"""When a cached lookup may be served: a pure policy of (entry age, TTL, error).

Kept apart from storage so it is tested without a disk, a clock or AWS:
fresh entries are served without asking AWS; stale ones are revalidated, and
served anyway only when AWS cannot be reached and stale-if-error is on.
"""

from __future__ import annotations

import enum


class Freshness(enum.Enum):
    """What to do with a cached lookup."""

    FRESH = "fresh"  # serve it, ask nobody
    STALE = "stale"  # ask AWS; on an outage, maybe serve it anyway
    MISSING = "missing"  # ask AWS; on an outage, fail


def freshness(stored_at: float | None, now: float, ttl: float) -> Freshness:
    """Classify an entry fetched at ``stored_at`` (seconds) as seen at ``now``.

    An entry from the future (a clock that stepped back) counts as stale, so
    a wrong clock can cost a request but never serve an entry forever.
    """
    if stored_at is None:
        return Freshness.MISSING
    age = now - stored_at
    if 0 <= age < ttl:
        return Freshness.FRESH
    return Freshness.STALE


def may_serve_stale(state: Freshness, *, stale_if_error: bool) -> bool:
    """Whether an entry in ``state`` may stand in for a lookup AWS could not answer."""
    return stale_if_error and state is not Freshness.MISSING
