"""Seed a repository of the DynamoDB layout straight through S3 and DynamoDB.

For tests about reading (batching, load), not writing: ``put_artifact`` +
``publish_artifact_version`` + ``put_alias`` cost about 14 requests per
artifact, so 100 artifacts took ~15 s of a test's set-up. Written directly,
the same repository costs a PutObject and a HeadObject per object and one
BatchWriteItem per 25 items. What it writes is what the public API leaves behind
(each version item is described from its object's HeadObject by the library's
own ``describe_object``, as ``put_artifact`` does), and ``tests/integration/test_seed.py``
checks that the library reads a seeded repository exactly as one built through
the public API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from versioned_async import _codec, _layout
from versioned_async._aws.s3 import ObjectInfo
from versioned_async._catalog.store import describe_object
from versioned_async._codec import AliasItem
from versioned_async._gather import bounded_gather

#: an alias target: (version, secondary_version, secondary_version_weight)
Target = tuple[int, "int | None", "int | None"]


async def seed_dynamodb_layout(
    s3: Any,
    dynamodb: Any,
    *,
    bucket: str,
    table: str,
    artifacts: Mapping[str, Sequence[bytes]],
    aliases: Mapping[tuple[str, str], Target] | None = None,
    prefix: str = "versioned-artifacts",
) -> None:
    """Versions 1..n of each artifact (``artifacts[name]`` in order; LATEST holds the
    last), and ``aliases[(name, alias)]`` pointing at them. The bucket and table exist."""
    layout = _layout.Layout(bucket=bucket, prefix=prefix)
    now = datetime.now(timezone.utc)
    objects = [
        (name, stored, content)
        for name, contents in artifacts.items()
        for stored, content in [
            *((_layout.encode_version(n), c) for n, c in enumerate(contents, start=1)),
            (_layout.LATEST, contents[-1]),
        ]
    ]

    async def put(name: str, stored: str, content: bytes) -> dict[str, Any]:
        key = layout.key(name, stored)
        sha = hashlib.sha256(content).hexdigest()
        metadata = {_layout.META_NAME: name, _layout.META_SHA256: sha}
        await s3.put_object(Bucket=bucket, Key=key, Body=content, Metadata=metadata)
        info = ObjectInfo.from_response(await s3.head_object(Bucket=bucket, Key=key))
        return _codec.to_item(describe_object(name, stored, sha, info))

    items = await bounded_gather((put(*o) for o in objects), 16)
    for (name, alias), (version, secondary, weight) in (aliases or {}).items():
        record = AliasItem(
            pk=_layout.alias_pk(name),
            sk=alias,
            update_at=now,
            version=_layout.encode_version(version),
            secondary_version=None if secondary is None else _layout.encode_version(secondary),
            secondary_version_weight=weight,
        )
        items.append(_codec.to_item(record))
    for start in range(0, len(items), 25):
        pending: Any = {table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
        for _attempt in range(10):
            pending = (await dynamodb.batch_write_item(RequestItems=pending))["UnprocessedItems"]
            if not pending:
                break
        else:
            raise RuntimeError(f"DynamoDB left {pending} unprocessed")
