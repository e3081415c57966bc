"""A real service: uvicorn serving tests/ecosystem/asgi_service.py in a process of its
own, asked over HTTP by httpx, its AWS (moto) behind a proxy the test can take down.

Start, serve version 1; move the alias, see the swap; stop AWS, restart the service,
still serving the last version, from its LocalCache. (Without a cache such a start-up
fails and says what to configure: tests/ecosystem/test_asgi.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BUCKET, TABLE, RepoFactory
from tests.engines import die_with_parent
from tests.proxy import CountingProxy
from versioned_async import ArtifactRepository

ROOT = Path(__file__).parents[2]
#: how long a step may take before the test fails (a deadline, not a timed assertion)
DEADLINE = 60.0
_LISTENING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")
#: what a clean start and shutdown never print
_UNCLEAN = ("Traceback", "Unclosed", "was destroyed", "ResourceWarning", "Exception in")


@pytest.fixture
async def aws(endpoint_url: str) -> AsyncIterator[CountingProxy]:
    """The service's way to AWS: a proxy in front of this test's moto, which the test
    takes down to make AWS unreachable."""
    async with CountingProxy(endpoint_url) as proxy:
        yield proxy
    assert proxy.errors == [], f"the proxy failed: {proxy.errors!r}"


@pytest.fixture
async def released(make_repo: RepoFactory) -> AsyncIterator[ArtifactRepository]:
    """The publisher: fraud-model versions 1 and 2, rules version 1, both ``prod`` at 1."""
    async with make_repo() as repo:
        await repo.bootstrap()
        for name, body in (("fraud-model", b"model one"), ("fraud-model", b"model two")):
            await repo.put_artifact(name, body)
            await repo.publish_artifact_version(name)
        await repo.put_artifact("rules", b"rules one")
        await repo.publish_artifact_version("rules")
        await repo.put_alias("fraud-model", "prod", 1)
        await repo.put_alias("rules", "prod", 1)
        yield repo


def service_environment(aws: CountingProxy, cache_dir: Path | None) -> dict[str, str]:
    environment = {
        **os.environ,
        "SERVICE_ENDPOINT_URL": aws.endpoint_url,
        "SERVICE_BUCKET": BUCKET,
        "SERVICE_TABLE": TABLE,
        "SERVICE_WATCH_INTERVAL": "0.1",
    }
    if cache_dir is not None:
        environment["SERVICE_CACHE_DIR"] = str(cache_dir)
    return environment


class Uvicorn:
    """``uvicorn tests.ecosystem.asgi_service:app`` on a free port of 127.0.0.1."""

    def __init__(self, environment: dict[str, str]) -> None:
        self.environment = environment
        self.url = ""
        self.output: list[str] = []
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def log(self) -> str:
        return "".join(self.output)

    async def start(self) -> str:
        """Start it; its URL once it listens. ``RuntimeError`` with its log if it exits."""
        self._process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "uvicorn", "tests.ecosystem.asgi_service:app"),
            *("--app-dir", str(ROOT), "--host", "127.0.0.1", "--port", "0"),
            *("--lifespan", "on", "--log-level", "info"),
            env=self.environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent(),
        )
        listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_log(listening))
        done, _ = await asyncio.wait(
            [listening, asyncio.ensure_future(self._process.wait())],
            timeout=DEADLINE,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if listening not in done:
            listening.cancel()
            await self.stop()
            raise RuntimeError(f"uvicorn did not start listening:\n{self.log}")
        self.url = listening.result()
        return self.url

    async def _read_log(self, listening: asyncio.Future[str]) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        async for raw in self._process.stderr:
            line = raw.decode(errors="replace")
            self.output.append(line)
            found = _LISTENING.search(line)
            if found and not listening.done():
                listening.set_result(found[1])

    async def stop(self) -> int:
        """SIGTERM, as an orchestrator stops it (SIGKILL after the deadline); its exit code."""
        process = self._process
        assert process is not None
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), DEADLINE)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            await self._reader
        assert process.returncode is not None
        return process.returncode


@contextlib.asynccontextmanager
async def serving(environment: dict[str, str]) -> AsyncIterator[str]:
    """A running service's URL; it must then shut down cleanly."""
    service = Uvicorn(environment)
    await service.start()
    try:
        yield service.url
    finally:
        code = await service.stop()
    # uvicorn ends by raising the signal it stopped on again, once it has shut down
    assert code in (0, -signal.SIGTERM), service.log
    assert "Application shutdown complete" in service.log, service.log
    assert "Finished server process" in service.log, service.log
    assert not [word for word in _UNCLEAN if word in service.log], service.log


async def test_a_service_serves_swaps_and_restarts_from_its_cache_with_aws_down(
    released: ArtifactRepository, aws: CountingProxy, tmp_path: Path
) -> None:
    def sha256(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    environment = service_environment(aws, tmp_path / "cache")
    async with serving(environment) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/predict")).json() == {
            "model": "model one",
            "version": "1",
            "sha256": sha256("model one"),
            "rules": "rules one",
        }
        await released.put_alias("fraud-model", "prod", 2)
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while True:  # each answer is one version whole: its content and its sha256
            answer = (await http.get("/predict")).json()
            model = {"1": "model one", "2": "model two"}[answer["version"]]
            assert (answer["model"], answer["sha256"]) == (model, sha256(model))
            if answer["version"] == "2":
                break
            assert asyncio.get_running_loop().time() < deadline, "the swap never came"
            await asyncio.sleep(0.05)

    aws.go_down()
    aws.reset_counts()
    async with serving(environment) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/predict")).json() == {
            "model": "model two",
            "version": "2",
            "sha256": sha256("model two"),
            "rules": "rules one",
        }
        assert (await http.get("/ready")).json() == {
            "ready": True,
            "versions": {"model": "2", "rules": "1"},
            "failures": {},
        }
    assert aws.connections_dropped > 0  # it did try AWS, which was down all along
    assert aws.requests == []
