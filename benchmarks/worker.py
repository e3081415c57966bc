"""Measurements that need a fresh process: ``python -m benchmarks.worker COMMAND ...``.

Each command prints one JSON line. ``warm-start`` opens a filled cache in a
new process and fetches everything through it; ``upload`` and ``download``
move one big artifact and report the growth of peak RSS
(``resource.getrusage(...).ru_maxrss``) over the process's RSS just before
the transfer (imports done, clients open, service models loaded), the peak
being reset there through ``/proc/self/clear_refs`` (Linux).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import BUCKET, REGION, TABLE


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    """VmHWM, the peak RSS that clear_refs "5" resets (ru_maxrss may keep an older peak)."""
    peak = _status_mib("VmHWM")
    if math.isnan(peak):  # no /proc: fall back to getrusage (KiB on Linux)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak


def current_rss_mib() -> float:
    return _status_mib("VmRSS")


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def read_kept(files: list[str]) -> tuple[float, list[bytes]]:
    """Read every file, keeping each body as a service does: (seconds, bodies)."""
    started = time.perf_counter()
    kept = []
    for path in files:
        with open(path, "rb") as handle:
            kept.append(handle.read())
    return time.perf_counter() - started, kept


async def read_files(args: argparse.Namespace) -> dict[str, Any]:
    """Only the plain read, bodies kept: the baseline of the restart scenario, alone in
    its process as the fetch is in its own."""
    seconds, kept = read_kept(json.loads(Path(args.files).read_text()))
    return {"read_kept_s": seconds, "bytes": sum(len(b) for b in kept)}


async def warm_start(args: argparse.Namespace) -> dict[str, Any]:
    import versioned_async as va  # noqa: PLC0415 - imported inside the timed start-up

    names = json.loads(Path(args.names).read_text())
    files: list[str] = json.loads(Path(args.files).read_text())
    if args.fetch_only:  # the restart scenario: the baseline runs in a process of its own
        files = []
    # the baseline first: the same files, read plainly, in this new process
    started = time.perf_counter()
    plain_total = 0
    for path in files:
        with open(path, "rb") as handle:  # noqa: ASYNC230 - the baseline is a blocking read
            plain_total += len(handle.read())
    plain_s = time.perf_counter() - started
    # the same, keeping every body as a service (and get_alias_content) does: fresh
    # memory for each, where the loop above reuses one buffer
    plain_kept_s, kept = read_kept(files)
    del kept

    started = time.perf_counter()
    cache = va.LocalCache(args.cache, ttl=args.ttl)
    repo = va.Repository(
        REGION, BUCKET, dynamodb_table_name=TABLE, endpoint_url=args.endpoint, cache=cache
    )
    async with repo:
        opened_s = time.perf_counter() - started
        started = time.perf_counter()
        bodies = await asyncio.gather(*(repo.get_alias_content(n, "prod") for n in names))
        fetch_s = time.perf_counter() - started
        # the same again in this process: memory-warm lookups
        started = time.perf_counter()
        await asyncio.gather(*(repo.get_alias_content(n, "prod") for n in names))
        again_s = time.perf_counter() - started
    stats = cache.stats()
    cache.close()
    return {
        "plain_read_s": plain_s,
        "plain_read_kept_s": plain_kept_s,
        "plain_bytes": plain_total,
        "open_s": opened_s,
        "fetch_s": fetch_s,
        "fetch_again_s": again_s,
        "bytes": sum(len(b) for b in bodies),
        "downloads": stats.downloads,
        "hits": stats.hits,
        "lookup_refreshes": stats.lookup_refreshes,
    }


async def transfer(args: argparse.Namespace) -> dict[str, Any]:
    import versioned_async as va  # noqa: PLC0415

    cache = (
        None if args.cache == "none" else va.LocalCache(args.cache, ttl=3600, size_limit=1 << 40)
    )
    async with va.Repository(
        REGION, BUCKET, dynamodb_table_name=TABLE, endpoint_url=args.endpoint, cache=cache
    ) as repo:
        # load both service models and open a connection of each kind before the baseline
        await repo.list_aliases(args.name)
        await repo.list_artifact_names()
        # start the peak afresh: loading service models peaks far above the resting RSS,
        # and would hide the transfer's own peak (Linux: "5" resets VmHWM)
        reset = reset_peak_rss()
        before_peak, before_rss = peak_rss_mib(), current_rss_mib()
        started = time.perf_counter()
        if args.command == "upload":
            artifact = await repo.put_artifact(args.name, Path(args.path))
            size = artifact.size
        else:
            out = await repo.download(args.name, args.path, version=args.version)
            size = out.stat().st_size
        seconds = time.perf_counter() - started
        after_peak = peak_rss_mib()
        if args.command == "upload":  # not timed: a server-side copy
            await repo.publish_artifact_version(args.name)
    if cache is not None:
        cache.close()
    return {
        "seconds": seconds,
        "bytes": size,
        "mb_per_s": (size or 0) / seconds / 1e6,
        "rss_before_mib": before_rss,
        "peak_before_mib": before_peak,
        "peak_after_mib": after_peak,
        "peak_reset": reset,
        # growth over the resting RSS just before: the transfer's own peak
        "peak_growth_mib": after_peak - before_rss if reset else after_peak - before_peak,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    warm = sub.add_parser("warm-start")
    warm.add_argument("--endpoint", required=True)
    warm.add_argument("--cache", required=True)
    warm.add_argument("--names", required=True, help="JSON file: artifact names")
    warm.add_argument("--files", required=True, help="JSON file: the cached file paths")
    warm.add_argument("--ttl", type=float, default=3600.0)
    warm.add_argument("--fetch-only", action="store_true", help="no plain-read baseline")
    read = sub.add_parser("read-files")
    read.add_argument("--files", required=True, help="JSON file: the cached file paths")
    for command in ("upload", "download"):
        big = sub.add_parser(command)
        big.add_argument("--endpoint", required=True)
        big.add_argument("--name", required=True)
        big.add_argument("--path", required=True)
        big.add_argument("--version", default="1")
        big.add_argument("--cache", default="none")
    args = parser.parse_args(argv)
    run = {"warm-start": warm_start, "read-files": read_files}.get(args.command, transfer)
    result = asyncio.run(run(args))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
