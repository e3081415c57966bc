"""The cache's keys: what each row of the cache directory is about, as a type.

Every key knows its on-disk form (:meth:`to_disk`), a tuple of strings, and
:func:`from_disk` reads one back. The tuples are the ones earlier releases
wrote, so a cache directory filled by them stays warm:

- ``("v", *repository, name, stored_version)`` -> ``(sha256, size)``:
  :class:`VersionKey`, which content a version holds;
- ``("a", *repository, name, alias)`` -> the alias item as a dict:
  :class:`AliasKey`;
- ``("path", sha256)`` -> ``"<fingerprint> <path>"``: :class:`PathHintKey`, where
  content was stored, a hint for the next process's start-up;
- ``("lease", <a version key's tuple>)`` -> its holder: :class:`LeaseKey`;
- ``("c", sha256)`` in the content store: :class:`ContentKey`.

``repository`` is :class:`RepositoryId`'s five strings, so one cache directory
serves several repositories. Lookups are stored as ``(fetched_at, value)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeAlias

import attrs

__all__ = [
    "AliasKey",
    "ContentKey",
    "LeaseKey",
    "LookupKey",
    "PathHintKey",
    "RepositoryId",
    "VersionKey",
    "from_disk",
    "lookups_from_disk",
]

#: a lookup as stored: (when it was fetched, wall-clock seconds; the value)
Entry: TypeAlias = tuple[float, Any]


@attrs.frozen(cache_hash=True)
class RepositoryId:
    """Which repository a lookup belongs to (its layout included)."""

    #: the endpoint without its password (the cache database is a file), or ``"aws"``
    endpoint: str
    bucket: str
    prefix: str
    suffix: str
    #: the DynamoDB table, or ``"s3-only"``
    table: str

    def to_disk(self) -> tuple[str, str, str, str, str]:
        return (self.endpoint, self.bucket, self.prefix, self.suffix, self.table)


@attrs.frozen(cache_hash=True)
class VersionKey:
    """The lookup of one version (stored form: ``"000002"``, ``"LATEST"``): its sha256, size."""

    repository: RepositoryId
    name: str
    version: str

    def to_disk(self) -> tuple[str, ...]:
        return ("v", *self.repository.to_disk(), self.name, self.version)


@attrs.frozen(cache_hash=True)
class AliasKey:
    """The lookup of one alias: its item, whose versions are in stored form."""

    repository: RepositoryId
    name: str
    alias: str

    def target(self, version: str) -> VersionKey:
        """The lookup of a version this alias points at."""
        return VersionKey(self.repository, self.name, version)

    def to_disk(self) -> tuple[str, ...]:
        return ("a", *self.repository.to_disk(), self.name, self.alias)


@attrs.frozen
class PathHintKey:
    """Where the content ``sha256`` was stored, with its fingerprint: read at start-up."""

    sha256: str

    def to_disk(self) -> tuple[str, str]:
        return ("path", self.sha256)


@attrs.frozen
class LeaseKey:
    """The directory-wide lease on downloading one version (see :mod:`.leases`)."""

    version: VersionKey

    def to_disk(self) -> tuple[str, tuple[str, ...]]:
        return ("lease", self.version.to_disk())


@attrs.frozen
class ContentKey:
    """Content in the content store, by its sha256."""

    sha256: str

    def to_disk(self) -> tuple[str, str]:
        return ("c", self.sha256)


#: the keys whose values are lookups (served within the TTL)
LookupKey: TypeAlias = VersionKey | AliasKey
#: every key of the lookups store
LookupsStoreKey: TypeAlias = VersionKey | AliasKey | PathHintKey | LeaseKey


def from_disk(
    raw: object, repositories: dict[tuple[str, ...], RepositoryId] | None = None
) -> LookupsStoreKey | ContentKey | None:
    """The key whose :meth:`to_disk` is ``raw``; ``None`` for a row no key writes.

    ``repositories`` (a dict the caller keeps for one pass over many rows, as
    eviction reads every lookup) shares one :class:`RepositoryId` among the keys
    of a repository, which halves the time a row takes to decode.
    """
    if type(raw) is not tuple or not raw:
        return None
    kind = raw[0]
    if kind in ("v", "a") and len(raw) == 8:
        parts, name, which = raw[1:6], raw[6], raw[7]
        known = None if repositories is None else repositories.get(parts)
        if known is None:
            if not all(isinstance(part, str) for part in parts):
                return None
            known = RepositoryId(*parts)
            if repositories is not None:
                repositories[parts] = known
        if not (isinstance(name, str) and isinstance(which, str)):
            return None
        return VersionKey(known, name, which) if kind == "v" else AliasKey(known, name, which)
    if kind in ("path", "c") and len(raw) == 2 and isinstance(raw[1], str):
        return PathHintKey(raw[1]) if kind == "path" else ContentKey(raw[1])
    if kind == "lease" and len(raw) == 2:
        version = from_disk(raw[1])
        return LeaseKey(version) if isinstance(version, VersionKey) else None
    return None


def lookups_from_disk(rows: Iterable[tuple[object, Any]]) -> Iterator[tuple[LookupKey, Any]]:
    """The lookups among stored ``(key, value)`` rows, their keys typed; other rows
    (path hints, leases, anything unknown) are passed over."""
    repositories: dict[tuple[str, ...], RepositoryId] = {}
    for raw, value in rows:
        key = from_disk(raw, repositories)
        if isinstance(key, VersionKey | AliasKey):
            yield key, value
