"""LiveArtifacts in this process, against the moto server: start-up, the swap, a failed
load, routing, shutdown and the errors. tests/ecosystem/test_asgi_service.py runs it
in a real server."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.conftest import RepoFactory
from tests.proxy import CountingProxy
from versioned_async import ArtifactRepository, LocalCache, exc
from versioned_async.asgi import ArtifactsUnavailableError, Follow, LiveArtifacts, Loaded

#: how long a swap may take to show before the test fails (a deadline, not a timing)
DEADLINE = 30.0


@pytest.fixture
async def released(make_repo: RepoFactory) -> AsyncIterator[ArtifactRepository]:
    """The publisher: ``model`` versions 1..3 (b"model 1".. b"model 3") and ``rules`` 1,
    both ``prod`` at 1."""
    async with make_repo() as repo:
        await repo.bootstrap()
        for n in (1, 2, 3):
            await repo.put_artifact("model", f"model {n}".encode())
            await repo.publish_artifact_version("model")
        await repo.put_artifact("rules", b"rules 1")
        await repo.publish_artifact_version("rules")
        await repo.put_alias("model", "prod", 1)
        await repo.put_alias("rules", "prod", 1)
        yield repo


@pytest.fixture
async def aws(endpoint_url: str) -> AsyncIterator[CountingProxy]:
    """A proxy in front of moto, which a test takes down to make AWS unreachable."""
    async with CountingProxy(endpoint_url) as proxy:
        yield proxy
    assert proxy.errors == [], f"the proxy failed: {proxy.errors!r}"


async def swapped(artifacts: LiveArtifacts, key: str, version: str) -> Loaded[object]:
    """What ``key`` serves once it is ``version``; fails after the deadline."""
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while artifacts[key].version != version:
        assert asyncio.get_running_loop().time() < deadline, artifacts.versions
        await asyncio.sleep(0.02)
    return artifacts[key]


@pytest.mark.both_backends
async def test_start_up_loads_every_artifact_and_handlers_read_them(
    released: ArtifactRepository, make_repo: RepoFactory, tmp_path: Path
) -> None:
    threads: list[threading.Thread] = []

    def load(content: bytes) -> str:
        threads.append(threading.current_thread())
        return content.decode().upper()

    model = Follow("model", "prod", load=load)
    artifacts = LiveArtifacts(
        lambda: make_repo(cache=LocalCache(tmp_path / "cache")),
        {"model": model, "rules": ("rules", "prod")},
        watch=False,
    )
    assert not artifacts.ready
    async with artifacts.lifespan(app=None) as state:
        assert state == {"artifacts": artifacts}
        served = artifacts[model]
        assert (served.key, served.name, served.alias) == ("model", "model", "prod")
        assert (served.version, served.value, served.size) == ("1", "MODEL 1", 7)
        assert served.sha256 == hashlib.sha256(b"model 1").hexdigest()
        assert artifacts["rules"].value == b"rules 1"
        assert (artifacts.ready, artifacts.versions) == (True, {"model": "1", "rules": "1"})
        assert sorted(artifacts) == ["model", "rules"]
        assert ("rules" in artifacts, model in artifacts, "other" in artifacts) == (
            True,
            True,
            False,
        )
    assert threads
    assert threads[0] is not threading.main_thread()  # load ran off the event loop
    with pytest.raises(exc.RepositoryClosedError, match=r"lifespan=artifacts\.lifespan"):
        artifacts["model"]


@pytest.mark.both_backends
async def test_a_moved_alias_is_swapped_in_without_a_restart(
    released: ArtifactRepository, make_repo: RepoFactory
) -> None:
    artifacts = LiveArtifacts(make_repo, {"model": ("model", "prod")}, interval=0.02)
    async with artifacts:
        before = artifacts["model"]
        await released.put_alias("model", "prod", 3)
        after = await swapped(artifacts, "model", "3")
        assert after.value == b"model 3"
        assert (before.version, before.value) == ("1", b"model 1")  # a held one stays whole
        assert after.sha256 == hashlib.sha256(b"model 3").hexdigest()


async def test_a_failed_load_keeps_the_old_version_serving_and_is_tried_again(
    released: ArtifactRepository, make_repo: RepoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[bytes] = []

    def load(content: bytes) -> bytes:
        calls.append(content)
        if calls.count(b"model 2") == 1 and content == b"model 2":
            raise ValueError("unpickling failed")
        return content

    artifacts = LiveArtifacts(
        make_repo, {"model": Follow("model", "prod", load=load)}, interval=0.02
    )
    async with artifacts:
        with caplog.at_level(logging.WARNING, logger="versioned_async"):
            await released.put_alias("model", "prod", 2)
            # no further change of the alias: the retry comes from the next poll
            assert (await swapped(artifacts, "model", "2")).value == b"model 2"
        assert calls == [b"model 1", b"model 2", b"model 2"]
        assert artifacts.failures == {}
    assert "unpickling failed; still serving version 1" in caplog.text


async def test_a_failing_swap_is_reported_until_it_works(
    released: ArtifactRepository, make_repo: RepoFactory
) -> None:
    def load(content: bytes) -> bytes:
        if content == b"model 2":
            raise ValueError("a broken build")
        return content

    artifacts = LiveArtifacts(
        make_repo, {"model": Follow("model", "prod", load=load)}, interval=0.02
    )
    async with artifacts:
        await released.put_alias("model", "prod", 2)
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while not artifacts.failures:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        assert artifacts.failures == {"model": "ValueError: a broken build"}
        assert artifacts["model"].value == b"model 1"  # still serving
        await released.put_alias("model", "prod", 3)  # the fix
        await swapped(artifacts, "model", "3")
        assert artifacts.failures == {}


async def test_the_routing_key_picks_this_services_side_of_a_canary(
    released: ArtifactRepository,
) -> None:
    split = await released.put_alias(
        "model", "prod", 1, secondary_version=2, secondary_version_weight=50
    )
    sides = {f"instance-{n}": split.choose_version(f"instance-{n}") for n in range(20)}
    assert set(sides.values()) == {"1", "2"}
    served = {}
    for key in sides:
        artifacts = LiveArtifacts(released, {"m": ("model", "prod")}, routing_key=key, watch=False)
        async with artifacts:
            served[key] = artifacts["m"].version
    assert served == sides


async def test_shutdown_cancels_the_watchers_and_closes_what_it_opened(
    released: ArtifactRepository, make_repo: RepoFactory, tmp_path: Path
) -> None:
    made: list[ArtifactRepository] = []

    def open_repository() -> ArtifactRepository:
        made.append(make_repo(cache=LocalCache(tmp_path / "cache")))
        return made[-1]

    def watchers() -> list[asyncio.Task[object]]:
        return [t for t in asyncio.all_tasks() if t.get_name().startswith("watch ")]

    artifacts = LiveArtifacts(open_repository, {"a": ("model", "prod"), "b": ("rules", "prod")})
    async with artifacts:
        assert len(watchers()) == 2
        assert made[0].is_open
    assert watchers() == []
    assert not made[0].is_open
    # and it starts again, on a new repository from the function
    async with artifacts:
        assert artifacts.versions == {"a": "1", "b": "1"}
    assert len(made) == 2


async def test_a_repository_given_open_is_left_open(
    released: ArtifactRepository,
) -> None:
    async with LiveArtifacts(released, {"m": ("model", "prod")}) as artifacts:
        assert artifacts["m"].value == b"model 1"
    assert released.is_open


async def test_without_a_cache_and_with_aws_down_start_up_says_to_give_one(
    released: ArtifactRepository, make_repo: RepoFactory, aws: CountingProxy
) -> None:
    made: list[ArtifactRepository] = []

    def open_repository() -> ArtifactRepository:
        made.append(make_repo(endpoint_url=aws.endpoint_url))
        return made[-1]

    aws.go_down()
    artifacts = LiveArtifacts(open_repository, {"model": ("model", "prod")})
    with pytest.raises(ArtifactsUnavailableError, match=r"give the repository cache=LocalCache"):
        await artifacts.start()
    assert not made[0].is_open  # nothing left open
    assert not artifacts.ready


async def test_a_cache_that_never_saw_the_alias_says_to_start_once_with_aws(
    released: ArtifactRepository, make_repo: RepoFactory, aws: CountingProxy, tmp_path: Path
) -> None:
    aws.go_down()
    artifacts = LiveArtifacts(
        lambda: make_repo(endpoint_url=aws.endpoint_url, cache=LocalCache(tmp_path / "c")),
        {"model": ("model", "prod")},
    )
    with pytest.raises(ArtifactsUnavailableError, match="start once with AWS reachable") as err:
        await artifacts.start()
    assert err.value.key == "model"
    assert isinstance(err.value.__cause__, exc.BackendUnavailableError)


async def test_a_load_that_fails_at_start_up_fails_the_start_up(
    released: ArtifactRepository, make_repo: RepoFactory
) -> None:
    def load(content: bytes) -> bytes:
        raise ValueError("not a model")

    artifacts = LiveArtifacts(make_repo, {"model": Follow("model", "prod", load=load)})
    with pytest.raises(ArtifactsUnavailableError, match=r"could not load 'model'.*not a model"):
        await artifacts.start()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda repo: LiveArtifacts(repo, {}), "non-empty dict"),
        (lambda repo: LiveArtifacts(repo, {"m": ("model",)}), "Follow"),  # type: ignore[dict-item]
        (lambda repo: LiveArtifacts(repo, {"m": ("model", "prod")}, interval=0), "interval"),
        (lambda repo: LiveArtifacts(repo, {"m": ("m", "p")}, routing_key=7), r"str\(instance_id\)"),  # type: ignore[arg-type]
        (lambda repo: LiveArtifacts("repo", {"m": ("m", "p")}), "function that makes one"),  # type: ignore[arg-type]
        (lambda repo: Follow("model", "prod", load="pickle"), "load must be a function"),  # type: ignore[call-overload]
        (lambda repo: Follow("model", "canary-2"), "must not contain '-'"),
    ],
)
def test_bad_arguments_are_refused_when_made(
    make: Callable[[ArtifactRepository], object], message: str, make_repo: RepoFactory
) -> None:
    with pytest.raises((exc.InvalidArgumentError, exc.InvalidArgumentTypeError), match=message):
        make(make_repo())
