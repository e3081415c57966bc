"""The quick start runs end to end and tells the truth about what happened."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from versioned_async.demo import run_demo


async def test_demo_walks_through_the_whole_lifecycle(endpoint_url: str) -> None:
    buffer = io.StringIO()
    await run_demo(endpoint_url, console=Console(file=buffer, width=200, color_system=None))
    text = buffer.getvalue()
    for version in ("1", "2", "3"):
        assert f"published version {version}\n" in text
    assert re.search(r"development\s+│\s+LATEST", text)
    assert re.search(r"staging\s+│\s+v2", text)
    assert "production -> v2; services now read schema 2" in text
    assert "rollback: production -> v2; content is schema 2" in text
    assert "failed at 50%: check returned False" in text
    history = [
        re.sub(r"\s+", " ", line.split("│")[2]).strip()
        for line in text.splitlines()
        if re.match(r"│ \d\d:\d\d:\d\d\.\d{3} │", line)
    ]
    assert history == ["rollback", "rollout", "rollout", "put", "put"], text
    assert "deleted ['1'], kept ['LATEST', '3', '2']" in text
    for weight in (10, 50):
        observed = re.search(rf"canary share {weight}%: observed v3 ([\d.]+)%", text)
        assert observed, text
        share = float(observed.group(1)) / 100
        # 1,000 draws at p = weight/100: five standard deviations either side
        sd = (weight / 100 * (1 - weight / 100) / 1000) ** 0.5
        assert abs(share - weight / 100) < 5 * sd
    assert re.search(r"first read\s+│[^│]+│\s+downloaded", text)
    assert re.search(r"second read\s+│[^│]+│\s+served locally", text)
    assert "cache: 1 download(s), 1 hit(s)" in text


def test_readme_quick_start_command_runs() -> None:
    """`versioned-async demo`, exactly as README's first command runs it."""
    script = Path(sys.executable).parent / "versioned-async"
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "&& versioned-async demo\n" in readme
    result = subprocess.run(
        [str(script), "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Started an embedded moto server at http://127.0.0.1:" in result.stdout
    assert "Done: the whole lifecycle ran" in result.stdout


def history_actions(text: str) -> list[str]:
    """The action column of the demo's alias history table, one per change."""
    return [
        re.sub(r"\s+", " ", line.split("│")[2]).strip()
        for line in text.splitlines()
        if re.match(r"│ \d\d:\d\d:\d\d\.\d{3} │", line)
    ]


async def test_the_staged_failure_is_announced_and_sticky_routing_follows_the_rollback(
    endpoint_url: str,
) -> None:
    buffer = io.StringIO()
    await run_demo(endpoint_url, console=Console(file=buffer, width=200, color_system=None))
    text = buffer.getvalue()
    rollout = text[text.index("6. Progressive roll-out") : text.index("7. Automatic rollback")]
    announced = rollout.index("Staged: this demo's health check fails on purpose at 50%")
    assert announced < rollout.index("production -> v2 (90%) + v3 (10%)")
    assert "check failed (staged, as announced): " in rollout
    lines = rollout.splitlines()
    assert lines[-2] == (
        "sticky routing by key after the rollback (production -> v2): "
        "user-17 -> v2, user-42 -> v2, user-99 -> v2"
    ), rollout
    during = re.search(r"sticky routing by key at 50% \(.*\): (.*)", rollout)
    assert during, rollout
    assert "-> v3" in during.group(1)  # some keys went to the canary while it ran


@pytest.mark.parametrize("columns", [80, 100])
def test_the_history_table_keeps_every_column_on_a_narrow_terminal(columns: int) -> None:
    """`versioned-async demo` at COLUMNS=80 and 100: every column of the history table
    is there, when and action whole; the long cells wrap instead."""
    script = Path(sys.executable).parent / "versioned-async"
    result = subprocess.run(
        [str(script), "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": str(columns)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    table = text[text.index("history of production") : text.index("8. Retention")]
    header = next(line for line in table.splitlines() if line.startswith("┃"))
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == [
        "when (UTC)",
        "action",
        "from",
        "to",
        "reason",
    ]
    assert history_actions(table) == ["rollback", "rollout", "rollout", "put", "put"], table
    assert max(len(line) for line in text.splitlines()) <= columns
