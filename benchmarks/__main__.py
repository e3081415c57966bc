"""``python -m benchmarks``: run the scenarios, print tables, write results/latest.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from aiobotocore.session import AioSession

from benchmarks import (
    backends,
    big,
    dask_routing,
    per_op,
    restart,
    routing,
    scaling,
    startup,
    telemetry,
    transfer,
    verify_on_read,
    warm_hits,
)
from benchmarks.harness import (
    BUCKET,
    REGION,
    TABLE,
    MotoProcess,
    ProxyProcess,
    machine_info,
    markdown_table,
    median,
)
from benchmarks.peers import Context, Upstream, aio_clients
from versioned_async.testing import fake_aws_environment

SCENARIOS = {
    "startup": startup.run,
    "per-op": per_op.run,
    "warm-hit": warm_hits.run,
    "big": big.run,
    "routing": routing.run,
    "scaling": scaling.run,
    "backends": backends.run,
    "verify-on-read": verify_on_read.run,
    "restart": restart.run,
    "transfer": transfer.run,
    "dask": dask_routing.run,
    # last: it measures a warm hit before anything imports OpenTelemetry
    "telemetry": telemetry.run,
}
#: scenarios that bring their own server (SeaweedFS) and need no moto
OWN_SERVER = frozenset({"transfer"})
#: scenarios that need no server at all (they compute, they do not request)
NO_SERVER = frozenset({"dask"})
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="added round trip (20)")
    parser.add_argument("--quick", action="store_true", help="small sizes and counts: a smoke run")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable)",
    )
    parser.add_argument(
        "--big-size", type=parse_size, default=1 << 30, help="scenario 4's size (1GiB)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument(
        "--transfer-size", type=parse_size, default=256 << 20, help="scenario 10's size (256MiB)"
    )
    parser.add_argument(
        "--transfer-rounds", type=int, default=3, help="scenario 10's rounds, rotated (3)"
    )
    parser.add_argument(
        "--transfer-cap-mib-s",
        type=float,
        default=10.0,
        help="scenario 10's cap per connection, MiB/s each way (10)",
    )
    parser.add_argument(
        "--transfer-aggregate-mib-s",
        type=float,
        default=80.0,
        help="scenario 10's cap over all connections, MiB/s each way (80; 0: none)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="the JSON results file")
    return parser.parse_args(argv)


async def server_baseline(ctx: Context) -> None:
    """What one request costs moto itself: the floor under every number that follows."""
    async with aio_clients(ctx.session, ctx.direct) as (_s3, ddb):
        key = {"pk": {"S": "nothing"}, "sk": {"S": "LATEST"}}

        async def get() -> None:
            await ddb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)

        await get()
        sequential = []
        for _ in range(30 if ctx.quick else 200):
            started = time.perf_counter()
            await get()
            sequential.append(time.perf_counter() - started)
        n = 64 if ctx.quick else 640
        started = time.perf_counter()
        await asyncio.gather(*(get() for _ in range(n)))
        concurrent = n / (time.perf_counter() - started)
    ctx.report(
        "server",
        "0. The server itself: moto_server, straight (no proxy)",
        ["measure", "value"],
        [
            ["GetItem, sequential, median ms", median(sequential) * 1000],
            ["GetItem, 64-connection pool, requests/s", f"{concurrent:,.0f}"],
        ],
        notes=["every request in every scenario costs at least this on the server side."],
        data={"sequential_s": sequential, "concurrent_rps": concurrent},
    )


def run_settings(args: argparse.Namespace, selected: list[str], *, needs_moto: bool) -> str:
    """The header line: the settings the selected scenarios use, and only those (the
    transfer benchmark has its own size, rounds and caps; the RTT and the big size are
    the moto scenarios')."""
    parts = [f"rounds {args.rounds}", f"quick={args.quick}"]
    if needs_moto:
        parts[:0] = [f"RTT {args.rtt_ms:g} ms (latency proxy)"]
        parts.append(f"big size {args.big_size:,} B")
    line = ", ".join(parts)
    if "transfer" in selected:
        aggregate = args.transfer_aggregate_mib_s
        line += (
            f"; transfer: {args.transfer_size:,} B, {args.transfer_rounds} rounds, "
            f"{args.transfer_cap_mib_s:g} MiB/s per connection, "
            + (f"{aggregate:g} MiB/s in all" if aggregate else "no cap in all")
        )
    return line


async def amain(args: argparse.Namespace, workdir: Path) -> int:
    info = machine_info()
    print("# versioned_async benchmarks\n")
    print(
        markdown_table(
            ["cores", "python", "platform", "cpu", "aiobotocore", "moto"],
            [
                [
                    info["cores"],
                    f"{info['implementation']} {info['python']}",
                    info["platform"],
                    info["processor"],
                    info["aiobotocore"],
                    info["moto"],
                ]
            ],
        )
    )
    selected = args.only or list(SCENARIOS)
    needs_moto = not (OWN_SERVER | NO_SERVER).issuperset(selected)
    print(f"\n{run_settings(args, selected, needs_moto=needs_moto)}\n", flush=True)
    results: dict[str, Any] = {"machine": info, "options": {}, "scenarios": {}}
    results["options"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    moto = MotoProcess(workdir / "moto.log")
    proxy: ProxyProcess | None = None
    failures: list[str] = []
    started = time.monotonic()
    try:
        if needs_moto:
            moto.start()
        proxy = ProxyProcess(moto.port, args.rtt_ms)
        if needs_moto:
            proxy.start()
        ctx = Context(
            args=args,
            moto=moto,
            proxy=proxy,
            workdir=workdir,
            session=AioSession(),
            upstream=Upstream(share_loader=True),
            results=results["scenarios"],
        )
        import versioned_async as va  # noqa: PLC0415

        if needs_moto:
            async with va.Repository(
                REGION, BUCKET, dynamodb_table_name=TABLE, endpoint_url=moto.endpoint_url
            ) as repo:
                await repo.bootstrap()
            await server_baseline(ctx)
        for name in selected:
            began = time.monotonic()
            try:
                await SCENARIOS[name](ctx)
            except Exception as err:  # report it, run the others, exit non-zero
                failures.append(name)
                traceback.print_exc()
                ctx.note(name, f"FAILED: {type(err).__name__}: {err}")
            results["scenarios"].setdefault(name, {})["seconds"] = time.monotonic() - began
            print(f"({name}: {time.monotonic() - began:.1f} s)", flush=True)
    finally:
        if proxy is not None:
            proxy.stop()
        moto.stop()
    results["seconds"] = time.monotonic() - started
    results["failures"] = failures
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"\nTotal {results['seconds']:.0f} s; results written to {args.output}")
    if failures:
        print(f"FAILED scenarios: {', '.join(failures)}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update(fake_aws_environment())
    os.environ.pop("AWS_ENDPOINT_URL", None)
    logging.getLogger("versioned_async").setLevel(logging.ERROR)
    workdir = Path(tempfile.mkdtemp(prefix="va-bench-"))
    try:
        return asyncio.run(amain(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
