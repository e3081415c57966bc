"""The parts of a parallel download, and the gap-free prefix its hash follows
(``versioned_async._policy.parts``): pure, checked against a byte-by-byte model."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from versioned_async._policy.parts import ContiguousPrefix, Part, plan_parts


def test_parts_are_aligned_and_the_last_is_what_is_left() -> None:
    assert plan_parts(10, 4) == [Part(0, 0, 4), Part(1, 4, 8), Part(2, 8, 10)]
    assert plan_parts(8, 4) == [Part(0, 0, 4), Part(1, 4, 8)]
    assert plan_parts(0, 4) == []
    assert Part(1, 4, 8).range_header() == "bytes=4-7"
    assert Part(1, 4, 8).range_header(3) == "bytes=7-7"


def test_impossible_plans_are_refused() -> None:
    with pytest.raises(ValueError, match="chunksize"):
        plan_parts(10, 0)
    with pytest.raises(ValueError, match="size"):
        plan_parts(-1, 4)


@given(st.integers(0, 10_000), st.integers(1, 3_000))
def test_parts_cover_every_byte_once_in_order(size: int, chunksize: int) -> None:
    parts = plan_parts(size, chunksize)
    assert [p.index for p in parts] == list(range(len(parts)))
    assert [b for p in parts for b in range(p.start, p.end)] == list(range(size))
    assert all(p.size == chunksize for p in parts[:-1])
    assert all(p.start % chunksize == 0 for p in parts)


def test_the_prefix_stops_at_the_first_gap() -> None:
    landed = ContiguousPrefix(plan_parts(10, 4))
    landed.add(1, 4)  # a later part, whole: nothing contiguous yet
    assert (landed.length, landed.complete) == (0, False)
    landed.add(0, 3)
    assert landed.length == 3
    landed.add(0, 1)  # part 0 done: runs on through part 1
    assert landed.length == 8
    landed.add(2, 2)
    assert (landed.length, landed.complete) == (10, True)


def test_more_bytes_than_a_part_holds_is_a_bug() -> None:
    landed = ContiguousPrefix(plan_parts(10, 4))
    landed.add(2, 1)
    with pytest.raises(ValueError, match="part 2 holds 2 bytes: 1 landed, 2 more"):
        landed.add(2, 2)


@given(
    st.integers(1, 1_000),
    st.integers(1, 300),
    st.randoms(use_true_random=False),
)
def test_the_prefix_is_what_a_byte_by_byte_model_says(
    size: int, chunksize: int, rnd: random.Random
) -> None:
    parts = plan_parts(size, chunksize)
    landed = ContiguousPrefix(parts)
    have = [False] * size
    gap = 0  # the model: the first byte that has not landed
    # land every part in random pieces, parts interleaved at random
    left = {p.index: p.size for p in parts}
    while left:
        index = rnd.choice(sorted(left))
        count = rnd.randint(1, left[index])
        at = parts[index].start + landed.landed(index)
        have[at : at + count] = [True] * count
        landed.add(index, count)
        left[index] -= count
        if not left[index]:
            del left[index]
        while gap < size and have[gap]:
            gap += 1
        assert landed.length == gap
    assert landed.complete
