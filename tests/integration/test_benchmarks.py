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
    "### 11a. Routing per core",
    "### 11b. Routing on Dask",
    "### 12. OpenTelemetry on a warm hit",
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
    "routing-per-core",
    "dask",
    "telemetry",
)


#: the scenarios that bring their own server, smoke-tested on their own below
OWN_SERVER = ("transfer",)


def test_quick_benchmark_run_prints_every_table_and_writes_json(tmp_path: Path) -> None:
    from benchmarks.__main__ import SCENARIOS as CLI_NAMES  # noqa: PLC0415

    output = tmp_path / "latest.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    only = [f"--only={name}" for name in CLI_NAMES if name not in OWN_SERVER]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", *only, "--output", str(output)],
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
    clusters = results["scenarios"]["dask"]["data"]["clusters"]
    assert clusters
    assert all(measured["equal"] is True for measured in clusters.values())


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


def test_quick_transfer_benchmark_runs_every_contender_on_seaweedfs(tmp_path: Path) -> None:
    """``--only transfer --quick``: SeaweedFS, the capped proxy, each contender once
    (8 MiB, all at once); the tables come out complete. No figure is judged."""
    output = tmp_path / "transfer.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    command = ["-m", "benchmarks", "--quick", "--only", "transfer", "--output", str(output)]
    proc = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for title in ("### 10a. A 8 MiB artifact", "### 10b. What the link", "### 10c. Transfer"):
        assert title in proc.stdout, f"no table {title!r} in:\n{proc.stdout}"
    results = json.loads(output.read_text())
    assert results["failures"] == []
    scenario = results["scenarios"]
    runs = scenario["transfer"]["data"]["runs"]
    assert sorted(runs) == ["capped download", "capped upload"]
    for label, by_contender in runs.items():
        for contender, measured in by_contender.items():
            assert len(measured) == 1, (label, contender)
            if contender != "floor":
                assert measured[0]["bytes"] == 8 << 20, (label, contender)
    capacity = scenario["transfer-link"]["data"]["capacity"]
    assert all(value > 0 for value in capacity.values())
    targets = scenario["transfer-targets"]["tables"][0]["rows"]
    assert len(targets) == 6  # three a direction on the capped link
    assert all(row[-1] in ("PASS", "MISS") for row in targets)  # every one judged
