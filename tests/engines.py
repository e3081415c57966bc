"""A second, independent AWS engine for the integration suite: dynalite + s3rver.

``VERSIONED_ASYNC_TEST_ENGINE=node`` (see tests/conftest.py) runs the suite
against two Node emulators instead of moto:

* `dynalite <https://github.com/architect/dynalite>`_ for DynamoDB (in memory,
  tables ACTIVE/deleted at once), and
* `s3rver <https://github.com/jamhall/s3rver>`_ for S3 (files in a temporary
  directory, path-style only).

Both are pinned in tests/engines/package.json and installed with ``npm ci``
into tests/engines/node_modules on first use. Each listens on its own free
port on 127.0.0.1; a small dispatching reverse proxy in front of them gives the
library the single ``endpoint_url`` it expects: requests carrying an
``X-Amz-Target: DynamoDB_...`` header go to dynalite, every other one to s3rver.

    with NodeEngines() as engines:
        repo = Repository("us-east-1", "bucket", endpoint_url=engines.endpoint_url)
        ...
        engines.reset()  # every table and bucket gone
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = ["DispatchingProxy", "NodeEngines"]

ENGINES_DIR = Path(__file__).resolve().parent / "engines"

#: seconds to wait for npm, the emulators and the proxy to come up
START_TIMEOUT = 120.0

_HEAD_LIMIT = 1 << 20  # a request or response head larger than this is refused
_COPY_SIZE = 1 << 16


# -- the dispatching proxy -------------------------------------------------------


class _Head:
    """The start line and headers of an HTTP/1.x message, kept as sent."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        lines = raw.decode("latin-1").split("\r\n")
        self.start = lines[0]
        self.headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            self.headers.append((name.strip().lower(), value.strip()))

    def get(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def tokens(self, name: str) -> set[str]:
        return {
            t.strip().lower()
            for key, value in self.headers
            if key == name
            for t in value.split(",")
        }

    @property
    def version(self) -> str:
        return self.start.split(" ", 1)[0] if self.is_response else self.start.rsplit(" ", 1)[-1]

    @property
    def is_response(self) -> bool:
        return self.start.startswith("HTTP/")

    def keep_alive(self) -> bool:
        conn = self.tokens("connection")
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


async def _read_head(reader: asyncio.StreamReader) -> _Head | None:
    """The next message head, or ``None`` at a clean EOF before any byte."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as err:
        if not err.partial:
            return None
        raise
    return _Head(raw)


async def _copy_exact(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
    while n > 0:
        chunk = await reader.read(min(n, _COPY_SIZE))
        if not chunk:
            raise ConnectionError("connection closed inside a message body")
        writer.write(chunk)
        await writer.drain()
        n -= len(chunk)


async def _copy_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        writer.write(size_line)
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while True:  # trailers, then the empty line
                line = await reader.readuntil(b"\r\n")
                writer.write(line)
                if line == b"\r\n":
                    break
            await writer.drain()
            return
        await _copy_exact(reader, writer, size + 2)  # the data and its CRLF


async def _copy_until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(_COPY_SIZE):
        writer.write(chunk)
        await writer.drain()


async def _copy_body(
    head: _Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, until_eof: bool
) -> None:
    if "chunked" in head.tokens("transfer-encoding"):
        await _copy_chunked(reader, writer)
    elif (length := head.get("content-length")) is not None:
        await _copy_exact(reader, writer, int(length))
    elif until_eof:
        await _copy_until_eof(reader, writer)


class DispatchingProxy:
    """An HTTP/1.1 reverse proxy on 127.0.0.1 that routes by the ``X-Amz-Target`` header.

    ``DynamoDB_*`` targets go to ``dynamodb``, everything else to ``s3``, both
    ``(host, port)``. Bytes pass through unchanged (signatures stay valid);
    bodies stream in either framing (Content-Length or chunked), 1xx interim
    responses (100-continue) are relayed, and client connections are kept
    alive. Each request gets a fresh upstream connection, so an upstream's idle
    timeout never meets a reused socket. Runs its own event loop in a daemon
    thread, so synchronous code (a session fixture) can start and stop it.
    """

    def __init__(
        self, dynamodb: tuple[str, int], s3: tuple[str, int], host: str = "127.0.0.1"
    ) -> None:
        self.dynamodb = dynamodb
        self.s3 = s3
        self.host = host
        self.port = 0
        self.requests = {"dynamodb": 0, "s3": 0}
        self.errors: list[BaseException] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, self.host, 0, limit=_HEAD_LIMIT)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as err:  # pragma: no cover - a failed bind
                failure.append(err)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="dispatching-proxy", daemon=True)
        self._thread.start()
        started.wait(START_TIMEOUT)
        if failure:
            raise failure[0]
        return self.endpoint_url

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        thread.join(10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while await self._one_exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a peer went away mid-message: nothing more to do on this connection
        except asyncio.CancelledError:
            pass
        except Exception as err:
            self.errors.append(err)
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one_exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Relay one request and its response; ``True`` to keep the connection."""
        request = await _read_head(reader)
        if request is None:
            return False
        return await self._relay(request, reader, writer)

    async def _relay(
        self, request: _Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Send ``request`` (its body still in ``reader``) to its emulator, relay the answer."""
        method = request.start.split(" ", 1)[0].upper()
        target = request.get("x-amz-target") or ""
        service = "dynamodb" if target.startswith("DynamoDB_") else "s3"
        self.requests[service] += 1
        host, port = self.dynamodb if service == "dynamodb" else self.s3
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port, limit=_HEAD_LIMIT)
        except OSError as err:
            body = f"{service} emulator unreachable: {err}".encode()
            writer.write(
                b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n"
                b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            return False
        try:
            up_writer.write(request.raw)
            await up_writer.drain()
            pump = asyncio.ensure_future(_copy_body(request, reader, up_writer, until_eof=False))
            try:
                while True:
                    response = await _read_head(up_reader)
                    if response is None:
                        raise ConnectionError(f"{service} emulator closed without a response")
                    writer.write(response.raw)
                    await writer.drain()
                    status = int(response.start.split(" ", 2)[1])
                    if 100 <= status < 200 and status != 101:
                        continue  # 100 Continue and friends: the final response follows
                    break
                bodiless = method == "HEAD" or status in (204, 304)
                if not bodiless:
                    await _copy_body(response, up_reader, writer, until_eof=True)
                framed = (
                    bodiless
                    or "chunked" in response.tokens("transfer-encoding")
                    or response.get("content-length") is not None
                )
                # a request body the upstream did not read leaves the client stream unsynced
                request_done = pump.done() and not pump.cancelled() and pump.exception() is None
                if not request_done:
                    with contextlib.suppress(asyncio.TimeoutError, Exception):
                        await asyncio.wait_for(asyncio.shield(pump), 0.05)
                    request_done = pump.done() and not pump.cancelled() and pump.exception() is None
                return framed and request_done and request.keep_alive() and response.keep_alive()
            finally:
                if not pump.done():
                    pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()

    def __enter__(self) -> DispatchingProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# -- the emulators -----------------------------------------------------------------


def ensure_node_modules(directory: Path = ENGINES_DIR) -> None:
    """``npm ci`` in tests/engines unless both emulators are installed there."""
    modules = directory / "node_modules"
    if (modules / "dynalite" / "package.json").is_file() and (
        modules / "s3rver" / "package.json"
    ).is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("the node engine needs node and npm on PATH (node >= 20)")
    lock = directory / "package-lock.json"
    command = [npm, "ci" if lock.is_file() else "install", "--no-audit", "--no-fund"]
    done = subprocess.run(
        command, cwd=directory, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed in {directory} ({done.returncode}):\n"
            f"{done.stdout}\n{done.stderr}"
        )


class _NodeProcess:
    """One emulator started by tests/engines/serve.js; knows its port once it listens."""

    def __init__(self, *args: str, node_options: tuple[str, ...] = ()) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("the node engine needs node on PATH (node >= 20)")
        self.name = args[0]
        #: the emulator's stdout (after its ready line) and stderr
        self._log: IO[bytes] = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [node, *node_options, str(ENGINES_DIR / "serve.js"), *args],
            cwd=ENGINES_DIR,
            stdin=subprocess.PIPE,  # closing it tells serve.js to exit
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self.port = 0

    def wait_ready(self, deadline: float) -> int:
        assert self.proc.stdout is not None
        ready = threading.Event()
        line: list[bytes] = []

        def read() -> None:
            assert self.proc.stdout is not None
            line.append(self.proc.stdout.readline())
            ready.set()
            # keep draining: a full pipe would block the emulator (s3rver logs on stdout)
            for more in self.proc.stdout:
                with contextlib.suppress(ValueError):  # the log file closed at stop()
                    self._log.write(more)

        threading.Thread(target=read, daemon=True).start()
        ready.wait(max(0.0, deadline - time.monotonic()))
        if not line or not line[0]:
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {self.log_text()}")
        self.port = int(json.loads(line[0])["port"])
        return self.port

    def log_text(self, limit: int = 4000) -> str:
        """The end of what the emulator printed (everything with ENGINES_VERBOSE=1)."""
        with contextlib.suppress(Exception):
            fd = self._log.fileno()
            size = os.fstat(fd).st_size
            start = 0 if limit <= 0 else max(0, size - limit)
            # pread: the emulator writes through the same file offset, which must not move
            return os.pread(fd, size - start, start).decode(errors="replace")
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()
        self._log.close()


def _wait_answers(url: str, headers: dict[str, str], deadline: float) -> None:
    """Poll ``url`` until it answers any HTTP response at all."""
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    while True:
        request = urllib.request.Request(url, data=b"{}", headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # an error response is an answer
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class NodeEngines:
    """dynalite and s3rver on 127.0.0.1 behind one :class:`DispatchingProxy`."""

    def __init__(self, credentials: tuple[str, str] | None = None, region: str = "us-east-1"):
        #: registered with s3rver, so V2 (presigned) signatures with it verify; reset()'s
        #: clients sign with it too (V4 requests with any other key are accepted as well)
        self.credentials = credentials or (
            os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        )
        self.region = region
        self.endpoint_url = ""
        self.proxy: DispatchingProxy | None = None
        self._dynalite: _NodeProcess | None = None
        self._s3rver: _NodeProcess | None = None
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._clients: tuple[Any, Any] | None = None

    def start(self) -> str:
        ensure_node_modules()
        deadline = time.monotonic() + START_TIMEOUT
        self._directory = tempfile.TemporaryDirectory(prefix="s3rver-")
        try:
            self._dynalite = _NodeProcess("dynalite")
            self._s3rver = _NodeProcess(
                "s3rver",
                self._directory.name,
                ":".join(self.credentials),
                # s3rver encrypts ListObjectsV2 continuation tokens with DES, which
                # OpenSSL 3 (node >= 17) only has in its legacy provider
                node_options=("--openssl-legacy-provider",),
            )
            dynamodb_port = self._dynalite.wait_ready(deadline)
            s3_port = self._s3rver.wait_ready(deadline)
            self.proxy = DispatchingProxy(("127.0.0.1", dynamodb_port), ("127.0.0.1", s3_port))
            self.endpoint_url = self.proxy.start()
            # both answer through the proxy
            _wait_answers(
                self.endpoint_url,
                {"X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "x"},
                deadline,
            )
            _wait_answers(f"{self.endpoint_url}/", {}, deadline)
        except BaseException:
            self.stop()
            raise
        return self.endpoint_url

    def stop(self) -> None:
        if self._clients is not None:
            for client in self._clients:
                with contextlib.suppress(Exception):
                    client.close()
            self._clients = None
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        for proc in (self._dynalite, self._s3rver):
            if proc is not None:
                proc.stop()
        self._dynalite = self._s3rver = None
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    def clients(self) -> tuple[Any, Any]:
        """Synchronous botocore (DynamoDB, S3) clients on the engines, made once."""
        if self._clients is None:
            import botocore.config  # noqa: PLC0415
            import botocore.session  # noqa: PLC0415

            session = botocore.session.get_session()
            config = botocore.config.Config(
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "total_max_attempts": 3},
                connect_timeout=5,
                read_timeout=30,
            )
            make = session.create_client
            self._clients = (
                make(
                    "dynamodb",
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    aws_access_key_id=self.credentials[0],
                    aws_secret_access_key=self.credentials[1],
                    config=config,
                ),
                make(
                    "s3",
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    aws_access_key_id=self.credentials[0],
                    aws_secret_access_key=self.credentials[1],
                    config=config,
                ),
            )
        return self._clients

    def reset(self) -> None:
        """Delete every table and every bucket (with its objects), through the APIs."""
        dynamodb, s3 = self.clients()
        tables = [
            name
            for page in dynamodb.get_paginator("list_tables").paginate()
            for name in page.get("TableNames", ())
        ]
        for name in tables:
            with contextlib.suppress(dynamodb.exceptions.ResourceNotFoundException):
                dynamodb.delete_table(TableName=name)
        for bucket in s3.list_buckets().get("Buckets", ()):
            name = bucket["Name"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", ())]
                if keys:
                    s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
            s3.delete_bucket(Bucket=name)
        # dynalite drops a DELETING table on its next tick (deleteTableMs=0): wait for that
        deadline = time.monotonic() + 10
        while tables and dynamodb.list_tables().get("TableNames"):
            if time.monotonic() > deadline:
                raise RuntimeError("dynalite still lists tables 10 s after deleting them")
            time.sleep(0.002)

    def __enter__(self) -> NodeEngines:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
