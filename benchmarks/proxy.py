"""A loopback TCP proxy that adds network latency and counts HTTP requests.

Run it in its own process (so it never competes with the measured client for
the GIL)::

    python -m benchmarks.proxy --upstream-port 5000 --rtt-ms 20

It prints one line, ``LISTEN <port> CONTROL <port>``, then serves until told
to quit. Every byte is forwarded after a one-way delay of ``rtt/2`` in each
direction (timestamped at arrival, so a stream is delayed, never throttled),
and the first bytes of a new connection wait one more RTT, as a TCP handshake
would. A request therefore costs one RTT more than it costs against the
upstream directly, and concurrent requests overlap their delays as they do
against AWS.

Bandwidth caps, as a real link has (``--cap-mib-s``, ``--aggregate-mib-s``):
each connection may carry at most ``cap`` MiB/s in each direction, and all of
them together at most ``aggregate`` MiB/s in each direction. Each is a token
bucket (:class:`TokenBucket`) that a chunk must pass before it is written,
after its latency delay: a connection waits for the slower of its own bucket
and the shared one. 0 means no cap.

The client-to-server stream is parsed just enough (request heads,
Content-Length and chunked bodies) to count requests by operation. The
control port speaks one line at a time: ``stats`` (a JSON line back),
``reset`` (zero the counters), ``rtt <ms>``, ``cap <MiB/s>`` (per connection;
0 lifts it), ``aggregate <MiB/s>``, ``quit``.

Only 127.0.0.1 is ever bound or dialled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections import Counter
from typing import Any

HOST = "127.0.0.1"
READ_SIZE = 256 * 1024
#: chunks in flight per direction before the reader waits (back-pressure)
QUEUE_DEPTH = 64
_HEAD_LIMIT = 1 << 20
MIB = 1 << 20
#: what a bucket lets through at once when it has been idle: one read's worth
BURST = READ_SIZE


class TokenBucket:
    """A token bucket in bytes: ``rate`` bytes a second flow in, up to ``burst``.

    Pure arithmetic on the times it is given. :meth:`reserve` takes the tokens for
    a chunk at once, going into debt when there are too few, and says how long
    to wait before sending it: a sender that waits as told is held at ``rate``
    on average, with at most ``burst`` bytes ahead. Debt rather than refusal
    keeps the chunks of a stream in order and lets several buckets be asked
    for the same chunk (wait for the longest).
    """

    def __init__(self, burst: float = BURST) -> None:
        self.burst = burst
        self.tokens = burst
        self.stamp: float | None = None

    def reserve(self, size: int, now: float, rate: float) -> float:
        """Seconds to wait before sending ``size`` bytes at ``now``, at ``rate``
        bytes a second (0 or less: no cap, never wait)."""
        if rate <= 0:
            self.tokens, self.stamp = self.burst, now
            return 0.0
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        self.tokens -= size
        return 0.0 if self.tokens >= 0 else -self.tokens / rate


class RequestCounter:
    """Counts HTTP/1.1 requests in a client-to-server byte stream, incrementally."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.buf = bytearray()
        self.state = "head"  # head | body | size | data | trailer
        self.remaining = 0

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        pos, end = 0, len(view)
        while pos < end:
            if self.state in ("body", "data"):
                take = min(self.remaining, end - pos)
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = "head" if self.state == "body" else "size"
                continue
            # a head or a chunk line: accumulate up to its delimiter
            delimiter = b"\r\n\r\n" if self.state == "head" else b"\r\n"
            before = len(self.buf)
            self.buf += view[pos:end]
            index = self.buf.find(delimiter, max(0, before - len(delimiter) + 1))
            if index < 0:
                if len(self.buf) > _HEAD_LIMIT:  # not HTTP: stop parsing this stream
                    self.state, self.remaining = "body", 1 << 62
                    self.buf.clear()
                return
            pos += index + len(delimiter) - before
            line = bytes(self.buf[:index])
            self.buf.clear()
            self._line(line)

    def _line(self, chunk: bytes) -> None:
        if self.state == "head":
            chunk = chunk.lstrip(b"\r\n")
            if not chunk:
                return
            self._head(chunk)
        elif self.state == "size":
            size = int(chunk.split(b";", 1)[0].strip() or b"0", 16)
            if size:
                self.state, self.remaining = "data", size + 2  # data and its CRLF
            else:
                self.state = "trailer"
        elif self.state == "trailer" and not chunk:
            self.state = "head"

    def _head(self, raw: bytes) -> None:
        lines = raw.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        target = rest.rpartition(" ")[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.stats.count(_operation(method, target, headers))
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.state = "size"
        elif int(headers.get("content-length", "0") or 0) > 0:
            self.state, self.remaining = "body", int(headers["content-length"])
        else:
            self.state = "head"


def _operation(method: str, target: str, headers: dict[str, str]) -> str:
    """``GetItem`` for DynamoDB; ``S3 GET``, ``S3 PUT copy``, ``S3 PUT part`` ... for S3."""
    amz_target = headers.get("x-amz-target")
    if amz_target:
        return amz_target.rpartition(".")[2]
    query = target.partition("?")[2]
    if "x-amz-copy-source" in headers:
        return f"S3 {method} copy"
    if "partNumber=" in query:
        return f"S3 {method} part"
    if "uploads" in query or "uploadId=" in query:
        return f"S3 {method} multipart"
    return f"S3 {method}"


class Stats:
    def __init__(self) -> None:
        self.ops: Counter[str] = Counter()
        self.connections = 0
        self.open_connections = 0
        self.max_open_connections = 0
        self.bytes_up = 0
        self.bytes_down = 0

    def count(self, op: str) -> None:
        self.ops[op] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": sum(self.ops.values()),
            "ops": dict(self.ops),
            "connections": self.connections,
            "open_connections": self.open_connections,
            "max_open_connections": self.max_open_connections,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
        }


class LatencyProxy:
    def __init__(
        self,
        upstream_port: int,
        rtt_ms: float,
        cap_mib_s: float = 0.0,
        aggregate_mib_s: float = 0.0,
    ) -> None:
        self.upstream_port = upstream_port
        self.rtt = rtt_ms / 1000.0
        #: bytes a second, per connection and direction / all connections, per direction
        self.cap = cap_mib_s * MIB
        self.aggregate = aggregate_mib_s * MIB
        self.shared = {True: TokenBucket(), False: TokenBucket()}  # by direction: upstream?
        self.stats = Stats()
        self.stopped = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(self, port: int = 0, control_port: int = 0) -> None:
        server = await asyncio.start_server(self._serve, HOST, port, backlog=4096)
        control = await asyncio.start_server(self._control, HOST, control_port)
        listen = server.sockets[0].getsockname()[1]
        ctl = control.sockets[0].getsockname()[1]
        print(f"LISTEN {listen} CONTROL {ctl}", flush=True)
        async with server, control:
            await self.stopped.wait()
            server.close()
            control.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := (await reader.readline()).decode().strip():
                command, _, arg = line.partition(" ")
                if command == "stats":
                    reply = self.stats.as_dict()
                elif command == "reset":
                    opened = self.stats.open_connections
                    self.stats = Stats()
                    self.stats.open_connections = opened
                    reply = {"ok": True}
                elif command == "rtt":
                    self.rtt = float(arg) / 1000.0
                    reply = {"ok": True, "rtt_ms": self.rtt * 1000}
                elif command == "cap":
                    self.cap = float(arg) * MIB
                    reply = {"ok": True, "cap_mib_s": self.cap / MIB}
                elif command == "aggregate":
                    self.aggregate = float(arg) * MIB
                    reply = {"ok": True, "aggregate_mib_s": self.aggregate / MIB}
                elif command == "quit":
                    writer.write(b'{"ok": true}\n')
                    await writer.drain()
                    self.stopped.set()
                    return
                else:
                    reply = {"error": f"unknown command {command!r}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        loop = asyncio.get_running_loop()
        # a new connection's first bytes wait one RTT more: the TCP handshake
        ready_at = loop.time() + self.rtt
        stats = self.stats
        stats.connections += 1
        stats.open_connections += 1
        stats.max_open_connections = max(stats.max_open_connections, stats.open_connections)
        up_writer = None
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.upstream_port)
            counter = RequestCounter(stats)
            await asyncio.gather(
                self._pump(reader, up_writer, counter, ready_at, upstream=True),
                self._pump(up_reader, writer, None, ready_at, upstream=False),
            )
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self.stats.open_connections = max(0, self.stats.open_connections - 1)
            for w in (writer, up_writer):
                if w is not None:
                    w.transport.abort()
            self._tasks.discard(task)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        counter: RequestCounter | None,
        ready_at: float,
        *,
        upstream: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_DEPTH)

        async def read() -> None:
            while True:
                try:
                    data = await reader.read(READ_SIZE)
                except OSError:
                    data = b""
                now = loop.time()
                if data:
                    if counter is not None:
                        counter.stats = self.stats
                        counter.feed(data)
                    if upstream:
                        self.stats.bytes_up += len(data)
                    else:
                        self.stats.bytes_down += len(data)
                await queue.put((max(now, ready_at) + self.rtt / 2, data))
                if not data:
                    return

        own, shared = TokenBucket(), self.shared[upstream]

        async def write() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data and (self.cap > 0 or self.aggregate > 0):
                    now = loop.time()
                    wait = max(
                        own.reserve(len(data), now, self.cap),
                        shared.reserve(len(data), now, self.aggregate),
                    )
                    if wait > 0:
                        await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        with contextlib.suppress(OSError):
                            writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        reading = asyncio.ensure_future(read())
        try:
            await write()
        finally:
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--rtt-ms", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--cap-mib-s", type=float, default=0.0, help="per connection and direction (0: none)"
    )
    parser.add_argument(
        "--aggregate-mib-s", type=float, default=0.0, help="all connections, per direction"
    )
    args = parser.parse_args(argv)
    proxy = LatencyProxy(args.upstream_port, args.rtt_ms, args.cap_mib_s, args.aggregate_mib_s)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(proxy.run(args.port))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
