"""Load: many concurrent readers (in one process and in several), many concurrent writers.

Readers go through the counting proxy, so downloads are counted on the wire:
``GetObject`` requests per S3 key, each key mapped to the sha256 it holds.
Worker processes are told apart by their User-Agent (``user_agent_extra``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import attrs
import pytest

from tests.conftest import BUCKET, REGION, TABLE, RepoFactory, TableRepoFactory
from tests.proxy import CountingProxy, RequestRecord
from tests.seed import seed_dynamodb_layout
from versioned_async import Alias, LocalCache, Repository, exc

ARTIFACTS = 100
#: every CANARY_EVERY-th artifact's alias splits traffic between versions 1 and 2
CANARY_EVERY = 4
CANARY_WEIGHT = 30
PREFIX = "versioned-artifacts"


def body_of(name: str, version: str) -> bytes:
    return f"{name} version {version}: distinct content".encode()


def routing_key(n: int) -> str:
    return f"user-{n}"


@attrs.frozen
class Released:
    """100 artifacts, each with alias ``prod`` (some split), as the writer left them."""

    names: list[str]
    aliases: dict[str, Alias]
    #: S3 key -> sha256 of the content it holds
    sha_of_key: dict[str, str]

    def expected(self, name: str, key: str) -> bytes:
        return body_of(name, self.aliases[name].choose_version(key))


@pytest.fixture
async def released(make_repo: RepoFactory, s3: Any, dynamodb: Any) -> Released:
    """Published before the proxy starts (list it first), so its watchdog only times the
    test. Seeded straight into S3 and DynamoDB: these tests are about reading."""
    names = [f"art{i:03d}" for i in range(ARTIFACTS)]
    canaries = set(names[::CANARY_EVERY])
    async with make_repo() as writer:
        await writer.bootstrap()
        await seed_dynamodb_layout(
            s3,
            dynamodb,
            bucket=BUCKET,
            table=TABLE,
            artifacts={
                name: [body_of(name, v) for v in (["1", "2"] if name in canaries else ["1"])]
                for name in names
            },
            aliases={
                (name, "prod"): (1, 2, CANARY_WEIGHT) if name in canaries else (1, None, None)
                for name in names
            },
        )
        aliases = list(await asyncio.gather(*(writer.get_alias(name, "prod") for name in names)))
    sha_of_key = {
        f"{PREFIX}/{name}/{int(version):06d}": hashlib.sha256(body_of(name, version)).hexdigest()
        for name, alias in zip(names, aliases, strict=True)
        for version in filter(None, (alias.version, alias.secondary_version))
    }
    return Released(names, dict(zip(names, aliases, strict=True)), sha_of_key)


def object_key(record: RequestRecord) -> str:
    path = record.path.partition("?")[0]
    return unquote(path.removeprefix(f"/{BUCKET}/"))


def downloads(proxy: CountingProxy) -> list[RequestRecord]:
    return [r for r in proxy.requests if r.op == "GetObject"]


# -- one process, 1,000 concurrent readers ---------------------------------------------------


async def test_a_thousand_concurrent_alias_reads_download_each_sha256_at_most_once(
    released: Released, make_proxied_repo: RepoFactory, proxy: CountingProxy, tmp_path: Path
) -> None:
    cache = LocalCache(tmp_path / "cache")
    calls = [(released.names[n % ARTIFACTS], routing_key(n)) for n in range(1000)]
    # a generous pool and the library's default retries, not the fail-fast test settings
    async with make_proxied_repo(cache=cache, client_config=None, max_pool_connections=256) as repo:
        results = await asyncio.gather(
            *(repo.get_alias_content(name, "prod", routing_key=key) for name, key in calls),
            return_exceptions=True,
        )
    cache.close()

    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    wrong = [
        (n, k)
        for (n, k), body in zip(calls, results, strict=True)
        if body != released.expected(n, k)
    ]
    assert wrong == []

    per_sha = Counter(released.sha_of_key[object_key(r)] for r in downloads(proxy))
    assert max(per_sha.values()) == 1, per_sha.most_common(5)
    needed = {hashlib.sha256(released.expected(name, key)).hexdigest() for name, key in calls}
    assert set(per_sha) == needed  # each served sha256 was downloaded, exactly once
    assert cache.stats().downloads == len(needed)
    assert {r.status for r in proxy.requests} == {200}


# -- several processes sharing one cache directory ---------------------------------------------

WORKERS = 8

_WORKER = textwrap.dedent(
    """
    import asyncio, hashlib, json, logging, sys
    from aiobotocore.config import AioConfig
    from versioned_async import LocalCache, Repository

    async def main():
        directory, worker = sys.argv[1], sys.argv[2]
        logging.basicConfig(level=logging.WARNING)  # the cache's warnings, for a failure
        cache = LocalCache(directory)
        print("ready", flush=True)  # imported and opened: waiting for the endpoint and names
        endpoint, names = sys.stdin.readline().split()
        names = names.split(",")
        config = AioConfig(user_agent_extra=f"load-worker/{{worker}}")
        async with Repository("{region}", "{bucket}", dynamodb_table_name="{table}",
                              endpoint_url=endpoint, cache=cache, client_config=config) as repo:
            results = await asyncio.gather(
                *(repo.get_alias_content(n, "prod", routing_key=f"user-{{n}}") for n in names),
                return_exceptions=True,
            )
        cache.close()
        print(json.dumps({{
            "bodies": {{n: hashlib.sha256(r).hexdigest()
                       for n, r in zip(names, results) if isinstance(r, bytes)}},
            "errors": [repr(r) for r in results if not isinstance(r, bytes)],
            "downloads": cache.stats().downloads,
            "cache_errors": cache.stats().cache_errors,
        }}))

    asyncio.run(main())
    """
).format(region=REGION, bucket=BUCKET, table=TABLE)


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """WORKERS processes on one cache directory, started and ready (imports done) before
    the proxy and its watchdog start: list this fixture before ``proxy``."""
    directory = tmp_path / "shared"
    LocalCache(directory).close()  # created once, before the workers race to open it
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WORKER,
            str(directory),
            str(worker),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for worker in range(WORKERS)
    ]
    try:
        ready = [await p.stdout.readline() for p in procs if p.stdout is not None]
        assert ready == [b"ready\n"] * WORKERS, ready
        yield procs
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()


@attrs.frozen
class WorkerRun:
    summaries: list[dict[str, Any]]
    #: (worker, sha256) of every GetObject the proxy saw
    downloads: list[tuple[str, str]]
    #: what each worker logged (warnings: a cache that failed and was bypassed says so)
    logs: list[str]

    def warnings(self) -> str:
        return "\n".join(f"worker {w}: {log[-2000:]}" for w, log in enumerate(self.logs) if log)


async def run_workers(
    released: Released, proxy: CountingProxy, procs: list[asyncio.subprocess.Process]
) -> WorkerRun:
    """Tell every ready worker the endpoint and the names at once; collect what each read,
    and, from the proxy, what each downloaded."""
    go = f"{proxy.endpoint_url} {','.join(released.names)}\n".encode()
    outputs = await asyncio.gather(*(p.communicate(go) for p in procs))
    failures = [
        err.decode()[-3000:] for p, (_, err) in zip(procs, outputs, strict=True) if p.returncode
    ]
    assert failures == []
    summaries = [json.loads(out) for out, _ in outputs]
    seen = []
    for record in downloads(proxy):
        agent = record.headers.get("user-agent", "")
        worker = agent.partition("load-worker/")[2].split(" ")[0]
        seen.append((worker, released.sha_of_key[object_key(record)]))
    return WorkerRun(summaries, seen, [err.decode() for _, err in outputs])


def assert_every_worker_read_the_right_content(released: Released, run: WorkerRun) -> None:
    """...and through the cache: processes waiting on each other's writes is contention,
    not a failing cache; none of them may go around it (Database.degrade)."""
    errors = [summary["cache_errors"] for summary in run.summaries]
    assert errors == [0] * WORKERS, f"cache errors per worker: {errors}\n{run.warnings()}"
    expected = {
        name: hashlib.sha256(released.expected(name, f"user-{name}")).hexdigest()
        for name in released.names
    }
    for worker, summary in enumerate(run.summaries):
        assert summary["errors"] == [], f"worker {worker}"
        assert summary["bodies"] == expected, f"worker {worker} read wrong content"


async def test_processes_sharing_a_cache_directory_download_each_sha256_once_each(
    released: Released, workers: list[asyncio.subprocess.Process], proxy: CountingProxy
) -> None:
    run = await run_workers(released, proxy, workers)
    assert_every_worker_read_the_right_content(released, run)
    assert all(worker.isdigit() for worker, _ in run.downloads), "a download had no worker tag"
    per_worker = Counter(run.downloads)
    assert max(per_worker.values()) == 1, per_worker.most_common(5)
    for worker, summary in enumerate(run.summaries):
        assert summary["downloads"] == sum(1 for w, _ in run.downloads if w == str(worker))
    distinct = len({sha for _, sha in run.downloads})
    print(
        f"\n{WORKERS} processes, one cache directory: {len(run.downloads)} downloads "
        f"of {distinct} distinct sha256 ({len(run.downloads) / distinct:.2f} per sha256)"
    )


async def test_processes_sharing_a_cache_directory_download_each_sha256_once_in_all(
    released: Released, workers: list[asyncio.subprocess.Process], proxy: CountingProxy
) -> None:
    """One download per sha256 per *directory*: processes must not race each other to
    fetch what another is already fetching (a cross-process lease)."""
    run = await run_workers(released, proxy, workers)
    assert_every_worker_read_the_right_content(released, run)
    per_sha = Counter(sha for _, sha in run.downloads)
    assert max(per_sha.values()) == 1, (
        f"{len(run.downloads)} downloads of {len(per_sha)} distinct sha256 by {WORKERS} "
        f"processes sharing one directory; (downloads of a sha256, how many sha256): "
        f"{sorted(Counter(per_sha.values()).items())}; most by one process: "
        f"{max(Counter(run.downloads).values())}"
    )


# -- 50 concurrent writers -------------------------------------------------------------------

NAMES = [f"w{n}" for n in range(5)]
WRITERS = 50
STEPS = 3


@attrs.define
class Ledger:
    """What the writers did: what they tried to put, and what publishing returned."""

    attempted: dict[str, set[bytes]] = attrs.field(factory=lambda: {n: set() for n in NAMES})
    published: dict[str, list[str]] = attrs.field(factory=lambda: {n: [] for n in NAMES})
    conflicts: list[exc.ConflictError] = attrs.field(factory=list)
    done: Counter[str] = attrs.field(factory=Counter)


async def write_storm(repos: list[Repository], seed: int) -> Ledger:
    ledger = Ledger()
    for name in NAMES:  # LATEST exists before the storm: a publish never finds none
        body = f"{name} initial".encode()
        ledger.attempted[name].add(body)
        await repos[0].put_artifact(name, body)

    async def writer(w: int) -> None:
        repo = repos[w % len(repos)]
        rng = random.Random(seed * 1000 + w)
        for step in range(STEPS):
            name = rng.choice(NAMES)
            op = rng.choice(["put", "publish", "alias"])
            try:
                if op == "put":
                    body = f"{name} from writer {w} step {step}".encode()
                    ledger.attempted[name].add(body)
                    await repo.put_artifact(name, body)
                elif op == "publish":
                    artifact = await repo.publish_artifact_version(name)
                    ledger.published[name].append(artifact.version)
                else:
                    known = list(ledger.published[name])
                    if len(known) >= 2 and rng.random() < 0.5:
                        primary, secondary = rng.sample(known, 2)
                        await repo.put_alias(name, "prod", primary, secondary, rng.randrange(100))
                    else:
                        await repo.put_alias(name, "prod", rng.choice(known) if known else None)
                ledger.done[op] += 1
            except exc.ConflictError as err:  # "a concurrent writer won; safe to retry"
                ledger.conflicts.append(err)

    results = await asyncio.gather(*(writer(w) for w in range(WRITERS)), return_exceptions=True)
    assert [r for r in results if r is not None] == []
    return ledger


async def check_repository_after_storm(
    repo: Repository, s3: Any, dynamodb: Any, ledger: Ledger
) -> None:
    for name in NAMES:
        listed = await repo.list_artifact_versions(name)
        numbers = sorted(int(a.version) for a in listed if a.version != "LATEST")
        published = sorted(int(v) for v in ledger.published[name])
        assert numbers == list(range(1, len(numbers) + 1)), f"{name}: not dense: {numbers}"
        assert published == numbers, f"{name}: published {published}, listed {numbers}"
        # no reservation or hidden item left behind
        raw = (
            await dynamodb.query(
                TableName=TABLE,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": name}},
                ConsistentRead=True,
            )
        )["Items"]
        assert sorted(i["sk"]["S"] for i in raw) == sorted(
            ["LATEST", *(f"{n:06d}" for n in numbers)]
        )
        assert all("publish_token" not in i and not i["is_deleted"]["BOOL"] for i in raw)
        for artifact in listed:
            content = await repo.get_content(name, artifact.version)  # verifies the sha256
            assert hashlib.sha256(content).hexdigest() == artifact.sha256
            assert content in ledger.attempted[name]
            stored = "LATEST" if artifact.is_latest else f"{int(artifact.version):06d}"
            obj = await s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{name}/{stored}")
            async with obj["Body"] as stream:
                raw_body = await stream.read()
            assert hashlib.sha256(raw_body).hexdigest() == artifact.sha256, (name, stored)
        existing = {a.version for a in listed}
        try:
            alias = await repo.get_alias(name, "prod")
        except exc.AliasNotFoundError:
            continue
        for version in filter(None, (alias.version, alias.secondary_version)):
            assert version in existing, f"{name}: alias prod points at missing {version}"
            await repo.get_artifact_version(name, version)


@pytest.mark.parametrize("clients", [1, 3], ids=["one-repository", "three-repositories"])
async def test_fifty_concurrent_writers_leave_a_consistent_repository(
    make_table_repo: TableRepoFactory, s3: Any, dynamodb: Any, clients: int
) -> None:
    async with make_table_repo() as first:
        await first.bootstrap()
        repos = [first]
        others = [make_table_repo() for _ in range(clients - 1)]
        for other in others:
            await other.open()
        try:
            ledger = await write_storm(repos + others, seed=clients)
        finally:
            for other in others:
                await other.close()
        assert sum(ledger.done.values()) + len(ledger.conflicts) == WRITERS * STEPS
        assert ledger.done["publish"] > 0
        await check_repository_after_storm(first, s3, dynamodb, ledger)
    print(
        f"\n{WRITERS} writers on {clients} client(s): {dict(ledger.done)}, "
        f"{len(ledger.conflicts)} ConflictError"
    )
