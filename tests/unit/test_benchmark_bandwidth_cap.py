"""benchmarks/proxy.py's token bucket: the arithmetic behind its bandwidth caps."""

from __future__ import annotations

import pytest

from benchmarks.proxy import TokenBucket

MIB = 1 << 20


def send(bucket: TokenBucket, chunks: int, size: int, rate: float, start: float = 0.0) -> float:
    """A sender that waits as told: the time its last chunk leaves."""
    now = start
    for _ in range(chunks):
        now += bucket.reserve(size, now, rate)
    return now


def test_a_fresh_bucket_lets_its_burst_through_at_once() -> None:
    bucket = TokenBucket(burst=256 * 1024)
    assert bucket.reserve(256 * 1024, 10.0, 1 * MIB) == 0.0


def test_beyond_the_burst_a_chunk_waits_for_its_own_tokens() -> None:
    bucket = TokenBucket(burst=MIB)
    assert bucket.reserve(MIB, 0.0, 4 * MIB) == 0.0
    assert bucket.reserve(MIB, 0.0, 4 * MIB) == pytest.approx(0.25)


def test_a_steady_sender_is_held_at_the_rate() -> None:
    """100 MiB at 32 MiB/s, after a 256 KiB burst: (100 MiB - burst) / rate seconds."""
    bucket = TokenBucket(burst=256 * 1024)
    done = send(bucket, 400, 256 * 1024, 32 * MIB)
    assert done == pytest.approx((100 * MIB - 256 * 1024) / (32 * MIB))


def test_idle_time_refills_up_to_the_burst_only() -> None:
    bucket = TokenBucket(burst=MIB)
    bucket.reserve(MIB, 0.0, MIB)  # empty now
    # an hour idle earns one burst, not an hour's worth
    assert bucket.reserve(MIB, 3600.0, MIB) == 0.0
    assert bucket.reserve(MIB, 3600.0, MIB) == pytest.approx(1.0)


def test_a_shared_bucket_splits_the_rate_between_senders() -> None:
    """Two connections taking turns through one bucket: together at the rate, so each
    at half of it."""
    shared = TokenBucket(burst=0)
    now = 0.0
    for _ in range(100):  # 100 chunks each of 1 MiB, interleaved, at 10 MiB/s in all
        first = shared.reserve(MIB, now, 10 * MIB)
        second = shared.reserve(MIB, now, 10 * MIB)
        now += max(first, second)
    assert now == pytest.approx(200 * MIB / (10 * MIB))


def test_the_slower_of_two_buckets_sets_the_pace() -> None:
    own, shared = TokenBucket(burst=0), TokenBucket(burst=0)
    now = 0.0
    for _ in range(10):
        now += max(own.reserve(MIB, now, 8 * MIB), shared.reserve(MIB, now, 2 * MIB))
    assert now == pytest.approx(10 / 2)


def test_no_rate_means_no_wait_and_a_full_bucket_after() -> None:
    bucket = TokenBucket(burst=MIB)
    assert bucket.reserve(100 * MIB, 0.0, 0) == 0.0
    # the cap set again later starts from a full burst, not a debt
    assert bucket.reserve(MIB, 1.0, MIB) == 0.0
