"""``purge``: retention (soft-delete old versions) or, with ``--all``, delete a name.

The retention defaults shown in ``--help`` are read from the library's own
signature, so the help cannot drift from what the library does.
"""

from __future__ import annotations

import inspect
from typing import Any

import click

from ..repository import Repository
from .output import emit, json_option
from .runtime import Settings

_PURGE_DEFAULTS = inspect.signature(Repository.purge_artifact_versions).parameters


@click.command("purge")
@click.argument("name")
@click.option(
    "--keep-last",
    type=int,
    help="Keep this many newest numbered versions "
    f"[default: {_PURGE_DEFAULTS['keep_last_n'].default}].",
)
@click.option(
    "--older-than-days",
    type=float,
    help="Only purge versions older than this "
    f"[default: {_PURGE_DEFAULTS['purge_older_than_secs'].default / 86400:g}].",
)
@click.option(
    "--all", "everything", is_flag=True, help="Delete NAME for good: every object, version, alias."
)
@click.option("--yes", "-y", is_flag=True, help="With --all: do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Print what would be purged; delete nothing.")
@json_option
@click.pass_obj
def purge(
    settings: Settings,
    name: str,
    keep_last: int | None,
    older_than_days: float | None,
    everything: bool,
    yes: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Soft-delete old versions of NAME; never LATEST, a version an alias points at,
    or a protected (held) one.

    With --all, delete NAME entirely (asks first, unless --yes). With
    --backend s3 there is no soft delete or hold: purged versions are gone.
    """
    if everything:
        if keep_last is not None or older_than_days is not None:
            raise click.UsageError("--all deletes everything: drop --keep-last/--older-than-days")
        if dry_run:
            raise click.UsageError("--dry-run plans a retention purge: it does not go with --all")
        if not yes:
            click.confirm(
                f"Delete {name!r} for good: every version, object and alias?",
                abort=True,
                err=True,
            )
        settings.run(lambda repo: repo.purge_artifact(name))
        emit(
            {"name": name, "purged": True},
            as_json,
            lambda _: click.echo(f"purged {name!r}: every version, object and alias"),
        )
        return
    retention: dict[str, Any] = {}
    if keep_last is not None:
        retention["keep_last_n"] = keep_last
    if older_than_days is not None:
        retention["purge_older_than_secs"] = older_than_days * 86400
    purge_time, deleted = settings.run(
        lambda repo: repo.purge_artifact_versions(name, **retention, dry_run=dry_run)
    )

    def show(_: object) -> None:
        if not deleted:
            click.echo(f"nothing to purge in {name!r}")
            return
        verb = "would delete" if dry_run else "deleted"
        click.echo(f"{verb} versions {', '.join(a.version for a in deleted)} of {name!r}")

    emit({"purge_time": purge_time, "dry_run": dry_run, "deleted": deleted}, as_json, show)
