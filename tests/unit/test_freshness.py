"""The TTL / stale-if-error policy, as a pure function of time."""

from __future__ import annotations

import pytest

from versioned_async._policy.freshness import Freshness, freshness, may_serve_stale


@pytest.mark.parametrize(
    ("stored_at", "now", "ttl", "expected"),
    [
        (None, 100.0, 30.0, Freshness.MISSING),
        (100.0, 100.0, 30.0, Freshness.FRESH),
        (100.0, 129.999, 30.0, Freshness.FRESH),
        (100.0, 130.0, 30.0, Freshness.STALE),
        (100.0, 10_000.0, 30.0, Freshness.STALE),
        (100.0, 100.0, 0.0, Freshness.STALE),  # ttl 0: always revalidate
        (200.0, 100.0, 30.0, Freshness.STALE),  # stored in the future: the clock stepped back
    ],
)
def test_freshness_by_age(
    stored_at: float | None, now: float, ttl: float, expected: Freshness
) -> None:
    assert freshness(stored_at, now, ttl) is expected


@pytest.mark.parametrize(
    ("state", "stale_if_error", "expected"),
    [
        (Freshness.STALE, True, True),
        (Freshness.FRESH, True, True),
        (Freshness.STALE, False, False),
        (Freshness.MISSING, True, False),  # never seen: nothing to serve
        (Freshness.MISSING, False, False),
    ],
)
def test_stale_entries_stand_in_only_when_allowed_and_known(
    state: Freshness, stale_if_error: bool, expected: bool
) -> None:
    assert may_serve_stale(state, stale_if_error=stale_if_error) is expected
