"""Client lifecycles: each AWS client is created on first use, once, and closed by close().

A repository talks to S3, DynamoDB (its table layout only) and STS (the default
``actor`` of alias history). A :class:`RecordingSession` (a real ``AioSession``
that notes each client it creates and when that client is closed) shows which
clients a repository made: real clients and real requests to the test's server,
nothing mocked.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from tests.conftest import RepoFactory, TableRepoFactory
from tests.integration.conftest import fail_fast_config
from tests.proxy import CountingProxy
from versioned_async import LocalCache, exc


@dataclass
class Created:
    """A client a session created: its service, and whether it has been closed."""

    service: str
    closed: bool = False


class RecordingSession(AioSession):
    """A real session that records every client it creates and closes."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[Created] = []

    def create_client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:
        context = super().create_client(service_name, *args, **kwargs)
        return _RecordedContext(self.created, service_name, context)

    def services(self) -> list[str]:
        """The services of the clients created so far, in order."""
        return [c.service for c in self.created]

    def still_open(self) -> list[str]:
        return [c.service for c in self.created if not c.closed]


class _RecordedContext:
    """The async context ``create_client`` returns, noting the client's creation and close."""

    def __init__(self, created: list[Created], service: str, context: Any) -> None:
        self._created = created
        self._record = Created(service)
        self._context = context

    async def __aenter__(self) -> Any:
        client = await self._context.__aenter__()
        self._created.append(self._record)
        return client

    async def __aexit__(self, *exc_info: object) -> None:
        await self._context.__aexit__(*exc_info)
        self._record.closed = True


@pytest.fixture
def session() -> RecordingSession:
    """The session of the repository under test: each test sees only its own clients."""
    return RecordingSession()


@pytest.fixture
async def seeded(make_repo: RepoFactory) -> None:
    """The repository bootstrapped, holding ``app`` 1 and alias ``prod`` (written
    through clients of another session)."""
    async with make_repo() as writer:
        await writer.bootstrap()
        await writer.put_artifact("app", b"one")
        await writer.publish_artifact_version("app")
        await writer.put_alias("app", "prod", 1)


# -- created lazily, and only those needed ---------------------------------------------------


@pytest.mark.both_backends
async def test_opening_a_repository_creates_no_client(
    make_repo: RepoFactory, session: RecordingSession
) -> None:
    async with make_repo(session=session) as repo:
        assert repo.is_open
        assert session.services() == []
    assert session.services() == []


@pytest.mark.both_backends
async def test_the_first_request_creates_the_s3_client_and_only_it(
    make_repo: RepoFactory, session: RecordingSession, seeded: None
) -> None:
    async with make_repo(session=session) as repo:
        assert await repo.list_artifact_names() == ["app"]
        assert session.services() == ["s3"]


async def test_a_table_read_adds_the_dynamodb_client(
    make_repo: RepoFactory, session: RecordingSession, seeded: None
) -> None:
    async with make_repo(session=session) as repo:
        await repo.list_artifact_names()
        await repo.get_artifact_version("app", 1)
        assert await repo.get_content("app", 1) == b"one"
        assert session.services() == ["s3", "dynamodb"]


@pytest.mark.both_backends
async def test_a_warm_cache_serves_a_new_repository_without_creating_a_client(
    make_repo: RepoFactory, session: RecordingSession, seeded: None, tmp_path: Path
) -> None:
    async with make_repo(cache=LocalCache(tmp_path / "cache")) as warming:
        assert await warming.get_alias_content("app", "prod") == b"one"
    restarted = LocalCache(tmp_path / "cache")
    async with make_repo(session=session, cache=restarted) as repo:
        assert await repo.get_alias_content("app", "prod") == b"one"
    assert session.services() == []


@pytest.mark.both_backends
async def test_a_warm_restart_never_sets_up_a_botocore_session(
    make_repo: RepoFactory, seeded: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Making aiobotocore's session costs ~20 ms of botocore set-up: a repository given
    none makes it for its first client, so a restart served by its cache never does."""
    async with make_repo(cache=LocalCache(tmp_path / "cache")) as warming:
        assert await warming.get_alias_content("app", "prod") == b"one"
    made: list[AioSession] = []
    real_init = AioSession.__init__

    def counted_init(self: AioSession, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(AioSession, "__init__", counted_init)
    async with make_repo(session=None, cache=LocalCache(tmp_path / "cache")) as repo:
        assert await repo.get_alias_content("app", "prod") == b"one"
        assert made == []
        await repo.list_artifact_names()  # a request: now the session is made, once
        await repo.list_artifact_names()
        assert len(made) == 1


@pytest.mark.parametrize("backend", ["s3"])  # make_repo builds S3OnlyRepository
async def test_an_s3_only_repository_never_creates_a_dynamodb_client(
    make_repo: RepoFactory, session: RecordingSession, tmp_path: Path
) -> None:
    async with make_repo(session=session) as repo:
        await repo.bootstrap()
        for body in (b"one", b"two"):
            await repo.put_artifact("app", body, metadata={"body": body.decode()})
            await repo.publish_artifact_version("app")
        await repo.put_alias("app", "prod", 1, secondary_version=2, secondary_version_weight=10)
        assert (await repo.get_alias("app", "prod")).version == "1"
        assert [a.alias for a in await repo.list_aliases("app")] == ["prod"]
        routed = await repo.get_alias_content("app", "prod", routing_key="user-1")
        assert routed in (b"one", b"two")
        await repo.download("app", tmp_path / "app.bin", version=2)
        assert [a.version for a in await repo.list_artifact_versions("app")] == ["LATEST", "2", "1"]
        found = await repo.find_artifact_versions("app", {"body": "two"}, include_latest=False)
        assert [a.version for a in found] == ["2"]
        await repo.delete_alias("app", "prod")
        await repo.purge_artifact_versions("app", keep_last_n=1, purge_older_than_secs=0)
        await repo.delete_artifact_version("app", 2)
        await repo.purge_artifact("app")
        await repo.purge_all()
        assert await repo.list_artifact_names() == []
    assert session.services() == ["s3"]
    assert session.still_open() == []


async def test_sts_is_not_asked_when_the_repository_names_an_actor(
    make_table_repo: TableRepoFactory, session: RecordingSession, seeded: None
) -> None:
    async with make_table_repo(session=session, actor="pipeline") as repo:
        await repo.put_alias("app", "prod", 1, reason="no actor given: the repository's")
        await repo.delete_alias("app", "prod")
        assert "sts" not in session.services()


async def test_sts_is_created_once_when_an_alias_changes_without_an_actor(
    make_table_repo: TableRepoFactory, session: RecordingSession, seeded: None
) -> None:
    async with make_table_repo(session=session, actor=None) as repo:
        await repo.get_alias("app", "prod")
        await repo.list_alias_history("app", "prod")
        assert "sts" not in session.services()  # reads name no actor
        await repo.put_alias("app", "canary", 1, actor="someone")
        assert "sts" not in session.services()  # the call named one
        await repo.put_alias("app", "prod", 1)
        await repo.put_alias("app", "beta", 1)
        assert session.services().count("sts") == 1
        changes = (await repo.list_alias_history("app", "beta")).changes
        assert changes[0].actor is not None
        assert changes[0].actor.startswith("arn:aws:")


# -- closed together by close() ----------------------------------------------------------------


async def test_the_sts_client_lives_until_close_and_close_closes_it(
    make_table_repo: TableRepoFactory, session: RecordingSession, seeded: None
) -> None:
    """The STS client is one of the repository's clients, not one of its own."""
    async with make_table_repo(session=session, actor=None) as repo:
        await repo.put_alias("app", "prod", 1)
        assert await repo.get_content("app", 1) == b"one"
        assert sorted(session.services()) == ["dynamodb", "s3", "sts"]
        assert sorted(session.still_open()) == ["dynamodb", "s3", "sts"]
    assert session.still_open() == []


async def test_close_during_an_identity_lookup_closes_the_sts_client(
    make_table_repo: TableRepoFactory, session: RecordingSession, seeded: None, proxy: CountingProxy
) -> None:
    """close() does not return with the STS client still open, even while it waits on STS."""
    repo = make_table_repo(
        session=session,
        actor=None,
        endpoint_url=proxy.endpoint_url,
        client_config=fail_fast_config(),
    )
    await repo.open()
    await repo.get_alias("app", "prod")  # the table's client exists before STS is asked
    # STS speaks the query protocol: a POST to / whose action is in the body
    proxy.stall_next(op="POST /")
    change = asyncio.ensure_future(repo.put_alias("app", "prod", 1))
    await proxy.wait_for(lambda: proxy.count("POST /") == 1, what="the identity lookup")
    await repo.close()
    assert "sts" in session.services()
    assert session.still_open() == []
    with pytest.raises(exc.RepositoryClosedError):
        await change


@pytest.mark.both_backends
async def test_a_failed_request_leaves_the_clients_to_close(
    make_repo: RepoFactory, session: RecordingSession
) -> None:
    async with make_repo(session=session) as repo:
        with pytest.raises(exc.RepositoryNotFoundError):
            await repo.get_content("app")  # nothing bootstrapped
        assert session.still_open() != []
    assert session.still_open() == []


# -- reopen; concurrent first use -----------------------------------------------------------


@pytest.mark.both_backends
async def test_a_closed_repository_reopens_with_new_clients(
    make_repo: RepoFactory, session: RecordingSession, seeded: None
) -> None:
    repo = make_repo(session=session)
    async with repo:
        assert await repo.get_content("app", 1) == b"one"
    first = list(session.created)
    assert first != []
    assert session.still_open() == []
    with pytest.raises(exc.RepositoryClosedError, match="not open"):
        await repo.get_content("app", 1)
    async with repo:
        assert await repo.get_content("app", 1) == b"one"
        assert session.created[: len(first)] == first
        assert session.services()[len(first) :] == [c.service for c in first]
    assert session.still_open() == []


@pytest.mark.both_backends
async def test_concurrent_first_requests_create_one_client_of_each_service(
    make_repo: RepoFactory, session: RecordingSession, seeded: None, backend: str
) -> None:
    async with make_repo(session=session) as repo:
        bodies = await asyncio.gather(*(repo.get_content("app", 1) for _ in range(20)))
        assert bodies == [b"one"] * 20
        assert sorted(session.services()) == (
            ["dynamodb", "s3"] if backend == "dynamodb" else ["s3"]
        )


# -- an unreachable endpoint --------------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.both_backends
async def test_an_unreachable_endpoint_is_told_once_per_repository_while_it_retries(
    make_repo: RepoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The first connection failure that botocore will retry is one INFO record on
    versioned_async.retries (a command line shows it to a person waiting); none
    when no retry is left to make."""
    caplog.set_level(logging.INFO, logger="versioned_async.retries")
    dead = closed_port_url()

    def told() -> list[str]:
        found = [r.getMessage() for r in caplog.records if r.name == "versioned_async.retries"]
        caplog.clear()
        return found

    retrying = AioConfig(retries={"mode": "standard", "total_max_attempts": 3})
    async with make_repo(endpoint_url=dead, client_config=retrying) as repo:
        for _ in range(2):
            with pytest.raises(exc.BackendUnavailableError):
                await repo.list_artifact_names()
    assert told() == [f"cannot reach {dead} (EndpointConnectionError); retrying..."]

    once = AioConfig(retries={"mode": "standard", "total_max_attempts": 1})
    async with make_repo(endpoint_url=dead, client_config=once) as repo:
        with pytest.raises(exc.BackendUnavailableError):
            await repo.list_artifact_names()
    assert told() == []
