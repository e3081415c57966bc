"""The command line's progress bar (versioned_async.cli.streams.progress), drawn into a buffer.

It is fed by what transfers report through versioned_async._aws.progress; the
console-script tests in tests/integration/test_cli.py draw it on a real
pseudo-terminal, and show that pipes get nothing.
"""

from __future__ import annotations

import io

from rich.console import Console

from versioned_async._aws import progress as transfer_progress
from versioned_async.cli import streams

MB = 1_000_000


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=120, highlight=False), out


def test_the_bar_shows_the_bytes_reported_of_the_total() -> None:
    console, out = terminal()
    with streams.progress("uploading model", 30 * MB, console=console):
        transfer_progress.moved(10 * MB)
        transfer_progress.moved(15 * MB)
        transfer_progress.moved(5 * MB)
    drawn = out.getvalue()
    assert "uploading model (30.0 MB)" in drawn
    assert "30.0/30.0 MB" in drawn  # the last frame, drawn as the bar stops


def test_bytes_sent_again_never_take_the_bar_past_the_total() -> None:
    console, out = terminal()
    with streams.progress("uploading model", 30 * MB, console=console):
        for _ in range(4):  # a part of 10 MB sent again after a failure
            transfer_progress.moved(10 * MB)
    drawn = out.getvalue()
    assert "30.0/30.0 MB" in drawn
    assert "40.0" not in drawn


def test_an_unknown_size_shows_a_byte_counter() -> None:
    console, out = terminal()
    with streams.progress("downloading model", None, console=console):
        transfer_progress.moved(31_500_000)
    drawn = out.getvalue()
    assert "31.5 MB" in drawn
    assert "/?" not in drawn


def test_the_bar_listens_only_while_it_is_shown() -> None:
    console, _ = terminal()
    seen: list[int] = []
    with transfer_progress.reporting(seen.append):
        with streams.progress("uploading model", 30 * MB, console=console):
            transfer_progress.moved(1)
        transfer_progress.moved(2)
    assert seen == [2]
