"""Issue 15, items 1, 9 and 14, the pure parts: alias names whose keys S3 clients
rewrite, routing keys of the wrong type, and credentials taken out of URLs."""

from __future__ import annotations

import asyncio
import pickle
from datetime import UTC, datetime

import aiohttp
import botocore.exceptions as bce
import pytest
from hypothesis import given
from hypothesis import strategies as st

from versioned_async import Alias, exc
from versioned_async._aws.errors import aws_errors
from versioned_async._layout import validate_alias
from versioned_async._redact import redact_text, redact_url
from versioned_async._s3_only_layout import S3OnlyLayout

# -- item 1: alias names and their keys --------------------------------------------------


@pytest.mark.parametrize("alias", ["team/prod", "a/b/c", "prod.json", "x.y", "..."])
def test_an_alias_with_a_slash_or_dots_is_a_valid_alias(alias: str) -> None:
    assert validate_alias(alias) == alias


@pytest.mark.parametrize(
    "alias", ["..", ".", "../prod", "a/../b", "./a", "a/.", "a//b", "/a", "a/", "/"]
)
def test_an_alias_with_an_empty_or_dot_segment_is_refused(alias: str) -> None:
    with pytest.raises(exc.InvalidArgumentError, match="segment"):
        validate_alias(alias)


printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@given(alias=st.text(printable, min_size=1, max_size=40))
def test_the_key_of_every_valid_alias_parses_back_to_it(alias: str) -> None:
    layout = S3OnlyLayout(bucket="b", prefix="p")
    try:
        validate_alias(alias)
    except exc.InvalidArgumentError:
        return
    assert layout.alias_of_key("m", layout.alias_key("m", alias)) == alias


def test_a_key_nested_under_aliases_parses_to_a_nested_alias() -> None:
    layout = S3OnlyLayout(bucket="b", prefix="p")
    assert layout.alias_of_key("m", "p/m/aliases/team/prod.json") == "team/prod"
    assert layout.alias_of_key("m", "p/m/aliases/team/README") is None
    assert layout.alias_of_key("m", "p/m/aliases/.json") is None
    assert layout.alias_of_key("m", "p/m/versions/x.json") is None


# -- item 9: routing keys ----------------------------------------------------------------


def split_alias() -> Alias:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Alias(
        name="m",
        alias="prod",
        update_at=now,
        version="1",
        secondary_version="2",
        secondary_version_weight=50,
        version_s3uri="s3://b/m/000001",
        secondary_version_s3uri="s3://b/m/000002",
    )


def plain_alias() -> Alias:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Alias(
        name="m",
        alias="prod",
        update_at=now,
        version="1",
        secondary_version=None,
        secondary_version_weight=None,
        version_s3uri="s3://b/m/000001",
        secondary_version_s3uri=None,
    )


@pytest.mark.parametrize("make", [split_alias, plain_alias], ids=["split", "plain"])
@pytest.mark.parametrize("key", [1, 1.5, True, ["user"], {"u": 1}, object()])
def test_choose_version_refuses_a_routing_key_of_the_wrong_type(make: object, key: object) -> None:
    alias = make()  # type: ignore[operator]
    with pytest.raises(exc.InvalidArgumentTypeError, match=r"routing_key must be a str or bytes"):
        alias.choose_version(key)
    with pytest.raises(TypeError, match=type(key).__name__):
        alias.choose_version(key)


@pytest.mark.parametrize("make", [split_alias, plain_alias], ids=["split", "plain"])
def test_choose_versions_refuses_a_bad_key_naming_its_position(make: object) -> None:
    alias = make()  # type: ignore[operator]
    with pytest.raises(exc.InvalidArgumentTypeError, match=r"routing_keys\[2\].*int"):
        alias.choose_versions(["a", b"b", 3])
    with pytest.raises(exc.InvalidArgumentTypeError, match="not a str"):
        alias.choose_versions("user-1")


def test_str_and_bytes_keys_still_route_as_before() -> None:
    alias = split_alias()
    keys = [f"user-{n}" for n in range(200)]
    chosen = alias.choose_versions(keys)
    assert chosen == [alias.choose_version(k) for k in keys]
    assert chosen == alias.choose_versions([k.encode() for k in keys])
    assert {"1", "2"} == set(chosen)
    assert alias.choose_version(None) in ("1", "2")


# -- item 14: credentials in URLs --------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://alice:secret@host:4566", "http://alice:***@host:4566"),
        ("https://alice:secret@host/path?q=1", "https://alice:***@host/path?q=1"),
        ("http://token@host:1", "http://***@host:1"),
        ("http://a:b:c@host", "http://a:***@host"),
        ("http://a:p%40ss@h", "http://a:***@h"),
        ("http://a:p@ss@h", "http://a:***@h"),
        ("http://host:4566", "http://host:4566"),
        ("http://host/a@b", "http://host/a@b"),
        ("https://s3.us-east-1.amazonaws.com", "https://s3.us-east-1.amazonaws.com"),
        ("", ""),
    ],
)
def test_redact_url_hides_the_password_and_keeps_the_rest(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_url_passes_none_through() -> None:
    assert redact_url(None) is None


def test_redact_text_hides_every_url_password_in_a_message() -> None:
    text = (
        'Could not connect to the endpoint URL: "http://alice:secret@127.0.0.1:9/b/k" '
        "nor https://bob:pw@h/x"
    )
    shown = redact_text(text)
    assert "secret" not in shown
    assert "pw@" not in shown
    assert "http://alice:***@127.0.0.1:9/b/k" in shown
    assert "https://bob:***@h/x" in shown


@given(
    user=st.text("abcxyz019_.", min_size=1, max_size=8),
    password=st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#"),
        min_size=4,
    ),
)
def test_no_password_survives_redaction(user: str, password: str) -> None:
    url = f"http://{user}:{password}@host:1/p"
    shown = redact_url(url)
    assert f":{password}@" not in shown
    assert f":{password}@" not in redact_text(f"at {url} then")


# -- item 9: the folder of a download ----------------------------------------------------


@pytest.mark.parametrize("is_file", [False, True])
def test_folder_not_found_error_is_a_file_not_found_error_and_pickles(is_file: bool) -> None:
    err = exc.FolderNotFoundError("/no/such", is_file=is_file)
    assert isinstance(err, FileNotFoundError)
    assert isinstance(err, exc.VersionedError)
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is exc.FolderNotFoundError
    assert (str(copy), copy.path, copy.errno) == (str(err), "/no/such", err.errno)


# -- items 6, 9, 14: aws_errors, the one place transport errors become ours --------------


@pytest.mark.parametrize(
    "raw",
    [
        aiohttp.ClientPayloadError("Response payload is not completed"),
        aiohttp.ServerDisconnectedError(),
        asyncio.TimeoutError(),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transport_errors_become_backend_unavailable_chained(raw: BaseException) -> None:
    with (
        pytest.raises(exc.BackendUnavailableError, match="retry later") as raised,
        aws_errors("GetObject s3://b/k"),
    ):
        raise raw
    assert raised.value.__cause__ is raw
    assert type(raw).__name__ in str(raised.value)


def test_no_region_becomes_an_invalid_argument_saying_how_to_give_one() -> None:
    with (
        pytest.raises(exc.InvalidArgumentError) as raised,
        aws_errors("creating the s3 and dynamodb clients"),
    ):
        raise bce.NoRegionError()
    assert "aws_region=" in str(raised.value)
    assert "--region" in str(raised.value)
    assert "AWS_DEFAULT_REGION" in str(raised.value)


def test_a_connection_error_naming_a_url_with_a_password_is_masked_chain_and_all() -> None:
    url = "http://alice:secret@127.0.0.1:9/b/k"
    with pytest.raises(exc.BackendUnavailableError) as raised, aws_errors(f"GetObject {url}"):
        raise bce.EndpointConnectionError(endpoint_url=url)
    assert "secret" not in str(raised.value)
    assert "alice:***@" in str(raised.value)
    assert "secret" not in str(raised.value.__cause__)
