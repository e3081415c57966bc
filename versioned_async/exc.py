"""The errors versioned_async raises.

Every error derives from :class:`VersionedError`, so ``except exc.VersionedError``
catches everything this library raises on purpose. Bad arguments are also
:class:`ValueError` or :class:`TypeError`, so code written for plain Python
conventions keeps working::

    VersionedError
    ├── InvalidArgumentError (ValueError)       a value is not allowed; the message says what is
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
    └── BackendError                            S3 or DynamoDB refused or failed the call
        └── BackendUnavailableError             could not be reached (network, timeouts, 5xx)

Each error carries the fields it is about (``name``, ``version``, ``alias``) as
attributes, so callers can react without parsing messages.
"""

from __future__ import annotations

from datetime import datetime

__all__ = [
    "AliasNotFoundError",
    "ArtifactNotFoundError",
    "BackendError",
    "BackendUnavailableError",
    "ConcurrentModificationError",
    "ConflictError",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "NoHistoryError",
    "NotFoundError",
    "RepositoryClosedError",
    "RepositoryNotFoundError",
    "RolloutFailedError",
    "VersionProtectedError",
    "VersionedError",
]


class VersionedError(Exception):
    """Base class of every error versioned_async raises."""


# -- bad input ---------------------------------------------------------------


class InvalidArgumentError(VersionedError, ValueError):
    """An argument has a value that is not allowed."""


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
            msg = f"artifact {name!r} not found: put_artifact() creates it"
        else:
            msg = f"artifact {name!r} has no version {version!r} (missing or deleted)"
        super().__init__(msg)

    def __reduce__(self) -> tuple[type[ArtifactNotFoundError], tuple[str, str | None]]:
        return (type(self), (self.name, self.version))


class AliasNotFoundError(NotFoundError):
    """The alias does not exist."""

    def __init__(self, name: str, alias: str) -> None:
        self.name = name
        self.alias = alias
        super().__init__(f"artifact {name!r} has no alias {alias!r}: put_alias() creates it")

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


def _rebuild_backend_error(
    cls: type[BackendError], message: str, code: str | None, operation: str | None
) -> BackendError:
    return cls(message, code=code, operation=operation)
