"""review23 F1: a tenant's notification connections that never read make the node hold
10,000 notifications each, whatever their size: ~160 MB per connection with 16 KB deltas.

docs/SECURITY.md, "What is not protected": "Limits and quotas (message sizes, queues in
messages and bytes, subscriptions, ...) bound what one client can make a node hold";
"Limits per client": "each subscriber's queue is bounded (10,000 notifications ...)".
The reply path was bounded in bytes for exactly this reason ("libzmq bounds a ROUTER's
queue per connection in messages, whatever their size": 8 MiB per connection, 128 MiB
for all), but the notification XPUB is bounded by NOTIFY_SNDHWM = 10,000 messages only.
A key with write on its own service re-registers one instance with 16 KiB of metadata
(the per-instance limit) changing each time: each register is a ~16 KB delta; a SUB
connection subscribed to that service that never reads holds 10,000 of them on the node.
One connection per service, a few services: hundreds of MB, a few seconds of work
(connections are bounded only by file descriptors: 20,000 here).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import zmq
from helpers import RawDealer
from r23lib import keyed_node, make_keys, reply_text, rss_mb

ACL = """
[[client]]
name = "tenant-a"
key_file = "tenant-a.pub"
allow = [{ namespace = "a", access = "write" }]
"""

SUBSCRIBERS = 3
CHANGES_EACH = 11_000  # beyond NOTIFY_SNDHWM (10,000) per subscriber
BOUND_MB = 200  # generous: the reply path allows 8 MiB per connection, 128 MiB in all


@pytest.mark.timeout(180)
def test_subscribers_that_never_read_do_not_grow_the_node_without_bound(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "tenant-a")
    node = keyed_node(tmp_path, ACL, keys)
    ctx = zmq.Context.instance()
    subs: list[zmq.Socket[bytes]] = []
    dealer = None
    try:
        node.start()
        assert node.proc is not None
        dealer = RawDealer(node.port, keys["tenant-a"])
        for i in range(SUBSCRIBERS):
            r = dealer.call("register", namespace="a", group="g", service=f"big{i}",
                            ip="10.0.0.9", port=1)  # fmt: skip
            assert r["ok"], reply_text(r)
            s = ctx.socket(zmq.SUB)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVHWM, 1)
            s.setsockopt(zmq.RCVBUF, 4096)
            s.curve_publickey, s.curve_secretkey, s.curve_serverkey = keys["tenant-a"]
            s.connect(f"tcp://127.0.0.1:{node.port + 1}")
            s.setsockopt(zmq.SUBSCRIBE, f"a\0g\0big{i}\0".encode())
            subs.append(s)
        # each subscription is admitted: the node answers it with a sync (read it; then
        # these connections never read again)
        for s in subs:
            assert s.poll(10_000), "no sync within 10 s of a subscription"
            s.recv_multipart()
        before = rss_mb(node.proc.pid)
        meta = {f"k{j:02d}": "x" * 1000 for j in range(16)}  # 16,000 chars: under 16 KiB
        in_flight, sent, refused = 0, 0, 0
        deadline = time.monotonic() + 120
        while sent < SUBSCRIBERS * CHANGES_EACH and time.monotonic() < deadline:
            for i in range(SUBSCRIBERS):
                meta["k00"] = f"{sent:06d}" + "x" * 994
                dealer.send("register", namespace="a", group="g", service=f"big{i}",
                            ip="10.0.0.9", port=1, metadata=meta)  # fmt: skip
                in_flight += 1
                sent += 1
            while in_flight > 200 or (in_flight and sent >= SUBSCRIBERS * CHANGES_EACH):
                refused += not dealer.replies(1, 30)[0]["ok"]
                in_flight -= 1
        assert refused == 0, f"{refused} of {sent} registers refused"
        grown = rss_mb(node.proc.pid) - before
        assert grown < BOUND_MB, (
            f"{SUBSCRIBERS} notification connections of one tenant key that never read "
            f"grew the node's RSS by {grown:.0f} MB after {sent} registers of 16 KB "
            f"metadata in its own services (bound expected: {BOUND_MB} MB; each "
            "subscriber's queue is bounded at 10,000 messages, not in bytes)"
        )
    finally:
        for s in subs:
            s.close()
        if dealer is not None:
            dealer.close()
        node.cleanup()
