"""S3OnlyRepository: the same async API over one S3 bucket, no DynamoDB table.

The layout is `versioned` 1.0's S3-only backend (docs/S3_ONLY_WIRE_FORMAT.md):
each version is an object carrying its sha256 in user metadata, each alias a
small JSON object. Both libraries can work on one repository at the same time.
It is the façade (:class:`~._base.ArtifactRepository`) over an
:class:`~._catalog.ObjectCatalog`, the S3-only layout's catalog.

Where `versioned` races, this one uses S3 conditional writes: a publish
creates its version object with ``If-None-Match: *`` and takes the next number
when another publisher got there first, and compare-and-set alias moves write
with ``If-Match`` on the ETag read. What a table gives the other layout and S3
cannot (soft deletes, alias history, holds, transactions) is not offered: see
the comparison of the two backends in docs/s3-only.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from . import _layout
from ._arguments import check_location
from ._base import ArtifactRepository
from ._catalog import ObjectCatalog
from ._redact import redact_url
from ._s3_only_layout import S3OnlyLayout
from ._settings import ClientSettings
from .cache import LocalCache
from .transfer_config import TransferConfig

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["S3OnlyRepository"]


class S3OnlyRepository(ArtifactRepository):
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

    _catalog: ObjectCatalog
    layout: S3OnlyLayout

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
        transfer_config: TransferConfig | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        check_location(s3_bucket, s3_prefix, suffix)
        layout = S3OnlyLayout(bucket=s3_bucket, prefix=s3_prefix, suffix=suffix)
        security = (server_side_encryption, sse_kms_key_id, expected_bucket_owner)
        settings = ClientSettings.of(
            aws_region,
            endpoint_url,
            session,
            max_pool_connections,
            client_config,
            security,
            transfer_config,
        )
        catalog = ObjectCatalog(layout, s3_bucket)
        super().__init__(catalog, settings, cache, "", tracer_provider)

    def __repr__(self) -> str:
        return (
            f"S3OnlyRepository(aws_region={self.aws_region!r}, s3_bucket={self.s3_bucket!r}, "
            f"s3_prefix={self.s3_prefix!r}, suffix={self.suffix!r}, "
            f"endpoint_url={redact_url(self.endpoint_url)!r})"
        )
