"""Security: names stay in their key space, the cache stays private, credentials stay unlogged."""

from __future__ import annotations

import logging
import os
import stat
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import BUCKET, TABLE, RepoFactory, TableRepoFactory
from tests.integration.conftest import FakeClock
from tests.proxy import CountingProxy
from versioned_async import LocalCache, Repository, exc

PREFIX = "tenant-a"
#: objects of a neighbour under a sibling prefix and at the bucket's root: never touched
DECOYS = {
    "tenant-b/app/LATEST": b"neighbour",
    "tenant-a-app/LATEST": b"prefix look-alike",
    "app/LATEST": b"root",
}


# -- names never escape their key space ------------------------------------------------------

printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
hostile_names = st.one_of(
    st.sampled_from(
        [
            "..",
            ".",
            "../tenant-b",
            "..%2Ftenant-b",
            "%2e%2e",
            "%2E%2E%2F",
            "...",
            "....",
            "/",
            "//",
            "/tenant-b",
            "tenant-b/..",
            "a\\..\\..\\b",
            "..\\",
            "~",
            "~root",
            "?prefix=tenant-b",
            "#",
            "a b",
            "a+b",
            "*",
            "__tenant-b",
            "\x00",
            "a\x00/../b",
            "\u2024\u2024",  # one dot leader twice: looks like ".."
            "\uff0e\uff0e",  # fullwidth full stops
            "\u2215etc",  # division slash
            "x" * 200,
        ]
    ),
    st.text(st.sampled_from("./\\%2eEfF~?#&=+ a"), min_size=1, max_size=12),
    st.text(printable, min_size=1, max_size=40),
    st.text(max_size=12),
)


class Jail:
    """A cached repository under ``tenant-a/``, decoys around it, and a local directory
    holding only the cache (and a download folder) to watch for stray files."""

    def __init__(self, repo: Repository, cache: LocalCache, s3: Any, dynamodb: Any, root: Path):
        self.repo = repo
        self.cache = cache
        self.s3 = s3
        self.dynamodb = dynamodb
        self.root = root
        self.out = root / "out"

    async def keys(self) -> dict[str, str]:
        found: dict[str, str] = {}
        async for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            found.update({o["Key"]: o["ETag"] for o in page.get("Contents", ())})
        return found

    async def items(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        async for page in self.dynamodb.get_paginator("scan").paginate(TableName=TABLE):
            found += page["Items"]
        return found

    async def wipe_tenant(self) -> None:
        for key in await self.keys():
            if key.startswith(f"{PREFIX}/"):
                await self.s3.delete_object(Bucket=BUCKET, Key=key)
        for item in await self.items():
            await self.dynamodb.delete_item(
                TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]}
            )


@pytest.fixture
async def jail(
    make_table_repo: TableRepoFactory, s3: Any, dynamodb: Any, tmp_path: Path
) -> AsyncIterator[Jail]:
    root = tmp_path / "jail"
    (root / "out").mkdir(parents=True)
    cache = LocalCache(root / "cache")
    async with make_table_repo(s3_prefix=PREFIX, cache=cache) as repo:
        await repo.bootstrap()
        for key, body in DECOYS.items():
            await s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        yield Jail(repo, cache, s3, dynamodb, root)
    cache.close()


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=hostile_names)
@example(name="..")
@example(name="...")
@example(name="a\\..\\..\\b")
@example(name="%2e%2e")
async def test_names_never_escape_the_prefix_or_the_cache(jail: Jail, name: str) -> None:
    """Whatever the name, every object written is ``tenant-a/<name>/<version>``, every item
    is keyed by the name, the neighbours' objects are untouched, and locally nothing but
    the cache directory (and the file asked for) is written."""
    target = jail.out / "artifact.bin"
    target.unlink(missing_ok=True)
    await jail.wipe_tenant()  # what an earlier example wrote
    decoys = {k: v for k, v in (await jail.keys()).items() if k in DECOYS}
    assert set(decoys) == set(DECOYS)
    local_before = files_under(jail.root)
    content = f"content of {name!r}".encode()
    try:
        await jail.repo.put_artifact(name, content)
        accepted = True
    except exc.InvalidArgumentError:
        accepted = False
    if accepted:
        await jail.repo.publish_artifact_version(name)
        await jail.repo.put_alias(name, "prod", 1)
        assert await jail.repo.get_content(name, 1) == content
        assert await jail.repo.get_alias_content(name, "prod") == content
        await jail.repo.download(name, target, version=1)
        assert target.read_bytes() == content
    else:
        for call in (
            lambda: jail.repo.get_content(name, 1),
            lambda: jail.repo.get_alias_content(name, "prod"),
            lambda: jail.repo.publish_artifact_version(name),
            lambda: jail.repo.put_alias(name, "prod", 1),
            lambda: jail.repo.download(name, target, version=1),
        ):
            with pytest.raises(exc.InvalidArgumentError):
                await call()

    keys = await jail.keys()
    assert {k: v for k, v in keys.items() if k in DECOYS} == decoys, "a neighbour was changed"
    written = {k for k in keys if k not in DECOYS}
    expected = {f"{PREFIX}/{name}/LATEST", f"{PREFIX}/{name}/000001"} if accepted else set()
    assert written == expected
    pks = {item["pk"]["S"] for item in await jail.items()}
    assert pks == ({name, f"__{name}-alias", f"__{name}-alias-history"} if accepted else set())
    # locally: the cache's own tree, and out/artifact.bin when a download was asked for
    assert sorted(p.name for p in jail.root.iterdir()) == ["cache", "out"]
    assert [p.name for p in jail.out.iterdir()] == (["artifact.bin"] if accepted else [])
    new_local = files_under(jail.root) - local_before - {"out/artifact.bin"}
    assert all(p == "cache" or p.startswith("cache/") for p in new_local), new_local
    for path in (jail.root / "cache").rglob("*"):
        assert not path.is_symlink(), path
        assert path.resolve().is_relative_to((jail.root / "cache").resolve()), path


# -- the cache is private --------------------------------------------------------------------


@pytest.fixture
def umask() -> Iterator[int]:
    """The process umask before the test; it is put back afterwards, whatever the test set."""
    old = os.umask(0o022)
    os.umask(old)
    yield old
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o000], ids=["umask-022", "umask-000"])
async def test_cache_directory_is_0700_and_every_file_in_it_0600(
    make_repo: RepoFactory, tmp_path: Path, umask: int, mask: int
) -> None:
    os.umask(mask)
    directory = tmp_path / "cache"
    cache = LocalCache(directory)
    async with make_repo(cache=cache) as repo:
        await repo.bootstrap()
        for n in range(3):
            await repo.put_artifact("app", os.urandom(50_000 * (n + 1)))
            await repo.publish_artifact_version("app")
        await repo.put_alias("app", "prod", 1, 2, 50)
        cache.clear()
        for version in (1, 2, 3, None):
            await repo.get_content("app", version)
        await repo.get_alias_content("app", "prod", routing_key="user-1")
    cache.close()
    # a restart on the same directory, reading what the first one cached
    again = LocalCache(directory)
    async with make_repo(cache=again) as repo:
        await repo.get_content("app", 1)
    again.close()

    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "staging").stat().st_mode) == 0o700
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert any(p.suffix == ".val" for p in files), "no content file was cached"
    assert any(p.name == "cache.db" for p in files), "no SQLite file was found"
    modes = {str(p.relative_to(directory)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert {p: m for p, m in modes.items() if m != "0o600"} == {}
    folders = [p for p in directory.rglob("*") if p.is_dir()]
    assert len(folders) >= 4, "content/xx/yy levels were expected"
    folder_modes = {
        str(p.relative_to(directory)): oct(stat.S_IMODE(p.stat().st_mode)) for p in folders
    }
    assert {p: m for p, m in folder_modes.items() if m != "0o700"} == {}


async def test_an_existing_cache_directory_is_made_private(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    cache = LocalCache(directory)
    cache.close()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


# -- credentials are never logged ------------------------------------------------------------

ACCESS_KEY_ID = "AKIAVASECURITYTEST42"
SECRET_ACCESS_KEY = "vaSECRETkey0123456789abcdefghijklmnopqrs"
SESSION_TOKEN = "vaSESSIONtoken0123456789abcdefghijklmnop"


def record_texts(record: logging.LogRecord) -> list[str]:
    texts = [str(record.msg), repr(record.args), record.getMessage()]
    if record.exc_info:
        texts.append("".join(traceback.format_exception(*record.exc_info)))
    if record.exc_text:
        texts.append(record.exc_text)
    return texts


def exception_texts(err: BaseException) -> list[str]:
    texts = ["".join(traceback.format_exception(err))]
    seen: BaseException | None = err
    while seen is not None:  # every link of the chain, message and repr
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return texts


async def test_secret_key_never_appears_in_logs_or_errors(
    make_proxied_table_repo: TableRepoFactory,
    proxy: CountingProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    session = get_session()  # a new session: the shared one has resolved credentials already
    for logger in ("", "botocore", "aiobotocore", "aiohttp", "versioned_async"):
        caplog.set_level(logging.DEBUG, logger=logger)
    clock = FakeClock()
    cache = LocalCache(tmp_path / "cache", ttl=30.0, clock=clock)
    raised: list[BaseException] = []

    async with make_proxied_table_repo(session=session, cache=cache) as repo:
        await repo.bootstrap()
        await repo.put_artifact("app", b"one", "text/plain", {"k": "v"}, {"team": "a"})
        await repo.publish_artifact_version("app")
        await repo.put_alias("app", "prod", 1)
        assert await repo.get_alias_content("app", "prod") == b"one"
        assert await repo.get_content("app", 1) == b"one"
        await repo.list_artifact_versions("app")

        proxy.fail_next(1, 403, code="AccessDenied", op="PutObject")  # S3 refuses a write
        with pytest.raises(exc.BackendError) as refused:
            await repo.put_artifact("app", b"two")
        raised.append(refused.value)
        with pytest.raises(exc.ArtifactNotFoundError) as missing:
            await repo.get_content("app", 7)
        raised.append(missing.value)

        clock.now += 3600  # every lookup is stale; then AWS goes away
        proxy.go_down()
        assert await repo.get_alias_content("app", "prod") == b"one"  # served stale
        assert cache.stats().stale_serves >= 1
        with pytest.raises(exc.BackendUnavailableError) as unreachable:
            await repo.get_alias_content("app", "canary")  # never seen: nothing to serve
        raised.append(unreachable.value)
        with pytest.raises(exc.BackendUnavailableError) as write_down:
            await repo.put_artifact("app", b"three")
        raised.append(write_down.value)
        proxy.come_back()

    async with make_proxied_table_repo(
        session=session, dynamodb_table_name="no-such-table"
    ) as lost:
        with pytest.raises(exc.RepositoryNotFoundError) as no_table:
            await lost.get_artifact_version("app")
        raised.append(no_table.value)

    # the secret was really in play: it signed the requests the proxy saw
    credentials = await session.get_credentials()
    assert credentials.secret_key == SECRET_ACCESS_KEY
    assert all(ACCESS_KEY_ID in r.headers.get("authorization", "") for r in proxy.requests)
    # DEBUG logging really was on, botocore's included, and the stale serve was logged
    assert any(r.name.startswith("botocore") and r.levelno == logging.DEBUG for r in caplog.records)
    assert any("from the local cache" in r.getMessage() for r in caplog.records)

    for record in caplog.records:
        for text in record_texts(record):
            assert SECRET_ACCESS_KEY not in text, f"logged by {record.name}: {text[:500]}"
    for err in raised:
        for text in exception_texts(err):
            assert SECRET_ACCESS_KEY not in text, f"in {type(err).__name__}: {text[:500]}"
    assert SECRET_ACCESS_KEY not in caplog.text
