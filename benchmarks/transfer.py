"""Scenario 10: large artifacts at link speed (``--only transfer``).

One artifact of ``--transfer-size`` (256 MiB by default) moved to and from a
SeaweedFS server (:mod:`benchmarks.seaweedfs`: a Go S3 gateway that, unlike
moto, is not itself the bottleneck), by :class:`versioned_async.S3OnlyRepository`
and by boto3's s3transfer side by side, in two links:

- **capped**: through :mod:`benchmarks.proxy` with a bandwidth cap per
  connection (``--transfer-cap-mib-s``, each way) and one over all connections
  (``--transfer-aggregate-mib-s``), and the ``--rtt-ms`` latency: what S3 gives
  one client, where each connection is limited and parallel ones add up;
- **uncapped**: straight to SeaweedFS on loopback, where the local work
  (sha256, the disk) is what is left to measure.

Contenders, each transfer in a fresh subprocess (:mod:`benchmarks.transfer_worker`,
which reports the peak RSS growth), their order rotated every round, medians
over ``--transfer-rounds``:

- ours, one stream: downloads with ``multipart_threshold`` at the size (one
  GetObject), uploads one part at a time (``max_concurrency=1``);
- ours, parallel: ``TransferConfig(max_concurrency=8, multipart_chunksize=8 MiB,
  multipart_threshold=8 MiB)``;
- boto3 ``download_file``/``upload_file`` with s3transfer's ``TransferConfig``
  of the same numbers;
- the floor: sha256 + write of the same size to a new file (a download's local
  work) and read + sha256 of it (an upload's), measured in the same rounds; on
  the capped link the floor is the slower of that and the aggregate cap.

Downloads are cold: ``repo.download(name, path)`` with no cache, every byte
from the server, hashed and checked against the recorded sha256. boto3 hashes
nothing. Uploads are ``put_artifact(name, Path)``, which hashes the file first.
"""

from __future__ import annotations

import functools
import shutil
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import versioned_async as va
from benchmarks.big import write_big_file
from benchmarks.harness import REGION, ProxyProcess, run_worker, verdict
from benchmarks.peers import Context
from benchmarks.seaweedfs import SeaweedServer

KEY = "transfer"
MIB = 1 << 20
BUCKET = "bench-transfer"
#: the artifact the downloads read, and where its LATEST object is (the S3-only layout)
SOURCE_NAME = "transfer-source"
SOURCE_KEY = f"versioned-artifacts/{SOURCE_NAME}/versions/000000_LATEST"
PARALLEL = 8
PART = 8 * MIB
#: RSS a transfer may grow by over its parts in flight
RSS_SLACK_MIB = 16
#: targets: parallel vs one stream on the capped link, vs the aggregate cap, vs the floor
SPEED_UP_TARGET = 6.0
AGGREGATE_TARGET = 0.8
FLOOR_TARGET = 0.7

CONTENDERS = ("ours, one stream", "ours, parallel", "boto3 s3transfer", "floor")


def _settings(contender: str, direction: str, size: int) -> tuple[str, int, int, int]:
    """(worker command, multipart_threshold, multipart_chunksize, max_concurrency)."""
    if contender == "ours, one stream":
        if direction == "download":
            return "ours", max(size, 1), PART, 1
        return "ours", PART, PART, 1
    command = "ours" if contender == "ours, parallel" else "boto3"
    return command, PART, PART, PARALLEL


def _rotated(items: Sequence[str], by: int) -> list[str]:
    """``items`` rotated left ``by`` places: each round starts with another contender."""
    by %= len(items)
    return [*items[by:], *items[:by]]


def _run(args: Sequence[str], timeout: float) -> dict[str, Any]:
    return run_worker(args, timeout, module="benchmarks.transfer_worker")


@functools.cache
def _s3(endpoint: str, pool: int = PARALLEL) -> Any:
    """A boto3 client, made once per endpoint and pool (clients are thread-safe)."""
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    return boto3.session.Session(region_name=REGION).client(
        "s3",
        endpoint_url=endpoint,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=pool),
    )


def link_capacity(endpoint: str, size: int, streams: int) -> float:
    """MiB/s of ``streams`` ranged GetObjects of the source object, read and dropped:
    what the link (the proxy, or SeaweedFS alone) carries with no local work."""
    s3 = _s3(endpoint, max(streams, 1))
    share = -(-size // streams)

    def read(index: int) -> int:
        first, last = index * share, min(size, (index + 1) * share) - 1
        body = s3.get_object(Bucket=BUCKET, Key=SOURCE_KEY, Range=f"bytes={first}-{last}")["Body"]
        total = 0
        while chunk := body.read(MIB):
            total += len(chunk)
        return total

    started = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        moved = sum(pool.map(read, range(streams)))
    return moved / (time.perf_counter() - started) / MIB


def _one(
    contender: str,
    direction: str,
    endpoint: str,
    workdir: Path,
    source: Path,
    size: int,
    tag: str,
    timeout: float,
) -> dict[str, Any]:
    """One measured transfer; what it uploaded is deleted after."""
    if contender == "floor":
        floor_file = workdir / f"floor-{tag}.bin"
        return _run(["floor", "--path", str(floor_file), "--size", str(size)], timeout)
    command, threshold, chunk, concurrency = _settings(contender, direction, size)
    target = workdir / f"downloaded-{tag}.bin"
    target.unlink(missing_ok=True)
    argv = [
        command,
        direction,
        "--endpoint",
        endpoint,
        "--bucket",
        BUCKET,
        "--threshold",
        str(threshold),
        "--chunksize",
        str(chunk),
        "--concurrency",
        str(concurrency),
    ]
    name = f"up-{command}-{tag}"
    key = f"boto3-uploads/{tag}"
    if direction == "download":
        argv += ["--path", str(target), "--name", SOURCE_NAME, "--key", SOURCE_KEY]
    else:
        argv += ["--path", str(source), "--name", name, "--key", key]
    result = _run(argv, timeout)
    if direction == "download":
        if target.stat().st_size != size:
            raise RuntimeError(f"{contender}: downloaded {target.stat().st_size} B, not {size}")
        target.unlink()
    else:
        s3 = _s3(endpoint)
        prefix = key if command == "boto3" else f"versioned-artifacts/{name}/"
        for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", ()):
            s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    return result


def _median(runs: list[dict[str, Any]], field: str) -> float:
    return float(statistics.median(r[field] for r in runs)) if runs else float("nan")


async def run(ctx: Context) -> None:
    args = ctx.args
    size = 8 * MIB if ctx.quick else args.transfer_size
    rounds = 1 if ctx.quick else args.transfer_rounds
    cap, aggregate = args.transfer_cap_mib_s, args.transfer_aggregate_mib_s
    workdir = ctx.workdir / "transfer"
    workdir.mkdir(exist_ok=True)
    source = workdir / "source.bin"
    made = write_big_file(source, size)
    timeout = max(120.0, size / MIB / 2)  # 2 MiB/s at worst
    notes = [f"a {size / MIB:,.0f} MiB file of random bytes, made in {made:.1f} s"]
    started = time.monotonic()
    with SeaweedServer() as weed:
        notes.append(f"SeaweedFS (weed server) ready in {time.monotonic() - started:.1f} s")
        proxy = ProxyProcess(weed.port, args.rtt_ms).start()
        try:
            direct = _s3(weed.endpoint_url)
            direct.create_bucket(Bucket=BUCKET)
            began = time.perf_counter()
            async with va.S3OnlyRepository(
                REGION, BUCKET, endpoint_url=weed.endpoint_url, session=ctx.session
            ) as repo:
                await repo.put_artifact(SOURCE_NAME, source)
            seeded = size / (time.perf_counter() - began) / MIB
            direct.head_object(Bucket=BUCKET, Key=SOURCE_KEY)  # where boto3 reads it
            capacity = {
                "SeaweedFS alone, 1 stream": link_capacity(weed.endpoint_url, size, 1),
                f"SeaweedFS alone, {PARALLEL} streams": link_capacity(
                    weed.endpoint_url, size, PARALLEL
                ),
                "proxy, uncapped, 1 stream": link_capacity(proxy.endpoint_url, size, 1),
                f"proxy, uncapped, {PARALLEL} streams": link_capacity(
                    proxy.endpoint_url, size, PARALLEL
                ),
            }
            proxy.set_caps(cap, aggregate)
            capacity[f"proxy, capped, {PARALLEL} streams"] = link_capacity(
                proxy.endpoint_url, size, PARALLEL
            )
            links = {"capped": proxy.endpoint_url, "uncapped": weed.endpoint_url}
            if ctx.quick:  # a smoke run: every contender and direction, on one link
                del links["uncapped"]
            runs: dict[str, dict[str, list[dict[str, Any]]]] = {
                f"{link} {direction}": {c: [] for c in CONTENDERS}
                for link in links
                for direction in ("download", "upload")
            }
            jobs = [
                (
                    f"{link} {direction}",
                    contender,
                    endpoint,
                    direction,
                    f"{link}-{direction}-{round_}-{index}",
                )
                for round_ in range(rounds)
                for link, endpoint in links.items()
                for direction in ("download", "upload")
                for index, contender in enumerate(_rotated(CONTENDERS, round_))
            ]

            def one(job: tuple[str, str, str, str, str]) -> dict[str, Any]:
                _, contender, endpoint, direction, tag = job
                return _one(contender, direction, endpoint, workdir, source, size, tag, timeout)

            # one at a time, each alone on the machine; a smoke run (--quick) measures
            # nothing and runs them all at once
            with ThreadPoolExecutor(len(jobs) if ctx.quick else 1) as pool:
                for job, result in zip(jobs, pool.map(one, jobs), strict=True):
                    runs[job[0]][job[1]].append(result)
        finally:
            proxy.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    _report(ctx, size, rounds, cap, aggregate, capacity, runs, notes, seeded)


def _report(
    ctx: Context,
    size: int,
    rounds: int,
    cap: float,
    aggregate: float,
    capacity: dict[str, float],
    runs: dict[str, dict[str, list[dict[str, Any]]]],
    notes: list[str],
    seeded: float,
) -> None:
    rows: list[list[Any]] = []
    speed: dict[tuple[str, str], float] = {}
    floors: dict[str, float] = {}
    for label, by_contender in runs.items():
        link, direction = label.split()
        field = "hash_write_mib_per_s" if direction == "download" else "read_hash_mib_per_s"
        local = _median(by_contender["floor"], field)
        floors[label] = local if link == "uncapped" else min(local, aggregate or local)
        for contender, measured in by_contender.items():
            if contender == "floor":
                rows.append(
                    [label, f"floor: {field.removesuffix('_mib_per_s')}", local] + ["-"] * 3
                )
                continue
            mib_s = _median(measured, "mib_per_s")
            speed[(label, contender)] = mib_s
            in_flight = 1 if contender == "ours, one stream" else PARALLEL
            budget = in_flight * PART / MIB + RSS_SLACK_MIB
            growth = max(r["peak_growth_mib"] for r in measured)
            rows.append(
                [
                    label,
                    contender,
                    mib_s,
                    growth,
                    f"<= {budget:,.0f}",
                    verdict(growth <= budget) if contender.startswith("ours") else "-",
                ]
            )
    ctx.report(
        KEY,
        f"10a. A {size / MIB:,.0f} MiB artifact at link speed: MiB/s (medians of {rounds})",
        ["link, direction", "contender", "MiB/s", "peak RSS growth MiB (max)", "RSS target", "RSS"],
        rows,
        notes=[
            *notes,
            f"capped link: {cap:g} MiB/s per connection and {aggregate:g} MiB/s over all, each "
            f"way, RTT {ctx.args.rtt_ms:g} ms (benchmarks/proxy.py); uncapped: straight to "
            "SeaweedFS on loopback.",
            "downloads cold: repo.download(name, path), no cache; boto3 hashes nothing, ours "
            "verifies the sha256.",
            f"the artifact was seeded by put_artifact (defaults, straight): {seeded:,.0f} MiB/s.",
        ],
        data={"runs": runs, "size": size, "rounds": rounds, "cap": cap, "aggregate": aggregate},
    )
    ctx.report(
        f"{KEY}-link",
        "10b. What the link carries alone (ranged GETs read and dropped, one run)",
        ["link", "MiB/s"],
        [[label, value] for label, value in capacity.items()],
        notes=["no hashing, no disk: the ceiling any client could reach on that link."],
        data={"capacity": capacity},
    )
    targets: list[list[Any]] = []
    for direction, peer in (("download", "download_file"), ("upload", "upload_file")):
        capped, loopback = f"capped {direction}", f"uncapped {direction}"
        parallel, single = speed[(capped, "ours, parallel")], speed[(capped, "ours, one stream")]
        boto = speed[(capped, "boto3 s3transfer")]
        targets += [
            [
                f"capped {direction}: parallel vs one stream",
                f"{parallel / single:.1f}x",
                f">= {SPEED_UP_TARGET:g}x",
                verdict(parallel >= SPEED_UP_TARGET * single),
            ],
            [
                f"capped {direction}: parallel vs the aggregate cap",
                f"{parallel / aggregate:.0%}" if aggregate else "-",
                f">= {AGGREGATE_TARGET:.0%}",
                verdict(parallel >= AGGREGATE_TARGET * aggregate if aggregate else None),
            ],
            [
                f"capped {direction}: parallel vs boto3 {peer}",
                f"{parallel / boto:.2f}x",
                ">= 1x",
                verdict(parallel >= boto),
            ],
        ]
        if loopback in floors:  # not in a smoke run (--quick)
            # the target is the download's (sha256 + write); an upload's floor (read +
            # sha256 of a file in the page cache) leaves out the server's side: shown only
            ours_loopback = speed[(loopback, "ours, parallel")]
            judged = direction == "download"
            targets.append(
                [
                    f"uncapped {direction}: parallel vs the local floor",
                    f"{ours_loopback / floors[loopback]:.0%}",
                    f">= {FLOOR_TARGET:.0%}" if judged else "(shown, not a target)",
                    verdict(ours_loopback >= FLOOR_TARGET * floors[loopback] if judged else None),
                ]
            )
    ctx.report(
        f"{KEY}-targets",
        "10c. Transfer targets (medians of the same run)",
        ["target", "measured", "wanted", "result"],
        targets,
        notes=[
            "the upload floor is read + sha256 of the file; the download floor sha256 + write. "
            "The RSS target is parts in flight x part size + 16 MiB (table 10a)."
        ],
        data={"floors": floors},
    )
