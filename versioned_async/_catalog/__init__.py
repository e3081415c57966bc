"""Catalogs: where a repository layout keeps its versions and aliases.

- :mod:`.protocol`: what every catalog does (:class:`Catalog`, also the read
  path's :class:`~versioned_async.cache.reader.VersionSource`) and what only
  the DynamoDB layout's does (:class:`HistoryCatalog`: alias history, holds);
- :mod:`.store`: the version objects in S3, which both layouts share;
- :mod:`.table` (and :mod:`.table_purge`): the DynamoDB layout, for
  :class:`~versioned_async.Repository`;
- :mod:`.objects`: the S3-only layout, for
  :class:`~versioned_async.S3OnlyRepository`.

The façade (:mod:`.._base`) holds one and reaches S3 and DynamoDB only through
it; a catalog holds its store, table and layout, never the repository.
"""

from .objects import ObjectCatalog
from .protocol import Binding, Catalog, HistoryCatalog, PurgeRules, Upload, Written
from .table import TableCatalog

__all__ = [
    "Binding",
    "Catalog",
    "HistoryCatalog",
    "ObjectCatalog",
    "PurgeRules",
    "TableCatalog",
    "Upload",
    "Written",
]
