"""Two source trees side by side: ``python -m benchmarks.compare OLD NEW [--only S ...]``.

A redesign must show "no regression" against the commit before it, on this noisy
2-core machine. Timing the two trees on different minutes measures the machine as
much as the code, so this runs ``python -m benchmarks`` from each tree in turn,
alternating which goes first, ``--runs`` times each (every run a fresh process,
its own moto server and latency proxy), and prints, for every number in every
table, the median over the runs of each tree and their ratio.

``OLD`` and ``NEW`` are checkouts (``git worktree add /tmp/old <commit>``): each
run imports ``versioned_async`` (and ``benchmarks``) from its tree through
``PYTHONPATH``, with the interpreter running this script.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.harness import markdown_table

Cells = dict[tuple[str, str, str, str], float]


def numeric(value: object) -> float | None:
    """A table cell as a number (``"1,234"``, ``"1.5x"``, ``"12 ms"`` included), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.replace(",", "").strip()
    for unit in ("x", " ms", " s", "%"):
        text = text.removesuffix(unit)
    try:
        return float(text)
    except ValueError:
        return None


def cells_of(results: dict[str, Any]) -> Cells:
    """Every numeric cell of every table, keyed by (scenario, table, row label, column)."""
    found: Cells = {}
    for scenario, got in results.get("scenarios", {}).items():
        for table in got.get("tables", []):
            headers = table["headers"]
            for row in table["rows"]:
                label = " / ".join(str(c) for c in row if numeric(c) is None) or str(row[0])
                for header, cell in zip(headers, row, strict=False):
                    number = numeric(cell)
                    if number is not None:
                        found[(scenario, table["title"], label, header)] = number
    return found


def run_tree(tree: Path, args: list[str], output: Path) -> Cells:
    env = dict(os.environ, PYTHONPATH=str(tree))
    command = [sys.executable, "-m", "benchmarks", *args, "--output", str(output)]
    subprocess.run(command, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    return cells_of(json.loads(output.read_text()))


def compare(runs: dict[str, list[Cells]]) -> list[list[str]]:
    """One row per number both trees reported: the two medians and new / old."""
    merged: dict[str, dict[tuple[str, str, str, str], list[float]]] = {
        side: defaultdict(list) for side in runs
    }
    for side, results in runs.items():
        for cells in results:
            for key, value in cells.items():
                merged[side][key].append(value)
    rows = []
    for key in merged["old"]:
        if key not in merged["new"]:
            continue
        old = statistics.median(merged["old"][key])
        new = statistics.median(merged["new"][key])
        ratio = f"{new / old:.2f}" if old else "-"
        scenario, _title, label, column = key
        rows.append([scenario, label, column, f"{old:.4g}", f"{new:.4g}", ratio])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    parser.add_argument("old", type=Path, help="the tree before the change")
    parser.add_argument("new", type=Path, help="the tree after the change")
    parser.add_argument("--runs", type=int, default=3, help="runs of each tree (3)")
    parser.add_argument("--only", action="append", default=[], help="a scenario (repeatable)")
    parser.add_argument("--quick", action="store_true", help="benchmarks' smoke sizes")
    parser.add_argument("--output", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    forwarded = [f"--only={name}" for name in args.only] + (["--quick"] if args.quick else [])
    runs: dict[str, list[Cells]] = {"old": [], "new": []}
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    with tempfile.TemporaryDirectory(prefix="va-compare-") as scratch:
        for run_no in range(args.runs):
            order = ("old", "new") if run_no % 2 == 0 else ("new", "old")
            for side in order:
                output = Path(scratch) / f"{side}-{run_no}.json"
                runs[side].append(run_tree(trees[side], forwarded, output))
                print(f"run {run_no + 1}/{args.runs}: {side} done", file=sys.stderr, flush=True)
    rows = compare(runs)
    headers = ["scenario", "row", "column", "old (median)", "new (median)", "new / old"]
    print(markdown_table(headers, rows))
    if args.output is not None:
        args.output.write_text(json.dumps({"headers": headers, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
