"""Shared fixtures: a moto server on 127.0.0.1 for the session, wiped before each test.

``VERSIONED_ASYNC_TEST_ENGINE=ministack`` swaps moto for a second, independent
engine, ministack (S3, DynamoDB and STS on one endpoint; tests/engines.py), one
server per pytest-xdist worker, wiped before each test. ``moto`` is the default.
Tests that embed moto themselves (``MotoServer``, ``serve-local``, the demo) use
their own moto either way.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from hypothesis import settings

from versioned_async import ArtifactRepository, LocalCache, Repository, S3OnlyRepository
from versioned_async.testing import MotoServer, fake_aws_environment, is_testing, set_testing
from versioned_async.transfer_config import TransferConfig

if TYPE_CHECKING:  # typing.Unpack is 3.11+; only the type checker reads it here
    from typing_extensions import Unpack

# Before anything creates a client: fake credentials, no ~/.aws, no instance metadata.
os.environ.update(fake_aws_environment())
for _var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
    os.environ.pop(_var, None)

# Hypothesis budgets: a few examples per property on every run (fresh ones each time),
# many with VERSIONED_ASYNC_HYPOTHESIS=thorough. Pure properties take 4x the budget.
settings.register_profile("default", max_examples=30)
settings.register_profile("thorough", max_examples=1000)
settings.load_profile(os.environ.get("VERSIONED_ASYNC_HYPOTHESIS", "default"))

# Every retry is still sent, without the backoff before it; the `pace` fixture brings
# the production pace back for the tests that prove it.
set_testing(True)

REGION = "us-east-1"
BUCKET = "test-artifacts"
TABLE = "test-versioned-artifacts"
#: who the tests' repositories record as making alias changes
TEST_ACTOR = "tests"
#: the partition of the table record bootstrap writes (issue 17): the table's, no artifact's
TABLE_RECORD_PK = "__table"


def artifact_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items of a table scan but its record of which repository it serves."""
    return [item for item in items if item["pk"]["S"] != TABLE_RECORD_PK]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


#: which AWS engine `endpoint_url` points at: "moto" (default) or "ministack" (tests/engines.py)
ENGINE = os.environ.get("VERSIONED_ASYNC_TEST_ENGINE", "moto").strip().lower() or "moto"
if ENGINE not in ("moto", "ministack"):
    raise pytest.UsageError(
        f"VERSIONED_ASYNC_TEST_ENGINE must be 'moto' or 'ministack', not {ENGINE!r}"
    )


#: the repository layouts a ``@pytest.mark.both_backends`` test runs on
BACKENDS = ("dynamodb", "s3")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``@pytest.mark.both_backends``: run the test on ``Repository`` and ``S3OnlyRepository``.

    The ``backend`` fixture (``"dynamodb"`` unless parametrised) picks what
    ``make_repo``/``repo`` build. Within a marked module, a test that reads the
    table itself (the ``dynamodb`` fixture), works with `versioned`'s S3 + DynamoDB
    backend (``make_theirs``; tests/interop covers the S3-only one), builds a
    :class:`Repository` itself (``make_table_repo``) or is marked
    ``@pytest.mark.dynamodb_layout(reason)`` is about the DynamoDB layout and runs
    on it alone.
    """
    if "backend" not in metafunc.fixturenames or not metafunc.definition.get_closest_marker(
        "both_backends"
    ):
        return
    layout_bound = bool(
        {"dynamodb", "make_theirs", "make_table_repo"} & set(metafunc.fixturenames)
        or metafunc.definition.get_closest_marker("dynamodb_layout")
    )
    metafunc.parametrize("backend", ("dynamodb",) if layout_bound else BACKENDS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.engine_gap(reason)``: a strict xfail on ministack, nothing on moto.

    For a test (or a ``pytest.param`` case) that fails only because ministack
    lacks something S3/DynamoDB (and moto) do. Strict, so the mark goes once the gap does.
    ``backend="s3"`` limits it to a ``both_backends`` test's S3-only run.
    """
    for item in items:
        reasons: list[str] = []
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        for mark in item.iter_markers("engine_gap"):
            only = mark.kwargs.get("backend")
            kwargs = {k: v for k, v in mark.kwargs.items() if k != "backend"}
            given = [*mark.args, *kwargs.values()] if set(kwargs) <= {"reason"} else []
            if len(given) != 1 or not isinstance(given[0], str) or not given[0]:
                raise pytest.UsageError(
                    f"{item.nodeid}: use @pytest.mark.engine_gap('reason'[, backend='s3'])"
                )
            if only is not None and only not in BACKENDS:
                raise pytest.UsageError(
                    f"{item.nodeid}: engine_gap backend must be one of {BACKENDS}"
                )
            if only is None or only == backend:
                reasons.append(given[0])
        if reasons and ENGINE == "ministack":
            reason = "ministack: " + "; ".join(reasons)
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))


if ENGINE == "ministack":
    from tests.engines import MinistackServer

    @pytest.fixture(scope="session")
    def ministack_server() -> Iterator[MinistackServer]:
        """One ministack per session (so per pytest-xdist worker), in its own venv."""
        with MinistackServer() as server:
            yield server

    @pytest.fixture
    def endpoint_url(ministack_server: MinistackServer) -> str:
        """The ministack endpoint, wiped clean for this test."""
        ministack_server.reset()
        return ministack_server.endpoint_url

else:

    @pytest.fixture
    def endpoint_url(moto_server: MotoServer) -> str:
        """The moto endpoint, wiped clean for this test."""
        moto_server.reset()
        return moto_server.endpoint_url


@pytest.fixture(params=["testing"])
def pace(request: pytest.FixtureRequest) -> Iterator[str]:
    """The retry pace of the clients the test opens: ``"testing"`` (no backoff, short
    timeouts; the suite's default) or, parametrised indirectly, ``"production"``
    (botocore's real backoff and the library's default timeouts)."""
    was_testing = is_testing()
    set_testing(request.param == "testing")
    try:
        yield request.param
    finally:
        set_testing(was_testing)


@pytest.fixture(scope="session")
def aio_session() -> AioSession:
    """One session for every client: service models load once (~75 ms saved per client)."""
    return get_session()


class RepoSettings(TypedDict, total=False):
    """What a test may give ``make_repo``: the settings both repository classes take."""

    aws_region: str | None
    s3_bucket: str
    s3_prefix: str
    suffix: str
    endpoint_url: str | None
    session: AioSession | None
    cache: LocalCache | None
    max_pool_connections: int
    client_config: AioConfig | None
    server_side_encryption: str | None
    sse_kms_key_id: str | None
    expected_bucket_owner: str | None
    transfer_config: TransferConfig | None


class TableRepoSettings(RepoSettings, total=False):
    """What a test may give ``make_table_repo``: the shared settings and the DynamoDB
    layout's own."""

    dynamodb_table_name: str
    actor: str | None
    reservation_timeout_secs: float


class PurgeSettings(TypedDict, total=False):
    """The retention settings of ``purge_artifact_versions``, given as ``**settings``."""

    keep_last_n: int
    purge_older_than_secs: float


class RepoFactory(Protocol):
    """``make_repo``: an (unopened) repository of the test's backend."""

    def __call__(self, **settings: Unpack[RepoSettings]) -> ArtifactRepository: ...


class TableRepoFactory(Protocol):
    """``make_table_repo``: an (unopened) :class:`Repository`, the DynamoDB layout."""

    def __call__(self, **settings: Unpack[TableRepoSettings]) -> Repository: ...


def _located(endpoint_url: str, aio_session: AioSession) -> RepoSettings:
    """Where every test repository is: the test's region, bucket and moto server."""
    return {
        "aws_region": REGION,
        "s3_bucket": BUCKET,
        "endpoint_url": endpoint_url,
        "session": aio_session,
    }


def _table_repository(located: RepoSettings, **given: Unpack[TableRepoSettings]) -> Repository:
    settings: TableRepoSettings = {
        **located,
        "dynamodb_table_name": TABLE,
        # alias history names an actor: given, so that no test pays for an STS call it
        # does not test (``actor=None`` brings the caller's identity back)
        "actor": TEST_ACTOR,
        **given,
    }
    return Repository(**settings)


@pytest.fixture
def backend() -> str:
    """The layout ``make_repo`` builds: ``"dynamodb"``, or ``"s3"`` (S3OnlyRepository)
    in a ``both_backends`` test's second run."""
    return "dynamodb"


@pytest.fixture
def make_repo(endpoint_url: str, aio_session: AioSession, backend: str) -> RepoFactory:
    """Build (unopened) repositories of the test's backend on the test's moto server:
    a :class:`Repository` or an :class:`S3OnlyRepository`, typed as the API they share."""

    def make(**kwargs: Unpack[RepoSettings]) -> ArtifactRepository:
        located = _located(endpoint_url, aio_session)
        if backend == "s3":
            settings: RepoSettings = {**located, **kwargs}
            return S3OnlyRepository(**settings)
        return _table_repository(located, **kwargs)

    return make


@pytest.fixture
def make_table_repo(endpoint_url: str, aio_session: AioSession, backend: str) -> TableRepoFactory:
    """Build (unopened) :class:`Repository` objects on the test's moto server, for the
    tests of the DynamoDB layout's own methods and settings. In a ``both_backends``
    module such a test runs on that layout alone (see ``pytest_generate_tests``)."""
    if backend != "dynamodb":
        raise pytest.UsageError(f"make_table_repo builds the DynamoDB layout, not {backend!r}")

    def make(**kwargs: Unpack[TableRepoSettings]) -> Repository:
        return _table_repository(_located(endpoint_url, aio_session), **kwargs)

    return make


@pytest.fixture
def object_key(backend: str) -> Callable[..., str]:
    """``object_key(name, version, prefix=..., suffix=...)``: where the test's backend
    keeps a version, spelled out independently of the library's own layout code."""

    def key(
        name: str,
        version: str | int = "LATEST",
        prefix: str = "versioned-artifacts",
        suffix: str = "",
    ) -> str:
        root = f"{prefix}/" if prefix else ""
        if backend == "s3":
            stem = (
                "000000_LATEST"
                if version == "LATEST"
                else f"{1_000_000 - int(version):06d}_{int(version):06d}"
            )
            return f"{root}{name}/versions/{stem}{suffix}"
        stored = "LATEST" if version == "LATEST" else f"{int(version):06d}"
        return f"{root}{name}/{stored}{suffix}"

    return key


@pytest.fixture
async def repo(make_repo: RepoFactory) -> AsyncIterator[ArtifactRepository]:
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
