"""How every command runs: the global options open one repository, errors end in an exit code.

Each command that talks to AWS goes through :meth:`Settings.run` (one repository,
opened with ``async with`` in a fresh event loop, closed again), so no command
knows the layout or the lifecycle. Scripts branch on the exit code, so the
mapping is public (:data:`EXIT_CODES`) and keyed by error class: an error takes
the code of its nearest class, and prints one line, never a traceback.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import attrs
import click

from .. import _repository_options as _options
from .. import exc
from .._base import ArtifactRepository
from .._wording import Interface
from ..cache import LocalCache
from ..repository import Repository
from .logs import library_log_lines

_T = TypeVar("_T")
_R = TypeVar("_R", bound=ArtifactRepository)


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
    ExitCode.USAGE: (
        "usage error or invalid input (bad option, bad k=v, invalid name/version; "
        "a table that serves another bucket or prefix)"
    ),
    ExitCode.NOT_FOUND: "no such artifact, version or alias; repository not bootstrapped",
    ExitCode.UNAVAILABLE: "S3/DynamoDB unreachable or failing after retries (retry later)",
}

#: the end of `versioned-async --help`: the codes above, for people
EPILOG = "\b\nExit codes:\n" + "\n".join(
    f"  {int(code)}  {text}" for code, text in _EXIT_CODE_HELP.items()
)


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: <message>`` (one line) on stderr and exit with ``code``."""
    click.echo(f"error: {' '.join(message.split())}", err=True)
    raise click.exceptions.Exit(code)


class ErrorsAsExitCodes(click.Group):
    """The top-level group: the library's errors become one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with library_log_lines():
                return super().invoke(ctx)
        except BrokenPipeError:  # the reader went away (`| head`): click exits quietly
            raise
        except exc.VersionedError as err:
            fail(err.message_for(Interface.CLI), exit_code_for(err))
        except OSError as err:
            fail(str(err), exit_code_for(err))


#: the --backend choices: the `versioned` 1.0 layouts
BACKEND_DYNAMODB = _options.BACKEND_DYNAMODB
BACKEND_S3 = _options.BACKEND_S3


@attrs.frozen
class Settings(_options.RepositoryOptions):
    """The global options: where the repository is and how to reach it (the record the
    ``versioned://`` filesystem shares), and how a command runs with them."""

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

    def check(self) -> None:
        """A missing or contradictory option is a usage error, in the command line's words."""
        try:
            super().check()
        except _options.SettingsError as err:
            raise click.UsageError(err.message_for(Interface.CLI)) from None

    def run(self, work: Callable[[ArtifactRepository], Awaitable[_T]]) -> _T:
        """Open one repository, run ``work`` on it in a fresh event loop, close it."""
        return self._session(self.repository, work)

    def run_dynamodb(
        self, command: str, missing: str, work: Callable[[Repository], Awaitable[_T]]
    ) -> _T:
        """:meth:`run` for a command that needs the DynamoDB layout; a usage error,
        before anything is opened, on the S3-only backend (which lacks ``missing``)."""
        self.require_dynamodb(command, missing)
        return self._session(self.dynamodb_repository, work)

    def _session(
        self,
        build: Callable[[LocalCache | None], _R],
        work: Callable[[_R], Awaitable[_T]],
    ) -> _T:
        cache = self.open_cache()
        try:
            repo = build(cache)

            async def session() -> _T:
                async with repo:
                    return await work(repo)

            return asyncio.run(session())
        finally:
            if cache is not None:
                cache.close()
