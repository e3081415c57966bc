"""Scenario 5: batch routing, choose_version for N routing keys (1,000,000).

Measures ``Alias.choose_version`` in a loop, then prototypes batch helpers
here (the library is not changed) that give the same answer for every key
(checked) and reports what each achieves:

- ``prefix copy``: hash ``name\\0alias\\0`` once, ``copy()`` and ``update(key)``
  per key;
- ``concat``: ``sha256(prefix + key)`` per key, in a comprehension, with the
  modulo and comparison inlined;
- ``concat, builtin sha256``: the same with CPython's own sha256 instead of
  OpenSSL's (same digest, less set-up per call);
- ``builtin sha256, N processes``: that split across the cores, answers sent
  back as one byte per key.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from typing import Any

from benchmarks.harness import LAYOUT, median, verdict
from benchmarks.peers import Context
from versioned_async import _codec
from versioned_async._policy import routing as _routing
from versioned_async.models import Alias

KEY = "routing"
TARGET = 1_000_000
NAME, ALIAS = "ranker", "prod"


def make_alias(weight: int = 10) -> Alias:
    """A split alias, built with the library's own codec (no request needed)."""
    record = _codec.AliasItem(
        pk=f"__{NAME}-alias",
        sk=ALIAS,
        update_at=datetime.now(timezone.utc),
        version="000001",
        secondary_version="000002",
        secondary_version_weight=weight,
    )
    return _codec.item_to_alias(record, LAYOUT)


def route_prefix_copy(
    name: str, alias: str, keys: Sequence[str], primary: str, secondary: str, weight: int
) -> list[str]:
    base = hashlib.sha256(b"%s\x00%s\x00" % (name.encode(), alias.encode()))
    out = []
    append = out.append
    from_bytes = int.from_bytes
    for key in keys:
        h = base.copy()
        h.update(key.encode())
        append(secondary if from_bytes(h.digest()[:8], "big") % 100 < weight else primary)
    return out


def route_concat(
    name: str, alias: str, keys: Sequence[str], primary: str, secondary: str, weight: int
) -> list[str]:
    prefix = b"%s\x00%s\x00" % (name.encode(), alias.encode())
    sha256 = hashlib.sha256
    from_bytes = int.from_bytes
    return [
        secondary
        if from_bytes(sha256(prefix + key.encode()).digest()[:8], "big") % 100 < weight
        else primary
        for key in keys
    ]


def _route_chunk(args: tuple[str, str, Sequence[str], int]) -> bytes:
    """Worker side: one byte per key, 1 for the secondary version (cheap to send back)."""
    name, alias, keys, weight = args
    return bytes(bucket < weight for bucket in _routing.buckets_for_keys(name, alias, keys))


def route_parallel(
    pool: ProcessPoolExecutor,
    workers: int,
    name: str,
    alias: str,
    keys: Sequence[str],
    primary: str,
    secondary: str,
    weight: int,
) -> list[str]:
    step = -(-len(keys) // workers)
    chunks = [(name, alias, keys[i : i + step], weight) for i in range(0, len(keys), step)]
    choice = (primary, secondary)
    out: list[str] = []
    for flags in pool.map(_route_chunk, chunks):
        out += [choice[f] for f in flags]
    return out


async def run(ctx: Context) -> None:
    count = 100_000 if ctx.quick else 1_000_000
    rounds = 3 if ctx.quick else 5
    alias = make_alias()
    keys = [f"customer-{i}" for i in range(count)]
    primary, secondary = alias.version, alias.secondary_version
    assert secondary is not None
    weight = alias.secondary_version_weight or 0
    workers = os.cpu_count() or 1

    check = [alias.choose_version(k) for k in keys[:20_000]]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_route_chunk, [(NAME, ALIAS, keys[:10], weight)] * workers))
        candidates: dict[str, Callable[[], list[str]]] = {
            "Alias.choose_version, a loop": lambda: [alias.choose_version(k) for k in keys],
            "batch prototype: prefix copy": lambda: route_prefix_copy(
                NAME, ALIAS, keys, primary, secondary, weight
            ),
            "batch prototype: concat": lambda: route_concat(
                NAME, ALIAS, keys, primary, secondary, weight
            ),
            "Alias.choose_versions (the library's batch)": lambda: alias.choose_versions(keys),
            f"batch prototype: builtin sha256, {workers} processes": lambda: route_parallel(
                pool, workers, NAME, ALIAS, keys, primary, secondary, weight
            ),
        }
        times: dict[str, list[float]] = {k: [] for k in candidates}
        shares: dict[str, float] = {}
        for _ in range(rounds):
            for label, fn in candidates.items():
                started = time.perf_counter()
                got = fn()
                times[label].append(time.perf_counter() - started)
                assert got[: len(check)] == check, f"{label} disagrees with choose_version"
                shares[label] = got.count(secondary) / len(got)
    base = median(times["Alias.choose_version, a loop"])
    rows: list[list[Any]] = []
    for label, samples in times.items():
        med = median(samples)
        rate = count / med
        rows.append(
            [
                label,
                med * 1000,
                f"{rate:,.0f}",
                med / count * 1e9,
                f"{base / med:.2f}x",
                f"{shares[label]:.4f}",
                f">= {TARGET:,}/s",
                verdict(rate >= TARGET),
            ]
        )
    ctx.report(
        KEY,
        f"5. Batch routing: choose_version for {count:,} keys (weight {weight}%), "
        f"median of {rounds}",
        [
            "how",
            "ms",
            "keys/s",
            "ns/key",
            "speed-up",
            "share to canary",
            "target",
            "result",
        ],
        rows,
        notes=[
            "every prototype's answer equals choose_version's for the first 20,000 keys "
            "(checked each round); keys are str, encoded per key as choose_version does.",
            "the process-pool row includes sending keys out and answers back "
            "(the pool is started before timing).",
        ],
        data={"times_s": times, "count": count},
    )
