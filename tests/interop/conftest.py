"""Fixtures for interop tests: the sync `versioned` 1.0.1 library next to ours, on one moto.

`versioned` takes no endpoint argument: boto3 (through the BotoSesManager),
pynamodb's connection and s3pathlib all create their clients with botocore,
which honours ``AWS_ENDPOINT_URL``. Each test sets it with ``monkeypatch`` (and
pytest removes it afterwards); ``versioned_async`` passes its endpoint
explicitly and does not read it.

pynamodb caches a connection on each model class. `versioned` creates its model
classes per ``Repository`` instance (``cached_property``) and, given a ``bsm``,
drops the cached connection on every call, so a fresh upstream ``Repository``
per test, always called with the test's ``bsm``, can never reach a stale
endpoint. ``test_upstream_talks_to_this_tests_moto_server`` checks it.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import botocore.session
import pynamodb.connection.base
import pytest
from aiobotocore.session import AioSession
from boto_session_manager import BotoSesManager
from botocore.loaders import Loader, create_loader
from s3pathlib import context as s3pathlib_context
from versioned.api import s3_and_dynamodb_backend as upstream

from tests.conftest import TableRepoFactory
from versioned_async import Repository

if TYPE_CHECKING:  # typing.Unpack is 3.11+; only the type checker reads it here
    from typing_extensions import Unpack

    from tests.conftest import RepoSettings

#: a non-default layout: prefix written with a trailing slash for `versioned`,
#: without one for us (both mean the same), and a file suffix
CUSTOM_PREFIX = "team/models"
CUSTOM_SUFFIX = ".sqlite"


class Upstream:
    """A `versioned` 1.0.1 ``Repository`` that passes the test's ``bsm`` to every call.

    ``theirs.put_artifact("app", b"x")`` is
    ``repository.put_artifact("app", b"x", bsm=bsm)``; everything else
    (``get_artifact_s3path``, ``s3_prefix`` ...) is the repository's own.
    """

    def __init__(self, repository: upstream.Repository, bsm: BotoSesManager) -> None:
        self.repository = repository
        self.bsm = bsm

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self.repository, attr)
        if callable(value) and "bsm" in inspect.signature(value).parameters:
            return partial(value, bsm=self.bsm)
        return value

    def __repr__(self) -> str:
        return f"Upstream({self.repository!r})"


MakeUpstream = Callable[..., Upstream]


@pytest.fixture
def aws_endpoint_env(endpoint_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point every botocore client created without an endpoint (i.e. upstream's) at moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    return endpoint_url


@pytest.fixture(scope="session")
def botocore_loader() -> Loader:
    """Parsed service descriptions, shared by every botocore session of the interop tests."""
    return create_loader()


def _session_sharing(loader: Loader) -> botocore.session.Session:
    session = botocore.session.get_session()
    session.register_component("data_loader", loader)
    return session


@pytest.fixture
def bsm(
    aws_endpoint_env: str, botocore_loader: Loader, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BotoSesManager]:
    """A fresh session manager for this test: its cached clients see this test's endpoint.

    Speed only, nothing is mocked: given a ``bsm``, `versioned` drops pynamodb's
    connection on every call, so pynamodb builds a new botocore session and
    client each time and re-parses the service JSON (~0.12 s a call; it doubled
    this suite's run time). Those sessions, and the bsm's, share one loader of
    parsed service descriptions; each session, client, credential lookup and
    endpoint (from ``AWS_ENDPOINT_URL``) is still new, and every request still
    goes over HTTP to moto.
    """
    monkeypatch.setattr(
        pynamodb.connection.base, "get_session", partial(_session_sharing, botocore_loader)
    )
    # upstream's bootstrap attaches its session to s3pathlib's global context: restore it after
    for attr in ("boto_ses", "_s3_client", "_sts_client", "_aws_region", "_aws_account_id"):
        monkeypatch.setattr(s3pathlib_context, attr, getattr(s3pathlib_context, attr))
    search_paths = list(botocore_loader.search_paths)
    yield BotoSesManager(
        region_name="us-east-1", botocore_session=_session_sharing(botocore_loader)
    )
    # boto3 appends its data path to the loader of every session it wraps: undo that
    botocore_loader.search_paths[:] = search_paths


@pytest.fixture
def make_theirs(bsm: BotoSesManager) -> MakeUpstream:
    """Build a fresh upstream Repository on ``like``'s bucket, table, prefix and suffix."""

    def make(like: Repository, **overrides: Any) -> Upstream:
        settings: dict[str, Any] = {
            "aws_region": like.aws_region,
            "s3_bucket": like.s3_bucket,
            "s3_prefix": like.s3_prefix,
            "dynamodb_table_name": like.dynamodb_table_name,
            "suffix": like.suffix,
        }
        settings.update(overrides)
        return Upstream(upstream.Repository(**settings), bsm)

    return make


@pytest.fixture
def ours(repo: Repository) -> Repository:
    """Our open repository (default prefix, no suffix), bootstrapped by us."""
    return repo


@pytest.fixture
def theirs(ours: Repository, make_theirs: MakeUpstream) -> Upstream:
    """`versioned` 1.0.1 on the very repository ``ours`` works on."""
    return make_theirs(ours)


@pytest.fixture
async def ours_custom(make_table_repo: TableRepoFactory) -> AsyncIterator[Repository]:
    """Our repository with prefix ``team/models`` and suffix ``.sqlite``."""
    async with make_table_repo(s3_prefix=CUSTOM_PREFIX, suffix=CUSTOM_SUFFIX) as repository:
        await repository.bootstrap()
        yield repository


@pytest.fixture
def theirs_custom(ours_custom: Repository, make_theirs: MakeUpstream) -> Upstream:
    """`versioned` on ``ours_custom``'s repository, its prefix given as ``team/models/``."""
    return make_theirs(ours_custom, s3_prefix=CUSTOM_PREFIX + "/")


@pytest.fixture
async def raw_dynamodb(endpoint_url: str, aio_session: AioSession) -> AsyncIterator[Any]:
    """A plain aiobotocore DynamoDB client on moto, for looking at items as they are stored."""
    async with aio_session.create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=endpoint_url
    ) as client:
        yield client


@pytest.fixture
async def raw_s3(endpoint_url: str, aio_session: AioSession) -> AsyncIterator[Any]:
    """A plain aiobotocore S3 client on moto, for looking at objects as they are stored."""
    async with aio_session.create_client(
        "s3", region_name="us-east-1", endpoint_url=endpoint_url
    ) as client:
        yield client


# -- the S3-only backend: `versioned.api.s3_only_backend` next to S3OnlyRepository ------

# imports for the fixtures below, kept with them (appended to this module)
from versioned.api import s3_only_backend as upstream_s3_only  # noqa: E402

from tests.conftest import BUCKET  # noqa: E402
from versioned_async import S3OnlyRepository  # noqa: E402


class UpstreamS3Only:
    """A `versioned` 1.0.1 ``s3_only_backend.Repository`` that passes the test's ``bsm``.

    That backend takes ``bsm`` as the first positional argument of each method:
    ``theirs_s3.put_artifact("app", b"x")`` is
    ``repository.put_artifact(bsm, "app", b"x")``. Everything else
    (``_get_artifact_s3path``, ``s3_prefix`` ...) is the repository's own.
    """

    def __init__(self, repository: upstream_s3_only.Repository, bsm: BotoSesManager) -> None:
        self.repository = repository
        self.bsm = bsm

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self.repository, attr)
        if callable(value) and next(iter(inspect.signature(value).parameters), None) == "bsm":
            return partial(value, self.bsm)
        return value

    def __repr__(self) -> str:
        return f"UpstreamS3Only({self.repository!r})"


MakeUpstreamS3Only = Callable[..., UpstreamS3Only]


@pytest.fixture
def make_theirs_s3(bsm: BotoSesManager) -> MakeUpstreamS3Only:
    """Build a fresh upstream S3-only Repository on ``like``'s bucket, prefix and suffix."""

    def make(like: S3OnlyRepository, **overrides: Any) -> UpstreamS3Only:
        settings: dict[str, Any] = {
            "aws_region": like.aws_region,
            "s3_bucket": like.s3_bucket,
            "s3_prefix": like.s3_prefix,
            "suffix": like.suffix,
        }
        settings.update(overrides)
        return UpstreamS3Only(upstream_s3_only.Repository(**settings), bsm)

    return make


def _s3_only_repository(
    endpoint_url: str, aio_session: AioSession, /, **kwargs: Unpack[RepoSettings]
) -> S3OnlyRepository:
    settings: RepoSettings = {
        "aws_region": "us-east-1",
        "s3_bucket": BUCKET,
        "endpoint_url": endpoint_url,
        "session": aio_session,
        **kwargs,
    }
    return S3OnlyRepository(**settings)


@pytest.fixture
async def ours_s3(endpoint_url: str, aio_session: AioSession) -> AsyncIterator[S3OnlyRepository]:
    """Our open S3-only repository (default prefix, no suffix), bootstrapped by us."""
    async with _s3_only_repository(endpoint_url, aio_session) as repository:
        await repository.bootstrap()
        yield repository


@pytest.fixture
def theirs_s3(ours_s3: S3OnlyRepository, make_theirs_s3: MakeUpstreamS3Only) -> UpstreamS3Only:
    """`versioned` 1.0.1's S3-only backend on the very repository ``ours_s3`` works on."""
    return make_theirs_s3(ours_s3)


@pytest.fixture
async def ours_s3_custom(
    endpoint_url: str, aio_session: AioSession
) -> AsyncIterator[S3OnlyRepository]:
    """Our S3-only repository with prefix ``team/models`` and suffix ``.sqlite``."""
    async with _s3_only_repository(
        endpoint_url, aio_session, s3_prefix=CUSTOM_PREFIX, suffix=CUSTOM_SUFFIX
    ) as repository:
        await repository.bootstrap()
        yield repository


@pytest.fixture
def theirs_s3_custom(
    ours_s3_custom: S3OnlyRepository, make_theirs_s3: MakeUpstreamS3Only
) -> UpstreamS3Only:
    """`versioned`'s S3-only backend on ``ours_s3_custom``'s repository, prefix ``team/models/``."""
    return make_theirs_s3(ours_s3_custom, s3_prefix=CUSTOM_PREFIX + "/")
