"""Alias history (audit trail), compare-and-set alias moves, rollback and ``as_of``."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.conftest import TABLE, RepoFactory, TableRepoFactory, artifact_items
from tests.integration.conftest import published
from tests.proxy import CountingProxy
from versioned_async import Repository
from versioned_async.exc import (
    AliasNotFoundError,
    ArtifactNotFoundError,
    BackendError,
    BackendUnavailableError,
    ConcurrentModificationError,
    ConflictError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NoHistoryError,
)


def targets(change: Any) -> tuple[Any, Any]:
    def view(alias: Any) -> Any:
        if alias is None:
            return None
        return (alias.version, alias.secondary_version, alias.secondary_version_weight)

    return view(change.before), view(change.after)


async def test_every_change_is_recorded_newest_first_with_actor_and_reason(
    repo: Repository,
) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1, actor="ci", reason="first")
    await repo.put_alias("app", "prod", 1, secondary_version=2, secondary_version_weight=10)
    await repo.delete_alias("app", "prod", actor="ops", reason="incident")

    page = await repo.list_alias_history("app", "prod")
    assert [c.action for c in page.changes] == ["delete", "put", "put"]
    assert [targets(c) for c in page.changes] == [
        (("1", "2", 10), None),
        (("1", None, None), ("1", "2", 10)),
        (None, ("1", None, None)),
    ]
    assert (page.changes[0].actor, page.changes[0].reason) == ("ops", "incident")
    assert (page.changes[2].actor, page.changes[2].reason) == ("ci", "first")
    assert all(c.recorded and c.name == "app" and c.alias == "prod" for c in page.changes)
    times = [c.changed_at for c in page.changes]
    assert times == sorted(times, reverse=True)
    assert page.next_page_token is None


async def test_history_records_the_stored_state_of_each_change(repo: Repository) -> None:
    await published(repo)
    alias = await repo.put_alias("app", "prod", 2)
    [change] = (await repo.list_alias_history("app", "prod")).changes
    assert change.after == alias
    assert change.changed_at == alias.update_at
    assert await change.after.get_version_content() == b"v2"


async def test_history_pages_follow_their_token_without_gaps_or_repeats(
    repo: Repository,
) -> None:
    await published(repo)
    for n in range(7):
        await repo.put_alias("app", "prod", 1 + n % 3, reason=str(n))

    seen: list[str | None] = []
    token = None
    while True:
        page = await repo.list_alias_history("app", "prod", limit=3, page_token=token)
        assert len(page.changes) <= 3
        seen += [c.reason for c in page.changes]
        token = page.next_page_token
        if token is None:
            break
    assert seen == [str(n) for n in reversed(range(7))]
    assert [c.reason async for c in repo.iter_alias_history("app", "prod")] == seen


async def test_history_keeps_aliases_apart_even_when_one_name_prefixes_another(
    repo: Repository,
) -> None:
    await published(repo)
    await repo.put_alias("app", "a", 1)
    await repo.put_alias("app", "a#b", 2)
    await repo.put_alias("app", "ab", 3)
    assert [targets(c)[1] for c in (await repo.list_alias_history("app", "a")).changes] == [
        ("1", None, None)
    ]
    assert [targets(c)[1] for c in (await repo.list_alias_history("app", "a#b")).changes] == [
        ("2", None, None)
    ]


async def test_history_is_written_in_the_same_transaction_as_the_change(
    repo: Repository,
) -> None:
    await published(repo, count=1)
    with pytest.raises(ArtifactNotFoundError):
        await repo.put_alias("app", "prod", 9)
    assert (await repo.list_alias_history("app", "prod")).changes == []


async def test_deleting_a_missing_alias_records_nothing(repo: Repository) -> None:
    await published(repo, count=1)
    await repo.delete_alias("app", "prod")
    assert (await repo.list_alias_history("app", "prod")).changes == []


async def test_bad_history_arguments_are_refused_clearly(repo: Repository) -> None:
    with pytest.raises(InvalidArgumentError, match="limit"):
        await repo.list_alias_history("app", "prod", limit=0)
    with pytest.raises(InvalidArgumentError, match="page_token"):
        await repo.list_alias_history("app", "prod", page_token="staging#2026")
    with pytest.raises(InvalidArgumentError, match="actor"):
        await repo.put_alias("app", "prod", 1, actor="x" * 5000)


# -- the default actor ------------------------------------------------------------


async def test_the_actor_defaults_to_the_repository_actor(
    make_table_repo: TableRepoFactory,
) -> None:
    async with make_table_repo(actor="deploy-pipeline") as repo:
        await repo.bootstrap()
        await published(repo, count=1)
        await repo.put_alias("app", "prod", 1)
        await repo.put_alias("app", "prod", 1, actor="someone")
        changes = (await repo.list_alias_history("app", "prod")).changes
    assert [c.actor for c in changes] == ["someone", "deploy-pipeline"]


async def test_the_actor_defaults_to_the_callers_aws_identity(
    make_table_repo: TableRepoFactory,
) -> None:
    async with make_table_repo(actor=None) as repo:
        await repo.bootstrap()
        await published(repo, count=1)
        await repo.put_alias("app", "prod", 1)
        [change] = (await repo.list_alias_history("app", "prod")).changes
    assert change.actor is not None
    assert change.actor.startswith("arn:aws:")


# -- compare-and-set ----------------------------------------------------------------


async def test_a_move_with_the_token_read_succeeds(repo: Repository) -> None:
    await published(repo)
    read = await repo.put_alias("app", "prod", 1)
    moved = await repo.put_alias("app", "prod", 2, if_update_at=read.update_at)
    assert moved.version == "2"


async def test_a_stale_token_fails_and_changes_nothing(repo: Repository) -> None:
    await published(repo)
    read = await repo.put_alias("app", "prod", 1)
    other = await repo.put_alias("app", "prod", 2)  # another pipeline moves it
    with pytest.raises(ConcurrentModificationError) as caught:
        await repo.put_alias("app", "prod", 3, if_update_at=read.update_at)
    assert caught.value.actual == other.update_at
    assert caught.value.expected == read.update_at
    assert "get_alias" in str(caught.value)
    assert await repo.get_alias("app", "prod") == other
    assert len((await repo.list_alias_history("app", "prod")).changes) == 2


async def test_a_token_on_a_deleted_alias_fails(repo: Repository) -> None:
    await published(repo)
    read = await repo.put_alias("app", "prod", 1)
    await repo.delete_alias("app", "prod")
    with pytest.raises(ConcurrentModificationError) as caught:
        await repo.put_alias("app", "prod", 2, if_update_at=read.update_at)
    assert caught.value.actual is None
    with pytest.raises(AliasNotFoundError):
        await repo.get_alias("app", "prod")


async def test_delete_with_a_stale_token_fails(repo: Repository) -> None:
    await published(repo)
    read = await repo.put_alias("app", "prod", 1)
    await repo.put_alias("app", "prod", 2)
    with pytest.raises(ConcurrentModificationError):
        await repo.delete_alias("app", "prod", if_update_at=read.update_at)
    assert (await repo.get_alias("app", "prod")).version == "2"


async def test_of_two_racing_pipelines_with_one_token_exactly_one_wins(
    make_table_repo: TableRepoFactory,
) -> None:
    async with make_table_repo() as a, make_table_repo() as b:
        await a.bootstrap()
        await published(a)
        read = await a.put_alias("app", "prod", 1)
        results = await asyncio.gather(
            a.put_alias("app", "prod", 2, if_update_at=read.update_at),
            b.put_alias("app", "prod", 3, if_update_at=read.update_at),
            return_exceptions=True,
        )
        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, ConcurrentModificationError)]
        assert (len(winners), len(losers)) == (1, 1)
        assert await a.get_alias("app", "prod") == winners[0]
        history = (await a.list_alias_history("app", "prod")).changes
        assert [targets(c)[1][0] for c in history] == [winners[0].version, "1"]


async def test_concurrent_moves_without_a_token_are_all_recorded_in_order(
    make_table_repo: TableRepoFactory,
) -> None:
    async with make_table_repo() as a, make_table_repo() as b:
        await a.bootstrap()
        await published(a)
        await asyncio.gather(
            *(
                (a if n % 2 else b).put_alias("app", "prod", 1 + n % 3, reason=str(n))
                for n in range(8)
            )
        )
        changes = (await a.list_alias_history("app", "prod")).changes
        assert sorted(c.reason for c in changes if c.reason) == [str(n) for n in range(8)]
        # each record starts where the previous one ended: a chain, nothing lost
        for newer, older in itertools.pairwise(changes):
            assert newer.before == older.after
        assert changes[0].after == await a.get_alias("app", "prod")


async def test_naive_datetimes_are_refused(repo: Repository) -> None:
    await published(repo, count=1)
    with pytest.raises(InvalidArgumentError, match="timezone-aware"):
        await repo.put_alias("app", "prod", 1, if_update_at=datetime(2026, 1, 1))
    with pytest.raises(InvalidArgumentTypeError):
        await repo.get_alias("app", "prod", as_of="yesterday")  # type: ignore[arg-type]


# -- rollback -------------------------------------------------------------------------


async def test_rollback_returns_to_the_state_before_the_last_change(repo: Repository) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1, secondary_version=2, secondary_version_weight=25)
    await repo.put_alias("app", "prod", 3)

    back = await repo.rollback_alias("app", "prod", reason="bad release")

    assert back is not None
    assert (back.version, back.secondary_version, back.secondary_version_weight) == ("1", "2", 25)
    assert await repo.get_alias("app", "prod") == back
    newest = (await repo.list_alias_history("app", "prod")).changes[0]
    assert (newest.action, newest.reason) == ("rollback", "bad release")
    assert targets(newest) == (("3", None, None), ("1", "2", 25))


async def test_rolling_back_twice_undoes_the_rollback(repo: Repository) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1)
    await repo.put_alias("app", "prod", 2)
    await repo.rollback_alias("app", "prod")
    again = await repo.rollback_alias("app", "prod")
    assert again is not None
    assert again.version == "2"


async def test_rolling_back_a_creation_deletes_and_a_deletion_restores(
    repo: Repository,
) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 2)
    assert await repo.rollback_alias("app", "prod") is None
    with pytest.raises(AliasNotFoundError):
        await repo.get_alias("app", "prod")
    restored = await repo.rollback_alias("app", "prod")
    assert restored is not None
    assert restored.version == "2"


async def test_rollback_without_history_is_refused(repo: Repository) -> None:
    with pytest.raises(NoHistoryError, match="no recorded change"):
        await repo.rollback_alias("app", "prod")


async def test_rollback_to_a_version_deleted_since_fails_and_changes_nothing(
    repo: Repository,
) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1)
    await repo.put_alias("app", "prod", 2)
    await repo.delete_artifact_version("app", 1)
    with pytest.raises(ArtifactNotFoundError):
        await repo.rollback_alias("app", "prod")
    assert (await repo.get_alias("app", "prod")).version == "2"


# -- as_of ------------------------------------------------------------------------------


async def test_as_of_answers_from_history(repo: Repository) -> None:
    await published(repo)
    first = await repo.put_alias("app", "prod", 1)
    second = await repo.put_alias("app", "prod", 2)
    await repo.delete_alias("app", "prod")
    third = await repo.put_alias("app", "prod", 3)
    deleted_at = (await repo.list_alias_history("app", "prod")).changes[1].changed_at

    assert await repo.get_alias("app", "prod", as_of=first.update_at) == first
    tick = timedelta(microseconds=1)
    assert await repo.get_alias("app", "prod", as_of=second.update_at - tick) == first
    assert await repo.get_alias("app", "prod", as_of=second.update_at) == second
    with pytest.raises(AliasNotFoundError):
        await repo.get_alias("app", "prod", as_of=deleted_at)
    assert await repo.get_alias("app", "prod", as_of=datetime.now(timezone.utc)) == third
    with pytest.raises(NoHistoryError):
        await repo.get_alias("app", "prod", as_of=first.update_at - tick)


async def test_as_of_takes_any_timezone(repo: Repository) -> None:
    await published(repo, count=1)
    alias = await repo.put_alias("app", "prod", 1)
    east = timezone(timedelta(hours=9))
    assert await repo.get_alias("app", "prod", as_of=alias.update_at.astimezone(east)) == alias


# -- the records themselves ------------------------------------------------------------


async def test_history_lives_in_its_own_partition(repo: Repository, dynamodb: Any) -> None:
    await published(repo, count=1)
    await repo.put_alias("app", "prod", 1)
    items = artifact_items((await dynamodb.scan(TableName=TABLE))["Items"])
    history = [i for i in items if i["pk"]["S"] == "__app-alias-history"]
    assert len(history) == 1
    assert {i["pk"]["S"] for i in items} == {"app", "__app-alias", "__app-alias-history"}
    await repo.purge_artifact("app")
    assert artifact_items((await dynamodb.scan(TableName=TABLE))["Items"]) == []


async def test_records_written_before_sequence_numbers_are_skipped(
    repo: Repository, dynamodb: Any
) -> None:
    """History written by the build before sequence numbers (sort key
    ``{alias}#{changed_at}#{nonce}``, no ``seq``) sorts after every new record in a
    newest-first query. It is skipped: the alias keeps working, and its state then
    shows as a change made outside versioned_async."""
    await published(repo)
    await repo.put_alias("app", "prod", 1)
    moved = await repo.put_alias("app", "prod", 2)
    found = await dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "__app-alias-history"}},
    )
    for item in found["Items"]:  # rewritten as the earlier build wrote them
        await dynamodb.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
        legacy = {k: v for k, v in item.items() if k != "seq"}
        legacy["sk"] = {"S": f"prod#{item['changed_at']['S']}#0badc0de"}
        await dynamodb.put_item(TableName=TABLE, Item=legacy)

    assert await repo.get_alias("app", "prod") == moved
    assert await repo.get_alias("app", "prod", as_of=datetime.now(timezone.utc)) == moved
    [change] = (await repo.list_alias_history("app", "prod")).changes
    assert (change.action, change.recorded, targets(change)) == (
        "external",
        False,
        (None, ("2", None, None)),
    )
    with pytest.raises(NoHistoryError):
        await repo.rollback_alias("app", "prod")

    await repo.put_alias("app", "prod", 3)
    changes = [c async for c in repo.iter_alias_history("app", "prod")]
    assert [(c.action, targets(c)) for c in changes] == [
        ("put", (("2", None, None), ("3", None, None))),
        ("external", (None, ("2", None, None))),
    ]
    back = await repo.rollback_alias("app", "prod")
    assert back is not None
    assert back.version == "2"
    assert await repo.get_alias("app", "prod", as_of=datetime.now(timezone.utc)) == back
    await repo.delete_alias("app", "prod")
    with pytest.raises(AliasNotFoundError):
        await repo.get_alias("app", "prod")
    await repo.purge_artifact("app")  # the old records go with the rest
    assert artifact_items((await dynamodb.scan(TableName=TABLE))["Items"]) == []


async def test_a_transaction_refused_for_good_is_not_retried_as_a_conflict(
    repo: Repository, dynamodb: Any, make_proxied_repo: RepoFactory, proxy: CountingProxy
) -> None:
    """A cancellation reason other than TransactionConflict (here ValidationError:
    a foreign writer stored version 2's ``alias_epoch`` as text, so the alias
    write's ``ADD alias_epoch 1`` cannot apply) is not a race: it is raised at
    once, as what it is, instead of being retried until "changed by another
    writer". Counted in requests: one transaction, not one per attempt."""
    await published(repo)
    await repo.put_alias("app", "prod", 1)
    await dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "app"}, "sk": {"S": "000002"}},
        UpdateExpression="SET alias_epoch = :text",
        ExpressionAttributeValues={":text": {"S": "seven"}},
    )
    async with make_proxied_repo() as proxied:
        proxy.reset_counts()
        with pytest.raises(BackendError) as caught:
            await proxied.put_alias("app", "prod", 2)
    assert not isinstance(caught.value, (ConflictError, BackendUnavailableError))
    # DynamoDB (and ministack) cancel the transaction with reason ValidationError;
    # moto refuses the whole call with a ValidationException instead
    assert caught.value.code in ("ValidationError", "ValidationException")
    assert proxy.count("TransactWriteItems") == 1
    assert (await repo.get_alias("app", "prod")).version == "1"
