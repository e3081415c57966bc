"""The façade both repository layouts share: :class:`ArtifactRepository`.

It validates the arguments, orchestrates, builds the models and keeps the local
cache informed; where versions and aliases live is its catalog's business
(:mod:`._catalog`: a DynamoDB table and S3 for
:class:`~versioned_async.Repository`, S3 alone for
:class:`~versioned_async.S3OnlyRepository`), in the way an httpx client sends
over a transport. Reads go down one path: this façade validates, then a reader
(:mod:`.cache.reader`: direct, or :mod:`.cache.cached_reader` over the
:class:`~versioned_async.cache.LocalCache`) reads through the catalog, which is
the read path's :class:`~.cache.reader.VersionSource`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Awaitable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, TypeVar

from . import _codec, _layout, _telemetry
from ._arguments import aware, download_target, purge_rules, search_arguments, upload_arguments
from ._aws.clients import AwsClients
from ._catalog import Binding, Catalog, Written
from ._codec import AliasItem, VersionItem
from ._layout import VersionLike
from ._policy import routing as _routing
from ._policy.alias_change import alias_target
from ._settings import ClientSettings
from ._telemetry import traced, traced_as
from ._watch import check_polling, watch
from .cache import LocalCache
from .cache.cached_reader import content_reader
from .cache.reader import ContentReader
from .exc import (
    AliasNotFoundError,
    BackendUnavailableError,
    IntegrityError,
    InvalidArgumentTypeError,
    NotFoundError,
    RepositoryClosedError,
)
from .models import Alias, Artifact, bind

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["ArtifactRepository", "BaseRepository"]

_Repo = TypeVar("_Repo", bound="ArtifactRepository")
_T = TypeVar("_T")


class ArtifactRepository:
    """The API both layouts share, over the layout's catalog: what code that takes
    either :class:`~versioned_async.Repository` or
    :class:`~versioned_async.S3OnlyRepository` types its argument as. Build one of
    those two, not this class."""

    #: the AWS services this layout talks to; one client each
    _SERVICES: ClassVar[tuple[str, ...]] = ("s3",)
    #: the layout, as the CLI's ``--backend`` names it: the spans' ``versioned.backend``
    _backend: ClassVar[str] = "s3"

    def __init__(
        self,
        catalog: Catalog,
        settings: ClientSettings,
        cache: LocalCache | None,
        table_name: str,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        layout = catalog.layout
        self.aws_region = settings.aws_region
        self.s3_bucket = layout.bucket
        self.s3_prefix = layout.prefix
        self.suffix = layout.suffix
        self.endpoint_url = settings.endpoint_url
        self.layout = layout
        self._settings = settings
        if cache is not None and not isinstance(cache, LocalCache):
            raise InvalidArgumentTypeError(
                f"cache must be a LocalCache, not {type(cache).__name__}"
            )
        self.cache = cache
        self.s3_options = settings.s3_options
        #: where this layout's versions and aliases are, and the read path's source
        self._catalog = catalog
        # cache keys name the repository (and its layout): one cache can serve several
        identity = settings.repository_id(layout, table_name)
        #: the one read path: through the cache when there is one, else straight
        self._reader: ContentReader = content_reader(
            cache, catalog.content_source(), identity, self._alias
        )
        self._aws_clients: AwsClients | None = None
        #: where the operations' spans go (a no-op until an OpenTelemetry SDK is set)
        self._tracing = _telemetry.tracing(tracer_provider)

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
        self._aws_clients = clients = self._settings.clients(self._SERVICES)
        self._catalog.connect(clients)

    async def close(self) -> None:
        """Close the clients that were created, and their connection pools. Safe to call
        twice."""
        clients, self._aws_clients = self._aws_clients, None
        self._catalog.disconnect()
        if clients is not None:
            await clients.aclose()

    @property
    def is_open(self) -> bool:
        return self._aws_clients is not None

    @traced
    async def bootstrap(self) -> None:
        """Create what the repository needs when missing (the bucket; in the DynamoDB
        layout the table too, on-demand). Idempotent."""
        await self._catalog.bootstrap(self.aws_region)

    @traced
    async def check_table(self) -> bool:
        """Whether the DynamoDB table records that it serves this repository (its bucket
        and prefix). In the S3-only layout, which has no table: ``False``, no request.

        ``False``: the table records no repository (made by `versioned` 1.0, or
        before versioned_async recorded one); such a table works as it always did,
        and :meth:`~versioned_async.Repository.adopt_table` records this repository.
        Raises :class:`~versioned_async.exc.TableMismatchError` when it records
        another bucket or prefix: then every call of this repository that uses the
        table raises it, before writing anything or returning what the table holds.

        The first call of a repository that uses the table makes this check (one
        GetItem), and the answer is kept for the repository's lifetime: call it
        yourself to fail at start-up rather than at the first request. Content
        reads (``get_content``, ``get_alias_content``, ``download``) do not wait
        for it, since their content is checked against its sha256 on arrival (a
        restart served by the local cache still makes no request); they check
        before raising an error.
        """
        return await self._catalog.check_serves()

    # -- reading content: façade -> reader -> catalog -----------------------------------

    @traced
    async def get_content(self, name: str, version: VersionLike = None) -> bytes:
        """The content of a version (LATEST by default), checked against its sha256.

        Without a cache, the item lookup and the download run concurrently:
        one round trip. With a :class:`LocalCache`, a version seen within the
        TTL is read from local disk without any request.
        """
        _layout.validate_name(name)
        stored = _layout.encode_version(version)
        return await self._content(self._reader.get_content(name, stored))

    @traced
    async def get_alias_content(
        self, name: str, alias: str, routing_key: str | bytes | None = None
    ) -> bytes:
        """Resolve ``alias``, pick a version (sticky for ``routing_key``), return its content.

        Cold, this costs two round trips: the alias, then the version lookup
        and the download together. With a cache, none inside the TTL.
        """
        return await self._content(self._alias_content(name, alias, routing_key))

    async def _alias_content(self, name: str, alias: str, routing_key: str | bytes | None) -> bytes:
        return await self._reader.get_content(name, await self._route(name, alias, routing_key))

    async def _content(self, read: Awaitable[_T]) -> _T:
        """``read``, a content read, which does not wait for the check that the table
        serves this repository: its answer is content checked against the sha256
        recorded, from this repository's bucket. Its errors are not: a version or alias
        missing, or content that does not match, may mean the table serves another
        repository, so that is checked (once per repository) before they are raised."""
        try:
            return await read
        except (NotFoundError, IntegrityError):
            await self._catalog.check_serves()
            raise

    @traced
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
        target = download_target(path, version, alias)
        await self._content(self._download(name, target, version, alias, routing_key))
        return target

    async def _download(
        self,
        name: str,
        target: Path,
        version: VersionLike,
        alias: str | None,
        routing_key: str | bytes | None,
    ) -> None:
        stored = (
            _layout.encode_version(version)
            if alias is None
            else await self._route(name, alias, routing_key)
        )
        await self._reader.download(name, stored, target)

    @traced
    async def resolve_alias(self, name: str, alias: str) -> Alias:
        """The alias as the read path sees it: from the cache within the TTL, and the
        last known one when AWS is down (stale-if-error). Without a cache, ``get_alias``.

        For routing many keys, resolve once and call ``choose_version`` per key. In the
        DynamoDB layout the first call of a repository checks that its table serves it
        (one GetItem, see :meth:`~versioned_async.Repository.check_table`): an alias is
        metadata, not content checked on arrival. When AWS cannot be reached that check
        waits for the next call that reaches it, and a repository with a cache answers
        from the cache: the alias its own reads stored there, as ``get_alias_content``
        does, so a service restarted during an outage still starts.
        """
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        try:
            await self._catalog.check_serves()
        except BackendUnavailableError:
            if self.cache is None:
                raise
        return await self._reader.resolve_alias(name, alias)

    async def _route(self, name: str, alias: str, routing_key: str | bytes | None) -> str:
        """The stored version that serves ``routing_key`` through ``alias``, as
        ``resolve_alias(...).choose_version(routing_key)`` picks it, with no model built."""
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        item = await self._reader.alias_item(name, alias)
        primary, secondary = item.version, item.secondary_version
        chosen = _routing.choose(
            name, alias, primary, secondary, item.secondary_version_weight, routing_key
        )
        _telemetry.annotate(_telemetry.ARTIFACT_VERSION, chosen, _layout.decode_version)
        return chosen

    @traced_as("Artifact.get_content")
    async def _read_verified(self, artifact: Artifact) -> bytes:
        """Content of a model read earlier, checked against its own sha256."""
        _telemetry.annotate(_telemetry.ARTIFACT_NAME, artifact.name)
        _telemetry.annotate(_telemetry.ARTIFACT_VERSION, artifact.version)
        return await self._reader.read_artifact(artifact)

    # -- artifacts -------------------------------------------------------------------

    @traced
    async def list_artifact_names(self) -> list[str]:
        """Names of every artifact with content in the repository, sorted."""
        return sorted(await self._catalog.artifact_names())

    @traced
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
        where given) nothing is uploaded. In the DynamoDB layout the S3 object
        is written before the table item, so a failed upload leaves the item
        as it was, and calling again after a failure repairs a half-done put;
        in the S3-only layout concurrent puts behave as in S3: the last one wins.
        """
        upload = upload_arguments(name, content, content_type, metadata, tags)
        return await self._written(await self._catalog.put_latest(upload))

    @traced
    async def get_artifact_version(self, name: str, version: VersionLike = None) -> Artifact:
        """One version (LATEST by default); ``ArtifactNotFoundError`` when missing or deleted.

        In the DynamoDB layout one GetItem (a version written by `versioned` 1.0,
        whose item records no size, content type or metadata, costs one
        HeadObject more to fill them in); in the S3-only layout one HeadObject:
        the object's metadata is the whole record.
        """
        _layout.validate_name(name)
        stored = _layout.encode_version(version)
        return self._artifact(await self._catalog.version(name, stored))

    @traced
    async def list_artifact_versions(self, name: str) -> list[Artifact]:
        """Every visible version: LATEST first, then newest to oldest. ``[]`` for none.

        In the DynamoDB layout one Query of the name's items; versions written
        by `versioned` 1.0 (items without size, content type and metadata) get
        them from their S3 object: one HeadObject each, 16 at a time. In the
        S3-only layout one listing, then one HeadObject per version (16 at a
        time): S3 listings carry no user metadata, and the sha256 is metadata.
        """
        _layout.validate_name(name)
        return [self._artifact(item) for item in await self._catalog.versions(name)]

    @traced
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

        Cost, DynamoDB layout. With ``name``: one strongly consistent Query of
        that name's partition. DynamoDB filters after reading, so every version
        item of the name is read and billed (1 RCU per 4 KB), matching or not;
        with ``limit`` the Query stops after the page that completes it.
        Without ``name``: a Scan of the whole table, every item of every
        artifact (aliases and their history too), billed in full: for
        occasional or administrative use, not a request path. Either way, each
        candidate version written by `versioned` 1.0 (which keeps no metadata
        in the table) costs a HeadObject, 16 at a time, since its S3 object is
        the truth. There is no index: a GSI can only index a top-level
        attribute, not a key of the metadata map.

        Cost, S3-only layout: a listing and a HeadObject per version of each
        artifact searched (every artifact when ``name`` is ``None``): S3 has no
        query.
        """
        wanted = search_arguments(name, metadata, include_latest, limit)
        found = await self._catalog.find(name, wanted, include_latest, limit)
        return [self._artifact(item) for item in found]

    @traced
    async def publish_artifact_version(self, name: str) -> Artifact:
        """Snapshot LATEST as the next immutable version and return it. A number
        never names two contents, and the recorded sha256 is read from the new
        version's object itself, so it matches even when a put races the publish.

        DynamoDB layout: each publisher first claims its number with a
        conditional write (a hidden reservation item), so concurrent
        publishers, in one process or many, get distinct numbers: a number
        above every version published before it started. A publisher that
        crashes leaves its number reserved (hidden); once the reservation is
        older than ``reservation_timeout_secs`` the next publish reclaims it if
        nothing was published above it (the number is then handed out again:
        none is skipped), else the next purge removes it and the number stays
        unused. Either way the object the crashed publisher may have copied to
        that number goes too.

        S3-only layout, as in `versioned`: the number is the highest existing
        one plus one (one listing of two keys), and when LATEST has not changed
        since the highest version was published (equal ETags), that version is
        returned and nothing is written. Unlike `versioned`, the version object
        is created with a conditional write (``If-None-Match: *``): when a
        concurrent publisher took the number first, this one takes the next
        (or returns the winner's version when it holds the same content), so
        concurrent publishes of one LATEST make one version. LATEST is read
        once (body, metadata, tags) and written under the new key: one download
        and one upload, since S3 has no conditional server-side copy that every
        engine honours (moto ignores one).
        """
        _layout.validate_name(name)
        return await self._written(await self._catalog.publish(name))

    @traced
    async def delete_artifact_version(self, name: str, version: VersionLike = None) -> None:
        """Delete a version: get and list no longer find it; deleting a version that
        does not exist changes nothing.

        In the DynamoDB layout a soft delete: hidden from get and list, its number
        never reused. A held version (:meth:`~versioned_async.Repository.protect`)
        is not deleted: ``VersionProtectedError``; the hold check and the delete
        are one transaction. In the S3-only layout the numbered version's object
        is deleted for good, and LATEST cannot be deleted (`versioned` reads an
        artifact whose first object is not LATEST as damaged; ``purge_artifact``
        removes a whole artifact); deleting the highest version frees its number
        for the next publish, as in `versioned`.
        """
        _layout.validate_name(name)
        stored = _layout.encode_version(version)
        await self._catalog.delete_version(name, stored)
        await self._reader.forget_version(name, stored)

    async def _written(self, written: Written) -> Artifact:
        """The model of a version a write returned; the cache learns a new one."""
        if written.new:
            await self._reader.remember_version(written.item)
        return self._artifact(written.item)

    # -- retention -------------------------------------------------------------------

    @traced
    async def purge_artifact_versions(
        self,
        name: str,
        keep_last_n: int = 10,
        purge_older_than_secs: float = 90 * 24 * 60 * 60,
        *,
        dry_run: bool = False,
    ) -> tuple[datetime, list[Artifact]]:
        """Delete old numbered versions; returns the purge time and what was deleted.

        Kept: LATEST, the newest ``keep_last_n`` numbered versions, versions
        younger than ``purge_older_than_secs``, every version an alias points
        at (primary or canary) and, in the DynamoDB layout, every version held
        with :meth:`~versioned_async.Repository.protect`. ``dry_run=True``
        returns the plan and writes nothing.

        DynamoDB layout: a soft delete that never leaves an alias on a deleted
        version. Each delete is one transaction that also checks that the
        version is not held, that no alias read for the plan has changed, and
        that no alias write of ours has pointed at the version since the plan
        read it (every such write marks the version it points at, in its own
        transaction, and needs it visible): a version whose check fails is kept
        and left out of the result. An alias written meanwhile by `versioned`
        1.0, which marks nothing, is caught by reading the aliases again after
        the deletes, and a version it points at is restored; if the purge dies
        before that, the next purge restores it (it undoes its own deletes
        only, never :meth:`delete_artifact_version`'s). It also reclaims the
        numbers that crashed publishers left reserved for longer than
        ``reservation_timeout_secs``, and the objects they copied. Cost: one
        transaction per deleted version, one at a time, and up to four queries.

        S3-only layout: each delete is conditional on the ETag read for the
        plan, so a number re-published meanwhile is kept. Deletes are final: an
        alias pointed at a planned version during the purge is not caught (S3
        has no transaction); the aliases are read again afterwards and such a
        version is logged as an error.
        """
        _layout.validate_name(name)
        rules = purge_rules(keep_last_n, purge_older_than_secs, dry_run)
        binding = Binding(self._artifact, self._alias, self._reader.forget_version)
        return await self._catalog.purge_versions(name, rules, binding)

    @traced
    async def purge_artifact(self, name: str) -> None:
        """Delete an artifact for good: every object, item and alias (in the DynamoDB
        layout, the aliases' history and holds too)."""
        _layout.validate_name(name)
        await self._catalog.purge_artifact(name)

    @traced
    async def purge_all(self) -> None:
        """Delete every artifact under the prefix (and every item in the table)."""
        await self._catalog.purge_all()

    # -- aliases ---------------------------------------------------------------------

    @traced
    async def get_alias(self, name: str, alias: str) -> Alias:
        """The alias; ``AliasNotFoundError`` when it does not exist."""
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        record = await self._catalog.alias_item(name, alias)
        if record is None:
            raise AliasNotFoundError(name, alias)
        await self._reader.remember_alias(record)
        return self._alias(record)

    @traced
    async def list_aliases(self, name: str) -> list[Alias]:
        """Every alias of ``name``, sorted by alias name (in the S3-only layout: a
        listing, then a GetObject each)."""
        _layout.validate_name(name)
        return [self._alias(record) for record in await self._catalog.aliases(name)]

    @traced
    async def put_alias(
        self,
        name: str,
        alias: str,
        version: VersionLike = None,
        secondary_version: VersionLike = None,
        secondary_version_weight: int | None = None,
        *,
        if_update_at: datetime | None = None,
    ) -> Alias:
        """Point ``alias`` at ``version`` (LATEST by default), optionally splitting traffic.

        As :meth:`Repository.put_alias <versioned_async.Repository.put_alias>`;
        in the S3-only layout without history, and the versions must exist when
        checked (HeadObject): S3 cannot make the check and the write one step,
        so a version deleted in between is not noticed. ``if_update_at`` makes
        it a compare-and-set (there, a conditional write on the alias object's
        ETag).
        """
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        target = alias_target(version, secondary_version, secondary_version_weight)
        expected = None if if_update_at is None else aware(if_update_at, "if_update_at")
        return await self._changed_alias(
            name, alias, await self._catalog.put_alias(name, alias, target, expected)
        )

    @traced
    async def delete_alias(
        self, name: str, alias: str, *, if_update_at: datetime | None = None
    ) -> None:
        """Delete the alias; deleting a missing alias changes nothing (unless
        ``if_update_at`` expected it to exist)."""
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        expected = None if if_update_at is None else aware(if_update_at, "if_update_at")
        if await self._catalog.delete_alias(name, alias, expected):
            await self._reader.forget_alias(name, alias)

    async def _changed_alias(self, name: str, alias: str, record: AliasItem) -> Alias:
        """Keep the cache in step with an alias a write left as ``record``; its model."""
        await self._reader.remember_alias(record)
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
        interval, jitter = check_polling(interval, jitter)
        poll = {_telemetry.ARTIFACT_NAME: name, _telemetry.ALIAS_NAME: alias}
        poll[_telemetry.BACKEND] = self._backend
        return watch(
            lambda: _telemetry.traced_poll(
                self._tracing, self, poll, self._catalog.alias_item(name, alias)
            ),
            self._alias,
            self._reader.remember_alias,
            lambda: self.is_open,
            (name, alias),
            interval,
            jitter,
        )

    # -- models ----------------------------------------------------------------------

    def _artifact(self, item: VersionItem) -> Artifact:
        model = _codec.item_to_artifact(item, self.layout)
        bind(model, self)
        return model

    def _alias(self, item: AliasItem) -> Alias:
        model = _codec.item_to_alias(item, self.layout)
        bind(model, self)
        return model


#: the name :mod:`.models` knows the façade by
BaseRepository = ArtifactRepository
