"""The library's log records, as the command line's own lines on stderr.

The library logs what a caller may want to know but need not act on (a
damaged cache file fetched again, a stale answer served while AWS is down, a
roll-out put back after a write failed). A program configures logging itself;
the command line is the program here, so it shows each record of level
WARNING and above as one line, ``warning: <message>``, on stderr, the way it
shows errors (``error: <message>``): no logger name, no traceback, nothing
left to Python's last-resort handler.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import click

__all__ = ["library_log_lines", "log_line"]

#: the library's loggers all sit under this one
_LIBRARY_LOGGER = "versioned_async"


def log_line(record: logging.LogRecord) -> str:
    """One line for ``record``: ``warning: ...`` (``error: ...`` from ERROR up), its
    message on one line, the exception it carries named after it, never a traceback."""
    level = "warning" if record.levelno < logging.ERROR else "error"
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        err = record.exc_info[1]
        text += f": {type(err).__name__}: {err}" if str(err) else f": {type(err).__name__}"
    return f"{level}: {' '.join(text.split())}"


class _Lines(logging.Handler):
    """Writes each record with :func:`log_line` to the stderr of the moment (click's,
    so that a command run in-process, as by click's test runner, is captured too)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(log_line(record), err=True)
        except Exception:  # logging must never break the command
            self.handleError(record)


@contextmanager
def library_log_lines() -> Iterator[None]:
    """While inside, the library's warnings and errors are lines on stderr, and go
    nowhere else (not to the root logger, not to Python's last-resort handler)."""
    logger = logging.getLogger(_LIBRARY_LOGGER)
    handler = _Lines(logging.WARNING)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
