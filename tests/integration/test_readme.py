"""README's tour runs as written, against the moto server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_a_python_tour() -> None:
    assert python_blocks(), "README.md should show the API in a python block"


def test_readme_tour_runs(endpoint_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # endpoint_url=None in the tour: botocore's AWS_ENDPOINT_URL sends it to moto
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    for block in python_blocks():
        exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})
