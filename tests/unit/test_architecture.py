"""docs/ARCHITECTURE.md stays true: its module map names every module, and only
modules; the modules it calls pure import nothing that does I/O."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "versioned_async"
DOC = ROOT / "docs" / "ARCHITECTURE.md"

#: what a module of the pure decisions may not import: AWS, the cache's storage, I/O
IMPURE = ("aiobotocore", "botocore", "aiohttp", "diskcache", "versioned_async._aws")


def section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def mapped_modules() -> list[str]:
    """The first cell of each row of the module map."""
    return re.findall(r"^\| `([^`]+\.py)` \|", section("Module map"), flags=re.M)


def package_modules() -> set[str]:
    return {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")}


def test_the_module_map_names_every_module_once() -> None:
    mapped = mapped_modules()
    assert len(mapped) == len(set(mapped)), "a module is in the map twice"
    assert set(mapped) - package_modules() == set(), "the map names what is not a module"
    assert package_modules() - set(mapped) == set(), "a module is missing from the map"


def test_the_path_of_a_cached_fetch_names_modules_that_exist() -> None:
    named = set(re.findall(r"`([\w/]+\.py)`", section("One cached `get_alias_content`")))
    assert named, "the section names the modules it passes through"
    assert named - package_modules() == set()


def test_the_decisions_import_nothing_that_does_io() -> None:
    for path in sorted((PACKAGE / "_policy").glob("*.py")):
        tree = ast.parse(path.read_text())
        imported: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative to versioned_async._policy
                    parent = ["versioned_async", "_policy"][: 3 - node.level]
                    base = ".".join([*parent, base] if base else parent)
                imported.append(base)
        storage = [
            m
            for m in imported
            if m.startswith("versioned_async.cache") and m != ("versioned_async.cache.keys")
        ]
        assert [m for m in imported if m.startswith(IMPURE)] == [], path.name
        assert storage == [], f"{path.name} imports the cache's storage: {storage}"
