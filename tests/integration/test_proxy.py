"""The counting proxy the cache tests stand on: it counts, forwards faithfully, and breaks.

Two upstreams: the moto server, reached through a ``versioned_async.Repository``
(what the proxy is for), and a small aiohttp origin on 127.0.0.1 that serves
the HTTP framings moto never uses (chunked, until close, 100-continue, 204) and
lets a test hold a body half-sent, to prove the proxy streams.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiobotocore.session import AioSession
from aiohttp import web

from tests.conftest import BUCKET, ENGINE, REGION, RepoFactory, TableRepoFactory
from tests.integration.conftest import fail_fast_config
from tests.proxy import CountingProxy
from versioned_async import Repository, exc

MiB = 1 << 20
LATEST_KEY = "versioned-artifacts/app/LATEST"


@pytest.fixture
async def proxied_repo(
    make_proxied_table_repo: TableRepoFactory, proxy: CountingProxy
) -> AsyncIterator[Repository]:
    """An open, bootstrapped repository that talks through ``proxy``; counts start at zero."""
    async with make_proxied_table_repo() as repository:
        await repository.bootstrap()
        proxy.reset_counts()
        yield repository


# -- counting through a Repository -------------------------------------------------------


async def test_bootstrap_is_counted_per_operation(
    make_proxied_repo: RepoFactory, proxy: CountingProxy
) -> None:
    async with make_proxied_repo() as repo:
        await repo.bootstrap()
    # the table waiter's first DescribeTable already sees it ACTIVE on moto
    assert proxy.counts() == {
        "HeadBucket": 1,
        "CreateBucket": 1,
        "DescribeTable": 2,
        "CreateTable": 1,
        "PutItem": 1,  # the table's record of the repository it serves (issue 17)
    }
    assert {r.status for r in proxy.requests if r.op == "HeadBucket"} == {404}


async def test_put_then_get_content_makes_the_expected_requests(
    proxied_repo: Repository, proxy: CountingProxy
) -> None:
    await proxied_repo.put_artifact("app", b"hello")
    # HeadObject + GetItem (concurrently), PutObject, HeadObject, PutItem, HeadObject
    assert proxy.counts() == {"HeadObject": 3, "GetItem": 1, "PutObject": 1, "PutItem": 1}
    assert [r.status for r in proxy.requests if r.op == "HeadObject"] == [404, 200, 200]

    proxy.reset_counts()
    assert await proxied_repo.get_content("app") == b"hello"
    assert proxy.count() == 2
    assert proxy.count("GetItem") == 1
    assert proxy.count("GetObject") == 1
    assert proxy.count(service="s3") == 1
    assert proxy.count(service="dynamodb") == 1
    (get_object,) = (r for r in proxy.requests if r.op == "GetObject")
    assert get_object.method == "GET"
    assert get_object.path == f"/{BUCKET}/{LATEST_KEY}"
    assert get_object.status == 200
    assert get_object.response_body_bytes == len(b"hello")
    assert not get_object.injected
    (get_item,) = (r for r in proxy.requests if r.op == "GetItem")
    assert (get_item.method, get_item.path, get_item.status) == ("POST", "/", 200)


async def test_publish_list_and_purge_are_classified(
    proxied_repo: Repository, proxy: CountingProxy
) -> None:
    await proxied_repo.put_artifact("app", b"v1")
    proxy.reset_counts()
    await proxied_repo.publish_artifact_version("app")
    # Query (LATEST and top), PutItem (reservation), CopyObject, HeadObject, UpdateItem
    assert proxy.counts() == {
        "Query": 1,
        "PutItem": 1,
        "CopyObject": 1,
        "HeadObject": 1,
        "UpdateItem": 1,
    }
    (copy,) = (r for r in proxy.requests if r.op == "CopyObject")
    assert (copy.method, copy.path) == ("PUT", f"/{BUCKET}/versioned-artifacts/app/000001")

    proxy.reset_counts()
    assert await proxied_repo.list_artifact_names() == ["app"]
    assert proxy.counts() == {"ListObjectsV2": 1}

    proxy.reset_counts()
    await proxied_repo.purge_artifact("app")
    # Query: the aliases, their history, the holds and the versions
    assert proxy.counts() == {
        "Query": 4,
        "BatchWriteItem": 1,
        "ListObjectsV2": 1,
        "DeleteObjects": 1,
    }


async def test_raw_s3_operations_are_classified(
    proxy: CountingProxy, aio_session: AioSession, proxied_repo: Repository
) -> None:
    async with aio_session.create_client(
        "s3", region_name=REGION, endpoint_url=proxy.endpoint_url, config=fail_fast_config()
    ) as s3:
        await s3.head_bucket(Bucket=BUCKET)
        upload = await s3.create_multipart_upload(Bucket=BUCKET, Key="big")
        part = await s3.upload_part(
            Bucket=BUCKET, Key="big", UploadId=upload["UploadId"], PartNumber=1, Body=b"only part"
        )
        await s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key="big",
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
        aborted = await s3.create_multipart_upload(Bucket=BUCKET, Key="gone")
        await s3.abort_multipart_upload(Bucket=BUCKET, Key="gone", UploadId=aborted["UploadId"])
        await s3.get_object_tagging(Bucket=BUCKET, Key="big")
        await s3.list_objects(Bucket=BUCKET)
        await s3.delete_object(Bucket=BUCKET, Key="big")
    assert proxy.counts() == {
        "HeadBucket": 1,
        "CreateMultipartUpload": 2,
        "UploadPart": 1,
        "CompleteMultipartUpload": 1,
        "AbortMultipartUpload": 1,
        "GetObjectTagging": 1,
        "ListObjects": 1,
        "DeleteObject": 1,
    }
    assert all(r.status is not None and r.status < 300 for r in proxy.requests)


async def test_keep_alive_connection_counts_every_request(
    proxied_repo: Repository, proxy: CountingProxy
) -> None:
    await proxied_repo.put_artifact("app", b"x")
    proxy.reset_counts()
    for _ in range(10):
        await proxied_repo.get_artifact_version("app")
    assert proxy.count("GetItem") == 10
    # one pooled client connection carried all ten, though moto closes after every response
    assert len({r.connection_id for r in proxy.requests}) == 1
    assert proxy.connections_accepted <= 1
    if ENGINE == "moto":
        # moto (werkzeug) closes after every response, so the proxy had to reconnect upstream;
        # ministack (hypercorn) keeps its connections alive and needs no reconnect
        assert proxy.upstream_connections >= 1


async def test_five_mib_body_passes_intact(proxied_repo: Repository, proxy: CountingProxy) -> None:
    content = hashlib.sha256(b"seed").digest() * (5 * MiB // 32) + b"tail"
    await proxied_repo.put_artifact("app", content)
    (put,) = (r for r in proxy.requests if r.op == "PutObject")
    assert put.request_body_bytes >= len(content)
    proxy.reset_counts()
    assert await proxied_repo.get_content("app") == content
    (get,) = (r for r in proxy.requests if r.op == "GetObject")
    assert get.response_body_bytes == len(content)


# -- outages -----------------------------------------------------------------------------


async def test_go_down_fails_calls_fast_and_come_back_restores_them(
    proxied_repo: Repository, proxy: CountingProxy
) -> None:
    await proxied_repo.put_artifact("app", b"x")
    proxy.go_down()
    assert proxy.is_down
    with pytest.raises(exc.BackendUnavailableError):
        await proxied_repo.get_content("app")
    with pytest.raises(exc.BackendUnavailableError):
        await proxied_repo.put_artifact("other", b"y")
    assert proxy.connections_dropped >= 2  # the clients did try, and were dropped

    proxy.come_back()
    proxy.reset_counts()
    assert await proxied_repo.get_content("app") == b"x"
    assert proxy.counts() == {"GetItem": 1, "GetObject": 1}


async def test_go_down_drops_a_request_in_flight(
    proxied_repo: Repository, proxy: CountingProxy
) -> None:
    await proxied_repo.put_artifact("app", b"x")
    proxy.reset_counts()
    proxy.delay = 3600  # held far past the read timeout: only go_down ends it as a drop
    call = asyncio.ensure_future(proxied_repo.get_artifact_version("app"))
    while proxy.count("GetItem") < 1:  # noqa: ASYNC110 - wait until the proxy holds it
        await asyncio.sleep(0.05)
    proxy.go_down()
    with pytest.raises(exc.BackendUnavailableError) as info:
        await asyncio.wait_for(call, 60)  # a hang guard, not a timing claim
    # dropped connections, not the client's read timeout, ended the call
    assert "timeout" not in str(info.value).lower()
    assert proxy.requests[0].status is None  # it never got an answer


async def test_fail_next_503_is_retried_by_botocore(
    proxied_repo: Repository, proxy: CountingProxy
) -> None:
    await proxied_repo.put_artifact("app", b"x")
    proxy.reset_counts()
    proxy.fail_next(1, 503)  # DynamoDB: a JSON ServiceUnavailable
    assert (await proxied_repo.get_artifact_version("app")).sha256 == sha(b"x")
    assert [(r.op, r.status, r.injected) for r in proxy.requests] == [
        ("GetItem", 503, True),
        ("GetItem", 200, False),
    ]
    # the injected answer left the connection usable: the retry went over the same one
    assert proxy.requests[0].connection_id == proxy.requests[1].connection_id

    proxy.reset_counts()
    proxy.fail_next(1, 503, op="GetObject")  # S3: an XML SlowDown
    assert await proxied_repo.get_content("app") == b"x"
    assert [r.status for r in proxy.requests if r.op == "GetObject"] == [503, 200]
    assert [r.status for r in proxy.requests if r.op == "GetItem"] == [200]

    proxy.reset_counts()
    proxy.fail_next(1, 500, op="HeadObject")  # HEAD: the status alone
    await proxied_repo.put_artifact("app", b"x")
    assert [r.status for r in proxy.requests if r.op == "HeadObject"] == [500, 200]

    proxy.reset_counts()
    proxy.fail_next(1, 503, op="PutObject")  # a body (after 100 Continue) read away
    await proxied_repo.put_artifact("app", b"new")
    puts = [r for r in proxy.requests if r.op == "PutObject"]
    assert [(r.status, r.injected, r.request_body_bytes) for r in puts] == [
        (503, True, 3),
        (200, False, 3),
    ]
    assert await proxied_repo.get_content("app") == b"new"


@pytest.mark.parametrize(
    ("status", "op", "code"),
    [
        (503, "GetItem", "ServiceUnavailable"),
        (500, "GetItem", "InternalServerError"),
        (503, "ListObjectsV2", "SlowDown"),
        (500, "ListObjectsV2", "InternalError"),
    ],
)
async def test_fail_next_beyond_the_retries_raises_with_the_aws_code(
    proxied_repo: Repository, proxy: CountingProxy, status: int, op: str, code: str
) -> None:
    await proxied_repo.put_artifact("app", b"x")
    proxy.reset_counts()
    proxy.fail_next(2, status, op=op)  # total_max_attempts=2: both attempts fail
    call = (
        proxied_repo.get_artifact_version("app")
        if op == "GetItem"
        else proxied_repo.list_artifact_names()
    )
    with pytest.raises(exc.BackendUnavailableError) as info:
        await call
    assert info.value.code == code
    assert [(r.status, r.injected) for r in proxy.requests] == [(status, True)] * 2
    # spent: the next call goes through
    assert await proxied_repo.list_artifact_names() == ["app"]


async def test_delay_adds_latency_to_each_request(
    proxied_repo: Repository, proxy: CountingProxy
) -> None:
    await proxied_repo.put_artifact("app", b"x")
    proxy.delay = 0.3
    started = time.monotonic()
    await proxied_repo.get_artifact_version("app")
    assert time.monotonic() - started >= 0.3  # a lower bound: cannot flake on a slow machine


# -- HTTP framing, against a local aiohttp origin -----------------------------------------


class Origin:
    """An aiohttp server on 127.0.0.1 with one route per framing, and hooks to stall bodies."""

    def __init__(self) -> None:
        self.upload_half_arrived = asyncio.Event()
        self.download_half_read = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_get("/sized", self.sized)  # HEAD too
        self.app.router.add_get("/chunked", self.chunked)
        self.app.router.add_get("/stream", self.stream)
        self.app.router.add_get("/empty", self.empty)
        self.app.router.add_post("/echo", self.echo)
        self.app.router.add_post("/upload", self.upload)
        self.app.router.add_get("/download", self.download)

    async def sized(self, request: web.Request) -> web.Response:
        return web.Response(body=b"s" * 1000)

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b"ab", b"cd", b"ef"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """No length: chunked for HTTP/1.1, until close for HTTP/1.0."""
        resp = web.StreamResponse()
        await resp.prepare(request)
        for part in (b"one,", b"two,", b"three"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    async def empty(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def echo(self, request: web.Request) -> web.Response:
        data = await request.read()
        return web.Response(text=f"{len(data)}:{sha(data)}")

    async def upload(self, request: web.Request) -> web.Response:
        total = 0
        async for piece in request.content.iter_any():
            total += len(piece)
            if total >= MiB:
                self.upload_half_arrived.set()
        return web.Response(text=str(total))

    async def download(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 2 * MiB
        await resp.prepare(request)
        await resp.write(b"d" * MiB)
        await asyncio.wait_for(self.download_half_read.wait(), 5)
        await resp.write(b"d" * MiB)
        await resp.write_eof()
        return resp


@pytest.fixture
async def origin() -> AsyncIterator[tuple[Origin, CountingProxy]]:
    server = Origin()
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with CountingProxy(f"http://127.0.0.1:{port}") as counting:
            yield server, counting
        assert counting.errors == []
    finally:
        await runner.cleanup()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def http_client(limit: int = 100) -> aiohttp.ClientSession:
    """An aiohttp client that fails a test instead of hanging it."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit), timeout=aiohttp.ClientTimeout(total=10)
    )


async def pieces(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_every_framing_on_one_keep_alive_connection(
    origin: tuple[Origin, CountingProxy],
) -> None:
    _, proxy = origin
    url = proxy.endpoint_url
    async with http_client(limit=1) as http:
        async with http.get(f"{url}/chunked") as resp:
            assert resp.headers["Transfer-Encoding"] == "chunked"
            assert await resp.read() == b"abcdef"
        async with http.head(f"{url}/sized") as resp:
            assert resp.headers["Content-Length"] == "1000"
            assert await resp.read() == b""
        async with http.get(f"{url}/empty") as resp:
            assert resp.status == 204
        async with http.post(f"{url}/echo", data=pieces(b"chunked ", b"request")) as resp:
            assert await resp.text() == f"15:{sha(b'chunked request')}"
        async with http.post(f"{url}/echo", data=b"c" * 70_000, expect100=True) as resp:
            assert await resp.text() == f"70000:{sha(b'c' * 70_000)}"
        async with http.get(f"{url}/stream") as resp:
            assert await resp.read() == b"one,two,three"
        async with http.get(f"{url}/sized") as resp:
            assert await resp.read() == b"s" * 1000
    assert [(r.method, r.path, r.status) for r in proxy.requests] == [
        ("GET", "/chunked", 200),
        ("HEAD", "/sized", 200),
        ("GET", "/empty", 204),
        ("POST", "/echo", 200),
        ("POST", "/echo", 200),
        ("GET", "/stream", 200),
        ("GET", "/sized", 200),
    ]
    assert proxy.connections_accepted == 1
    assert [r.request_body_bytes for r in proxy.requests[3:5]] == [15, 70_000]
    assert [r.response_body_bytes for r in proxy.requests[:3]] == [6, 0, 0]


async def test_body_until_close_ends_the_client_connection() -> None:
    """An HTTP/1.1 response without length runs until the origin closes: the proxy must
    forward it to the end and then close the client connection (aiohttp.web never sends
    one to HTTP/1.1 clients, so this origin is a bare asyncio server)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        for part in (b"until ", b"the ", b"end"):
            writer.write(part)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    bare = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = bare.sockets[0].getsockname()[1]
    try:
        async with CountingProxy(f"http://127.0.0.1:{port}") as proxy:
            async with http_client(limit=1) as http:
                for _ in range(2):
                    async with http.get(f"{proxy.endpoint_url}/any") as resp:
                        assert resp.headers["Connection"] == "close"
                        assert await resp.read() == b"until the end"
            assert [(r.status, r.response_body_bytes) for r in proxy.requests] == [(200, 13)] * 2
            assert proxy.connections_accepted == 2  # the first ended with its body
            assert proxy.errors == []
    finally:
        bare.close()
        await bare.wait_closed()


async def test_bodies_are_streamed_not_buffered(origin: tuple[Origin, CountingProxy]) -> None:
    """Each direction holds back its second half until the far side saw the first half:
    a proxy that read whole bodies before forwarding would deadlock here."""
    server, proxy = origin

    async def upload_body() -> AsyncIterator[bytes]:
        yield b"u" * MiB
        await asyncio.wait_for(server.upload_half_arrived.wait(), 5)
        yield b"u" * MiB

    async with http_client() as http:
        async with http.post(f"{proxy.endpoint_url}/upload", data=upload_body()) as resp:
            assert await resp.text() == str(2 * MiB)
        received = 0
        async with http.get(f"{proxy.endpoint_url}/download") as resp:
            async for piece in resp.content.iter_any():
                received += len(piece)
                if received >= MiB:
                    server.download_half_read.set()
    assert received == 2 * MiB
    assert [(r.request_body_bytes, r.response_body_bytes) for r in proxy.requests] == [
        (2 * MiB, len(str(2 * MiB))),
        (0, 2 * MiB),
    ]


async def test_peak_in_flight_counts_requests_at_once_not_a_client_that_hung_up(
    origin: tuple[Origin, CountingProxy],
) -> None:
    server, proxy = origin
    url = f"{proxy.endpoint_url}/download"  # holds its second MiB until told
    async with http_client() as http:
        async with http.get(f"{proxy.endpoint_url}/sized") as resp:
            await resp.read()
        op = proxy.requests[-1].op  # (the proxy names both routes as S3 would)
        assert proxy.peak_in_flight(op) == 1
        async with http.get(url) as one, http.get(url) as two:
            assert len(await one.content.readexactly(MiB)) == MiB
            assert len(await two.content.readexactly(MiB)) == MiB
            server.download_half_read.set()
            assert len(await one.read()) + len(await two.read()) == 2 * MiB
        assert proxy.requests[-1].op == op
        assert proxy.peak_in_flight(op) == 2

        proxy.reset_counts()
        server.download_half_read.clear()
        # a client that stops reading and closes: the proxy's exchange of it goes on
        # (the origin still holds the rest), but it is not in flight any more
        first = await http.get(url)
        await first.content.readexactly(MiB)
        first.close()
        await proxy.wait_for(lambda: proxy.in_flight(op) == 0, what="the hang-up noticed")
        async with http.get(url) as second:
            await second.content.readexactly(MiB)
            assert len(proxy._in_flight) == 2  # both exchanges still going in the proxy
            assert proxy.in_flight(op) == 1
            server.download_half_read.set()
            await second.read()
    assert proxy.peak_in_flight(op) == 1


async def test_go_down_closes_open_connections_and_drops_new_ones(
    origin: tuple[Origin, CountingProxy],
) -> None:
    _, proxy = origin
    host, port = "127.0.0.1", int(proxy.endpoint_url.rsplit(":", 1)[1])
    request = b"GET /sized HTTP/1.1\r\nHost: x\r\n\r\n"
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"Connection: keep-alive" in head
        await reader.readexactly(1000)

        proxy.go_down()
        assert await read_or_reset(reader) == b""  # the open connection was dropped

        fresh_reader, fresh_writer = await asyncio.open_connection(host, port)
        fresh_writer.write(request)
        assert await read_or_reset(fresh_reader) == b""  # accepted, then dropped at once
        fresh_writer.close()
        assert proxy.connections_dropped == 1

        proxy.come_back()
        fresh_reader, fresh_writer = await asyncio.open_connection(host, port)
        fresh_writer.write(request)
        assert (await fresh_reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        fresh_writer.close()
    finally:
        writer.close()
    assert [r.status for r in proxy.requests] == [200, 200]


async def read_or_reset(reader: asyncio.StreamReader) -> bytes:
    """What the next read gives within a second: ``b""`` for EOF and for a reset alike."""
    try:
        return await asyncio.wait_for(reader.read(1), 1)
    except ConnectionResetError:
        return b""


def test_proxy_refuses_a_non_loopback_upstream() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        CountingProxy("http://example.com:80")


async def test_endpoint_url_needs_a_started_proxy(endpoint_url: str) -> None:
    proxy = CountingProxy(endpoint_url)
    with pytest.raises(RuntimeError):
        _ = proxy.endpoint_url
    async with proxy:
        assert proxy.endpoint_url.startswith("http://127.0.0.1:")
    await proxy.stop()  # idempotent
