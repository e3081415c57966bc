"""Names, versions, keys and argument checks of the layout shared with `versioned` 1.0."""

from __future__ import annotations

import array
import random
import re

import pytest

from versioned_async import _layout, exc
from versioned_async._layout import Layout

# -- artifact names ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "app",
        "customer_analytics_db",
        "my-app",
        "my.app.v2",
        "a",
        "_single_underscore",
        "with space inside",
        "UPPER-lower_0123",
        "name-alias",
        "!#$%&'()*+,;=@[]^`{|}~",
        "x" * _layout.MAX_NAME_LENGTH,
    ],
)
def test_validate_name_returns_a_valid_name_unchanged(name: str) -> None:
    assert _layout.validate_name(name) == name


@pytest.mark.parametrize("name", [None, 1, b"app", ["app"]])
def test_validate_name_refuses_a_non_str_with_a_type_error(name: object) -> None:
    with pytest.raises(exc.InvalidArgumentTypeError, match="artifact name must be a str"):
        _layout.validate_name(name)


def test_validate_name_refuses_the_empty_name() -> None:
    with pytest.raises(exc.InvalidArgumentError, match="must not be empty"):
        _layout.validate_name("")


def test_validate_name_refuses_a_name_longer_than_the_maximum() -> None:
    too_long = "x" * (_layout.MAX_NAME_LENGTH + 1)
    with pytest.raises(exc.InvalidArgumentError, match=r"at most 200 characters, got 201"):
        _layout.validate_name(too_long)


@pytest.mark.parametrize(
    "name", ["caf\u00e9", "tab\there", "new\nline", "nul\x00", "del\x7f", "\u2603"]
)
def test_validate_name_refuses_non_printable_or_non_ascii(name: str) -> None:
    with pytest.raises(exc.InvalidArgumentError, match="must be printable ASCII"):
        _layout.validate_name(name)


@pytest.mark.parametrize("name", ["a/b", "/app", "app/"])
def test_validate_name_refuses_a_slash(name: str) -> None:
    with pytest.raises(exc.InvalidArgumentError, match="must not contain '/'"):
        _layout.validate_name(name)


@pytest.mark.parametrize("name", [".", ".."])
def test_validate_name_refuses_dot_and_dot_dot(name: str) -> None:
    with pytest.raises(exc.InvalidArgumentError, match="is not allowed"):
        _layout.validate_name(name)


@pytest.mark.parametrize("name", ["__app", "__", "__app-alias"])
def test_validate_name_refuses_a_leading_double_underscore_reserved_for_aliases(name: str) -> None:
    with pytest.raises(exc.InvalidArgumentError, match=r"must not start with '__'.*alias"):
        _layout.validate_name(name)


@pytest.mark.parametrize("name", [" app", "app ", " "])
def test_validate_name_refuses_leading_or_trailing_space(name: str) -> None:
    with pytest.raises(exc.InvalidArgumentError, match="must not start or end with white space"):
        _layout.validate_name(name)


def test_invalid_name_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="must not contain '/'"):
        _layout.validate_name("a/b")


# -- alias names -------------------------------------------------------------------


@pytest.mark.parametrize(
    "alias", ["prod", "staging_2", "LATEST", "a", "Blue.Green", "x" * _layout.MAX_ALIAS_LENGTH]
)
def test_validate_alias_returns_a_valid_alias_unchanged(alias: str) -> None:
    assert _layout.validate_alias(alias) == alias


@pytest.mark.parametrize("alias", [None, 3, b"prod"])
def test_validate_alias_refuses_a_non_str_with_a_type_error(alias: object) -> None:
    with pytest.raises(exc.InvalidArgumentTypeError, match="alias must be a str"):
        _layout.validate_alias(alias)


def test_validate_alias_refuses_the_empty_alias() -> None:
    with pytest.raises(exc.InvalidArgumentError, match="alias must not be empty"):
        _layout.validate_alias("")


def test_validate_alias_refuses_an_alias_longer_than_the_maximum() -> None:
    with pytest.raises(exc.InvalidArgumentError, match=r"at most 200 characters, got 201"):
        _layout.validate_alias("x" * (_layout.MAX_ALIAS_LENGTH + 1))


@pytest.mark.parametrize(("alias", "suggestion"), [("blue-green", "blue_green"), ("-", "_")])
def test_validate_alias_refuses_a_hyphen_and_suggests_an_underscore(
    alias: str, suggestion: str
) -> None:
    with pytest.raises(exc.InvalidArgumentError, match=f"must not contain '-'.*'{suggestion}'"):
        _layout.validate_alias(alias)


@pytest.mark.parametrize("alias", ["pr\u00f6d", "tab\t", "\nprod", " prod", "prod "])
def test_validate_alias_refuses_non_printable_ascii_and_outer_white_space(alias: str) -> None:
    with pytest.raises(exc.InvalidArgumentError, match="must be printable ASCII without leading"):
        _layout.validate_alias(alias)


# -- versions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "public"),
    [
        (None, "LATEST"),
        ("LATEST", "LATEST"),
        (1, "1"),
        ("1", "1"),
        ("0001", "1"),
        ("000001", "1"),
        (42, "42"),
        ("000042", "42"),
        (999_999, "999999"),
        ("999999", "999999"),
        ("0000999999", "999999"),
    ],
)
def test_normalize_version_gives_the_public_form(version: _layout.VersionLike, public: str) -> None:
    assert _layout.normalize_version(version) == public


@pytest.mark.parametrize(
    ("version", "stored"),
    [
        (None, "LATEST"),
        ("LATEST", "LATEST"),
        (1, "000001"),
        ("1", "000001"),
        ("01", "000001"),
        ("000001", "000001"),
        (123, "000123"),
        (999_999, "999999"),
    ],
)
def test_encode_version_gives_the_six_digit_stored_form(
    version: _layout.VersionLike, stored: str
) -> None:
    assert _layout.encode_version(version) == stored


@pytest.mark.parametrize(
    ("stored", "public"),
    [
        ("LATEST", "LATEST"),
        ("000001", "1"),
        ("000010", "10"),
        ("100000", "100000"),
        ("999999", "999999"),
    ],
)
def test_decode_version_gives_the_public_form(stored: str, public: str) -> None:
    assert _layout.decode_version(stored) == public


@pytest.mark.parametrize(
    ("version", "number"), [(None, None), ("LATEST", None), (7, 7), ("7", 7), ("000007", 7)]
)
def test_version_number_is_the_int_or_none_for_latest(
    version: _layout.VersionLike, number: int | None
) -> None:
    assert _layout.version_number(version) == number


# every 997th number, and the edges: a fast stand-in for all 999,999
SAMPLE_NUMBERS = sorted({1, 2, 9, 10, 99_999, 100_000, 999_998, 999_999, *range(1, 1_000_000, 997)})


def test_decode_inverts_encode_for_numbered_versions() -> None:
    for number in SAMPLE_NUMBERS:
        assert _layout.decode_version(_layout.encode_version(number)) == str(number)


def test_stored_versions_are_six_characters() -> None:
    assert {len(_layout.encode_version(n)) for n in SAMPLE_NUMBERS} == {_layout.VERSION_WIDTH}


def test_stored_versions_sort_like_their_numbers_and_latest_sorts_last() -> None:
    numbers = [1, 2, 9, 10, 11, 99, 100, 1000, 99_999, 100_000, 999_999]
    stored = [_layout.encode_version(n) for n in numbers]
    assert sorted([*stored, "LATEST"]) == [*stored, "LATEST"]


def test_numbered_sort_key_bounds_cover_every_numbered_version_and_exclude_latest() -> None:
    low, high = _layout.FIRST_STORED_VERSION, _layout.LAST_STORED_VERSION
    assert low < _layout.encode_version(1)
    assert _layout.encode_version(_layout.MAX_VERSION) <= high
    assert not low <= _layout.LATEST <= high


@pytest.mark.parametrize("version", [0, -1, 1_000_000, "0", "000000", "1000000"])
def test_versions_outside_1_to_999999_are_refused(version: int | str) -> None:
    with pytest.raises(exc.InvalidArgumentError, match="from 1 to 999999"):
        _layout.normalize_version(version)


@pytest.mark.parametrize(
    "version",
    ["latest", "Latest", "v1", "1.0", "-1", "+1", " 1", "1 ", "", "1_000", "\u0661", "\u00b2"],
)
def test_non_numeric_version_strings_are_refused(version: str) -> None:
    with pytest.raises(
        exc.InvalidArgumentError, match="must be 'LATEST' or a number from 1 to 999999"
    ):
        _layout.normalize_version(version)


@pytest.mark.parametrize("version", [True, False, 1.0, b"1", [1]])
def test_versions_of_other_types_are_refused_with_a_type_error(version: object) -> None:
    with pytest.raises(
        exc.InvalidArgumentTypeError,
        match="version must be None, 'LATEST', an int or a numeric str",
    ):
        _layout.normalize_version(version)  # type: ignore[arg-type]


@pytest.mark.parametrize("func", [_layout.encode_version, _layout.version_number])
def test_encode_and_version_number_validate_like_normalize(func: object) -> None:
    with pytest.raises(exc.InvalidArgumentError, match="from 1 to 999999"):
        func(0)  # type: ignore[operator]


def test_leading_zeros_are_ignored_however_many_there_are() -> None:
    assert _layout.normalize_version("0" * 5000 + "1") == "1"


def test_a_version_string_with_thousands_of_digits_is_an_invalid_argument() -> None:
    with pytest.raises(exc.InvalidArgumentError, match="from 1 to 999999"):
        _layout.normalize_version("9" * 5000)


# -- DynamoDB keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pk"),
    [
        ("app", "__app-alias"),
        ("my-app", "__my-app-alias"),
        ("api-v2", "__api-v2-alias"),
        ("_x", "___x-alias"),
        ("x-alias", "__x-alias-alias"),
    ],
)
def test_alias_pk_is_the_versioned_partition_key(name: str, pk: str) -> None:
    assert _layout.alias_pk(name) == pk


@pytest.mark.parametrize("name", ["app", "my-app", "_x", "x-alias", "alias", "-", "a__b"])
def test_name_from_alias_pk_inverts_alias_pk(name: str) -> None:
    assert _layout.name_from_alias_pk(_layout.alias_pk(name)) == name


def test_name_from_alias_pk_inverts_alias_pk_for_any_printable_name() -> None:
    rng = random.Random(2026)
    printable = [chr(c) for c in range(0x20, 0x7F)]
    for _ in range(500):
        name = "".join(rng.choices(printable, k=rng.randint(1, 12)))
        assert _layout.name_from_alias_pk(_layout.alias_pk(name)) == name


# -- content -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\xff data", bytearray(b"\x00\xff data"), memoryview(b"\x00\xff data")],
)
def test_validate_content_returns_bytes_for_bytes_like_input(content: object) -> None:
    out = _layout.validate_content(content)
    assert type(out) is bytes
    assert out == bytes(content)  # type: ignore[call-overload]


def test_validate_content_returns_the_raw_bytes_of_a_typed_memoryview() -> None:
    ints = array.array("B", [1, 2, 3])
    assert _layout.validate_content(memoryview(ints)) == b"\x01\x02\x03"


def test_validate_content_refuses_str_and_says_to_encode_it() -> None:
    with pytest.raises(
        exc.InvalidArgumentTypeError, match=r"must be bytes-like.*encode text first"
    ):
        _layout.validate_content("text")


@pytest.mark.parametrize("content", [None, 1, [1, 2], {"a": 1}])
def test_validate_content_refuses_other_types(content: object) -> None:
    with pytest.raises(
        exc.InvalidArgumentTypeError, match=r"must be bytes-like \(bytes, bytearray, memoryview\)"
    ):
        _layout.validate_content(content)


# -- metadata -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"team": "data"},
        {"build.id": "42", "git-sha": "abc123", "owner_email": "a@b.c", "empty": ""},
        {"note": "spaces and punctuation: ok!"},
    ],
)
def test_validate_metadata_returns_valid_metadata_unchanged(metadata: dict[str, str]) -> None:
    assert _layout.validate_metadata(metadata) == metadata


def test_validate_metadata_treats_none_as_empty() -> None:
    assert _layout.validate_metadata(None) == {}


def test_validate_metadata_returns_a_copy() -> None:
    metadata = {"team": "data"}
    out = _layout.validate_metadata(metadata)
    metadata["team"] = "changed"
    assert out == {"team": "data"}


@pytest.mark.parametrize("metadata", [[("a", "b")], "a=b", 1])
def test_validate_metadata_refuses_a_non_dict(metadata: object) -> None:
    with pytest.raises(exc.InvalidArgumentTypeError, match="metadata must be a dict of str to str"):
        _layout.validate_metadata(metadata)


@pytest.mark.parametrize("metadata", [{"n": 1}, {1: "one"}, {"n": None}, {"n": b"x"}])
def test_validate_metadata_refuses_non_str_keys_or_values(metadata: dict[object, object]) -> None:
    with pytest.raises(exc.InvalidArgumentTypeError, match="metadata must map str to str; entry"):
        _layout.validate_metadata(metadata)


@pytest.mark.parametrize(
    "key", ["artifact_name", "artifact_sha256", "Artifact_Name", "ARTIFACT_SHA256"]
)
def test_validate_metadata_refuses_the_repository_s_reserved_keys(key: str) -> None:
    with pytest.raises(exc.InvalidArgumentError, match="is reserved by the repository layout"):
        _layout.validate_metadata({key: "x"})


@pytest.mark.parametrize("key", ["", "a b", "a/b", "caf\u00e9", "a:b", "a=b"])
def test_validate_metadata_refuses_keys_outside_letters_digits_and_dot_dash_underscore(
    key: str,
) -> None:
    with pytest.raises(
        exc.InvalidArgumentError,
        match=re.escape("must be non-empty and use only letters, digits, '_', '-' and '.'"),
    ):
        _layout.validate_metadata({key: "x"})


def test_validate_metadata_refuses_upper_case_keys() -> None:
    with pytest.raises(exc.InvalidArgumentError, match="must be lower case"):
        _layout.validate_metadata({"Team": "data"})


@pytest.mark.parametrize("value", ["caf\u00e9", "line\nbreak", "tab\t", "\x00"])
def test_validate_metadata_refuses_values_that_are_not_printable_ascii(value: str) -> None:
    with pytest.raises(exc.InvalidArgumentError, match="must be printable ASCII"):
        _layout.validate_metadata({"note": value})


METADATA_BUDGET = 2048 - len("artifact_name") - 200 - len("artifact_sha256") - 64


def test_validate_metadata_accepts_exactly_the_size_budget() -> None:
    metadata = {"k": "v" * (METADATA_BUDGET - 1)}
    assert _layout.validate_metadata(metadata) == metadata


def test_validate_metadata_refuses_one_byte_over_the_size_budget() -> None:
    with pytest.raises(
        exc.InvalidArgumentError, match=f"at most {METADATA_BUDGET} bytes of keys and values fit"
    ):
        _layout.validate_metadata({"k": "v" * METADATA_BUDGET})


def test_metadata_size_counts_keys_and_values_across_entries() -> None:
    half = METADATA_BUDGET // 2
    with pytest.raises(exc.InvalidArgumentError, match=f"metadata is {METADATA_BUDGET + 2} bytes"):
        _layout.validate_metadata({"a": "x" * half, "b": "y" * (METADATA_BUDGET - half)})


# -- content type --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/octet-stream",
        "application/x-sqlite3",
        "text/plain; charset=utf-8",
        "text/plain;charset=utf-8",
        "application/vnd.api+json",
        "multipart/form-data; boundary=x; foo=bar",
    ],
)
def test_validate_content_type_accepts_mime_types(content_type: str) -> None:
    assert _layout.validate_content_type(content_type) == content_type


def test_validate_content_type_accepts_none() -> None:
    assert _layout.validate_content_type(None) is None


@pytest.mark.parametrize(
    "content_type",
    ["", "text", "text/", "/plain", "text /plain", "text/plain\r\nX-Evil: 1", "t\u00e9xt/plain"],
)
def test_validate_content_type_refuses_what_is_not_a_mime_type(content_type: str) -> None:
    with pytest.raises(
        exc.InvalidArgumentError, match="must be a MIME type such as 'application/octet-stream'"
    ):
        _layout.validate_content_type(content_type)


@pytest.mark.parametrize("content_type", [1, b"text/plain", ["text/plain"]])
def test_validate_content_type_refuses_non_str(content_type: object) -> None:
    with pytest.raises(exc.InvalidArgumentTypeError, match="content_type must be a str or None"):
        _layout.validate_content_type(content_type)


# -- weight --------------------------------------------------------------------------------


@pytest.mark.parametrize("weight", [0, 1, 20, 50, 99])
def test_validate_weight_accepts_0_to_99(weight: int) -> None:
    assert _layout.validate_weight(weight) == weight


@pytest.mark.parametrize("weight", [-1, 100, 101, 1000])
def test_validate_weight_refuses_values_outside_0_to_99(weight: int) -> None:
    with pytest.raises(exc.InvalidArgumentError, match=f"must be from 0 to 99.*got {weight}"):
        _layout.validate_weight(weight)


@pytest.mark.parametrize("weight", [True, False, 20.0, "20", None])
def test_validate_weight_refuses_non_int_and_bool(weight: object) -> None:
    with pytest.raises(
        exc.InvalidArgumentTypeError, match="secondary_version_weight must be an int from 0 to 99"
    ):
        _layout.validate_weight(weight)


# -- sha256 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0" * 64, True),
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", True),
        ("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", False),
        ("0" * 63, False),
        ("0" * 65, False),
        ("g" * 64, False),
        (b"0" * 64, False),
        (None, False),
    ],
)
def test_is_sha256_hex_accepts_only_64_lower_case_hex_digits(value: object, expected: bool) -> None:
    assert _layout.is_sha256_hex(value) is expected


# -- Layout: S3 keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "normalized", "root"),
    [
        ("artifacts", "artifacts", "artifacts/"),
        ("artifacts/", "artifacts", "artifacts/"),
        ("/artifacts", "artifacts", "artifacts/"),
        ("/a/b/", "a/b", "a/b/"),
        ("a/b", "a/b", "a/b/"),
        ("", "", ""),
        ("/", "", ""),
        ("//", "", ""),
    ],
)
def test_layout_prefix_drops_leading_and_trailing_slashes(
    prefix: str, normalized: str, root: str
) -> None:
    layout = Layout(bucket="bkt", prefix=prefix)
    assert (layout.prefix, layout.root) == (normalized, root)


@pytest.mark.parametrize(
    ("prefix", "suffix", "stored", "key"),
    [
        ("artifacts", "", "000001", "artifacts/customer_analytics_db/000001"),
        ("artifacts/", "", "000001", "artifacts/customer_analytics_db/000001"),
        ("artifacts", ".db", "LATEST", "artifacts/customer_analytics_db/LATEST.db"),
        ("/a/b/", ".zip", "000042", "a/b/customer_analytics_db/000042.zip"),
        ("", "", "000001", "customer_analytics_db/000001"),
        ("", ".tar.gz", "LATEST", "customer_analytics_db/LATEST.tar.gz"),
    ],
)
def test_layout_key_is_prefix_name_stored_version_and_suffix(
    prefix: str, suffix: str, stored: str, key: str
) -> None:
    layout = Layout(bucket="bkt", prefix=prefix, suffix=suffix)
    assert layout.key("customer_analytics_db", stored) == key


@pytest.mark.parametrize(
    ("prefix", "suffix", "uri"),
    [
        ("artifacts", "", "s3://bkt/artifacts/app/000003"),
        ("artifacts/", ".db", "s3://bkt/artifacts/app/000003.db"),
        ("/a/b/", "", "s3://bkt/a/b/app/000003"),
        ("", ".db", "s3://bkt/app/000003.db"),
    ],
)
def test_layout_s3uri_is_the_bucket_and_key(prefix: str, suffix: str, uri: str) -> None:
    assert Layout(bucket="bkt", prefix=prefix, suffix=suffix).s3uri("app", "000003") == uri


@pytest.mark.parametrize(
    ("prefix", "directory"),
    [("artifacts", "artifacts/app/"), ("/a/b/", "a/b/app/"), ("", "app/")],
)
def test_layout_artifact_dir_is_the_folder_of_one_artifact(prefix: str, directory: str) -> None:
    assert Layout(bucket="bkt", prefix=prefix).artifact_dir("app") == directory


def test_layout_suffix_defaults_to_empty() -> None:
    assert Layout(bucket="bkt", prefix="p").suffix == ""


def test_layouts_with_equivalent_prefixes_are_equal() -> None:
    assert Layout(bucket="bkt", prefix="/artifacts/") == Layout(bucket="bkt", prefix="artifacts")


@pytest.mark.parametrize("suffix", ["/x", "a/b", "/"])
def test_layout_refuses_a_suffix_with_a_slash(suffix: str) -> None:
    with pytest.raises(exc.InvalidArgumentError, match="must not contain '/'"):
        Layout(bucket="bkt", prefix="artifacts", suffix=suffix)


# -- s3uri helpers ------------------------------------------------------------------------
# The expected console links are what s3pathlib (used by `versioned` 1.0.1) prints.


@pytest.mark.parametrize(
    ("uri", "parts"),
    [
        ("s3://bkt/a/b/000001", ("bkt", "a/b/000001")),
        ("s3://bkt/app/LATEST.db", ("bkt", "app/LATEST.db")),
        ("s3://bkt/", ("bkt", "")),
        ("s3://bkt", ("bkt", "")),
    ],
)
def test_split_s3uri_gives_bucket_and_key(uri: str, parts: tuple[str, str]) -> None:
    assert _layout.split_s3uri(uri) == parts


@pytest.mark.parametrize(
    ("uri", "url"),
    [
        (
            "s3://bkt/artifacts/app/000001",
            "https://console.aws.amazon.com/s3/object/bkt?prefix=artifacts/app/000001",
        ),
        (
            "s3://my-bucket/app/LATEST.db",
            "https://console.aws.amazon.com/s3/object/my-bucket?prefix=app/LATEST.db",
        ),
        (
            "s3://bkt/a/b/my app/000002.zip",
            "https://console.aws.amazon.com/s3/object/bkt?prefix=a/b/my app/000002.zip",
        ),
    ],
)
def test_console_url_is_the_link_versioned_prints(uri: str, url: str) -> None:
    assert _layout.console_url(uri) == url


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"aws:createdBy": "me"}, "reserved by AWS"),
        ({"AWS:x": "1"}, "reserved by AWS"),
        ({"team": "a\nb"}, "only use letters"),
        ({"team": "a\tb"}, "only use letters"),
    ],
)
def test_tags_s3_would_refuse_are_refused_up_front(tags: dict[str, str], message: str) -> None:
    with pytest.raises(exc.InvalidArgumentError, match=message):
        _layout.validate_tags(tags)


@pytest.mark.parametrize("value", [" padded", "padded ", " ", "a\t"])
def test_metadata_values_that_would_not_read_back_are_refused(value: str) -> None:
    with pytest.raises(exc.InvalidArgumentError):
        _layout.validate_metadata({"k": value})


def test_content_type_is_bounded_and_keeps_no_trailing_space() -> None:
    assert _layout.validate_content_type("text/plain; charset=utf-8") == (
        "text/plain; charset=utf-8"
    )
    with pytest.raises(exc.InvalidArgumentError, match="at most 255"):
        _layout.validate_content_type("application/" + "x" * 300)
    with pytest.raises(exc.InvalidArgumentError, match="no trailing white space"):
        _layout.validate_content_type("text/plain; x ")
