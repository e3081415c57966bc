"""``demo`` and ``serve-local``: the library against a fake AWS on this machine.

Both need the optional moto extra, so it is imported only when one of them
runs; the other commands start without it.
"""

from __future__ import annotations

import errno
import shlex
import signal
import sys
import threading
from types import FrameType

import click

from .runtime import ExitCode, fail


@click.command("demo")
@click.option(
    "--endpoint-url",
    "demo_endpoint_url",
    help="Run against this S3/DynamoDB endpoint instead of an embedded moto server.",
)
@click.option(
    "--aws",
    "use_aws",
    is_flag=True,
    help="Run against AWS itself with the ambient credentials (creates --aws-bucket).",
)
@click.option(
    "--aws-bucket",
    default="versioned-async-demo",
    show_default=True,
    help="With --aws: the bucket (and table) to create; bucket names are global.",
)
@click.option("--aws-region", default="us-east-1", show_default=True, help="With --aws.")
def demo(demo_endpoint_url: str | None, use_aws: bool, aws_bucket: str, aws_region: str) -> None:
    """Walk through the artifact lifecycle on an embedded moto server."""
    from ..demo import main as run_demo  # noqa: PLC0415 - imports moto only when asked
    from ..testing import require_moto  # noqa: PLC0415

    if demo_endpoint_url is None and not use_aws:
        try:
            require_moto()
        except ImportError as err:
            fail(
                f"{err}; or run the demo elsewhere: --endpoint-url URL (any S3 and DynamoDB "
                "endpoint), or --aws (your AWS account)",
                ExitCode.ERROR,
            )
    run_demo(
        demo_endpoint_url,
        aws=use_aws,
        aws_region=aws_region,
        bucket=aws_bucket,
        table=aws_bucket,
    )


@click.command("serve-local")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port on 127.0.0.1; 0 picks a free one.",
)
def serve_local(port: int) -> None:
    """Run a moto server (fake S3 + DynamoDB) on 127.0.0.1 until Ctrl-C."""
    from ..testing import MotoServer, fake_aws_environment  # noqa: PLC0415 - optional moto

    try:
        server = MotoServer(host="127.0.0.1", port=port)
    except ImportError as err:
        fail(str(err), ExitCode.ERROR)
    try:
        endpoint = server.start()
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise
        fail(
            f"port {port} on 127.0.0.1 is in use by another program: stop it, or pick "
            "another port with --port (--port 0 picks a free one)",
            ExitCode.ERROR,
        )
    stop = threading.Event()

    def on_terminate(signum: int, frame: FrameType | None) -> None:
        stop.set()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_terminate) if in_main_thread else None
    try:
        click.echo(f"moto server listening at {endpoint} (Ctrl-C stops it)")
        click.echo("Point versioned-async (or any AWS SDK) at it:")
        environment = {"AWS_ENDPOINT_URL": endpoint, **fake_aws_environment()}
        for variable, value in environment.items():
            click.echo(f"export {variable}={shlex.quote(value)}")
        click.echo("then: versioned-async --bucket my-artifacts bootstrap")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        server.stop()
    click.echo("moto server stopped", err=True)
