"""``versioned-async``: the command line, a thin layer over :class:`Repository`.

Every subcommand opens one :class:`~versioned_async.Repository` (or, with
``--backend s3``, one :class:`~versioned_async.S3OnlyRepository`) with ``async
with``, runs one coroutine with :func:`asyncio.run` and prints the result:
rich tables for people, one JSON document with ``--json`` for programs.
Expected errors print one line, ``error: <message>``, on stderr and exit with
the code :data:`EXIT_CODES` maps their class to (never a traceback).
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import itertools
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any, NoReturn, TypeVar

import attrs
import click
from aiobotocore.config import AioConfig
from click.core import ParameterSource
from rich.console import Console
from rich.filesize import decimal as human_size
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import _layout, exc
from ._version import __version__
from .cache import LocalCache
from .models import Alias, AliasChange, Artifact, RolloutResult
from .repository import Repository
from .s3_only import S3OnlyRepository

__all__ = ["EXIT_CODES", "ExitCode", "exit_code_for", "fail", "main"]

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])

#: what the global options open: the DynamoDB layout or the S3-only one (--backend)
AnyRepository = Repository | S3OnlyRepository


class ExitCode(enum.IntEnum):
    """What ``versioned-async`` exits with."""

    OK = 0
    #: integrity or conflict errors, a failed roll-out (rolled back), other AWS errors,
    #: local file errors, aborted
    ERROR = 1
    #: a usage error or invalid input; nothing was written
    USAGE = 2
    #: no such artifact, version or alias, or the repository is not bootstrapped
    NOT_FOUND = 3
    #: S3 or DynamoDB could not be reached (or kept failing) after retries
    UNAVAILABLE = 4


#: the exit code of each error class; an error takes the entry of its nearest class
EXIT_CODES: Mapping[type[BaseException], ExitCode] = {
    exc.InvalidArgumentError: ExitCode.USAGE,
    exc.InvalidArgumentTypeError: ExitCode.USAGE,
    exc.NotFoundError: ExitCode.NOT_FOUND,  # ArtifactNotFound, AliasNotFound, RepositoryNotFound
    exc.BackendUnavailableError: ExitCode.UNAVAILABLE,
    exc.VersionedError: ExitCode.ERROR,  # IntegrityError, ConflictError, BackendError, ...
    OSError: ExitCode.ERROR,  # a local file could not be read or written
}


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit code for ``error``: that of its nearest class in :data:`EXIT_CODES`."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return ExitCode.ERROR


_EXIT_CODE_HELP = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "integrity, conflict, AWS or local file error; roll-out failed (rolled back)",
    ExitCode.USAGE: "usage error or invalid input (bad option, bad k=v, invalid name/version)",
    ExitCode.NOT_FOUND: "no such artifact, version or alias; repository not bootstrapped",
    ExitCode.UNAVAILABLE: "S3/DynamoDB unreachable or failing after retries (retry later)",
}

_EPILOG = "\b\nExit codes:\n" + "\n".join(
    f"  {int(code)}  {text}" for code, text in _EXIT_CODE_HELP.items()
)

#: transfers smaller than this get no progress bar (they are over before it could draw)
PROGRESS_MIN_BYTES = 8 << 20
#: content piped into `put` beyond this is spooled to a temporary file and streamed from there
STDIN_IN_MEMORY_BYTES = 16 << 20

_PURGE_DEFAULTS = inspect.signature(Repository.purge_artifact_versions).parameters

#: the --backend choices: the `versioned` 1.0 layouts
BACKEND_DYNAMODB = "dynamodb"
BACKEND_S3 = "s3"


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: <message>`` (one line) on stderr and exit with ``code``."""
    click.echo(f"error: {' '.join(message.split())}", err=True)
    raise click.exceptions.Exit(code)


class _Cli(click.Group):
    """The top-level group: the library's errors become one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # the reader went away (`| head`): click exits quietly
            raise
        except (exc.VersionedError, OSError) as err:
            fail(str(err), exit_code_for(err))


@attrs.frozen
class Settings:
    """The global options: where the repository is and how to reach it."""

    bucket: str | None
    prefix: str
    table: str
    region: str | None
    endpoint_url: str | None
    cache_dir: Path | None
    suffix: str
    max_attempts: int | None
    backend: str = BACKEND_DYNAMODB
    #: where a table name other than the default came from ("--table", "VERSIONED_TABLE")
    table_given_by: str | None = None

    def open_cache(self) -> LocalCache | None:
        return None if self.cache_dir is None else LocalCache(self.cache_dir)

    def require_cache_dir(self) -> Path:
        if self.cache_dir is None:
            raise click.UsageError(
                "no cache directory: pass --cache-dir or set VERSIONED_CACHE_DIR"
            )
        return self.cache_dir

    def require_dynamodb(self, command: str, missing: str) -> None:
        """Refuse ``command`` on the S3-only backend, which lacks ``missing``."""
        if self.backend != BACKEND_DYNAMODB:
            raise click.UsageError(
                f"`{command}` needs the DynamoDB backend (--backend {BACKEND_DYNAMODB}): "
                f"the S3-only layout {missing}"
            )

    def repository(self, cache: LocalCache | None) -> AnyRepository:
        if not self.bucket:
            raise click.UsageError("no bucket: pass --bucket or set VERSIONED_BUCKET")
        config = (
            None
            if self.max_attempts is None
            else AioConfig(retries={"mode": "standard", "total_max_attempts": self.max_attempts})
        )
        if self.backend == BACKEND_S3:
            if self.table_given_by is not None:
                undo = (
                    "drop --table" if self.table_given_by == "--table" else "unset VERSIONED_TABLE"
                )
                raise click.UsageError(
                    f"{self.table_given_by} names a DynamoDB table, and --backend {BACKEND_S3} "
                    f"uses none (everything is in the bucket): {undo}, or use "
                    f"--backend {BACKEND_DYNAMODB}"
                )
            return S3OnlyRepository(
                aws_region=self.region,
                s3_bucket=self.bucket,
                s3_prefix=self.prefix,
                suffix=self.suffix,
                endpoint_url=self.endpoint_url,
                cache=cache,
                client_config=config,
            )
        return Repository(
            aws_region=self.region,
            s3_bucket=self.bucket,
            s3_prefix=self.prefix,
            dynamodb_table_name=self.table,
            suffix=self.suffix,
            endpoint_url=self.endpoint_url,
            cache=cache,
            client_config=config,
        )

    def run(self, work: Callable[[AnyRepository], Awaitable[_T]]) -> _T:
        """Open one repository, run ``work`` on it in a fresh event loop, close it."""
        cache = self.open_cache()
        try:
            repo = self.repository(cache)

            async def session() -> _T:
                async with repo:
                    return await work(repo)

            return asyncio.run(session())
        finally:
            if cache is not None:
                cache.close()

    def run_dynamodb(
        self, command: str, missing: str, work: Callable[[Repository], Awaitable[_T]]
    ) -> _T:
        """:meth:`run` for a command that needs the DynamoDB layout; a usage error,
        before anything is opened, on the S3-only backend (which lacks ``missing``)."""
        self.require_dynamodb(command, missing)

        async def narrowed(repo: AnyRepository) -> _T:
            if not isinstance(repo, Repository):  # require_dynamodb let no other through
                raise TypeError(f"`{command}` needs a Repository, not {type(repo).__name__}")
            return await work(repo)

        return self.run(narrowed)


# -- output --------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _echo_json(document: object) -> None:
    click.echo(json.dumps(document, indent=2, default=_json_default))


def _plain(model: Artifact | Alias) -> dict[str, Any]:
    return attrs.asdict(model)


def _when(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")


def _size(size: int | None) -> str:
    return "" if size is None else human_size(size)


def _stdout() -> Console:
    return Console(highlight=False)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _show_artifact(artifact: Artifact) -> None:
    grid = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("name", artifact.name)
    grid.add_row("version", artifact.version)
    grid.add_row("updated", _when(artifact.update_at))
    grid.add_row("size", "" if artifact.size is None else f"{artifact.size:,} B")
    grid.add_row("sha256", artifact.sha256)
    grid.add_row("content type", artifact.content_type or "")
    grid.add_row("metadata", ", ".join(f"{k}={v}" for k, v in artifact.metadata.items()))
    grid.add_row("s3uri", artifact.s3uri)
    _stdout().print(grid)


def _show_artifacts(name: str, artifacts: Sequence[Artifact]) -> None:
    table = Table(title=f"versions of {name}", title_justify="left")
    for column in ("version", "updated (UTC)", "size", "sha256", "content type"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for a in artifacts:
        table.add_row(a.version, _when(a.update_at), _size(a.size), a.sha256[:12], a.content_type)
    _stdout().print(table)


def _show_aliases(name: str, aliases: Sequence[Alias]) -> None:
    table = Table(title=f"aliases of {name}", title_justify="left")
    for column in ("alias", "version", "canary", "weight", "updated (UTC)"):
        table.add_column(column)
    for a in aliases:
        weight = "" if a.secondary_version_weight is None else f"{a.secondary_version_weight}%"
        table.add_row(a.alias, a.version, a.secondary_version, weight, _when(a.update_at))
    _stdout().print(table)


# -- progress --------------------------------------------------------------------------


def _progress_wanted() -> bool:
    return sys.stderr.isatty()


@contextmanager
def _progress(what: str, size: int | None) -> Iterator[None]:
    """An indeterminate bar on stderr while a large transfer runs, when stderr is a terminal.

    The API reports no progress, so this shows that something is happening and
    for how long, not how far along it is.
    """
    if not _progress_wanted() or (size is not None and size < PROGRESS_MIN_BYTES):
        yield
        return
    label = what if size is None else f"{what} ({human_size(size)})"
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=_stderr(), transient=True) as progress:
        progress.add_task(label, total=None)
        yield


# -- input -------------------------------------------------------------------------


def _parse_pairs(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str] | None:
    """``("k=v", ...)`` as a dict; ``None`` when not given, so put leaves it as it is."""
    if not values:
        return None
    out: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", ctx, param)
        if key in out:
            raise click.BadParameter(f"{key!r} is given twice", ctx, param)
        out[key] = val
    return out


def _refuse_terminal_stdin(what: str) -> None:
    if sys.stdin.isatty():
        raise click.UsageError(
            f"no {what} given and stdin is a terminal: pass a file, or pipe into -"
        )


@contextmanager
def _stdin_content() -> Iterator[bytes | Path]:
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


def _json_option(f: _F) -> _F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document on stdout."
    )(f)


# -- the command line ------------------------------------------------------------------


@click.group(
    "versioned-async",
    cls=_Cli,
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="versioned-async")
@click.option(
    "--bucket",
    envvar="VERSIONED_BUCKET",
    show_envvar=True,
    help="S3 bucket that holds the content (required by commands that talk to AWS).",
)
@click.option(
    "--prefix",
    envvar="VERSIONED_PREFIX",
    show_envvar=True,
    default=_layout.DEFAULT_S3_PREFIX,
    show_default=True,
    help="S3 key prefix of the repository.",
)
@click.option(
    "--backend",
    envvar="VERSIONED_BACKEND",
    show_envvar=True,
    type=click.Choice([BACKEND_DYNAMODB, BACKEND_S3], case_sensitive=False),
    default=BACKEND_DYNAMODB,
    show_default=True,
    help="Repository layout: dynamodb (S3 + a DynamoDB table) or s3 (S3 only, no table: "
    "no alias history, no rollout).",
)
@click.option(
    "--table",
    envvar="VERSIONED_TABLE",
    show_envvar=True,
    default=_layout.DEFAULT_TABLE_NAME,
    show_default=True,
    help="DynamoDB table of the repository (--backend dynamodb only).",
)
@click.option(
    "--region",
    envvar="AWS_REGION",
    show_envvar=True,
    help="AWS region; unset, botocore's configuration decides (AWS_DEFAULT_REGION, profile).",
)
@click.option(
    "--endpoint-url",
    envvar="AWS_ENDPOINT_URL",
    show_envvar=True,
    help="Send S3 and DynamoDB to this endpoint (moto, LocalStack). Unset, botocore's "
    "configuration applies (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_DYNAMODB, profiles).",
)
@click.option(
    "--cache-dir",
    envvar="VERSIONED_CACHE_DIR",
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Read content through a LocalCache in this directory.",
)
@click.option(
    "--suffix",
    envvar="VERSIONED_SUFFIX",
    show_envvar=True,
    default="",
    help="File suffix of the S3 objects, e.g. .sqlite.",
)
@click.option(
    "--max-attempts",
    envvar="VERSIONED_MAX_ATTEMPTS",
    show_envvar=True,
    type=click.IntRange(min=1),
    help="Attempts per AWS call, first one included (default 5); 1 or 2 fail fast.",
)
@click.pass_context
def main(
    ctx: click.Context,
    bucket: str | None,
    prefix: str,
    backend: str,
    table: str,
    region: str | None,
    endpoint_url: str | None,
    cache_dir: Path | None,
    suffix: str,
    max_attempts: int | None,
) -> None:
    """Versioned binary artifacts in S3 + DynamoDB (the `versioned` 1.0 layout).

    LATEST is the mutable working copy; publish snapshots it into immutable
    numbered versions; aliases point at a version, optionally with a canary;
    rollout moves an alias to a new version step by step, with a health check,
    and `alias history` shows who changed an alias, when and why.

    --backend s3 works on `versioned`'s S3-only layout (one bucket, no table):
    every command but rollout and `alias history`.
    """
    services = ("S3",) if backend == BACKEND_S3 else ("S3", "DYNAMODB")
    source = ctx.get_parameter_source("endpoint_url")
    if source is ParameterSource.ENVIRONMENT and any(
        os.environ.get(f"AWS_ENDPOINT_URL_{service}") for service in services
    ):
        endpoint_url = None  # botocore applies the service-specific endpoints itself
    table_source = ctx.get_parameter_source("table")
    table_given_by = (
        "--table"
        if table_source is ParameterSource.COMMANDLINE
        else "VERSIONED_TABLE"
        if table_source is ParameterSource.ENVIRONMENT
        else None
    )
    ctx.obj = Settings(
        bucket=bucket,
        prefix=prefix,
        table=table,
        region=region,
        endpoint_url=endpoint_url or None,
        cache_dir=cache_dir,
        suffix=suffix,
        max_attempts=max_attempts,
        backend=backend,
        table_given_by=table_given_by,
    )


@main.command()
@click.pass_obj
def bootstrap(settings: Settings) -> None:
    """Create the bucket and the table (no table with --backend s3) when missing (idempotent)."""
    settings.run(lambda repo: repo.bootstrap())
    if settings.backend == BACKEND_S3:
        click.echo(f"ready: bucket {settings.bucket!r} (S3-only, no table)")
    else:
        click.echo(f"ready: bucket {settings.bucket!r}, table {settings.table!r}")


@main.command()
@click.argument("name")
@click.argument(
    "file",
    required=False,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
)
@click.option("--content-type", help="Content type to record, e.g. application/x-sqlite3.")
@click.option(
    "--meta",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parse_pairs,
    help="User metadata (repeatable).",
)
@click.option(
    "--tag", multiple=True, metavar="KEY=VALUE", callback=_parse_pairs, help="S3 tag (repeatable)."
)
@_json_option
@click.pass_obj
def put(
    settings: Settings,
    name: str,
    file: Path | None,
    content_type: str | None,
    meta: dict[str, str] | None,
    tag: dict[str, str] | None,
    as_json: bool,
) -> None:
    """Store FILE (or stdin, when - or omitted) as the LATEST version of NAME.

    A file is streamed, so memory stays bounded whatever its size.
    """
    if file is None:
        _refuse_terminal_stdin("FILE")

    def store(content: bytes | Path) -> Artifact:
        size = len(content) if isinstance(content, bytes) else content.stat().st_size
        with _progress(f"uploading {name}", size):
            return settings.run(
                lambda repo: repo.put_artifact(
                    name, content, content_type=content_type, metadata=meta, tags=tag
                )
            )

    if file is None or str(file) == "-":
        with _stdin_content() as content:
            artifact = store(content)
    else:
        artifact = store(file)
    if as_json:
        _echo_json(_plain(artifact))
    else:
        _show_artifact(artifact)


@main.command()
@click.argument("name")
@_json_option
@click.pass_obj
def publish(settings: Settings, name: str, as_json: bool) -> None:
    """Snapshot LATEST of NAME as its next immutable version."""
    artifact = settings.run(lambda repo: repo.publish_artifact_version(name))
    if as_json:
        _echo_json(_plain(artifact))
    else:
        _show_artifact(artifact)


async def _display_size(
    repo: AnyRepository, name: str, version: str | None, alias: str | None, key: str | None
) -> int | None:
    """The size of what `get` is about to download, for the progress bar; None if unknown."""
    try:
        if alias is not None:
            resolved = await repo.resolve_alias(name, alias)
            if resolved.is_split and key is None:
                return None  # a random pick: the download may choose the other one
            version = resolved.choose_version(key)
        return (await repo.get_artifact_version(name, version)).size
    except exc.VersionedError:
        return None  # the download reports the error


@main.command()
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default="-",
    show_default=True,
    help="File to write (atomically, verified); - writes binary to stdout.",
)
@click.option("--version", "version", help="Version to get: LATEST (default), 1, 2, ...")
@click.option("--alias", "alias", help="Get the version this alias points at.")
@click.option("--routing-key", help="With --alias: the key that picks a canary's side, sticky.")
@click.pass_obj
def get(
    settings: Settings,
    name: str,
    output: Path,
    version: str | None,
    alias: str | None,
    routing_key: str | None,
) -> None:
    """Write the content of a version of NAME to a file or stdout."""
    if routing_key is not None and alias is None:
        raise click.UsageError("--routing-key goes with --alias")

    def fetch(target: Path) -> None:
        async def work(repo: AnyRepository) -> None:
            size = await _display_size(repo, name, version, alias, routing_key)
            with _progress(f"downloading {name}", size):
                await repo.download(name, target, version, alias, routing_key)

        if _progress_wanted():
            settings.run(work)
        else:
            settings.run(lambda repo: repo.download(name, target, version, alias, routing_key))

    if str(output) != "-":
        fetch(output)
        click.echo(f"wrote {output}", err=True)
        return
    # the API reads into memory or into a file; a file keeps memory bounded for any size
    with tempfile.TemporaryDirectory(prefix="versioned-async-") as tmp:
        content = Path(tmp) / "content"
        fetch(content)
        stdout = sys.stdout.buffer
        with content.open("rb") as source:
            shutil.copyfileobj(source, stdout, 1 << 20)
        stdout.flush()


@main.command()
@click.argument("name")
@_json_option
@click.pass_obj
def versions(settings: Settings, name: str, as_json: bool) -> None:
    """List the visible versions of NAME: LATEST first, then newest to oldest."""
    found = settings.run(lambda repo: repo.list_artifact_versions(name))
    if as_json:
        _echo_json([_plain(a) for a in found])
    elif not found:
        click.echo(f"{name!r} has no versions", err=True)
    else:
        _show_artifacts(name, found)


@main.command()
@_json_option
@click.pass_obj
def names(settings: Settings, as_json: bool) -> None:
    """List the names of every artifact in the repository."""
    found = settings.run(lambda repo: repo.list_artifact_names())
    if as_json:
        _echo_json(found)
    else:
        for name in found:
            click.echo(name)


@main.group("alias")
def alias_group() -> None:
    """Set, show, list and delete aliases (prod, staging, canaries); show their history
    (history: --backend dynamodb only)."""


@alias_group.command("set")
@click.argument("name")
@click.argument("alias")
@click.argument("version")
@click.option("--canary", metavar="VERSION", help="Secondary version that gets --weight percent.")
@click.option("--weight", type=int, help="Percent of traffic (0-99) for the --canary version.")
@_json_option
@click.pass_obj
def alias_set(
    settings: Settings,
    name: str,
    alias: str,
    version: str,
    canary: str | None,
    weight: int | None,
    as_json: bool,
) -> None:
    """Point ALIAS of NAME at VERSION, optionally splitting traffic with --canary."""
    made = settings.run(lambda repo: repo.put_alias(name, alias, version, canary, weight))
    if as_json:
        _echo_json(_plain(made))
    else:
        _show_aliases(name, [made])


@alias_group.command("get")
@click.argument("name")
@click.argument("alias")
@_json_option
@click.pass_obj
def alias_get(settings: Settings, name: str, alias: str, as_json: bool) -> None:
    """Show ALIAS of NAME."""
    found = settings.run(lambda repo: repo.get_alias(name, alias))
    if as_json:
        _echo_json(_plain(found))
    else:
        _show_aliases(name, [found])


@alias_group.command("list")
@click.argument("name")
@_json_option
@click.pass_obj
def alias_list(settings: Settings, name: str, as_json: bool) -> None:
    """List the aliases of NAME."""
    found = settings.run(lambda repo: repo.list_aliases(name))
    if as_json:
        _echo_json([_plain(a) for a in found])
    elif not found:
        click.echo(f"{name!r} has no aliases", err=True)
    else:
        _show_aliases(name, found)


@alias_group.command("delete")
@click.argument("name")
@click.argument("alias")
@click.pass_obj
def alias_delete(settings: Settings, name: str, alias: str) -> None:
    """Delete ALIAS of NAME (deleting a missing alias changes nothing)."""
    settings.run(lambda repo: repo.delete_alias(name, alias))
    click.echo(f"deleted alias {alias!r} of {name!r}")


def _target(alias: Alias | None) -> str:
    """``1``, ``1 (+2 at 10%)`` or ``(none)``: where an alias points, in one short phrase."""
    if alias is None:
        return "(none)"
    if alias.secondary_version is None:
        return alias.version
    return f"{alias.version} (+{alias.secondary_version} at {alias.secondary_version_weight}%)"


@alias_group.command("history")
@click.argument("name")
@click.argument("alias")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Show at most this many changes.",
)
@_json_option
@click.pass_obj
def alias_history(settings: Settings, name: str, alias: str, limit: int, as_json: bool) -> None:
    """Show the changes of ALIAS of NAME, newest first, one line each: when (UTC),
    action, from -> to, by whom, and why. Needs --backend dynamodb."""

    async def newest(repo: Repository) -> list[AliasChange]:
        changes: list[AliasChange] = []
        token = None
        while len(changes) < limit:
            page = await repo.list_alias_history(
                name, alias, limit=min(limit - len(changes), 1000), page_token=token
            )
            changes += page.changes
            token = page.next_page_token
            if token is None:
                break
        return changes[:limit]

    changes = settings.run_dynamodb("alias history", "keeps no alias history", newest)
    if as_json:
        _echo_json([attrs.asdict(change) for change in changes])
        return
    if not changes:
        click.echo(f"alias {alias!r} of {name!r} has no recorded changes", err=True)
    for change in changes:
        action = change.action if change.recorded else f"{change.action}*"
        line = f"{_when(change.changed_at)}  {action:<9} {_target(change.before)} -> "
        line += _target(change.after)
        if change.actor:
            line += f"  by {change.actor}"
        if change.reason:
            line += f"  {' '.join(change.reason.split())}"
        click.echo(line)
    if any(not change.recorded for change in changes):
        click.echo("* changed outside versioned_async, not recorded yet", err=True)


#: what a --check command is told about the alias it checks
_CHECK_ENVIRONMENT = (
    "VERSIONED_ARTIFACT",
    "VERSIONED_ALIAS",
    "VERSIONED_VERSION",
    "VERSIONED_SECONDARY_VERSION",
    "VERSIONED_WEIGHT",
)


async def _run_check(command: str, alias: Alias) -> int:
    """Run the shell ``command`` about ``alias``; its exit status. Its output goes to stderr."""
    told = (
        alias.name,
        alias.alias,
        alias.version,
        alias.secondary_version or "",
        str(alias.secondary_version_weight or 0),
    )
    process = await asyncio.create_subprocess_shell(
        command,
        env={**os.environ, **dict(zip(_CHECK_ENVIRONMENT, told, strict=True))},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await process.communicate()
    except BaseException:  # cancelled (Ctrl-C): the check must not outlive the roll-out
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if output:
        click.echo(output.decode(errors="replace"), err=True, nl=False)
    assert process.returncode is not None
    return process.returncode


def _parse_steps(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of percents, such as 10,50,100", ctx, param
        ) from None


@main.command()
@click.argument("name")
@click.argument("alias")
@click.argument("to_version")
@click.option(
    "--steps",
    default="10,50,100",
    show_default=True,
    callback=_parse_steps,
    metavar="P1,P2,...",
    help="Percent of traffic on TO_VERSION at each step, increasing, ending at 100.",
)
@click.option(
    "--bake-seconds",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait after each step before checking it.",
)
@click.option(
    "--check",
    "command",
    metavar="COMMAND",
    help="Shell command run after each bake; exit status 0 = healthy, else roll back. It gets "
    + ", ".join(_CHECK_ENVIRONMENT)
    + " (percent on the secondary; 0 without one).",
)
@click.option("--dry-run", is_flag=True, help="Print the steps; write nothing, run no check.")
@click.option("--actor", help="Who rolls out, for the alias history (default: AWS identity).")
@click.option("--reason", help="Why, for the alias history.")
@_json_option
@click.pass_obj
def rollout(
    settings: Settings,
    name: str,
    alias: str,
    to_version: str,
    steps: tuple[int, ...],
    bake_seconds: float,
    command: str | None,
    dry_run: bool,
    actor: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    """Move ALIAS of NAME to TO_VERSION in steps of traffic, checking each step.

    Each step below 100 sends that percent of traffic to TO_VERSION (the rest
    stays on the alias's version); at 100 the alias points at TO_VERSION alone.
    After each step it waits --bake-seconds, then runs --check: a failing check,
    an error or Ctrl-C puts the alias back as it started and exits non-zero.
    Every step is recorded in the alias history (see `alias history`). If
    someone else changes the alias meanwhile, the roll-out stops and leaves
    their change alone. Needs --backend dynamodb.
    """
    say = functools.partial(click.echo, err=as_json)  # --json keeps stdout for the document
    options: dict[str, Any] = {
        "steps": steps,
        "bake_seconds": bake_seconds,
        "actor": actor,
        "reason": reason,
    }

    async def work(repo: Repository) -> RolloutResult:
        plan = await repo.rollout(name, alias, to_version, dry_run=True, **options)
        weights = [
            100 if a.secondary_version is None else a.secondary_version_weight or 0
            for a in plan.steps
        ]
        say(
            f"{'dry run: would roll' if dry_run else 'rolling'} out version {plan.to_version} "
            f"to alias {alias!r} of {name!r} (now {_target(plan.start)}) in "
            f"{len(weights)} step{'s' * (len(weights) > 1)}: "
            f"{', '.join(f'{w}%' for w in weights)}; {bake_seconds:g} s bake each"
        )
        if dry_run:
            for number, step in enumerate(plan.steps, start=1):
                say(f"step {number}/{len(plan.steps)}  {_target(step)}")
            return plan
        numbers = {_target(step): n for n, step in enumerate(plan.steps, start=1)}

        async def check(now: Alias) -> bool:
            status = 0 if command is None else await _run_check(command, now)
            verdict = (
                "baked"
                if command is None
                else "healthy"
                if status == 0
                else f"unhealthy (check exited with {status})"
            )
            number = numbers.get(_target(now), "?")
            say(f"step {number}/{len(plan.steps)}  {_target(now)}  {verdict}")
            return status == 0

        return await repo.rollout(name, alias, to_version, check=check, **options)

    try:
        result = settings.run_dynamodb(
            "rollout", "keeps no alias history to record the steps and roll back from", work
        )
    except exc.ConcurrentModificationError as err:
        when = "it was deleted" if err.actual is None else f"at {_when(err.actual)}"
        fail(
            f"alias {alias!r} of {name!r} was changed by someone else during the roll-out "
            f"({when}): the roll-out stopped and left their change in place; see "
            f"`versioned-async alias history {name} {alias}`",
            ExitCode.ERROR,
        )
    if as_json:
        _echo_json(attrs.asdict(result))
    elif not dry_run:
        say(f"done: alias {alias!r} of {name!r} points at {_target(result.final)}")


#: keys routed per batch by `resolve`: memory stays bounded, hashing runs batched
_RESOLVE_BATCH = 65_536


def _strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\n"):
        line = line[:-1]
    return line[:-1] if line.endswith(b"\r") else line


@main.command()
@click.argument("name")
@click.argument("alias")
@click.argument("keys", required=False, type=click.File("rb"))
@click.pass_obj
def resolve(settings: Settings, name: str, alias: str, keys: IO[bytes] | None) -> None:
    """Route routing keys: read one key per line from KEYS (or stdin), print KEY<TAB>VERSION.

    The alias is read once; keys are routed locally with Alias.choose_versions,
    sticky per key, streaming line by line (any number of keys).
    """
    if keys is None:
        _refuse_terminal_stdin("KEYS file")
        keys = sys.stdin.buffer
    resolved = settings.run(lambda repo: repo.resolve_alias(name, alias))
    tails = {
        v: b"\t" + v.encode() + b"\n"
        for v in (resolved.version, resolved.secondary_version)
        if v is not None
    }
    out = sys.stdout.buffer
    while batch := [_strip_eol(line) for line in itertools.islice(keys, _RESOLVE_BATCH)]:
        out.writelines(
            k + tails[v] for k, v in zip(batch, resolved.choose_versions(batch), strict=True)
        )
    out.flush()


@main.command()
@click.argument("name")
@click.option(
    "--keep-last",
    type=int,
    help="Keep this many newest numbered versions "
    f"[default: {_PURGE_DEFAULTS['keep_last_n'].default}].",
)
@click.option(
    "--older-than-days",
    type=float,
    help="Only purge versions older than this "
    f"[default: {_PURGE_DEFAULTS['purge_older_than_secs'].default / 86400:g}].",
)
@click.option(
    "--all", "everything", is_flag=True, help="Delete NAME for good: every object, version, alias."
)
@click.option("--yes", "-y", is_flag=True, help="With --all: do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Print what would be purged; delete nothing.")
@_json_option
@click.pass_obj
def purge(
    settings: Settings,
    name: str,
    keep_last: int | None,
    older_than_days: float | None,
    everything: bool,
    yes: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Soft-delete old versions of NAME; never LATEST, a version an alias points at,
    or a protected (held) one.

    With --all, delete NAME entirely (asks first, unless --yes). With
    --backend s3 there is no soft delete or hold: purged versions are gone.
    """
    if everything:
        if keep_last is not None or older_than_days is not None:
            raise click.UsageError("--all deletes everything: drop --keep-last/--older-than-days")
        if dry_run:
            raise click.UsageError("--dry-run plans a retention purge: it does not go with --all")
        if not yes:
            click.confirm(
                f"Delete {name!r} for good: every version, object and alias?",
                abort=True,
                err=True,
            )
        settings.run(lambda repo: repo.purge_artifact(name))
        if as_json:
            _echo_json({"name": name, "purged": True})
        else:
            click.echo(f"purged {name!r}: every version, object and alias")
        return
    retention: dict[str, Any] = {}
    if keep_last is not None:
        retention["keep_last_n"] = keep_last
    if older_than_days is not None:
        retention["purge_older_than_secs"] = older_than_days * 86400
    purge_time, deleted = settings.run(
        lambda repo: repo.purge_artifact_versions(name, **retention, dry_run=dry_run)
    )
    if as_json:
        _echo_json(
            {"purge_time": purge_time, "dry_run": dry_run, "deleted": [_plain(a) for a in deleted]}
        )
    elif deleted:
        verb = "would delete" if dry_run else "deleted"
        click.echo(f"{verb} versions {', '.join(a.version for a in deleted)} of {name!r}")
    else:
        click.echo(f"nothing to purge in {name!r}")


@main.group("cache")
def cache_group() -> None:
    """Inspect or clear the local cache (in --cache-dir)."""


@cache_group.command("stats")
@_json_option
@click.pass_obj
def cache_stats(settings: Settings, as_json: bool) -> None:
    """How much content the cache directory holds."""
    cache = LocalCache(settings.require_cache_dir())
    try:
        count, size, limit = cache.content_count, cache.content_bytes, cache.size_limit
    finally:
        cache.close()
    if as_json:
        _echo_json(
            {
                "directory": str(cache.directory),
                "content_count": count,
                "content_bytes": size,
                "size_limit": limit,
            }
        )
        return
    grid = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("directory", str(cache.directory))
    grid.add_row("content", f"{count:,} items")
    grid.add_row("size", f"{size:,} B ({human_size(size)})")
    grid.add_row("size limit", f"{limit:,} B ({human_size(limit)})")
    _stdout().print(grid)


@cache_group.command("clear")
@click.pass_obj
def cache_clear(settings: Settings) -> None:
    """Drop every cached lookup and all cached content."""
    cache = LocalCache(settings.require_cache_dir())
    try:
        count, size = cache.content_count, cache.content_bytes
        cache.clear()
    finally:
        cache.close()
    click.echo(f"cleared {cache.directory}: {count} items, {size:,} B")


@main.command()
@click.option(
    "--endpoint-url",
    "demo_endpoint_url",
    help="Run against this S3/DynamoDB endpoint instead of an embedded moto server.",
)
@click.option(
    "--aws",
    "use_aws",
    is_flag=True,
    help="Run against AWS itself with the ambient credentials (creates --aws-bucket).",
)
@click.option(
    "--aws-bucket",
    default="versioned-async-demo",
    show_default=True,
    help="With --aws: the bucket (and table) to create; bucket names are global.",
)
@click.option("--aws-region", default="us-east-1", show_default=True, help="With --aws.")
def demo(demo_endpoint_url: str | None, use_aws: bool, aws_bucket: str, aws_region: str) -> None:
    """Walk through the artifact lifecycle on an embedded moto server."""
    from .demo import main as run_demo  # noqa: PLC0415 - imports moto only when asked

    run_demo(
        demo_endpoint_url,
        aws=use_aws,
        aws_region=aws_region,
        bucket=aws_bucket,
        table=aws_bucket,
    )


@main.command("serve-local")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port on 127.0.0.1; 0 picks a free one.",
)
def serve_local(port: int) -> None:
    """Run a moto server (fake S3 + DynamoDB) on 127.0.0.1 until Ctrl-C."""
    from .testing import MotoServer, fake_aws_environment  # noqa: PLC0415 - optional moto

    try:
        server = MotoServer(host="127.0.0.1", port=port)
    except ImportError as err:
        fail(str(err), ExitCode.ERROR)
    endpoint = server.start()
    stop = threading.Event()

    def on_terminate(signum: int, frame: FrameType | None) -> None:
        stop.set()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_terminate) if in_main_thread else None
    try:
        click.echo(f"moto server listening at {endpoint} (Ctrl-C stops it)")
        click.echo("Point versioned-async (or any AWS SDK) at it:")
        environment = {"AWS_ENDPOINT_URL": endpoint, **fake_aws_environment()}
        for variable, value in environment.items():
            click.echo(f"export {variable}={shlex.quote(value)}")
        click.echo("then: versioned-async --bucket my-artifacts bootstrap")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        server.stop()
    click.echo("moto server stopped", err=True)
