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
from collections.abc import Callable
from pathlib import Path

from ._layout import LATEST
from .models import Alias
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


def _split(alias: Alias, draws: int = 1000) -> str:
    counts = Counter(alias.choose_version() for _ in range(draws))
    parts = [f"{_v(v)}: {counts[v]} ({counts[v] / draws:.1%})" for v in sorted(counts)]
    return f"observed over {draws} draws: " + ", ".join(parts)


def _describe(alias: Alias) -> str:
    if alias.secondary_version is None:
        return f"{alias.alias} -> {_v(alias.version)}"
    weight = alias.secondary_version_weight or 0
    return (
        f"{alias.alias} -> {_v(alias.version)} ({100 - weight}%) "
        f"+ {_v(alias.secondary_version)} ({weight}%)"
    )


async def run_demo(
    endpoint_url: str,
    *,
    aws_region: str = "us-east-1",
    bucket: str = "versioned-async-demo",
    table: str = "versioned-async-demo",
    say: Callable[[str], None] = print,
) -> None:
    """Walk through the lifecycle against ``endpoint_url``, narrating with ``say``."""

    def step(title: str) -> None:
        say("")
        say(f"== {title} ==")

    async with Repository(
        aws_region=aws_region,
        s3_bucket=bucket,
        dynamodb_table_name=table,
        s3_prefix="artifacts",
        suffix=".sqlite",
        endpoint_url=endpoint_url,
    ) as repo:
        step("1. Create the repository (S3 bucket + DynamoDB table)")
        started = time.perf_counter()
        await repo.bootstrap()
        say(f"bootstrap() done in {time.perf_counter() - started:.2f}s: {repo!r}")

        step("2. Put a SQLite database as LATEST, with metadata")
        db_v1 = make_sqlite_db(schema_version=1, customers=100)
        art = await repo.put_artifact(
            NAME,
            db_v1,
            content_type="application/x-sqlite3",
            metadata={"schema_version": "1", "build": "2026.11.1"},
        )
        say(f"LATEST: {art.size} bytes, sha256 {art.sha256[:16]}..., metadata {art.metadata}")
        say(f"stored at {art.s3uri}")
        same = await repo.put_artifact(NAME, db_v1)
        say(f"putting identical content again uploads nothing (same sha256: {same == art})")

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
            say(f"published version {published.version} (sha256 {published.sha256[:12]}...)")
        for listed in await repo.list_artifact_versions(NAME):
            say(
                f"  {listed.version:>6}  {listed.size:>6} bytes  "
                f"schema {listed.metadata.get('schema_version')}  {listed.update_at:%H:%M:%S}"
            )

        step("4. Aliases for environments")
        for alias, version in (("development", None), ("staging", 2), ("production", 1)):
            al = await repo.put_alias(NAME, alias, version)
            say(_describe(al))

        step("5. Blue/green switch: production from v1 to v2")
        prod = await repo.put_alias(NAME, "production", 2)
        content = await repo.get_content(NAME, prod.choose_version())
        say(f"{_describe(prod)}; services now read schema {schema_of(content)}")

        step("6. Canary: 10%, then 50% of production traffic to v3")
        for weight in (10, 50):
            prod = await repo.put_alias(NAME, "production", 2, 3, weight)
            say(f"{_describe(prod)}; {_split(prod)}")
        sticky = {key: prod.choose_version(key) for key in ("user-17", "user-42", "user-99")}
        say(f"sticky routing by key (same answer on every call and process): {sticky}")

        step("7. Full roll-out, then an emergency rollback")
        prod = await repo.put_alias(NAME, "production", 3)
        say(f"roll-out: {_describe(prod)}")
        prod = await repo.put_alias(NAME, "production", 2)
        content = await prod.get_version_content()
        say(f"rollback: {_describe(prod)}; content is schema {schema_of(content)} again")

        step("8. Retention: keep LATEST, the newest version and every aliased one")
        purge_time, deleted = await repo.purge_artifact_versions(
            NAME, keep_last_n=1, purge_older_than_secs=0
        )
        kept = [v.version for v in await repo.list_artifact_versions(NAME)]
        say(
            f"purged at {purge_time:%H:%M:%S}: deleted {[d.version for d in deleted]}, "
            f"kept {kept} (v2 stays: production points at it)"
        )

        step("9. Repository contents")
        say(f"artifacts: {await repo.list_artifact_names()}")
        for al in await repo.list_aliases(NAME):
            say(f"  {_describe(al)}")
    say("")
    say("Done: the whole lifecycle ran against " + endpoint_url)


def main(endpoint_url: str | None = None) -> None:
    """Run the demo on an embedded moto server, or on ``endpoint_url`` when given."""
    if endpoint_url is not None:
        asyncio.run(run_demo(endpoint_url))
        return
    from .testing import MotoServer  # noqa: PLC0415 - needs the optional moto extra

    os.environ.update(fake_aws_environment())
    with MotoServer() as server:
        print(f"Started an embedded moto server at {server.endpoint_url} (no AWS account needed)")
        asyncio.run(run_demo(server.endpoint_url))
