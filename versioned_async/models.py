"""The public models: :class:`Artifact` (one version) and :class:`Alias`.

Models only describe; they are frozen attrs classes with `versioned`'s field
names, and versions in their public form (``"LATEST"``, ``"1"``). A model read
from a :class:`~versioned_async.Repository` remembers it, so that
``await artifact.get_content()`` works; that link is not a field, so it takes no
part in equality, ``repr``, ``attrs.asdict`` or cattrs.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from . import _layout
from ._policy import routing
from .exc import InvalidArgumentError, RepositoryClosedError

if TYPE_CHECKING:
    from ._base import BaseRepository

__all__ = ["Alias", "AliasChange", "AliasHistoryPage", "Artifact", "Hold", "RolloutResult"]

_REPO_ATTR = "_versioned_async_repository"


def _bound_repository(model: object) -> BaseRepository:
    repo: BaseRepository | None = getattr(model, _REPO_ATTR, None)
    if repo is None:
        raise RepositoryClosedError(
            f"this {type(model).__name__} was not read from a Repository; "
            "use the repository's get_content() instead"
        )
    return repo


def _snapshot(model: object) -> dict[str, Any]:
    """A model's pickled state: its fields, not the repository bound to it (open clients
    and locks, which do not pickle, and mean nothing in another process). So a model
    read here is a snapshot a worker of another process (Dask, Spark,
    multiprocessing) can route keys with; it reads content through a repository of
    its own."""
    state = dict(model.__dict__)
    state.pop(_REPO_ATTR, None)
    return state


def bind(model: Any, repo: BaseRepository) -> None:
    """Attach the repository a model was read from (not a field: invisible to eq/repr)."""
    object.__setattr__(model, _REPO_ATTR, repo)


def _frozen_mapping(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return dict(value or {})


@attrs.frozen(slots=False)
class Artifact:
    """One version of an artifact: LATEST or an immutable numbered version.

    ``size``, ``content_type`` and ``metadata`` are the S3 object's. For a
    version whose item `versioned` 1.0 wrote (it records none of them) the
    repository reads them off the object; they are ``None``/empty only when
    that object no longer holds the content the item records.
    """

    name: str
    version: str
    update_at: datetime
    sha256: str
    s3uri: str
    size: int | None = None
    content_type: str | None = None
    metadata: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_mapping, hash=False)

    #: pickled as a snapshot, without its repository (see :func:`_snapshot`)
    __getstate__ = _snapshot

    @property
    def is_latest(self) -> bool:
        return self.version == _layout.LATEST

    @property
    def console_url(self) -> str:
        """Link to the object in the AWS S3 console."""
        return _layout.console_url(self.s3uri)

    async def get_content(self) -> bytes:
        """This version's content, checked against :attr:`sha256`."""
        return await _bound_repository(self)._read_verified(self)


@attrs.frozen(slots=False)
class Alias:
    """A named pointer to a version, optionally splitting traffic with a second one.

    With a ``secondary_version``, ``secondary_version_weight`` percent of
    traffic goes to it and the rest to ``version``.
    """

    name: str
    alias: str
    update_at: datetime
    version: str
    secondary_version: str | None
    secondary_version_weight: int | None
    version_s3uri: str
    secondary_version_s3uri: str | None

    #: pickled as a snapshot, without its repository (see :func:`_snapshot`)
    __getstate__ = _snapshot

    @property
    def is_split(self) -> bool:
        return self.secondary_version is not None

    def choose_version(self, routing_key: str | bytes | None = None) -> str:
        """The version that serves a request: ``"2"`` or ``"3"`` by weight.

        With a ``routing_key`` (a str or bytes) the choice is deterministic for
        that key (sticky canary); without one it is a weighted random choice.
        A key of another type (an int user id, ...) raises
        :class:`~versioned_async.exc.InvalidArgumentTypeError` (a ``TypeError``),
        whether or not the alias splits: convert it first (``str(user_id)``).
        """
        return routing.choose(
            self.name,
            self.alias,
            self.version,
            self.secondary_version,
            self.secondary_version_weight,
            routing_key,
        )

    def choose_versions(self, routing_keys: Iterable[str | bytes]) -> list[str]:
        """:meth:`choose_version` for many keys at once (batch jobs): the same
        answers, about 3x faster than calling it in a loop."""
        if self.secondary_version is None:
            return [self.version for _ in routing.key_list(routing_keys)]
        return routing.route_keys(
            self.name,
            self.alias,
            routing_keys,
            routing.outcome_by_bucket(
                self.secondary_version_weight, self.secondary_version, self.version
            ),
        )

    def random_artifact(self, rng: random.Random | None = None) -> str:
        """The s3uri of a version picked at random by weight, as `versioned` does."""
        if self.secondary_version_s3uri is None:
            return self.version_s3uri
        bucket = routing.random_bucket(rng)
        if routing.goes_to_secondary(bucket, self.secondary_version_weight):
            return self.secondary_version_s3uri
        return self.version_s3uri

    async def get_version_content(self) -> bytes:
        """Content of the primary version."""
        return await _bound_repository(self).get_content(self.name, self.version)

    async def get_secondary_version_content(self) -> bytes:
        """Content of the secondary version; ``ValueError`` when the alias does not split."""
        if self.secondary_version is None:
            raise InvalidArgumentError(
                f"alias {self.alias!r} of {self.name!r} has no secondary version"
            )
        return await _bound_repository(self).get_content(self.name, self.secondary_version)


@attrs.frozen(slots=False)
class AliasChange:
    """One entry of an alias's history (audit trail), newest first in listings.

    ``before``/``after`` are the alias as it was and became (``None``: it did
    not exist / was deleted). ``action`` is ``"put"``, ``"delete"``,
    ``"rollback"``, ``"rollout"`` or ``"external"`` (a change made outside
    versioned_async, e.g. by `versioned` 1.0, found when the alias no longer
    matched its newest record). ``recorded`` is ``False`` for an external
    change detected by this listing but not yet written down; the next change
    to the alias records it. ``page_token`` resumes a listing after this entry.
    """

    name: str
    alias: str
    changed_at: datetime
    action: str
    before: Alias | None
    after: Alias | None
    actor: str | None = None
    reason: str | None = None
    recorded: bool = True
    page_token: str | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen(slots=False)
class AliasHistoryPage:
    """A page of :class:`AliasChange`, newest first; ``next_page_token`` is
    ``None`` on the last page."""

    changes: list[AliasChange]
    next_page_token: str | None


@attrs.frozen(slots=False)
class Hold:
    """A retention hold on a published version (``Repository.protect``): purges and
    ``delete_artifact_version`` leave the version alone until it is unprotected.

    ``version`` is in public form (``"3"``); ``reason`` is the caller's note.
    """

    name: str
    version: str
    created_at: datetime
    reason: str | None = None


@attrs.frozen(slots=False)
class RolloutResult:
    """What ``Repository.rollout`` did, or with ``dry_run``, would do.

    ``start`` is the alias as the roll-out found it; ``steps`` the alias after
    each step, in order (planned ones carry ``start.update_at``: they were not
    written). ``final`` is the alias the roll-out left, ``None`` for a dry run.
    ``to_version`` is in public form.
    """

    name: str
    alias: str
    to_version: str
    start: Alias
    steps: list[Alias]
    final: Alias | None
    dry_run: bool = False
