"""Keys of the S3-only layout `versioned` 1.0 writes (docs/S3_ONLY_WIRE_FORMAT.md). Pure.

Versions live under ``{prefix}/{name}/versions/`` as ``000000_LATEST`` and
``{1000000 - n:06d}_{n:06d}``: an ascending listing gives LATEST first, then
the highest number, so the next number is one listing of two keys away.
Aliases are ``{prefix}/{name}/aliases/{alias}.json``, an alias with a ``/``
in a sub-folder. Versions keep the
DynamoDB layout's stored form (``"LATEST"``, ``"000001"``) everywhere else in
the package; only keys are spelled differently.
"""

from __future__ import annotations

import re
from typing import Final

import attrs

from ._layout import LATEST, MAX_VERSION, VERSION_WIDTH, Layout

__all__ = ["S3OnlyLayout", "decode_file_stem", "encode_file_stem"]

LATEST_STEM: Final = "000000_LATEST"
_NUMBERED_STEM = re.compile(r"([0-9]{6})_([0-9]{6})")
_VERSIONS = "versions/"
_ALIASES = "aliases/"
_ALIAS_SUFFIX = ".json"


def encode_file_stem(stored: str) -> str:
    """``"LATEST"`` -> ``"000000_LATEST"``, ``"000002"`` -> ``"999998_000002"``."""
    if stored == LATEST:
        return LATEST_STEM
    number = int(stored)
    return f"{MAX_VERSION + 1 - number:06d}_{number:06d}"


def decode_file_stem(stem: str) -> str | None:
    """The stored version a file name (without suffix) encodes, ``None`` for a foreign one.

    Stricter than `versioned`, which reads any name starting ``000000`` as
    LATEST and any other as ``int(name.split("_")[1])``: a key some other tool
    left under ``versions/`` is told apart instead of misread.
    """
    if stem == LATEST_STEM:
        return LATEST
    match = _NUMBERED_STEM.fullmatch(stem)
    if match is None:
        return None
    head, number = int(match[1]), int(match[2])
    if not 1 <= number <= MAX_VERSION or head != MAX_VERSION + 1 - number:
        return None
    return f"{number:0{VERSION_WIDTH}d}"


@attrs.frozen
class S3OnlyLayout(Layout):
    """Where an S3-only repository's objects live; ``key`` spells version keys its way."""

    def key(self, name: str, stored_version: str) -> str:
        return f"{self.versions_prefix(name)}{encode_file_stem(stored_version)}{self.suffix}"

    def versions_prefix(self, name: str) -> str:
        # with the slash, unlike `versioned`: a sibling folder `versions_old/` stays out
        return f"{self.artifact_dir(name)}{_VERSIONS}"

    def aliases_prefix(self, name: str) -> str:
        return f"{self.artifact_dir(name)}{_ALIASES}"

    def alias_key(self, name: str, alias: str) -> str:
        return f"{self.aliases_prefix(name)}{alias}{_ALIAS_SUFFIX}"

    def version_of_key(self, name: str, key: str) -> str | None:
        """The stored version a listed key holds, ``None`` for anything else."""
        stem = key.removeprefix(self.versions_prefix(name))
        if stem == key or not stem.endswith(self.suffix):
            return None
        return decode_file_stem(stem[: len(stem) - len(self.suffix)] if self.suffix else stem)

    def alias_of_key(self, name: str, key: str) -> str | None:
        """The alias a listed key holds, ``None`` for anything else.

        Keys in sub-folders are aliases too (``aliases/team/prod.json`` is
        ``team/prod``): `versioned` lists every object under ``aliases/``, and a
        purge must see every alias to keep the versions they point at.
        """
        file_name = key.removeprefix(self.aliases_prefix(name))
        if file_name == key or not file_name.endswith(_ALIAS_SUFFIX):
            return None
        return file_name[: -len(_ALIAS_SUFFIX)] or None
