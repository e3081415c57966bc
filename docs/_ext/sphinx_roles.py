"""A griffe extension for the API reference: the docstrings' Sphinx roles become links.

The package's docstrings write references the Sphinx way (``:class:`Repository```,
``:meth:`~versioned_async.LocalCache.subscribe```), which mkdocstrings would print
as they are. For every object the reference shows (the ``__all__`` of the public
modules, and their public members), each role becomes an autorefs link to the
object it names, so ``mkdocs build --strict`` fails when the name is wrong:

- a name of the package that the reference shows: a link (``[`Repository`][...]``);
- a name of the package the reference does not show (a private helper), a builtin
  or another library's name: code, as written;
- a name that resolves to nothing: a warning, so the strict build fails.

A line ending in reST's ``::`` (an indented example follows) ends in ``:``.
"""

from __future__ import annotations

import builtins
import functools
import importlib.util
import logging
import re
from typing import Any

import griffe

#: the modules whose exports the reference documents (docs/reference/)
PUBLIC_MODULES = ("", "exc", "models", "cache", "testing")

ROLE = re.compile(
    r":(?:py:)?(?:class|meth|func|attr|exc|data|mod|obj|const):"
    r"`(?P<tilde>~?)(?P<text>[^`<]+?)(?:\s*<(?P<target>[^>`]+)>)?`"
)

#: a line ending in reST's literal-block marker
LITERAL = re.compile(r"(?<=\S)::$", flags=re.MULTILINE)

# mkdocs counts the warnings of its own loggers: --strict fails on this one
log = logging.getLogger("mkdocs.plugins.versioned_async_docs")


class SphinxRoles(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.path != "versioned_async":
            return
        shown = public_objects(pkg)
        for obj in shown.values():
            if obj.docstring is not None:
                text = ROLE.sub(functools.partial(link, pkg, obj, shown=shown), obj.docstring.value)
                # reST's "::" before an indented example: Markdown takes the indent alone
                obj.docstring.value = LITERAL.sub(":", text)


def public_objects(pkg: griffe.Module) -> dict[str, griffe.Object]:
    """Canonical path -> object, for everything the reference pages show."""
    shown: dict[str, griffe.Object] = {}

    def visit(member: griffe.Object | griffe.Alias) -> None:
        try:
            target = member.final_target if isinstance(member, griffe.Alias) else member
        except griffe.AliasResolutionError:
            return  # another library's object, re-exported
        if target.canonical_path in shown or not target.canonical_path.startswith(pkg.path):
            return
        shown[target.canonical_path] = target
        if target.is_class:
            for name, sub in target.all_members.items():
                if not name.startswith("_"):
                    visit(sub)

    for name in PUBLIC_MODULES:
        module = pkg[name] if name else pkg
        shown[module.path] = module
        for export in module.exports or ():
            visit(module[str(export)])
    return shown


def link(
    pkg: griffe.Module,
    where: griffe.Object,
    role: re.Match[str],
    *,
    shown: dict[str, griffe.Object],
) -> str:
    name = (role["target"] or role["text"]).strip()
    text = role["text"].strip()
    if role["tilde"]:
        text = text.rsplit(".", 1)[-1]
    found = find(pkg, where, name)
    if found is None:
        if is_outside(name):
            return f"`{text}`"
        log.warning("%s: %s names nothing in the package", where.path, role[0])
        return f"`{text}`"
    try:
        target = found.final_target if isinstance(found, griffe.Alias) else found
    except griffe.AliasResolutionError:
        return f"`{text}`"  # re-exported from another library
    canonical = target.canonical_path
    if canonical in shown:
        return f"[`{text}`][{canonical}]"
    return f"`{text}`"  # the package's, but not in the reference (private)


def find(
    pkg: griffe.Module, where: griffe.Object, name: str
) -> griffe.Object | griffe.Alias | None:
    """The object ``name`` names in the docstring of ``where``, like Sphinx would."""
    candidates = []
    if name.startswith(pkg.path + "."):
        candidates.append(name[len(pkg.path) + 1 :])
    elif name.startswith("."):
        module = where if where.is_module else where.module
        base = module.path.split(".")
        dots = len(name) - len(name.lstrip("."))
        up = dots - 1 if module.is_init_module else dots
        stem = base[: len(base) - up] if up else base
        candidates.append(".".join([*stem, name.lstrip(".")])[len(pkg.path) + 1 :])
    else:
        first, _, rest = name.partition(".")
        scope: griffe.Object | None = where
        while scope is not None:
            if first in scope.all_members:
                full = f"{scope.path}.{name}"
                candidates.append(full[len(pkg.path) + 1 :])
                break
            scope = scope.parent
        try:
            resolved = where.resolve(first)
        except griffe.NameResolutionError:
            pass
        else:
            full = f"{resolved}.{rest}" if rest else resolved
            if full.startswith(pkg.path + "."):
                candidates.append(full[len(pkg.path) + 1 :])
    for candidate in candidates:
        try:
            return pkg[candidate] if candidate else pkg
        except (KeyError, griffe.AliasResolutionError):
            continue
    return None


def is_outside(name: str) -> bool:
    """A builtin (``ValueError``) or another library's name (``asyncio.run``)."""
    first = name.split(".", 1)[0]
    if hasattr(builtins, first):
        return True
    return (
        first != "versioned_async" and "." in name and importlib.util.find_spec(first) is not None
    )
