"""A cache that fails must cost a download, never the service (issue 15, items 5, 7, 8, 10).

* item 5: a version `versioned` 1.0 wrote has no size in its item; the cached
  lookup keeps the size measured when the content was downloaded, so a
  truncated cache file is still caught (with ``ttl=0`` too).
* item 7: a damaged ``cache.db`` is moved aside and rebuilt; a ``cache.db``
  locked by another process (a real subprocess in ``BEGIN EXCLUSIVE``) makes
  reads go to S3 after a short bounded wait, with a warning and a counter.
* item 8: a full disk (a real file-size limit, ``RLIMIT_FSIZE``, in a
  subprocess) makes cached reads serve from memory, and ``download`` raise
  :class:`~versioned_async.exc.DiskFullError` saying what to do.
* item 10: a download cut (or cancelled) while the lookup is already cached
  leaves nothing in ``staging/``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET, REGION, TABLE, RepoFactory
from tests.integration.conftest import FakeClock, fail_fast_config
from tests.interop import conftest as interop
from tests.proxy import CountingProxy
from versioned_async import LocalCache, Repository
from versioned_async.cache import BYPASS_SECONDS, SQLITE_TIMEOUT
from versioned_async.cache.database import Database
from versioned_async.exc import AliasNotFoundError, BackendUnavailableError

pytestmark = pytest.mark.both_backends

# `versioned` 1.0.1 on this test's moto server: the interop suite's fixtures, reused
aws_endpoint_env = interop.aws_endpoint_env
botocore_loader = interop.botocore_loader
bsm = interop.bsm
make_theirs = interop.make_theirs

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def big(seed: bytes, size: int) -> bytes:
    block = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(2048))
    return (block * (size // len(block) + 1))[:size]


def the_cached_file(cache: LocalCache) -> Path:
    (cached,) = (cache.directory / "content").rglob("*.val")
    return cached


def staged(cache: LocalCache) -> list[str]:
    return sorted(p.name for p in cache._store.content.staging.iterdir())


# -- item 5: versions `versioned` 1.0 wrote carry no size -----------------------------


async def test_a_truncated_cache_file_of_a_version_versioned_1_0_wrote_is_not_served(
    repo: Repository,
    make_repo: RepoFactory,
    make_theirs: Callable[..., Any],
    dynamodb: Any,
    tmp_path: Path,
) -> None:
    content = os.urandom(200_000)
    theirs = make_theirs(repo)
    theirs.put_artifact("app", content)
    theirs.publish_artifact_version("app")
    raw = await dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "app"}, "sk": {"S": "000001"}})
    assert "size" not in raw["Item"]  # as `versioned` 1.0 writes it
    cache = LocalCache(tmp_path / "cache", ttl=0)
    async with make_repo(cache=cache) as cached:
        assert await cached.get_content("app", 1) == content
        cached_file = the_cached_file(cache)
        cached_file.chmod(0o600)
        with cached_file.open("r+b") as handle:
            handle.truncate(100)
        # ttl=0: the lookup is revalidated against the size-less item, then the file read
        assert await cached.get_content("app", 1) == content
        assert cache.stats().downloads == 2
        assert await cached.get_content("app", 1) == content
        assert cache.stats().downloads == 2
        cached_file = the_cached_file(cache)
        cached_file.chmod(0o600)
        with cached_file.open("r+b") as handle:
            handle.truncate(100)
    # and within a TTL, from a new cache on the same directory (the lookup on disk)
    again = LocalCache(tmp_path / "cache", ttl=3600)
    async with make_repo(cache=again) as cached:
        assert await cached.get_content("app", 1) == content
        assert again.stats().downloads == 1


# -- item 10: a cut download with the lookup cached leaves no staging file ------------


@pytest.mark.parametrize("call", ["get_content", "download"])
async def test_a_cut_download_with_the_lookup_cached_leaves_nothing_in_staging(
    writer: Repository,
    make_repo: RepoFactory,
    proxy: CountingProxy,
    tmp_path: Path,
    call: str,
) -> None:
    content = big(b"cut", 2 * MiB + 7)
    await writer.put_artifact("big", content)
    await writer.publish_artifact_version("big")
    cache = LocalCache(tmp_path / "cache", ttl=3600)
    out = tmp_path / "out"
    out.mkdir()
    async with make_repo(
        cache=cache, endpoint_url=proxy.endpoint_url, client_config=fail_fast_config()
    ) as repo:
        assert await repo.get_content("big", 1) == content
        await cache._store.content.discard(sha(content))  # evicted: the lookup stays, fresh
        proxy.cut_next(50, op="GetObject", after_bytes=100_000, hold=0.0)
        read = (
            repo.get_content("big", 1)
            if call == "get_content"
            else repo.download("big", out / "big.bin", version=1)
        )
        with pytest.raises(BackendUnavailableError):
            await read
        proxy.clear_faults()
        assert staged(cache) == []
        assert sorted(out.iterdir()) == []
        # the cache still works
        assert await repo.get_content("big", 1) == content


async def test_a_cancelled_download_with_the_lookup_cached_leaves_nothing_in_staging(
    writer: Repository,
    make_repo: RepoFactory,
    proxy: CountingProxy,
    tmp_path: Path,
) -> None:
    content = big(b"cancel", 2 * MiB + 7)
    await writer.put_artifact("big", content)
    await writer.publish_artifact_version("big")
    cache = LocalCache(tmp_path / "cache", ttl=3600)
    async with make_repo(
        cache=cache, endpoint_url=proxy.endpoint_url, client_config=fail_fast_config()
    ) as repo:
        assert await repo.get_content("big", 1) == content
        await cache._store.content.discard(sha(content))
        proxy.cut_next(1, op="GetObject", after_bytes=MiB // 2, hold=math.inf)
        reading = asyncio.ensure_future(repo.get_content("big", 1))

        def midway() -> bool:
            assert not reading.done(), reading
            return any(p.stat().st_size > 0 for p in cache._store.content.staging.iterdir())

        await proxy.wait_for(midway, timeout=30, what="part of the body to be staged")
        # as asyncio.run() does at shutdown: every task is cancelled, the shared one too
        shared = list(cache._store.flights.in_flight())
        assert shared, "no shared download in flight: nothing was tested"
        for task in [reading, *shared]:
            task.cancel()
        for task in [reading, *shared]:
            with pytest.raises(asyncio.CancelledError):
                await task
        proxy.clear_faults()
        assert staged(cache) == []


# -- item 7: a damaged or locked cache.db -------------------------------------------


def moved_aside(db: Path) -> list[str]:
    """The damaged databases moved aside (without their -wal and -shm companions)."""
    found = db.parent.glob("cache.db.damaged-*")
    return sorted(p.name for p in found if not p.name.endswith(("-wal", "-shm")))


def _damage(db: Path, how: str) -> None:
    if how == "truncated":
        with db.open("r+b") as handle:
            handle.truncate(db.stat().st_size // 3)
    else:
        size = db.stat().st_size
        db.write_bytes(os.urandom(size))


@pytest.mark.parametrize("store", ["content", "lookups"])
@pytest.mark.parametrize("how", ["truncated", "garbage"])
async def test_a_damaged_cache_db_is_moved_aside_and_rebuilt(
    writer: Repository,
    make_repo: RepoFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    store: str,
    how: str,
) -> None:
    content = os.urandom(100_000)
    await writer.put_artifact("app", content)
    await writer.publish_artifact_version("app")
    directory = tmp_path / "cache"
    first = LocalCache(directory)
    async with make_repo(cache=first) as repo:
        assert await repo.get_content("app", 1) == content
    first.close()
    db = directory / store / "cache.db"
    _damage(db, how)

    with caplog.at_level(logging.WARNING, logger="versioned_async"):
        cache = LocalCache(directory)
    assert any("damaged" in r.getMessage() for r in caplog.records), caplog.text
    aside = moved_aside(db)
    assert len(aside) == 1, sorted(p.name for p in db.parent.iterdir())
    assert cache.stats().cache_errors == 1
    async with make_repo(cache=cache) as repo:
        assert await repo.get_content("app", 1) == content
        assert await repo.get_content("app", 1) == content
    assert cache.stats().downloads == 1
    assert cache.content_count == 1
    cache.close()
    # a second start finds a sound database: nothing more moved aside
    LocalCache(directory).close()
    assert moved_aside(db) == aside


async def test_a_cache_db_damaged_while_in_use_is_bypassed_then_rebuilt(
    writer: Repository,
    make_repo: RepoFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    contents = [os.urandom(60_000) for _ in range(3)]
    for content in contents:
        await writer.put_artifact("app", content)
        await writer.publish_artifact_version("app")
    clock = FakeClock()
    directory = tmp_path / "cache"
    cache = LocalCache(directory, ttl=0, clock=clock)
    async with make_repo(cache=cache) as repo:
        assert await repo.get_content("app", 1) == contents[0]
        db = directory / "lookups" / "cache.db"
        db.write_bytes(os.urandom(db.stat().st_size))  # under the open connections
        with caplog.at_level(logging.WARNING, logger="versioned_async"):
            assert await repo.get_content("app", 2) == contents[1]  # from S3
        assert cache.stats().cache_errors == 1
        assert "damaged" in caplog.text
        assert moved_aside(db) == []  # not while other threads may hold it
        # meanwhile reads go to S3 without trying the cache
        downloads = cache.stats().downloads
        assert await repo.get_content("app", 3) == contents[2]
        assert cache.stats().downloads == downloads
        # the bypass over, the database is checked, moved aside and started afresh
        clock.advance(BYPASS_SECONDS)
        assert await repo.get_content("app", 3) == contents[2]
        assert len(moved_aside(db)) == 1
        assert await repo.get_content("app", 3) == contents[2]
    assert cache.stats().cache_errors == 2  # the damage, then the rebuild


async def test_a_rebuilt_database_is_not_checked_again_at_every_reopen(
    writer: Repository, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """Once the fresh database passed its check, a later reopen does not run
    ``quick_check`` again."""
    contents = [os.urandom(60_000) for _ in range(2)]
    for content in contents:
        await writer.put_artifact("app", content)
        await writer.publish_artifact_version("app")
    clock = FakeClock()
    directory = tmp_path / "cache"
    cache = LocalCache(directory, ttl=0, clock=clock)
    async with make_repo(cache=cache) as repo:
        assert await repo.get_content("app", 1) == contents[0]
        db = directory / "lookups" / "cache.db"
        db.write_bytes(os.urandom(db.stat().st_size))
        assert await repo.get_content("app", 2) == contents[1]  # damage seen: bypassed
        clock.advance(BYPASS_SECONDS)
        assert await repo.get_content("app", 2) == contents[1]  # moved aside, rebuilt
        assert len(moved_aside(db)) == 1
        assert not cache._store.database._check_stores  # the fresh database passed its check
    cache.close()


async def test_a_process_still_on_a_moved_aside_database_keeps_its_cached_files(
    writer: Repository, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """Moving a damaged database aside leaves the content files: another process (here
    another LocalCache) may still read them through the database it has open."""
    content = os.urandom(100_000)
    await writer.put_artifact("app", content)
    await writer.publish_artifact_version("app")
    directory = tmp_path / "cache"
    first = LocalCache(directory, ttl=3600)
    async with make_repo(cache=first) as repo:
        assert await repo.get_content("app", 1) == content
        cached = the_cached_file(first)
        # the database is replaced by a damaged one; `first` keeps the one it has open
        db = directory / "content" / "cache.db"
        garbage = db.with_name("garbage")
        garbage.write_bytes(os.urandom(db.stat().st_size))
        os.replace(garbage, db)
        second = LocalCache(directory, ttl=3600)  # moves the damaged one aside
        assert len(moved_aside(db)) == 1
        assert cached.exists()  # the file `first` reads through its database
        # diskcache opens a connection per thread: a thread of `first` that opens one
        # now finds the fresh database, which may cost one download, never one a read
        for _ in range(5):
            assert await repo.get_content("app", 1) == content
        assert first.stats().downloads <= 2
    second.close()
    first.close()


async def test_content_whose_file_is_gone_from_under_its_row_is_stored_again(
    writer: Repository, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A row that outlived its file (removed by another process, or by hand) is
    replaced when the content is downloaded again, not left to send every read to S3."""
    content = os.urandom(100_000)
    await writer.put_artifact("app", content)
    await writer.publish_artifact_version("app")
    cache = LocalCache(tmp_path / "cache", ttl=3600)
    async with make_repo(cache=cache) as repo:
        assert await repo.get_content("app", 1) == content
        the_cached_file(cache).unlink()
        for _ in range(3):
            assert await repo.get_content("app", 1) == content
        assert cache.stats().downloads == 2
        assert cache.content_count == 1
        the_cached_file(cache)  # stored again
    cache.close()


@pytest.mark.dynamodb_layout("the cache directory, not the layout, is under test")
def test_damage_found_by_two_at_once_never_moves_aside_the_fresh_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two caches find the damage at once; the other one moves it aside and starts a
    fresh database first. The late one must leave that fresh database in place.

    The race is made certain: the late cache's move-aside first lets the other
    cache (a whole LocalCache on the same directory) do its own."""
    directory = tmp_path / "cache"
    LocalCache(directory).close()
    db = directory / "content" / "cache.db"
    _damage(db, "garbage")
    move_aside = Database._move_aside
    others: list[LocalCache] = []
    fresh: list[int] = []
    calls: list[Database] = []

    def the_other_goes_first(self: Database, *args: Any) -> None:
        calls.append(self)
        if len(calls) == 1:  # the late one: the other moves aside, starts a fresh one
            others.append(LocalCache(directory))
            fresh.append(db.stat().st_ino)
        move_aside(self, *args)

    monkeypatch.setattr(Database, "_move_aside", the_other_goes_first)
    late = LocalCache(directory)
    monkeypatch.undo()
    (other,) = others
    assert len(moved_aside(db)) == 1, moved_aside(db)
    # the database in place is the one the other cache started, which both use
    assert db.stat().st_ino == fresh[0]
    assert late.content_count == other.content_count == 0
    late.close()
    other.close()


LOCKER = textwrap.dedent(
    """
    import sqlite3, sys
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    con.execute("ROLLBACK")
    """
)


@pytest.fixture
def lock_db() -> Iterator[Callable[[Path], Callable[[], None]]]:
    """``release = lock_db(path)``: a real process holds ``BEGIN EXCLUSIVE`` on ``path``
    until ``release()`` or the end of the test."""
    lockers: list[subprocess.Popen[str]] = []

    def release(locker: subprocess.Popen[str]) -> None:
        assert locker.stdin is not None
        if not locker.stdin.closed:
            locker.stdin.close()
        assert locker.wait(timeout=30) == 0

    def lock(db: Path) -> Callable[[], None]:
        locker = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        lockers.append(locker)
        assert locker.stdout is not None
        assert locker.stdout.readline().strip() == "locked"
        return lambda: release(locker)

    yield lock
    for locker in lockers:
        release(locker)


@pytest.mark.parametrize("store", ["content", "lookups"])
@pytest.mark.parametrize("when", ["before start", "while running"])
async def test_a_locked_cache_db_degrades_reads_to_s3(
    writer: Repository,
    make_repo: RepoFactory,
    tmp_path: Path,
    lock_db: Callable[[Path], Callable[[], None]],
    caplog: pytest.LogCaptureFixture,
    store: str,
    when: str,
) -> None:
    contents = [os.urandom(50_000) for _ in range(2)]
    for content in contents:
        await writer.put_artifact("app", content)
        await writer.publish_artifact_version("app")
    directory = tmp_path / "cache"
    LocalCache(directory).close()  # the databases exist
    db = directory / store / "cache.db"
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="versioned_async"):
        if when == "before start":
            lock_db(db)
            cache = LocalCache(directory, ttl=0)
        else:
            cache = LocalCache(directory, ttl=0)
        async with make_repo(cache=cache) as repo:
            if when == "while running":
                assert await repo.get_content("app", 1) == contents[0]
                lock_db(db)
            # a cold read and a revalidating one
            assert await repo.get_content("app", 2) == contents[1]
            assert await repo.get_content("app", 1) == contents[0]
            assert await repo.get_content("app", 2) == contents[1]
    took = time.monotonic() - started
    print(f"{store} locked {when}: 3 reads took {took:.2f} s")
    assert cache.stats().cache_errors >= 1
    assert any("cache" in r.getMessage() and "S3" in r.getMessage() for r in caplog.records), (
        caplog.text
    )


BUSY_WRITER = textwrap.dedent(
    """
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("CREATE TABLE IF NOT EXISTS busy_writer (n)")
    until = time.monotonic() + float(sys.argv[2])
    commits = 0
    while time.monotonic() < until:  # holds the write lock but for the instant between two
        con.execute("BEGIN IMMEDIATE")
        if not commits:
            print("busy", flush=True)
        con.execute("INSERT INTO busy_writer VALUES (?)", (commits,))
        time.sleep(0.2)
        con.execute("COMMIT")
        commits += 1
    print(commits, flush=True)
    """
)


#: how many times the scenario is set up when the read got the lock early (below)
CONTENTION_ATTEMPTS = 3


@pytest.mark.parametrize("store", ["content", "lookups"])
async def test_a_cache_db_other_processes_keep_writing_to_is_waited_for_not_bypassed(
    writer: Repository, make_repo: RepoFactory, tmp_path: Path, store: str
) -> None:
    """Contention is not a locked cache: a process that keeps committing holds the write
    lock for longer than SQLITE_TIMEOUT in all, and a read waits for it instead of
    going around the cache (a stuck holder is bypassed: the test above).

    The busy writer releases the lock for an instant between two transactions, and on
    a loaded machine the read can take it there before a full SQLITE_TIMEOUT has
    passed: such a run says nothing about contention (and the read was still not
    bypassed, which is checked), so the scenario is set up again, in a fresh cache,
    until one read did wait longer than a stuck lock is waited for."""
    await writer.put_artifact("app", b"content")
    waits: list[float] = []
    for attempt in range(CONTENTION_ATTEMPTS):
        directory = tmp_path / f"cache-{attempt}"
        cache = LocalCache(directory)  # opened: what waits below is a write transaction
        busy_for = 1.5 * SQLITE_TIMEOUT  # longer than a stuck lock is waited for
        busy = subprocess.Popen(  # noqa: ASYNC220 (it runs beside the test, which reads its lines)
            [sys.executable, "-c", BUSY_WRITER, str(directory / store / "cache.db"), str(busy_for)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert busy.stdout is not None
            assert busy.stdout.readline().strip() == "busy"
            started = time.monotonic()
            async with make_repo(cache=cache) as repo:
                assert await repo.get_content("app") == b"content"
                took = time.monotonic() - started
                assert await repo.get_content("app") == b"content"
            commits = int(busy.stdout.readline())
        finally:
            busy.kill()
            busy.wait()
        print(f"{store}: the read waited {took:.2f} s for a writer that committed {commits} times")
        # whether it waited long or got in early, the cache was used, not gone around
        assert cache.stats().cache_errors == 0
        assert (cache.stats().downloads, cache.content_count) == (1, 1)
        cache.close()
        waits.append(took)
        if took > SQLITE_TIMEOUT:  # the lock was busy for longer than a stuck one is waited for
            break
    assert max(waits) > SQLITE_TIMEOUT, f"no read met the contention in {waits}"


@pytest.mark.parametrize("call", ["get_content", "download"])
async def test_content_downloaded_but_not_storable_is_served_from_memory(
    writer: Repository,
    make_repo: RepoFactory,
    proxy: CountingProxy,
    tmp_path: Path,
    lock_db: Callable[[Path], Callable[[], None]],
    caplog: pytest.LogCaptureFixture,
    call: str,
) -> None:
    """The content store is locked after the download started: the verified download
    is served (or written to the file asked for) as it is, not fetched a second time."""
    content = os.urandom(300_000)
    await writer.put_artifact("app", content)
    await writer.publish_artifact_version("app")
    directory = tmp_path / "cache"
    cache = LocalCache(directory)
    target = tmp_path / "out.bin"
    async with make_repo(cache=cache, endpoint_url=proxy.endpoint_url) as repo:
        lock_db(directory / "content" / "cache.db")
        proxy.reset_counts()
        with caplog.at_level(logging.WARNING, logger="versioned_async"):
            if call == "get_content":
                assert await repo.get_content("app", 1) == content
            else:
                assert await repo.download("app", target, version=1) == target
                assert target.read_bytes() == content
                assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "out.bin"]
    assert proxy.count("GetObject") == 1
    assert cache.stats().cache_errors == 1
    assert staged(cache) == []
    assert "locked" in caplog.text


async def test_an_alias_deleted_while_the_cache_is_bypassed_is_not_served_after(
    writer: Repository,
    make_repo: RepoFactory,
    tmp_path: Path,
    lock_db: Callable[[Path], Callable[[], None]],
) -> None:
    """A lookup forgotten while the cache could not be written (bypassed) must not come
    back from disk once the cache is used again, even within its TTL."""
    contents = [os.urandom(20_000) for _ in range(2)]
    for content in contents:
        await writer.put_artifact("app", content)
        await writer.publish_artifact_version("app")
    await writer.put_alias("app", "prod", 1)
    clock = FakeClock()
    directory = tmp_path / "cache"
    cache = LocalCache(directory, ttl=3600, clock=clock)
    async with make_repo(cache=cache) as repo:
        assert await repo.get_alias_content("app", "prod") == contents[0]  # on disk now
        release = lock_db(directory / "lookups" / "cache.db")
        assert await repo.get_content("app", 2) == contents[1]  # the lookups fail: bypassed
        assert cache._store.database.bypassed
        await repo.delete_alias("app", "prod")  # forgotten in memory; disk not writable
        with pytest.raises(AliasNotFoundError):
            await repo.get_alias_content("app", "prod")
        release()
        clock.advance(BYPASS_SECONDS)  # the cache is tried again, its entries in their TTL
        assert not cache._store.database.bypassed
        with pytest.raises(AliasNotFoundError):
            await repo.get_alias_content("app", "prod")
        # and the next write takes the old entry off the disk, for other processes too
        assert await repo.get_content("app", 2) == contents[1]
        await repo.put_alias("app", "canary", 2)
    cache.close()
    again = LocalCache(directory, ttl=3600, clock=clock)
    async with make_repo(cache=again) as repo:
        with pytest.raises(AliasNotFoundError):
            await repo.get_alias_content("app", "prod")
    again.close()


# -- item 8: a full disk -------------------------------------------------------------

FULL_DISK_SCRIPT = textwrap.dedent(
    """
    import asyncio, logging, resource, signal, sys
    from versioned_async import LocalCache, Repository, exc

    directory, endpoint, target, limit = sys.argv[1:5]
    open_when_full = sys.argv[5:] == ["open-when-full"]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if not open_when_full:
        cache = LocalCache(directory)  # opened before the disk "fills"
    # every file this process writes stops growing at `limit` bytes: EFBIG, as a full disk
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))
    if open_when_full:
        cache = LocalCache(directory)  # its databases cannot even be created

    async def main():
        async with Repository(
            aws_region=%(region)r, s3_bucket=%(bucket)r, dynamodb_table_name=%(table)r,
            endpoint_url=endpoint, cache=cache,
        ) as repo:
            body = await repo.get_content("big", 1)
            print("get_content", len(body), cache.stats().cache_errors, flush=True)
            try:
                await repo.download("big", target, version=1)
            except exc.DiskFullError as err:
                print("download DiskFullError", err, flush=True)

    asyncio.run(main())
    """
) % {"region": REGION, "bucket": BUCKET, "table": TABLE}


@pytest.mark.dynamodb_layout("the disk, not the layout, is under test")
@pytest.mark.parametrize(
    "limit",
    [
        pytest.param(MiB, id="content-does-not-fit"),
        # no SQLite write fits either: "database or disk is full" (SQLITE_FULL)
        pytest.param(4096, id="database-does-not-fit"),
    ],
)
async def test_a_full_disk_serves_cached_reads_from_memory_and_download_says_so(
    writer: Repository, endpoint_url: str, tmp_path: Path, limit: int
) -> None:
    content = big(b"full", 3 * MiB)
    await writer.put_artifact("big", content)
    await writer.publish_artifact_version("big")
    directory = tmp_path / "cache"
    target = tmp_path / "out.bin"
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-c",
            FULL_DISK_SCRIPT,
            str(directory),
            endpoint_url,
            str(target),
            str(limit),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"get_content {len(content)} 1", done.stdout + done.stderr
    assert lines[1].startswith("download DiskFullError"), done.stdout + done.stderr
    assert "free space" in lines[1], lines[1]
    assert str(target) in lines[1], lines[1]
    assert "Traceback" not in done.stderr, done.stderr
    # the warning, once; SQLite reports a write past the file-size limit as an I/O error
    # (a real ENOSPC as "database or disk is full": see tests/unit/test_cache_errors.py)
    assert ("full disk" if limit == MiB else "disk I/O error") in done.stderr, done.stderr
    assert "free space" in done.stderr, done.stderr
    assert done.stderr.count("WARNING") == 1, done.stderr
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no part left beside
    assert sorted((directory / "staging").iterdir()) == []


@pytest.mark.dynamodb_layout("the disk, not the layout, is under test")
async def test_a_cache_that_cannot_be_created_on_a_full_disk_is_not_called_locked(
    writer: Repository, endpoint_url: str, tmp_path: Path
) -> None:
    """The warning names the disk, not another process holding the database."""
    content = big(b"full", 300_000)
    await writer.put_artifact("big", content)
    await writer.publish_artifact_version("big")
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    script = [sys.executable, "-c", FULL_DISK_SCRIPT, str(tmp_path / "cache"), endpoint_url]
    done = await asyncio.to_thread(
        subprocess.run,
        [*script, str(tmp_path / "out.bin"), "0", "open-when-full"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"get_content {len(content)} 1", done.stdout
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, done.stderr
    assert "locked" not in warnings[0], warnings[0]
    assert "fuser" not in warnings[0], warnings[0]
    assert "free space" in warnings[0], warnings[0]


#: the CLI, in a process whose every file stops at argv[1] bytes (EFBIG), as on a full
#: disk (SIGXFSZ ignored, so that the write fails instead of killing the process)
CLI_ON_A_FULL_DISK = textwrap.dedent(
    """
    import resource, runpy, signal, sys
    limit = int(sys.argv.pop(1))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sys.argv[0] = "versioned-async"
    runpy.run_module("versioned_async", run_name="__main__")
    """
)


@pytest.mark.dynamodb_layout("the disk, not the layout, is under test")
async def test_the_cli_says_the_disk_is_full_in_one_line(
    writer: Repository, endpoint_url: str, tmp_path: Path
) -> None:
    content = big(b"cli", 3 * MiB)
    await writer.put_artifact("big", content)
    await writer.publish_artifact_version("big")
    directory = tmp_path / "cache"
    LocalCache(directory).close()
    target = tmp_path / "out.bin"
    command = [
        *(sys.executable, "-c", CLI_ON_A_FULL_DISK, str(MiB), "--bucket", BUCKET),
        *("--table", TABLE),
        *("--region", REGION, "--endpoint-url", endpoint_url, "--cache-dir", str(directory)),
        *("get", "big", "--version", "1", "-o", str(target)),
    ]
    done = await asyncio.to_thread(
        subprocess.run,
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: no space left to write {target}"), line
    assert "free space" in line
    assert not target.exists()
