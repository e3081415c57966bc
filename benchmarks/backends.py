"""Scenario 7: the two backends side by side, S3 + DynamoDB and S3 only.

``Repository`` (content in S3, records in DynamoDB) next to ``S3OnlyRepository``
(everything in one bucket, the layout of ``versioned``'s S3-only backend), on one
moto server in one run:

- set-up: what ``bootstrap()`` creates and the requests it makes;
- ``list_artifact_versions`` of artifacts with 10, 50 and 200 published versions;
- get_artifact_version, put_artifact (small, new content), publish_artifact_version,
  put_alias, get_alias, get_content and resolve_alias, all without a cache.

Timed calls go straight to moto (no added latency). The backends are interleaved:
in each round, each backend runs every listing and the sequence of operations in
turn, and the order of the backends flips every time, so the noise of a shared
machine hits both. A first pass through the proxy (its RTT set to 0) counts the
requests of each call: that figure is deterministic, the times are medians.

Versions 2..N of the listed artifacts are server-side copies of version 1 (the
object, and for ``Repository`` its item too), which is what a publish leaves
behind; publishing 520 versions through the API would take a minute and a half.

It is the scenario ``backends`` of ``python -m benchmarks``. On its own::

    python -m benchmarks.backends [--quick] [--rounds 7] [--output FILE]

is ``python -m benchmarks --only backends`` with 7 rounds, writing
``benchmarks/results/backends.json`` instead of ``latest.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiobotocore.session import AioSession

import versioned_async as va
from benchmarks.harness import REGION, median, payload
from benchmarks.peers import Context, aio_clients
from versioned_async import _layout

KEY = "backends"
RESULTS = Path(__file__).resolve().parent / "results" / "backends.json"

DYNAMODB, S3_ONLY = "DynamoDB", "S3-only"
BACKENDS = (DYNAMODB, S3_ONLY)
#: each backend gets its own bucket (and table), which its bootstrap() creates
BUCKETS = {DYNAMODB: "bench-backends-ddb", S3_ONLY: "bench-backends-s3"}
TABLE = "bench-backends"
CREATES = {
    DYNAMODB: "a bucket and an on-demand DynamoDB table (pk, sk)",
    S3_ONLY: "a bucket",
}

OPS = (
    "put_artifact",
    "publish_artifact_version",
    "put_alias",
    "get_alias",
    "resolve_alias",
    "get_artifact_version",
    "get_content",
)
#: the artifact the operations work on; it has versions 1 and 2 and an alias "prod"
OPS_NAME = "ops"

Repo = va.Repository | va.S3OnlyRepository
Op = Callable[[int], Awaitable[Any]]


class CallCounter:
    """Counts the HTTP attempts of every client of one session, by API operation.

    A ``before-send`` hook runs once per attempt (retries included), as the
    proxy counts; it names the operation, where the proxy sees only an S3 method.
    """

    def __init__(self, session: AioSession) -> None:
        self.ops: Counter[str] = Counter()
        session.register("before-send", self._sent)

    def _sent(self, event_name: str, **_kwargs: Any) -> None:
        self.ops[event_name.rsplit(".", 1)[-1]] += 1

    def take(self) -> dict[str, int]:
        got = dict(self.ops)
        self.ops.clear()
        return got


def open_repo(backend: str, endpoint: str, session: AioSession) -> Repo:
    if backend == DYNAMODB:
        return va.Repository(
            REGION,
            BUCKETS[DYNAMODB],
            dynamodb_table_name=TABLE,
            endpoint_url=endpoint,
            session=session,
        )
    return va.S3OnlyRepository(REGION, BUCKETS[S3_ONLY], endpoint_url=endpoint, session=session)


@contextlib.asynccontextmanager
async def open_repos(endpoint: str, session: AioSession) -> AsyncIterator[dict[str, Repo]]:
    async with contextlib.AsyncExitStack() as stack:
        yield {
            b: await stack.enter_async_context(open_repo(b, endpoint, session)) for b in BACKENDS
        }


def operations(backend: str, repo: Repo, sizes: tuple[int, ...]) -> dict[str, Op]:
    """Each measured call; ``i`` numbers the calls, so put content is always new."""

    def body(i: int) -> bytes:
        return f"{backend} content {i} {time.time_ns()}".encode() * 32  # ~1.3 KB

    moves = itertools.count()  # put_alias alternates 1, 2: every call moves the alias

    def lister(name: str) -> Op:
        return lambda i: repo.list_artifact_versions(name)

    ops: dict[str, Op] = {f"list {n}": lister(f"list-{n}") for n in sizes}
    ops.update(
        {
            "put_artifact": lambda i: repo.put_artifact(OPS_NAME, body(i)),
            "publish_artifact_version": lambda i: repo.publish_artifact_version(OPS_NAME),
            "put_alias": lambda i: repo.put_alias(OPS_NAME, "prod", 1 + next(moves) % 2),
            "get_alias": lambda i: repo.get_alias(OPS_NAME, "prod"),
            "resolve_alias": lambda i: repo.resolve_alias(OPS_NAME, "prod"),
            "get_artifact_version": lambda i: repo.get_artifact_version(OPS_NAME, 1),
            "get_content": lambda i: repo.get_content(OPS_NAME, 1),
        }
    )
    return ops


async def seed(
    repos: dict[str, Repo], session: AioSession, endpoint: str, sizes: tuple[int, ...]
) -> None:
    """The operations' artifact through the API; the listed ones as copies of version 1."""
    async with aio_clients(session, endpoint) as (s3, ddb):
        semaphore = asyncio.Semaphore(16)

        async def copy(bucket: str, source: str, key: str) -> None:
            async with semaphore:
                await s3.copy_object(
                    Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": source}
                )

        async def write(items: list[dict[str, Any]]) -> None:
            requests = [{"PutRequest": {"Item": item}} for item in items]
            async with semaphore:
                while requests:
                    resp = await ddb.batch_write_item(RequestItems={TABLE: requests})
                    requests = resp.get("UnprocessedItems", {}).get(TABLE, [])

        for backend, repo in repos.items():
            for i in (1, 2):
                await repo.put_artifact(OPS_NAME, payload(1300, f"{backend} ops {i}"))
                await repo.publish_artifact_version(OPS_NAME)
            await repo.put_alias(OPS_NAME, "prod", 1)
            bucket = BUCKETS[backend]
            for n in sizes:
                name = f"list-{n}"
                await repo.put_artifact(name, payload(1300, f"{backend} {name}"))
                await repo.publish_artifact_version(name)
                first = _layout.encode_version(1)
                source = repo.layout.key(name, first)
                numbers = [_layout.encode_version(v) for v in range(2, n + 1)]
                jobs: list[Awaitable[None]] = [
                    copy(bucket, source, repo.layout.key(name, stored)) for stored in numbers
                ]
                if backend == DYNAMODB:
                    resp = await ddb.get_item(
                        TableName=TABLE,
                        Key={"pk": {"S": name}, "sk": {"S": first}},
                        ConsistentRead=True,
                    )
                    items = [{**resp["Item"], "sk": {"S": stored}} for stored in numbers]
                    jobs += [write(items[k : k + 25]) for k in range(0, len(items), 25)]
                await asyncio.gather(*jobs)
    for backend, repo in repos.items():
        for n in sizes:
            listed = await repo.list_artifact_versions(f"list-{n}")
            if len(listed) != n + 1:
                raise RuntimeError(f"{backend}: list-{n} has {len(listed)} versions, not {n + 1}")


async def timed(op: Op, i: int) -> float:
    started = time.perf_counter()
    await op(i)
    return time.perf_counter() - started


def describe(calls: dict[str, int]) -> str:
    """``202 (ListObjectsV2, 201 HeadObject)``."""
    parts = [op if n == 1 else f"{n} {op}" for op, n in sorted(calls.items())]
    return f"{sum(calls.values())} ({', '.join(parts)})"


def plan(quick: bool, rounds: int) -> tuple[int, int, tuple[int, ...]]:
    """Rounds, calls of each operation per round, and the listed artifacts' version counts."""
    return (2, 1, (3, 10, 30)) if quick else (rounds, 3, (10, 50, 200))


async def run(ctx: Context) -> None:
    rounds, calls, sizes = plan(ctx.quick, ctx.args.rounds)
    session = AioSession()  # its own, for the counting hook
    counter = CallCounter(session)
    requests: dict[str, dict[str, dict[str, Any]]] = {b: {} for b in BACKENDS}

    def counted(backend: str, what: str) -> None:
        named = counter.take()
        wire = ctx.proxy.stats()
        requests[backend][what] = {
            "requests": wire["requests"],
            "proxy": wire["ops"],
            "named": named,
        }
        ctx.proxy.reset()

    saved_rtt = ctx.proxy.rtt_ms
    ctx.proxy.set_rtt(0)
    try:
        # set-up and seeding through the proxy, its added latency off
        for backend in BACKENDS:
            async with open_repo(backend, ctx.proxied, session) as repo:
                counter.take()
                ctx.proxy.reset()
                await repo.bootstrap()
                counted(backend, "bootstrap")
        async with open_repos(ctx.proxied, session) as repos:
            await seed(repos, session, ctx.proxied, sizes)
            for backend, repo in repos.items():
                ops = operations(backend, repo, sizes)
                for op in ops.values():  # warm-up: connections, models, STS identity
                    await op(0)
                counter.take()
                ctx.proxy.reset()
                for name, op in ops.items():
                    await op(1)
                    counted(backend, name)
    finally:
        ctx.proxy.set_rtt(saved_rtt)

    samples: dict[str, dict[str, list[float]]] = {b: {} for b in BACKENDS}
    async with open_repos(ctx.direct, session) as repos:
        table = {b: operations(b, repo, sizes) for b, repo in repos.items()}
        for ops in table.values():  # warm-up of the direct connections
            for op in ops.values():
                await op(0)
        i = 0
        order = list(BACKENDS)
        for _round in range(rounds):
            for call in range(calls):
                for backend in order:
                    for name, op in table[backend].items():
                        if name.startswith("list ") and call:
                            continue  # one listing per backend and round
                        i += 1
                        samples[backend].setdefault(name, []).append(await timed(op, i))
                order.reverse()

    def med_ms(backend: str, what: str) -> float:
        return median(samples[backend][what]) * 1000

    def ratio(what: str) -> str:
        return f"{med_ms(S3_ONLY, what) / med_ms(DYNAMODB, what):.2f}x"

    def reqs(backend: str, what: str) -> str:
        return describe(requests[backend][what]["named"])

    mismatched = [
        f"{b} {what}: proxy {got['requests']}, client {sum(got['named'].values())}"
        for b in BACKENDS
        for what, got in requests[b].items()
        if got["requests"] != sum(got["named"].values())
    ]
    counting_note = (
        "requests: of one call, after a warm-up call, counted at the proxy (RTT 0) and "
        "named by the client's before-send hook; both counts agree."
        if not mismatched
        else "requests: the proxy and the client counted differently: " + "; ".join(mismatched)
    )

    ctx.report(
        KEY,
        "7a. Backends: set-up, bootstrap() on a fresh account",
        ["backend", "bootstrap creates", "requests"],
        [[b, CREATES[b], reqs(b, "bootstrap")] for b in BACKENDS],
        notes=["requests: of the one call, counted as below; moto's table is active at once."],
    )
    ctx.report(
        KEY,
        f"7b. Backends: list_artifact_versions, straight to moto, median of {rounds} "
        "interleaved rounds",
        [
            "published versions",
            "DynamoDB ms",
            "S3-only ms",
            "S3-only / DynamoDB",
            "requests DynamoDB",
            "requests S3-only",
        ],
        [
            [
                n,
                med_ms(DYNAMODB, f"list {n}"),
                med_ms(S3_ONLY, f"list {n}"),
                ratio(f"list {n}"),
                reqs(DYNAMODB, f"list {n}"),
                reqs(S3_ONLY, f"list {n}"),
            ]
            for n in sizes
        ],
        notes=[
            "each listing returns LATEST and the N published versions: the S3-only backend "
            "heads every one of them (16 at a time), since listings carry no user metadata.",
            "versions 2..N are server-side copies of version 1 (object, and item for DynamoDB).",
            counting_note,
        ],
    )
    ctx.report(
        KEY,
        f"7c. Backends: per operation, no cache, straight to moto, median of {rounds * calls} "
        "interleaved calls",
        [
            "operation",
            "DynamoDB ms",
            "S3-only ms",
            "S3-only / DynamoDB",
            "requests DynamoDB",
            "requests S3-only",
        ],
        [
            [
                op,
                med_ms(DYNAMODB, op),
                med_ms(S3_ONLY, op),
                ratio(op),
                reqs(DYNAMODB, op),
                reqs(S3_ONLY, op),
            ]
            for op in OPS
        ],
        notes=[
            "put_artifact puts new ~1.3 KB content; publish_artifact_version follows it; "
            "put_alias moves 'prod' between versions 1 and 2; get_content reads version 1.",
            "resolve_alias without a cache is get_alias.",
        ],
        data={
            "sizes": list(sizes),
            "rounds": rounds,
            "calls": calls,
            "samples_s": samples,
            "requests": requests,
        },
    )


# -- on its own ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks --only backends``, with this scenario's defaults.

    Rounds 7 and ``results/backends.json`` unless ``argv`` says otherwise (the
    last of a repeated option wins); every option of ``python -m benchmarks`` works.
    """
    from benchmarks.__main__ import main as run_scenarios  # noqa: PLC0415 - it imports us

    options = sys.argv[1:] if argv is None else argv
    defaults = ["--only", KEY, "--rounds", "7", "--output", str(RESULTS)]
    return run_scenarios([*defaults, *options])


if __name__ == "__main__":
    sys.exit(main())
