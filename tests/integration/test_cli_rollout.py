"""`versioned-async rollout` and `versioned-async alias history`, driven as in test_cli.py."""

from __future__ import annotations

import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tests.integration import test_cli
from versioned_async import Repository
from versioned_async.cli import main

# the command-line harness of test_cli.py: one botocore session, a bootstrapped repository
one_session = test_cli.one_session
cli = test_cli.cli
Run = test_cli.Run
as_json = test_cli.as_json
assert_one_error_line = test_cli.assert_one_error_line
in_repo = test_cli.in_repo


def published(cli: Run, name: str = "app", count: int = 3) -> None:
    for n in range(count):
        cli("put", name, "-", input=f"v{n + 1}".encode())
        cli("publish", name)


def target(endpoint_url: str) -> tuple[Any, ...]:
    alias = in_repo(endpoint_url, lambda r: r.get_alias("app", "prod"))
    return (alias.version, alias.secondary_version, alias.secondary_version_weight)


def actions(endpoint_url: str) -> list[str]:
    async def history(repo: Repository) -> list[str]:
        return [c.action async for c in repo.iter_alias_history("app", "prod")]

    return list(in_repo(endpoint_url, history))


def test_help_names_rollout_and_alias_history() -> None:
    top = CliRunner().invoke(main, ["--help"]).stdout
    assert "rollout" in top
    assert "roll-out failed (rolled back)" in " ".join(top.split())
    assert "history" in CliRunner().invoke(main, ["alias", "--help"]).stdout
    text = " ".join(CliRunner().invoke(main, ["rollout", "--help"]).stdout.split())
    for fragment in ("--steps", "--bake-seconds", "--check", "--dry-run", "VERSIONED_WEIGHT"):
        assert fragment in text


def test_rollout_prints_each_step_and_records_it(cli: Run, endpoint_url: str) -> None:
    published(cli)
    cli("alias", "set", "app", "prod", "1")

    out = cli(
        "rollout", "app", "prod", "2", "--bake-seconds", "0", "--actor", "ci", "--reason", "JIRA-1"
    ).stdout

    assert out.splitlines() == [
        "rolling out version 2 to alias 'prod' of 'app' (now 1) in 3 steps: 10%, 50%, 100%; "
        "0 s bake each",
        "step 1/3  1 (+2 at 10%)  baked",
        "step 2/3  1 (+2 at 50%)  baked",
        "step 3/3  2  baked",
        "done: alias 'prod' of 'app' points at 2",
    ]
    assert target(endpoint_url) == ("2", None, None)
    lines = cli("alias", "history", "app", "prod").stdout.splitlines()
    assert len(lines) == 4
    assert (
        "  rollout   1 (+2 at 50%) -> 2  by ci  rollout to 2: step 3/3 (100%); JIRA-1" in lines[0]
    )
    assert "  rollout   1 -> 1 (+2 at 10%)  by ci  rollout to 2: step 1/3 (10%); JIRA-1" in lines[2]
    assert "  put       (none) -> 1" in lines[3]


def test_a_failing_check_command_rolls_back_and_exits_non_zero(
    cli: Run, endpoint_url: str, tmp_path: Path
) -> None:
    published(cli)
    cli("alias", "set", "app", "prod", "1", "--canary", "3", "--weight", "5")
    seen = tmp_path / "seen"
    told = " ".join(
        f'"${variable}"'
        for variable in (
            "VERSIONED_ARTIFACT",
            "VERSIONED_ALIAS",
            "VERSIONED_VERSION",
            "VERSIONED_SECONDARY_VERSION",
            "VERSIONED_WEIGHT",
        )
    )
    check = f'echo {told} >> {shlex.quote(str(seen))}; test "$VERSIONED_WEIGHT" != 50'

    result = cli("rollout", "app", "prod", "2", "--bake-seconds", "0", "--check", check, code=1)

    assert_one_error_line(result, "failed at 50%", "rolled back")
    assert seen.read_text().splitlines() == ["app prod 1 2 10", "app prod 1 2 50"]
    assert "step 2/3  1 (+2 at 50%)  unhealthy (check exited with 1)" in result.stdout
    assert target(endpoint_url) == ("1", "3", 5)
    assert actions(endpoint_url)[:3] == ["rollback", "rollout", "rollout"]


def test_a_failed_rollout_in_a_process_prints_one_error_line_in_cli_words(
    cli: Run, endpoint_url: str
) -> None:
    """As a user runs it: no log line from the put-back before the error, and the error
    tells of the --check command, not of a Python check returning False."""
    published(cli)
    cli("alias", "set", "app", "prod", "1")
    done = subprocess.run(
        [test_cli.SCRIPT, "rollout", "app", "prod", "2", "--bake-seconds=0", "--check=exit 3"],
        env=test_cli.script_env(endpoint_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: roll-out of alias 'prod' of 'app' failed at 10%: the --check command exited "
        "with 3; the alias was rolled back to where it started (see `versioned-async alias "
        "history app prod`)"
    ]
    assert "step 1/3  1 (+2 at 10%)  unhealthy (check exited with 3)" in done.stdout
    assert target(endpoint_url) == ("1", None, None)


def test_a_healthy_check_sees_the_final_state_and_json_holds_the_result(
    cli: Run, endpoint_url: str, tmp_path: Path
) -> None:
    published(cli)
    cli("alias", "set", "app", "prod", "1")
    seen = tmp_path / "seen"
    check = (
        f'echo "$VERSIONED_VERSION|$VERSIONED_SECONDARY_VERSION|$VERSIONED_WEIGHT" '
        f">> {shlex.quote(str(seen))}; echo checked"
    )

    result = cli(
        "rollout", "app", "prod", "3",
        "--steps", "20,100", "--bake-seconds", "0", "--check", check, "--json",
    )  # fmt: skip

    document = as_json(result)  # stdout holds the document alone
    assert (document["to_version"], document["dry_run"]) == ("3", False)
    assert [(s["version"], s["secondary_version"]) for s in document["steps"]] == [
        ("1", "3"),
        ("3", None),
    ]
    assert document["final"] == document["steps"][-1]
    assert seen.read_text().splitlines() == ["1|3|20", "3||0"]
    assert "step 2/2  3  healthy" in result.stderr
    assert result.stderr.count("checked\n") == 2  # the check's own output, on stderr
    assert target(endpoint_url) == ("3", None, None)


def test_dry_run_prints_the_plan_and_writes_nothing(cli: Run, endpoint_url: str) -> None:
    published(cli)
    cli("alias", "set", "app", "prod", "1")

    out = cli("rollout", "app", "prod", "2", "--dry-run", "--check", "exit 1").stdout

    assert out.splitlines() == [
        "dry run: would roll out version 2 to alias 'prod' of 'app' (now 1) in 3 steps: "
        "10%, 50%, 100%; 60 s bake each",
        "step 1/3  1 (+2 at 10%)",
        "step 2/3  1 (+2 at 50%)",
        "step 3/3  2",
    ]
    assert target(endpoint_url) == ("1", None, None)
    assert actions(endpoint_url) == ["put"]
    planned = as_json(cli("rollout", "app", "prod", "2", "--dry-run", "--json"))
    assert planned["dry_run"] is True
    assert planned["final"] is None
    assert len(planned["steps"]) == 3


def test_a_change_by_someone_else_mid_rollout_stops_it_and_says_so(
    cli: Run, endpoint_url: str
) -> None:
    published(cli)
    cli("alias", "set", "app", "prod", "1")
    script = shlex.quote(test_cli.SCRIPT)
    meanwhile = f'[ "$VERSIONED_WEIGHT" != 10 ] || {script} alias set app prod 3 >/dev/null'

    result = cli("rollout", "app", "prod", "2", "--bake-seconds", "0", "--check", meanwhile, code=1)

    assert_one_error_line(result, "changed by someone else during the roll-out", "their change")
    assert target(endpoint_url) == ("3", None, None)
    assert actions(endpoint_url) == ["put", "rollout", "put"]


def test_bad_steps_and_targets_are_usage_errors(cli: Run, endpoint_url: str) -> None:
    published(cli)
    cli("alias", "set", "app", "prod", "1")
    assert "10,x" in cli("rollout", "app", "prod", "2", "--steps", "10,x", code=2).stderr
    assert_one_error_line(
        cli("rollout", "app", "prod", "2", "--steps", "50,10,100", code=2), "strictly increasing"
    )
    assert_one_error_line(cli("rollout", "app", "prod", "2", "--steps", "10,50", code=2), "100")
    assert_one_error_line(cli("rollout", "app", "prod", "1", code=2), "already points at")
    assert_one_error_line(cli("rollout", "app", "prod", "9", code=3), "'9'")
    assert_one_error_line(cli("rollout", "app", "staging", "2", code=3), "'staging'")
    assert (
        "--bake-seconds"
        in cli("rollout", "app", "prod", "2", "--bake-seconds", "-1", code=2).stderr
    )
    assert actions(endpoint_url) == ["put"]


def test_bad_steps_are_named_as_the_steps_flag(cli: Run) -> None:
    published(cli)
    cli("alias", "set", "app", "prod", "1")
    for steps, why in (
        ("10,50", "must end at 100 (all traffic on the new version), got 10,50"),
        ("50,10,100", "must be strictly increasing, got 50,10,100"),
        ("0,100", "must each be from 1 to 100 (percent), got 0 in 0,100"),
    ):
        result = cli("rollout", "app", "prod", "2", "--steps", steps, code=2)
        assert result.stderr.splitlines() == [f"error: --steps {why}"]
    long_reason = "x" * 1024
    result = cli("rollout", "app", "prod", "2", "--reason", long_reason, code=2)
    assert result.stderr.startswith("error: --reason is too long: "), result.stderr


def test_alias_history_limits_and_prints_json(cli: Run) -> None:
    published(cli)
    for version in ("1", "2", "3"):
        cli("alias", "set", "app", "prod", version)
    assert len(cli("alias", "history", "app", "prod", "--limit", "2").stdout.splitlines()) == 2
    changes = as_json(cli("alias", "history", "app", "prod", "--json"))
    assert [(c["action"], c["after"]["version"]) for c in changes] == [
        ("put", "3"),
        ("put", "2"),
        ("put", "1"),
    ]
    assert changes[0]["before"]["version"] == "2"
    empty = cli("alias", "history", "app", "staging")
    assert empty.stdout == ""
    assert "no recorded changes" in empty.stderr
    cli("alias", "history", "app", "prod", "--limit", "0", code=2)


def test_ctrl_c_mid_rollout_puts_the_alias_back(cli: Run, endpoint_url: str) -> None:
    published(cli)
    cli("alias", "set", "app", "prod", "1")
    argv = [test_cli.SCRIPT, "rollout", "app", "prod", "2", "--bake-seconds", "3600"]
    proc = subprocess.Popen(
        argv,
        env=test_cli.script_env(endpoint_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while target(endpoint_url) != ("1", "2", 10):  # the first step is written, baking
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the first step was never written"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in err
    assert target(endpoint_url) == ("1", None, None)
    assert actions(endpoint_url) == ["rollback", "rollout", "put"]
