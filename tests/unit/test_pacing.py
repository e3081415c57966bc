"""The testing pace: backoff out, every attempt kept, short timeouts; production untouched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from versioned_async import _pacing
from versioned_async.testing import is_testing, set_testing

#: far longer than any test may take: a pause of this length that returns was skipped
AN_HOUR = 3600.0


@pytest.fixture(autouse=True)
def restore_pace() -> Iterator[None]:
    was = is_testing()
    yield
    set_testing(was)


@pytest.fixture
async def s3_client(aio_session: AioSession) -> AsyncIterator[Any]:
    """A real aiobotocore client; creating one sends nothing."""
    async with aio_session.create_client(
        "s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9"
    ) as client:
        yield client


def test_the_switch_turns_on_and_off() -> None:
    set_testing(True)
    assert is_testing()
    set_testing(False)
    assert not is_testing()


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "2", True, None])
@pytest.mark.parametrize("what", ["connect_timeout", "read_timeout"])
def test_timeouts_must_be_positive_seconds(what: str, bad: object) -> None:
    with pytest.raises(ValueError, match=what):
        set_testing(True, **{what: bad})  # type: ignore[arg-type]


def test_testing_shortens_the_timeouts_and_keeps_the_retries() -> None:
    production = AioConfig(
        retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=60
    )
    set_testing(True, connect_timeout=1.5, read_timeout=4)
    config = _pacing.client_config(production)
    assert (config.connect_timeout, config.read_timeout) == (1.5, 4.0)
    assert config.retries == {"mode": "standard", "max_attempts": 5}
    set_testing(False)
    assert _pacing.client_config(production) is production


async def test_testing_makes_botocores_backoff_a_loop_turn(s3_client: Any) -> None:
    set_testing(True)
    _pacing.pace_client(s3_client)
    await asyncio.wait_for(s3_client._endpoint._sleep(AN_HOUR), timeout=5)


async def test_production_leaves_botocores_backoff_alone(s3_client: Any) -> None:
    set_testing(False)
    _pacing.pace_client(s3_client)
    assert "_sleep" not in vars(s3_client._endpoint)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(s3_client._endpoint._sleep(AN_HOUR), timeout=0.05)


async def test_the_librarys_own_pause_follows_the_switch() -> None:
    set_testing(True)
    await asyncio.wait_for(_pacing.pause(AN_HOUR), timeout=5)
    set_testing(False)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(_pacing.pause(AN_HOUR), timeout=0.05)


def test_an_endpoint_without_the_seam_is_refused_while_testing() -> None:
    set_testing(True)
    with pytest.raises(RuntimeError, match="set_testing"):
        _pacing.pace_client(object())
