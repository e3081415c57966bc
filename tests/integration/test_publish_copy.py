"""The S3-only publish as a server-side conditional copy, where the server enforces it.

SeaweedFS (benchmarks/seaweedfs.py, one server for the module) refuses a
CopyObject with ``If-None-Match: *`` onto an existing key and one whose
``x-amz-copy-source-if-match`` no longer names the source: there, publish copies
LATEST server-side and moves no content through the client. moto ignores both
conditions: there the probe says so and publish keeps downloading LATEST and
uploading it with ``If-None-Match: *`` (PutObject, which moto enforces).

A :class:`CountingProxy` in front of each server counts the requests. A rival
publisher is made to act exactly between one publisher's read of LATEST and its
copy by running it from inside that publisher's ``copy_if_absent``, before the
real call: the rival's requests go to the real server like any other.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiobotocore.session import AioSession

from benchmarks.seaweedfs import SeaweedServer
from tests.proxy import CountingProxy
from versioned_async import S3OnlyRepository
from versioned_async._aws.s3 import ObjectStore

REGION = "us-east-1"
NAME = "model"
#: content above PutObject's 16 MiB threshold is not needed: a copy is a copy
SIZE = 300 * 1024


@pytest.fixture(scope="module")
def seaweed() -> Iterator[SeaweedServer]:
    """One SeaweedFS for the module (~4-8 s to start); each test has its own bucket."""
    with SeaweedServer() as server:
        yield server


@pytest.fixture
async def seaweed_proxy(seaweed: SeaweedServer) -> AsyncIterator[CountingProxy]:
    async with CountingProxy(seaweed.endpoint_url) as counting:
        yield counting
    assert counting.errors == [], f"the proxy failed: {counting.errors!r}"


@pytest.fixture
def bucket(request: pytest.FixtureRequest) -> str:
    """A bucket of this test's own on the shared server (3-63 characters)."""
    return "b-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:20]


def repository(endpoint_url: str, bucket: str, session: AioSession) -> S3OnlyRepository:
    return S3OnlyRepository(REGION, bucket, endpoint_url=endpoint_url, session=session)


def body(seed: str) -> bytes:
    return hashlib.sha256(seed.encode()).digest() * (SIZE // 32)


def store_of(repo: S3OnlyRepository) -> ObjectStore:
    store: ObjectStore = repo._catalog.objects  # type: ignore[attr-defined]
    return store


def before_copy(
    monkeypatch: pytest.MonkeyPatch, repo: S3OnlyRepository, rival: Callable[[], Awaitable[None]]
) -> list[tuple[Any, ...]]:
    """Run ``rival`` once, just before ``repo``'s first conditional copy; returns the
    copies' arguments as they are made."""
    store = store_of(repo)
    real = store.copy_if_absent
    calls: list[tuple[Any, ...]] = []

    async def copy_if_absent(*args: Any) -> bool:
        if not calls:
            calls.append(args)
            await rival()
        else:
            calls.append(args)
        return await real(*args)

    monkeypatch.setattr(store, "copy_if_absent", copy_if_absent)
    return calls


async def test_publish_on_seaweedfs_copies_server_side_and_moves_no_content(
    seaweed: SeaweedServer, seaweed_proxy: CountingProxy, bucket: str, aio_session: AioSession
) -> None:
    content = body("one")
    async with repository(seaweed_proxy.endpoint_url, bucket, aio_session) as repo:
        await repo.bootstrap()
        await repo.put_artifact(NAME, content, metadata={"team": "ml"}, tags={"tier": "gold"})
        seaweed_proxy.reset_counts()
        first = await repo.publish_artifact_version(NAME)
        probed = seaweed_proxy.counts()
        seaweed_proxy.reset_counts()
        await repo.put_artifact(NAME, body("two"))
        seaweed_proxy.reset_counts()
        second = await repo.publish_artifact_version(NAME)
        again = seaweed_proxy.counts()
        assert await repo.get_content(NAME, version=1) == content
        assert await repo.get_content(NAME, version=2) == body("two")
        described = await repo.get_artifact_version(NAME, version=1)
    # the probe (a PutObject, a CopyObject onto itself, a DeleteObject) once per store,
    # then one CopyObject a publish: no GetObject, no content PutObject
    assert object_ops(probed) == {
        "GetObject": 0,
        "PutObject": 1,
        "CopyObject": 2,
        "DeleteObject": 1,
    }
    assert object_ops(again) == {"GetObject": 0, "PutObject": 0, "CopyObject": 1, "DeleteObject": 0}
    assert (first.version, second.version) == ("1", "2")
    assert first.sha256 == hashlib.sha256(content).hexdigest()
    assert described.sha256 == first.sha256
    assert described.metadata == {"team": "ml"}
    s3 = raw_s3(seaweed.endpoint_url)
    tags = s3.get_object_tagging(Bucket=bucket, Key=version_key(1))["TagSet"]
    assert tags == [{"Key": "tier", "Value": "gold"}]
    # the probe's object was deleted: no key but the artifact's
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", ())]
    assert sorted(keys) == [version_key(v) for v in ("LATEST", 2, 1)]


def object_ops(counts: Counter[str]) -> dict[str, int]:
    """The counts of the requests that move or make objects."""
    return {op: counts[op] for op in ("GetObject", "PutObject", "CopyObject", "DeleteObject")}


def raw_s3(endpoint_url: str) -> Any:
    """A plain boto3 client: the objects as they are, outside the library's checks.

    Never through the CountingProxy: it runs in the test's event loop, which a
    blocking call would stall.
    """
    import boto3  # noqa: PLC0415

    return boto3.client("s3", region_name=REGION, endpoint_url=endpoint_url)


def version_key(version: int | str) -> str:
    stem = (
        "000000_LATEST"
        if version == "LATEST"
        else f"{1_000_000 - int(version):06d}_{int(version):06d}"
    )
    return f"versioned-artifacts/{NAME}/versions/{stem}"


async def test_racing_publishers_on_seaweedfs_claim_distinct_numbers(
    seaweed_proxy: CountingProxy,
    bucket: str,
    aio_session: AioSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """B publishes version 1 in the window between A's listing and A's copy; A's copy
    onto version 1 is refused and A takes version 2. B puts A's content back as LATEST
    afterwards (same bytes, same ETag), so A's pin on LATEST still holds."""
    a_content, b_content = body("a"), body("b")
    endpoint = seaweed_proxy.endpoint_url
    async with (
        repository(endpoint, bucket, aio_session) as a,
        repository(endpoint, bucket, aio_session) as b,
    ):
        await a.bootstrap()
        await a.put_artifact(NAME, a_content)

        async def rival() -> None:
            await b.put_artifact(NAME, b_content)
            assert (await b.publish_artifact_version(NAME)).version == "1"
            await b.put_artifact(NAME, a_content)

        copies = before_copy(monkeypatch, a, rival)
        published = await a.publish_artifact_version(NAME)
        assert len(copies) == 2  # refused on 1, then claimed 2
        assert published.version == "2"
        assert published.sha256 == hashlib.sha256(a_content).hexdigest()
        assert await a.get_content(NAME, version=1) == b_content
        assert await a.get_content(NAME, version=2) == a_content
        assert [v.version for v in await a.list_artifact_versions(NAME)] == ["LATEST", "2", "1"]


async def test_latest_replaced_between_read_and_copy_is_not_published_under_the_old_sha256(
    seaweed: SeaweedServer,
    seaweed_proxy: CountingProxy,
    bucket: str,
    aio_session: AioSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new = body("old"), body("new")
    endpoint = seaweed_proxy.endpoint_url
    async with (
        repository(endpoint, bucket, aio_session) as a,
        repository(endpoint, bucket, aio_session) as b,
    ):
        await a.bootstrap()
        await a.put_artifact(NAME, old)

        async def rival() -> None:
            await b.put_artifact(NAME, new)

        copies = before_copy(monkeypatch, a, rival)
        published = await a.publish_artifact_version(NAME)
        assert len(copies) == 2  # the pinned copy refused, then LATEST read again
        # whatever was published, its recorded sha256 is its content's: the new one
        assert published.sha256 == hashlib.sha256(new).hexdigest()
        assert await a.get_content(NAME, version=1) == new
        raw = raw_s3(seaweed.endpoint_url).get_object(Bucket=bucket, Key=version_key(1))
        assert raw["Metadata"]["artifact_sha256"] == hashlib.sha256(raw["Body"].read()).hexdigest()


async def test_on_moto_the_probe_says_unsupported_and_publish_uploads(
    proxy: CountingProxy, aio_session: AioSession
) -> None:
    """moto ignores CopyObject's If-None-Match: the probe's copy succeeds, so publish
    keeps the download-and-conditional-PutObject path; the verdict is kept."""
    async with repository(proxy.endpoint_url, "bucket", aio_session) as repo:
        await repo.bootstrap()
        await repo.put_artifact(NAME, body("one"))
        proxy.reset_counts()
        await repo.publish_artifact_version(NAME)
        first = proxy.counts()
        await repo.put_artifact(NAME, body("two"))
        proxy.reset_counts()
        await repo.publish_artifact_version(NAME)
        second = proxy.counts()
        assert await repo.get_content(NAME, version=2) == body("two")
    # the probe: PutObject + CopyObject onto itself + DeleteObject, once
    assert object_ops(first) == {"GetObject": 1, "PutObject": 2, "CopyObject": 1, "DeleteObject": 1}
    # then today's path alone: LATEST read, the version written with PutObject
    assert object_ops(second) == {
        "GetObject": 1,
        "PutObject": 1,
        "CopyObject": 0,
        "DeleteObject": 0,
    }


async def test_a_probe_it_may_not_write_means_no_copy_and_is_not_asked_again(
    seaweed_proxy: CountingProxy, bucket: str, aio_session: AioSession
) -> None:
    """A role that may not write the probe object (403) still publishes, the way any
    server allows: downloaded and uploaded; the answer is kept."""
    async with repository(seaweed_proxy.endpoint_url, bucket, aio_session) as repo:
        await repo.bootstrap()
        await repo.put_artifact(NAME, body("one"))
        seaweed_proxy.reset_counts()
        seaweed_proxy.inject_errors(1, 403, code="AccessDenied", op="PutObject")
        first = await repo.publish_artifact_version(NAME)
        refused = seaweed_proxy.counts()
        await repo.put_artifact(NAME, body("two"))
        seaweed_proxy.reset_counts()
        second = await repo.publish_artifact_version(NAME)
        again = seaweed_proxy.counts()
        assert await repo.get_content(NAME, version=2) == body("two")
    assert seaweed_proxy.pending_faults == []
    assert (first.version, second.version) == ("1", "2")
    # the refused probe, then today's path: LATEST read, the version written
    assert object_ops(refused) == {
        "GetObject": 1,
        "PutObject": 2,
        "CopyObject": 0,
        "DeleteObject": 0,
    }
    assert object_ops(again) == {"GetObject": 1, "PutObject": 1, "CopyObject": 0, "DeleteObject": 0}
