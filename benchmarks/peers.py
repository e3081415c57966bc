"""The peers measured next to versioned_async, and the shared benchmark context.

- ``versioned`` 1.0.1, the sync library, called the way its README shows:
  one call after another, each given a ``BotoSesManager``.
- plain boto3 with reused clients, one request after another.
- bare aiobotocore: the requests versioned_async makes, and nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.config import Config
from botocore.loaders import Loader, create_loader

import versioned_async as va
from benchmarks.harness import (
    BUCKET,
    LAYOUT,
    PREFIX,
    REGION,
    TABLE,
    MotoProcess,
    ProxyProcess,
    markdown_table,
)
from versioned_async import _layout


def aio_config(pool: int = 64) -> AioConfig:
    """The client configuration versioned_async uses (retries, pool, timeouts, path style)."""
    return AioConfig(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=pool,
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": "path"},
    )


@contextlib.asynccontextmanager
async def aio_clients(
    session: AioSession, endpoint: str, pool: int = 64
) -> AsyncIterator[tuple[Any, Any]]:
    """A bare aiobotocore (s3, dynamodb) pair, configured as versioned_async's are."""
    async with AsyncExitStack() as stack:
        s3, ddb = [
            await stack.enter_async_context(
                session.create_client(
                    service, region_name=REGION, endpoint_url=endpoint, config=aio_config(pool)
                )
            )
            for service in ("s3", "dynamodb")
        ]
        yield s3, ddb


def boto3_clients(endpoint: str) -> tuple[Any, Any]:
    session = boto3.session.Session(region_name=REGION)
    config = Config(
        retries={"mode": "standard", "max_attempts": 5}, s3={"addressing_style": "path"}
    )
    return (
        session.client("s3", endpoint_url=endpoint, config=config),
        session.client("dynamodb", endpoint_url=endpoint, config=config),
    )


# -- versioned 1.0.1 -------------------------------------------------------------------


def _session_sharing(loader: Loader) -> botocore.session.Session:
    session = botocore.session.get_session()
    session.register_component("data_loader", loader)
    return session


class Upstream:
    """``versioned`` 1.0.1 on our bucket and table.

    ``versioned`` takes no endpoint: botocore reads ``AWS_ENDPOINT_URL``,
    which :meth:`use` sets. Given a ``bsm``, ``versioned`` makes pynamodb build
    a new botocore session and client on every call; with ``share_loader``
    those sessions share one loader of parsed service descriptions (the trick
    of ``tests/interop/conftest.py``), which saves upstream ~0.1 s a call of
    JSON parsing: the comparison is made against upstream at its fastest.
    """

    def __init__(self, share_loader: bool = True) -> None:
        import pynamodb.connection.base  # noqa: PLC0415
        from versioned.api import s3_and_dynamodb_backend  # noqa: PLC0415

        self.module = s3_and_dynamodb_backend
        self.loader = create_loader()
        self.share_loader = share_loader
        if share_loader:
            pynamodb.connection.base.get_session = partial(_session_sharing, self.loader)  # type: ignore[attr-defined]

    @contextlib.contextmanager
    def use(self, endpoint: str) -> Iterator[tuple[Any, Any]]:
        """A fresh (repository, bsm) pointed at ``endpoint``; undone on exit."""
        from boto_session_manager import BotoSesManager  # noqa: PLC0415

        old = os.environ.get("AWS_ENDPOINT_URL")
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        search_paths = list(self.loader.search_paths)
        try:
            botocore_session = _session_sharing(self.loader) if self.share_loader else None
            bsm = BotoSesManager(region_name=REGION, botocore_session=botocore_session)
            repo = self.module.Repository(
                aws_region=REGION,
                s3_bucket=BUCKET,
                s3_prefix=PREFIX + "/",
                dynamodb_table_name=TABLE,
            )
            yield repo, bsm
        finally:
            # boto3 appends its data path to the loader of every session it wraps
            self.loader.search_paths[:] = search_paths
            if old is None:
                os.environ.pop("AWS_ENDPOINT_URL", None)
            else:
                os.environ["AWS_ENDPOINT_URL"] = old


# -- bare aiobotocore: the requests of each versioned_async method -------------------


def _update_at() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f%z")


async def _head(s3: Any, key: str) -> dict[str, Any] | None:
    try:
        return dict(await s3.head_object(Bucket=BUCKET, Key=key))
    except s3.exceptions.ClientError as err:
        if err.response["Error"]["Code"] in ("404", "NoSuchKey"):
            return None
        raise


async def bare_get_alias(s3: Any, ddb: Any, name: str, alias: str) -> dict[str, Any]:
    """get_alias = 1 GetItem."""
    resp = await ddb.get_item(
        TableName=TABLE,
        Key={"pk": {"S": _layout.alias_pk(name)}, "sk": {"S": alias}},
        ConsistentRead=True,
    )
    return dict(resp["Item"])


async def bare_get_version(
    s3: Any, ddb: Any, name: str, version: int | str | None
) -> dict[str, Any]:
    """get_artifact_version = 1 GetItem."""
    resp = await ddb.get_item(
        TableName=TABLE,
        Key={"pk": {"S": name}, "sk": {"S": _layout.encode_version(version)}},
        ConsistentRead=True,
    )
    return dict(resp["Item"])


async def bare_put_artifact(s3: Any, ddb: Any, name: str, body: bytes) -> None:
    """put_artifact = HeadObject + GetItem together, PutObject, HeadObject, PutItem, HeadObject."""
    import asyncio  # noqa: PLC0415

    key = LAYOUT.key(name, "LATEST")
    sha = hashlib.sha256(body).hexdigest()
    await asyncio.gather(
        _head(s3, key),
        ddb.get_item(
            TableName=TABLE, Key={"pk": {"S": name}, "sk": {"S": "LATEST"}}, ConsistentRead=True
        ),
    )
    await s3.put_object(
        Bucket=BUCKET,
        Key=key,
        Body=body,
        Metadata={_layout.META_NAME: name, _layout.META_SHA256: sha},
    )
    head = await _head(s3, key)
    assert head is not None
    update_at = head["LastModified"].astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f%z")
    await ddb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": name},
            "sk": {"S": "LATEST"},
            "is_deleted": {"BOOL": False},
            "sha256": {"S": sha},
            "update_at": {"S": update_at},
            "size": {"N": str(len(body))},
        },
        ConditionExpression="attribute_not_exists(update_at) OR update_at <= :u",
        ExpressionAttributeValues={":u": {"S": update_at}},
    )
    await _head(s3, key)


async def bare_publish(s3: Any, ddb: Any, name: str) -> int:
    """publish = Query, PutItem, CopyObject, HeadObject, UpdateItem."""
    resp = await ddb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": name}},
        ScanIndexForward=False,
        ConsistentRead=True,
        Limit=2,
    )
    top = max((int(i["sk"]["S"]) for i in resp["Items"] if i["sk"]["S"] != "LATEST"), default=0)
    number = top + 1
    stored = _layout.encode_version(number)
    token = secrets.token_hex(16)
    await ddb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": name},
            "sk": {"S": stored},
            "is_deleted": {"BOOL": True},
            "update_at": {"S": _update_at()},
            "publish_token": {"S": token},
        },
        ConditionExpression="attribute_not_exists(pk)",
    )
    await s3.copy_object(
        Bucket=BUCKET,
        Key=LAYOUT.key(name, stored),
        CopySource={"Bucket": BUCKET, "Key": LAYOUT.key(name, "LATEST")},
        MetadataDirective="COPY",
        TaggingDirective="COPY",
    )
    head = await _head(s3, LAYOUT.key(name, stored))
    assert head is not None
    await ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": name}, "sk": {"S": stored}},
        UpdateExpression=(
            "SET #is_deleted = :is_deleted, #sha256 = :sha256, #update_at = :update_at, "
            "#size = :size REMOVE publish_token"
        ),
        ConditionExpression="publish_token = :token",
        ExpressionAttributeNames={
            f"#{k}": k for k in ("is_deleted", "sha256", "update_at", "size")
        },
        ExpressionAttributeValues={
            ":is_deleted": {"BOOL": False},
            ":sha256": {"S": head["Metadata"].get(_layout.META_SHA256, "")},
            ":update_at": {"S": _update_at()},
            ":size": {"N": str(head["ContentLength"])},
            ":token": {"S": token},
        },
    )
    return number


async def bare_put_alias(s3: Any, ddb: Any, name: str, alias: str, version: int) -> None:
    """put_alias = TransactWriteItems (ConditionCheck on the version + Put of the alias)."""
    stored = _layout.encode_version(version)
    await ddb.transact_write_items(
        TransactItems=[
            {
                "ConditionCheck": {
                    "TableName": TABLE,
                    "Key": {"pk": {"S": name}, "sk": {"S": stored}},
                    "ConditionExpression": "attribute_exists(sha256) AND is_deleted = :false",
                    "ExpressionAttributeValues": {":false": {"BOOL": False}},
                }
            },
            {
                "Put": {
                    "TableName": TABLE,
                    "Item": {
                        "pk": {"S": _layout.alias_pk(name)},
                        "sk": {"S": alias},
                        "update_at": {"S": _update_at()},
                        "version": {"S": stored},
                    },
                }
            },
        ]
    )


async def bare_get_object(s3: Any, key: str) -> bytes:
    resp = await s3.get_object(Bucket=BUCKET, Key=key)
    async with resp["Body"] as stream:
        return bytes(await stream.read())


# -- the shared context ------------------------------------------------------------------


@dataclass
class Context:
    """What every scenario gets: options, the servers, a work directory, the results."""

    args: Any
    moto: MotoProcess
    proxy: ProxyProcess
    workdir: Path
    session: AioSession
    upstream: Upstream
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def quick(self) -> bool:
        return bool(self.args.quick)

    @property
    def proxied(self) -> str:
        """Through the latency proxy (``--rtt-ms``)."""
        return self.proxy.endpoint_url

    @property
    def direct(self) -> str:
        """Straight to moto: no added latency."""
        return self.moto.endpoint_url

    def fresh_cache(self, name: str) -> va.LocalCache:
        """An empty LocalCache in the work directory (emptied if it was used before)."""
        directory = self.workdir / name
        shutil.rmtree(directory, ignore_errors=True)
        return va.LocalCache(directory, ttl=3600)

    def ours(self, **kwargs: Any) -> va.Repository:
        """versioned_async on the benchmark repository, through the latency proxy."""
        settings: dict[str, Any] = {
            "dynamodb_table_name": TABLE,
            "endpoint_url": self.proxied,
            "session": self.session,
        }
        settings.update(kwargs)
        return va.Repository(REGION, BUCKET, **settings)

    def report(
        self,
        key: str,
        title: str,
        headers: list[str],
        rows: list[list[Any]],
        *,
        notes: list[str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        print(f"\n### {title}\n", flush=True)
        print(markdown_table(headers, rows))
        for note in notes or []:
            print(f"\n- {note}")
        print(flush=True)
        entry = self.results.setdefault(key, {"tables": []})
        entry["tables"].append(
            {
                "title": title,
                "headers": headers,
                "rows": [[_jsonable(v) for v in row] for row in rows],
                "notes": notes or [],
            }
        )
        if data:
            entry.setdefault("data", {}).update(json.loads(json.dumps(data, default=str)))

    def note(self, key: str, text: str) -> None:
        print(f"- {text}", flush=True)
        self.results.setdefault(key, {"tables": []}).setdefault("notes", []).append(text)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
