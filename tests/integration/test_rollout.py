"""Progressive roll-outs (Repository.rollout): steps, checks, put-backs, races, dry runs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.conftest import TableRepoFactory
from tests.integration.conftest import published
from tests.proxy import CountingProxy
from versioned_async import Alias, Repository, RolloutResult
from versioned_async.exc import (
    AliasNotFoundError,
    ArtifactNotFoundError,
    ConcurrentModificationError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RolloutFailedError,
)

Target = tuple[str, str | None, int | None]


def target(alias: Alias | None) -> Target | None:
    if alias is None:
        return None
    return (alias.version, alias.secondary_version, alias.secondary_version_weight)


async def history(repo: Repository, alias: str = "prod") -> list[Any]:
    return [c async for c in repo.iter_alias_history("app", alias)]


class Checks:
    """A check that records what it was shown and answers from a script (default: healthy)."""

    def __init__(self, *answers: bool | BaseException) -> None:
        self.seen: list[Target | None] = []
        self.answers = list(answers)

    async def __call__(self, alias: Alias) -> bool:
        self.seen.append(target(alias))
        answer = self.answers.pop(0) if self.answers else True
        if isinstance(answer, BaseException):
            raise answer
        return answer


async def test_each_step_is_written_checked_and_recorded_as_a_rollout(repo: Repository) -> None:
    await published(repo)
    start = await repo.put_alias("app", "prod", 1)
    check = Checks()

    result = await repo.rollout(
        "app", "prod", 2, bake_seconds=0, check=check, actor="ci", reason="JIRA-7"
    )

    expected = [("1", "2", 10), ("1", "2", 50), ("2", None, None)]
    assert isinstance(result, RolloutResult)
    assert (result.name, result.alias, result.to_version, result.dry_run) == (
        "app", "prod", "2", False
    )  # fmt: skip
    assert result.start == start
    assert [target(a) for a in result.steps] == expected
    assert check.seen == expected  # each step checked once, as written
    assert result.final == result.steps[-1] == await repo.get_alias("app", "prod")
    changes = await history(repo)
    assert [c.action for c in changes] == ["rollout", "rollout", "rollout", "put"]
    assert [target(c.after) for c in changes[:3]] == expected[::-1]
    assert [c.after for c in changes[:3]] == result.steps[::-1]
    assert [c.reason for c in changes[:3]] == [
        "rollout to 2: step 3/3 (100%); JIRA-7",
        "rollout to 2: step 2/3 (50%); JIRA-7",
        "rollout to 2: step 1/3 (10%); JIRA-7",
    ]
    assert {c.actor for c in changes[:3]} == {"ci"}
    assert await result.final.get_version_content() == b"v2"


async def test_without_a_check_it_just_bakes_and_moves_on(repo: Repository) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1)
    result = await repo.rollout("app", "prod", 3, steps=[100], bake_seconds=0)
    assert [target(a) for a in result.steps] == [("3", None, None)]
    assert target(await repo.get_alias("app", "prod")) == ("3", None, None)


async def test_a_failed_check_at_a_middle_step_puts_back_the_exact_start(
    repo: Repository,
) -> None:
    await published(repo)
    start = await repo.put_alias("app", "prod", 1, secondary_version=3, secondary_version_weight=20)
    check = Checks(True, False)

    with pytest.raises(RolloutFailedError) as caught:
        await repo.rollout("app", "prod", 2, bake_seconds=0, check=check, reason="JIRA-8")

    err = caught.value
    assert (err.name, err.alias, err.step, err.why) == ("app", "prod", 50, "check returned False")
    assert err.__cause__ is None
    assert check.seen == [("1", "2", 10), ("1", "2", 50)]  # no step after the failed one
    now = await repo.get_alias("app", "prod")
    assert target(now) == target(start) == ("1", "3", 20)
    changes = await history(repo)
    assert [c.action for c in changes] == ["rollback", "rollout", "rollout", "put"]
    back = changes[0]
    assert target(back.before) == ("1", "2", 50)
    assert back.after == now
    assert back.reason == (
        "rollout to 2: step 2/3 (50%) failed: check returned False; put back as it started; JIRA-8"
    )


async def test_a_check_that_raises_puts_back_and_chains_its_exception(repo: Repository) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1)
    boom = ConnectionError("error rate 12%")

    with pytest.raises(RolloutFailedError) as caught:
        await repo.rollout("app", "prod", 2, bake_seconds=0, check=Checks(boom))

    assert caught.value.__cause__ is boom
    assert caught.value.step == 10
    assert caught.value.why == "check raised ConnectionError: error rate 12%"
    assert target(await repo.get_alias("app", "prod")) == ("1", None, None)
    assert [c.action for c in await history(repo)] == ["rollback", "rollout", "put"]


async def test_a_check_after_the_last_step_can_still_put_back(repo: Repository) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1)
    with pytest.raises(RolloutFailedError) as caught:
        await repo.rollout("app", "prod", 2, bake_seconds=0, check=Checks(True, True, False))
    assert caught.value.step == 100
    assert target(await repo.get_alias("app", "prod")) == ("1", None, None)


async def test_a_check_answering_neither_true_nor_false_fails_the_step(repo: Repository) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1)

    async def forgot_to_return(alias: Alias) -> Any:
        return None

    with pytest.raises(RolloutFailedError, match="check returned None"):
        await repo.rollout("app", "prod", 2, bake_seconds=0, check=forgot_to_return)
    assert target(await repo.get_alias("app", "prod")) == ("1", None, None)


async def test_someone_else_moving_the_alias_stops_the_rollout_without_clobbering(
    repo: Repository, other: Repository
) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1)
    theirs: list[Alias] = []

    async def meanwhile(alias: Alias) -> bool:
        if not theirs:
            theirs.append(await other.put_alias("app", "prod", 3, reason="hotfix"))
        return True

    with pytest.raises(ConcurrentModificationError) as caught:
        await repo.rollout("app", "prod", 2, bake_seconds=0, check=meanwhile)

    assert caught.value.actual == theirs[0].update_at
    assert await repo.get_alias("app", "prod") == theirs[0]
    changes = await history(repo)
    assert [(c.action, c.reason) for c in changes[:2]] == [
        ("put", "hotfix"),
        ("rollout", "rollout to 2: step 1/3 (10%)"),
    ]


async def test_a_failed_check_does_not_put_back_over_someone_elses_change(
    repo: Repository, other: Repository
) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1)
    theirs: list[Alias] = []

    async def moved_then_unhealthy(alias: Alias) -> bool:
        theirs.append(await other.put_alias("app", "prod", 3))
        return False

    with pytest.raises(ConcurrentModificationError):
        await repo.rollout("app", "prod", 2, bake_seconds=0, check=moved_then_unhealthy)
    assert await repo.get_alias("app", "prod") == theirs[0]
    assert "rollback" not in [c.action for c in await history(repo)]


async def test_a_failed_write_mid_rollout_puts_back_and_reraises(repo: Repository) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1)

    async def new_version_deleted(alias: Alias) -> bool:
        await repo.delete_artifact_version("app", 2)
        return True

    with pytest.raises(ArtifactNotFoundError):
        await repo.rollout("app", "prod", 2, bake_seconds=0, check=new_version_deleted)
    assert target(await repo.get_alias("app", "prod")) == ("1", None, None)
    changes = await history(repo)
    assert [c.action for c in changes] == ["rollback", "rollout", "put"]
    assert "failed: ArtifactNotFoundError" in (changes[0].reason or "")


async def test_the_put_back_is_logged_as_a_warning_only_when_the_error_does_not_say_it(
    repo: Repository, caplog: pytest.LogCaptureFixture
) -> None:
    """RolloutFailedError says the alias was put back, so its put-back is INFO; an error
    from a write (or a cancellation) does not, so the put-back is a WARNING."""
    caplog.set_level(logging.INFO, logger="versioned_async")
    await published(repo)
    await repo.put_alias("app", "prod", 1)

    def put_backs() -> list[int]:
        found = [r.levelno for r in caplog.records if "put back as it started" in r.getMessage()]
        caplog.clear()
        return found

    with pytest.raises(RolloutFailedError):
        await repo.rollout("app", "prod", 2, bake_seconds=0, check=Checks(False))
    assert put_backs() == [logging.INFO]

    async def new_version_deleted(alias: Alias) -> bool:
        await repo.delete_artifact_version("app", 2)
        return True

    with pytest.raises(ArtifactNotFoundError):
        await repo.rollout("app", "prod", 2, bake_seconds=0, check=new_version_deleted)
    assert put_backs() == [logging.WARNING]


async def test_cancelling_during_a_check_puts_back_and_propagates(repo: Repository) -> None:
    await published(repo)
    start = await repo.put_alias("app", "prod", 1)
    checking = asyncio.Event()

    async def hangs(alias: Alias) -> bool:
        checking.set()
        await asyncio.Event().wait()
        return True

    task = asyncio.ensure_future(repo.rollout("app", "prod", 2, bake_seconds=0, check=hangs))
    await asyncio.wait_for(checking.wait(), 30)
    assert target(await repo.get_alias("app", "prod")) == ("1", "2", 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert target(await repo.get_alias("app", "prod")) == target(start)
    changes = await history(repo)
    assert [c.action for c in changes] == ["rollback", "rollout", "put"]
    assert "failed: cancelled" in (changes[0].reason or "")


async def test_cancelling_during_the_bake_puts_back_and_propagates(repo: Repository) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1)
    task = asyncio.ensure_future(repo.rollout("app", "prod", 2, bake_seconds=3600))

    async def first_step_written() -> None:
        while target(await repo.get_alias("app", "prod")) != ("1", "2", 10):  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(first_step_written(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert target(await repo.get_alias("app", "prod")) == ("1", None, None)


async def test_a_write_in_flight_when_cancelled_lands_and_is_put_back(
    repo: Repository, make_proxied_table_repo: TableRepoFactory, proxy: CountingProxy
) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1)
    async with make_proxied_table_repo(actor="ci") as slow:
        proxy.delay = 0.3  # each request waits in the proxy before it is forwarded
        task = asyncio.ensure_future(slow.rollout("app", "prod", 2, bake_seconds=3600))
        while not proxy.count("TransactWriteItems"):  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.01)
        task.cancel()  # the first step's write is on its way to the server
        with pytest.raises(asyncio.CancelledError):
            await task
    assert target(await repo.get_alias("app", "prod")) == ("1", None, None)
    assert [c.action for c in await history(repo)] == ["rollback", "rollout", "put"]


async def test_a_dry_run_plans_and_writes_nothing(repo: Repository) -> None:
    await published(repo)
    start = await repo.put_alias("app", "prod", 1, secondary_version=3, secondary_version_weight=5)
    before = await history(repo)
    check = Checks(False)

    result = await repo.rollout(
        "app", "prod", 2, steps=(25, 100), bake_seconds=3600, check=check, dry_run=True
    )

    assert result.dry_run
    assert result.final is None
    assert result.start == start
    assert [target(a) for a in result.steps] == [("1", "2", 25), ("2", None, None)]
    assert {a.update_at for a in result.steps} == {start.update_at}
    assert check.seen == []
    assert await repo.get_alias("app", "prod") == start
    assert await history(repo) == before


async def test_a_canary_already_on_the_new_version_continues_from_its_weight(
    repo: Repository,
) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1, secondary_version=2, secondary_version_weight=30)
    result = await repo.rollout("app", "prod", 2, bake_seconds=0)
    assert [target(a) for a in result.steps] == [("1", "2", 50), ("2", None, None)]


@pytest.mark.parametrize(
    ("steps", "error"),
    [
        ((), InvalidArgumentError),
        ((10, 50), InvalidArgumentError),
        ((50, 10, 100), InvalidArgumentError),
        ((10, 10, 100), InvalidArgumentError),
        ((0, 100), InvalidArgumentError),
        ((10, 150), InvalidArgumentError),
        ((10.5, 100), InvalidArgumentTypeError),
        ("10,50,100", InvalidArgumentTypeError),
    ],
)
async def test_bad_steps_are_refused_before_anything_is_written(
    repo: Repository, steps: Any, error: type[Exception]
) -> None:
    await published(repo)
    start = await repo.put_alias("app", "prod", 1)
    with pytest.raises(error, match="steps"):
        await repo.rollout("app", "prod", 2, steps=steps, bake_seconds=0)
    assert await repo.get_alias("app", "prod") == start
    assert len(await history(repo)) == 1


async def test_bad_targets_and_arguments_are_refused_clearly(repo: Repository) -> None:
    await published(repo)
    await repo.put_alias("app", "prod", 1)
    with pytest.raises(AliasNotFoundError):
        await repo.rollout("app", "staging", 2, bake_seconds=0)
    with pytest.raises(ArtifactNotFoundError):
        await repo.rollout("app", "prod", 9, bake_seconds=0)
    with pytest.raises(InvalidArgumentError, match="already points at version '1'"):
        await repo.rollout("app", "prod", 1, bake_seconds=0)
    with pytest.raises(InvalidArgumentError, match="bake_seconds"):
        await repo.rollout("app", "prod", 2, bake_seconds=-1)
    with pytest.raises(InvalidArgumentTypeError, match="check"):
        await repo.rollout("app", "prod", 2, check=True)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentTypeError, match="dry_run"):
        await repo.rollout("app", "prod", 2, dry_run="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="reason is too long"):
        await repo.rollout("app", "prod", 2, reason="r" * 1020, dry_run=True)
    assert len(await history(repo)) == 1
