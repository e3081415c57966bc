"""Where each repository layout reads a version's item and object: its
:class:`~versioned_async.cache.reader.VersionSource`.

- :class:`TableVersions` (:class:`~versioned_async.Repository`): items in the
  DynamoDB table, objects in S3; a read asks both at once (one round trip).
- :class:`ObjectVersions` (:class:`~versioned_async.S3OnlyRepository`): the
  object is its own record (its metadata carries the sha256); an alias is a
  JSON object.

A repository holds one and its readers read through it; each reads the
repository's layout and open clients when called (the clients exist only
while the repository is open).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from . import _codec, _layout
from ._aws.dynamodb import Table
from ._aws.s3 import ObjectInfo, ObjectStore
from ._base import describe_object
from ._codec import AliasItem, VersionItem
from ._layout import LATEST
from .cache.reader import Fetched, Streamed, sha256_of
from .exc import ArtifactNotFoundError

if TYPE_CHECKING:
    from ._base import BaseRepository
    from .repository import Repository
    from .s3_only import S3OnlyRepository

__all__ = ["ObjectVersions", "TableVersions"]

log = logging.getLogger("versioned_async")


class _Objects:
    """A version's object alone, by its key in the layout (both layouts read it so)."""

    def __init__(self, repository: BaseRepository) -> None:
        self._repository = repository

    @property
    def _objects(self) -> ObjectStore:
        return self._repository._objects

    async def fetch_object(self, name: str, stored: str) -> tuple[bytes, ObjectInfo] | None:
        return await self._objects.get_object(self._repository.layout.key(name, stored))

    async def stream_object(self, name: str, stored: str, part: Path) -> tuple[str, int] | None:
        got = await self._objects.download_to(self._repository.layout.key(name, stored), part)
        return None if got is None else (got[0], got[1])


class TableVersions:
    """The DynamoDB layout's versions: items in the table, objects in S3.

    ``record_latest(name, info)`` writes LATEST's item for the object ``info``
    describes: the repair of a put cut short between its object and its item.
    """

    def __init__(
        self,
        repository: Repository,
        record_latest: Callable[[str, ObjectInfo], Awaitable[object]],
    ) -> None:
        self._repository = repository
        objects = _Objects(repository)
        self.fetch_object = objects.fetch_object
        self.stream_object = objects.stream_object
        self._record_latest = record_latest

    @property
    def _objects(self) -> ObjectStore:
        return self._repository._objects

    @property
    def _table(self) -> Table:
        return self._repository._table

    async def version_item(self, name: str, stored: str) -> VersionItem:
        raw = await self._table.get_item(name, stored)
        item = None if raw is None else _codec.structure_version_item(raw)
        if item is None or not item.is_visible:
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return item

    async def alias_item(self, name: str, alias: str) -> AliasItem | None:
        raw = await self._table.get_item(_layout.alias_pk(name), alias)
        return None if raw is None else _codec.structure_alias_item(raw)

    async def fetch(self, name: str, stored: str) -> Fetched:
        download = asyncio.ensure_future(
            self._objects.get_object(self._repository.layout.key(name, stored))
        )
        try:
            item = await self.version_item(name, stored)
            got = await download
        except BaseException:
            download.cancel()
            raise
        if got is None:
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return Fetched(got[0], str(item.sha256), got[1])

    async def stream(self, name: str, stored: str, part: Path) -> Streamed:
        key = self._repository.layout.key(name, stored)
        download = asyncio.ensure_future(self._objects.download_to(key, part))
        try:
            item = await self.version_item(name, stored)
            got = await download
        except BaseException:
            download.cancel()
            part.unlink(missing_ok=True)
            raise
        if got is None:
            part.unlink(missing_ok=True)
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        sha, size, info = got
        return Streamed(sha, size, str(item.sha256), info)

    async def repair_latest(self, name: str, stored: str, actual: str, info: ObjectInfo) -> bool:
        """Whether content that disagrees with LATEST's item is a half-done put, now repaired.

        put_artifact writes the object before the item; when it failed between
        the two, the object (whose own metadata carries the sha256 its bytes
        have) is newer than the item. The item is brought up to date, as the
        put would have done, and the content served.
        """
        if stored != LATEST or info.sha256 != actual:
            return False
        log.info("LATEST of %r is newer than its item (a put was cut short); repairing", name)
        await self._record_latest(name, info)
        return True


class ObjectVersions:
    """The S3-only layout's versions: each object is its own record."""

    def __init__(self, repository: S3OnlyRepository) -> None:
        self._repository = repository
        objects = _Objects(repository)
        self.fetch_object = objects.fetch_object
        self.stream_object = objects.stream_object

    @property
    def _objects(self) -> ObjectStore:
        return self._repository._objects

    async def version_item(self, name: str, stored: str) -> VersionItem:
        info = await self._objects.head_object(self._repository.layout.key(name, stored))
        if info is None:
            await self._objects.require_bucket()  # one request more, on a miss only
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return await self.describe(name, stored, info)

    async def describe(self, name: str, stored: str, info: ObjectInfo) -> VersionItem:
        """The version an object holds; one written without our metadata is hashed."""
        sha = info.sha256
        if sha is None:
            got = await self.fetch_object(name, stored)
            if got is None:
                raise ArtifactNotFoundError(name, _layout.decode_version(stored))
            sha = await sha256_of(got[0])
        return describe_object(name, stored, sha, info)

    async def alias_object(self, name: str, alias: str) -> tuple[AliasItem, str] | None:
        """The alias as its JSON object holds it now, and that object's ETag."""
        got = await self._objects.get_object(self._repository.layout.alias_key(name, alias))
        if got is None:
            return None
        body, info = got
        return _codec.parse_alias_document(body, name, alias, info.last_modified), info.etag

    async def alias_item(self, name: str, alias: str) -> AliasItem | None:
        current = await self.alias_object(name, alias)
        return None if current is None else current[0]

    async def fetch(self, name: str, stored: str) -> Fetched:
        """One GetObject: the object's metadata describes the very bytes it returns."""
        got = await self.fetch_object(name, stored)
        if got is None:
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        body, info = got
        return Fetched(body, info.sha256 or await sha256_of(body), info)

    async def stream(self, name: str, stored: str, part: Path) -> Streamed:
        got = await self._objects.download_to(self._repository.layout.key(name, stored), part)
        if got is None:
            part.unlink(missing_ok=True)
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        sha, size, info = got
        return Streamed(sha, size, info.sha256 or sha, info)

    async def repair_latest(self, name: str, stored: str, actual: str, info: ObjectInfo) -> bool:
        """Nothing to repair: the object is its own record."""
        return False
