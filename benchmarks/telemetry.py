"""Scenario 12: what OpenTelemetry costs a warm hit.

The same warm reads (1 KiB, cached, no request) three ways, in interleaved
rounds: with OpenTelemetry not loaded (the default install, or an application
that does not use it), with the API loaded and no SDK set (a library imports
it, nobody configures it), and with an SDK recording every span (to an
exporter that drops them, so the figure is ours and the SDK's, not an
exporter's). versioned_async finds the API in ``sys.modules`` only, so "not
loaded" is measured by hiding its modules there during those rounds: exactly
what a process that never imported it sees. Each mode reads through a cache of
its own (a cache's metrics subscriber binds to the API at its first event).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
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


@contextlib.contextmanager
def _hidden(hide: bool) -> Iterator[None]:
    """OpenTelemetry's modules out of ``sys.modules`` (if ``hide``), put back after."""
    taken = {m: sys.modules.pop(m) for m in list(sys.modules) if hide and _is_otel(m)}
    try:
        yield
    finally:
        sys.modules.update(taken)


def _is_otel(module: str) -> bool:
    return module.split(".", maxsplit=1)[0] == "opentelemetry"


async def _measure(
    repos: dict[str, va.Repository], rounds: int, calls: int
) -> dict[str, dict[str, list[float]]]:
    """Per-call seconds of each read, by mode, in interleaved rounds."""
    got: dict[str, dict[str, list[float]]] = {
        mode: {"get_content": [], "get_alias_content": []} for mode in repos
    }
    for _ in range(rounds):
        for mode, repo in repos.items():
            with _hidden(mode == "off"):
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
    import opentelemetry.trace  # noqa: F401, PLC0415 - the API, no SDK set

    modes = {"off": None, "api, no sdk": None, "sdk, recording": _recording_provider()}
    data: dict[str, Any] = {"calls": calls}
    async with contextlib.AsyncExitStack() as stack:
        repos: dict[str, va.Repository] = {}
        for n, (mode, provider) in enumerate(modes.items()):
            cache = ctx.fresh_cache(f"telemetry-cache-{n}")
            stack.callback(cache.close)
            repo = await stack.enter_async_context(ctx.ours(cache=cache, tracer_provider=provider))
            if n == 0:
                await repo.put_alias(NAME, "prod", 1)
            repos[mode] = repo
        await _measure(repos, 1, calls)  # fill the caches, warm up
        got = await _measure(repos, rounds, calls)
    data["per_call_s"] = got
    base = {read: median(v) for read, v in got["off"].items()}
    rows: list[list[Any]] = []
    for mode, reads in got.items():
        row: list[Any] = [mode]
        for read in ("get_content", "get_alias_content"):
            value = median(reads[read])
            ratio = f"{value / base[read]:.2f}x"
            row += [value * 1e6, ratio]
        rows.append(row)
    ctx.report(
        KEY,
        f"12. OpenTelemetry on a warm hit (1 KiB), median of {rounds} rounds of {calls} calls",
        ["mode", "get_content us", "vs off", "get_alias_content us", "vs off"],
        rows,
        notes=[
            "off: the API not loaded (its modules hidden); api, no sdk: loaded, no "
            "provider set; sdk, recording: a span per call, exported nowhere.",
        ],
        data=data,
    )
