"""Parallel multipart uploads (versioned_async._aws.s3_upload), seen and broken on the wire.

Each test uploads one small file (11-16 MiB) in parts of 5 MiB, S3's least, a
few parts in flight, through the counting proxy (which fails fast: two
attempts per call).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET
from tests.proxy import CountingProxy, RequestRecord
from versioned_async import TransferConfig, exc
from versioned_async._aws import progress
from versioned_async._catalog import store as catalog_store

MiB = 1 << 20


def parts_of(size: int, *, in_flight: int) -> TransferConfig:
    """Multipart from 5 MiB up, in parts of ``size``, ``in_flight`` at once."""
    return TransferConfig(
        multipart_threshold=5 * MiB, multipart_chunksize=size, max_concurrency=in_flight
    )


def a_file(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    body = os.urandom(size)
    source = tmp_path / "model.bin"
    source.write_bytes(body)
    return source, body


def part_number(record: RequestRecord) -> int:
    return int(record.path.split("partNumber=")[1].split("&")[0])


def part_numbers(proxy: CountingProxy) -> list[int]:
    """The part number of each UploadPart the proxy saw, in arrival order."""
    return [part_number(r) for r in proxy.requests if r.op == "UploadPart"]


async def leftover_uploads(s3: Any) -> list[Any]:
    return list((await s3.list_multipart_uploads(Bucket=BUCKET)).get("Uploads", []))


@pytest.mark.parametrize("in_flight", [2, 3])
async def test_parts_in_flight_never_exceed_max_concurrency(
    make_proxied_repo: Any, proxy: CountingProxy, tmp_path: Path, in_flight: int
) -> None:
    source, body = a_file(tmp_path, 16 * MiB)  # four parts: 5 + 5 + 5 + 1 MiB
    async with make_proxied_repo(transfer_config=parts_of(5 * MiB, in_flight=in_flight)) as repo:
        await repo.bootstrap()
        proxy.reset_counts()
        proxy.delay = 0.05  # every request waits a little: parts that may overlap do
        await repo.put_artifact("model", source)
        proxy.delay = 0
        assert proxy.peak_in_flight("UploadPart") == in_flight
        assert sorted(part_numbers(proxy)) == [1, 2, 3, 4]
        parts = [r for r in proxy.requests if r.op == "UploadPart"]
        assert sorted(r.request_body_bytes for r in parts) == [1 * MiB, 5 * MiB, 5 * MiB, 5 * MiB]
        # each with its length up front, as S3 wants it: streamed, never chunked
        assert sorted(int(r.headers["content-length"]) for r in parts) == [
            1 * MiB,
            5 * MiB,
            5 * MiB,
            5 * MiB,
        ]
        assert all("transfer-encoding" not in r.headers for r in parts)
        assert proxy.count("CreateMultipartUpload") == proxy.count("CompleteMultipartUpload") == 1
        assert await repo.get_content("model") == body


async def test_a_part_size_below_s3s_minimum_is_raised_to_5_mib(
    make_proxied_repo: Any, proxy: CountingProxy, tmp_path: Path
) -> None:
    source, body = a_file(tmp_path, 11 * MiB)
    async with make_proxied_repo(transfer_config=parts_of(1 * MiB, in_flight=3)) as repo:
        await repo.bootstrap()
        proxy.reset_counts()
        await repo.put_artifact("model", source)
        assert sorted(part_numbers(proxy)) == [1, 2, 3]  # 5 + 5 + 1 MiB, not eleven parts
        assert await repo.get_content("model") == body


async def test_content_at_or_below_the_threshold_goes_as_one_put(
    make_proxied_repo: Any, proxy: CountingProxy
) -> None:
    body = os.urandom(5 * MiB)
    async with make_proxied_repo(transfer_config=parts_of(5 * MiB, in_flight=2)) as repo:
        await repo.bootstrap()
        proxy.reset_counts()
        await repo.put_artifact("model", body)
        assert proxy.count("PutObject") == 1
        assert proxy.count("UploadPart") == 0


async def test_a_part_answered_with_a_500_is_retried_alone(
    make_proxied_repo: Any, proxy: CountingProxy, tmp_path: Path, s3: Any
) -> None:
    source, body = a_file(tmp_path, 16 * MiB)
    async with make_proxied_repo(transfer_config=parts_of(5 * MiB, in_flight=2)) as repo:
        await repo.bootstrap()
        proxy.reset_counts()
        proxy.inject_errors(1, 500, op="UploadPart", skip=1)
        await repo.put_artifact("model", source)
        assert proxy.pending_faults == []
        assert proxy.count("UploadPart") == 4 + 1  # the failed part again, no other
        assert sorted(set(part_numbers(proxy))) == [1, 2, 3, 4]
        assert proxy.count("CreateMultipartUpload") == 1
        assert await repo.get_content("model") == body
    assert await leftover_uploads(s3) == []


async def test_a_connection_reset_in_the_middle_of_a_part_is_retried_alone(
    make_proxied_repo: Any, proxy: CountingProxy, tmp_path: Path
) -> None:
    """The client's own retry (botocore's, ``max_attempts``) sends that part again,
    from its first byte; the other parts go once."""
    source, body = a_file(tmp_path, 16 * MiB)
    async with make_proxied_repo(transfer_config=parts_of(5 * MiB, in_flight=1)) as repo:
        await repo.bootstrap()
        proxy.reset_counts()
        # part 2 is cut after 1 MiB of its body: the client is still sending
        proxy.drop_next(1, op="UploadPart", skip=1, after_request_bytes=1 * MiB)
        await repo.put_artifact("model", source)
        assert proxy.pending_faults == []
        assert part_numbers(proxy) == [1, 2, 2, 3, 4]
        cut, again = [r for r in proxy.requests if r.op == "UploadPart" and part_number(r) == 2]
        assert cut.fault == "drop"
        assert 0 < cut.request_body_bytes < 5 * MiB
        assert again.headers["amz-sdk-request"].startswith("attempt=2")
        assert again.request_body_bytes == 5 * MiB
        assert proxy.count("CreateMultipartUpload") == 1
        assert await repo.get_content("model") == body


async def test_a_part_that_keeps_failing_aborts_the_upload_and_nothing_is_stored(
    make_proxied_repo: Any, proxy: CountingProxy, tmp_path: Path, s3: Any
) -> None:
    source, _ = a_file(tmp_path, 16 * MiB)
    async with make_proxied_repo(transfer_config=parts_of(5 * MiB, in_flight=2)) as repo:
        await repo.bootstrap()
        await repo.put_artifact("model", b"the old model")
        proxy.reset_counts()
        proxy.inject_errors(100, 500, op="UploadPart", skip=1)
        with pytest.raises(exc.BackendUnavailableError, match="UploadPart"):
            await repo.put_artifact("model", source)
        proxy.clear_faults()
        assert proxy.count("AbortMultipartUpload") == 1
        assert proxy.count("CompleteMultipartUpload") == 0
        assert await repo.get_content("model") == b"the old model"
    assert await leftover_uploads(s3) == []


async def test_a_cancelled_upload_is_aborted(
    make_proxied_repo: Any, proxy: CountingProxy, tmp_path: Path, s3: Any
) -> None:
    source, _ = a_file(tmp_path, 16 * MiB)
    async with make_proxied_repo(transfer_config=parts_of(5 * MiB, in_flight=2)) as repo:
        await repo.bootstrap()
        proxy.reset_counts()
        proxy.stall_next(1, op="UploadPart", skip=1)
        put = asyncio.ensure_future(repo.put_artifact("model", source))
        await proxy.wait_for(lambda: proxy.pending_faults == [], what="a stalled part")
        put.cancel()
        with pytest.raises(asyncio.CancelledError):
            await put
        assert proxy.count("AbortMultipartUpload") == 1
        assert await leftover_uploads(s3) == []
        with pytest.raises(exc.ArtifactNotFoundError):
            await repo.get_artifact_version("model")


async def test_each_part_is_reported_as_moved_once_it_is_sent(
    make_repo: Any, tmp_path: Path
) -> None:
    source, _ = a_file(tmp_path, 16 * MiB)
    moved: list[int] = []
    async with make_repo(transfer_config=parts_of(5 * MiB, in_flight=3)) as repo:
        await repo.bootstrap()
        with progress.reporting(moved.append):
            await repo.put_artifact("model", source)
        assert sorted(moved) == [1 * MiB, 5 * MiB, 5 * MiB, 5 * MiB]
        moved.clear()
        with progress.reporting(moved.append):
            await repo.put_artifact("small", b"x" * 1000)  # one PutObject
        assert moved == [1000]


async def test_a_file_that_shrank_after_it_was_hashed_is_refused_and_nothing_stored(
    make_repo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3: Any
) -> None:
    source, _ = a_file(tmp_path, 16 * MiB)
    real_hash_source = catalog_store.hash_source

    async def hash_then_shrink_the_file(path: Any) -> tuple[str, int]:
        hashed = await real_hash_source(path)
        os.truncate(source, 7 * MiB)
        return hashed

    async with make_repo(transfer_config=parts_of(5 * MiB, in_flight=2)) as repo:
        await repo.bootstrap()
        monkeypatch.setattr(catalog_store, "hash_source", hash_then_shrink_the_file)
        with pytest.raises(exc.ConflictError, match="changed while it was being uploaded"):
            await repo.put_artifact("model", source)
        monkeypatch.undo()
        with pytest.raises(exc.ArtifactNotFoundError):
            await repo.get_artifact_version("model")
    assert await leftover_uploads(s3) == []
