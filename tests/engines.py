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

dynalite has no TransactWriteItems (``UnknownOperationException``). The proxy
answers it itself (:class:`_Transactions`): under an exclusive gate that holds
back every other DynamoDB request, it checks each condition against dynalite
with a write that changes nothing, then applies the actions one by one and
restores the items' earlier images if one fails. So the condition and
expression syntax is still checked by dynalite, and other clients see all of a
transaction or none of it. What it does not give: atomicity if dynalite itself
dies midway, idempotency by ``ClientRequestToken``, and the 4 MB / 25-action
(now 100) size checks beyond the action count.

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
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
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


async def _read_body(head: _Head, reader: asyncio.StreamReader) -> bytes:
    """A whole (small) message body, in either framing."""
    if "chunked" in head.tokens("transfer-encoding"):
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return b"".join(chunks)
            chunks.append((await reader.readexactly(size + 2))[:-2])
    if (length := head.get("content-length")) is not None:
        return await reader.readexactly(int(length))
    return await reader.read()


async def _copy_body(
    head: _Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, until_eof: bool
) -> None:
    if "chunked" in head.tokens("transfer-encoding"):
        await _copy_chunked(reader, writer)
    elif (length := head.get("content-length")) is not None:
        await _copy_exact(reader, writer, int(length))
    elif until_eof:
        await _copy_until_eof(reader, writer)


# -- TransactWriteItems, emulated ---------------------------------------------------

_JSON_TYPE = "application/x-amz-json-1.0"
_DYNAMODB_ERROR = "com.amazonaws.dynamodb.v20120810#"
_MAX_TRANSACT_ITEMS = 100
_ACTIONS = ("ConditionCheck", "Put", "Delete", "Update")
_PLACEHOLDER = re.compile(r"[#:][A-Za-z0-9_]+")


class _Gate:
    """Many shared holders or one exclusive one; a waiting exclusive holder goes first.

    Releases are synchronous, so a holder cancelled in its ``finally`` cannot
    leave the gate closed for good.
    """

    def __init__(self) -> None:
        self._shared = 0
        self._writers = asyncio.Lock()
        self._no_writer = asyncio.Event()
        self._no_writer.set()
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        while not self._no_writer.is_set():
            await self._no_writer.wait()
        self._shared += 1  # no await since the check: still true
        self._idle.clear()
        try:
            yield
        finally:
            self._shared -= 1
            if self._shared == 0:
                self._idle.set()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._writers:
            self._no_writer.clear()
            try:
                await self._idle.wait()
                yield
            finally:
                self._no_writer.set()


class _DynamoDBError(Exception):
    """An error answer to relay to the client as it is."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message") or body.get("Message") or body.get("__type"))
        self.status = status
        self.body = body

    @property
    def code(self) -> str:
        return str(self.body.get("__type", "")).rsplit("#", 1)[-1]


def _validation_error(message: str) -> _DynamoDBError:
    return _DynamoDBError(
        400, {"__type": _DYNAMODB_ERROR + "ValidationException", "message": message}
    )


def _used_placeholders(
    action: dict[str, Any], expression: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The names and values ``expression`` uses (dynalite refuses unused ones)."""
    used = set(_PLACEHOLDER.findall(expression))
    names = {k: v for k, v in action.get("ExpressionAttributeNames", {}).items() if k in used}
    values = {k: v for k, v in action.get("ExpressionAttributeValues", {}).items() if k in used}
    return names, values


class _Transactions:
    """TransactWriteItems on top of dynalite's single-item calls (see the module docstring)."""

    def __init__(self, dynamodb: tuple[str, int]) -> None:
        self.dynamodb = dynamodb
        self.gate = _Gate()
        self._key_names: dict[str, list[str]] = {}

    async def _call(
        self, headers: list[tuple[str, str]], operation: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """One request to dynalite with the client's signed headers (their form is checked)."""
        body = json.dumps(payload).encode()
        lines = ["POST / HTTP/1.1", f"X-Amz-Target: DynamoDB_20120810.{operation}"]
        for name, value in headers:
            if name not in (
                "x-amz-target",
                "content-length",
                "transfer-encoding",
                "connection",
                "expect",
            ):
                lines.append(f"{name}: {value}")
        lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        reader, writer = await asyncio.open_connection(*self.dynamodb, limit=_HEAD_LIMIT)
        try:
            writer.write("\r\n".join(lines).encode("latin-1") + body)
            await writer.drain()
            head = await _read_head(reader)
            if head is None:
                raise ConnectionError(f"dynalite closed without answering {operation}")
            raw = await _read_body(head, reader)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        status = int(head.start.split(" ", 2)[1])
        answer: dict[str, Any] = json.loads(raw) if raw else {}
        if status != 200:
            raise _DynamoDBError(status, answer)
        return answer

    async def _key_of(
        self, headers: list[tuple[str, str]], table: str, item: dict[str, Any]
    ) -> dict[str, Any]:
        if table not in self._key_names:
            described = await self._call(headers, "DescribeTable", {"TableName": table})
            self._key_names[table] = [k["AttributeName"] for k in described["Table"]["KeySchema"]]
        try:
            return {name: item[name] for name in self._key_names[table]}
        except KeyError as missing:
            raise _validation_error(
                "One or more parameter values were invalid: "
                f"Missing the key {missing.args[0]} in the item"
            ) from None

    def forget_tables(self) -> None:
        self._key_names.clear()

    async def write(
        self, headers: list[tuple[str, str]], request: dict[str, Any]
    ) -> dict[str, Any]:
        """Apply one TransactWriteItems request; raises :class:`_DynamoDBError` to answer with."""
        entries = request.get("TransactItems")
        if not isinstance(entries, list) or not 1 <= len(entries) <= _MAX_TRANSACT_ITEMS:
            raise _validation_error(
                "1 validation error detected: Value at 'transactItems' failed to satisfy "
                f"constraint: Member must have length between 1 and {_MAX_TRANSACT_ITEMS}"
            )
        actions: list[tuple[str, dict[str, Any]]] = []
        for entry in entries:
            kinds = [k for k in _ACTIONS if k in entry] if isinstance(entry, dict) else []
            if len(kinds) != 1 or len(entry) != 1:
                raise _validation_error(
                    "TransactItems can only contain one of Check, Put, Update or Delete"
                )
            action = entry[kinds[0]]
            if not isinstance(action, dict) or not isinstance(action.get("TableName"), str):
                raise _validation_error("Each transaction action needs a TableName")
            actions.append((kinds[0], action))
        keys: list[dict[str, Any]] = []
        seen: set[str] = set()
        for kind, action in actions:
            key = (
                await self._key_of(headers, action["TableName"], action["Item"])
                if kind == "Put"
                else action.get("Key")
            )
            if not isinstance(key, dict):
                raise _validation_error(f"{kind} needs a Key")
            identity = json.dumps([action["TableName"], key], sort_keys=True)
            if identity in seen:
                raise _validation_error(
                    "Transaction request cannot include multiple operations on one item"
                )
            seen.add(identity)
            keys.append(key)
        async with self.gate.exclusive():
            before = [
                (
                    await self._call(
                        headers,
                        "GetItem",
                        {"TableName": action["TableName"], "Key": key, "ConsistentRead": True},
                    )
                ).get("Item")
                for (_, action), key in zip(actions, keys, strict=True)
            ]
            reasons = [
                await self._check(headers, kind, action, key, image)
                for (kind, action), key, image in zip(actions, keys, before, strict=True)
            ]
            if any(r["Code"] != "None" for r in reasons):
                codes = ", ".join(r["Code"] for r in reasons)
                raise _DynamoDBError(
                    400,
                    {
                        "__type": _DYNAMODB_ERROR + "TransactionCanceledException",
                        "message": "Transaction cancelled, please refer cancellation reasons "
                        f"for specific reasons [{codes}]",
                        "CancellationReasons": reasons,
                    },
                )
            done: list[int] = []
            try:
                for i, (kind, action) in enumerate(actions):
                    if kind == "ConditionCheck":
                        continue
                    payload = {
                        k: v
                        for k, v in action.items()
                        if k != "ReturnValuesOnConditionCheckFailure"
                    }
                    await self._call(
                        headers,
                        {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}[kind],
                        payload,
                    )
                    done.append(i)
            except BaseException:
                for i in reversed(done):
                    await self._restore(headers, actions[i][1]["TableName"], keys[i], before[i])
                raise
        return {}

    async def _check(
        self,
        headers: list[tuple[str, str]],
        kind: str,
        action: dict[str, Any],
        key: dict[str, Any],
        image: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """This action's cancellation reason, tested with a write that leaves the item as it was."""
        expression = action.get("ConditionExpression")
        if not expression:
            if kind == "ConditionCheck":
                raise _validation_error("ConditionCheck needs a ConditionExpression")
            return {"Code": "None"}
        names, values = _used_placeholders(action, expression)
        probe: dict[str, Any] = {
            "TableName": action["TableName"],
            "Item": image if image is not None else key,
            "ConditionExpression": expression,
        }
        if names:
            probe["ExpressionAttributeNames"] = names
        if values:
            probe["ExpressionAttributeValues"] = values
        try:
            await self._call(headers, "PutItem", probe)
        except _DynamoDBError as err:
            if err.code != "ConditionalCheckFailedException":
                raise
            reason: dict[str, Any] = {
                "Code": "ConditionalCheckFailed",
                "Message": "The conditional request failed",
            }
            if image is not None and action.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
                reason["Item"] = image
            return reason
        if image is None:
            await self._call(headers, "DeleteItem", {"TableName": action["TableName"], "Key": key})
        return {"Code": "None"}

    async def _restore(
        self,
        headers: list[tuple[str, str]],
        table: str,
        key: dict[str, Any],
        image: dict[str, Any] | None,
    ) -> None:
        if image is None:
            await self._call(headers, "DeleteItem", {"TableName": table, "Key": key})
        else:
            await self._call(headers, "PutItem", {"TableName": table, "Item": image})


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
        #: TransactWriteItems, which dynalite lacks, answered here
        self.transactions = _Transactions(dynamodb)

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
        if service == "s3":
            return await self._forward(request, reader, writer, service, method)
        if target == "DynamoDB_20120810.TransactWriteItems":
            return await self._transact(request, reader, writer)
        if target == "DynamoDB_20120810.DeleteTable":
            self.transactions.forget_tables()
        async with self.transactions.gate.shared():
            return await self._forward(request, reader, writer, service, method)

    async def _transact(
        self, request: _Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer a TransactWriteItems request with :class:`_Transactions`."""
        raw = await _read_body(request, reader)
        status, answer = 200, {}
        try:
            answer = await self.transactions.write(request.headers, json.loads(raw or b"{}"))
        except _DynamoDBError as err:
            status, answer = err.status, err.body
        except (ValueError, TypeError) as err:
            status, answer = 400, _validation_error(f"malformed TransactWriteItems: {err}").body
        body = json.dumps(answer).encode()
        reason = "OK" if status == 200 else "Bad Request" if status == 400 else "Error"
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {_JSON_TYPE}\r\n"
            f"x-amzn-RequestId: {uuid.uuid4()}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        return request.keep_alive()

    async def _forward(
        self,
        request: _Head,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        service: str,
        method: str,
    ) -> bool:
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

            def abandon(done: asyncio.Future[None]) -> None:
                # the client went away inside its request body: the emulator would wait
                # for the rest forever (holding the DynamoDB gate), so hang up on it too
                if not done.cancelled() and done.exception() is not None:
                    up_writer.close()

            pump.add_done_callback(abandon)
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
