"""The cache's safety rules as pure functions: folders, fingerprints, lease holders."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from versioned_async import LocalCache
from versioned_async._policy.cache_safety import (
    Fingerprint,
    FolderVerdict,
    LeaseHolder,
    content_problem,
    folder_advice,
    holder_is_gone,
    join_hint,
    judge_ancestor,
    judge_folder,
    split_hint,
)
from versioned_async._policy.lock_wait import CONTENTION_SECONDS, keep_waiting
from versioned_async.cache.content import DamagedContent, Staged
from versioned_async.cache.keys import (
    ContentKey,
    LeaseKey,
    PathHintKey,
    RepositoryId,
    VersionKey,
)
from versioned_async.exc import InvalidArgumentTypeError

REPO = RepositoryId("endpoint", "bucket", "prefix", "", "table")
#: a version lookup nobody stored: loading it runs the start-up preload
ANY_VERSION = VersionKey(REPO, "x", "000001")

ME, OTHER = 1000, 1001
DIR, LINK, FILE = stat.S_IFDIR, stat.S_IFLNK, stat.S_IFREG

# -- folders -------------------------------------------------------------------------------


def test_a_private_folder_of_ours_is_used() -> None:
    assert judge_folder(DIR | 0o700, ME, me=ME, top=True).ok
    assert judge_folder(DIR | 0o755, ME, me=ME, top=False).ok  # readable is not writable


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702, 0o720, 0o1777])
def test_a_folder_of_ours_others_may_write_in_is_tightened(mode: int) -> None:
    verdict = judge_folder(DIR | mode, ME, me=ME, top=False)
    assert verdict.refuse is None
    assert verdict.tighten_to == mode & ~0o077


def test_the_top_folder_is_made_private_even_when_only_readable() -> None:
    assert judge_folder(DIR | 0o755, ME, me=ME, top=True) == FolderVerdict(tighten_to=0o700)


@pytest.mark.parametrize("top", [True, False])
@pytest.mark.parametrize("mode", [0o700, 0o777])
def test_a_folder_of_another_user_is_refused_whatever_its_mode(mode: int, top: bool) -> None:
    verdict = judge_folder(DIR | mode, OTHER, me=ME, top=top)
    assert verdict.refuse == f"is owned by uid {OTHER}, not by uid {ME} running this process"
    assert verdict.tighten_to is None


def test_root_refuses_a_folder_of_another_user_and_a_user_refuses_roots() -> None:
    assert judge_folder(DIR | 0o700, OTHER, me=0, top=True).refuse
    assert judge_folder(DIR | 0o700, 0, me=ME, top=True).refuse


def test_a_symlink_or_a_file_in_place_of_a_folder_is_refused() -> None:
    assert "symbolic link" in str(judge_folder(LINK | 0o777, ME, me=ME, top=False).refuse)
    assert judge_folder(FILE | 0o600, ME, me=ME, top=False).refuse == "is not a directory"


def test_the_advice_says_what_to_do() -> None:
    owned = judge_folder(DIR | 0o700, OTHER, me=ME, top=True).refuse
    assert owned is not None
    assert folder_advice("/c", ME, owned).python.startswith(f"chown -R {ME} /c")
    assert folder_advice("/c", ME, owned).cli == (
        f"chown -R {ME} /c if it is yours, or pass another --cache-dir"
    )
    link = judge_folder(LINK | 0o777, ME, me=ME, top=False).refuse
    assert link is not None
    assert "another cache directory" in folder_advice("/c/x", ME, link).python
    assert folder_advice("/c/x", ME, link).cli.endswith("or pass another --cache-dir")


# -- the folders above the cache directory ---------------------------------------------------


@pytest.mark.parametrize("owner", [ME, 0])
@pytest.mark.parametrize("mode", [0o755, 0o700, 0o1777, 0o1770])
def test_an_ancestor_of_ours_or_roots_that_only_its_owner_or_sticky_may_change_is_fine(
    owner: int, mode: int
) -> None:
    assert judge_ancestor(DIR | mode, owner, me=ME).ok


@pytest.mark.parametrize("mode", [0o755, 0o1777, 0o777])
def test_an_ancestor_of_another_user_is_refused(mode: int) -> None:
    verdict = judge_ancestor(DIR | mode, OTHER, me=ME)
    assert verdict.warn is None
    assert verdict.refuse is not None
    assert f"is owned by uid {OTHER}" in verdict.refuse
    assert "rename" in verdict.refuse


def test_root_running_refuses_an_ancestor_of_another_user() -> None:
    assert judge_ancestor(DIR | 0o755, OTHER, me=0).refuse


@pytest.mark.parametrize("owner", [ME, 0])
@pytest.mark.parametrize("mode", [0o777, 0o770, 0o757])
def test_an_ancestor_others_may_write_in_without_the_sticky_bit_is_warned_about(
    owner: int, mode: int
) -> None:
    """An emptyDir volume (0777 root, no sticky bit): used, with a warning that says why."""
    verdict = judge_ancestor(DIR | mode, owner, me=ME)
    assert verdict.refuse is None
    assert verdict.warn is not None
    assert "rename" in verdict.warn
    assert "no sticky bit" in verdict.warn


def test_an_ancestor_that_is_a_symlink_or_not_a_folder_is_refused() -> None:
    assert "symbolic link" in str(judge_ancestor(LINK | 0o777, ME, me=ME).refuse)
    assert judge_ancestor(FILE | 0o644, ME, me=ME).refuse == "is not a directory"


def test_the_advice_for_an_ancestor_says_what_to_do() -> None:
    refuse = judge_ancestor(DIR | 0o755, OTHER, me=ME).refuse
    assert refuse is not None
    advice = folder_advice("/srv/x", ME, refuse, ancestor=True)
    assert "a folder of your own" in advice.python
    assert "chown" not in advice.python  # not ours to take over
    assert advice.cli == f"pass a --cache-dir inside a folder of your own (uid {ME})"


# -- fingerprints ----------------------------------------------------------------------------

STORED = Fingerprint(dev=2049, ino=77, size=4096, mtime_ns=1_700_000_000_123_456_789)


def test_the_stored_file_has_no_problem() -> None:
    assert content_problem(FILE | 0o600, STORED, STORED) is None


def test_a_replaced_file_is_caught() -> None:
    other = Fingerprint(STORED.dev, STORED.ino + 1, STORED.size, STORED.mtime_ns)
    assert content_problem(FILE | 0o600, other, STORED) == "was replaced by another file"


def test_a_file_written_in_place_is_caught() -> None:
    later = Fingerprint(STORED.dev, STORED.ino, STORED.size, STORED.mtime_ns + 1)
    assert content_problem(FILE | 0o600, later, STORED) == "was written to since it was stored"
    shorter = Fingerprint(STORED.dev, STORED.ino, 100, STORED.mtime_ns)
    assert content_problem(FILE | 0o600, shorter, STORED) is not None


def test_only_a_regular_file_is_content() -> None:
    assert content_problem(stat.S_IFIFO | 0o600, STORED, STORED) == "is not a regular file"
    assert content_problem(LINK | 0o777, STORED, None) == "is not a regular file"


def test_without_a_record_a_regular_file_is_left_to_the_sha256_check() -> None:
    assert content_problem(FILE | 0o600, STORED, None) is None


@given(st.integers(0, 2**64), st.integers(0, 2**64), st.integers(0, 2**63), st.integers(0, 2**63))
def test_a_fingerprint_survives_its_text(dev: int, ino: int, size: int, mtime_ns: int) -> None:
    fingerprint = Fingerprint(dev, ino, size, mtime_ns)
    assert Fingerprint.parse(fingerprint.to_text()) == fingerprint


@pytest.mark.parametrize("text", [None, 3, "", "1:2:3", "1:2:3:x", "1:2:3:4:5", "-1:2:3:4"])
def test_anything_else_is_no_fingerprint(text: object) -> None:
    assert Fingerprint.parse(text) is None


def test_a_path_hint_carries_its_fingerprint_and_an_old_one_does_not() -> None:
    path = "/var/cache/app dir/content/ab/cd/0123.val"  # a space in the path is kept
    assert split_hint(join_hint(STORED, path)) == (STORED, path)
    assert split_hint("/var/cache/app/content/ab/cd/0123.val") is None
    assert split_hint(b"bytes") is None


# -- lease holders -----------------------------------------------------------------------------

HERE = "boot-1pid:[4026531836]"
HOLDER = LeaseHolder(HERE, pid=4242, started=987654, token="00ff00ff00ff00ff")


def test_a_lease_record_survives_its_text() -> None:
    assert LeaseHolder.parse(HOLDER.to_text()) == HOLDER
    unknown_start = LeaseHolder(HERE, 1, None, "ab")
    assert LeaseHolder.parse(unknown_start.to_text()) == unknown_start


@pytest.mark.parametrize("text", [None, "00ff00ff00ff00ff", "v1 m x 1 t", "v2 m 1 1 t", "v1 m 1 1"])
def test_an_older_or_unreadable_lease_has_no_holder(text: object) -> None:
    assert LeaseHolder.parse(text) is None


def test_a_dead_holder_on_this_machine_is_gone() -> None:
    assert holder_is_gone(HOLDER, machine=HERE, running=False, started=None)


def test_a_running_holder_is_not_gone() -> None:
    assert not holder_is_gone(HOLDER, machine=HERE, running=True, started=HOLDER.started)
    assert not holder_is_gone(HOLDER, machine=HERE, running=True, started=None)  # cannot tell


def test_a_pid_reused_by_a_younger_process_is_not_the_holder() -> None:
    assert holder_is_gone(HOLDER, machine=HERE, running=True, started=987655)


def test_a_holder_on_another_machine_or_pid_namespace_is_never_judged() -> None:
    assert not holder_is_gone(HOLDER, machine="boot-1pid:[4026532000]", running=False, started=None)
    assert not holder_is_gone(HOLDER, machine="boot-2pid:[4026531836]", running=False, started=None)


def test_an_older_lease_is_left_to_expire() -> None:
    assert not holder_is_gone(None, machine=HERE, running=False, started=None)


# -- the content store on disk, without AWS -------------------------------------------------


async def stage(cache: LocalCache, content: bytes) -> Staged:
    part = cache._store.content.new_staging_path()
    part.write_bytes(content)
    return Staged(part, hashlib.sha256(content).hexdigest(), len(content))


async def test_another_process_catches_a_file_replaced_while_it_was_not_running(
    tmp_path: Path,
) -> None:
    """The fingerprint travels in the store and in the preload's path hint."""
    writer = LocalCache(tmp_path)
    staged = await stage(writer, b"genuine" * 100)
    path = await writer._store.content.publish(staged)
    assert path is not None
    writer.close()
    forged = tmp_path / "forged"
    forged.write_bytes(b"f" * staged.size)
    os.replace(forged, path)
    reader = LocalCache(tmp_path)
    await reader._store.lookups.load(ANY_VERSION)  # the preload, which reads the path hints
    assert reader._store.content.path_now(staged.sha256) == path
    with pytest.raises(DamagedContent):
        await reader._store.content.read(staged.sha256, path, staged.size)
    assert await reader._store.content.path(staged.sha256) is None  # the store refuses it too
    assert reader.stats().damaged_content == 1


def overwrite_first_byte(path: str) -> None:
    with open(path, "r+b") as out:
        out.write(b"X")


@pytest.mark.parametrize("tampered", [False, True])
async def test_content_stored_before_fingerprints_is_checked_by_its_sha256(
    tmp_path: Path, tampered: bool
) -> None:
    cache = LocalCache(tmp_path)
    content = b"stored by 0.x" * 100
    staged = await stage(cache, content)
    # what earlier releases wrote: the entry without a tag, a bare path as the hint
    assert cache._store.database.content.add(ContentKey(staged.sha256).to_disk(), staged, read=True)
    handle = cache._store.database.content.get(ContentKey(staged.sha256).to_disk(), read=True)
    with handle:
        stored = handle.name
    cache._store.database.lookups.set(PathHintKey(staged.sha256).to_disk(), stored)
    cache.close()
    if tampered:
        overwrite_first_byte(stored)
    reopened = LocalCache(tmp_path)
    await reopened._store.lookups.load(ANY_VERSION)
    assert reopened._store.content.path_now(staged.sha256) is None  # a bare hint is not trusted
    path = await reopened._store.content.path(staged.sha256)
    if tampered:
        assert path is None
        assert reopened.stats().damaged_content == 1
    else:
        assert path == stored
        assert await reopened._store.content.read(staged.sha256, stored, staged.size) == content


async def test_a_fifo_in_place_of_a_content_file_does_not_block(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path)
    staged = await stage(cache, b"content" * 100)
    path = await cache._store.content.publish(staged)
    assert path is not None
    os.unlink(path)
    os.mkfifo(path)
    with pytest.raises(DamagedContent):
        await asyncio.wait_for(cache._store.content.read(staged.sha256, path, None), 5)
    assert await asyncio.wait_for(cache._store.content.path(staged.sha256), 5) is None


def test_verify_on_read_must_be_a_bool(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentTypeError):
        LocalCache(tmp_path, verify_on_read="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("kernel_copy", ["whole", "half", "none"])
async def test_copy_content_writes_the_content_however_much_the_kernel_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: str
) -> None:
    cache = LocalCache(tmp_path / "cache")
    content = os.urandom(3 << 20)
    staged = await stage(cache, content)
    path = await cache._store.content.publish(staged)
    assert path is not None
    real = os.sendfile

    def sendfile(out: int, source: int, offset: int, count: int) -> int:
        if kernel_copy == "none" or (kernel_copy == "half" and offset >= len(content) // 2):
            raise OSError(22, "sendfile refused")
        return real(out, source, offset, min(count, len(content) // 2))

    monkeypatch.setattr(os, "sendfile", sendfile)
    await cache._store.content.copy(staged.sha256, path, staged.size, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == content


# -- leases across real processes --------------------------------------------------------------

_HOLDER = """
import asyncio, sys
from versioned_async import LocalCache
from versioned_async.cache.keys import RepositoryId, VersionKey

async def main():
    cache = LocalCache(sys.argv[1])
    repo = RepositoryId("endpoint", "bucket", "prefix", "", "table")
    async with cache._store.leases.download_lease(VersionKey(repo, "app", "000001")):
        print("held", flush=True)
        await asyncio.sleep(600)

asyncio.run(main())
"""


def test_a_live_holders_lease_is_kept_and_a_killed_ones_taken_over(tmp_path: Path) -> None:
    """Not reaped yet (a zombie, as under a parent that has not waited) counts as dead."""
    LocalCache(tmp_path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        cache = LocalCache(tmp_path)
        lease = LeaseKey(VersionKey(REPO, "app", "000001")).to_disk()
        record = LeaseHolder.parse(cache._store.database.lookups.get(lease))
        assert record is not None
        assert record.pid == holder.pid
        assert not cache._store.leases._take_lease(lease, "me")  # alive: it keeps its lease
        holder.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 30  # a hang guard: the kill is asynchronous
        while Path(f"/proc/{holder.pid}/stat").read_text().split(")")[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert cache._store.leases._take_lease(lease, "me")
        assert cache._store.database.lookups.get(lease) == "me"
        assert cache.stats().lease_takeovers == 1
    finally:
        holder.kill()
        holder.wait()


def test_a_forked_child_records_its_own_start_time() -> None:
    from versioned_async.cache import leases  # noqa: PLC0415

    parent = leases._own_start()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's teardown
        os.write(write, repr(leases._own_start()).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    assert parent is not None
    assert child != repr(parent)


# -- how long a cache write waits for a busy database ---------------------------------------


@pytest.mark.parametrize(
    ("others_committed", "waited", "expected"),
    [
        (True, 2.0, True),  # the lock changes hands: contention, wait again
        (True, CONTENTION_SECONDS - 0.01, True),
        (True, CONTENTION_SECONDS, False),  # contention that long: a download is faster
        (False, 2.0, False),  # nobody committed while we waited: a stuck holder
        (False, 0.0, False),
    ],
)
def test_a_write_waits_again_only_while_others_commit(
    others_committed: bool, waited: float, expected: bool
) -> None:
    assert keep_waiting(others_committed=others_committed, waited=waited) is expected
