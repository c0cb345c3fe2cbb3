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
    lines = [ln for ln in node.log().splitlines() if "rejected request" in ln]
    assert 1 <= sum("INVALID_ARGUMENT" in ln for ln in lines) <= 2
    assert len(lines) <= 4


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
