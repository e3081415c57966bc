"""Pure decisions of issue 15: reclaiming crashed publishers' reservations, and which
deletes of an earlier purge a purge undoes (versioned_async._policy.retention)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from versioned_async._codec import VersionItem
from versioned_async._policy import retention as _retention
from versioned_async.exc import InvalidArgumentError, InvalidArgumentTypeError
from versioned_async.models import Alias

T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
SHA = "a" * 64


def reservation(number: int, at: datetime = T0) -> VersionItem:
    return VersionItem(
        pk="app", sk=f"{number:06d}", is_deleted=True, update_at=at, publish_token="t"
    )


def version(number: int, **kwargs: object) -> VersionItem:
    fields: dict[str, object] = {"sha256": SHA, "update_at": T0, **kwargs}
    return VersionItem(pk="app", sk=f"{number:06d}", **fields)  # type: ignore[arg-type]


def alias(to: str) -> Alias:
    return Alias(
        name="app",
        alias="prod",
        update_at=T0,
        version=to,
        secondary_version=None,
        secondary_version_weight=None,
        version_s3uri=f"s3://b/app/{to}",
        secondary_version_s3uri=None,
    )


def test_a_reservation_is_stale_only_after_the_timeout() -> None:
    timeout = _retention.RESERVATION_TIMEOUT_SECS
    assert not _retention.is_stale_reservation(reservation(1), T0 + HOUR, timeout)
    assert _retention.is_stale_reservation(reservation(1), T0 + HOUR * 1.01, timeout)
    assert not _retention.is_stale_reservation(version(1), T0 + 100 * HOUR, timeout)


def test_the_stale_run_at_the_top_is_reclaimed_down_to_the_first_other_item() -> None:
    late = T0 + 3 * HOUR
    items = [reservation(7), reservation(6), version(5), reservation(4)]
    top, stale = _retention.stale_top(items, late, 3600)
    assert (top, [i.sk for i in stale]) == (5, ["000007", "000006"])
    young = [reservation(7), reservation(6, at=late), version(5)]
    top, stale = _retention.stale_top(young, late, 3600)
    assert (top, [i.sk for i in stale]) == (6, ["000007"])
    assert _retention.stale_top([reservation(2), reservation(1)], late, 3600)[0] == 0


def test_the_timeout_must_be_a_number_of_at_least_a_minute() -> None:
    assert _retention.validate_reservation_timeout(60) == 60.0
    assert _retention.validate_reservation_timeout(7200.5) == 7200.5
    for value in (0, 1, 59.9, -1, float("nan")):
        with pytest.raises(InvalidArgumentError, match=r"reservation_timeout_secs must be >= 60"):
            _retention.validate_reservation_timeout(value)
    with pytest.raises(InvalidArgumentTypeError):
        _retention.validate_reservation_timeout("1h")


def test_only_a_purges_own_deletes_under_an_alias_are_undone() -> None:
    purged = version(3, is_deleted=True, purged_at=T0)
    deleted_by_hand = version(2, is_deleted=True)
    unaliased = version(1, is_deleted=True, purged_at=T0)
    items = [purged, deleted_by_hand, unaliased]
    assert _retention.purged_under_alias(items, [alias("3"), alias("2")]) == [purged]
    assert _retention.purged_under_alias(items, []) == []
