"""Warm-hit cost of the cache, side by side with a plain file read.

Run: ``python benchmarks/warm_hit.py`` (needs the ``local`` extra: an embedded
moto server). For each size it fills the cache once, then times, in the same
run and interleaved rounds, ``Path.read_bytes()`` of the same content and the
two cached read paths; it prints medians in microseconds and their ratios.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import versioned_async as va
from versioned_async.testing import MotoServer, fake_aws_environment

SIZES = (1 << 10, 256 << 10, 1 << 20, 8 << 20)
ROUNDS = 7


def per_call_us(seconds: float, calls: int) -> float:
    return seconds / calls * 1e6


async def measure(fn: Callable[[], Awaitable[object]], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await fn()
    return per_call_us(time.perf_counter() - started, calls)


async def main(endpoint_url: str, workdir: Path) -> None:
    cache = va.LocalCache(workdir / "cache", ttl=3600)
    async with va.Repository("us-east-1", "bench", endpoint_url=endpoint_url, cache=cache) as repo:
        await repo.bootstrap()
        print(
            "| size | file read (us) | get_content (us) | ratio | get_alias_content (us) | ratio |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for size in SIZES:
            content = os.urandom(size)
            name = f"a{size}"
            await repo.put_artifact(name, content)
            await repo.publish_artifact_version(name)
            await repo.put_alias(name, "prod", 1)
            await repo.get_content(name, 1)  # fill the cache
            plain = workdir / f"plain-{size}"
            plain.write_bytes(content)
            calls = 2000 if size < (1 << 20) else 200

            async def read_plain(path: Path = plain) -> bytes:
                return path.read_bytes()

            async def read_version(n: str = name) -> bytes:
                return await repo.get_content(n, 1)

            async def read_alias(n: str = name) -> bytes:
                return await repo.get_alias_content(n, "prod", "user-1")

            rounds: dict[str, list[float]] = {"file": [], "version": [], "alias": []}
            for _ in range(ROUNDS):  # interleaved, so drift hits all three alike
                rounds["file"].append(await measure(read_plain, calls))
                rounds["version"].append(await measure(read_version, calls))
                rounds["alias"].append(await measure(read_alias, calls))
            f, v, a = (statistics.median(rounds[k]) for k in ("file", "version", "alias"))
            print(f"| {size:,} B | {f:.1f} | {v:.1f} | {v / f:.2f}x | {a:.1f} | {a / f:.2f}x |")
        stats = cache.stats()
        print(f"\nrequests during timing: downloads={stats.downloads} (one per size, to fill)")


if __name__ == "__main__":
    os.environ.update(fake_aws_environment())
    with MotoServer() as server, tempfile.TemporaryDirectory() as tmp:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
        asyncio.run(main(server.endpoint_url, Path(tmp)))
