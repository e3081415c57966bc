"""``python -m versioned_async demo``: run the quick start on an embedded moto server."""

from __future__ import annotations

import argparse
import sys

from .demo import main as run_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m versioned_async",
        description="versioned_async: versioned binary artifacts in S3 + DynamoDB.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="walk through the artifact lifecycle on an embedded moto server"
    )
    demo.add_argument(
        "--endpoint-url",
        help="run against this S3/DynamoDB endpoint instead of an embedded moto server",
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        run_demo(args.endpoint_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
