"""Byte sizes on the command line (versioned_async.cli.sizes) and the transfer options."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from versioned_async.cli import main
from versioned_async.cli.sizes import parse_size

MiB = 1 << 20


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("8388608", 8 * MiB),
        ("8MiB", 8 * MiB),
        ("8MB", 8 * MiB),  # as the AWS CLI reads its s3 settings: powers of 1024
        ("8mib", 8 * MiB),
        ("8 mb", 8 * MiB),
        (" 1GiB ", 1 << 30),
        ("1gb", 1 << 30),
        ("64KiB", 64 << 10),
        ("64kb", 64 << 10),
        ("2TiB", 2 << 40),
        ("100B", 100),
    ],
)
def test_sizes_are_bytes_or_a_number_with_a_binary_suffix(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MiB", "8x", "8 M B", "1.5GiB", "-1", "8MiBs", "0x10"])
def test_anything_else_is_refused_saying_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size: give bytes"):
        parse_size(text)


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--multipart-threshold", "16 furlongs"], {}, "--multipart-threshold"),
        (["--multipart-chunksize", "0"], {}, "--multipart-chunksize"),
        ([], {"VERSIONED_MULTIPART_CHUNKSIZE": "lots"}, "--multipart-chunksize"),
        (["--max-concurrency", "0"], {}, "--max-concurrency"),
        ([], {"VERSIONED_MAX_CONCURRENCY": "ten"}, "--max-concurrency"),
    ],
)
def test_a_bad_transfer_setting_is_a_usage_error_naming_its_option(
    args: list[str], env: dict[str, str], named: str
) -> None:
    result = CliRunner().invoke(main, [*args, "names"], env={"VERSIONED_BUCKET": "b", **env})
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{named}'" in result.stderr


def test_help_names_the_transfer_options_and_their_variables() -> None:
    text = " ".join(CliRunner().invoke(main, ["--help"]).stdout.split())
    for option, variable in [
        ("--multipart-threshold", "VERSIONED_MULTIPART_THRESHOLD"),
        ("--multipart-chunksize", "VERSIONED_MULTIPART_CHUNKSIZE"),
        ("--max-concurrency", "VERSIONED_MAX_CONCURRENCY"),
    ]:
        assert option in text
        assert variable in text
