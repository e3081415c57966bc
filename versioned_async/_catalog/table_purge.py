"""A purge of the DynamoDB layout: old versions soft-deleted without ever leaving an
alias on a deleted version.

Each delete is one transaction that also checks that the version is not held,
that no alias read for the plan has changed, and that no alias write of ours
has pointed at the version since the plan read it (every such write marks the
version it points at, in its own transaction, and needs it visible). An alias
written meanwhile by `versioned` 1.0, which marks nothing, is caught by reading
the aliases again after the deletes, and a version it points at is restored; if
the purge dies before that, the next purge restores it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from .. import _codec, _layout
from .._gather import bounded_gather, gather_or_cancel
from .._policy import retention
from .._table_writes import RequireAliasUnchanged
from ..models import Artifact
from .protocol import Binding, PurgeRules
from .store import BULK_CONCURRENCY

if TYPE_CHECKING:
    from .table import TableCatalog

__all__ = ["purge_versions"]

log = logging.getLogger("versioned_async")

#: a transaction takes 100 actions: a purge's delete, its hold check, and this many alias checks
_MAX_ALIAS_GUARDS = 97


async def purge_versions(
    catalog: TableCatalog, name: str, rules: PurgeRules, binding: Binding
) -> tuple[datetime, list[Artifact]]:
    """Plan and carry out a purge of ``name`` (see the module): the purge time and the
    versions deleted (all planned ones when ``rules.dry_run``)."""
    versions_table = catalog.versions_table
    # the versions before the aliases: an alias written after this read has marked
    # its version (alias_epoch), which that version's delete then finds changed
    items = [item async for item in versions_table.items(name)]
    aliases, holds = await gather_or_cancel(catalog.alias_tokens(name), catalog.holds(name))
    alias_models = [binding.alias(record) for record, _ in aliases]
    if not rules.dry_run:
        # a purge that died may have left an alias on a version it deleted
        broken = retention.purged_under_alias(items, alias_models)
        await bounded_gather(
            (_restore_version(catalog, name, binding.artifact(i)) for i in broken),
            BULK_CONCURRENCY,
        )
        # numbers reserved by publishers that crashed, and the objects they copied
        now, timeout = _codec.utcnow(), catalog.reservation_timeout_secs
        stale = [i for i in items if retention.is_stale_reservation(i, now, timeout)]
        for reservation in stale:
            await catalog.reclaim_reservation(name, reservation)
    visible = await catalog.complete_from_objects([i for i in items if i.is_visible])
    versions = [binding.artifact(item) for item in visible]
    epochs = {item.sk: item.alias_epoch for item in visible}
    purge_time = _codec.utcnow()
    doomed = retention.plan_purge(
        versions,
        alias_models,
        keep_last_n=rules.keep_last_n,
        purge_older_than_secs=rules.older_than_secs,
        now=purge_time,
        held=[_layout.decode_version(hold.sk) for hold in holds],
    )
    if rules.dry_run or not doomed:
        return purge_time, doomed
    guards = [RequireAliasUnchanged(name, record.sk, token) for record, token in aliases]
    if len(guards) > _MAX_ALIAS_GUARDS:
        # Too many aliases for one transaction: the deletes check the hold only, and
        # the re-read below restores any version an alias (moved or new) points at.
        guards = []
    # One at a time: concurrent transactions that check the same alias items
    # conflict (TransactionConflict), and moto rolls a cancelled transaction back
    # by restoring the whole table, undoing whatever ran beside it.
    deleted = []
    for version in doomed:
        stored = _layout.encode_version(version.version)
        if await versions_table.purge(
            name, stored, version.sha256, epochs.get(stored), purge_time, guards
        ):
            await binding.forget_version(name, stored)
            deleted.append(version)
    if not deleted:
        return purge_time, deleted
    # an alias created (or, unchecked, moved) since the plan was read may point at a
    # version just deleted: bring it back
    after = [binding.alias(record) for record, _ in await catalog.alias_tokens(name)]
    back = retention.restorable(deleted, after)
    await bounded_gather((_restore_version(catalog, name, v) for v in back), BULK_CONCURRENCY)
    restored = {v.version for v in back}
    return purge_time, [v for v in deleted if v.version not in restored]


async def _restore_version(catalog: TableCatalog, name: str, artifact: Artifact) -> None:
    """Undo a purge's soft delete of a version an alias was pointed at meanwhile."""
    log.warning(
        "purge of %r: an alias was pointed at version %s while it was being deleted; restoring it",
        name,
        artifact.version,
    )
    stored = _layout.encode_version(artifact.version)
    await catalog.versions_table.restore(name, stored, artifact.sha256)
