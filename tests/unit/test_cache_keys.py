"""The cache's typed keys write the on-disk tuples earlier releases wrote, and read them back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import diskcache
import pytest
from hypothesis import given
from hypothesis import strategies as st

from versioned_async import LocalCache, Repository, S3OnlyRepository
from versioned_async._codec import VersionItem
from versioned_async.cache.keys import (
    AliasKey,
    ContentKey,
    LeaseKey,
    PathHintKey,
    RepositoryId,
    VersionKey,
    from_disk,
    lookups_from_disk,
)

REPO = RepositoryId("http://localhost:4566", "bucket", "prefix", "-dev", "table")
text = st.text(max_size=20)
repositories = st.builds(RepositoryId, text, text, text, text, text)
versions = st.builds(VersionKey, repositories, text, text)
aliases = st.builds(AliasKey, repositories, text, text)
every_key = st.one_of(
    versions,
    aliases,
    st.builds(PathHintKey, text),
    st.builds(LeaseKey, versions),
    st.builds(ContentKey, text),
)


@pytest.mark.parametrize(
    ("key", "kind", "last"),
    [
        (VersionKey(REPO, "app", "000002"), "v", "000002"),
        (AliasKey(REPO, "app", "prod"), "a", "prod"),
    ],
)
def test_a_lookup_key_is_the_tuple_earlier_releases_wrote(
    key: VersionKey | AliasKey, kind: str, last: str
) -> None:
    """(kind, endpoint, bucket, prefix, suffix, table, name, version or alias)."""
    repository = ("http://localhost:4566", "bucket", "prefix", "-dev", "table")
    assert key.to_disk() == (kind, *repository, "app", last)


def test_path_hint_lease_and_content_keys_are_the_tuples_earlier_releases_wrote() -> None:
    version = VersionKey(REPO, "app", "LATEST")
    assert PathHintKey("ab" * 32).to_disk() == ("path", "ab" * 32)
    assert LeaseKey(version).to_disk() == ("lease", version.to_disk())
    assert ContentKey("ab" * 32).to_disk() == ("c", "ab" * 32)


@given(every_key)
def test_every_key_reads_back_from_its_disk_form(key: Any) -> None:
    assert from_disk(key.to_disk()) == key


@pytest.mark.parametrize(
    "raw",
    [
        "plain",
        (),
        ("v", "too", "short"),
        ("v", "e", "b", "p", "s", "t", "name", 2),  # not all strings
        ("x", "e", "b", "p", "s", "t", "name", "000001"),  # unknown kind
        ("path",),
        ("c", 1),
        ("lease", ("a", "e", "b", "p", "s", "t", "name", "prod")),  # a lease is on a version
        ("lease", "not a key"),
    ],
)
def test_rows_no_key_writes_read_as_nothing(raw: object) -> None:
    assert from_disk(raw) is None


def test_only_lookups_come_out_of_the_lookup_rows() -> None:
    version, alias = VersionKey(REPO, "app", "000001"), AliasKey(REPO, "app", "prod")
    rows: list[tuple[object, Any]] = [
        (version.to_disk(), (1.0, ("sha", 3))),
        (alias.to_disk(), (1.0, {"version": "000001"})),
        (PathHintKey("sha").to_disk(), "0:0:0:0 /path"),
        (LeaseKey(version).to_disk(), "holder"),
        ("something else", 1),
    ]
    assert list(lookups_from_disk(rows)) == [(version, rows[0][1]), (alias, rows[1][1])]


async def test_a_repositorys_keys_name_it_as_earlier_releases_did(tmp_path: Path) -> None:
    """Endpoint without its password (or ``"aws"``), bucket, prefix as the layout keeps
    it, suffix, table (``"s3-only"`` for the S3-only layout), name, stored version."""
    cache = LocalCache(tmp_path)
    repo = Repository(
        "us-east-1",
        "bucket",
        s3_prefix="/artifacts/",
        dynamodb_table_name="table",
        suffix="-dev",
        endpoint_url="http://user:secret@localhost:4566",
        cache=cache,
    )
    s3_only = S3OnlyRepository("us-east-1", "bucket", cache=cache)
    item = VersionItem(pk="app", sk="000001", sha256="ab" * 32, size=3)
    await repo._reader.remember_version(item)
    await s3_only._reader.remember_version(item)
    cache.close()
    stored = set(diskcache.Cache(str(tmp_path / "lookups")).iterkeys())
    endpoint = "http://user:***@localhost:4566"
    assert stored == {
        ("v", endpoint, "bucket", "artifacts", "-dev", "table", "app", "000001"),
        ("v", "aws", "bucket", "versioned-artifacts", "", "s3-only", "app", "000001"),
    }


async def test_a_cache_directory_an_earlier_release_filled_stays_warm(tmp_path: Path) -> None:
    """Lookups written under the tuple keys (diskcache directly, as earlier releases
    did) are found by the typed keys."""
    LocalCache(tmp_path).close()
    version, alias = VersionKey(REPO, "app", "000001"), AliasKey(REPO, "app", "prod")
    with diskcache.Cache(str(tmp_path / "lookups"), eviction_policy="none") as old:
        old.set(("v", *REPO.to_disk(), "app", "000001"), (1_800_000_000.0, ("sha-1", 10)))
        old.set(("a", *REPO.to_disk(), "app", "prod"), (1_800_000_000.0, {"version": "000001"}))
    cache = LocalCache(tmp_path)
    assert await cache._store.lookups.load(version) == (1_800_000_000.0, ("sha-1", 10))
    assert await cache._store.lookups.load(alias) == (1_800_000_000.0, {"version": "000001"})
    cache.close()
