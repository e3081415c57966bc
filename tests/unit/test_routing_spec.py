"""`versioned-routing/1` (docs/ROUTING.md): the published test vectors, reproduced by an
independent implementation of the specification's text and by the library's routing."""

from __future__ import annotations

import hashlib
import itertools
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from versioned_async import Alias
from versioned_async._policy import routing

VECTORS_FILE = Path(__file__).resolve().parents[2] / "docs" / "routing-v1-vectors.json"
DOCUMENT = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
VECTORS: list[dict[str, Any]] = DOCUMENT["vectors"]


def key_of(vector: dict[str, Any]) -> bytes:
    if "key" in vector:
        return str(vector["key"]).encode("utf-8")
    return bytes.fromhex(vector["key_hex"])


def split_alias(name: str, alias: str, weight: int) -> Alias:
    return Alias(
        name=name,
        alias=alias,
        update_at=datetime(2026, 12, 4, tzinfo=timezone.utc),
        version="2",
        secondary_version="3",
        secondary_version_weight=weight,
        version_s3uri="s3://bucket/v2",
        secondary_version_s3uri="s3://bucket/v3",
    )


def test_the_document_names_its_specification_and_covers_the_edges() -> None:
    assert DOCUMENT["spec"] == "versioned-routing/1"
    buckets = {vector["bucket"] for vector in VECTORS}
    assert {0, 99} <= buckets  # both ends of the range
    keys = [key_of(vector) for vector in VECTORS]
    assert b"" in keys
    assert any(b"\x00" in key for key in keys)
    assert any(not key.isascii() for key in keys)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v['name']}/{v['alias']}")
def test_each_vector_follows_the_specification_as_written(vector: dict[str, Any]) -> None:
    message = (
        vector["name"].encode("utf-8") + b"\x00" + vector["alias"].encode("utf-8") + b"\x00"
    ) + key_of(vector)
    digest = hashlib.sha256(message).digest()
    assert digest.hex() == vector["sha256_hex"]
    assert int.from_bytes(digest[:8], "big") % 100 == vector["bucket"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v['name']}/{v['alias']}")
def test_the_library_routes_each_vector_at_every_weight(vector: dict[str, Any]) -> None:
    key: str | bytes = vector["key"] if "key" in vector else key_of(vector)
    assert routing.bucket_for_key(vector["name"], vector["alias"], key) == vector["bucket"]
    for weight in range(100):
        alias = split_alias(vector["name"], vector["alias"], weight)
        expected = "3" if vector["bucket"] < weight else "2"
        assert alias.choose_version(key) == expected, weight


def test_choose_versions_routes_a_batch_of_vectors_as_one_at_a_time() -> None:
    by_alias = itertools.groupby(
        sorted(VECTORS, key=lambda v: (v["name"], v["alias"])), lambda v: (v["name"], v["alias"])
    )
    for (name, alias_name), group in by_alias:
        vectors = list(group)
        keys: list[str | bytes] = [v["key"] if "key" in v else key_of(v) for v in vectors]
        for weight in (0, 1, 30, 81, 99):
            alias = split_alias(name, alias_name, weight)
            assert alias.choose_versions(keys) == [
                "3" if v["bucket"] < weight else "2" for v in vectors
            ]
