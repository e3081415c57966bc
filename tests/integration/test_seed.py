"""The seeding helper (tests/seed.py) leaves what the public API leaves, as the library reads it."""

from __future__ import annotations

from typing import Any

from tests.conftest import BUCKET, TABLE
from tests.seed import seed_dynamodb_layout
from versioned_async import Repository

CONTENTS = [b"first", b"second", b"third, now LATEST"]


async def seen(repo: Repository, name: str) -> dict[str, Any]:
    versions = await repo.list_artifact_versions(name)
    alias = await repo.get_alias(name, "prod")
    return {
        "versions": [(a.version, a.sha256, a.size, a.content_type, a.metadata) for a in versions],
        "contents": [await repo.get_content(name, a.version) for a in versions],
        "aliases": [a.alias for a in await repo.list_aliases(name)],
        "prod": (alias.version, alias.secondary_version, alias.secondary_version_weight),
    }


async def test_a_seeded_repository_reads_as_one_built_through_the_api(
    repo: Repository, s3: Any, dynamodb: Any
) -> None:
    for content in CONTENTS[:2]:
        await repo.put_artifact("built", content)
        await repo.publish_artifact_version("built")
    await repo.put_artifact("built", CONTENTS[2])
    await repo.publish_artifact_version("built")
    await repo.put_alias("built", "prod", 1, secondary_version=2, secondary_version_weight=30)

    await seed_dynamodb_layout(
        s3,
        dynamodb,
        bucket=BUCKET,
        table=TABLE,
        artifacts={"seeded": CONTENTS},
        aliases={("seeded", "prod"): (1, 2, 30)},
    )

    built, seeded = await seen(repo, "built"), await seen(repo, "seeded")
    assert seeded == built
    assert seeded["versions"][0][0] == "LATEST"
    assert len(seeded["versions"]) == 4
