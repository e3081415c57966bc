"""Batch routing on Dask: each row of a frame gets the version its key is served by.

A batch job (scoring, back-filling, evaluating a canary offline) must assign
rows exactly as the service does, or its numbers describe another split. The
assignment is :meth:`Alias.choose_versions <versioned_async.Alias.choose_versions>`,
a pure function of the alias and the key (``versioned-routing/1``, docs/ROUTING.md),
so a worker needs nothing but the alias: no repository, no AWS credentials, no
request. The alias is read once, by the driver, and travels as a snapshot (an
``Alias`` pickles without its repository): :func:`route_partitions` puts it in
the task graph once, as its own key, which every partition's task depends on,
rather than a copy inside each task. Every worker then routes with the same
snapshot, whatever the alias becomes meanwhile.

:func:`route_partition` is the per-partition step on a plain pandas frame, for
other engines that map pandas partitions (``dask.bag``, Spark's
``mapInPandas``, Ray's ``map_batches``) or none. Needs the ``dask`` extra
(``pip install 'versioned_async[dask]'``); importing ``versioned_async`` alone
imports none of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exc import InvalidArgumentError, InvalidArgumentTypeError
from .models import Alias

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd  # type: ignore[import-untyped]  # pandas ships no type hints

__all__ = ["route_partition", "route_partitions"]


def route_partition(
    partition: pd.DataFrame, alias: Alias, key: str = "user_id", column: str = "version"
) -> pd.DataFrame:
    """A copy of the pandas DataFrame ``partition`` with a ``column`` holding, for each
    row, the version of ``alias`` that serves its ``key`` column's value.

    The value of ``alias.choose_versions(partition[key])``, row for row, so
    the same key always gets the same version, in any process. Keys are str or
    bytes: a missing key (``None``, ``NaN``) or one of another type raises
    :class:`~versioned_async.exc.InvalidArgumentTypeError` naming its row.
    """
    _check_alias(alias)
    _check_columns(list(partition.columns), key, column)
    keys = partition[key].tolist()
    try:
        versions = alias.choose_versions(keys)
    except InvalidArgumentTypeError as error:
        raise _bad_key(partition, keys, key, error) from None
    return partition.assign(**{column: versions})


def route_partitions(
    frame: dd.DataFrame, alias: Alias, key: str = "user_id", column: str = "version"
) -> dd.DataFrame:
    """``frame`` (a dask DataFrame) with a ``column`` giving, for each row, the version
    of ``alias`` that serves its ``key``: :func:`route_partition` on every partition.

    Lazy, like any dask operation: ``.compute()``, ``.to_parquet(...)`` etc.
    run it. ``alias`` is a snapshot (``await repo.get_alias(name, alias)``
    on the driver); it enters the graph once, as one key that every partition's
    task depends on, so each worker process receives it once instead of once
    per partition. The result equals routing every key in one process (see
    docs/dask.md). Problems the frame's schema shows (no ``key`` column, keys
    that are numbers, a ``column`` that exists) are refused here, before any
    work is sent.
    """
    import pandas as pd  # noqa: PLC0415
    from dask.delayed import delayed  # noqa: PLC0415  # the optional extra, only when used

    _check_alias(alias)
    meta = frame._meta
    _check_columns(list(meta.columns), key, column)
    dtype = meta[key].dtype
    if not (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
        raise InvalidArgumentTypeError(
            f"column {key!r} holds {dtype}, but routing keys are str or bytes: convert it "
            f"first, e.g. frame.assign({key}=frame[{key!r}].astype(str))"
        )
    shared = delayed(alias, pure=True)  # one graph key, not a copy per task
    result_meta = meta.assign(**{column: pd.Series(dtype=str)})
    routed: dd.DataFrame = frame.map_partitions(  # type: ignore[no-untyped-call]  # dask's own
        route_partition, shared, key=key, column=column, meta=result_meta
    )
    return routed


def _check_alias(alias: object) -> None:
    if not isinstance(alias, Alias):
        hint = " (await it)" if type(alias).__name__ == "coroutine" else ""
        raise InvalidArgumentTypeError(
            f"alias must be an Alias, e.g. await repo.get_alias(name, alias), "
            f"not {type(alias).__name__}{hint}"
        )


def _check_columns(columns: list[Any], key: str, column: str) -> None:
    if key not in columns:
        raise InvalidArgumentError(
            f"no column {key!r} to route by (key={key!r}); the columns are {columns}"
        )
    if column in columns:
        raise InvalidArgumentError(
            f"the frame already has a column {column!r}: pass column= another name "
            "for the versions (nothing is overwritten)"
        )


def _bad_key(
    partition: pd.DataFrame, keys: list[Any], key: str, error: InvalidArgumentTypeError
) -> InvalidArgumentTypeError:
    """``error`` (which names a position in the batch) told in the frame's terms: the row
    of the first key that is not a str or bytes, and what to do about it."""
    import pandas as pd  # noqa: PLC0415

    keys_ok = str | bytes | bytearray | memoryview  # what choose_versions accepts
    position = next((i for i, k in enumerate(keys) if not isinstance(k, keys_ok)), None)
    if position is None:
        return error
    value = keys[position]
    label = partition.index[position]
    label = label.item() if hasattr(label, "item") else label  # numpy's int64(8): 8
    advice = (
        f"drop or fill missing keys first, e.g. frame.dropna(subset=[{key!r}])"
        if pd.api.types.is_scalar(value) and pd.isna(value)
        else f"convert the keys first, e.g. frame[{key!r}].astype(str)"
    )
    return InvalidArgumentTypeError(
        f"row {label!r}: column {key!r} holds {value!r} ({type(value).__name__}), "
        f"not a str or bytes routing key: {advice}"
    )
