"""``cache stats`` and ``cache clear``: the local cache directory, without AWS.

These open only the :class:`~versioned_async.LocalCache` in ``--cache-dir``,
so they work offline and need no bucket.
"""

from __future__ import annotations

import click
from rich.filesize import decimal as human_size

from ..cache import LocalCache
from .output import emit, json_option, print_fields
from .runtime import Settings


@click.group("cache")
def cache_group() -> None:
    """Inspect or clear the local cache (in --cache-dir)."""


@cache_group.command("stats")
@json_option
@click.pass_obj
def cache_stats(settings: Settings, as_json: bool) -> None:
    """How much content the cache directory holds."""
    cache = LocalCache(settings.require_cache_dir())
    try:
        count, size, limit = cache.content_count, cache.content_bytes, cache.size_limit
    finally:
        cache.close()
    stats = {
        "directory": str(cache.directory),
        "content_count": count,
        "content_bytes": size,
        "size_limit": limit,
    }
    rows = [
        ("directory", str(cache.directory)),
        ("content", f"{count:,} items"),
        ("size", f"{size:,} B ({human_size(size)})"),
        ("size limit", f"{limit:,} B ({human_size(limit)})"),
    ]
    emit(stats, as_json, lambda _: print_fields(rows))


@cache_group.command("clear")
@click.pass_obj
def cache_clear(settings: Settings) -> None:
    """Drop every cached lookup and all cached content."""
    cache = LocalCache(settings.require_cache_dir())
    try:
        count, size = cache.content_count, cache.content_bytes
        cache.clear()
    finally:
        cache.close()
    click.echo(f"cleared {cache.directory}: {count} items, {size:,} B")
