"""Outages in the middle of a write, and a process killed in the middle of a download
(issue "Reliability: faults").

For put, publish, alias move and purge, the request sequence of the call is first
recorded through the proxy. Then, for every ``k`` along it, a fresh artifact is set
up, the proxy goes down at the ``k``-th request (before forwarding it, or after the
server applied it but before the client hears back), and:

* the call raises ``BackendUnavailableError`` saying what failed and to retry;
* once the proxy is back, the repository is consistent: every visible version's
  content is in S3 and matches its sha256, aliases point at visible versions, an
  alias is wholly old or wholly new;
* retrying the same call (same ``Repository``) reaches the intended state, and a
  publish afterwards takes the next number: none skipped, none reused.

Every ``k`` is tried and every problem collected, so one run lists them all.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET, REGION, TABLE, RepoFactory, TableRepoFactory
from tests.proxy import CountingProxy
from versioned_async import ArtifactRepository, LocalCache, Repository, exc

MiB = 1 << 20
PREFIX = "versioned-artifacts"
ROOT = Path(__file__).resolve().parents[2]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content(name: str, n: int) -> bytes:
    return f"{name} content {n} ".encode() * (20 + n)


def stored(version: str) -> str:
    return version if version == "LATEST" else version.zfill(6)


@pytest.fixture
async def writer(make_table_repo: TableRepoFactory) -> AsyncIterator[Repository]:
    """Bypasses the proxy: sets up and audits."""
    async with make_table_repo() as repository:
        await repository.bootstrap()
        yield repository


# -- auditing ----------------------------------------------------------------------------


async def audit(writer: Repository, s3: Any, name: str) -> list[str]:
    """What is inconsistent about ``name``.

    Every visible version's ``get_content`` must pass its sha256 check and return what
    S3 holds; a numbered version's recorded sha256 must be its object's (it becomes
    visible only once its object is in place). LATEST's item may lag its object after a
    failed put, so for LATEST only reading it must work. Aliases point at visible versions.
    """
    problems: list[str] = []
    versions = await writer.list_artifact_versions(name)
    visible = {v.version for v in versions}
    for version in versions:
        what = f"version {version.version} (recorded sha256 {version.sha256[:12]})"
        try:
            raw = await s3.get_object(
                Bucket=BUCKET, Key=f"{PREFIX}/{name}/{stored(version.version)}"
            )
        except s3.exceptions.NoSuchKey:
            problems.append(f"{what}: its S3 object is missing")
            continue
        body = await raw["Body"].read()
        if version.version != "LATEST" and sha(body) != version.sha256:
            problems.append(f"{what}: the S3 object holds other content ({sha(body)[:12]})")
        try:
            got = await writer.get_content(name, version.version)
        except exc.VersionedError as err:
            problems.append(f"{what}, S3 object {sha(body)[:12]}: get_content raised {err!r}")
            continue
        if got != body:
            problems.append(f"{what}: get_content returned other bytes than S3 holds")
    for alias in await writer.list_aliases(name):
        for target in filter(None, (alias.version, alias.secondary_version)):
            if target not in visible:
                problems.append(f"alias {alias.alias} points at {target}, which is not visible")
    return problems


#: requests that change something
WRITE_OPS = frozenset(
    {
        "PutObject",
        "CopyObject",
        "DeleteObject",
        "DeleteObjects",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "TransactWriteItems",
        "BatchWriteItem",
    }
)


def coro_name(task: asyncio.Task[Any]) -> str:
    return str(getattr(task.get_coro(), "__qualname__", task))


def stray_tasks() -> list[asyncio.Task[Any]]:
    """Tasks of the library still running (a call that raised must not leave any)."""
    package = str(Path(exc.__file__).parent)
    current = asyncio.current_task()
    return [
        task
        for task in asyncio.all_tasks()
        if task is not current
        and not task.done()
        and getattr(getattr(task.get_coro(), "cr_code", None), "co_filename", "").startswith(
            package
        )
    ]


async def numbers(writer: Repository, name: str) -> list[int]:
    return sorted(
        int(v.version) for v in await writer.list_artifact_versions(name) if v.version.isdigit()
    )


def alias_state(alias: Any) -> tuple[str, str | None, int | None]:
    return (alias.version, alias.secondary_version, alias.secondary_version_weight)


# -- the writes under test -----------------------------------------------------------------


@dataclass
class Write:
    """One write op: how to set up its artifact, call it, and judge the outcome."""

    prepare: Callable[[Repository, str], Awaitable[None]]
    call: Callable[[Repository, str], Awaitable[Any]]
    #: problems with the state right after the failed call (beyond :func:`audit`)
    after_failure: Callable[[Repository, str], Awaitable[list[str]]]
    #: problems with the state after the retried call returned ``result``
    converged: Callable[[Repository, str, Any], Awaitable[list[str]]]
    #: the version number a publish after convergence must take
    next_number: Callable[[Repository, str], Awaitable[int]]
    #: requests the call must send, so the walk really covers its writes
    writes: tuple[str, ...]


# put_artifact: version 1 is the old content, LATEST is replaced by new content


async def put_prepare(writer: Repository, name: str) -> None:
    await writer.put_artifact(name, content(name, 1))
    await writer.publish_artifact_version(name)


async def put_call(repo: Repository, name: str) -> Any:
    return await repo.put_artifact(name, content(name, 2))


async def put_after_failure(writer: Repository, name: str) -> list[str]:
    latest = await writer.get_artifact_version(name)
    if latest.sha256 not in (sha(content(name, 1)), sha(content(name, 2))):
        return [f"LATEST records {latest.sha256[:12]}, neither the old nor the new content"]
    return []


async def put_converged(writer: Repository, name: str, result: Any) -> list[str]:
    problems = []
    if result.sha256 != sha(content(name, 2)):
        problems.append("the retried put_artifact returned another sha256")
    if await writer.get_content(name) != content(name, 2):
        problems.append("after the retried put_artifact LATEST is not the new content")
    return problems


async def put_next(writer: Repository, name: str) -> int:
    return 2


# publish: versions 1 and 2 exist, LATEST holds a third content


async def publish_prepare(writer: Repository, name: str) -> None:
    for n in (1, 2):
        await writer.put_artifact(name, content(name, n))
        await writer.publish_artifact_version(name)
    await writer.put_artifact(name, content(name, 3))


async def publish_call(repo: Repository, name: str) -> Any:
    return await repo.publish_artifact_version(name)


async def publish_after_failure(writer: Repository, name: str) -> list[str]:
    got = await numbers(writer, name)
    if got not in ([1, 2], [1, 2, 3]):
        return [f"after the failed publish the visible versions are {got}"]
    return []


async def publish_converged(writer: Repository, name: str, result: Any) -> list[str]:
    problems = []
    got = await numbers(writer, name)
    if got not in ([1, 2, 3], [1, 2, 3, 4]):
        problems.append(f"after the retried publish the visible versions are {got}, not 1..3(4)")
    if result.version != str(got[-1]):
        problems.append(f"the retried publish returned version {result.version}, top is {got[-1]}")
    if await writer.get_content(name, result.version) != content(name, 3):
        problems.append("the retried publish does not hold LATEST's content")
    return problems


async def publish_next(writer: Repository, name: str) -> int:
    return (await numbers(writer, name))[-1] + 1


# put_alias: prod -> 1 moves to prod -> 2 with a 25 % canary on 1

OLD_ALIAS = ("1", None, None)
NEW_ALIAS = ("2", "1", 25)


async def alias_prepare(writer: Repository, name: str) -> None:
    for n in (1, 2):
        await writer.put_artifact(name, content(name, n))
        await writer.publish_artifact_version(name)
    await writer.put_alias(name, "prod", 1)


async def alias_call(repo: Repository, name: str) -> Any:
    return await repo.put_alias(name, "prod", 2, secondary_version=1, secondary_version_weight=25)


async def alias_after_failure(writer: Repository, name: str) -> list[str]:
    state = alias_state(await writer.get_alias(name, "prod"))
    if state not in (OLD_ALIAS, NEW_ALIAS):
        return [f"alias prod is {state}: neither the old {OLD_ALIAS} nor the new {NEW_ALIAS}"]
    return []


async def alias_converged(writer: Repository, name: str, result: Any) -> list[str]:
    state = alias_state(await writer.get_alias(name, "prod"))
    if state != NEW_ALIAS or alias_state(result) != NEW_ALIAS:
        return [f"after the retried put_alias prod is {state}"]
    return []


async def alias_next(writer: Repository, name: str) -> int:
    return 3


# purge: versions 1..5, prod -> 2; keep the newest one: 1, 3 and 4 go, 2 and 5 stay


async def purge_prepare(writer: Repository, name: str) -> None:
    for n in range(1, 6):
        await writer.put_artifact(name, content(name, n))
        await writer.publish_artifact_version(name)
    await writer.put_alias(name, "prod", 2)


async def purge_call(repo: ArtifactRepository, name: str) -> Any:
    return await repo.purge_artifact_versions(name, keep_last_n=1, purge_older_than_secs=0)


async def purge_after_failure(writer: Repository, name: str) -> list[str]:
    got = set(await numbers(writer, name))
    if not {2, 5} <= got <= {1, 2, 3, 4, 5}:
        return [f"after the failed purge the visible versions are {sorted(got)}"]
    return []


async def purge_converged(writer: Repository, name: str, result: Any) -> list[str]:
    got = await numbers(writer, name)
    if got != [2, 5]:
        return [f"after the retried purge the visible versions are {got}, not [2, 5]"]
    return []


async def purge_next(writer: Repository, name: str) -> int:
    return 6


WRITES = {
    "put_artifact": Write(
        put_prepare,
        put_call,
        put_after_failure,
        put_converged,
        put_next,
        ("PutObject", "PutItem"),
    ),
    "publish_artifact_version": Write(
        publish_prepare,
        publish_call,
        publish_after_failure,
        publish_converged,
        publish_next,
        ("PutItem", "CopyObject", "UpdateItem"),
    ),
    "put_alias": Write(
        alias_prepare,
        alias_call,
        alias_after_failure,
        alias_converged,
        alias_next,
        ("TransactWriteItems",),
    ),
    "purge_artifact_versions": Write(
        purge_prepare,
        purge_call,
        purge_after_failure,
        purge_converged,
        purge_next,
        ("TransactWriteItems",),
    ),
}


# -- going down at every request of every write -------------------------------------------


async def request_sequence(
    write: Write, writer: Repository, repo: Repository, proxy: CountingProxy, name: str
) -> list[str]:
    """The requests one undisturbed call sends, in order."""
    await write.prepare(writer, name)
    proxy.reset_counts()
    await write.call(repo, name)
    return [r.op for r in proxy.requests]


async def outage_at(
    write: Write,
    writer: Repository,
    repo: Repository,
    proxy: CountingProxy,
    s3: Any,
    name: str,
    k: int,
    forward: bool,
) -> list[str]:
    """Go down at request ``k`` of the call on ``name``; the problems seen."""
    problems: list[str] = []
    await write.prepare(writer, name)
    proxy.reset_counts()
    proxy.go_down_at(k, forward=forward)
    try:
        await write.call(repo, name)
    except exc.BackendUnavailableError as err:
        message = str(err)
        if "retry" not in message.lower() or name not in message:
            problems.append(f"the error does not say what to retry: {message!r}")
    except exc.VersionedError as err:
        problems.append(f"raised {type(err).__name__}, not BackendUnavailableError: {err}")
    except Exception as err:
        problems.append(f"raised {err!r}, which is not a VersionedError")
    else:
        problems.append("returned normally although the proxy went down")
    finally:
        down_at = [r.op for r in proxy.requests if r.fault == "down"]
        raised_at = len(proxy.requests)
        stray = stray_tasks()
        proxy.clear_faults()
        proxy.come_back()
    if not down_at:
        return [f"never reached request {k}: {[r.op for r in proxy.requests]}"]
    if stray:  # let them land before the audit: did they write after the call raised?
        await asyncio.wait(stray, timeout=60)
        late = [r.op for r in proxy.requests[raised_at:] if r.op in WRITE_OPS and r.status]
        if late:
            names = sorted({coro_name(t) for t in stray})
            problems.append(
                f"the call raised, but tasks it left running ({', '.join(names)}) went on "
                f"writing once AWS was back: {late}"
            )
    problems += await audit(writer, s3, name)
    problems += await write.after_failure(writer, name)
    try:
        result = await write.call(repo, name)  # the caller retries, as the error told it
    except Exception as err:
        return [*problems, f"the retried call raised {err!r}"]
    problems += await write.converged(writer, name, result)
    problems += await audit(writer, s3, name)
    expected = await write.next_number(writer, name)
    try:
        after = await repo.publish_artifact_version(name)
    except Exception as err:
        return [*problems, f"the publish after convergence raised {err!r}"]
    if after.version != str(expected):
        problems.append(
            f"the next publish took version {after.version}, not {expected}: "
            f"{'a number was skipped' if int(after.version) > expected else 'a number reused'}"
        )
    return [f"{down_at[0]}: {p}" for p in problems]


@pytest.mark.parametrize("forward", [False, True], ids=["before-forwarding", "after-applied"])
@pytest.mark.parametrize("op", list(WRITES))
async def test_outage_at_every_request_leaves_a_consistent_repository(
    writer: Repository,
    make_proxied_table_repo: TableRepoFactory,
    proxy: CountingProxy,
    s3: Any,
    op: str,
    forward: bool,
) -> None:
    write = WRITES[op]
    failures: list[str] = []
    # two attempts: a lasting outage fails fast. With an actor, no STS call: its own
    # outage is covered in test_faults.py (an alias change goes on without it)
    async with make_proxied_table_repo(actor="outage-test") as repo:
        # the table's record is checked once per repository (issue 17): paid here, so
        # that every call's request sequence is the same (test_table_guard.py has the
        # outage at the check itself)
        await repo.check_table()
        sequence = await request_sequence(write, writer, repo, proxy, f"probe-{op[:7]}")
        assert set(write.writes) <= set(sequence), sequence
        for k in range(1, len(sequence) + 1):
            name = f"{op[:7]}-{k}"
            failures += [
                f"k={k}/{len(sequence)} {p}"
                for p in await outage_at(write, writer, repo, proxy, s3, name, k, forward)
            ]
    assert not failures, f"request sequence {sequence}:\n" + "\n".join(failures)


async def test_a_failed_purge_leaves_no_deletes_running(
    writer: Repository, make_proxied_repo: RepoFactory, proxy: CountingProxy
) -> None:
    """purge soft-deletes versions one transaction at a time. When one delete fails, the
    call raises: no other may go on behind the caller's back, or a delete lands after
    the caller was told the purge failed, racing whatever the caller does next (moving
    an alias onto that version, say)."""
    await purge_prepare(writer, "purge")  # 1..5, prod -> 2: 1, 3 and 4 are to go
    async with make_proxied_repo() as repo:
        proxy.reset_counts()
        # the first soft delete is refused outright
        proxy.inject_errors(1, 400, code="AccessDeniedException", op="TransactWriteItems")
        with pytest.raises(exc.BackendError) as info:
            await purge_call(repo, "purge")
        assert info.value.code == "AccessDeniedException"
        stray = stray_tasks()
        for task in stray:  # (clean up before asserting, so the test ends either way)
            task.cancel()
        await asyncio.gather(*stray, return_exceptions=True)
    assert [r.fault for r in proxy.requests if r.op == "TransactWriteItems"] == ["error"]
    assert not stray, (
        f"purge raised while {len(stray)} of its deletes were still running: "
        f"{sorted({coro_name(t) for t in stray})}"
    )


async def test_a_failed_put_leaves_no_request_running(
    writer: Repository, make_proxied_repo: RepoFactory, proxy: CountingProxy
) -> None:
    """put_artifact reads LATEST's object and item at once. When one read fails, the
    call raises, and the other must not go on behind the caller's back."""
    await writer.put_artifact("app", b"first")
    async with make_proxied_repo() as repo:
        await repo.check_table()  # once per repository (issue 17): not the GetItem meant
        proxy.reset_counts()
        proxy.stall_next(1, op="HeadObject")  # held until the client hangs up
        proxy.inject_errors(1, 400, code="AccessDeniedException", op="GetItem")
        with pytest.raises(exc.BackendError) as info:
            await repo.put_artifact("app", b"second")
        assert info.value.code == "AccessDeniedException"
        stray = stray_tasks()
        for task in stray:  # (clean up before asserting, so the test ends either way)
            task.cancel()
        await asyncio.gather(*stray, return_exceptions=True)
    assert not stray, (
        f"put_artifact raised while {len(stray)} of its requests were still running: "
        f"{sorted({coro_name(t) for t in stray})}"
    )


# -- a process SIGKILLed in the middle of a cached download ------------------------------

BIG = 4 * MiB + 4321
#: the proxy forwards this much of the body, then holds the rest until the reader dies
HELD_AT = 3 * MiB // 2

READER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from versioned_async import LocalCache, Repository

    async def main(directory, endpoint, mode, target):
        cache = LocalCache(directory)
        async with Repository(
            aws_region=%(region)r, s3_bucket=%(bucket)r, dynamodb_table_name=%(table)r,
            endpoint_url=endpoint, cache=cache,
        ) as repo:
            if mode == "get_content":
                await repo.get_content("big", 1)
            else:
                await repo.download("big", target, version=1)
        print("finished")

    asyncio.run(main(*sys.argv[1:]))
    """
) % {"region": REGION, "bucket": BUCKET, "table": TABLE}


def big_content() -> bytes:
    block = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(4096))
    return (block * (BIG // len(block) + 1))[:BIG]


def partial_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.part") if p.is_file())


@pytest.mark.parametrize("mode", ["get_content", "download"])
async def test_sigkill_during_a_cached_download_leaves_a_usable_cache(
    writer: Repository,
    make_repo: RepoFactory,
    proxy: CountingProxy,
    tmp_path: Path,
    mode: str,
) -> None:
    data = big_content()
    await writer.put_artifact("big", data)
    await writer.publish_artifact_version("big")
    directory = tmp_path / "cache"
    target = tmp_path / "out" / "big.bin"
    target.parent.mkdir()
    probe = LocalCache(directory)
    staging = probe._store.content.staging
    probe.close()

    proxy.reset_counts()
    proxy.cut_next(1, op="GetObject", after_bytes=HELD_AT, hold=math.inf)
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    reader = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        READER_SCRIPT,
        str(directory),
        proxy.endpoint_url,
        mode,
        str(target),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        def midway() -> bool:
            if reader.returncode is not None:
                raise AssertionError(f"the reader exited early ({reader.returncode})")
            held = [r for r in proxy.requests if r.op == "GetObject" and r.fault == "cut"]
            written = [p.stat().st_size for p in partial_files(staging)]
            return bool(held) and held[0].response_body_bytes == HELD_AT and any(written)

        await proxy.wait_for(midway, timeout=60, what="the reader to stage part of the body")
    finally:
        if reader.returncode is None:
            reader.send_signal(signal.SIGKILL)
        _, err = await reader.communicate()
    assert reader.returncode == -signal.SIGKILL, err.decode(errors="replace")

    leftovers = partial_files(staging)
    assert leftovers, "the killed reader left no partial download: nothing was tested"
    assert all(0 < p.stat().st_size < BIG for p in leftovers)
    assert not target.exists(), "a partial download appeared at the target path"

    # a new process's cache on the same directory
    cache = LocalCache(directory)
    async with make_repo(cache=cache) as repo:
        assert await repo.get_content("big", 1) == data
        assert cache.stats().downloads == 1, "served without downloading: a partial file?"
        assert cache.content_count == 1
        path = await cache._store.content.path(sha(data))
        assert path is not None
        assert Path(path).read_bytes() == data
        assert all(str(p) != path for p in leftovers)
        # ... and serves it again from disk
        assert await repo.get_content("big", 1) == data
        assert cache.stats().downloads == 1
        if mode == "download":
            assert (await repo.download("big", target, version=1)).read_bytes() == data
    for leftover in partial_files(staging):  # a fresh leftover may be another live process's
        assert leftover in leftovers
    cache.close()

    # once old enough to be a crashed process's, a leftover is swept when a cache opens
    stale = time.time() - 7200
    for leftover in partial_files(staging):
        os.utime(leftover, (stale, stale))
    LocalCache(directory).close()
    assert partial_files(staging) == []
