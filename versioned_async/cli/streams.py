"""Content through the terminal: stdin in, progress on stderr, memory bounded.

Artifacts can be larger than memory, so stdin is spooled to a file past a
threshold, and a large transfer shows that it is alive, on stderr only, and
only on a terminal, so that pipes and logs get nothing but the content.
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
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

#: transfers smaller than this get no progress bar (they are over before it could draw)
PROGRESS_MIN_BYTES = 8 << 20
#: content piped into `put` beyond this is spooled to a temporary file and streamed from there
STDIN_IN_MEMORY_BYTES = 16 << 20


def progress_wanted() -> bool:
    return sys.stderr.isatty()


@contextmanager
def progress(what: str, size: int | None) -> Iterator[None]:
    """An indeterminate bar on stderr while a large transfer runs, when stderr is a terminal.

    The API reports no progress, so this shows that something is happening and
    for how long, not how far along it is.
    """
    if not progress_wanted() or (size is not None and size < PROGRESS_MIN_BYTES):
        yield
        return
    label = what if size is None else f"{what} ({human_size(size)})"
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    stderr = Console(stderr=True, highlight=False)
    with Progress(*columns, console=stderr, transient=True) as bar:
        bar.add_task(label, total=None)
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
