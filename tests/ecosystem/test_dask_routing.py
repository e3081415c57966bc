"""Batch routing on Dask (versioned_async.dask): a split alias read from the moto server,
shipped as a snapshot to worker processes of a dask.distributed LocalCluster, routes
1.5 million keys exactly as ``Alias.choose_versions`` does in one process.

pandas, dask and distributed are imported inside the tests and fixtures, so that
collecting this module stays cheap.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from versioned_async import Alias, ArtifactRepository, exc

KEYS = 1_000_000
PARTITIONS = 8
WEIGHT = 30


def user_keys(start: int, stop: int) -> Any:
    """One partition of keys, built where it runs (a worker), not sent from the test."""
    import pandas as pd  # noqa: PLC0415

    return pd.DataFrame(
        {"user_id": [f"user-{n}" for n in range(start, stop)]}, index=range(start, stop)
    )


@pytest.fixture(scope="module")
def cluster_client() -> Iterator[Any]:
    """Two worker processes of one thread each: everything they route arrives pickled.
    One cluster for the module (its start costs seconds); closed after it."""
    from distributed import Client, LocalCluster  # noqa: PLC0415

    with (
        LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=":0",  # any free port: never a clash
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def split_alias(weight: int = WEIGHT) -> Alias:
    return Alias(
        name="ranker",
        alias="prod",
        update_at=datetime(2026, 12, 5, tzinfo=timezone.utc),
        version="1",
        secondary_version="2",
        secondary_version_weight=weight,
        version_s3uri="s3://bucket/ranker/1",
        secondary_version_s3uri="s3://bucket/ranker/2",
    )


async def test_worker_processes_route_every_key_as_one_process_does(
    repo: ArtifactRepository, cluster_client: Any
) -> None:
    import dask.dataframe as dd  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    from versioned_async.dask import route_partitions  # noqa: PLC0415

    for content in (b"ranker v1", b"ranker v2"):
        await repo.put_artifact("ranker", content)
        await repo.publish_artifact_version("ranker")
    await repo.put_alias("ranker", "prod", 1, secondary_version=2, secondary_version_weight=WEIGHT)
    alias = await repo.get_alias("ranker", "prod")  # bound to repo: ships as a snapshot

    step = KEYS // PARTITIONS
    starts = range(0, KEYS, step)
    frame = dd.from_map(user_keys, starts, [start + step for start in starts])
    # only the versions come back: the keys are built and routed on the workers
    versions = route_partitions(frame, alias, key="user_id", column="version")["version"]
    routed = versions.compute()

    assert set(cluster_client.run(os.getpid).values()).isdisjoint({os.getpid()})
    expected = np.array(alias.choose_versions([f"user-{n}" for n in range(KEYS)]), dtype=object)
    got = routed.to_numpy(dtype=object)
    assert routed.index.equals(pd.RangeIndex(KEYS))  # every row, in order, none lost
    assert np.array_equal(got, expected)
    assert digest(got) == digest(expected)
    canary = int((got == "2").sum())
    assert abs(canary / KEYS - WEIGHT / 100) < 0.003  # ~6.5 standard deviations
    assert int((got == "1").sum()) == KEYS - canary


def digest(versions: Any) -> str:
    """One hash of the whole assignment (what a job would log to compare runs)."""
    return hashlib.sha256("\n".join(versions.tolist()).encode()).hexdigest()


def test_the_alias_is_one_node_of_the_graph_not_a_copy_in_every_task() -> None:
    import dask.dataframe as dd  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    from versioned_async.dask import route_partitions  # noqa: PLC0415

    alias = split_alias()
    frame = dd.from_pandas(pd.DataFrame({"user_id": [f"u{n}" for n in range(80)]}), npartitions=8)
    graph = dict(route_partitions(frame, alias).__dask_graph__())
    marker = alias.secondary_version_s3uri.encode()  # type: ignore[union-attr]
    holding = [key for key, task in graph.items() if marker in pickle.dumps(task)]
    assert len(holding) == 1, f"the alias is in {len(holding)} of {len(graph)} tasks"
    routing_tasks = [key for key in graph if str(key).startswith("('route_partition")]
    assert len(routing_tasks) == 8
    assert holding[0] not in routing_tasks


def test_a_partition_gets_the_version_of_each_row_s_key() -> None:
    import pandas as pd  # noqa: PLC0415

    from versioned_async.dask import route_partition  # noqa: PLC0415

    alias = split_alias()
    keys: list[str | bytes] = [f"user-{n}" for n in range(2_000)] + [b"raw", "caf\u00e9"]
    part = pd.DataFrame({"user_id": keys, "score": range(len(keys))}, index=range(10, 2012))
    routed = route_partition(part, alias)
    assert routed["version"].tolist() == alias.choose_versions(keys)
    assert list(routed.columns) == ["user_id", "score", "version"]
    assert routed.index.equals(part.index)
    assert "version" not in part.columns  # a copy: the input is left as it was
    by_other = route_partition(part.rename(columns={"user_id": "tenant"}), alias, "tenant", "arm")
    assert by_other["arm"].tolist() == routed["version"].tolist()


def test_a_missing_or_non_text_key_is_refused_naming_its_row() -> None:
    import pandas as pd  # noqa: PLC0415

    from versioned_async.dask import route_partition  # noqa: PLC0415

    alias = split_alias()
    missing = pd.DataFrame({"user_id": ["a", None, "c"]}, index=[7, 8, 9], dtype=object)
    advice = r"dropna\(subset=\['user_id'\]\)"
    with pytest.raises(exc.InvalidArgumentTypeError, match=rf"row 8: .*None.*{advice}"):
        route_partition(missing, alias)
    numbers = pd.DataFrame({"user_id": ["a", "b", 3]}, index=[7, 8, 9], dtype=object)
    with pytest.raises(exc.InvalidArgumentTypeError, match=r"row 9: .*astype\(str\)"):
        route_partition(numbers, alias)


def test_what_the_schema_shows_is_refused_before_any_work_is_sent() -> None:
    import dask.dataframe as dd  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    from versioned_async.dask import route_partitions  # noqa: PLC0415

    alias = split_alias()
    frame = dd.from_pandas(pd.DataFrame({"user_id": [1, 2], "version": ["a", "b"]}), npartitions=1)
    with pytest.raises(exc.InvalidArgumentError, match=r"no column 'tenant' .*'user_id'"):
        route_partitions(frame, alias, key="tenant", column="arm")
    with pytest.raises(exc.InvalidArgumentError, match="already has a column 'version'"):
        route_partitions(frame, alias, key="user_id")
    with pytest.raises(exc.InvalidArgumentTypeError, match=r"int64.*astype\(str\)"):
        route_partitions(frame, alias, key="user_id", column="arm")
    with pytest.raises(exc.InvalidArgumentTypeError, match="alias must be an Alias"):
        route_partitions(frame, "prod", key="user_id", column="arm")  # type: ignore[arg-type]


def test_a_bad_key_after_bytes_like_keys_is_the_one_named() -> None:
    import pandas as pd  # noqa: PLC0415

    from versioned_async.dask import route_partition  # noqa: PLC0415

    keys = ["a", bytearray(b"b"), memoryview(b"c"), 4.5]
    part = pd.DataFrame({"user_id": keys}, index=["w", "x", "y", "z"], dtype=object)
    with pytest.raises(exc.InvalidArgumentTypeError, match=r"row 'z': .*4\.5 \(float\)"):
        route_partition(part, split_alias())
