"""versioned_async.cli.output: the one way a command prints its result."""

from __future__ import annotations

import json

import pytest

from tests.unit.test_models_and_errors import SHA, WHEN, make_alias, make_artifact
from versioned_async.cli.output import emit, target

ARTIFACT = make_artifact(metadata={"team": "search"})


def never_shown(result: object) -> None:
    raise AssertionError(f"show called with {result!r}")


def test_json_turns_models_datetimes_and_mappings_into_one_document(
    capsys: pytest.CaptureFixture[str],
) -> None:
    emit({"deleted": [ARTIFACT], "purge_time": WHEN}, True, never_shown)
    document = json.loads(capsys.readouterr().out)
    assert document == {
        "deleted": [
            {
                "name": "app",
                "version": "3",
                "update_at": WHEN.isoformat(),
                "sha256": SHA,
                "s3uri": "s3://bkt/artifacts/app/000003",
                "size": None,
                "content_type": None,
                "metadata": {"team": "search"},
            }
        ],
        "purge_time": WHEN.isoformat(),
    }


def test_json_is_printed_even_when_the_result_is_empty(capsys: pytest.CaptureFixture[str]) -> None:
    emit([], True, never_shown, "'app' has no versions")
    assert capsys.readouterr() == ("[]\n", "")


def test_an_empty_listing_is_said_on_stderr_and_leaves_stdout_empty(
    capsys: pytest.CaptureFixture[str],
) -> None:
    emit([], False, never_shown, "'app' has no versions")
    assert capsys.readouterr() == ("", "'app' has no versions\n")


def test_without_json_the_command_shows_the_result(capsys: pytest.CaptureFixture[str]) -> None:
    shown: list[object] = []
    emit([ARTIFACT], False, shown.append, "'app' has no versions")
    assert shown == [[ARTIFACT]]
    assert capsys.readouterr() == ("", "")


def test_target_says_where_an_alias_points_in_one_phrase() -> None:
    plain = make_alias(
        secondary_version=None, secondary_version_weight=None, secondary_version_s3uri=None
    )
    split = make_alias()
    assert [target(None), target(plain), target(split)] == ["(none)", "3", "3 (+4 at 20%)"]
