"""Large content downloaded as parallel ranged GETs (issue 18, "Large artifacts at link speed").

Content above ``TransferConfig.multipart_threshold`` is read as parts of
``multipart_chunksize``: one plain GetObject whose stream serves the first part,
then ranged GETs pinned to its ETag, at most ``max_concurrency`` in flight. The
proxy (tests/proxy.py) shows the requests, their ranges, how many were in flight
and the bytes each carried; the content is always checked whole.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.conftest import RepoFactory
from tests.proxy import CountingProxy, RequestRecord
from versioned_async import LocalCache, TransferConfig, exc
from versioned_async._aws import progress

KiB = 1 << 10
MiB = 1 << 20
PART = 256 * KiB
#: small parts, so a few MiB make many of them
PARTS = TransferConfig(multipart_threshold=1 * MiB, multipart_chunksize=PART, max_concurrency=4)

pytestmark = pytest.mark.both_backends


def content(size: int, seed: int = 0) -> bytes:
    """``size`` bytes that differ at every offset (a misplaced part cannot go unseen)."""
    block = hashlib.sha256(str(seed).encode()).digest()
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += counter.to_bytes(8, "big") + block
        counter += 1
    return bytes(out[:size])


def gets(proxy: CountingProxy) -> list[RequestRecord]:
    return [r for r in proxy.requests if r.op == "GetObject"]


def parts_of(size: int) -> int:
    return -(-size // PART)


@pytest.mark.parametrize("cached", [False, True], ids=["no-cache", "cache"])
async def test_large_content_arrives_exact_through_every_read(
    make_proxied_repo: RepoFactory, proxy: CountingProxy, tmp_path: Path, cached: bool
) -> None:
    size = 3 * MiB + 17  # a short last part
    data = content(size)
    cache = LocalCache(tmp_path / "cache") if cached else None
    async with make_proxied_repo(transfer_config=PARTS, cache=cache) as repo:
        await repo.bootstrap()
        await repo.put_artifact("model", data)
        proxy.reset_counts()
        assert await repo.get_content("model") == data
        await repo.download("model", tmp_path / "model.bin")
        assert (tmp_path / "model.bin").read_bytes() == data
    reads = gets(proxy)
    per_read = parts_of(size)
    # without a cache each read downloads; with one, the first fills it and the second copies
    assert len(reads) == (2 * per_read if not cached else per_read)
    first = reads[0]
    assert "range" not in first.headers  # the first request is a plain GetObject
    ranged = reads[1:per_read]
    assert sorted(r.headers["range"] for r in ranged) == sorted(
        f"bytes={i * PART}-{min((i + 1) * PART, size) - 1}" for i in range(1, per_read)
    )
    assert all(r.headers.get("if-match") for r in ranged)  # pinned to the first's ETag
    assert not list(tmp_path.rglob("*.part"))


async def test_content_at_the_threshold_is_one_plain_get(
    make_proxied_repo: RepoFactory, proxy: CountingProxy, tmp_path: Path
) -> None:
    data = content(PARTS.multipart_threshold)
    async with make_proxied_repo(transfer_config=PARTS) as repo:
        await repo.bootstrap()
        await repo.put_artifact("model", data)
        proxy.reset_counts()
        assert await repo.get_content("model") == data
        await repo.download("model", tmp_path / "model.bin")
    assert (tmp_path / "model.bin").read_bytes() == data
    assert [r.headers.get("range") for r in gets(proxy)] == [None, None]


async def test_never_more_parts_in_flight_than_max_concurrency(
    make_proxied_repo: RepoFactory, proxy: CountingProxy, tmp_path: Path
) -> None:
    data = content(4 * MiB)  # 16 parts
    two = TransferConfig(multipart_threshold=MiB, multipart_chunksize=PART, max_concurrency=2)
    async with make_proxied_repo(transfer_config=two) as repo:
        await repo.bootstrap()
        await repo.put_artifact("model", data)
        proxy.reset_counts()
        assert await repo.get_content("model") == data
        await repo.download("model", tmp_path / "model.bin")
    assert (tmp_path / "model.bin").read_bytes() == data
    assert len(gets(proxy)) == 2 * 16
    assert 1 <= proxy.peak_in_flight("GetObject") <= 2


async def test_a_part_cut_mid_transfer_costs_that_part_again_not_the_object(
    make_proxied_repo: RepoFactory,
    proxy: CountingProxy,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    size = 2 * MiB  # 8 parts
    data = content(size)
    async with make_proxied_repo(transfer_config=PARTS) as repo:
        await repo.bootstrap()
        await repo.put_artifact("model", data)
        proxy.reset_counts()
        # the third GetObject is a ranged GET of a later part: cut it 100 KiB in
        proxy.cut_next(op="GetObject", skip=2, after_bytes=100 * KiB)
        caplog.set_level("INFO", logger="versioned_async")
        await repo.download("model", tmp_path / "model.bin")
    assert proxy.pending_faults == []
    assert (tmp_path / "model.bin").read_bytes() == data
    reads = gets(proxy)
    assert len(reads) == 8 + 1  # every part once, the cut one's rest once more
    (cut,) = [r for r in reads if r.fault == "cut"]
    start, end = (int(n) for n in cut.headers["range"].removeprefix("bytes=").split("-"))
    (resumed,) = [r for r in reads[1:] if r.headers["range"].endswith(f"-{end}") and r is not cut]
    assert resumed.headers["range"] == f"bytes={start + 100 * KiB}-{end}"
    assert resumed.headers["if-match"] == cut.headers["if-match"]
    assert cut.response_body_bytes == 100 * KiB
    # after the first response (which serves part 0 and is then closed) every byte crossed
    # once: the 100 KiB the cut part carried were kept, its resumption asked for the rest
    assert sum(r.response_body_bytes for r in reads[1:]) == size - PART
    assert "cut after 102400 of its 262144 bytes" in caplog.text


async def test_a_replaced_object_is_read_whole_from_the_new_one_never_mixed(
    make_proxied_repo: RepoFactory, make_repo: RepoFactory, proxy: CountingProxy, tmp_path: Path
) -> None:
    old, new = content(2 * MiB, seed=1), content(3 * MiB, seed=2)
    async with make_proxied_repo(transfer_config=PARTS) as repo, make_repo() as direct:
        await repo.bootstrap()
        await repo.put_artifact("model", old)

        async def replace(_record: RequestRecord) -> None:
            await direct.put_artifact("model", new)  # LATEST's object changes mid-download

        proxy.reset_counts()
        proxy.cut_next(op="GetObject", skip=3, after_bytes=10 * KiB, on_cut=replace)
        await repo.download("model", tmp_path / "a.bin")
        assert proxy.pending_faults == []
        assert (tmp_path / "a.bin").read_bytes() == new
        assert 412 in {r.status for r in gets(proxy)}  # the pinned part saw the change
        assert await repo.get_content("model") == new


async def test_a_deleted_object_is_not_found_and_leaves_nothing(
    make_proxied_repo: RepoFactory, make_repo: RepoFactory, proxy: CountingProxy, tmp_path: Path
) -> None:
    async with make_proxied_repo(transfer_config=PARTS) as repo, make_repo() as direct:
        await repo.bootstrap()
        await repo.put_artifact("model", content(2 * MiB))
        await repo.put_artifact("model", content(10))  # version 2: version 1 can go

        async def delete(_record: RequestRecord) -> None:
            await direct.delete_artifact_version("model", 1)

        proxy.cut_next(op="GetObject", skip=2, after_bytes=10 * KiB, on_cut=delete)
        with pytest.raises(exc.ArtifactNotFoundError):
            await repo.download("model", tmp_path / "a.bin", version=1)
    assert sorted(os.listdir(tmp_path)) == []


async def test_every_byte_received_is_reported_to_a_progress_watcher(
    make_proxied_repo: RepoFactory, proxy: CountingProxy, tmp_path: Path
) -> None:
    small, large = content(100 * KiB), content(2 * MiB)
    seen: list[int] = []
    async with make_proxied_repo(transfer_config=PARTS) as repo:
        await repo.bootstrap()
        await repo.put_artifact("small", small)
        await repo.put_artifact("large", large)
        with progress.reporting(seen.append):
            await repo.download("small", tmp_path / "small")
            assert sum(seen) == len(small)  # one stream reports too
            seen.clear()
            assert await repo.get_content("large") == large
            assert sum(seen) == len(large)
            assert max(seen) <= PART  # chunk by chunk, as they land
            seen.clear()
            proxy.cut_next(op="GetObject", skip=1, after_bytes=10 * KiB)
            await repo.download("large", tmp_path / "large")
    assert proxy.pending_faults == []
    assert sum(seen) == len(large)  # a resumed part asks only for its rest
