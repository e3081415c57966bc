"""Property tests, both backends: whatever a write accepts, the listing finds.

A purge keeps the versions the aliases it *lists* point at, and ``purge_artifact``
removes what the name listing finds: a name or alias that a write accepts but a
listing skips is a version deleted under a live alias (issue 15, item 1: the
S3-only listing skipped ``team/prod``). So for every name ``put_artifact``
accepts, ``list_artifact_names`` finds it and ``purge_artifact`` removes it; for
every alias ``put_alias`` accepts, ``list_aliases`` finds it pointing where it
was put, a purge plan keeps its version, and ``delete_alias`` removes it.

Hypothesis and function-scoped fixtures do not mix, so one repository serves
every example; each example undoes what it wrote.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tests.integration.test_properties import alias_names, names
from versioned_async import Repository, exc

pytestmark = pytest.mark.both_backends

LISTING_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SEED = "seeded-artifact"

#: names that look like the layouts' own keys and folders, or that URL or key
#: handling might rewrite
tricky_names = st.sampled_from(
    [
        "versions",
        "aliases",
        "LATEST",
        "000000_LATEST",
        "999999_000001",
        "000001",
        "x.json",
        "a.b",
        "a-alias",
        "a-alias-history",
        "a-holds",
        "%",
        "%2e",
        "%2e%2e",
        "a%2Fb",
        "~",
        "a b",
        "a+b",
        "a;b",
        "a=b&c",
        "a#b",
        "a?b",
        "a\\b",
        "*",
        "'",
        '"',
        "<a>",
        "...",
        ".a",
        "a.",
    ]
)
tricky_aliases = st.sampled_from(
    [
        "team/prod",
        "a/b/c",
        "x.json",
        "prod.json",
        "prod.json.json",
        "LATEST",
        "versions",
        "aliases",
        "a/../b",
        "../prod",
        "./a",
        "a/.",
        "a/..",
        "a//b",
        "/a",
        "a/",
        ".",
        "..",
        "...",
        "a/...",
        "%2e%2e/x",
        "a%2Fb",
        "a+b",
        "a b",
        "a?b",
        "a#b",
        "a\\b",
        "~",
        "*",
    ]
)


async def seed(repo: Repository) -> None:
    if await repo.list_artifact_names() == [SEED]:
        return
    await repo.purge_all()
    await repo.put_artifact(SEED, b"one")
    await repo.publish_artifact_version(SEED)
    await repo.put_artifact(SEED, b"two")
    await repo.publish_artifact_version(SEED)


@LISTING_SETTINGS
@given(name=st.one_of(names, tricky_names))
@example(name="versions")
@example(name="a%2Fb")
async def test_every_name_put_artifact_accepts_is_listed_read_and_purged(
    repo: Repository, name: Any
) -> None:
    assume(name != SEED)
    await seed(repo)
    try:
        await repo.put_artifact(name, b"x")
    except (exc.InvalidArgumentError, exc.InvalidArgumentTypeError):
        assert await repo.list_artifact_names() == [SEED]
        return
    try:
        assert name in await repo.list_artifact_names()
        assert await repo.get_content(name) == b"x"
        assert [a.version for a in await repo.list_artifact_versions(name)] == ["LATEST"]
    finally:
        await repo.purge_artifact(name)
    assert await repo.list_artifact_names() == [SEED]


@LISTING_SETTINGS
@given(alias=st.one_of(alias_names, tricky_aliases))
@example(alias="team/prod")
@example(alias="prod.json")
async def test_every_alias_put_alias_accepts_is_listed_and_keeps_its_version(
    repo: Repository, alias: Any
) -> None:
    await seed(repo)
    try:
        await repo.put_alias(SEED, alias, 1)
    except (exc.InvalidArgumentError, exc.InvalidArgumentTypeError):
        assert await repo.list_aliases(SEED) == []
        return
    try:
        listed = {a.alias: a.version for a in await repo.list_aliases(SEED)}
        assert listed == {alias: "1"}
        assert (await repo.get_alias(SEED, alias)).version == "1"
        _, planned = await repo.purge_artifact_versions(
            SEED, keep_last_n=0, purge_older_than_secs=0, dry_run=True
        )
        assert [a.version for a in planned] == ["2"], "the purge would delete the aliased version"
    finally:
        await repo.delete_alias(SEED, alias)
    assert await repo.list_aliases(SEED) == []
