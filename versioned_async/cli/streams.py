"""Content through the terminal: stdin in, progress on stderr, memory bounded.

Artifacts can be larger than memory, so stdin is spooled to a file past a
threshold, and a large transfer shows how far along it is (bytes, rate, time
left: the bytes the transfer reports through :mod:`.._aws.progress`), on
stderr only, and only on a terminal, so that pipes and logs get nothing but
the content.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.filesize import decimal as human_size
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from .._aws import progress as transfer_progress

#: transfers smaller than this get no progress bar (they are over before it could draw)
PROGRESS_MIN_BYTES = 8 << 20
#: content piped into `put` beyond this is spooled to a temporary file and streamed from there
STDIN_IN_MEMORY_BYTES = 16 << 20


def progress_wanted() -> bool:
    return sys.stderr.isatty()


class _BytesDone(ProgressColumn):
    """How many bytes have moved, when the total is not known: ``31.5 MB``."""

    def render(self, task: Task) -> Text:
        return Text(human_size(int(task.completed)), style="progress.download")


@contextmanager
def progress(what: str, size: int | None, *, console: Console | None = None) -> Iterator[None]:
    """A bar on stderr while a large transfer runs, when stderr is a terminal: the
    bytes done of ``size``, the rate and the time left; with ``size`` unknown, the
    bytes done and the rate.

    The bytes are those the transfer reports (:func:`versioned_async._aws.progress.moved`)
    while this block runs, counted once each: a part sent again after a failure
    does not take the bar past the total. ``console`` (tests) replaces stderr's.
    """
    if console is None:
        if not progress_wanted() or (size is not None and size < PROGRESS_MIN_BYTES):
            yield
            return
        console = Console(stderr=True, highlight=False)
    label = what if size is None else f"{what} ({human_size(size)})"
    columns: tuple[ProgressColumn, ...]
    if size is None:
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            _BytesDone(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
        )
    else:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=size)
        done = 0

        def moved(count: int) -> None:
            nonlocal done
            done = done + count if size is None else min(done + count, size)
            bar.update(task, completed=done)

        with transfer_progress.reporting(moved):
            yield


def refuse_terminal_stdin(what: str) -> None:
    if sys.stdin.isatty():
        raise click.UsageError(
            f"no {what} given and stdin is a terminal: pass a file, or pipe into -"
        )


@contextmanager
def stdin_content() -> Iterator[bytes | Path]:
    """stdin as bytes when small, else spooled to a temporary file that put streams."""
    stream = sys.stdin.buffer
    head = stream.read(STDIN_IN_MEMORY_BYTES + 1)
    if len(head) <= STDIN_IN_MEMORY_BYTES:
        yield head
        return
    with tempfile.TemporaryDirectory(prefix="versioned-async-") as tmp:
        spool = Path(tmp) / "stdin"
        with spool.open("wb") as out:
            out.write(head)
            del head
            shutil.copyfileobj(stream, out, 1 << 20)
        yield spool
