"""Scenario 6: 1, 10, 100, 1000 concurrent cold fetches of distinct small artifacts.

``get_content(name, 1)`` for N distinct 1 KiB artifacts at once, on a fresh
Repository with an empty cache, next to bare aiobotocore doing the same
requests (GetItem + GetObject together per artifact) on clients with the
same pool. The largest N runs again with ``max_pool_connections=256`` to
show whether the pool (default 64) is the bottleneck; the proxy reports how
many connections were open at most.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

from benchmarks.harness import Timer, median, payload, seed_published
from benchmarks.harness import version_key as key_of
from benchmarks.peers import Context, aio_clients, bare_get_object, bare_get_version

KEY = "scaling"


async def run(ctx: Context) -> None:
    counts = (1, 10, 50) if ctx.quick else (1, 10, 100, 1000)
    rounds = 1 if ctx.quick else 3
    size = 1 << 10
    top = counts[-1]
    names = [f"scale-{i:04d}" for i in range(top)]
    contents = {n: payload(size, n) for n in names}
    async with aio_clients(ctx.session, ctx.direct) as (s3, ddb):
        await seed_published(s3, ddb, contents, alias=None)

    async def ours(n: int, pool: int, tag: str) -> float:
        cache = ctx.fresh_cache(f"scale-cache-{tag}")
        async with ctx.ours(cache=cache, max_pool_connections=pool) as repo:
            with Timer() as t:
                bodies = await asyncio.gather(*(repo.get_content(x, 1) for x in names[:n]))
        cache.close()
        shutil.rmtree(cache.directory, ignore_errors=True)
        assert all(len(b) == size for b in bodies)
        return t.seconds

    async def bare(n: int, pool: int, _tag: str) -> float:
        async with aio_clients(ctx.session, ctx.proxied, pool) as (s3, ddb):

            async def one(name: str) -> bytes:
                body, _item = await asyncio.gather(
                    bare_get_object(s3, key_of(name, 1)), bare_get_version(s3, ddb, name, 1)
                )
                return body

            with Timer() as t:
                bodies = await asyncio.gather(*(one(x) for x in names[:n]))
        assert all(len(b) == size for b in bodies)
        return t.seconds

    cases = [(n, 64) for n in counts] + [(top, 256)]
    peers = {"versioned_async (cold cache)": ours, "bare aiobotocore (floor)": bare}
    times: dict[str, list[float]] = {}
    stats: dict[str, dict[str, Any]] = {}
    for round_no in range(rounds):
        for n, pool in cases:
            for peer, fn in peers.items():
                label = f"{peer}|{n}|{pool}"
                ctx.proxy.reset()
                times.setdefault(label, []).append(await fn(n, pool, f"{round_no}-{n}-{pool}"))
                stats[label] = ctx.proxy.stats()
    rows: list[list[Any]] = []
    for peer in peers:
        one = median(times[f"{peer}|1|64"])
        for n, pool in cases:
            label = f"{peer}|{n}|{pool}"
            med = median(times[label])
            floor = median(times[f"bare aiobotocore (floor)|{n}|{pool}"])
            rows.append(
                [
                    peer,
                    n,
                    pool,
                    med * 1000,
                    f"{med / one:.1f}x",
                    f"{n / med:,.0f}",
                    f"{med / floor:.2f}x",
                    stats[label]["requests"],
                    stats[label]["max_open_connections"],
                ]
            )
    ctx.report(
        KEY,
        f"6. Scaling: N concurrent cold fetches of distinct {size // 1024} KiB artifacts, "
        f"RTT {ctx.proxy.rtt_ms:g} ms, median of {rounds}",
        [
            "peer",
            "N",
            "pool",
            "total ms",
            "vs N=1",
            "fetches/s",
            "vs bare",
            "requests",
            "max open connections",
        ],
        rows,
        notes=[
            "pool = max_pool_connections of each client (S3 and DynamoDB have one each), so up "
            "to 2x pool connections; 'max open connections' is seen at the proxy.",
            "no target was set for this scenario; when N=1000 with pool 256 is no faster than "
            "with pool 64, the pool is not the bottleneck (the server is).",
        ],
        data={"times_s": times, "proxy_stats": stats},
    )
