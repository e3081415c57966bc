"""The cache serves only the bytes it stored, from a directory only its user controls,
and a download lease dies with its holder (issue 15, items 4 and 11)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BUCKET, REGION, TABLE, RepoFactory
from tests.proxy import CountingProxy
from versioned_async import ArtifactRepository, LocalCache, exc

#: a user that is not us, for the "another user" cases (tests run as root in CI)
OTHER_UID = 65534


async def publish(repo: ArtifactRepository, name: str, content: bytes) -> str:
    await repo.put_artifact(name, content)
    return (await repo.publish_artifact_version(name)).version


def cached_file(cache: LocalCache, content: bytes) -> Path:
    """The one file in the content store holding ``content``, found by reading them all."""
    found = [p for p in (cache.directory / "content").rglob("*.val") if p.read_bytes() == content]
    assert len(found) == 1, found
    return found[0]


def replace_with_a_symlink(cache: LocalCache, content: bytes, folder: Path, filler: bytes) -> None:
    """Swap ``content``'s cached file for a symlink to other bytes of the same size."""
    path = cached_file(cache, content)
    forged = folder / "forged"
    forged.write_bytes(filler * len(content))
    path.unlink()
    path.symlink_to(forged)


# -- wrong bytes: a cached file replaced --------------------------------------------------


@pytest.mark.parametrize("ttl", [0.0, 30.0])
async def test_cached_file_replaced_by_other_bytes_of_the_same_size_is_downloaded_again(
    make_repo: RepoFactory, tmp_path: Path, ttl: float
) -> None:
    cache = LocalCache(tmp_path / "cache", ttl=ttl)
    async with make_repo(cache=cache) as repo:
        await repo.bootstrap()
        genuine = os.urandom(4096)
        version = await publish(repo, "app", genuine)
        assert await repo.get_content("app", version) == genuine
        path = cached_file(cache, genuine)
        forged = tmp_path / "forged"
        forged.write_bytes(b"x" * len(genuine))
        os.replace(forged, path)  # same size, same name, other bytes
        assert await repo.get_content("app", version) == genuine
        assert cache.stats().downloads == 2
        assert cache.stats().damaged_content == 1
        assert await repo.get_content("app", version) == genuine  # and it stays repaired
        assert cache.stats().downloads == 2


async def test_cached_file_replaced_by_a_symlink_is_not_followed(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    cache = LocalCache(tmp_path / "cache", ttl=0)
    async with make_repo(cache=cache) as repo:
        await repo.bootstrap()
        genuine = os.urandom(4096)
        version = await publish(repo, "app", genuine)
        assert await repo.get_content("app", version) == genuine
        replace_with_a_symlink(cache, genuine, tmp_path, filler=b"y")
        assert await repo.get_content("app", version) == genuine
        assert cache.stats().damaged_content == 1
        assert cache.stats().downloads == 2
        # the symlink was discarded, not served, and the content is cached afresh
        assert not any(p.is_symlink() for p in (cache.directory / "content").rglob("*"))


async def test_download_from_the_cache_refuses_a_replaced_file(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    cache = LocalCache(tmp_path / "cache", ttl=30)
    async with make_repo(cache=cache) as repo:
        await repo.bootstrap()
        genuine = os.urandom(4096)
        version = await publish(repo, "app", genuine)
        await repo.download("app", tmp_path / "first", version=version)
        replace_with_a_symlink(cache, genuine, tmp_path, filler=b"z")
        await repo.download("app", tmp_path / "second", version=version)
        assert (tmp_path / "second").read_bytes() == genuine
        assert cache.stats().damaged_content == 1


async def test_damage_found_by_the_background_touch_is_counted_before_the_read_returns(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    # the warm hit's touch and the read race for the replaced file: whichever finds it
    # (or finds it gone, removed by the other), the read returns with the damage counted
    cache = LocalCache(tmp_path / "cache", ttl=30)
    async with make_repo(cache=cache) as repo:
        await repo.bootstrap()
        for round_ in range(1, 61):
            genuine = os.urandom(4096)
            version = await publish(repo, "app", genuine)
            await repo.download("app", tmp_path / "first", version=version)
            replace_with_a_symlink(cache, genuine, tmp_path, filler=b"z")
            await repo.download("app", tmp_path / "second", version=version)
            assert (tmp_path / "second").read_bytes() == genuine
            assert cache.stats().damaged_content == round_


class SlowLogHandler(logging.Handler):
    """A log handler that takes its time (a file on a busy disk, a remote collector)."""

    def emit(self, record: logging.LogRecord) -> None:
        time.sleep(0.05)


@pytest.mark.parametrize("read", ["download", "get_content"])
async def test_damage_is_counted_before_the_read_returns_whatever_the_logging_costs(
    make_repo: RepoFactory, tmp_path: Path, read: str
) -> None:
    # a warm hit also marks the content used in the store, in a thread it does not
    # wait for; that thread may be the one that finds the damage, and its count must
    # not lag behind the read that already went to S3 (CI caught it once)
    logger = logging.getLogger("versioned_async")
    logger.addHandler(handler := SlowLogHandler())
    cache = LocalCache(tmp_path / "cache", ttl=30)
    try:
        async with make_repo(cache=cache) as repo:
            await repo.bootstrap()
            genuine = os.urandom(4096)
            version = await publish(repo, "app", genuine)
            await repo.download("app", tmp_path / "first", version=version)
            replace_with_a_symlink(cache, genuine, tmp_path, filler=b"z")
            if read == "download":
                await repo.download("app", tmp_path / "second", version=version)
                assert (tmp_path / "second").read_bytes() == genuine
            else:
                assert await repo.get_content("app", version) == genuine
            assert cache.stats().damaged_content == 1
    finally:
        logger.removeHandler(handler)


def rewrite_in_place(path: Path, content: bytes) -> None:
    """Other bytes in the same inode, with its mtime put back: only a re-hash can tell."""
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.write(content)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )


@pytest.mark.parametrize("how", ["get_content", "download"])
async def test_verify_on_read_catches_bytes_changed_in_place(
    make_repo: RepoFactory, tmp_path: Path, how: str
) -> None:
    cache = LocalCache(tmp_path / "cache", ttl=30, verify_on_read=True)
    async with make_repo(cache=cache) as repo:
        await repo.bootstrap()
        genuine = os.urandom(3 << 20)  # above the inline-read size: the threaded path
        version = await publish(repo, "app", genuine)
        assert await repo.get_content("app", version) == genuine
        rewrite_in_place(cached_file(cache, genuine), os.urandom(len(genuine)))
        if how == "get_content":
            assert await repo.get_content("app", version) == genuine
        else:
            target = await repo.download("app", tmp_path / "out", version=version)
            assert target.read_bytes() == genuine
        assert cache.stats().damaged_content == 1
        assert cache.stats().downloads == 2


async def test_without_verify_on_read_bytes_changed_keeping_inode_size_and_mtime_are_served(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """The default stays a file read: the same in-place rewrite (same inode, size and
    mtime) is not detected without ``verify_on_read``; docs/cache.md says so."""
    cache = LocalCache(tmp_path / "cache", ttl=30)
    assert cache.verify_on_read is False
    async with make_repo(cache=cache) as repo:
        await repo.bootstrap()
        genuine = os.urandom(4096)
        version = await publish(repo, "app", genuine)
        assert await repo.get_content("app", version) == genuine
        other = os.urandom(len(genuine))
        rewrite_in_place(cached_file(cache, genuine), other)
        assert await repo.get_content("app", version) == other
        assert cache.stats().downloads == 1


# -- the cache directory ------------------------------------------------------------------


def test_a_new_cache_directory_and_its_folders_are_private(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        cache = LocalCache(tmp_path / "a" / "cache")
    finally:
        os.umask(old)
    for folder in [cache.directory, *(p for p in cache.directory.rglob("*") if p.is_dir())]:
        assert stat.S_IMODE(folder.lstat().st_mode) == 0o700, folder


def test_an_open_directory_we_own_is_tightened(tmp_path: Path) -> None:
    LocalCache(tmp_path / "cache").close()
    (tmp_path / "cache").chmod(0o777)
    (tmp_path / "cache" / "content").chmod(0o777)
    cache = LocalCache(tmp_path / "cache")
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "cache" / "content").stat().st_mode) == 0o700
    cache.close()


def test_a_subfolder_swapped_for_a_symlink_is_refused(tmp_path: Path) -> None:
    LocalCache(tmp_path / "cache").close()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    staging = tmp_path / "cache" / "staging"
    staging.rmdir()
    staging.symlink_to(elsewhere)
    with pytest.raises(exc.VersionedError) as raised:
        LocalCache(tmp_path / "cache")
    assert isinstance(raised.value, exc.CacheDirectoryError)
    assert raised.value.path == str(staging)
    assert "symbolic link" in str(raised.value)
    assert "another cache directory" in str(raised.value)


def test_a_content_folder_swapped_for_a_symlink_is_refused(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path / "cache")
    (cache.directory / "content" / "ab").mkdir(mode=0o700)
    cache.close()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (cache.directory / "content" / "ab").rmdir()
    (cache.directory / "content" / "ab").symlink_to(elsewhere)
    with pytest.raises(exc.VersionedError) as raised:
        LocalCache(tmp_path / "cache")
    assert isinstance(raised.value, exc.CacheDirectoryError)


@pytest.fixture
def as_root() -> None:
    if os.geteuid() != 0:  # the pure rule is unit-tested; this needs chown
        pytest.fail("this test makes folders of another user: run the suite as root (CI does)")


@pytest.mark.usefixtures("as_root")
def test_a_subfolder_of_another_user_is_refused(tmp_path: Path) -> None:
    LocalCache(tmp_path / "cache").close()
    content = tmp_path / "cache" / "content"
    os.chown(content, OTHER_UID, OTHER_UID)
    with pytest.raises(exc.VersionedError) as raised:
        LocalCache(tmp_path / "cache")
    assert isinstance(raised.value, exc.CacheDirectoryError)
    assert raised.value.path == str(content)
    assert f"owned by uid {OTHER_UID}" in str(raised.value)
    assert "chown" in str(raised.value)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder another user can write in (as /tmp is), removed afterwards."""
    top = Path(tempfile.mkdtemp(prefix="va-shared-"))
    top.chmod(0o1777)
    try:
        yield top
    finally:
        subprocess.run(["rm", "-rf", str(top)], check=True)


@pytest.mark.usefixtures("as_root")
def test_a_directory_another_user_created_is_refused(shared_tmp: Path) -> None:
    """Another user (a real process of uid 65534) creates the cache directory, open to
    all, before the service starts: the service refuses it rather than chmod it."""
    target = shared_tmp / "cache"
    subprocess.run(
        ["mkdir", "-m", "777", str(target)],
        check=True,
        user=OTHER_UID,
        group=OTHER_UID,
        cwd="/",
    )
    assert target.stat().st_uid == OTHER_UID
    with pytest.raises(exc.VersionedError) as raised:
        LocalCache(target)
    assert isinstance(raised.value, exc.CacheDirectoryError)
    assert raised.value.path == str(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777  # not ours to change
    assert list(target.iterdir()) == []  # nothing created in it


# -- the folders above the cache directory (review finding 1) ------------------------------


def test_the_cache_uses_the_directory_it_checked(tmp_path: Path) -> None:
    """Given through a symlink, the cache directory is checked where the link points, and
    every later open (diskcache's per-thread connections, content files) uses that path:
    a link re-pointed afterwards does not send the cache elsewhere."""
    real = tmp_path / "real"
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    real.mkdir(mode=0o700)
    cache = LocalCache(link)
    try:
        assert cache.directory == real
        assert cache._store.content.staging == real / "staging"
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        link.unlink()
        link.symlink_to(elsewhere, target_is_directory=True)
        # diskcache opens a connection per thread, by path: a new thread's write
        errors: list[BaseException] = []

        def write() -> None:
            try:
                cache._store.database.lookups.set("k", 1)
            except BaseException as err:  # pragma: no cover - the failure shown
                errors.append(err)

        writer = threading.Thread(target=write)
        writer.start()
        writer.join()
        assert errors == []
        assert list(elsewhere.iterdir()) == []
        assert cache._store.database.lookups.get("k") == 1
    finally:
        cache.close()


@pytest.mark.usefixtures("as_root")
def test_an_ancestor_of_another_user_is_refused(shared_tmp: Path) -> None:
    """Whoever owns a folder above the cache directory can rename the cache directory away
    and put a tree of their own in its place: refused, nothing created."""
    theirs = shared_tmp / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    with pytest.raises(exc.VersionedError) as raised:
        LocalCache(theirs / "app" / "cache")
    assert isinstance(raised.value, exc.CacheDirectoryError)
    assert raised.value.path == str(theirs)
    assert f"owned by uid {OTHER_UID}" in str(raised.value)
    assert "a folder of your own" in str(raised.value)
    assert list(theirs.iterdir()) == []


def test_a_file_above_the_cache_directory_is_named_as_a_path_problem(tmp_path: Path) -> None:
    """A file where a folder should be is a mistyped path, not another user's swap: the
    error says so and what to pass, in Python's words and in the CLI's."""
    a_file = tmp_path / "settings.toml"
    a_file.write_text("")
    with pytest.raises(exc.CacheDirectoryError) as raised:
        LocalCache(a_file / "cache")
    message = str(raised.value)
    assert raised.value.path == str(a_file)
    assert not raised.value.unsafe
    assert f"cannot use the cache directory {a_file / 'cache'}: {a_file} is not a directory" in (
        message
    )
    assert "swap" not in message
    assert "a folder of your own" not in message
    assert "whose path has folders only" in message
    cli = _cli("--cache-dir", str(a_file / "cache"))
    assert cli.returncode != 0
    assert "pass a --cache-dir whose path has folders only" in cli.stderr


def test_a_cache_directory_that_cannot_be_created_says_so(tmp_path: Path) -> None:
    """mkdir failing (here: procfs, where no folder can be made, even by root) was a bare
    ``[Errno 2] No such file or directory`` from the CLI: now the error names the cache
    directory and what to do."""
    nowhere = Path("/proc/versioned-async-test-cache")
    with pytest.raises(exc.CacheDirectoryError) as raised:
        LocalCache(nowhere)
    message = str(raised.value)
    assert not raised.value.unsafe
    assert f"cannot use the cache directory {nowhere}: it cannot be created (" in message
    assert "give LocalCache a cache directory this process can create" in message
    cli = _cli("--cache-dir", str(nowhere))
    assert cli.returncode != 0
    assert "pass a --cache-dir this process can create" in cli.stderr
    assert "[Errno" not in cli.stderr


def _cli(*options: str) -> subprocess.CompletedProcess[str]:
    """The CLI's ``cache stats`` with ``options``: it opens the cache and nothing else."""
    return subprocess.run(
        [sys.executable, "-m", "versioned_async", "--bucket", BUCKET, *options, "cache", "stats"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_open_ancestor_without_the_sticky_bit_is_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An emptyDir volume is 0777 and not sticky: another user could rename the cache
    directory away. The cache is used (it is the documented recipe), with a warning
    naming the folder, once per process."""
    volume = tmp_path / "volume"
    volume.mkdir()
    volume.chmod(0o777)
    caplog.set_level("WARNING", logger="versioned_async")
    LocalCache(volume / "cache").close()
    warned = [r.getMessage() for r in caplog.records if str(volume) in r.getMessage()]
    assert len(warned) == 1, warned
    assert "sticky" in warned[0]
    assert f"chmod +t {volume}" in warned[0]
    LocalCache(volume / "cache").close()
    LocalCache(volume / "other").close()
    assert len([r for r in caplog.records if str(volume) in r.getMessage()]) == 1
    volume.chmod(0o1777)  # sticky, as /tmp: nothing to say
    caplog.clear()
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    LocalCache(sticky / "cache").close()
    assert [r for r in caplog.records if "sticky" in r.getMessage()] == []


# -- item 11: a SIGKILLed lease holder ------------------------------------------------------

_HOLD_LEASE = textwrap.dedent(
    """
    import asyncio, sys
    from versioned_async import LocalCache, Repository

    async def main():
        cache = LocalCache(sys.argv[2])
        async with Repository({region!r}, {bucket!r}, dynamodb_table_name={table!r},
                              endpoint_url=sys.argv[1], cache=cache, actor="tests") as repo:
            await repo.get_content("app", 1)  # its download stalls at the proxy

    asyncio.run(main())
    """
).format(region=REGION, bucket=BUCKET, table=TABLE)


async def test_a_lease_whose_holder_was_killed_is_taken_over_at_once(
    make_proxied_repo: RepoFactory, proxy: CountingProxy, tmp_path: Path
) -> None:
    content = os.urandom(1 << 16)
    async with make_proxied_repo() as repo:
        await repo.bootstrap()
        await publish(repo, "app", content)
    directory = tmp_path / "cache"
    LocalCache(directory).close()
    proxy.reset_counts()
    proxy.stall_next(op="GetObject")
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLD_LEASE,
        proxy.endpoint_url,
        str(directory),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # the holder takes the lease before it sends GetObject, which the proxy holds back
        await proxy.wait_for(lambda: proxy.count("GetObject") == 1, what="the holder's download")
    finally:
        holder.send_signal(signal.SIGKILL)
        _, err = await holder.communicate()
    assert holder.returncode == -signal.SIGKILL, err.decode()[-2000:]
    cache = LocalCache(directory)
    started = time.monotonic()
    async with make_proxied_repo(cache=cache) as repo:
        assert await repo.get_content("app", 1) == content
    stats = cache.stats()
    assert stats.lease_takeovers == 1
    assert stats.downloads == 1
    assert time.monotonic() - started < 10  # secondary: the lease lasts 30 s
