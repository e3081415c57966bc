"""The errors versioned_async raises.

Every error derives from :class:`VersionedError`, so ``except exc.VersionedError``
catches everything this library raises on purpose. Bad arguments are also
:class:`ValueError` or :class:`TypeError`, so code written for plain Python
conventions keeps working::

    VersionedError
    ├── InvalidArgumentError (ValueError)       a value is not allowed; the message says what is
    │   └── TableMismatchError                  the table serves another bucket/prefix
    ├── InvalidArgumentTypeError (TypeError)    an argument has the wrong type
    ├── NotFoundError (LookupError)
    │   ├── ArtifactNotFoundError               no such artifact or version (or it is deleted)
    │   ├── AliasNotFoundError                  no such alias
    │   ├── NoHistoryError                      no recorded alias change to answer from
    │   └── RepositoryNotFoundError             the bucket or table is missing: run bootstrap()
    ├── IntegrityError                          content does not match its recorded sha256
    ├── ConflictError                           a concurrent writer won; safe to retry
    │   ├── ConcurrentModificationError         the alias moved since you read it (if_update_at)
    │   └── VersionProtectedError               the version is held (protect): unprotect() first
    ├── RolloutFailedError                      a roll-out's check failed; the alias was rolled back
    ├── RepositoryClosedError                   used outside ``async with repo``
    ├── CacheDirectoryError                     the cache directory is not only ours: fix or move it
    ├── CacheUnavailableError                   the cache database is locked: retry (reads go to S3)
    ├── DiskFullError (also an OSError)         no space to write: free space or write elsewhere
    ├── FolderNotFoundError (a FileNotFoundError) download's folder is missing: create it first
    └── BackendError                            S3 or DynamoDB refused or failed the call
        └── BackendUnavailableError             could not be reached (network, timeouts, 5xx)

Each error carries the fields it is about (``name``, ``version``, ``alias``) as
attributes, so callers can react without parsing messages.
"""

from __future__ import annotations

import errno
import os
import shlex
from datetime import datetime

from ._wording import DOWNLOAD, Interface, Part, Words, create_alias, create_artifact, render

__all__ = [
    "AliasNotFoundError",
    "ArtifactNotFoundError",
    "BackendError",
    "BackendUnavailableError",
    "CacheDirectoryError",
    "CacheUnavailableError",
    "ConcurrentModificationError",
    "ConflictError",
    "DiskFullError",
    "FolderNotFoundError",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "NoHistoryError",
    "NotFoundError",
    "RepositoryClosedError",
    "RepositoryNotFoundError",
    "RolloutFailedError",
    "TableMismatchError",
    "VersionProtectedError",
    "VersionedError",
]


class VersionedError(Exception):
    """Base class of every error versioned_async raises.

    Its message may name things a reader acts on (a method, an argument) that
    the command line calls otherwise (a command, a flag): those parts are
    :class:`~versioned_async._wording.Words`, kept with the error, so that
    :meth:`message_for` can say it in either interface's words. ``str()`` is
    the Python wording, always.
    """

    #: the message as parts, when some of them differ between interfaces
    _parts: tuple[Part, ...] = ()

    def __init__(self, *args: object) -> None:
        if args and any(isinstance(arg, Words) for arg in args):
            parts = tuple(arg if isinstance(arg, Words) else str(arg) for arg in args)
            self._parts = parts
            args = (render(parts, Interface.PYTHON),)
        super().__init__(*args)

    def message_for(self, interface: Interface) -> str:
        """The message in the words of ``interface``: ``str(self)`` for Python; on the
        command line, its commands and flags instead of methods and arguments."""
        return render(self._parts, interface) if self._parts else str(self)


# -- bad input ---------------------------------------------------------------


class InvalidArgumentError(VersionedError, ValueError):
    """An argument has a value that is not allowed."""


class TableMismatchError(InvalidArgumentError):
    """The repository's DynamoDB table records that it serves another bucket or prefix.

    Two repositories on one table mix their versions and aliases (one lists the
    other's, a publish records versions whose objects are in another bucket), so
    every read and write of this repository is refused: nothing was written, and
    nothing the table holds was returned. Raised by the first call that would
    use the table, by ``bootstrap`` and by ``adopt_table``. ``table`` is the
    table, ``served_bucket``/``served_prefix`` what its record says it serves,
    ``bucket``/``prefix`` what this repository was given.

    ``str(error)`` gives the advice in Python's words (the ``Repository``
    arguments); ``message_for(Interface.CLI)`` in the command line's (its options).
    """

    def __init__(
        self, table: str, served_bucket: str, served_prefix: str, bucket: str, prefix: str
    ) -> None:
        self.table = table
        self.served_bucket = served_bucket
        self.served_prefix = served_prefix
        self.bucket = bucket
        self.prefix = prefix
        served = _location(served_bucket, served_prefix)
        given = _location(bucket, prefix)
        super().__init__(
            f"DynamoDB table {table!r} serves the repository in {served}, not this one "
            f"in {given}: nothing was written, and nothing the table holds was returned; ",
            Words(
                f"give Repository the table's own s3_bucket={served_bucket!r} and "
                f"s3_prefix={served_prefix!r}, or a table of its own with "
                "dynamodb_table_name=... (bootstrap() creates it)",
                f"pass --bucket {shlex.quote(served_bucket)} "
                f"--prefix {shlex.quote(served_prefix)}, or a table of its own with "
                "--table NAME (`versioned-async bootstrap` creates it)",
            ),
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (
            type(self),
            (self.table, self.served_bucket, self.served_prefix, self.bucket, self.prefix),
        )


def _location(bucket: str, prefix: str) -> str:
    """``s3://bucket/prefix`` (``s3://bucket/`` for the empty prefix)."""
    return f"s3://{bucket}/{prefix.strip('/')}"


class InvalidArgumentTypeError(VersionedError, TypeError):
    """An argument has the wrong type."""


# -- missing things ----------------------------------------------------------


class NotFoundError(VersionedError, LookupError):
    """Something asked for does not exist."""


class ArtifactNotFoundError(NotFoundError):
    """The artifact, or the version of it asked for, does not exist or is deleted."""

    def __init__(self, name: str, version: str | None = None) -> None:
        self.name = name
        self.version = version
        if version is None:
            super().__init__(f"artifact {name!r} not found: ", create_artifact(name), " creates it")
        else:
            super().__init__(f"artifact {name!r} has no version {version!r} (missing or deleted)")

    def __reduce__(self) -> tuple[type[ArtifactNotFoundError], tuple[str, str | None]]:
        return (type(self), (self.name, self.version))


class AliasNotFoundError(NotFoundError):
    """The alias does not exist."""

    def __init__(self, name: str, alias: str) -> None:
        self.name = name
        self.alias = alias
        super().__init__(
            f"artifact {name!r} has no alias {alias!r}: ", create_alias(name, alias), " creates it"
        )

    def __reduce__(self) -> tuple[type[AliasNotFoundError], tuple[str, str]]:
        return (type(self), (self.name, self.alias))


class NoHistoryError(NotFoundError):
    """The alias has no recorded change to answer from (``as_of``, ``rollback_alias``)."""


class RepositoryNotFoundError(NotFoundError):
    """The S3 bucket or DynamoDB table of the repository does not exist."""


# -- consistency -------------------------------------------------------------


class IntegrityError(VersionedError):
    """Downloaded content does not match the sha256 recorded for it; nothing was returned."""

    def __init__(self, name: str, version: str, expected: str, actual: str) -> None:
        self.name = name
        self.version = version
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"content of {name!r} version {version!r} has sha256 {actual}, "
            f"but {expected} is recorded: the S3 object was changed outside this library"
        )

    def __reduce__(self) -> tuple[type[IntegrityError], tuple[str, str, str, str]]:
        return (type(self), (self.name, self.version, self.expected, self.actual))


class ConflictError(VersionedError):
    """A concurrent writer changed the same thing first; nothing was changed, retry."""


class ConcurrentModificationError(ConflictError):
    """The alias is not in the state the caller read (``if_update_at``); nothing changed.

    Someone else moved or deleted it since: read it again, decide again.
    ``actual`` is its ``update_at`` now, ``None`` when it no longer exists.
    """

    def __init__(
        self, name: str, alias: str, expected: datetime | None, actual: datetime | None
    ) -> None:
        self.name = name
        self.alias = alias
        self.expected = expected
        self.actual = actual
        now = "it was deleted" if actual is None else f"it was changed at {actual.isoformat()}"
        super().__init__(
            f"alias {alias!r} of {name!r} is not the one read at "
            f"{expected.isoformat() if expected else '(absent)'}: {now}; "
            "read it again (get_alias) and retry with its update_at"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.name, self.alias, self.expected, self.actual))


class VersionProtectedError(ConflictError):
    """The version is held (``protect``), so it was not deleted; nothing changed."""

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        super().__init__(
            f"version {version!r} of {name!r} is protected: call "
            f"unprotect({name!r}, {version!r}) first to delete it"
        )

    def __reduce__(self) -> tuple[type[VersionProtectedError], tuple[str, str]]:
        return (type(self), (self.name, self.version))


class RolloutFailedError(VersionedError):
    """A roll-out step failed its health check (or the check raised); the alias was
    put back to its starting state, recorded in its history. ``step`` is the
    weight that failed, ``__cause__`` the check's exception if it raised."""

    def __init__(self, name: str, alias: str, step: int, why: str) -> None:
        self.name = name
        self.alias = alias
        self.step = step
        self.why = why
        super().__init__(
            f"roll-out of alias {alias!r} of {name!r} failed at {step}%: {why}; "
            "the alias was rolled back to where it started"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.name, self.alias, self.step, self.why))


# -- lifecycle and transport ---------------------------------------------------


class RepositoryClosedError(VersionedError):
    """The repository was used outside ``async with repo:``."""


class BackendError(VersionedError):
    """S3 or DynamoDB answered with an error this library does not expect.

    ``code`` is the AWS error code (``AccessDenied``, ...) and ``operation`` the
    API call, when known.
    """

    def __init__(self, message: str, *, code: str | None = None, operation: str | None = None):
        self.code = code
        self.operation = operation
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_backend_error, (type(self), str(self), self.code, self.operation))


class BackendUnavailableError(BackendError):
    """S3 or DynamoDB could not be reached or kept failing after retries; retry later."""


class CacheDirectoryError(VersionedError):
    """The cache directory, or a folder in it, is not safe to use (another user owns it,
    or it is a symbolic link), or cannot be used at all (a file where a folder should
    be, a folder that cannot be created). Nothing was read from it or written to it.

    ``directory`` is the cache directory given to ``LocalCache``, ``path`` the
    folder refused and ``reason`` why.
    """

    def __init__(
        self, directory: str, path: str, reason: str, advice: str | Words, unsafe: bool = True
    ) -> None:
        self.directory = directory
        self.path = path
        self.reason = reason
        #: whether another user could swap the content (else the path is just unusable:
        #: a file where a folder should be, a folder that cannot be created)
        self.unsafe = unsafe
        #: what to do, in Python's words (``advice`` may also say it for the command line)
        self.advice = advice if isinstance(advice, str) else advice.python
        self._advice = advice
        where = "it" if path == directory else path
        refused = (
            f"LocalCache refuses the cache directory {directory}: {where} {reason}, so another "
            "user could swap the content it serves; "
            if unsafe
            else f"LocalCache cannot use the cache directory {directory}: {where} {reason}; "
        )
        if isinstance(advice, str):
            super().__init__(refused + advice)
        else:
            super().__init__(refused, advice)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.directory, self.path, self.reason, self._advice, self.unsafe))


class CacheUnavailableError(VersionedError):
    """The LocalCache's database is locked by another process, or could not be opened.

    Reads never raise it: they go to S3 meanwhile. A call on the cache itself
    (``clear``, ``content_bytes``) does; retry once the other process is done.
    """


class DiskFullError(VersionedError, OSError):
    """No space was left (or a file-size limit was reached) where content was written.

    ``path`` is the file being written, ``errno`` ENOSPC, EDQUOT or EFBIG; the
    message says what to do. Nothing partial was left behind.
    """

    def __init__(self, code: int, path: str, advice: str) -> None:
        self.path = path
        self.advice = advice
        self.message = (
            f"no space left to write {path} ({os.strerror(code)}): {advice}"
            if code
            else f"no space left to write {path}: {advice}"
        )
        super().__init__(code, self.message, path)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.errno, self.path, self.advice))


class FolderNotFoundError(VersionedError, FileNotFoundError):
    """``download`` was given a file path whose folder does not exist (or is a file).

    Checked before any request; nothing was downloaded or created. ``path`` is
    the folder. A ``FileNotFoundError`` too, as the call raised before.
    """

    def __init__(self, path: str, is_file: bool = False) -> None:
        self.path = path
        self.is_file = is_file
        if not is_file:
            self._parts = (
                f"the folder {path} does not exist: create it first (",
                DOWNLOAD,
                " writes one file and creates no folders)",
            )
        self.message = (
            f"cannot download into {path}: it is a file, not a folder"
            if is_file
            else render(self._parts, Interface.PYTHON)
        )
        super().__init__(errno.ENOTDIR if is_file else errno.ENOENT, self.message, path)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.is_file))


def _rebuild_backend_error(
    cls: type[BackendError], message: str, code: str | None, operation: str | None
) -> BackendError:
    return cls(message, code=code, operation=operation)
