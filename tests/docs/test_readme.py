"""Every code block of README.md and of the pages in docs/ runs as written, against the
moto server.

A file's ``python`` and ``bash`` blocks run in order, as a reader runs them one after
another against one ``versioned-async serve-local``: python blocks in this process
(``AWS_ENDPOINT_URL`` pointing at the server), bash blocks in ``bash -euo pipefail``
with the installed ``versioned-async`` first on PATH; both in a scratch directory that
is also ``HOME``. Each file gets a freshly wiped server. ``console`` blocks (a
terminal transcript: commands after ``$ ``, then output) are illustration, and
``json``/``text`` blocks are data: shown, not run. Any other fence, a bare one
included, fails :func:`test_every_block_is_run_or_marked_as_shown`, so no block is
left unrun by accident. README's first two blocks, its install-and-run commands, run
in tests/integration/test_demo.py and tests/unit/test_ci_command.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))

RUN = ("python", "bash")
SHOWN = ("console", "json", "text")
#: README's install-and-run commands, run by test_demo.py and test_ci_command.py
README_COMMANDS = 2

FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    flags=re.MULTILINE | re.DOTALL,
)


class Block:
    def __init__(self, path: Path, lang: str, body: str, line: int) -> None:
        self.path, self.lang, self.body, self.line = path, lang, body, line

    def __repr__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} ({self.lang or 'bare'})"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path``, in order, their indentation removed."""
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        indent = len(match["indent"])
        body = "".join(line[indent:] for line in match["body"].splitlines(keepends=True))
        line = text.count("\n", 0, match.start("body")) + 1  # the body's first line
        found.append(Block(path, match["lang"].strip(), body, line))
    return found


def runnable(path: Path) -> list[Block]:
    found = [b for b in blocks(path) if b.lang in RUN]
    if path == README:
        commands, found = found[:README_COMMANDS], found[README_COMMANDS:]
        assert [b.lang for b in commands] == ["bash", "bash"], commands
        assert all("pip install -e" in b.body for b in commands), commands
    return found


FILES = [README, *(page for page in DOCS if runnable(page))]


def test_readme_and_the_docs_have_blocks_to_run() -> None:
    assert {b.lang for b in runnable(README)} == set(RUN), "README shows python and bash"
    pages = {p.name for p in FILES}
    assert {"tour.md", "cache.md", "cli.md", "s3-only.md"} <= pages, pages


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_every_block_is_run_or_marked_as_shown(path: Path) -> None:
    unknown = [b for b in blocks(path) if b.lang not in RUN + SHOWN]
    assert not unknown, f"fence them as one of {RUN + SHOWN}: {unknown}"
    fences = len(re.findall(r"^[ ]*```", path.read_text(), flags=re.MULTILINE))
    assert fences == 2 * len(blocks(path)), f"{path.name}: a fence is not closed"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_the_blocks_run(
    path: Path, endpoint_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # endpoint_url=None in the blocks: botocore's AWS_ENDPOINT_URL sends them to moto
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    shell_env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    for block in runnable(path):
        if block.lang == "python":
            # blank lines first, so a traceback names the line of the .md file
            code = compile("\n" * (block.line - 1) + block.body, str(path), "exec")
            exec(code, {"__name__": "__docs__"})
        else:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block.body],
                cwd=tmp_path,
                env=shell_env,
                capture_output=True,
                text=True,
                timeout=240,
                check=False,
            )
            assert done.returncode == 0, f"{block} exited {done.returncode}:\n{done.stderr}"
