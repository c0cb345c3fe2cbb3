"""review28 F1: a msgpack ``str`` holding invalid UTF-8 is answered MALFORMED with id 0,
so a pipelining client cannot tell which request failed (it times out instead).

PROTOCOL.md 2.16 says of ``config_publish``'s ``content`` (str or bin): "invalid UTF-8 is
INVALID_ARGUMENT"; 1.4 says strings "are msgpack str holding UTF-8" and a bad type is
INVALID_ARGUMENT naming the field.  Seen (doc_client against a real node):

    content sent as str a2 ff fe -> {"id": 0, "error": {"code": 1, "name": "MALFORMED",
        "message": "body is not one valid msgpack value (UnicodeDecodeError)"}}
    content sent as bin c4 02 ff fe -> {"id": 77, "error": {"code": 4,
        "name": "INVALID_ARGUMENT",
        "message": "config_publish: field 'content' is not valid UTF-8 ..."}}

A Go/C/Rust client whose string type carries arbitrary bytes hits this with one bad
metadata value or config line: the id-0 reply cannot be matched (section 3), so the call
waits out its attempt, fails over and re-sends the same bytes to every server.
Expected: the request's id and INVALID_ARGUMENT naming the field (as for a bin content),
or the doc saying that invalid UTF-8 in any str is MALFORMED with id 0.
"""

from __future__ import annotations

import msgpack
import pytest
from r28lib import DocClient, NodeProcess


def _with_bad_str(body: dict, placeholder: str) -> bytes:
    packed = msgpack.packb(body)
    token = msgpack.packb(placeholder)
    assert packed.count(token) == 1
    return packed.replace(token, b"\xa2\xff\xfe")  # a fixstr of 2 bytes that are not UTF-8


@pytest.mark.timeout(60)
def test_invalid_utf8_in_a_string_gets_the_requests_id_and_names_the_field(tmp_path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "d"))
    try:
        node.start()
        c = DocClient([node.address])
        try:
            replies = {}
            for what, body, placeholder in (
                ("config content", {"v": 1, "id": 77, "op": "config_publish",
                                    "data_id": "app.yaml", "content": "PLACEHOLDER"},
                 "PLACEHOLDER"),
                ("metadata value", {"v": 1, "id": 78, "op": "register", "service": "orders",
                                    "ip": "10.0.0.5", "port": 8080,
                                    "metadata": {"zone": "PLACEHOLDER"}}, "PLACEHOLDER"),
            ):  # fmt: skip
                c.send_raw([b"", _with_bad_str(body, placeholder)])
                frames = c.recv_raw(5.0)
                assert frames is not None, f"{what}: no reply"
                replies[what] = (body["id"], msgpack.unpackb(frames[-1], raw=False))
            bad = {
                what: reply for what, (rid, reply) in replies.items()
                if reply["id"] != rid or reply["error"]["name"] != "INVALID_ARGUMENT"
            }  # fmt: skip
            assert not bad, (
                "invalid UTF-8 in a msgpack str is not answered with the request's id and "
                f"INVALID_ARGUMENT (PROTOCOL.md 2.16, 1.4): {bad}"
            )
        finally:
            c.close()
    finally:
        node.cleanup()
