"""Names, versions and keys: the repository layout shared with `versioned` 1.0.

Pure functions only. Every argument a caller passes is validated here, once,
with a message that says what is allowed; everything downstream may assume
valid input.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

import attrs

from ._wording import CONTENT_TYPE, WEIGHT, Words
from .exc import InvalidArgumentError, InvalidArgumentTypeError

LATEST: Final = "LATEST"
MAX_VERSION: Final = 999_999
VERSION_WIDTH: Final = 6
MAX_NAME_LENGTH: Final = 200
MAX_ALIAS_LENGTH: Final = 200
DEFAULT_S3_PREFIX: Final = "versioned-artifacts"
DEFAULT_TABLE_NAME: Final = "versioned-artifacts"

#: sort-key bounds that select numbered versions and never LATEST
FIRST_STORED_VERSION: Final = "0" * VERSION_WIDTH
LAST_STORED_VERSION: Final = "9" * VERSION_WIDTH

META_NAME: Final = "artifact_name"
META_SHA256: Final = "artifact_sha256"
RESERVED_METADATA_KEYS: Final = frozenset({META_NAME, META_SHA256})

_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

VersionLike = int | str | None


# -- names -----------------------------------------------------------------------


def _bounded_text(value: object, what: str, limit: int) -> str:
    """``value`` if it is a str of 1 to ``limit`` characters, else raise saying which."""
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise InvalidArgumentError(f"{what} must not be empty")
    if len(value) > limit:
        raise InvalidArgumentError(f"{what} must be at most {limit} characters, got {len(value)}")
    return value


def validate_name(name: object) -> str:
    """Return ``name`` if it can be an artifact name, else raise saying why.

    Names become an S3 "folder" and a DynamoDB partition key, so they are
    printable ASCII (S3 user metadata carries them), contain no ``/``, are not
    ``.`` or ``..``, and do not start with ``__`` (alias partitions do).
    """
    name = _bounded_text(name, "artifact name", MAX_NAME_LENGTH)
    if not _PRINTABLE_ASCII.fullmatch(name):
        raise InvalidArgumentError(
            f"artifact name {name!r} must be printable ASCII (letters, digits, punctuation, space)"
        )
    if "/" in name:
        raise InvalidArgumentError(f"artifact name {name!r} must not contain '/'")
    if name in (".", ".."):
        raise InvalidArgumentError(
            f"artifact name {name!r} is not allowed: it would be a relative path in S3"
        )
    if name.startswith("__"):
        raise InvalidArgumentError(
            f"artifact name {name!r} must not start with '__' (reserved for alias items)"
        )
    if name != name.strip():
        raise InvalidArgumentError(f"artifact name {name!r} must not start or end with white space")
    return name


def validate_alias(alias: object) -> str:
    """Return ``alias`` if it can be an alias name, else raise saying why.

    ``-`` is refused because the alias partition key is ``__{name}-alias``.
    ``/`` is allowed (``team/prod``), as in `versioned`, whose S3-only listing
    reads every object under ``aliases/``; but not an empty, ``.`` or ``..``
    segment: `versioned` (s3pathlib) drops empty segments when it builds the key,
    and ``aws s3 sync``, mounts and the console read ``..`` as a step up, so
    ``../other/aliases/prod`` would be another artifact's alias to them.
    """
    alias = _bounded_text(alias, "alias", MAX_ALIAS_LENGTH)
    if "-" in alias:
        raise InvalidArgumentError(
            f"alias {alias!r} must not contain '-' "
            f"(use '_' instead, e.g. {alias.replace('-', '_')!r})"
        )
    if not _PRINTABLE_ASCII.fullmatch(alias) or alias != alias.strip():
        raise InvalidArgumentError(
            f"alias {alias!r} must be printable ASCII without leading or trailing white space"
        )
    if any(segment in ("", ".", "..") for segment in alias.split("/")):
        raise InvalidArgumentError(
            f"alias {alias!r}: each '/'-separated segment must be non-empty and not '.' or "
            "'..' (`versioned` drops empty segments from S3 keys, and tools that treat keys "
            "as paths resolve '.' and '..', so they would read another alias)"
        )
    return alias


# -- versions --------------------------------------------------------------------


def _version_number(version: int | str) -> int:
    if isinstance(version, bool) or not isinstance(version, int | str):
        raise InvalidArgumentTypeError(
            f"version must be None, 'LATEST', an int or a numeric str, not {type(version).__name__}"
        )
    if isinstance(version, str):
        digits = version.lstrip("0")
        if not version.isascii() or not version.isdigit() or len(digits) > VERSION_WIDTH:
            raise InvalidArgumentError(
                f"version {version[:20]!r} must be 'LATEST' or a number from 1 to {MAX_VERSION}"
            )
        number = int(digits or "0")
    else:
        number = version
    if not 1 <= number <= MAX_VERSION:
        raise InvalidArgumentError(f"version must be from 1 to {MAX_VERSION}, got {version!r}")
    return number


def normalize_version(version: VersionLike) -> str:
    """Public form: ``None``/``"LATEST"`` -> ``"LATEST"``; ``1``/``"0001"`` -> ``"1"``."""
    if version is None or version == LATEST:
        return LATEST
    return str(_version_number(version))


def encode_version(version: VersionLike) -> str:
    """Stored form (sort key and S3 key): ``"LATEST"`` or the number padded to six digits."""
    public = normalize_version(version)
    return public if public == LATEST else public.zfill(VERSION_WIDTH)


def decode_version(stored: str) -> str:
    """Public form of a stored version: ``"000001"`` -> ``"1"``; ``"LATEST"`` stays."""
    return stored if stored == LATEST else stored.lstrip("0") or "0"


def version_number(version: VersionLike) -> int | None:
    """The number of a version, or ``None`` for LATEST."""
    public = normalize_version(version)
    return None if public == LATEST else int(public)


# -- DynamoDB keys ---------------------------------------------------------------


def alias_pk(name: str) -> str:
    """Partition key of the alias items of ``name``."""
    return f"__{name}-alias"


def history_pk(name: str) -> str:
    """Partition key of the alias history records of ``name``.

    Its own partition, so `versioned`'s queries (``pk = name`` and
    ``pk = "__{name}-alias"``) never meet a history record.
    """
    return f"__{name}-alias-history"


def holds_pk(name: str) -> str:
    """Partition key of the retention holds (``protect``) of ``name``'s versions."""
    return f"__{name}-holds"


#: the key of the table record: which bucket and prefix the table serves
#: (:mod:`._policy.table_record`). ``__`` starts no artifact name, and the key ends in
#: neither ``-alias`` nor ``-holds``: no query of either library (``pk = name``,
#: ``pk = "__{name}-alias"``) ever meets it.
TABLE_RECORD_PK: Final = "__table"
TABLE_RECORD_SK: Final = "serves"


def name_from_alias_pk(pk: str) -> str:
    """Inverse of :func:`alias_pk`."""
    return pk.removeprefix("__").removesuffix("-alias")


# -- other arguments -------------------------------------------------------------


def validate_content(content: object) -> bytes | Path:
    """Return content as bytes, or as the Path of a regular file to stream.

    Bytes-like objects and ``os.PathLike`` paths are accepted; ``str`` is
    refused, since it could be text or a path.
    """
    if isinstance(content, bytes):
        return content
    if isinstance(content, bytearray | memoryview):
        return bytes(content)
    if isinstance(content, os.PathLike):
        path = Path(content)
        if not path.is_file():
            raise InvalidArgumentError(f"content path {str(path)!r} is not a readable file")
        return path
    raise InvalidArgumentTypeError(
        "content must be bytes-like (bytes, bytearray, memoryview) or a pathlib.Path, "
        f"not {type(content).__name__}"
        + (
            "; encode text first (text.encode()), or wrap a path in pathlib.Path"
            if isinstance(content, str)
            else ""
        )
    )


def validate_str_mapping(value: object, what: str) -> dict[str, str]:
    """Return a copy of a ``{str: str}`` mapping, or raise saying which entry is wrong."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgumentTypeError(
            f"{what} must be a dict of str to str, not {type(value).__name__}"
        )
    out: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not isinstance(val, str):
            raise InvalidArgumentTypeError(
                f"{what} must map str to str; entry {key!r}: {val!r} is not"
            )
        out[key] = val
    return out


def validate_metadata(metadata: object) -> dict[str, str]:
    """User metadata becomes S3 user metadata: ASCII, no reserved keys, 2 KB in all."""
    out = validate_str_mapping(metadata, "metadata")
    for key, val in out.items():
        if key.lower() in RESERVED_METADATA_KEYS:
            raise InvalidArgumentError(f"metadata key {key!r} is reserved by the repository layout")
        if not key or not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
            raise InvalidArgumentError(
                f"metadata key {key!r} must be non-empty and use only "
                "letters, digits, '_', '-' and '.'"
            )
        if key != key.lower():
            raise InvalidArgumentError(
                f"metadata key {key!r} must be lower case (S3 lower-cases metadata keys)"
            )
        if val and not _PRINTABLE_ASCII.fullmatch(val):
            raise InvalidArgumentError(
                f"metadata value for {key!r} must be printable ASCII (S3 user metadata is ASCII)"
            )
        if val != val.strip():
            raise InvalidArgumentError(
                f"metadata value for {key!r} must not start or end with white space: "
                "HTTP headers (S3 user metadata) drop it, so it would not read back"
            )
    size = sum(len(k) + len(v) for k, v in out.items())
    # S3 allows 2 KB of user metadata including ours: name and sha256 plus their keys.
    budget = 2048 - len(META_NAME) - MAX_NAME_LENGTH - len(META_SHA256) - 64
    if size > budget:
        raise InvalidArgumentError(
            f"metadata is {size} bytes; at most {budget} bytes of keys and values fit in "
            "S3 user metadata beside the repository's own"
        )
    return out


_TAG_TEXT = re.compile(r"[\w .:/=+\-@]*")


def validate_tags(tags: object) -> dict[str, str]:
    """S3 object tags: at most 10; keys 1-128 and values 0-256 characters of
    letters, digits, spaces and ``_ . : / = + - @``; no ``aws:`` key (AWS's own)."""
    out = validate_str_mapping(tags, "tags")
    if len(out) > 10:
        raise InvalidArgumentError(f"S3 allows at most 10 tags on an object, got {len(out)}")
    for key, val in out.items():
        if not 1 <= len(key) <= 128 or len(val) > 256:
            raise InvalidArgumentError(
                f"tag {key!r}: keys must be 1-128 characters and values at most 256"
            )
        if not _TAG_TEXT.fullmatch(key) or not _TAG_TEXT.fullmatch(val):
            raise InvalidArgumentError(
                f"tag {key!r}: {val!r} may only use letters, digits, spaces and _ . : / = + - @"
            )
        if key.lower().startswith("aws:"):
            raise InvalidArgumentError(
                f"tag {key!r}: keys starting with 'aws:' are reserved by AWS"
            )
    return out


#: longest accepted content type: it is an HTTP header and an item attribute
MAX_CONTENT_TYPE_LENGTH = 255


def validate_content_type(content_type: object) -> str | None:
    """A MIME type such as ``application/x-sqlite3``, or ``None``."""
    if content_type is None:
        return None
    if not isinstance(content_type, str):
        raise InvalidArgumentTypeError(
            CONTENT_TYPE, f" must be a str or None, not {type(content_type).__name__}"
        )
    if len(content_type) > MAX_CONTENT_TYPE_LENGTH:
        raise InvalidArgumentError(
            CONTENT_TYPE,
            f" is {len(content_type)} characters; at most "
            f"{MAX_CONTENT_TYPE_LENGTH} are allowed (RFC 6838 keeps MIME types short)",
        )
    if not re.fullmatch(r"[\x21-\x7e]+/[\x21-\x7e]+(; ?[\x20-\x7e]*[\x21-\x7e])*", content_type):
        raise InvalidArgumentError(
            CONTENT_TYPE,
            f" {content_type!r} must be a MIME type such as 'application/octet-stream'"
            " (printable ASCII, no trailing white space)",
        )
    return content_type


#: longest ``actor`` or ``reason`` kept in a history record or a hold: a note, not a document
MAX_NOTE_LENGTH: Final = 1024


def validate_note(what: str | Words, value: object, limit: int = MAX_NOTE_LENGTH) -> str | None:
    """``actor`` or ``reason``: ``None``, or a str of at most ``limit`` characters.

    ``what`` names the argument, as :class:`Words` when the command line has a flag for it.
    """
    if value is None:
        return None
    named = what if isinstance(what, Words) else Words(what, what)
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(named, f" must be a str or None, not {type(value).__name__}")
    if len(value) > limit:
        raise InvalidArgumentError(named, f" must be at most {limit} characters, got {len(value)}")
    return value


def validate_weight(weight: object) -> int:
    """Percent of traffic to the secondary version: an int from 0 to 99."""
    if isinstance(weight, bool) or not isinstance(weight, int):
        raise InvalidArgumentTypeError(
            WEIGHT, f" must be an int from 0 to 99, not {type(weight).__name__}"
        )
    if not 0 <= weight < 100:
        raise InvalidArgumentError(
            WEIGHT, f" must be from 0 to 99 (percent of traffic), got {weight}"
        )
    return weight


def is_sha256_hex(value: object) -> bool:
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None


# -- the repository's place in S3 ------------------------------------------------


def _strip_slashes(prefix: str) -> str:
    return prefix.strip("/")


@attrs.frozen
class Layout:
    """Where a repository's objects live: bucket, prefix and file suffix."""

    bucket: str
    prefix: str = attrs.field(converter=_strip_slashes)
    suffix: str = ""

    def __attrs_post_init__(self) -> None:
        if "/" in self.suffix:
            raise InvalidArgumentError(f"suffix {self.suffix!r} must not contain '/'")

    @property
    def root(self) -> str:
        """Key prefix that holds every artifact: ``"artifacts/"``, or ``""``."""
        return f"{self.prefix}/" if self.prefix else ""

    def artifact_dir(self, name: str) -> str:
        return f"{self.root}{name}/"

    def key(self, name: str, stored_version: str) -> str:
        return f"{self.root}{name}/{stored_version}{self.suffix}"

    def s3uri(self, name: str, stored_version: str) -> str:
        return f"s3://{self.bucket}/{self.key(name, stored_version)}"


def split_s3uri(s3uri: str) -> tuple[str, str]:
    """``"s3://bucket/a/b"`` -> ``("bucket", "a/b")``."""
    bucket, _, key = s3uri.removeprefix("s3://").partition("/")
    return bucket, key


def console_url(s3uri: str) -> str:
    """The AWS console link for an object, in the form `versioned` (s3pathlib) prints."""
    bucket, key = split_s3uri(s3uri)
    return f"https://console.aws.amazon.com/s3/object/{bucket}?prefix={key}"
