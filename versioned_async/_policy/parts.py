"""How a large object is cut into parts for a parallel download, and how far its hash may go.

Pure: no I/O. :func:`plan_parts` cuts ``size`` bytes into byte ranges of
``chunksize`` (aligned at multiples of it, the last one shorter), the parts
of :mod:`versioned_async._aws.s3_download`. :class:`ContiguousPrefix` follows
the parts as they land, each written front to back (a resumed part goes on
from its first missing byte), and says how long the prefix of the content
is that has arrived without a gap: the sha256 can be fed that far, so the
digest is ready soon after the last byte instead of needing a second pass
over the whole content.
"""

from __future__ import annotations

import attrs

__all__ = ["ContiguousPrefix", "Part", "plan_parts"]


@attrs.frozen
class Part:
    """Bytes ``start`` up to (not including) ``end`` of the content: the ``index``-th part."""

    index: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start

    def range_header(self, received: int = 0) -> str:
        """The HTTP ``Range`` asking for what is left of this part after ``received`` bytes."""
        return f"bytes={self.start + received}-{self.end - 1}"


def plan_parts(size: int, chunksize: int) -> list[Part]:
    """The parts of ``size`` bytes: ``chunksize`` each, the last one what is left.

    ``size`` 0 has no parts. Aligned at multiples of ``chunksize`` so a part
    fetched again (after a cut) asks for the same bytes as the first time.
    """
    if size < 0 or chunksize < 1:
        raise ValueError(f"size must be >= 0 and chunksize >= 1, not {size} and {chunksize}")
    return [
        Part(index, start, min(start + chunksize, size))
        for index, start in enumerate(range(0, size, chunksize))
    ]


class ContiguousPrefix:
    """How much of each part has landed, and the gap-free prefix of the content that makes.

    Each part is written front to back, so one count per part says what it
    holds. :attr:`length` only grows; :attr:`complete` when every byte landed.
    """

    def __init__(self, parts: list[Part]) -> None:
        self._parts = parts
        self._landed = [0] * len(parts)
        #: the first part not yet complete (``len(parts)``: all are)
        self._first_open = 0
        self._done_bytes = 0
        self.size = parts[-1].end if parts else 0

    def landed(self, index: int) -> int:
        """How many bytes of part ``index`` have landed (from its start, without a gap)."""
        return self._landed[index]

    def add(self, index: int, count: int) -> None:
        """``count`` more bytes of part ``index`` landed, right after those before them."""
        part = self._parts[index]
        if count < 0 or self._landed[index] + count > part.size:
            raise ValueError(
                f"part {index} holds {part.size} bytes: {self._landed[index]} landed, "
                f"{count} more do not fit"
            )
        self._landed[index] += count
        while (
            self._first_open < len(self._parts)
            and self._landed[self._first_open] == self._parts[self._first_open].size
        ):
            self._done_bytes += self._parts[self._first_open].size
            self._first_open += 1

    @property
    def length(self) -> int:
        """The bytes from the content's start that have all landed."""
        if self._first_open == len(self._parts):
            return self._done_bytes
        return self._done_bytes + self._landed[self._first_open]

    @property
    def complete(self) -> bool:
        return self._first_open == len(self._parts)
