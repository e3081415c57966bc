"""The writes the repository makes to its DynamoDB table, each a typed value named for
what it means.

A write says *what* (reserve a version number, put an alias if it is unchanged,
append a history record ...) and carries the records and facts it needs;
:mod:`._codec` alone knows how it is spelled on the wire (the item, the key,
the condition and update expressions, their attribute values). The same write
serves in a transaction (``_codec.transact_items``) or alone
(``_codec.put_item_args`` / ``update_item_args`` / ``delete_item_args``), and a
transaction's cancellation reasons come back one per write, in order.

Nothing here does I/O.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from ._codec.records import (
    AliasItem,
    ChangeToken,
    HistoryItem,
    HoldItem,
    TableRecord,
    VersionItem,
)

__all__ = [
    "AppendHistory",
    "ClaimTable",
    "CompleteReservation",
    "DeleteAliasIfUnchanged",
    "PinVersion",
    "PurgeVersion",
    "PutAliasIfUnchanged",
    "PutHold",
    "RecordLatest",
    "ReleaseReservation",
    "RequireAliasUnchanged",
    "RequireNotHeld",
    "RequireVisible",
    "ReserveNumber",
    "RestorePurgedVersion",
    "SoftDeleteVersion",
    "TableWrite",
    "TakeOverReservation",
]


# -- version items ----------------------------------------------------------------


@attrs.frozen
class RecordLatest:
    """Point LATEST's item at the object a put wrote (``record``), unless a newer put
    recorded its own: only while the stored ``update_at`` is at most
    ``object_modified`` (the object's LastModified), or there is none."""

    record: VersionItem
    object_modified: datetime


@attrs.frozen
class ReserveNumber:
    """Claim a version number for a publish: write its hidden reservation item, only
    where no item is."""

    reservation: VersionItem


@attrs.frozen
class CompleteReservation:
    """Turn a publish's reservation into the version ``record`` describes, only while
    the reservation still carries the publisher's ``token`` (then removed)."""

    record: VersionItem
    token: str


@attrs.frozen
class TakeOverReservation:
    """Take a stale ``reservation`` over before reclaiming it: give it the reclaimer's
    ``token`` and ``now``, only while it is still the one read (its token and, when it
    had one, its ``update_at``) and still incomplete."""

    reservation: VersionItem
    token: str
    now: datetime


@attrs.frozen
class ReleaseReservation:
    """Delete the reservation of version ``stored`` of ``name``, only while it carries
    ``token`` (it is still ours)."""

    name: str
    stored: str
    token: str


@attrs.frozen
class SoftDeleteVersion:
    """Mark version ``stored`` of ``name`` deleted, when it exists."""

    name: str
    stored: str


@attrs.frozen
class PurgeVersion:
    """A purge's soft delete of a version: only while it is visible and no alias write
    of ours pointed at it since its ``alias_epoch`` was read (``None``: none ever
    had); stamped ``purged_at`` so a later purge knows the delete was a purge's."""

    name: str
    stored: str
    alias_epoch: int | None
    purged_at: datetime


@attrs.frozen
class RestorePurgedVersion:
    """Undo a purge's soft delete of a version (an alias was pointed at it meanwhile),
    only while it is deleted and still holds the content it held (``sha256``)."""

    name: str
    stored: str
    sha256: str


@attrs.frozen
class PinVersion:
    """In an alias write, for each version the alias points at: the version must be
    visible, and its ``alias_epoch`` goes up by one, which a purge's delete of that
    version checks (see :class:`PurgeVersion`)."""

    name: str
    stored: str


@attrs.frozen
class RequireVisible:
    """A check, in a transaction: version ``stored`` of ``name`` is visible."""

    name: str
    stored: str


# -- holds ------------------------------------------------------------------------


@attrs.frozen
class PutHold:
    """Hold a version (a new hold, or one replacing the hold there was)."""

    record: HoldItem


@attrs.frozen
class RequireNotHeld:
    """A check, in a transaction: version ``stored`` of ``name`` is not held."""

    name: str
    stored: str


# -- aliases and their history ----------------------------------------------------


@attrs.frozen
class PutAliasIfUnchanged:
    """Write the alias ``record``, only while the alias is as read: its ``update_at``
    still ``seen``, or, with ``seen`` ``None``, still absent."""

    record: AliasItem
    seen: ChangeToken | None


@attrs.frozen
class DeleteAliasIfUnchanged:
    """Delete alias ``alias`` of ``name``, only while it is as read (see
    :class:`PutAliasIfUnchanged`)."""

    name: str
    alias: str
    seen: ChangeToken | None


@attrs.frozen
class RequireAliasUnchanged:
    """A check, in a transaction: alias ``alias`` of ``name`` still has the
    ``update_at`` read (``seen``)."""

    name: str
    alias: str
    seen: ChangeToken


@attrs.frozen
class AppendHistory:
    """Add an alias history ``record``: a new item, never one that exists."""

    record: HistoryItem


# -- the table itself ---------------------------------------------------------------


@attrs.frozen
class ClaimTable:
    """Record which repository the table serves (``record``), only where no record is:
    a table that serves one repository is never given to another."""

    record: TableRecord


TableWrite = (
    RecordLatest
    | ReserveNumber
    | CompleteReservation
    | TakeOverReservation
    | ReleaseReservation
    | SoftDeleteVersion
    | PurgeVersion
    | RestorePurgedVersion
    | PinVersion
    | RequireVisible
    | PutHold
    | RequireNotHeld
    | PutAliasIfUnchanged
    | DeleteAliasIfUnchanged
    | RequireAliasUnchanged
    | AppendHistory
    | ClaimTable
)
