"""The artifact commands: bootstrap, put, publish, get, versions, names.

``put`` and ``get`` stream through files, so content of any size moves with
bounded memory; the others print what the repository answers (see output.py).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import click

from .. import exc
from .._base import ArtifactRepository
from ..models import Artifact
from . import streams
from .output import emit, json_option, print_fields, print_lines, print_table, short_size, when
from .runtime import BACKEND_S3, Settings


def _show_artifact(artifact: Artifact) -> None:
    print_fields(
        [
            ("name", artifact.name),
            ("version", artifact.version),
            ("updated", when(artifact.update_at)),
            ("size", "" if artifact.size is None else f"{artifact.size:,} B"),
            ("sha256", artifact.sha256),
            ("content type", artifact.content_type or ""),
            ("metadata", ", ".join(f"{k}={v}" for k, v in artifact.metadata.items())),
            ("s3uri", artifact.s3uri),
        ],
        overflow="fold",
    )


def _show_artifacts(name: str, artifacts: Sequence[Artifact]) -> None:
    print_table(
        f"versions of {name}",
        ("version", "updated (UTC)", "size", "sha256", "content type"),
        [
            (a.version, when(a.update_at), short_size(a.size), a.sha256[:12], a.content_type)
            for a in artifacts
        ],
        right="size",
    )


def _parse_pairs(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str] | None:
    """``("k=v", ...)`` as a dict; ``None`` when not given, so put leaves it as it is."""
    if not values:
        return None
    out: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", ctx, param)
        if key in out:
            raise click.BadParameter(f"{key!r} is given twice", ctx, param)
        out[key] = val
    return out


@click.command("bootstrap")
@click.pass_obj
def bootstrap(settings: Settings) -> None:
    """Create the bucket and the table (no table with --backend s3) when missing (idempotent)."""
    settings.run(lambda repo: repo.bootstrap())
    if settings.backend == BACKEND_S3:
        click.echo(f"ready: bucket {settings.bucket!r} (S3-only, no table)")
    else:
        click.echo(f"ready: bucket {settings.bucket!r}, table {settings.table!r}")


@click.command("put")
@click.argument("name")
@click.argument(
    "file",
    required=False,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
)
@click.option("--content-type", help="Content type to record, e.g. application/x-sqlite3.")
@click.option(
    "--meta",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parse_pairs,
    help="User metadata (repeatable).",
)
@click.option(
    "--tag", multiple=True, metavar="KEY=VALUE", callback=_parse_pairs, help="S3 tag (repeatable)."
)
@json_option
@click.pass_obj
def put(
    settings: Settings,
    name: str,
    file: Path | None,
    content_type: str | None,
    meta: dict[str, str] | None,
    tag: dict[str, str] | None,
    as_json: bool,
) -> None:
    """Store FILE (or stdin, when - or omitted) as the LATEST version of NAME.

    A file is streamed, so memory stays bounded whatever its size.
    """
    if file is None:
        streams.refuse_terminal_stdin("FILE")

    def store(content: bytes | Path) -> Artifact:
        size = len(content) if isinstance(content, bytes) else content.stat().st_size
        with streams.progress(f"uploading {name}", size):
            return settings.run(
                lambda repo: repo.put_artifact(
                    name, content, content_type=content_type, metadata=meta, tags=tag
                )
            )

    if file is None or str(file) == "-":
        with streams.stdin_content() as content:
            artifact = store(content)
    else:
        artifact = store(file)
    emit(artifact, as_json, _show_artifact)


@click.command("publish")
@click.argument("name")
@json_option
@click.pass_obj
def publish(settings: Settings, name: str, as_json: bool) -> None:
    """Snapshot LATEST of NAME as its next immutable version."""
    emit(settings.run(lambda repo: repo.publish_artifact_version(name)), as_json, _show_artifact)


async def _display_size(
    repo: ArtifactRepository, name: str, version: str | None, alias: str | None, key: str | None
) -> int | None:
    """The size of what `get` is about to download, for the progress bar; None if unknown."""
    try:
        if alias is not None:
            resolved = await repo.resolve_alias(name, alias)
            if resolved.is_split and key is None:
                return None  # a random pick: the download may choose the other one
            version = resolved.choose_version(key)
        return (await repo.get_artifact_version(name, version)).size
    except exc.VersionedError:
        return None  # the download reports the error


@click.command("get")
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default="-",
    show_default=True,
    help="File to write (atomically, verified); - writes binary to stdout.",
)
@click.option("--version", "version", help="Version to get: LATEST (default), 1, 2, ...")
@click.option("--alias", "alias", help="Get the version this alias points at.")
@click.option("--routing-key", help="With --alias: the key that picks a canary's side, sticky.")
@click.pass_obj
def get(
    settings: Settings,
    name: str,
    output: Path,
    version: str | None,
    alias: str | None,
    routing_key: str | None,
) -> None:
    """Write the content of a version of NAME to a file or stdout."""
    if routing_key is not None and alias is None:
        raise click.UsageError("--routing-key goes with --alias")

    def fetch(target: Path) -> None:
        async def work(repo: ArtifactRepository) -> None:
            size = None
            if streams.progress_wanted():  # a bar to draw: ask the size first
                size = await _display_size(repo, name, version, alias, routing_key)
            with streams.progress(f"downloading {name}", size):
                await repo.download(name, target, version, alias, routing_key)

        settings.run(work)

    if str(output) != "-":
        fetch(output)
        click.echo(f"wrote {output}", err=True)
        return
    # the API reads into memory or into a file; a file keeps memory bounded for any size
    with tempfile.TemporaryDirectory(prefix="versioned-async-") as tmp:
        content = Path(tmp) / "content"
        fetch(content)
        stdout = sys.stdout.buffer
        with content.open("rb") as source:
            shutil.copyfileobj(source, stdout, 1 << 20)
        stdout.flush()


@click.command("versions")
@click.argument("name")
@json_option
@click.pass_obj
def versions(settings: Settings, name: str, as_json: bool) -> None:
    """List the visible versions of NAME: LATEST first, then newest to oldest.

    A NAME with no visible version at all (not even LATEST) does not exist:
    that is exit code 3, as for `get` of it.
    """
    found = settings.run(lambda repo: repo.list_artifact_versions(name))
    if not found:
        raise exc.ArtifactNotFoundError(name)
    emit(found, as_json, lambda found: _show_artifacts(name, found))


@click.command("names")
@json_option
@click.pass_obj
def names(settings: Settings, as_json: bool) -> None:
    """List the names of every artifact in the repository."""
    emit(settings.run(lambda repo: repo.list_artifact_names()), as_json, print_lines)
