"""Reading an alias's history in a :class:`~.protocol.HistoryCatalog`: a page of it, the
alias as it was at a time, and the state a rollback returns to.

The decisions are :mod:`.._policy.history`'s (pure); these functions do the reads
they need, in the order that makes them sound (the alias before its history:
see :func:`.._history.changed_outside`), and return items: the façade
(:class:`~versioned_async.Repository`) builds the models.
"""

from __future__ import annotations

from datetime import datetime

from .. import _codec
from .._codec import AliasItem, HistoryItem
from .._policy import history as _history
from .._policy.alias_change import AliasTarget
from ..exc import AliasNotFoundError, NoHistoryError
from .protocol import HistoryCatalog

__all__ = ["alias_as_of", "history_page", "rollback_plan"]


async def history_page(
    catalog: HistoryCatalog, name: str, alias: str, limit: int, page_token: str | None
) -> tuple[list[tuple[HistoryItem, bool]], str | None]:
    """Up to ``limit`` changes, newest first, below ``page_token``: each record with
    whether it was recorded (the first page may start with a change detected outside
    versioned_async), and the next page's token (``None``: the last page)."""
    current = None
    if page_token is None:  # the alias before its history: see _history.changed_outside
        current = _history.state_of(await catalog.alias_item(name, alias))
    records: list[HistoryItem] = []
    async for record in catalog.history(name, alias, page_size=limit + 1, below=page_token):
        records.append(record)
        if len(records) > limit:
            break
    more = len(records) > limit
    records = records[:limit]
    page = [(record, True) for record in records]
    if page_token is None:
        newest = records[0] if records else None
        if _history.changed_outside(current, newest):
            detected = _history.external_record(name, alias, current, newest, _codec.utcnow())
            page.insert(0, (detected, False))
    return page, records[-1].sk if more and records else None


async def alias_as_of(catalog: HistoryCatalog, name: str, alias: str, as_of: datetime) -> AliasItem:
    """The alias as it was at ``as_of``: ``AliasNotFoundError`` if it did not exist
    then, ``NoHistoryError`` if its history does not reach back that far."""
    # the alias before its history: see _history.changed_outside
    current = await catalog.alias_item(name, alias)
    records: list[HistoryItem] = []
    async for record in catalog.history(name, alias, page_size=25):
        records.append(record)
        if _history.in_effect_at(record, as_of):
            break  # the newest change dated at or before as_of: older ones do not matter
    try:
        state = _history.state_as_of(as_of, _history.state_of(current), records, _codec.utcnow())
    except LookupError:
        raise NoHistoryError(
            f"alias {alias!r} of {name!r} has no history reaching back to "
            f"{as_of.isoformat()}: it was created later, or before history was recorded"
        ) from None
    if state is None:
        raise AliasNotFoundError(name, alias)
    return _history.alias_item(name, alias, state)


async def rollback_plan(
    catalog: HistoryCatalog, name: str, alias: str
) -> tuple[AliasTarget | None, AliasItem | None]:
    """Where a rollback puts the alias (``None``: delete it), and the alias now (the
    change is a compare-and-set on it); ``NoHistoryError`` when nothing recorded is
    left to undo."""
    current, newest = await catalog.read_with_newest(name, alias)
    try:
        state = _history.rollback_target(_history.state_of(current), newest)
    except LookupError:
        raise NoHistoryError(
            f"alias {alias!r} of {name!r} has no recorded change to roll back"
        ) from None
    if state is None:
        return None, current
    return (state.version, state.secondary_version, state.secondary_version_weight), current
