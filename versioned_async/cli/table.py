"""``adopt``: record which repository a table serves.

``bootstrap`` records it in the tables it creates or first finds; a table that
`versioned` 1.0 made (or versioned_async before the record) has none, and
``adopt`` writes it, so that a command given another ``--bucket`` or
``--prefix`` with this table is refused instead of mixing two repositories.
"""

from __future__ import annotations

import click

from .runtime import Settings


@click.command("adopt")
@click.pass_obj
def adopt(settings: Settings) -> None:
    """Record in the table that it serves this --bucket and --prefix (if it records none).

    Afterwards a command given this table with another bucket or prefix fails
    (exit code 2) instead of reading or writing another repository's versions.
    Fails the same way, writing nothing, when the table already serves another.
    """
    wrote = settings.run_dynamodb(
        "adopt", "keeps no table to record it in", lambda repo: repo.adopt_table()
    )
    where = f"s3://{settings.bucket}/{settings.prefix.strip('/')}"
    if wrote:
        click.echo(f"adopted: table {settings.table!r} now serves {where}")
    else:
        click.echo(f"already adopted: table {settings.table!r} serves {where}; nothing written")
