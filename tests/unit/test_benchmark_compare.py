"""benchmarks/compare.py's arithmetic: which cells are numbers, and the side-by-side medians."""

from __future__ import annotations

from benchmarks.compare import cells_of, compare, numeric


def test_numbers_are_read_through_their_units_and_separators() -> None:
    assert numeric("1,234") == 1234.0
    assert numeric("1.52x") == 1.52
    assert numeric("12 ms") == 12.0
    assert numeric(3) == 3.0
    assert numeric("fetch") is None
    assert numeric(True) is None


def test_cells_are_keyed_by_scenario_table_row_label_and_column() -> None:
    results = {
        "scenarios": {
            "per-op": {
                "tables": [
                    {
                        "title": "1. per op",
                        "headers": ["operation", "ours ms", "ratio"],
                        "rows": [["get", 2.5, "1.1x"], ["put", "3", "n/a"]],
                    }
                ]
            }
        }
    }
    assert cells_of(results) == {
        ("per-op", "1. per op", "get", "ours ms"): 2.5,
        ("per-op", "1. per op", "get", "ratio"): 1.1,
        ("per-op", "1. per op", "put / n/a", "ours ms"): 3.0,
    }


def test_each_tree_gives_its_median_and_the_ratio_is_new_over_old() -> None:
    key = ("s", "t", "get", "ms")
    rows = compare(
        {
            "old": [{key: 2.0}, {key: 4.0}, {key: 3.0}],
            "new": [{key: 6.0}, {key: 1.0}, {key: 1.5}],
        }
    )
    assert rows == [["s", "get", "ms", "3", "1.5", "0.50"]]


def test_a_number_only_one_tree_reports_is_left_out() -> None:
    assert compare({"old": [{("s", "t", "a", "c"): 1.0}], "new": [{}]}) == []
