"""`versioned` 1.0.1 reads version items that carry the attributes our purge relies on
(``alias_epoch``, ``purged_at``) and reclaimed reservations as if they were not there."""

from __future__ import annotations

from versioned_async import Repository

from .conftest import Upstream


async def test_upstream_reads_versions_our_aliases_and_purges_marked(
    ours: Repository, theirs: Upstream
) -> None:
    for n in range(1, 4):
        await ours.put_artifact("app", f"v{n}".encode())
        await ours.publish_artifact_version("app")
    await ours.put_alias("app", "prod", 2)  # marks version 2 (alias_epoch)
    await ours.put_alias("app", "prod", 2)

    _, deleted = await ours.purge_artifact_versions("app", keep_last_n=0, purge_older_than_secs=0)

    assert sorted(a.version for a in deleted) == ["1", "3"]  # marked purged_at
    assert [a.version for a in theirs.list_artifact_versions("app")] == ["LATEST", "2"]
    assert (
        theirs.get_artifact_version("app", 2).sha256
        == (await ours.get_artifact_version("app", 2)).sha256
    )
    assert theirs.get_alias("app", "prod").version == "2"
    theirs.put_artifact("app", b"v4")
    assert theirs.publish_artifact_version("app").version == "4"  # no number reused
