"""How every command prints its result: one JSON document for programs, tables for people.

A command computes its result, then hands it to :func:`emit` once: with
``--json`` the result itself becomes the document (attrs models, datetimes and
mappings are converted here, in one place), otherwise the command's ``show``
draws it. Empty listings are said on stderr, so that stdout stays empty.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

import attrs
import click
from rich.console import Console, OverflowMethod
from rich.filesize import decimal as human_size
from rich.table import Table

from ..models import Alias
from .logs import JSON_OUTPUT

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])


def _remember_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    ctx.meta[JSON_OUTPUT] = value  # notices for a person watching stay off (cli/logs.py)
    return value


def json_option(f: _F) -> _F:
    """The ``--json`` flag of a command that prints a result (see :func:`emit`)."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        callback=_remember_json,
        help="Print one JSON document on stdout.",
    )(f)


def _json_default(value: object) -> object:
    if attrs.has(type(value)):  # the models: Artifact, Alias, AliasChange, RolloutResult
        return attrs.asdict(cast("attrs.AttrsInstance", value))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def emit(result: _T, as_json: bool, show: Callable[[_T], object], empty: str = "") -> None:
    """Print ``result``: as one JSON document with ``--json``, else with ``show``.

    With ``empty``, an empty result prints that sentence on stderr instead.
    """
    if as_json:
        click.echo(json.dumps(result, indent=2, default=_json_default))
    elif empty and not result:
        click.echo(empty, err=True)
    else:
        show(result)


def when(moment: datetime) -> str:
    """A moment as people read it in a table: ``2024-05-01 12:00:00+00:00``."""
    return moment.isoformat(sep=" ", timespec="seconds")


def short_size(nbytes: int | None) -> str:
    """A size as people read it in a table: ``1.2 MB``; blank when unknown."""
    return "" if nbytes is None else human_size(nbytes)


def target(alias: Alias | None) -> str:
    """``1``, ``1 (+2 at 10%)`` or ``(none)``: where an alias points, in one short phrase."""
    if alias is None:
        return "(none)"
    if alias.secondary_version is None:
        return alias.version
    return f"{alias.version} (+{alias.secondary_version} at {alias.secondary_version_weight}%)"


def stdout() -> Console:
    return Console(highlight=False)


def print_lines(lines: Iterable[str]) -> None:
    for line in lines:
        click.echo(line)


def print_fields(rows: Iterable[tuple[str, str]], overflow: OverflowMethod = "ellipsis") -> None:
    """One thing, as a borderless grid of ``field  value`` lines."""
    grid = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    grid.add_column(style="bold")
    grid.add_column(overflow=overflow)
    for row in rows:
        grid.add_row(*row)
    stdout().print(grid)


def print_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[str | None]], right: str = ""
) -> None:
    """Many things, as a titled table of ``columns``; the column named ``right`` aligns right."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column == right else "left")
    for row in rows:
        table.add_row(*row)
    stdout().print(table)
