"""Typed table writes (:mod:`versioned_async._table_writes`) -> DynamoDB requests.

Each write becomes one request: its item or key, update expression, condition
and attribute values. :func:`transact_items` spells a list of them as the
``TransactItems`` of a TransactWriteItems; :func:`put_item_args`,
:func:`update_item_args` and :func:`delete_item_args` spell one as the
arguments of the DynamoDB adapter's ``put_item`` / ``update_item`` /
``delete_item``. Metadata searches' filters are here too: they are made of
attribute values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import attrs

from .. import _layout
from .. import _table_writes as w
from .records import (
    ChangeToken,
    Item,
    boolean,
    format_update_at,
    key,
    number,
    string,
    to_attribute_values,
    to_item,
    unstructure,
)

__all__ = [
    "VISIBLE",
    "DeleteItemArgs",
    "PutItemArgs",
    "UpdateItemArgs",
    "delete_item_args",
    "put_item_args",
    "search_filter",
    "transact_items",
    "update_item_args",
]

#: the condition that a version item is readable: complete and not deleted
VISIBLE = "attribute_exists(sha256) AND is_deleted = :false"

_ABSENT = "attribute_not_exists(pk)"


@attrs.frozen
class _Request:
    """One write as DynamoDB takes it; ``item`` for a Put, else ``pk``/``sk``."""

    action: str  # "Put", "Update", "Delete" or "ConditionCheck"
    item: Item | None = None
    pk: str = ""
    sk: str = ""
    update: str | None = None
    condition: str | None = None
    values: Item = attrs.field(factory=dict)
    names: dict[str, str] = attrs.field(factory=dict)


def _put(item: Item, condition: str | None = None, values: Item | None = None) -> _Request:
    return _Request("Put", item=item, condition=condition, values=values or {})


def _update(
    pk: str, sk: str, update: str, condition: str, values: Item, names: dict[str, str] | None = None
) -> _Request:
    return _Request(
        "Update", pk=pk, sk=sk, update=update, condition=condition, values=values, names=names or {}
    )


def _delete(pk: str, sk: str, condition: str, values: Item | None = None) -> _Request:
    return _Request("Delete", pk=pk, sk=sk, condition=condition, values=values or {})


def _check(pk: str, sk: str, condition: str, values: Item | None = None) -> _Request:
    return _Request("ConditionCheck", pk=pk, sk=sk, condition=condition, values=values or {})


def _if_unchanged(seen: ChangeToken | None) -> tuple[str, Item]:
    """The condition that an alias is as read: absent (``seen`` ``None``), or with the
    ``update_at`` read."""
    if seen is None:
        return _ABSENT, {}
    return "update_at = :seen", {":seen": seen.value}


def _purge(write: w.PurgeVersion) -> _Request:
    values: Item = {
        ":true": boolean(True),
        ":false": boolean(False),
        ":now": string(format_update_at(write.purged_at)),
    }
    if write.alias_epoch is None:
        unpinned = "attribute_not_exists(alias_epoch)"
    else:
        unpinned = "alias_epoch = :epoch"
        values[":epoch"] = number(write.alias_epoch)
    update = "SET is_deleted = :true, purged_at = :now"
    return _update(write.name, write.stored, update, f"{VISIBLE} AND {unpinned}", values)


def _complete(write: w.CompleteReservation) -> _Request:
    """Every attribute of the version but its key, set by name (``#size``: some are
    reserved words), and the token removed."""
    plain = unstructure(write.record)
    plain.pop("pk")
    plain.pop("sk")
    values = to_attribute_values({f":{k}": v for k, v in plain.items()})
    values[":token"] = string(write.token)
    update = f"SET {', '.join(f'#{k} = :{k}' for k in plain)} REMOVE publish_token"
    names = {f"#{k}": k for k in plain}
    record = write.record
    return _update(record.pk, record.sk, update, "publish_token = :token", values, names)


def _take_over(write: w.TakeOverReservation) -> _Request:
    reservation = write.reservation
    assert reservation.publish_token is not None, "only reservations"
    values: Item = {
        ":theirs": string(reservation.publish_token),
        ":mine": string(write.token),
        ":now": string(format_update_at(write.now)),
    }
    condition = "publish_token = :theirs AND attribute_not_exists(sha256)"
    if reservation.update_at is not None:
        condition += " AND update_at = :seen"
        values[":seen"] = string(format_update_at(reservation.update_at))
    update = "SET publish_token = :mine, update_at = :now"
    return _update(reservation.pk, reservation.sk, update, condition, values)


def _request(write: w.TableWrite) -> _Request:
    """The request of one write (one case per kind)."""
    match write:
        case w.RecordLatest(record, object_modified):
            newer = string(format_update_at(object_modified))
            condition = "attribute_not_exists(update_at) OR update_at <= :u"
            return _put(to_item(record), condition, {":u": newer})
        case w.ReserveNumber(reservation):
            return _put(to_item(reservation), _ABSENT)
        case w.CompleteReservation():
            return _complete(write)
        case w.TakeOverReservation():
            return _take_over(write)
        case w.ReleaseReservation(name, stored, token):
            return _delete(name, stored, "publish_token = :t", {":t": string(token)})
        case w.SoftDeleteVersion(name, stored):
            deleted = {":true": boolean(True)}
            return _update(name, stored, "SET is_deleted = :true", "attribute_exists(pk)", deleted)
        case w.PurgeVersion():
            return _purge(write)
        case w.RestorePurgedVersion(name, stored, sha256):
            update = "SET is_deleted = :false REMOVE purged_at"
            condition = "is_deleted = :true AND sha256 = :sha"
            values = {":true": boolean(True), ":false": boolean(False), ":sha": string(sha256)}
            return _update(name, stored, update, condition, values)
        case w.PinVersion(name, stored):
            values = {":false": boolean(False), ":one": number(1)}
            return _update(name, stored, "ADD alias_epoch :one", VISIBLE, values)
        case w.RequireVisible(name, stored):
            return _check(name, stored, VISIBLE, {":false": boolean(False)})
        case w.PutHold(record):
            return _put(to_item(record))
        case w.RequireNotHeld(name, stored):
            return _check(_layout.holds_pk(name), stored, _ABSENT)
        case w.PutAliasIfUnchanged(record, seen):
            return _put(to_item(record), *_if_unchanged(seen))
        case w.DeleteAliasIfUnchanged(name, alias, seen):
            return _delete(_layout.alias_pk(name), alias, *_if_unchanged(seen))
        case w.RequireAliasUnchanged(name, alias, seen):
            return _check(_layout.alias_pk(name), alias, "update_at = :u", {":u": seen.value})
        case w.AppendHistory(record):
            return _put(to_item(record), _ABSENT)
        case w.ClaimTable(record):
            return _put(to_item(record), _ABSENT)
    raise TypeError(f"not a table write: {write!r}")


def _transact_item(request: _Request) -> dict[str, Any]:
    body: dict[str, Any] = (
        {"Item": request.item} if request.item is not None else {"Key": key(request.pk, request.sk)}
    )
    if request.update is not None:
        body["UpdateExpression"] = request.update
    if request.condition is not None:
        body["ConditionExpression"] = request.condition
    if request.names:
        body["ExpressionAttributeNames"] = dict(request.names)
    if request.values:
        body["ExpressionAttributeValues"] = request.values
    return {request.action: body}


def transact_items(writes: Sequence[w.TableWrite]) -> list[dict[str, Any]]:
    """The ``TransactItems`` of a TransactWriteItems making ``writes``, in their order
    (the cancellation reasons come back in the same order)."""
    return [_transact_item(_request(write)) for write in writes]


class PutItemArgs(TypedDict):
    item: Item
    condition: str | None
    values: Item | None


class UpdateItemArgs(TypedDict):
    pk: str
    sk: str
    update: str
    condition: str | None
    values: Item | None
    names: Mapping[str, str] | None


class DeleteItemArgs(TypedDict):
    pk: str
    sk: str
    condition: str | None
    values: Item | None


def put_item_args(write: w.RecordLatest | w.ReserveNumber | w.ClaimTable) -> PutItemArgs:
    """The arguments of ``put_item`` making ``write`` alone."""
    request = _request(write)
    assert request.item is not None
    return {"item": request.item, "condition": request.condition, "values": request.values or None}


def update_item_args(
    write: w.CompleteReservation
    | w.TakeOverReservation
    | w.SoftDeleteVersion
    | w.RestorePurgedVersion,
) -> UpdateItemArgs:
    """The arguments of ``update_item`` making ``write`` alone."""
    request = _request(write)
    assert request.update is not None
    return {
        "pk": request.pk,
        "sk": request.sk,
        "update": request.update,
        "condition": request.condition,
        "values": request.values or None,
        "names": request.names or None,
    }


def delete_item_args(write: w.ReleaseReservation) -> DeleteItemArgs:
    """The arguments of ``delete_item`` making ``write`` alone."""
    request = _request(write)
    return {
        "pk": request.pk,
        "sk": request.sk,
        "condition": request.condition,
        "values": request.values or None,
    }


# -- reads ------------------------------------------------------------------------


def search_filter(
    wanted: Mapping[str, str], *, across_names: bool, include_latest: bool
) -> tuple[str, Item, dict[str, str]]:
    """FilterExpression, values and names of a metadata search.

    It passes visible version items whose ``metadata`` map holds every wanted
    entry, and those with no ``metadata`` attribute at all (written by
    `versioned`), whose S3 object is then checked instead. Every key goes
    through a ``#name``: metadata keys may hold ``-`` or ``.`` or be reserved
    words. Across names (a Scan) it also skips other item kinds (``__``
    partitions) and, without ``include_latest``, LATEST; a Query does that
    with its key condition instead (a Query filter may not use keys).
    """
    parts = ["attribute_exists(sha256)", "attribute_exists(update_at)", "is_deleted = :false"]
    values: Item = {":false": boolean(False)}
    names: dict[str, str] = {}
    if across_names:
        parts.insert(0, "NOT begins_with(pk, :dunder)")
        values[":dunder"] = string("__")
        if not include_latest:
            parts.append("sk <> :latest")
            values[":latest"] = string(_layout.LATEST)
    if wanted:
        names["#meta"] = "metadata"
        tests = []
        for n, (meta_key, value) in enumerate(sorted(wanted.items())):
            names[f"#k{n}"] = meta_key
            values[f":v{n}"] = string(value)
            tests.append(f"#meta.#k{n} = :v{n}")
        parts.append(f"(({' AND '.join(tests)}) OR attribute_not_exists(#meta))")
    return " AND ".join(parts), values, names
