"""The wire format: the only place that writes DynamoDB attribute values or alias JSON.

Everything the table and the S3-only alias objects hold goes through here, in
the exact form `versioned` 1.0 writes, so both libraries can work on one
repository:

- :mod:`.records`: the table's items as records (``VersionItem``,
  ``AliasItem``, ``HistoryItem``, ``HoldItem``) and the one cattrs converter
  between records and plain dicts;
- :mod:`.attribute_values`: plain dicts <-> DynamoDB's ``{"S": ...}`` form,
  keys, and the ``update_at`` a condition compares as stored;
- :mod:`.writes`: the typed writes of :mod:`versioned_async._table_writes`
  as requests (TransactWriteItems, PutItem, UpdateItem, DeleteItem), and the
  filters of metadata searches;
- :mod:`.models`: records as the public models, and the alias object of the
  S3-only layout (its JSON).

The rest of the package imports the names below from ``_codec``.
"""

from __future__ import annotations

from .attribute_values import (
    AttributeValue,
    ChangeToken,
    Item,
    change_token,
    from_attribute_values,
    key,
    publish_token_of,
    to_attribute_values,
)
from .models import (
    alias_document,
    item_to_alias,
    item_to_artifact,
    item_to_hold,
    parse_alias_document,
)
from .records import (
    UPDATE_AT_FORMAT,
    AliasDocument,
    AliasItem,
    AliasState,
    HistoryItem,
    HoldItem,
    Record,
    VersionItem,
    converter,
    format_update_at,
    parse_update_at,
    structure_alias_item,
    structure_history_item,
    structure_hold_item,
    structure_version_item,
    to_item,
    unstructure,
    utcnow,
)
from .writes import (
    VISIBLE,
    delete_item_args,
    put_item_args,
    search_filter,
    transact_items,
    update_item_args,
)

__all__ = [
    "UPDATE_AT_FORMAT",
    "VISIBLE",
    "AliasDocument",
    "AliasItem",
    "AliasState",
    "AttributeValue",
    "ChangeToken",
    "HistoryItem",
    "HoldItem",
    "Item",
    "Record",
    "VersionItem",
    "alias_document",
    "change_token",
    "converter",
    "delete_item_args",
    "format_update_at",
    "from_attribute_values",
    "item_to_alias",
    "item_to_artifact",
    "item_to_hold",
    "key",
    "parse_alias_document",
    "parse_update_at",
    "publish_token_of",
    "put_item_args",
    "search_filter",
    "structure_alias_item",
    "structure_history_item",
    "structure_hold_item",
    "structure_version_item",
    "to_attribute_values",
    "to_item",
    "transact_items",
    "unstructure",
    "update_item_args",
    "utcnow",
]
