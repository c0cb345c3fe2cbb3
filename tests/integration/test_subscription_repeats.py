"""One subscriber that subscribes ONE topic 200,000 times fills the node's
subscription cap for good: after it disconnects the node still counts 200,000
subscriptions, and every later subscription (any consumer, any service) is refused, so
consumers get no pushes, only the 10 s re-pull.

docs/SECURITY.md "Limits per client": "Subscriptions are capped per node (200,000
admitted) ... libzmq makes up the unsubscriptions when a connection closes"; the gate
(runtime/subscription_gate.py) counts every duplicate subscribe message of the verbose
XPUB, but libzmq's manual XPUB sends ONE unsubscription per distinct topic when the
connection closes (and the gate matches it to a refused duplicate first).  So the
duplicates are never given back.  On a node with a key, any client that may read one
service can do it (the topic passes the ACL); here, on loopback, anyone.

Expected: a closed subscriber's subscriptions are given back (or duplicates not counted),
so a fresh subscriber afterwards is admitted and answered with its sync (PROTOCOL.md 4.1:
an exact service topic is answered with a sync).
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
import zmq
from helpers import NodeProcess, raw_request, wait_until

pytestmark = pytest.mark.timeout(120)

CAP = 200_000  # runtime/subscription_gate.DEFAULT_MAX_SUBSCRIPTIONS (not configurable)


def _stats(node: NodeProcess) -> dict[str, Any]:
    reply = raw_request(node.port, {"v": 1, "id": 1, "op": "stats"})
    assert reply["ok"], reply
    return dict(reply["result"])


def test_a_closed_subscriber_gives_its_duplicate_subscriptions_back(node: NodeProcess) -> None:
    ctx = zmq.Context.instance()
    flood = ctx.socket(zmq.SUB)
    flood.setsockopt(zmq.LINGER, 0)
    flood.setsockopt(zmq.SNDHWM, 0)  # queue every subscribe message, drop none
    flood.connect(f"tcp://127.0.0.1:{node.port + 1}")
    topic = b"public\x00DEFAULT_GROUP\x00orders\x00"
    try:
        for _ in range(CAP + 10):
            flood.setsockopt(zmq.SUBSCRIBE, topic)

        def flooded() -> bool:  # every subscribe message read (counted, repeated or refused)
            s = _stats(node)
            read = s["subscriptions_admitted"] + s["subscriptions_repeated"]
            return bool(read + s["subscriptions_refused"]["full"] >= CAP + 10)

        wait_until(flooded, 60, interval=0.2, what="the node to read every subscribe message")
        held = _stats(node)
        assert held["subscriptions_admitted"] == 1, held  # one connection, one topic
    finally:
        flood.close()
    # the flooder is gone: libzmq tells the node (one unsubscription per distinct topic)
    wait_until(
        lambda: _stats(node)["subscriptions_admitted"] < CAP,
        10,
        interval=0.2,
        what=f"the node to give back a closed subscriber's subscriptions (stats: "
        f"subscriptions_admitted stays {CAP})",
    )
    # a legitimate consumer subscribes afterwards: it must be admitted and get its sync
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"tcp://127.0.0.1:{node.port + 1}")
    try:
        sub.setsockopt(zmq.SUBSCRIBE, b"public\x00DEFAULT_GROUP\x00payments\x00")
        assert sub.poll(5000), (
            f"no sync for a fresh subscription after the flooder left: "
            f"{_stats(node)['subscriptions_refused']}"
        )
        topic_frame, body = sub.recv_multipart()
        assert msgpack.unpackb(body, raw=False)["service"] == "payments"
    finally:
        sub.close()
