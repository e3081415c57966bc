"""The pure side of progressive roll-outs (versioned_async._policy.rollout): steps and plans."""

from __future__ import annotations

from typing import Any

import pytest

from versioned_async._policy import rollout as _rollout
from versioned_async.exc import InvalidArgumentError, InvalidArgumentTypeError


def targets(start: Any, to: str, weights: Any = (10, 50, 100)) -> list[Any]:
    return [s.target for s in _rollout.plan(start, to, weights, reason=None, limit=1024)]


@pytest.mark.parametrize("steps", [(10, 50, 100), [100], (1, 2, 3, 99, 100), range(25, 101, 25)])
def test_valid_steps_are_accepted_as_a_tuple(steps: Any) -> None:
    assert _rollout.validate_steps(steps) == tuple(steps)


@pytest.mark.parametrize(
    ("steps", "error", "fragment"),
    [
        ((), InvalidArgumentError, "empty"),
        ((10, 50), InvalidArgumentError, "end at 100"),
        ((10, 10, 100), InvalidArgumentError, "strictly increasing"),
        ((50, 10, 100), InvalidArgumentError, "strictly increasing"),
        ((0, 100), InvalidArgumentError, "from 1 to 100"),
        ((10, 101), InvalidArgumentError, "from 1 to 100"),
        ((-5, 100), InvalidArgumentError, "from 1 to 100"),
        ((10.0, 100), InvalidArgumentTypeError, "ints"),
        ((True, 100), InvalidArgumentTypeError, "ints"),
        (("10", 100), InvalidArgumentTypeError, "ints"),
        ("10,100", InvalidArgumentTypeError, "sequence"),
        (100, InvalidArgumentTypeError, "sequence"),
        (None, InvalidArgumentTypeError, "sequence"),
    ],
)
def test_bad_steps_are_refused_saying_why(
    steps: Any, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        _rollout.validate_steps(steps)


@pytest.mark.parametrize(
    ("bake", "error"),
    [(-1, InvalidArgumentError), (float("nan"), InvalidArgumentError),
     (float("inf"), InvalidArgumentError), ("60", InvalidArgumentTypeError),
     (True, InvalidArgumentTypeError)],
)  # fmt: skip
def test_bad_bake_seconds_are_refused(bake: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="bake_seconds"):
        _rollout.validate_bake(bake)


def test_a_bake_of_zero_is_allowed() -> None:
    assert _rollout.validate_bake(0) == 0.0


def test_steps_below_100_split_from_the_start_primary_and_100_moves_it() -> None:
    assert targets(("000001", None, None), "000002") == [
        ("000001", "000002", 10),
        ("000001", "000002", 50),
        ("000002", None, None),
    ]


def test_an_alias_splitting_with_another_version_rolls_out_from_its_primary() -> None:
    assert targets(("000001", "000003", 20), "000002") == [
        ("000001", "000002", 10),
        ("000001", "000002", 50),
        ("000002", None, None),
    ]


def test_a_canary_already_on_the_new_version_skips_the_steps_at_or_below_its_weight() -> None:
    assert targets(("000001", "000002", 50), "000002") == [("000002", None, None)]
    assert targets(("000001", "000002", 50), "000002", (25, 50, 75, 100)) == [
        ("000001", "000002", 75),
        ("000002", None, None),
    ]
    assert targets(("000001", "000002", 0), "000002") == [
        ("000001", "000002", 10),
        ("000001", "000002", 50),
        ("000002", None, None),
    ]


def test_rolling_out_the_version_the_alias_already_serves_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="already points at version '2'"):
        _rollout.plan(("000002", None, None), "000002", (100,), reason=None, limit=1024)


def test_each_step_is_labelled_and_carries_the_callers_reason() -> None:
    steps = _rollout.plan(("000001", None, None), "000002", (10, 100), reason="JIRA-1", limit=1024)
    assert [(s.number, s.count, s.weight) for s in steps] == [(1, 2, 10), (2, 2, 100)]
    assert [s.reason for s in steps] == [
        "rollout to 2: step 1/2 (10%); JIRA-1",
        "rollout to 2: step 2/2 (100%); JIRA-1",
    ]
    note = _rollout.abort_reason(steps[0], "check returned False", "JIRA-1", 1024)
    assert note == (
        "rollout to 2: step 1/2 (10%) failed: check returned False; put back as it started; JIRA-1"
    )
    assert len(_rollout.abort_reason(steps[0], "x" * 2000, None, 100)) == 100


def test_a_reason_too_long_to_fit_with_the_step_label_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="reason is too long"):
        _rollout.plan(("000001", None, None), "000002", (100,), reason="r" * 1020, limit=1024)
