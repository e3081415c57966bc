"""Scenario 2: per-operation overhead, with no added latency (straight to moto).

For get_alias, get_artifact_version, put_artifact, publish_artifact_version
and put_alias: the median time of one call of versioned_async (no cache)
next to the bare aiobotocore requests that method makes (reproduced from
repository.py), and next to ``versioned`` 1.0.1. A first pass through the
proxy (RTT set to 0 for it) counts each peer's requests per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import versioned_async as va
from benchmarks.harness import BUCKET, REGION, TABLE, median, verdict
from benchmarks.peers import (
    Context,
    aio_clients,
    bare_get_alias,
    bare_get_version,
    bare_publish,
    bare_put_alias,
    bare_put_artifact,
)

KEY = "per_operation"
OPS = ("get_alias", "get_artifact_version", "put_artifact", "publish_artifact_version", "put_alias")
PEERS = ("versioned_async", "bare aiobotocore", "versioned 1.0.1")
NAMES = {"versioned_async": "op-ours", "bare aiobotocore": "op-bare", "versioned 1.0.1": "op-up"}

Op = Callable[[int], Any]


@contextlib.asynccontextmanager
async def open_peer(ctx: Context, peer: str, endpoint: str) -> AsyncIterator[dict[str, Op]]:
    name = NAMES[peer]

    def body(i: int) -> bytes:
        return f"{peer} content {i} {time.time_ns()}".encode() * 32  # ~1.3 KB, always new

    if peer == "versioned_async":
        async with va.Repository(
            REGION, BUCKET, dynamodb_table_name=TABLE, endpoint_url=endpoint, session=ctx.session
        ) as repo:
            yield {
                "get_alias": lambda i: repo.get_alias(name, "prod"),
                "get_artifact_version": lambda i: repo.get_artifact_version(name, 1),
                "put_artifact": lambda i: repo.put_artifact(name, body(i)),
                "publish_artifact_version": lambda i: repo.publish_artifact_version(name),
                "put_alias": lambda i: repo.put_alias(name, "prod", 1),
            }
    elif peer == "bare aiobotocore":
        async with aio_clients(ctx.session, endpoint) as (s3, ddb):
            yield {
                "get_alias": lambda i: bare_get_alias(s3, ddb, name, "prod"),
                "get_artifact_version": lambda i: bare_get_version(s3, ddb, name, 1),
                "put_artifact": lambda i: bare_put_artifact(s3, ddb, name, body(i)),
                "publish_artifact_version": lambda i: bare_publish(s3, ddb, name),
                "put_alias": lambda i: bare_put_alias(s3, ddb, name, "prod", 1),
            }
    else:
        with ctx.upstream.use(endpoint) as (repo, bsm):
            yield {
                "get_alias": lambda i: repo.get_alias(name, "prod", bsm=bsm),
                "get_artifact_version": lambda i: repo.get_artifact_version(name, 1, bsm=bsm),
                "put_artifact": lambda i: repo.put_artifact(name, body(i), bsm=bsm),
                "publish_artifact_version": lambda i: repo.publish_artifact_version(name, bsm=bsm),
                "put_alias": lambda i: repo.put_alias(name, "prod", version=1, bsm=bsm),
            }


async def timed(fn: Op, i: int) -> float:
    started = time.perf_counter()
    result = fn(i)
    if asyncio.iscoroutine(result):
        await result
    return time.perf_counter() - started


async def run(ctx: Context) -> None:
    rounds = 2 if ctx.quick else ctx.args.rounds
    calls = 3 if ctx.quick else 10
    async with va.Repository(
        REGION, BUCKET, dynamodb_table_name=TABLE, endpoint_url=ctx.direct, session=ctx.session
    ) as repo:
        for name in NAMES.values():
            await repo.put_artifact(name, f"{name} v1".encode())
            await repo.publish_artifact_version(name)
            await repo.put_alias(name, "prod", 1)

    # one counted pass through the proxy, its added latency off
    requests: dict[str, dict[str, dict[str, int]]] = {}
    saved_rtt = ctx.proxy.rtt_ms
    ctx.proxy.set_rtt(0)
    try:
        for peer in PEERS:
            async with open_peer(ctx, peer, ctx.proxied) as ops:
                await timed(ops["get_alias"], 0)  # connections and models warm
                for op in OPS:
                    ctx.proxy.reset()
                    await timed(ops[op], 0)
                    requests.setdefault(peer, {})[op] = ctx.proxy.stats()["ops"]
    finally:
        ctx.proxy.set_rtt(saved_rtt)

    samples: dict[str, dict[str, list[float]]] = {p: {op: [] for op in OPS} for p in PEERS}
    opened = [open_peer(ctx, peer, ctx.direct) for peer in PEERS]
    peers = [await cm.__aenter__() for cm in opened]
    try:
        for ops in peers:  # warm-up: connections, service models, first-call imports
            for op in OPS:
                await timed(ops[op], 0)
        i = 0
        for _round in range(rounds):
            for peer, ops in zip(PEERS, peers, strict=False):
                for op in OPS:
                    for _ in range(calls):
                        i += 1
                        samples[peer][op].append(await timed(ops[op], i))
    finally:
        for cm in reversed(opened):
            await cm.__aexit__(None, None, None)

    rows: list[list[Any]] = []
    for op in OPS:
        ours = median(samples["versioned_async"][op])
        bare = median(samples["bare aiobotocore"][op])
        up = median(samples["versioned 1.0.1"][op])

        def count(peer: str, op: str = op) -> str:
            got = requests.get(peer, {}).get(op, {})
            return f"{sum(got.values())}"

        rows.append(
            [
                op,
                ours * 1000,
                bare * 1000,
                f"{ours / bare:.2f}x",
                "<= 1.2x",
                verdict(ours / bare <= 1.2),
                up * 1000,
                f"{up / ours:.2f}x",
                f"{count('versioned_async')} / {count('bare aiobotocore')} / "
                f"{count('versioned 1.0.1')}",
            ]
        )
    detail = [
        f"{peer} {op}: " + ", ".join(f"{k} {v}" for k, v in sorted(requests[peer][op].items()))
        for peer in PEERS
        for op in OPS
    ]
    ctx.report(
        KEY,
        f"2. Per-operation latency, no added latency (straight to moto), "
        f"median of {rounds * calls} calls",
        [
            "operation",
            "ours ms",
            "bare aiobotocore ms",
            "ours / bare",
            "target",
            "result",
            "versioned 1.0.1 ms",
            "upstream / ours",
            "requests ours / bare / upstream",
        ],
        rows,
        notes=[
            "ours: Repository without cache; bare: the same requests, in the same order and "
            "concurrency, on clients configured alike; upstream: one bsm for all calls.",
            "requests per call, counted at the proxy: " + "; ".join(detail),
        ],
        data={"samples_s": samples, "requests": requests},
    )
