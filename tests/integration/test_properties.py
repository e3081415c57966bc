"""Property tests: whatever the arguments, a call succeeds or is refused cleanly.

Every public write and read is driven with arbitrary names, versions, alias
names, weights, metadata, content types and tags. A call either succeeds or
raises a :class:`versioned_async.exc.VersionedError` (bad arguments are also
``ValueError``/``TypeError``) with a message, never a raw botocore error or
anything else; and a refused call writes nothing: the bucket's objects and the
table's items are the same before and after.

Hypothesis and function-scoped fixtures do not mix, so one repository serves
every example of a test: it holds a seeded artifact ``app`` (LATEST, versions
1 and 2, alias ``prod`` -> 1) and is wiped and seeded again after any example
that may have changed it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import BUCKET, TABLE
from versioned_async import Repository, exc

pytestmark = pytest.mark.both_backends

PROPERTY_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: S3: "user-defined metadata is limited to 2 KB ... the sum of the bytes of each key and value"
S3_USER_METADATA_LIMIT = 2048
#: S3: "the PUT request header is limited to 8 KB in size"
S3_REQUEST_HEADER_LIMIT = 8 * 1024
#: DynamoDB: "the maximum item size in DynamoDB is 400 KB"
DYNAMODB_ITEM_LIMIT = 400 * 1024
#: the longest name the layout allows; the repository's own metadata carries it
LONGEST_NAME = 200

SEEDED = {"LATEST": b"two", "1": b"one", "2": b"two"}


# -- the shared repository -----------------------------------------------------------------


async def seed(repo: Repository) -> None:
    await repo.put_artifact("app", b"one")
    await repo.publish_artifact_version("app")
    await repo.put_artifact("app", b"two")
    await repo.publish_artifact_version("app")
    await repo.put_alias("app", "prod", 1)


Snapshot = tuple[list[Any], list[str]]


class Store:
    """The bucket and the table seen raw, behind the library's back.

    The bucket is versioned when the engine allows it (moto does), so that even a
    rewrite of the same bytes within the same second shows up as a new version;
    otherwise objects are compared by key, ETag, size and modification time.
    """

    def __init__(self, s3: Any, dynamodb: Any) -> None:
        self.s3 = s3
        self.dynamodb = dynamodb
        self.versioned = False

    async def enable_versioning(self) -> None:
        try:
            await self.s3.put_bucket_versioning(
                Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"}
            )
            status = (await self.s3.get_bucket_versioning(Bucket=BUCKET)).get("Status")
        except Exception:  # an engine without versioning: compare without it
            status = None
        self.versioned = status == "Enabled"

    async def snapshot(self) -> Snapshot:
        """Every object (version) and every item, in a comparable form; each object entry
        starts with its key and version id (``None`` when unversioned)."""
        objects: list[Any] = []
        if self.versioned:
            pages = self.s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET)
            async for page in pages:
                objects += [
                    (o["Key"], o["VersionId"], o["ETag"], o["Size"])
                    for o in page.get("Versions", ())
                ]
                objects += [
                    (m["Key"], m["VersionId"], "delete marker")
                    for m in page.get("DeleteMarkers", ())
                ]
        else:
            async for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
                objects += [
                    (o["Key"], None, o["ETag"], o["Size"], o["LastModified"].isoformat())
                    for o in page.get("Contents", ())
                ]
        items: list[str] = []
        async for page in self.dynamodb.get_paginator("scan").paginate(TableName=TABLE):
            items += [json.dumps(item, sort_keys=True) for item in page["Items"]]
        return sorted(objects), sorted(items)

    async def delete(self, objects: Iterable[Any], items: Iterable[str]) -> None:
        for key, version_id, *_ in objects:
            extra = {} if version_id is None else {"VersionId": version_id}
            await self.s3.delete_object(Bucket=BUCKET, Key=key, **extra)
        for text in items:
            item = json.loads(text)
            await self.dynamodb.delete_item(
                TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]}
            )


class World:
    """One repository for all examples, brought back to the seeded state when it may have
    changed: what an example only added is deleted; anything else means wipe and seed."""

    def __init__(self, repo: Repository, store: Store) -> None:
        self.repo = repo
        self.store = store
        self.dirty = True
        self.baseline: Snapshot | None = None

    async def reset_if_dirty(self) -> None:
        if not self.dirty:
            return
        objects, items = await self.store.snapshot()
        if self.baseline is not None:
            old_objects, old_items = set(self.baseline[0]), set(self.baseline[1])
            if old_objects <= set(objects) and old_items <= set(items):
                await self.store.delete(set(objects) - old_objects, set(items) - old_items)
                self.dirty = False
                return
        await self.store.delete(objects, items)
        await self.store.enable_versioning()
        await seed(self.repo)
        self.baseline = await self.store.snapshot()
        self.dirty = False

    async def attempt(self, call: Callable[[], Awaitable[Any]]) -> tuple[Any, Exception | None]:
        """Run ``call`` on the seeded repository; a refusal must be clean and write nothing.

        Returns ``(result, None)`` or ``(None, error)``. Until a refusal is shown to
        have written nothing, the world counts as changed and the next example resets it.
        """
        await self.reset_if_dirty()
        before = self.baseline  # a clean world is exactly the seeded one
        self.dirty = True
        refusal: Exception | None = None
        try:
            result = await call()
        except Exception as err:
            refusal = err
        if refusal is None:
            return result, None
        assert_clean_refusal(refusal)
        after = await self.store.snapshot()
        assert after == before, f"refused with {refusal!r} but wrote: {diff(before, after)}"
        self.dirty = False
        return None, refusal


def assert_clean_refusal(err: Exception) -> None:
    kind = f"{type(err).__module__}.{type(err).__qualname__}"
    assert isinstance(err, exc.VersionedError), f"raised {kind}, not a VersionedError: {err!r}"
    assert str(err).strip(), f"{kind} has an empty message"


def diff(before: Snapshot | None, after: Snapshot) -> str:
    assert before is not None
    gone = [x for part in (0, 1) for x in before[part] if x not in after[part]]
    new = [x for part in (0, 1) for x in after[part] if x not in before[part]]
    return f"removed {gone!r}, added {new!r}"


@pytest.fixture
async def world(repo: Repository, s3: Any, dynamodb: Any) -> World:
    return World(repo, Store(s3, dynamodb))


# -- strategies ------------------------------------------------------------------------------

printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
not_a_str = st.sampled_from([None, 1, 1.5, b"app", ["app"], {"app": 1}])

names = st.one_of(
    st.just("app"),
    st.sampled_from(
        [
            "",
            ".",
            "..",
            "...",
            "__x",
            "__app-alias",
            "app-alias",
            "a/b",
            "../app",
            "app/..",
            "/app",
            "app/",
            "x" * LONGEST_NAME,
            "x" * (LONGEST_NAME + 1),
            "x" * 100_000,
            " app",
            "app ",
            "a\x00b",
            "a\nb",
            "a\tb",
            "caf\u00e9",
            "\u540d\u524d",
            "\u202eexe.txt",
            "\ud800",
            "%2e%2e",
            "%2F",
            "a+b",
            "a\\b",
            "a?b=c&d#e",
        ]
    ),
    st.text(printable, min_size=1, max_size=LONGEST_NAME + 10),
    st.text(max_size=40),
    not_a_str,
)

versions = st.one_of(
    st.sampled_from(
        [
            None,
            "LATEST",
            1,
            2,
            3,
            "1",
            "01",
            "000002",
            "0000001",
            "1" * 7,
            "1" * 100_000,
            "0" * 100_000 + "1",
            0,
            -1,
            10**6,
            999_999,
            10**100,
            "latest",
            "Latest",
            "",
            " 1",
            "1 ",
            "+1",
            "-1",
            "1.0",
            "\u0661",
            "\u00b2",
            "0x1",
            "1e3",
            1.0,
            0.5,
            float("nan"),
            True,
            False,
            b"1",
            [1],
        ]
    ),
    st.integers(min_value=-10, max_value=10**7),
    st.text(max_size=8),
    st.floats(),
)

alias_names = st.one_of(
    st.sampled_from(
        [
            "prod",
            "canary",
            "pro-d",
            "-",
            "a" * 200,
            "a" * 201,
            "a" * 100_000,
            " prod",
            "prod ",
            "p/rod",
            "__x",
            "",
            "prod\n",
            "pr\u00f8d",
        ]
    ),
    st.text(printable, min_size=1, max_size=210),
    st.text(max_size=20),
    not_a_str,
)

weights = st.one_of(
    st.sampled_from([None, 0, 1, 50, 99, 100, -1, 101, 50.0, 0.5, True, False, "50"]),
    st.integers(min_value=-1000, max_value=1000),
    st.floats(),
)

meta_keys = st.one_of(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=30),
    st.text(max_size=30),
    st.sampled_from(
        [
            "Upper",
            "UPPER",
            "artifact_name",
            "ARTIFACT_SHA256",
            "artifact_sha256",
            "x-amz-meta-a",
            "\u043a\u043b\u044e\u0447",
            "a b",
            "",
            "a/b",
            "a:b",
        ]
    ),
)
meta_values = st.one_of(
    st.text(printable, max_size=60),
    st.text(max_size=30),
    st.text(printable, min_size=400, max_size=2100),
    st.sampled_from(["", "\u00e9", "\n", "a\r\nX-Evil: 1", "\x7f"]),
)
metadatas = st.one_of(
    st.none(),
    st.dictionaries(meta_keys, meta_values, max_size=6),
    st.sampled_from([[("k", "v")], "k=v", {"k": 1}, {1: "v"}, {"k": None}]),
)

content_types = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/octet-stream",
            "text/plain",
            "text/plain; charset=utf-8",
            "text/plain;charset=utf-8",
            "binary/octet-stream",
            "nonsense",
            "",
            "/",
            "a/",
            "/b",
            "text/plain\r\nX-Evil: 1",
            "\u00fc/b",
            "application/" + "x" * 300,
            3,
            b"text/plain",
        ]
    ),
    st.text(max_size=40),
    st.builds(
        "{}/{}".format,
        st.text(printable, min_size=1, max_size=20),
        st.text(printable, min_size=1, max_size=20),
    ),
)

tag_maps = st.one_of(
    st.none(),
    st.dictionaries(
        st.one_of(
            st.text("abcdefghijklmnopqrstuvwxyz0123456789 _.:/=+-@", min_size=1, max_size=20),
            st.text(max_size=20),
            st.sampled_from(["aws:x", "k" * 129, ""]),
        ),
        st.one_of(st.text(max_size=30), st.sampled_from(["v" * 257, "a&b", "a=b", "\u00e9"])),
        max_size=11,
    ),
    st.sampled_from([[("k", "v")], {"k": 1}, "k=v"]),
)

contents = st.one_of(
    st.binary(max_size=64),
    st.builds(bytearray, st.binary(max_size=16)),
    st.builds(memoryview, st.binary(max_size=16)),
    st.sampled_from(["text", None, 1, Path("/nonexistent/versioned-async/file")]),
)


# -- every call succeeds or is refused cleanly, writing nothing ------------------------------


@PROPERTY_SETTINGS
@given(
    name=names,
    content=contents,
    content_type=content_types,
    metadata=metadatas,
    tags=tag_maps,
)
@example(name="app", content=b"x", content_type=None, metadata={"k": "v" * 3000}, tags=None)
@example(name="app", content=b"x", content_type=None, metadata=None, tags={"aws:x": "1"})
async def test_put_artifact_succeeds_or_refuses_cleanly(
    world: World, name: Any, content: Any, content_type: Any, metadata: Any, tags: Any
) -> None:
    result, _ = await world.attempt(
        lambda: world.repo.put_artifact(name, content, content_type, metadata, tags)
    )
    if result is not None:
        assert result.name == name
        assert result.sha256 == hashlib.sha256(bytes(content)).hexdigest()


@PROPERTY_SETTINGS
@given(name=names)
async def test_publish_succeeds_or_refuses_cleanly(world: World, name: Any) -> None:
    result, _ = await world.attempt(lambda: world.repo.publish_artifact_version(name))
    if result is not None:
        assert (result.name, result.version) == ("app", "3")


@PROPERTY_SETTINGS
@given(name=names, version=versions)
async def test_get_artifact_version_succeeds_or_refuses_cleanly(
    world: World, name: Any, version: Any
) -> None:
    result, _ = await world.attempt(lambda: world.repo.get_artifact_version(name, version))
    if result is not None:
        world.dirty = False  # a read
        assert result.name == "app"
        assert result.sha256 == hashlib.sha256(SEEDED[result.version]).hexdigest()


@PROPERTY_SETTINGS
@given(name=names, version=versions)
async def test_delete_artifact_version_succeeds_or_refuses_cleanly(
    world: World, name: Any, version: Any
) -> None:
    await world.attempt(lambda: world.repo.delete_artifact_version(name, version))


@PROPERTY_SETTINGS
@given(
    name=names,
    alias=alias_names,
    version=versions,
    secondary=versions,
    weight=weights,
)
@example(name="app", alias="prod", version=1, secondary=2, weight=None)
@example(name="app", alias="prod", version=1, secondary=None, weight=10)
@example(name="app", alias="prod", version=1, secondary=2, weight=100)
@example(name="app", alias="prod", version=1, secondary=2, weight=True)
@example(name="app", alias="prod", version=1, secondary="LATEST", weight=99)
@example(name="app", alias="pro-d", version=1, secondary=None, weight=None)
async def test_put_alias_succeeds_or_refuses_cleanly(
    world: World, name: Any, alias: Any, version: Any, secondary: Any, weight: Any
) -> None:
    result, _ = await world.attempt(
        lambda: world.repo.put_alias(name, alias, version, secondary, weight)
    )
    if result is not None:
        assert (result.name, result.alias) == (name, alias)
        assert 0 <= (result.secondary_version_weight or 0) < 100


@PROPERTY_SETTINGS
@given(name=names, alias=alias_names)
async def test_get_alias_succeeds_or_refuses_cleanly(world: World, name: Any, alias: Any) -> None:
    result, _ = await world.attempt(lambda: world.repo.get_alias(name, alias))
    if result is not None:
        world.dirty = False  # a read
        assert (result.name, result.alias, result.version) == ("app", "prod", "1")


# -- what is accepted is stored as given -----------------------------------------------------

accepted_meta_values = st.text(printable, max_size=40)
accepted_metadatas = st.dictionaries(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=20),
    accepted_meta_values,
    max_size=5,
)
accepted_content_types = st.one_of(
    st.none(),
    st.sampled_from(["application/octet-stream", "text/plain; charset=utf-8", "a/b; x "]),
    st.builds(
        "{}/{}".format,
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20),
        st.text(printable, min_size=1, max_size=20),
    ),
)


@PROPERTY_SETTINGS
@given(
    name=st.text(printable, min_size=1, max_size=LONGEST_NAME),
    content=st.binary(max_size=64),
    content_type=accepted_content_types,
    metadata=accepted_metadatas,
)
@example(name="app", content=b"x", content_type=None, metadata={"k": " padded "})
@example(name="app", content=b"x", content_type="text/plain; x ", metadata={})
async def test_accepted_put_reads_back_exactly_what_was_given(
    world: World, name: str, content: bytes, content_type: str | None, metadata: dict[str, str]
) -> None:
    """A put the library accepts stores the content type and metadata unaltered: reading
    the artifact back gives what was passed, not what HTTP made of it."""
    result, err = await world.attempt(
        lambda: world.repo.put_artifact(name, content, content_type, metadata)
    )
    if err is not None:
        assert isinstance(err, exc.InvalidArgumentError)
        return
    assert result is not None
    stored = await world.repo.get_artifact_version(name)
    for artifact in (result, stored):
        assert dict(artifact.metadata) == metadata
        if content_type not in (None, "binary/octet-stream"):
            assert artifact.content_type == content_type
    assert await world.repo.get_content(name) == content


# -- S3's 2 KB of user metadata and DynamoDB's 400 KB item ---------------------------------


def metadata_of_size(size: int, keys: int = 4) -> dict[str, str]:
    """Lower-case keys and printable values adding up to exactly ``size`` bytes."""
    out: dict[str, str] = {}
    left = size
    for n in range(keys):
        key = f"k{n}"
        value = "v" * (left - len(key) if n == keys - 1 else min(left - len(key), size // keys))
        out[key] = value
        left -= len(key) + len(value)
    assert sum(len(k) + len(v) for k, v in out.items()) == size
    return out


def dynamodb_item_size(item: dict[str, Any]) -> int:
    """An upper bound of an item's size as DynamoDB counts it (names + values, UTF-8)."""
    return len(json.dumps(item).encode())


@PROPERTY_SETTINGS
@given(
    name_length=st.integers(min_value=1, max_value=LONGEST_NAME),
    size=st.integers(min_value=1500, max_value=2100),
    keys=st.integers(min_value=1, max_value=8),
)
@example(name_length=LONGEST_NAME, size=1756, keys=1)
@example(name_length=LONGEST_NAME, size=1757, keys=1)
@example(name_length=1, size=1757, keys=4)
async def test_metadata_is_refused_up_front_unless_it_fits_s3_user_metadata(
    world: World, name_length: int, size: int, keys: int
) -> None:
    """Accepted metadata always fits S3's 2 KB with the repository's own (the name and the
    sha256 ride in it); refused metadata gets a message naming the limit, and nothing is
    written. moto does not enforce the limit, so the raw object is measured here."""
    name = "n" * name_length
    metadata = metadata_of_size(size, keys)
    result, err = await world.attempt(lambda: world.repo.put_artifact(name, b"x", None, metadata))
    if err is not None:
        assert isinstance(err, exc.InvalidArgumentError), repr(err)
        assert "metadata" in str(err)
        assert "bytes" in str(err)
        return
    assert result is not None
    head = await world.store.s3.head_object(Bucket=BUCKET, Key=f"versioned-artifacts/{name}/LATEST")
    total = sum(len(k.encode()) + len(v.encode()) for k, v in head["Metadata"].items())
    assert total <= S3_USER_METADATA_LIMIT, f"{total} bytes of user metadata went to S3"
    assert {k: head["Metadata"][k] for k in metadata} == metadata
    resp = await world.store.dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": name}, "sk": {"S": "LATEST"}}
    )
    assert dynamodb_item_size(resp["Item"]) < DYNAMODB_ITEM_LIMIT


@pytest.mark.parametrize(
    "length",
    [
        pytest.param(S3_REQUEST_HEADER_LIMIT + 1, id="over-s3-8KB-request-header"),
        pytest.param(DYNAMODB_ITEM_LIMIT + 1, id="over-dynamodb-400KB-item"),
    ],
)
async def test_an_oversized_content_type_is_refused_up_front(
    repo: Repository, s3: Any, dynamodb: Any, length: int
) -> None:
    """The content type is the one unbounded string that goes both into the S3 request
    header (8 KB in all) and into the table item (400 KB): a too-long one must be refused
    before anything is sent, with a message naming the limit, leaving the artifact as it
    was and still readable."""
    store = Store(s3, dynamodb)
    await store.enable_versioning()
    await repo.put_artifact("app", b"before")
    before = await store.snapshot()
    content_type = "application/" + "x" * (length - len("application/"))
    with pytest.raises(exc.InvalidArgumentError, match=r"content_type.*(at most|limit)"):
        await repo.put_artifact("app", b"after", content_type=content_type)
    assert await store.snapshot() == before
    assert await repo.get_content("app") == b"before"
