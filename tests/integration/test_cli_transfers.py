"""The command line's transfer settings reach the repository: seen on the wire."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import BUCKET, REGION, TABLE
from tests.proxy import CountingProxy
from versioned_async.cli import main

MiB = 1 << 20


def invoke(endpoint_url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    settings = {
        "VERSIONED_BUCKET": BUCKET,
        "VERSIONED_TABLE": TABLE,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": REGION,
        **(env or {}),
    }
    return CliRunner().invoke(main, list(args), env=settings, catch_exceptions=False)


@pytest.mark.parametrize(
    ("options", "env"),
    [
        (
            [
                "--multipart-threshold",
                "5MiB",
                "--multipart-chunksize",
                "5mb",
                "--max-concurrency",
                "2",
            ],
            {},
        ),
        (
            [],
            {
                "VERSIONED_MULTIPART_THRESHOLD": "5242880",
                "VERSIONED_MULTIPART_CHUNKSIZE": "5MiB",
                "VERSIONED_MAX_CONCURRENCY": "2",
            },
        ),
    ],
    ids=["flags", "environment"],
)
async def test_put_uploads_in_the_parts_the_options_say(
    proxy: CountingProxy, tmp_path: Path, options: list[str], env: dict[str, str]
) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(12 * MiB))
    # the command line runs its own event loop: in a thread, while the proxy runs in this one
    done = await asyncio.to_thread(invoke, proxy.endpoint_url, "bootstrap")
    assert done.exit_code == 0, done.output
    proxy.reset_counts()
    proxy.delay = 0.05  # parts that may overlap do
    args = [*options, "put", "model", str(source)]
    done = await asyncio.to_thread(invoke, proxy.endpoint_url, *args, env=env)
    proxy.delay = 0
    assert done.exit_code == 0, done.output
    assert proxy.count("UploadPart") == 3  # 5 + 5 + 2 MiB (the default: one PutObject)
    assert proxy.peak_in_flight("UploadPart") == 2
    got = await asyncio.to_thread(invoke, proxy.endpoint_url, "get", "model")
    assert got.stdout_bytes == source.read_bytes()
