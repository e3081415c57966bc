"""`versioned-async` and the table record (issue 17): a command given another bucket or
prefix with a table that serves a repository is refused with exit code 2, writing
nothing; ``adopt`` records the repository in a table that has no record."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiobotocore.session import AioSession
from click.testing import Result

from tests.conftest import BUCKET, REGION, TABLE
from tests.integration.test_cli import invoke
from versioned_async.cli import ExitCode

OTHER_BUCKET = "other-bucket"
RECORD_KEY = {"pk": {"S": "__table"}, "sk": {"S": "serves"}}


def refusal(given: str) -> str:
    return (
        f"error: DynamoDB table '{TABLE}' serves the repository in "
        f"s3://{BUCKET}/versioned-artifacts, not this one in {given}: nothing was written, "
        "and nothing the table holds was returned; pass --bucket test-artifacts "
        "--prefix versioned-artifacts, or a table of its own with --table NAME "
        "(`versioned-async bootstrap` creates it)\n"
    )


class Aws:
    """The table and the buckets, looked at behind the command line's back."""

    def __init__(self, endpoint_url: str, session: AioSession) -> None:
        self.endpoint_url = endpoint_url
        self.session = session

    def _client(self, service: str) -> Any:
        return self.session.create_client(
            service, region_name=REGION, endpoint_url=self.endpoint_url
        )

    def state(self) -> tuple[list[Any], dict[str, list[str]]]:
        """Every item of the table, and the keys of every bucket."""

        async def read() -> tuple[list[Any], dict[str, list[str]]]:
            async with self._client("dynamodb") as dynamodb, self._client("s3") as s3:
                items = (await dynamodb.scan(TableName=TABLE, ConsistentRead=True))["Items"]
                buckets = [b["Name"] for b in (await s3.list_buckets())["Buckets"]]
                keys = {}
                for bucket in sorted(buckets):
                    listed = await s3.list_objects_v2(Bucket=bucket)
                    keys[bucket] = sorted(o["Key"] for o in listed.get("Contents", ()))
            return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"])), keys

        return asyncio.run(read())

    def record(self) -> Any:
        async def read() -> Any:
            async with self._client("dynamodb") as dynamodb:
                got = await dynamodb.get_item(TableName=TABLE, Key=RECORD_KEY)
                return got.get("Item")

        return asyncio.run(read())

    def drop_record(self) -> None:
        async def drop() -> None:
            async with self._client("dynamodb") as dynamodb:
                await dynamodb.delete_item(TableName=TABLE, Key=RECORD_KEY)

        asyncio.run(drop())

    def create_bucket(self, bucket: str) -> None:
        async def create() -> None:
            async with self._client("s3") as s3:
                await s3.create_bucket(Bucket=bucket)

        asyncio.run(create())


@pytest.fixture
def aws(endpoint_url: str, aio_session: AioSession) -> Aws:
    return Aws(endpoint_url, aio_session)


@pytest.fixture
def customers(endpoint_url: str) -> None:
    """The table's own repository, bootstrapped by the command line, with customers 1."""
    for args in (("bootstrap",), ("put", "customers", "-"), ("publish", "customers")):
        result = invoke(endpoint_url, *args, input=b"one")
        assert result.exit_code == 0, result.output


def refused(result: Result, given: str) -> None:
    assert result.exit_code == ExitCode.USAGE == 2, result.output
    assert result.stderr == refusal(given)
    assert result.stdout == ""


@pytest.mark.parametrize(
    "command",
    [
        ("versions", "customers"),
        ("get", "customers", "--version", "1", "-o", "-"),
        ("put", "customers", "-"),
        ("publish", "customers"),
        ("alias", "set", "customers", "prod", "1"),
        ("bootstrap",),
        ("adopt",),
    ],
    ids=lambda c: "-".join(c[:2]),
)
def test_another_bucket_is_refused_with_exit_code_2_and_nothing_written(
    customers: None, endpoint_url: str, aws: Aws, command: tuple[str, ...]
) -> None:
    aws.create_bucket(OTHER_BUCKET)
    before = aws.state()
    result = invoke(endpoint_url, "--bucket", OTHER_BUCKET, *command, input=b"theirs")
    refused(result, f"s3://{OTHER_BUCKET}/versioned-artifacts")
    assert aws.state() == before


def test_another_prefix_of_the_same_bucket_is_refused(
    customers: None, endpoint_url: str, aws: Aws
) -> None:
    before = aws.state()
    refused(invoke(endpoint_url, "--prefix", "team-b", "bootstrap"), f"s3://{BUCKET}/team-b")
    refused(
        invoke(endpoint_url, "--prefix", "team-b", "versions", "customers"), f"s3://{BUCKET}/team-b"
    )
    assert aws.state() == before


def test_adopt_records_the_repository_in_a_table_without_a_record(
    customers: None, endpoint_url: str, aws: Aws
) -> None:
    aws.drop_record()
    aws.create_bucket(OTHER_BUCKET)
    # unrecorded: works as it always did, for any bucket
    assert invoke(endpoint_url, "--bucket", OTHER_BUCKET, "versions", "customers").exit_code == 0
    adopted = invoke(endpoint_url, "adopt")
    assert adopted.exit_code == 0, adopted.output
    assert adopted.stdout == (
        f"adopted: table '{TABLE}' now serves s3://{BUCKET}/versioned-artifacts\n"
    )
    record = aws.record()
    assert (record["s3_bucket"], record["s3_prefix"], record["recorded_by"]) == (
        {"S": BUCKET},
        {"S": "versioned-artifacts"},
        {"S": "adopt_table"},
    )
    again = invoke(endpoint_url, "adopt")
    assert again.exit_code == 0, again.output
    assert again.stdout == (
        f"already adopted: table '{TABLE}' serves s3://{BUCKET}/versioned-artifacts; "
        "nothing written\n"
    )
    assert aws.record() == record
    before = aws.state()
    refused(
        invoke(endpoint_url, "--bucket", OTHER_BUCKET, "versions", "customers"),
        f"s3://{OTHER_BUCKET}/versioned-artifacts",
    )
    assert aws.state() == before


def test_adopt_needs_the_dynamodb_backend(endpoint_url: str) -> None:
    result = invoke(endpoint_url, "--backend", "s3", "adopt", env={"VERSIONED_TABLE": ""})
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "`adopt` needs the DynamoDB backend (--backend dynamodb)" in result.stderr
