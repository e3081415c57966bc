"""The half of a catalog every layout shares: the version objects in S3.

:class:`ObjectsCatalog` holds the layout (where each object is) and, while the
repository is open, its :class:`~versioned_async._aws.s3.ObjectStore`; the
two catalogs build on it. The helpers below are what both layouts' writes
decide alike.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from .. import _layout
from .._aws.clients import NOT_OPEN, AwsClients
from .._aws.s3 import ObjectInfo, ObjectStore
from .._codec import VersionItem
from .._layout import Layout
from ..cache.reader import sha256_of
from ..exc import ArtifactNotFoundError, RepositoryClosedError

__all__ = [
    "BULK_CONCURRENCY",
    "ObjectsCatalog",
    "describe_object",
    "has_metadata",
    "hash_source",
    "holds_already",
    "not_open",
]

#: concurrent requests one bulk operation (listing, purge) keeps in flight
BULK_CONCURRENCY = 16


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


def has_metadata(item: VersionItem, wanted: Mapping[str, str]) -> bool:
    """Whether the item's metadata holds every wanted entry (exact match)."""
    have = item.metadata or {}
    return all(have.get(key) == value for key, value in wanted.items())


def not_open() -> NoReturn:
    """What a catalog does when asked to reach AWS while the repository is closed."""
    raise RepositoryClosedError(NOT_OPEN)


class ObjectsCatalog:
    """Version objects in one bucket, by their keys in ``layout``.

    Built with the repository; :meth:`connect` gives it the open clients and
    :meth:`disconnect` takes them away, after which every call raises
    :class:`~versioned_async.exc.RepositoryClosedError`: the one open-state
    check, made where the store is used.
    """

    def __init__(self, layout: Layout, bucket: str) -> None:
        self.layout = layout
        self._bucket = bucket
        self._store: ObjectStore | None = None

    def connect(self, clients: AwsClients) -> None:
        self._store = ObjectStore(clients, self._bucket)

    def disconnect(self) -> None:
        self._store = None

    @property
    def objects(self) -> ObjectStore:
        """The object store, while the repository is open."""
        return not_open() if self._store is None else self._store

    async def check_serves(self) -> bool:
        """Whether a record says the catalog's store serves this repository: no store of
        objects alone keeps one (``False``), only a table does
        (:meth:`.table.TableCatalog.check_serves`)."""
        return False

    async def fetch_object(self, name: str, stored: str) -> tuple[bytes, ObjectInfo] | None:
        return await self.objects.get_object(self.layout.key(name, stored))

    async def stream_object(self, name: str, stored: str, part: Path) -> tuple[str, int] | None:
        got = await self.objects.download_to(self.layout.key(name, stored), part)
        return None if got is None else (got[0], got[1])

    async def artifact_names(self) -> list[str]:
        return await self.objects.list_folders(self.layout.root)

    async def hash_object(self, name: str, stored: str) -> str:
        """sha256 of an object written without our metadata (by some other tool)."""
        got = await self.fetch_object(name, stored)
        if got is None:
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return await sha256_of(got[0])
