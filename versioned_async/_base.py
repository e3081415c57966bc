"""What every repository layout shares: the clients, the read path's façade, the models.

:class:`BaseRepository` holds the S3 client (and whatever else a layout needs)
and builds the models. Reads go down one path: this façade validates, then a
reader (:mod:`.cache.reader`: direct, or :mod:`.cache.cached_reader` over the
:class:`~versioned_async.cache.LocalCache`) reads through the layout's
:class:`~.cache.reader.VersionSource` (:mod:`._sources`): a DynamoDB table and
S3 for :class:`~versioned_async.Repository`, S3 alone for
:class:`~versioned_async.S3OnlyRepository`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import random
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from types import TracebackType
from typing import ClassVar, TypeVar

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from . import _codec, _layout, _routing
from ._aws.clients import NOT_OPEN, AwsClients, default_config
from ._aws.s3 import ObjectInfo, ObjectStore
from ._codec import AliasItem, VersionItem
from ._layout import VersionLike
from ._redact import redact_url
from ._s3_options import S3Options
from .cache import LocalCache
from .cache.cached_reader import content_reader
from .cache.keys import RepositoryId
from .cache.reader import ContentReader, VersionSource, sha256_of
from .exc import (
    AliasNotFoundError,
    ArtifactNotFoundError,
    BackendError,
    FolderNotFoundError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RepositoryClosedError,
)
from .models import Alias, Artifact, bind

__all__ = ["BaseRepository"]

log = logging.getLogger("versioned_async")

_Repo = TypeVar("_Repo", bound="BaseRepository")

#: concurrent requests one bulk operation (listing, purge) keeps in flight
BULK_CONCURRENCY = 16


def _check_folder(folder: Path) -> None:
    """Refuse a download into a folder that does not exist, before any request.

    Not created: a mistyped path would silently grow a folder tree (``cp``,
    ``open()`` and ``boto3``'s ``download_file`` refuse too), and creating it
    would need a mode and an owner this call cannot know.
    """
    if not folder.is_dir():
        raise FolderNotFoundError(str(folder), is_file=folder.exists())


def describe_object(name: str, stored: str, sha256: str, info: ObjectInfo) -> VersionItem:
    """The visible version item for an object: its own metadata is the truth."""
    return VersionItem(
        pk=name,
        sk=stored,
        is_deleted=False,
        sha256=sha256,
        update_at=info.last_modified,
        size=info.size,
        content_type=info.content_type,
        # always written, even empty: an item without it was written by `versioned`
        metadata=dict(info.metadata),
    )


async def hash_source(source: bytes | Path) -> tuple[str, int]:
    """sha256 and size of bytes or of a file (read in chunks, in a thread)."""
    if isinstance(source, bytes):
        return await sha256_of(source), len(source)

    def hash_file() -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        with open(source, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    return await asyncio.to_thread(hash_file)


def _search_metadata(metadata: object) -> dict[str, str]:
    """The entries to search for: user metadata as put_artifact accepts it."""
    if isinstance(metadata, Mapping) and not isinstance(metadata, dict):
        metadata = dict(metadata)
    return _layout.validate_metadata(metadata)


def holds_already(
    head: ObjectInfo | None,
    sha256: str,
    tags: Mapping[str, str],
    content_type: str | None,
    metadata: Mapping[str, str] | None,
    user_meta: Mapping[str, str],
) -> bool:
    """Whether LATEST's object (``head``) already is what a put asks for, so that the put
    uploads nothing: the same content, and the same content type and metadata where
    given (``metadata`` as passed, ``user_meta`` as validated). Tags are not read back,
    so a put with tags always uploads."""
    return (
        head is not None
        and head.sha256 == sha256
        and not tags
        and (content_type is None or content_type == head.content_type)
        and (metadata is None or user_meta == head.metadata)
    )


def search_arguments(
    name: str | None, metadata: object, include_latest: object, limit: object
) -> dict[str, str]:
    """Check find_artifact_versions' arguments; the metadata entries to match."""
    if name is not None:
        _layout.validate_name(name)
    wanted = _search_metadata(metadata)
    if not isinstance(include_latest, bool):
        raise InvalidArgumentTypeError(
            f"include_latest must be a bool, not {type(include_latest).__name__}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidArgumentError(f"limit must be None or an int of at least 1, got {limit!r}")
    return wanted


def has_metadata(item: VersionItem, wanted: Mapping[str, str]) -> bool:
    """Whether the item's metadata holds every wanted entry (exact match)."""
    have = item.metadata or {}
    return all(have.get(key) == value for key, value in wanted.items())


class BaseRepository:
    """The API both layouts share; use :class:`~versioned_async.Repository` or
    :class:`~versioned_async.S3OnlyRepository`, not this class."""

    #: the AWS services this layout talks to; one client each
    _SERVICES: ClassVar[tuple[str, ...]] = ("s3",)

    def __init__(
        self,
        *,
        aws_region: str | None,
        s3_bucket: str,
        s3_prefix: str,
        suffix: str,
        endpoint_url: str | None,
        session: AioSession | None,
        cache: LocalCache | None,
        max_pool_connections: int,
        client_config: AioConfig | None,
        server_side_encryption: str | None,
        sse_kms_key_id: str | None,
        expected_bucket_owner: str | None,
        layout: type[_layout.Layout],
        table_name: str,
        versions: VersionSource,
    ) -> None:
        for what, value in (("s3_bucket", s3_bucket), ("s3_prefix", s3_prefix), ("suffix", suffix)):
            if not isinstance(value, str):
                raise InvalidArgumentTypeError(f"{what} must be a str, not {type(value).__name__}")
        if not s3_bucket:
            raise InvalidArgumentError("s3_bucket is required: the bucket that holds the content")
        self.aws_region = aws_region
        self.s3_bucket = s3_bucket
        self.s3_prefix = s3_prefix.strip("/")
        self.suffix = suffix
        self.endpoint_url = endpoint_url
        self.layout = layout(bucket=s3_bucket, prefix=s3_prefix, suffix=suffix)
        self._session = session
        if cache is not None and not isinstance(cache, LocalCache):
            raise InvalidArgumentTypeError(
                f"cache must be a LocalCache, not {type(cache).__name__}"
            )
        self.cache = cache
        self.s3_options = S3Options(server_side_encryption, sse_kms_key_id, expected_bucket_owner)
        self._table_name = table_name
        #: where this layout's versions and aliases are read (see _sources)
        self._source = versions
        # cache keys name the repository (and its layout), so one cache directory can
        # serve several
        identity = RepositoryId(
            # without its password: the cache database is a file, and the user part
            # does not change which repository this is
            endpoint=redact_url(endpoint_url) or "aws",
            bucket=s3_bucket,
            prefix=self.layout.prefix,
            suffix=suffix,
            table=table_name or "s3-only",
        )
        #: the one read path: through the cache when there is one, else straight
        self._reader: ContentReader = content_reader(cache, versions, identity, self._alias)
        self._client_defaults = default_config(max_pool_connections, endpoint_url)
        self._user_config = client_config
        self._aws_clients: AwsClients | None = None
        self._object_store: ObjectStore | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self: _Repo) -> _Repo:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Set up the clients, each created on its first use; ``async with repo`` calls
        this for you. Settings AWS would refuse (no region, a bad endpoint) fail here."""
        if self._aws_clients is not None:
            raise RepositoryClosedError("this Repository is already open")
        clients = AwsClients(
            self._session,
            self.aws_region,
            self.endpoint_url,
            defaults=self._client_defaults,
            overrides=self._user_config,
            s3_options=self.s3_options,
            services=self._SERVICES,
        )
        self._aws_clients = clients
        self._object_store = ObjectStore(clients, self.s3_bucket)

    async def close(self) -> None:
        """Close the clients that were created, and their connection pools. Safe to call
        twice."""
        clients, self._aws_clients, self._object_store = self._aws_clients, None, None
        if clients is not None:
            await clients.aclose()

    @property
    def is_open(self) -> bool:
        return self._aws_clients is not None

    @property
    def _clients(self) -> AwsClients:
        if self._aws_clients is None:
            raise RepositoryClosedError(NOT_OPEN)
        return self._aws_clients

    @property
    def _objects(self) -> ObjectStore:
        if self._object_store is None:
            raise RepositoryClosedError(NOT_OPEN)
        return self._object_store

    # -- reading content: façade -> reader -> store | source -----------------------------

    async def get_content(self, name: str, version: VersionLike = None) -> bytes:
        """The content of a version (LATEST by default), checked against its sha256.

        Without a cache, the item lookup and the download run concurrently:
        one round trip. With a :class:`LocalCache`, a version seen within the
        TTL is read from local disk without any request.
        """
        _layout.validate_name(name)
        return await self._reader.get_content(name, _layout.encode_version(version))

    async def get_alias_content(
        self, name: str, alias: str, routing_key: str | bytes | None = None
    ) -> bytes:
        """Resolve ``alias``, pick a version (sticky for ``routing_key``), return its content.

        Cold, this costs two round trips: the alias, then the version lookup
        and the download together. With a cache, none inside the TTL.
        """
        return await self._reader.get_content(name, await self._route(name, alias, routing_key))

    async def download(
        self,
        name: str,
        path: str | os.PathLike[str],
        version: VersionLike = None,
        alias: str | None = None,
        routing_key: str | bytes | None = None,
    ) -> Path:
        """Write a version's content to the file ``path``, streaming; returns the Path.

        Give ``version`` or ``alias`` (with an optional ``routing_key``), not
        both. Memory stays bounded whatever the size. The file appears
        complete and verified, or not at all (it is written beside ``path``
        and renamed into place).
        """
        _layout.validate_name(name)
        if alias is not None and version is not None:
            raise InvalidArgumentError("give version or alias, not both")
        target = Path(path)
        if target.is_dir():
            raise InvalidArgumentError(f"{target} is a directory; give the file path to write")
        _check_folder(target.parent)
        stored = (
            _layout.encode_version(version)
            if alias is None
            else await self._route(name, alias, routing_key)
        )
        await self._reader.download(name, stored, target)
        return target

    async def resolve_alias(self, name: str, alias: str) -> Alias:
        """The alias as the read path sees it: from the cache within the TTL, and the
        last known one when AWS is down (stale-if-error). Without a cache, ``get_alias``.

        For routing many keys, resolve once and call ``choose_version`` per key.
        """
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        return await self._reader.resolve_alias(name, alias)

    async def _route(self, name: str, alias: str, routing_key: str | bytes | None) -> str:
        """The stored version that serves ``routing_key`` through ``alias``, as
        ``resolve_alias(...).choose_version(routing_key)`` picks it, with no model built."""
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        item = await self._reader.alias_item(name, alias)
        return _routing.choose(
            name,
            alias,
            item.version,
            item.secondary_version,
            item.secondary_version_weight,
            routing_key,
        )

    async def _read_verified(self, artifact: Artifact) -> bytes:
        """Content of a model read earlier, checked against its own sha256."""
        return await self._reader.read_artifact(artifact)

    # -- what the cache learns from writes and reads ----------------------------------

    async def _remember_alias(self, record: AliasItem) -> None:
        await self._reader.remember_alias(record)

    async def _remember_version(self, record: VersionItem) -> None:
        await self._reader.remember_version(record)

    async def _forget_alias(self, name: str, alias: str) -> None:
        await self._reader.forget_alias(name, alias)

    async def _forget_version(self, name: str, stored: str) -> None:
        await self._reader.forget_version(name, stored)

    # -- artifacts -------------------------------------------------------------------

    async def list_artifact_names(self) -> list[str]:
        """Names of every artifact with content in the repository, sorted."""
        return sorted(await self._objects.list_folders(self.layout.root))

    async def _hash_object(self, name: str, stored: str) -> str:
        """sha256 of an object written without our metadata (by some other tool)."""
        got = await self._objects.get_object(self.layout.key(name, stored))
        if got is None:
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return await sha256_of(got[0])

    async def get_alias(self, name: str, alias: str) -> Alias:
        """The alias; ``AliasNotFoundError`` when it does not exist."""
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        record = await self._source.alias_item(name, alias)
        if record is None:
            raise AliasNotFoundError(name, alias)
        await self._remember_alias(record)
        return self._alias(record)

    def watch_alias(
        self, name: str, alias: str, *, interval: float = 30.0, jitter: float = 0.2
    ) -> AsyncGenerator[Alias, None]:
        """Follow an alias: yield it now, then again each time it changes.

        It polls every ``interval`` seconds, times a random factor within
        ``1 ± jitter`` (so that many watchers do not poll in step), with a
        consistent read that bypasses the LocalCache (and refreshes it when the
        alias changed): one read per poll (a GetItem; in the S3-only layout, a
        GetObject). A change is a new ``update_at`` or new versions, made by
        anyone (`versioned` 1.0 included). While the alias does not exist
        nothing is yielded. S3/DynamoDB errors are logged and the
        poll is retried; closing the repository ends the watch with
        :class:`~versioned_async.exc.RepositoryClosedError`. Arguments are
        checked when called; stop with ``break`` or ``aclose()``::

            async with contextlib.aclosing(repo.watch_alias("app", "prod")) as changes:
                async for alias in changes:
                    reload(alias)
        """
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        for what, value in (("interval", interval), ("jitter", jitter)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidArgumentTypeError(
                    f"{what} must be a number, not {type(value).__name__}"
                )
        if not (math.isfinite(interval) and interval > 0):
            raise InvalidArgumentError(f"interval must be a number of seconds > 0, got {interval}")
        if not 0 <= jitter < 1:
            raise InvalidArgumentError(f"jitter must be from 0 to less than 1, got {jitter}")
        return self._watch_alias(name, alias, float(interval), float(jitter))

    async def _watch_alias(
        self, name: str, alias: str, interval: float, jitter: float
    ) -> AsyncGenerator[Alias, None]:
        seen: Alias | None = None
        absent = False  # logged that it does not exist
        while True:
            try:  # a closed repository raises RepositoryClosedError here
                record = await self._source.alias_item(name, alias)
            except BackendError as err:
                if not self.is_open:
                    raise RepositoryClosedError(
                        f"the Repository was closed while watching alias {alias!r} of {name!r}"
                    ) from err
                log.warning("watching alias %r of %r: %s; polling on", alias, name, err)
            else:
                if record is None:
                    if not absent:
                        log.info("watching alias %r of %r: it does not exist", alias, name)
                    absent = True
                else:
                    absent = False
                    now = self._alias(record)
                    if now != seen:
                        seen = now
                        await self._remember_alias(record)
                        yield now
            await asyncio.sleep(interval * random.uniform(1 - jitter, 1 + jitter))

    # -- models ----------------------------------------------------------------------

    def _artifact(self, item: VersionItem) -> Artifact:
        model = _codec.item_to_artifact(item, self.layout)
        bind(model, self)
        return model

    def _alias(self, item: AliasItem) -> Alias:
        model = _codec.item_to_alias(item, self.layout)
        bind(model, self)
        return model
