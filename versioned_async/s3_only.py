"""S3OnlyRepository: the same async API over one S3 bucket, no DynamoDB table.

The layout is `versioned` 1.0's S3-only backend (docs/S3_ONLY_WIRE_FORMAT.md):
each version is an object carrying its sha256 in user metadata, each alias a
small JSON object. Both libraries can work on one repository at the same time.

Where `versioned` races, this one uses S3 conditional writes: a publish
creates its version object with ``If-None-Match: *`` and takes the next number
when another publisher got there first, and compare-and-set alias moves write
with ``If-Match`` on the ETag read. What a table gives the other layout and S3
cannot (soft deletes, alias history, holds, transactions) is not offered: see
README's comparison of the two backends.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from . import _codec, _layout, _retention
from ._alias_change import alias_target
from ._aliases import _aware
from ._aws.s3 import ListedObject, ObjectInfo
from ._aws.s3_upload import MULTIPART_THRESHOLD
from ._base import (
    BULK_CONCURRENCY,
    BaseRepository,
    describe_object,
    has_metadata,
    hash_source,
    holds_already,
    search_arguments,
)
from ._codec import AliasItem, VersionItem
from ._gather import bounded_gather, gather_or_cancel
from ._layout import LATEST, VersionLike
from ._redact import redact_url
from ._s3_only_layout import S3OnlyLayout
from ._sources import ObjectVersions
from .cache import LocalCache
from .cache.reader import sha256_of
from .exc import (
    ArtifactNotFoundError,
    ConcurrentModificationError,
    ConflictError,
    IntegrityError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
)
from .models import Alias, Artifact

__all__ = ["S3OnlyRepository"]

log = logging.getLogger("versioned_async")

#: how many numbers a publisher tries after losing a race before giving up
_PUBLISH_ATTEMPTS = 100


def _top_holding(listed: list[tuple[str, ListedObject]], etag: str) -> str | None:
    """The highest version, when it holds the object ``etag`` names (LATEST's, or the
    content a publisher read): what publishing that content again returns."""
    if len(listed) == 2 and listed[0][0] == LATEST and listed[1][1].etag == etag:
        return listed[1][0]
    return None


def _next_number(name: str, listed: list[tuple[str, ListedObject]]) -> int:
    """The number after the highest, from a listing of the first two version keys."""
    if not listed or listed[0][0] != LATEST:
        raise ArtifactNotFoundError(name, LATEST)
    number = 1 if len(listed) == 1 else int(listed[1][0]) + 1
    if number > _layout.MAX_VERSION:
        raise InvalidArgumentError(
            f"{name!r} has used every version number up to {_layout.MAX_VERSION}"
        )
    return number


class S3OnlyRepository(BaseRepository):
    """A versioned artifact repository in one S3 bucket: no DynamoDB table.

    Same API as :class:`~versioned_async.Repository` for artifacts, aliases,
    the cache and retention; the layout is `versioned` 1.0's
    ``s3_only_backend``, so both libraries can share a repository::

        async with S3OnlyRepository(aws_region="us-east-1", s3_bucket="my-bucket") as repo:
            await repo.bootstrap()
            await repo.put_artifact("model", b"...")

    The differences follow from the layout: a deleted version is gone (no
    soft delete; `versioned` numbers the next publish after the highest
    remaining version, so deleting the top version frees its number), LATEST
    cannot be deleted on its own (``purge_artifact`` removes everything),
    listing versions costs a HeadObject per version, and there is no alias
    history, hold or roll-out. Arguments not described here are
    :class:`~versioned_async.Repository`'s.
    """

    def __init__(
        self,
        aws_region: str | None = None,
        s3_bucket: str = "",
        s3_prefix: str = _layout.DEFAULT_S3_PREFIX,
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
    ) -> None:
        super().__init__(
            aws_region=aws_region,
            s3_bucket=s3_bucket,
            s3_prefix=s3_prefix,
            suffix=suffix,
            endpoint_url=endpoint_url,
            session=session,
            cache=cache,
            max_pool_connections=max_pool_connections,
            client_config=client_config,
            server_side_encryption=server_side_encryption,
            sse_kms_key_id=sse_kms_key_id,
            expected_bucket_owner=expected_bucket_owner,
            layout=S3OnlyLayout,
            table_name="",
            versions=ObjectVersions(self),
        )
        self.layout: S3OnlyLayout
        self._source: ObjectVersions

    def __repr__(self) -> str:
        return (
            f"S3OnlyRepository(aws_region={self.aws_region!r}, s3_bucket={self.s3_bucket!r}, "
            f"s3_prefix={self.s3_prefix!r}, suffix={self.suffix!r}, "
            f"endpoint_url={redact_url(self.endpoint_url)!r})"
        )

    async def bootstrap(self) -> None:
        """Create the bucket when missing. Idempotent."""
        await self._objects.ensure_bucket(self.aws_region)

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

        A file is streamed (multipart above 16 MiB). When LATEST already holds
        the same content (and the same content type and metadata, where given)
        nothing is uploaded. Concurrent puts: the last one wins, as in S3.
        """
        _layout.validate_name(name)
        body = _layout.validate_content(content)
        content_type = _layout.validate_content_type(content_type)
        user_meta = _layout.validate_metadata(metadata)
        tag_map = _layout.validate_tags(tags)
        objects = self._objects
        key = self.layout.key(name, LATEST)
        (sha, size), head = await gather_or_cancel(hash_source(body), objects.head_object(key))
        if not holds_already(head, sha, tag_map, content_type, metadata, user_meta):
            meta = {_layout.META_NAME: name, _layout.META_SHA256: sha, **user_meta}
            await objects.upload(key, body, size, meta, content_type, tag_map, sha)
            head = await objects.head_object(key)
        if head is None or head.sha256 is None:
            raise ConflictError(f"LATEST of {name!r} was deleted while it was being put; retry")
        record = describe_object(name, LATEST, head.sha256, head)
        await self._remember_version(record)
        return self._artifact(record)

    async def get_artifact_version(self, name: str, version: VersionLike = None) -> Artifact:
        """One version (LATEST by default); ``ArtifactNotFoundError`` when missing.

        One HeadObject: the object's metadata is the whole record.
        """
        _layout.validate_name(name)
        return self._artifact(
            await self._source.version_item(name, _layout.encode_version(version))
        )

    async def list_artifact_versions(self, name: str) -> list[Artifact]:
        """Every version: LATEST first, then newest to oldest. ``[]`` for none.

        One listing, then one HeadObject per version (16 at a time): S3
        listings carry no user metadata, and the sha256 is metadata.
        """
        _layout.validate_name(name)
        return [self._artifact(item) for item, _ in await self._versions(name)]

    async def _versions(self, name: str) -> list[tuple[VersionItem, str]]:
        """Each version of ``name`` with its ETag, in list order; keys some other tool
        left under ``versions/`` are passed over."""
        listed = await self._listed_versions(name)
        infos = await bounded_gather(
            (self._objects.head_object(obj.key) for _, obj in listed), BULK_CONCURRENCY
        )
        found = []
        for (stored, _), info in zip(listed, infos, strict=True):
            if info is not None:  # None: deleted since the listing
                found.append((await self._source.describe(name, stored, info), info.etag))
        return found

    async def _listed_versions(
        self, name: str, limit: int | None = None
    ) -> list[tuple[str, ListedObject]]:
        listed = []
        for obj in await self._objects.list_objects(self.layout.versions_prefix(name), limit=limit):
            stored = self.layout.version_of_key(name, obj.key)
            if stored is None:
                log.warning("%s is not a version of %r; ignored", obj.key, name)
            else:
                listed.append((stored, obj))
        return listed

    async def find_artifact_versions(
        self,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        *,
        include_latest: bool = True,
        limit: int | None = None,
    ) -> list[Artifact]:
        """Versions whose user metadata holds every ``key: value`` of ``metadata``.

        As :meth:`Repository.find_artifact_versions
        <versioned_async.Repository.find_artifact_versions>`. Cost: a listing
        and a HeadObject per version of each artifact searched (every
        artifact when ``name`` is ``None``): S3 has no query.
        """
        wanted = search_arguments(name, metadata, include_latest, limit)
        names = [name] if name is not None else await self.list_artifact_names()
        found: list[Artifact] = []
        for each in names:
            for item, _ in await self._versions(each):
                if (include_latest or item.sk != LATEST) and has_metadata(item, wanted):
                    found.append(self._artifact(item))
            if limit is not None and len(found) >= limit:
                break
        return found[:limit]

    async def publish_artifact_version(self, name: str) -> Artifact:
        """Snapshot LATEST as the next immutable version and return it.

        As in `versioned`: the number is the highest existing one plus one
        (one listing of two keys), and when LATEST has not changed since the
        highest version was published (equal ETags), that version is
        returned and nothing is written. Unlike `versioned`, the version object
        is created with a conditional write (``If-None-Match: *``): when a
        concurrent publisher took the number first, this one takes the next
        (or returns the winner's version when it holds the same content), so
        a number never names two contents and concurrent publishes of one
        LATEST make one version. LATEST is read once (body, metadata, tags)
        and written under the new key: one download and one upload, since S3
        has no conditional server-side copy that every engine honours (moto
        ignores one).
        """
        _layout.validate_name(name)
        listed = await self._listed_versions(name, limit=2)
        if listed and (top := _top_holding(listed, listed[0][1].etag)) is not None:
            return self._artifact(await self._source.version_item(name, top))
        objects = self._objects
        with tempfile.TemporaryDirectory(prefix="versioned-async-") as scratch:
            size = listed[0][1].size if listed and listed[0][0] == LATEST else 0
            body, info, tags = await self._snapshot_latest(name, size, Path(scratch) / "latest")
            assert info.sha256 is not None
            meta = {_layout.META_NAME: name, _layout.META_SHA256: info.sha256, **info.metadata}
            for _attempt in range(_PUBLISH_ATTEMPTS):
                number = _next_number(name, listed)
                stored = _layout.encode_version(number)
                claimed = await objects.upload(
                    self.layout.key(name, stored),
                    body,
                    info.size,
                    meta,
                    info.content_type,
                    tags,
                    info.sha256,
                    if_none_match=True,
                )
                if claimed:
                    break
                log.info("%s: version %d was taken by another publisher; next", name, number)
                listed = await self._listed_versions(name, limit=2)
                if (top := _top_holding(listed, info.etag)) is not None:
                    # the winner published this very content: that is our version too
                    return self._artifact(await self._source.version_item(name, top))
            else:
                raise ConflictError(f"could not claim a version number for {name!r}; retry")
        written = await objects.head_object(self.layout.key(name, stored))
        if written is None:
            raise ConflictError(f"version {number} of {name!r} vanished while publishing; retry")
        if written.sha256 != info.sha256:
            raise ConflictError(
                f"version {number} of {name!r} was overwritten by a writer that does not use "
                "conditional writes (`versioned` 1.0?) just after it was published; "
                "publish again"
            )
        record = describe_object(name, stored, info.sha256, written)
        await self._remember_version(record)
        return self._artifact(record)

    async def _snapshot_latest(
        self, name: str, listed_size: int, scratch: Path
    ) -> tuple[bytes | Path, ObjectInfo, dict[str, str]]:
        """LATEST's content (in memory, or in ``scratch`` when its listing said it is
        large), info and tags, of one object: verified against the sha256 its metadata
        records."""
        objects = self._objects
        key = self.layout.key(name, LATEST)
        body: bytes | Path
        if listed_size > MULTIPART_THRESHOLD:
            streamed = await objects.download_to(key, scratch)
            if streamed is None:
                raise ArtifactNotFoundError(name, LATEST)
            actual, _, info = streamed
            body = scratch
        else:
            got = await objects.get_object(key)
            if got is None:
                raise ArtifactNotFoundError(name, LATEST)
            body, info = got
            actual = await sha256_of(body)
        if info.sha256 is None:  # written by some other tool: its bytes are the truth
            info = ObjectInfo(
                actual, info.metadata, info.last_modified, info.size, info.content_type, info.etag
            )
        if info.sha256 != actual:
            raise IntegrityError(name, LATEST, str(info.sha256), actual)
        tags = await objects.get_tags(key)
        return body, info, tags or {}

    async def delete_artifact_version(self, name: str, version: VersionLike = None) -> None:
        """Delete a numbered version's object for good; a missing one changes nothing.

        LATEST cannot be deleted: `versioned` reads an artifact whose first
        object is not LATEST as damaged. ``purge_artifact`` removes a whole
        artifact. Deleting the highest version frees its number for the next
        publish, as in `versioned`.
        """
        _layout.validate_name(name)
        stored = _layout.encode_version(version)
        if stored == LATEST:
            raise InvalidArgumentError(
                f"LATEST of {name!r} cannot be deleted in the S3-only layout (`versioned` "
                "would read the artifact as damaged); delete the whole artifact with "
                "purge_artifact()"
            )
        await self._objects.delete_object(self.layout.key(name, stored))
        await self._forget_version(name, stored)

    # -- aliases ---------------------------------------------------------------------

    async def put_alias(
        self,
        name: str,
        alias: str,
        version: VersionLike = None,
        secondary_version: VersionLike = None,
        secondary_version_weight: int | None = None,
        *,
        if_update_at: datetime | None = None,
    ) -> Alias:
        """Point ``alias`` at ``version`` (LATEST by default), optionally splitting traffic.

        As :meth:`Repository.put_alias <versioned_async.Repository.put_alias>`,
        without history. The versions must exist when checked (HeadObject);
        S3 cannot make the check and the write one step, so a version deleted
        in between is not noticed. ``if_update_at`` makes it a compare-and-set
        (a conditional write on the alias object's ETag).
        """
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        target = alias_target(version, secondary_version, secondary_version_weight)
        expected = None if if_update_at is None else _aware(if_update_at, "if_update_at")
        wanted = [v for v in target[:2] if v is not None]
        infos = await gather_or_cancel(
            *(self._objects.head_object(self.layout.key(name, v)) for v in wanted)
        )
        for stored, info in zip(wanted, infos, strict=True):
            if info is None:
                raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        primary, secondary, weight = target
        record = AliasItem(
            pk=_layout.alias_pk(name),
            sk=alias,
            update_at=_codec.utcnow(),
            version=primary,
            secondary_version=secondary,
            secondary_version_weight=weight,
        )
        body = _codec.alias_document(record, self.layout)
        key = self.layout.alias_key(name, alias)
        etag = None if expected is None else await self._expect_alias(name, alias, expected)
        if (
            await self._objects.put_object(key, body, {}, "application/json", None, if_match=etag)
            is None
        ):
            raise await self._modified(name, alias, expected)
        await self._remember_alias(record)
        return self._alias(record)

    async def _expect_alias(self, name: str, alias: str, expected: datetime) -> str:
        """The ETag of the alias object, if it is the one read at ``expected``."""
        current = await self._source.alias_object(name, alias)
        if current is None or current[0].update_at != expected:
            raise ConcurrentModificationError(
                name, alias, expected, None if current is None else current[0].update_at
            )
        return current[1]

    async def _modified(
        self, name: str, alias: str, expected: datetime | None
    ) -> ConcurrentModificationError:
        current = await self._source.alias_object(name, alias)
        return ConcurrentModificationError(
            name, alias, expected, None if current is None else current[0].update_at
        )

    async def list_aliases(self, name: str) -> list[Alias]:
        """Every alias of ``name``, sorted by alias name: a listing, then a GetObject each."""
        _layout.validate_name(name)
        aliases = [
            alias
            for obj in await self._objects.list_objects(self.layout.aliases_prefix(name))
            if (alias := self.layout.alias_of_key(name, obj.key)) is not None
        ]
        records = await bounded_gather(
            (self._source.alias_item(name, alias) for alias in aliases), BULK_CONCURRENCY
        )
        return sorted(
            (self._alias(record) for record in records if record is not None),
            key=lambda model: model.alias,
        )

    async def delete_alias(
        self, name: str, alias: str, *, if_update_at: datetime | None = None
    ) -> None:
        """Delete the alias; deleting a missing alias changes nothing (unless
        ``if_update_at`` expected it to exist)."""
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        expected = None if if_update_at is None else _aware(if_update_at, "if_update_at")
        etag = None if expected is None else await self._expect_alias(name, alias, expected)
        if not await self._objects.delete_object(self.layout.alias_key(name, alias), if_match=etag):
            raise await self._modified(name, alias, expected)
        await self._forget_alias(name, alias)

    # -- retention -------------------------------------------------------------------

    async def purge_artifact_versions(
        self,
        name: str,
        keep_last_n: int = 10,
        purge_older_than_secs: float = 90 * 24 * 60 * 60,
        *,
        dry_run: bool = False,
    ) -> tuple[datetime, list[Artifact]]:
        """Delete old numbered versions; returns the purge time and what was deleted.

        Kept: LATEST, the newest ``keep_last_n`` numbered versions, versions
        younger than ``purge_older_than_secs`` and every version an alias
        points at (primary or canary). ``dry_run=True`` returns the plan and
        deletes nothing. Each delete is conditional on the ETag read for the
        plan, so a number re-published meanwhile is kept. Deletes are final:
        an alias pointed at a planned version during the purge is not caught
        (S3 has no transaction); the aliases are read again afterwards and
        such a version is logged as an error.
        """
        _layout.validate_name(name)
        keep, older_than = _retention.validate_retention(keep_last_n, purge_older_than_secs)
        if not isinstance(dry_run, bool):
            raise InvalidArgumentTypeError(f"dry_run must be a bool, not {type(dry_run).__name__}")
        versions, aliases = await gather_or_cancel(self._versions(name), self.list_aliases(name))
        etags = {_layout.decode_version(item.sk): etag for item, etag in versions}
        purge_time = _codec.utcnow()
        doomed = _retention.plan_purge(
            [self._artifact(item) for item, _ in versions],
            aliases,
            keep_last_n=keep,
            purge_older_than_secs=older_than,
            now=purge_time,
            held=[],
        )
        if dry_run or not doomed:
            return purge_time, doomed
        deleted = []
        for artifact in doomed:
            stored = _layout.encode_version(artifact.version)
            key = self.layout.key(name, stored)
            if await self._objects.delete_object(key, if_match=etags[artifact.version]):
                deleted.append(artifact)
                await self._forget_version(name, stored)
        for lost in _retention.restorable(deleted, await self.list_aliases(name)):
            log.error(
                "purge of %r: an alias was pointed at version %s while it was being deleted; "
                "it is gone and the alias points at nothing: move the alias",
                name,
                lost.version,
            )
        return purge_time, deleted

    async def purge_artifact(self, name: str) -> None:
        """Delete an artifact for good: every object under its folder, aliases included."""
        _layout.validate_name(name)
        await self._objects.delete_prefix(self.layout.artifact_dir(name))

    async def purge_all(self) -> None:
        """Delete every object under the prefix."""
        await self._objects.delete_prefix(self.layout.root)
