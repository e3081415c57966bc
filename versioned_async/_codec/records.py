"""DynamoDB items <-> records <-> models, through one cattrs converter.

Records (:class:`VersionItem`, :class:`AliasItem`) mirror the table's items
attribute for attribute, in the layout `versioned` 1.0 writes. The converter
turns them into plain dicts (datetimes in PynamoDB's ``UTCDateTimeAttribute``
text, ``None`` fields omitted) and :func:`to_attribute_values` /
:func:`from_attribute_values` move plain dicts to and from DynamoDB's
low-level ``{"S": ...}`` form; :func:`key` and :class:`ChangeToken` are the
two values requests are made of besides items. The S3-only layout's alias
objects are read and written here too (:func:`alias_document`). The requests
themselves are :mod:`.writes`'.

Every read path goes through this one module (and no other of the codec), so
it stays one: the package re-exports its names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .. import _layout
from ..exc import BackendError, InvalidArgumentError
from ..models import Alias, Artifact, Hold

#: PynamoDB's UTCDateTimeAttribute format; `versioned` 1.0 reads only exactly this.
UPDATE_AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]


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
class TableRecord:
    """Which repository the table serves: ``pk`` = ``__table``, ``sk`` = ``serves``.

    Written once, by ``bootstrap`` (or ``adopt_table``) when there is none, on
    the condition that there is none; ``update_at`` is when, in the format of
    every item's ``update_at``. ``s3_prefix`` is written without leading
    or trailing slashes (it may be empty); ``recorded_by`` says which call wrote
    it. `versioned` 1.0 never reads it (no query of its reaches the partition);
    its ``purge_all``, a Scan that deletes every item, removes it, and the
    table is unrecorded again.
    """

    pk: str
    sk: str
    s3_bucket: str
    s3_prefix: str
    update_at: datetime
    recorded_by: str


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
    conv.register_unstructure_hook(TableRecord, make_dict_unstructure_fn(TableRecord, conv))
    for cls in (VersionItem, AliasItem, AliasState, HistoryItem, AliasDocument, TableRecord):
        conv.register_structure_hook(cls, make_dict_structure_fn(cls, conv))
    conv.register_unstructure_hook(
        HoldItem, make_dict_unstructure_fn(HoldItem, conv, _cattrs_omit_if_default=True)
    )
    conv.register_structure_hook(HoldItem, make_dict_structure_fn(HoldItem, conv))
    return conv


converter = _make_converter()

_T = TypeVar("_T")


Record = VersionItem | AliasItem | HistoryItem | HoldItem | TableRecord


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


def structure_table_record(item: Item) -> TableRecord:
    return _structure(item, TableRecord)


# -- the low-level AttributeValue form -------------------------------------------


def _to_av(value: Any) -> AttributeValue:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    if isinstance(value, Mapping):
        return {"M": {k: _to_av(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [_to_av(v) for v in value]}
    if value is None:
        return {"NULL": True}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def _from_av(av: AttributeValue) -> Any:
    ((kind, value),) = av.items()
    if kind in ("S", "BOOL"):
        return value
    if kind == "N":
        return int(value) if value.lstrip("-").isdigit() else float(value)
    if kind == "M":
        return {k: _from_av(v) for k, v in value.items()}
    if kind == "L":
        return [_from_av(v) for v in value]
    if kind == "NULL":
        return None
    return value  # binary and set types: not used by the layout, passed through


def to_attribute_values(plain: Mapping[str, Any]) -> Item:
    return {k: _to_av(v) for k, v in plain.items()}


def from_attribute_values(item: Mapping[str, AttributeValue]) -> dict[str, Any]:
    return {k: _from_av(v) for k, v in item.items()}


def string(text: str) -> AttributeValue:
    return {"S": text}


def number(value: int) -> AttributeValue:
    return {"N": str(value)}


def boolean(value: bool) -> AttributeValue:
    return {"BOOL": value}


def key(pk: str, sk: str) -> Item:
    """The table's primary key of an item: partition ``pk``, sort key ``sk``."""
    return {"pk": string(pk), "sk": string(sk)}


def key_of(item: Mapping[str, AttributeValue]) -> tuple[str, str]:
    """An item's (or a key's) ``(pk, sk)``."""
    return item["pk"]["S"], item["sk"]["S"]


def key_text(item: Mapping[str, AttributeValue]) -> str:
    """An item's key for messages: ``'pk'/'sk'``, ``None`` for a part it lacks."""
    return f"{item.get('pk', {}).get('S')!r}/{item.get('sk', {}).get('S')!r}"


@attrs.frozen
class ChangeToken:
    """An item's ``update_at`` exactly as stored, to be compared in a condition.

    Both libraries rewrite ``update_at`` on every write, so "unchanged since
    read" is ``update_at = <what was read>``. The stored value itself, not our
    rendering of the time parsed from it: the condition must match whatever
    writer wrote it, to the character.
    """

    value: AttributeValue


def change_token(item: Mapping[str, AttributeValue]) -> ChangeToken:
    """The :class:`ChangeToken` of an item read (one that has an ``update_at``)."""
    return ChangeToken(item["update_at"])


def publish_token_of(item: Mapping[str, AttributeValue]) -> str | None:
    """The ``publish_token`` of a version item read, ``None`` when it has none (or
    not as a string): read off the item without judging the rest of it."""
    token = item.get("publish_token", {}).get("S")
    return token if isinstance(token, str) else None


def to_item(record: Record) -> Item:
    """A record as a DynamoDB item in AttributeValue form."""
    return to_attribute_values(unstructure(record))


# -- records -> models -----------------------------------------------------------


def item_to_artifact(item: VersionItem, layout: _layout.Layout) -> Artifact:
    """The public model of a visible version item."""
    assert item.sha256 is not None, "only visible items"
    assert item.update_at is not None, "only visible items"
    return Artifact(
        name=item.pk,
        version=_layout.decode_version(item.sk),
        update_at=item.update_at,
        sha256=item.sha256,
        s3uri=layout.s3uri(item.pk, item.sk),
        size=item.size,
        content_type=item.content_type,
        metadata=item.metadata or {},
    )


def item_to_alias(item: AliasItem, layout: _layout.Layout) -> Alias:
    name = _layout.name_from_alias_pk(item.pk)
    secondary = item.secondary_version
    return Alias(
        name=name,
        alias=item.sk,
        update_at=item.update_at,
        version=_layout.decode_version(item.version),
        secondary_version=None if secondary is None else _layout.decode_version(secondary),
        secondary_version_weight=None if secondary is None else item.secondary_version_weight,
        version_s3uri=layout.s3uri(name, item.version),
        secondary_version_s3uri=None if secondary is None else layout.s3uri(name, secondary),
    )


def alias_document(item: AliasItem, layout: _layout.Layout) -> bytes:
    """The S3-only alias object's body for an alias record: what `versioned` reads."""
    model = item_to_alias(item, layout)
    document = AliasDocument(
        name=model.name,
        alias=model.alias,
        update_at=item.update_at.isoformat(),
        version=model.version,
        secondary_version=model.secondary_version,
        secondary_version_weight=model.secondary_version_weight,
        version_s3uri=model.version_s3uri,
        secondary_version_s3uri=model.secondary_version_s3uri,
    )
    return json.dumps(converter.unstructure(document)).encode("utf-8")


def parse_alias_document(body: bytes, name: str, alias: str, last_modified: datetime) -> AliasItem:
    """The alias record an S3-only alias object holds.

    The key names the alias (the body's ``name``/``alias`` are not trusted),
    and its time is the body's ``update_at`` when it is one (ours), else
    ``last_modified`` (`versioned` writes ``"unknown"``). Extra keys are
    ignored. Like `versioned`, a weight without a secondary version is read
    but means nothing.
    """
    try:
        document = converter.structure(json.loads(body), AliasDocument)
        version = _layout.encode_version(document.version)
        secondary = document.secondary_version
        secondary = None if secondary is None else _layout.encode_version(secondary)
        weight = document.secondary_version_weight
        if secondary is not None and (weight is None or not 0 <= weight < 100):
            raise ValueError(f"secondary_version_weight must be 0..99, not {weight!r}")
    except (cattrs.BaseValidationError, ValueError, TypeError, InvalidArgumentError) as err:
        raise BackendError(
            f"alias {alias!r} of {name!r} is not a valid alias object: {err}"
        ) from err
    try:
        update_at = parse_update_at(document.update_at)
    except ValueError:  # "unknown": written by `versioned`
        update_at = last_modified
    return AliasItem(
        pk=_layout.alias_pk(name),
        sk=alias,
        update_at=update_at,
        version=version,
        secondary_version=secondary,
        secondary_version_weight=document.secondary_version_weight,
    )


def item_to_hold(item: HoldItem, name: str) -> Hold:
    return Hold(
        name=name,
        version=_layout.decode_version(item.sk),
        created_at=item.created_at,
        reason=item.reason,
    )
