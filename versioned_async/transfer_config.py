"""How large content moves between S3 and this process: in parts, several at once.

Why: one S3 connection carries far less than an instance's network (AWS
documents a per-connection cap and recommends byte-range requests of 8-16 MiB
in parallel), so a model that loads at start-up over one stream waits on that
cap. Content above :attr:`TransferConfig.multipart_threshold` is downloaded
as parts read in parallel and uploaded as a multipart upload with parts in
flight at once.

The names are those of s3transfer's ``TransferConfig`` (boto3's
``download_file``/``upload_file``), so a setting tuned for one means the same
for the other.
"""

from __future__ import annotations

import attrs

from .exc import InvalidArgumentError, InvalidArgumentTypeError

__all__ = ["MiB", "TransferConfig"]

MiB = 1 << 20


def _positive_int(_instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(
            f"TransferConfig({attribute.name}=...) must be an int, not {type(value).__name__}"
        )
    if value < 1:
        raise InvalidArgumentError(f"TransferConfig({attribute.name}={value}) must be at least 1")


@attrs.frozen
class TransferConfig:
    """How content above a size is transferred: in parts of ``multipart_chunksize``,
    ``max_concurrency`` at a time.

    The defaults suit a service loading a model at start-up: parts of 8 MiB
    (what AWS recommends for byte-range fetches, and s3transfer's default), ten
    in flight (s3transfer's default), from 16 MiB up (below that one request is
    faster than several). Memory stays bounded by the parts in flight, not by
    the content's size. ``max_concurrency=1`` transfers one part at a time.

    An upload's parts are at least 5 MiB and at most 10,000 (S3's limits):
    ``multipart_chunksize`` is raised as needed, as s3transfer does.
    """

    #: content larger than this many bytes is transferred in parts
    multipart_threshold: int = attrs.field(default=16 * MiB, validator=_positive_int)
    #: the size of each part, in bytes
    multipart_chunksize: int = attrs.field(default=8 * MiB, validator=_positive_int)
    #: how many parts are in flight at once, for one download or upload
    max_concurrency: int = attrs.field(default=10, validator=_positive_int)
