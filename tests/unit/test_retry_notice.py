"""When botocore retries after a failed attempt: what the unreachable-endpoint notice asks."""

from __future__ import annotations

import pytest

from versioned_async._aws.clients import will_retry


@pytest.mark.parametrize(
    ("attempts", "total", "expected"),
    [
        (1, 6, True),
        (5, 6, True),
        (6, 6, False),
        (1, 1, False),
        (1, None, True),  # legacy mode: no total_max_attempts, botocore retries
        (1, True, True),  # not an int of attempts: unknown
    ],
)
def test_will_retry_while_attempts_are_left(attempts: int, total: object, expected: bool) -> None:
    assert will_retry(attempts, total) is expected
