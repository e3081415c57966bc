"""Credentials out of what is shown: reprs, log records, error messages. Pure.

An ``endpoint_url`` may carry a user and password (``http://user:secret@host``,
as some S3-compatible proxies take them). The password must never reach a
log, a traceback or a terminal; the user name stays, so an operator can still
tell which identity was used. A user part without a password (a token) is
hidden whole.
"""

from __future__ import annotations

import re
from typing import overload

__all__ = ["MASK", "redact_text", "redact_url"]

MASK = "***"

#: ``scheme://userinfo@``: the authority ends at the first ``/``, ``?``, ``#``
#: (RFC 3986), so a path holding ``@`` is not taken for credentials; the userinfo
#: runs to the last ``@`` of the authority, as URL parsers read it
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#\s]*)@")


def _masked(match: re.Match[str]) -> str:
    user, colon, _ = match["userinfo"].partition(":")
    shown = f"{user}:{MASK}" if colon else MASK
    return f"{match['scheme']}{shown}@"


@overload
def redact_url(url: str) -> str: ...


@overload
def redact_url(url: None) -> None: ...


def redact_url(url: str | None) -> str | None:
    """``url`` with the password of its user part replaced by ``***``.

    ``http://alice:secret@host:4566`` -> ``http://alice:***@host:4566``;
    ``http://token@host`` -> ``http://***@host``; a URL without credentials
    (or ``None``) comes back unchanged. A password holding ``/``, ``?`` or
    ``#`` must be percent-encoded to be a URL at all (no client could
    connect with it), and only then is it recognised.
    """
    if url is None:
        return None
    return _USERINFO.sub(_masked, url, count=1) if "@" in url else url


def redact_text(text: str) -> str:
    """Every URL's password in a message (an error from botocore or aiohttp) masked."""
    return _USERINFO.sub(_masked, text) if "@" in text else text
