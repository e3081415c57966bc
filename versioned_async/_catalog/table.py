"""The DynamoDB layout's catalog: items in one table, content in S3.

:class:`TableCatalog` is `versioned` 1.0's layout: a version item per version
(and number reservations, holds), an alias item per alias and, ours alone, a
history record per alias change. The table's writes are a
:class:`~.version_table.VersionTable`'s and an
:class:`~.alias_table.AliasTable`'s (typed, spelled by :mod:`.._codec`);
this class orders them with the objects' writes so that either layout's
reader always finds an item that describes its object. It implements
:class:`~.protocol.HistoryCatalog`: alias history and holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from .. import _codec, _layout
from .._aws.clients import NOT_OPEN, AwsClients
from .._aws.dynamodb import Table
from .._aws.s3 import ObjectInfo, ObjectStore
from .._aws.sts import caller_arn
from .._codec import AliasItem, HistoryItem, HoldItem, VersionItem
from .._gather import bounded_gather, gather_or_cancel
from .._layout import LATEST, Layout
from .._policy import history as _history
from .._policy import retention as _retention
from .._policy.alias_change import AliasTarget, ChangeRequest
from .._policy.table_record import Verdict
from ..cache.reader import Fetched, Streamed, VersionSource
from ..exc import (
    ArtifactNotFoundError,
    ConflictError,
    IntegrityError,
    RepositoryClosedError,
)
from ..models import Artifact
from . import store, table_purge
from .alias_table import AliasTable
from .protocol import Binding, PurgeRules, Upload, Written
from .store import BULK_CONCURRENCY, ObjectsCatalog
from .table_owner import TableOwner
from .version_table import VersionTable

__all__ = ["TableCatalog"]

log = logging.getLogger("versioned_async")

#: how often a put re-reads LATEST to converge with concurrent puts before giving up
_CONVERGE_ATTEMPTS = 8
#: version items a metadata search checks at once (HeadObjects for `versioned`'s items)
_SEARCH_BATCH = 100
_UNKNOWN: Any = object()


def with_object_facts(item: VersionItem, info: ObjectInfo | None) -> VersionItem:
    """``item`` with size, content type and metadata read off its S3 object.

    Only when the object holds the content the item records: an object
    replaced since (a put in flight) describes other content, so the item is
    returned as it is.
    """
    if info is None or info.sha256 != item.sha256:
        return item
    return attrs.evolve(
        item, size=info.size, content_type=info.content_type, metadata=dict(info.metadata)
    )


class TableCatalog(ObjectsCatalog):
    """Versions, aliases, their history and holds in one DynamoDB table; content in S3
    (see the module).

    ``actor`` is who changes are recorded as when a call does not say (``None``:
    the caller's AWS identity, asked of STS once); ``reservation_timeout_secs``
    how old a publish's reservation must be to count as left by a crashed
    publisher.
    """

    def __init__(
        self,
        layout: Layout,
        bucket: str,
        table_name: str,
        *,
        actor: str | None,
        reservation_timeout_secs: float,
    ) -> None:
        super().__init__(layout, bucket)
        self.table_name = table_name
        self.actor = actor
        self.reservation_timeout_secs = reservation_timeout_secs
        self._table: Table | None = None
        self._clients: AwsClients | None = None
        #: the table's side: versions, reservations and holds; aliases and their history
        self.versions_table = VersionTable(lambda: self.table)
        self.aliases_table = AliasTable(lambda: self.table)
        self._caller_arn: str | None = _UNKNOWN
        self._identity_lock = asyncio.Lock()
        #: whether the table serves this repository: checked once, remembered across opens
        self.owner = TableOwner(table_name, bucket, layout.prefix)
        self._content_source = _ContentSource(self)

    def connect(self, clients: AwsClients) -> None:
        super().connect(clients)
        self._clients = clients
        self._table = Table(clients, self.table_name, self.owner.check)

    def disconnect(self) -> None:
        super().disconnect()
        self._clients = self._table = None

    @property
    def objects(self) -> ObjectStore:
        # ObjectsCatalog's, again here: a read goes from this module to the store
        return store.not_open() if self._store is None else self._store

    @property
    def table(self) -> Table:
        """The table, while the repository is open."""
        if self._table is None:
            raise RepositoryClosedError(NOT_OPEN)
        return self._table

    async def bootstrap(
        self, region: str | None, read: int | None = None, write: int | None = None
    ) -> None:
        """Create the table when missing (on-demand without capacities) and record that it
        serves this repository (unless it records one: another is refused, before the
        bucket is created), then create the bucket when missing."""
        await self.table.ensure_table(read, write)
        await self.owner.claim(self.table, "bootstrap")
        await self.objects.ensure_bucket(region)

    async def adopt_table(self) -> bool:
        """Record that the table serves this repository, if it records none: whether this
        call wrote the record."""
        return await self.owner.claim(self.table, "adopt_table")

    async def check_serves(self) -> bool:
        """Whether the table records this repository (``False``: it records none);
        :class:`~versioned_async.exc.TableMismatchError` when it records another.
        Asks the table once per repository."""
        return await self.owner.check(self.table) is Verdict.SERVES

    def content_source(self) -> VersionSource:
        """The read path's source: reads whose answer is content, checked against the
        sha256 the table records, from this repository's own bucket, so they do not wait
        for :meth:`check_serves` (see :class:`_ContentSource`)."""
        return self._content_source

    # -- the read path (VersionSource) ------------------------------------------------

    async def version_item(self, name: str, stored: str, *, checked: bool = True) -> VersionItem:
        raw = await self.table.get_item(name, stored, checked=checked)
        item = None if raw is None else _codec.structure_version_item(raw)
        if item is None or not item.is_visible:
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return item

    async def alias_item(self, name: str, alias: str, *, checked: bool = True) -> AliasItem | None:
        raw = await self.table.get_item(_layout.alias_pk(name), alias, checked=checked)
        return None if raw is None else _codec.structure_alias_item(raw)

    async def fetch(self, name: str, stored: str, *, checked: bool = True) -> Fetched:
        """The item and the object read at once: one round trip."""
        download = asyncio.ensure_future(self.objects.get_object(self.layout.key(name, stored)))
        try:
            item = await self.version_item(name, stored, checked=checked)
            got = await download
        except BaseException:
            download.cancel()
            await asyncio.wait([download])  # its requests end before the caller hears
            raise
        if got is None:
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return Fetched(got[0], str(item.sha256), got[1])

    async def stream(self, name: str, stored: str, part: Path, *, checked: bool = True) -> Streamed:
        key = self.layout.key(name, stored)
        download = asyncio.ensure_future(self.objects.download_to(key, part))
        try:
            item = await self.version_item(name, stored, checked=checked)
            got = await download
        except BaseException:
            download.cancel()
            await asyncio.wait([download])  # nothing writes to part once it is removed
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
        put would have done, and the content served (the reader then records
        what it verified in the cache).
        """
        if stored != LATEST or info.sha256 != actual:
            return False
        log.info("LATEST of %r is newer than its item (a put was cut short); repairing", name)
        await self.record_latest(name, info)
        return True

    # -- LATEST -----------------------------------------------------------------------

    async def put_latest(self, upload: Upload) -> Written:
        """The S3 object is written before the table item, so a failed upload leaves the
        item as it was; putting again after a failure repairs a half-done put."""
        objects, table, name = self.objects, self.table, upload.name
        key = self.layout.key(name, LATEST)
        (sha, size), (head, raw_item) = await gather_or_cancel(
            store.hash_source(upload.body),
            gather_or_cancel(objects.head_object(key), table.get_item(name, LATEST)),
        )
        item = None if raw_item is None else _codec.structure_version_item(raw_item)
        if store.holds_already(
            head, sha, upload.tags, upload.content_type, upload.metadata, upload.user_meta
        ) and (head is not None):
            if item is not None and item.is_visible and item.sha256 == sha:
                if item.metadata is None:  # written by `versioned`: the object knows the rest
                    item = with_object_facts(item, head)
                return Written(item, new=False)
            info = head  # the object is right, the item is not: repair it
        else:
            meta = {_layout.META_NAME: name, _layout.META_SHA256: sha, **upload.user_meta}
            await objects.upload(
                key, upload.body, size, meta, upload.content_type, upload.tags, sha
            )
            written = await objects.head_object(key)
            if written is None:
                raise ConflictError(f"LATEST of {name!r} was deleted while it was being put; retry")
            info = written
        return await self.record_latest(name, info)

    async def record_latest(self, name: str, info: ObjectInfo) -> Written:
        """Point the LATEST item at the object ``info`` describes, until they agree.

        Writes only move ``update_at`` forward, and after each write the object
        is read again: when a concurrent put replaced it meanwhile, the item is
        rewritten to match. So racing puts converge on an item that describes
        the object S3 kept.
        """
        objects, versions = self.objects, self.versions_table
        key = self.layout.key(name, LATEST)
        for _attempt in range(_CONVERGE_ATTEMPTS):
            if info.sha256 is None:
                raise IntegrityError(name, LATEST, "<sha256 in object metadata>", "<none>")
            record = store.describe_object(name, LATEST, info.sha256, info)
            written = await versions.record_latest(record, info.last_modified)
            fresh = await objects.head_object(key)
            if fresh is None:
                raise ConflictError(f"LATEST of {name!r} was deleted while it was being put; retry")
            if written and fresh.sha256 == record.sha256:
                return Written(record, new=True)
            if not written:  # a newer put recorded its own object: fine if they agree
                current = await versions.item(name, LATEST)
                if current is not None and current.is_visible and current.sha256 == fresh.sha256:
                    if current.metadata is None:  # written by `versioned`: the object knows
                        current = with_object_facts(current, fresh)
                    return Written(current, new=False)
            info = fresh
        raise ConflictError(f"LATEST of {name!r} kept changing while it was being put; retry")

    # -- versions ---------------------------------------------------------------------

    async def version(self, name: str, stored: str) -> VersionItem:
        [item] = await self.complete_from_objects([await self.version_item(name, stored)])
        return item

    async def versions(self, name: str) -> list[VersionItem]:
        items = [item async for item in self.versions_table.items(name) if item.is_visible]
        return await self.complete_from_objects(items)

    async def complete_from_objects(self, items: list[VersionItem]) -> list[VersionItem]:
        """The items, those `versioned` wrote (no ``metadata`` attribute) completed from a
        HeadObject of their object, :data:`~.store.BULK_CONCURRENCY` at a time."""
        lacking = [n for n, item in enumerate(items) if item.metadata is None]
        if not lacking:
            return items
        objects = self.objects
        infos = await bounded_gather(
            (objects.head_object(self.layout.key(items[n].pk, items[n].sk)) for n in lacking),
            BULK_CONCURRENCY,
        )
        out = list(items)
        for n, info in zip(lacking, infos, strict=True):
            out[n] = with_object_facts(items[n], info)
        return out

    async def find(
        self, name: str | None, wanted: Mapping[str, str], include_latest: bool, limit: int | None
    ) -> list[VersionItem]:
        """A Query of the name's partition, or a Scan of the table without ``name``,
        filtered by DynamoDB; `versioned`'s items judged by their objects."""
        condition, values, names = _codec.search_filter(
            wanted, across_names=name is None, include_latest=include_latest
        )
        table = self.table
        if name is not None:
            numbered = (_layout.FIRST_STORED_VERSION, _layout.LAST_STORED_VERSION)
            return await self._matching(
                table.query(
                    name,
                    descending=True,
                    sk_between=None if include_latest else numbered,
                    filter=condition,
                    filter_values=values,
                    filter_names=names,
                ),
                wanted,
                limit,
            )
        found = await self._matching(table.scan(condition, values, names), wanted, None)
        found.sort(key=lambda item: item.sk, reverse=True)  # LATEST, then newest
        found.sort(key=lambda item: item.pk)
        return found[:limit]

    async def _matching(
        self, raws: AsyncIterator[_codec.Item], wanted: Mapping[str, str], limit: int | None
    ) -> list[VersionItem]:
        """The visible items among ``raws`` whose metadata holds ``wanted``, in the order
        read, at most ``limit``. Items `versioned` wrote are judged by their S3 object."""
        found: list[VersionItem] = []
        batch: list[VersionItem] = []

        async def check() -> None:
            found.extend(
                i for i in await self.complete_from_objects(batch) if store.has_metadata(i, wanted)
            )
            batch.clear()

        async for raw in raws:
            item = _codec.structure_version_item(raw)
            if item.is_visible:
                batch.append(item)
            if len(batch) >= _SEARCH_BATCH:
                await check()
                if limit is not None and len(found) >= limit:
                    break
        await check()
        return found[:limit]

    async def publish(self, name: str) -> Written:
        """Reserve the next number (a conditional write), copy LATEST to it, complete the
        reservation with the copy's sha256; a stale reservation on top is reclaimed."""
        objects, versions = self.objects, self.versions_table
        await versions.release_leftovers(name)
        latest: VersionItem | None = None
        numbered: list[VersionItem] = []
        now, timeout = _codec.utcnow(), self.reservation_timeout_secs
        async for item in versions.items(name, page_size=10):
            if item.sk == LATEST:
                latest = item
                continue
            numbered.append(item)
            if not _retention.is_stale_reservation(item, now, timeout):
                break  # the top that counts: below it nothing is reclaimed here
        if latest is None or not latest.is_visible:
            raise ArtifactNotFoundError(name, LATEST)
        top, stale = _retention.stale_top(numbered, now, timeout)
        for reservation in stale:
            await self.reclaim_reservation(name, reservation)
        number, token = await versions.reserve(name, top + 1)
        stored = _layout.encode_version(number)
        try:
            if not await objects.copy_object(
                self.layout.key(name, LATEST), self.layout.key(name, stored)
            ):
                raise ArtifactNotFoundError(name, LATEST)
            info = await objects.head_object(self.layout.key(name, stored))
            if info is None:
                raise ConflictError(
                    f"version {number} of {name!r} vanished while publishing; retry"
                )
            sha = info.sha256 or await self.hash_object(name, stored)
            record = store.describe_object(name, stored, sha, info)
            if not await versions.complete(record, token):
                raise ConflictError(
                    f"version {number} of {name!r} was overwritten by a writer that does not "
                    "reserve numbers (an older `versioned` client?); publish again"
                )
        except BaseException:
            await versions.release(name, stored, token)
            raise
        return Written(record, new=True)

    async def reclaim_reservation(self, name: str, reservation: VersionItem) -> bool:
        """Remove a stale reservation and the object its crashed publisher may have
        copied to its number. Whether this call removed it.

        The reservation is first taken over (a new token, on the condition that
        it is still the one read), so that of two reclaimers only one deletes
        the object, and never after the number was reserved again. A reclaim
        cut short leaves a reservation of its own, reclaimed in its turn.
        """
        mine = await self.versions_table.take_over(reservation)
        if mine is None:
            return False  # completed, or reclaimed by someone else meanwhile
        log.warning(
            "reclaiming version %s of %r: reserved at %s by a publish that never completed",
            _layout.decode_version(reservation.sk),
            name,
            reservation.update_at,
        )
        await self.objects.delete_object(self.layout.key(name, reservation.sk))
        return await self.versions_table.drop(name, reservation.sk, mine)

    async def delete_version(self, name: str, stored: str) -> None:
        """A soft delete, in one transaction with the check that no hold is on it."""
        await self.versions_table.soft_delete(name, stored)

    # -- aliases ----------------------------------------------------------------------

    async def aliases(self, name: str) -> list[AliasItem]:
        return [record for record, _ in await self.alias_tokens(name)]

    async def alias_tokens(self, name: str) -> list[tuple[AliasItem, _codec.ChangeToken]]:
        """The alias items of ``name``, each with its stored ``update_at``: the change
        token both libraries rewrite on every put."""
        return await self.aliases_table.all_of(name)

    async def put_alias(
        self, name: str, alias: str, target: AliasTarget, expected: datetime | None
    ) -> AliasItem:
        request = ChangeRequest(
            name, alias, target, _history.PUT, await self.default_actor(), None, expected
        )
        _, record = await self.change_alias(request)
        assert record is not None
        return record

    async def delete_alias(self, name: str, alias: str, expected: datetime | None) -> bool:
        request = ChangeRequest(
            name, alias, None, _history.DELETE, await self.default_actor(), None, expected
        )
        changed, _ = await self.change_alias(request)
        return changed

    async def change_alias(self, request: ChangeRequest) -> tuple[bool, AliasItem | None]:
        """Move or delete the alias and record it, atomically (see
        :meth:`AliasTable.change <.alias_table.AliasTable.change>`)."""
        change = await self.aliases_table.change(request)
        return (False, None) if change is None else (True, change.new_item)

    async def default_actor(self) -> str | None:
        """The repository's ``actor``, else the caller's AWS identity (ARN), once per
        repository; ``None`` when STS cannot tell (no STS on the endpoint, no rights)."""
        if self.actor is not None:
            return self.actor
        async with self._identity_lock:
            if self._caller_arn is _UNKNOWN:
                if self._clients is None:
                    raise RepositoryClosedError(NOT_OPEN)
                self._caller_arn = await caller_arn(self._clients)
        return self._caller_arn if isinstance(self._caller_arn, str) else None

    async def read_with_newest(
        self, name: str, alias: str
    ) -> tuple[AliasItem | None, HistoryItem | None]:
        current, _, newest = await self.aliases_table.read_with_newest(name, alias)
        return current, newest

    def history(
        self, name: str, alias: str, *, page_size: int, below: str | None = None
    ) -> AsyncIterator[HistoryItem]:
        return self.aliases_table.history(name, alias, page_size=page_size, below=below)

    # -- holds ------------------------------------------------------------------------

    async def hold(self, record: HoldItem, name: str) -> bool:
        return await self.versions_table.hold(record, name)

    async def release_hold(self, name: str, stored: str) -> None:
        await self.versions_table.release_hold(name, stored)

    async def holds(self, name: str) -> list[HoldItem]:
        return await self.versions_table.holds(name)

    # -- retention --------------------------------------------------------------------

    async def purge_versions(
        self, name: str, rules: PurgeRules, binding: Binding
    ) -> tuple[datetime, list[Artifact]]:
        return await table_purge.purge_versions(self, name, rules, binding)

    async def purge_artifact(self, name: str) -> None:
        """Items first: a failure half-way leaves orphan objects, never items without
        content."""
        objects, table = self.objects, self.table
        keys = [raw async for raw in table.query(_layout.alias_pk(name))]
        keys += [raw async for raw in table.query(_layout.history_pk(name))]
        keys += [raw async for raw in table.query(_layout.holds_pk(name))]
        keys += [raw async for raw in table.query(name)]
        await table.batch_delete(keys)
        await objects.delete_prefix(self.layout.artifact_dir(name))

    async def purge_all(self) -> None:
        """Every item but the table record (the table still serves this repository)."""
        objects, table = self.objects, self.table
        record = (_layout.TABLE_RECORD_PK, _layout.TABLE_RECORD_SK)
        keys = [raw async for raw in table.scan_keys() if _codec.key_of(raw) != record]
        await table.batch_delete(keys)
        await objects.delete_prefix(self.layout.root)


class _ContentSource:
    """The read path's view of a :class:`TableCatalog`: its reads skip the table record's
    check (:meth:`TableCatalog.check_serves`).

    What they return to a caller is content read from this repository's own bucket
    and checked against the sha256 the table records for it: right whichever
    repository the table serves. So a cold cached read costs what it did, and a
    restart served by the cache makes no request at all. The façade asks the
    check before a failed content read raises (the error would be misleading),
    and before it hands out an alias resolved here. A repair of LATEST is a
    write, and so checked like every write.
    """

    def __init__(self, catalog: TableCatalog) -> None:
        self._catalog = catalog

    async def version_item(self, name: str, stored: str) -> VersionItem:
        return await self._catalog.version_item(name, stored, checked=False)

    async def alias_item(self, name: str, alias: str) -> AliasItem | None:
        return await self._catalog.alias_item(name, alias, checked=False)

    async def fetch(self, name: str, stored: str) -> Fetched:
        return await self._catalog.fetch(name, stored, checked=False)

    async def stream(self, name: str, stored: str, part: Path) -> Streamed:
        return await self._catalog.stream(name, stored, part, checked=False)

    async def fetch_object(self, name: str, stored: str) -> tuple[bytes, ObjectInfo] | None:
        return await self._catalog.fetch_object(name, stored)

    async def stream_object(self, name: str, stored: str, part: Path) -> tuple[str, int] | None:
        return await self._catalog.stream_object(name, stored, part)

    async def repair_latest(self, name: str, stored: str, actual: str, info: ObjectInfo) -> bool:
        return await self._catalog.repair_latest(name, stored, actual, info)
