"""``versioned://``: artifacts as files, for the tools that read through fsspec
(pandas, pyarrow, Dask, DuckDB, Hugging Face ``datasets``, ...).

A path names one version: ``versioned://model`` is LATEST, ``versioned://model@3``
version 3, ``versioned://model@prod`` the version the alias ``prod`` serves (its
primary; with the storage option ``routing_key`` the version its canary routing
picks for that key, exactly :meth:`~versioned_async.Alias.choose_version`). The
repository is named by storage options spelled as the command line's options
(``bucket``, ``prefix``, ``backend``, ``table``, ...), read from the same
environment variables when not given; an unknown one is refused, so a typo
cannot silently read another repository.

Every byte handed out is content checked against its recorded sha256, through
the :class:`~versioned_async.LocalCache` when ``cache_dir`` is set: a file is
downloaded (verified, streamed, at bounded memory) and then read locally, and a
range is cut from verified content. ``info`` and ``ls`` need no content, only
the version's record (its ``size`` and ``sha256``). The filesystem is
read-only: writes raise :class:`ReadOnlyFileSystemError`, which says what writes
instead (:meth:`~versioned_async.ArtifactRepository.put_artifact`).

fsspec keeps one instance per set of storage options and, in its synchronous
API, runs it on fsspec's own event-loop thread. So the repository is opened
lazily, by the first call, in the loop that runs it, and closed by
:meth:`VersionedFileSystem.close` (``await fs.aclose()`` or ``async with`` when
created with ``asynchronous=True``), or else when the instance is collected or
the interpreter exits.

This module imports fsspec, the ``fsspec`` extra: ``import versioned_async``
does not import it.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import shutil
import tempfile
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Final, TypeVar
from urllib.parse import unquote

import attrs
from fsspec.asyn import AsyncFileSystem, sync, sync_teardown  # type: ignore[import-untyped]

from . import _layout
from ._base import ArtifactRepository
from ._repository_options import ENVIRONMENT, RepositoryOptions
from .cache import LocalCache
from .exc import InvalidArgumentError, InvalidArgumentTypeError, NotFoundError
from .models import Artifact

__all__ = ["PROTOCOL", "ReadOnlyFileSystemError", "VersionedFileSystem", "VersionedPath"]

#: the URL scheme, registered by the ``fsspec.specs`` entry point
PROTOCOL: Final = "versioned"

#: the storage options that name the repository (each read from its environment variable
#: when not given), then those of the filesystem itself
REPOSITORY_OPTIONS: Final = tuple(ENVIRONMENT)
OWN_OPTIONS: Final = ("routing_key",)
#: fsspec's own, which every AsyncFileSystem takes
FSSPEC_OPTIONS: Final = ("asynchronous", "loop", "batch_size")

#: how many versions' records ``ls`` reads at once
_LISTING_CONCURRENCY = 16

_T = TypeVar("_T")


class ReadOnlyFileSystemError(NotImplementedError):
    """A write through ``versioned://``, which only reads. A :class:`NotImplementedError`,
    as fsspec's read-only filesystems raise."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        super().__init__(
            f"versioned:// is read-only: {operation} cannot write an artifact. Store content "
            "with Repository.put_artifact() (or `versioned-async put`), publish it with "
            "publish_artifact_version() and point an alias at it with put_alias()"
        )


# -- paths ---------------------------------------------------------------------------


def _quote(text: str, *specials: str) -> str:
    """``text`` with ``%`` and each of ``specials`` percent-encoded (``@`` is ``%40``)."""
    text = text.replace("%", "%25")
    for special in specials:
        text = text.replace(special, f"%{ord(special):02X}")
    return text


@attrs.frozen
class VersionedPath:
    """What one ``versioned://`` path names: an artifact, and LATEST, a version or an alias.

    The grammar is ``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``, split at the
    first ``@``. ``VERSION`` is ``LATEST`` or digits (``3``, ``0003``); anything
    else is an alias, so an alias named ``LATEST`` or made of digits cannot be
    named by a path. An artifact name holding ``@`` (or ``%``) is written
    percent-encoded (``a%40b`` for ``a@b``), as ``ls`` lists it; an alias may hold
    ``@`` and ``/`` as written (``model@team/prod``), and ``%`` as ``%25``.
    """

    name: str
    #: the version in public form (``"LATEST"``, ``"3"``); ``None`` for an alias
    version: str | None
    alias: str | None = None

    @classmethod
    def parse(cls, path: str) -> VersionedPath:
        """The path (without ``versioned://``) parsed and checked by the library's own
        naming rules; :class:`~versioned_async.exc.InvalidArgumentError` saying why not."""
        quoted_name, at, ref = path.partition("@")
        try:
            name = _layout.validate_name(unquote(quoted_name, errors="strict"))
            if not at:
                return cls(name, _layout.LATEST)
            if not ref:
                raise InvalidArgumentError("nothing after '@': give a version or an alias")
            ref = unquote(ref, errors="strict")
            if ref == _layout.LATEST or (ref.isascii() and ref.isdigit()):
                return cls(name, _layout.normalize_version(ref))
            return cls(name, None, _layout.validate_alias(ref))
        except (InvalidArgumentError, InvalidArgumentTypeError, UnicodeDecodeError) as err:
            raise InvalidArgumentError(
                f"{PROTOCOL}://{path}: {err}; a {PROTOCOL}:// path is NAME (LATEST), "
                "NAME@VERSION or NAME@ALIAS, with '@' in NAME written %40"
            ) from None

    @staticmethod
    def of_version(name: str, version: str) -> str:
        """The path of a version, as ``ls`` lists it: ``model`` (LATEST), ``model@3``."""
        quoted = _quote(name, "@")
        return quoted if version == _layout.LATEST else f"{quoted}@{version}"


class _ContentFile(io.BufferedReader):
    """A local copy's handle, closed quietly when collected, as fsspec's own file objects
    are: readers such as pyarrow leave closing a file they opened to the collector."""

    def __del__(self) -> None:
        self.close()


# -- the repository, opened in the loop that runs the filesystem -------------------------


class _Connection:
    """The repository (and cache) of one filesystem, opened on first use in the loop that
    uses it, and closed together. Not the filesystem itself, so a finalizer can hold it."""

    def __init__(self, options: RepositoryOptions) -> None:
        self._options = options
        self.repository: ArtifactRepository | None = None
        self.cache: LocalCache | None = None
        #: the loop the repository is open (or opening) in; its clients belong to it
        self.loop: asyncio.AbstractEventLoop | None = None
        #: the one opening, which concurrent first calls wait for together
        self._opening: asyncio.Task[ArtifactRepository] | None = None

    async def open(self) -> ArtifactRepository:
        loop = asyncio.get_running_loop()
        if self.loop is not None and self.loop is not loop:
            raise RuntimeError(
                "this VersionedFileSystem's repository is open in another event loop: "
                "`await fs.aclose()` in that loop first, or make one filesystem per loop "
                "(VersionedFileSystem(..., asynchronous=True, skip_instance_cache=True))"
            )
        if self.repository is not None:
            return self.repository
        if self._opening is None:
            self.loop = loop
            self._opening = loop.create_task(self._open())
        return await asyncio.shield(self._opening)

    async def _open(self) -> ArtifactRepository:
        cache = self._options.open_cache()
        try:
            repository = self._options.repository(cache)
            await repository.open()
        except BaseException:
            self.loop = self._opening = None
            if cache is not None:
                cache.close()
            raise
        self.repository, self.cache = repository, cache
        return repository

    async def close(self) -> None:
        if self._opening is not None and not self._opening.done():
            await asyncio.wait([self._opening])  # closed once opened: nothing half-open
        repository, cache = self.repository, self.cache
        self.repository = self.cache = self.loop = self._opening = None
        try:
            if repository is not None:
                await repository.close()
        finally:
            if cache is not None:
                cache.close()


class _EnvironmentSettings:
    """The environment variables the settings are read from, as they are now: one of the
    values fsspec keys its instances by (``_extra_tokenize_attributes``), so that a
    filesystem made after ``VERSIONED_BUCKET`` changed is a new one, of the new bucket."""

    def __get__(self, instance: object, owner: type | None = None) -> tuple[str | None, ...]:
        names = (*ENVIRONMENT.values(), "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB")
        return tuple(os.environ.get(name) for name in names)


def _close_when_collected(connection: _Connection) -> None:
    """Close a synchronous filesystem's repository on its loop, when the filesystem is
    collected or the interpreter exits (fsspec keeps its loop thread running until then)."""
    loop = connection.loop
    if connection.repository is None or loop is None or loop.is_closed():
        return
    if loop.is_running():
        sync_teardown(loop, connection.close, timeout=5, description="closing versioned://")


# -- the filesystem ------------------------------------------------------------------


class VersionedFileSystem(AsyncFileSystem):  # type: ignore[misc]
    """Artifacts of one repository as read-only files: ``versioned://NAME[@VERSION|@ALIAS]``.

    :param bucket: the S3 bucket (``VERSIONED_BUCKET``); required.
    :param prefix: the key prefix (``VERSIONED_PREFIX``; default ``versioned-artifacts``).
    :param backend: ``"dynamodb"`` (S3 and a DynamoDB table, the default) or ``"s3"``
        (S3 only) (``VERSIONED_BACKEND``).
    :param table: the DynamoDB table (``VERSIONED_TABLE``; default ``versioned-artifacts``).
    :param region: the AWS region (``AWS_REGION``; unset, botocore's configuration).
    :param endpoint_url: S3's and DynamoDB's endpoint (``AWS_ENDPOINT_URL``; unset,
        botocore's configuration, ``AWS_ENDPOINT_URL_S3`` and the like included).
    :param cache_dir: read content through a :class:`~versioned_async.LocalCache` in
        this directory (``VERSIONED_CACHE_DIR``).
    :param suffix: the S3 objects' file suffix (``VERSIONED_SUFFIX``).
    :param max_attempts: attempts per AWS call (``VERSIONED_MAX_ATTEMPTS``; default 5).
    :param routing_key: an alias path serves the version the alias's canary routing
        picks for this key (:meth:`~versioned_async.Alias.choose_version`); unset, the
        alias's primary version. A call may give its own (``fs.cat(path,
        routing_key=...)``, ``open``, ``info``, ``get``), so one filesystem serves many keys.
    """

    protocol: ClassVar[str | tuple[str, ...]] = PROTOCOL
    root_marker = ""
    _extra_tokenize_attributes = ("_environment_settings",)
    _environment_settings = _EnvironmentSettings()

    def __init__(
        self,
        *,
        bucket: str | None = None,
        prefix: str | None = None,
        backend: str | None = None,
        table: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        suffix: str | None = None,
        max_attempts: int | str | None = None,
        routing_key: str | None = None,
        asynchronous: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
        batch_size: int | None = None,
        **unknown_options: Any,
    ) -> None:
        # named, so they are typed and documented; anything else is a typo, refused
        # with the list rather than Python's bare "unexpected keyword argument"
        options = {
            "bucket": bucket,
            "prefix": prefix,
            "backend": backend,
            "table": table,
            "region": region,
            "endpoint_url": endpoint_url,
            "cache_dir": cache_dir,
            "suffix": suffix,
            "max_attempts": max_attempts,
        }
        assert tuple(options) == REPOSITORY_OPTIONS  # one list: _repository_options.ENVIRONMENT
        unknown = sorted(unknown_options)
        if unknown:
            known = ", ".join([*REPOSITORY_OPTIONS, *OWN_OPTIONS, *FSSPEC_OPTIONS])
            raise InvalidArgumentTypeError(
                f"unknown storage option{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))} for {PROTOCOL}://; the options are: {known}"
            )
        if routing_key is not None and not isinstance(routing_key, str):
            raise InvalidArgumentTypeError(
                f"the storage option routing_key= must be a str, not {type(routing_key).__name__}"
            )
        repository_options = RepositoryOptions.from_given(options)
        repository_options.check()  # a missing bucket is told now, not at the first read
        super().__init__(asynchronous=asynchronous, loop=loop, batch_size=batch_size)
        self.routing_key = routing_key
        self.options = repository_options
        self._connection = _Connection(repository_options)
        if not asynchronous:
            weakref.finalize(self, _close_when_collected, self._connection)

    # -- lifecycle -------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the repository and the cache; the next call opens them again. Safe to
        call twice."""
        await self._connection.close()

    def close(self) -> None:
        """:meth:`aclose` from synchronous code (the filesystem's loop runs it)."""
        if self.asynchronous:
            raise RuntimeError(
                "this VersionedFileSystem is asynchronous: `await fs.aclose()` instead"
            )
        if self._connection.repository is not None:
            self._sync(self.aclose)

    async def __aenter__(self) -> VersionedFileSystem:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _sync(self, work: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """``work(*args)`` run in the filesystem's loop, from synchronous code."""
        if self.asynchronous:
            raise RuntimeError(
                "this VersionedFileSystem is asynchronous (asynchronous=True): use its "
                "coroutines (`await fs._cat_file(path)`), or make a synchronous one"
            )
        result: _T = sync(self.loop, work, *args)
        return result

    @asynccontextmanager
    async def _reading(self, path: str) -> AsyncIterator[ArtifactRepository]:
        """The open repository, with a missing artifact, version or alias (or repository)
        raised as the :class:`FileNotFoundError` fsspec's callers expect."""
        repository = await self._connection.open()
        try:
            yield repository
        except NotFoundError as err:
            raise FileNotFoundError(errno.ENOENT, f"{err}", f"{PROTOCOL}://{path}") from err

    # -- resolving a path --------------------------------------------------------------

    async def _stored_version(
        self, repository: ArtifactRepository, where: VersionedPath, call: Mapping[str, Any]
    ) -> str:
        """The version a path reads now (an alias resolved, through the cache's TTL), for
        the call's ``routing_key=`` or else the filesystem's."""
        if where.alias is None:
            assert where.version is not None
            return where.version
        routing_key = call.get("routing_key", self.routing_key)
        alias = await repository.resolve_alias(where.name, where.alias)
        if routing_key is None:
            return alias.version
        if not isinstance(routing_key, str):
            raise InvalidArgumentTypeError(
                f"routing_key must be a str, not {type(routing_key).__name__}"
            )
        return alias.choose_version(routing_key)

    def _info_of(self, path: str, artifact: Artifact, alias: str | None) -> dict[str, Any]:
        return {
            "name": path,
            "type": "file",
            "size": artifact.size,
            "sha256": artifact.sha256,
            "artifact": artifact.name,
            "version": artifact.version,
            "alias": alias,
            "created": artifact.update_at,
            "mtime": artifact.update_at,
            "content_type": artifact.content_type,
            "metadata": dict(artifact.metadata),
            "s3uri": artifact.s3uri,
        }

    # -- reading -----------------------------------------------------------------------

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        if path == self.root_marker:
            return {"name": path, "type": "directory", "size": 0}
        where = VersionedPath.parse(path)
        async with self._reading(path) as repository:
            version = await self._stored_version(repository, where, kwargs)
            artifact = await repository.get_artifact_version(where.name, version)
        return self._info_of(path, artifact, where.alias)

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """The root lists every artifact (its LATEST, as ``model``); an artifact
        ``model`` lists its versions (``model``, then ``model@3``, ``model@2``, ...,
        each with the ``aliases`` that serve it); any other path, its own entry."""
        path = self._strip_protocol(path)
        if path == self.root_marker:
            entries = await self._ls_root(detail)
        else:
            where = VersionedPath.parse(path)
            if "@" in path:
                entries = [await self._info(path)]
            else:
                entries = await self._ls_versions(path, where.name)
        return entries if detail else [entry["name"] for entry in entries]

    async def _ls_root(self, detail: bool) -> list[dict[str, Any]]:
        async with self._reading("") as repository:
            names = await repository.list_artifact_names()
            if not detail:
                return [{"name": VersionedPath.of_version(name, _layout.LATEST)} for name in names]
            slots = asyncio.Semaphore(_LISTING_CONCURRENCY)

            async def latest(name: str) -> Artifact | None:
                async with slots:
                    try:
                        return await repository.get_artifact_version(name)
                    except NotFoundError:  # LATEST deleted: its versions are under `name`
                        return None

            found = await asyncio.gather(*(latest(name) for name in names))
        return [
            self._info_of(VersionedPath.of_version(a.name, a.version), a, None)
            for a in found
            if a is not None
        ]

    async def _ls_versions(self, path: str, name: str) -> list[dict[str, Any]]:
        async with self._reading(path) as repository:
            versions, aliases = await asyncio.gather(
                repository.list_artifact_versions(name), repository.list_aliases(name)
            )
        if not versions:
            raise FileNotFoundError(
                errno.ENOENT, f"artifact {name!r} has no versions", f"{PROTOCOL}://{path}"
            )
        serving: dict[str, list[str]] = {}
        for alias in aliases:
            for version in (alias.version, alias.secondary_version):
                if version is not None:
                    serving.setdefault(version, []).append(alias.alias)
        entries = []
        for artifact in versions:
            entry = self._info_of(VersionedPath.of_version(name, artifact.version), artifact, None)
            entry["aliases"] = sorted(serving.get(artifact.version, []))
            entries.append(entry)
        return entries

    async def _cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """The content, checked against its sha256 (through the cache when there is
        one); ``start``/``end`` cut it as a slice does (negative: from the end)."""
        path = self._strip_protocol(path)
        where = VersionedPath.parse(path)
        async with self._reading(path) as repository:
            version = await self._stored_version(repository, where, kwargs)
            content = await repository.get_content(where.name, version)
        if start is None and end is None:
            return content
        return content[start:end]

    async def _get_file(self, rpath: str, lpath: str, **kwargs: Any) -> None:
        """Download to ``lpath``: streamed, verified, and renamed into place complete."""
        path = self._strip_protocol(rpath)
        where = VersionedPath.parse(path)
        async with self._reading(path) as repository:
            version = await self._stored_version(repository, where, kwargs)
            await repository.download(where.name, lpath, version=version)

    async def _local_copy(self, path: str, call: Mapping[str, Any]) -> IO[bytes]:
        """The content in a private temporary file, opened for reading and unlinked (its
        bytes live as long as the handle): verified, at bounded memory whatever its size."""
        where = VersionedPath.parse(path)
        folder = Path(tempfile.mkdtemp(prefix="versioned-fs-"))
        try:
            target = folder / "content"
            async with self._reading(path) as repository:
                version = await self._stored_version(repository, where, call)
                await repository.download(where.name, target, version=version)
            return _ContentFile(io.FileIO(target, "rb"))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> IO[bytes]:
        """A local, seekable file of the content (see :meth:`_local_copy`)."""
        if mode != "rb":
            raise ReadOnlyFileSystemError(f"open(mode={mode!r})")
        return self._sync(self._local_copy, self._strip_protocol(path), kwargs)

    def ukey(self, path: str) -> str:
        """The content's sha256: what fsspec's caching layers key a file by."""
        sha256: str = self.info(path)["sha256"]
        return sha256

    def created(self, path: str) -> Any:
        """When the version was written (a numbered version: published)."""
        return self.info(path)["created"]

    def modified(self, path: str) -> Any:
        """As :meth:`created`: a version never changes after it is written."""
        return self.info(path)["mtime"]

    # -- writing: refused ----------------------------------------------------------------

    async def _pipe_file(self, path: str, value: bytes, *args: Any, **kwargs: Any) -> None:
        raise ReadOnlyFileSystemError("pipe_file()")

    async def _pipe(self, path: Any, value: Any = None, *args: Any, **kwargs: Any) -> None:
        raise ReadOnlyFileSystemError("pipe()")

    async def _put_file(self, lpath: str, rpath: str, *args: Any, **kwargs: Any) -> None:
        raise ReadOnlyFileSystemError("put_file()")

    async def _put(self, lpath: Any, rpath: Any, *args: Any, **kwargs: Any) -> None:
        raise ReadOnlyFileSystemError("put()")

    async def _rm_file(self, path: str, **kwargs: Any) -> None:
        raise ReadOnlyFileSystemError("rm_file()")

    async def _rm(self, path: Any, *args: Any, **kwargs: Any) -> None:
        raise ReadOnlyFileSystemError("rm()")

    async def _cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        raise ReadOnlyFileSystemError("cp_file()")

    async def _copy(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> None:
        raise ReadOnlyFileSystemError("copy()")

    async def _mv_file(self, path1: str, path2: str) -> None:
        raise ReadOnlyFileSystemError("mv()")

    async def _mkdir(self, path: str, *args: Any, **kwargs: Any) -> None:
        raise ReadOnlyFileSystemError("mkdir()")

    async def _makedirs(self, path: str, exist_ok: bool = False) -> None:
        raise ReadOnlyFileSystemError("makedirs()")

    def mv(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> None:
        raise ReadOnlyFileSystemError("mv()")

    def rmdir(self, path: str) -> None:
        raise ReadOnlyFileSystemError("rmdir()")

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        raise ReadOnlyFileSystemError("touch()")
