"""The benchmark harness works end to end: ``python -m benchmarks --quick``.

Not a timing assertion: it checks the run exits 0, prints every scenario's
table and writes valid JSON, so the harness does not rot between full runs,
and that the request counts of the backends scenario (deterministic) hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: the title that starts each scenario's table
TITLES = (
    "### 0. The server itself",
    "### 1a. Start-up, cold",
    "### 1b. Start-up, warm",
    "### 2. Per-operation latency",
    "### 3. Warm hit cost",
    "### 4. A 32 MiB artifact",
    "### 5. Batch routing",
    "### 6. Scaling",
    "### 7a. Backends: set-up",
    "### 7b. Backends: list_artifact_versions",
    "### 7c. Backends: per operation",
    "### 8. verify_on_read",
    "### 9. Restart on a filled cache",
)
SCENARIOS = (
    "server",
    "startup",
    "per_operation",
    "warm_hit",
    "big_artifact",
    "routing",
    "scaling",
    "backends",
    "verify_on_read",
    "restart",
)


def test_quick_benchmark_run_prints_every_table_and_writes_json(tmp_path: Path) -> None:
    output = tmp_path / "latest.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(output)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for title in TITLES:
        assert title in proc.stdout, f"no table {title!r} in:\n{proc.stdout}"
    assert "cores" in proc.stdout.splitlines()[2]  # the machine, at the top
    results = json.loads(output.read_text())
    assert results["failures"] == []
    assert results["machine"]["cores"] >= 1
    for key in SCENARIOS:
        tables = results["scenarios"][key]["tables"]
        assert tables, key
        for table in tables:
            assert table["rows"], (key, table["title"])
            assert all(len(row) == len(table["headers"]) for row in table["rows"])
    assert_backend_requests(results["scenarios"]["backends"]["data"])


def assert_backend_requests(data: dict[str, Any]) -> None:
    """The deterministic figures of scenario 7, the two backends side by side.

    The proxy's count equals the count named by the client; a listing is one
    Query on DynamoDB, a listing plus a HeadObject per version (LATEST too) on
    S3 only; bootstrap() creates the table, or the bucket.
    """
    requests = data["requests"]
    for backend in ("DynamoDB", "S3-only"):
        for what, got in requests[backend].items():
            assert got["requests"] == sum(got["named"].values()) > 0, (backend, what, got)
    assert data["sizes"]
    for n in data["sizes"]:
        assert requests["DynamoDB"][f"list {n}"]["named"] == {"Query": 1}
        assert requests["S3-only"][f"list {n}"]["named"] == {
            "ListObjectsV2": 1,
            "HeadObject": n + 1,
        }
    assert requests["S3-only"]["bootstrap"]["named"] == {"HeadBucket": 1, "CreateBucket": 1}
    assert requests["DynamoDB"]["bootstrap"]["named"]["CreateTable"] == 1
