"""Plain values <-> DynamoDB's low-level AttributeValue form (``{"S": ...}``, ``{"N": ...}``).

The client speaks this form; the rest of the package speaks records and
typed writes. Besides the whole-item conversion, it has the few values the
table's requests are made of: an item's key, and a value read off an item
to be written back untouched into a condition (:class:`ChangeToken`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "AttributeValue",
    "ChangeToken",
    "Item",
    "boolean",
    "change_token",
    "from_attribute_values",
    "key",
    "number",
    "publish_token_of",
    "string",
    "to_attribute_values",
]

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]


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
