"""The alias commands: ``alias set|get|list|delete|history``, and ``resolve``.

``resolve`` routes keys the way a service does: it reads the alias once and
chooses locally, line by line, so any number of keys streams through.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from typing import IO

import click

from .. import exc
from .._base import ArtifactRepository
from ..models import Alias, AliasChange
from ..repository import Repository
from . import streams
from .output import emit, json_option, print_lines, print_table, target, when
from .runtime import ExitCode, Settings, fail


def _show_aliases(name: str, aliases: Sequence[Alias]) -> None:
    print_table(
        f"aliases of {name}",
        ("alias", "version", "canary", "weight", "updated (UTC)"),
        [
            (
                a.alias,
                a.version,
                a.secondary_version,
                "" if a.secondary_version_weight is None else f"{a.secondary_version_weight}%",
                when(a.update_at),
            )
            for a in aliases
        ],
    )


@click.group("alias")
def alias_group() -> None:
    """Set, show, list and delete aliases (prod, staging, canaries); show their history
    (history: --backend dynamodb only)."""


@alias_group.command("set")
@click.argument("name")
@click.argument("alias")
@click.argument("version")
@click.option("--canary", metavar="VERSION", help="Secondary version that gets --weight percent.")
@click.option("--weight", type=int, help="Percent of traffic (0-99) for the --canary version.")
@json_option
@click.pass_obj
def alias_set(
    settings: Settings,
    name: str,
    alias: str,
    version: str,
    canary: str | None,
    weight: int | None,
    as_json: bool,
) -> None:
    """Point ALIAS of NAME at VERSION, optionally splitting traffic with --canary."""
    if canary is not None and weight is None:
        fail(
            "--canary needs --weight: the percent of traffic (0 to 99) the canary gets",
            ExitCode.USAGE,
        )
    if weight is not None and canary is None:
        fail("--weight goes with --canary: the version that gets that percent", ExitCode.USAGE)
    made = settings.run(lambda repo: repo.put_alias(name, alias, version, canary, weight))
    emit(made, as_json, lambda made: _show_aliases(name, [made]))


@alias_group.command("get")
@click.argument("name")
@click.argument("alias")
@json_option
@click.pass_obj
def alias_get(settings: Settings, name: str, alias: str, as_json: bool) -> None:
    """Show ALIAS of NAME."""
    found = settings.run(lambda repo: repo.get_alias(name, alias))
    emit(found, as_json, lambda found: _show_aliases(name, [found]))


async def _exists(repo: ArtifactRepository, name: str) -> bool:
    """Whether NAME has a visible version: a mistyped name, or an artifact without
    aliases? Its LATEST answers in one read; only without one are the versions listed
    (in the S3-only layout a listing costs a HeadObject per version)."""
    try:
        await repo.get_artifact_version(name)
    except exc.ArtifactNotFoundError:
        return bool(await repo.list_artifact_versions(name))
    return True


@alias_group.command("list")
@click.argument("name")
@json_option
@click.pass_obj
def alias_list(settings: Settings, name: str, as_json: bool) -> None:
    """List the aliases of NAME; a NAME that does not exist is exit code 3, as for
    `versions` of it."""

    async def aliases(repo: ArtifactRepository) -> list[Alias]:
        found = await repo.list_aliases(name)
        if not found and not await _exists(repo, name):
            raise exc.ArtifactNotFoundError(name)
        return found

    found = settings.run(aliases)
    emit(found, as_json, lambda found: _show_aliases(name, found), f"{name!r} has no aliases")


@alias_group.command("delete")
@click.argument("name")
@click.argument("alias")
@click.pass_obj
def alias_delete(settings: Settings, name: str, alias: str) -> None:
    """Delete ALIAS of NAME (deleting a missing alias changes nothing)."""
    settings.run(lambda repo: repo.delete_alias(name, alias))
    click.echo(f"deleted alias {alias!r} of {name!r}")


def _history_line(change: AliasChange) -> str:
    action = change.action if change.recorded else f"{change.action}*"
    line = f"{when(change.changed_at)}  {action:<9} {target(change.before)} -> "
    line += target(change.after)
    if change.actor:
        line += f"  by {change.actor}"
    if change.reason:
        line += f"  {' '.join(change.reason.split())}"
    return line


def _show_history(changes: Sequence[AliasChange]) -> None:
    print_lines(_history_line(change) for change in changes)
    if any(not change.recorded for change in changes):
        click.echo("* changed outside versioned_async, not recorded yet", err=True)


@alias_group.command("history")
@click.argument("name")
@click.argument("alias")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Show at most this many changes.",
)
@json_option
@click.pass_obj
def alias_history(settings: Settings, name: str, alias: str, limit: int, as_json: bool) -> None:
    """Show the changes of ALIAS of NAME, newest first, one line each: when (UTC),
    action, from -> to, by whom, and why. Needs --backend dynamodb."""

    async def newest(repo: Repository) -> list[AliasChange]:
        changes: list[AliasChange] = []
        token = None
        while len(changes) < limit:
            page = await repo.list_alias_history(
                name, alias, limit=min(limit - len(changes), 1000), page_token=token
            )
            changes += page.changes
            token = page.next_page_token
            if token is None:
                break
        return changes[:limit]

    changes = settings.run_dynamodb("alias history", "keeps no alias history", newest)
    emit(changes, as_json, _show_history, f"alias {alias!r} of {name!r} has no recorded changes")


#: keys routed per batch by `resolve`: memory stays bounded, hashing runs batched
_RESOLVE_BATCH = 65_536


def _strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\n"):
        line = line[:-1]
    return line[:-1] if line.endswith(b"\r") else line


@click.command("resolve")
@click.argument("name")
@click.argument("alias")
@click.argument("keys", required=False, type=click.File("rb"))
@click.pass_obj
def resolve(settings: Settings, name: str, alias: str, keys: IO[bytes] | None) -> None:
    """Route routing keys: read one key per line from KEYS (or stdin), print KEY<TAB>VERSION.

    The alias is read once; keys are routed locally with Alias.choose_versions,
    sticky per key, streaming line by line (any number of keys).
    """
    if keys is None:
        streams.refuse_terminal_stdin("KEYS file")
        keys = sys.stdin.buffer
    resolved = settings.run(lambda repo: repo.resolve_alias(name, alias))
    tails = {
        v: b"\t" + v.encode() + b"\n"
        for v in (resolved.version, resolved.secondary_version)
        if v is not None
    }
    out = sys.stdout.buffer
    while batch := [_strip_eol(line) for line in itertools.islice(keys, _RESOLVE_BATCH)]:
        out.writelines(
            k + tails[v] for k, v in zip(batch, resolved.choose_versions(batch), strict=True)
        )
    out.flush()
