"""`versioned-async`, the command line, against the moto server.

Most tests drive ``main`` in-process with click's CliRunner (fast; each command
still runs its own ``asyncio.run``, so these are plain ``def`` tests). A few run
the installed console script, ``python -m versioned_async`` and ``serve-local``
as real processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import pty
import shutil
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import AioSession, get_session
from click.testing import CliRunner, Result

import versioned_async._aws.clients
import versioned_async.demo
from tests.conftest import BUCKET, REGION, TABLE
from versioned_async import Alias, Repository, exc
from versioned_async.cli import EXIT_CODES, ExitCode, exit_code_for, main
from versioned_async.cli.logs import log_line

SCRIPT = shutil.which("versioned-async", path=str(Path(sys.executable).parent)) or ""

Run = Callable[..., Result]


def invoke(
    endpoint_url: str,
    *args: str,
    input: bytes | str | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """Run the command line in-process; unexpected exceptions propagate (no traceback hiding)."""
    settings = {
        "VERSIONED_BUCKET": BUCKET,
        "VERSIONED_TABLE": TABLE,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": REGION,
    }
    settings.update(env or {})
    return CliRunner().invoke(main, list(args), input=input, env=settings, catch_exceptions=False)


@pytest.fixture(autouse=True)
def one_session(aio_session: AioSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs share one botocore session: service models load once, not per command.

    (A real process runs one command; the subprocess tests below run it that way.)
    """
    monkeypatch.setattr(versioned_async._aws.clients, "get_session", lambda: aio_session)


@pytest.fixture
def cli(endpoint_url: str) -> Run:
    """The command line on a bootstrapped, empty repository; asserts the exit code."""

    def run(*args: str, code: int = 0, **kwargs: Any) -> Result:
        result = invoke(endpoint_url, *args, **kwargs)
        assert result.exit_code == code, (result.stdout, result.stderr)
        return result

    run("bootstrap")
    return run


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def assert_one_error_line(result: Result, *fragments: str) -> None:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def in_repo(endpoint_url: str, work: Callable[[Repository], Any]) -> Any:
    """Run ``work(repo)`` in-process on the same repository the CLI uses."""

    async def session() -> Any:
        async with Repository(
            REGION, BUCKET, dynamodb_table_name=TABLE, endpoint_url=endpoint_url
        ) as r:
            return await work(r)

    return asyncio.run(session())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def script_env(endpoint_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "VERSIONED_BUCKET": BUCKET,
        "VERSIONED_TABLE": TABLE,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": REGION,
        **extra,
    }


# -- help, exit codes ----------------------------------------------------------------


def test_help_documents_options_environment_and_exit_codes() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for variable in (
        "VERSIONED_BUCKET",
        "VERSIONED_PREFIX",
        "VERSIONED_TABLE",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "VERSIONED_CACHE_DIR",
        "VERSIONED_SUFFIX",
        "VERSIONED_MAX_ATTEMPTS",
    ):
        assert f"env var: {variable}" in text, variable
    assert "Exit codes:" in result.stdout
    for code in ExitCode:
        assert f"\n    {int(code)}  " in result.stdout, code
    for command in ("bootstrap", "put", "publish", "get", "versions", "names", "alias"):
        assert command in result.stdout
    for command in ("resolve", "purge", "cache", "demo", "serve-local"):
        assert command in result.stdout


def test_exit_code_mapping() -> None:
    assert exit_code_for(exc.ArtifactNotFoundError("a", "1")) == 3
    assert exit_code_for(exc.AliasNotFoundError("a", "prod")) == 3
    assert exit_code_for(exc.RepositoryNotFoundError("no table")) == 3
    assert exit_code_for(exc.InvalidArgumentError("bad")) == 2
    assert exit_code_for(exc.InvalidArgumentTypeError("bad")) == 2
    assert exit_code_for(exc.BackendUnavailableError("down")) == 4
    assert exit_code_for(exc.BackendError("denied", code="AccessDenied")) == 1
    assert exit_code_for(exc.IntegrityError("a", "1", "x" * 64, "y" * 64)) == 1
    assert exit_code_for(exc.ConflictError("raced")) == 1
    assert exit_code_for(FileNotFoundError("nope")) == 1
    assert EXIT_CODES[exc.NotFoundError] is ExitCode.NOT_FOUND
    assert len({int(c) for c in ExitCode}) == len(ExitCode)


# -- put, publish, versions, names ---------------------------------------------------


def test_put_from_file_publish_versions_names(cli: Run, endpoint_url: str, tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"model v1")
    put = as_json(
        cli(
            "put", "model", str(source),
            "--content-type", "application/octet-stream",
            "--meta", "schema=1", "--meta", "owner=data",
            "--tag", "team=ml",
            "--json",
        )
    )  # fmt: skip
    assert put["name"] == "model"
    assert put["version"] == "LATEST"
    assert put["sha256"] == hashlib.sha256(b"model v1").hexdigest()
    assert put["size"] == 8
    assert put["content_type"] == "application/octet-stream"
    assert put["metadata"] == {"schema": "1", "owner": "data"}
    assert put["update_at"].endswith("+00:00")

    async def tags(_: Repository) -> dict[str, str]:
        async with get_session().create_client(
            "s3", region_name=REGION, endpoint_url=endpoint_url
        ) as s3:
            key = put["s3uri"].removeprefix(f"s3://{BUCKET}/")
            got = await s3.get_object_tagging(Bucket=BUCKET, Key=key)
        return {t["Key"]: t["Value"] for t in got["TagSet"]}

    assert in_repo(endpoint_url, tags) == {"team": "ml"}

    published = as_json(cli("publish", "model", "--json"))
    assert published["version"] == "1"
    assert published["sha256"] == put["sha256"]
    source.write_bytes(b"model v2")
    cli("put", "model", str(source))
    assert as_json(cli("publish", "model", "--json"))["version"] == "2"

    listed = as_json(cli("versions", "model", "--json"))
    assert [a["version"] for a in listed] == ["LATEST", "2", "1"]
    assert listed[2]["metadata"] == {"schema": "1", "owner": "data"}
    assert as_json(cli("names", "--json")) == ["model"]

    human = cli("versions", "model").stdout
    assert "version" in human
    assert "LATEST" in human
    assert published["sha256"][:12] in human
    assert cli("names").stdout == "model\n"
    assert "sha256" in cli("publish", "model").stdout

    # what the CLI wrote is what the API reads
    latest = in_repo(endpoint_url, lambda r: r.get_artifact_version("model"))
    assert latest.sha256 == hashlib.sha256(b"model v2").hexdigest()
    assert in_repo(endpoint_url, lambda r: r.get_content("model", 1)) == b"model v1"


def test_empty_listings(cli: Run, tmp_path: Path) -> None:
    assert as_json(cli("names", "--json")) == []
    body = tmp_path / "body"
    body.write_bytes(b"v1")
    cli("put", "unaliased", str(body))
    assert as_json(cli("alias", "list", "unaliased", "--json")) == []
    assert cli("alias", "list", "unaliased").stderr == "'unaliased' has no aliases\n"


def test_aliases_of_a_missing_artifact_exit_3_like_its_versions(cli: Run) -> None:
    """A mistyped name is not an artifact without aliases: it is one that is not there."""
    for args in (("alias", "list", "nothing"), ("alias", "list", "nothing", "--json")):
        result = cli(*args, code=ExitCode.NOT_FOUND)
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            "error: artifact 'nothing' not found: `versioned-async put nothing FILE` creates it"
        ]


def test_versions_of_a_missing_artifact_exits_3_like_get(cli: Run) -> None:
    for args in (("versions", "nothing"), ("versions", "nothing", "--json")):
        result = cli(*args, code=ExitCode.NOT_FOUND)
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            "error: artifact 'nothing' not found: `versioned-async put nothing FILE` creates it"
        ]
    assert_one_error_line(cli("get", "nothing", code=ExitCode.NOT_FOUND), "'nothing'")
    cli("put", "something", input=b"x")
    assert [a["version"] for a in as_json(cli("versions", "something", "--json"))] == ["LATEST"]


def test_binary_content_round_trips_through_stdin_and_stdout(cli: Run) -> None:
    data = bytes(range(256)) * 16
    put = as_json(cli("put", "blob", "-", "--json", input=data))
    assert put["sha256"] == hashlib.sha256(data).hexdigest()
    assert put["size"] == len(data)
    got = cli("get", "blob", "-o", "-")
    assert got.stdout_bytes == data
    assert got.stderr == ""
    assert cli("get", "blob").stdout_bytes == data  # -o - is the default

    cli("put", "blob", input=data[::-1])  # FILE omitted: stdin
    assert cli("get", "blob").stdout_bytes == data[::-1]


def test_large_stdin_is_spooled_and_streamed(cli: Run) -> None:
    data = os.urandom(17 << 20)  # beyond what put keeps in memory
    put = as_json(cli("put", "big", "--json", input=data))
    assert put["sha256"] == hashlib.sha256(data).hexdigest()
    assert put["size"] == len(data)
    assert cli("get", "big").stdout_bytes == data


# -- get -----------------------------------------------------------------------------


def test_get_by_version_and_by_alias_with_routing_key(
    cli: Run, endpoint_url: str, tmp_path: Path
) -> None:
    for body in (b"one", b"two"):
        cli("put", "db", input=body)
        cli("publish", "db")
    cli("put", "db", input=b"latest")
    cli("alias", "set", "db", "prod", "1", "--canary", "2", "--weight", "50")

    out = tmp_path / "out.bin"
    result = cli("get", "db", "--version", "1", "-o", str(out))
    assert out.read_bytes() == b"one"
    assert result.stdout == ""
    assert str(out) in result.stderr
    cli("get", "db", "-o", str(out))
    assert out.read_bytes() == b"latest"

    prod: Alias = in_repo(endpoint_url, lambda r: r.get_alias("db", "prod"))
    contents = {"1": b"one", "2": b"two"}
    for key in ("user-1", "user-2", "user-3", "user-4", "user-5", "user-6"):
        cli("get", "db", "--alias", "prod", "--routing-key", key, "-o", str(out))
        assert out.read_bytes() == contents[prod.choose_version(key)], key
        piped = cli("get", "db", "--alias", "prod", "--routing-key", key).stdout_bytes
        assert piped == contents[prod.choose_version(key)], key


def test_get_through_the_cache_then_cache_stats_and_clear(cli: Run, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cli("put", "cfg", input=b"x" * 1000)
    cli("publish", "cfg")
    for _ in range(2):
        assert cli("--cache-dir", str(cache_dir), "get", "cfg", "--version", "1").stdout_bytes == (
            b"x" * 1000
        )
    stats = as_json(cli("--cache-dir", str(cache_dir), "cache", "stats", "--json"))
    assert stats["directory"] == str(cache_dir)
    assert stats["content_count"] == 1
    assert stats["content_bytes"] == 1000
    assert stats["size_limit"] > 0
    human = cli("cache", "stats", env={"VERSIONED_CACHE_DIR": str(cache_dir)}).stdout
    assert "1 items" in human

    cleared = cli("--cache-dir", str(cache_dir), "cache", "clear")
    assert "1 items" in cleared.stdout
    stats = as_json(cli("--cache-dir", str(cache_dir), "cache", "stats", "--json"))
    assert (stats["content_count"], stats["content_bytes"]) == (0, 0)

    result = cli("cache", "stats", code=2)
    assert "--cache-dir" in result.stderr


# -- aliases, resolve --------------------------------------------------------------


def test_alias_set_get_list_delete(cli: Run) -> None:
    for body in (b"a", b"b"):
        cli("put", "svc", input=body)
        cli("publish", "svc")
    made = as_json(cli("alias", "set", "svc", "prod", "1", "--json"))
    assert (made["alias"], made["version"], made["secondary_version"]) == ("prod", "1", None)
    canary = as_json(
        cli("alias", "set", "svc", "staging", "1", "--canary", "2", "--weight", "25", "--json")
    )
    assert (canary["secondary_version"], canary["secondary_version_weight"]) == ("2", 25)
    assert canary["secondary_version_s3uri"].startswith(f"s3://{BUCKET}/")

    got = as_json(cli("alias", "get", "svc", "staging", "--json"))
    assert got == canary
    assert [a["alias"] for a in as_json(cli("alias", "list", "svc", "--json"))] == [
        "prod",
        "staging",
    ]
    human = cli("alias", "list", "svc").stdout
    assert "staging" in human
    assert "25%" in human
    assert "prod" in cli("alias", "get", "svc", "prod").stdout

    cli("alias", "delete", "svc", "prod")
    assert [a["alias"] for a in as_json(cli("alias", "list", "svc", "--json"))] == ["staging"]
    assert_one_error_line(cli("alias", "get", "svc", "prod", code=3), "'prod'")


def test_resolve_routes_keys_from_stdin_sticky_and_by_weight(
    cli: Run, endpoint_url: str, tmp_path: Path
) -> None:
    for body in (b"v1", b"v2"):
        cli("put", "ranker", input=body)
        cli("publish", "ranker")
    cli("alias", "set", "ranker", "prod", "1", "--canary", "2", "--weight", "20")
    alias: Alias = in_repo(endpoint_url, lambda r: r.get_alias("ranker", "prod"))

    keys = [f"customer-{i}" for i in range(20_000)]
    text = "".join(f"{k}\n" for k in keys)
    result = cli("resolve", "ranker", "prod", input=text)
    lines = result.stdout.splitlines()
    assert len(lines) == len(keys)
    routes = [tuple(line.split("\t")) for line in lines]
    assert [k for k, _ in routes] == keys
    assert all(version == alias.choose_version(key) for key, version in routes)
    share = Counter(v for _, v in routes)["2"] / len(keys)
    sd = (0.2 * 0.8 / len(keys)) ** 0.5
    assert abs(share - 0.2) < 5 * sd, share

    # same answers from a file, from "-", and with CRLF line ends; no trailing newline needed
    key_file = tmp_path / "keys.txt"
    key_file.write_text(text)
    assert cli("resolve", "ranker", "prod", str(key_file)).stdout == result.stdout
    assert cli("resolve", "ranker", "prod", "-", input=text).stdout == result.stdout
    crlf = "\r\n".join(keys[:100])
    assert cli("resolve", "ranker", "prod", input=crlf).stdout.splitlines() == lines[:100]

    assert_one_error_line(cli("resolve", "ranker", "nope", input="k\n", code=3), "'nope'")


def test_resolve_without_a_canary_sends_every_key_to_the_version(cli: Run) -> None:
    cli("put", "m", input=b"1")
    cli("publish", "m")
    cli("alias", "set", "m", "prod", "1")
    out = cli("resolve", "m", "prod", input="a\nb\n\nc\n").stdout
    assert out == "a\t1\nb\t1\n\t1\nc\t1\n"


# -- purge ---------------------------------------------------------------------------


def test_purge_versions_keeps_newest_and_aliased(cli: Run) -> None:
    for i in range(4):
        cli("put", "p", input=f"v{i}".encode())
        cli("publish", "p")
    cli("alias", "set", "p", "prod", "1")
    nothing = as_json(cli("purge", "p", "--json"))  # defaults: keep 10, older than 90 days
    assert nothing["deleted"] == []
    assert nothing["purge_time"].endswith("+00:00")

    purged = as_json(cli("purge", "p", "--keep-last", "1", "--older-than-days", "0", "--json"))
    assert sorted(a["version"] for a in purged["deleted"]) == ["2", "3"]
    assert [a["version"] for a in as_json(cli("versions", "p", "--json"))] == ["LATEST", "4", "1"]
    assert (
        "nothing to purge" in cli("purge", "p", "--keep-last", "1", "--older-than-days", "0").stdout
    )
    assert_one_error_line(cli("purge", "p", "--keep-last", "-1", code=2))


def test_purge_dry_run_prints_the_plan_and_deletes_nothing(cli: Run) -> None:
    for i in range(3):
        cli("put", "p", input=f"v{i}".encode())
        cli("publish", "p")
    retention = ("--keep-last", "0", "--older-than-days", "0")
    planned = as_json(cli("purge", "p", *retention, "--dry-run", "--json"))
    assert planned["dry_run"] is True
    assert [a["version"] for a in planned["deleted"]] == ["3", "2", "1"]
    assert "would delete versions 3, 2, 1" in cli("purge", "p", *retention, "--dry-run").stdout
    assert [a["version"] for a in as_json(cli("versions", "p", "--json"))] == [
        "LATEST",
        "3",
        "2",
        "1",
    ]
    refused = cli("purge", "p", "--all", "--dry-run", code=2)
    assert "--dry-run plans a retention purge" in refused.stderr


def test_purge_all_asks_first(cli: Run) -> None:
    cli("put", "gone", input=b"x")
    cli("publish", "gone")
    cli("alias", "set", "gone", "prod", "1")

    declined = cli("purge", "gone", "--all", input="n\n", code=1)
    assert "Aborted" in declined.stderr
    assert as_json(cli("names", "--json")) == ["gone"]

    cli("purge", "gone", "--all", "--keep-last", "3", code=2)
    assert as_json(cli("names", "--json")) == ["gone"]

    cli("purge", "gone", "--all", input="y\n")
    assert as_json(cli("names", "--json")) == []
    # gone with its aliases: an alias left behind would be listed (exit 0)
    cli("alias", "list", "gone", "--json", code=ExitCode.NOT_FOUND)

    cli("put", "gone2", input=b"x")
    assert as_json(cli("purge", "gone2", "--all", "--yes", "--json")) == {
        "name": "gone2",
        "purged": True,
    }
    assert_one_error_line(cli("versions", "gone2", "--json", code=3), "'gone2' not found")


# -- errors --------------------------------------------------------------------------


def test_not_found_exits_3(cli: Run, endpoint_url: str) -> None:
    assert_one_error_line(cli("get", "missing", code=3), "'missing'")
    assert_one_error_line(cli("get", "missing", "--version", "7", code=3), "'7'")
    assert_one_error_line(cli("publish", "missing", code=3))
    assert_one_error_line(cli("alias", "set", "missing", "prod", "1", code=3))
    # not bootstrapped: another table
    result = invoke(endpoint_url, "--table", "no-such-table", "versions", "x")
    assert result.exit_code == 3, result.output
    assert_one_error_line(result, "bootstrap")


def test_errors_name_commands_and_flags_not_python_methods(cli: Run, endpoint_url: str) -> None:
    """The library's advice, in the words of the command line (str() keeps Python's)."""
    bootstrap = "; create the repository with `versioned-async bootstrap`"
    for args, env in (
        (("--table", "no-such-table", "versions", "x"), {}),
        (("--backend", "s3", "--bucket", "no-such-bucket", "names"), {"VERSIONED_TABLE": ""}),
    ):
        result = invoke(endpoint_url, *args, env=env)
        assert result.exit_code == ExitCode.NOT_FOUND, result.output
        assert_one_error_line(result)
        assert result.stderr.rstrip("\n").endswith(bootstrap), result.stderr
        assert "await" not in result.stderr
    cli("put", "my model", input=b"1")
    cli("publish", "my model")

    def says(code: int, *args: str) -> str:
        lines = cli(*args, code=code).stderr.splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    assert says(3, "alias", "get", "my model", "prod") == (
        "error: artifact 'my model' has no alias 'prod': "
        "`versioned-async alias set 'my model' prod VERSION` creates it"
    )
    set_prod = ("alias", "set", "my model", "prod", "1")
    assert says(2, *set_prod, "--canary", "LATEST", "--weight", "150") == (
        "error: --weight must be from 0 to 99 (percent of traffic), got 150"
    )
    assert says(2, *set_prod, "--canary", "LATEST") == (
        "error: --canary needs --weight: the percent of traffic (0 to 99) the canary gets"
    )
    assert says(2, *set_prod, "--weight", "10") == (
        "error: --weight goes with --canary: the version that gets that percent"
    )
    assert says(2, *set_prod, "--canary", "1", "--weight", "10") == (
        "error: version '1' and --canary '1' must differ"
    )
    assert says(2, "get", "my model", "--version", "1", "--alias", "prod") == (
        "error: give --version or --alias, not both"
    )


def test_content_type_actor_and_a_missing_folder_are_named_as_flags_and_commands(
    cli: Run, tmp_path: Path
) -> None:
    cli("put", "m", input=b"1")
    cli("publish", "m")
    cli("put", "m", input=b"2")
    cli("publish", "m")
    cli("alias", "set", "m", "prod", "1")
    result = cli("put", "m", "--content-type", "bad", input=b"x", code=2)
    assert result.stderr.splitlines() == [
        "error: --content-type 'bad' must be a MIME type such as 'application/octet-stream' "
        "(printable ASCII, no trailing white space)"
    ]
    result = cli("rollout", "m", "prod", "2", "--actor", "a" * 1025, code=2)
    assert result.stderr.splitlines() == [
        "error: --actor must be at most 1024 characters, got 1025"
    ]
    missing = tmp_path / "no-such-dir"
    result = cli("get", "m", "-o", str(missing / "out"), code=1)
    assert result.stderr.splitlines() == [
        f"error: the folder {missing} does not exist: create it first "
        "(`versioned-async get -o` writes one file and creates no folders)"
    ]


def test_invalid_input_exits_2(cli: Run, tmp_path: Path) -> None:
    cli("put", "m", input=b"1")
    cli("publish", "m")
    assert_one_error_line(cli("put", "bad/name", input=b"x", code=2), "bad/name")
    assert_one_error_line(cli("get", "m", "--version", "latest-ish", code=2))
    assert_one_error_line(
        cli("alias", "set", "m", "prod", "1", "--canary", "LATEST", "--weight", "150", code=2),
        "150",
    )
    assert_one_error_line(cli("alias", "set", "m", "prod", "1", "--weight", "10", code=2))
    assert_one_error_line(cli("get", "m", "--version", "1", "--alias", "prod", code=2))
    # click usage errors: 2, with click's usage text
    assert "KEY=VALUE" in cli("put", "m", "--meta", "novalue", input=b"x", code=2).stderr
    assert "twice" in cli("put", "m", "--tag", "a=1", "--tag", "a=2", input=b"x", code=2).stderr
    assert "--alias" in cli("get", "m", "--routing-key", "k", code=2).stderr
    cli("put", "m", str(tmp_path / "does-not-exist"), code=2)
    cli("nonsense", code=2)
    assert "--bucket" in cli("names", env={"VERSIONED_BUCKET": ""}, code=2).stderr


def test_local_file_errors_exit_1(cli: Run, tmp_path: Path) -> None:
    cli("put", "m", input=b"1")
    result = cli("get", "m", "-o", str(tmp_path / "no-such-dir" / "out"), code=1)
    assert_one_error_line(result, "no-such-dir")


def test_integrity_error_exits_1(cli: Run, endpoint_url: str) -> None:
    cli("put", "m", input=b"original")
    published = as_json(cli("publish", "m", "--json"))

    async def tamper(_: Repository) -> None:
        async with get_session().create_client(
            "s3", region_name=REGION, endpoint_url=endpoint_url
        ) as s3:
            key = published["s3uri"].removeprefix(f"s3://{BUCKET}/")
            await s3.put_object(Bucket=BUCKET, Key=key, Body=b"tampered")

    in_repo(endpoint_url, tamper)
    result = cli("get", "m", "--version", "1", code=1)
    assert result.stdout_bytes == b""  # nothing unverified is written
    assert_one_error_line(result, "sha256")


def test_unreachable_backend_exits_4(endpoint_url: str) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    result = invoke(endpoint_url, "--endpoint-url", dead, "--max-attempts", "2", "names")
    assert result.exit_code == 4, result.output
    assert_one_error_line(result, "could not reach")
    result = invoke(dead, "get", "x", env={"VERSIONED_MAX_ATTEMPTS": "1"})
    assert result.exit_code == 4, result.output


def test_service_specific_endpoints_beat_aws_endpoint_url(endpoint_url: str) -> None:
    """As in botocore: AWS_ENDPOINT_URL_S3/_DYNAMODB win over AWS_ENDPOINT_URL."""
    dead = f"http://127.0.0.1:{closed_port()}"
    env = {
        "AWS_ENDPOINT_URL_S3": endpoint_url,
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint_url,
        "VERSIONED_MAX_ATTEMPTS": "1",
    }
    result = invoke(dead, "bootstrap", env=env)
    assert result.exit_code == 0, result.output
    # an explicit option still sends both services to it
    result = invoke(dead, "--endpoint-url", dead, "names", env=env)
    assert result.exit_code == 4, result.output


# -- real processes --------------------------------------------------------------------


def test_console_script_moves_a_large_file_without_progress_off_a_terminal(
    endpoint_url: str, tmp_path: Path
) -> None:
    assert SCRIPT, "the versioned-async console script is not installed: pip install -e ."
    env = script_env(endpoint_url)
    data = os.urandom(20 << 20)
    source, target = tmp_path / "big.bin", tmp_path / "copy.bin"
    source.write_bytes(data)
    steps = (
        [SCRIPT, "bootstrap"],
        [SCRIPT, "put", "big", str(source), "--json"],
        [SCRIPT, "publish", "big"],
        [SCRIPT, "get", "big", "--version", "1", "-o", str(target)],
    )
    outputs = []
    for argv in steps:
        done = subprocess.run(argv, env=env, capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        outputs.append(done)
    assert json.loads(outputs[1].stdout)["sha256"] == hashlib.sha256(data).hexdigest()
    assert outputs[1].stderr == b""
    assert outputs[3].stderr == f"wrote {target}\n".encode()
    for done in outputs:
        assert b"\x1b[" not in done.stderr  # no progress bar, no cursor control
        assert b"\r" not in done.stderr
    assert target.read_bytes() == data

    piped = subprocess.run(
        [SCRIPT, "get", "big", "-o", "-"], env=env, capture_output=True, timeout=60, check=False
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == data
    assert piped.stderr == b""

    missing = subprocess.run(
        [SCRIPT, "get", "nope"], env=env, capture_output=True, timeout=60, check=False
    )
    assert missing.returncode == 3
    assert missing.stderr.decode().startswith("error: ")
    assert b"Traceback" not in missing.stderr


def test_library_warnings_are_warning_lines_on_stderr(endpoint_url: str, tmp_path: Path) -> None:
    """A warning the library logs (here: a damaged cache file, fetched again) is one
    `warning:` line on stderr, not Python's bare last-resort output."""
    env = script_env(endpoint_url, VERSIONED_CACHE_DIR=str(tmp_path / "cache"))

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [SCRIPT, *args],
            env=env,
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done

    run("bootstrap")
    sha256 = json.loads(run("put", "m", "-", "--json", input="hello").stdout)["sha256"]
    run("publish", "m")
    first = tmp_path / "first"
    assert run("get", "m", "--version", "1", "-o", str(first)).stderr == f"wrote {first}\n"
    (stored,) = (tmp_path / "cache").rglob("*.val")
    stored.write_bytes(b"X")
    again = tmp_path / "again"
    done = run("get", "m", "--version", "1", "-o", str(again))
    assert done.stderr.splitlines() == [
        f"warning: cached content {sha256} is damaged; fetching it again",
        f"wrote {again}",
    ]
    assert again.read_bytes() == b"hello"


def test_library_log_lines_are_one_line_with_no_traceback() -> None:
    record = logging.LogRecord("versioned_async", logging.WARNING, "f", 1, "a %s\n b", ("x",), None)
    assert log_line(record) == "warning: a x b"
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        failed = logging.LogRecord(
            "versioned_async", logging.ERROR, "f", 1, "subscriber failed", (), sys.exc_info()
        )
    assert log_line(failed) == "error: subscriber failed: ValueError: bad thing"


def read_all(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: every writer closed the terminal
            return
        if not chunk:
            return
        into.extend(chunk)


def test_console_script_shows_progress_on_a_terminal(endpoint_url: str, tmp_path: Path) -> None:
    """The counterpart of the test above: with stderr on a terminal, a bar is drawn,
    with the bytes moved of the total (the last frame is drawn as the bar stops)."""
    env = script_env(endpoint_url, COLUMNS="120")
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(20 << 20))
    subprocess.run([SCRIPT, "bootstrap"], env=env, check=True, capture_output=True, timeout=60)
    for argv, bytes_shown in (
        # an upload reports each part as S3 takes it: the bar reaches the total
        ([SCRIPT, "put", "big", str(source)], "21.0/21.0 MB"),
        # the total, whatever the download reports on the way
        ([SCRIPT, "get", "big", "-o", "-"], "/21.0 MB"),
    ):
        returncode, stdout, seen = stderr_on_a_terminal(argv, env, timeout=60)
        assert returncode == 0
        assert "big (21.0 MB)" in seen, seen
        assert bytes_shown in seen, seen
        assert b"big (21.0 MB)" not in stdout  # progress goes to stderr only
        assert b"21.0 MB" not in stdout


def test_python_m_versioned_async_runs_the_same_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "versioned_async", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: python -m versioned_async" in done.stdout
    assert "serve-local" in done.stdout
    assert "Exit codes:" in done.stdout


def test_demo_calls_the_demo_with_its_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str | None, dict[str, object]]] = []

    def record(endpoint_url: str | None, **kwargs: object) -> None:
        calls.append((endpoint_url, kwargs))

    monkeypatch.setattr(versioned_async.demo, "main", record)
    assert CliRunner().invoke(main, ["demo"]).exit_code == 0
    result = CliRunner().invoke(main, ["demo", "--endpoint-url", "http://127.0.0.1:9"])
    assert result.exit_code == 0
    result = CliRunner().invoke(main, ["demo", "--aws", "--aws-bucket", "my-demo-bkt"])
    assert result.exit_code == 0
    assert [(endpoint, kw["aws"]) for endpoint, kw in calls] == [
        (None, False),
        ("http://127.0.0.1:9", False),
        (None, True),
    ]
    assert calls[2][1]["bucket"] == "my-demo-bkt"


@pytest.fixture
def serve_local() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [SCRIPT, "serve-local"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        exports: dict[str, str] = {}
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("export "):
                variable, _, value = line.removeprefix("export ").strip().partition("=")
                exports[variable] = value
            if line.startswith("then:"):
                break
        assert "AWS_ENDPOINT_URL" in exports, exports
        assert exports["AWS_ACCESS_KEY_ID"] == "testing"
        yield proc, exports["AWS_ENDPOINT_URL"]
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


def test_serve_local_runs_a_moto_server_until_stopped(
    serve_local: tuple[subprocess.Popen[str], str],
) -> None:
    proc, endpoint = serve_local
    assert endpoint.startswith("http://127.0.0.1:")
    assert invoke(endpoint, "bootstrap").exit_code == 0
    assert invoke(endpoint, "put", "hello", input=b"world").exit_code == 0
    assert as_json(invoke(endpoint, "names", "--json")) == ["hello"]
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    assert proc.stderr is not None
    assert "moto server stopped" in proc.stderr.read()


def test_serve_local_on_a_port_in_use_exits_at_once_and_names_the_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        done = subprocess.run(
            [SCRIPT, "serve-local", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == ExitCode.ERROR, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: port {port} on 127.0.0.1 is in use by another program: stop it, or pick "
        "another port with --port (--port 0 picks a free one)"
    ]


#: the command line in a process where moto cannot be imported (the `local` extra missing)
WITHOUT_MOTO = (
    "import sys; sys.modules['moto'] = None; "
    "from versioned_async.cli import main; main(prog_name='versioned-async')"
)


@pytest.mark.parametrize("command", ["serve-local", "demo"])
def test_without_the_local_extra_demo_and_serve_local_say_how_to_install_it(command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_MOTO, command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == ExitCode.ERROR, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        "error: the embedded moto server needs moto: pip install 'versioned_async[local]'"
    )
    if command == "demo":
        assert lines[0].endswith(
            "; or run the demo elsewhere: --endpoint-url URL (any S3 "
            "and DynamoDB endpoint), or --aws (your AWS account)"
        )


def stderr_on_a_terminal(
    argv: list[str], env: dict[str, str], *, timeout: float = 120
) -> tuple[int, bytes, str]:
    """Run ``argv`` with its stderr on a pseudo-terminal: its exit code, its stdout, and
    what it wrote on the terminal."""
    controller, terminal = pty.openpty()
    seen = bytearray()
    reader = threading.Thread(target=read_all, args=(controller, seen), daemon=True)
    reader.start()
    try:
        done = subprocess.run(
            argv, env=env, stdout=subprocess.PIPE, stderr=terminal, timeout=timeout, check=False
        )
    finally:
        os.close(terminal)
    reader.join(timeout=10)
    os.close(controller)
    return done.returncode, done.stdout, seen.decode().replace("\r\n", "\n")


def test_an_unreachable_endpoint_says_once_on_a_terminal_that_it_retries() -> None:
    """Backing off can take ~20 s before the error: a person at a terminal is told
    why, once; a pipe, --json and a call with no retry to make get no such line."""
    dead = f"http://127.0.0.1:{closed_port()}"
    env = script_env(dead)
    notice = f"warning: cannot reach {dead} (EndpointConnectionError); retrying..."

    code, _, stderr = stderr_on_a_terminal([SCRIPT, "--max-attempts", "3", "names"], env)
    assert code == ExitCode.UNAVAILABLE
    lines = stderr.splitlines()
    assert lines[0] == notice, stderr
    assert len(lines) == 2, stderr
    assert lines[1].startswith("error: "), stderr
    assert "could not reach" in lines[1]

    for argv in (
        [SCRIPT, "--max-attempts", "3", "names", "--json"],  # a program reads the output
        [SCRIPT, "--max-attempts", "1", "names"],  # nothing is retried
    ):
        code, _, stderr = stderr_on_a_terminal(argv, env)
        assert code == ExitCode.UNAVAILABLE
        assert [line[:7] for line in stderr.splitlines()] == ["error: "], stderr

    piped = subprocess.run(
        [SCRIPT, "--max-attempts", "3", "names"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert piped.returncode == ExitCode.UNAVAILABLE
    assert [line[:7] for line in piped.stderr.splitlines()] == ["error: "], piped.stderr
