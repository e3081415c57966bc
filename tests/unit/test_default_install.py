"""The default install stays as small as it was: the integrations' libraries are extras.

``pip install versioned_async`` brings aiobotocore, attrs, cattrs, diskcache, click and
rich, nothing more. The extras (``fsspec``, ``opentelemetry``, ``asgi``, ``dask``) hold
what each integration imports; a module that imported one of them at the top of the
package or the CLI would make every user install it, or fail on import.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import metadata, requires

#: the libraries of the extras, top-level names as imported
EXTRAS_IMPORT = (
    "fsspec",
    "opentelemetry",
    "starlette",
    "fastapi",
    "uvicorn",
    "dask",
    "distributed",
    "pandas",
    "pyarrow",
    "numpy",
    "moto",
)


def test_importing_the_package_and_its_cli_imports_no_extra() -> None:
    probe = (
        "import json, sys\n"
        "import versioned_async, versioned_async.cli, versioned_async.models\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    imported = set(json.loads(out))
    assert imported.isdisjoint(EXTRAS_IMPORT), sorted(imported & set(EXTRAS_IMPORT))


def test_the_default_dependencies_are_the_core_ones() -> None:
    """Read from the installed distribution's metadata: what pip really installs."""
    unconditional = [req for req in requires("versioned_async") or [] if "extra ==" not in req]
    names = sorted(req.split(">")[0].split("<")[0].split("=")[0].strip() for req in unconditional)
    assert names == ["aiobotocore", "aiohttp", "attrs", "cattrs", "click", "diskcache", "rich"]
    extras = metadata("versioned_async").get_all("Provides-Extra") or []
    assert {"fsspec", "opentelemetry", "asgi", "dask"} <= set(extras)
