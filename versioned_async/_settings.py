"""How a repository reaches AWS: the settings its clients are built with when it opens,
and the name the local cache knows it by.

Checked when the repository is built (:class:`~._s3_options.S3Options` refuses a
bad encryption or owner setting there), used by
:meth:`~._base.ArtifactRepository.open`, which builds the
:class:`~._aws.clients.AwsClients` from them.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from ._aws.clients import AwsClients, default_config
from ._layout import Layout
from ._redact import redact_url
from ._s3_options import S3Options
from .cache.keys import RepositoryId
from .exc import InvalidArgumentError, InvalidArgumentTypeError
from .transfer_config import TransferConfig

__all__ = ["DEFAULT_MAX_POOL_CONNECTIONS", "ClientSettings"]

#: the connections each client keeps (``max_pool_connections=`` of both layouts)
DEFAULT_MAX_POOL_CONNECTIONS = 64


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
    #: how large content moves: in parts, several at once
    transfer: TransferConfig = attrs.field(factory=TransferConfig)

    @classmethod
    def of(
        cls,
        aws_region: str | None,
        endpoint_url: str | None,
        session: AioSession | None,
        max_pool_connections: int,
        client_config: AioConfig | None,
        security: tuple[str | None, str | None, str | None],
        transfer_config: TransferConfig | None = None,
    ) -> ClientSettings:
        """From a repository's arguments; ``security`` is its ``server_side_encryption``,
        ``sse_kms_key_id`` and ``expected_bucket_owner``."""
        given = transfer_config is not None
        if transfer_config is None:
            transfer_config = TransferConfig()
        elif not isinstance(transfer_config, TransferConfig):
            raise InvalidArgumentTypeError(
                "transfer_config must be a versioned_async.TransferConfig, not "
                f"{type(transfer_config).__name__}"
            )
        defaults = default_config(max_pool_connections, endpoint_url)
        transfer_config = _fit_to_pool(transfer_config, given, defaults, client_config)
        return cls(
            aws_region,
            endpoint_url,
            session,
            defaults,
            client_config,
            S3Options(*security),
            transfer_config,
        )

    def clients(self, services: Sequence[str]) -> AwsClients:
        """The clients of ``services``, each created on its first use."""
        return AwsClients(
            self.session,
            self.aws_region,
            self.endpoint_url,
            defaults=self.defaults,
            overrides=self.overrides,
            s3_options=self.s3_options,
            services=services,
            transfer=self.transfer,
        )

    def repository_id(self, layout: Layout, table_name: str) -> RepositoryId:
        """Which repository this is, as the local cache's keys name it."""
        return RepositoryId(
            # without its password: the cache database is a file, and the user part
            # does not change which repository this is
            endpoint=redact_url(self.endpoint_url) or "aws",
            bucket=layout.bucket,
            prefix=layout.prefix,
            suffix=layout.suffix,
            table=table_name or "s3-only",
        )


def _fit_to_pool(
    transfer: TransferConfig, given: bool, defaults: AioConfig, client_config: AioConfig | None
) -> TransferConfig:
    """The transfer settings, with no more parts in flight than a client's pool holds.

    aiobotocore lends at most ``max_pool_connections`` connections at once: parts
    beyond them would wait, and a ``max_concurrency`` the caller asked for would be
    capped without a word, so that is refused, naming both. The default
    ``TransferConfig`` asked for nothing: under a smaller pool (a caller limiting its
    connections) it uses the pool. The pool counted is the one the clients get:
    ``client_config`` merged over ours.
    """
    effective = defaults if client_config is None else defaults.merge(client_config)
    pool: int = effective.max_pool_connections
    if transfer.max_concurrency <= pool:
        return transfer
    if not given:
        return attrs.evolve(transfer, max_concurrency=pool)
    wanted = transfer.max_concurrency
    raise InvalidArgumentError(
        f"transfer_config has max_concurrency={wanted} parts in flight, more than the "
        f"connection pool holds (max_pool_connections={pool}): the rest would wait for a "
        f"connection. Pass max_pool_connections={wanted} (or more), or a smaller "
        "max_concurrency"
    )
