"""A live node under bad input: error replies, counting, logging without a flood."""

from __future__ import annotations

import msgpack
import zmq
from helpers import HOST, NodeProcess, raw_request, wait_until


def test_bad_requests_get_error_replies_are_counted_and_logged_once(node: NodeProcess) -> None:
    ctx = zmq.Context.instance()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVTIMEO, 5000)
    dealer.connect(f"tcp://{HOST}:{node.port}")
    try:
        bad_port = {"v": 1, "id": 0, "op": "register", "service": "s", "ip": "10.0.0.1", "port": 0}
        for n in range(300):
            bad_port["id"] = n
            dealer.send_multipart([b"", msgpack.packb(bad_port)])
        codes = set()
        for _ in range(300):
            empty, body = dealer.recv_multipart()
            reply = msgpack.unpackb(body, raw=False)
            assert empty == b"" and reply["ok"] is False
            codes.add((reply["error"]["code"], reply["error"]["name"]))
            assert "port" in reply["error"]["message"]
        assert codes == {(4, "INVALID_ARGUMENT")}
        dealer.send_multipart([b"", b"\xc1garbage"])
        reply = msgpack.unpackb(dealer.recv_multipart()[1], raw=False)
        assert reply["error"]["name"] == "MALFORMED" and reply["id"] == 0
    finally:
        dealer.close()

    stats = raw_request(node.port, {"v": 1, "id": 9, "op": "stats"})["result"]
    assert stats["errors"] == {"INVALID_ARGUMENT": 300, "MALFORMED": 1}
    assert stats["services"] == 0 and stats["instances"]["total"] == 0
    # logged, but not 300 times: once per kind per 10 s window
    wait_until(lambda: "MALFORMED" in node.log(), what="the rejection to be logged")
    lines = [ln for ln in node.log().splitlines() if "rejected a request" in ln]
    assert 1 <= sum("INVALID_ARGUMENT" in ln for ln in lines) <= 2
    assert len(lines) <= 4
    # the line names the sender's address (the loopback connection these came on)
    assert all("rejected a request from 127.0.0.1: " in ln for ln in lines), lines


def test_unsupported_version_and_unknown_op(node: NodeProcess) -> None:
    reply = raw_request(node.port, {"v": 2, "id": 5, "op": "ping"})
    assert reply["id"] == 5 and reply["error"]["name"] == "UNSUPPORTED_VERSION"
    reply = raw_request(node.port, {"v": 1, "id": 6, "op": "explode"})
    assert reply["id"] == 6 and reply["error"]["name"] == "UNKNOWN_OP"
    assert "known ops" in reply["error"]["message"]


def test_beat_for_unknown_instance_is_not_found(node: NodeProcess) -> None:
    beat = {"v": 1, "id": 1, "op": "beat", "service": "ghost", "ip": "10.0.0.1", "port": 80}
    reply = raw_request(node.port, beat)
    assert reply["error"]["name"] == "NOT_FOUND"
    assert "register it again" in reply["error"]["message"]


def test_decode_errors_name_the_limit_or_the_rule_they_broke(node: NodeProcess) -> None:
    """A small body over a structural limit names that limit (not the body size); a
    non-string map key and an empty body say so."""
    ctx = zmq.Context.instance()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVTIMEO, 5000)
    dealer.connect(f"tcp://{HOST}:{node.port}")

    def ask(body: bytes) -> dict[str, object]:
        dealer.send_multipart([b"", body])
        reply = msgpack.unpackb(dealer.recv_multipart()[1], raw=False)
        assert reply["ok"] is False
        return reply["error"]  # type: ignore[no-any-return]

    try:
        wide = {"v": 1, "id": 5, "op": "ping", "pad": {str(i): 0 for i in range(1100)}}
        error = ask(msgpack.packb(wide))  # about 5.5 KB: far under the 64 KiB body limit
        assert error["name"] == "TOO_LARGE" and "maps 1024 entries" in str(error["message"])
        assert "request body is" not in str(error["message"])
        error = ask(msgpack.packb({"v": 1, "id": 6, "op": "ping", "pad": [0] * 1100}))
        assert error["name"] == "TOO_LARGE" and "arrays 1024" in str(error["message"])
        error = ask(msgpack.packb({1: 2, "v": 1, "id": 7, "op": "ping"}))
        assert error == {
            "code": 1,
            "name": "MALFORMED",
            "message": "a map key is int: every map key must be a string",
        }
        error = ask(b"")
        assert error["name"] == "MALFORMED" and "body frame is empty" in str(error["message"])
    finally:
        dealer.close()
