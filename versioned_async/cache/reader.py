"""Reading a version's content from its source, verified: the one sha256 check.

A repository layout reads versions through a :class:`VersionSource` (where its
items and objects are: a DynamoDB table and S3, or S3 alone). A reader goes
down through it: the :class:`DirectReader` here, with no cache, or the
:class:`~.cached_reader.CachedContentReader` over a disk store, which falls
back to a ``DirectReader`` when the cache cannot serve. Both give the façade
the same :class:`ContentReader` interface.

Every byte read from S3 is checked the same way, in :meth:`DirectReader.verified`:
content must hash to the sha256 its version records; LATEST, which a put may
move between the two reads, is read once more; a half-done put of LATEST is
repaired by the source; anything else is an
:class:`~versioned_async.exc.IntegrityError`.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import attrs

from .. import _layout, _staging
from .._aws.s3 import ObjectInfo
from .._codec import AliasItem, VersionItem
from .._layout import LATEST
from ..exc import (
    AliasNotFoundError,
    ArtifactNotFoundError,
    ConflictError,
    DiskFullError,
    IntegrityError,
)
from ..models import Alias, Artifact
from . import failures
from .events import CacheEvent, CacheMiss, Downloaded, IntegrityFailed

__all__ = [
    "Candidate",
    "ContentReader",
    "DirectReader",
    "Fetched",
    "Streamed",
    "VersionSource",
    "sha256_of",
]

log = logging.getLogger("versioned_async")

_C = TypeVar("_C")

#: hashing a large body blocks the event loop; above this, hash in a thread
_HASH_IN_THREAD_BYTES = 1 << 20


async def sha256_of(content: bytes) -> str:
    if len(content) >= _HASH_IN_THREAD_BYTES:
        return await asyncio.to_thread(lambda: hashlib.sha256(content).hexdigest())
    return hashlib.sha256(content).hexdigest()


# -- what a layout gives a reader ------------------------------------------------------------


@attrs.frozen
class Fetched:
    """A version's whole object, with the sha256 its version records."""

    body: bytes
    recorded: str
    info: ObjectInfo


@attrs.frozen
class Streamed:
    """A version's object streamed to a file, hashed on the way."""

    sha256: str
    size: int
    recorded: str
    info: ObjectInfo


class VersionSource(Protocol):
    """Where one repository layout keeps its versions and aliases: what a reader needs.

    ``stored`` is a version in stored form (``"000002"``, ``"LATEST"``). Each
    read raises :class:`~versioned_async.exc.ArtifactNotFoundError` for a version
    that is missing or not readable.
    """

    async def version_item(self, name: str, stored: str) -> VersionItem:
        """The readable version's item (its sha256, size, ...)."""
        ...

    async def alias_item(self, name: str, alias: str) -> AliasItem | None:
        """The alias as stored now (a consistent read); ``None``: it does not exist."""
        ...

    async def fetch(self, name: str, stored: str) -> Fetched:
        """The object and the sha256 its version records, in one round trip."""
        ...

    async def stream(self, name: str, stored: str, part: Path) -> Streamed:
        """Stream the object into the new file ``part`` (removed again on failure),
        with the sha256 its version records, in one round trip."""
        ...

    async def fetch_object(self, name: str, stored: str) -> tuple[bytes, ObjectInfo] | None:
        """The object alone; ``None`` when it does not exist."""
        ...

    async def stream_object(self, name: str, stored: str, part: Path) -> tuple[str, int] | None:
        """The object alone streamed into ``part``: its ``(sha256, size)``; ``None`` when
        it does not exist."""
        ...

    async def repair_latest(self, name: str, stored: str, actual: str, info: ObjectInfo) -> bool:
        """Whether content hashing to ``actual``, which disagrees with what its version
        records, was a put of LATEST cut short between its object and its record, now
        repaired (the object ``info`` describes is the truth)."""
        ...


# -- what the façade reads through ------------------------------------------------------------


class ContentReader(Protocol):
    """What a repository reads content and resolves aliases through, with a cache or not.

    The ``remember_*``/``forget_*`` calls tell the cache what a write or a read
    of the repository learnt; without a cache they do nothing.
    """

    async def get_content(self, name: str, stored: str) -> bytes: ...

    async def download(self, name: str, stored: str, target: Path) -> None: ...

    async def read_artifact(self, artifact: Artifact) -> bytes: ...

    async def resolve_alias(self, name: str, alias: str) -> Alias:
        """The alias's model (bound to its repository)."""
        ...

    async def alias_item(self, name: str, alias: str) -> AliasItem:
        """The alias as stored (versions stored-form), for routing with no model built;
        :class:`~versioned_async.exc.AliasNotFoundError` when it does not exist."""
        ...

    async def remember_alias(self, record: AliasItem) -> None: ...

    async def remember_version(self, record: VersionItem) -> None: ...

    async def forget_alias(self, name: str, alias: str) -> None: ...

    async def forget_version(self, name: str, stored: str) -> None: ...


@attrs.frozen
class Candidate(Generic[_C]):
    """Content read from S3, not yet checked: a body, or the file it was streamed to."""

    content: _C
    #: what its bytes hash to
    sha256: str
    #: what its version records (or what a fresh lookup said it records)
    recorded: str
    #: the object's own facts, to repair LATEST with; ``None``: the object alone was read
    info: ObjectInfo | None = None


class DirectReader:
    """Reads straight from the :class:`VersionSource`, verified; no cache.

    ``alias_model`` builds the public model of an alias item (bound to its
    repository); ``emit`` receives the events of a cache this reader stands
    in for (downloads, integrity failures), if any.
    """

    def __init__(
        self,
        source: VersionSource,
        alias_model: Callable[[AliasItem], Alias],
        emit: Callable[[CacheEvent], None] | None = None,
    ) -> None:
        self._source = source
        self._alias_model = alias_model
        self._emit = emit

    async def verified(
        self,
        name: str,
        stored: str,
        read: Callable[[str | None], Awaitable[Candidate[_C]]],
        expected: str | None = None,
    ) -> Candidate[_C]:
        """``read(expected)`` checked against the sha256 its version records: the one
        check every read from S3 goes through.

        ``expected`` is the sha256 a fresh lookup gave (``read`` may then fetch
        the object alone), or ``None``. Content that disagrees is refused (a
        streamed file removed) unless it is LATEST's object newer than its record
        (a put cut short: the source repairs it); LATEST may also have moved
        between the two reads, so it is read once more, record included. Then
        :class:`~versioned_async.exc.IntegrityError`.
        """
        for attempt in range(2):
            got = await read(expected)
            if got.sha256 == got.recorded or (
                got.info is not None
                and await self._source.repair_latest(name, stored, got.sha256, got.info)
            ):
                return got
            if isinstance(got.content, Path):
                got.content.unlink(missing_ok=True)
            public = _layout.decode_version(stored)
            if self._emit is not None:
                self._emit(IntegrityFailed(name, public, got.recorded, got.sha256))
            if stored != LATEST or attempt:
                raise IntegrityError(name, public, got.recorded, got.sha256)
            expected = None  # LATEST moved meanwhile: read its record again too
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_content(self, name: str, stored: str) -> bytes:
        """The content; the item lookup and the download run concurrently (one round trip)."""

        async def read(_expected: str | None) -> Candidate[bytes]:
            got = await self._source.fetch(name, stored)
            return Candidate(got.body, await sha256_of(got.body), got.recorded, got.info)

        return (await self.verified(name, stored, read)).content

    async def stream(self, name: str, stored: str, part: Path) -> Candidate[Path]:
        """The object streamed into ``part`` with what its version records, unchecked."""
        got = await self._source.stream(name, stored, part)
        if self._emit is not None:
            self._emit(Downloaded(got.size))
        return Candidate(part, got.sha256, got.recorded, got.info)

    async def fill(
        self, name: str, stored: str, part: Path, expected: str | None
    ) -> Candidate[Path]:
        """One download into a cache's staging file ``part`` (a cache miss), unchecked:
        with ``expected`` (the sha256 a fresh lookup gave) the object alone, else with
        what its version records. ``part`` is removed again on failure."""
        try:
            if expected is None:
                got = await self.stream(name, stored, part)
            else:
                streamed = await self._source.stream_object(name, stored, part)
                if streamed is None:
                    raise ArtifactNotFoundError(name, _layout.decode_version(stored))
                if self._emit is not None:
                    self._emit(Downloaded(streamed[1]))
                got = Candidate(part, streamed[0], expected)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        if self._emit is not None:
            self._emit(CacheMiss(got.sha256))
        return got

    async def stream_verified(self, name: str, stored: str, part: Path) -> None:
        """Stream a version into ``part``, overlapping the lookup; verified."""
        await self.verified(name, stored, lambda _expected: self.stream(name, stored, part))

    async def download(self, name: str, stored: str, target: Path) -> None:
        await write_file(target, lambda part: self.stream_verified(name, stored, part))

    async def read_artifact(self, artifact: Artifact) -> bytes:
        """Content of a model read earlier, checked against its own sha256."""
        stored = _layout.encode_version(artifact.version)
        got = await self._source.fetch_object(artifact.name, stored)
        if got is None:
            raise ArtifactNotFoundError(artifact.name, artifact.version)
        actual = await sha256_of(got[0])
        if actual != artifact.sha256:
            if artifact.is_latest:
                raise ConflictError(
                    f"LATEST of {artifact.name!r} changed since this Artifact was read; "
                    "read it again with get_artifact_version()"
                )
            raise IntegrityError(artifact.name, artifact.version, artifact.sha256, actual)
        return got[0]

    async def resolve_alias(self, name: str, alias: str) -> Alias:
        return self._alias_model(await self.alias_item(name, alias))

    async def alias_item(self, name: str, alias: str) -> AliasItem:
        record = await self._source.alias_item(name, alias)
        if record is None:
            raise AliasNotFoundError(name, alias)
        return record

    async def remember_alias(self, record: AliasItem) -> None:
        """No cache: nothing to remember."""

    async def remember_version(self, record: VersionItem) -> None:
        """No cache: nothing to remember."""

    async def forget_alias(self, name: str, alias: str) -> None:
        """No cache: nothing to forget."""

    async def forget_version(self, name: str, stored: str) -> None:
        """No cache: nothing to forget."""


#: the random part of a staging file's name beside a target (hex: twice as many digits)
_PART_TOKEN_BYTES = 6


def _part_pattern(target: Path) -> str:
    """The names of ``target``'s staging files, for :func:`glob`."""
    return f".{glob.escape(target.name)}.{'[0-9a-f]' * 2 * _PART_TOKEN_BYTES}.part"


async def write_file(target: Path, fill: Callable[[Path], Awaitable[None]]) -> None:
    """Have ``fill`` write a file beside ``target``, then rename it into place: the file
    appears complete and verified, or not at all. A full disk is
    :class:`~versioned_async.exc.DiskFullError`, saying what to do.

    The staging file is claimed (:mod:`.._staging`) while it is written: a
    download killed half-way leaves it behind, and the next download to the
    same target removes it (never one a live process is writing).
    """
    await asyncio.to_thread(_staging.sweep, target.parent, _part_pattern(target))
    part = target.with_name(f".{target.name}.{secrets.token_hex(_PART_TOKEN_BYTES)}.part")
    try:
        with _staging.claimed(part):
            await fill(part)
            os.replace(part, target)
    except BaseException as err:
        part.unlink(missing_ok=True)
        if (
            isinstance(err, OSError)
            and not isinstance(err, DiskFullError)
            and failures.is_disk_full(err)
        ):
            raise DiskFullError(
                err.errno or 0, str(target), "free space there, or download elsewhere"
            ) from err
        raise
