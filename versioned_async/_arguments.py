"""The checks of the façade's arguments that :mod:`._layout` does not make: where a
repository is, datetimes, download targets, uploads, searches, purges. Each raises
:class:`~versioned_async.exc.InvalidArgumentError` (or its ``TypeError`` kin)
saying what is allowed, before any request."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from . import _layout
from ._catalog import PurgeRules, Upload
from ._policy import retention
from ._wording import ALIAS, VERSION
from .exc import FolderNotFoundError, InvalidArgumentError, InvalidArgumentTypeError

__all__ = [
    "aware",
    "check_folder",
    "check_location",
    "download_target",
    "purge_rules",
    "search_arguments",
    "upload_arguments",
]


def check_location(s3_bucket: object, s3_prefix: object, suffix: object) -> None:
    """Refuse a repository location that is not three strings and a bucket."""
    for what, value in (("s3_bucket", s3_bucket), ("s3_prefix", s3_prefix), ("suffix", suffix)):
        if not isinstance(value, str):
            raise InvalidArgumentTypeError(f"{what} must be a str, not {type(value).__name__}")
    if not s3_bucket:
        raise InvalidArgumentError("s3_bucket is required: the bucket that holds the content")


def aware(value: object, what: str) -> datetime:
    """A timezone-aware datetime, or a clear error (a naive one is ambiguous)."""
    if not isinstance(value, datetime):
        raise InvalidArgumentTypeError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgumentError(
            f"{what} must be timezone-aware (e.g. datetime.now(timezone.utc)), got {value!r}"
        )
    return value


def download_target(path: str | os.PathLike[str], version: object, alias: object) -> Path:
    """The file a download writes: ``path``, not a folder, in a folder that exists;
    and a version or an alias to download, not both."""
    if alias is not None and version is not None:
        raise InvalidArgumentError("give ", VERSION, " or ", ALIAS, ", not both")
    target = Path(path)
    if target.is_dir():
        raise InvalidArgumentError(f"{target} is a directory; give the file path to write")
    check_folder(target.parent)
    return target


def check_folder(folder: Path) -> None:
    """Refuse a download into a folder that does not exist, before any request.

    Not created: a mistyped path would silently grow a folder tree (``cp``,
    ``open()`` and ``boto3``'s ``download_file`` refuse too), and creating it
    would need a mode and an owner this call cannot know.
    """
    if not folder.is_dir():
        raise FolderNotFoundError(str(folder), is_file=folder.exists())


def search_arguments(
    name: str | None, metadata: object, include_latest: object, limit: object
) -> dict[str, str]:
    """Check find_artifact_versions' arguments; the metadata entries to match (user
    metadata as put_artifact accepts it)."""
    if name is not None:
        _layout.validate_name(name)
    if isinstance(metadata, Mapping) and not isinstance(metadata, dict):
        metadata = dict(metadata)
    wanted = _layout.validate_metadata(metadata)
    if not isinstance(include_latest, bool):
        raise InvalidArgumentTypeError(
            f"include_latest must be a bool, not {type(include_latest).__name__}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidArgumentError(f"limit must be None or an int of at least 1, got {limit!r}")
    return wanted


def upload_arguments(
    name: str, content: object, content_type: object, metadata: object, tags: object
) -> Upload:
    """put_artifact's arguments, checked: what to upload."""
    _layout.validate_name(name)
    body = _layout.validate_content(content)
    checked_type = _layout.validate_content_type(content_type)
    user_meta = _layout.validate_metadata(metadata)
    given = None if metadata is None else user_meta
    return Upload(name, body, checked_type, given, user_meta, _layout.validate_tags(tags))


def purge_rules(keep_last_n: object, purge_older_than_secs: object, dry_run: object) -> PurgeRules:
    """purge_artifact_versions' arguments, checked."""
    keep, older_than = retention.validate_retention(keep_last_n, purge_older_than_secs)
    if not isinstance(dry_run, bool):
        raise InvalidArgumentTypeError(f"dry_run must be a bool, not {type(dry_run).__name__}")
    return PurgeRules(keep, older_than, dry_run)
