"""Repository: the async public API over S3 (content) and DynamoDB (metadata).

It validates and orchestrates: arguments are checked by :mod:`._layout`, purges
planned by :mod:`._retention`; the table's side is a
:class:`~._version_table.VersionTable` and an :class:`~._alias_table.AliasTable`
(typed writes, spelled by :mod:`._codec`), the objects' :mod:`._aws`; the local
cache is kept in step here. The layout is `versioned` 1.0's, so both libraries
can work on one repository at the same time.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from datetime import datetime

import attrs
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from . import _codec, _layout, _retention
from ._alias_table import AliasTable
from ._aliases import _UNKNOWN, AliasOperations
from ._aws.clients import NOT_OPEN
from ._aws.dynamodb import Table
from ._aws.s3 import ObjectInfo
from ._base import (
    BULK_CONCURRENCY,
    BaseRepository,
    describe_object,
    has_metadata,
    hash_source,
    holds_already,
    search_arguments,
)
from ._codec import AliasItem, VersionItem
from ._gather import bounded_gather, gather_or_cancel
from ._layout import LATEST, VersionLike
from ._redact import redact_url
from ._sources import TableVersions
from ._table_writes import RequireAliasUnchanged
from ._version_table import VersionTable
from .cache import LocalCache
from .exc import (
    ArtifactNotFoundError,
    ConflictError,
    IntegrityError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RepositoryClosedError,
)
from .models import Artifact, Hold

__all__ = ["Repository"]

log = logging.getLogger("versioned_async")

#: how often a put re-reads LATEST to converge with concurrent puts before giving up
_CONVERGE_ATTEMPTS = 8
#: a transaction takes 100 actions: a purge's delete, its hold check, and this many alias checks
_MAX_ALIAS_GUARDS = 97
#: version items a metadata search checks at once (HeadObjects for `versioned`'s items)
_SEARCH_BATCH = 100


def _with_object_facts(item: VersionItem, info: ObjectInfo | None) -> VersionItem:
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


class Repository(AliasOperations, BaseRepository):
    """A versioned artifact repository: content in S3, metadata in one DynamoDB table.

    Open it with ``async with``: that creates one pooled S3 client and one
    DynamoDB client, shared by every call and closed on exit::

        async with Repository(aws_region="us-east-1", s3_bucket="my-bucket") as repo:
            await repo.bootstrap()
            await repo.put_artifact("model", b"...")

    ``endpoint_url`` sends both clients to one endpoint (moto, LocalStack). Left
    ``None``, botocore's own configuration applies untouched:
    ``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL_DYNAMODB``
    and profiles. ``client_config`` is merged over the defaults (standard
    retries, 5 attempts, a pool of ``max_pool_connections``).

    Security settings, carried by every S3 request: ``server_side_encryption``
    (``"AES256"`` for SSE-S3, ``"aws:kms"`` for SSE-KMS with ``sse_kms_key_id``)
    for the objects written, and ``expected_bucket_owner`` (a 12-digit account
    id) so that S3 refuses to talk to a bucket another account owns. Uploads
    always carry a SHA-256 checksum that S3 verifies on arrival.

    ``actor`` names who makes this repository's alias changes in their history
    (a pipeline, a service); left ``None``, the caller's AWS identity is asked
    of STS once and used when known.

    ``reservation_timeout_secs`` (an hour by default, 60 at least): a publish reserves its
    number before it copies; a reservation older than this is taken to be
    left by a publisher that crashed, and the next publish or purge of that
    name reclaims it (see :meth:`publish_artifact_version`).
    """

    _SERVICES = ("s3", "dynamodb")

    def __init__(
        self,
        aws_region: str | None = None,
        s3_bucket: str = "",
        s3_prefix: str = _layout.DEFAULT_S3_PREFIX,
        dynamodb_table_name: str = _layout.DEFAULT_TABLE_NAME,
        suffix: str = "",
        endpoint_url: str | None = None,
        session: AioSession | None = None,
        *,
        cache: LocalCache | None = None,
        max_pool_connections: int = 64,
        client_config: AioConfig | None = None,
        server_side_encryption: str | None = None,
        sse_kms_key_id: str | None = None,
        expected_bucket_owner: str | None = None,
        actor: str | None = None,
        reservation_timeout_secs: float = _retention.RESERVATION_TIMEOUT_SECS,
    ) -> None:
        if not isinstance(dynamodb_table_name, str):
            raise InvalidArgumentTypeError(
                f"dynamodb_table_name must be a str, not {type(dynamodb_table_name).__name__}"
            )
        if not dynamodb_table_name:
            raise InvalidArgumentError("dynamodb_table_name must not be empty")
        super().__init__(
            aws_region=aws_region,
            s3_bucket=s3_bucket,
            s3_prefix=s3_prefix,
            suffix=suffix,
            endpoint_url=endpoint_url,
            session=session,
            cache=cache,
            max_pool_connections=max_pool_connections,
            client_config=client_config,
            server_side_encryption=server_side_encryption,
            sse_kms_key_id=sse_kms_key_id,
            expected_bucket_owner=expected_bucket_owner,
            layout=_layout.Layout,
            table_name=dynamodb_table_name,
            versions=TableVersions(self, self._record_latest),
        )
        self.dynamodb_table_name = dynamodb_table_name
        #: the table's side: versions, reservations and holds; aliases and their history
        self._version_table = VersionTable(lambda: self._table)
        self._alias_table = AliasTable(lambda: self._table)
        if actor is not None and not isinstance(actor, str):
            raise InvalidArgumentTypeError(f"actor must be a str, not {type(actor).__name__}")
        #: who alias changes are recorded as, unless a call says; ``None``: the AWS identity
        self.actor = actor
        self._caller_arn: str | None = _UNKNOWN
        self._identity_lock = asyncio.Lock()
        self._dynamodb_table: Table | None = None
        #: after how long an unfinished publish's number reservation counts as left by a
        #: crashed publisher, and is reclaimed (see _retention.RESERVATION_TIMEOUT_SECS)
        self.reservation_timeout_secs = _retention.validate_reservation_timeout(
            reservation_timeout_secs
        )

    def __repr__(self) -> str:
        return (
            f"Repository(aws_region={self.aws_region!r}, s3_bucket={self.s3_bucket!r}, "
            f"s3_prefix={self.s3_prefix!r}, dynamodb_table_name={self.dynamodb_table_name!r}, "
            f"suffix={self.suffix!r}, endpoint_url={redact_url(self.endpoint_url)!r})"
        )

    async def open(self) -> None:
        """Set up the clients, each created on its first use, and the table they serve;
        ``async with repo`` calls this for you. Settings AWS would refuse (no region, a
        bad endpoint) fail here."""
        await super().open()
        self._dynamodb_table = Table(self._clients, self.dynamodb_table_name)

    @property
    def _table(self) -> Table:
        if self._dynamodb_table is None or not self.is_open:
            raise RepositoryClosedError(NOT_OPEN)
        return self._dynamodb_table

    # -- set-up ----------------------------------------------------------------------

    async def bootstrap(
        self,
        dynamodb_write_capacity_units: int | None = None,
        dynamodb_read_capacity_units: int | None = None,
    ) -> None:
        """Create the bucket and the table when missing. Idempotent.

        The table is on-demand unless both capacities are given.
        """
        if (dynamodb_write_capacity_units is None) != (dynamodb_read_capacity_units is None):
            raise InvalidArgumentError(
                "give both dynamodb_write_capacity_units and dynamodb_read_capacity_units, "
                "or neither for an on-demand table"
            )
        await gather_or_cancel(
            self._objects.ensure_bucket(self.aws_region),
            self._table.ensure_table(dynamodb_read_capacity_units, dynamodb_write_capacity_units),
        )

    # -- artifacts -------------------------------------------------------------------

    async def put_artifact(
        self,
        name: str,
        content: bytes | os.PathLike[str],
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> Artifact:
        """Store ``content`` (bytes, or the path of a file) as the LATEST version of ``name``.

        A file is streamed: hashed and uploaded in parts (multipart above 16
        MiB), so memory stays bounded whatever its size. When LATEST already
        holds the same content (and the same content type and metadata,
        where given) nothing is uploaded. The S3 object is written before the
        table item, so a failed upload leaves the item as it was; calling
        again after a failure repairs a half-done put.
        """
        _layout.validate_name(name)
        body = _layout.validate_content(content)
        content_type = _layout.validate_content_type(content_type)
        user_meta = _layout.validate_metadata(metadata)
        tag_map = _layout.validate_tags(tags)
        objects, table = self._objects, self._table
        key = self.layout.key(name, LATEST)
        (sha, size), (head, raw_item) = await gather_or_cancel(
            hash_source(body),
            gather_or_cancel(objects.head_object(key), table.get_item(name, LATEST)),
        )
        item = None if raw_item is None else _codec.structure_version_item(raw_item)
        unchanged = holds_already(head, sha, tag_map, content_type, metadata, user_meta)
        if unchanged and head is not None:
            if item is not None and item.is_visible and item.sha256 == sha:
                if item.metadata is None:  # written by `versioned`: the object knows the rest
                    item = _with_object_facts(item, head)
                return self._artifact(item)
            info = head  # the object is right, the item is not: repair it
        else:
            meta = {_layout.META_NAME: name, _layout.META_SHA256: sha, **user_meta}
            await objects.upload(key, body, size, meta, content_type, tag_map, sha)
            written = await objects.head_object(key)
            if written is None:
                raise ConflictError(f"LATEST of {name!r} was deleted while it was being put; retry")
            info = written
        return await self._record_latest(name, info)

    async def _record_latest(self, name: str, info: ObjectInfo) -> Artifact:
        """Point the LATEST item at the object ``info`` describes, until they agree.

        Writes only move ``update_at`` forward, and after each write the object
        is read again: when a concurrent put replaced it meanwhile, the item is
        rewritten to match. So racing puts converge on an item that describes
        the object S3 kept.
        """
        objects = self._objects
        key = self.layout.key(name, LATEST)
        for _attempt in range(_CONVERGE_ATTEMPTS):
            if info.sha256 is None:
                raise IntegrityError(name, LATEST, "<sha256 in object metadata>", "<none>")
            record = describe_object(name, LATEST, info.sha256, info)
            written = await self._version_table.record_latest(record, info.last_modified)
            fresh = await objects.head_object(key)
            if fresh is None:
                raise ConflictError(f"LATEST of {name!r} was deleted while it was being put; retry")
            if written and fresh.sha256 == record.sha256:
                await self._remember_version(record)
                return self._artifact(record)
            if not written:  # a newer put recorded its own object: fine if they agree
                current = await self._version_table.item(name, LATEST)
                if current is not None and current.is_visible and current.sha256 == fresh.sha256:
                    if current.metadata is None:  # written by `versioned`: the object knows
                        current = _with_object_facts(current, fresh)
                    return self._artifact(current)
            info = fresh
        raise ConflictError(f"LATEST of {name!r} kept changing while it was being put; retry")

    async def get_artifact_version(self, name: str, version: VersionLike = None) -> Artifact:
        """One version (LATEST by default); ``ArtifactNotFoundError`` when missing or deleted.

        One GetItem. A version written by `versioned` 1.0, whose item records
        no size, content type or metadata, costs one HeadObject more to fill them in.
        """
        _layout.validate_name(name)
        stored = _layout.encode_version(version)
        [item] = await self._complete_from_objects([await self._source.version_item(name, stored)])
        return self._artifact(item)

    async def list_artifact_versions(self, name: str) -> list[Artifact]:
        """Every visible version: LATEST first, then newest to oldest. ``[]`` for none.

        One Query of the name's items. Versions written by `versioned` 1.0
        (items without size, content type and metadata) get them from their S3
        object: one HeadObject each, 16 at a time.
        """
        _layout.validate_name(name)
        items = [item async for item in self._version_table.items(name) if item.is_visible]
        return [self._artifact(item) for item in await self._complete_from_objects(items)]

    async def find_artifact_versions(
        self,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        *,
        include_latest: bool = True,
        limit: int | None = None,
    ) -> list[Artifact]:
        """Visible versions whose user metadata holds every ``key: value`` of ``metadata``.

        Exact, case-sensitive matches, all of them (AND); keys follow
        put_artifact's rules. ``None`` or ``{}`` matches every version. With
        ``name``, the versions of that artifact; with ``None``, of every
        artifact. ``include_latest=False`` leaves LATEST out (it moves; numbered
        versions do not). Sorted by name, then as :meth:`list_artifact_versions`
        (LATEST first, then newest to oldest); ``limit`` keeps the first ``limit``.

        Cost. With ``name``: one strongly consistent Query of that name's
        partition. DynamoDB filters after reading, so every version item of
        the name is read and billed (1 RCU per 4 KB), matching or not; with
        ``limit`` the Query stops after the page that completes it. Without
        ``name``: a Scan of the whole table, every item of every artifact
        (aliases and their history too), billed in full: for occasional or
        administrative use, not a request path. Either way, each candidate
        version written by `versioned` 1.0 (which keeps no metadata in the
        table) costs a HeadObject, 16 at a time, since its S3 object is the
        truth. There is no index: a GSI can only index a top-level attribute,
        not a key of the metadata map.
        """
        wanted = search_arguments(name, metadata, include_latest, limit)
        condition, values, names = _codec.search_filter(
            wanted, across_names=name is None, include_latest=include_latest
        )
        table = self._table
        if name is not None:
            numbered = (_layout.FIRST_STORED_VERSION, _layout.LAST_STORED_VERSION)
            found = await self._matching(
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
        else:
            found = await self._matching(table.scan(condition, values, names), wanted, None)
            found.sort(key=lambda item: item.sk, reverse=True)  # LATEST, then newest
            found.sort(key=lambda item: item.pk)
            found = found[:limit]
        return [self._artifact(item) for item in found]

    async def _matching(
        self, raws: AsyncIterator[_codec.Item], wanted: Mapping[str, str], limit: int | None
    ) -> list[VersionItem]:
        """The visible items among ``raws`` whose metadata holds ``wanted``, in the order
        read, at most ``limit``. Items `versioned` wrote are judged by their S3 object."""
        found: list[VersionItem] = []
        batch: list[VersionItem] = []

        async def check() -> None:
            found.extend(
                i for i in await self._complete_from_objects(batch) if has_metadata(i, wanted)
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

    async def _complete_from_objects(self, items: list[VersionItem]) -> list[VersionItem]:
        """The items, those `versioned` wrote (no ``metadata`` attribute) completed from a
        HeadObject of their object, :data:`BULK_CONCURRENCY` at a time."""
        lacking = [n for n, item in enumerate(items) if item.metadata is None]
        if not lacking:
            return items
        infos = await bounded_gather(
            (self._objects.head_object(self.layout.key(items[n].pk, items[n].sk)) for n in lacking),
            BULK_CONCURRENCY,
        )
        out = list(items)
        for n, info in zip(lacking, infos, strict=True):
            out[n] = _with_object_facts(items[n], info)
        return out

    async def publish_artifact_version(self, name: str) -> Artifact:
        """Snapshot LATEST as the next immutable version and return it.

        Safe under concurrency: each publisher first claims its number with a
        conditional write (a hidden reservation item), so concurrent
        publishers, in one process or many, get distinct numbers. The recorded
        sha256 is read from the copied object itself, so it matches the
        content even when a put races the publish.

        Numbers: a publish gets a number above every version published before
        it started, and no number is ever given to two versions. A publisher
        that crashes leaves its number reserved (hidden); once the reservation
        is older than ``reservation_timeout_secs`` the next publish reclaims it
        if nothing was published above it (the number is then handed out
        again: none is skipped), else the next purge removes it and the number
        stays unused. Either way the object the crashed publisher may have
        copied to that number goes too.
        """
        _layout.validate_name(name)
        objects = self._objects
        versions = self._version_table
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
            await self._reclaim_reservation(name, reservation)
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
            sha = info.sha256 or await self._hash_object(name, stored)
            record = describe_object(name, stored, sha, info)
            if not await versions.complete(record, token):
                raise ConflictError(
                    f"version {number} of {name!r} was overwritten by a writer that does not "
                    "reserve numbers (an older `versioned` client?); publish again"
                )
        except BaseException:
            await versions.release(name, stored, token)
            raise
        await self._remember_version(record)
        return self._artifact(record)

    async def _reclaim_reservation(self, name: str, reservation: VersionItem) -> bool:
        """Remove a stale reservation and the object its crashed publisher may have
        copied to its number. Whether this call removed it.

        The reservation is first taken over (a new token, on the condition that
        it is still the one read), so that of two reclaimers only one deletes
        the object, and never after the number was reserved again. A reclaim
        cut short leaves a reservation of its own, reclaimed in its turn.
        """
        mine = await self._version_table.take_over(reservation)
        if mine is None:
            return False  # completed, or reclaimed by someone else meanwhile
        log.warning(
            "reclaiming version %s of %r: reserved at %s by a publish that never completed",
            _layout.decode_version(reservation.sk),
            name,
            reservation.update_at,
        )
        await self._objects.delete_object(self.layout.key(name, reservation.sk))
        return await self._version_table.drop(name, reservation.sk, mine)

    async def delete_artifact_version(self, name: str, version: VersionLike = None) -> None:
        """Soft-delete a version: hidden from get and list, its number never reused.

        Deleting a version that does not exist changes nothing. A held version
        (:meth:`protect`) is not deleted: ``VersionProtectedError``; the hold
        check and the delete are one transaction.
        """
        _layout.validate_name(name)
        stored = _layout.encode_version(version)
        await self._version_table.soft_delete(name, stored)
        await self._forget_version(name, stored)

    # -- retention -------------------------------------------------------------------

    async def purge_artifact_versions(
        self,
        name: str,
        keep_last_n: int = 10,
        purge_older_than_secs: float = 90 * 24 * 60 * 60,
        *,
        dry_run: bool = False,
    ) -> tuple[datetime, list[Artifact]]:
        """Soft-delete old numbered versions; returns the purge time and what was deleted.

        Kept: LATEST, the newest ``keep_last_n`` numbered versions, versions
        younger than ``purge_older_than_secs``, every version an alias points
        at (primary or canary) and every version held with :meth:`protect`.
        ``dry_run=True`` returns the plan and writes nothing.

        Never leaves an alias on a deleted version. Each delete is one
        transaction that also checks that the version is not held, that no
        alias read for the plan has changed, and that no alias write of ours
        has pointed at the version since the plan read it (every such write
        marks the version it points at, in its own transaction, and needs it
        visible): a version whose check fails is kept and left out of the
        result. An alias written meanwhile by `versioned` 1.0, which marks
        nothing, is caught by reading the aliases again after the deletes,
        and a version it points at is restored; if the purge dies before that,
        the next purge restores it (it undoes its own deletes only, never
        :meth:`delete_artifact_version`'s). It also reclaims the numbers that
        crashed publishers left reserved for longer than
        ``reservation_timeout_secs``, and the objects they copied. Cost: one
        transaction per deleted version, one at a time, and up to four queries.
        """
        _layout.validate_name(name)
        keep, older_than = _retention.validate_retention(keep_last_n, purge_older_than_secs)
        if not isinstance(dry_run, bool):
            raise InvalidArgumentTypeError(f"dry_run must be a bool, not {type(dry_run).__name__}")
        # the versions before the aliases: an alias written after this read has marked
        # its version (alias_epoch), which that version's delete then finds changed
        items = [item async for item in self._version_table.items(name)]
        aliases, holds = await gather_or_cancel(self._alias_tokens(name), self.list_protected(name))
        alias_models = [self._alias(record) for record, _ in aliases]
        if not dry_run:
            # a purge that died may have left an alias on a version it deleted
            broken = _retention.purged_under_alias(items, alias_models)
            await bounded_gather(
                (self._restore_version(name, self._artifact(i)) for i in broken), BULK_CONCURRENCY
            )
            # numbers reserved by publishers that crashed, and the objects they copied
            now, timeout = _codec.utcnow(), self.reservation_timeout_secs
            stale = [i for i in items if _retention.is_stale_reservation(i, now, timeout)]
            for reservation in stale:
                await self._reclaim_reservation(name, reservation)
        visible = await self._complete_from_objects([i for i in items if i.is_visible])
        versions = [self._artifact(item) for item in visible]
        epochs = {item.sk: item.alias_epoch for item in visible}
        purge_time = _codec.utcnow()
        doomed = _retention.plan_purge(
            versions,
            alias_models,
            keep_last_n=keep,
            purge_older_than_secs=older_than,
            now=purge_time,
            held=[hold.version for hold in holds],
        )
        if dry_run or not doomed:
            return purge_time, doomed
        guards = [RequireAliasUnchanged(name, record.sk, token) for record, token in aliases]
        if len(guards) > _MAX_ALIAS_GUARDS:
            # Too many aliases for one transaction: the deletes check the hold only, and
            # the re-read below restores any version an alias (moved or new) points at.
            guards = []
        # One at a time: concurrent transactions that check the same alias items
        # conflict (TransactionConflict), and moto rolls a cancelled transaction back
        # by restoring the whole table, undoing whatever ran beside it.
        deleted = [
            v
            for v in doomed
            if await self._purge_version(
                name, v, epochs.get(_layout.encode_version(v.version)), purge_time, guards
            )
        ]
        if not deleted:
            return purge_time, deleted
        # an alias created (or, unchecked, moved) since the plan was read may point at a
        # version just deleted: bring it back
        after = [self._alias(record) for record, _ in await self._alias_tokens(name)]
        back = _retention.restorable(deleted, after)
        await bounded_gather((self._restore_version(name, v) for v in back), BULK_CONCURRENCY)
        restored = {v.version for v in back}
        return purge_time, [v for v in deleted if v.version not in restored]

    async def _alias_tokens(self, name: str) -> list[tuple[AliasItem, _codec.ChangeToken]]:
        """The alias items of ``name``, each with its stored ``update_at``: the change
        token both libraries rewrite on every put."""
        return await self._alias_table.all_of(name)

    async def _purge_version(
        self,
        name: str,
        artifact: Artifact,
        alias_epoch: int | None,
        now: datetime,
        guards: list[RequireAliasUnchanged],
    ) -> bool:
        """Soft-delete one planned version in a transaction that checks the aliases read
        for the plan are unchanged, no alias write of ours pointed at the version since
        (its ``alias_epoch``) and no hold appeared. Whether it is now deleted."""
        stored = _layout.encode_version(artifact.version)
        if not await self._version_table.purge(
            name, stored, artifact.sha256, alias_epoch, now, guards
        ):
            return False
        await self._forget_version(name, stored)
        return True

    async def _restore_version(self, name: str, artifact: Artifact) -> None:
        """Undo a purge's soft delete of a version an alias was pointed at meanwhile."""
        log.warning(
            "purge of %r: an alias was pointed at version %s while it was being deleted; "
            "restoring it",
            name,
            artifact.version,
        )
        stored = _layout.encode_version(artifact.version)
        await self._version_table.restore(name, stored, artifact.sha256)

    async def protect(self, name: str, version: VersionLike, *, reason: str | None = None) -> Hold:
        """Hold a published version: purges and :meth:`delete_artifact_version` leave it
        alone until :meth:`unprotect`. ``reason`` is a note kept with the hold.

        The version must exist and be visible, else ``ArtifactNotFoundError``; the
        check and the write are one transaction. Protecting a held version again
        replaces its hold (new ``created_at`` and ``reason``). `versioned` 1.0 does
        not know holds: its own deletes and purges ignore them.
        """
        _layout.validate_name(name)
        stored = _retention.holdable_version(version)
        note = _layout.validate_note("reason", reason)
        record = _codec.HoldItem(
            pk=_layout.holds_pk(name), sk=stored, created_at=_codec.utcnow(), reason=note
        )
        if not await self._version_table.hold(record, name):
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return _codec.item_to_hold(record, name)

    async def unprotect(self, name: str, version: VersionLike) -> None:
        """Release the hold on a version; releasing one that is not held changes nothing."""
        _layout.validate_name(name)
        stored = _retention.holdable_version(version)
        await self._version_table.release_hold(name, stored)

    async def list_protected(self, name: str) -> list[Hold]:
        """Every hold on ``name``'s versions, lowest version first."""
        _layout.validate_name(name)
        return [_codec.item_to_hold(hold, name) for hold in await self._version_table.holds(name)]

    async def purge_artifact(self, name: str) -> None:
        """Delete an artifact for good: every object, version item and alias, and
        the aliases' history."""
        _layout.validate_name(name)
        objects, table = self._objects, self._table
        # items first: a failure half-way leaves orphan objects, never items without content
        keys = [raw async for raw in table.query(_layout.alias_pk(name))]
        keys += [raw async for raw in table.query(_layout.history_pk(name))]
        keys += [raw async for raw in table.query(_layout.holds_pk(name))]
        keys += [raw async for raw in table.query(name)]
        await table.batch_delete(keys)
        await objects.delete_prefix(self.layout.artifact_dir(name))

    async def purge_all(self) -> None:
        """Delete every artifact under the prefix and every item in the table."""
        objects, table = self._objects, self._table
        await table.batch_delete([raw async for raw in table.scan_keys()])
        await objects.delete_prefix(self.layout.root)
