"""Security settings that every S3 request carries: encryption and the bucket owner.

They are applied where botocore builds each request's parameters (an event
handler on the client), not call by call, so no request can forget them:
paginated listings, multipart parts and deletes included. :meth:`S3Options.apply`
is pure, so which parameter goes on which operation is unit-tested.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

import attrs

from .exc import InvalidArgumentError

__all__ = ["SSE_ALGORITHMS", "S3Options"]

#: what S3 accepts as ``ServerSideEncryption``
SSE_ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")
#: operations that write an object, and so take the encryption settings
_WRITES = frozenset({"PutObject", "CreateMultipartUpload", "CopyObject"})
_ACCOUNT_ID = re.compile(r"\d{12}")


def _check_sse(_: Any, __: Any, value: str | None) -> None:
    if value is not None and value not in SSE_ALGORITHMS:
        raise InvalidArgumentError(
            f"server_side_encryption must be one of {', '.join(SSE_ALGORITHMS)} or None, "
            f"not {value!r}"
        )


def _check_owner(_: Any, __: Any, value: str | None) -> None:
    if value is not None and not (isinstance(value, str) and _ACCOUNT_ID.fullmatch(value)):
        raise InvalidArgumentError(
            f"expected_bucket_owner must be a 12-digit AWS account id, not {value!r}"
        )


@attrs.frozen
class S3Options:
    """What every S3 request adds to its parameters.

    :param server_side_encryption: ``"AES256"`` (SSE-S3) or ``"aws:kms"``
        (SSE-KMS) for objects this library writes; ``None`` leaves the bucket's
        default encryption to apply.
    :param sse_kms_key_id: the KMS key for ``"aws:kms"``; ``None`` is the AWS
        managed key.
    :param expected_bucket_owner: the account that must own the bucket; S3
        refuses any request (403) to a bucket someone else owns, so a
        mistyped or squatted bucket name cannot receive or serve content.
    """

    server_side_encryption: str | None = attrs.field(default=None, validator=_check_sse)
    sse_kms_key_id: str | None = None
    expected_bucket_owner: str | None = attrs.field(default=None, validator=_check_owner)

    def __attrs_post_init__(self) -> None:
        if self.sse_kms_key_id is not None:
            if not isinstance(self.sse_kms_key_id, str) or not self.sse_kms_key_id:
                raise InvalidArgumentError("sse_kms_key_id must be a non-empty KMS key id or ARN")
            if not (self.server_side_encryption or "").startswith("aws:kms"):
                raise InvalidArgumentError("sse_kms_key_id needs server_side_encryption='aws:kms'")

    @property
    def is_default(self) -> bool:
        return self == S3Options()

    def apply(self, operation: str, params: MutableMapping[str, Any], members: Any) -> None:
        """Add the settings to one request's ``params``, where ``operation`` takes them.

        ``members`` is the operation's input members (a container of names).
        A value the caller set explicitly is kept.
        """
        if self.expected_bucket_owner is not None:
            if "ExpectedBucketOwner" in members:
                params.setdefault("ExpectedBucketOwner", self.expected_bucket_owner)
            if "ExpectedSourceBucketOwner" in members:  # CopyObject: source in our bucket too
                params.setdefault("ExpectedSourceBucketOwner", self.expected_bucket_owner)
        if operation in _WRITES and self.server_side_encryption is not None:
            params.setdefault("ServerSideEncryption", self.server_side_encryption)
            if self.sse_kms_key_id is not None:
                params.setdefault("SSEKMSKeyId", self.sse_kms_key_id)

    def install(self, s3_client: Any) -> None:
        """Register :meth:`apply` on an (aio)botocore S3 client."""
        if self.is_default:
            return

        def handler(params: MutableMapping[str, Any], model: Any, **_: Any) -> None:
            members = model.input_shape.members if model.input_shape is not None else {}
            self.apply(model.name, params, members)

        s3_client.meta.events.register("before-parameter-build.s3", handler)
