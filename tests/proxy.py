"""A counting HTTP/1.1 proxy on loopback, for tests that must see (or break) the wire.

Put it between a client and the moto server::

    async with CountingProxy(endpoint_url) as proxy:
        async with Repository(..., endpoint_url=proxy.endpoint_url) as repo:
            await repo.get_content("app")
        assert proxy.counts() == {"GetItem": 1, "GetObject": 1}

It runs in the test's event loop. Every connection a client opens gets its own
upstream connection, and requests are parsed one after another on it
(keep-alive), so each request is recorded even when a pool reuses connections.
Bodies are forwarded in chunks as they arrive (Content-Length, chunked, or
until close), never read whole. Outages: :meth:`CountingProxy.go_down` drops
every connection and keeps dropping new ones until :meth:`CountingProxy.come_back`;
:meth:`CountingProxy.fail_next` answers requests with an AWS-shaped error
without forwarding them; :attr:`CountingProxy.delay` adds latency.

Scheduled faults, each for the next ``n`` requests (of one ``op``, after
letting ``skip`` of them through), several armed at once:

* :meth:`CountingProxy.inject_errors` answers with an AWS-shaped error (like
  ``fail_next``, but additive);
* :meth:`CountingProxy.stall_next` forwards the request and holds its response
  until the client gives up (its read timeout), then drops the connection;
* :meth:`CountingProxy.cut_next` forwards the response head and the first
  ``after_bytes`` of the body, then resets the connection;
* :meth:`CountingProxy.drop_next` drops the connection without an answer,
  before forwarding the request or after the upstream answered it;
* :meth:`CountingProxy.go_down_at` goes down (as :meth:`go_down`) when the
  ``k``-th request arrives, before forwarding it or after the upstream answered it.

:attr:`CountingProxy.pending_faults` lists those that have not fired yet, so a
test can prove its fault really happened.

A record is appended as soon as a request's head has been read, and its
``status`` is set before the response head is forwarded: when a client call
returns, the proxy has already recorded everything that call sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import socket
import struct
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

__all__ = ["CountingProxy", "RequestRecord"]

#: how much of a body is read and written at once
CHUNK_SIZE = 64 * 1024
#: the longest request or response head (and chunk-size line) accepted
_HEAD_LIMIT = 256 * 1024
_LOOPBACK = ("127.0.0.1", "localhost")

_S3_ERROR_CODES = {403: "AccessDenied", 500: "InternalError", 503: "SlowDown"}
_DYNAMODB_ERROR_CODES = {
    400: "ThrottlingException",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


class _Sink(Protocol):
    """Where a body goes: an ``asyncio.StreamWriter``, or :class:`_Discard`."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


class ProxyProtocolError(Exception):
    """Malformed HTTP on either side of the proxy: that connection is dropped."""


@dataclass
class RequestRecord:
    """One request the proxy saw.

    ``op`` is the DynamoDB operation (``"GetItem"``) or the S3 operation
    classified from method, path, query and headers (``"GetObject"``,
    ``"ListObjectsV2"`` ...); an S3 request it cannot name is
    ``"<METHOD> <path>"``. ``service`` is ``"s3"``, ``"dynamodb"`` or
    ``"moto-api"``. ``status`` is ``None`` until the response head arrives
    (and stays ``None`` when the connection died first). ``injected`` marks
    the answers :meth:`CountingProxy.fail_next` made up. Body sizes count the
    bytes forwarded so far, as framed on the wire (chunk framing excluded).

    ``fault`` names the scheduled fault that hit this request (``"error"``,
    ``"stall"``, ``"cut"``, ``"drop"``, ``"down"``), and ``upstream_status``
    the status the upstream answered it with when the proxy forwarded it but
    kept the answer from the client (``status`` stays ``None`` then).
    """

    method: str
    path: str
    op: str
    service: str
    connection_id: int
    #: request headers, names lower-cased, repeated ones joined with ", "
    headers: dict[str, str]
    status: int | None = None
    injected: bool = False
    request_body_bytes: int = 0
    response_body_bytes: int = 0
    fault: str | None = None
    upstream_status: int | None = None


@dataclass
class _FailRule:
    remaining: int
    status: int
    code: str | None
    op: str | None


#: called with the request's record when a cut fires, before the connection is reset
CutHook = Callable[[RequestRecord], Awaitable[None]]


@dataclass
class _Fault:
    """A scheduled fault: acts on ``remaining`` requests (of ``op``) after ``skip`` pass."""

    kind: str  # "error", "stall", "cut", "drop", "down"
    remaining: int
    op: str | None
    skip: int = 0
    forward: bool = False
    status: int = 503
    code: str | None = None
    after_bytes: int = 0
    #: a drop in the middle of the request body: after forwarding this many of its bytes
    after_request_bytes: int | None = None
    hold: float = math.inf
    reset: bool = True
    on_cut: CutHook | None = field(default=None, repr=False)

    def describe(self) -> str:
        where = f"op={self.op}" if self.op else "any op"
        return f"{self.kind} x{self.remaining} ({where}, skip={self.skip})"


class _CutReached(Exception):
    """A cut fault forwarded as many body bytes as it allows."""


class _Cutoff:
    """A sink that passes on at most ``limit`` bytes, then stops the copy at its next drain."""

    def __init__(self, writer: asyncio.StreamWriter, limit: int) -> None:
        self.writer = writer
        self.left = limit
        self.forwarded = 0

    def write(self, data: bytes) -> None:
        part = data[: max(self.left, 0)]
        if part:
            self.writer.write(part)
            self.left -= len(part)
            self.forwarded += len(part)

    async def drain(self) -> None:
        await self.writer.drain()
        if self.left <= 0:
            raise _CutReached


class _Head:
    """A parsed request or response head: the start line split in three, headers in order."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        lines = raw.decode("latin-1")[: -len("\r\n\r\n")].split("\r\n")
        self.start_line = lines[0]
        parts = lines[0].split(" ", 2)
        if len(parts) < 2:
            raise ProxyProtocolError(f"bad start line {lines[0]!r}")
        self.start = (parts[0], parts[1], parts[2] if len(parts) > 2 else "")
        self.is_response = parts[0].upper().startswith("HTTP/")
        self.version = (self.start[0] if self.is_response else self.start[2]).upper()
        if not self.version.startswith("HTTP/1."):
            raise ProxyProtocolError(f"not HTTP/1.x: {lines[0]!r}")
        #: (lower-cased name, value, the line as received)
        self.fields: list[tuple[str, str, str]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise ProxyProtocolError(f"bad header line {line!r}")
            self.fields.append((name.lower(), value.strip(), line))

    def get(self, name: str) -> str | None:
        values = self.values(name)
        return ", ".join(values) if values else None

    def values(self, name: str) -> list[str]:
        return [v for n, v, _ in self.fields if n == name]

    def tokens(self, name: str) -> list[str]:
        """Comma-separated header tokens, lower-cased (``Connection``, ``Transfer-Encoding``)."""
        return [t.strip().lower() for v in self.values(name) for t in v.split(",") if t.strip()]

    def body_framing(self) -> tuple[str, int]:
        """``("chunked", 0)``, ``("length", n)``, ``("close", 0)`` (until EOF) or ``("none", 0)``.

        Without Transfer-Encoding and Content-Length a request has no body and a
        response runs until the connection closes. The caller knows when a
        response has no body at all (HEAD, 1xx, 204, 304).
        """
        codings = self.tokens("transfer-encoding")
        if codings:
            return ("chunked", 0) if codings[-1] == "chunked" else ("close", 0)
        lengths = {v.strip() for v in self.values("content-length")}
        if not lengths:
            return ("close", 0) if self.is_response else ("none", 0)
        if len(lengths) != 1 or not next(iter(lengths)).isdigit():
            raise ProxyProtocolError(f"bad Content-Length {sorted(lengths)}")
        return ("length", int(lengths.pop()))

    def keeps_alive(self) -> bool:
        """Whether the sender of this head means to keep its connection open afterwards."""
        connection = self.tokens("connection")
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection

    def with_connection(self, keep_alive: bool) -> bytes:
        """This head with our own hop-by-hop ``Connection`` header instead of the sender's."""
        hop = {"connection", "keep-alive", "proxy-connection"}
        hop.update(t for t in self.tokens("connection") if t not in ("close", "keep-alive"))
        hop -= {"content-length", "transfer-encoding"}
        lines = [self.start_line]
        lines += [line for name, _, line in self.fields if name not in hop]
        lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Connection:
    """A client connection and the upstream connection paired with it."""

    def __init__(self, ident: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.id = ident
        self.client_reader = reader
        self.client_writer = writer
        self.upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    def client_gone(self) -> bool:
        """Whether the client closed its side (reset or end of stream): the proxy learns
        it from the event loop at once, while it may still be pushing a response."""
        return self.client_writer.transport.is_closing() or self.client_reader.at_eof()

    async def close_upstream(self) -> None:
        if self.upstream is not None:
            writer = self.upstream[1]
            self.upstream = None
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def abort(self) -> None:
        """Drop both sides now, without flushing: the peers see a reset or EOF at once."""
        self.client_writer.transport.abort()
        if self.upstream is not None:
            self.upstream[1].transport.abort()


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The next head up to and including the blank line; ``None`` on a clean EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as err:
        if err.partial.strip(b"\r\n"):
            raise ProxyProtocolError("connection closed in the middle of a head") from err
        return None
    except asyncio.LimitOverrunError as err:
        raise ProxyProtocolError("head too large") from err
    # RFC 9112 2.2: ignore empty lines before a request line
    return head.lstrip(b"\r\n") if head.startswith(b"\r\n") else head


async def _copy_exact(
    reader: asyncio.StreamReader,
    writer: _Sink,
    size: int,
    counted: Callable[[int], None],
) -> None:
    while size > 0:
        data = await reader.read(min(size, CHUNK_SIZE))
        if not data:
            raise ProxyProtocolError(f"connection closed with {size} body bytes to go")
        size -= len(data)
        counted(len(data))
        writer.write(data)
        await writer.drain()


async def _copy_chunked(
    reader: asyncio.StreamReader,
    writer: _Sink,
    counted: Callable[[int], None],
) -> None:
    """Forward a chunked body verbatim (extensions, trailers and all), chunk by chunk."""
    try:
        while True:
            line = await reader.readuntil(b"\r\n")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError as err:
                raise ProxyProtocolError(f"bad chunk size line {line!r}") from err
            writer.write(line)
            if size == 0:
                break
            await _copy_exact(reader, writer, size, counted)
            if await reader.readexactly(2) != b"\r\n":
                raise ProxyProtocolError("chunk data not followed by CRLF")
            writer.write(b"\r\n")
            await writer.drain()
        while True:  # trailer section, up to the empty line
            line = await reader.readuntil(b"\r\n")
            writer.write(line)
            if line == b"\r\n":
                break
        await writer.drain()
    except asyncio.IncompleteReadError as err:
        raise ProxyProtocolError("connection closed inside a chunked body") from err
    except asyncio.LimitOverrunError as err:
        raise ProxyProtocolError("chunk line too long") from err


async def _copy_until_eof(
    reader: asyncio.StreamReader,
    writer: _Sink,
    counted: Callable[[int], None],
) -> None:
    while data := await reader.read(CHUNK_SIZE):
        counted(len(data))
        writer.write(data)
        await writer.drain()


async def _copy_body(
    framing: tuple[str, int],
    reader: asyncio.StreamReader,
    writer: _Sink,
    counted: Callable[[int], None],
) -> None:
    kind, size = framing
    if kind == "length":
        await _copy_exact(reader, writer, size, counted)
    elif kind == "chunked":
        await _copy_chunked(reader, writer, counted)
    elif kind == "close":
        await _copy_until_eof(reader, writer, counted)


def _split_target(target: str) -> tuple[str, str]:
    """(path, query) of an origin-form or absolute-form request target."""
    if "://" in target:
        parts = urlsplit(target)
        return parts.path or "/", parts.query
    path, _, query = target.partition("?")
    return path or "/", query


#: (method, query keys that must all be present, op), first match wins. An empty key
#: tuple matches when the query holds no key outside the operation's plain parameters.
_S3_BUCKET_OPS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("HEAD", (), "HeadBucket"),
    ("GET", ("list-type",), "ListObjectsV2"),
    ("GET", ("uploads",), "ListMultipartUploads"),
    ("GET", ("versions",), "ListObjectVersions"),
    ("GET", ("location",), "GetBucketLocation"),
    ("GET", (), "ListObjects"),
    ("POST", ("delete",), "DeleteObjects"),
    ("PUT", (), "CreateBucket"),
    ("DELETE", (), "DeleteBucket"),
)
_S3_OBJECT_OPS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("HEAD", (), "HeadObject"),
    ("GET", ("uploadId",), "ListParts"),
    ("GET", ("tagging",), "GetObjectTagging"),
    ("GET", ("acl",), "GetObjectAcl"),
    ("GET", ("attributes",), "GetObjectAttributes"),
    ("GET", (), "GetObject"),
    ("PUT", ("uploadId", "partNumber"), "UploadPart"),
    ("PUT", ("tagging",), "PutObjectTagging"),
    ("PUT", ("acl",), "PutObjectAcl"),
    ("PUT", (), "PutObject"),
    ("POST", ("uploads",), "CreateMultipartUpload"),
    ("POST", ("uploadId",), "CompleteMultipartUpload"),
    ("POST", ("restore",), "RestoreObject"),
    ("DELETE", ("uploadId",), "AbortMultipartUpload"),
    ("DELETE", ("tagging",), "DeleteObjectTagging"),
    ("DELETE", (), "DeleteObject"),
)
#: query keys that are plain parameters, not subresources naming another operation
_S3_PLAIN_PARAMS = frozenset(
    {"prefix", "delimiter", "marker", "max-keys", "encoding-type", "versionId", "partNumber"}
)


def _plain_param(key: str) -> bool:
    """A query key that names no subresource: a parameter, or presigned-URL authentication."""
    return (
        key in _S3_PLAIN_PARAMS
        or key.startswith("response-")
        or key.lower().startswith("x-amz-")
        or key in ("x-id", "AWSAccessKeyId", "Signature", "Expires")
    )


def _s3_op(method: str, path: str, query: str, head: _Head) -> str:
    """Name the S3 operation of a path-style request; ``"<METHOD> <target>"`` when unknown."""
    keys = {k for k, _ in parse_qsl(query, keep_blank_values=True)}
    plain = all(_plain_param(k) for k in keys)
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        rules: tuple[tuple[str, tuple[str, ...], str], ...] = (("GET", (), "ListBuckets"),)
    else:
        rules = _S3_OBJECT_OPS if key else _S3_BUCKET_OPS
    for rule_method, needed, op in rules:
        if rule_method == method and (all(k in keys for k in needed) if needed else plain):
            if head.get("x-amz-copy-source") is not None:  # a copy is a PUT with a source
                return {"PutObject": "CopyObject", "UploadPart": "UploadPartCopy"}.get(op, op)
            return op
    return f"{method} {path}?{query}" if query else f"{method} {path}"


def classify(method: str, target: str, head: _Head) -> tuple[str, str]:
    """(service, op) of a request."""
    path, query = _split_target(target)
    amz_target = head.get("x-amz-target")
    if amz_target:  # JSON protocol: "DynamoDB_20120810.GetItem"
        prefix, _, op = amz_target.rpartition(".")
        service = "dynamodb" if prefix.startswith("DynamoDB") else prefix.lower()
        return service, op or amz_target
    if path.startswith("/moto-api"):
        return "moto-api", f"{method} {path}"
    return "s3", _s3_op(method, path, query, head)


class CountingProxy:
    """A loopback HTTP/1.1 proxy that records every request and can fake outages.

    ``upstream`` is ``http://127.0.0.1:PORT`` (or ``localhost``). The proxy
    listens on 127.0.0.1 on a free port; :attr:`endpoint_url` is its address.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname not in _LOOPBACK or parts.port is None:
            raise ValueError(f"upstream must be http://127.0.0.1:PORT, not {upstream!r}")
        self.upstream = upstream
        self._upstream_addr = ("127.0.0.1", parts.port)
        #: every request seen since the start (or the last :meth:`reset_counts`), in order
        self.requests: list[RequestRecord] = []
        #: seconds to wait before forwarding each request
        self.delay: float = 0.0
        #: connections accepted and served (not those dropped while down)
        self.connections_accepted = 0
        #: connections accepted while down and closed at once
        self.connections_dropped = 0
        #: connections the proxy opened to the upstream
        self.upstream_connections = 0
        #: unexpected exceptions inside the proxy (bugs): a test should expect ``[]``
        self.errors: list[BaseException] = []
        #: per operation, the most requests of it in flight at once (see :meth:`peak_in_flight`)
        self.peak: Counter[str] = Counter()
        self._in_flight: dict[int, tuple[RequestRecord, _Connection]] = {}
        self._server: asyncio.Server | None = None
        self._port = 0
        self._down = False
        self._fail: _FailRule | None = None
        self._faults: list[_Fault] = []
        self._connections: dict[int, _Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_id = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> CountingProxy:
        if self._server is not None:
            raise RuntimeError("the proxy is already running")
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=_HEAD_LIMIT)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening, drop every connection and wait for the handlers to finish."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self._abort_all()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> CountingProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the proxy is not running: await proxy.start() first")
        return f"http://127.0.0.1:{self._port}"

    # -- counting ------------------------------------------------------------------------

    def count(self, op: str | None = None, *, service: str | None = None) -> int:
        """How many requests were seen (of operation ``op`` / of ``service``)."""
        return sum(
            1
            for r in self.requests
            if (op is None or r.op == op) and (service is None or r.service == service)
        )

    def counts(self) -> Counter[str]:
        """Requests per operation: ``proxy.counts() == {"GetItem": 1}`` reads well in asserts."""
        return Counter(r.op for r in self.requests)

    def peak_in_flight(self, op: str) -> int:
        """The most requests of ``op`` that were in flight at once.

        A request is in flight from its head's arrival until its response has
        been forwarded, or its client hung up: a client that closes a body it
        stopped reading no longer counts (the proxy sees the reset or the end of
        stream at once, the client's next request comes later), though the proxy
        may still be pushing the rest of it. Counted as each request arrives. The
        proxy learns of a hang-up from the event loop, an iteration or two after
        the client's close: a client that releases a slot before its next request
        (an ``asyncio.Semaphore``) is always seen right.
        """
        return self.peak[op]

    def in_flight(self, op: str) -> int:
        """How many requests of ``op`` are in flight now (see :meth:`peak_in_flight`)."""
        return sum(
            1
            for record, conn in self._in_flight.values()
            if record.op == op and not conn.client_gone()
        )

    def reset_counts(self) -> None:
        """Forget the requests and connection counts seen so far (open connections stay)."""
        self.peak = Counter()
        self.requests = []
        self.connections_accepted = 0
        self.connections_dropped = 0
        self.upstream_connections = 0

    # -- faults ----------------------------------------------------------------------------

    @property
    def is_down(self) -> bool:
        return self._down

    def go_down(self) -> None:
        """Drop every open connection, both sides; from now on accept and drop at once."""
        self._down = True
        self._abort_all()

    def come_back(self) -> None:
        """Forward again (clients reconnect: their pooled connections were dropped)."""
        self._down = False

    def fail_next(
        self, n: int = 1, status: int = 503, *, code: str | None = None, op: str | None = None
    ) -> None:
        """Answer the next ``n`` requests (of ``op``, when given) with an error, unforwarded.

        S3 gets an XML ``<Error>``, DynamoDB a JSON ``__type`` error, each with
        ``code``; by default SlowDown / ServiceUnavailable for 503, InternalError /
        InternalServerError for 500. Replaces an earlier ``fail_next``; ``n=0``
        cancels it.
        """
        if n < 0 or not 100 <= status <= 599:
            raise ValueError("n must be >= 0 and status an HTTP status")
        self._fail = _FailRule(n, status, code, op) if n else None

    # -- scheduled faults --------------------------------------------------------------------
    #
    # Each applies to the next ``n`` requests of ``op`` (any op when ``None``) after letting
    # ``skip`` of them through. Several can be armed at once: every armed fault whose op
    # matches counts the request toward its ``skip``, and the first one past its ``skip``
    # acts on it. ``fail_next`` is looked at first and does not count toward ``skip``.

    def inject_errors(
        self,
        n: int = 1,
        status: int = 503,
        *,
        code: str | None = None,
        op: str | None = None,
        skip: int = 0,
    ) -> None:
        """Answer ``n`` requests with an AWS-shaped error, unforwarded (see :meth:`fail_next`).

        Unlike ``fail_next`` it adds to the faults already armed, so one call can
        meet errors on several operations. DynamoDB 400 throttling is
        ``inject_errors(n, 400, code="ThrottlingException")`` (or
        ``"ProvisionedThroughputExceededException"``): a JSON body whose ``__type``
        is ``com.amazonaws.dynamodb.v20120810#<code>``, as DynamoDB sends it.
        """
        if not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status")
        self._arm(_Fault("error", n, op, skip, status=status, code=code))

    def stall_next(
        self, n: int = 1, *, op: str | None = None, skip: int = 0, hold: float = math.inf
    ) -> None:
        """Forward ``n`` requests, then hold back each response until the client gives up.

        The request reaches the upstream (a write is applied); the client gets
        nothing until its read timeout ends the call or retries it. When the
        client hangs up, the connection is dropped. With a finite ``hold`` a
        client still waiting after ``hold`` seconds gets the response then.
        """
        if not hold > 0:
            raise ValueError("hold must be > 0 seconds")
        self._arm(_Fault("stall", n, op, skip, forward=True, hold=hold))

    def cut_next(
        self,
        n: int = 1,
        *,
        after_bytes: int,
        op: str | None = None,
        skip: int = 0,
        hold: float = 0.2,
        reset: bool = True,
        on_cut: CutHook | None = None,
    ) -> None:
        """Forward the head and the first ``after_bytes`` body bytes of ``n`` responses, then
        drop the connection in the middle of the body.

        The bytes are flushed to the client's socket, then the proxy waits
        ``hold`` seconds (or until the client hangs up; ``math.inf``: only
        then) so the client can read what it got, awaits ``on_cut(record)``
        when given, and resets the connection (``reset=False``: closes it,
        the client sees an early EOF). ``after_bytes`` counts bytes as framed
        on the wire after the head. A body shorter than that is forwarded
        whole, and the connection closed after it.
        """
        if after_bytes < 0:
            raise ValueError("after_bytes must be >= 0")
        self._arm(
            _Fault(
                "cut",
                n,
                op,
                skip,
                forward=True,
                after_bytes=after_bytes,
                hold=hold,
                reset=reset,
                on_cut=on_cut,
            )
        )

    def drop_next(
        self,
        n: int = 1,
        *,
        op: str | None = None,
        skip: int = 0,
        forward: bool = False,
        after_request_bytes: int | None = None,
    ) -> None:
        """Drop the connection of ``n`` requests without answering them.

        ``forward=False``: the request never reaches the upstream. ``forward=True``:
        it is forwarded, the upstream's whole answer is read and thrown away,
        and then the connection is dropped: the write happened, the client
        cannot know. ``after_request_bytes``: the head and that many bytes of
        the request's body are forwarded, then both connections are reset while
        the client is still sending (a connection lost in the middle of an upload).
        """
        if after_request_bytes is not None and after_request_bytes < 0:
            raise ValueError("after_request_bytes must be >= 0")
        forward = forward or after_request_bytes is not None
        self._arm(
            _Fault("drop", n, op, skip, forward=forward, after_request_bytes=after_request_bytes)
        )

    def go_down_at(self, k: int = 1, *, op: str | None = None, forward: bool = False) -> None:
        """Go down (as :meth:`go_down`) at the ``k``-th request (of ``op``) from now on.

        ``forward=False``: before forwarding it. ``forward=True``: after the
        upstream answered it, before the client gets the answer. The proxy stays
        down until :meth:`come_back`.
        """
        if k < 1:
            raise ValueError("k counts requests from 1")
        self._arm(_Fault("down", 1, op, k - 1, forward=forward))

    def clear_faults(self) -> None:
        """Disarm every scheduled fault (``fail_next`` too)."""
        self._faults = []
        self._fail = None

    @property
    def pending_faults(self) -> list[str]:
        """The scheduled faults that have not acted on all their requests yet."""
        return [f.describe() for f in self._faults]

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 30.0, what: str = "a condition"
    ) -> None:
        """Poll ``predicate`` until it holds; ``TimeoutError`` after ``timeout`` seconds.

        The timeout is a hang guard, not a timing claim.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise TimeoutError(f"still waiting for {what} after {timeout} s")
            await asyncio.sleep(0.01)

    def _arm(self, fault: _Fault) -> None:
        if fault.remaining < 1 or fault.skip < 0:
            raise ValueError("n must be >= 1 and skip >= 0")
        self._faults.append(fault)

    def _take_fault(self, op: str) -> _Fault | None:
        """The fault that acts on this request, after counting it toward every ``skip``."""
        chosen = None
        for fault in list(self._faults):
            if fault.op is not None and fault.op != op:
                continue
            if fault.skip > 0:
                fault.skip -= 1
                continue
            if chosen is None:
                chosen = fault
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
        return chosen

    # -- serving -----------------------------------------------------------------------------

    def _abort_all(self) -> None:
        for conn in list(self._connections.values()):
            conn.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down or self._server is None:
            self.connections_dropped += 1
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._next_id += 1
        conn = _Connection(self._next_id, reader, writer)
        self._connections[conn.id] = conn
        self.connections_accepted += 1
        try:
            while not self._down:
                raw = await _read_head(reader)
                if raw is None or not await self._exchange(conn, _Head(raw)):
                    break
        except (
            ConnectionError,
            OSError,
            ProxyProtocolError,
            asyncio.IncompleteReadError,
            asyncio.CancelledError,
        ):
            pass  # a dropped or malformed connection ends this conversation
        except Exception as err:  # a bug in the proxy: keep it for the test to see
            self.errors.append(err)
        finally:
            if self.is_down:  # (a property: mypy would narrow the attribute across awaits)
                conn.abort()
            else:
                # stop() may cancel us here: end quietly, the connection is going anyway
                with contextlib.suppress(asyncio.CancelledError):
                    await self._close(conn)
            self._connections.pop(conn.id, None)
            self._tasks.discard(task)

    async def _close(self, conn: _Connection) -> None:
        writers = [conn.client_writer] + ([conn.upstream[1]] if conn.upstream else [])
        for w in writers:
            w.close()
        for w in writers:
            with contextlib.suppress(Exception):
                await w.wait_closed()

    async def _exchange(self, conn: _Connection, head: _Head) -> bool:
        """Record one request, then answer or forward it; ``True`` to keep the connection."""
        if head.is_response:
            raise ProxyProtocolError(f"a response where a request belongs: {head.start_line!r}")
        if head.body_framing()[0] == "close":
            raise ProxyProtocolError("a request body must have a Content-Length or be chunked")
        method, target, _ = head.start
        service, op = classify(method, target, head)
        path, query = _split_target(target)
        record = RequestRecord(
            method=method,
            path=f"{path}?{query}" if query else path,
            op=op,
            service=service,
            connection_id=conn.id,
            headers={name: head.get(name) or "" for name, _, _ in head.fields},
        )
        self.requests.append(record)
        self._in_flight[id(record)] = (record, conn)
        try:
            return await self._answer(conn, head, record)
        finally:
            del self._in_flight[id(record)]

    def _count_in_flight(self, op: str) -> None:
        """Raise ``op``'s peak to the requests of it now in flight."""
        self.peak[op] = max(self.peak[op], self.in_flight(op))

    async def _answer(self, conn: _Connection, head: _Head, record: RequestRecord) -> bool:
        """Answer or forward the request ``record`` describes; ``True`` to keep the connection."""
        op = record.op
        self._count_in_flight(op)
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        if self._down:
            return False
        rule = self._fail
        if rule is not None and (rule.op is None or rule.op == op):
            rule.remaining -= 1
            if rule.remaining <= 0:
                self._fail = None
            return await self._answer_injected(conn, head, record, rule)
        fault = self._take_fault(op)
        if fault is not None:
            record.fault = fault.kind
            if fault.kind == "error":
                error = _FailRule(1, fault.status, fault.code, fault.op)
                return await self._answer_injected(conn, head, record, error)
            if not fault.forward:  # drop or down, before the upstream sees anything
                if fault.kind == "down":
                    self.go_down()
                else:
                    conn.abort()
                return False
        return await self._forward(conn, head, record, fault)

    async def _answer_injected(
        self, conn: _Connection, head: _Head, record: RequestRecord, rule: _FailRule
    ) -> bool:
        """Read the request body away and answer with the error ``rule`` asks for."""
        framing = head.body_framing()
        if "100-continue" in head.tokens("expect") and framing not in (("none", 0), ("length", 0)):
            # the client waits for 100 before it sends the body: ask for it, then drop it
            conn.client_writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await conn.client_writer.drain()

        def sent(n: int) -> None:
            record.request_body_bytes += n

        await _copy_body(framing, conn.client_reader, _Discard(), sent)
        keep = head.keeps_alive()
        record.status = rule.status
        record.injected = True
        conn.client_writer.write(_error_response(head.start[0], record.service, rule, keep))
        await conn.client_writer.drain()
        return keep

    async def _upstream(
        self, conn: _Connection
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The connection's upstream connection, (re)opened when there is none or it ended."""
        if conn.upstream is not None and conn.upstream[0].at_eof():
            await conn.close_upstream()
        if conn.upstream is None:
            conn.upstream = await asyncio.open_connection(*self._upstream_addr, limit=_HEAD_LIMIT)
            self.upstream_connections += 1
        return conn.upstream

    async def _forward(
        self, conn: _Connection, head: _Head, record: RequestRecord, fault: _Fault | None = None
    ) -> bool:
        """Send the request upstream and its response back, both streamed."""
        up_reader, up_writer = await self._upstream(conn)
        up_writer.write(head.raw)
        await up_writer.drain()
        framing = head.body_framing()

        def sent(n: int) -> None:
            record.request_body_bytes += n

        cut_at = None if fault is None else fault.after_request_bytes
        sink: _Sink = up_writer if cut_at is None else _Cutoff(up_writer, cut_at)

        async def forward_request_body() -> None:
            try:
                await _copy_body(framing, conn.client_reader, sink, sent)
            except Exception:
                conn.abort()  # unblock the response side too
                raise

        # the body goes up while the response is awaited: interim 100 Continue answers, and
        # servers that answer early, both work
        body = None if framing[0] == "none" else asyncio.create_task(forward_request_body())
        try:
            return await self._forward_response(conn, head, record, up_reader, body, fault)
        finally:
            if body is not None:  # settle it, and collect its exception if it had one
                body.cancel()
                with contextlib.suppress(BaseException):
                    await body

    async def _forward_response(
        self,
        conn: _Connection,
        head: _Head,
        record: RequestRecord,
        up_reader: asyncio.StreamReader,
        body: asyncio.Task[None] | None,
        fault: _Fault | None = None,
    ) -> bool:
        """Forward interim responses and the final one; ``True`` to keep the client connection.

        ``Connection`` is hop-by-hop: the client connection is kept alive whenever
        the framing allows, even when the upstream (moto's werkzeug closes after
        every response) is not; the next request then gets a new upstream connection.
        """
        continued = False
        while True:
            raw = await _read_head(up_reader)
            if raw is None:
                raise ProxyProtocolError("upstream closed the connection before responding")
            response = _Head(raw)
            if not response.is_response or not response.start[1].isdigit():
                raise ProxyProtocolError(f"bad status line {response.start_line!r}")
            status = int(response.start[1])
            if not 100 <= status < 200 or status == 101:
                break
            if status == 100 and continued:
                # moto's werkzeug answers "Expect: 100-continue" twice (http.server's and
                # its own). A second 100 arriving after the body makes aiohttp drop its
                # read timeout, so a held response would hang the client: pass on one, as
                # S3 sends.
                continue
            continued = continued or status == 100
            conn.client_writer.write(raw)  # interim (100 Continue): pass it on
            await conn.client_writer.drain()
        if head.start[0] == "HEAD" or status in (101, 204, 304):
            framing: tuple[str, int] = ("none", 0)
        else:
            framing = response.body_framing()
        if body is not None and not body.done():  # answered before the body was all sent?
            await asyncio.wait([body], timeout=0.5)
        body_sent = body is None or (body.done() and not body.cancelled())
        if body is not None and body_sent and body.exception() is not None:
            raise ProxyProtocolError("the request body broke off") from body.exception()
        keep_client = head.keeps_alive() and body_sent and framing[0] != "close" and status != 101
        if fault is not None and fault.kind != "cut":
            record.upstream_status = status
            if body is not None:  # the client must not be sending when we listen for it
                await asyncio.wait([body])
            if fault.kind == "stall":
                if await self._client_hangs_up(conn, fault.hold):
                    conn.abort()
                    return False
            else:  # drop or down: the upstream did it, the client never hears
                await _copy_body(framing, up_reader, _Discard(), lambda n: None)
                if fault.kind == "down":
                    self.go_down()
                else:
                    conn.abort()
                return False
        record.status = status
        conn.client_writer.write(response.with_connection(keep_client))
        await conn.client_writer.drain()

        def received(n: int) -> None:
            record.response_body_bytes += n

        if fault is not None and fault.kind == "cut":
            await self._cut(conn, record, fault, framing, up_reader, body)
            return False
        await _copy_body(framing, up_reader, conn.client_writer, received)
        if not response.keeps_alive() or framing[0] == "close" or status == 101:
            await conn.close_upstream()
        return keep_client

    async def _client_hangs_up(self, conn: _Connection, seconds: float) -> bool:
        """Wait until the client closes its connection (``True``) or ``seconds`` pass."""
        try:
            data = await asyncio.wait_for(
                conn.client_reader.read(1), None if math.isinf(seconds) else seconds
            )
        except asyncio.TimeoutError:
            return False
        except (ConnectionError, OSError):
            return True
        if data:  # HTTP/1.1 clients do not pipeline: a request before our answer is a bug
            raise ProxyProtocolError("the client sent data while waiting for a response")
        return True

    async def _cut(
        self,
        conn: _Connection,
        record: RequestRecord,
        fault: _Fault,
        framing: tuple[str, int],
        up_reader: asyncio.StreamReader,
        body: asyncio.Task[None] | None,
    ) -> None:
        """Forward ``fault.after_bytes`` of the body, let the client read them, then reset."""
        cutoff = _Cutoff(conn.client_writer, fault.after_bytes)
        with contextlib.suppress(_CutReached):
            await _copy_body(framing, up_reader, cutoff, lambda n: None)
        record.response_body_bytes = cutoff.forwarded
        transport = conn.client_writer.transport
        transport.set_write_buffer_limits(high=0)  # drain() returns when all is handed over
        await conn.client_writer.drain()
        if body is not None:
            await asyncio.wait([body])
        await self._client_hangs_up(conn, fault.hold)
        if fault.on_cut is not None:
            await fault.on_cut(record)
        if fault.reset:
            sock = conn.client_writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.abort()


class _Discard:
    """A sink that swallows what it is given: reading a request body to throw it away."""

    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass


def _error_response(method: str, service: str, rule: _FailRule, keep: bool) -> bytes:
    try:
        reason = HTTPStatus(rule.status).phrase
    except ValueError:
        reason = "Error"
    request_id = secrets.token_hex(8)
    message = f"injected by CountingProxy.fail_next (HTTP {rule.status})"
    if service == "dynamodb":
        code = rule.code or _DYNAMODB_ERROR_CODES.get(rule.status, "InternalServerError")
        body = json.dumps(
            {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}
        ).encode()
        headers = [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-RequestId", request_id),
        ]
    else:
        code = rule.code or _S3_ERROR_CODES.get(rule.status, "InternalError")
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>counting-proxy</HostId></Error>"
        ).encode()
        headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
    if method == "HEAD":
        body = b""  # S3 HEAD errors carry only the status
    headers += [
        ("Content-Length", str(len(body))),
        ("Connection", "keep-alive" if keep else "close"),
    ]
    head = f"HTTP/1.1 {rule.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode("latin-1") + b"\r\n" + body
