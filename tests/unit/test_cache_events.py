"""The cache's events: CacheStats is their tally, and a subscriber sees each one."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import attrs
import pytest

from versioned_async import CacheStats, LocalCache
from versioned_async.cache import events as ev
from versioned_async.cache.content import Staged
from versioned_async.cache.events import CacheEvent, Events
from versioned_async.cache.keys import AliasKey, RepositoryId

ONE_OF_EACH: list[CacheEvent] = [
    ev.CacheHit("sha-1"),
    ev.CacheMiss("sha-2"),
    ev.Downloaded(1000),
    ev.LookupHit(),
    ev.LookupRefreshed(),
    ev.StaleServed("alias 'prod' of 'app'", 40.0),
    ev.IntegrityFailed("app", "1", "sha-expected", "sha-actual"),
    ev.ContentDamaged("sha-3"),
    ev.LeaseTakenOver("v1 machine 123 - token"),
    ev.CacheError("damaged"),
    ev.Evicted("sha-4"),
]


def test_each_counter_of_cache_stats_counts_one_event_type() -> None:
    counted = sorted(ev.COUNTERS[type(event)] for event in ONE_OF_EACH)
    fields = sorted(set(attrs.fields_dict(CacheStats)) - {"bytes_downloaded"})
    assert counted == fields
    assert len(ev.COUNTERS) == len(ONE_OF_EACH)


def test_the_stats_are_the_tally_of_the_events() -> None:
    events = Events()
    for event in [*ONE_OF_EACH, ev.Downloaded(24), ev.CacheHit("sha-1")]:
        events.emit(event)
    assert events.stats() == CacheStats(
        hits=2,
        misses=1,
        downloads=2,
        bytes_downloaded=1024,
        lookup_hits=1,
        lookup_refreshes=1,
        stale_serves=1,
        integrity_failures=1,
        damaged_content=1,
        lease_takeovers=1,
        cache_errors=1,
        evictions=1,
    )


def test_a_subscriber_sees_every_event_in_order_until_it_unsubscribes() -> None:
    events = Events()
    seen: list[CacheEvent] = []
    unsubscribe = events.subscribe(seen.append)
    for event in ONE_OF_EACH:
        events.emit(event)
    unsubscribe()
    events.emit(ev.CacheHit("after"))
    assert seen == ONE_OF_EACH
    unsubscribe()  # twice: nothing happens


def test_a_failing_subscriber_is_logged_and_the_others_still_called(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = Events()
    seen: list[CacheEvent] = []

    def broken(event: CacheEvent) -> None:
        raise RuntimeError("telemetry is down")

    events.subscribe(broken)
    events.subscribe(seen.append)
    with caplog.at_level(logging.ERROR, logger="versioned_async"):
        events.emit(ev.CacheHit("sha"))
    assert seen == [ev.CacheHit("sha")]
    assert events.stats().hits == 1
    assert "subscriber failed" in caplog.text


async def test_a_local_cache_emits_what_it_does_to_its_subscribers(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path)
    seen: list[CacheEvent] = []
    cache.subscribe(seen.append)
    content = b"stored, then found damaged" * 10
    sha = hashlib.sha256(content).hexdigest()
    part = cache._store.content.new_staging_path()
    part.write_bytes(content)
    assert await cache._store.content.publish(Staged(part, sha, len(content))) is not None
    part.unlink()
    await cache._store.content.discard(sha)
    assert seen == [ev.ContentDamaged(sha)]
    assert cache.stats().damaged_content == 1
    cache.close()


async def test_async_with_closes_the_cache_with_its_lookups_written(tmp_path: Path) -> None:
    key = AliasKey(RepositoryId("endpoint", "bucket", "prefix", "", "table"), "app", "prod")
    async with LocalCache(tmp_path) as cache:
        await cache._store.lookups.remember(key, {"version": "000001"})
    reopened = LocalCache(tmp_path)
    found = await reopened._store.lookups.load(key)
    assert found is not None
    assert found[1] == {"version": "000001"}
    reopened.close()
