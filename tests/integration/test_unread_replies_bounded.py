"""review12: a client that pipelines reads and never reads the replies makes the node hold
every reply: about 82 KB of memory per `instances` request of a 1,000-instance service,
up to 100,000 replies per connection (transport/sockets.py ROUTER_SNDHWM, a count with no
byte bound).  By hand (runs/review12-slowreader*.txt): 3,000 requests -> node RSS +235 MB,
12,000 -> +620 MB after 10 s and still growing; one connection could make it hold 8 GB,
and `instances` is never rate-limited.  Closing the connection frees it all.

docs/SECURITY.md "What is not protected": "Limits and quotas (message sizes, queues in
bytes, subscriptions, ...) bound what one client can make a node hold"; DESIGN.md: "Every
new store of state that can grow from the network has a byte or count bound".  Expected:
the replies queued for one connection are bounded in bytes (then backpressure: the node
stops reading that connection), so one read-only client cannot grow the node by hundreds
of megabytes.
"""

from __future__ import annotations

from collections.abc import Callable

import msgpack
import pytest
import zmq
from helpers import HOST, NodeProcess, raw_request, wait_until

from meshreg import Client

pytestmark = pytest.mark.timeout(120)

INSTANCES = 1_000  # a reply of ~82 KB
REQUESTS = 4_000  # ~330 MB of replies if all are queued
BOUND_MB = 100  # far above any sane per-connection byte bound, far below what is queued


def _rss_mb(node: NodeProcess) -> int:
    assert node.proc is not None
    with open(f"/proc/{node.proc.pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


def _answered(node: NodeProcess) -> int:
    reply = raw_request(node.port, {"v": 1, "id": 1, "op": "stats"})
    return int(reply["result"]["requests"].get("instances", 0))


def test_unread_replies_of_one_connection_are_bounded_in_bytes(
    start_node: Callable[..., NodeProcess],
) -> None:
    node = start_node()
    with Client([node.address]) as c:
        failed = c.register_many(
            [
                {"service": "big", "ip": f"10.{i // 250}.{i % 250}.1", "port": 8080}
                for i in range(INSTANCES)
            ]
        )
        assert not failed
        probe = raw_request(node.port, {"v": 1, "id": 2, "op": "instances", "service": "big"})
        assert len(probe["result"]["instances"]) == INSTANCES
        before = _rss_mb(node)
        ctx = zmq.Context.instance()
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.SNDHWM, 0)
        dealer.setsockopt(zmq.RCVHWM, 1)  # and never read
        dealer.setsockopt(zmq.RCVBUF, 4096)
        dealer.connect(f"tcp://{HOST}:{node.port}")
        body = msgpack.packb({"v": 1, "id": 3, "op": "instances", "service": "big"})
        try:
            start = _answered(node)
            for _ in range(REQUESTS):
                dealer.send_multipart([b"", body])
            # either the node answered them all (and holds the replies), or it stopped
            # reading this connection (backpressure): wait for the first, bounded
            try:
                wait_until(
                    lambda: _answered(node) - start >= REQUESTS, 30, interval=0.25, what="answers"
                )
            except AssertionError:
                pass
            grown = _rss_mb(node) - before
            assert grown < BOUND_MB, (
                f"one connection that never reads its replies grew the node by {grown} MB "
                f"({_answered(node) - start} of {REQUESTS} requests answered, replies of "
                f"~{len(msgpack.packb(probe)) // 1024} KB each)"
            )
        finally:
            dealer.close()
