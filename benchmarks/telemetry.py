"""Scenario 10: what OpenTelemetry costs a warm hit.

The same warm reads (1 KiB, cached, no request) three ways: with OpenTelemetry
not loaded (the default install, or an application that does not use it), with
the API loaded and no SDK set (a library that imports it, nobody configuring
it), and with an SDK recording every span (to an exporter that drops them, so
the figure is ours and the SDK's, not an exporter's). The first must be
measured before anything imports the API, so it is not interleaved with the
other two; run this scenario last.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import versioned_async as va
from benchmarks.harness import median, payload, seed_published
from benchmarks.peers import Context, aio_clients

KEY = "telemetry"
NAME = "otel-warm"


async def per_call(fn: Callable[[], Awaitable[object]], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - started) / calls


async def _measure(
    repos: dict[str, va.Repository], rounds: int, calls: int
) -> dict[str, dict[str, list[float]]]:
    """Per-call seconds of each read, by mode, in interleaved rounds."""
    got: dict[str, dict[str, list[float]]] = {
        mode: {"get_content": [], "get_alias_content": []} for mode in repos
    }
    for _ in range(rounds):
        for mode, repo in repos.items():
            got[mode]["get_content"].append(
                await per_call(lambda r=repo: r.get_content(NAME, 1), calls)
            )
            got[mode]["get_alias_content"].append(
                await per_call(lambda r=repo: r.get_alias_content(NAME, "prod", "key"), calls)
            )
    return got


def _recording_provider() -> Any:
    """An SDK TracerProvider that records every span and exports none."""
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415 - the optional SDK
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Discard(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Discard()))
    return provider


async def run(ctx: Context) -> None:
    calls = 300 if ctx.quick else 5000
    rounds = 3 if ctx.quick else 7
    async with aio_clients(ctx.session, ctx.direct) as (s3, ddb):
        await seed_published(s3, ddb, {NAME: payload(1 << 10, NAME)})
    cache = ctx.fresh_cache("telemetry-cache")
    loaded_before = "opentelemetry.trace" in sys.modules
    data: dict[str, Any] = {"calls": calls, "api_loaded_before": loaded_before}
    async with ctx.ours(cache=cache) as plain:
        await plain.put_alias(NAME, "prod", 1)
        await plain.get_alias_content(NAME, "prod", "key")  # fill
        await _measure({"warm-up": plain}, 1, calls)
        off = {} if loaded_before else await _measure({"off": plain}, rounds, calls)
        import opentelemetry.trace  # noqa: F401, PLC0415 - the API, no SDK set

        async with ctx.ours(cache=cache, tracer_provider=_recording_provider()) as traced:
            await _measure({"warm-up": traced}, 1, calls)
            on = await _measure({"api, no sdk": plain, "sdk, recording": traced}, rounds, calls)
    cache.close()
    got = {**off, **on}
    data["per_call_s"] = got
    base = {read: median(v) for read, v in got.get("off", {}).items()}
    rows: list[list[Any]] = []
    for mode, reads in got.items():
        row: list[Any] = [mode]
        for read in ("get_content", "get_alias_content"):
            value = median(reads[read])
            ratio = f"{value / base[read]:.2f}x" if base else "-"
            row += [value * 1e6, ratio]
        rows.append(row)
    ctx.report(
        KEY,
        f"10. OpenTelemetry on a warm hit (1 KiB), median of {rounds} rounds of {calls} calls",
        ["mode", "get_content us", "vs off", "get_alias_content us", "vs off"],
        rows,
        notes=[
            "off: the API not imported (measured first, not interleaved); api, no sdk: "
            "imported, no provider set; sdk, recording: a span per call, exported nowhere.",
        ],
        data=data,
    )
