"""Which version of a split alias serves a request.

An alias with a secondary version sends ``weight`` percent of traffic to it.
Routing is a pure function of a bucket in 0..99 and the weight: a request goes
to the secondary version when its bucket is below the weight. A routing key
(user id, tenant, request id) is hashed into a bucket with sha256 of the alias
identity and the key, so it is stable across processes and Python hash seeds,
and widening a canary from 10 to 50 only moves keys onto the canary.
"""

from __future__ import annotations

import hashlib
import importlib
import random
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from ..exc import InvalidArgumentTypeError

BUCKETS = 100

_K = TypeVar("_K")
_V = TypeVar("_V")


def key_bytes(routing_key: object, what: str = "routing_key") -> bytes:
    """The bytes a routing key is hashed as: a str's UTF-8, or the bytes themselves.

    Anything else is refused, not coerced: ``str(1)`` and ``b"1"`` would route
    the same, so an int user id passed by mistake would silently share a bucket
    with another key type; and a refusal only when an alias happens to split
    would fail in production, not in tests.
    """
    if isinstance(routing_key, str):
        return routing_key.encode("utf-8")
    if isinstance(routing_key, bytes | bytearray | memoryview):
        return bytes(routing_key)
    raise InvalidArgumentTypeError(
        f"{what} must be a str or bytes (or None for a random choice), "
        f"not {type(routing_key).__name__}: convert it first, e.g. str(user_id)"
    )


def _as_sequence(routing_keys: Iterable[_K]) -> Sequence[_K]:
    """A batch of keys as a sequence (read twice when a key is wrong); one key alone is
    refused: a str would be routed character by character."""
    if isinstance(routing_keys, list | tuple):
        return routing_keys
    if isinstance(routing_keys, str | bytes | bytearray | memoryview):
        raise InvalidArgumentTypeError(
            f"routing_keys must be an iterable of keys, not a {type(routing_keys).__name__} "
            "(which would route each character): wrap one key in a list"
        )
    return list(routing_keys)


def key_list(routing_keys: Iterable[object]) -> Sequence[str | bytes]:
    """The keys of a batch, each a str or bytes, else raise naming the wrong one."""
    keys = _as_sequence(routing_keys)
    for position, key in enumerate(keys):
        if not isinstance(key, str | bytes):
            key_bytes(key, f"routing_keys[{position}]")
    return keys  # type: ignore[return-value]  # checked just above


def bucket_for_key(name: str, alias: str, routing_key: str | bytes) -> int:
    """The bucket (0..99) of ``routing_key`` for the alias ``name``/``alias``."""
    key = key_bytes(routing_key)
    digest = hashlib.sha256(b"%s\x00%s\x00%s" % (name.encode(), alias.encode(), key)).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def random_bucket(rng: random.Random | None = None) -> int:
    """A uniformly random bucket, for requests without a routing key."""
    return (rng or random).randrange(BUCKETS)


def goes_to_secondary(bucket: int, weight: int | None) -> bool:
    """Whether a request in ``bucket`` is served by the secondary version."""
    return weight is not None and bucket < weight


def outcome_by_bucket(weight: int | None, secondary: _V, primary: _V) -> list[_V]:
    """What serves each bucket, 0 to 99: ``secondary`` below ``weight``, else ``primary``.

    :func:`goes_to_secondary` for every bucket at once, by slicing rather than 100 calls,
    so a small batch of :func:`route_keys` costs no more to set up than a large one.
    """
    below = min(max(weight or 0, 0), BUCKETS)
    return [secondary] * below + [primary] * (BUCKETS - below)


def choose(
    name: str,
    alias: str,
    primary: str,
    secondary: str | None,
    weight: int | None,
    routing_key: str | bytes | None,
) -> str:
    """The version (``primary`` or ``secondary``, in whatever form they are given) that
    serves a request to the alias ``name``/``alias``.

    Sticky for a ``routing_key``, weighted random without one. A key of another
    type is refused whether or not the alias splits (see :func:`key_bytes`).
    Both :meth:`~versioned_async.Alias.choose_version` (public version strings)
    and the read path (stored ones, with no model built) route through this.
    """
    if secondary is None:
        if routing_key is not None:
            key_bytes(routing_key)  # refused whether or not the alias splits today
        return primary
    bucket = random_bucket() if routing_key is None else bucket_for_key(name, alias, routing_key)
    return secondary if goes_to_secondary(bucket, weight) else primary


def _fast_sha256() -> Callable[[bytes], Any]:
    """CPython's sha256 constructor without hashlib's dispatch: same digest, less overhead
    per call, which is most of the cost for short routing keys."""
    for module in ("_sha2", "_sha256"):  # 3.12+ / 3.10-3.11
        try:
            return importlib.import_module(module).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    return hashlib.sha256


_sha256 = _fast_sha256()
#: the digest's first 8 bytes as a big-endian integer, read in place: about 10% faster
#: per key than ``int.from_bytes(digest[:8], "big")``, which copies the slice first
_first_uint64 = struct.Struct(">Q").unpack_from
#: every bucket is its own outcome: :func:`route_keys` with this table gives the buckets
_BUCKETS = tuple(range(BUCKETS))


def route_keys(
    name: str, alias: str, routing_keys: Iterable[str | bytes], outcomes: Sequence[_V]
) -> list[_V]:
    """``outcomes[bucket]`` for each key's bucket (:func:`bucket_for_key`), in one pass.

    ``outcomes`` has one entry per bucket (100), so the weight comparison is a
    lookup made once per bucket, not once per key. Measured per key, this loop
    is the cost of a batch (about 0.5 us a key on one core), so it is written
    for speed: one comprehension per key type, no function call of ours per
    key. A batch of str keys (the common case: user ids) takes the first
    comprehension, which encodes with ``str.encode`` unbound, so a key of
    another type stops it with ``TypeError`` instead of being checked key by
    key; a batch of bytes takes the second the same way; only a mixed batch
    pays a type check per key. A key that is neither str nor bytes raises
    :class:`InvalidArgumentTypeError` naming its position.
    """
    keys = _as_sequence(routing_keys)
    prefix = b"%s\x00%s\x00" % (name.encode(), alias.encode())
    sha, first, encode = _sha256, _first_uint64, str.encode
    try:  # all str
        return [outcomes[first(sha(prefix + encode(k)).digest())[0] % BUCKETS] for k in keys]  # type: ignore[arg-type]
    except TypeError:
        pass
    try:  # all bytes (bytearray and memoryview concatenate as bytes too)
        return [outcomes[first(sha(prefix + k).digest())[0] % BUCKETS] for k in keys]  # type: ignore[operator]
    except TypeError:
        pass
    try:  # a mix: the str keys encoded, then all hashed as bytes
        encoded = [encode(k) if isinstance(k, str) else k for k in keys]
        return [outcomes[first(sha(prefix + k).digest())[0] % BUCKETS] for k in encoded]
    except TypeError:
        key_list(keys)  # raises, naming the first key that is not a str or bytes
        raise


def buckets_for_keys(name: str, alias: str, routing_keys: Iterable[str | bytes]) -> list[int]:
    """:func:`bucket_for_key` for many keys at once, about 3x faster than a loop of it.

    A key of another type raises :class:`InvalidArgumentTypeError` naming its
    position (see :func:`route_keys`).
    """
    return route_keys(name, alias, routing_keys, _BUCKETS)
