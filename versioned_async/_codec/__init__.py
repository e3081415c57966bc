"""The wire format: the only place that writes DynamoDB attribute values or alias JSON.

Everything the table and the S3-only alias objects hold goes through here, in
the exact form `versioned` 1.0 writes, so both libraries can work on one
repository:

- :mod:`.records`: the table's items as records (``VersionItem``,
  ``AliasItem``, ``HistoryItem``, ``HoldItem``, ``TableRecord``), the one cattrs converter
  between records and plain dicts, DynamoDB's ``{"S": ...}`` form, the public
  models, and the alias objects of the S3-only layout (their JSON). Every read
  goes through it, and through no other module of the codec;
- :mod:`.writes`: the typed writes of :mod:`versioned_async._table_writes`
  as requests (TransactWriteItems, PutItem, UpdateItem, DeleteItem), and the
  filters of metadata searches.

The rest of the package imports the names below from ``_codec``.
"""

from __future__ import annotations

from .records import (
    UPDATE_AT_FORMAT,
    AliasDocument,
    AliasItem,
    AliasState,
    AttributeValue,
    ChangeToken,
    HistoryItem,
    HoldItem,
    Item,
    Record,
    TableRecord,
    VersionItem,
    alias_document,
    change_token,
    converter,
    format_update_at,
    from_attribute_values,
    item_to_alias,
    item_to_artifact,
    item_to_hold,
    key,
    key_of,
    key_text,
    parse_alias_document,
    parse_update_at,
    publish_token_of,
    string,
    structure_alias_item,
    structure_history_item,
    structure_hold_item,
    structure_table_record,
    structure_version_item,
    to_attribute_values,
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
    "TableRecord",
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
    "key_of",
    "key_text",
    "string",
    "parse_alias_document",
    "parse_update_at",
    "publish_token_of",
    "put_item_args",
    "search_filter",
    "structure_alias_item",
    "structure_history_item",
    "structure_hold_item",
    "structure_table_record",
    "structure_version_item",
    "to_attribute_values",
    "to_item",
    "transact_items",
    "unstructure",
    "update_item_args",
    "utcnow",
]
