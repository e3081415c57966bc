"""The AWS clients of one open repository: each created on first use, all closed together.

Why lazily: a client costs time to create (the first one of a session ~75 ms,
while the service models load), and a repository often needs fewer than it
could use. A warm cache serves reads without any request, an S3-only
repository has no table, and STS is asked only for the default ``actor`` of
an alias change. So a client is created the first time it is asked for, once
however many tasks ask at that moment, from the repository's one session, and
entered into one exit stack: :meth:`AwsClients.aclose` closes every client
that was created, and nothing outlives it.

What botocore would refuse at creation (no region for DynamoDB, an endpoint
URL that is not one) is checked when the clients are set up, so a repository
with unusable settings fails to open, as when its clients were made up front.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import botocore.exceptions as bce
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url, validate_region_name

from .. import _pacing
from .._redact import redact_text, redact_url
from .._s3_options import S3Options
from ..exc import InvalidArgumentError, RepositoryClosedError
from ..transfer_config import TransferConfig
from .errors import aws_errors

__all__ = ["NOT_OPEN", "RETRIES_LOGGER", "AwsClients", "default_config", "will_retry"]

#: the logger of "cannot reach the endpoint; retrying" (INFO, once per repository): a
#: command line shows it to a person waiting at a terminal, a service need not log it
RETRIES_LOGGER = "versioned_async.retries"
_retries_log = logging.getLogger(RETRIES_LOGGER)
#: botocore's failures to connect at all (a timeout to connect is one of them)
_UNREACHABLE = (bce.EndpointConnectionError, bce.ConnectTimeoutError)

#: what using a repository that is not open raises
NOT_OPEN = "the Repository is not open: use `async with repo:` (or `await repo.open()`)"

#: services botocore creates without a region (it defaults them to a global endpoint)
_REGIONLESS = frozenset({"s3", "sts"})

#: STS only names the default ``actor`` of alias history, a hint never worth a long
#: wait: short timeouts, one retry, and the repository's own settings left aside
_STS_CONFIG = AioConfig(
    connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 2}
)


def default_config(max_pool_connections: int, endpoint_url: str | None) -> AioConfig:
    """The library's client settings: standard retries (5 attempts), a pool of
    ``max_pool_connections``, and path-style addressing for a custom endpoint."""
    return AioConfig(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=max_pool_connections,
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": "path"} if endpoint_url else None,
    )


def will_retry(attempts: int, total_max_attempts: object) -> bool:
    """Whether botocore retries after attempt number ``attempts`` failed, given its
    ``total_max_attempts`` setting (not an int: unknown, as in legacy mode: it does)."""
    if isinstance(total_max_attempts, int) and not isinstance(total_max_attempts, bool):
        return attempts < total_max_attempts
    return True


@contextmanager
def _creation_errors(what: str, endpoint_url: str | None) -> Iterator[None]:
    """botocore's refusals of a client's settings, as library errors."""
    with aws_errors(what):
        try:
            yield
        except ValueError as err:  # botocore: "Invalid endpoint: <the URL>"
            raise InvalidArgumentError(
                f"endpoint_url {redact_url(endpoint_url)!r} is not usable: "
                f"{redact_text(str(err))}; give a URL such as http://localhost:4566"
            ) from None


class AwsClients:
    """The S3, DynamoDB and STS clients of one open repository, in one exit stack.

    ``defaults`` are the library's settings (:func:`default_config`),
    ``overrides`` the caller's ``client_config`` merged over them, and the
    testing pace (:mod:`.._pacing`), when on now, in between: the clients keep
    the pace of the moment the repository was opened. ``services`` are those
    the layout uses; their settings are checked here.

    ``session`` left ``None``, aiobotocore's is made when it is first needed
    (a client, or the region of the AWS config): making one costs ~20 ms of
    botocore set-up, which a service restarting on a warm cache, with no
    request to make, never pays.
    """

    def __init__(
        self,
        session: AioSession | None,
        region: str | None,
        endpoint_url: str | None,
        *,
        defaults: AioConfig,
        overrides: AioConfig | None,
        s3_options: S3Options,
        services: Sequence[str],
        transfer: TransferConfig | None = None,
    ) -> None:
        config = _pacing.client_config(defaults)
        if overrides is not None:
            config = config.merge(overrides)
        self._given_session = session
        self._region = region
        self._endpoint_url = endpoint_url
        self._config = config
        # decided now, not on the first request: a default S3Options adds nothing
        self._s3_options = None if s3_options.is_default else s3_options
        #: how large content moves through these clients (:class:`.ObjectStore` reads it)
        self.transfer = TransferConfig() if transfer is None else transfer
        self._testing = _pacing.is_testing()
        self._stack = AsyncExitStack()
        self._clients: dict[str, Any] = {}
        self._creating = asyncio.Lock()
        self._closed = False
        self._told_unreachable = False
        with _creation_errors(f"creating the {' and '.join(services)} clients", endpoint_url):
            self._check(services)

    @property
    def _session(self) -> AioSession:
        if self._given_session is None:
            self._given_session = get_session()
        return self._given_session

    def _check(self, services: Sequence[str]) -> None:
        """Raise what botocore would raise creating clients of ``services``, without
        creating any (the region resolved as botocore does)."""
        region = self._region
        if region is None:
            region = (
                self._config.region_name
                if self._config.region_name is not None
                else self._session.get_config_variable("region")
            )
        validate_region_name(region)
        if region is None and not _REGIONLESS.issuperset(services):
            raise bce.NoRegionError()
        url = self._endpoint_url
        if url is not None and not (is_valid_endpoint_url(url) or is_valid_ipv6_endpoint_url(url)):
            raise ValueError(f"Invalid endpoint: {url}")

    async def client(self, service: str) -> Any:
        """The client of ``service`` (``"s3"``, ``"dynamodb"``, ``"sts"``), created on
        first use: S3's with the repository's S3 options on every request, STS's with
        its own short timeouts (see ``_STS_CONFIG``)."""
        client = self._clients.get(service)
        if client is None:
            async with self._creating:  # tasks asking at once wait for one creation
                client = self._clients.get(service)
                if client is None:
                    client = self._clients[service] = await self._create(service)
        return client

    async def _create(self, service: str) -> Any:
        if self._closed:  # never into a stack that has been unwound: it would leak
            raise RepositoryClosedError(NOT_OPEN)
        sts = service == "sts"
        with _creation_errors(f"creating the {service} client", self._endpoint_url):
            client = await self._stack.enter_async_context(
                self._session.create_client(
                    service,
                    region_name=(self._region or "us-east-1") if sts else self._region,
                    endpoint_url=self._endpoint_url,
                    config=_STS_CONFIG if sts else self._config,
                )
            )
        if self._testing:  # the pace of the moment the repository was opened
            _pacing.pace_client(client, testing=True)
        total = (client.meta.config.retries or {}).get("total_max_attempts")
        client.meta.events.register(
            "needs-retry", lambda **event: self._tell_unreachable(total, **event)
        )
        if service == "s3" and self._s3_options is not None:
            self._s3_options.install(client)
        return client

    def _tell_unreachable(
        self,
        total_max_attempts: object,
        *,
        caught_exception: BaseException | None = None,
        attempts: int = 0,
        endpoint: Any = None,
        **_: Any,
    ) -> None:
        """On botocore's ``needs-retry``: the first time a client of this repository
        cannot connect and botocore will try again, log it (INFO, on
        :data:`RETRIES_LOGGER`). Backing off between attempts can take ~20 s before
        the error; this is what tells a person waiting why. Returns ``None``, so it
        never changes botocore's decision."""
        if self._told_unreachable or not isinstance(caught_exception, _UNREACHABLE):
            return
        if not will_retry(attempts, total_max_attempts):
            return
        self._told_unreachable = True
        where = redact_url(getattr(endpoint, "host", None)) or "AWS"
        _retries_log.info(
            "cannot reach %s (%s); retrying...", where, type(caught_exception).__name__
        )

    async def aclose(self) -> None:
        """Close every client created (and one being created now). Safe to call twice."""
        self._closed = True
        async with self._creating:
            await self._stack.aclose()
