"""How a write's arguments become S3 request parameters, and how S3 refuses a condition.

Shared by the single PutObject and the multipart upload, which must write the
same metadata, tags and conditions and read a refusal the same way.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import botocore.exceptions as bce

from .errors import error_code

__all__ = ["b64_sha256", "condition_failed", "object_params", "write_conditions"]


def object_params(
    metadata: Mapping[str, str], content_type: str | None, tags: Mapping[str, str] | None
) -> dict[str, Any]:
    """The metadata, content type and tags of a new object, as S3 takes them."""
    kwargs: dict[str, Any] = {"Metadata": dict(metadata)}
    if content_type is not None:
        kwargs["ContentType"] = content_type
    if tags:
        kwargs["Tagging"] = "&".join(
            f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in tags.items()
        )
    return kwargs


def write_conditions(if_match: str | None, if_none_match: bool) -> dict[str, str]:
    """S3's conditional-write headers: over that ETag only, or where no object is."""
    conditions = {} if if_match is None else {"IfMatch": if_match}
    if if_none_match:
        conditions["IfNoneMatch"] = "*"
    return conditions


def condition_failed(err: bce.ClientError, if_match: str | None, if_none_match: bool) -> bool:
    """Whether a conditional write was refused because of its condition.

    412: the condition is false. 409 ``ConditionalRequestConflict``: S3 saw a
    concurrent conditional write to the key (retry after reading again). A
    404 under ``If-Match``: the object it named is gone.
    """
    if if_match is None and not if_none_match:
        return False
    code = error_code(err)
    if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
        return True
    return if_match is not None and code in ("NoSuchKey", "404", "NotFound")


def b64_sha256(hex_digest: str) -> str:
    """S3's checksum form of a sha256: base64 of the raw digest."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")
