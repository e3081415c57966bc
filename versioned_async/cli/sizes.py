"""Byte sizes as people write them on a command line: ``8388608``, ``8MiB``, ``8MB``, ``1gib``.

Why binary for ``MB`` too: the transfer settings carry s3transfer's names, and
the AWS CLI reads the same settings (``multipart_chunksize = 8MB`` in
``~/.aws/config``) with KB, MB, GB and TB meaning powers of 1024. A value
copied from there means the same here.
"""

from __future__ import annotations

import re

import click

__all__ = ["parse_size", "size_option"]

#: each suffix (lower-cased) and what it multiplies by: powers of 1024, as the AWS CLI reads them
_SUFFIXES = {
    "": 1,
    "b": 1,
    "kb": 1 << 10,
    "kib": 1 << 10,
    "mb": 1 << 20,
    "mib": 1 << 20,
    "gb": 1 << 30,
    "gib": 1 << 30,
    "tb": 1 << 40,
    "tib": 1 << 40,
}
_SIZE = re.compile(r"\s*(\d+)\s*([a-z]*)\s*")


def parse_size(text: str) -> int:
    """The number of bytes ``text`` says: digits, optionally followed by a suffix
    (B, KB/KiB, MB/MiB, GB/GiB, TB/TiB, in any case; all powers of 1024).
    ``ValueError`` saying what is accepted otherwise."""
    match = _SIZE.fullmatch(text.lower())
    if match is None or match[2] not in _SUFFIXES:
        raise ValueError(
            f"{text!r} is not a size: give bytes (8388608) or a whole number with "
            "KiB, MiB, GiB or TiB (8MiB; KB, MB, GB, TB mean the same, as in the AWS CLI)"
        )
    return int(match[1]) * _SUFFIXES[match[2]]


def size_option(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A click callback: the option's value (:func:`parse_size`) as bytes, at least one;
    ``None`` when not given. A bad value is a usage error naming the option."""
    if value is None:
        return None
    try:
        size = parse_size(value)
    except ValueError as err:
        raise click.BadParameter(str(err), ctx, param) from None
    if size < 1:
        raise click.BadParameter(f"{value!r} is not a size of at least one byte", ctx, param)
    return size
