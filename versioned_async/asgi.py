"""Artifacts a service loads by alias when it starts, swapped in when the alias moves.

FastAPI's lifespan documentation loads a model into a dict before the first request
and clears it at shutdown. :class:`LiveArtifacts` is that dict, kept up to date::

    artifacts = LiveArtifacts(open_repository, {"model": Follow("fraud-model", "prod")})
    app = FastAPI(lifespan=artifacts.lifespan)

    @app.get("/predict")
    async def predict() -> dict[str, str]:
        return {"version": artifacts["model"].version}

At start-up it opens the repository and loads every artifact at once: it resolves
each alias, picks the version (``routing_key`` keeps an instance on one side of a
canary), reads the content (checked against its sha256) and hands it to the
artifact's ``load`` in a worker thread. A failure of any of them fails the start-up
with an error that says what to configure. Then one task per artifact follows its
alias with :meth:`~versioned_async.ArtifactRepository.watch_alias` and swaps the
new version in once it is loaded: one assignment, so a request sees the old
:class:`Loaded` or the new one, never a mix. A load that fails keeps the old one
serving, logs why, and is tried again at the next poll. At shutdown the watchers
are cancelled and awaited, and the repository closed.

Why a repository with a :class:`~versioned_async.LocalCache`: a restart while AWS
is unreachable then starts from the cache (the last alias and content this
service read, served stale with a warning), and the watchers pick up any move once
AWS is back. Without one such a start-up fails and says so.

Nothing here imports a web framework: the ASGI lifespan is an async context
manager given the app, and the state it yields is what Starlette and FastAPI copy
into ``request.state``. Any ASGI server and framework that runs a lifespan can use
it, and other services can use :class:`LiveArtifacts` as ``async with``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

import attrs

from . import _layout
from ._base import ArtifactRepository
from ._gather import gather_or_cancel
from ._watch import check_polling
from .cache.reader import sha256_of
from .exc import (
    BackendUnavailableError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RepositoryClosedError,
    VersionedError,
)
from .models import Alias

__all__ = ["ArtifactsUnavailableError", "Follow", "LiveArtifacts", "Loaded"]

log = logging.getLogger("versioned_async")

_T = TypeVar("_T")


class Follow(Generic[_T]):
    """Which artifact to serve: the version ``alias`` of ``name`` points at, turned into
    the object handlers use by ``load`` (content as ``bytes`` when none is given).

    ``load`` runs in a worker thread (``asyncio.to_thread``), so parsing a large model
    does not stop the event loop serving requests with the one loaded before.
    """

    name: str
    alias: str
    load: Callable[[bytes], _T] | None

    @overload
    def __init__(self: Follow[bytes], name: str, alias: str) -> None: ...

    @overload
    def __init__(self, name: str, alias: str, *, load: Callable[[bytes], _T]) -> None: ...

    def __init__(self, name: str, alias: str, *, load: Callable[[bytes], _T] | None = None) -> None:
        _layout.validate_name(name)
        _layout.validate_alias(alias)
        if load is not None and not callable(load):
            raise InvalidArgumentTypeError(
                f"load must be a function from bytes to the loaded object, not {load!r}"
            )
        self.name, self.alias, self.load = name, alias, load

    def __repr__(self) -> str:
        return f"Follow({self.name!r}, {self.alias!r})"


@attrs.frozen
class Loaded(Generic[_T]):
    """One artifact as a service serves it: immutable, so a handler that holds it keeps
    a consistent view (value, version and sha256 together) while a newer one is
    swapped in."""

    #: the key it is served under (``artifacts["model"]``)
    key: str
    name: str
    alias: str
    #: the version served (``"3"``): the alias's primary, or its canary for this
    #: service's ``routing_key``
    version: str
    #: of the content, which the read checked against the sha256 the version records
    sha256: str
    size: int
    #: what ``load`` made of the content (the content itself without a ``load``)
    value: _T
    #: when this version was loaded here (UTC)
    loaded_at: datetime


class ArtifactsUnavailableError(VersionedError):
    """A service could not load an artifact at start-up; the message says what to do,
    and the error it met is its ``__cause__``. ``key`` is the artifact's key."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


def _as_follow(key: object, spec: object) -> Follow[Any]:
    if not isinstance(key, str) or not key:
        raise InvalidArgumentTypeError(f"artifact keys must be non-empty str, not {key!r}")
    if isinstance(spec, Follow):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(part, str) for part in spec):
        return Follow(spec[0], spec[1])
    raise InvalidArgumentTypeError(
        f"artifact {key!r} must be Follow(name, alias, load=...) or a (name, alias) "
        f"tuple, not {spec!r}"
    )


def _why(key: str, follow: Follow[Any], repo: ArtifactRepository, err: BaseException) -> str:
    """What a failed start-up load tells the operator to do."""
    what = f"could not load {key!r} (alias {follow.alias!r} of {follow.name!r}) at start-up"
    if isinstance(err, BackendUnavailableError):
        if repo.cache is None:
            return (
                f"{what}: {err}. Without a LocalCache a service cannot start while AWS is "
                "unreachable: give the repository cache=LocalCache(directory) on a "
                "persistent disk, and a restart serves the last version it loaded"
            )
        return (
            f"{what}: {err}. The LocalCache at {str(repo.cache.directory)!r} has not seen "
            "this alias and its version yet (or stale_if_error is off): start once with AWS "
            "reachable, with this cache directory"
        )
    return f"{what}: {err}"


_RepositorySource = ArtifactRepository | Callable[[], ArtifactRepository]


class LiveArtifacts:
    """Artifacts loaded by alias at start-up and swapped in when their alias moves.

    :param repository: a function that makes the repository (called at each start,
        typically building a :class:`~versioned_async.Repository` with a
        :class:`~versioned_async.LocalCache`): it is opened, and closed at shutdown
        with its cache. Or a repository: opened if it is not open yet and then
        closed at shutdown; its cache is left to you.
    :param artifacts: key -> :class:`Follow` (or a ``(name, alias)`` tuple, for the
        content as bytes). Handlers read ``artifacts[key]``, a :class:`Loaded`; ``key
        in artifacts``, ``len`` and iteration (the keys) work as on a dict.
    :param routing_key: which side of a split alias this service serves, sticky
        across restarts (an instance id); without it the primary ``version``.
    :param watch: follow the aliases and swap new versions in (``False``: load once).
    :param interval: seconds between polls of each alias, times ``1 ± jitter``
        (see :meth:`~versioned_async.ArtifactRepository.watch_alias`).
    :param state_key: the key :meth:`lifespan` yields it under, so handlers may also
        read ``request.state.artifacts``.
    """

    def __init__(
        self,
        repository: _RepositorySource,
        artifacts: Mapping[str, Follow[Any] | tuple[str, str]],
        *,
        routing_key: str | bytes | None = None,
        watch: bool = True,
        interval: float = 30.0,
        jitter: float = 0.2,
        state_key: str = "artifacts",
    ) -> None:
        if not isinstance(repository, ArtifactRepository) and not callable(repository):
            raise InvalidArgumentTypeError(
                "repository must be a Repository or S3OnlyRepository, or a function that "
                f"makes one, not {repository!r}"
            )
        if not isinstance(artifacts, Mapping) or not artifacts:
            raise InvalidArgumentError(
                "artifacts must be a non-empty dict of key -> Follow(name, alias), "
                f"got {artifacts!r}"
            )
        if routing_key is not None and not isinstance(routing_key, str | bytes):
            raise InvalidArgumentTypeError(
                f"routing_key must be str or bytes, not {type(routing_key).__name__}: "
                "convert it first (str(instance_id))"
            )
        self._source = repository
        self._follows = {key: _as_follow(key, spec) for key, spec in artifacts.items()}
        self._keys = {follow: key for key, follow in self._follows.items()}
        self._routing_key = routing_key
        self._watch = bool(watch)
        self._interval, self._jitter = check_polling(interval, jitter)
        self.state_key = state_key
        self._served: dict[str, Loaded[Any]] = {}
        #: key -> the alias as it was when the version served was chosen
        self._aliases: dict[str, Alias] = {}
        #: key -> why the last swap failed (cleared by the next one that works)
        self._failures: dict[str, str] = {}
        self._repository: ArtifactRepository | None = None
        self._watchers: list[asyncio.Task[None]] = []
        #: what start() opened, closed in reverse at stop()
        self._opened = contextlib.AsyncExitStack()

    # -- what handlers read ----------------------------------------------------------

    @overload
    def __getitem__(self, key: str) -> Loaded[Any]: ...

    @overload
    def __getitem__(self, key: Follow[_T]) -> Loaded[_T]: ...

    def __getitem__(self, key: str | Follow[Any]) -> Loaded[Any]:
        """The artifact served now under ``key`` (or for the :class:`Follow` given to
        the constructor: typed by its ``load``)."""
        if isinstance(key, Follow):
            if key not in self._keys:
                raise KeyError(key)
            key = self._keys[key]
        if key not in self._follows:
            raise KeyError(key)
        if not self._served:
            raise RepositoryClosedError(
                f"artifact {key!r} is not loaded: LiveArtifacts serves between start-up "
                "and shutdown (FastAPI(lifespan=artifacts.lifespan), or async with artifacts)"
            )
        return self._served[key]

    def __contains__(self, key: object) -> bool:
        return key in self._follows or key in self._keys

    def __iter__(self) -> Iterator[str]:
        """The keys, as given to the constructor."""
        return iter(self._follows)

    def __len__(self) -> int:
        return len(self._follows)

    @property
    def ready(self) -> bool:
        """Whether every artifact is loaded: ``True`` from start-up to shutdown."""
        return len(self._served) == len(self._follows)

    @property
    def versions(self) -> dict[str, str]:
        """key -> the version served now, for a readiness or health endpoint."""
        return {key: loaded.version for key, loaded in self._served.items()}

    @property
    def failures(self) -> dict[str, str]:
        """key -> why its newest version could not be swapped in (it serves the one
        before), until a swap works."""
        return dict(self._failures)

    # -- start-up and shutdown -------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[dict[str, Any]]:
        """The ASGI lifespan: ``FastAPI(lifespan=artifacts.lifespan)`` or
        ``Starlette(lifespan=artifacts.lifespan)``. Yields ``{state_key: self}``, the
        lifespan state Starlette copies into each ``request.state``."""
        async with self:
            yield {self.state_key: self}

    async def __aenter__(self) -> LiveArtifacts:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open the repository, load every artifact at once, start the watchers.

        :raises ArtifactsUnavailableError: an artifact could not be loaded; nothing is
            left open.
        """
        if self._repository is not None:
            raise RepositoryClosedError("these LiveArtifacts are started already")
        repo = self._source() if callable(self._source) else self._source
        if not isinstance(repo, ArtifactRepository):
            raise InvalidArgumentTypeError(
                f"the repository function returned {repo!r}, not a Repository"
            )
        self._repository = repo
        try:
            if callable(self._source) and repo.cache is not None:
                # made by the function given, so nobody else holds its cache: closed
                # last, its queued lookups written, so the next start finds them
                self._opened.push_async_exit(repo.cache)
            if not repo.is_open:
                await self._opened.enter_async_context(repo)
            loaded = await gather_or_cancel(
                *(self._first_load(repo, key, follow) for key, follow in self._follows.items())
            )
        except BaseException:
            await self._release()
            raise
        self._served = {served.key: served for served, _alias in loaded}
        self._aliases = {served.key: alias for served, alias in loaded}
        if self._watch:
            self._watchers = [
                asyncio.create_task(self._follow(repo, key, follow), name=f"watch {key}")
                for key, follow in self._follows.items()
            ]

    async def stop(self) -> None:
        """Cancel the watchers and wait for them, then close the repository. Safe to
        call twice."""
        watchers, self._watchers = self._watchers, []
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await self._release()

    async def _release(self) -> None:
        self._repository = None
        self._served, self._aliases, self._failures = {}, {}, {}
        opened, self._opened = self._opened, contextlib.AsyncExitStack()
        await opened.aclose()

    # -- loading ---------------------------------------------------------------------

    async def _first_load(
        self, repo: ArtifactRepository, key: str, follow: Follow[Any]
    ) -> tuple[Loaded[Any], Alias]:
        try:
            alias = await repo.resolve_alias(follow.name, follow.alias)
            version = alias.choose_version(self._routing_key)
            return await self._load(repo, key, follow, version), alias
        except Exception as err:
            raise ArtifactsUnavailableError(_why(key, follow, repo, err), key) from err

    async def _load(
        self, repo: ArtifactRepository, key: str, follow: Follow[Any], version: str
    ) -> Loaded[Any]:
        content = await repo.get_content(follow.name, version)
        sha256 = await sha256_of(content)  # what the read checked it against
        value = content if follow.load is None else await asyncio.to_thread(follow.load, content)
        log.info("serving %r: version %s of %r (alias %r)", key, version, follow.name, follow.alias)
        return Loaded(
            key=key,
            name=follow.name,
            alias=follow.alias,
            version=version,
            sha256=sha256,
            size=len(content),
            value=value,
            loaded_at=datetime.now(timezone.utc),
        )

    async def _follow(self, repo: ArtifactRepository, key: str, follow: Follow[Any]) -> None:
        """Swap in each version the alias moves to. A failed load keeps the one served,
        and the watch starts again after a poll's interval: its first answer is the
        alias as it is then, so the load is tried again (or the alias moved on)."""
        while True:
            changes = repo.watch_alias(
                follow.name, follow.alias, interval=self._interval, jitter=self._jitter
            )
            try:
                async with contextlib.aclosing(changes):
                    async for alias in changes:
                        if alias == self._aliases[key]:
                            continue  # the state loaded from (the watch's first answer)
                        version = alias.choose_version(self._routing_key)
                        # LATEST is mutable: the alias moved, so its content may have
                        if version != self._served[key].version or version == _layout.LATEST:
                            self._served[key] = await self._load(repo, key, follow, version)
                        self._aliases[key] = alias
                        self._failures.pop(key, None)
            except RepositoryClosedError:
                return
            except Exception as err:
                served = self._served[key]
                self._failures[key] = f"{type(err).__name__}: {err}"
                log.warning(
                    "could not swap in the new version of %r (alias %r of %r): %s; still "
                    "serving version %s, trying again at the next poll",
                    key,
                    follow.alias,
                    follow.name,
                    err,
                    served.version,
                )
            await asyncio.sleep(self._interval)
