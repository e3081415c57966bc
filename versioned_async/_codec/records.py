"""The table's items as records, and one cattrs converter between them and plain dicts.

Records (:class:`VersionItem`, :class:`AliasItem`, ...) mirror the table's
items attribute for attribute, in the layout `versioned` 1.0 writes. The
converter turns them into plain dicts (datetimes in PynamoDB's
``UTCDateTimeAttribute`` text, ``None`` fields omitted), and
:mod:`.attribute_values` moves plain dicts to and from DynamoDB's low-level
form.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ..exc import BackendError
from .attribute_values import Item, from_attribute_values, to_attribute_values

__all__ = [
    "AliasDocument",
    "AliasItem",
    "AliasState",
    "HistoryItem",
    "HoldItem",
    "Record",
    "VersionItem",
    "converter",
    "format_update_at",
    "parse_update_at",
    "structure_alias_item",
    "structure_history_item",
    "structure_hold_item",
    "structure_version_item",
    "to_item",
    "unstructure",
    "utcnow",
]

#: PynamoDB's UTCDateTimeAttribute format; `versioned` 1.0 reads only exactly this.
UPDATE_AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"


@attrs.frozen
class VersionItem:
    """An artifact version item: ``pk`` = name, ``sk`` = stored version.

    ``sha256``/``update_at`` are ``None`` on the stubs `versioned` 1.0 leaves
    when deleting a missing version, and on an unfinished publish reservation.
    ``size``, ``content_type``, ``metadata`` and ``publish_token`` are extra
    attributes: `versioned` ignores them and may drop them. So are the two a
    purge relies on: ``alias_epoch``, counted up by every alias write of ours
    that points at the version (in the alias's transaction, on the condition
    that the version is visible), so that a purge's delete, conditional on the
    count it read, never lands under an alias created meanwhile; and
    ``purged_at``, set by a purge's delete, so that a later purge knows which
    deletes were its own to undo when an alias points at them.
    """

    pk: str
    sk: str
    is_deleted: bool = False
    sha256: str | None = None
    update_at: datetime | None = None
    size: int | None = None
    content_type: str | None = None
    metadata: dict[str, str] | None = None
    publish_token: str | None = None
    alias_epoch: int | None = None
    purged_at: datetime | None = None

    @property
    def is_visible(self) -> bool:
        """Readable: not deleted and complete (stubs and reservations are not)."""
        return not self.is_deleted and self.sha256 is not None and self.update_at is not None


@attrs.frozen
class AliasItem:
    """An alias item: ``pk`` = ``__{name}-alias``, ``sk`` = alias; versions stored-form."""

    pk: str
    sk: str
    update_at: datetime
    version: str
    secondary_version: str | None = None
    secondary_version_weight: int | None = None


@attrs.frozen
class AliasState:
    """Where an alias pointed, as kept in a history record (versions stored-form)."""

    update_at: datetime
    version: str
    secondary_version: str | None = None
    secondary_version_weight: int | None = None


@attrs.frozen
class HistoryItem:
    """One alias change: ``pk`` = ``__{name}-alias-history``,
    ``sk`` = ``{alias}#{seq:012d}#{nonce}`` (text that sorts in the order made).

    ``seq`` numbers the alias's changes 1, 2, 3 ... in the order they were
    made (each change's transaction is conditional on the alias as read, so
    two changes never take one number); ``changed_at`` is the clock of the
    machine that made it, which may disagree with others'. ``before``/``after``
    are ``None`` when the alias did not exist before / was deleted. Written
    once, in the transaction that makes the change.
    """

    pk: str
    sk: str
    alias: str
    changed_at: datetime
    action: str
    seq: int
    before: AliasState | None = None
    after: AliasState | None = None
    actor: str | None = None
    reason: str | None = None


@attrs.frozen
class HoldItem:
    """A retention hold: ``pk`` = ``__{name}-holds``, ``sk`` = stored version."""

    pk: str
    sk: str
    created_at: datetime
    reason: str | None = None


@attrs.frozen
class AliasDocument:
    """An alias object of the S3-only layout: `versioned`'s 8 keys, in its order.

    `versioned` builds its Alias from exactly these keys (an extra or missing
    one is a ``TypeError`` there), with versions in public form and the
    ``secondary_*`` keys ``null`` when there is no split. It writes
    ``update_at`` as ``"unknown"`` and reads the time off LastModified; we write
    the real time, to the microsecond, so compare-and-set tokens tell apart
    changes within one second.
    """

    name: str
    alias: str
    update_at: str
    version: str
    secondary_version: str | None
    secondary_version_weight: int | None
    version_s3uri: str
    secondary_version_s3uri: str | None


def utcnow() -> datetime:
    """Now, aware UTC: the time every item written is stamped with."""
    return datetime.now(timezone.utc)


def format_update_at(value: datetime) -> str:
    """``2026-11-24T22:20:19.929848+0000``: UTC, microseconds, always 31 characters."""
    return value.astimezone(timezone.utc).strftime(UPDATE_AT_FORMAT)


def parse_update_at(text: str) -> datetime:
    """Parse PynamoDB's format (and, leniently, any ISO 8601 text) into aware UTC."""
    try:
        if len(text) == 31 and text[-5] in "+-":  # the usual form: fast path, no strptime
            parsed = datetime.fromisoformat(f"{text[:-2]}:{text[-2:]}")
        else:
            parsed = datetime.strptime(text, UPDATE_AT_FORMAT)
    except ValueError:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _strict(kind: type[Any]) -> Any:
    def structure(value: Any, _: Any) -> Any:
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
        return value

    return structure


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    # strict scalars: a foreign item with {"S": "false"} for a BOOL must not pass as True
    for scalar in (str, bool, int):
        conv.register_structure_hook(scalar, _strict(scalar))
    conv.register_unstructure_hook(datetime, format_update_at)
    conv.register_structure_hook(
        datetime, lambda v, _: v if isinstance(v, datetime) else parse_update_at(v)
    )
    # `versioned` always writes is_deleted: never omit it, even when False
    conv.register_unstructure_hook(
        VersionItem,
        make_dict_unstructure_fn(
            VersionItem,
            conv,
            _cattrs_omit_if_default=True,
            is_deleted=override(omit_if_default=False),
        ),
    )
    conv.register_unstructure_hook(
        AliasItem, make_dict_unstructure_fn(AliasItem, conv, _cattrs_omit_if_default=True)
    )
    for nested in (AliasState, HistoryItem):
        conv.register_unstructure_hook(
            nested, make_dict_unstructure_fn(nested, conv, _cattrs_omit_if_default=True)
        )
    for cls in (VersionItem, AliasItem, AliasState, HistoryItem, AliasDocument):
        conv.register_structure_hook(cls, make_dict_structure_fn(cls, conv))
    conv.register_unstructure_hook(
        HoldItem, make_dict_unstructure_fn(HoldItem, conv, _cattrs_omit_if_default=True)
    )
    conv.register_structure_hook(HoldItem, make_dict_structure_fn(HoldItem, conv))
    return conv


converter = _make_converter()

_T = TypeVar("_T")


Record = VersionItem | AliasItem | HistoryItem | HoldItem


def unstructure(record: Record) -> dict[str, Any]:
    """A record as a plain dict, ``None`` fields left out."""
    out: dict[str, Any] = converter.unstructure(record)
    return out


def _structure(item: Item, cls: type[_T]) -> _T:
    try:
        return converter.structure(from_attribute_values(item), cls)
    except (cattrs.BaseValidationError, ValueError, TypeError) as err:
        detail = "; ".join(
            cattrs.transform_error(err)
            if isinstance(err, cattrs.BaseValidationError)
            else [str(err)]
        )
        raise BackendError(f"table item {item!r} is not a valid {cls.__name__}: {detail}") from err


def structure_version_item(item: Item) -> VersionItem:
    return _structure(item, VersionItem)


def structure_alias_item(item: Item) -> AliasItem:
    return _structure(item, AliasItem)


def structure_history_item(item: Item) -> HistoryItem:
    return _structure(item, HistoryItem)


def structure_hold_item(item: Item) -> HoldItem:
    return _structure(item, HoldItem)


def to_item(record: Record) -> Item:
    """A record as a DynamoDB item in AttributeValue form."""
    return to_attribute_values(unstructure(record))
