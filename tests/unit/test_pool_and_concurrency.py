"""A transfer never has more parts in flight than the connection pool holds.

aiobotocore hands out at most ``max_pool_connections`` connections per client; a
``TransferConfig(max_concurrency=...)`` above it would be capped without a word (the
parts beyond the pool wait for a connection), so the asked-for speed would silently
not happen. The repository refuses the combination, naming both settings; the default
``TransferConfig`` (nothing asked) fits a smaller pool; the CLI and ``versioned://``,
which have no pool option, size the pool to fit.
"""

from __future__ import annotations

import inspect

import attrs
import pytest
from aiobotocore.config import AioConfig

import versioned_async as va
from versioned_async._repository_options import RepositoryOptions
from versioned_async._settings import DEFAULT_MAX_POOL_CONNECTIONS
from versioned_async.exc import InvalidArgumentError

LAYOUTS = [
    pytest.param(lambda **kw: va.Repository(s3_bucket="b", **kw), id="dynamodb"),
    pytest.param(lambda **kw: va.S3OnlyRepository(s3_bucket="b", **kw), id="s3"),
]


@pytest.mark.parametrize("make", LAYOUTS)
def test_more_parts_in_flight_than_the_pool_holds_is_refused_naming_both(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError) as raised:
        make(transfer_config=va.TransferConfig(max_concurrency=100))
    message = str(raised.value)
    assert "max_concurrency=100" in message
    assert "max_pool_connections=64" in message
    assert "max_pool_connections=100" in message  # what to pass instead


@pytest.mark.parametrize("make", LAYOUTS)
def test_a_pool_that_holds_them_is_accepted_however_it_is_given(make) -> None:  # type: ignore[no-untyped-def]
    many = va.TransferConfig(max_concurrency=100)
    make(transfer_config=many, max_pool_connections=100)
    make(transfer_config=many, client_config=AioConfig(max_pool_connections=128))
    make(transfer_config=va.TransferConfig(max_concurrency=64))  # the default pool, full
    # the caller's client_config is what the clients get: its pool counts, not ours
    with pytest.raises(InvalidArgumentError, match="max_pool_connections=8"):
        make(transfer_config=va.TransferConfig(), client_config=AioConfig(max_pool_connections=8))


@pytest.mark.parametrize("make", LAYOUTS)
def test_a_small_pool_without_a_transfer_config_caps_the_default_quietly(make) -> None:  # type: ignore[no-untyped-def]
    """A caller who limits connections asked for no concurrency: the default fits."""
    for small in (
        make(max_pool_connections=4),
        make(client_config=AioConfig(max_pool_connections=4)),
    ):
        assert small._settings.transfer.max_concurrency == 4
    assert make()._settings.transfer == va.TransferConfig()  # the default pool holds it


def test_the_documented_default_is_the_one_the_checks_use() -> None:
    for layout in (va.Repository, va.S3OnlyRepository):
        default = inspect.signature(layout).parameters["max_pool_connections"].default
        assert default == DEFAULT_MAX_POOL_CONNECTIONS


def test_the_cli_and_versioned_urls_size_the_pool_for_their_max_concurrency() -> None:
    given = RepositoryOptions.from_given({"bucket": "b"}, environ={})
    for backend in ("dynamodb", "s3"):
        for concurrency in (None, 10, 64, 100, 300):
            options = attrs.evolve(given, backend=backend, max_concurrency=concurrency)
            assert options.repository(cache=None) is not None  # not refused
