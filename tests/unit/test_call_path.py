"""benchmarks/call_path.py's counting: a pure function of a sequence of call events."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from benchmarks.call_path import PathCount, by_package, count_path, first_calls, module_of


def test_nothing_called_counts_nothing() -> None:
    assert count_path([]) == PathCount(calls=0, functions=0, modules=0, switches=0, visits=[])
    assert first_calls([]) == []


def test_a_switch_is_two_neighbours_from_different_modules() -> None:
    got = count_path([("a", "f"), ("b", "g"), ("a", "f")])
    assert (got.calls, got.functions, got.modules, got.switches) == (3, 2, 2, 2)
    assert got.visits == [("a", 1), ("b", 1), ("a", 1)]


def test_calls_within_one_module_are_one_visit() -> None:
    events = [("_base", "get"), ("_base", "get"), ("_base", "resolve"), ("cache", "lookup")]
    got = count_path(events)
    assert (got.calls, got.functions, got.modules, got.switches) == (4, 3, 2, 1)
    assert got.visits == [("_base", 3), ("cache", 1)]
    assert got.route() == "_base x3 > cache"


def test_a_function_is_its_module_and_name() -> None:
    got = count_path([("a", "open"), ("b", "open"), ("a", "open")])
    assert got.functions == 2  # a.open and b.open, each once


def test_issue_16_counts_each_function_once_where_it_is_first_called() -> None:
    # _base -> cache -> _base -> cache -> _codec: four switches call by call ...
    events = [
        ("_base", "get"),
        ("cache", "lookup"),
        ("_base", "get"),
        ("cache", "lookup"),
        ("cache", "remember"),
        ("_codec", "to_item"),
    ]
    assert count_path(events).switches == 4
    # ... two among the functions in order of first call: _base.get, cache.lookup,
    # cache.remember, _codec.to_item
    first = first_calls(events)
    assert first == [
        ("_base", "get"),
        ("cache", "lookup"),
        ("cache", "remember"),
        ("_codec", "to_item"),
    ]
    got = count_path(first)
    assert (got.calls, got.functions, got.modules, got.switches) == (4, 4, 3, 2)
    assert got.route() == "_base > cache x2 > _codec"


events_strategy = st.lists(
    st.tuples(st.sampled_from("abcd"), st.sampled_from(["f", "g", "h"])), max_size=40
)


@given(events_strategy)
def test_the_counts_agree_with_each_other(events: list[tuple[str, str]]) -> None:
    got = count_path(events)
    assert got.calls == len(events) == sum(n for _, n in got.visits)
    assert got.switches == max(len(got.visits) - 1, 0)
    assert all(a[0] != b[0] for a, b in zip(got.visits, got.visits[1:], strict=False))
    assert got.modules <= got.functions <= got.calls
    once = count_path(first_calls(events))
    assert (once.functions, once.modules) == (got.functions, got.modules)
    assert once.calls == once.functions
    assert once.switches <= got.switches


def test_modules_are_named_by_their_path_in_the_package() -> None:
    root = os.sep.join(["", "site", "versioned_async", ""])
    assert module_of(f"{root}_base.py", root) == "_base"
    assert module_of(f"{root}__init__.py", root) == "__init__"
    assert module_of(os.path.join(root, "cli", "__init__.py"), root) == "cli"
    assert module_of(os.path.join(root, "cli", "alias.py"), root) == "cli.alias"
    assert module_of(os.sep.join(["", "site", "aiobotocore", "client.py"]), root) is None
    assert module_of("<attrs generated init versioned_async.models.Alias>", root) is None


def test_counted_by_package_a_step_within_one_package_is_no_switch() -> None:
    events = [("_base", "get"), ("cache.reader", "get"), ("cache.lookups", "get"), ("_aws.s3", "f")]
    assert by_package(events) == [
        ("_base", "_base.get"),
        ("cache", "cache.reader.get"),
        ("cache", "cache.lookups.get"),
        ("_aws", "_aws.s3.f"),
    ]
    got = count_path(first_calls(by_package(first_calls(events))))
    assert (got.functions, got.modules, got.switches) == (4, 3, 2)
    assert count_path(first_calls(events)).switches == 3
