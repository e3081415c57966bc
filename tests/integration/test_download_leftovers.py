"""A process killed in the middle of a download leaves nothing visible, and its staging
file is gone after the next start (issue 18).

A real subprocess downloads a large artifact in parts through the proxy, which
holds one part's answer back so the download hangs half-way; it is SIGKILLed once
its staging file holds bytes. Then, in this process: the cache's next start
removes its staging file; the next download to the same target removes the
stale ``.<target>.<hex>.part`` beside it, and leaves alone one that a live
process holds (versioned_async._staging).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
import textwrap
from pathlib import Path

from tests.conftest import BUCKET, REGION, TABLE, RepoFactory
from tests.proxy import CountingProxy
from versioned_async import LocalCache, TransferConfig, _staging

MiB = 1 << 20
PARTS = TransferConfig(multipart_threshold=MiB, multipart_chunksize=256 << 10, max_concurrency=2)

_DOWNLOAD = textwrap.dedent(
    f"""
    import asyncio, sys
    from pathlib import Path
    from versioned_async import LocalCache, Repository, TransferConfig

    async def main():
        endpoint_url, cache_dir, target = sys.argv[1:4]
        cache = LocalCache(cache_dir) if cache_dir else None
        parts = TransferConfig(multipart_threshold={PARTS.multipart_threshold},
                               multipart_chunksize={PARTS.multipart_chunksize},
                               max_concurrency={PARTS.max_concurrency})
        async with Repository({REGION!r}, {BUCKET!r}, dynamodb_table_name={TABLE!r},
                              endpoint_url=endpoint_url, cache=cache,
                              transfer_config=parts) as repo:
            await repo.download("model", Path(target))

    asyncio.run(main())
    """
)


def content(size: int) -> bytes:
    block = hashlib.sha256(b"leftovers").digest()
    return b"".join(i.to_bytes(8, "big") + block for i in range(size // 40 + 1))[:size]


def parts_in(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.part")) if folder.exists() else []


async def kill_mid_download(
    proxy: CountingProxy, staging: Path, cache_dir: str, target: Path
) -> Path:
    """Start a download in a subprocess, kill it once its staging file in ``staging`` holds
    bytes and a later part hangs; returns that staging file."""
    proxy.stall_next(op="GetObject", skip=2)  # the third GetObject: part 3 never answers
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _DOWNLOAD,
        proxy.endpoint_url,
        cache_dir,
        str(target),
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        def half_way() -> bool:
            if proc.returncode is not None:
                raise AssertionError("the download ended before it could be killed")
            found = [p for p in staging.glob("*.part") if p.stat().st_size > 0]
            return bool(found) and not proxy.pending_faults

        await proxy.wait_for(half_way, what="a half-written staging file and a held part")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    (left,) = [p for p in staging.glob("*.part") if p.stat().st_size > 0]
    return left


async def test_a_killed_cached_download_is_swept_at_the_next_start(
    make_proxied_repo: RepoFactory, proxy: CountingProxy, tmp_path: Path
) -> None:
    data = content(3 * MiB)
    cache_dir = tmp_path / "cache"
    target = tmp_path / "model.bin"
    async with make_proxied_repo() as repo:
        await repo.bootstrap()
        await repo.put_artifact("model", data)
    LocalCache(cache_dir)  # made before the kill, so its staging folder is there to watch
    staging = next(cache_dir.rglob("staging"))
    left = await kill_mid_download(proxy, staging, str(cache_dir), target)
    assert left.stat().st_size < len(data)  # the kill left it half-way ...
    assert not target.exists()  # ... and nothing visible
    async with make_proxied_repo(cache=LocalCache(cache_dir), transfer_config=PARTS) as repo:
        assert parts_in(staging) == []  # the next start swept it
        await repo.download("model", target)
    assert target.read_bytes() == data
    assert parts_in(staging) == []
    assert parts_in(tmp_path) == []


async def test_the_next_download_to_a_target_removes_a_killed_ones_leftover(
    make_proxied_repo: RepoFactory, proxy: CountingProxy, tmp_path: Path
) -> None:
    data = content(3 * MiB)
    target = tmp_path / "model.bin"
    async with make_proxied_repo() as repo:
        await repo.bootstrap()
        await repo.put_artifact("model", data)
    left = await kill_mid_download(proxy, tmp_path, "", target)
    assert left.name.startswith(".model.bin.")
    assert not target.exists()
    other = tmp_path / ".model.bin.0123456789ab.part"  # another process, still writing
    with _staging.claimed(other):
        other.write_bytes(b"in progress")
        neighbour = tmp_path / ".model.bin.old.0123456789ab.part"  # another target's name
        neighbour.write_bytes(b"not ours to judge")
        async with make_proxied_repo(transfer_config=PARTS) as repo:
            await repo.download("model", target)
        assert target.read_bytes() == data
        assert parts_in(tmp_path) == [other, neighbour]
        assert os.path.exists(other)
