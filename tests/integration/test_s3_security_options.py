"""Checksums, encryption and the expected bucket owner, seen on the wire."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.proxy import CountingProxy
from versioned_async import Repository, TransferConfig, exc
from versioned_async._catalog import store as catalog_store

OWNER = "123456789012"


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.fixture
async def secured(make_proxied_repo: Any) -> AsyncIterator[Repository]:
    async with make_proxied_repo(
        server_side_encryption="aws:kms",
        sse_kms_key_id="alias/artifacts",
        expected_bucket_owner=OWNER,
    ) as repo:
        await repo.bootstrap()
        yield repo


async def test_every_s3_request_names_the_expected_owner(
    secured: Repository, proxy: CountingProxy, tmp_path: Path
) -> None:
    await secured.put_artifact("app", b"one")
    await secured.publish_artifact_version("app")
    await secured.get_content("app", 1)
    await secured.download("app", tmp_path / "app.bin", version=1)
    await secured.list_artifact_names()
    await secured.purge_artifact("app")
    s3 = [r for r in proxy.requests if r.service == "s3" and r.op != "CreateBucket"]
    assert {r.op for r in s3} >= {"PutObject", "CopyObject", "GetObject", "ListObjectsV2"}
    missing = [r.op for r in s3 if r.headers.get("x-amz-expected-bucket-owner") != OWNER]
    assert missing == []
    copies = [r for r in s3 if r.op == "CopyObject"]
    assert all(r.headers.get("x-amz-source-expected-bucket-owner") == OWNER for r in copies)


async def test_writes_are_encrypted_with_the_kms_key(
    secured: Repository, proxy: CountingProxy, s3: Any
) -> None:
    await secured.put_artifact("app", b"one")
    await secured.publish_artifact_version("app")
    writes = [r for r in proxy.requests if r.op in ("PutObject", "CopyObject")]
    assert len(writes) == 2
    for record in writes:
        assert record.headers.get("x-amz-server-side-encryption") == "aws:kms"
        assert record.headers.get("x-amz-server-side-encryption-aws-kms-key-id") == (
            "alias/artifacts"
        )
    head = await s3.head_object(Bucket="test-artifacts", Key="versioned-artifacts/app/000001")
    assert head["ServerSideEncryption"] == "aws:kms"


async def test_a_put_carries_the_sha256_checksum_of_its_body(
    make_proxied_repo: Any, proxy: CountingProxy
) -> None:
    body = os.urandom(3000)
    async with make_proxied_repo() as repo:  # checksums need no option
        await repo.bootstrap()
        await repo.put_artifact("app", body)
        await repo.publish_artifact_version("app")
    [put] = [r for r in proxy.requests if r.op == "PutObject"]
    assert put.headers.get("x-amz-checksum-sha256") == b64_sha256(body)
    [copy] = [r for r in proxy.requests if r.op == "CopyObject"]
    assert copy.headers.get("x-amz-checksum-algorithm") == "SHA256"


#: multipart from 5 MiB, in parts of 5 MiB (S3's least): a test's upload stays small
SMALL_PARTS = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)


async def test_multipart_parts_carry_their_own_checksums(
    make_proxied_repo: Any, proxy: CountingProxy, tmp_path: Path
) -> None:
    body = os.urandom((12 << 20) + 7)
    source = tmp_path / "model.bin"
    source.write_bytes(body)
    async with make_proxied_repo(transfer_config=SMALL_PARTS) as repo:
        await repo.bootstrap()
        await repo.put_artifact("model", source)
        assert await repo.get_content("model") == body
    parts = sorted(
        (r for r in proxy.requests if r.op == "UploadPart"),
        key=lambda r: int(r.path.split("partNumber=")[1].split("&")[0]),
    )
    assert [r.headers.get("x-amz-checksum-sha256") for r in parts] == [
        b64_sha256(body[i : i + (5 << 20)]) for i in range(0, len(body), 5 << 20)
    ]
    [create] = [r for r in proxy.requests if r.op == "CreateMultipartUpload"]
    assert create.headers.get("x-amz-checksum-algorithm") == "SHA256"


async def test_a_file_changed_during_a_multipart_upload_is_refused_and_nothing_stored(
    make_repo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3: Any
) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(11 << 20))
    real_hash_source = catalog_store.hash_source

    async def hash_then_change_the_file(path: Any) -> tuple[str, int]:
        hashed = await real_hash_source(path)
        source.write_bytes(os.urandom(11 << 20))  # same size, other bytes
        return hashed

    async with make_repo(transfer_config=SMALL_PARTS) as repo:
        await repo.bootstrap()
        await repo.put_artifact("model", b"the old model")
        monkeypatch.setattr(catalog_store, "hash_source", hash_then_change_the_file)
        with pytest.raises(exc.ConflictError, match="changed while it was being uploaded"):
            await repo.put_artifact("model", source)
        monkeypatch.undo()
        assert await repo.get_content("model") == b"the old model"
    uploads = await s3.list_multipart_uploads(Bucket="test-artifacts")
    assert uploads.get("Uploads", []) == []
