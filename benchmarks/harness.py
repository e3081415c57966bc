"""The harness: a moto server and a latency proxy in their own processes, timing and tables.

Everything listens on 127.0.0.1 only, and everything started is stopped at the
end (terminate, then kill after a few seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from versioned_async import _codec, _layout
from versioned_async.testing import fake_aws_environment

HOST = "127.0.0.1"
REGION = "us-east-1"
BUCKET = "bench-artifacts"
TABLE = "bench-artifacts"
PREFIX = "versioned-artifacts"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def bench_env() -> dict[str, str]:
    """The environment for every process started here: fake credentials, no ~/.aws."""
    env = dict(os.environ)
    env.update(fake_aws_environment())
    env.pop("AWS_ENDPOINT_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def _stop(proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


class MotoProcess:
    """``moto_server -H 127.0.0.1 -p PORT`` as a subprocess."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://{HOST}:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> MotoProcess:
        exe = Path(sys.executable).with_name("moto_server")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
        cmd += ["-H", HOST, "-p", str(self.port)]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=bench_env(), cwd=ROOT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode}; see {log}")
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=2):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"moto_server did not answer within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    def rss_mib(self) -> float | None:
        """Resident memory of the server now (Linux), for the notes."""
        if self.proc is None:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None


class ProxyProcess:
    """:mod:`benchmarks.proxy` as a subprocess, with its control channel."""

    def __init__(
        self,
        upstream_port: int,
        rtt_ms: float,
        cap_mib_s: float = 0.0,
        aggregate_mib_s: float = 0.0,
    ) -> None:
        self.upstream_port = upstream_port
        self.rtt_ms = rtt_ms
        self.cap_mib_s = cap_mib_s
        self.aggregate_mib_s = aggregate_mib_s
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.control_port = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 30.0) -> ProxyProcess:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.proxy",
                "--upstream-port",
                str(self.upstream_port),
                "--rtt-ms",
                str(self.rtt_ms),
                "--cap-mib-s",
                str(self.cap_mib_s),
                "--aggregate-mib-s",
                str(self.aggregate_mib_s),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=bench_env(),
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline and not line:
            line = self.proc.stdout.readline().strip()
            if self.proc.poll() is not None:
                break
        parts = line.split()
        if len(parts) != 4 or parts[0] != "LISTEN":
            _stop(self.proc)
            raise RuntimeError(f"the latency proxy did not start: {line!r}")
        self.port, self.control_port = int(parts[1]), int(parts[3])
        return self

    def command(self, line: str) -> dict[str, Any]:
        with socket.create_connection((HOST, self.control_port), timeout=10) as sock:
            sock.sendall(line.encode() + b"\n")
            reply = sock.makefile("rb").readline()
        return dict(json.loads(reply)) if reply else {}

    def stats(self) -> dict[str, Any]:
        return self.command("stats")

    def reset(self) -> None:
        self.command("reset")

    def set_rtt(self, rtt_ms: float) -> None:
        self.command(f"rtt {rtt_ms}")
        self.rtt_ms = rtt_ms

    def set_caps(self, cap_mib_s: float, aggregate_mib_s: float) -> None:
        """Per-connection and aggregate bandwidth caps, MiB/s each way (0: none)."""
        self.command(f"cap {cap_mib_s}")
        self.command(f"aggregate {aggregate_mib_s}")
        self.cap_mib_s, self.aggregate_mib_s = cap_mib_s, aggregate_mib_s

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self.command("quit")
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            _stop(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# -- timing --------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


# -- output --------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "MISS")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    import aiobotocore  # noqa: PLC0415 - versions for the header only
    import botocore  # noqa: PLC0415
    import moto  # noqa: PLC0415

    return {
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "aiobotocore": aiobotocore.__version__,
        "botocore": botocore.__version__,
        "moto": moto.__version__,
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


# -- seeding -------------------------------------------------------------------------

LAYOUT = _layout.Layout(bucket=BUCKET, prefix=PREFIX)


def version_key(name: str, version: int | str | None) -> str:
    return LAYOUT.key(name, _layout.encode_version(version))


async def seed_published(
    s3: Any,
    dynamodb: Any,
    contents: dict[str, bytes],
    *,
    alias: str | None = "prod",
    concurrency: int = 32,
) -> None:
    """Write version 1 of each artifact (object + item) and an alias to it, directly.

    The objects and items are exactly what ``put_artifact`` + ``publish`` +
    ``put_alias`` leave behind (the library's own codec builds the items), in
    two requests an artifact instead of eleven: seeding 1,000 artifacts takes
    seconds, not a minute.
    """
    semaphore = asyncio.Semaphore(concurrency)
    now = datetime.now(timezone.utc)

    async def one(name: str, body: bytes) -> None:
        sha = hashlib.sha256(body).hexdigest()
        stored = _layout.encode_version(1)
        async with semaphore:
            await s3.put_object(
                Bucket=BUCKET,
                Key=LAYOUT.key(name, stored),
                Body=body,
                Metadata={_layout.META_NAME: name, _layout.META_SHA256: sha},
            )
            version = _codec.VersionItem(
                pk=name, sk=stored, sha256=sha, update_at=now, size=len(body)
            )
            requests: list[dict[str, Any]] = [{"PutRequest": {"Item": _codec.to_item(version)}}]
            if alias is not None:
                record = _codec.AliasItem(
                    pk=_layout.alias_pk(name), sk=alias, update_at=now, version=stored
                )
                requests.append({"PutRequest": {"Item": _codec.to_item(record)}})
            await dynamodb.batch_write_item(RequestItems={TABLE: requests})

    await asyncio.gather(*(one(n, b) for n, b in contents.items()))


def payload(size: int, seed: str) -> bytes:
    """Incompressible-looking content, distinct per seed, cheap to make."""
    block = hashlib.sha256(seed.encode()).digest() * 2  # 64 bytes
    random_part = os.urandom(min(size, 4096))
    return (random_part + block * (size // 64 + 1))[:size]


# -- subprocesses ----------------------------------------------------------------------


def run_worker(
    args: Sequence[str], timeout: float, module: str = "benchmarks.worker"
) -> dict[str, Any]:
    """Run ``python -m MODULE ARGS`` (``benchmarks.worker`` by default); its last stdout
    line is JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=bench_env(),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{module} {' '.join(args[:2])} failed ({proc.returncode}): "
            f"{proc.stderr.strip()[-2000:]}"
        )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


async def write_cached_file_lists(
    cache: Any, contents: dict[str, bytes], workdir: Path, stem: str
) -> tuple[Path, Path]:
    """The names and the cached files of ``contents``, as JSON files for a warm worker.

    A warm-start scenario hands a fresh process the artifact names to fetch and the
    cache files a plain read compares with; the cache must already hold every body.
    """
    files = []
    for name, body in contents.items():
        path = await cache._store.content.path(hashlib.sha256(body).hexdigest())
        assert path is not None, f"the cache does not hold {name!r}: the fill did not store it"
        files.append(path)
    names_file = workdir / f"{stem}-names.json"
    files_file = workdir / f"{stem}-files.json"
    names_file.write_text(json.dumps(list(contents)))
    files_file.write_text(json.dumps(files))
    return names_file, files_file
