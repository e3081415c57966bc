"""Scenario 9: a restarted service on its filled cache, as issue 16 measures it.

40 aliased artifacts of 256 KiB are fetched once into a cache directory. Then,
in alternated fresh processes: a new ``Repository`` + ``LocalCache`` on that
directory fetching all 40 with one ``gather(get_alias_content)`` (the worker's
``warm-start --fetch-only``), and a plain read of the same 40 cached files
keeping every body (``read-files``). Each side runs alone in its own process:
inside one long-lived process the allocator's state swings either figure by
2-5x. Target: the fetch at most 1.5x the read (aim 1.2x), no request.
"""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks.harness import (
    median,
    payload,
    run_worker,
    seed_published,
    verdict,
    write_cached_file_lists,
)
from benchmarks.peers import Context, aio_clients

KEY = "restart"
COUNT = 40
SIZE = 256 << 10
TARGET = 1.5
AIM = 1.2


async def run(ctx: Context) -> None:
    rounds = 2 if ctx.quick else ctx.args.rounds
    names = [f"restart-{i:02d}" for i in range(COUNT)]
    contents = {n: payload(SIZE, n) for n in names}
    async with aio_clients(ctx.session, ctx.direct) as (s3, ddb):
        await seed_published(s3, ddb, contents)
    cache = ctx.fresh_cache("restart-cache")
    async with ctx.ours(cache=cache) as repo:  # the same endpoint as the workers: a hit
        await asyncio.gather(*(repo.get_alias_content(n, "prod") for n in names))
    names_file, files_file = await write_cached_file_lists(cache, contents, ctx.workdir, KEY)
    cache.close()
    expected = SIZE * COUNT
    fetches: list[dict[str, Any]] = []
    reads: list[dict[str, Any]] = []
    for round_no in range(rounds):  # alternated, the first side alternating too
        sides = ("fetch", "read") if round_no % 2 == 0 else ("read", "fetch")
        for side in sides:
            if side == "read":
                got = await asyncio.to_thread(
                    run_worker, ["read-files", "--files", str(files_file)], 120
                )
                reads.append(got)
            else:
                ctx.proxy.reset()
                got = await asyncio.to_thread(
                    run_worker,
                    [
                        "warm-start",
                        "--fetch-only",
                        "--endpoint",
                        ctx.proxied,
                        "--cache",
                        str(ctx.workdir / "restart-cache"),
                        "--names",
                        str(names_file),
                        "--files",
                        str(files_file),
                    ],
                    120,
                )
                got["requests"] = ctx.proxy.stats()["requests"]
                fetches.append(got)
            assert got["bytes"] == expected, got
    fetch = median([r["fetch_s"] for r in fetches])
    read = median([r["read_kept_s"] for r in reads])
    ratio = fetch / read
    requests = max(r["requests"] for r in fetches)
    rows = [
        ["plain read of the 40 files, bodies kept", read * 1000, "1.00x", "", "", "-"],
        [
            "gather(get_alias_content), fresh Repository + LocalCache",
            fetch * 1000,
            f"{ratio:.2f}x",
            requests,
            f"<= {TARGET}x (aim {AIM}x), 0 requests",
            verdict(ratio <= TARGET and requests == 0),
        ],
    ]
    ctx.report(
        KEY,
        f"9. Restart on a filled cache: {COUNT} artifacts of {SIZE >> 10} KiB, "
        f"median of {rounds} alternated fresh processes each",
        ["what", "median ms", "vs read", "requests (proxy)", "target", "result"],
        rows,
        notes=[
            "each figure is timed inside its own fresh process (imports, clients and the "
            "cache's opening not timed); the two kinds of process alternate.",
            "ranges: fetch "
            f"{min(r['fetch_s'] for r in fetches) * 1000:.1f}-"
            f"{max(r['fetch_s'] for r in fetches) * 1000:.1f} ms, read "
            f"{min(r['read_kept_s'] for r in reads) * 1000:.1f}-"
            f"{max(r['read_kept_s'] for r in reads) * 1000:.1f} ms.",
        ],
        data={"fetches": fetches, "reads": reads, "ratio": ratio},
    )
