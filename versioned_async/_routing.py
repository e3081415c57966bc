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
import random

BUCKETS = 100


def bucket_for_key(name: str, alias: str, routing_key: str | bytes) -> int:
    """The bucket (0..99) of ``routing_key`` for the alias ``name``/``alias``."""
    key = routing_key.encode("utf-8") if isinstance(routing_key, str) else routing_key
    digest = hashlib.sha256(b"%s\x00%s\x00%s" % (name.encode(), alias.encode(), key)).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def random_bucket(rng: random.Random | None = None) -> int:
    """A uniformly random bucket, for requests without a routing key."""
    return (rng or random).randrange(BUCKETS)


def goes_to_secondary(bucket: int, weight: int | None) -> bool:
    """Whether a request in ``bucket`` is served by the secondary version."""
    return weight is not None and bucket < weight
