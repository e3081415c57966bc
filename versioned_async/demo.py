"""The quick start: the whole artifact lifecycle on an embedded moto server.

Run it with ``python -m versioned_async demo``. Every figure it prints is
measured in the run (the canary split is counted over real draws); nothing is
a printed constant. Pass ``endpoint_url`` (or set real AWS credentials and
``aws_region``/``bucket``) to run it against a real service instead.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ._layout import LATEST
from ._redact import redact_url
from .cache import LocalCache
from .exc import RolloutFailedError
from .models import Alias, AliasChange, Artifact
from .repository import Repository
from .testing import fake_aws_environment

__all__ = ["make_sqlite_db", "run_demo"]

NAME = "customer_analytics_db"


def make_sqlite_db(schema_version: int, customers: int) -> bytes:
    """A small SQLite database, as bytes: the kind of artifact a service ships."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "db.sqlite"
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(schema_version),))
            db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
            db.executemany(
                "INSERT INTO customers (name) VALUES (?)",
                [(f"customer {i}",) for i in range(customers)],
            )
        db.close()
        return path.read_bytes()


def schema_of(content: bytes) -> str:
    """Read ``schema_version`` back out of a database artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "db.sqlite"
        path.write_bytes(content)
        db = sqlite3.connect(path)
        try:
            (value,) = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        finally:
            db.close()
        return str(value)


def _v(version: str) -> str:
    return version if version == LATEST else f"v{version}"


def _route(alias: Alias) -> str:
    if alias.secondary_version is None:
        return _v(alias.version)
    weight = alias.secondary_version_weight or 0
    return f"{_v(alias.version)} ({100 - weight}%) + {_v(alias.secondary_version)} ({weight}%)"


#: the weight at which the demo's health check fails, on purpose, to show a rollback
STAGED_FAILURE = 50
#: the routing keys whose sticky routing the demo shows
ROUTING_KEYS = ("user-17", "user-42", "user-99")


def _sticky(alias: Alias) -> str:
    """Where ``alias`` sends each of :data:`ROUTING_KEYS` (the same in every call)."""
    return ", ".join(f"{key} -> {_v(alias.choose_version(key))}" for key in ROUTING_KEYS)


def _versions_table(versions: list[Artifact]) -> Table:
    table = Table(title="versions", title_justify="left")
    for column in ("version", "bytes", "sha256", "schema", "build", "updated (UTC)"):
        table.add_column(column, justify="right" if column == "bytes" else "left")
    for art in versions:
        table.add_row(
            art.version,
            f"{art.size:,}" if art.size is not None else "?",
            art.sha256[:12] + "...",
            art.metadata.get("schema_version", ""),
            art.metadata.get("build", ""),
            f"{art.update_at:%Y-%m-%d %H:%M:%S}",
        )
    return table


def _aliases_table(aliases: list[Alias]) -> Table:
    table = Table(title="aliases", title_justify="left")
    table.add_column("alias")
    table.add_column("serves")
    for alias in aliases:
        table.add_row(alias.alias, _route(alias))
    return table


def _history_table(changes: list[AliasChange]) -> Table:
    """The alias history as a table that keeps every column at 80 columns and up:
    when and action never wrap (they are what a reader scans); the routes and the
    reason, the long cells, wrap instead of pushing them out."""
    table = Table(title="history of production (newest first)", title_justify="left")
    table.add_column("when (UTC)", no_wrap=True, min_width=len("00:00:00.000"))
    table.add_column("action", no_wrap=True, min_width=len("rollback"))
    for column in ("from", "to", "reason"):
        table.add_column(column, overflow="fold")
    for change in changes:
        table.add_row(
            f"{change.changed_at:%H:%M:%S.%f}"[:-3],
            change.action,
            _route(change.before) if change.before else "-",
            _route(change.after) if change.after else "-",
            change.reason or "",
        )
    return table


def _split_table(alias: Alias, draws: int) -> tuple[Table, Counter[str]]:
    counts = Counter(alias.choose_version() for _ in range(draws))
    table = Table(title=f"observed split over {draws:,} draws", title_justify="left")
    for column in ("version", "weight", "requests", "share"):
        table.add_column(column, justify="left" if column == "version" else "right")
    weights = {alias.version: 100 - (alias.secondary_version_weight or 0)}
    if alias.secondary_version is not None:
        weights[alias.secondary_version] = alias.secondary_version_weight or 0
    for version, weight in weights.items():
        table.add_row(
            _v(version), f"{weight}%", f"{counts[version]:,}", f"{counts[version] / draws:.1%}"
        )
    return table, counts


async def run_demo(  # noqa: PLR0915 - a narrative, step by step
    endpoint_url: str | None,
    *,
    console: Console | None = None,
    aws_region: str = "us-east-1",
    bucket: str = "versioned-async-demo",
    table: str = "versioned-async-demo",
    cache_dir: Path | None = None,
    draws: int = 1000,
) -> None:
    """Walk through the lifecycle against ``endpoint_url`` (``None``: AWS itself).

    Narrates on ``console`` with rich tables. Every figure shown is measured
    in this run.
    """
    out = console or Console()

    def step(title: str) -> None:
        out.print()
        out.rule(f"[bold]{title}", align="left")

    with tempfile.TemporaryDirectory() as scratch:
        cache = LocalCache(cache_dir or Path(scratch) / "cache", ttl=30.0)
        async with Repository(
            aws_region=aws_region,
            s3_bucket=bucket,
            dynamodb_table_name=table,
            s3_prefix="artifacts",
            suffix=".sqlite",
            endpoint_url=endpoint_url,
            cache=cache,
        ) as repo:
            step("1. Create the repository: an S3 bucket and a DynamoDB table")
            started = time.perf_counter()
            await repo.bootstrap()
            out.print(f"bootstrap() took {time.perf_counter() - started:.2f} s: {repo!r}")

            step("2. Put a SQLite database as LATEST, with metadata")
            db_v1 = make_sqlite_db(schema_version=1, customers=100)
            art = await repo.put_artifact(
                NAME,
                db_v1,
                content_type="application/x-sqlite3",
                metadata={"schema_version": "1", "build": "2026.11.1"},
            )
            out.print(f"LATEST of {NAME}: {art.size:,} bytes, sha256 {art.sha256[:16]}...")
            out.print(f"stored at {art.s3uri}")
            same = await repo.put_artifact(NAME, db_v1)
            out.print(f"putting identical content again uploads nothing: unchanged = {same == art}")

            step("3. Publish immutable versions 1, 2 and 3")
            for schema in (1, 2, 3):
                if schema > 1:
                    await repo.put_artifact(
                        NAME,
                        make_sqlite_db(schema_version=schema, customers=100 * schema),
                        content_type="application/x-sqlite3",
                        metadata={"schema_version": str(schema), "build": f"2026.11.{schema}"},
                    )
                published = await repo.publish_artifact_version(NAME)
                out.print(f"published version {published.version}")
            out.print(_versions_table(await repo.list_artifact_versions(NAME)))

            step("4. Aliases for the environments")
            for alias, version in (("development", None), ("staging", 2), ("production", 1)):
                await repo.put_alias(NAME, alias, version)
            out.print(_aliases_table(await repo.list_aliases(NAME)))

            step("5. Blue/green switch: production from v1 to v2")
            prod = await repo.put_alias(NAME, "production", 2)
            content = await repo.get_content(NAME, prod.choose_version())
            out.print(
                f"production -> {_route(prod)}; services now read schema {schema_of(content)}"
            )

            step("6. Progressive roll-out of v3: 10%, 50%, 100%, health-checked at each step")
            out.print(
                f"[bold]Staged:[/] this demo's health check fails on purpose at {STAGED_FAILURE}% "
                "(as if schema 3 broke the reports), to show the automatic rollback."
            )

            async def healthy(alias: Alias) -> bool:
                out.print(f"production -> {_route(alias)}")
                weight = alias.secondary_version_weight or 0
                if alias.secondary_version is not None:
                    split, counts = _split_table(alias, draws)
                    out.print(split)
                    out.print(f"canary share {weight}%: observed v3 {counts['3'] / draws:.1%}")
                    out.print(
                        f"sticky routing by key at {weight}% (same answer in every call and "
                        f"process): {_sticky(alias)}"
                    )
                # the check a real deploy would make against its metrics: here the
                # schema 3 database "fails the reports" at half the traffic, on purpose
                return weight < STAGED_FAILURE

            try:
                await repo.rollout(
                    NAME, "production", 3, bake_seconds=0, check=healthy, reason="schema 3"
                )
            except RolloutFailedError as err:
                out.print(f"[bold red]check failed[/] (staged, as announced): {err}")
            prod = await repo.get_alias(NAME, "production")
            out.print(
                f"sticky routing by key after the rollback (production -> {_route(prod)}): "
                f"{_sticky(prod)}"
            )

            step("7. Automatic rollback, and the alias's audit trail")
            prod = await repo.get_alias(NAME, "production")
            content = await prod.get_version_content()
            out.print(
                f"rollback: production -> {_route(prod)}; content is schema {schema_of(content)}"
            )
            out.print(_history_table((await repo.list_alias_history(NAME, "production")).changes))

            step("8. Retention: keep LATEST, the newest version and every aliased one")
            purge_time, deleted = await repo.purge_artifact_versions(
                NAME, keep_last_n=1, purge_older_than_secs=0
            )
            kept = [v.version for v in await repo.list_artifact_versions(NAME)]
            out.print(
                f"purged at {purge_time:%H:%M:%S}: deleted {[d.version for d in deleted]}, "
                f"kept {kept} (v2 stays: production points at it)"
            )

            step("9. Read production through the local cache")
            cache.clear()
            at_start = cache.stats()
            timings = []
            for attempt in ("first read", "second read"):
                before = cache.stats()
                started = time.perf_counter()
                body = await repo.get_alias_content(NAME, "production", routing_key="svc-1")
                elapsed = time.perf_counter() - started
                after = cache.stats()
                source = "downloaded" if after.downloads > before.downloads else "served locally"
                timings.append((attempt, elapsed, source, len(body)))
            reads = Table(title="get_alias_content('production')", title_justify="left")
            for column in ("read", "time", "source", "bytes"):
                reads.add_column(column)
            for attempt, elapsed, source, size in timings:
                reads.add_row(attempt, f"{elapsed * 1000:.2f} ms", source, f"{size:,}")
            out.print(reads)
            stats = cache.stats()
            out.print(
                f"cache: {stats.downloads - at_start.downloads} download(s), "
                f"{stats.hits - at_start.hits} hit(s), "
                f"{stats.bytes_downloaded - at_start.bytes_downloaded:,} bytes downloaded"
            )

            step("10. The repository now")
            out.print(f"artifacts: {await repo.list_artifact_names()}")
            out.print(_aliases_table(await repo.list_aliases(NAME)))
        cache.close()
    out.print()
    out.print(f"Done: the whole lifecycle ran against {redact_url(endpoint_url) or 'AWS'}")


def main(
    endpoint_url: str | None = None,
    *,
    aws: bool = False,
    aws_region: str = "us-east-1",
    bucket: str = "versioned-async-demo",
    table: str = "versioned-async-demo",
) -> None:
    """Run the demo on an embedded moto server (the default), on ``endpoint_url``,
    or with ``aws=True`` on the AWS account of the ambient credentials."""
    if endpoint_url is not None or aws:
        asyncio.run(run_demo(endpoint_url, aws_region=aws_region, bucket=bucket, table=table))
        return
    from .testing import MotoServer  # noqa: PLC0415 - needs the optional moto extra

    os.environ.update(fake_aws_environment())
    console = Console()
    with MotoServer() as server:
        console.print(
            f"Started an embedded moto server at {server.endpoint_url} (no AWS account needed)"
        )
        asyncio.run(run_demo(server.endpoint_url, console=console))
