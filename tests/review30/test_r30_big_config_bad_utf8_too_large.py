"""review30: a config write above 64 KiB whose content (a msgpack str) is not UTF-8 is
answered TOO_LARGE with id 0, "the limit is 65536", though it is under the config
body limit: CHANGELOG (Unreleased, "Invalid UTF-8 in a string is answered with the
request's id", review28 F1) promises INVALID_ARGUMENT with the request's id, naming the
field, for "a config's content from a client whose strings are bytes".  The same
request with a 1,000-byte content is answered so; at 100,000 bytes it is not."""

from __future__ import annotations

import os
import sys

import msgpack
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import NodeProcess, raw_request  # noqa: E402


def _publish_with_raw_content(req_id: int, content: bytes) -> bytes:
    marker = "\x00MARKER\x00"
    body = msgpack.packb(
        {"v": 1, "id": req_id, "op": "config_publish", "namespace": "public",
         "group": "DEFAULT_GROUP", "data_id": "big.yaml", "content": marker}
    )  # fmt: skip
    # the content as a msgpack *str* (not bin) holding bytes that are not UTF-8
    return body.replace(msgpack.packb(marker), msgpack.packb(content, use_bin_type=False))


@pytest.mark.timeout(60)
def test_big_config_content_not_utf8_is_invalid_argument_with_its_id() -> None:
    node = NodeProcess().start()
    try:
        small = raw_request(node.port, _publish_with_raw_content(11, b"a" * 1000 + b"\xff"))
        assert small["id"] == 11 and small["error"]["name"] == "INVALID_ARGUMENT", small
        # 100,000 bytes: above MAX_BODY_BYTES (64 KiB), below the config cap (1 MiB + 64 KiB)
        big = raw_request(node.port, _publish_with_raw_content(12, b"a" * 100_000 + b"\xff"))
        assert big["error"]["name"] == "INVALID_ARGUMENT" and big["id"] == 12, (
            f"a 100 KB config whose content is not UTF-8 was answered {big}"
        )
    finally:
        node.cleanup()
