"""Which versions a retention purge removes: a pure decision, tested without AWS."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from . import _layout
from ._layout import LATEST, VersionLike
from .exc import InvalidArgumentError, InvalidArgumentTypeError
from .models import Alias, Artifact


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


def holdable_version(version: VersionLike) -> str:
    """Stored form of a version that can be held: a published (numbered) one."""
    stored = _layout.encode_version(version)
    if stored == LATEST:
        raise InvalidArgumentError(
            "LATEST cannot be protected: it is mutable; protect a published version "
            "(publish_artifact_version() makes one)"
        )
    return stored
