"""LocalCache and the read path: integrity, dedupe, streaming, processes, eviction."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET, REGION, TABLE
from versioned_async import Alias, LocalCache, Repository, exc

pytestmark = pytest.mark.both_backends


@pytest.fixture
def cache(tmp_path: Path) -> LocalCache:
    return LocalCache(tmp_path / "cache", ttl=30.0)


@pytest.fixture
async def cached_repo(make_repo: Any, cache: LocalCache) -> Any:
    async with make_repo(cache=cache) as repo:
        await repo.bootstrap()
        yield repo


async def publish(repo: Repository, name: str, content: bytes) -> str:
    await repo.put_artifact(name, content)
    return (await repo.publish_artifact_version(name)).version


async def test_cached_read_returns_the_content(cached_repo: Repository, cache: LocalCache) -> None:
    version = await publish(cached_repo, "app", b"payload")
    cache.clear()
    assert await cached_repo.get_content("app", version) == b"payload"
    assert await cached_repo.get_content("app", version) == b"payload"
    stats = cache.stats()
    assert (stats.misses, stats.hits, stats.downloads) == (1, 1, 1)
    assert stats.bytes_downloaded == len(b"payload")


async def test_tampered_object_is_refused_and_nothing_is_cached(
    cached_repo: Repository, cache: LocalCache, s3: Any, object_key: Any
) -> None:
    version = await publish(cached_repo, "app", b"genuine")
    cache.clear()
    key = object_key("app", 1)
    head = await s3.head_object(Bucket=BUCKET, Key=key)
    await s3.put_object(Bucket=BUCKET, Key=key, Body=b"tampered", Metadata=head["Metadata"])
    for _ in range(2):  # refused every time: the bad body was not cached
        with pytest.raises(exc.IntegrityError):
            await cached_repo.get_content("app", version)
    assert cache.content_count == 0
    assert cache.stats().integrity_failures == 2
    assert list(cache._store.content.staging.iterdir()) == []


async def test_tampered_object_is_refused_by_download_and_leaves_no_file(
    cached_repo: Repository, cache: LocalCache, s3: Any, tmp_path: Path, object_key: Any
) -> None:
    await publish(cached_repo, "app", b"genuine")
    cache.clear()
    key = object_key("app", 1)
    head = await s3.head_object(Bucket=BUCKET, Key=key)
    await s3.put_object(Bucket=BUCKET, Key=key, Body=b"tampered", Metadata=head["Metadata"])
    target = tmp_path / "out" / "app.bin"
    target.parent.mkdir()
    with pytest.raises(exc.IntegrityError):
        await cached_repo.download("app", target, version=1)
    assert list(target.parent.iterdir()) == []


async def test_identical_content_under_two_names_is_stored_once(
    cached_repo: Repository, cache: LocalCache
) -> None:
    content = os.urandom(100_000)
    for name in ("a", "b"):
        await publish(cached_repo, name, content)
    cache.clear()
    assert await cached_repo.get_content("a", 1) == content
    assert await cached_repo.get_content("b", 1) == content
    assert (cache.content_count, cache.content_bytes) == (1, len(content))


async def test_fifty_concurrent_reads_download_once(
    cached_repo: Repository, cache: LocalCache
) -> None:
    content = os.urandom(300_000)
    await publish(cached_repo, "app", content)
    await cached_repo.put_alias("app", "prod", 1)
    cache.clear()
    bodies = await asyncio.gather(
        *(cached_repo.get_alias_content("app", "prod") for _ in range(50))
    )
    assert all(body == content for body in bodies)
    stats = cache.stats()
    assert stats.downloads == 1
    assert stats.lookup_refreshes == 2  # one alias lookup, one version lookup


async def test_a_new_cache_on_the_same_directory_reuses_the_content(
    make_repo: Any, tmp_path: Path
) -> None:
    content = os.urandom(50_000)
    async with make_repo(cache=LocalCache(tmp_path / "c")) as repo:
        await repo.bootstrap()
        await publish(repo, "app", content)
        await repo.get_content("app", 1)
    restarted = LocalCache(tmp_path / "c")
    async with make_repo(cache=restarted) as repo:
        assert await repo.get_content("app", 1) == content
    assert restarted.stats().downloads == 0


async def test_download_writes_the_file_atomically_and_returns_its_path(
    cached_repo: Repository, tmp_path: Path
) -> None:
    await publish(cached_repo, "app", b"one")
    await publish(cached_repo, "app", b"two")
    await cached_repo.put_alias("app", "prod", 1, 2, 50)
    target = tmp_path / "app.bin"
    assert await cached_repo.download("app", target, version=1) == target
    assert target.read_bytes() == b"one"
    await cached_repo.download("app", str(target))  # LATEST, str path
    assert target.read_bytes() == b"two"
    chosen = (await cached_repo.get_alias("app", "prod")).choose_version("user-7")
    await cached_repo.download("app", target, alias="prod", routing_key="user-7")
    assert target.read_bytes() == (b"one" if chosen == "1" else b"two")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.bin", "cache"]


async def test_download_without_cache_streams_and_verifies(
    repo: Repository, tmp_path: Path
) -> None:
    content = os.urandom(3 << 20)
    await publish(repo, "app", content)
    target = await repo.download("app", tmp_path / "x", version=1)
    assert target.read_bytes() == content


async def test_download_refuses_version_and_alias_together(
    cached_repo: Repository, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="not both"):
        await cached_repo.download("app", tmp_path / "x", version=1, alias="prod")
    with pytest.raises(ValueError, match="is a directory"):
        await cached_repo.download("app", tmp_path)


async def test_download_of_missing_version_raises_and_leaves_nothing(
    cached_repo: Repository, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(exc.ArtifactNotFoundError):
        await cached_repo.download("ghost", target / "f", version=3)
    assert list(target.iterdir()) == []


def worker(script: str, backend: str) -> str:
    """``script`` for a subprocess, with ``open_repo(endpoint_url, cache)`` opening this
    test's backend on this test's repository."""
    open_repo = textwrap.dedent(
        f"""
        from versioned_async import Repository, S3OnlyRepository

        def open_repo(endpoint_url, cache):
            if {backend!r} == "s3":
                return S3OnlyRepository({REGION!r}, {BUCKET!r}, endpoint_url=endpoint_url,
                                        cache=cache)
            return Repository({REGION!r}, {BUCKET!r}, dynamodb_table_name={TABLE!r},
                              endpoint_url=endpoint_url, cache=cache)
        """
    )
    return open_repo + script


_MEASURE_DOWNLOAD = textwrap.dedent(
    """
    import asyncio, resource, sys
    from pathlib import Path
    from versioned_async import LocalCache

    async def main():
        cache = LocalCache(sys.argv[2]) if sys.argv[4] == "cache" else None
        async with open_repo(sys.argv[1], cache) as repo:
            await repo.get_artifact_version("big", 1)  # warm up clients and pools
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            await repo.download("big", Path(sys.argv[3]), version=1)
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) * 1024)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("mode", ["cache", "direct"])
async def test_large_download_streams_with_bounded_memory(
    make_repo: Any, tmp_path: Path, endpoint_url: str, mode: str, backend: str
) -> None:
    """Peak RSS of a process downloading 64 MiB grows by far less than 64 MiB.

    Measured in a subprocess: the moto server in this process holds the
    object in memory and would hide the client's own use.
    """
    size = 64 << 20
    source = tmp_path / "big.bin"
    with source.open("wb") as out:
        for _ in range(size >> 20):
            out.write(os.urandom(1 << 20))
    async with make_repo() as repo:
        await repo.bootstrap()
        await repo.put_artifact("big", source)
        await repo.publish_artifact_version("big")
    script = worker(_MEASURE_DOWNLOAD, backend)
    target = tmp_path / "copy.bin"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        endpoint_url,
        str(tmp_path / "c"),
        str(target),
        mode,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-3000:]
    growth = int(out)
    assert growth < 24 << 20, f"peak RSS grew {growth >> 20} MiB for a {size >> 20} MiB object"
    assert _sha256_file(target) == _sha256_file(source)


async def test_large_file_upload_uses_multipart_and_round_trips(
    repo: Repository, tmp_path: Path, s3: Any, object_key: Any
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(20 << 20))
    art = await repo.put_artifact("big", source, metadata={"kind": "model"})
    assert art.size == 20 << 20
    assert art.sha256 == _sha256_file(source)
    head = await s3.head_object(Bucket=BUCKET, Key=object_key("big"))
    assert head["ETag"].strip('"').endswith("-3")  # 8 + 8 + 4 MiB parts
    assert head["Metadata"]["kind"] == "model"
    assert await repo.get_content("big") == source.read_bytes()


async def test_put_artifact_refuses_a_path_that_is_not_a_file(
    repo: Repository, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="not a readable file"):
        await repo.put_artifact("app", tmp_path / "missing.bin")
    with pytest.raises(TypeError, match=r"wrap a path in pathlib\.Path"):
        await repo.put_artifact("app", str(tmp_path))


async def test_cache_directory_is_private(cache: LocalCache) -> None:
    assert stat.S_IMODE(cache.directory.stat().st_mode) == 0o700


async def test_cached_files_are_private(cached_repo: Repository, cache: LocalCache) -> None:
    await publish(cached_repo, "app", b"secret" * 10_000)
    cache.clear()
    await cached_repo.get_content("app", 1)
    files = list((cache.directory / "content").rglob("*.val"))
    assert files
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)


async def test_eviction_keeps_the_cache_under_its_size_limit(
    make_repo: Any, tmp_path: Path
) -> None:
    cache = LocalCache(tmp_path / "c", size_limit=300_000)
    async with make_repo(cache=cache) as repo:
        await repo.bootstrap()
        contents = [os.urandom(100_000) for _ in range(6)]
        for n, content in enumerate(contents):
            await publish(repo, f"a{n}", content)
        cache.clear()
        for n, content in enumerate(contents):
            assert await repo.get_content(f"a{n}", 1) == content
        assert cache.content_bytes <= 300_000
        # evicted content is fetched again, correctly
        assert await repo.get_content("a0", 1) == contents[0]


async def test_content_larger_than_the_cache_is_served_uncached(
    make_repo: Any, tmp_path: Path
) -> None:
    cache = LocalCache(tmp_path / "c", size_limit=1000)
    async with make_repo(cache=cache) as repo:
        await repo.bootstrap()
        content = os.urandom(5000)
        await publish(repo, "big", content)
        cache.clear()
        assert await repo.get_content("big", 1) == content
        assert await repo.download("big", tmp_path / "f", version=1)
        assert (tmp_path / "f").read_bytes() == content
        assert cache.content_count == 0


async def test_bad_cache_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ttl must be >= 0"):
        LocalCache(tmp_path, ttl=-1)
    with pytest.raises(TypeError, match="ttl must be seconds"):
        LocalCache(tmp_path, ttl="30")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size_limit must be a positive int"):
        LocalCache(tmp_path, size_limit=0)
    with pytest.raises(TypeError, match="cache must be a LocalCache"):
        Repository(REGION, BUCKET, cache=str(tmp_path))  # type: ignore[arg-type]


_WORKER = textwrap.dedent(
    """
    import asyncio, hashlib, json, os, sys
    from versioned_async import LocalCache

    async def main():
        cache = LocalCache(sys.argv[2])
        async with open_repo(sys.argv[1], cache) as repo:
            bodies = await asyncio.gather(*(repo.get_alias_content("app", "prod")
                                            for _ in range(20)))
        print(json.dumps({"digests": sorted({hashlib.sha256(b).hexdigest() for b in bodies}),
                          "downloads": cache.stats().downloads}))

    asyncio.run(main())
    """
)


async def test_processes_sharing_a_directory_all_read_correct_content(
    cached_repo: Repository, cache: LocalCache, endpoint_url: str, backend: str
) -> None:
    content = os.urandom(2 << 20)
    await publish(cached_repo, "app", content)
    await cached_repo.put_alias("app", "prod", 1)
    cache.clear()
    script = worker(_WORKER, backend)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            endpoint_url,
            str(cache.directory),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outputs = [await p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), [err.decode()[-2000:] for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    assert all(r["digests"] == [hashlib.sha256(content).hexdigest()] for r in results)
    assert all(r["downloads"] <= 1 for r in results)  # at most one per process
    assert await cached_repo.get_content("app", 1) == content  # the directory is sound


def test_sticky_routing_is_the_same_in_a_process_with_another_hash_seed() -> None:
    code = textwrap.dedent(
        """
        from datetime import datetime, timezone
        from versioned_async import Alias
        al = Alias(name="app", alias="prod", update_at=datetime.now(timezone.utc), version="2",
                   secondary_version="3", secondary_version_weight=30,
                   version_s3uri="s3://b/k2", secondary_version_s3uri="s3://b/k3")
        print("".join(al.choose_version(f"user-{i}")[-1] for i in range(500)))
        """
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("0", "12345")
    }
    assert len(runs) == 1
    here = Alias(
        name="app",
        alias="prod",
        update_at=datetime.now(timezone.utc),
        version="2",
        secondary_version="3",
        secondary_version_weight=30,
        version_s3uri="s3://b/k2",
        secondary_version_s3uri="s3://b/k3",
    )
    (remote,) = runs
    assert remote == "".join(here.choose_version(f"user-{i}")[-1] for i in range(500))
    share = remote.count("3") / len(remote)
    assert 0.22 < share < 0.38


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def test_a_truncated_cache_file_is_fetched_again_not_served(
    cached_repo: Repository, cache: LocalCache
) -> None:
    content = os.urandom(200_000)
    await publish(cached_repo, "app", content)
    cache.clear()
    await cached_repo.get_content("app", 1)
    (cached,) = (cache.directory / "content").rglob("*.val")
    cached.chmod(0o600)
    with cached.open("r+b") as handle:
        handle.truncate(1000)
    assert await cached_repo.get_content("app", 1) == content
    assert cache.stats().downloads == 2


async def test_a_setting_changed_after_construction_takes_effect(
    cached_repo: Repository, cache: LocalCache
) -> None:
    """``cache.ttl = 0`` is a setting like the constructor's, not an attribute ignored:
    the next read revalidates. ``cache.verify_on_read = True`` re-hashes the next read.

    No read before the damage is a hit from memory, whose background touch could find
    the file changed first (see test_cache_safety): each one revalidates (ttl 0)."""
    cache.ttl = 0
    version = await publish(cached_repo, "app", b"genuine")
    assert await cached_repo.get_content("app", version) == b"genuine"  # downloaded
    refreshes = cache.stats().lookup_refreshes
    assert await cached_repo.get_content("app", version) == b"genuine"
    assert cache.stats().lookup_refreshes == refreshes + 1  # at ttl=30: a fresh hit

    # other bytes written in place, the size and mtime kept: only a re-hash sees them
    content = cache.directory / "content"
    (path,) = [p for p in content.rglob("*.val") if p.read_bytes() == b"genuine"]
    before = path.stat()
    path.write_bytes(b"Genuine")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    cache.verify_on_read = True
    assert await cached_repo.get_content("app", version) == b"genuine"
    assert cache.stats().damaged_content == 1

    cache.ttl = 3600  # the answer just refreshed is fresh again: no request
    refreshes = cache.stats().lookup_refreshes
    assert await cached_repo.get_content("app", version) == b"genuine"
    assert cache.stats().lookup_refreshes == refreshes


def test_a_setting_changed_after_construction_is_checked_as_the_constructor_checks_it(
    tmp_path: Path,
) -> None:
    cache = LocalCache(tmp_path / "cache")
    with pytest.raises(exc.InvalidArgumentTypeError, match="ttl must be seconds"):
        cache.ttl = "30"  # type: ignore[assignment]
    with pytest.raises(exc.InvalidArgumentError, match="ttl must be >= 0"):
        cache.ttl = -1
    with pytest.raises(exc.InvalidArgumentTypeError, match="verify_on_read must be True"):
        cache.verify_on_read = 1  # type: ignore[assignment]
    with pytest.raises(exc.InvalidArgumentError, match="size_limit must be a positive int"):
        cache.size_limit = 0
    with pytest.raises(exc.InvalidArgumentTypeError, match="stale_if_error must be True"):
        cache.stale_if_error = "no"  # type: ignore[assignment]
    assert (cache.ttl, cache.size_limit, cache.verify_on_read) == (30.0, 10 * 2**30, False)
    cache.close()
