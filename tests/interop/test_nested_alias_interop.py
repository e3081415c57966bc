"""An alias with a ``/`` (``team/prod``) in the S3-only layout, shared with `versioned`
1.0.1 (issue 15, item 1). `versioned` accepts such an alias and lists every object under
``aliases/``; we list the same, so neither library's purge deletes a version the other's
nested alias points at.
"""

from __future__ import annotations

from versioned_async import S3OnlyRepository

from .conftest import UpstreamS3Only


async def test_we_list_a_nested_alias_upstream_put_and_our_purge_keeps_its_version(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    for content in (b"one", b"two", b"three"):
        theirs_s3.put_artifact("app", content)
        theirs_s3.publish_artifact_version("app")
    theirs_s3.put_alias("app", "team/prod", version=1)

    assert [(a.alias, a.version) for a in await ours_s3.list_aliases("app")] == [("team/prod", "1")]
    _, deleted = await ours_s3.purge_artifact_versions(
        "app", keep_last_n=0, purge_older_than_secs=0
    )

    assert sorted(a.version for a in deleted) == ["2", "3"]
    assert await ours_s3.get_alias_content("app", "team/prod") == b"one"
    assert theirs_s3.get_alias("app", "team/prod").get_version_content(theirs_s3.bsm) == b"one"


async def test_upstream_lists_and_reads_a_nested_alias_we_put(
    ours_s3: S3OnlyRepository, theirs_s3: UpstreamS3Only
) -> None:
    for content in (b"one", b"two"):
        await ours_s3.put_artifact("app", content)
        await ours_s3.publish_artifact_version("app")
    await ours_s3.put_alias("app", "team/prod", version=1)

    assert [(a.alias, a.version) for a in theirs_s3.list_aliases("app")] == [("team/prod", "1")]
    got = theirs_s3.get_alias("app", "team/prod")
    assert got.get_version_content(theirs_s3.bsm) == b"one"
