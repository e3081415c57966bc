"""Reliability under faults (issue "Reliability: faults"): every call survives what AWS
does on a bad day, with the library's default retry configuration.

The suite runs at the testing pace (``versioned_async.testing.set_testing``): every
retry is sent, without the backoff before it. Tests parametrised with
``pace="production"`` prove the same on botocore's real backoff and default timeouts.

* throttling bursts and 5xx: S3 ``503 SlowDown`` and ``500 InternalError``, DynamoDB
  ``400 ThrottlingException`` / ``ProvisionedThroughputExceededException`` and 500s;
* read timeouts: a response held back until the client gives up (the request was
  applied, the answer lost), and the same with the connection dropped instead;
* a connection cut in the middle of a large download: the retry must be a ranged GET
  (``Range: bytes=N-`` with ``If-Match`` on the ETag), not a second full download,
  and the bytes must be verified end to end.

The faults come from ``tests/proxy.py``; the proxy records prove each one happened
and that the call retried, and a repository that bypasses the proxy checks the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ReadTimeoutError

from tests.conftest import BUCKET, REGION, TABLE, RepoFactory, TableRepoFactory, TableRepoSettings
from tests.proxy import CountingProxy, RequestRecord
from versioned_async import LocalCache, Repository, exc

if TYPE_CHECKING:  # typing.Unpack is 3.11+; only the type checker reads it here
    from typing_extensions import Unpack

MiB = 1 << 20
PREFIX = "versioned-artifacts"

THROTTLING = "ThrottlingException"
THROUGHPUT = "ProvisionedThroughputExceededException"

#: (op, how many answers in a row, status, code): a burst the proxy answers instead of AWS
Burst = tuple[str, int, int, "str | None"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key(name: str, version: str) -> str:
    return f"{PREFIX}/{name}/{version}"


def of(proxy: CountingProxy, op: str) -> list[RequestRecord]:
    return [r for r in proxy.requests if r.op == op]


# -- fixtures ----------------------------------------------------------------------------


@dataclass
class Released:
    """What the writer set up: versions 1 and 2, LATEST (a third content), alias prod -> 1."""

    one: bytes
    two: bytes
    latest: bytes


@pytest.fixture
async def writer(make_table_repo: TableRepoFactory) -> AsyncIterator[Repository]:
    """A repository that bypasses the proxy: sets up and checks, never faulted."""
    async with make_table_repo() as repository:
        await repository.bootstrap()
        yield repository


@pytest.fixture
async def released(writer: Repository) -> Released:
    contents = Released(one=b"version one " * 50, two=b"version two " * 60, latest=b"latest " * 70)
    for content in (contents.one, contents.two):
        await writer.put_artifact("app", content)
        await writer.publish_artifact_version("app")
    await writer.put_artifact("app", contents.latest)
    await writer.put_alias("app", "prod", 1)
    return contents


@pytest.fixture
def make_default_repo(make_table_repo: TableRepoFactory, proxy: CountingProxy) -> TableRepoFactory:
    """Repositories through the proxy with the library's DEFAULT client config (retries)."""

    def make(**kwargs: Unpack[TableRepoSettings]) -> Repository:
        settings: TableRepoSettings = {"endpoint_url": proxy.endpoint_url, **kwargs}
        return make_table_repo(**settings)

    return make


def short_read_timeout() -> AioConfig:
    """Only the read timeout is shortened: the default retry mode and attempts stay."""
    return AioConfig(read_timeout=1, connect_timeout=2)


def arm(proxy: CountingProxy, bursts: list[Burst]) -> None:
    proxy.reset_counts()
    for op, n, status, code in bursts:
        proxy.inject_errors(n, status, code=code, op=op)


def assert_retried_through(proxy: CountingProxy, bursts: list[Burst]) -> None:
    """Each burst was answered in full, and the op was then sent again and went through."""
    assert proxy.pending_faults == []
    for op, n, status, _code in bursts:
        sent = of(proxy, op)
        assert len(sent) > n, f"{op} was sent {len(sent)} times: not retried after {n} errors"
        assert [(r.injected, r.status) for r in sent[:n]] == [(True, status)] * n
        after = sent[n]
        assert not after.injected, f"{op} attempt {n + 1} was not forwarded"
        assert after.status is not None
        assert after.status < 500
        assert after.status != 400


async def visible_numbers(repo: Repository, name: str) -> list[int]:
    return sorted(
        int(a.version) for a in await repo.list_artifact_versions(name) if a.version.isdigit()
    )


async def leftover_reservations(dynamodb: Any, name: str) -> list[str]:
    """Sort keys of version items still holding a publish reservation token."""
    resp = await dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": name}},
        ConsistentRead=True,
    )
    return [item["sk"]["S"] for item in resp["Items"] if "publish_token" in item]


# -- the faults themselves, seen from a raw client ----------------------------------------


@pytest.fixture
async def raw_s3(proxy: CountingProxy, aio_session: AioSession) -> AsyncIterator[Any]:
    """An S3 client through the proxy that never retries: it sees each fault as it is."""
    config = AioConfig(
        retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=1, connect_timeout=2
    )
    async with aio_session.create_client(
        "s3", region_name=REGION, endpoint_url=proxy.endpoint_url, config=config
    ) as client:
        yield client


async def exchange_raw(raw_s3: Any, op: str, key: str, body: bytes = b"") -> tuple[bytes, bytes]:
    """One presigned S3 request over a bare socket, no retries anywhere: (response head,
    the body bytes that came before EOF or a reset); ``b""`` heads for no answer."""
    method = {"get_object": "GET", "put_object": "PUT"}[op]
    url = await raw_s3.generate_presigned_url(op, Params={"Bucket": BUCKET, "Key": key})
    netloc, _, target = url.removeprefix("http://").partition("/")
    host, port = netloc.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"{method} /{target} HTTP/1.1\r\nHost: {netloc}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionResetError):
            return b"", b""
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        size = int(length[1]) if length and method != "HEAD" else 0
        received = bytearray()
        with contextlib.suppress(ConnectionResetError):
            while len(received) < size and (chunk := await reader.read(size - len(received))):
                received += chunk
        return head, bytes(received)
    finally:
        writer.close()


@pytest.mark.parametrize("reset", [True, False], ids=["RST", "early-EOF"])
async def test_cut_next_forwards_the_head_and_exactly_k_body_bytes(
    writer: Repository, proxy: CountingProxy, raw_s3: Any, reset: bool
) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    await writer.put_artifact("raw", data)
    cut_seen: list[RequestRecord] = []

    async def seen(record: RequestRecord) -> None:
        cut_seen.append(record)

    proxy.cut_next(1, op="GetObject", after_bytes=300_001, reset=reset, on_cut=seen)
    head, body = await exchange_raw(raw_s3, "get_object", key("raw", "LATEST"))
    assert head.startswith(b"HTTP/1.1 200")
    assert f"Content-Length: {len(data)}".encode() in head  # it promised the whole object
    assert body == data[:300_001]
    (record,) = proxy.requests
    assert cut_seen == [record]
    assert (record.fault, record.status, record.response_body_bytes) == ("cut", 200, 300_001)
    assert proxy.pending_faults == []
    # spent: the next one is whole
    _, body = await exchange_raw(raw_s3, "get_object", key("raw", "LATEST"))
    assert body == data


async def test_stall_next_holds_the_answer_until_the_client_gives_up(
    writer: Repository, proxy: CountingProxy, raw_s3: Any
) -> None:
    proxy.stall_next(1, op="PutObject")
    with pytest.raises(ReadTimeoutError):
        await raw_s3.put_object(Bucket=BUCKET, Key="stalled", Body=b"applied")
    (record,) = proxy.requests
    assert (record.fault, record.status, record.upstream_status) == ("stall", None, 200)
    got = await raw_s3.get_object(Bucket=BUCKET, Key="stalled")  # the write did happen
    assert await got["Body"].read() == b"applied"


@pytest.mark.parametrize("forward", [False, True])
async def test_drop_next_before_or_after_the_upstream_applied_it(
    writer: Repository, proxy: CountingProxy, raw_s3: Any, s3: Any, forward: bool
) -> None:
    proxy.drop_next(1, op="PutObject", forward=forward)
    head, _ = await exchange_raw(raw_s3, "put_object", "dropped", b"maybe")
    assert head == b""  # no answer at all
    (record,) = proxy.requests
    assert (record.fault, record.status) == ("drop", None)
    assert record.upstream_status == (200 if forward else None)
    listed = await s3.list_objects_v2(Bucket=BUCKET, Prefix="dropped")
    assert [o["Key"] for o in listed.get("Contents", [])] == (["dropped"] if forward else [])
    assert not proxy.is_down  # a drop is one connection, not an outage
    head, _ = await exchange_raw(raw_s3, "put_object", "after", b"fine")
    assert head.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("forward", [False, True])
async def test_go_down_at_the_kth_request(
    writer: Repository, proxy: CountingProxy, raw_s3: Any, s3: Any, forward: bool
) -> None:
    proxy.go_down_at(3, op="PutObject", forward=forward)
    await raw_s3.head_bucket(Bucket=BUCKET)  # not a PutObject: not counted
    for n in (1, 2):
        await raw_s3.put_object(Bucket=BUCKET, Key=f"k{n}", Body=b"x")
    assert proxy.pending_faults  # not down yet
    with pytest.raises(BotoCoreError):
        await raw_s3.put_object(Bucket=BUCKET, Key="k3", Body=b"x")
    assert proxy.is_down
    assert [r.fault for r in proxy.requests] == [None, None, None, "down"]
    assert proxy.requests[-1].upstream_status == (200 if forward else None)
    listed = await s3.list_objects_v2(Bucket=BUCKET, Prefix="k")
    expected = ["k1", "k2", "k3"] if forward else ["k1", "k2"]
    assert [o["Key"] for o in listed["Contents"]] == expected
    with pytest.raises(BotoCoreError):  # and it stays down
        await raw_s3.head_bucket(Bucket=BUCKET)
    proxy.come_back()
    await raw_s3.head_bucket(Bucket=BUCKET)


# -- the proxy's errors are what botocore expects from AWS ---------------------------------


@pytest.mark.parametrize("code", [THROTTLING, THROUGHPUT])
async def test_dynamodb_throttling_answer_is_shaped_like_dynamodb(
    proxy: CountingProxy, code: str
) -> None:
    """HTTP 400 with a JSON ``__type`` of ``<namespace>#<code>``: botocore's JSON parser takes
    the code after ``#``, and its standard retry mode treats both codes as throttling."""
    proxy.inject_errors(1, 400, code=code)
    headers = {
        "X-Amz-Target": "DynamoDB_20120810.GetItem",
        "Content-Type": "application/x-amz-json-1.0",
    }
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.post(proxy.endpoint_url, data=b"{}", headers=headers) as resp,
    ):
        assert resp.status == 400
        assert resp.headers["Content-Type"] == "application/x-amz-json-1.0"
        assert "x-amzn-RequestId" in resp.headers
        body = json.loads(await resp.read())
    assert body["__type"] == f"com.amazonaws.dynamodb.v20120810#{code}"
    assert body["message"]
    assert proxy.pending_faults == []


@pytest.mark.parametrize("code", [THROTTLING, THROUGHPUT])
async def test_dynamodb_400_throttling_is_retried_and_its_code_parsed(
    released: Released, make_proxied_repo: RepoFactory, proxy: CountingProxy, code: str
) -> None:
    async with make_proxied_repo() as repo:  # two attempts
        await repo.check_table()  # once per repository (issue 17): not the GetItem meant
        arm(proxy, [("GetItem", 1, 400, code)])
        assert (await repo.get_artifact_version("app", 1)).sha256 == sha(released.one)
        assert [(r.status, r.injected) for r in of(proxy, "GetItem")] == [(400, True), (200, False)]

        arm(proxy, [("GetItem", 2, 400, code)])
        with pytest.raises(exc.BackendUnavailableError) as info:
            await repo.get_artifact_version("app", 1)
        assert info.value.code == code  # parsed from the body, not the status
        assert "retry" in str(info.value)


async def test_dynamodb_400_that_is_not_throttling_is_not_retried(
    released: Released, make_proxied_repo: RepoFactory, proxy: CountingProxy
) -> None:
    """The control for the tests above: the retry depends on the code in the body."""
    async with make_proxied_repo() as repo:
        await repo.check_table()  # once per repository (issue 17): not the GetItem meant
        arm(proxy, [("GetItem", 1, 400, "ValidationException")])
        with pytest.raises(exc.BackendError) as info:
            await repo.get_artifact_version("app", 1)
        assert not isinstance(info.value, exc.BackendUnavailableError)
        assert info.value.code == "ValidationException"
        assert proxy.count("GetItem") == 1


# -- throttling bursts and 5xx, default retries: reads ----------------------------------

ReadCall = Callable[[Repository, Path], Awaitable[bytes]]


async def _get_content_latest(repo: Repository, tmp: Path) -> bytes:
    return await repo.get_content("app")


async def _get_content_v1(repo: Repository, tmp: Path) -> bytes:
    return await repo.get_content("app", 1)


async def _get_content_v2(repo: Repository, tmp: Path) -> bytes:
    return await repo.get_content("app", 2)


async def _get_alias_content(repo: Repository, tmp: Path) -> bytes:
    return await repo.get_alias_content("app", "prod")


async def _download_v1(repo: Repository, tmp: Path) -> bytes:
    target = await repo.download("app", tmp / "out.bin", version=1)
    assert sorted(p.name for p in tmp.iterdir()) == ["out.bin"]  # no staging left beside
    return target.read_bytes()


READS: dict[str, tuple[ReadCall, str]] = {
    # call: (what it does, which content it must return)
    "get_content-LATEST": (_get_content_latest, "latest"),
    "get_content-v1": (_get_content_v1, "one"),
    "get_content-v2": (_get_content_v2, "two"),
    "get_alias_content": (_get_alias_content, "one"),
    "download-v1": (_download_v1, "one"),
}

S3_SLOWDOWN: Burst = ("GetObject", 3, 503, "SlowDown")
S3_500: Burst = ("GetObject", 2, 500, "InternalError")
DDB_THROTTLING: Burst = ("GetItem", 3, 400, THROTTLING)
DDB_THROUGHPUT: Burst = ("GetItem", 2, 400, THROUGHPUT)
DDB_500: Burst = ("GetItem", 2, 500, "InternalServerError")

#: (call, the bursts it meets)
READ_CASES = [
    ("get_content-LATEST", [S3_SLOWDOWN]),
    ("get_content-v1", [DDB_THROTTLING]),
    ("get_content-v2", [DDB_THROUGHPUT, S3_500]),
    ("get_alias_content", [DDB_500, ("GetObject", 2, 503, "SlowDown")]),
    ("download-v1", [S3_SLOWDOWN]),
    ("download-v1", [DDB_THROTTLING]),
    ("download-v1", [DDB_THROUGHPUT, S3_500]),
]


def _case_id(case: tuple[str, list[Burst]]) -> str:
    call, bursts = case
    return "-".join([call, *(f"{op}{status}{code or ''}" for op, _, status, code in bursts)])


@pytest.mark.parametrize("cached", [False, True], ids=["no-cache", "LocalCache"])
@pytest.mark.parametrize("case", READ_CASES, ids=[_case_id(c) for c in READ_CASES])
async def test_reads_survive_throttling_and_5xx(
    released: Released,
    make_default_repo: TableRepoFactory,
    proxy: CountingProxy,
    tmp_path: Path,
    case: tuple[str, list[Burst]],
    cached: bool,
) -> None:
    call, bursts = case
    read, expect = READS[call]
    cache = LocalCache(tmp_path / "cache") if cached else None
    out = tmp_path / "out"
    out.mkdir()
    async with make_default_repo(cache=cache) as repo:
        arm(proxy, bursts)
        assert await read(repo, out) == getattr(released, expect)
    assert_retried_through(proxy, bursts)
    if cache is not None:
        assert cache.stats().downloads == 1
        assert cache.stats().integrity_failures == 0


@pytest.mark.parametrize("pace", ["testing", "production"], indirect=True)
async def test_get_artifact_version_survives_throttling(
    released: Released, make_default_repo: TableRepoFactory, proxy: CountingProxy, pace: str
) -> None:
    bursts: list[Burst] = [("GetItem", 3, 400, THROTTLING)]
    async with make_default_repo() as repo:
        arm(proxy, bursts)
        found = await repo.get_artifact_version("app", 2)
    assert (found.version, found.sha256) == ("2", sha(released.two))
    assert_retried_through(proxy, bursts)


# -- throttling bursts and 5xx, default retries: writes ----------------------------------


@pytest.mark.parametrize("pace", ["testing", "production"], indirect=True)
async def test_put_artifact_survives_throttling_on_every_request(
    released: Released,
    make_default_repo: TableRepoFactory,
    proxy: CountingProxy,
    writer: Repository,
    pace: str,
) -> None:
    bursts: list[Burst] = [
        ("HeadObject", 2, 503, None),  # HEAD: the status alone, no body to parse
        ("GetItem", 1, 400, THROTTLING),
        ("PutObject", 2, 503, "SlowDown"),
        ("PutItem", 2, 400, THROUGHPUT),
    ]
    async with make_default_repo() as repo:
        arm(proxy, bursts)
        put = await repo.put_artifact("app", b"fourth content")
    assert_retried_through(proxy, bursts)
    assert put.sha256 == sha(b"fourth content")
    assert await writer.get_content("app") == b"fourth content"
    assert (await writer.get_artifact_version("app")).sha256 == sha(b"fourth content")


async def test_publish_survives_throttling_on_every_request(
    released: Released,
    make_default_repo: TableRepoFactory,
    proxy: CountingProxy,
    writer: Repository,
    dynamodb: Any,
) -> None:
    bursts: list[Burst] = [
        ("Query", 2, 400, THROTTLING),
        ("PutItem", 2, 400, THROUGHPUT),  # the reservation: never reached DynamoDB
        ("CopyObject", 1, 503, "SlowDown"),
        ("HeadObject", 1, 500, None),
        ("UpdateItem", 2, 400, THROTTLING),
    ]
    async with make_default_repo() as repo:
        arm(proxy, bursts)
        published = await repo.publish_artifact_version("app")
    assert_retried_through(proxy, bursts)
    assert (published.version, published.sha256) == ("3", sha(released.latest))
    assert await writer.get_content("app", 3) == released.latest
    assert await visible_numbers(writer, "app") == [1, 2, 3]
    assert await leftover_reservations(dynamodb, "app") == []


async def test_put_alias_survives_throttling(
    released: Released,
    make_default_repo: TableRepoFactory,
    proxy: CountingProxy,
    writer: Repository,
) -> None:
    bursts: list[Burst] = [("TransactWriteItems", 3, 400, THROTTLING)]
    async with make_default_repo() as repo:
        arm(proxy, bursts)
        await repo.put_alias("app", "prod", 2, secondary_version=1, secondary_version_weight=20)
    assert_retried_through(proxy, bursts)
    alias = await writer.get_alias("app", "prod")
    assert (alias.version, alias.secondary_version, alias.secondary_version_weight) == (
        "2",
        "1",
        20,
    )


async def test_put_alias_survives_500(
    released: Released,
    make_default_repo: TableRepoFactory,
    proxy: CountingProxy,
    writer: Repository,
) -> None:
    bursts: list[Burst] = [("TransactWriteItems", 2, 500, "InternalServerError")]
    async with make_default_repo() as repo:
        arm(proxy, bursts)
        await repo.put_alias("app", "prod", 2)
    assert_retried_through(proxy, bursts)
    assert (await writer.get_alias("app", "prod")).version == "2"


async def test_an_sts_outage_leaves_alias_changes_recorded_without_an_actor(
    released: Released,
    make_default_repo: TableRepoFactory,
    proxy: CountingProxy,
    writer: Repository,
) -> None:
    async with make_default_repo(actor=None) as repo:  # the caller's identity, from STS
        proxy.inject_errors(10, 503, op="POST /")  # STS GetCallerIdentity, every attempt
        await repo.put_alias("app", "prod", 2)
        await repo.put_alias("app", "prod", 1)  # asked once per repository, not again
    sts = [r for r in proxy.requests if r.op == "POST /"]
    assert sts, "the default actor is asked of STS"
    assert all(r.fault == "error" for r in sts)
    changes = (await writer.list_alias_history("app", "prod")).changes
    assert [c.actor for c in changes[:2]] == [None, None]
    assert (await writer.get_alias("app", "prod")).version == "1"


async def test_delete_alias_survives_throttling(
    released: Released,
    make_default_repo: TableRepoFactory,
    proxy: CountingProxy,
    writer: Repository,
) -> None:
    bursts: list[Burst] = [("TransactWriteItems", 2, 400, THROUGHPUT)]
    async with make_default_repo() as repo:
        arm(proxy, bursts)
        await repo.delete_alias("app", "prod")
    assert_retried_through(proxy, bursts)
    with pytest.raises(exc.AliasNotFoundError):
        await writer.get_alias("app", "prod")


async def test_purge_survives_throttling_and_5xx(
    released: Released,
    make_default_repo: TableRepoFactory,
    proxy: CountingProxy,
    writer: Repository,
) -> None:
    bursts: list[Burst] = [
        ("Query", 2, 400, THROTTLING),
        ("TransactWriteItems", 1, 400, THROUGHPUT),
        # then a 500 for the same soft delete: armed after the throttle, it acts next
        ("TransactWriteItems", 1, 500, "InternalServerError"),
    ]
    async with make_default_repo() as repo:
        arm(proxy, bursts)
        _, purged = await repo.purge_artifact_versions(
            "app", keep_last_n=0, purge_older_than_secs=0
        )
    assert proxy.pending_faults == []
    updates = of(proxy, "TransactWriteItems")
    assert [(r.injected, r.status) for r in updates] == [(True, 400), (True, 500), (False, 200)]
    # versions, aliases, holds, then the aliases again after the delete; two throttled
    assert len(of(proxy, "Query")) == 6
    assert [a.version for a in purged] == ["2"]  # version 1 is kept: prod points at it
    assert await visible_numbers(writer, "app") == [1]
    assert await writer.get_content("app", 1) == released.one


# -- read timeouts and lost answers: the request was applied, the client never heard -----

LOST = ["stall", "drop"]


def lose(proxy: CountingProxy, how: str, op: str, n: int = 1) -> None:
    """Lose the answer to the next ``n`` requests of ``op`` after the server applied them:
    held until the client's read timeout ("stall"), or the connection reset ("drop")."""
    proxy.reset_counts()
    if how == "stall":
        proxy.stall_next(n, op=op)
    else:
        proxy.drop_next(n, op=op, forward=True)


def assert_lost_then_answered(proxy: CountingProxy, op: str, n: int = 1) -> None:
    assert proxy.pending_faults == []
    sent = of(proxy, op)
    assert len(sent) > n, f"{op} was not sent again after its answer was lost"
    for record in sent[:n]:
        assert record.fault in ("stall", "drop")
        assert record.status is None  # the client never got an answer
        assert record.upstream_status == 200  # but the server did the work
    assert sent[n].status is not None
    assert sent[n].fault is None


@pytest.mark.parametrize("cached", [False, True], ids=["no-cache", "LocalCache"])
@pytest.mark.parametrize(
    ("call", "op", "n"),
    [
        ("get_content-v1", "GetItem", 1),
        ("get_content-v1", "GetObject", 2),
        ("get_alias_content", "GetItem", 1),
        ("download-v1", "GetObject", 1),
        ("download-v1", "GetItem", 2),
    ],
)
async def test_reads_survive_read_timeouts(
    released: Released,
    make_default_repo: TableRepoFactory,
    proxy: CountingProxy,
    tmp_path: Path,
    call: str,
    op: str,
    n: int,
    cached: bool,
) -> None:
    read, expect = READS[call]
    cache = LocalCache(tmp_path / "cache") if cached else None
    out = tmp_path / "out"
    out.mkdir()
    async with make_default_repo(cache=cache, client_config=short_read_timeout()) as repo:
        lose(proxy, "stall", op, n)
        assert await read(repo, out) == getattr(released, expect)
    assert_lost_then_answered(proxy, op, n)


async def test_get_artifact_version_survives_a_read_timeout(
    released: Released, make_default_repo: TableRepoFactory, proxy: CountingProxy
) -> None:
    async with make_default_repo(client_config=short_read_timeout()) as repo:
        lose(proxy, "stall", "GetItem", 2)
        assert (await repo.get_artifact_version("app", 1)).sha256 == sha(released.one)
    assert_lost_then_answered(proxy, "GetItem", 2)


@pytest.mark.parametrize("how", LOST)
@pytest.mark.parametrize("op", ["HeadObject", "GetItem", "PutObject", "PutItem"])
async def test_put_artifact_survives_a_lost_answer(
    released: Released,
    make_default_repo: TableRepoFactory,
    proxy: CountingProxy,
    writer: Repository,
    op: str,
    how: str,
) -> None:
    async with make_default_repo(client_config=short_read_timeout()) as repo:
        lose(proxy, how, op)
        put = await repo.put_artifact("app", b"fourth content")
    assert_lost_then_answered(proxy, op)
    assert put.sha256 == sha(b"fourth content")
    assert await writer.get_content("app") == b"fourth content"


@pytest.mark.parametrize("how", LOST)
@pytest.mark.parametrize("op", ["Query", "PutItem", "CopyObject", "HeadObject", "UpdateItem"])
async def test_publish_survives_a_lost_answer(
    released: Released,
    make_default_repo: TableRepoFactory,
    proxy: CountingProxy,
    writer: Repository,
    dynamodb: Any,
    op: str,
    how: str,
) -> None:
    """The retried request meets its own effect: the reservation already exists (PutItem),
    the token is already gone (UpdateItem). The publish must still take number 3 and
    succeed: no number skipped, no ConflictError for a publish that went through."""
    async with make_default_repo(client_config=short_read_timeout()) as repo:
        lose(proxy, how, op)
        published = await repo.publish_artifact_version("app")
    assert_lost_then_answered(proxy, op)
    assert (published.version, published.sha256) == ("3", sha(released.latest))
    assert await visible_numbers(writer, "app") == [1, 2, 3]
    assert await leftover_reservations(dynamodb, "app") == []
    assert await writer.get_content("app", 3) == released.latest


@pytest.mark.parametrize("how", LOST)
async def test_put_alias_survives_a_lost_answer(
    released: Released,
    make_default_repo: TableRepoFactory,
    proxy: CountingProxy,
    writer: Repository,
    how: str,
) -> None:
    async with make_default_repo(client_config=short_read_timeout()) as repo:
        lose(proxy, how, "TransactWriteItems")
        await repo.put_alias("app", "prod", 2, secondary_version=1, secondary_version_weight=20)
    assert_lost_then_answered(proxy, "TransactWriteItems")
    alias = await writer.get_alias("app", "prod")
    assert (alias.version, alias.secondary_version, alias.secondary_version_weight) == (
        "2",
        "1",
        20,
    )


@pytest.mark.parametrize("how", LOST)
async def test_delete_alias_survives_a_lost_answer(
    released: Released,
    make_default_repo: TableRepoFactory,
    proxy: CountingProxy,
    writer: Repository,
    how: str,
) -> None:
    async with make_default_repo(client_config=short_read_timeout()) as repo:
        lose(proxy, how, "TransactWriteItems")
        await repo.delete_alias("app", "prod")
    assert_lost_then_answered(proxy, "TransactWriteItems")
    with pytest.raises(exc.AliasNotFoundError):
        await writer.get_alias("app", "prod")


@pytest.mark.parametrize("how", LOST)
@pytest.mark.parametrize("op", ["Query", "TransactWriteItems"])
async def test_purge_survives_a_lost_answer(
    released: Released,
    make_default_repo: TableRepoFactory,
    proxy: CountingProxy,
    writer: Repository,
    op: str,
    how: str,
) -> None:
    async with make_default_repo(client_config=short_read_timeout()) as repo:
        lose(proxy, how, op)
        _, purged = await repo.purge_artifact_versions(
            "app", keep_last_n=0, purge_older_than_secs=0
        )
    assert_lost_then_answered(proxy, op)
    assert [a.version for a in purged] == ["2"]
    assert await visible_numbers(writer, "app") == [1]


# -- a connection cut in the middle of a large download ---------------------------------

#: not a multiple of any read size, so a resume offset is never a lucky round number
BIG = 4 * MiB + 12_345
#: where the first response is cut
CUT_AT = 3 * MiB // 2 + 7


def big_content(seed: bytes = b"big") -> bytes:
    block = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(2048))
    return (block * (BIG // len(block) + 1))[:BIG]


@dataclass
class BigArtifact:
    content: bytes
    etag: str


@pytest.fixture
async def big(writer: Repository, s3: Any) -> BigArtifact:
    """A 4 MiB artifact, published as version 1 (and still LATEST)."""
    content = big_content()
    await writer.put_artifact("big", content)
    await writer.publish_artifact_version("big")
    head = await s3.head_object(Bucket=BUCKET, Key=key("big", "000001"))
    return BigArtifact(content, head["ETag"])


BigRead = Callable[[Repository, Path], Awaitable[bytes]]


async def _big_get_content(repo: Repository, tmp: Path) -> bytes:
    return await repo.get_content("big", 1)


async def _big_download(repo: Repository, tmp: Path) -> bytes:
    target = await repo.download("big", tmp / "big.bin", version=1)
    assert sorted(p.name for p in tmp.iterdir()) == ["big.bin"]  # no staging left beside
    return target.read_bytes()


BIG_READS: dict[str, BigRead] = {"get_content": _big_get_content, "download": _big_download}


def assert_resumed_with_range(proxy: CountingProxy, size: int, etag: str) -> None:
    """Two GetObjects: the cut one, then a ranged one that fetched only the rest."""
    gets = of(proxy, "GetObject")
    assert len(gets) == 2, [(r.status, r.fault, r.response_body_bytes) for r in gets]
    cut, resumed = gets
    assert cut.fault == "cut"
    assert cut.response_body_bytes == CUT_AT
    assert "range" not in cut.headers
    rng = resumed.headers.get("range")
    assert rng is not None, "after the cut the whole object was downloaded again, not the rest"
    match = re.fullmatch(r"bytes=(\d+)-", rng)
    assert match is not None, f"resume asked for {rng!r}, expected 'bytes=<received>-'"
    start = int(match[1])
    assert 0 < start <= CUT_AT, f"resumed at {start}, but {CUT_AT} bytes had been received"
    # only that object, as it was: a replaced object must not be stitched on
    assert resumed.headers.get("if-match", "").strip('"') == etag.strip('"')
    assert resumed.status == 206
    assert resumed.response_body_bytes == size - start


@pytest.mark.parametrize("reset", [True, False], ids=["RST", "early-EOF"])
@pytest.mark.parametrize("cached", [False, True], ids=["no-cache", "LocalCache"])
@pytest.mark.parametrize("call", list(BIG_READS))
@pytest.mark.parametrize("pace", ["testing", "production"], indirect=True)
async def test_cut_download_resumes_with_a_range(
    big: BigArtifact,
    make_default_repo: TableRepoFactory,
    proxy: CountingProxy,
    tmp_path: Path,
    call: str,
    cached: bool,
    reset: bool,
    pace: str,
) -> None:
    cache = LocalCache(tmp_path / "cache") if cached else None
    out = tmp_path / "out"
    out.mkdir()
    async with make_default_repo(cache=cache) as repo:
        proxy.reset_counts()
        proxy.cut_next(1, op="GetObject", after_bytes=CUT_AT, reset=reset)
        got = await BIG_READS[call](repo, out)
    assert got == big.content  # sha256(got) is what version 1 records
    assert_resumed_with_range(proxy, len(big.content), big.etag)
    if cache is not None:
        assert cache.stats().integrity_failures == 0
        assert cache.content_count == 1
        assert sorted(cache._store.content.staging.iterdir()) == []


@pytest.mark.parametrize("cached", [False, True], ids=["no-cache", "LocalCache"])
@pytest.mark.parametrize("call", list(BIG_READS))
async def test_object_replaced_between_cut_and_resume_never_mixes_bytes(
    writer: Repository,
    make_default_repo: TableRepoFactory,
    proxy: CountingProxy,
    tmp_path: Path,
    call: str,
    cached: bool,
) -> None:
    """LATEST is put again (same size, other bytes) while the download is cut. The call may
    restart and return the new content, or fail with a VersionedError (IntegrityError,
    ConflictError, ...); it must never return or write the old head with the new tail."""
    old, new = big_content(b"old"), big_content(b"new")
    await writer.put_artifact("big", old)
    replaced: list[RequestRecord] = []

    async def replace(record: RequestRecord) -> None:
        await writer.put_artifact("big", new)
        replaced.append(record)

    async def read(repo: Repository, tmp: Path) -> bytes:
        if call == "download":
            return (await repo.download("big", tmp / "big.bin")).read_bytes()
        return await repo.get_content("big")

    cache = LocalCache(tmp_path / "cache") if cached else None
    out = tmp_path / "out"
    out.mkdir()
    async with make_default_repo(cache=cache) as repo:
        proxy.reset_counts()
        proxy.cut_next(1, op="GetObject", after_bytes=CUT_AT, on_cut=replace)
        try:
            got: bytes | None = await read(repo, out)
        except exc.VersionedError:
            got = None
        assert replaced, "the cut never happened"
        if got is None:
            # failed: nothing half-written is left where the caller looks
            assert sorted(p.name for p in out.iterdir()) == []
        else:
            assert sha(got) in (sha(old), sha(new)), "returned the old head with the new tail"
        resumed = [r for r in of(proxy, "GetObject")[1:] if "range" in r.headers]
        for record in resumed:  # a resume must be conditional on the object it started
            assert record.headers.get("if-match")
            assert record.status == 412
        # and the next read serves the new content, whole
        assert await read(repo, out) == new
