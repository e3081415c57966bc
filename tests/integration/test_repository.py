"""Repository lifecycle, bootstrap, endpoints and how failures are reported."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from tests.conftest import BUCKET, REGION, TABLE
from versioned_async import Repository, exc
from versioned_async.testing import MotoServer

pytestmark = pytest.mark.both_backends


async def test_calls_outside_async_with_raise_repository_closed(make_repo: Any) -> None:
    repo = make_repo()
    with pytest.raises(exc.RepositoryClosedError, match="async with"):
        await repo.get_artifact_version("app")
    async with repo:
        assert repo.is_open
    assert not repo.is_open
    with pytest.raises(exc.RepositoryClosedError):
        await repo.list_artifact_names()


async def test_a_repository_can_be_reopened_but_not_opened_twice(make_repo: Any) -> None:
    repo = make_repo()
    async with repo:
        await repo.bootstrap()
        with pytest.raises(exc.RepositoryClosedError, match="already open"):
            await repo.open()
    async with repo:
        assert await repo.list_artifact_names() == []


async def test_bootstrap_creates_bucket_and_on_demand_table(
    make_repo: Any, s3: Any, dynamodb: Any
) -> None:
    async with make_repo() as repo:
        await repo.bootstrap()
        await repo.bootstrap()  # idempotent
    await s3.head_bucket(Bucket=BUCKET)
    table = (await dynamodb.describe_table(TableName=TABLE))["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {
        "pk": "HASH",
        "sk": "RANGE",
    }
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


async def test_bootstrap_with_capacities_creates_a_provisioned_table(
    make_repo: Any, dynamodb: Any
) -> None:
    async with make_repo() as repo:
        await repo.bootstrap(dynamodb_write_capacity_units=2, dynamodb_read_capacity_units=3)
    table = (await dynamodb.describe_table(TableName=TABLE))["Table"]
    assert table["ProvisionedThroughput"]["ReadCapacityUnits"] == 3
    assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 2


@pytest.mark.dynamodb_layout("capacities are the table's")
async def test_bootstrap_with_one_capacity_is_refused(make_repo: Any) -> None:
    async with make_repo() as repo:
        with pytest.raises(ValueError, match="give both"):
            await repo.bootstrap(dynamodb_write_capacity_units=2)


async def test_bootstrap_outside_us_east_1_sets_the_location(make_repo: Any, s3: Any) -> None:
    async with make_repo(aws_region="eu-west-1") as repo:
        await repo.bootstrap()
    location = await s3.get_bucket_location(Bucket=BUCKET)
    assert location["LocationConstraint"] == "eu-west-1"


async def test_missing_repository_says_to_bootstrap(make_repo: Any) -> None:
    async with make_repo() as repo:
        with pytest.raises(exc.RepositoryNotFoundError, match="bootstrap"):
            await repo.get_artifact_version("app")
        with pytest.raises(exc.RepositoryNotFoundError, match="bootstrap"):
            await repo.put_artifact("app", b"x")


async def test_unreachable_endpoint_raises_backend_unavailable(aio_session: AioSession) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    repo = Repository(
        REGION,
        BUCKET,
        endpoint_url=f"http://127.0.0.1:{port}",
        session=aio_session,
        client_config=AioConfig(retries={"total_max_attempts": 1}, connect_timeout=1),
    )
    async with repo:
        with pytest.raises(exc.BackendUnavailableError, match="could not reach AWS"):
            await repo.get_artifact_version("app")


async def test_endpoint_none_follows_per_service_environment_variables(
    endpoint_url: str, aio_session: AioSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 on one server and DynamoDB on another, chosen by botocore's own variables."""
    with MotoServer() as other:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", other.endpoint_url)
        repo = Repository(REGION, BUCKET, dynamodb_table_name=TABLE, session=aio_session)
        async with repo:
            await repo.bootstrap()
            await repo.put_artifact("app", b"split")
            assert await repo.get_content("app") == b"split"
        async with (
            aio_session.create_client(
                "dynamodb", region_name=REGION, endpoint_url=other.endpoint_url
            ) as ddb,
            aio_session.create_client("s3", region_name=REGION, endpoint_url=endpoint_url) as s3,
        ):
            assert (await ddb.list_tables())["TableNames"] == [TABLE]
            assert [b["Name"] for b in (await s3.list_buckets())["Buckets"]] == [BUCKET]


def test_constructor_rejects_missing_bucket() -> None:
    with pytest.raises(ValueError, match="s3_bucket is required"):
        Repository(REGION)


def test_repr_names_the_repository() -> None:
    repo = Repository(REGION, "bkt", s3_prefix="/a/")
    assert repr(repo) == (
        "Repository(aws_region='us-east-1', s3_bucket='bkt', s3_prefix='a', "
        "dynamodb_table_name='versioned-artifacts', suffix='', endpoint_url=None)"
    )
