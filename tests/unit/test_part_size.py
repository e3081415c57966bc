"""How an upload is cut into parts (versioned_async._policy.part_size): S3's limits, as
s3transfer's ChunksizeAdjuster applies them."""

from __future__ import annotations

import pytest

from versioned_async._policy.part_size import (
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    part_count,
    part_size,
    uses_multipart,
)

MiB = 1 << 20
GiB = 1 << 30


@pytest.mark.parametrize(
    ("wanted", "size", "expected"),
    [
        (8 * MiB, 100 * MiB, 8 * MiB),  # within every limit: as asked
        (1 * MiB, 100 * MiB, MIN_PART_SIZE),  # below S3's minimum: raised to 5 MiB
        (1, 12 * MiB, MIN_PART_SIZE),
        (6 * GiB, 20 * GiB, MAX_PART_SIZE),  # above S3's maximum: lowered to 5 GiB
        (8 * MiB, 80_000 * MiB, 8 * MiB),  # exactly 10,000 parts
        (8 * MiB, 80_000 * MiB + 1, 16 * MiB),  # one byte more: doubled
        (5 * MiB, 200 * GiB, 40 * MiB),  # doubled as often as needed (5, 10, 20, 40)
        (1 * MiB, 50 * GiB, 8 * MiB),  # doubled to fit (1 -> 8), then within the limits
    ],
)
def test_part_size_is_adjusted_like_s3transfer(wanted: int, size: int, expected: int) -> None:
    assert part_size(wanted, size) == expected


@pytest.mark.parametrize("size", [0, 1, 5 * MiB, 123_456_789, 5 * 1024 * GiB])
@pytest.mark.parametrize("wanted", [1, 5 * MiB, 8 * MiB, 64 * MiB])
def test_adjusted_parts_always_fit_s3s_limits(size: int, wanted: int) -> None:
    chunk = part_size(wanted, size)
    assert MIN_PART_SIZE <= chunk <= MAX_PART_SIZE
    assert part_count(chunk, size) <= MAX_PARTS


def test_part_count_rounds_up_and_is_one_for_nothing() -> None:
    assert part_count(5 * MiB, 0) == 1
    assert part_count(5 * MiB, 5 * MiB) == 1
    assert part_count(5 * MiB, 5 * MiB + 1) == 2
    assert part_count(5 * MiB, 11 * MiB) == 3


def test_multipart_above_the_threshold_or_above_a_single_puts_limit() -> None:
    assert not uses_multipart(16 * MiB, 16 * MiB)  # "larger than" the threshold
    assert uses_multipart(16 * MiB + 1, 16 * MiB)
    assert not uses_multipart(5 * GiB, 10 * GiB)
    assert uses_multipart(5 * GiB + 1, 10 * GiB)  # one PutObject cannot carry it
