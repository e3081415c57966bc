"""The quick start runs end to end and tells the truth about what happened."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from versioned_async.demo import run_demo


async def test_demo_walks_through_the_whole_lifecycle(endpoint_url: str) -> None:
    lines: list[str] = []
    await run_demo(endpoint_url, say=lines.append)
    text = "\n".join(lines)
    for version in ("1", "2", "3"):
        assert f"published version {version} " in text
    assert "development -> LATEST" in text
    assert "staging -> v2" in text
    assert "production -> v2; services now read schema 2" in text
    assert "rollback: production -> v2; content is schema 2 again" in text
    assert "deleted ['1'], kept ['LATEST', '3', '2']" in text
    for weight in (10, 50):
        line = next(x for x in lines if f"+ v3 ({weight}%)" in x and "observed" in x)
        canary = int(re.search(r"v3: (\d+) ", line).group(1))  # type: ignore[union-attr]
        # 1,000 draws at p = weight/100: five standard deviations either side
        sd = (1000 * weight / 100 * (1 - weight / 100)) ** 0.5
        assert abs(canary - 10 * weight) < 5 * sd, line


def test_readme_quick_start_command_runs() -> None:
    """`python -m versioned_async demo`, exactly as README's first command runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "versioned_async", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Started an embedded moto server at http://127.0.0.1:" in result.stdout
    assert "Done: the whole lifecycle ran" in result.stdout
