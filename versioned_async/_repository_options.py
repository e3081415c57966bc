"""Where a repository is and how to reach it, as its users name it: one record, one
way from it to a repository.

The command line's global options (``--bucket``, ``--backend s3``, ...) and the
``versioned://`` filesystem's storage options (``bucket=``, ``backend="s3"``, ...)
are the same settings, read from the same environment variables when not given.
So they share :class:`RepositoryOptions`, which builds the repository, and a
setting that is missing or contradicts another raises :class:`SettingsError`,
whose message names the flag on the command line and the storage option in
Python (:class:`~._wording.Words`): the reader is told what *they* can change.
The command line reads its options with click; :meth:`RepositoryOptions.from_given`
reads them for code that has no parser (the filesystem).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs
from aiobotocore.config import AioConfig

from . import _layout
from ._base import ArtifactRepository
from ._settings import DEFAULT_MAX_POOL_CONNECTIONS
from ._wording import Words
from .cache import LocalCache
from .exc import InvalidArgumentError
from .repository import Repository
from .s3_only import S3OnlyRepository
from .transfer_config import TransferConfig

__all__ = [
    "BACKEND_DYNAMODB",
    "BACKEND_S3",
    "ENVIRONMENT",
    "FROM_ENVIRONMENT",
    "FROM_OPTION",
    "RepositoryOptions",
    "SettingsError",
    "environment_endpoint",
]

#: the layouts of `versioned` 1.0, as ``--backend`` and ``backend=`` name them
BACKEND_DYNAMODB: Final = "dynamodb"
BACKEND_S3: Final = "s3"

#: the environment variable each setting is read from when it is not given
ENVIRONMENT: Final[Mapping[str, str]] = {
    "bucket": "VERSIONED_BUCKET",
    "prefix": "VERSIONED_PREFIX",
    "backend": "VERSIONED_BACKEND",
    "table": "VERSIONED_TABLE",
    "region": "AWS_REGION",
    "endpoint_url": "AWS_ENDPOINT_URL",
    "cache_dir": "VERSIONED_CACHE_DIR",
    "suffix": "VERSIONED_SUFFIX",
    "max_attempts": "VERSIONED_MAX_ATTEMPTS",
}

#: where a setting came from: given by the caller, or read from its environment variable
FROM_OPTION: Final = "option"
FROM_ENVIRONMENT: Final = "environment"


def _named(setting: str) -> Words:
    """A setting as each interface names it: ``bucket=`` (a storage option), ``--bucket``."""
    return Words(f"the storage option {setting}=", "--" + setting.replace("_", "-"))


class SettingsError(InvalidArgumentError):
    """A setting is missing, or contradicts another; nothing was opened. The command line
    shows it as a usage error."""


def environment_endpoint(backend: str, environ: Mapping[str, str]) -> str | None:
    """The endpoint ``AWS_ENDPOINT_URL`` gives, unless a service of ``backend`` has its
    own (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL_DYNAMODB``): then ``None``, and
    botocore applies the service-specific endpoints itself."""
    services = ("S3",) if backend == BACKEND_S3 else ("S3", "DYNAMODB")
    if any(environ.get(f"AWS_ENDPOINT_URL_{service}") for service in services):
        return None
    return environ.get(ENVIRONMENT["endpoint_url"]) or None


@attrs.frozen
class RepositoryOptions:
    """Where the repository is and how to reach it: the settings of ``--bucket``,
    ``--backend``, ... (or ``bucket=``, ``backend=``, ...), after the defaults."""

    bucket: str | None
    prefix: str
    table: str
    region: str | None
    endpoint_url: str | None
    cache_dir: Path | None
    suffix: str
    max_attempts: int | None
    backend: str = BACKEND_DYNAMODB
    #: where a table name other than the default came from (:data:`FROM_OPTION`,
    #: :data:`FROM_ENVIRONMENT`); ``None``: not given
    table_from: str | None = None
    #: the transfer settings given (--multipart-threshold ...); ``None``: the default
    multipart_threshold: int | None = None
    multipart_chunksize: int | None = None
    max_concurrency: int | None = None

    @classmethod
    def from_given(
        cls, given: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> RepositoryOptions:
        """The settings ``given`` (keys of :data:`ENVIRONMENT`; ``None``: not given), the
        others read from their environment variables as the command line reads them,
        then the defaults. A value of the wrong kind raises :class:`SettingsError`
        naming the setting and where it came from."""
        environ = os.environ if environ is None else environ
        raw: dict[str, tuple[Any, str]] = {}
        for setting, variable in ENVIRONMENT.items():
            if given.get(setting) is not None:
                raw[setting] = (given[setting], FROM_OPTION)
            elif environ.get(variable):
                raw[setting] = (environ[variable], FROM_ENVIRONMENT)

        def text(setting: str, default: str | None) -> str | None:
            value = raw.get(setting, (default, FROM_OPTION))[0]
            if value is not None and not isinstance(value, str):
                raise SettingsError(_named(setting), f" must be a str, not {type(value).__name__}")
            return value

        backend = (text("backend", BACKEND_DYNAMODB) or BACKEND_DYNAMODB).lower()
        if backend not in (BACKEND_DYNAMODB, BACKEND_S3):
            where = _source_of("backend", raw)
            raise SettingsError(
                where, f" must be {BACKEND_DYNAMODB!r} or {BACKEND_S3!r}, not {backend!r}"
            )
        endpoint = text("endpoint_url", None)
        if raw.get("endpoint_url", (None, FROM_OPTION))[1] == FROM_ENVIRONMENT:
            endpoint = environment_endpoint(backend, environ)
        cache_dir = raw.get("cache_dir", (None, FROM_OPTION))[0]
        if cache_dir is not None and not isinstance(cache_dir, str | os.PathLike):
            raise SettingsError(
                _named("cache_dir"), f" must be a path, not {type(cache_dir).__name__}"
            )
        return cls(
            bucket=text("bucket", None),
            prefix=text("prefix", _layout.DEFAULT_S3_PREFIX) or "",
            table=text("table", _layout.DEFAULT_TABLE_NAME) or _layout.DEFAULT_TABLE_NAME,
            region=text("region", None),
            endpoint_url=endpoint or None,
            cache_dir=None if cache_dir is None else Path(cache_dir),
            suffix=text("suffix", "") or "",
            max_attempts=_attempts(raw),
            backend=backend,
            table_from=raw["table"][1] if "table" in raw else None,
        )

    def transfer_config(self) -> TransferConfig:
        """The repository's :class:`TransferConfig`: the options given, the defaults
        for the others."""
        given = {
            "multipart_threshold": self.multipart_threshold,
            "multipart_chunksize": self.multipart_chunksize,
            "max_concurrency": self.max_concurrency,
        }
        return TransferConfig(**{name: v for name, v in given.items() if v is not None})

    def open_cache(self) -> LocalCache | None:
        """The :class:`LocalCache` in the cache directory, if one was given."""
        return None if self.cache_dir is None else LocalCache(self.cache_dir)

    def check(self) -> None:
        """Raise :class:`SettingsError` when a setting is missing or contradicts another,
        before anything is built or opened."""
        if not self.bucket:
            raise SettingsError(
                "no bucket: pass ", _named("bucket"), f" or set {ENVIRONMENT['bucket']}"
            )
        if self.backend == BACKEND_S3 and self.table_from is not None:
            given_by = _named("table") if self.table_from == FROM_OPTION else ENVIRONMENT["table"]
            undo = (
                Words("drop table=", "drop --table")
                if self.table_from == FROM_OPTION
                else f"unset {ENVIRONMENT['table']}"
            )
            raise SettingsError(
                given_by,
                " names a DynamoDB table, and ",
                Words(f"backend={BACKEND_S3!r}", f"--backend {BACKEND_S3}"),
                " uses none (everything is in the bucket): ",
                undo,
                ", or use ",
                Words(f"backend={BACKEND_DYNAMODB!r}", f"--backend {BACKEND_DYNAMODB}"),
            )

    def _where(self) -> dict[str, Any]:
        """The arguments both layouts take: where the repository is, how to reach it."""
        self.check()
        config = (
            None
            if self.max_attempts is None
            else AioConfig(retries={"mode": "standard", "total_max_attempts": self.max_attempts})
        )
        transfer = self.transfer_config()
        return {
            "aws_region": self.region,
            "s3_bucket": self.bucket,
            "s3_prefix": self.prefix,
            "suffix": self.suffix,
            "endpoint_url": self.endpoint_url,
            "client_config": config,
            "transfer_config": transfer,
            # no pool option here: the pool holds what --max-concurrency asks for
            "max_pool_connections": max(DEFAULT_MAX_POOL_CONNECTIONS, transfer.max_concurrency),
        }

    def dynamodb_repository(self, cache: LocalCache | None) -> Repository:
        """The DynamoDB layout's repository these settings name."""
        return Repository(dynamodb_table_name=self.table, cache=cache, **self._where())

    def repository(self, cache: LocalCache | None) -> ArtifactRepository:
        """The repository these settings name, in the layout ``backend`` says."""
        if self.backend == BACKEND_DYNAMODB:
            return self.dynamodb_repository(cache)
        return S3OnlyRepository(cache=cache, **self._where())


def _source_of(setting: str, raw: Mapping[str, tuple[Any, str]]) -> Words | str:
    """Where a setting's bad value came from: its option, or its environment variable."""
    source = raw.get(setting, (None, FROM_OPTION))[1]
    return _named(setting) if source == FROM_OPTION else ENVIRONMENT[setting]


def _attempts(raw: Mapping[str, tuple[Any, str]]) -> int | None:
    """``max_attempts`` as a number from 1, from an int or its environment variable's text."""
    if "max_attempts" not in raw:
        return None
    value = raw["max_attempts"][0]
    number = 0
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number < 1:
        raise SettingsError(
            _source_of("max_attempts", raw), f" must be a whole number from 1, not {value!r}"
        )
    return number
