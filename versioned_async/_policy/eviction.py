"""Which cached content eviction removes: a pure policy of (stored content, lookups, limit).

Content an alias points at is *pinned*: a service that restarts while AWS is
unreachable resolves its aliases from the stored lookups (stale-if-error) and
then needs exactly that content on disk. So eviction first derives the pinned
sha256s from the lookups the cache holds, then removes unpinned content, least
recently used first, until the content fits ``size_limit``. Pinned content
counts toward the size; when it alone exceeds the limit it is kept anyway.

The pins are derived, not recorded: an alias that moves (its lookup is
rewritten), is deleted (its lookup forgotten) or points at LATEST while LATEST
changes (the version lookup is rewritten) releases its old content with no
extra bookkeeping, in every process that shares the directory.

The lookups come typed (:mod:`versioned_async.cache.keys`): an
:class:`~versioned_async.cache.keys.AliasKey`'s value is the alias item as a
dict, whose ``version`` and ``secondary_version`` are stored-form versions; a
:class:`~versioned_async.cache.keys.VersionKey`'s is ``(sha256, size)``; each
stored as ``(fetched_at, value)``. A value of another shape pins nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import attrs

from ..cache.keys import AliasKey, LookupKey, VersionKey

_ALIAS_TARGETS = ("version", "secondary_version")


@attrs.frozen
class StoredContent:
    """One cached content as the store records it."""

    sha256: str
    size: int


@attrs.frozen
class EvictionPlan:
    """What to remove, and what is left."""

    evict: tuple[str, ...]  # sha256s, least recently used first
    kept_bytes: int
    pinned_bytes: int  # pinned content passed over: all of it when the rest could not fit

    def pinned_exceed(self, size_limit: int) -> bool:
        """Whether pinned content alone is over the limit (a reason to warn)."""
        return self.pinned_bytes > size_limit


def pinned_content(lookups: Iterable[tuple[LookupKey, Any]]) -> frozenset[str]:
    """The sha256s that alias lookups reach through version lookups.

    ``lookups`` yields ``(key, (fetched_at, value))``. A target whose version
    lookup is unknown pins nothing: its content was never fetched here.
    """
    shas: dict[VersionKey, str] = {}
    targets: list[VersionKey] = []
    for key, entry in lookups:
        if not _is_entry(entry):
            continue
        value = entry[1]
        if isinstance(key, VersionKey):
            if isinstance(value, tuple | list) and value and isinstance(value[0], str):
                shas[key] = value[0]
        elif isinstance(key, AliasKey) and isinstance(value, dict):
            targets.extend(
                key.target(value[field])
                for field in _ALIAS_TARGETS
                if isinstance(value.get(field), str)
            )
    return frozenset(shas[t] for t in targets if t in shas)


def _is_entry(entry: Any) -> bool:
    return isinstance(entry, tuple | list) and len(entry) == 2


def plan_eviction(
    least_recently_used: Iterable[StoredContent],
    total: int,
    pinned: Collection[str],
    size_limit: int,
    *,
    keep: str | None = None,
) -> EvictionPlan:
    """Remove unpinned content, least recently used first, until ``total`` bytes fit.

    ``least_recently_used`` is the stored content in that order; it is read
    only as far as needed, so a cache that is just over its limit costs a
    few rows, not all of them. ``keep`` (the content just stored) is never
    removed: its reader is about to open it.
    """
    if total <= size_limit:
        return EvictionPlan(evict=(), kept_bytes=total, pinned_bytes=0)
    evict: list[str] = []
    pinned_bytes = 0
    for entry in least_recently_used:
        if entry.sha256 in pinned:
            pinned_bytes += entry.size
        elif entry.sha256 != keep:
            evict.append(entry.sha256)
            total -= entry.size
            if total <= size_limit:
                break
    return EvictionPlan(evict=tuple(evict), kept_bytes=total, pinned_bytes=pinned_bytes)
