"""Which versions a retention purge removes, and how holds and publish reservations
bear on it: pure decisions, tested without AWS.

The transactions that delete a version (a purge's, or
``delete_artifact_version``'s) are decided here too, with the reading of their
cancellation reasons: one reason per write, in the order of the writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from .. import _layout
from .._codec import VersionItem
from .._layout import LATEST, VersionLike
from .._table_writes import PurgeVersion, RequireAliasUnchanged, RequireNotHeld, SoftDeleteVersion
from ..exc import InvalidArgumentError, InvalidArgumentTypeError
from ..models import Alias, Artifact


def validate_retention(keep_last_n: object, purge_older_than_secs: object) -> tuple[int, float]:
    for what, value in (
        ("keep_last_n", keep_last_n),
        ("purge_older_than_secs", purge_older_than_secs),
    ):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidArgumentTypeError(f"{what} must be a number, not {type(value).__name__}")
        if not value >= 0:  # also refuses NaN
            raise InvalidArgumentError(f"{what} must be >= 0, got {value}")
    if not isinstance(keep_last_n, int):
        raise InvalidArgumentTypeError(
            f"keep_last_n must be an int, not {type(keep_last_n).__name__}"
        )
    assert isinstance(purge_older_than_secs, int | float)
    return keep_last_n, float(purge_older_than_secs)


def pinned_versions(aliases: Iterable[Alias]) -> frozenset[str]:
    """Versions some alias serves (primary or canary): never purged."""
    pinned: set[str] = set()
    for alias in aliases:
        pinned.add(alias.version)
        if alias.secondary_version is not None:
            pinned.add(alias.secondary_version)
    return frozenset(pinned)


def plan_purge(
    versions: Sequence[Artifact],
    aliases: Iterable[Alias],
    *,
    keep_last_n: int,
    purge_older_than_secs: float,
    now: datetime,
    held: Iterable[str] = (),
) -> list[Artifact]:
    """The numbered versions to soft-delete, newest first.

    Kept: LATEST, the newest ``keep_last_n`` numbered versions, every version
    updated less than ``purge_older_than_secs`` before ``now``, every
    version an alias points at, and every ``held`` one (public form). Unlike
    `versioned` 1.0, the count of kept versions does not depend on whether
    LATEST exists, and aliased versions are never purged.
    """
    pinned = pinned_versions(aliases) | frozenset(held)
    numbered = sorted(
        (v for v in versions if v.version != LATEST), key=lambda v: int(v.version), reverse=True
    )
    return [
        v
        for v in numbered[keep_last_n:]
        if (now - v.update_at).total_seconds() > purge_older_than_secs and v.version not in pinned
    ]


def restorable(deleted: Iterable[Artifact], aliases: Iterable[Alias]) -> list[Artifact]:
    """The just-deleted versions that ``aliases`` (read after the deletes) point at.

    An alias created while a purge ran was not among those its deletes
    checked; a version it points at must come back.
    """
    pinned = pinned_versions(aliases)
    return [v for v in deleted if v.version in pinned]


def purged_under_alias(items: Iterable[VersionItem], aliases: Iterable[Alias]) -> list[VersionItem]:
    """Versions a purge deleted that an alias points at: to restore.

    A purge's deletes cannot see an alias that `versioned` 1.0 creates
    meanwhile (its writes leave the version item alone), and a purge that dies
    before its re-read of the aliases leaves that alias on a deleted version;
    the next purge undoes such deletes. Only a purge's own (``purged_at``):
    a version deleted with ``delete_artifact_version`` stays deleted.
    """
    pinned = pinned_versions(aliases)
    return [
        item
        for item in items
        if item.is_deleted
        and item.purged_at is not None
        and item.sha256 is not None
        and item.sk != LATEST
        and _layout.decode_version(item.sk) in pinned
    ]


#: How long a publish may hold the number it reserved before others may take it back
#: (``Repository(reservation_timeout_secs=...)``). A publish holds its number from its
#: reservation to its completion: one server-side copy of LATEST, a HeadObject and an
#: UpdateItem, seconds even for a large artifact. A reservation older than this is
#: taken to be left by a publisher that crashed. Keep it well above the longest copy
#: and the clock skew between machines: a reservation reclaimed from a publisher that
#: is in fact alive makes that publish fail with ConflictError (nothing half-written).
RESERVATION_TIMEOUT_SECS = 3600.0
#: The shortest timeout accepted. Below the time a live publish holds its number (and
#: the clock skew between machines), concurrent publishers would take each other's
#: reservations as stale and reclaim them from one another in a loop.
MIN_RESERVATION_TIMEOUT_SECS = 60.0


def validate_reservation_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentTypeError(
            f"reservation_timeout_secs must be a number, not {type(value).__name__}"
        )
    if not value >= MIN_RESERVATION_TIMEOUT_SECS:  # also refuses NaN
        raise InvalidArgumentError(
            f"reservation_timeout_secs must be >= {MIN_RESERVATION_TIMEOUT_SECS:g} seconds, "
            f"got {value}: a shorter timeout takes live publishes' reservations as left by "
            "crashed ones; keep it above the longest publish and the clock skew between "
            f"machines (default {RESERVATION_TIMEOUT_SECS:g})"
        )
    return float(value)


def is_stale_reservation(item: VersionItem, now: datetime, timeout_secs: float) -> bool:
    """An unfinished publish's reservation placed more than ``timeout_secs`` before
    ``now``: its publisher is taken to have crashed."""
    if item.publish_token is None or item.sha256 is not None:
        return False
    return item.update_at is None or (now - item.update_at).total_seconds() > timeout_secs


def stale_top(
    numbered_desc: Iterable[VersionItem], now: datetime, timeout_secs: float
) -> tuple[int, list[VersionItem]]:
    """The stale reservations above every other numbered item, and that item's number.

    ``numbered_desc`` runs from the highest number down (it may stop after the
    first item that is not a stale reservation). A publish reclaims these and
    numbers from the returned top: a crashed publisher's number is handed out
    again while nothing was published above it, so numbers are not skipped, and
    a new number is still above every version published before.
    """
    run: list[VersionItem] = []
    for item in numbered_desc:
        if not is_stale_reservation(item, now, timeout_secs):
            return int(item.sk), run
        run.append(item)
    return 0, run


def holdable_version(version: VersionLike) -> str:
    """Stored form of a version that can be held: a published (numbered) one."""
    stored = _layout.encode_version(version)
    if stored == LATEST:
        raise InvalidArgumentError(
            "LATEST cannot be protected: it is mutable; protect a published version "
            "(publish_artifact_version() makes one)"
        )
    return stored


#: a transaction's cancellation reason for a write whose condition did not hold
_FAILED = "ConditionalCheckFailed"


def delete_writes(name: str, stored: str) -> list[SoftDeleteVersion | RequireNotHeld]:
    """The soft delete of a numbered version, with the check that it is not held."""
    return [SoftDeleteVersion(name, stored), RequireNotHeld(name, stored)]


def delete_refused_for_hold(reasons: Sequence[str]) -> bool:
    """Whether :func:`delete_writes`' transaction was refused because the version is
    held. A version that does not exist (its own condition failed) is no refusal:
    deleting it changes nothing, as before holds."""
    return reasons[:1] != [_FAILED] and reasons[1:2] == [_FAILED]


def purge_writes(
    name: str,
    stored: str,
    alias_epoch: int | None,
    purged_at: datetime,
    guards: Sequence[RequireAliasUnchanged],
) -> list[PurgeVersion | RequireAliasUnchanged | RequireNotHeld]:
    """A purge's delete of one planned version: the delete (no alias write of ours
    pointed at it since ``alias_epoch`` was read), the aliases read for the plan
    unchanged (``guards``), and no hold."""
    return [
        PurgeVersion(name, stored, alias_epoch, purged_at),
        *guards,
        RequireNotHeld(name, stored),
    ]


def purge_kept(reasons: Sequence[str]) -> bool:
    """Whether :func:`purge_writes`' transaction failed on a check (an alias changed or
    a hold appeared): the version is kept. When only the delete's own condition
    failed, the version is no longer visible: see whether it was deleted as planned."""
    return any(code != "None" for code in reasons[1:])
