"""Scenario 11: batch routing per core, and on Dask with 1, 2 and 4 worker processes.

11a. ``Alias.choose_versions`` in one process, for str keys (``user-123456``) and
the same keys as bytes: keys/s on one core, against the target of 1,000,000.

11b. The same keys routed by ``versioned_async.dask.route_partitions`` on a
dask.distributed ``LocalCluster`` of 1, 2 and 4 worker processes (one thread
each), next to one process without Dask. The keys are persisted on the workers
first (as if each had read its partitions), so the timing is the routing, its
scheduling and keeping the routed partitions on the workers (``persist``), not
the transfer of keys from, or versions to, this process. Before timing, each
cluster's whole answer is gathered once and compared with the one process's: it
must be equal. Each cluster round is followed by a round of one process alone, so
both see the same load.

No server is needed (NO_SERVER in __main__).
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime, timezone
from typing import Any

from benchmarks.harness import median, verdict
from benchmarks.peers import Context
from versioned_async.models import Alias

KEY_PER_CORE = "routing-per-core"
HEADERS_PER_CORE = ["keys", "ms", "keys/s", "CPU ms", "keys per CPU second", "CPU ns/key"]
HEADERS_PER_CORE += ["target", "result"]
KEY_DASK = "dask"
TARGET = 1_000_000
WEIGHT = 30


def make_alias() -> Alias:
    return Alias(
        name="ranker",
        alias="prod",
        update_at=datetime.now(timezone.utc),
        version="1",
        secondary_version="2",
        secondary_version_weight=WEIGHT,
        version_s3uri="s3://bench/ranker/1",
        secondary_version_s3uri="s3://bench/ranker/2",
    )


def keys_frame(start: int, stop: int) -> Any:
    """One partition of the keys, built on the worker that holds it."""
    import pandas as pd  # noqa: PLC0415

    return pd.DataFrame(
        {"user_id": [f"user-{n}" for n in range(start, stop)]}, index=range(start, stop)
    )


def timed(fn: Any, rounds: int) -> tuple[list[float], Any]:
    samples, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - started)
    return samples, result


def on_cluster(
    workers: int, alias: Alias, keys: list[str], partitions: int, rounds: int, expected: list[str]
) -> dict[str, Any]:
    """Route ``keys`` on a fresh LocalCluster of ``workers`` processes, each round followed
    by a round of one process alone (``alone``) for the comparison."""
    import dask.dataframe as dd  # noqa: PLC0415
    from distributed import Client, LocalCluster, wait  # noqa: PLC0415

    from versioned_async.dask import route_partitions  # noqa: PLC0415

    count = len(keys)
    step = -(-count // partitions)
    starts = range(0, count, step)
    stops = [min(start + step, count) for start in starts]
    with (
        LocalCluster(
            n_workers=workers,
            processes=True,
            threads_per_worker=1,
            dashboard_address=":0",  # any free port: never a clash
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        frame = dd.from_map(keys_frame, starts, stops).persist()
        wait(frame)
        routed = route_partitions(frame, alias)["version"]
        whole = routed.compute()  # warms every worker (imports) and checks the answer
        equal = whole.tolist() == expected

        def route_and_keep() -> None:
            """Every key routed, the result kept on the workers (as a job goes on with it)."""
            wait(route_partitions(frame, alias).persist())

        samples, alone, worker_cpu = [], [], []
        for _ in range(rounds):  # interleaved, so both see the same load on the machine
            before = client.run(time.process_time)
            samples += timed(route_and_keep, 1)[0]
            after = client.run(time.process_time)
            worker_cpu.append(sum(after[w] - before[w] for w in after))
            alone += timed(lambda: alias.choose_versions(keys), 1)[0]
    return {"samples": samples, "alone": alone, "worker_cpu": worker_cpu, "equal": equal}


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}"


async def run(ctx: Context) -> None:
    count = 200_000 if ctx.quick else 2_000_000
    rounds = 1 if ctx.quick else max(3, min(ctx.args.rounds, 5))
    sizes = (2,) if ctx.quick else (1, 2, 4)
    partitions = 8 if ctx.quick else 16
    cores = os.cpu_count() or 1
    alias = make_alias()
    str_keys = [f"user-{n}" for n in range(count)]
    bytes_keys = [key.encode() for key in str_keys]

    per_key: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    answers: dict[str, list[str]] = {}
    for label, keys in (("str keys (user-123456)", str_keys), ("bytes keys", bytes_keys)):
        per_key[label], cpu[label] = [], []
        for _ in range(rounds):
            began_cpu = time.thread_time()  # this thread's CPU time: one core's work
            took, answers[label] = timed(lambda k=keys: alias.choose_versions(k), 1)
            cpu[label].append(time.thread_time() - began_cpu)
            per_key[label] += took
    assert answers["str keys (user-123456)"] == answers["bytes keys"]
    expected = answers["str keys (user-123456)"]
    rows = []
    for label, samples in per_key.items():
        wall, on_cpu = median(samples), median(cpu[label])
        target = f">= {TARGET:,}/s"
        rows.append([label, wall * 1000, rate(count, wall), on_cpu * 1000, rate(count, on_cpu)])
        rows[-1] += [on_cpu / count * 1e9, target, verdict(count / on_cpu >= TARGET)]
    ctx.report(
        KEY_PER_CORE,
        f"11a. Routing per core: Alias.choose_versions for {count:,} keys "
        f"(weight {WEIGHT}%), one process, median of {rounds}",
        HEADERS_PER_CORE,
        rows,
        notes=[
            "one thread of one process. 'keys per CPU second' divides by the CPU time of "
            "that thread (time.thread_time): the rate of one core even when other processes "
            "share it; 'keys/s' is wall-clock, lower when the machine is busy. The target is "
            "judged per core, on CPU time."
        ],
        data={"times_s": per_key, "cpu_s": cpu, "count": count},
    )

    clusters = {}
    for workers in sizes:
        clusters[workers] = await asyncio.to_thread(
            on_cluster, workers, alias, str_keys, partitions, rounds, expected
        )
    alone = [t for measured in clusters.values() for t in measured["alone"]]
    base = median(alone)
    reference = rate(count, base)
    dask_rows: list[list[Any]] = [
        ["one process, no Dask", "-", base * 1000, reference, reference, "-", "1.00x", "reference"]
    ]
    for workers, measured in clusters.items():
        med = median(measured["samples"])
        dask_rows.append(
            [
                "Dask LocalCluster, processes",
                workers,
                med * 1000,
                rate(count, med),
                rate(count / workers, med),
                rate(count, median(measured["worker_cpu"])),
                f"{median(measured['alone']) / med:.2f}x",
                "yes" if measured["equal"] else "NO",
            ]
        )
    oversubscribed = [w for w in sizes if w > cores]
    load = os.getloadavg()[0]
    notes = [
        f"{partitions} partitions, persisted on the workers before timing; each round routes "
        "every key and keeps the result there: wait(route_partitions(frame, alias).persist()).",
        "the one-process rounds alternate with each cluster's (same load); 'vs one process' "
        "compares a cluster with the rounds made beside it.",
        "'keys per worker CPU second': the keys over the CPU time all workers spent in the "
        "round (their process_time): what routing costs on a worker, Dask's share included, "
        "however busy the machine.",
        "'equal' compares the whole version column, gathered once per cluster, with the one "
        "process's choose_versions: the assignment must be identical.",
        f"this machine has {cores} cores"
        + (
            f": {', '.join(map(str, oversubscribed))} workers oversubscribe it, so more "
            "workers cannot be faster there."
            if oversubscribed
            else "."
        )
        + f" Load average at the end: {load:.1f}"
        + (" (other work shared the cores)." if load > cores else "."),
    ]
    if any(not m["equal"] for m in clusters.values()):
        raise AssertionError("a cluster's assignment differs from the one process's")
    ctx.report(
        KEY_DASK,
        f"11b. Routing on Dask: {count:,} keys, 1 thread per worker, median of {rounds}",
        [
            "how",
            "workers",
            "ms",
            "keys/s",
            "keys/s per worker",
            "keys per worker CPU second",
            "vs one process",
            "equal",
        ],
        dask_rows,
        notes=notes,
        data={
            "count": count,
            "cores": cores,
            "load_average": load,
            "single_s": alone,
            "clusters": {str(w): m for w, m in clusters.items()},
        },
    )
