"""Which repository a table serves: the decision on the table record, as pure functions.

`versioned` 1.0 keeps nothing in its table that says which bucket and prefix
its items describe, so two repositories on one table (the CLI's default table
name, a copied configuration) mix their versions: one lists the other's, and a
publish records versions whose objects are in another bucket. ``bootstrap``
(or an explicit adoption) therefore records the bucket and prefix the table
serves (:class:`~.._codec.TableRecord`), and a repository compares it with its
own before the table's answers reach anyone: :func:`verdict`.

The prefix is compared as the layout writes keys: without leading or trailing
slashes (``"artifacts/"`` and ``"artifacts"`` are one prefix).
"""

from __future__ import annotations

import enum
from datetime import datetime

from .._codec import TableRecord
from .._layout import TABLE_RECORD_PK, TABLE_RECORD_SK

__all__ = ["Verdict", "new_record", "normal_prefix", "verdict"]


class Verdict(enum.Enum):
    """What a table's record says of a repository."""

    #: the record names this repository's bucket and prefix: the table is its own
    SERVES = "serves"
    #: no record (made by `versioned` 1.0, or before records): works as before, unguarded
    UNRECORDED = "unrecorded"
    #: the record names another bucket or prefix: refuse every read and write
    OTHER = "other"


def normal_prefix(prefix: str) -> str:
    """``prefix`` as keys are written: no leading or trailing ``/``."""
    return prefix.strip("/")


def verdict(record: TableRecord | None, bucket: str, prefix: str) -> Verdict:
    """Whether the table whose record is ``record`` serves the repository in ``bucket``
    under ``prefix``."""
    if record is None:
        return Verdict.UNRECORDED
    if record.s3_bucket == bucket and normal_prefix(record.s3_prefix) == normal_prefix(prefix):
        return Verdict.SERVES
    return Verdict.OTHER


def new_record(bucket: str, prefix: str, now: datetime, by: str) -> TableRecord:
    """The record that makes a table serve the repository in ``bucket`` under ``prefix``;
    ``by`` says what wrote it (``"bootstrap"``, ``"adopt_table"``), ``now`` when."""
    return TableRecord(
        pk=TABLE_RECORD_PK,
        sk=TABLE_RECORD_SK,
        s3_bucket=bucket,
        s3_prefix=normal_prefix(prefix),
        update_at=now,
        recorded_by=by,
    )
