"""Who is calling: the AWS identity that alias history records when no ``actor`` is given."""

from __future__ import annotations

import logging

from .._redact import redact_text
from .clients import AwsClients

__all__ = ["caller_arn"]

log = logging.getLogger("versioned_async")


async def caller_arn(clients: AwsClients) -> str | None:
    """The caller's AWS identity (STS GetCallerIdentity ARN), or ``None`` when it
    cannot be had quickly: the default ``actor`` of alias history is only a hint,
    never a reason for an alias change to fail."""
    try:
        sts = await clients.client("sts")
        arn = (await sts.get_caller_identity()).get("Arn")
    except Exception as err:
        log.info(
            "alias history: caller identity unknown (%s); actor left empty",
            redact_text(str(err)),
        )
        return None
    return arn if isinstance(arn, str) else None
