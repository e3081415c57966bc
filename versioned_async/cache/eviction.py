"""Eviction, done: the pure plan of :mod:`versioned_async._policy.eviction` applied to the stores.

Planned and done in one transaction on the content store, so processes sharing
the directory evict one at a time, each from the reads the others recorded; the
pins come from the lookups on disk, so every process's aliases count. A removed
file is unlinked: a reader that has it open reads on, one that only knew its
path fetches it again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import TYPE_CHECKING

from .._policy import eviction as _eviction
from .._policy.eviction import EvictionPlan
from .keys import ContentKey, PathHintKey, from_disk, lookups_from_disk

if TYPE_CHECKING:
    from .database import Database  # which imports this module, through .content

__all__ = ["evict"]


def evict(database: Database, size_limit: int, *, keep: str) -> EvictionPlan:
    """Bring the content under ``size_limit``: what aliases point at, and ``keep`` (the
    content just stored), stay. Returns what was done; raises what the stores raise."""
    total = database.content_size()
    if total <= size_limit:
        return EvictionPlan(evict=(), kept_bytes=total, pinned_bytes=0)
    pinned = _eviction.pinned_content(lookups_from_disk(database.stored_rows(pickled_only=True)))
    with database.content.transact():
        with contextlib.closing(_least_recently_used(database)) as walk:
            plan = _eviction.plan_eviction(
                walk, database.content_size(), pinned, size_limit, keep=keep
            )
        for sha in plan.evict:
            database.content.delete(ContentKey(sha).to_disk())
    with database.lookups.transact():  # their path hints would only fail to open
        for sha in plan.evict:
            database.lookups.delete(PathHintKey(sha).to_disk())
    return plan


def _least_recently_used(database: Database) -> Generator[_eviction.StoredContent, None, None]:
    """Stored content, least recently used first, read lazily."""
    with contextlib.closing(database.least_recently_used()) as rows:
        for raw, size in rows:
            key = from_disk(raw)
            if isinstance(key, ContentKey):
                yield _eviction.StoredContent(key.sha256, size)
