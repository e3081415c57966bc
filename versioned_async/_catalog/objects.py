"""The S3-only layout's catalog: each version object is its own record, each alias a
small JSON object (docs/S3_ONLY_WIRE_FORMAT.md).

Where `versioned` races, this one uses S3 conditional writes: a publish
creates its version object with ``If-None-Match: *`` and takes the next number
when another publisher got there first, and compare-and-set alias moves write
with ``If-Match`` on the ETag read. What a table gives the other layout and S3
cannot (soft deletes, alias history, holds, transactions) is not here.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from .. import _codec, _layout
from .._aws.s3 import ListedObject, ObjectInfo, ObjectStore
from .._codec import AliasItem, VersionItem
from .._gather import bounded_gather, gather_or_cancel
from .._layout import LATEST
from .._policy import retention as _retention
from .._policy.alias_change import AliasTarget
from .._s3_only_layout import S3OnlyLayout
from ..cache.reader import Fetched, Streamed, sha256_of
from ..exc import (
    ArtifactNotFoundError,
    ConcurrentModificationError,
    ConflictError,
    IntegrityError,
    InvalidArgumentError,
)
from ..models import Artifact
from . import store
from .protocol import Binding, PurgeRules, Upload, Written
from .store import BULK_CONCURRENCY, ObjectsCatalog

__all__ = ["ObjectCatalog"]

log = logging.getLogger("versioned_async")

#: LATEST larger than this is snapshotted to a scratch file rather than into memory
_SNAPSHOT_IN_MEMORY_BYTES = 16 << 20

#: how many numbers a publisher tries after losing a race before giving up
_PUBLISH_ATTEMPTS = 100
#: the largest object one CopyObject can copy (S3's limit): above, publish uploads
COPY_LIMIT = 5 << 30
#: where the conditional-copy probe writes (and deletes) its object, under the root:
#: a file, not a folder, so no listing of artifacts ever shows it
_PROBE_STEM = ".versioned-async-conditional-copy-probe-"


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


class ObjectCatalog(ObjectsCatalog):
    """Versions and aliases as objects in one bucket (see the module)."""

    layout: S3OnlyLayout

    def __init__(self, layout: S3OnlyLayout, bucket: str) -> None:
        super().__init__(layout, bucket)

    @property
    def objects(self) -> ObjectStore:
        # ObjectsCatalog's, again here: a read goes from this module to the store
        return store.not_open() if self._store is None else self._store

    async def bootstrap(self, region: str | None) -> None:
        await self.objects.ensure_bucket(region)

    def content_source(self) -> ObjectCatalog:
        """The read path reads through the catalog itself: there is no table to check."""
        return self

    # -- the read path (VersionSource) ------------------------------------------------

    async def version_item(self, name: str, stored: str) -> VersionItem:
        """One HeadObject: the object's metadata is the whole record."""
        objects = self.objects
        info = await objects.head_object(self.layout.key(name, stored))
        if info is None:
            await objects.require_bucket()  # one request more, on a miss only
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        return await self._describe(name, stored, info)

    async def _describe(self, name: str, stored: str, info: ObjectInfo) -> VersionItem:
        """The version an object holds; one written without our metadata is hashed."""
        sha = info.sha256 or await self.hash_object(name, stored)
        return store.describe_object(name, stored, sha, info)

    async def alias_object(self, name: str, alias: str) -> tuple[AliasItem, str] | None:
        """The alias as its JSON object holds it now, and that object's ETag."""
        got = await self.objects.get_object(self.layout.alias_key(name, alias))
        if got is None:
            return None
        body, info = got
        return _codec.parse_alias_document(body, name, alias, info.last_modified), info.etag

    async def alias_item(self, name: str, alias: str) -> AliasItem | None:
        current = await self.alias_object(name, alias)
        return None if current is None else current[0]

    async def fetch(self, name: str, stored: str) -> Fetched:
        """One GetObject: the object's metadata describes the very bytes it returns."""
        got = await self.fetch_object(name, stored)
        if got is None:
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        body, info = got
        return Fetched(body, info.sha256 or await sha256_of(body), info)

    async def stream(self, name: str, stored: str, part: Path) -> Streamed:
        got = await self.objects.download_to(self.layout.key(name, stored), part)
        if got is None:
            part.unlink(missing_ok=True)
            raise ArtifactNotFoundError(name, _layout.decode_version(stored))
        sha, size, info = got
        return Streamed(sha, size, info.sha256 or sha, info)

    async def repair_latest(self, name: str, stored: str, actual: str, info: ObjectInfo) -> bool:
        """Nothing to repair: the object is its own record."""
        return False

    # -- versions ---------------------------------------------------------------------

    async def put_latest(self, upload: Upload) -> Written:
        """Concurrent puts: the last one wins, as in S3."""
        objects, name = self.objects, upload.name
        key = self.layout.key(name, LATEST)
        (sha, size), head = await gather_or_cancel(
            store.hash_source(upload.body), objects.head_object(key)
        )
        if not store.holds_already(
            head, sha, upload.tags, upload.content_type, upload.metadata, upload.user_meta
        ):
            meta = {_layout.META_NAME: name, _layout.META_SHA256: sha, **upload.user_meta}
            await objects.upload(
                key, upload.body, size, meta, upload.content_type, upload.tags, sha
            )
            head = await objects.head_object(key)
        if head is None or head.sha256 is None:
            raise ConflictError(f"LATEST of {name!r} was deleted while it was being put; retry")
        return Written(store.describe_object(name, LATEST, head.sha256, head), new=True)

    async def version(self, name: str, stored: str) -> VersionItem:
        return await self.version_item(name, stored)

    async def versions(self, name: str) -> list[VersionItem]:
        """One listing, then one HeadObject per version (16 at a time): S3 listings
        carry no user metadata, and the sha256 is metadata."""
        return [item for item, _ in await self._versions(name)]

    async def _versions(self, name: str) -> list[tuple[VersionItem, str]]:
        """Each version of ``name`` with its ETag, in list order; keys some other tool
        left under ``versions/`` are passed over."""
        listed = await self._listed_versions(name)
        infos = await bounded_gather(
            (self.objects.head_object(obj.key) for _, obj in listed), BULK_CONCURRENCY
        )
        found = []
        for (stored, _), info in zip(listed, infos, strict=True):
            if info is not None:  # None: deleted since the listing
                found.append((await self._describe(name, stored, info), info.etag))
        return found

    async def _listed_versions(
        self, name: str, limit: int | None = None
    ) -> list[tuple[str, ListedObject]]:
        listed = []
        for obj in await self.objects.list_objects(self.layout.versions_prefix(name), limit=limit):
            stored = self.layout.version_of_key(name, obj.key)
            if stored is None:
                log.warning("%s is not a version of %r; ignored", obj.key, name)
            else:
                listed.append((stored, obj))
        return listed

    async def find(
        self, name: str | None, wanted: Mapping[str, str], include_latest: bool, limit: int | None
    ) -> list[VersionItem]:
        """A listing and a HeadObject per version of each artifact searched: S3 has no
        query."""
        names = [name] if name is not None else sorted(await self.artifact_names())
        found: list[VersionItem] = []
        for each in names:
            for item, _ in await self._versions(each):
                if (include_latest or item.sk != LATEST) and store.has_metadata(item, wanted):
                    found.append(item)
            if limit is not None and len(found) >= limit:
                break
        return found[:limit]

    async def publish(self, name: str) -> Written:
        """The highest number plus one, claimed with ``If-None-Match: *`` (see
        :meth:`S3OnlyRepository.publish_artifact_version
        <versioned_async.S3OnlyRepository.publish_artifact_version>`)."""
        listed = await self._listed_versions(name, limit=2)
        if listed and (top := _top_holding(listed, listed[0][1].etag)) is not None:
            return Written(await self.version_item(name, top), new=False)
        if (
            listed
            and listed[0][0] == LATEST
            and listed[0][1].size <= COPY_LIMIT
            and await self.objects.honours_conditional_copy(self._probe_key())
        ):
            copied = await self._publish_by_copy(name, listed)
            if copied is not None:
                return copied
        return await self._publish_by_upload(name, listed)

    def _probe_key(self) -> str:
        return f"{self.layout.root}{_PROBE_STEM}{secrets.token_hex(8)}"

    async def _publish_by_copy(
        self, name: str, listed: list[tuple[str, ListedObject]]
    ) -> Written | None:
        """Publish without moving the content through this process: a server-side copy
        of LATEST, pinned to the LATEST object read (``x-amz-copy-source-if-match``: its
        ETag) and claiming the number with ``If-None-Match: *``. The sha256 recorded is
        the one in that object's metadata, so a LATEST replaced meanwhile refuses the
        copy (412) instead of being published under the sha256 of its predecessor; the
        publisher then reads LATEST again. ``None`` when LATEST carries no sha256 (some
        other tool wrote it) or grew past :data:`COPY_LIMIT`: the upload path hashes it.

        Only where the server enforces both conditions
        (:meth:`ObjectStore.honours_conditional_copy`).
        """
        objects = self.objects
        latest_key = self.layout.key(name, LATEST)
        info: ObjectInfo | None = None
        sha256, tags = "", {}
        for _attempt in range(_PUBLISH_ATTEMPTS):
            if info is None or listed[0][1].etag != info.etag:  # first, or LATEST replaced
                info = await objects.head_object(latest_key)
                if info is None:
                    raise ArtifactNotFoundError(name, LATEST)
                if info.sha256 is None or info.size > COPY_LIMIT:
                    return None
                sha256 = info.sha256
                tags = await objects.get_tags(latest_key) or {}
            number = _next_number(name, listed)
            stored = _layout.encode_version(number)
            meta = {_layout.META_NAME: name, _layout.META_SHA256: sha256, **info.metadata}
            key = self.layout.key(name, stored)
            if await objects.copy_if_absent(
                latest_key, info.etag, key, meta, info.content_type, tags
            ):
                return await self._read_back(name, number, stored, sha256)
            log.info("%s: version %d taken, or LATEST replaced, meanwhile; again", name, number)
            listed = await self._listed_versions(name, limit=2)
            if not listed or listed[0][0] != LATEST:
                raise ArtifactNotFoundError(name, LATEST)
            if (top := _top_holding(listed, listed[0][1].etag)) is not None:
                # a winner published LATEST as it is now: that is our version too
                return Written(await self.version_item(name, top), new=False)
        raise ConflictError(f"could not claim a version number for {name!r}; retry")

    async def _read_back(self, name: str, number: int, stored: str, sha256: str) -> Written:
        """The version just written, checked to still hold the sha256 it was given."""
        written = await self.objects.head_object(self.layout.key(name, stored))
        if written is None:
            raise ConflictError(f"version {number} of {name!r} vanished while publishing; retry")
        if written.sha256 != sha256:
            raise ConflictError(
                f"version {number} of {name!r} was overwritten by a writer that does not use "
                "conditional writes (`versioned` 1.0?) just after it was published; "
                "publish again"
            )
        return Written(store.describe_object(name, stored, sha256, written), new=True)

    async def _publish_by_upload(
        self, name: str, listed: list[tuple[str, ListedObject]]
    ) -> Written:
        """LATEST downloaded (verified against its sha256) and uploaded to the next number
        with ``If-None-Match: *``: the path for any server, moto included."""
        objects = self.objects
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
                    return Written(await self.version_item(name, top), new=False)
            else:
                raise ConflictError(f"could not claim a version number for {name!r}; retry")
        return await self._read_back(name, number, stored, info.sha256)

    async def _snapshot_latest(
        self, name: str, listed_size: int, scratch: Path
    ) -> tuple[bytes | Path, ObjectInfo, dict[str, str]]:
        """LATEST's content (in memory, or in ``scratch`` when its listing said it is
        large), info and tags, of one object: verified against the sha256 its metadata
        records."""
        objects = self.objects
        key = self.layout.key(name, LATEST)
        body: bytes | Path
        if listed_size > _SNAPSHOT_IN_MEMORY_BYTES:
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

    async def delete_version(self, name: str, stored: str) -> None:
        """Deletes the object for good; LATEST cannot be deleted on its own."""
        if stored == LATEST:
            raise InvalidArgumentError(
                f"LATEST of {name!r} cannot be deleted in the S3-only layout (`versioned` "
                "would read the artifact as damaged); delete the whole artifact with "
                "purge_artifact()"
            )
        await self.objects.delete_object(self.layout.key(name, stored))

    # -- aliases ----------------------------------------------------------------------

    async def aliases(self, name: str) -> list[AliasItem]:
        """A listing, then a GetObject each."""
        aliases = [
            alias
            for obj in await self.objects.list_objects(self.layout.aliases_prefix(name))
            if (alias := self.layout.alias_of_key(name, obj.key)) is not None
        ]
        records = await bounded_gather(
            (self.alias_item(name, alias) for alias in aliases), BULK_CONCURRENCY
        )
        return sorted((r for r in records if r is not None), key=lambda record: record.sk)

    async def put_alias(
        self, name: str, alias: str, target: AliasTarget, expected: datetime | None
    ) -> AliasItem:
        """The versions must exist when checked (HeadObject); S3 cannot make the check and
        the write one step. ``expected``: a conditional write on the alias object's ETag."""
        objects = self.objects
        wanted = [v for v in target[:2] if v is not None]
        infos = await gather_or_cancel(
            *(objects.head_object(self.layout.key(name, v)) for v in wanted)
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
        if await objects.put_object(key, body, {}, "application/json", None, if_match=etag) is None:
            raise await self._modified(name, alias, expected)
        return record

    async def delete_alias(self, name: str, alias: str, expected: datetime | None) -> bool:
        etag = None if expected is None else await self._expect_alias(name, alias, expected)
        if not await self.objects.delete_object(self.layout.alias_key(name, alias), if_match=etag):
            raise await self._modified(name, alias, expected)
        return True

    async def _expect_alias(self, name: str, alias: str, expected: datetime) -> str:
        """The ETag of the alias object, if it is the one read at ``expected``."""
        current = await self.alias_object(name, alias)
        if current is None or current[0].update_at != expected:
            raise ConcurrentModificationError(
                name, alias, expected, None if current is None else current[0].update_at
            )
        return current[1]

    async def _modified(
        self, name: str, alias: str, expected: datetime | None
    ) -> ConcurrentModificationError:
        current = await self.alias_object(name, alias)
        return ConcurrentModificationError(
            name, alias, expected, None if current is None else current[0].update_at
        )

    # -- retention --------------------------------------------------------------------

    async def purge_versions(
        self, name: str, rules: PurgeRules, binding: Binding
    ) -> tuple[datetime, list[Artifact]]:
        """Each delete is conditional on the ETag read for the plan; deletes are final,
        and a version an alias was pointed at meanwhile is logged as an error."""
        versions, aliases = await gather_or_cancel(self._versions(name), self.aliases(name))
        etags = {_layout.decode_version(item.sk): etag for item, etag in versions}
        purge_time = _codec.utcnow()
        doomed = _retention.plan_purge(
            [binding.artifact(item) for item, _ in versions],
            [binding.alias(record) for record in aliases],
            keep_last_n=rules.keep_last_n,
            purge_older_than_secs=rules.older_than_secs,
            now=purge_time,
            held=[],
        )
        if rules.dry_run or not doomed:
            return purge_time, doomed
        deleted = []
        for artifact in doomed:
            stored = _layout.encode_version(artifact.version)
            key = self.layout.key(name, stored)
            if await self.objects.delete_object(key, if_match=etags[artifact.version]):
                deleted.append(artifact)
                await binding.forget_version(name, stored)
        after = [binding.alias(record) for record in await self.aliases(name)]
        for lost in _retention.restorable(deleted, after):
            log.error(
                "purge of %r: an alias was pointed at version %s while it was being deleted; "
                "it is gone and the alias points at nothing: move the alias",
                name,
                lost.version,
            )
        return purge_time, deleted

    async def purge_artifact(self, name: str) -> None:
        """Every object under the artifact's folder, aliases included."""
        await self.objects.delete_prefix(self.layout.artifact_dir(name))

    async def purge_all(self) -> None:
        await self.objects.delete_prefix(self.layout.root)
