"""Staging files claimed while written, and the sweep that removes only a crash's leftovers
(``versioned_async._staging``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from versioned_async import _staging


def test_a_claimed_file_is_kept_and_an_unclaimed_one_swept(tmp_path: Path) -> None:
    live, dead, empty = tmp_path / "a.part", tmp_path / "b.part", tmp_path / "c.part"
    dead.write_bytes(b"half")  # written by a process that is gone: nobody holds it
    empty.touch()
    (tmp_path / "d.txt").write_bytes(b"not a staging file")
    with _staging.claimed(live):
        assert live.exists()
        assert live.stat().st_size == 0
        assert oct(live.stat().st_mode & 0o777) == oct(0o600)
        assert sorted(_staging.sweep(tmp_path, "*.part")) == [dead, empty]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.part", "d.txt"]
        live.write_bytes(b"still writing")  # any writer of the path writes the held file
        assert _staging.sweep(tmp_path, "*.part") == []
    assert _staging.sweep(tmp_path, "*.part") == [live]  # the block ended without a rename


def test_a_symlink_in_staging_is_left_alone(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    (tmp_path / "x.part").symlink_to(victim)
    assert _staging.sweep(tmp_path, "*.part") == []
    assert victim.read_bytes() == b"keep me"


def test_open_new_hands_out_the_claimed_file_emptied(tmp_path: Path) -> None:
    part = tmp_path / "a.part"
    with _staging.claimed(part):
        part.write_bytes(b"an earlier attempt")
        fd = _staging.open_new(part)
        try:
            os.write(fd, b"new")
            assert os.fstat(fd).st_ino == part.stat().st_ino
        finally:
            os.close(fd)
        assert part.read_bytes() == b"new"
        assert _staging.sweep(tmp_path, "*.part") == []  # still held, the fd closed or not
        part.unlink()  # refused content is removed, then read again into the same path
        fd = _staging.open_new(part)
        os.close(fd)
        assert part.exists()
        assert _staging.sweep(tmp_path, "*.part") == []
    assert _staging.sweep(tmp_path, "*.part") == [part]


def test_open_new_never_writes_over_an_unclaimed_file(tmp_path: Path) -> None:
    part = tmp_path / "a.part"
    part.write_bytes(b"someone else's")
    with pytest.raises(FileExistsError):
        _staging.open_new(part)
    fd = _staging.open_new(tmp_path / "b.part")
    os.close(fd)
    assert part.read_bytes() == b"someone else's"


def test_a_claim_on_an_existing_name_is_refused(tmp_path: Path) -> None:
    part = tmp_path / "a.part"
    part.write_bytes(b"x")
    with pytest.raises(FileExistsError), _staging.claimed(part):
        pass  # pragma: no cover
    assert part.read_bytes() == b"x"
