"""A second, independent AWS engine for the integration suite: ministack.

``VERSIONED_ASYNC_TEST_ENGINE=ministack`` (see tests/conftest.py) runs the
suite against `ministack <https://pypi.org/project/ministack/>`_ (MIT) instead
of moto: one endpoint serving S3, DynamoDB (TransactWriteItems and condition
expressions included) and STS, in memory.

ministack pins a botocore outside aiobotocore's range, so it cannot live in the
test virtualenv: :func:`ensure_ministack` gives it its own, under ``.engines/``
at the repository root, made once (with ``python -m venv`` and pip) and reused.
:class:`MinistackServer` runs it as a separate process on a free port of
127.0.0.1:

    with MinistackServer() as server:
        repo = Repository("us-east-1", "bucket", endpoint_url=server.endpoint_url)
        ...
        server.reset()  # every table and bucket gone
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

__all__ = [
    "MINISTACK_VERSION",
    "MinistackServer",
    "die_with_parent",
    "ensure_ministack",
    "installer_environment",
    "log_tail",
]

MINISTACK_VERSION = "1.5.33"

#: where ensure_ministack() keeps its virtualenvs (git-ignored)
ENGINES_DIR = Path(__file__).resolve().parent.parent / ".engines"

#: seconds for the virtualenv and pip install, and for the server to answer ready
INSTALL_TIMEOUT = 900.0
START_TIMEOUT = 60.0

_READY_MARKER = ".versioned-async-ready"  # written last: without it the venv is redone
_INSTALLER_NAMES = {
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NETRC",
    "XDG_CONFIG_HOME",
    "XDG_CONFIG_DIRS",
}
_INSTALLER_PATTERN = re.compile(
    r"LC_.*|PIP_.*|UV_.*|npm_config_.*|.*_CA_BUNDLE|.*_CA_CERTS|(http|https|no|all)_proxy",
    re.IGNORECASE,
)


def installer_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environ`` that a package installer may see.

    Deliberately minimal, so nothing of the test run (``VIRTUAL_ENV``,
    ``PYTHONPATH``, ``AWS_*`` credentials...) leaks into pip, but with
    everything that says how this machine reaches its package registries:
    ``PIP_*``/``UV_*``/``npm_config_*`` settings, proxies, and the CA bundles
    it trusts (``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``, ``NODE_EXTRA_CA_CERTS``,
    any ``*_CA_BUNDLE``/``*_CA_CERTS``), plus ``PATH``, ``HOME``, ``TMPDIR``,
    the locale, and where pip finds its configuration and ``.netrc``.
    """
    return {
        name: value
        for name, value in environ.items()
        if name in _INSTALLER_NAMES or _INSTALLER_PATTERN.fullmatch(name)
    }


def log_tail(path: Path, limit: int = 4000) -> str:
    """The end of a server's log, for an error that says why it did not start."""
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        return f"(no log: {err})"
    return text[-limit:]


def ensure_ministack(directory: Path = ENGINES_DIR) -> Path:
    """The ``ministack`` executable of a virtualenv in ``directory``, made if missing.

    The venv is ``directory/ministack-<version>``; it counts as made once its
    marker file exists (written last), so one left half-made by an interrupted
    run is made again. A file lock lets several pytest-xdist workers call this
    at once: the first makes the venv, the others wait for it. pip runs with
    :func:`installer_environment` and writes to ``ministack-<version>.log``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    venv = directory / f"ministack-{MINISTACK_VERSION}"
    executable = venv / "bin" / "ministack"
    with open(directory / f"ministack-{MINISTACK_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / _READY_MARKER).exists():
            return executable
        shutil.rmtree(venv, ignore_errors=True)
        log = directory / f"ministack-{MINISTACK_VERSION}.log"
        commands = [
            [sys.executable, "-m", "venv", str(venv)],
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--no-input",
                f"ministack=={MINISTACK_VERSION}",
            ],
        ]
        by_hand = " && ".join(shlex.join(command) for command in commands)
        with open(log, "w") as out:
            for command in commands:
                out.write(f"$ {shlex.join(command)}\n")
                out.flush()
                try:
                    code = subprocess.run(
                        command,
                        env=installer_environment(os.environ),
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        timeout=INSTALL_TIMEOUT,
                        check=False,
                    ).returncode
                except subprocess.TimeoutExpired:
                    code = None
                if code != 0:
                    out.flush()
                    status = "timed out" if code is None else f"exited {code}"
                    raise RuntimeError(
                        f"installing ministack {MINISTACK_VERSION} failed ({status}); "
                        f"the end of {log}:\n{log_tail(log)}\nto try by hand: {by_hand}"
                    )
        if not executable.exists():
            raise RuntimeError(f"pip installed ministack but {executable} is missing: see {log}")
        (venv / _READY_MARKER).write_text(f"ministack=={MINISTACK_VERSION}\n")
    return executable


# -- the server ---------------------------------------------------------------------------


def _free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago (the caller retries on a collision)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux SIGKILL the child when this process dies.

    So a pytest killed outright (SIGKILL, OOM) leaves no server behind. ``None``
    where ``prctl`` is missing; resolved here, before the fork, so the child only
    makes one call.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the call: nobody will stop us
            os._exit(1)

    return preexec


class MinistackServer:
    """ministack from :func:`ensure_ministack`'s venv, on a free port of 127.0.0.1.

    Bound to 127.0.0.1 only (``BIND_HOST``), services limited to S3, DynamoDB
    and STS, persistence off, logging at WARNING into a log file in a
    temporary directory that also holds anything else it writes (its pid file,
    ``S3_DATA_DIR``, ``STATE_DIR``); no Docker, no IoT or SFTP listeners. It runs
    in its own session, so a Ctrl-C meant for pytest does not reach it, and dies
    with the pytest process that started it.
    """

    def __init__(self, executable: Path | None = None, *, attempts: int = 5) -> None:
        self.executable = executable
        self.attempts = attempts
        self.endpoint_url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def log_path(self) -> Path:
        assert self._directory is not None, "not started"
        return Path(self._directory.name) / "ministack.log"

    def _environment(self, port: int, state: Path) -> dict[str, str]:
        """Its whole environment: nothing of the test run's (``AWS_*``, ``VIRTUAL_ENV``...)."""
        environment = {name: os.environ[name] for name in ("PATH", "LANG") if name in os.environ}
        environment.update(
            HOME=str(state),
            TMPDIR=str(state),  # its pid file goes there
            GATEWAY_PORT=str(port),
            BIND_HOST="127.0.0.1",
            MINISTACK_REGION="us-east-1",
            SERVICES="s3,dynamodb,sts",
            LOG_LEVEL="WARNING",
            PERSIST_STATE="0",
            S3_PERSIST="0",
            STATE_DIR=str(state / "state"),
            S3_DATA_DIR=str(state / "s3"),
            DOCKER_HOST=f"unix://{state}/no-docker.sock",  # never look for a Docker daemon
            IOT_MTLS_ENABLED="0",
            SFTP_ENABLED="0",
            PYTHONDONTWRITEBYTECODE="1",
        )
        return environment

    def start(self) -> str:
        """Start the server (installing it first if needed); returns its endpoint URL."""
        executable = self.executable or ensure_ministack()
        self._directory = tempfile.TemporaryDirectory(prefix="ministack-")
        state = Path(self._directory.name)
        try:
            for attempt in range(1, self.attempts + 1):
                port = _free_port()
                self.endpoint_url = f"http://127.0.0.1:{port}"
                with open(self.log_path, "wb") as log:  # the child keeps its own copy
                    self._process = subprocess.Popen(
                        [str(executable)],
                        env=self._environment(port, state),
                        cwd=state,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=die_with_parent(),  # noqa: PLW1509 (one libc call)
                    )
                if self._wait_ready(state / f"ministack-{port}.pid"):
                    return self.endpoint_url
                # it exited: most likely someone took the port between our probe and its bind
                self._close()
                if attempt == self.attempts or "in use" not in log_tail(self.log_path):
                    raise RuntimeError(
                        "ministack exited before it was ready; the end of its log:\n"
                        + log_tail(self.log_path)
                    )
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")

    def _wait_ready(self, pid_file: Path) -> bool:
        """``True`` once ``/_ministack/ready`` answers 200; ``False`` if the process exits."""
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while self._process.poll() is None:
            try:
                # it writes its pid file once it found its port free: before that, an
                # answer could come from whoever else holds the port
                if pid_file.read_text().strip() == str(self._process.pid):
                    url = f"{self.endpoint_url}/_ministack/ready"
                    with self._opener.open(url, timeout=2) as answer:
                        if answer.status == 200:
                            return True
            except OSError:  # no pid file yet, not listening yet, or 503 while starting
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"ministack not ready on {self.endpoint_url} after {START_TIMEOUT:.0f} s; "
                    f"the end of its log:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.05)
        return False

    def reset(self) -> None:
        """Wipe every bucket, table and STS session (``POST /_ministack/reset``, ~3 ms)."""
        request = urllib.request.Request(f"{self.endpoint_url}/_ministack/reset", method="POST")
        with self._opener.open(request, timeout=30) as answer:
            answer.read()

    def _close(self) -> None:
        """Stop the process: SIGTERM, then SIGKILL if it takes over 10 s."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None

    def stop(self) -> None:
        """Stop the server and remove its temporary directory (idempotent)."""
        self._close()
        if self._directory is not None:
            with contextlib.suppress(OSError):
                self._directory.cleanup()
            self._directory = None

    def __enter__(self) -> MinistackServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
