"""The library's log records, as the command line's own lines on stderr.

The library logs what a caller may want to know but need not act on (a
damaged cache file fetched again, a stale answer served while AWS is down, a
roll-out put back after a write failed). A program configures logging itself;
the command line is the program here, so it shows each record of level
WARNING and above as one line, ``warning: <message>``, on stderr, the way it
shows errors (``error: <message>``): no logger name, no traceback, nothing
left to Python's last-resort handler.

One kind of INFO record is for a person waiting, not for a log: that the
endpoint cannot be reached and botocore is retrying (which can take ~20 s
before the error). It is shown, as a ``warning:`` line, only when stderr is a
terminal and the command was not asked for ``--json``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from .._aws.clients import RETRIES_LOGGER

__all__ = ["JSON_OUTPUT", "library_log_lines", "log_line", "someone_watches"]

#: the library's loggers all sit under this one
_LIBRARY_LOGGER = "versioned_async"
#: the key, in click's ``ctx.meta``, that says the command prints a JSON document
JSON_OUTPUT = "versioned_async.json"


def someone_watches() -> bool:
    """Whether a person reads stderr as it comes: it is a terminal, and the command
    is not printing a JSON document for a program (``--json``)."""
    context = click.get_current_context(silent=True)
    as_json = context is not None and bool(context.meta.get(JSON_OUTPUT))
    return sys.stderr.isatty() and not as_json


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


class _ForSomeoneWatching(_Lines):
    """:class:`_Lines` for notices only a person waiting needs (:func:`someone_watches`)."""

    def emit(self, record: logging.LogRecord) -> None:
        if someone_watches():
            super().emit(record)


@contextmanager
def library_log_lines() -> Iterator[None]:
    """While inside, the library's warnings and errors are lines on stderr, and go
    nowhere else (not to the root logger, not to Python's last-resort handler);
    its notice that it retries an unreachable endpoint is one for a person watching."""
    logger = logging.getLogger(_LIBRARY_LOGGER)
    retries = logging.getLogger(RETRIES_LOGGER)
    handler, notices = _Lines(logging.WARNING), _ForSomeoneWatching(logging.INFO)
    saved = (logger.propagate, retries.level)
    logger.addHandler(handler)
    logger.propagate = False
    retries.addHandler(notices)
    retries.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        retries.removeHandler(notices)
        logger.propagate, level = saved
        retries.setLevel(level)
