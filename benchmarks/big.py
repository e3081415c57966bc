"""Scenario 4: one big artifact (``--big-size``, default 1 GiB).

Upload (``put_artifact`` with a ``pathlib.Path``) and cold download
(``download()``, with an empty cache and without one), each in a fresh
subprocess that reports its throughput and the growth of its peak RSS
(``ru_maxrss``) over its peak just before the transfer. moto runs in its
own process, so its memory is not counted. Nothing is skipped: when disk or
time looks short, the output says so.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import run_worker, verdict
from benchmarks.peers import Context
from versioned_async._aws.s3_upload import MULTIPART_CONCURRENCY, PART_SIZE
from versioned_async.transfer_config import MiB, TransferConfig

KEY = "big_artifact"
#: the RSS growth target, either direction: the parts in flight at the default
#: TransferConfig (each at most a part) plus 16 MiB (issue 18's bound)
RSS_TARGET_MIB = TransferConfig().max_concurrency * TransferConfig().multipart_chunksize // MiB + 16


def write_big_file(path: Path, size: int) -> float:
    """A file of ``size`` bytes of incompressible data; returns seconds taken."""
    started = time.perf_counter()
    block = os.urandom(1 << 20)
    with open(path, "wb") as out:
        written = 0
        counter = 0
        while written < size:
            counter += 1
            chunk = counter.to_bytes(8, "big") + block[8:]
            chunk = chunk[: size - written]
            out.write(chunk)
            written += len(chunk)
    return time.perf_counter() - started


async def run(ctx: Context) -> None:
    size = (32 << 20) if ctx.quick else ctx.args.big_size
    notes: list[str] = []
    free = shutil.disk_usage(ctx.workdir).free
    # source file + download target + cache copy here, and moto spills objects to its tmp dir
    needed = 5 * size
    if free < needed:
        notes.append(
            f"DISK IS SHORT: {free / 2**30:.1f} GiB free, ~{needed / 2**30:.1f} GiB wanted for "
            f"{size / 2**30:.2f} GiB; running anyway, failures below are disk failures"
        )
    source = ctx.workdir / "big.bin"
    made = write_big_file(source, size)
    notes.append(f"made a {size / 2**20:,.0f} MiB source file in {made:.1f} s")
    # a generous time bound per transfer: 5 MB/s
    timeout = max(120.0, size / 5e6)
    runs: dict[str, dict[str, Any]] = {}
    endpoint = ctx.proxied
    ctx.proxy.reset()
    runs["upload: put_artifact(Path)"] = run_worker(
        ["upload", "--endpoint", endpoint, "--name", "big", "--path", str(source)], timeout
    )
    upload_ops = ctx.proxy.stats()["ops"]
    moto_rss = ctx.moto.rss_mib()
    cache_dir = ctx.workdir / "big-cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    target = ctx.workdir / "big.out"
    for label, cache in (
        ("download(): cold LocalCache", str(cache_dir)),
        ("download(): no cache", "none"),
    ):
        target.unlink(missing_ok=True)
        runs[label] = run_worker(
            [
                "download",
                "--endpoint",
                endpoint,
                "--name",
                "big",
                "--path",
                str(target),
                "--version",
                "1",
                "--cache",
                cache,
            ],
            timeout,
        )
        if target.stat().st_size != size:
            raise RuntimeError(f"{label}: downloaded {target.stat().st_size} bytes, not {size}")
    rows = [
        [
            label,
            f"{r['bytes'] / 2**20:,.0f}",
            r["seconds"],
            r["mb_per_s"],
            r["rss_before_mib"],
            r["peak_growth_mib"],
            "yes" if r.get("peak_reset") else "no: growth over the earlier peak",
            f"< {RSS_TARGET_MIB} MiB",
            verdict(r["peak_growth_mib"] < RSS_TARGET_MIB),
        ]
        for label, r in runs.items()
    ]
    notes += [
        f"one run each (a fresh subprocess per transfer), through the latency proxy "
        f"(RTT {ctx.proxy.rtt_ms:g} ms); throughput in MB/s (10^6 bytes).",
        "upload includes hashing the file (a first read pass) and the multipart upload "
        f"({PART_SIZE >> 20} MiB parts, {MULTIPART_CONCURRENCY} in flight); requests: "
        + ", ".join(f"{k} {v}" for k, v in sorted(upload_ops.items())),
        "download with a cache streams into the cache's staging file and then copies it to "
        "the target; without a cache it streams to the target directly.",
        f"moto_server RSS after the upload: {moto_rss or float('nan'):,.0f} MiB (not ours).",
    ]
    for path in (source, target):
        path.unlink(missing_ok=True)
    shutil.rmtree(cache_dir, ignore_errors=True)
    ctx.report(
        KEY,
        f"4. A {size / 2**20:,.0f} MiB artifact: throughput and peak RSS growth",
        [
            "transfer",
            "MiB",
            "seconds",
            "MB/s",
            "RSS before MiB",
            "peak RSS growth MiB",
            "peak reset",
            "target",
            "result",
        ],
        rows,
        notes=notes,
        data={"runs": runs, "size": size},
    )
