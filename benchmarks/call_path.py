"""How far one cached ``get_alias_content`` travels through the package: ``python -m
benchmarks.call_path``.

Issue 16's measure of the read path's shape. It starts ``moto_server`` on
127.0.0.1 and, in each repository layout, publishes versions 1 and 2 of one
artifact (256 KiB each) and an alias ``prod`` splitting traffic between them
50/50, then traces one ``get_alias_content`` (no routing key) with
:func:`sys.setprofile`:

- **cold**: a fresh ``LocalCache`` in a new directory, the repository just opened;
- **warm**: the same call again, same process, within the TTL;
- **warm, new process**: a fresh ``Repository`` and ``LocalCache`` on the filled
  cache directory, in a subprocess.

The global ``random`` is seeded just before each traced call, so the split picks
the same version every time. Only ``call`` events of Python functions whose code
file lies inside the ``versioned_async`` package, on the event loop's thread,
are kept: the profiler is per thread, so what ``asyncio.to_thread`` runs is not
seen, nor are attrs' generated ``__init__`` methods (their code is in no file).
CPython reports both the start of a function and the resumption of a suspended
coroutine as ``call``; each event records which it is.

Three counts of the same trace (see :func:`count_path` and :func:`first_calls`):

- ``first_calls`` (the headline, and what issue 16's "78 package functions in
  11 modules with 36 switches" counts): each distinct function once, at its
  first call, in order; a switch is two neighbours in that list from different
  modules;
- ``starts``: every start of a package function, in order;
- ``events``: every profiler ``call`` event, resumptions included.

Prints markdown tables and writes ``benchmarks/results/call_path.json`` (every
event in order, with the module of its caller, for diffing two commits).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "call_path.json"
#: the layouts measured: Repository (S3 + DynamoDB) and S3OnlyRepository
BACKENDS = ("dynamodb", "s3")
#: the cases measured, in order
CASES = ("cold", "warm", "warm-new-process")
#: the counts, headline first
DEFINITIONS = ("first_calls", "starts", "events")
NAME = "callpath"
ALIAS = "prod"
SIZE = 256 << 10
TTL = 3600.0
#: seeds ``random`` before each traced call: the 50/50 split picks the same version each time
SEED = 16
#: issue 16's figures for one cold cached get_alias_content (DynamoDB layout, commit c66c291)
ISSUE_16 = {"functions": 78, "modules": 11, "switches": 36}


# -- counting (pure) -------------------------------------------------------------------


@dataclass(frozen=True)
class PathCount:
    """The shape of one sequence of calls through the package."""

    #: events counted (the length of the sequence)
    calls: int
    #: distinct (module, function) pairs
    functions: int
    #: distinct modules
    modules: int
    #: neighbouring events whose modules differ
    switches: int
    #: the modules in order, each run of one module compressed to [module, run length]
    visits: list[tuple[str, int]] = field(default_factory=list)

    def route(self) -> str:
        """``a x3 > b > a x2``: the visits on one line."""
        return " > ".join(m if n == 1 else f"{m} x{n}" for m, n in self.visits)


def count_path(events: Iterable[tuple[str, str]]) -> PathCount:
    """Count a sequence of ``(module, function)`` call events.

    ``switches`` counts each pair of neighbouring events whose modules differ, so
    ``a, b, a`` is two switches and ``switches == len(visits) - 1`` (0 when empty).
    """
    sequence = list(events)
    visits: list[tuple[str, int]] = []
    for module, _function in sequence:
        if visits and visits[-1][0] == module:
            visits[-1] = (module, visits[-1][1] + 1)
        else:
            visits.append((module, 1))
    return PathCount(
        calls=len(sequence),
        functions=len(set(sequence)),
        modules=len({module for module, _ in sequence}),
        switches=max(len(visits) - 1, 0),
        visits=visits,
    )


def first_calls(events: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each distinct ``(module, function)`` once, where it first occurs.

    ``count_path(first_calls(events))`` is issue 16's count: its switches are
    between the modules of functions in the order they are first called.
    """
    return list(dict.fromkeys(events))


def by_package(events: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each event's module replaced by its top-level part: ``(_aws.s3, f)`` ->
    ``(_aws, s3.f)`` (the function keeps its module, so two stay two).

    The issue's count was taken when ``_aws``, ``cache`` and ``_codec`` were one
    module each; the redesign made each a package of one module per idea. Counted
    by package, a switch is a step from one layer of the layout to another.
    """
    return [(module.split(".", 1)[0], f"{module}.{function}") for module, function in events]


# -- tracing (thin) --------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One profiler ``call`` event in the package."""

    module: str
    function: str
    #: True when a suspended coroutine or generator frame was re-entered
    resumed: bool
    #: the module of the calling (or resuming) frame when it is in the package, else None
    caller: str | None = None


def package_dir() -> Path:
    import versioned_async  # noqa: PLC0415 - the package measured, imported late on purpose

    return Path(versioned_async.__file__).resolve().parent


def module_of(filename: str, root: str) -> str | None:
    """``_base`` for ``<root>_base.py`` (``root`` ends with a separator); None outside it."""
    if not filename.startswith(root):
        return None
    dotted = filename[len(root) :].removesuffix(".py").replace(os.sep, ".")
    return dotted if dotted == "__init__" else dotted.removesuffix(".__init__")


@contextmanager
def trace_package_calls() -> Iterator[list[Event]]:
    """Record the package's ``call`` events on this thread while the block runs."""
    root = str(package_dir()) + os.sep
    events: list[Event] = []
    #: the frames entered so far, held so that no other frame reuses an id meanwhile
    entered: dict[int, FrameType] = {}
    modules: dict[str, str | None] = {}

    def module(filename: str) -> str | None:
        if filename not in modules:
            modules[filename] = module_of(filename, root)
        return modules[filename]

    def profile(frame: FrameType, event: str, _arg: object) -> None:
        if event != "call":
            return
        where = module(frame.f_code.co_filename)
        if where is None:
            return
        resumed = id(frame) in entered
        entered[id(frame)] = frame
        back = frame.f_back
        caller = None if back is None else module(back.f_code.co_filename)
        code = frame.f_code
        # co_qualname from 3.11 (Class.method); 3.10 has the bare name only
        events.append(Event(where, getattr(code, "co_qualname", code.co_name), resumed, caller))

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield events
    finally:
        sys.setprofile(previous)
        entered.clear()


async def traced(call: Callable[[], Awaitable[bytes]]) -> tuple[list[Event], int]:
    """Run ``call`` under the tracer: its events and the size of what it returned."""
    random.seed(SEED)
    with trace_package_calls() as events:
        body = await call()
    return events, len(body)


def summarize(events: Sequence[Event]) -> dict[str, Any]:
    """The three counts of one traced call, its functions and its events."""
    every = [(e.module, e.function) for e in events]
    starts = [(e.module, e.function) for e in events if not e.resumed]
    first = first_calls(starts)
    return {
        "first_calls": asdict(count_path(first)),
        "first_calls_by_package": asdict(count_path(first_calls(by_package(first)))),
        "starts": asdict(count_path(starts)),
        "events": asdict(count_path(every)),
        "resumptions": len(every) - len(starts),
        #: the functions in the order they were first called
        "functions": [f"{m}.{f}" for m, f in first],
        #: every event in order: [module, function, resumed, caller's module or null]
        "sequence": [[e.module, e.function, e.resumed, e.caller] for e in events],
    }


# -- the scenario ----------------------------------------------------------------------


def make_repo(backend: str, endpoint: str, cache: Any) -> Any:
    import versioned_async as va  # noqa: PLC0415
    from benchmarks.harness import REGION  # noqa: PLC0415

    if backend == "dynamodb":
        return va.Repository(
            REGION,
            NAME,
            dynamodb_table_name=NAME,
            endpoint_url=endpoint,
            cache=cache,
            actor="benchmarks",  # no STS call for the history's actor
        )
    return va.S3OnlyRepository(REGION, f"{NAME}-s3-only", endpoint_url=endpoint, cache=cache)


async def publish(backend: str, endpoint: str) -> None:
    """Versions 1 and 2, and alias ``prod`` splitting 50/50 between them: issue 16's path."""
    from benchmarks.harness import payload  # noqa: PLC0415

    async with make_repo(backend, endpoint, None) as repo:
        await repo.bootstrap()
        versions = []
        for number in (1, 2):
            await repo.put_artifact(NAME, payload(SIZE, f"{NAME}-{number}"))
            versions.append((await repo.publish_artifact_version(NAME)).version)
        await repo.put_alias(NAME, ALIAS, versions[0], versions[1], 50)


async def traced_fetches(
    backend: str, endpoint: str, cache_dir: Path, *, again: bool
) -> dict[str, list[Event]]:
    """A fresh Repository + LocalCache on ``cache_dir``: the first fetch, and a second."""
    import versioned_async as va  # noqa: PLC0415

    got: dict[str, list[Event]] = {}
    cache = va.LocalCache(cache_dir, ttl=TTL)
    try:
        async with make_repo(backend, endpoint, cache) as repo:

            async def fetch() -> bytes:
                return bytes(await repo.get_alias_content(NAME, ALIAS))

            got["first"], size = await traced(fetch)
            assert size == SIZE, size
            if again:
                got["again"], size = await traced(fetch)
                assert size == SIZE, size
            downloads = cache.stats().downloads
    finally:
        cache.close()
    # cold (then warm: the seed picks the same version) downloads once; a new process, never
    assert downloads == (1 if again else 0), downloads
    return got


def child(backend: str, endpoint: str, cache_dir: Path) -> None:
    """In a new process: the first fetch on the filled cache; prints its events as JSON."""
    got = asyncio.run(traced_fetches(backend, endpoint, cache_dir, again=False))
    sys.stdout.write(json.dumps([asdict(e) for e in got["first"]]) + "\n")


def run_child(backend: str, endpoint: str, cache_dir: Path) -> list[Event]:
    from benchmarks.harness import ROOT, bench_env  # noqa: PLC0415

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.call_path",
            "--child",
            backend,
            "--endpoint",
            endpoint,
            "--cache",
            str(cache_dir),
        ],
        capture_output=True,
        text=True,
        env=bench_env(),
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return [Event(**e) for e in json.loads(proc.stdout.strip().splitlines()[-1])]


async def measure(backend: str, endpoint: str, workdir: Path) -> dict[str, list[Event]]:
    await publish(backend, endpoint)
    cache_dir = workdir / f"cache-{backend}"
    got = await traced_fetches(backend, endpoint, cache_dir, again=True)
    return {
        "cold": got["first"],
        "warm": got["again"],
        "warm-new-process": await asyncio.to_thread(run_child, backend, endpoint, cache_dir),
    }


def tables(results: dict[str, Any]) -> str:
    from benchmarks.harness import markdown_table  # noqa: PLC0415

    headline: list[list[Any]] = []
    others: list[list[Any]] = []
    layered: list[list[Any]] = []
    for backend in BACKENDS:
        for case in CASES:
            got = results["layouts"][backend][case]
            first = PathCount(**got["first_calls"])
            packages = PathCount(**got["first_calls_by_package"])
            starts, every = got["starts"], got["events"]
            headline.append(
                [backend, case, first.functions, first.modules, first.switches, first.route()]
            )
            layered.append([backend, case, packages.modules, packages.switches, packages.route()])
            others.append(
                [
                    backend,
                    case,
                    starts["calls"],
                    starts["switches"],
                    every["calls"],
                    every["switches"],
                    got["resumptions"],
                ]
            )
    issue = results["issue_16_cold_dynamodb"]
    return "\n\n".join(
        [
            "### get_alias_content's call path: distinct functions in order of first call "
            "(issue 16's count)",
            markdown_table(
                ["layout", "case", "functions", "modules", "switches", "modules visited"],
                headline,
            ),
            f"issue 16 (cold, DynamoDB, at c66c291): {issue['functions']} functions, "
            f"{issue['modules']} modules, {issue['switches']} switches.",
            "### The same first calls, counted by package (one layer of the layout each)",
            markdown_table(["layout", "case", "packages", "switches", "packages visited"], layered),
            "### The same traces: every start, every call event",
            markdown_table(
                [
                    "layout",
                    "case",
                    "starts",
                    "switches (starts)",
                    "call events",
                    "switches (events)",
                    "resumptions",
                ],
                others,
            ),
        ]
    )


async def amain(output: Path) -> dict[str, Any]:
    from benchmarks.harness import MotoProcess, machine_info  # noqa: PLC0415

    results: dict[str, Any] = {
        "machine": machine_info(),
        "issue_16_cold_dynamodb": ISSUE_16,
        "definitions": {
            "first_calls": "each distinct package function once, at its first call, in "
            "order; switches: neighbours from different modules (issue 16's count)",
            "starts": "every start of a package function (a frame not seen before), in order",
            "events": "every profiler 'call' event in the package, coroutine resumptions included",
            "functions": "distinct (module, qualified name) pairs",
            "scope": "the event loop's thread only; code files inside versioned_async/",
            "scenario": "alias split 50/50 between versions 1 and 2, no routing key, "
            f"random.seed({SEED}) before each traced call",
        },
        "layouts": {},
    }
    with tempfile.TemporaryDirectory(prefix="va-call-path-") as tmp:
        workdir = Path(tmp)
        moto = MotoProcess(workdir / "moto.log")
        try:
            moto.start()
            for backend in BACKENDS:
                measured = await measure(backend, moto.endpoint_url, workdir)
                results["layouts"][backend] = {c: summarize(e) for c, e in measured.items()}
        finally:
            moto.stop()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.call_path", description=__doc__)
    parser.add_argument("--output", type=Path, default=RESULTS, help="the JSON results file")
    parser.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from versioned_async.testing import fake_aws_environment  # noqa: PLC0415

    os.environ.update(fake_aws_environment())
    os.environ.pop("AWS_ENDPOINT_URL", None)
    logging.getLogger("versioned_async").setLevel(logging.ERROR)
    if args.child:
        child(args.child, args.endpoint, args.cache)
        return 0
    started = time.monotonic()
    results = asyncio.run(amain(args.output))
    print(tables(results))
    print(f"\n{time.monotonic() - started:.1f} s; written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
