"""`versioned-async --backend s3`: the command line on an S3-only repository, against moto.

Driven in-process with click's CliRunner, as in test_cli.py. What the command
line writes is read back through :class:`S3OnlyRepository` and looked for at
the S3-only keys of docs/S3_ONLY_WIRE_FORMAT.md, spelled out here rather than
taken from the library's layout code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import AioSession
from click.testing import CliRunner, Result

import versioned_async._aws.clients
from tests.conftest import BUCKET, REGION, TABLE
from versioned_async import S3OnlyRepository
from versioned_async.cli import main

Run = Callable[..., Result]

ROOT = "versioned-artifacts"

NEEDS_DYNAMODB = "needs the DynamoDB backend (--backend dynamodb): the S3-only layout"


def version_key(
    name: str, version: int | str = "LATEST", root: str = ROOT, suffix: str = ""
) -> str:
    """Where the S3-only layout keeps a version: numbers count down in the file name."""
    stem = (
        "000000_LATEST"
        if version == "LATEST"
        else f"{1_000_000 - int(version):06d}_{int(version):06d}"
    )
    return f"{root}/{name}/versions/{stem}{suffix}"


def alias_key(name: str, alias: str) -> str:
    return f"{ROOT}/{name}/aliases/{alias}.json"


def uri(key: str) -> str:
    return f"s3://{BUCKET}/{key}"


@pytest.fixture(autouse=True)
def one_session(aio_session: AioSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs share one botocore session: service models load once, not per command."""
    monkeypatch.setattr(versioned_async._aws.clients, "get_session", lambda: aio_session)


def invoke(
    endpoint_url: str,
    *args: str,
    input: bytes | str | None = None,
    env: dict[str, str | None] | None = None,
) -> Result:
    """Run the command line in-process; no backend, table or service endpoint comes from
    the environment unless ``env`` says so."""
    settings: dict[str, str | None] = {
        "VERSIONED_BUCKET": BUCKET,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": REGION,
        "VERSIONED_BACKEND": None,
        "VERSIONED_TABLE": None,
        "AWS_ENDPOINT_URL_S3": None,
        "AWS_ENDPOINT_URL_DYNAMODB": None,
    }
    settings.update(env or {})
    return CliRunner().invoke(main, list(args), input=input, env=settings, catch_exceptions=False)


def expect(result: Result, code: int) -> Result:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def cli(endpoint_url: str) -> Run:
    """``versioned-async --backend s3 ...`` on a bootstrapped, empty S3-only repository."""

    def run(*args: str, code: int = 0, **kwargs: Any) -> Result:
        return expect(invoke(endpoint_url, "--backend", "s3", *args, **kwargs), code)

    assert run("bootstrap").stdout == f"ready: bucket {BUCKET!r} (S3-only, no table)\n"
    return run


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def in_s3_only(
    endpoint_url: str, aio_session: AioSession, work: Callable[[S3OnlyRepository], Awaitable[Any]]
) -> Any:
    """Run ``work(repo)`` on an S3OnlyRepository over the bucket the command line uses."""

    async def session() -> Any:
        async with S3OnlyRepository(
            REGION, BUCKET, endpoint_url=endpoint_url, session=aio_session
        ) as repo:
            return await work(repo)

    return asyncio.run(session())


def objects(endpoint_url: str, aio_session: AioSession) -> dict[str, str]:
    """Every object in the bucket, key -> ETag, read with a raw S3 client."""

    async def listing() -> dict[str, str]:
        async with aio_session.create_client(
            "s3", region_name=REGION, endpoint_url=endpoint_url
        ) as s3:
            found: dict[str, str] = {}
            async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
                found.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
            return found

    return asyncio.run(listing())


def read_object(endpoint_url: str, aio_session: AioSession, key: str) -> bytes:
    async def read() -> bytes:
        async with aio_session.create_client(
            "s3", region_name=REGION, endpoint_url=endpoint_url
        ) as s3:
            got = await s3.get_object(Bucket=BUCKET, Key=key)
            async with got["Body"] as body:
                data: bytes = await body.read()
                return data

    return asyncio.run(read())


def buckets(endpoint_url: str, aio_session: AioSession) -> list[str]:
    async def names() -> list[str]:
        async with aio_session.create_client(
            "s3", region_name=REGION, endpoint_url=endpoint_url
        ) as s3:
            return [b["Name"] for b in (await s3.list_buckets())["Buckets"]]

    return asyncio.run(names())


def tables(endpoint_url: str, aio_session: AioSession) -> list[str]:
    async def names() -> list[str]:
        async with aio_session.create_client(
            "dynamodb", region_name=REGION, endpoint_url=endpoint_url
        ) as dynamodb:
            found: list[str] = (await dynamodb.list_tables())["TableNames"]
            return found

    return asyncio.run(names())


# -- the option ----------------------------------------------------------------------


def test_help_documents_the_backend_option() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "--backend [dynamodb|s3]" in text
    assert "env var: VERSIONED_BACKEND" in text
    assert "default: dynamodb" in text
    for command in (["alias", "history"], ["rollout"]):
        helped = " ".join(CliRunner().invoke(main, [*command, "--help"]).stdout.split())
        assert "Needs --backend dynamodb." in helped, command


def test_bootstrap_creates_the_bucket_and_no_table(
    endpoint_url: str, aio_session: AioSession
) -> None:
    assert BUCKET not in buckets(endpoint_url, aio_session)
    assert tables(endpoint_url, aio_session) == []
    for _ in range(2):  # idempotent
        done = expect(invoke(endpoint_url, "--backend", "s3", "bootstrap"), 0)
        assert done.stdout == f"ready: bucket {BUCKET!r} (S3-only, no table)\n"
    assert BUCKET in buckets(endpoint_url, aio_session)
    assert tables(endpoint_url, aio_session) == []


def test_default_backend_is_dynamodb(endpoint_url: str, aio_session: AioSession) -> None:
    env: dict[str, str | None] = {"VERSIONED_TABLE": TABLE}
    assert "table" in expect(invoke(endpoint_url, "bootstrap", env=env), 0).stdout
    assert tables(endpoint_url, aio_session) == [TABLE]
    expect(invoke(endpoint_url, "put", "app", input=b"one", env=env), 0)
    published = as_json(expect(invoke(endpoint_url, "publish", "app", "--json", env=env), 0))
    assert published["s3uri"] == uri(f"{ROOT}/app/000001")  # the DynamoDB layout's key
    expect(invoke(endpoint_url, "alias", "set", "app", "prod", "1", env=env), 0)
    history = expect(invoke(endpoint_url, "alias", "history", "app", "prod", env=env), 0)
    assert "-> 1" in history.stdout
    # and --backend dynamodb says so explicitly, with --table
    explicit = invoke(endpoint_url, "--backend", "dynamodb", "--table", TABLE, "names", "--json")
    assert as_json(expect(explicit, 0)) == ["app"]


def test_backend_from_the_environment_in_any_case(
    endpoint_url: str, aio_session: AioSession
) -> None:
    env: dict[str, str | None] = {"VERSIONED_BACKEND": "s3"}
    assert "S3-only" in expect(invoke(endpoint_url, "bootstrap", env=env), 0).stdout
    expect(invoke(endpoint_url, "put", "app", input=b"one", env=env), 0)
    expect(invoke(endpoint_url, "--backend", "S3", "publish", "app"), 0)
    assert set(objects(endpoint_url, aio_session)) == {version_key("app"), version_key("app", 1)}
    assert tables(endpoint_url, aio_session) == []


def test_a_bad_backend_is_a_usage_error(endpoint_url: str, aio_session: AioSession) -> None:
    for result in (
        invoke(endpoint_url, "--backend", "sqlite", "bootstrap"),
        invoke(endpoint_url, "bootstrap", env={"VERSIONED_BACKEND": "sqlite"}),
    ):
        expect(result, 2)
        assert "Invalid value for '--backend'" in result.stderr
        assert "'sqlite' is not one of 'dynamodb', 's3'" in result.stderr
    assert BUCKET not in buckets(endpoint_url, aio_session)
    assert tables(endpoint_url, aio_session) == []


def test_a_table_with_backend_s3_is_a_usage_error(
    endpoint_url: str, aio_session: AioSession
) -> None:
    given = invoke(endpoint_url, "--backend", "s3", "--table", "mine", "bootstrap")
    assert "--table names a DynamoDB table" in expect(given, 2).stderr
    assert "drop --table, or use --backend dynamodb" in " ".join(given.stderr.split())
    from_env = invoke(endpoint_url, "--backend", "s3", "bootstrap", env={"VERSIONED_TABLE": "mine"})
    assert "unset VERSIONED_TABLE, or use --backend dynamodb" in " ".join(
        expect(from_env, 2).stderr.split()
    )
    both_from_env = invoke(
        endpoint_url, "bootstrap", env={"VERSIONED_BACKEND": "s3", "VERSIONED_TABLE": "mine"}
    )
    assert "VERSIONED_TABLE names a DynamoDB table" in expect(both_from_env, 2).stderr
    assert BUCKET not in buckets(endpoint_url, aio_session)  # nothing was created
    assert tables(endpoint_url, aio_session) == []


# -- artifacts -----------------------------------------------------------------------


def test_put_publish_versions_names_get(
    cli: Run, endpoint_url: str, aio_session: AioSession, tmp_path: Path
) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"one")
    put = as_json(
        cli(
            "put", "app", str(source),
            "--content-type", "application/octet-stream",
            "--meta", "schema=1",
            "--json",
        )
    )  # fmt: skip
    assert (put["version"], put["s3uri"]) == ("LATEST", uri(version_key("app")))
    assert put["sha256"] == hashlib.sha256(b"one").hexdigest()
    assert put["metadata"] == {"schema": "1"}
    first = as_json(cli("publish", "app", "--json"))
    assert (first["version"], first["s3uri"]) == ("1", uri(f"{ROOT}/app/versions/999999_000001"))
    cli("put", "app", "-", input=b"two")
    second = as_json(cli("publish", "app", "--json"))
    assert (second["version"], second["s3uri"]) == ("2", uri(version_key("app", 2)))

    assert [a["version"] for a in as_json(cli("versions", "app", "--json"))] == ["LATEST", "2", "1"]
    assert "LATEST" in cli("versions", "app").stdout
    assert as_json(cli("names", "--json")) == ["app"]
    assert cli("get", "app", "--version", "1").stdout_bytes == b"one"
    assert cli("get", "app").stdout_bytes == b"two"
    out = tmp_path / "out.bin"
    assert "wrote" in cli("get", "app", "--version", "2", "-o", str(out)).stderr
    assert out.read_bytes() == b"two"
    assert "'missing'" in cli("get", "missing", code=3).stderr

    # the S3-only layout, and nothing else: no DynamoDB-layout key, no table
    assert set(objects(endpoint_url, aio_session)) == {
        version_key("app"),
        version_key("app", 1),
        version_key("app", 2),
    }
    assert tables(endpoint_url, aio_session) == []

    # what the command line wrote is what S3OnlyRepository reads
    async def read_back(repo: S3OnlyRepository) -> tuple[Any, ...]:
        listed = await repo.list_artifact_versions("app")
        one = await repo.get_artifact_version("app", 1)
        return [a.version for a in listed], one, await repo.get_content("app", 1)

    versions, one, content = in_s3_only(endpoint_url, aio_session, read_back)
    assert versions == ["LATEST", "2", "1"]
    assert (one.sha256, one.s3uri, one.metadata) == (
        first["sha256"],
        first["s3uri"],
        {"schema": "1"},
    )
    assert one.content_type == "application/octet-stream"
    assert content == b"one"


def test_the_command_line_reads_what_s3_only_repository_wrote(
    cli: Run, endpoint_url: str, aio_session: AioSession
) -> None:
    async def write(repo: S3OnlyRepository) -> None:
        await repo.put_artifact("lib", b"first")
        await repo.publish_artifact_version("lib")
        await repo.put_artifact("lib", b"second")
        await repo.publish_artifact_version("lib")
        await repo.put_alias("lib", "prod", 1)

    in_s3_only(endpoint_url, aio_session, write)
    assert [a["version"] for a in as_json(cli("versions", "lib", "--json"))] == ["LATEST", "2", "1"]
    assert cli("get", "lib", "--alias", "prod").stdout_bytes == b"first"
    assert as_json(cli("alias", "get", "lib", "prod", "--json"))["version"] == "1"


def test_cache_prefix_and_suffix_options_apply(
    cli: Run, endpoint_url: str, aio_session: AioSession, tmp_path: Path
) -> None:
    where = ("--prefix", "teams/ml", "--suffix", ".bin")
    cli(*where, "put", "app", input=b"one")
    assert as_json(cli(*where, "publish", "app", "--json"))["s3uri"] == uri(
        version_key("app", 1, root="teams/ml", suffix=".bin")
    )
    cache = ("--cache-dir", str(tmp_path / "cache"))
    for _ in range(2):
        assert cli(*cache, *where, "get", "app", "--version", "1").stdout_bytes == b"one"
    assert as_json(cli(*cache, "cache", "stats", "--json"))["content_count"] == 1
    assert set(objects(endpoint_url, aio_session)) == {
        version_key("app", root="teams/ml", suffix=".bin"),
        version_key("app", 1, root="teams/ml", suffix=".bin"),
    }


# -- aliases -------------------------------------------------------------------------


def test_alias_set_get_list_delete_resolve(
    cli: Run, endpoint_url: str, aio_session: AioSession
) -> None:
    for body in (b"one", b"two"):
        cli("put", "app", input=body)
        cli("publish", "app")
    made = as_json(cli("alias", "set", "app", "prod", "1", "--json"))
    assert (made["alias"], made["version"], made["secondary_version"]) == ("prod", "1", None)
    canary = as_json(
        cli("alias", "set", "app", "staging", "1", "--canary", "2", "--weight", "25", "--json")
    )
    assert (canary["secondary_version"], canary["secondary_version_weight"]) == ("2", 25)
    assert canary["version_s3uri"] == uri(version_key("app", 1))
    assert canary["secondary_version_s3uri"] == uri(version_key("app", 2))
    assert as_json(cli("alias", "get", "app", "staging", "--json")) == canary
    assert [a["alias"] for a in as_json(cli("alias", "list", "app", "--json"))] == [
        "prod",
        "staging",
    ]
    assert "25%" in cli("alias", "list", "app").stdout

    # an alias is a JSON object at the S3-only key, and S3OnlyRepository reads it
    stored = json.loads(read_object(endpoint_url, aio_session, alias_key("app", "staging")))
    assert (stored["version"], stored["secondary_version"]) == ("1", "2")
    assert stored["secondary_version_weight"] == 25
    read = in_s3_only(endpoint_url, aio_session, lambda r: r.get_alias("app", "staging"))
    assert (read.version, read.secondary_version, read.secondary_version_weight) == ("1", "2", 25)

    # routing: the command line picks the side S3OnlyRepository picks for the same key
    keys = [f"user-{n}" for n in range(200)]
    resolved = in_s3_only(endpoint_url, aio_session, lambda r: r.resolve_alias("app", "staging"))
    expected = resolved.choose_versions(keys)
    assert set(expected) == {"1", "2"}
    routed = cli("resolve", "app", "staging", input="\n".join(keys) + "\n").stdout.splitlines()
    assert routed == [f"{k}\t{v}" for k, v in zip(keys, expected, strict=True)]
    content = {"1": b"one", "2": b"two"}
    for key, version in list(zip(keys, expected, strict=True))[:4]:
        got = cli("get", "app", "--alias", "staging", "--routing-key", key).stdout_bytes
        assert got == content[version]

    assert "deleted alias 'prod'" in cli("alias", "delete", "app", "prod").stdout
    assert alias_key("app", "prod") not in objects(endpoint_url, aio_session)
    assert alias_key("app", "staging") in objects(endpoint_url, aio_session)
    assert [a["alias"] for a in as_json(cli("alias", "list", "app", "--json"))] == ["staging"]
    assert "'prod'" in cli("alias", "get", "app", "prod", code=3).stderr
    cli("alias", "delete", "app", "prod")  # a missing alias: nothing changes
    assert "'9'" in cli("alias", "set", "app", "prod", "9", code=3).stderr


# -- retention -----------------------------------------------------------------------


def test_purge_keeps_newest_and_aliased_then_purge_all(
    cli: Run, endpoint_url: str, aio_session: AioSession
) -> None:
    for n in range(4):
        cli("put", "app", input=f"v{n + 1}".encode())
        cli("publish", "app")
    cli("alias", "set", "app", "prod", "1")
    retention = ("--keep-last", "1", "--older-than-days", "0")

    planned = as_json(cli("purge", "app", *retention, "--dry-run", "--json"))
    assert planned["dry_run"] is True
    assert sorted(a["version"] for a in planned["deleted"]) == ["2", "3"]
    assert len(objects(endpoint_url, aio_session)) == 6  # LATEST, 4 versions, the alias

    purged = as_json(cli("purge", "app", *retention, "--json"))
    assert sorted(a["version"] for a in purged["deleted"]) == ["2", "3"]
    assert set(objects(endpoint_url, aio_session)) == {
        version_key("app"),
        version_key("app", 4),
        version_key("app", 1),
        alias_key("app", "prod"),
    }
    listed = in_s3_only(endpoint_url, aio_session, lambda r: r.list_artifact_versions("app"))
    assert [a.version for a in listed] == ["LATEST", "4", "1"]
    assert "nothing to purge" in cli("purge", "app", *retention).stdout

    assert "purged 'app'" in cli("purge", "app", "--all", "--yes").stdout
    assert objects(endpoint_url, aio_session) == {}
    assert as_json(cli("names", "--json")) == []


# -- DynamoDB-only commands --------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "name"),
    [
        pytest.param(("alias", "history", "app", "prod"), "alias history", id="history"),
        pytest.param(
            ("alias", "history", "app", "prod", "--limit", "5", "--json"),
            "alias history",
            id="history-json",
        ),
        pytest.param(
            ("rollout", "app", "prod", "2", "--bake-seconds", "0"), "rollout", id="rollout"
        ),
        pytest.param(("rollout", "app", "prod", "2", "--dry-run"), "rollout", id="rollout-dry-run"),
        pytest.param(
            (
                "rollout",
                "app",
                "prod",
                "2",
                "--bake-seconds",
                "0",
                "--actor",
                "ci",
                "--reason",
                "x",
            ),
            "rollout",
            id="rollout-actor-reason",
        ),
    ],
)
def test_dynamodb_only_commands_are_clear_usage_errors(
    cli: Run, endpoint_url: str, aio_session: AioSession, command: tuple[str, ...], name: str
) -> None:
    for body in (b"one", b"two"):
        cli("put", "app", input=body)
        cli("publish", "app")
    cli("alias", "set", "app", "prod", "1")
    before = objects(endpoint_url, aio_session)

    refused = cli(*command, code=2)
    message = " ".join(refused.stderr.split())
    assert f"Error: `{name}` {NEEDS_DYNAMODB} keeps no alias history" in message
    assert refused.stdout == ""

    assert objects(endpoint_url, aio_session) == before  # nothing was written
    alias = in_s3_only(endpoint_url, aio_session, lambda r: r.get_alias("app", "prod"))
    assert (alias.version, alias.secondary_version) == ("1", None)
