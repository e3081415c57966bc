"""``versioned://``: the fsspec filesystem, as pandas, pyarrow and plain sync code use it.

Against the moto server (the ``endpoint_url`` fixture). The repository is seeded in an
async fixture; most tests then read it through fsspec's synchronous API, which runs
the filesystem on fsspec's own loop thread, as a user's script or notebook does.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import io
import json
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from tests.conftest import BUCKET, REGION, TABLE, RepoFactory
from tests.proxy import CountingProxy
from versioned_async.filesystem import ReadOnlyFileSystemError, VersionedFileSystem

ROOT = Path(__file__).parents[2]

V1, V2, LATEST = b"weights v1", b"weights v2 (canary)", b"weights in progress"


@pytest.fixture(autouse=True)
def _close_filesystems() -> Iterator[None]:
    """fsspec keeps one instance per storage options for the process: close and forget
    this test's, so none outlives the moto data it read."""
    yield
    for fs in list(VersionedFileSystem._cache.values()):
        if not fs.asynchronous:
            fs.close()
    VersionedFileSystem.clear_instance_cache()


@pytest.fixture
def options(endpoint_url: str, backend: str) -> dict[str, Any]:
    """The storage options that name the test's repository, as a user passes them."""
    where: dict[str, Any] = {"bucket": BUCKET, "region": REGION, "endpoint_url": endpoint_url}
    if backend == "s3":
        where["backend"] = "s3"
    else:
        where["table"] = TABLE
    return where


@pytest.fixture
async def seeded(make_repo: RepoFactory) -> None:
    """``model``: versions 1 and 2, LATEST beyond them; ``prod`` serves 1 with 2 as a
    canary at weight 70; ``staging`` serves 2."""
    async with make_repo() as repo:
        await repo.bootstrap()
        await repo.put_artifact("model", V1)
        await repo.publish_artifact_version("model")
        await repo.put_artifact("model", V2)
        await repo.publish_artifact_version("model")
        await repo.put_artifact("model", LATEST)
        await repo.put_alias("model", "prod", 1, secondary_version=2, secondary_version_weight=70)
        await repo.put_alias("model", "staging", 2)


def vector_keys(name: str, alias: str) -> dict[str, int]:
    """Routing keys of the published versioned-routing/1 vectors, with their buckets."""
    vectors = json.loads((ROOT / "docs" / "routing-v1-vectors.json").read_text())["vectors"]
    return {
        v["key"]: v["bucket"]
        for v in vectors
        if "key" in v and v["name"] == name and v["alias"] == alias
    }


# -- finding it, reading it ---------------------------------------------------------


def test_fsspec_finds_the_protocol_through_the_entry_point() -> None:
    assert fsspec.get_filesystem_class("versioned") is VersionedFileSystem


def test_the_default_install_does_not_import_fsspec() -> None:
    code = (
        "import sys, versioned_async, versioned_async.cli; "
        "print(sorted(m for m in ('fsspec', 'pandas', 'pyarrow') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.both_backends
@pytest.mark.usefixtures("seeded")
def test_a_path_reads_latest_a_version_or_an_alias_from_plain_sync_code(
    options: dict[str, Any], tmp_path: Path
) -> None:
    with fsspec.open("versioned://model", **options) as latest:
        assert latest.read() == LATEST
    fs = fsspec.filesystem("versioned", **options)
    assert fs.cat("versioned://model@1") == V1
    assert fs.cat("model@0002") == V2
    assert fs.cat("model@LATEST") == LATEST
    assert fs.cat("model@prod") == V1  # the primary, though the canary takes 70%
    assert fs.cat("model@staging") == V2
    assert fs.cat_file("model@1", start=2, end=5) == V1[2:5]
    assert fs.cat_file("model@1", start=-2) == V1[-2:]
    with fs.open("model@2") as file:
        file.seek(3)
        assert file.read() == V2[3:]
    fs.get("versioned://model@prod", str(tmp_path / "prod.bin"))
    assert (tmp_path / "prod.bin").read_bytes() == V1
    # as Dask hands it to workers: by its storage options, reopened on first use
    assert pickle.loads(pickle.dumps(fs)).cat("model@staging") == V2


@pytest.mark.usefixtures("seeded")
def test_a_routing_key_picks_the_version_the_canary_routing_picks(
    options: dict[str, Any],
) -> None:
    buckets = vector_keys("model", "prod")  # published: user-43 in bucket 66, user-42 in 80
    below = next(key for key, bucket in buckets.items() if bucket < 70)
    above = next(key for key, bucket in buckets.items() if bucket >= 70)
    canary = fsspec.filesystem("versioned", routing_key=below, **options)
    primary = fsspec.filesystem("versioned", routing_key=above, **options)
    assert canary.cat("model@prod") == V2
    assert canary.info("model@prod")["version"] == "2"
    assert primary.cat("model@prod") == V1
    assert canary.cat("model@1") == V1  # a version path is that version, whatever the key
    # or per call, so one filesystem serves every key
    fs = fsspec.filesystem("versioned", **options)
    assert fs.cat("model@prod", routing_key=below) == V2
    assert fs.info("model@prod", routing_key=below)["version"] == "2"
    with fs.open("model@prod", routing_key=below) as file:
        assert file.read() == V2
    assert primary.cat("model@prod", routing_key=below) == V2
    assert fs.cat("model@prod") == V1


@pytest.mark.both_backends
@pytest.mark.usefixtures("seeded")
def test_info_and_ls_give_size_sha256_and_version(options: dict[str, Any]) -> None:
    fs = fsspec.filesystem("versioned", **options)
    info = fs.info("versioned://model@prod")
    assert info["name"] == "model@prod"
    assert info["type"] == "file"
    assert (info["size"], info["sha256"]) == (len(V1), hashlib.sha256(V1).hexdigest())
    assert (info["artifact"], info["version"], info["alias"]) == ("model", "1", "prod")
    assert fs.size("model@2") == len(V2)
    assert fs.ukey("model") == hashlib.sha256(LATEST).hexdigest()
    assert fs.isfile("model@1")
    assert not fs.isdir("model@1")
    assert fs.ls("", detail=False) == ["model"]
    assert [(e["name"], e["version"]) for e in fs.ls("versioned://")] == [("model", "LATEST")]
    versions = fs.ls("model", detail=True)
    assert [v["name"] for v in versions] == ["model", "model@2", "model@1"]
    assert [v["sha256"] for v in versions] == [
        hashlib.sha256(c).hexdigest() for c in (LATEST, V2, V1)
    ]
    assert [v["aliases"] for v in versions] == [[], ["prod", "staging"], ["prod"]]
    assert fs.ls("model@staging", detail=False) == ["model@staging"]
    assert fs.find("model") == ["model", "model@1", "model@2"]


@pytest.mark.usefixtures("seeded")
async def test_an_artifact_name_holding_an_at_sign_is_listed_percent_encoded(
    make_repo: RepoFactory, options: dict[str, Any]
) -> None:
    async with make_repo() as repo:
        await repo.put_artifact("team@model", b"theirs")
    async with VersionedFileSystem(asynchronous=True, skip_instance_cache=True, **options) as fs:
        listed = await fs._ls("", detail=False)
        assert listed == ["model", "team%40model"]
        assert await fs._cat_file(listed[1]) == b"theirs"


@pytest.mark.usefixtures("seeded")
def test_what_is_missing_is_a_file_not_found_and_a_bad_path_says_what_a_path_is(
    options: dict[str, Any],
) -> None:
    fs = fsspec.filesystem("versioned", **options)
    for missing in ("nothing", "model@9", "model@canary"):
        with pytest.raises(FileNotFoundError, match=f"versioned://{missing}"):
            fs.cat(missing)
        assert not fs.exists(missing)
    for bad in ("model/weights", "model@", "model@0", "model@pro-d"):
        with pytest.raises(ValueError, match="NAME@VERSION or NAME@ALIAS"):
            fs.info(bad)


# -- pandas, pyarrow ----------------------------------------------------------------


@pytest.fixture
async def parquet_by_alias(make_repo: RepoFactory) -> Any:
    """A table written as Parquet, put, published and aliased ``prod`` as ``sales@prod``."""
    import pyarrow as pa  # noqa: PLC0415 - heavy: imported by the tests that use it
    import pyarrow.parquet as pq  # noqa: PLC0415

    table = pa.table({"region": ["eu", "us", "ap"], "units": [3, 5, 8]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    async with make_repo() as repo:
        await repo.bootstrap()
        await repo.put_artifact(
            "sales", sink.getvalue(), content_type="application/vnd.apache.parquet"
        )
        await repo.publish_artifact_version("sales")
        await repo.put_artifact("sales", b"not parquet yet")  # LATEST moved on: prod must not
        await repo.put_alias("sales", "prod", 1)
    return table


@pytest.mark.filterwarnings("error::ResourceWarning")  # pyarrow leaves the file to the GC
def test_pandas_reads_a_parquet_artifact_by_alias(
    parquet_by_alias: Any, options: dict[str, Any]
) -> None:
    import pandas as pd  # noqa: PLC0415 - heavy: imported by the test that uses it

    frame = pd.read_parquet("versioned://sales@prod", storage_options=options)
    assert frame.to_dict("list") == parquet_by_alias.to_pydict()


@pytest.mark.filterwarnings("error::ResourceWarning")
def test_pyarrow_reads_a_parquet_artifact_through_fsspec(
    parquet_by_alias: Any, options: dict[str, Any]
) -> None:
    import pyarrow.parquet as pq  # noqa: PLC0415 - heavy: imported by the test that uses it

    fs = fsspec.filesystem("versioned", **options)
    assert pq.read_table("sales@prod", filesystem=fs).equals(parquet_by_alias)


# -- the cache ----------------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
async def test_with_a_cache_dir_a_second_read_makes_no_get(
    endpoint_url: str, options: dict[str, Any], tmp_path: Path
) -> None:
    async with CountingProxy(endpoint_url) as proxy:
        through = {**options, "endpoint_url": proxy.endpoint_url, "cache_dir": str(tmp_path)}
        async with VersionedFileSystem(
            asynchronous=True, skip_instance_cache=True, **through
        ) as fs:
            assert await fs._cat_file("model@1") == V1
            assert proxy.count("GetObject") == 1
            assert await fs._cat_file("model@1") == V1
            assert await fs._cat_file("model@1", start=1, end=4) == V1[1:4]
            assert proxy.count("GetObject") == 1
        assert proxy.errors == []


# -- settings: storage options or the CLI's environment variables --------------------


@pytest.mark.usefixtures("seeded")
def test_settings_come_from_the_environment_variables_the_cli_reads(
    endpoint_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERSIONED_BUCKET", BUCKET)
    monkeypatch.setenv("VERSIONED_TABLE", TABLE)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    assert fsspec.filesystem("versioned").cat("model@staging") == V2
    with fsspec.open("versioned://model@1") as file:
        assert file.read() == V1
    # fsspec reuses an instance per storage options: not one made for another bucket
    monkeypatch.setenv("VERSIONED_BUCKET", "another-bucket")
    assert fsspec.filesystem("versioned").options.bucket == "another-bucket"


def test_a_missing_bucket_names_the_storage_option_and_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VERSIONED_BUCKET", raising=False)
    with pytest.raises(
        ValueError, match=r"no bucket: pass the storage option bucket= or set VERSIONED_BUCKET"
    ):
        fsspec.filesystem("versioned", region=REGION)


def test_an_unknown_storage_option_is_refused_with_the_known_ones() -> None:
    with pytest.raises(TypeError, match=r"unknown storage option 'buckt'.* bucket, prefix"):
        fsspec.filesystem("versioned", buckt=BUCKET)


def test_a_table_with_the_s3_backend_is_refused() -> None:
    with pytest.raises(ValueError, match=r"storage option table= names a DynamoDB table"):
        fsspec.filesystem("versioned", bucket=BUCKET, backend="s3", table=TABLE)


# -- read-only ----------------------------------------------------------------------


def test_every_write_is_refused_saying_what_writes_instead(
    options: dict[str, Any], tmp_path: Path
) -> None:
    fs = fsspec.filesystem("versioned", **options)
    local = tmp_path / "file"
    local.write_bytes(b"x")
    writes = {
        "pipe": lambda: fs.pipe("model", b"x"),
        "pipe_file": lambda: fs.pipe_file("model", b"x"),
        "put": lambda: fs.put(str(local), "model"),
        "rm": lambda: fs.rm("model"),
        "rm_file": lambda: fs.rm_file("model"),
        "mkdir": lambda: fs.mkdir("model"),
        "makedirs": lambda: fs.makedirs("model", exist_ok=True),
        "open wb": lambda: fs.open("model", "wb"),
        "open ab": lambda: fs.open("model", "ab"),
        "touch": lambda: fs.touch("model"),
        "mv": lambda: fs.mv("model", "other"),
        "cp": lambda: fs.cp("model", "other"),
        "write_bytes": lambda: fs.write_bytes("model", b"x"),
    }
    refused = {}
    for what, write in writes.items():
        try:
            write()
        except ReadOnlyFileSystemError as err:
            refused[what] = "read-only" in str(err) and "put_artifact()" in str(err)
    assert refused == dict.fromkeys(writes, True)
    assert issubclass(ReadOnlyFileSystemError, NotImplementedError)


# -- lifecycle ----------------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
async def test_an_asynchronous_filesystem_runs_in_the_callers_loop(options: dict[str, Any]) -> None:
    fs = VersionedFileSystem(asynchronous=True, skip_instance_cache=True, **options)
    try:
        assert await asyncio.gather(fs._cat_file("model@1"), fs._cat_file("model@2")) == [V1, V2]
        assert (await fs._info("model@prod"))["version"] == "1"
    finally:
        await fs.aclose()
    assert fs._connection.repository is None


@pytest.mark.usefixtures("seeded")
def test_a_synchronous_filesystem_closes_its_repository_when_collected(
    options: dict[str, Any],
) -> None:
    fs = VersionedFileSystem(skip_instance_cache=True, **options)
    assert fs.cat("model@1") == V1
    connection = fs._connection
    assert connection.repository is not None
    del fs
    gc.collect()
    assert connection.repository is None
