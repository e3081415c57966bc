"""Shared fixtures: a moto server on 127.0.0.1 for the session, wiped before each test.

``VERSIONED_ASYNC_TEST_ENGINE=node`` swaps moto for a second, independent
engine, dynalite + s3rver behind one endpoint (tests/engines.py), wiped through
the APIs before each test. ``moto`` is the default. Tests that embed moto
themselves (``MotoServer``, ``serve-local``, the demo) use their own moto either way.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiobotocore.session import AioSession, get_session

from versioned_async import Repository
from versioned_async.testing import MotoServer, fake_aws_environment

# Before anything creates a client: fake credentials, no ~/.aws, no instance metadata.
os.environ.update(fake_aws_environment())
for _var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
    os.environ.pop(_var, None)

REGION = "us-east-1"
BUCKET = "test-artifacts"
TABLE = "test-versioned-artifacts"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


#: which AWS engine `endpoint_url` points at: "moto" (default) or "node" (dynalite + s3rver)
ENGINE = os.environ.get("VERSIONED_ASYNC_TEST_ENGINE", "moto").strip().lower() or "moto"
if ENGINE not in ("moto", "node"):
    raise pytest.UsageError(f"VERSIONED_ASYNC_TEST_ENGINE must be 'moto' or 'node', not {ENGINE!r}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.engine_gap(reason)``: a strict xfail on the node engine, nothing on moto.

    For a test (or a ``pytest.param`` case) that fails only because dynalite or s3rver
    lacks something S3/DynamoDB (and moto) do. Strict, so the mark goes once the gap does.
    """
    for item in items:
        reasons: list[str] = []
        for mark in item.iter_markers("engine_gap"):
            given = [*mark.args, *mark.kwargs.values()] if set(mark.kwargs) <= {"reason"} else []
            if len(given) != 1 or not isinstance(given[0], str) or not given[0]:
                raise pytest.UsageError(f"{item.nodeid}: use @pytest.mark.engine_gap('reason')")
            reasons.append(given[0])
        if reasons and ENGINE == "node":
            reason = "node engine: " + "; ".join(reasons)
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))


if ENGINE == "node":
    from tests.engines import NodeEngines

    @pytest.fixture(scope="session")
    def node_engines() -> Iterator[NodeEngines]:
        with NodeEngines() as engines:
            yield engines

    @pytest.fixture
    def endpoint_url(node_engines: NodeEngines) -> str:
        """dynalite + s3rver behind one endpoint, every table and bucket deleted (~50 ms)."""
        node_engines.reset()
        return node_engines.endpoint_url

else:

    @pytest.fixture
    def endpoint_url(moto_server: MotoServer) -> str:
        """The moto endpoint, wiped clean for this test."""
        moto_server.reset()
        return moto_server.endpoint_url


@pytest.fixture(scope="session")
def aio_session() -> AioSession:
    """One session for every client: service models load once (~75 ms saved per client)."""
    return get_session()


RepoFactory = Callable[..., Repository]


@pytest.fixture
def make_repo(endpoint_url: str, aio_session: AioSession) -> RepoFactory:
    """Build (unopened) repositories on the test's moto server."""

    def make(**kwargs: object) -> Repository:
        settings: dict[str, object] = {
            "aws_region": REGION,
            "s3_bucket": BUCKET,
            "dynamodb_table_name": TABLE,
            "endpoint_url": endpoint_url,
            "session": aio_session,
        }
        settings.update(kwargs)
        return Repository(**settings)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def repo(make_repo: RepoFactory) -> AsyncIterator[Repository]:
    """An open, bootstrapped repository on an empty moto server."""
    async with make_repo() as repository:
        await repository.bootstrap()
        yield repository


@pytest.fixture
async def s3(endpoint_url: str, aio_session: AioSession) -> AsyncIterator[Any]:
    """A raw aiobotocore S3 client on the moto server, to look behind the library's back."""
    async with aio_session.create_client("s3", region_name=REGION, endpoint_url=endpoint_url) as c:
        yield c


@pytest.fixture
async def dynamodb(endpoint_url: str, aio_session: AioSession) -> AsyncIterator[Any]:
    """A raw aiobotocore DynamoDB client on the moto server."""
    async with aio_session.create_client(
        "dynamodb", region_name=REGION, endpoint_url=endpoint_url
    ) as c:
        yield c
