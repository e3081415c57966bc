"""How a multipart upload is cut into parts: within S3's limits, as s3transfer cuts it.

S3 takes at most 10,000 parts, each of at least 5 MiB (but the last) and at
most 5 GiB, and a single PutObject of at most 5 GiB. The part size a caller
asks for (:attr:`~versioned_async.TransferConfig.multipart_chunksize`) is a
wish, adjusted here the way s3transfer's ``ChunksizeAdjuster`` does (doubled
until the parts fit in 10,000, then clamped to 5 MiB-5 GiB), so that a
setting means the same with boto3's ``upload_file`` and with this library.
"""

from __future__ import annotations

__all__ = [
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MAX_SINGLE_PUT",
    "MIN_PART_SIZE",
    "part_count",
    "part_size",
    "uses_multipart",
]

#: S3's limits on a multipart upload and on a single PutObject
MAX_PARTS = 10_000
MIN_PART_SIZE = 5 << 20
MAX_PART_SIZE = 5 << 30
MAX_SINGLE_PUT = 5 << 30


def uses_multipart(size: int, threshold: int) -> bool:
    """Whether ``size`` bytes go as a multipart upload: above ``threshold``, or above
    what one PutObject may carry whatever the threshold."""
    return size > threshold or size > MAX_SINGLE_PUT


def part_size(wanted: int, size: int) -> int:
    """The part size for uploading ``size`` bytes when ``wanted`` was asked for:
    doubled until at most :data:`MAX_PARTS` parts are needed, then kept within
    :data:`MIN_PART_SIZE` and :data:`MAX_PART_SIZE` (s3transfer's order)."""
    chunk = wanted
    while part_count(chunk, size) > MAX_PARTS:
        chunk *= 2
    return min(max(chunk, MIN_PART_SIZE), MAX_PART_SIZE)


def part_count(chunk: int, size: int) -> int:
    """How many parts of ``chunk`` bytes hold ``size`` bytes (one, for nothing at all)."""
    return max(1, -(-size // chunk))
