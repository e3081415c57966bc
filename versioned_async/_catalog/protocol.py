"""What a repository layout keeps where: the :class:`Catalog` protocol.

A catalog is one layout's storage: where its versions, aliases and (in the
DynamoDB layout) number reservations, alias history and holds live. It reads
and writes items (:mod:`._codec`'s), never models, and knows nothing of the
local cache: the façade (:class:`~versioned_async._base.BaseRepository`)
validates the arguments, builds the models and keeps the cache informed.

Every catalog is also the read path's
:class:`~versioned_async.cache.reader.VersionSource`, so a read goes from the
reader straight to the catalog and its store, never back through the façade.

What only the DynamoDB layout can do (alias history, holds, changes recorded
with an actor) is the :class:`HistoryCatalog` protocol, which only
:class:`~._catalog.table.TableCatalog` implements and only
:class:`~versioned_async.Repository` exposes: the S3-only layout does not offer
it, rather than offer it and raise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Protocol

import attrs

from .._aws.clients import AwsClients
from .._codec import AliasItem, HistoryItem, HoldItem, VersionItem
from .._layout import Layout
from .._policy.alias_change import AliasTarget, ChangeRequest
from ..cache.reader import VersionSource
from ..models import Alias, Artifact

__all__ = ["Binding", "Catalog", "HistoryCatalog", "PurgeRules", "Upload", "Written"]


@attrs.frozen
class Upload:
    """What a put asks to store, its arguments checked."""

    name: str
    body: bytes | Path
    content_type: str | None
    #: the metadata to compare with LATEST's (``None``: not given, not compared)
    metadata: Mapping[str, str] | None
    #: the metadata as validated, to write
    user_meta: dict[str, str]
    tags: dict[str, str]


@attrs.frozen
class Written:
    """A version a write produced or found: ``new`` when this call recorded it (the cache
    learns it then), not when it was there already."""

    item: VersionItem
    new: bool


@attrs.frozen
class PurgeRules:
    """A purge's arguments, checked."""

    keep_last_n: int
    older_than_secs: float
    dry_run: bool


@attrs.frozen
class Binding:
    """What a purge needs of the façade: the models it plans with and returns (bound
    to their repository), and the cache to forget what it deleted."""

    artifact: Callable[[VersionItem], Artifact]
    alias: Callable[[AliasItem], Alias]
    forget_version: Callable[[str, str], Awaitable[None]]


class Catalog(VersionSource, Protocol):
    """Where one layout keeps its versions and aliases (see the module).

    ``stored`` is a version in stored form (``"000002"``, ``"LATEST"``). A
    catalog is built with the repository and connected while it is open: a
    call made while it is not raises
    :class:`~versioned_async.exc.RepositoryClosedError`.
    """

    @property
    def layout(self) -> Layout:
        """Where the objects are."""
        ...

    def connect(self, clients: AwsClients) -> None:
        """Use ``clients`` (the repository has just opened them)."""
        ...

    def disconnect(self) -> None:
        """Stop using the clients (the repository is closing them)."""
        ...

    async def bootstrap(self, region: str | None) -> None:
        """Create what the layout needs when missing (the bucket, on-demand table)."""
        ...

    async def check_serves(self) -> bool:
        """Whether the layout's store records that it serves this repository (``False``:
        no record, or no store that keeps one); raises
        :class:`~versioned_async.exc.TableMismatchError` when it records another."""
        ...

    def content_source(self) -> VersionSource:
        """What the read path reads content and resolves aliases through (see
        :class:`~versioned_async.cache.reader.VersionSource`)."""
        ...

    async def artifact_names(self) -> list[str]:
        """Names of every artifact with content, in any order."""
        ...

    async def put_latest(self, upload: Upload) -> Written:
        """Store the content as LATEST, unless LATEST already holds it."""
        ...

    async def version(self, name: str, stored: str) -> VersionItem:
        """A readable version's item, complete (size, content type, metadata)."""
        ...

    async def versions(self, name: str) -> list[VersionItem]:
        """Every readable version, complete: LATEST first, then newest to oldest."""
        ...

    async def find(
        self, name: str | None, wanted: Mapping[str, str], include_latest: bool, limit: int | None
    ) -> list[VersionItem]:
        """Readable versions whose metadata holds ``wanted``, sorted by name, then as
        :meth:`versions`; at most ``limit``."""
        ...

    async def publish(self, name: str) -> Written:
        """Snapshot LATEST as the next numbered version."""
        ...

    async def delete_version(self, name: str, stored: str) -> None:
        """Make a version unreadable."""
        ...

    async def aliases(self, name: str) -> list[AliasItem]:
        """Every alias of ``name``, sorted by alias name."""
        ...

    async def put_alias(
        self, name: str, alias: str, target: AliasTarget, expected: datetime | None
    ) -> AliasItem:
        """Point the alias at ``target`` (a compare-and-set on ``expected``, if given)."""
        ...

    async def delete_alias(self, name: str, alias: str, expected: datetime | None) -> bool:
        """Delete the alias; whether the cache should forget it."""
        ...

    async def purge_versions(
        self, name: str, rules: PurgeRules, binding: Binding
    ) -> tuple[datetime, list[Artifact]]:
        """Delete old numbered versions: the purge time and the versions deleted."""
        ...

    async def purge_artifact(self, name: str) -> None:
        """Delete everything of one artifact."""
        ...

    async def purge_all(self) -> None:
        """Delete everything under the repository's prefix."""
        ...


class HistoryCatalog(Catalog, Protocol):
    """A catalog that records each alias change (who, why, before and after) and holds
    versions: the DynamoDB layout's."""

    async def change_alias(self, request: ChangeRequest) -> tuple[bool, AliasItem | None]:
        """Make and record the change: whether anything changed, and the alias now
        (``None``: deleted)."""
        ...

    async def default_actor(self) -> str | None:
        """Who a change is recorded as when the caller does not say."""
        ...

    async def read_with_newest(
        self, name: str, alias: str
    ) -> tuple[AliasItem | None, HistoryItem | None]:
        """The alias now (``None``: absent) and its newest history record."""
        ...

    def history(
        self, name: str, alias: str, *, page_size: int, below: str | None = None
    ) -> AsyncIterator[HistoryItem]:
        """The alias's history records, newest first, below the page token ``below``."""
        ...

    async def hold(self, record: HoldItem, name: str) -> bool:
        """Hold a visible version; whether it was (``False``: no such version)."""
        ...

    async def release_hold(self, name: str, stored: str) -> None:
        """Release the hold on a version, if any."""
        ...

    async def holds(self, name: str) -> list[HoldItem]:
        """Every hold on ``name``'s versions, lowest version first."""
        ...
