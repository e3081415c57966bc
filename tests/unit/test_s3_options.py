"""S3Options: which security parameter goes on which S3 operation."""

from __future__ import annotations

from typing import Any

import pytest

from versioned_async import exc
from versioned_async._s3_options import S3Options

OWNER = "123456789012"
GET_MEMBERS = {"Bucket", "Key", "ExpectedBucketOwner"}
COPY_MEMBERS = {"Bucket", "Key", "CopySource", "ExpectedBucketOwner", "ExpectedSourceBucketOwner"}


def applied(options: S3Options, operation: str, members: set[str], **params: Any) -> Any:
    options.apply(operation, params, members)
    return params


def test_the_owner_goes_on_every_operation_that_takes_it() -> None:
    options = S3Options(expected_bucket_owner=OWNER)
    assert applied(options, "GetObject", GET_MEMBERS) == {"ExpectedBucketOwner": OWNER}
    assert applied(options, "CopyObject", COPY_MEMBERS) == {
        "ExpectedBucketOwner": OWNER,
        "ExpectedSourceBucketOwner": OWNER,
    }
    assert applied(options, "CreateBucket", {"Bucket"}) == {}


def test_encryption_goes_on_writes_only() -> None:
    options = S3Options("aws:kms", "alias/artifacts")
    sse = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/artifacts"}
    for write in ("PutObject", "CreateMultipartUpload", "CopyObject"):
        assert applied(options, write, COPY_MEMBERS) == sse
    assert applied(options, "GetObject", GET_MEMBERS) == {}
    assert applied(options, "UploadPart", GET_MEMBERS) == {}


def test_sse_s3_sends_no_key_id() -> None:
    assert applied(S3Options("AES256"), "PutObject", GET_MEMBERS) == {
        "ServerSideEncryption": "AES256"
    }


def test_a_value_set_by_the_call_is_kept() -> None:
    options = S3Options("AES256", expected_bucket_owner=OWNER)
    params = applied(
        options, "PutObject", GET_MEMBERS, ServerSideEncryption="aws:kms", ExpectedBucketOwner="1"
    )
    assert params == {"ServerSideEncryption": "aws:kms", "ExpectedBucketOwner": "1"}


def test_defaults_add_nothing() -> None:
    assert S3Options().is_default
    assert applied(S3Options(), "PutObject", COPY_MEMBERS) == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"server_side_encryption": "aes256"}, "must be one of AES256, aws:kms"),
        ({"server_side_encryption": "AES256", "sse_kms_key_id": "k"}, "needs server_side_enc"),
        ({"sse_kms_key_id": "k"}, "needs server_side_encryption='aws:kms'"),
        ({"server_side_encryption": "aws:kms", "sse_kms_key_id": ""}, "non-empty KMS key"),
        ({"expected_bucket_owner": "12345"}, "12-digit AWS account id"),
        ({"expected_bucket_owner": 123456789012}, "12-digit AWS account id"),
    ],
)
def test_bad_settings_are_refused_with_what_to_do(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(exc.InvalidArgumentError, match=message):
        S3Options(**kwargs)
