"""How a repository reaches AWS: the settings its clients are built with when it opens.

Checked when the repository is built (:class:`~._s3_options.S3Options` refuses a
bad encryption or owner setting there), used by
:meth:`~._base.ArtifactRepository.open`, which builds the
:class:`~._aws.clients.AwsClients` from them.
"""

from __future__ import annotations

import attrs
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from ._aws.clients import default_config
from ._s3_options import S3Options

__all__ = ["ClientSettings"]


@attrs.frozen
class ClientSettings:
    """The AWS region, endpoint, session, client configuration and S3 security settings
    of a repository."""

    aws_region: str | None
    endpoint_url: str | None
    session: AioSession | None
    #: the defaults (standard retries, 5 attempts, the pool size)
    defaults: AioConfig
    #: the caller's ``client_config``, merged over the defaults
    overrides: AioConfig | None
    s3_options: S3Options

    @classmethod
    def of(
        cls,
        aws_region: str | None,
        endpoint_url: str | None,
        session: AioSession | None,
        max_pool_connections: int,
        client_config: AioConfig | None,
        security: tuple[str | None, str | None, str | None],
    ) -> ClientSettings:
        """From a repository's arguments; ``security`` is its ``server_side_encryption``,
        ``sse_kms_key_id`` and ``expected_bucket_owner``."""
        defaults = default_config(max_pool_connections, endpoint_url)
        return cls(aws_region, endpoint_url, session, defaults, client_config, S3Options(*security))
