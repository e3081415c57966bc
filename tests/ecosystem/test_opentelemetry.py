"""OpenTelemetry: a span per public operation, the cache outcome on it, AWS calls as its
children (through the official botocore instrumentation), the cache's metrics, and
nothing at all without OpenTelemetry.

The SDK's in-memory exporters record what a user's exporter would receive, from a
TracerProvider and a MeterProvider given to the repository and the cache; the global
providers (set once per process) are tested in a subprocess of their own.
"""

# ruff: noqa: PLC0415 - OpenTelemetry's SDK is imported by the fixtures that use it

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from tests.conftest import BUCKET, REGION, TABLE, TEST_ACTOR
from tests.integration.conftest import FakeClock
from tests.proxy import CountingProxy
from versioned_async import (
    ArtifactRepository,
    LocalCache,
    Repository,
    S3OnlyRepository,
    TransferConfig,
    exc,
)

OUTCOME = "versioned.cache.outcome"


class Spans:
    """A local TracerProvider whose finished spans are kept in memory."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def finished(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def ours(self) -> list[Any]:
        """Our operations' spans, oldest first (AWS calls' spans left out)."""
        return [s for s in self.finished() if s.name.startswith("versioned.")]

    def named(self, name: str) -> list[Any]:
        return [s for s in self.finished() if s.name == f"versioned.{name}"]

    def clear(self) -> None:
        self.exporter.clear()


class Metrics:
    """A local MeterProvider read in memory: ``value(name)`` sums a counter's points."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def collect(self) -> dict[str, Any]:
        data = self.reader.get_metrics_data()
        found: dict[str, Any] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = metric
        return found

    def value(self, name: str, **attributes: str) -> int:
        metric = self.collect().get(name)
        if metric is None:
            return 0
        wanted = {f"versioned.{k.replace('_', '.')}": v for k, v in attributes.items()}
        return sum(
            point.value
            for point in metric.data.data_points
            if all(point.attributes.get(k) == v for k, v in wanted.items())
        )


@pytest.fixture
def spans() -> Spans:
    return Spans()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def otel_proxy(endpoint_url: str) -> AsyncIterator[CountingProxy]:
    """A counting proxy in front of moto, to take AWS away."""
    async with CountingProxy(endpoint_url) as counting:
        yield counting


def build(
    backend: str,
    endpoint_url: str,
    session: AioSession,
    spans: Spans,
    **settings: Any,
) -> ArtifactRepository:
    common: dict[str, Any] = {
        "aws_region": REGION,
        "s3_bucket": BUCKET,
        "endpoint_url": endpoint_url,
        "session": session,
        "tracer_provider": spans.provider,
        **settings,
    }
    if backend == "s3":
        return S3OnlyRepository(**common)
    return Repository(dynamodb_table_name=TABLE, actor=TEST_ACTOR, **common)


@pytest.fixture(params=["dynamodb", "s3"])
async def traced_repo(
    request: pytest.FixtureRequest, endpoint_url: str, aio_session: AioSession, spans: Spans
) -> AsyncIterator[ArtifactRepository]:
    """An open, bootstrapped repository of each layout, tracing to ``spans``."""
    async with build(request.param, endpoint_url, aio_session, spans) as repo:
        await repo.bootstrap()
        spans.clear()
        yield repo


def attributes(span: Any) -> dict[str, Any]:
    return dict(span.attributes)


# -- spans ------------------------------------------------------------------------------


async def test_each_public_call_is_one_span_named_and_described(
    traced_repo: ArtifactRepository, spans: Spans, tmp_path: Path
) -> None:
    repo = traced_repo
    backend = "s3" if isinstance(repo, S3OnlyRepository) else "dynamodb"
    await repo.put_artifact("app", b"one")
    await repo.publish_artifact_version("app")
    await repo.put_artifact("app", b"second")
    await repo.publish_artifact_version("app")
    await repo.put_alias("app", "prod", 2)
    assert await repo.get_content("app", 1) == b"one"
    assert await repo.get_alias_content("app", "prod", "user-7") == b"second"
    await repo.resolve_alias("app", "prod")
    await repo.get_alias("app", "prod")  # the DynamoDB layout's override: one span
    await repo.list_artifact_versions("app")
    await repo.download("app", tmp_path / "file", alias="prod")
    artifact = await repo.get_artifact_version("app", 1)
    assert await artifact.get_content() == b"one"  # the model's read: its own span

    names = [span.name for span in spans.ours()]
    assert names == [
        "versioned.put_artifact",
        "versioned.publish_artifact_version",
        "versioned.put_artifact",
        "versioned.publish_artifact_version",
        "versioned.put_alias",
        "versioned.get_content",
        "versioned.get_alias_content",
        "versioned.resolve_alias",
        "versioned.get_alias",
        "versioned.list_artifact_versions",
        "versioned.download",
        "versioned.get_artifact_version",
        "versioned.Artifact.get_content",
    ]
    by_name = {span.name: attributes(span) for span in spans.ours()}
    assert all(a["versioned.backend"] == backend for a in by_name.values())
    assert all(span.parent is None for span in spans.ours())  # none inside another
    assert by_name["versioned.put_artifact"]["versioned.artifact.name"] == "app"
    assert by_name["versioned.put_artifact"]["versioned.content.size"] == len(b"second")
    assert by_name["versioned.publish_artifact_version"]["versioned.artifact.version"] == "2"
    assert by_name["versioned.get_content"] == {
        "versioned.backend": backend,
        "versioned.artifact.name": "app",
        "versioned.artifact.version": "1",
        "versioned.content.size": 3,
    }
    # the version the alias routed the key to, and the bytes it served
    assert by_name["versioned.get_alias_content"] == {
        "versioned.backend": backend,
        "versioned.artifact.name": "app",
        "versioned.alias.name": "prod",
        "versioned.artifact.version": "2",
        "versioned.content.size": len(b"second"),
    }
    assert by_name["versioned.download"]["versioned.artifact.version"] == "2"
    assert by_name["versioned.download"]["versioned.content.size"] == len(b"second")
    assert by_name["versioned.resolve_alias"]["versioned.alias.name"] == "prod"
    assert by_name["versioned.Artifact.get_content"] == {
        "versioned.backend": backend,
        "versioned.artifact.name": "app",
        "versioned.artifact.version": "1",
        "versioned.content.size": 3,
    }
    # no cache, no cache outcome
    assert not any(OUTCOME in a for a in by_name.values())


async def test_a_failed_call_is_an_error_span_with_the_exception(
    traced_repo: ArtifactRepository, spans: Spans
) -> None:
    from opentelemetry.trace import StatusCode

    with pytest.raises(exc.ArtifactNotFoundError):
        await traced_repo.get_content("missing", 4)
    (span,) = spans.named("get_content")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ArtifactNotFoundError"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"].endswith("ArtifactNotFoundError")


async def test_every_cache_outcome_is_on_the_span(
    endpoint_url: str,
    aio_session: AioSession,
    otel_proxy: CountingProxy,
    spans: Spans,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    cache = LocalCache(tmp_path / "cache", ttl=30.0, clock=clock)
    config = AioConfig(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2)
    async with build(
        "dynamodb", otel_proxy.endpoint_url, aio_session, spans, cache=cache, client_config=config
    ) as repo:
        await repo.bootstrap()
        await repo.put_artifact("app", b"payload")
        await repo.publish_artifact_version("app")
        await repo.put_alias("app", "prod", 1)
        cache.clear()
        spans.clear()
        await repo.get_content("app", 1)  # never seen: downloaded
        await repo.get_content("app", 1)  # within the TTL: no request
        clock.advance(60)
        await repo.get_content("app", 1)  # past the TTL: asked, unchanged, from disk
        clock.advance(3600)
        otel_proxy.go_down()
        await repo.get_content("app", 1)  # AWS down: the old answer
        otel_proxy.come_back()
        await repo.get_alias_content("app", "prod")  # the alias never seen, content cached
        await repo.get_alias_content("app", "prod")  # both within the TTL
        await repo.resolve_alias("app", "prod")
    outcomes = [span.attributes.get(OUTCOME) for span in spans.ours()]
    assert outcomes == ["miss", "hit", "revalidated", "stale", "miss", "hit", "hit"]


async def test_concurrent_readers_sharing_one_download_each_report_it(
    endpoint_url: str, aio_session: AioSession, spans: Spans, tmp_path: Path
) -> None:
    cache = LocalCache(tmp_path / "cache")
    async with build("dynamodb", endpoint_url, aio_session, spans, cache=cache) as repo:
        await repo.bootstrap()
        await repo.put_artifact("app", b"payload")
        cache.clear()
        spans.clear()
        await asyncio.gather(*(repo.get_content("app") for _ in range(5)))
    assert cache.stats().misses == 1
    assert [s.attributes.get(OUTCOME) for s in spans.named("get_content")] == ["miss"] * 5


# -- AWS calls as child spans -------------------------------------------------------------


@pytest.fixture
def aws_spans(spans: Spans) -> Iterator[Spans]:
    """The official aiobotocore instrumentation on, sending to ``spans`` (off after)."""
    from opentelemetry.instrumentation.botocore import AiobotocoreInstrumentor

    instrumentor = AiobotocoreInstrumentor()
    instrumentor.instrument(tracer_provider=spans.provider)
    try:
        yield spans
    finally:
        instrumentor.uninstrument()


def children_by_parent(spans: Spans) -> dict[str, list[str]]:
    """Each of our spans' name (numbered when repeated) -> its AWS child spans' names."""
    ours = spans.ours()
    ids = {span.context.span_id: f"{n}:{span.name}" for n, span in enumerate(ours)}
    tree: dict[str, list[str]] = {label: [] for label in ids.values()}
    for span in spans.finished():
        if span.name.startswith("versioned."):
            continue
        assert span.parent is not None, f"{span.name} has no parent: context was lost"
        assert span.parent.span_id in ids, f"{span.name}'s parent is not one of ours"
        owner = next(s for s in ours if s.context.span_id == span.parent.span_id)
        assert span.context.trace_id == owner.context.trace_id
        tree[ids[span.parent.span_id]].append(span.name)
    return {label: sorted(names) for label, names in tree.items()}


async def test_aws_calls_are_children_of_the_operation_span(
    endpoint_url: str, aio_session: AioSession, aws_spans: Spans, tmp_path: Path
) -> None:
    cache = LocalCache(tmp_path / "cache")
    async with build("dynamodb", endpoint_url, aio_session, aws_spans) as direct:
        await direct.bootstrap()
        await direct.put_artifact("app", b"payload")
        await direct.put_alias("app", "prod")
        aws_spans.clear()
        # concurrent steps (gather), a stream to a file, a thread for the file's hash
        await direct.get_alias_content("app", "prod")
        await direct.download("app", tmp_path / "file")
    async with build("dynamodb", endpoint_url, aio_session, aws_spans, cache=cache) as cached:
        # the cache's single flight (a task), its lease and the publish in a thread
        await cached.get_alias_content("app", "prod")
    assert children_by_parent(aws_spans) == {
        "0:versioned.get_alias_content": ["DynamoDB.GetItem", "DynamoDB.GetItem", "S3.GetObject"],
        "1:versioned.download": ["DynamoDB.GetItem", "S3.GetObject"],
        "2:versioned.get_alias_content": ["DynamoDB.GetItem", "DynamoDB.GetItem", "S3.GetObject"],
    }


async def test_a_parallel_download_s_ranged_gets_are_children_of_its_span(
    endpoint_url: str, aio_session: AioSession, aws_spans: Spans, tmp_path: Path
) -> None:
    parts = TransferConfig(multipart_threshold=256 << 10, multipart_chunksize=256 << 10)
    content = os.urandom(1 << 20)  # four parts, three of them ranged GETs in parallel
    async with build(
        "dynamodb", endpoint_url, aio_session, aws_spans, transfer_config=parts
    ) as repo:
        await repo.bootstrap()
        await repo.put_artifact("big", content)
        aws_spans.clear()
        assert await repo.get_content("big") == content
        await repo.download("big", tmp_path / "big")
    assert children_by_parent(aws_spans) == {
        "0:versioned.get_content": ["DynamoDB.GetItem", *["S3.GetObject"] * 4],
        "1:versioned.download": ["DynamoDB.GetItem", *["S3.GetObject"] * 4],
    }


async def test_each_poll_of_watch_alias_is_a_short_span_of_its_own(
    endpoint_url: str, aio_session: AioSession, aws_spans: Spans
) -> None:
    async with build("dynamodb", endpoint_url, aio_session, aws_spans) as repo:
        await repo.bootstrap()
        await repo.put_artifact("app", b"payload")
        await repo.put_alias("app", "prod")
        aws_spans.clear()
        seen = 0
        async with contextlib.aclosing(repo.watch_alias("app", "prod", interval=0.01)) as changes:
            async for _alias in changes:
                seen += 1
                if seen == 1:
                    await repo.put_alias("app", "prod", secondary_version_weight=None)
                    await repo.put_alias("app", "prod", "LATEST")
                if seen == 2:
                    break
    polls = aws_spans.named("watch_alias")
    assert len(polls) >= 2
    assert all(span.parent is None for span in polls)  # each its own trace
    assert attributes(polls[0]) == {
        "versioned.backend": "dynamodb",
        "versioned.artifact.name": "app",
        "versioned.alias.name": "prod",
    }
    tree = children_by_parent(aws_spans)
    assert all(
        names == ["DynamoDB.GetItem"] for label, names in tree.items() if "watch_alias" in label
    )


# -- metrics --------------------------------------------------------------------------------


async def test_the_cache_s_metrics_count_what_it_did(
    endpoint_url: str,
    aio_session: AioSession,
    otel_proxy: CountingProxy,
    spans: Spans,
    metrics: Metrics,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    # room for two of the three contents: reading the third evicts the first
    cache = LocalCache(
        tmp_path / "cache", ttl=30.0, clock=clock, size_limit=250_000,
        meter_provider=metrics.provider,
    )  # fmt: skip
    config = AioConfig(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2)
    contents = [os.urandom(100_000) for _ in range(3)]
    async with build(
        "dynamodb", otel_proxy.endpoint_url, aio_session, spans, cache=cache, client_config=config
    ) as repo:
        await repo.bootstrap()
        for n, content in enumerate(contents):
            await repo.put_artifact(f"a{n}", content)
        cache.clear()
        for n in range(3):
            await repo.get_content(f"a{n}")  # three misses, one eviction
        await repo.get_content("a2")  # a hit
        clock.advance(3600)
        otel_proxy.go_down()
        await repo.get_content("a2")  # a stale serve (and a hit)
        otel_proxy.come_back()
    assert {name: metric.unit for name, metric in metrics.collect().items()} == {
        "versioned.cache.hits": "{hit}",
        "versioned.cache.misses": "{miss}",
        "versioned.cache.evictions": "{file}",
        "versioned.cache.downloaded": "By",
        "versioned.cache.stale_serves": "{serve}",
    }
    assert metrics.value("versioned.cache.misses") == 3
    assert metrics.value("versioned.cache.hits") == 2
    assert metrics.value("versioned.cache.evictions") == 1
    assert metrics.value("versioned.cache.downloaded") == 300_000
    assert metrics.value("versioned.cache.stale_serves") == 1
    assert cache.stats().evictions == 1


async def test_integrity_failures_are_counted_where_they_were_found(
    endpoint_url: str,
    aio_session: AioSession,
    spans: Spans,
    metrics: Metrics,
    s3: Any,
    object_key: Any,
    tmp_path: Path,
) -> None:
    cache = LocalCache(tmp_path / "cache", verify_on_read=True, meter_provider=metrics.provider)
    genuine = os.urandom(64 << 10)  # stored as a file of its own
    async with build("dynamodb", endpoint_url, aio_session, spans, cache=cache) as repo:
        await repo.bootstrap()
        await repo.put_artifact("app", genuine)
        await repo.publish_artifact_version("app")
        cache.clear()
        assert await repo.get_content("app", 1) == genuine
        # bytes changed in the cached file (inode, size and mtime kept): re-hashed, refetched
        rewrite_in_place(cached_file(cache, genuine), os.urandom(len(genuine)))
        assert await repo.get_content("app", 1) == genuine
        # the object in S3 replaced: refused
        key = object_key("app", 1)
        head = await s3.head_object(Bucket=BUCKET, Key=key)
        await s3.put_object(Bucket=BUCKET, Key=key, Body=b"tampered", Metadata=head["Metadata"])
        cache.clear()
        with pytest.raises(exc.IntegrityError):
            await repo.get_content("app", 1)
    assert metrics.collect()["versioned.integrity.failures"].unit == "{failure}"
    assert metrics.value("versioned.integrity.failures", integrity_source="cache") == 1
    assert metrics.value("versioned.integrity.failures", integrity_source="s3") == 1


def cached_file(cache: LocalCache, content: bytes) -> Path:
    """The one file in the content store holding ``content``."""
    found = [p for p in (cache.directory / "content").rglob("*.val") if p.read_bytes() == content]
    assert len(found) == 1, found
    return found[0]


def rewrite_in_place(path: Path, content: bytes) -> None:
    """Other bytes in the same inode, its mtime put back: only a re-hash can tell."""
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.write(content)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


# -- the global providers, and no OpenTelemetry at all: each in a process of its own ------

_SETUP = """
import asyncio, json, sys
from versioned_async import LocalCache, Repository

def repository(endpoint, cache):
    return Repository(
        aws_region="us-east-1", s3_bucket="test-artifacts",
        dynamodb_table_name="test-versioned-artifacts", endpoint_url=endpoint,
        actor="tests", cache=cache,
    )
"""

_WITHOUT_OPENTELEMETRY = """
class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ImportError(f"No module named {name!r}")

sys.meta_path.insert(0, NotInstalled())
try:
    import opentelemetry.trace
except ImportError:
    blocked = True
else:
    blocked = False

async def main(endpoint, directory):
    cache = LocalCache(directory)
    async with repository(endpoint, cache) as repo:
        await repo.bootstrap()
        await repo.put_artifact("app", b"payload")
        await repo.put_alias("app", "prod")
        cache.clear()
        first = await repo.get_alias_content("app", "prod")
        again = await repo.get_alias_content("app", "prod")
        try:
            await repo.get_content("missing")
        except Exception as err:
            failed = type(err).__name__
    stats = cache.stats()
    print(json.dumps({
        "blocked": blocked,
        "read": [first.decode(), again.decode()],
        "failed": failed,
        "misses_hits": [stats.misses, stats.hits],
        "loaded": sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"),
    }))

asyncio.run(main(*sys.argv[1:]))
"""

_GLOBAL_PROVIDERS = """
async def main(endpoint, directory):
    # made before the application sets up OpenTelemetry, as a module-level cache would be
    cache = LocalCache(directory)
    async with repository(endpoint, cache) as repo:
        await repo.bootstrap()
        await repo.put_artifact("app", b"payload")
        cache.clear()
        await repo.get_content("app")  # before: nothing to record to
        import opentelemetry.trace  # the API, and no SDK: still nothing
        await repo.get_content("app")

        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(tracer_provider)
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

        await repo.get_content("app")
        cache.clear()
        await repo.get_content("app")
    counted = {
        m.name: sum(p.value for p in m.data.data_points)
        for r in reader.get_metrics_data().resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
    }
    print(json.dumps({
        "spans": [[s.name, s.attributes.get("versioned.cache.outcome")]
                  for s in exporter.get_finished_spans()],
        "metrics": counted,
    }))

asyncio.run(main(*sys.argv[1:]))
"""


def run_script(script: str, endpoint_url: str, tmp_path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SETUP + script), endpoint_url, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_without_opentelemetry_everything_works_and_nothing_is_imported(
    endpoint_url: str, tmp_path: Path
) -> None:
    ran = run_script(_WITHOUT_OPENTELEMETRY, endpoint_url, tmp_path / "cache")
    assert ran == {
        "blocked": True,
        "read": ["payload", "payload"],
        "failed": "ArtifactNotFoundError",
        "misses_hits": [1, 1],
        "loaded": [],
    }


def test_the_global_providers_are_used_once_the_application_sets_them(
    endpoint_url: str, tmp_path: Path
) -> None:
    ran = run_script(_GLOBAL_PROVIDERS, endpoint_url, tmp_path / "cache")
    assert ran["spans"] == [
        ["versioned.get_content", "hit"],
        ["versioned.get_content", "miss"],
    ]
    assert ran["metrics"] == {
        "versioned.cache.hits": 1,
        "versioned.cache.misses": 1,
        "versioned.cache.downloaded": len(b"payload"),
    }


def test_importing_the_package_and_its_cli_loads_no_opentelemetry() -> None:
    code = (
        "import sys, versioned_async, versioned_async.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'opentelemetry'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
