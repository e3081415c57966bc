"""`_codec` is the only module that writes DynamoDB attribute values or alias JSON.

The package's source is read, not imported: a ``{"S": ...}`` dict, an
``x["S"]`` or ``x.get("S")`` anywhere else puts the wire format back into
orchestration, where it was before issue 16. Transactions and conditional
writes are built from the typed operations of :mod:`versioned_async._table_writes`
and encoded by :mod:`versioned_async._codec`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import versioned_async

PACKAGE = Path(versioned_async.__file__).parent

#: DynamoDB's attribute-value type descriptors
AV_TYPES = frozenset({"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"})

#: where the wire format belongs: `_codec` (a module or a package)
CODEC = "_codec"
#: modules that may write JSON: the codec (alias documents) and the CLI (its output)
JSON_WRITERS = frozenset({CODEC, "cli"})


def modules(skip: frozenset[str]) -> list[Path]:
    """The package's modules, but those whose first path part (``x.py`` or ``x/``) is in
    ``skip``."""
    return sorted(
        path
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0].removesuffix(".py") not in skip
    )


def is_av_type(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value in AV_TYPES


def attribute_value_uses(tree: ast.AST) -> list[int]:
    """Lines that build (``{"S": x}``) or take apart (``x["S"]``, ``x.get("S")``) an
    attribute value."""
    return sorted(
        {
            node.lineno
            for node in ast.walk(tree)
            if (isinstance(node, ast.Dict) and any(is_av_type(key) for key in node.keys))
            or (isinstance(node, ast.Subscript) and is_av_type(node.slice))
            or (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and bool(node.args)
                and is_av_type(node.args[0])
            )
        }
    )


def json_uses(tree: ast.AST) -> list[int]:
    """Lines that import :mod:`json` (or a name from it)."""
    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if (isinstance(node, ast.Import) and any(a.name == "json" for a in node.names))
        or (isinstance(node, ast.ImportFrom) and node.module == "json")
    )


def offenders(skip: frozenset[str], find: Callable[[ast.AST], list[int]]) -> list[str]:
    """``module:line`` of every finding of ``find`` in the modules not skipped."""
    found = []
    for path in modules(skip):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found += [f"{path.relative_to(PACKAGE)}:{line}" for line in find(tree)]
    return found


def test_the_scan_finds_every_form_of_attribute_value() -> None:
    source = 'a = {"S": x}\nb = raw["BOOL"]\nc = raw.get("N")\nd = {"pk": 1, "n": raw["sk"]}\n'
    assert attribute_value_uses(ast.parse(source)) == [1, 2, 3]


def test_the_scan_finds_the_attribute_values_of_the_codec() -> None:
    assert [m for m in offenders(frozenset(), attribute_value_uses) if m.startswith(CODEC)]


def test_the_scan_finds_json_imports() -> None:
    assert json_uses(ast.parse("import json\nfrom json import dumps\nimport jsonx\n")) == [1, 2]


def test_no_module_but_the_codec_writes_dynamodb_attribute_values() -> None:
    assert offenders({CODEC}, attribute_value_uses) == []


def test_no_module_but_the_codec_and_the_cli_uses_json() -> None:
    assert offenders(JSON_WRITERS, json_uses) == []
