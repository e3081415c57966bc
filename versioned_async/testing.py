"""Testing helpers: the retry pace for test sessions, and an embedded moto server.

:func:`set_testing` takes botocore's and the library's backoff out of the
clients of every repository opened afterwards, and shortens their timeouts, while
keeping every retry
(call it once, e.g. in a ``conftest.py``)::

    from versioned_async.testing import set_testing

    set_testing(True)

:class:`MotoServer` runs moto on loopback; it needs the ``local`` extra
(``pip install 'versioned_async[local]'``)::

    with MotoServer() as server:
        async with Repository("us-east-1", "bucket", endpoint_url=server.endpoint_url) as repo:
            ...

moto's in-process ``mock_aws`` cannot intercept aiobotocore's aiohttp traffic,
so a real HTTP server on 127.0.0.1 is the way to test against moto.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import urllib.request
from types import TracebackType
from typing import Any

from ._pacing import is_testing, set_testing

__all__ = ["MotoServer", "fake_aws_environment", "is_testing", "require_moto", "set_testing"]

#: what credentials/config the SDK needs to talk to moto and nothing else
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def fake_aws_environment() -> dict[str, str]:
    """Environment variables that keep a real ~/.aws and real credentials out."""
    return dict(FAKE_AWS_ENV)


_DYNAMODB_LOCK = threading.RLock()


def _serialize_dynamodb() -> None:
    """Run moto's DynamoDB requests one at a time, as DynamoDB's own are atomic.

    moto applies TransactWriteItems by deep-copying the tables and, when the
    transaction is cancelled, putting the copy back, with no lock: a write
    that lands meanwhile from another server thread is silently undone, and
    the copy itself can fail with "dictionary changed size during iteration"
    (a 500). One lock around each DynamoDB request (they take microseconds to
    milliseconds) makes every request atomic, so concurrency tests see
    DynamoDB's behaviour rather than moto's race. S3 is left concurrent.
    """
    from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415

    if getattr(DynamoHandler.call_action, "_versioned_async_serialized", False):
        return
    unlocked = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _DYNAMODB_LOCK:
            return unlocked(self)

    call_action._versioned_async_serialized = True  # type: ignore[attr-defined]
    setattr(DynamoHandler, "call_action", call_action)  # noqa: B010 - a method, on purpose


#: how long the server thread may take to listen before start() gives up on it
_START_TIMEOUT_SECONDS = 30.0


def _refuse_a_port_in_use(host: str, port: int) -> None:
    """Raise ``OSError(EADDRINUSE)`` if another program listens on ``host:port``.

    Binds the way werkzeug's server does (``SO_REUSEADDR``), so a port that is
    merely in TIME_WAIT after a previous server is not refused.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            raise OSError(
                errno.EADDRINUSE,
                f"port {port} on {host} is in use by another program: stop it, "
                "or give MotoServer another port (0 picks a free one)",
            ) from err


def require_moto() -> None:
    """Raise ``ImportError`` saying how to install moto when it cannot be imported.

    The embedded server needs the optional ``local`` extra; callers check first
    so that they can say so before they start anything.
    """
    try:
        import moto.server  # noqa: F401, PLC0415 - optional dependency
    except ImportError as err:
        raise ImportError(
            "the embedded moto server needs moto: pip install 'versioned_async[local]'"
        ) from err


class MotoServer:
    """A moto server in a thread, listening on 127.0.0.1 on a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        require_moto()
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - optional dependency

        self._server: Any = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._host = host
        self._port = port
        self.endpoint_url = ""

    def start(self) -> str:
        """Start the server; returns its endpoint URL.

        A port another program listens on raises ``OSError`` (``EADDRINUSE``) at
        once: moto's server thread would print werkzeug's complaint and die,
        leaving this call waiting for it forever.
        """
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        _serialize_dynamodb()
        if self._port:
            _refuse_a_port_in_use(self._host, self._port)
        starting = threading.Thread(target=self._server.start, daemon=True)
        starting.start()
        starting.join(_START_TIMEOUT_SECONDS)
        if starting.is_alive():  # the port was taken between the check and the bind
            raise OSError(
                errno.EADDRINUSE,
                f"the moto server did not start on {self._host}:{self._port} within "
                f"{_START_TIMEOUT_SECONDS:g} s (is the port in use?)",
            )
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self.endpoint_url

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Wipe every bucket and table (about 12 ms)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
