"""Records -> the public models, and the alias object of the S3-only layout.

:func:`alias_document` writes the JSON body `versioned` reads for an alias,
:func:`parse_alias_document` reads one back: the only place alias JSON is
made or taken apart.
"""

from __future__ import annotations

import json
from datetime import datetime

import cattrs

from .. import _layout
from ..exc import BackendError, InvalidArgumentError
from ..models import Alias, Artifact, Hold
from .records import (
    AliasDocument,
    AliasItem,
    HoldItem,
    VersionItem,
    converter,
    parse_update_at,
)

__all__ = [
    "alias_document",
    "item_to_alias",
    "item_to_artifact",
    "item_to_hold",
    "parse_alias_document",
]


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
