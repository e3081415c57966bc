"""Two repositories never share one table by accident (issue 17).

``bootstrap`` records in the table which bucket and prefix it serves; a
repository given another bucket or prefix with that table is refused before it
writes anything or returns anything the table holds. A table without the record
(made by `versioned` 1.0, or before the record) works as it did and can be
adopted. Every refusal is checked on the table and the buckets afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE, TableRepoFactory
from tests.proxy import CountingProxy
from versioned_async import LocalCache, Repository, exc

OTHER_BUCKET = "other-bucket"
RECORD_KEY = {"pk": {"S": "__table"}, "sk": {"S": "serves"}}
UPDATE_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000")

PYTHON_ADVICE = (
    "give Repository the table's own s3_bucket='test-artifacts' and "
    "s3_prefix='versioned-artifacts', or a table of its own with dynamodb_table_name=... "
    "(bootstrap() creates it)"
)


def refusal(given: str, advice: str = PYTHON_ADVICE) -> str:
    return (
        f"DynamoDB table '{TABLE}' serves the repository in "
        f"s3://{BUCKET}/versioned-artifacts, not this one in {given}: nothing was written, "
        f"and nothing the table holds was returned; {advice}"
    )


async def scan(dynamodb: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": TABLE, "ConsistentRead": True}
    while True:
        page = await dynamodb.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


async def keys(s3: Any, bucket: str) -> list[str]:
    listed = await s3.list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", ()))


async def record(dynamodb: Any) -> dict[str, Any] | None:
    got = await dynamodb.get_item(TableName=TABLE, Key=RECORD_KEY, ConsistentRead=True)
    item: dict[str, Any] | None = got.get("Item")
    return item


@pytest.fixture
async def customers(make_table_repo: TableRepoFactory) -> Repository:
    """The table's own repository (bucket BUCKET, the default prefix), bootstrapped, with
    ``customers`` 1 and ``prod`` on it."""
    async with make_table_repo() as repo:
        await repo.bootstrap()
        await repo.put_artifact("customers", b"one")
        await repo.publish_artifact_version("customers")
        await repo.put_alias("customers", "prod", 1)
    return repo


# -- the record ------------------------------------------------------------------------


async def test_bootstrap_records_the_bucket_and_prefix_the_table_serves(
    make_table_repo: TableRepoFactory, dynamodb: Any
) -> None:
    async with make_table_repo(s3_prefix="/team/models/") as repo:
        await repo.bootstrap()
        assert await repo.check_table() is True
    item = await record(dynamodb)
    assert item is not None
    assert set(item) == {"pk", "sk", "s3_bucket", "s3_prefix", "update_at", "recorded_by"}
    assert item["s3_bucket"] == {"S": BUCKET}
    assert item["s3_prefix"] == {"S": "team/models"}  # as keys are written: no slashes
    assert item["recorded_by"] == {"S": "bootstrap"}
    assert UPDATE_AT.fullmatch(item["update_at"]["S"])


async def test_bootstrap_is_idempotent_and_keeps_the_first_record(
    make_table_repo: TableRepoFactory, dynamodb: Any
) -> None:
    async with make_table_repo() as repo:
        await repo.bootstrap()
        first = await record(dynamodb)
        await repo.bootstrap()
    async with make_table_repo(s3_prefix="versioned-artifacts/") as same:
        await same.bootstrap()  # the same prefix, spelled with a slash
        assert await same.check_table() is True
    assert await record(dynamodb) == first


async def test_the_record_is_no_artifact_alias_or_version(
    customers: Repository, make_table_repo: TableRepoFactory, dynamodb: Any
) -> None:
    async with make_table_repo() as repo:
        assert await repo.list_artifact_names() == ["customers"]
        found = await repo.find_artifact_versions()
        assert [(a.name, a.version) for a in found] == [("customers", "LATEST"), ("customers", "1")]
        await repo.purge_all()  # every artifact, not the table's record
        assert await repo.list_artifact_names() == []
        assert await repo.find_artifact_versions() == []
    assert [i["pk"]["S"] for i in await scan(dynamodb)] == ["__table"]


# -- refusals --------------------------------------------------------------------------


Call = Callable[[Repository], Awaitable[object]]

CALLS: dict[str, Call] = {
    "list_artifact_versions": lambda r: r.list_artifact_versions("customers"),
    "get_artifact_version": lambda r: r.get_artifact_version("customers", 1),
    "get_alias": lambda r: r.get_alias("customers", "prod"),
    "list_aliases": lambda r: r.list_aliases("customers"),
    "resolve_alias": lambda r: r.resolve_alias("customers", "prod"),
    "find_artifact_versions": lambda r: r.find_artifact_versions(metadata={}),
    "list_alias_history": lambda r: r.list_alias_history("customers", "prod"),
    "get_content": lambda r: r.get_content("customers", 1),
    "get_alias_content": lambda r: r.get_alias_content("customers", "prod"),
    "put_artifact": lambda r: r.put_artifact("customers", b"theirs"),
    "publish_artifact_version": lambda r: r.publish_artifact_version("customers"),
    "put_alias": lambda r: r.put_alias("customers", "prod", 1),
    "delete_artifact_version": lambda r: r.delete_artifact_version("customers", 1),
    "protect": lambda r: r.protect("customers", 1),
    "purge_artifact_versions": lambda r: r.purge_artifact_versions("customers", keep_last_n=0),
    "purge_all": lambda r: r.purge_all(),
    "bootstrap": lambda r: r.bootstrap(),
    "adopt_table": lambda r: r.adopt_table(),
}


@pytest.mark.parametrize("call", list(CALLS))
async def test_another_bucket_is_refused_before_anything_is_written_or_returned(
    customers: Repository,
    make_table_repo: TableRepoFactory,
    s3: Any,
    dynamodb: Any,
    call: str,
) -> None:
    await s3.create_bucket(Bucket=OTHER_BUCKET)
    await s3.put_object(Bucket=OTHER_BUCKET, Key="versioned-artifacts/customers/LATEST", Body=b"x")
    items, objects = await scan(dynamodb), await keys(s3, BUCKET)
    async with make_table_repo(s3_bucket=OTHER_BUCKET) as repo:
        with pytest.raises(exc.TableMismatchError) as refused:
            await CALLS[call](repo)
    assert str(refused.value) == refusal(f"s3://{OTHER_BUCKET}/versioned-artifacts")
    assert isinstance(refused.value, exc.InvalidArgumentError)
    assert (refused.value.served_bucket, refused.value.bucket) == (BUCKET, OTHER_BUCKET)
    assert await scan(dynamodb) == items
    assert await keys(s3, BUCKET) == objects
    assert await keys(s3, OTHER_BUCKET) == ["versioned-artifacts/customers/LATEST"]


async def test_bootstrap_of_another_bucket_creates_no_bucket(
    customers: Repository, make_table_repo: TableRepoFactory, s3: Any, dynamodb: Any
) -> None:
    items = await scan(dynamodb)
    async with make_table_repo(s3_bucket=OTHER_BUCKET) as repo:
        with pytest.raises(exc.TableMismatchError):
            await repo.bootstrap()
    buckets = [b["Name"] for b in (await s3.list_buckets())["Buckets"]]
    assert OTHER_BUCKET not in buckets
    assert await scan(dynamodb) == items


async def test_a_second_prefix_of_the_same_bucket_is_refused(
    customers: Repository, make_table_repo: TableRepoFactory, s3: Any, dynamodb: Any
) -> None:
    items, objects = await scan(dynamodb), await keys(s3, BUCKET)
    async with make_table_repo(s3_prefix="team-b") as repo:
        with pytest.raises(exc.TableMismatchError) as refused:
            await repo.bootstrap()
        with pytest.raises(exc.TableMismatchError):
            await repo.put_artifact("customers", b"team b's")
        with pytest.raises(exc.TableMismatchError):
            await repo.list_artifact_versions("customers")
    assert str(refused.value) == refusal(f"s3://{BUCKET}/team-b")
    assert refused.value.prefix == "team-b"
    assert await scan(dynamodb) == items
    assert await keys(s3, BUCKET) == objects


async def test_the_verdict_is_asked_once_and_remembered(
    customers: Repository, make_proxied_table_repo: TableRepoFactory, proxy: CountingProxy
) -> None:
    async with make_proxied_table_repo(s3_bucket=OTHER_BUCKET) as repo:
        for _ in range(3):
            with pytest.raises(exc.TableMismatchError):
                await repo.list_artifact_versions("customers")
            with pytest.raises(exc.TableMismatchError):
                await repo.put_alias("customers", "prod", 1)
    assert proxy.counts() == {"GetItem": 1}
    proxy.reset_counts()
    async with make_proxied_table_repo() as ours:
        assert await ours.check_table() is True
        assert await ours.check_table() is True
        assert [a.version for a in await ours.list_artifact_versions("customers")] == [
            "LATEST",
            "1",
        ]
    assert proxy.counts() == {"GetItem": 1, "Query": 1}


async def test_content_reads_cost_no_check_and_a_warm_restart_no_request(
    customers: Repository,
    make_proxied_table_repo: TableRepoFactory,
    proxy: CountingProxy,
    tmp_path: Path,
) -> None:
    async with make_proxied_table_repo(cache=LocalCache(tmp_path / "cache")) as repo:
        assert await repo.get_alias_content("customers", "prod") == b"one"
    assert proxy.counts() == {"GetItem": 2, "GetObject": 1}
    proxy.reset_counts()
    async with make_proxied_table_repo(cache=LocalCache(tmp_path / "cache")) as restarted:
        assert await restarted.get_alias_content("customers", "prod") == b"one"
    assert proxy.requests == []


# -- tables without the record ---------------------------------------------------------


@pytest.fixture
async def unrecorded(customers: Repository, dynamodb: Any) -> None:
    """The table as `versioned` 1.0 (or versioned_async before the record) leaves it."""
    await dynamodb.delete_item(TableName=TABLE, Key=RECORD_KEY)


async def test_a_table_without_the_record_works_as_before(
    unrecorded: None, make_table_repo: TableRepoFactory, s3: Any
) -> None:
    await s3.create_bucket(Bucket=OTHER_BUCKET)
    async with make_table_repo(s3_bucket=OTHER_BUCKET) as repo:
        assert await repo.check_table() is False
        # as today: another bucket's versions are listed (what adopt_table prevents)
        assert [a.version for a in await repo.list_artifact_versions("customers")] == [
            "LATEST",
            "1",
        ]


async def test_adopt_table_records_this_repository_once(
    unrecorded: None, make_table_repo: TableRepoFactory, s3: Any, dynamodb: Any
) -> None:
    async with make_table_repo() as repo:
        assert await repo.check_table() is False
        assert await repo.adopt_table() is True
        assert await repo.check_table() is True
        assert await repo.adopt_table() is False
    item = await record(dynamodb)
    assert item is not None
    assert (item["s3_bucket"], item["s3_prefix"], item["recorded_by"]) == (
        {"S": BUCKET},
        {"S": "versioned-artifacts"},
        {"S": "adopt_table"},
    )
    items = await scan(dynamodb)
    await s3.create_bucket(Bucket=OTHER_BUCKET)
    async with make_table_repo(s3_bucket=OTHER_BUCKET) as other:
        with pytest.raises(exc.TableMismatchError) as refused:
            await other.adopt_table()
        with pytest.raises(exc.TableMismatchError):
            await other.list_artifact_versions("customers")
    assert str(refused.value) == refusal(f"s3://{OTHER_BUCKET}/versioned-artifacts")
    assert await scan(dynamodb) == items
    assert await keys(s3, OTHER_BUCKET) == []


async def test_bootstrap_records_a_table_it_finds_without_one(
    unrecorded: None, make_table_repo: TableRepoFactory, dynamodb: Any
) -> None:
    async with make_table_repo() as repo:
        await repo.bootstrap()
        assert await repo.check_table() is True
    item = await record(dynamodb)
    assert item is not None
    assert item["recorded_by"] == {"S": "bootstrap"}


async def test_adopt_table_needs_the_table(make_table_repo: TableRepoFactory) -> None:
    async with make_table_repo() as repo:
        with pytest.raises(exc.RepositoryNotFoundError):
            await repo.adopt_table()


async def test_a_check_that_fails_is_not_remembered_and_nothing_is_written(
    customers: Repository,
    make_proxied_table_repo: TableRepoFactory,
    proxy: CountingProxy,
    dynamodb: Any,
) -> None:
    items = await scan(dynamodb)
    async with make_proxied_table_repo(s3_prefix="team-b") as repo:
        proxy.inject_errors(2, 400, code="ThrottlingException", op="GetItem")  # two attempts
        with pytest.raises(exc.BackendUnavailableError):
            await repo.put_alias("customers", "prod", "LATEST")
        assert [r.op for r in proxy.requests] == ["GetItem", "GetItem"]  # the check alone
        with pytest.raises(exc.TableMismatchError):  # checked again, not taken as fine
            await repo.put_alias("customers", "prod", "LATEST")
    assert await scan(dynamodb) == items
