"""README's test command is exactly what CI runs (.ci/run), so a green CI proves README."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.DOTALL)
    [command] = [b for b in blocks[:2] if "pytest" in b]  # the second of the two commands
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    ci_test = ci[ci.index("# README's test command:") + 1]
    install = "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' && "
    assert command == install + ci_test
    assert re.search(r"^pip install .*-e '\.\[test\]'$", "\n".join(ci), flags=re.MULTILINE)
