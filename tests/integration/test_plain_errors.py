"""Issue 15, items 1, 6, 9 and 14: names the layouts list back, transport and
configuration errors as the library's own, and no credentials in what is shown.

* an alias name with a ``/`` (``team/prod``) is found by ``list_aliases`` on both
  backends, so a purge keeps the version it points at (as `versioned` 1.0 lists it);
  names whose key S3 clients would rewrite (``..`` segments, ``//``) are refused;
* a download cut on every attempt ends in ``BackendUnavailableError`` (CLI: exit 4,
  one ``error:`` line), the transport error chained;
* no region configured: a ``VersionedError`` saying how to give one (CLI: one line);
  ``download`` into a missing folder: ``InvalidArgumentError`` before any request;
* a password in ``endpoint_url`` never shows in a repr, an error or a log record.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from botocore import UNSIGNED

from tests.conftest import BUCKET, REGION, TABLE, RepoFactory
from tests.proxy import CountingProxy
from versioned_async import Repository, S3OnlyRepository, exc
from versioned_async._aws.s3 import MAX_RESUMES

# -- item 1: an alias with '/' is listed, so a purge protects its version ------------------


@pytest.mark.both_backends
async def test_an_alias_with_a_slash_is_listed_and_keeps_its_version(repo: Repository) -> None:
    await repo.put_artifact("m", b"one")
    await repo.publish_artifact_version("m")
    await repo.put_artifact("m", b"two")
    await repo.publish_artifact_version("m")
    await repo.put_alias("m", "team/prod", 1)
    assert [a.alias for a in await repo.list_aliases("m")] == ["team/prod"]
    _, deleted = await repo.purge_artifact_versions("m", keep_last_n=0, purge_older_than_secs=0)
    assert "1" not in [a.version for a in deleted]
    assert await repo.get_alias_content("m", "team/prod") == b"one"


@pytest.mark.both_backends
@pytest.mark.parametrize(
    "alias", ["../prod", "a/../prod", "./prod", "a/./b", "a//b", "/prod", "prod/", ".", ".."]
)
async def test_an_alias_whose_key_other_tools_read_as_another_path_is_refused(
    repo: Repository, alias: str
) -> None:
    """An empty segment (`versioned` drops it from the key: ``a//b`` is its ``a/b``) or a
    ``.``/``..`` one (a step up to ``aws s3 sync`` and mounts, another artifact's alias)."""
    await repo.put_artifact("m", b"x")
    with pytest.raises(exc.InvalidArgumentError, match="segment"):
        await repo.put_alias("m", alias)
    assert await repo.list_aliases("m") == []


async def test_a_nested_alias_versioned_wrote_is_listed(endpoint_url: str, s3: Any) -> None:
    """`versioned` 1.0 lists every object under ``aliases/`` (recursively): an alias
    ``team/prod`` it wrote is found here too, so our purge does not delete its version."""
    async with S3OnlyRepository(REGION, BUCKET, endpoint_url=endpoint_url) as repo:
        await repo.bootstrap()
        await repo.put_artifact("m", b"one")
        await repo.publish_artifact_version("m")
        await repo.put_artifact("m", b"two")
        await repo.publish_artifact_version("m")
        body = (
            b'{"name": "m", "alias": "team/prod", "update_at": "unknown", "version": "1", '
            b'"secondary_version": null, "secondary_version_weight": null, '
            b'"version_s3uri": "s3://x", "secondary_version_s3uri": null}'
        )
        await s3.put_object(
            Bucket=BUCKET, Key="versioned-artifacts/m/aliases/team/prod.json", Body=body
        )
        assert [a.alias for a in await repo.list_aliases("m")] == ["team/prod"]
        _, deleted = await repo.purge_artifact_versions("m", keep_last_n=0, purge_older_than_secs=0)
        assert [a.version for a in deleted] == ["2"]  # 1 is kept: team/prod points at it
        assert (await repo.get_alias("m", "team/prod")).version == "1"


# -- item 6: a download cut on every attempt ---------------------------------------------


async def _cut_every_get(proxy: CountingProxy, make_repo: RepoFactory) -> None:
    async with make_repo() as writer:
        await writer.bootstrap()
        await writer.put_artifact("big", os.urandom(1 << 20))
    proxy.cut_next(MAX_RESUMES + 5, op="GetObject", after_bytes=1000)


@pytest.mark.both_backends
@pytest.mark.parametrize("call", ["get_content", "download"])
async def test_a_download_cut_on_every_attempt_is_backend_unavailable(
    proxy: CountingProxy, make_repo: RepoFactory, tmp_path: Path, call: str
) -> None:
    await _cut_every_get(proxy, make_repo)
    async with make_repo(endpoint_url=proxy.endpoint_url) as repo:
        read = (
            repo.download("big", tmp_path / "big.bin")
            if call == "download"
            else repo.get_content("big")
        )
        with pytest.raises(exc.BackendUnavailableError, match="retry") as raised:
            await read
    assert raised.value.__cause__ is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == []


async def _run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "versioned_async",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _cli_env(endpoint_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        VERSIONED_BUCKET=BUCKET,
        VERSIONED_TABLE=TABLE,
        AWS_ENDPOINT_URL=endpoint_url,
        AWS_REGION=REGION,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    env.update(extra)
    return env


def _assert_one_error_line(code: int, stdout: str, stderr: str, expected: int) -> str:
    assert code == expected, stderr
    assert "Traceback" not in stderr + stdout, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


async def test_cli_a_download_cut_on_every_attempt_exits_4_with_one_line(
    proxy: CountingProxy, make_repo: RepoFactory, tmp_path: Path
) -> None:
    await _cut_every_get(proxy, make_repo)
    out = tmp_path / "big.bin"
    result = await _run_cli("get", "big", "-o", str(out), env=_cli_env(proxy.endpoint_url))
    line = _assert_one_error_line(*result, expected=4)
    assert "retry" in line
    assert not out.exists()


# -- item 9: no region; a missing folder ---------------------------------------------------


def _no_region(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)


async def test_no_region_is_a_versioned_error_saying_how_to_give_one(
    endpoint_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_region(monkeypatch)
    repo = Repository(None, BUCKET, dynamodb_table_name=TABLE, endpoint_url=endpoint_url)
    with pytest.raises(exc.InvalidArgumentError, match=r"aws_region=.*AWS_DEFAULT_REGION"):
        async with repo:
            pass
    assert not repo.is_open


async def test_cli_no_region_prints_one_line(endpoint_url: str) -> None:
    env = _cli_env(endpoint_url)
    del env["AWS_REGION"]
    line = _assert_one_error_line(*await _run_cli("names", env=env), expected=2)
    assert "--region" in line
    assert "AWS_DEFAULT_REGION" in line


@pytest.mark.both_backends
async def test_download_into_a_missing_folder_is_refused_before_any_request(
    repo: Repository, tmp_path: Path
) -> None:
    await repo.put_artifact("m", b"x")
    target = tmp_path / "no" / "such" / "folder" / "m.bin"
    with pytest.raises(exc.FolderNotFoundError, match="does not exist: create it") as raised:
        await repo.download("m", target)
    assert raised.value.path == str(target.parent)
    assert isinstance(raised.value, FileNotFoundError)  # what the call raised before
    assert ".part" not in str(raised.value)
    assert not (tmp_path / "no").exists()
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(exc.FolderNotFoundError, match="not a folder"):
        await repo.download("m", tmp_path / "file" / "m.bin")


# -- item 14: credentials in endpoint_url ----------------------------------------------------

SECRET = "s3cr3t-Pa55"


@pytest.mark.both_backends
async def test_a_password_in_endpoint_url_is_never_shown(
    make_repo: RepoFactory,
    endpoint_url: str,
    caplog: pytest.LogCaptureFixture,
    unused_tcp_port: int,
) -> None:
    host = endpoint_url.removeprefix("http://")
    repo = make_repo(endpoint_url=f"http://alice:{SECRET}@{host}")
    assert SECRET not in repr(repo)
    assert SECRET not in str(repo)
    assert "alice:***@" in repr(repo)
    # unsigned: aiohttp refuses a signed request to a URL with credentials before it
    # connects; an unsigned one connects, and botocore's error names the URL
    dead = make_repo(
        endpoint_url=f"http://alice:{SECRET}@127.0.0.1:{unused_tcp_port}",
        client_config=AioConfig(signature_version=UNSIGNED),
    )
    caplog.set_level(logging.DEBUG, logger="versioned_async")
    async with dead:
        with pytest.raises(exc.BackendUnavailableError) as raised:
            await dead.get_content("m")
    assert "alice:***@" in str(raised.value)
    err: BaseException | None = raised.value
    while err is not None:  # the error and everything chained to it
        assert SECRET not in str(err), repr(err)
        assert SECRET not in repr(err)
        err = err.__cause__ or err.__context__
    for record in caplog.records:
        assert SECRET not in record.getMessage()
