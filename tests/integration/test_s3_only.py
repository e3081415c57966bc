"""What only the S3-only layout does: conditional writes instead of a table.

The shared behaviour runs in the ``both_backends`` modules; these tests pin
what differs (no LATEST delete, `versioned`'s publish dedup, hard deletes) and
the race safety that S3's conditional writes give (``If-None-Match: *`` for a
publish's new version, ``If-Match`` on ETags for alias compare-and-set and
purge deletes), on the moto server, which honours both.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET, REGION
from versioned_async import S3OnlyRepository, exc
from versioned_async._aws.s3 import ObjectInfo
from versioned_async._codec import VersionItem


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def version_key(name: str, number: int) -> str:
    return f"versioned-artifacts/{name}/versions/{1_000_000 - number:06d}_{number:06d}"


@pytest.fixture
def make_s3_repo(endpoint_url: str, aio_session: Any) -> Callable[..., S3OnlyRepository]:
    def make(cls: type[S3OnlyRepository] = S3OnlyRepository, **kwargs: Any) -> S3OnlyRepository:
        return cls(REGION, BUCKET, endpoint_url=endpoint_url, session=aio_session, **kwargs)

    return make


@pytest.fixture
async def repo(
    make_s3_repo: Callable[..., S3OnlyRepository],
) -> AsyncIterator[S3OnlyRepository]:
    async with make_s3_repo() as repository:
        await repository.bootstrap()
        yield repository


async def keys(s3: Any, prefix: str = "versioned-artifacts/") -> list[str]:
    listing = await s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [obj["Key"] for obj in listing.get("Contents", ())]


async def test_bootstrap_creates_only_the_bucket(repo: S3OnlyRepository, s3: Any) -> None:
    await s3.head_bucket(Bucket=BUCKET)
    assert await keys(s3) == []


async def test_latest_cannot_be_deleted_and_stays(repo: S3OnlyRepository) -> None:
    await repo.put_artifact("app", b"x")
    with pytest.raises(exc.InvalidArgumentError, match="purge_artifact"):
        await repo.delete_artifact_version("app")
    assert await repo.get_content("app") == b"x"


async def test_publish_of_an_unchanged_latest_returns_the_top_version_as_versioned_does(
    repo: S3OnlyRepository, s3: Any
) -> None:
    await repo.put_artifact("app", b"x")
    first = await repo.publish_artifact_version("app")
    before = await keys(s3)
    again = await repo.publish_artifact_version("app")
    assert again == first
    assert await keys(s3) == before
    await repo.put_artifact("app", b"y")
    assert (await repo.publish_artifact_version("app")).version == "2"


async def test_a_deleted_version_is_gone_and_the_top_number_is_reused(
    repo: S3OnlyRepository, s3: Any
) -> None:
    for body in (b"one", b"two"):
        await repo.put_artifact("app", body)
        await repo.publish_artifact_version("app")
    await repo.delete_artifact_version("app", 2)
    assert version_key("app", 2) not in await keys(s3)
    with pytest.raises(exc.ArtifactNotFoundError):
        await repo.get_artifact_version("app", 2)
    await repo.put_artifact("app", b"three")
    again = await repo.publish_artifact_version("app")
    assert (again.version, again.sha256) == ("2", sha(b"three"))


def slow_down(publisher: S3OnlyRepository, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """Holds ``publisher``'s publishes between their listing and their write, as a slow
    network would: returns the events ``(listed, go_on)``."""
    listed, go_on = asyncio.Event(), asyncio.Event()
    snapshot = publisher._catalog._snapshot_latest

    async def held(
        name: str, listed_size: int, scratch: Path
    ) -> tuple[bytes | Path, ObjectInfo, dict[str, str]]:
        listed.set()
        await go_on.wait()
        return await snapshot(name, listed_size, scratch)

    monkeypatch.setattr(publisher._catalog, "_snapshot_latest", held)
    return listed, go_on


async def race_a_slow_publisher(
    make_s3_repo: Callable[..., S3OnlyRepository],
    repo: S3OnlyRepository,
    meanwhile: Callable[[], Awaitable[object]],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, str]:
    """A slow publisher lists (version 1 on top: it wants 2) and stops; ``repo`` publishes
    version 2 and runs ``meanwhile``; then the slow one reads LATEST and writes. Returns
    the versions the fast and the slow publisher got."""
    async with make_s3_repo() as slow:
        listed, go_on = slow_down(slow, monkeypatch)
        late = asyncio.ensure_future(slow.publish_artifact_version("app"))
        await asyncio.wait_for(listed.wait(), 30)
        first = await repo.publish_artifact_version("app")
        await meanwhile()
        go_on.set()
        second = await asyncio.wait_for(late, 30)
    return first.version, second.version


async def test_a_publisher_that_loses_the_race_takes_the_next_number(
    make_s3_repo: Callable[..., S3OnlyRepository],
    repo: S3OnlyRepository,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await repo.put_artifact("app", b"one")
    await repo.publish_artifact_version("app")
    await repo.put_artifact("app", b"two")
    caplog.set_level(logging.INFO, logger="versioned_async")
    got = await race_a_slow_publisher(
        make_s3_repo, repo, lambda: repo.put_artifact("app", b"three"), monkeypatch
    )
    assert got == ("2", "3")  # its If-None-Match on version 2 failed: it took 3
    assert await repo.get_content("app", 2) == b"two"
    assert await repo.get_content("app", 3) == b"three"
    assert any("was taken by another publisher" in r.getMessage() for r in caplog.records)


async def test_a_publisher_that_loses_to_the_same_content_returns_the_winners_version(
    make_s3_repo: Callable[..., S3OnlyRepository],
    repo: S3OnlyRepository,
    s3: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await repo.put_artifact("app", b"one")
    await repo.publish_artifact_version("app")
    await repo.put_artifact("app", b"two")

    async def nothing() -> None:
        pass

    assert await race_a_slow_publisher(make_s3_repo, repo, nothing, monkeypatch) == ("2", "2")
    assert version_key("app", 3) not in await keys(s3)


async def test_concurrent_publishers_get_distinct_numbers_holding_what_they_returned(
    make_s3_repo: Callable[..., S3OnlyRepository], repo: S3OnlyRepository
) -> None:
    await repo.put_artifact("app", b"base")
    others = [make_s3_repo() for _ in range(4)]
    for other in others:
        await other.open()
    try:

        async def put_and_publish(r: S3OnlyRepository, n: int) -> tuple[str, str]:
            await r.put_artifact("app", f"content {n}".encode())
            art = await r.publish_artifact_version("app")
            return art.version, art.sha256

        results = await asyncio.gather(
            *(put_and_publish(r, n) for n, r in enumerate([*others, *others]))
        )
    finally:
        for other in others:
            await other.close()
    numbers = [version for version, _ in results]
    distinct = [v for v, _ in set(results)]
    assert len(set(numbers)) == len(set(results))  # a number never names two contents
    assert sorted(int(v) for v in distinct) == list(range(1, len(distinct) + 1))
    for version, digest in set(results):
        assert sha(await repo.get_content("app", version)) == digest


async def test_a_large_latest_is_published_through_a_file(
    repo: S3OnlyRepository, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(17 << 20))  # above the multipart threshold
    await repo.put_artifact("big", source, metadata={"kind": "model"})
    art = await repo.publish_artifact_version("big")
    assert (art.version, art.sha256, art.size) == ("1", sha(source.read_bytes()), 17 << 20)
    assert dict(art.metadata) == {"kind": "model"}
    assert await repo.get_content("big", 1) == source.read_bytes()


async def test_publish_copies_content_type_metadata_and_tags(
    repo: S3OnlyRepository, s3: Any
) -> None:
    await repo.put_artifact(
        "app", b"x", content_type="text/csv", metadata={"k": "v"}, tags={"env": "dev"}
    )
    await repo.publish_artifact_version("app")
    head = await s3.head_object(Bucket=BUCKET, Key=version_key("app", 1))
    assert head["ContentType"] == "text/csv"
    assert head["Metadata"] == {"artifact_name": "app", "artifact_sha256": sha(b"x"), "k": "v"}
    tagging = await s3.get_object_tagging(Bucket=BUCKET, Key=version_key("app", 1))
    assert {t["Key"]: t["Value"] for t in tagging["TagSet"]} == {"env": "dev"}


async def test_a_latest_whose_bytes_disagree_with_its_sha256_is_not_published(
    repo: S3OnlyRepository, s3: Any
) -> None:
    await repo.put_artifact("app", b"genuine")
    key = "versioned-artifacts/app/versions/000000_LATEST"
    head = await s3.head_object(Bucket=BUCKET, Key=key)
    await s3.put_object(Bucket=BUCKET, Key=key, Body=b"tampered", Metadata=head["Metadata"])
    with pytest.raises(exc.IntegrityError):
        await repo.publish_artifact_version("app")
    assert await keys(s3) == [key]


async def test_alias_compare_and_set_refuses_a_stale_token(repo: S3OnlyRepository) -> None:
    for body in (b"one", b"two"):
        await repo.put_artifact("app", body)
        await repo.publish_artifact_version("app")
    read = await repo.put_alias("app", "prod", 1)
    moved = await repo.put_alias("app", "prod", 2)
    with pytest.raises(exc.ConcurrentModificationError) as info:
        await repo.put_alias("app", "prod", 1, if_update_at=read.update_at)
    assert (info.value.expected, info.value.actual) == (read.update_at, moved.update_at)
    assert (await repo.get_alias("app", "prod")).version == "2"
    done = await repo.put_alias("app", "prod", 1, if_update_at=moved.update_at)
    assert (await repo.get_alias("app", "prod")) == done
    with pytest.raises(exc.ConcurrentModificationError):
        await repo.delete_alias("app", "prod", if_update_at=moved.update_at)
    await repo.delete_alias("app", "prod", if_update_at=done.update_at)
    with pytest.raises(exc.AliasNotFoundError):
        await repo.get_alias("app", "prod")


async def test_racing_compare_and_set_moves_have_exactly_one_winner(
    make_s3_repo: Callable[..., S3OnlyRepository], repo: S3OnlyRepository
) -> None:
    for body in (b"one", b"two", b"three"):
        await repo.put_artifact("app", body)
        await repo.publish_artifact_version("app")
    read = await repo.put_alias("app", "prod", 1)
    async with make_s3_repo() as a, make_s3_repo() as b:
        outcomes = await asyncio.gather(
            a.put_alias("app", "prod", 2, if_update_at=read.update_at),
            b.put_alias("app", "prod", 3, if_update_at=read.update_at),
            return_exceptions=True,
        )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1
    assert [type(e) for e in lost] == [exc.ConcurrentModificationError]
    assert await repo.get_alias("app", "prod") == won[0]


async def test_an_alias_needs_its_versions_to_exist(repo: S3OnlyRepository) -> None:
    await repo.put_artifact("app", b"x")
    with pytest.raises(exc.ArtifactNotFoundError, match="'1'"):
        await repo.put_alias("app", "prod", 1)
    with pytest.raises(exc.AliasNotFoundError):
        await repo.get_alias("app", "prod")


async def test_a_damaged_alias_object_is_a_backend_error_naming_it(
    repo: S3OnlyRepository, s3: Any
) -> None:
    await s3.put_object(Bucket=BUCKET, Key="versioned-artifacts/app/aliases/prod.json", Body=b"{")
    with pytest.raises(exc.BackendError, match="alias 'prod' of 'app'"):
        await repo.get_alias("app", "prod")


async def test_foreign_keys_under_versions_are_passed_over_and_logged(
    repo: S3OnlyRepository, s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await repo.put_artifact("app", b"x")
    await repo.publish_artifact_version("app")
    await s3.put_object(
        Bucket=BUCKET, Key="versioned-artifacts/app/versions/zzz_notes.txt", Body=b""
    )
    await s3.put_object(Bucket=BUCKET, Key="versioned-artifacts/app/versions_old/foo", Body=b"")
    assert [a.version for a in await repo.list_artifact_versions("app")] == ["LATEST", "1"]
    assert any("zzz_notes.txt is not a version" in r.getMessage() for r in caplog.records)


def republish_during_purge(
    purger: S3OnlyRepository, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replaces version 1 (new content, new ETag) right after a purge read its plan."""
    plan = purger._catalog._versions

    async def planned_then_replaced(name: str) -> list[tuple[VersionItem, str]]:
        planned = await plan(name)
        await purger.put_artifact(name, b"republished")
        got = await s3.get_object(
            Bucket=BUCKET, Key="versioned-artifacts/app/versions/000000_LATEST"
        )
        body = await got["Body"].read()
        await s3.put_object(
            Bucket=BUCKET, Key=version_key(name, 1), Body=body, Metadata=got["Metadata"]
        )
        return planned

    monkeypatch.setattr(purger._catalog, "_versions", planned_then_replaced)


async def test_a_purge_keeps_a_version_replaced_after_it_was_planned(
    make_s3_repo: Callable[..., S3OnlyRepository],
    repo: S3OnlyRepository,
    s3: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for body in (b"one", b"two", b"three"):
        await repo.put_artifact("app", body)
        await repo.publish_artifact_version("app")
    async with make_s3_repo() as purger:
        republish_during_purge(purger, s3, monkeypatch)
        _, deleted = await purger.purge_artifact_versions(
            "app", keep_last_n=1, purge_older_than_secs=0
        )
    assert [a.version for a in deleted] == ["2"]  # 1 changed under the plan: kept
    assert await repo.get_content("app", 1) == b"republished"
    assert [a.version for a in await repo.list_artifact_versions("app")] == ["LATEST", "3", "1"]


async def test_purge_artifact_removes_its_folder_and_nothing_else(
    repo: S3OnlyRepository, s3: Any
) -> None:
    for name in ("app", "keep"):
        await repo.put_artifact(name, b"x")
        await repo.publish_artifact_version(name)
        await repo.put_alias(name, "prod", 1)
    await repo.purge_artifact("app")
    assert await keys(s3) == [
        "versioned-artifacts/keep/aliases/prod.json",
        "versioned-artifacts/keep/versions/000000_LATEST",
        version_key("keep", 1),
    ]
    assert await repo.list_artifact_names() == ["keep"]
