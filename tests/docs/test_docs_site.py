"""The documentation: the site builds with ``mkdocs build --strict`` (a broken link, a
missing anchor or a reference to a name the package does not have fails it), its API
reference documents every public name, and README's links lead somewhere."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path
from types import ModuleType

import pytest

import versioned_async
from versioned_async import cache, exc, models, testing

ROOT = Path(__file__).resolve().parents[2]
#: the modules whose __all__ the API reference documents
PUBLIC_MODULES: tuple[ModuleType, ...] = (versioned_async, exc, models, cache, testing)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr}"
    return out


def inventory(site: Path) -> set[str]:
    """The names the site documents: the primary entries of its objects.inv (Sphinx
    inventory v2), one per object mkdocstrings renders. (Secondary entries, priority 2,
    are other paths that lead to those objects, not documentation of their own.)"""
    header, _, body = (site / "objects.inv").read_bytes().partition(b"zlib.\n")
    assert header.startswith(b"# Sphinx inventory version 2"), header[:40]
    entries = [line.split(" ") for line in zlib.decompress(body).decode().splitlines()]
    return {name for name, _role, priority, *_ in entries if priority == "1"}


def public_names() -> dict[str, object]:
    """``module.name`` -> the object, for every name a public module exports."""
    return {f"{m.__name__}.{n}": getattr(m, n) for m in PUBLIC_MODULES for n in m.__all__}


def documented_as(path: str, obj: object, documented: set[str]) -> str | None:
    """The name ``obj`` is documented under: ``path`` itself, or, for a class, function
    or module that several public modules export, another of its public names."""
    if path in documented:
        return path
    if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
        same = sorted(p for p, o in public_names().items() if o is obj and p in documented)
        return same[0] if same else None
    return None


def test_the_site_builds_strictly(site: Path) -> None:
    for page in ("index.html", "reference/index.html", "cli/index.html", "ARCHITECTURE/index.html"):
        assert (site / page).is_file(), page


def test_every_public_name_is_in_the_api_reference(site: Path) -> None:
    documented = inventory(site)
    assert "versioned_async.exc" in documented
    missing = [p for p, o in public_names().items() if not documented_as(p, o, documented)]
    assert not missing, f"not in the API reference (docs/reference/): {missing}"


def test_every_public_method_of_a_public_class_is_in_the_api_reference(site: Path) -> None:
    documented = inventory(site)
    missing = []
    for path, obj in public_names().items():
        if not inspect.isclass(obj):
            continue
        at = documented_as(path, obj, documented)
        for name, member in inspect.getmembers(obj):
            if name.startswith("_"):
                continue
            owner = next((c for c in obj.__mro__ if name in vars(c)), object)
            public = callable(member) or isinstance(vars(owner).get(name), property)
            ours = owner.__module__.startswith("versioned_async")
            if ours and public and f"{at}.{name}" not in documented:
                missing.append(f"{at}.{name}")
    assert not missing, f"not in the API reference: {sorted(set(missing))}"


# -- README's links -----------------------------------------------------------------------


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading (mkdocs checks the docs' own anchors)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {github_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_readme_links_lead_to_files_and_headings_that_exist() -> None:
    readme = ROOT / "README.md"
    links = re.findall(r"\]\(([^)\s]+)\)", readme.read_text())
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert len(local) >= 20, local  # the front door links to the recipes and the docs
    broken = []
    for link in local:
        target, _, anchor = link.partition("#")
        page = ROOT / target if target else readme
        if not page.exists() or (anchor and anchor not in anchors(page)):
            broken.append(link)
    assert not broken, f"README links to nothing: {broken}"


def test_the_first_screen_of_readme_leads_to_the_common_tasks() -> None:
    """What a new user looks for is linked from README's first 40 lines."""
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:40])
    for task in (
        "#publish-a-version-and-start-a-canary",
        "#fetch-artifacts-when-a-service-starts",
        "#route-many-keys-in-a-batch-job",
        "#roll-out-a-new-version-in-steps",
        "#the-command-line",
        "pytest tests/unit",
        "pytest -n auto",
        "serve-local",
    ):
        assert task in first_screen, task
