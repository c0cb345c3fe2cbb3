"""Garbage frames against a real ``meshreg node`` over raw DEALER sockets.

For every case the node must answer with an error reply map (``ok`` false,
an integer code) whose code is the one the pure wire code predicts for the
same frames; afterwards the node still serves, counted every error and kept
no state from any rejected request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import zmq
from helpers import HOST, NodeProcess
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from meshreg.configcenter.model import DEFAULT_MAX_CONTENT_BYTES
from meshreg.errors import ErrorCode
from meshreg.wire import limits
from meshreg.wire.config_peer import config_frame_bytes
from meshreg.wire.envelope import split_envelope
from meshreg.wire.messages import RequestRejected, parse_request

REPLY_TIMEOUT_MS = 5000
PING = msgpack.packb({"v": 1, "id": 11, "op": "ping"})


class Dealer:
    """A raw DEALER to the node: send frames, receive one reply with a deadline."""

    def __init__(self, port: int) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDTIMEO, REPLY_TIMEOUT_MS)
        self.sock.setsockopt(zmq.RCVTIMEO, REPLY_TIMEOUT_MS)
        self.sock.connect(f"tcp://{HOST}:{port}")
        self.next_id = 1000

    def exchange(
        self, frames: list[bytes], timeout_ms: int = REPLY_TIMEOUT_MS
    ) -> list[bytes] | None:
        self.sock.send_multipart(frames)
        if not self.sock.poll(timeout_ms, zmq.POLLIN):
            return None
        return self.sock.recv_multipart(zmq.NOBLOCK)

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        self.next_id += 1
        body = msgpack.packb({"v": 1, "id": self.next_id, "op": op, **fields})
        reply = self.exchange([b"", body])
        assert reply is not None, f"no reply to {op}"
        assert reply[0] == b""
        msg: dict[str, Any] = msgpack.unpackb(reply[-1], raw=False)
        assert msg["id"] == self.next_id
        return msg

    def close(self) -> None:
        self.sock.close(linger=0)


@pytest.fixture
def dealer(node: NodeProcess) -> Iterator[Dealer]:
    d = Dealer(node.port)
    try:
        yield d
    finally:
        d.close()


def verdict(frames: list[bytes]) -> tuple[list[bytes], ErrorCode, int] | None:
    """What the node must answer to ``frames`` from a DEALER, by the pure wire code.

    Returns (reply routing frames, error code, reply id), or None when the
    request would be accepted.
    """
    received = [b"dealer-identity", *frames]  # what the ROUTER reads
    try:
        envelope, body = split_envelope(received)
    except RequestRejected as exc:
        return [b""], exc.code, 0
    try:
        parse_request(body)
    except RequestRejected as exc:
        return envelope[1:], exc.code, exc.req_id
    return None


def check_error_reply(dealer: Dealer, frames: list[bytes]) -> None:
    expected = verdict(frames)
    assert expected is not None, "not a bad request"
    routing, code, req_id = expected
    reply = dealer.exchange(frames)
    assert reply is not None, f"no reply within {REPLY_TIMEOUT_MS} ms"
    assert reply[:-1] == routing
    msg = msgpack.unpackb(reply[-1], raw=False)
    assert isinstance(msg, dict)
    assert msg["v"] == 1
    assert msg["ok"] is False
    assert type(msg["error"]["code"]) is int
    assert msg["error"]["code"] == code, msg
    assert msg["error"]["name"] == code.name
    assert isinstance(msg["error"]["message"], str) and msg["error"]["message"]
    assert msg["id"] == req_id


def check_clean_and_working(dealer: Dealer, errors: int) -> None:
    """Every error was counted, no rejected request left state, and the node still serves."""
    stats = dealer.request("stats")["result"]
    assert stats["errors_total"] == errors > 0
    assert sum(stats["errors"].values()) == errors
    assert stats["services"] == 0
    assert stats["instances"] == {"total": 0, "healthy": 0, "unhealthy": 0}
    assert stats["revision"] == 0  # not one visible change happened
    for ns in ("public", "dev"):
        assert dealer.request("services", namespace=ns)["result"]["services"] == []

    assert dealer.request("ping")["ok"] is True
    inst = {"service": "after-fuzz", "ip": "192.0.2.7", "port": 7}
    registered = dealer.request("register", **inst, metadata={"k": "v"})
    assert registered == {
        "v": 1,
        "id": dealer.next_id,
        "ok": True,
        "result": {"stamp": registered["result"]["stamp"]},  # (PROTOCOL.md 2.1 "After")
    }
    assert type(registered["result"]["stamp"]) is int
    result = dealer.request("instances", service="after-fuzz")["result"]
    assert [(i["ip"], i["port"], i["metadata"]) for i in result["instances"]] == [
        ("192.0.2.7", 7, {"k": "v"})
    ]
    assert result["revision"] == 1
    assert dealer.request("beat", **inst)["ok"] is True
    assert dealer.request("deregister", **inst)["ok"] is True


def _map(**fields: Any) -> bytes:
    return msgpack.packb({"v": 1, "id": 42, **fields})


FIXED_CASES: dict[str, list[bytes]] = {
    "random-bytes": [b"", b"\xc1\xff\x00 definitely not msgpack \x93"],
    "zero-frames-after-delimiter": [b""],
    "five-extra-frames": [b"", PING, b"1", b"2", b"3", b"4", b"5"],
    "no-delimiter": [PING],
    "no-delimiter-two-frames": [b"route", PING],
    "two-delimiters": [b"", b"", PING],
    "empty-body": [b"", b""],
    "huge-body-under-1MiB": [b"", b"\x00" * (limits.MAX_FRAME_BYTES // 2)],
    "huge-valid-map-over-64KiB": [b"", _map(op="ping", pad="x" * (limits.MAX_BODY_BYTES + 10))],
    "body-one-over-max": [b"", b"\x01" * (limits.MAX_BODY_BYTES + 1)],
    "too-many-routing-frames": [b"r"] * (limits.MAX_ENVELOPE_FRAMES) + [b"", PING],
    "routed-bad-body": [b"r1", b"r2", b"", b"\xc1"],
    "msgpack-list": [b"", msgpack.packb([1, 2, 3])],
    "msgpack-nil": [b"", msgpack.packb(None)],
    "trailing-bytes": [b"", PING + b"\x00"],
    "int-map-key": [b"", msgpack.packb({1: 2})],
    "negative-id": [b"", msgpack.packb({"v": 1, "id": -5, "op": "ping"})],
    "bool-id": [b"", msgpack.packb({"v": 1, "id": True, "op": "ping"})],
    "version-2": [b"", msgpack.packb({"v": 2, "id": 5, "op": "ping"})],
    "unknown-op": [b"", _map(op="explode")],
    "register-bad-host": [b"", _map(op="register", service="s", ip="bad host", port=1)],
    "register-port-0": [b"", _map(op="register", service="s", ip="10.0.0.1", port=0)],
    "register-nan-weight": [
        b"",
        _map(op="register", service="s", ip="10.0.0.1", port=1, weight=float("nan")),
    ],
    "register-bad-metadata": [
        b"",
        _map(op="register", service="s", ip="10.0.0.1", port=1, metadata={"k": 1}),
    ],
    "register-too-much-metadata": [
        b"",
        _map(
            op="register",
            service="s",
            ip="10.0.0.1",
            port=1,
            metadata={f"k{i}": "v" for i in range(limits.MAX_METADATA_ENTRIES + 1)},
        ),
    ],
    "register-bad-service": [b"", _map(op="register", service="a/b", ip="10.0.0.1", port=1)],
    "deregister-missing-port": [b"", _map(op="deregister", service="s", ip="10.0.0.1")],
    "instances-bad-flag": [b"", _map(op="instances", service="s", healthy_only="yes")],
}


def test_fixed_garbage_gets_error_replies_and_leaves_no_state(dealer: Dealer) -> None:
    for name, frames in FIXED_CASES.items():
        try:
            check_error_reply(dealer, frames)
        except AssertionError as exc:
            raise AssertionError(f"case {name}: {exc}") from exc
    # refused by the core rather than the parser: a beat for an unknown instance
    beat = dealer.request("beat", service="ghost", ip="10.0.0.1", port=80)
    assert beat["ok"] is False and beat["error"]["code"] == ErrorCode.NOT_FOUND
    check_clean_and_working(dealer, errors=len(FIXED_CASES) + 1)


# -- hypothesis: random frames ---------------------------------------------------------------------
frame = st.one_of(st.just(b""), st.binary(max_size=48))
msgpack_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=16),
    st.binary(max_size=16),
)
msgpack_values = st.recursive(
    msgpack_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.sampled_from(["v", "id", "op"])), inner, max_size=4
        ),
    ),
    max_leaves=12,
)
frame_lists = st.one_of(
    st.lists(frame, min_size=1, max_size=7),  # any shape: delimiters come and go
    st.binary(max_size=200).map(lambda b: [b"", b]),  # well framed, random bytes
    msgpack_values.map(lambda v: [b"", msgpack.packb(v)]),  # well framed, random msgpack
    st.tuples(st.lists(frame, max_size=3), msgpack_values).map(
        lambda t: [b"", msgpack.packb(t[1]), *t[0]]  # extra frames after a body
    ),
)


def test_random_frames_get_error_replies_and_leave_no_state(dealer: Dealer) -> None:
    sent = 0

    @settings(
        max_examples=100,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(frames=frame_lists)
    def fuzz(frames: list[bytes]) -> None:
        nonlocal sent
        assume(verdict(frames) is not None)  # (practically never) a valid request
        check_error_reply(dealer, frames)
        sent += 1

    fuzz()
    assert sent >= 50
    check_clean_and_working(dealer, errors=sent)


def test_frame_over_the_hard_cap_drops_the_sender_and_the_node_survives(node: NodeProcess) -> None:
    big = Dealer(node.port)
    try:
        # libzmq drops a connection whose frame exceeds MAXMSGSIZE: no reply is possible
        # (the client port's cap fits config bodies: wire/config_peer.config_frame_bytes)
        cap = config_frame_bytes(DEFAULT_MAX_CONTENT_BYTES)
        assert big.exchange([b"", b"\x00" * (cap + 1)], timeout_ms=500) is None
    finally:
        big.close()
    fresh = Dealer(node.port)
    try:
        assert fresh.request("ping")["ok"] is True
        stats = fresh.request("stats")["result"]
        assert stats["services"] == 0 and stats["revision"] == 0
    finally:
        fresh.close()
