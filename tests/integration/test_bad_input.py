"""Bad arguments are refused up front, with a clear error, and write nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE, artifact_items
from versioned_async import Repository, exc

pytestmark = pytest.mark.both_backends


async def assert_nothing_written(s3: Any, dynamodb: Any) -> None:
    assert "Contents" not in await s3.list_objects_v2(Bucket=BUCKET)
    assert artifact_items((await dynamodb.scan(TableName=TABLE))["Items"]) == []


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("", ValueError, "must not be empty"),
        ("a/b", ValueError, "must not contain '/'"),
        ("__x", ValueError, "must not start with '__'"),
        ("..", ValueError, "not allowed"),
        ("x" * 201, ValueError, "at most 200"),
        ("caf\u00e9", ValueError, "printable ASCII"),
        ("tab\there", ValueError, "printable ASCII"),
        (42, TypeError, "must be a str"),
    ],
)
async def test_bad_names_are_refused(
    repo: Repository, s3: Any, dynamodb: Any, name: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        await repo.put_artifact(name, b"x")
    assert isinstance(info.value, exc.VersionedError)
    await assert_nothing_written(s3, dynamodb)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"content": "text"}, TypeError, "encode text first"),
        ({"content": None}, TypeError, "bytes-like"),
        ({"content_type": "nonsense"}, ValueError, "MIME type"),
        ({"content_type": 3}, TypeError, "content_type must be a str"),
        ({"metadata": {"artifact_sha256": "x"}}, ValueError, "reserved"),
        ({"metadata": {"Upper": "x"}}, ValueError, "lower case"),
        ({"metadata": {"k": "caf\u00e9"}}, ValueError, "printable ASCII"),
        ({"metadata": {"k": 1}}, TypeError, "map str to str"),
        ({"metadata": {"k": "v" * 3000}}, ValueError, "bytes of keys and values"),
        ({"metadata": [("k", "v")]}, TypeError, "dict of str to str"),
        ({"tags": {"k": "a&b"}}, ValueError, "may only use"),
        ({"tags": {f"k{i}": "v" for i in range(11)}}, ValueError, "at most 10 tags"),
    ],
)
async def test_bad_put_arguments_are_refused(
    repo: Repository,
    s3: Any,
    dynamodb: Any,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    args: dict[str, Any] = {"content": b"x", **kwargs}
    with pytest.raises(error, match=message):
        await repo.put_artifact("app", **args)
    await assert_nothing_written(s3, dynamodb)


@pytest.mark.parametrize(
    ("version", "error", "message"),
    [
        (0, ValueError, "from 1 to 999999"),
        (1_000_000, ValueError, "from 1 to 999999"),
        ("-1", ValueError, "'LATEST' or a number"),
        ("v1", ValueError, "'LATEST' or a number"),
        ("latest", ValueError, "'LATEST' or a number"),
        (1.0, TypeError, "an int or a numeric str"),
        (True, TypeError, "an int or a numeric str"),
    ],
)
async def test_bad_versions_are_refused(
    repo: Repository, version: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await repo.get_artifact_version("app", version)
    with pytest.raises(error, match=message):
        await repo.delete_artifact_version("app", version)
