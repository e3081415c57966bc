"""A ranged answer must start where it was asked to (``_aws.s3_download._get_range``).

moto and ministack both serve ranges, so a server that ignores ``Range`` (and
sends the object from its first byte, 200) cannot be met on the wire here; the
check is exercised with a stand-in for GetObject (the downloader's own
``get(**request)`` callable, not an AWS client).
"""

from __future__ import annotations

from typing import Any

import pytest

from versioned_async._aws.s3_download import _get_range
from versioned_async._policy.parts import Part
from versioned_async.exc import BackendError


class _Body:
    closed = False

    def close(self) -> None:
        self.closed = True


def answering(content_range: str | None) -> tuple[Any, list[dict[str, Any]], _Body]:
    asked: list[dict[str, Any]] = []
    body = _Body()

    async def get(**request: Any) -> dict[str, Any]:
        asked.append(request)
        resp: dict[str, Any] = {"Body": body}
        if content_range is not None:
            resp["ContentRange"] = content_range
        return resp

    return get, asked, body


async def test_the_rest_of_a_part_is_asked_for_pinned_to_the_etag() -> None:
    get, asked, body = answering("bytes 300-511/1024")
    resp = await _get_range(get, Part(1, 256, 512), 44, '"e"', "s3://b/k")
    assert resp["Body"] is body
    assert asked == [{"Range": "bytes=300-511", "IfMatch": '"e"'}]
    assert not body.closed


@pytest.mark.parametrize("served", [None, "bytes 0-1023/1024"])
async def test_an_answer_that_ignored_the_range_is_refused(served: str | None) -> None:
    get, _, body = answering(served)
    with pytest.raises(BackendError, match=r"asked for bytes=256-511, the server answered") as err:
        await _get_range(get, Part(1, 256, 512), 0, '"e"', "s3://b/k")
    assert "TransferConfig(multipart_threshold=...)" in str(err.value)
    assert body.closed  # its connection is not left holding the rest
