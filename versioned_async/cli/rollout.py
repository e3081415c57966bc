"""``rollout``: move an alias to a new version in steps of traffic, checking each step.

The library does the stepping, the recording and the rollback; this module
only narrates each step and runs the user's ``--check`` command as the health
check, in a subprocess that never outlives the roll-out.
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any

import click

from .. import exc
from .._wording import shell_word
from ..models import Alias, RolloutResult
from ..repository import Repository
from .output import emit, json_option, target, when
from .runtime import ExitCode, Settings, fail

#: what a --check command is told about the alias it checks
_CHECK_ENVIRONMENT = (
    "VERSIONED_ARTIFACT",
    "VERSIONED_ALIAS",
    "VERSIONED_VERSION",
    "VERSIONED_SECONDARY_VERSION",
    "VERSIONED_WEIGHT",
)


async def _run_check(command: str, alias: Alias) -> int:
    """Run the shell ``command`` about ``alias``; its exit status. Its output goes to stderr."""
    told = (
        alias.name,
        alias.alias,
        alias.version,
        alias.secondary_version or "",
        str(alias.secondary_version_weight or 0),
    )
    process = await asyncio.create_subprocess_shell(
        command,
        env={**os.environ, **dict(zip(_CHECK_ENVIRONMENT, told, strict=True))},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await process.communicate()
    except BaseException:  # cancelled (Ctrl-C): the check must not outlive the roll-out
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if output:
        click.echo(output.decode(errors="replace"), err=True, nl=False)
    assert process.returncode is not None
    return process.returncode


def _parse_steps(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of percents, such as 10,50,100", ctx, param
        ) from None


@click.command("rollout")
@click.argument("name")
@click.argument("alias")
@click.argument("to_version")
@click.option(
    "--steps",
    default="10,50,100",
    show_default=True,
    callback=_parse_steps,
    metavar="P1,P2,...",
    help="Percent of traffic on TO_VERSION at each step, increasing, ending at 100.",
)
@click.option(
    "--bake-seconds",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait after each step before checking it.",
)
@click.option(
    "--check",
    "command",
    metavar="COMMAND",
    help="Shell command run after each bake; exit status 0 = healthy, else roll back. It gets "
    + ", ".join(_CHECK_ENVIRONMENT)
    + " (percent on the secondary; 0 without one).",
)
@click.option("--dry-run", is_flag=True, help="Print the steps; write nothing, run no check.")
@click.option("--actor", help="Who rolls out, for the alias history (default: AWS identity).")
@click.option("--reason", help="Why, for the alias history.")
@json_option
@click.pass_obj
def rollout(
    settings: Settings,
    name: str,
    alias: str,
    to_version: str,
    steps: tuple[int, ...],
    bake_seconds: float,
    command: str | None,
    dry_run: bool,
    actor: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    """Move ALIAS of NAME to TO_VERSION in steps of traffic, checking each step.

    Each step below 100 sends that percent of traffic to TO_VERSION (the rest
    stays on the alias's version); at 100 the alias points at TO_VERSION alone.
    After each step it waits --bake-seconds, then runs --check: a failing check,
    an error or Ctrl-C puts the alias back as it started and exits non-zero.
    Every step is recorded in the alias history (see `alias history`). If
    someone else changes the alias meanwhile, the roll-out stops and leaves
    their change alone. Needs --backend dynamodb.
    """
    say = functools.partial(click.echo, err=as_json)  # --json keeps stdout for the document
    options: dict[str, Any] = {
        "steps": steps,
        "bake_seconds": bake_seconds,
        "actor": actor,
        "reason": reason,
    }

    #: exit statuses of the --check runs that failed (the last one stopped the roll-out)
    failed_checks: list[int] = []

    async def work(repo: Repository) -> RolloutResult:
        plan = await repo.rollout(name, alias, to_version, dry_run=True, **options)
        weights = [
            100 if a.secondary_version is None else a.secondary_version_weight or 0
            for a in plan.steps
        ]
        say(
            f"{'dry run: would roll' if dry_run else 'rolling'} out version {plan.to_version} "
            f"to alias {alias!r} of {name!r} (now {target(plan.start)}) in "
            f"{len(weights)} step{'s' * (len(weights) > 1)}: "
            f"{', '.join(f'{w}%' for w in weights)}; {bake_seconds:g} s bake each"
        )
        if dry_run:
            for number, step in enumerate(plan.steps, start=1):
                say(f"step {number}/{len(plan.steps)}  {target(step)}")
            return plan
        numbers = {target(step): n for n, step in enumerate(plan.steps, start=1)}
        failed_checks.clear()

        async def check(now: Alias) -> bool:
            status = 0 if command is None else await _run_check(command, now)
            verdict = (
                "baked"
                if command is None
                else "healthy"
                if status == 0
                else f"unhealthy (check exited with {status})"
            )
            number = numbers.get(target(now), "?")
            say(f"step {number}/{len(plan.steps)}  {target(now)}  {verdict}")
            if status != 0:
                failed_checks.append(status)
            return status == 0

        return await repo.rollout(name, alias, to_version, check=check, **options)

    try:
        result = settings.run_dynamodb(
            "rollout", "keeps no alias history to record the steps and roll back from", work
        )
    except exc.RolloutFailedError as err:
        if not failed_checks or err.__cause__ is not None:
            raise  # not the --check command's verdict: the library's message says what
        fail(
            f"roll-out of alias {alias!r} of {name!r} failed at {err.step}%: the --check "
            f"command exited with {failed_checks[-1]}; the alias was rolled back to where it "
            f"started (see `versioned-async alias history {shell_word(name)} "
            f"{shell_word(alias)}`)",
            ExitCode.ERROR,
        )
    except exc.ConcurrentModificationError as err:
        moment = "it was deleted" if err.actual is None else f"at {when(err.actual)}"
        fail(
            f"alias {alias!r} of {name!r} was changed by someone else during the roll-out "
            f"({moment}): the roll-out stopped and left their change in place; see "
            f"`versioned-async alias history {name} {alias}`",
            ExitCode.ERROR,
        )

    def show_done(result: RolloutResult) -> None:
        if not dry_run:
            say(f"done: alias {alias!r} of {name!r} points at {target(result.final)}")

    emit(result, as_json, show_done)
