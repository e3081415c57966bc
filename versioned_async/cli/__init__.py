"""``versioned-async``: the command line, a thin layer over :class:`Repository`.

Every subcommand opens one :class:`~versioned_async.Repository` (or, with
``--backend s3``, one :class:`~versioned_async.S3OnlyRepository`) with ``async
with``, runs one coroutine with :func:`asyncio.run` and prints the result:
rich tables for people, one JSON document with ``--json`` for programs.
Expected errors print one line, ``error: <message>``, on stderr and exit with
the code :data:`EXIT_CODES` maps their class to (never a traceback).

This module is the parser: the global options, and the commands of each group
module (artifacts, aliases, rollout, purge, cache, local_aws) added to it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from .. import _layout
from .._repository_options import FROM_ENVIRONMENT, FROM_OPTION, environment_endpoint
from .._version import __version__
from .aliases import alias_group, resolve
from .artifacts import bootstrap, get, names, publish, put, versions
from .cache import cache_group
from .local_aws import demo, serve_local
from .purge import purge
from .rollout import rollout
from .runtime import (
    BACKEND_DYNAMODB,
    BACKEND_S3,
    EPILOG,
    EXIT_CODES,
    ErrorsAsExitCodes,
    ExitCode,
    Settings,
    exit_code_for,
    fail,
)
from .sizes import size_option
from .table import adopt

__all__ = ["EXIT_CODES", "ExitCode", "exit_code_for", "fail", "main"]


@click.group(
    "versioned-async",
    cls=ErrorsAsExitCodes,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="versioned-async")
@click.option(
    "--bucket",
    envvar="VERSIONED_BUCKET",
    show_envvar=True,
    help="S3 bucket that holds the content (required by commands that talk to AWS).",
)
@click.option(
    "--prefix",
    envvar="VERSIONED_PREFIX",
    show_envvar=True,
    default=_layout.DEFAULT_S3_PREFIX,
    show_default=True,
    help="S3 key prefix of the repository.",
)
@click.option(
    "--backend",
    envvar="VERSIONED_BACKEND",
    show_envvar=True,
    type=click.Choice([BACKEND_DYNAMODB, BACKEND_S3], case_sensitive=False),
    default=BACKEND_DYNAMODB,
    show_default=True,
    help="Repository layout: dynamodb (S3 + a DynamoDB table) or s3 (S3 only, no table: "
    "no alias history, no rollout).",
)
@click.option(
    "--table",
    envvar="VERSIONED_TABLE",
    show_envvar=True,
    default=_layout.DEFAULT_TABLE_NAME,
    show_default=True,
    help="DynamoDB table of the repository (--backend dynamodb only).",
)
@click.option(
    "--region",
    envvar="AWS_REGION",
    show_envvar=True,
    help="AWS region; unset, botocore's configuration decides (AWS_DEFAULT_REGION, profile).",
)
@click.option(
    "--endpoint-url",
    envvar="AWS_ENDPOINT_URL",
    show_envvar=True,
    help="Send S3 and DynamoDB to this endpoint (moto, LocalStack). Unset, botocore's "
    "configuration applies (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_DYNAMODB, profiles).",
)
@click.option(
    "--cache-dir",
    envvar="VERSIONED_CACHE_DIR",
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Read content through a LocalCache in this directory.",
)
@click.option(
    "--suffix",
    envvar="VERSIONED_SUFFIX",
    show_envvar=True,
    default="",
    help="File suffix of the S3 objects, e.g. .sqlite.",
)
@click.option(
    "--max-attempts",
    envvar="VERSIONED_MAX_ATTEMPTS",
    show_envvar=True,
    type=click.IntRange(min=1),
    help="Attempts per AWS call, first one included (default 5); 1 or 2 fail fast.",
)
@click.option(
    "--multipart-threshold",
    envvar="VERSIONED_MULTIPART_THRESHOLD",
    show_envvar=True,
    metavar="SIZE",
    callback=size_option,
    help="Content larger than this is transferred in parts (default 16MiB). Sizes: bytes, "
    "or KiB/MiB/GiB (KB/MB/GB mean the same, as in the AWS CLI).",
)
@click.option(
    "--multipart-chunksize",
    envvar="VERSIONED_MULTIPART_CHUNKSIZE",
    show_envvar=True,
    metavar="SIZE",
    callback=size_option,
    help="Size of each part (default 8MiB; an upload's parts are raised to S3's 5MiB "
    "least, and as needed to stay within 10,000 parts).",
)
@click.option(
    "--max-concurrency",
    envvar="VERSIONED_MAX_CONCURRENCY",
    show_envvar=True,
    type=click.IntRange(min=1),
    help="Parts in flight at once, per transfer (default 10); memory holds about this many parts.",
)
@click.pass_context
def main(ctx: click.Context, /, backend: str, endpoint_url: str | None, **options: Any) -> None:
    """Versioned binary artifacts in S3 + DynamoDB (the `versioned` 1.0 layout).

    LATEST is the mutable working copy; publish snapshots it into immutable
    numbered versions; aliases point at a version, optionally with a canary;
    rollout moves an alias to a new version step by step, with a health check,
    and `alias history` shows who changed an alias, when and why.

    --backend s3 works on `versioned`'s S3-only layout (one bucket, no table):
    every command but rollout and `alias history`.
    """
    # `options` are the other global options, named as the fields of Settings
    if ctx.get_parameter_source("endpoint_url") is ParameterSource.ENVIRONMENT:
        endpoint_url = environment_endpoint(backend, os.environ)
    table_source = ctx.get_parameter_source("table")
    table_from = (
        FROM_OPTION
        if table_source is ParameterSource.COMMANDLINE
        else FROM_ENVIRONMENT
        if table_source is ParameterSource.ENVIRONMENT
        else None
    )
    ctx.obj = Settings(
        backend=backend,
        endpoint_url=endpoint_url or None,
        table_from=table_from,
        **options,
    )


for _command in (
    bootstrap,
    adopt,
    put,
    publish,
    get,
    versions,
    names,
    alias_group,
    rollout,
    resolve,
    purge,
    cache_group,
    demo,
    serve_local,
):
    main.add_command(_command)
