"""The versions of the DynamoDB layout as the table holds them: version items, the
number reservations of publishes, and holds.

:class:`VersionTable` is held by the DynamoDB layout's catalog
(:class:`~._catalog.table.TableCatalog`) and makes the table's writes for puts,
publishes, deletes, purges and holds, each a typed write (:mod:`._table_writes`)
or a transaction of them, with the retries and the re-reads that tell a write
whose answer was lost from one refused. The
decisions are :mod:`._policy.retention`'s, the wire format :mod:`._codec`'s. It knows
nothing of S3, the local cache or the models: the catalog orchestrates.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from .. import _codec, _layout
from .._aws.dynamodb import Table
from .._codec import HoldItem, VersionItem
from .._layout import LATEST
from .._policy import retention
from .._table_writes import (
    CompleteReservation,
    PutHold,
    RecordLatest,
    ReleaseReservation,
    RequireAliasUnchanged,
    RequireVisible,
    ReserveNumber,
    RestorePurgedVersion,
    SoftDeleteVersion,
    TakeOverReservation,
)
from ..exc import ConflictError, InvalidArgumentError, VersionProtectedError

__all__ = ["VersionTable"]

log = logging.getLogger("versioned_async")

#: how many numbers a publisher tries past the top one before giving up
_PUBLISH_ATTEMPTS = 1000


class VersionTable:
    """Version items, publish reservations and holds in one DynamoDB table (see the
    module)."""

    def __init__(self, table: Callable[[], Table]) -> None:
        #: the repository's DynamoDB adapter, while it is open
        self._open_table = table
        # name -> {version: token}: reservations a failed publish may have left behind
        self._unreleased: dict[str, dict[str, str]] = {}

    @property
    def _table(self) -> Table:
        return self._open_table()

    # -- reads ------------------------------------------------------------------------

    async def item(self, name: str, stored: str) -> VersionItem | None:
        """Version ``stored`` of ``name`` as stored now (a consistent read), whatever its
        state; ``None``: no item."""
        raw = await self._table.get_item(name, stored)
        return None if raw is None else _codec.structure_version_item(raw)

    async def items(self, name: str, *, page_size: int | None = None) -> AsyncIterator[VersionItem]:
        """Every version item of ``name``, whatever its state: LATEST, then the highest
        number down."""
        async for raw in self._table.query(name, descending=True, page_size=page_size):
            yield _codec.structure_version_item(raw)

    # -- LATEST -----------------------------------------------------------------------

    async def record_latest(self, record: VersionItem, object_modified: datetime) -> bool:
        """Write LATEST's item ``record``, unless a put of an object newer than
        ``object_modified`` recorded its own: whether it was written."""
        return await self._table.put_item(
            **_codec.put_item_args(RecordLatest(record, object_modified))
        )

    # -- publish reservations ---------------------------------------------------------

    async def reserve(self, name: str, first: int) -> tuple[int, str]:
        """Claim the lowest free number from ``first`` on with a conditional put: the
        number, and the token its reservation carries."""
        token = secrets.token_hex(16)
        for number in range(first, first + _PUBLISH_ATTEMPTS):
            if number > _layout.MAX_VERSION:
                break
            reservation = VersionItem(
                pk=name,
                sk=_layout.encode_version(number),
                is_deleted=True,  # invisible to both libraries until complete
                update_at=_codec.utcnow(),
                publish_token=token,
            )
            stored = reservation.sk
            try:
                placed = await self._table.put_item(
                    **_codec.put_item_args(ReserveNumber(reservation))
                )
            except BaseException:  # the answer was lost: it may have been placed
                self._unreleased.setdefault(name, {})[stored] = token
                raise
            if placed or await self._is_our_reservation(name, stored, token):
                return number, token
        if first + _PUBLISH_ATTEMPTS <= _layout.MAX_VERSION:
            raise ConflictError(f"could not claim a version number for {name!r}; retry")
        raise InvalidArgumentError(
            f"{name!r} has used every version number up to {_layout.MAX_VERSION}"
        )

    async def _is_our_reservation(self, name: str, stored: str, token: str) -> bool:
        """Whether a refused reservation was our own, placed by an attempt whose answer
        was lost and which botocore then retried."""
        raw = await self._table.get_item(name, stored)
        return raw is not None and _codec.publish_token_of(raw) == token

    async def complete(self, record: VersionItem, token: str) -> bool:
        """Turn the reservation carrying ``token`` into the version ``record``: whether
        the version is now published, by this call or by an earlier attempt of it."""
        done = await self._table.update_item(
            **_codec.update_item_args(CompleteReservation(record, token))
        )
        return done or await self._is_published(record)

    async def _is_published(self, record: VersionItem) -> bool:
        """Whether a refused completion had in fact landed: an attempt whose answer
        was lost, retried by botocore, finds its own token already removed."""
        item = await self.item(record.pk, record.sk)
        return item is not None and item.is_visible and item.sha256 == record.sha256

    async def release(self, name: str, stored: str, token: str) -> None:
        """Give a failed publish's number back; one that cannot be now is remembered and
        released before this repository's next publish of ``name``."""
        try:
            await asyncio.shield(
                self._table.delete_item(
                    **_codec.delete_item_args(ReleaseReservation(name, stored, token))
                )
            )
        except Exception:  # the publish already failed; report that, not this
            log.warning("could not release the reservation of %r version %s", name, stored)
            self._unreleased.setdefault(name, {})[stored] = token
        else:
            self._unreleased.get(name, {}).pop(stored, None)

    async def release_leftovers(self, name: str) -> None:
        """Release reservations an earlier failed publish could not, so no number is skipped."""
        for stored, token in list(self._unreleased.get(name, {}).items()):
            await self.release(name, stored, token)

    async def take_over(self, reservation: VersionItem) -> str | None:
        """Take a stale reservation over to reclaim it: the new token it carries, ``None``
        when it was completed or reclaimed by someone else meanwhile."""
        assert reservation.publish_token is not None
        mine = secrets.token_hex(16)
        take_over = TakeOverReservation(reservation, mine, _codec.utcnow())
        if not await self._table.update_item(**_codec.update_item_args(take_over)):
            return None
        return mine

    async def drop(self, name: str, stored: str, token: str) -> bool:
        """Delete a reservation taken over (it still carries ``token``): whether it was."""
        return await self._table.delete_item(
            **_codec.delete_item_args(ReleaseReservation(name, stored, token))
        )

    # -- deletes ----------------------------------------------------------------------

    async def soft_delete(self, name: str, stored: str) -> None:
        """Mark a version deleted; a missing one changes nothing, a held one raises
        ``VersionProtectedError`` (the hold check and the delete are one transaction)."""
        if stored == LATEST:  # never held (protect refuses it): no hold to check
            await self._table.update_item(
                **_codec.update_item_args(SoftDeleteVersion(name, stored))
            )
            return
        reasons = await self._table.transact_write(
            f"delete version {_layout.decode_version(stored)} of {name!r}",
            _codec.transact_items(retention.delete_writes(name, stored)),
        )
        if retention.delete_refused_for_hold(reasons):
            raise VersionProtectedError(name, _layout.decode_version(stored))

    async def purge(
        self,
        name: str,
        stored: str,
        sha256: str,
        alias_epoch: int | None,
        purged_at: datetime,
        guards: list[RequireAliasUnchanged],
    ) -> bool:
        """A purge's delete of one planned version (see :func:`._retention.purge_writes`):
        whether it is now deleted."""
        reasons = await self._table.transact_write(
            f"purge version {_layout.decode_version(stored)} of {name!r}",
            _codec.transact_items(
                retention.purge_writes(name, stored, alias_epoch, purged_at, guards)
            ),
        )
        if retention.purge_kept(reasons):
            return False  # an alias changed or a hold appeared: kept
        # Only the version's own condition failed: it is no longer visible. Our own
        # delete, sent again by botocore after its answer was lost, looks like this,
        # as does another purge's: deleted as planned if it still holds that content.
        return not reasons or await self._is_deleted(name, stored, sha256)

    async def _is_deleted(self, name: str, stored: str, sha256: str) -> bool:
        item = await self.item(name, stored)
        return item is not None and item.is_deleted and item.sha256 == sha256

    async def restore(self, name: str, stored: str, sha256: str) -> None:
        """Undo a purge's soft delete of a version that still holds ``sha256``."""
        await self._table.update_item(
            **_codec.update_item_args(RestorePurgedVersion(name, stored, sha256))
        )

    # -- holds ------------------------------------------------------------------------

    async def hold(self, record: HoldItem, name: str) -> bool:
        """Put the hold ``record`` on a version of ``name``, in one transaction with the
        check that the version is visible: whether it was (and is now held)."""
        reasons = await self._table.transact_write(
            f"protect version {_layout.decode_version(record.sk)} of {name!r}",
            _codec.transact_items([RequireVisible(name, record.sk), PutHold(record)]),
        )
        return not reasons

    async def release_hold(self, name: str, stored: str) -> None:
        await self._table.delete_item(_layout.holds_pk(name), stored)

    async def holds(self, name: str) -> list[HoldItem]:
        """Every hold on ``name``'s versions, lowest version first."""
        return [
            _codec.structure_hold_item(raw)
            async for raw in self._table.query(_layout.holds_pk(name))
        ]
