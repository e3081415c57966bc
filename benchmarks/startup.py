"""Scenario 1: a service's start-up, cold and warm.

Resolve alias ``prod`` and fetch the content of N artifacts (100 of 256 KiB)
all at once, through the latency proxy:

- cold: an empty cache, against ``versioned`` 1.0.1 (sequential, as its README
  shows), a plain boto3 loop, and bare aiobotocore doing one GetItem(alias)
  and one GetObject per artifact with the same concurrency (the floor);
- warm: a NEW PROCESS on the cache the cold run filled: requests are counted
  at the proxy (target 0) and the time is compared with reading the same
  files from local disk in that process.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

import versioned_async as va
from benchmarks.harness import (
    BUCKET,
    TABLE,
    Timer,
    median,
    payload,
    run_worker,
    seed_published,
    verdict,
    version_key,
    write_cached_file_lists,
)
from benchmarks.peers import (
    Context,
    aio_clients,
    bare_get_alias,
    bare_get_object,
    bare_get_version,
    boto3_clients,
)

KEY = "startup"


async def run(ctx: Context) -> None:  # noqa: PLR0915 - one scenario, read top to bottom
    count = 10 if ctx.quick else 100
    size = (16 if ctx.quick else 256) << 10
    rounds = 2 if ctx.quick else ctx.args.rounds
    names = [f"startup-{i:03d}" for i in range(count)]
    contents = {n: payload(size, n) for n in names}
    async with aio_clients(ctx.session, ctx.direct) as (s3, ddb):
        await seed_published(s3, ddb, contents)
    expected = sum(len(b) for b in contents.values())

    async def ours(round_no: int, *, cached: bool = True) -> float:
        cache = ctx.fresh_cache(f"startup-cache-{round_no}") if cached else None
        async with ctx.ours(cache=cache) as repo:
            with Timer() as t:
                bodies = await asyncio.gather(*(repo.get_alias_content(n, "prod") for n in names))
        if cache is not None:
            cache.close()
        assert sum(len(b) for b in bodies) == expected
        return t.seconds

    async def bare(_round: int) -> float:
        async with aio_clients(ctx.session, ctx.proxied) as (s3, ddb):

            async def one(name: str) -> bytes:
                alias = await bare_get_alias(s3, ddb, name, "prod")
                return await bare_get_object(s3, version_key(name, alias["version"]["S"]))

            with Timer() as t:
                bodies = await asyncio.gather(*(one(n) for n in names))
        assert sum(len(b) for b in bodies) == expected
        return t.seconds

    async def bare_same(_round: int) -> float:
        """Ours' requests exactly: GetItem(alias), then GetItem(version) + GetObject together."""
        async with aio_clients(ctx.session, ctx.proxied) as (s3, ddb):

            async def one(name: str) -> bytes:
                alias = await bare_get_alias(s3, ddb, name, "prod")
                stored = alias["version"]["S"]
                body, _item = await asyncio.gather(
                    bare_get_object(s3, version_key(name, stored)),
                    bare_get_version(s3, ddb, name, stored),
                )
                return body

            with Timer() as t:
                bodies = await asyncio.gather(*(one(n) for n in names))
        assert sum(len(b) for b in bodies) == expected
        return t.seconds

    def boto3_loop(_round: int) -> float:
        s3, ddb = boto3_clients(ctx.proxied)
        total = 0
        with Timer() as t:
            for name in names:
                item = ddb.get_item(
                    TableName=TABLE,
                    Key={"pk": {"S": f"__{name}-alias"}, "sk": {"S": "prod"}},
                    ConsistentRead=True,
                )["Item"]
                total += len(
                    s3.get_object(Bucket=BUCKET, Key=version_key(name, item["version"]["S"]))[
                        "Body"
                    ].read()
                )
        s3.close()
        ddb.close()
        assert total == expected
        return t.seconds

    def upstream(_round: int) -> float:
        total = 0
        with ctx.upstream.use(ctx.proxied) as (repo, bsm), Timer() as t:
            for name in names:
                alias = repo.get_alias(name, "prod", bsm=bsm)
                total += len(alias.get_version_content(bsm))
        assert total == expected
        return t.seconds

    peers: dict[str, Any] = {
        "versioned_async (cold cache)": ours,
        "versioned_async (no cache)": lambda r: ours(r, cached=False),
        "bare aiobotocore gather (floor)": bare,
        "bare aiobotocore, ours' 3 requests": bare_same,
        "boto3 loop (sequential)": boto3_loop,
        "versioned 1.0.1 (sequential)": upstream,
    }
    times: dict[str, list[float]] = {p: [] for p in peers}
    requests: dict[str, list[int]] = {p: [] for p in peers}
    ops: dict[str, dict[str, int]] = {}
    for round_no in range(rounds):  # interleaved: drift hits every peer alike
        for peer, fn in peers.items():
            ctx.proxy.reset()
            result = fn(round_no)
            if asyncio.iscoroutine(result):
                result = await result
            times[peer].append(result)
            stats = ctx.proxy.stats()
            requests[peer].append(stats["requests"])
            ops[peer] = stats["ops"]

    ours_s = median(times["versioned_async (cold cache)"])
    bare_s = median(times["bare aiobotocore gather (floor)"])
    up_s = median(times["versioned 1.0.1 (sequential)"])
    rows: list[list[Any]] = []
    targets = {
        "versioned 1.0.1 (sequential)": ("ours >= 20x faster", up_s / ours_s, up_s / ours_s >= 20),
        "bare aiobotocore gather (floor)": (
            "ours <= 1.5x floor",
            ours_s / bare_s,
            ours_s / bare_s <= 1.5,
        ),
    }
    for peer in peers:
        med = median(times[peer])
        target, ratio, ok = targets.get(peer, ("", None, None))
        rows.append(
            [
                peer,
                med * 1000,
                f"{min(times[peer]) * 1000:,.1f}-{max(times[peer]) * 1000:,.1f}",
                f"{med / ours_s:.2f}x",
                int(statistics.median(requests[peer])),
                ", ".join(f"{k} {v}" for k, v in sorted(ops[peer].items())),
                target,
                "" if ratio is None else f"{ratio:.2f}x",
                verdict(ok),
            ]
        )
    ctx.report(
        KEY,
        f"1a. Start-up, cold: alias + content of {count} artifacts of {size // 1024} KiB, "
        f"RTT {ctx.proxy.rtt_ms:g} ms, median of {rounds}",
        [
            "peer",
            "median ms",
            "range ms",
            "vs ours",
            "requests",
            "requests by op (last round)",
            "target",
            "measured",
            "result",
        ],
        rows,
        notes=[
            "ours: fresh Repository (fresh connections) and an empty LocalCache each round; "
            "every peer gets fresh clients each round; client creation is not timed.",
            "versioned 1.0.1: get_alias + alias.get_version_content(bsm) per artifact, "
            "pynamodb sharing botocore's loader (upstream at its fastest).",
        ],
        data={"times_s": times, "requests": requests, "ops_last_round": ops},
    )

    # -- warm: a new process on the cache the last cold round filled --------------------
    cache_dir = ctx.workdir / f"startup-cache-{rounds - 1}"
    cache = va.LocalCache(cache_dir, ttl=3600)
    names_file, files_file = await write_cached_file_lists(cache, contents, ctx.workdir, "startup")
    cache.close()
    warm_runs: list[dict[str, Any]] = []
    for _ in range(3 if ctx.quick else max(5, rounds)):
        ctx.proxy.reset()
        got = run_worker(
            [
                "warm-start",
                "--endpoint",
                ctx.proxied,
                "--cache",
                str(cache_dir),
                "--names",
                str(names_file),
                "--files",
                str(files_file),
            ],
            timeout=120,
        )
        got["requests"] = ctx.proxy.stats()["requests"]
        assert got["bytes"] == expected
        warm_runs.append(got)
    plain_discarded = median([r["plain_read_s"] for r in warm_runs])
    plain = median([r["plain_read_kept_s"] for r in warm_runs])
    fetch = median([r["fetch_s"] for r in warm_runs])
    again = median([r["fetch_again_s"] for r in warm_runs])
    opened = median([r["open_s"] for r in warm_runs])
    max_requests = max(r["requests"] for r in warm_runs)
    rows = [
        ["plain read of the same files, bodies kept", plain * 1000, "1.00x", "", "", "-"],
        [
            "plain read of the same files, each body dropped",
            plain_discarded * 1000,
            f"{plain_discarded / plain:.2f}x",
            "",
            "",
            "-",
        ],
        [
            "gather(get_alias_content) - first, in a new process",
            fetch * 1000,
            f"{fetch / plain:.2f}x",
            max_requests,
            "<= 2x file read, 0 requests",
            verdict(fetch / plain <= 2 and max_requests == 0),
        ],
        [
            "gather(get_alias_content) - again, same process",
            again * 1000,
            f"{again / plain:.2f}x",
            "",
            "",
            "-",
        ],
        [
            "open LocalCache + Repository (clients)",
            opened * 1000,
            f"{opened / plain:.2f}x",
            "",
            "(not in the target)",
            "-",
        ],
    ]
    ctx.report(
        KEY,
        f"1b. Start-up, warm: a new process on the filled cache, {count} artifacts, "
        f"median of {len(warm_runs)} processes",
        ["what", "median ms", "vs file read", "requests (proxy)", "target", "result"],
        rows,
        notes=[
            "requests counted at the latency proxy for the whole subprocess (max over processes).",
            "the baseline keeps the 100 bodies, as the gather does; dropping each body lets "
            "malloc reuse one buffer and shows the cost of fresh memory alone.",
        ],
        data={"warm_runs": warm_runs},
    )
