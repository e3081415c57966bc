"""The DynamoDB layout's recorded alias changes as the façade hands them out: the
models of history records, and a roll-out run step by step.

:class:`~versioned_async.Repository` checks the arguments and makes each
change (recorded, cache in step); these functions read through its
:class:`~._catalog.HistoryCatalog` and build the models with the repository's
``alias_model`` (bound to it), so that they serve it without being part of it.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from . import _layout
from ._catalog import HistoryCatalog
from ._codec import AliasItem, AliasState, HistoryItem
from ._gather import gather_or_cancel
from ._policy import history as _history
from ._policy import rollout
from .exc import AliasNotFoundError
from .models import Alias, AliasChange, RolloutResult

__all__ = ["RolloutRun", "change_model"]

#: longest actor or reason kept in an alias history record
_MAX_NOTE = _layout.MAX_NOTE_LENGTH


def change_model(
    name: str, record: HistoryItem, recorded: bool, alias_model: Callable[[AliasItem], Alias]
) -> AliasChange:
    """The public model of one history record (``recorded=False``: a change detected
    outside versioned_async)."""

    def model(state: AliasState | None) -> Alias | None:
        return (
            None if state is None else alias_model(_history.alias_item(name, record.alias, state))
        )

    return AliasChange(
        name=name,
        alias=record.alias,
        changed_at=record.changed_at,
        action=record.action,
        before=model(record.before),
        after=model(record.after),
        actor=record.actor,
        reason=record.reason,
        recorded=recorded,
        page_token=record.sk if recorded else None,
    )


@attrs.frozen
class RolloutRun:
    """A roll-out of alias ``alias`` of ``name`` to ``wanted`` (stored form), its
    arguments checked: ``write`` makes one recorded compare-and-set change."""

    name: str
    alias: str
    wanted: str
    weights: tuple[int, ...]
    bake_seconds: float
    check: rollout.Check | None
    reason: str | None
    write: rollout.Write

    async def __call__(
        self, catalog: HistoryCatalog, alias_model: Callable[[AliasItem], Alias], dry_run: bool
    ) -> RolloutResult:
        """Plan from the alias as it is now, then run the plan (``dry_run``: return it)."""
        name, alias, wanted = self.name, self.alias, self.wanted
        item, _ = await gather_or_cancel(
            catalog.alias_item(name, alias), catalog.version_item(name, wanted)
        )
        if item is None:
            raise AliasNotFoundError(name, alias)
        origin = (item.version, item.secondary_version, item.secondary_version_weight)
        plan = rollout.plan(origin, wanted, self.weights, reason=self.reason, limit=_MAX_NOTE)
        start = alias_model(item)
        public = _layout.decode_version(wanted)
        if dry_run:
            planned = [
                alias_model(
                    attrs.evolve(
                        item,
                        version=step.target[0],
                        secondary_version=step.target[1],
                        secondary_version_weight=step.target[2],
                    )
                )
                for step in plan
            ]
            return RolloutResult(name, alias, public, start, planned, None, dry_run=True)
        written = await rollout.run(
            plan,
            start=start,
            start_target=origin,
            write=self.write,
            check=self.check,
            bake_seconds=self.bake_seconds,
            reason=self.reason,
            limit=_MAX_NOTE,
        )
        return RolloutResult(name, alias, public, start, written, written[-1])
