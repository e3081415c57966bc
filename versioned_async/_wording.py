"""What an error tells its reader to do, in the words of the interface they use.

The same error reaches Python code and the command line. Its advice names
something the reader can act on: a method (``put_alias()``), an argument
(``secondary_version_weight``), or, on the command line, a command
(``versioned-async alias set``) or a flag (``--weight``). An error's message is
therefore kept as parts: plain text, and :class:`Words` that know both
wordings. ``str()`` of the error is the Python wording (what Python callers
have always read, and match on); the command line renders the same parts
with :func:`render` in its own words. Nothing is found and replaced in a
finished sentence, so a wording cannot drift from what it stands for.
"""

from __future__ import annotations

import enum
import shlex
from collections.abc import Iterable

import attrs

__all__ = [
    "ACTOR",
    "ALIAS",
    "BOOTSTRAP",
    "CONTENT_TYPE",
    "DOWNLOAD",
    "CANARY",
    "REASON",
    "STEPS",
    "VERSION",
    "WEIGHT",
    "Interface",
    "Part",
    "Words",
    "create_alias",
    "create_artifact",
    "render",
    "shell_word",
]


class Interface(enum.Enum):
    """Who reads the message: code calling the library, or someone at the command line."""

    PYTHON = "python"
    CLI = "cli"


@attrs.frozen
class Words:
    """One thing named in a message, as each interface spells it.

    ``python`` is what a Python caller acts on (a method, an argument), ``cli``
    what a command-line user types (a command, a flag).
    """

    python: str
    cli: str

    def for_(self, interface: Interface) -> str:
        return self.python if interface is Interface.PYTHON else self.cli


#: a piece of a message: text both interfaces share, or words that differ
Part = str | Words


def render(parts: Iterable[Part], interface: Interface) -> str:
    """The message made of ``parts``, in the words of ``interface``."""
    return "".join(part if isinstance(part, str) else part.for_(interface) for part in parts)


def shell_word(text: str) -> str:
    """``text`` as one word of a shell command the reader can paste."""
    return shlex.quote(text)


# -- advice more than one error gives ---------------------------------------------------

#: the percent of traffic an alias sends to its canary
WEIGHT = Words("secondary_version_weight", "--weight")
#: an alias's canary
CANARY = Words("secondary_version", "--canary")
#: a roll-out's steps
STEPS = Words("steps", "--steps")
#: a roll-out's reason, for the alias history
REASON = Words("reason", "--reason")
#: the version a download reads
VERSION = Words("version", "--version")
#: the alias a download reads
ALIAS = Words("alias", "--alias")

#: who changes an alias, for its history
ACTOR = Words("actor", "--actor")
#: the content type recorded with content
CONTENT_TYPE = Words("content_type", "--content-type")

#: what writes content into a file
DOWNLOAD = Words("download", "`versioned-async get -o`")

#: a bucket or table is missing
BOOTSTRAP = Words(
    "create the repository with `await repo.bootstrap()`",
    "create the repository with `versioned-async bootstrap`",
)


def create_artifact(name: str) -> Words:
    """What makes artifact ``name`` exist."""
    return Words("put_artifact()", f"`versioned-async put {shell_word(name)} FILE`")


def create_alias(name: str, alias: str) -> Words:
    """What makes ``alias`` of ``name`` exist."""
    return Words(
        "put_alias()", f"`versioned-async alias set {shell_word(name)} {shell_word(alias)} VERSION`"
    )
