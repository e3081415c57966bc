"""One measured transfer in a fresh process: ``python -m benchmarks.transfer_worker ...``.

Each command prints one JSON line: seconds, bytes, and the growth of peak RSS
over the resting RSS just before the transfer (clients open, service models
loaded; the peak reset through ``/proc/self/clear_refs``, see
:mod:`benchmarks.worker`).

- ``ours``: :class:`versioned_async.S3OnlyRepository` with the
  :class:`~versioned_async.TransferConfig` given: ``download`` is
  ``repo.download(name, path)`` with no cache (cold: every byte from the
  server, hashed and verified on the way), ``upload`` is
  ``repo.put_artifact(name, Path)`` (hashes the file, then uploads it).
- ``boto3``: ``download_file``/``upload_file`` (s3transfer's threads) on the
  same objects, with s3transfer's ``TransferConfig`` of the same numbers; they
  hash nothing.
- ``floor``: what this machine can do with the bytes alone, no network: sha256
  and write ``size`` bytes to a new file (a download's local work), and read
  and sha256 a file (an upload's).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import REGION
from benchmarks.worker import current_rss_mib, peak_rss_mib, reset_peak_rss

#: the chunk the floor hashes and writes at a time (ours reads 1 MiB at a time)
FLOOR_CHUNK = 1 << 20


def _measured(seconds: float, size: int, before_rss: float, reset: bool) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "bytes": size,
        "mib_per_s": size / seconds / (1 << 20),
        "rss_before_mib": before_rss,
        "peak_growth_mib": peak_rss_mib() - before_rss,
        "peak_reset": reset,
    }


async def ours(args: argparse.Namespace) -> dict[str, Any]:
    import versioned_async as va  # noqa: PLC0415

    config = va.TransferConfig(
        multipart_threshold=args.threshold,
        multipart_chunksize=args.chunksize,
        max_concurrency=args.concurrency,
    )
    async with va.S3OnlyRepository(
        REGION, args.bucket, endpoint_url=args.endpoint, transfer_config=config
    ) as repo:
        await repo.list_artifact_names()  # the service model loaded, a connection open
        reset = reset_peak_rss()
        before = current_rss_mib()
        started = time.perf_counter()
        if args.direction == "upload":
            size = (await repo.put_artifact(args.name, Path(args.path))).size or 0
        else:
            size = (await repo.download(args.name, args.path)).stat().st_size
        seconds = time.perf_counter() - started
    return _measured(seconds, size, before, reset)


def boto3_transfer(args: argparse.Namespace) -> dict[str, Any]:
    import boto3  # noqa: PLC0415
    from boto3.s3.transfer import TransferConfig  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    s3 = boto3.session.Session(region_name=REGION).client(
        "s3",
        endpoint_url=args.endpoint,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=args.concurrency),
    )
    config = TransferConfig(
        multipart_threshold=args.threshold,
        multipart_chunksize=args.chunksize,
        max_concurrency=args.concurrency,
    )
    s3.list_objects_v2(Bucket=args.bucket, MaxKeys=1)
    reset = reset_peak_rss()
    before = current_rss_mib()
    started = time.perf_counter()
    if args.direction == "upload":
        s3.upload_file(args.path, args.bucket, args.key, Config=config)
        size = Path(args.path).stat().st_size
    else:
        s3.download_file(args.bucket, args.key, args.path, Config=config)
        size = Path(args.path).stat().st_size
    seconds = time.perf_counter() - started
    return _measured(seconds, size, before, reset)


def floor(args: argparse.Namespace) -> dict[str, Any]:
    """sha256 + write ``size`` bytes to a new file; then read + sha256 that file."""
    block = os.urandom(FLOOR_CHUNK)
    path = Path(args.path)
    digest = hashlib.sha256()
    started = time.perf_counter()
    with open(path, "wb") as out:
        written = 0
        while written < args.size:
            chunk = block[: args.size - written]
            digest.update(chunk)
            out.write(chunk)
            written += len(chunk)
    write_s = time.perf_counter() - started
    digest = hashlib.sha256()
    started = time.perf_counter()
    with open(path, "rb") as source:
        while chunk := source.read(FLOOR_CHUNK):
            digest.update(chunk)
    read_s = time.perf_counter() - started
    path.unlink()
    mib = args.size / (1 << 20)
    return {
        "hash_write_s": write_s,
        "hash_write_mib_per_s": mib / write_s,
        "read_hash_s": read_s,
        "read_hash_mib_per_s": mib / read_s,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("ours", "boto3"):
        each = sub.add_parser(command)
        each.add_argument("direction", choices=("download", "upload"))
        each.add_argument("--endpoint", required=True)
        each.add_argument("--bucket", required=True)
        each.add_argument("--path", required=True)
        each.add_argument("--name", help="ours: the artifact")
        each.add_argument("--key", help="boto3: the object key")
        each.add_argument("--threshold", type=int, required=True)
        each.add_argument("--chunksize", type=int, required=True)
        each.add_argument("--concurrency", type=int, required=True)
    floor_parser = sub.add_parser("floor")
    floor_parser.add_argument("--path", required=True)
    floor_parser.add_argument("--size", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "ours":
        result = asyncio.run(ours(args))
    elif args.command == "boto3":
        result = boto3_transfer(args)
    else:
        result = floor(args)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
