"""Repository: the async public API over S3 (content) and DynamoDB (metadata).

It orchestrates: arguments are validated by :mod:`._layout`, items converted
by :mod:`._codec`, purges planned by :mod:`._retention`, and every AWS call
made through :mod:`._aws`. The layout is `versioned` 1.0's, so both libraries
can work on one repository at the same time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import shutil
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Iterable,
    Mapping,
)
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import attrs
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from . import _codec, _layout, _retention
from ._aliases import _UNKNOWN, AliasOperations
from ._aws import AwsBackend, ObjectInfo
from ._codec import AliasItem, VersionItem
from ._freshness import Freshness, freshness, may_serve_stale
from ._layout import LATEST, VersionLike
from ._s3_options import S3Options
from .cache import LocalCache, Staged
from .exc import (
    AliasNotFoundError,
    ArtifactNotFoundError,
    BackendUnavailableError,
    ConflictError,
    IntegrityError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RepositoryClosedError,
    VersionProtectedError,
)
from .models import Alias, Artifact, Hold, bind

__all__ = ["Repository"]

log = logging.getLogger("versioned_async")

_T = TypeVar("_T")

#: hashing a large body blocks the event loop; above this, hash in a thread
_HASH_IN_THREAD_BYTES = 1 << 20
#: how many numbers a publisher tries past the top one before giving up
_PUBLISH_ATTEMPTS = 1000
#: how often a put re-reads LATEST to converge with concurrent puts before giving up
_CONVERGE_ATTEMPTS = 8
#: concurrent requests one bulk operation (purge) keeps in flight
_BULK_CONCURRENCY = 16
#: a transaction takes 100 actions: a purge's delete, its hold check, and this many alias checks
_MAX_ALIAS_GUARDS = 97
#: version items a metadata search checks at once (HeadObjects for `versioned`'s items)
_SEARCH_BATCH = 100

_VISIBLE = _codec.VISIBLE


@attrs.frozen
class ContentRef:
    """Where verified content sits in the cache."""

    sha256: str
    path: str
    size: int | None  # as recorded; a cached file of another size is corrupt


class _DamagedEntry(Exception):
    """A cached file is not the size recorded for it (truncated or replaced)."""


#: below this, reading a file inline is cheaper than a thread hop (~140 us)
_READ_INLINE_BYTES = 1 << 20


async def _read_file(ref: ContentRef) -> bytes:
    """Read a cached file; its content was verified when it was written, its size is
    checked on every read (free: one fstat), so a truncated file is never served."""
    with open(ref.path, "rb") as handle:  # noqa: ASYNC230 - small reads inline, see below
        size = os.fstat(handle.fileno()).st_size
        if ref.size is not None and size != ref.size:
            raise _DamagedEntry(ref.path)
        body = handle.read() if size <= _READ_INLINE_BYTES else await asyncio.to_thread(handle.read)
    if len(body) != size:
        raise _DamagedEntry(ref.path)
    return body


def _describe_object(name: str, stored: str, sha256: str, info: ObjectInfo) -> VersionItem:
    """The visible version item for an object: its own metadata is the truth."""
    return VersionItem(
        pk=name,
        sk=stored,
        is_deleted=False,
        sha256=sha256,
        update_at=info.last_modified,
        size=info.size,
        content_type=info.content_type,
        # always written, even empty: an item without it was written by `versioned`
        metadata=dict(info.metadata),
    )


def _with_object_facts(item: VersionItem, info: ObjectInfo | None) -> VersionItem:
    """``item`` with size, content type and metadata read off its S3 object.

    Only when the object holds the content the item records: an object
    replaced since (a put in flight) describes other content, so the item is
    returned as it is.
    """
    if info is None or info.sha256 != item.sha256:
        return item
    return attrs.evolve(
        item, size=info.size, content_type=info.content_type, metadata=dict(info.metadata)
    )


def _has_metadata(item: VersionItem, wanted: Mapping[str, str]) -> bool:
    """Whether the item's metadata holds every wanted entry (exact match)."""
    have = item.metadata or {}
    return all(have.get(key) == value for key, value in wanted.items())


def _search_filter(
    wanted: Mapping[str, str], *, across_names: bool, include_latest: bool
) -> tuple[str, _codec.Item, dict[str, str]]:
    """FilterExpression, values and names of a metadata search.

    It passes visible version items whose ``metadata`` map holds every wanted
    entry, and those with no ``metadata`` attribute at all (written by
    `versioned`), whose S3 object is then checked instead. Every key goes
    through a ``#name``: metadata keys may hold ``-`` or ``.`` or be reserved
    words. Across names (a Scan) it also skips other item kinds (``__``
    partitions) and, without ``include_latest``, LATEST; a Query does that
    with its key condition instead (a Query filter may not use keys).
    """
    parts = ["attribute_exists(sha256)", "attribute_exists(update_at)", "is_deleted = :false"]
    values: _codec.Item = {":false": {"BOOL": False}}
    names: dict[str, str] = {}
    if across_names:
        parts.insert(0, "NOT begins_with(pk, :dunder)")
        values[":dunder"] = {"S": "__"}
        if not include_latest:
            parts.append("sk <> :latest")
            values[":latest"] = {"S": LATEST}
    if wanted:
        names["#meta"] = "metadata"
        tests = []
        for n, (key, value) in enumerate(sorted(wanted.items())):
            names[f"#k{n}"] = key
            values[f":v{n}"] = {"S": value}
            tests.append(f"#meta.#k{n} = :v{n}")
        parts.append(f"(({' AND '.join(tests)}) OR attribute_not_exists(#meta))")
    return " AND ".join(parts), values, names


def _search_metadata(metadata: object) -> dict[str, str]:
    """The entries to search for: user metadata as put_artifact accepts it."""
    if isinstance(metadata, Mapping) and not isinstance(metadata, dict):
        metadata = dict(metadata)
    return _layout.validate_metadata(metadata)


async def _hash_source(source: bytes | Path) -> tuple[str, int]:
    """sha256 and size of bytes or of a file (read in chunks, in a thread)."""
    if isinstance(source, bytes):
        return await _sha256(source), len(source)

    def hash_file() -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        with open(source, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    return await asyncio.to_thread(hash_file)


async def _sha256(content: bytes) -> str:
    if len(content) >= _HASH_IN_THREAD_BYTES:
        return await asyncio.to_thread(lambda: hashlib.sha256(content).hexdigest())
    return hashlib.sha256(content).hexdigest()


class Repository(AliasOperations):
    """A versioned artifact repository: content in S3, metadata in one DynamoDB table.

    Open it with ``async with``: that creates one pooled S3 client and one
    DynamoDB client, shared by every call and closed on exit::

        async with Repository(aws_region="us-east-1", s3_bucket="my-bucket") as repo:
            await repo.bootstrap()
            await repo.put_artifact("model", b"...")

    ``endpoint_url`` sends both clients to one endpoint (moto, LocalStack). Left
    ``None``, botocore's own configuration applies untouched:
    ``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL_DYNAMODB``
    and profiles. ``client_config`` is merged over the defaults (standard
    retries, 5 attempts, a pool of ``max_pool_connections``).

    Security settings, carried by every S3 request: ``server_side_encryption``
    (``"AES256"`` for SSE-S3, ``"aws:kms"`` for SSE-KMS with ``sse_kms_key_id``)
    for the objects written, and ``expected_bucket_owner`` (a 12-digit account
    id) so that S3 refuses to talk to a bucket another account owns. Uploads
    always carry a SHA-256 checksum that S3 verifies on arrival.

    ``actor`` names who makes this repository's alias changes in their history
    (a pipeline, a service); left ``None``, the caller's AWS identity is asked
    of STS once and used when known.
    """

    def __init__(
        self,
        aws_region: str | None = None,
        s3_bucket: str = "",
        s3_prefix: str = _layout.DEFAULT_S3_PREFIX,
        dynamodb_table_name: str = _layout.DEFAULT_TABLE_NAME,
        suffix: str = "",
        endpoint_url: str | None = None,
        session: AioSession | None = None,
        *,
        cache: LocalCache | None = None,
        max_pool_connections: int = 64,
        client_config: AioConfig | None = None,
        server_side_encryption: str | None = None,
        sse_kms_key_id: str | None = None,
        expected_bucket_owner: str | None = None,
        actor: str | None = None,
    ) -> None:
        for what, value in (
            ("s3_bucket", s3_bucket),
            ("s3_prefix", s3_prefix),
            ("dynamodb_table_name", dynamodb_table_name),
            ("suffix", suffix),
        ):
            if not isinstance(value, str):
                raise InvalidArgumentTypeError(f"{what} must be a str, not {type(value).__name__}")
        if not s3_bucket:
            raise InvalidArgumentError("s3_bucket is required: the bucket that holds the content")
        if not dynamodb_table_name:
            raise InvalidArgumentError("dynamodb_table_name must not be empty")
        self.aws_region = aws_region
        self.s3_bucket = s3_bucket
        self.s3_prefix = s3_prefix.strip("/")
        self.dynamodb_table_name = dynamodb_table_name
        self.suffix = suffix
        self.endpoint_url = endpoint_url
        self.layout = _layout.Layout(bucket=s3_bucket, prefix=s3_prefix, suffix=suffix)
        self._session = session
        if cache is not None and not isinstance(cache, LocalCache):
            raise InvalidArgumentTypeError(
                f"cache must be a LocalCache, not {type(cache).__name__}"
            )
        self.cache = cache
        self.s3_options = S3Options(server_side_encryption, sse_kms_key_id, expected_bucket_owner)
        self._alias_memo: dict[tuple[str, ...], tuple[float, Alias]] = {}
        # name -> {version: token}: reservations a failed publish may have left behind
        self._unreleased: dict[str, dict[str, str]] = {}
        # cache keys name the repository, so one cache directory can serve several
        self._identity = (
            endpoint_url or "aws",
            s3_bucket,
            self.layout.prefix,
            suffix,
            dynamodb_table_name,
        )
        config = AioConfig(
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=max_pool_connections,
            connect_timeout=10,
            read_timeout=60,
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        self._client_config = config.merge(client_config) if client_config else config
        self._stack: AsyncExitStack | None = None
        self._aws: AwsBackend | None = None
        if actor is not None and not isinstance(actor, str):
            raise InvalidArgumentTypeError(f"actor must be a str, not {type(actor).__name__}")
        #: who alias changes are recorded as, unless a call says; ``None``: the AWS identity
        self.actor = actor
        self._caller_arn: str | None = _UNKNOWN
        self._identity_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"Repository(aws_region={self.aws_region!r}, s3_bucket={self.s3_bucket!r}, "
            f"s3_prefix={self.s3_prefix!r}, dynamodb_table_name={self.dynamodb_table_name!r}, "
            f"suffix={self.suffix!r}, endpoint_url={self.endpoint_url!r})"
        )

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Repository:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the clients; ``async with repo`` calls this for you."""
        if self._aws is not None:
            raise RepositoryClosedError("this Repository is already open")
        session = self._session or get_session()
        stack = AsyncExitStack()
        try:
            clients = [
                await stack.enter_async_context(
                    session.create_client(
                        service,
                        region_name=self.aws_region,
                        endpoint_url=self.endpoint_url,
                        config=self._client_config,
                    )
                )
                for service in ("s3", "dynamodb")
            ]
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self._aws = AwsBackend(
            clients[0], clients[1], self.s3_bucket, self.dynamodb_table_name, self.s3_options
        )

    async def close(self) -> None:
        """Close the clients and their connection pools. Safe to call twice."""
        stack, self._stack, self._aws = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    @property
    def is_open(self) -> bool:
        return self._aws is not None

    @property
    def _backend(self) -> AwsBackend:
        if self._aws is None:
            raise RepositoryClosedError(
                "the Repository is not open: use `async with repo:` (or `await repo.open()`)"
            )
        return self._aws

    # -- set-up ----------------------------------------------------------------------

    async def bootstrap(
        self,
        dynamodb_write_capacity_units: int | None = None,
        dynamodb_read_capacity_units: int | None = None,
    ) -> None:
        """Create the bucket and the table when missing. Idempotent.

        The table is on-demand unless both capacities are given.
        """
        if (dynamodb_write_capacity_units is None) != (dynamodb_read_capacity_units is None):
            raise InvalidArgumentError(
                "give both dynamodb_write_capacity_units and dynamodb_read_capacity_units, "
                "or neither for an on-demand table"
            )
        await asyncio.gather(
            self._backend.ensure_bucket(self.aws_region),
            self._backend.ensure_table(dynamodb_read_capacity_units, dynamodb_write_capacity_units),
        )

    # -- artifacts -------------------------------------------------------------------

    async def put_artifact(
        self,
        name: str,
        content: bytes | os.PathLike[str],
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> Artifact:
        """Store ``content`` (bytes, or the path of a file) as the LATEST version of ``name``.

        A file is streamed: hashed and uploaded in parts (multipart above 16
        MiB), so memory stays bounded whatever its size. When LATEST already
        holds the same content (and the same content type and metadata,
        where given) nothing is uploaded. The S3 object is written before the
        table item, so a failed upload leaves the item as it was; calling
        again after a failure repairs a half-done put.
        """
        _layout.validate_name(name)
        body = _layout.validate_content(content)
        content_type = _layout.validate_content_type(content_type)
        user_meta = _layout.validate_metadata(metadata)
        tag_map = _layout.validate_tags(tags)
        aws = self._backend
        key = self.layout.key(name, LATEST)
        (sha, size), (head, raw_item) = await asyncio.gather(
            _hash_source(body),
            asyncio.gather(aws.head_object(key), aws.get_item(name, LATEST)),
        )
        item = None if raw_item is None else _codec.structure_version_item(raw_item)
        unchanged = (
            head is not None
            and head.sha256 == sha
            and not tag_map
            and (content_type is None or content_type == head.content_type)
            and (metadata is None or user_meta == head.metadata)
        )
        if unchanged and head is not None:
            if item is not None and item.is_visible and item.sha256 == sha:
                if item.metadata is None:  # written by `versioned`: the object knows the rest
                    item = _with_object_facts(item, head)
                return self._artifact(item)
            info = head  # the object is right, the item is not: repair it
        else:
            meta = {_layout.META_NAME: name, _layout.META_SHA256: sha, **user_meta}
            await aws.upload(key, body, size, meta, content_type, tag_map, sha)
            written = await aws.head_object(key)
            if written is None:
                raise ConflictError(f"LATEST of {name!r} was deleted while it was being put; retry")
            info = written
        return await self._record_latest(name, info)

    async def _record_latest(self, name: str, info: ObjectInfo) -> Artifact:
        """Point the LATEST item at the object ``info`` describes, until they agree.

        Writes only move ``update_at`` forward, and after each write the object
        is read again: when a concurrent put replaced it meanwhile, the item is
        rewritten to match. So racing puts converge on an item that describes
        the object S3 kept.
        """
        aws = self._backend
        key = self.layout.key(name, LATEST)
        for _attempt in range(_CONVERGE_ATTEMPTS):
            if info.sha256 is None:
                raise IntegrityError(name, LATEST, "<sha256 in object metadata>", "<none>")
            record = _describe_object(name, LATEST, info.sha256, info)
            written = await aws.put_item(
                _codec.to_item(record),
                condition="attribute_not_exists(update_at) OR update_at <= :u",
                values={":u": {"S": _codec.format_update_at(info.last_modified)}},
            )
            fresh = await aws.head_object(key)
            if fresh is None:
                raise ConflictError(f"LATEST of {name!r} was deleted while it was being put; retry")
            if written and fresh.sha256 == record.sha256:
                await self._remember_version(record)
                return self._artifact(record)
            if not written:  # a newer put recorded its own object: fine if they agree
                raw = await aws.get_item(name, LATEST)
                current = None if raw is None else _codec.structure_version_item(raw)
                if current is not None and current.is_visible and current.sha256 == fresh.sha256:
                    if current.metadata is None:  # written by `versioned`: the object knows
                        current = _with_object_facts(current, fresh)
                    return self._artifact(current)
            info = fresh
        raise ConflictError(f"LATEST of {name!r} kept changing while it was being put; retry")

    async def get_artifact_version(self, name: str, version: VersionLike = None) -> Artifact:
        """One version (LATEST by default); ``ArtifactNotFoundError`` when missing or deleted.

        One GetItem. A version written by `versioned` 1.0, whose item records
        no size, content type or metadata, costs one HeadObject more to fill them in.
        """
        _layout.validate_name(name)
        stored = _layout.encode_version(version)
        [item] = await self._complete_from_objects([await self._visible_item(name, stored)])
        return self._artifact(item)

    async def list_artifact_versions(self, name: str) -> list[Artifact]:
        """Every visible version: LATEST first, then newest to oldest. ``[]`` for none.

        One Query of the name's items. Versions written by `versioned` 1.0
        (items without size, content type and metadata) get them from their S3
        object: one HeadObject each, 16 at a time.
        """
        _layout.validate_name(name)
        items = [
            item
            async for raw in self._backend.query(name, descending=True)
            if (item := _codec.structure_version_item(raw)).is_visible
        ]
        return [self._artifact(item) for item in await self._complete_from_objects(items)]

    async def list_artifact_names(self) -> list[str]:
        """Names of every artifact with content in the repository, sorted."""
        return sorted(await self._backend.list_folders(self.layout.root))

    async def find_artifact_versions(
        self,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        *,
        include_latest: bool = True,
        limit: int | None = None,
    ) -> list[Artifact]:
        """Visible versions whose user metadata holds every ``key: value`` of ``metadata``.

        Exact, case-sensitive matches, all of them (AND); keys follow
        put_artifact's rules. ``None`` or ``{}`` matches every version. With
        ``name``, the versions of that artifact; with ``None``, of every
        artifact. ``include_latest=False`` leaves LATEST out (it moves; numbered
        versions do not). Sorted by name, then as :meth:`list_artifact_versions`
        (LATEST first, then newest to oldest); ``limit`` keeps the first ``limit``.

        Cost. With ``name``: one strongly consistent Query of that name's
        partition. DynamoDB filters after reading, so every version item of
        the name is read and billed (1 RCU per 4 KB), matching or not; with
        ``limit`` the Query stops after the page that completes it. Without
        ``name``: a Scan of the whole table, every item of every artifact
        (aliases and their history too), billed in full: for occasional or
        administrative use, not a request path. Either way, each candidate
        version written by `versioned` 1.0 (which keeps no metadata in the
        table) costs a HeadObject, 16 at a time, since its S3 object is the
        truth. There is no index: a GSI can only index a top-level attribute,
        not a key of the metadata map.
        """
        if name is not None:
            _layout.validate_name(name)
        wanted = _search_metadata(metadata)
        if not isinstance(include_latest, bool):
            raise InvalidArgumentTypeError(
                f"include_latest must be a bool, not {type(include_latest).__name__}"
            )
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise InvalidArgumentError(f"limit must be None or an int of at least 1, got {limit!r}")
        condition, values, names = _search_filter(
            wanted, across_names=name is None, include_latest=include_latest
        )
        aws = self._backend
        if name is not None:
            numbered = (_layout.FIRST_STORED_VERSION, _layout.LAST_STORED_VERSION)
            found = await self._matching(
                aws.query(
                    name,
                    descending=True,
                    sk_between=None if include_latest else numbered,
                    filter=condition,
                    filter_values=values,
                    filter_names=names,
                ),
                wanted,
                limit,
            )
        else:
            found = await self._matching(aws.scan(condition, values, names), wanted, None)
            found.sort(key=lambda item: item.sk, reverse=True)  # LATEST, then newest
            found.sort(key=lambda item: item.pk)
            found = found[:limit]
        return [self._artifact(item) for item in found]

    async def _matching(
        self, raws: AsyncIterator[_codec.Item], wanted: Mapping[str, str], limit: int | None
    ) -> list[VersionItem]:
        """The visible items among ``raws`` whose metadata holds ``wanted``, in the order
        read, at most ``limit``. Items `versioned` wrote are judged by their S3 object."""
        found: list[VersionItem] = []
        batch: list[VersionItem] = []

        async def check() -> None:
            found.extend(
                i for i in await self._complete_from_objects(batch) if _has_metadata(i, wanted)
            )
            batch.clear()

        async for raw in raws:
            item = _codec.structure_version_item(raw)
            if item.is_visible:
                batch.append(item)
            if len(batch) >= _SEARCH_BATCH:
                await check()
                if limit is not None and len(found) >= limit:
                    break
        await check()
        return found[:limit]

    async def _complete_from_objects(self, items: list[VersionItem]) -> list[VersionItem]:
        """The items, those `versioned` wrote (no ``metadata`` attribute) completed from a
        HeadObject of their object, :data:`_BULK_CONCURRENCY` at a time."""
        lacking = [n for n, item in enumerate(items) if item.metadata is None]
        if not lacking:
            return items
        infos = await _bounded_gather(
            (self._backend.head_object(self.layout.key(items[n].pk, items[n].sk)) for n in lacking),
            _BULK_CONCURRENCY,
        )
        out = list(items)
        for n, info in zip(lacking, infos, strict=True):
            out[n] = _with_object_facts(items[n], info)
        return out

    async def publish_artifact_version(self, name: str) -> Artifact:
        """Snapshot LATEST as the next immutable version and return it.

        Safe under concurrency: each publisher first claims its number with a
        conditional write (a hidden reservation item), so concurrent
        publishers, in one process or many, get distinct numbers. The recorded
        sha256 is read from the copied object itself, so it matches the
        content even when a put races the publish.
        """
        _layout.validate_name(name)
        aws = self._backend
        await self._release_leftovers(name)
        latest, top = None, 0
        async for raw in aws.query(name, descending=True, limit=2):
            item = _codec.structure_version_item(raw)
            if item.sk == LATEST:
                latest = item
            elif top == 0:
                top = int(item.sk)
        if latest is None or not latest.is_visible:
            raise ArtifactNotFoundError(name, LATEST)
        number, token = await self._reserve_version(name, top + 1)
        stored = _layout.encode_version(number)
        try:
            if not await aws.copy_object(
                self.layout.key(name, LATEST), self.layout.key(name, stored)
            ):
                raise ArtifactNotFoundError(name, LATEST)
            info = await aws.head_object(self.layout.key(name, stored))
            if info is None:
                raise ConflictError(
                    f"version {number} of {name!r} vanished while publishing; retry"
                )
            sha = info.sha256 or await self._hash_object(name, stored)
            record = _describe_object(name, stored, sha, info)
            plain = _codec.unstructure(record)
            plain.pop("pk")
            plain.pop("sk")
            names = {f"#{k}": k for k in plain}
            values = _codec.to_attribute_values({f":{k}": v for k, v in plain.items()})
            values[":token"] = {"S": token}
            assignments = ", ".join(f"#{k} = :{k}" for k in plain)
            done = await aws.update_item(
                name,
                stored,
                update=f"SET {assignments} REMOVE publish_token",
                condition="publish_token = :token",
                values=values,
                names=names,
            )
            if not done and not await self._is_published(name, stored, sha):
                raise ConflictError(
                    f"version {number} of {name!r} was overwritten by a writer that does not "
                    "reserve numbers (an older `versioned` client?); publish again"
                )
        except BaseException:
            await self._release_reservation(name, stored, token)
            raise
        await self._remember_version(record)
        return self._artifact(record)

    async def _reserve_version(self, name: str, first: int) -> tuple[int, str]:
        """Claim the lowest free number from ``first`` on with a conditional put."""
        token = secrets.token_hex(16)
        for number in range(first, first + _PUBLISH_ATTEMPTS):
            if number > _layout.MAX_VERSION:
                break
            reservation = VersionItem(
                pk=name,
                sk=_layout.encode_version(number),
                is_deleted=True,  # invisible to both libraries until complete
                update_at=_codec.utcnow(),
                publish_token=token,
            )
            stored = reservation.sk
            try:
                placed = await self._backend.put_item(
                    _codec.to_item(reservation), condition="attribute_not_exists(pk)"
                )
            except BaseException:  # the answer was lost: it may have been placed
                self._unreleased.setdefault(name, {})[stored] = token
                raise
            if placed or await self._is_our_reservation(name, stored, token):
                return number, token
        if first + _PUBLISH_ATTEMPTS <= _layout.MAX_VERSION:
            raise ConflictError(f"could not claim a version number for {name!r}; retry")
        raise InvalidArgumentError(
            f"{name!r} has used every version number up to {_layout.MAX_VERSION}"
        )

    async def _is_published(self, name: str, stored: str, sha: str) -> bool:
        """Whether a refused completion had in fact landed: an attempt whose answer
        was lost, retried by botocore, finds its own token already removed."""
        raw = await self._backend.get_item(name, stored)
        item = None if raw is None else _codec.structure_version_item(raw)
        return item is not None and item.is_visible and item.sha256 == sha

    async def _is_our_reservation(self, name: str, stored: str, token: str) -> bool:
        """Whether a refused reservation was our own, placed by an attempt whose answer
        was lost and which botocore then retried."""
        raw = await self._backend.get_item(name, stored)
        return raw is not None and raw.get("publish_token", {}).get("S") == token

    async def _release_reservation(self, name: str, stored: str, token: str) -> None:
        try:
            await asyncio.shield(
                self._backend.delete_item(
                    name, stored, condition="publish_token = :t", values={":t": {"S": token}}
                )
            )
        except Exception:  # the publish already failed; report that, not this
            log.warning("could not release the reservation of %r version %s", name, stored)
            self._unreleased.setdefault(name, {})[stored] = token
        else:
            self._unreleased.get(name, {}).pop(stored, None)

    async def _release_leftovers(self, name: str) -> None:
        """Release reservations an earlier failed publish could not, so no number is skipped."""
        for stored, token in list(self._unreleased.get(name, {}).items()):
            await self._release_reservation(name, stored, token)

    async def _hash_object(self, name: str, stored: str) -> str:
        """sha256 of an object written without our metadata (by some other tool)."""
        got = await self._backend.get_object(self.layout.key(name, stored))
        if got is None:
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return await _sha256(got[0])

    async def delete_artifact_version(self, name: str, version: VersionLike = None) -> None:
        """Soft-delete a version: hidden from get and list, its number never reused.

        Deleting a version that does not exist changes nothing. A held version
        (:meth:`protect`) is not deleted: ``VersionProtectedError``; the hold
        check and the delete are one transaction.
        """
        _layout.validate_name(name)
        stored = _layout.encode_version(version)
        update, exists, true = "SET is_deleted = :true", "attribute_exists(pk)", {"BOOL": True}
        if stored == LATEST:  # never held (protect refuses it): no hold to check
            await self._backend.update_item(
                name, stored, update=update, condition=exists, values={":true": true}
            )
        else:
            delete = {
                "Key": {"pk": {"S": name}, "sk": {"S": stored}},
                "UpdateExpression": update,
                "ConditionExpression": exists,
                "ExpressionAttributeValues": {":true": true},
            }
            hold_absent = {
                "Key": {"pk": {"S": _layout.holds_pk(name)}, "sk": {"S": stored}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
            reasons = await self._backend.transact_write(
                f"delete version {_layout.decode_version(stored)} of {name!r}",
                [{"Update": delete}, {"ConditionCheck": hold_absent}],
            )
            # one reason per action, in order: a missing version is a no-op, as before
            missing = reasons[:1] == ["ConditionalCheckFailed"]
            if not missing and reasons[1:2] == ["ConditionalCheckFailed"]:
                raise VersionProtectedError(name, _layout.decode_version(stored))
        if self.cache is not None:
            await self.cache.forget(self._lookup_key("v", name, stored))

    # -- reading content -------------------------------------------------------------

    async def get_content(self, name: str, version: VersionLike = None) -> bytes:
        """The content of a version (LATEST by default), checked against its sha256.

        Without a cache, the item lookup and the download run concurrently:
        one round trip. With a :class:`LocalCache`, a version seen within the
        TTL is read from local disk without any request.
        """
        _layout.validate_name(name)
        stored = _layout.encode_version(version)
        if self.cache is None:
            return await self._get_content_direct(name, stored)
        for _attempt in range(2):
            ref = await self._cached_content(name, stored)
            if ref is None:  # larger than the cache may hold
                return await self._get_content_direct(name, stored)
            try:
                return await _read_file(ref)
            except FileNotFoundError:  # evicted by another process just now
                self.cache.forget_content_path(ref.sha256)
            except _DamagedEntry:
                log.warning("cached content %s is damaged; fetching it again", ref.sha256)
                await self.cache.discard(ref.sha256)
        return await self._get_content_direct(name, stored)

    async def get_alias_content(
        self, name: str, alias: str, routing_key: str | bytes | None = None
    ) -> bytes:
        """Resolve ``alias``, pick a version (sticky for ``routing_key``), return its content.

        Cold, this costs two round trips: the alias, then the version lookup
        and the download together. With a cache, none inside the TTL.
        """
        resolved = await self.resolve_alias(name, alias)
        return await self.get_content(name, resolved.choose_version(routing_key))

    async def download(
        self,
        name: str,
        path: str | os.PathLike[str],
        version: VersionLike = None,
        alias: str | None = None,
        routing_key: str | bytes | None = None,
    ) -> Path:
        """Write a version's content to the file ``path``, streaming; returns the Path.

        Give ``version`` or ``alias`` (with an optional ``routing_key``), not
        both. Memory stays bounded whatever the size. The file appears
        complete and verified, or not at all (it is written beside ``path``
        and renamed into place).
        """
        _layout.validate_name(name)
        if alias is not None and version is not None:
            raise InvalidArgumentError("give version or alias, not both")
        target = Path(path)
        if target.is_dir():
            raise InvalidArgumentError(f"{target} is a directory; give the file path to write")
        if alias is not None:
            version = (await self.resolve_alias(name, alias)).choose_version(routing_key)
        stored = _layout.encode_version(version)
        part = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
        try:
            ref = None if self.cache is None else await self._cached_content(name, stored)
            if ref is not None:
                try:
                    await asyncio.to_thread(shutil.copyfile, ref.path, part)
                    if ref.size is not None and part.stat().st_size != ref.size:
                        raise _DamagedEntry(ref.path)
                except FileNotFoundError:  # evicted just now: go to S3
                    ref = None
                except _DamagedEntry:
                    log.warning("cached content %s is damaged; fetching it again", ref.sha256)
                    await self._require_cache().discard(ref.sha256)
                    ref = None
            if ref is None:
                await self._download_direct(name, stored, part)
            os.replace(part, target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return target

    async def _get_content_direct(self, name: str, stored: str) -> bytes:
        for attempt in range(2):
            body, item, info = await self._fetch_with_item(name, stored)
            assert item.sha256 is not None
            actual = await _sha256(body)
            if actual == item.sha256 or await self._repaired_latest(name, stored, actual, info):
                return body
            if stored != LATEST or attempt:
                raise IntegrityError(name, _layout.decode_version(stored), item.sha256, actual)
            # LATEST may have been put between the two reads: read both again
        raise AssertionError("unreachable")  # pragma: no cover

    async def _repaired_latest(self, name: str, stored: str, actual: str, info: ObjectInfo) -> bool:
        """Whether content that disagrees with LATEST's item is a half-done put, now repaired.

        put_artifact writes the object before the item; when it failed between
        the two, the object (whose own metadata carries the sha256 its bytes
        have) is newer than the item. The item is brought up to date, as the
        put would have done, and the content served.
        """
        if stored != LATEST or info.sha256 != actual:
            return False
        log.info("LATEST of %r is newer than its item (a put was cut short); repairing", name)
        await self._record_latest(name, info)
        return True

    async def _fetch_with_item(
        self, name: str, stored: str
    ) -> tuple[bytes, VersionItem, ObjectInfo]:
        aws = self._backend
        download = asyncio.ensure_future(aws.get_object(self.layout.key(name, stored)))
        try:
            item = await self._visible_item(name, stored)
            got = await download
        except BaseException:
            download.cancel()
            raise
        if got is None:
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return got[0], item, got[1]

    async def _download_direct(self, name: str, stored: str, part: Path) -> None:
        """Stream a version into ``part``, overlapping the lookup; verify the sha256."""
        for attempt in range(2):
            sha, item, info = await self._stream_with_item(name, stored, part)
            if sha == item.sha256 or await self._repaired_latest(name, stored, sha, info):
                return
            part.unlink(missing_ok=True)
            if stored != LATEST or attempt:
                raise IntegrityError(name, _layout.decode_version(stored), str(item.sha256), sha)

    async def _stream_with_item(
        self, name: str, stored: str, part: Path
    ) -> tuple[str, VersionItem, ObjectInfo]:
        aws = self._backend
        download = asyncio.ensure_future(aws.download_to(self.layout.key(name, stored), part))
        try:
            item = await self._visible_item(name, stored)
            got = await download
        except BaseException:
            download.cancel()
            part.unlink(missing_ok=True)
            raise
        if got is None:
            part.unlink(missing_ok=True)
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        if self.cache is not None:
            self.cache.count("downloads")
            self.cache.count("bytes_downloaded", got[1])
        return got[0], item, got[2]

    # -- the cached read path ----------------------------------------------------------

    def _lookup_key(self, kind: str, name: str, which: str) -> tuple[str, ...]:
        # the cache's eviction reads these keys to keep alias targets: see _eviction
        return (kind, *self._identity, name, which)

    async def _cached_content(self, name: str, stored: str) -> ContentRef | None:
        """The cached file for a version, downloading it when needed.

        Fresh lookup + known file: no request. Stale lookup: revalidate (one
        GetItem), serving the old answer when AWS is down and stale-if-error
        is on. Never seen: lookup and download together, verified.
        """
        cache = self._require_cache()
        key = self._lookup_key("v", name, stored)
        entry = cache.lookup(key) or await cache.load_lookup(key)
        state = freshness(None if entry is None else entry[0], cache.clock(), cache.ttl)
        if state is Freshness.FRESH and entry is not None:
            cache.count("lookup_hits")
            sha = entry[1][0]
            path = cache.content_path_now(sha) or await cache.content_path(sha)
            if path is not None:
                cache.hit(sha)
                return ContentRef(sha, path, entry[1][1])
            return await cache.single_flight(
                ("sha", sha), lambda: self._fetch_into_cache(name, stored, expected=sha)
            )
        return await cache.single_flight(
            ("version", key), lambda: self._revalidate_and_fetch(name, stored, key, entry)
        )

    async def _revalidate_and_fetch(
        self, name: str, stored: str, key: tuple[str, ...], entry: tuple[float, Any] | None
    ) -> ContentRef | None:
        cache = self._require_cache()
        known_sha: str | None = None if entry is None else entry[1][0]
        known_path = (
            None
            if known_sha is None
            else cache.content_path_now(known_sha) or await cache.content_path(known_sha)
        )
        if known_sha is None or known_path is None:
            # nothing usable locally: look up and download in one round trip
            try:
                return await self._fetch_into_cache(name, stored, expected=None)
            except ArtifactNotFoundError:
                await cache.forget(key)
                raise
        try:
            item = await self._visible_item(name, stored)
        except BackendUnavailableError as err:
            assert entry is not None
            if not may_serve_stale(Freshness.STALE, stale_if_error=cache.stale_if_error):
                raise
            self._serve_stale(f"{name!r} version {_layout.decode_version(stored)}", entry, err)
            cache.count("hits")
            return ContentRef(known_sha, known_path, entry[1][1])
        except ArtifactNotFoundError:
            await cache.forget(key)
            raise
        assert item.sha256 is not None
        cache.count("lookup_refreshes")
        await cache.remember(key, (item.sha256, item.size))
        if item.sha256 == known_sha:
            cache.count("hits")
            return ContentRef(known_sha, known_path, item.size)
        path = await cache.content_path(item.sha256)
        if path is not None:
            cache.count("hits")
            return ContentRef(item.sha256, path, item.size)
        return await self._fetch_into_cache(name, stored, expected=item.sha256)

    async def _fetch_into_cache(
        self, name: str, stored: str, expected: str | None
    ) -> ContentRef | None:
        """Download a version into the cache, once per cache directory.

        Processes sharing the directory take a lease per version: one
        downloads, the others wait and then find the lookup and the content
        it left in the cache (a crashed holder's lease expires).
        """
        cache = self._require_cache()
        key = self._lookup_key("v", name, stored)
        async with cache.download_lease(key):
            # another process may have finished it just before we took the lease
            entry = await cache.reload_lookup(key)
            fresh = entry is not None and (
                freshness(entry[0], cache.clock(), cache.ttl) is Freshness.FRESH
            )
            if entry is not None and fresh and expected in (None, entry[1][0]):
                sha, size = entry[1]
                path = await cache.content_path(sha)
                if path is not None:
                    cache.count("hits")
                    return ContentRef(sha, path, size)
            return await self._download_into_cache(name, stored, expected)

    async def _download_into_cache(
        self, name: str, stored: str, expected: str | None
    ) -> ContentRef | None:
        """Download a version into staging, verify it, publish it into the cache.

        With ``expected`` (the sha256 a fresh lookup gave) only the object is
        fetched; without, the item is looked up at the same time.
        """
        cache = self._require_cache()
        key = self._lookup_key("v", name, stored)
        for attempt in range(2):
            part = cache.new_staging_path()
            if expected is None:
                sha, item, info = await self._stream_with_item(name, stored, part)
                recorded = str(item.sha256)
                if sha != recorded and await self._repaired_latest(name, stored, sha, info):
                    recorded = sha
            else:
                got = await self._backend.download_to(self.layout.key(name, stored), part)
                if got is None:
                    await cache.forget(key)
                    raise ArtifactNotFoundError(name, _layout.decode_version(stored))
                cache.count("downloads")
                cache.count("bytes_downloaded", got[1])
                sha, recorded = got[0], expected
            try:
                cache.count("misses")
                if sha != recorded:
                    cache.count("integrity_failures")
                    if stored == LATEST and not attempt:  # LATEST moved meanwhile: re-read
                        expected = None
                        continue
                    raise IntegrityError(name, _layout.decode_version(stored), recorded, sha)
                size = part.stat().st_size
                await cache.remember(key, (sha, size))
                path = await cache.publish(Staged(part, sha, size))
                return None if path is None else ContentRef(sha, path, size)
            finally:
                part.unlink(missing_ok=True)
        raise AssertionError("unreachable")  # pragma: no cover

    async def resolve_alias(self, name: str, alias: str) -> Alias:
        """The alias as the read path sees it: from the cache within the TTL, and the
        last known one when AWS is down (stale-if-error). Without a cache, ``get_alias``.

        For routing many keys, resolve once and call ``choose_version`` per key.
        """
        if self.cache is None:
            return await self.get_alias(name, alias)
        cache = self.cache
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        key = self._lookup_key("a", name, alias)
        entry = cache.lookup(key) or await cache.load_lookup(key)
        state = freshness(None if entry is None else entry[0], cache.clock(), cache.ttl)
        if state is Freshness.FRESH and entry is not None:
            cache.count("lookup_hits")
            memo = self._alias_memo.get(key)
            if memo is None or memo[0] != entry[0]:  # build the model once per lookup
                memo = (entry[0], self._alias(_codec.converter.structure(entry[1], AliasItem)))
                self._alias_memo[key] = memo
            return memo[1]
        try:  # one request for many concurrent callers; get_alias refreshes the lookup
            return await cache.single_flight(("alias", key), lambda: self.get_alias(name, alias))
        except BackendUnavailableError as err:
            if entry is None or not may_serve_stale(state, stale_if_error=cache.stale_if_error):
                raise
            self._serve_stale(f"alias {alias!r} of {name!r}", entry, err)
            return self._alias(_codec.converter.structure(entry[1], AliasItem))
        except AliasNotFoundError:
            await cache.forget(key)
            raise

    async def _remember_alias(self, record: AliasItem) -> None:
        if self.cache is not None:
            self.cache.count("lookup_refreshes")
            name = _layout.name_from_alias_pk(record.pk)
            await self.cache.remember(
                self._lookup_key("a", name, record.sk), _codec.unstructure(record)
            )

    async def _remember_version(self, record: VersionItem) -> None:
        if self.cache is not None and record.sha256 is not None:
            await self.cache.remember(
                self._lookup_key("v", record.pk, record.sk), (record.sha256, record.size)
            )

    def _serve_stale(self, what: str, entry: tuple[float, Any], err: Exception) -> None:
        cache = self._require_cache()
        cache.count("stale_serves")
        age = cache.clock() - entry[0]
        log.warning("serving %s from the local cache, %.0f s old: %s", what, age, err)

    def _require_cache(self) -> LocalCache:
        assert self.cache is not None, "only called with a cache"
        return self.cache

    async def _read_verified(self, artifact: Artifact) -> bytes:
        """Content of a model read earlier, checked against its own sha256."""
        stored = _layout.encode_version(artifact.version)
        got = await self._backend.get_object(self.layout.key(artifact.name, stored))
        if got is None:
            raise ArtifactNotFoundError(artifact.name, artifact.version)
        actual = await _sha256(got[0])
        if actual != artifact.sha256:
            if artifact.is_latest:
                raise ConflictError(
                    f"LATEST of {artifact.name!r} changed since this Artifact was read; "
                    "read it again with get_artifact_version()"
                )
            raise IntegrityError(artifact.name, artifact.version, artifact.sha256, actual)
        return got[0]

    async def _visible_item(self, name: str, stored: str) -> VersionItem:
        raw = await self._backend.get_item(name, stored)
        item = None if raw is None else _codec.structure_version_item(raw)
        if item is None or not item.is_visible:
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return item

    # -- retention -------------------------------------------------------------------

    async def purge_artifact_versions(
        self,
        name: str,
        keep_last_n: int = 10,
        purge_older_than_secs: float = 90 * 24 * 60 * 60,
        *,
        dry_run: bool = False,
    ) -> tuple[datetime, list[Artifact]]:
        """Soft-delete old numbered versions; returns the purge time and what was deleted.

        Kept: LATEST, the newest ``keep_last_n`` numbered versions, versions
        younger than ``purge_older_than_secs``, every version an alias points
        at (primary or canary) and every version held with :meth:`protect`.
        ``dry_run=True`` returns the plan and writes nothing.

        Safe against concurrent alias moves and holds: each delete is one
        transaction that also checks that no alias read for the plan has
        changed and that the version is not held; a version whose check fails
        is kept and left out of the result. An alias created meanwhile is
        caught by reading the aliases again after the deletes: a version it
        points at is restored. Cost: one transaction per deleted version, one
        at a time, and up to four queries.
        """
        _layout.validate_name(name)
        keep, older_than = _retention.validate_retention(keep_last_n, purge_older_than_secs)
        if not isinstance(dry_run, bool):
            raise InvalidArgumentTypeError(f"dry_run must be a bool, not {type(dry_run).__name__}")
        versions, aliases, holds = await asyncio.gather(
            self.list_artifact_versions(name), self._alias_tokens(name), self.list_protected(name)
        )
        purge_time = _codec.utcnow()
        doomed = _retention.plan_purge(
            versions,
            [self._alias(record) for record, _ in aliases],
            keep_last_n=keep,
            purge_older_than_secs=older_than,
            now=purge_time,
            held=[hold.version for hold in holds],
        )
        if dry_run or not doomed:
            return purge_time, doomed
        guards = [(record.pk, record.sk, token) for record, token in aliases]
        if len(guards) > _MAX_ALIAS_GUARDS:
            # Too many aliases for one transaction: the deletes check the hold only, and
            # the re-read below restores any version an alias (moved or new) points at.
            guards = []
        # One at a time: concurrent transactions that check the same alias items
        # conflict (TransactionConflict), and moto rolls a cancelled transaction back
        # by restoring the whole table, undoing whatever ran beside it.
        deleted = [v for v in doomed if await self._purge_version(name, v, guards)]
        if not deleted:
            return purge_time, deleted
        # an alias created (or, unchecked, moved) since the plan was read may point at a
        # version just deleted: bring it back
        after = [self._alias(record) for record, _ in await self._alias_tokens(name)]
        back = _retention.restorable(deleted, after)
        await _bounded_gather((self._restore_version(name, v) for v in back), _BULK_CONCURRENCY)
        restored = {v.version for v in back}
        return purge_time, [v for v in deleted if v.version not in restored]

    async def _alias_tokens(self, name: str) -> list[tuple[AliasItem, dict[str, Any]]]:
        """The alias items of ``name``, each with its stored ``update_at``: the change
        token both libraries rewrite on every put."""
        return [
            (_codec.structure_alias_item(raw), raw["update_at"])
            async for raw in self._backend.query(_layout.alias_pk(name))
        ]

    async def _purge_version(
        self, name: str, artifact: Artifact, guards: list[tuple[str, str, dict[str, Any]]]
    ) -> bool:
        """Soft-delete one planned version in a transaction that checks the aliases read
        for the plan are unchanged and no hold appeared. Whether it is now deleted."""
        stored = _layout.encode_version(artifact.version)
        actions: list[dict[str, Any]] = [
            {
                "Update": {
                    "Key": {"pk": {"S": name}, "sk": {"S": stored}},
                    "UpdateExpression": "SET is_deleted = :true",
                    "ConditionExpression": _VISIBLE,
                    "ExpressionAttributeValues": {
                        ":true": {"BOOL": True},
                        ":false": {"BOOL": False},
                    },
                }
            },
            *(
                {
                    "ConditionCheck": {
                        "Key": {"pk": {"S": pk}, "sk": {"S": sk}},
                        "ConditionExpression": "update_at = :u",
                        "ExpressionAttributeValues": {":u": token},
                    }
                }
                for pk, sk, token in guards
            ),
            {
                "ConditionCheck": {
                    "Key": {"pk": {"S": _layout.holds_pk(name)}, "sk": {"S": stored}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        reasons = await self._backend.transact_write(
            f"purge version {artifact.version} of {name!r}", actions
        )
        if reasons and any(code != "None" for code in reasons[1:]):
            return False  # an alias changed or a hold appeared: kept
        # Only the version's own condition failed: it is no longer visible. Our own
        # delete, sent again by botocore after its answer was lost, looks like this,
        # as does another purge's: deleted as planned if it still holds that content.
        if reasons and not await self._is_deleted(name, stored, artifact.sha256):
            return False
        if self.cache is not None:
            await self.cache.forget(self._lookup_key("v", name, stored))
        return True

    async def _is_deleted(self, name: str, stored: str, sha256: str) -> bool:
        raw = await self._backend.get_item(name, stored)
        item = None if raw is None else _codec.structure_version_item(raw)
        return item is not None and item.is_deleted and item.sha256 == sha256

    async def _restore_version(self, name: str, artifact: Artifact) -> None:
        """Undo a purge's soft delete of a version an alias was pointed at meanwhile."""
        log.warning(
            "purge of %r: an alias was pointed at version %s while it was being deleted; "
            "restoring it",
            name,
            artifact.version,
        )
        await self._backend.update_item(
            name,
            _layout.encode_version(artifact.version),
            update="SET is_deleted = :false",
            condition="is_deleted = :true AND sha256 = :sha",
            values={
                ":true": {"BOOL": True},
                ":false": {"BOOL": False},
                ":sha": {"S": artifact.sha256},
            },
        )

    async def protect(self, name: str, version: VersionLike, *, reason: str | None = None) -> Hold:
        """Hold a published version: purges and :meth:`delete_artifact_version` leave it
        alone until :meth:`unprotect`. ``reason`` is a note kept with the hold.

        The version must exist and be visible, else ``ArtifactNotFoundError``; the
        check and the write are one transaction. Protecting a held version again
        replaces its hold (new ``created_at`` and ``reason``). `versioned` 1.0 does
        not know holds: its own deletes and purges ignore them.
        """
        _layout.validate_name(name)
        stored = _retention.holdable_version(version)
        note = _layout.validate_note("reason", reason)
        record = _codec.HoldItem(
            pk=_layout.holds_pk(name), sk=stored, created_at=_codec.utcnow(), reason=note
        )
        reasons = await self._backend.transact_write(
            f"protect version {_layout.decode_version(stored)} of {name!r}",
            [
                {
                    "ConditionCheck": {
                        "Key": {"pk": {"S": name}, "sk": {"S": stored}},
                        "ConditionExpression": _VISIBLE,
                        "ExpressionAttributeValues": {":false": {"BOOL": False}},
                    }
                },
                {"Put": {"Item": _codec.to_item(record)}},
            ],
        )
        if reasons:
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return _codec.item_to_hold(record, name)

    async def unprotect(self, name: str, version: VersionLike) -> None:
        """Release the hold on a version; releasing one that is not held changes nothing."""
        _layout.validate_name(name)
        stored = _retention.holdable_version(version)
        await self._backend.delete_item(_layout.holds_pk(name), stored)

    async def list_protected(self, name: str) -> list[Hold]:
        """Every hold on ``name``'s versions, lowest version first."""
        _layout.validate_name(name)
        return [
            _codec.item_to_hold(_codec.structure_hold_item(raw), name)
            async for raw in self._backend.query(_layout.holds_pk(name))
        ]

    async def purge_artifact(self, name: str) -> None:
        """Delete an artifact for good: every object, version item and alias, and
        the aliases' history."""
        _layout.validate_name(name)
        aws = self._backend
        # items first: a failure half-way leaves orphan objects, never items without content
        keys = [raw async for raw in aws.query(_layout.alias_pk(name))]
        keys += [raw async for raw in aws.query(_layout.history_pk(name))]
        keys += [raw async for raw in aws.query(_layout.holds_pk(name))]
        keys += [raw async for raw in aws.query(name)]
        await aws.batch_delete(keys)
        await aws.delete_prefix(self.layout.artifact_dir(name))

    async def purge_all(self) -> None:
        """Delete every artifact under the prefix and every item in the table."""
        aws = self._backend
        await aws.batch_delete([raw async for raw in aws.scan_keys()])
        await aws.delete_prefix(self.layout.root)

    # -- models ----------------------------------------------------------------------

    def _artifact(self, item: VersionItem) -> Artifact:
        model = _codec.item_to_artifact(item, self.layout)
        bind(model, self)
        return model

    def _alias(self, item: AliasItem) -> Alias:
        model = _codec.item_to_alias(item, self.layout)
        bind(model, self)
        return model


async def _bounded_gather(coros: Iterable[Awaitable[_T]], limit: int) -> list[_T]:
    """``gather`` with at most ``limit`` awaitables in flight."""
    semaphore = asyncio.Semaphore(limit)

    async def run(aw: Awaitable[_T]) -> _T:
        async with semaphore:
            return await aw

    tasks = [asyncio.ensure_future(run(c)) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        # the caller is told the whole call failed: nothing of it may land afterwards
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
