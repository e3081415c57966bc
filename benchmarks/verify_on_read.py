"""Scenario 8: what ``LocalCache(verify_on_read=True)`` costs per MiB read from the cache.

The same cached file is read, in interleaved rounds, by two LocalCache objects
on one directory, one re-hashing every read and one not (the default: a
fingerprint check, one ``fstat``), through the calls ``get_content`` and
``download`` use (the cache's ``ContentStore.read`` and ``copy``). No AWS: the
content is published into the cache directly, so the numbers are the disk read, the
checks and sha256, nothing else. ``sha256 alone`` is hashlib over bytes in
memory, the floor of what the setting adds.

Run alone: ``python -m benchmarks.verify_on_read [--quick]``; or with the
others: ``python -m benchmarks --only verify-on-read``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import versioned_async as va
from benchmarks.harness import markdown_table, median, payload
from versioned_async.cache.content import Staged

KEY = "verify_on_read"
MIB = 1 << 20


async def per_call(fn: Callable[[], Awaitable[object]], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - started) / calls


async def measure(workdir: Path, quick: bool) -> tuple[list[list[Any]], dict[str, Any]]:
    sizes = (MIB, 4 * MIB) if quick else (MIB, 16 * MIB, 128 * MIB)
    rounds = 3 if quick else 7
    directory = workdir / "verify-on-read-cache"
    plain = va.LocalCache(directory, size_limit=4 << 30)
    verifying = va.LocalCache(directory, size_limit=4 << 30, verify_on_read=True)
    rows: list[list[Any]] = []
    data: dict[str, Any] = {}
    try:
        for size in sizes:
            content = payload(size, f"verify-{size}")
            sha = hashlib.sha256(content).hexdigest()
            default, rehashing = plain._store.content, verifying._store.content
            part = default.new_staging_path()
            part.write_bytes(content)
            path = await default.publish(Staged(part, sha, size))
            part.unlink()
            assert path is not None
            assert await rehashing.path(sha) == path
            target = workdir / "verify-on-read-copy"
            calls = max(1, (64 * MIB) // size) if not quick else 2

            async def hash_only(body: bytes = content) -> str:
                return hashlib.sha256(body).hexdigest()

            fns = {
                "sha256 alone": hash_only,
                "read, default": partial(default.read, sha, path, size),
                "read, verify_on_read": partial(rehashing.read, sha, path, size),
                "copy, default": partial(default.copy, sha, path, size, target),
                "copy, verify_on_read": partial(rehashing.copy, sha, path, size, target),
            }
            for fn in fns.values():  # warm-up: page cache, allocator
                await fn()
            got: dict[str, list[float]] = {k: [] for k in fns}
            for _ in range(rounds):
                for name, fn in fns.items():
                    got[name].append(await per_call(fn, calls))
            med = {k: median(v) for k, v in got.items()}
            mib = size / MIB
            data[str(size)] = {"per_call_s": got, "calls": calls}
            for how in ("read", "copy"):
                off, on = med[f"{how}, default"], med[f"{how}, verify_on_read"]
                rows.append(
                    [
                        f"{size // MIB} MiB",
                        how,
                        f"{off / mib * 1e3:.3f}",
                        f"{on / mib * 1e3:.3f}",
                        f"{(on - off) / mib * 1e3:.3f}",
                        f"{mib / off:,.0f}",
                        f"{mib / on:,.0f}",
                        f"{med['sha256 alone'] / mib * 1e3:.3f}",
                    ]
                )
    finally:
        plain.close()
        verifying.close()
    return rows, data


HEADERS = [
    "size",
    "call",
    "default ms/MiB",
    "verify ms/MiB",
    "added ms/MiB",
    "default MiB/s",
    "verify MiB/s",
    "sha256 alone ms/MiB",
]
TITLE = "8. verify_on_read: the cost of re-hashing cached content, median of interleaved rounds"
NOTES = [
    "read = the bytes get_content returns; copy = the file download writes (1 MiB chunks).",
    "the file is in the page cache (warm): a cold disk read adds the same to both columns.",
]


async def run(ctx: Any) -> None:
    rows, data = await measure(ctx.workdir, ctx.quick)
    ctx.report(KEY, TITLE, HEADERS, rows, notes=NOTES, data=data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.verify_on_read")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="va-bench-") as workdir:
        rows, _ = asyncio.run(measure(Path(workdir), args.quick))
    print(f"\n### {TITLE}\n")
    print(markdown_table(HEADERS, rows))
    for note in NOTES:
        print(f"\n- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
