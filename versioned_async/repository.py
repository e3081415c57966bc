"""Repository: the async public API over S3 (content) and DynamoDB (metadata).

A façade (:class:`~._base.ArtifactRepository`: it validates, builds the models
and keeps the local cache in step) over a :class:`~._catalog.TableCatalog`, the
DynamoDB layout's catalog. Besides what both layouts share, it offers what
only a table can give, over the catalog's history capability
(:class:`~._catalog.HistoryCatalog`): alias history and rollbacks, roll-outs
and holds. The layout is `versioned` 1.0's, so both libraries can work on one
repository at the same time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from . import _codec, _layout
from ._arguments import aware, check_location
from ._base import ArtifactRepository
from ._catalog import TableCatalog
from ._catalog.history import alias_as_of, history_page, rollback_plan
from ._layout import VersionLike
from ._policy import history as _history
from ._policy import retention
from ._policy import rollout as _rollout
from ._policy.alias_change import AliasTarget, ChangeRequest, alias_target
from ._recorded import RolloutRun, change_model
from ._redact import redact_url
from ._settings import ClientSettings
from ._telemetry import traced
from ._wording import ACTOR, REASON
from .cache import LocalCache
from .exc import (
    ArtifactNotFoundError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
)
from .models import Alias, AliasChange, AliasHistoryPage, Hold, RolloutResult
from .transfer_config import TransferConfig

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["Repository"]

#: longest actor or reason kept in an alias history record
_MAX_NOTE = _layout.MAX_NOTE_LENGTH


class Repository(ArtifactRepository):
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

    ``transfer_config`` (a :class:`~versioned_async.TransferConfig`): how content
    above 16 MiB moves, in parts of 8 MiB, ten in flight by default.

    ``tracer_provider`` (an OpenTelemetry ``TracerProvider``): where each call's span
    goes; by default the global provider, once the application has set one up
    (``docs/opentelemetry.md``). Without OpenTelemetry, nothing is traced.
    """

    _SERVICES = ("s3", "dynamodb")
    _backend = "dynamodb"
    _catalog: TableCatalog

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
        reservation_timeout_secs: float = retention.RESERVATION_TIMEOUT_SECS,
        transfer_config: TransferConfig | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        if not isinstance(dynamodb_table_name, str):
            raise InvalidArgumentTypeError(
                f"dynamodb_table_name must be a str, not {type(dynamodb_table_name).__name__}"
            )
        if not dynamodb_table_name:
            raise InvalidArgumentError("dynamodb_table_name must not be empty")
        check_location(s3_bucket, s3_prefix, suffix)
        if actor is not None and not isinstance(actor, str):
            raise InvalidArgumentTypeError(f"actor must be a str, not {type(actor).__name__}")
        catalog = TableCatalog(
            _layout.Layout(bucket=s3_bucket, prefix=s3_prefix, suffix=suffix),
            s3_bucket,
            dynamodb_table_name,
            actor=actor,
            reservation_timeout_secs=retention.validate_reservation_timeout(
                reservation_timeout_secs
            ),
        )
        security = (server_side_encryption, sse_kms_key_id, expected_bucket_owner)
        settings = ClientSettings.of(
            aws_region,
            endpoint_url,
            session,
            max_pool_connections,
            client_config,
            security,
            transfer_config,
        )
        super().__init__(catalog, settings, cache, dynamodb_table_name, tracer_provider)
        self.dynamodb_table_name = dynamodb_table_name

    @property
    def actor(self) -> str | None:
        """Who alias changes are recorded as, unless a call says; ``None``: the AWS
        identity."""
        return self._catalog.actor

    @actor.setter
    def actor(self, actor: str | None) -> None:
        self._catalog.actor = actor

    @property
    def reservation_timeout_secs(self) -> float:
        """After how long an unfinished publish's number reservation counts as left by a
        crashed publisher, and is reclaimed (see retention.RESERVATION_TIMEOUT_SECS)."""
        return self._catalog.reservation_timeout_secs

    @reservation_timeout_secs.setter
    def reservation_timeout_secs(self, seconds: float) -> None:
        self._catalog.reservation_timeout_secs = seconds

    def __repr__(self) -> str:
        return (
            f"Repository(aws_region={self.aws_region!r}, s3_bucket={self.s3_bucket!r}, "
            f"s3_prefix={self.s3_prefix!r}, dynamodb_table_name={self.dynamodb_table_name!r}, "
            f"suffix={self.suffix!r}, endpoint_url={redact_url(self.endpoint_url)!r})"
        )

    @traced
    async def bootstrap(
        self,
        dynamodb_write_capacity_units: int | None = None,
        dynamodb_read_capacity_units: int | None = None,
    ) -> None:
        """Create the bucket and the table when missing. Idempotent.

        The table is on-demand unless both capacities are given. The table then
        records that it serves this repository's bucket and prefix, unless it
        already records one (see :meth:`adopt_table`): when that is another
        bucket or prefix, bootstrap raises
        :class:`~versioned_async.exc.TableMismatchError` and creates nothing more
        (not the bucket).
        """
        if (dynamodb_write_capacity_units is None) != (dynamodb_read_capacity_units is None):
            raise InvalidArgumentError(
                "give both dynamodb_write_capacity_units and dynamodb_read_capacity_units, "
                "or neither for an on-demand table"
            )
        await self._catalog.bootstrap(
            self.aws_region, dynamodb_read_capacity_units, dynamodb_write_capacity_units
        )

    # -- which repository the table serves -------------------------------------------

    @traced
    async def adopt_table(self) -> bool:
        """Record in the table that it serves this repository, when it records none.

        For a table that `versioned` 1.0 made, or versioned_async before it kept
        the record (``bootstrap`` records it in the tables it creates or first
        finds): from then on, a repository given another bucket or prefix with
        this table is refused with
        :class:`~versioned_async.exc.TableMismatchError` instead of mixing its
        versions with this one's. A conditional write: ``True`` when this call
        wrote the record, ``False`` when the table already served this
        repository; ``TableMismatchError`` (nothing written) when it serves
        another. `versioned` 1.0 ignores the record (its ``purge_all`` deletes
        it: adopt again after one).
        """
        return await self._catalog.adopt_table()

    # -- aliases, recorded in their history -------------------------------------------

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
        actor: str | None = None,
        reason: str | None = None,
    ) -> Alias:
        """Point ``alias`` at ``version`` (LATEST by default), optionally splitting traffic.

        With ``secondary_version``, ``secondary_version_weight`` (an int, 0 <= w
        < 100) percent of traffic goes to it. The versions must exist and
        differ; the check, the write and its history record are one DynamoDB
        transaction, so an alias never points at a version deleted meanwhile
        and no change goes unrecorded.

        Without ``if_update_at``, concurrent moves of one alias all land, one
        after the other, each recorded: a move that finds the alias changed
        between its read and its write reads again and retries, pausing a
        random, growing while (up to 100 attempts, 0.5 s apart at most), and
        raises :class:`~versioned_async.exc.ConflictError`, having changed
        nothing, only if another move landed before every one of them.

        ``if_update_at`` makes it a compare-and-set: pass the ``update_at`` of
        the Alias you read, and the move fails with
        :class:`~versioned_async.exc.ConcurrentModificationError` if anyone
        (us or `versioned`) changed the alias since. ``actor`` and ``reason``
        go into the history record; ``actor`` defaults to the repository's
        ``actor``, else the caller's AWS identity (STS), when known.
        """
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        target = alias_target(version, secondary_version, secondary_version_weight)
        moved = await self._record_change(
            name, alias, target, _history.PUT, if_update_at=if_update_at, actor=actor, reason=reason
        )
        assert moved is not None
        return moved

    @traced
    async def get_alias(self, name: str, alias: str, *, as_of: datetime | None = None) -> Alias:
        """The alias; ``AliasNotFoundError`` when it does not exist.

        With ``as_of`` (an aware datetime), the alias as it was then, from its
        history: the state left by the last change, in the order the changes
        were made, that is dated at or before ``as_of``. Each change is dated
        by the clock of the machine that made it; when the clocks agree that is
        the alias as it was at ``as_of``, and a clock that is off misdates only
        its own changes, never holds back or reorders the others.
        ``AliasNotFoundError`` if it did not exist then, and
        :class:`~versioned_async.exc.NoHistoryError` if its history does not
        reach back that far. Cost: a GetItem and one Query page per 25
        changes made since ``as_of``.
        """
        if as_of is None:
            return await super().get_alias(name, alias)
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        return self._alias(await alias_as_of(self._catalog, name, alias, aware(as_of, "as_of")))

    @traced
    async def delete_alias(
        self,
        name: str,
        alias: str,
        *,
        if_update_at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Delete the alias, recording it in its history; deleting a missing alias
        changes nothing (unless ``if_update_at`` expected it to exist)."""
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        await self._record_change(
            name,
            alias,
            None,
            _history.DELETE,
            if_update_at=if_update_at,
            actor=actor,
            reason=reason,
        )

    @traced
    async def rollback_alias(
        self,
        name: str,
        alias: str,
        *,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Alias | None:
        """Put the alias back as it was before its last change, and record that.

        The last change is the newest history record, or a change made outside
        versioned_async since it. Returns the alias now, ``None`` when it did
        not exist before that change (it is deleted).
        :class:`~versioned_async.exc.NoHistoryError` when there is nothing
        recorded to undo; ``ConcurrentModificationError`` when the alias moved
        while rolling back (nothing changed).
        """
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        target, current = await rollback_plan(self._catalog, name, alias)
        if target is None and current is None:
            return None  # it was created outside and is already gone again
        return await self._record_change(
            name,
            alias,
            target,
            _history.ROLLBACK,
            if_update_at=None if current is None else current.update_at,
            expect_absent=current is None,
            actor=actor,
            reason=reason,
        )

    @traced
    async def list_alias_history(
        self, name: str, alias: str, *, limit: int = 50, page_token: str | None = None
    ) -> AliasHistoryPage:
        """One page of the alias's changes, newest first (the audit trail): in the
        order they were made, whatever the clocks of the machines that made them.

        Pass the page's ``next_page_token`` to get the next one. The first page
        starts with an ``"external"`` change (``recorded=False``) when the alias
        was changed outside versioned_async since its newest record.
        """
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidArgumentError(f"limit must be an int from 1 to 1000, got {limit!r}")
        if page_token is not None and (
            not isinstance(page_token, str) or not page_token.startswith(_history.prefix(alias))
        ):
            raise InvalidArgumentError(
                f"page_token {page_token!r} is not a history page token of alias {alias!r}; "
                "pass the next_page_token of a page of this alias"
            )
        page, token = await history_page(self._catalog, name, alias, limit, page_token)
        changes = [change_model(name, record, recorded, self._alias) for record, recorded in page]
        return AliasHistoryPage(changes, token)

    async def iter_alias_history(self, name: str, alias: str) -> AsyncIterator[AliasChange]:
        """Every change of the alias, newest first, fetching pages as it goes."""
        token: str | None = None
        while True:
            page = await self.list_alias_history(name, alias, limit=100, page_token=token)
            for change in page.changes:
                yield change
            token = page.next_page_token
            if token is None:
                return

    async def _record_change(
        self,
        name: str,
        alias: str,
        target: AliasTarget | None,
        action: str,
        *,
        if_update_at: datetime | None,
        actor: str | None,
        reason: str | None,
        expect_absent: bool = False,
    ) -> Alias | None:
        """Move (``target``) or delete (``None``) the alias and record it, atomically
        (see :meth:`AliasTable.change <._catalog.alias_table.AliasTable.change>`), then keep
        the local cache in step: the alias now, ``None`` when deleted or when there was
        nothing to delete."""
        expected = None if if_update_at is None else aware(if_update_at, "if_update_at")
        actor = _layout.validate_note("actor", actor)
        reason = _layout.validate_note("reason", reason)
        if actor is None:
            actor = await self._catalog.default_actor()
        request = ChangeRequest(name, alias, target, action, actor, reason, expected, expect_absent)
        changed, record = await self._catalog.change_alias(request)
        if record is not None:
            return await self._changed_alias(name, alias, record)
        if changed:
            await self._reader.forget_alias(name, alias)
        return None

    @traced
    async def rollout(
        self,
        name: str,
        alias: str,
        to_version: VersionLike,
        *,
        steps: Sequence[int] = _rollout.DEFAULT_STEPS,
        bake_seconds: float = 60.0,
        check: Callable[[Alias], Awaitable[bool]] | None = None,
        actor: str | None = None,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> RolloutResult:
        """Move ``alias`` to ``to_version`` in steps of traffic (10%, 50%, 100% by default).

        A step below 100 splits traffic: the alias's primary keeps it, and
        ``to_version`` gets that many percent as the secondary; the step at 100
        points the alias at ``to_version`` alone. After each step, the last one
        too, it waits ``bake_seconds`` and awaits ``check(alias)``: anything but
        ``True``, or an exception, puts the alias back exactly as it started and
        raises :class:`~versioned_async.exc.RolloutFailedError` (chained from the
        check's exception). A cancellation (Ctrl-C) or a failed write puts it
        back too, then propagates.

        Each write is a compare-and-set on the state before it, recorded in the
        alias's history as ``"rollout"`` (a put-back as ``"rollback"``), its
        reason ``"rollout to 3: step 2/3 (50%)"`` followed by ``reason``.
        Someone else moving the alias mid-roll-out stops it with
        :class:`~versioned_async.exc.ConcurrentModificationError`, and their
        change stands.

        The alias must exist and ``to_version`` must exist and differ from its
        primary. An alias that already splits traffic is rolled out from its
        primary: its other canary goes at the first step (and comes back if the
        roll-out is put back); when its canary already is ``to_version``, steps
        at or below its weight are skipped. ``dry_run=True`` writes nothing,
        calls no check and returns the plan.
        """
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        weights = _rollout.validate_steps(steps)
        bake = _rollout.validate_bake(bake_seconds)
        if check is not None and not callable(check):
            raise InvalidArgumentTypeError(
                f"check must be an async function taking the Alias, not {type(check).__name__}"
            )
        if not isinstance(dry_run, bool):
            raise InvalidArgumentTypeError(f"dry_run must be a bool, not {type(dry_run).__name__}")
        actor = _layout.validate_note(ACTOR, actor)  # the command line's --actor, --reason
        reason = _layout.validate_note(REASON, reason)

        async def write(
            target: AliasTarget, action: str, if_update_at: datetime, note: str
        ) -> Alias:
            moved = await self._record_change(
                name, alias, target, action, if_update_at=if_update_at, actor=actor, reason=note
            )
            assert moved is not None
            return moved

        wanted = _layout.encode_version(to_version)
        run = RolloutRun(name, alias, wanted, weights, bake, check, reason, write)
        return await run(self._catalog, self._alias, dry_run)

    # -- holds -----------------------------------------------------------------------

    @traced
    async def protect(self, name: str, version: VersionLike, *, reason: str | None = None) -> Hold:
        """Hold a published version: purges and :meth:`delete_artifact_version` leave it
        alone until :meth:`unprotect`. ``reason`` is a note kept with the hold.

        The version must exist and be visible, else ``ArtifactNotFoundError``; the
        check and the write are one transaction. Protecting a held version again
        replaces its hold (new ``created_at`` and ``reason``). `versioned` 1.0 does
        not know holds: its own deletes and purges ignore them.
        """
        _layout.validate_name(name)
        stored = retention.holdable_version(version)
        note = _layout.validate_note("reason", reason)
        record = _codec.HoldItem(
            pk=_layout.holds_pk(name), sk=stored, created_at=_codec.utcnow(), reason=note
        )
        if not await self._catalog.hold(record, name):
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return _codec.item_to_hold(record, name)

    @traced
    async def unprotect(self, name: str, version: VersionLike) -> None:
        """Release the hold on a version; releasing one that is not held changes nothing."""
        _layout.validate_name(name)
        await self._catalog.release_hold(name, retention.holdable_version(version))

    @traced
    async def list_protected(self, name: str) -> list[Hold]:
        """Every hold on ``name``'s versions, lowest version first."""
        _layout.validate_name(name)
        return [_codec.item_to_hold(hold, name) for hold in await self._catalog.holds(name)]
