"""The fix of review23 F1, at its edge: deltas just under the 16 KiB a delta notification
may have (larger ones go out as syncs) to subscribers that never read.  Each subscriber
pins at most NOTIFY_SNDHWM (1,000) of them, and the node's ZMTP heartbeat drops such a
connection (its libzmq reads nothing: no PONG), which frees what it held."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import zmq
from helpers import RawDealer, wait_until
from r23lib import keyed_node, make_keys, reply_text, rss_mb

from meshreg.transport.sockets import NOTIFY_HEARTBEAT_TIMEOUT, NOTIFY_SNDHWM

ACL = """
[[client]]
name = "tenant-a"
key_file = "tenant-a.pub"
allow = [{ namespace = "a", access = "write" }]
[[client]]
name = "ops"
key_file = "ops.pub"
allow = [{ namespace = "*", access = "read" }]
"""
SUBSCRIBERS = 3
CHANGES_EACH = NOTIFY_SNDHWM + 500
BOUND_MB = SUBSCRIBERS * 16 + 40  # 16 MiB a subscriber, and room for the node's own


def _stats(ops: RawDealer) -> dict[str, Any]:
    r = ops.call("stats")
    assert r["ok"], reply_text(r)
    return r["result"]


@pytest.mark.timeout(150)
def test_subscribers_that_never_read_pin_little_and_are_dropped(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "tenant-a", "ops")
    node = keyed_node(tmp_path, ACL, keys)
    ctx = zmq.Context.instance()
    subs: list[zmq.Socket[bytes]] = []
    dealer = ops = None
    try:
        node.start()
        assert node.proc is not None
        dealer = RawDealer(node.port, keys["tenant-a"])
        ops = RawDealer(node.port, keys["ops"])
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
        for s in subs:
            assert s.poll(10_000), "no sync within 10 s of a subscription"
            s.recv_multipart()
        assert _stats(ops)["subscribers"] == SUBSCRIBERS
        before = rss_mb(node.proc.pid)
        meta = {f"k{j:02d}": "x" * 880 for j in range(16)}  # ~14,200 chars: a delta < 16 KiB
        in_flight = sent = refused = 0
        total = SUBSCRIBERS * CHANGES_EACH
        deadline = time.monotonic() + 60
        while sent < total and time.monotonic() < deadline:
            for i in range(SUBSCRIBERS):
                meta["k00"] = f"{sent:06d}" + "x" * 874
                dealer.send("register", namespace="a", group="g", service=f"big{i}",
                            ip="10.0.0.9", port=1, metadata=meta)  # fmt: skip
                in_flight += 1
                sent += 1
            while in_flight > 200 or (in_flight and sent >= total):
                refused += not dealer.replies(1, 30)[0]["ok"]
                in_flight -= 1
        assert refused == 0 and sent == total, (refused, sent)
        stats = _stats(ops)
        assert stats["deltas_notified_as_sync"] == 0  # deltas, under the bound
        grown = rss_mb(node.proc.pid) - before
        assert grown < BOUND_MB, f"grew {grown:.0f} MB (bound {BOUND_MB} MB)"
        # no PONG from connections whose libzmq reads nothing: dropped (their unsubscribes
        # reach the node), so what they held is freed
        wait_until(
            lambda: _stats(ops)["subscribers"] == 0,
            timeout=NOTIFY_HEARTBEAT_TIMEOUT / 1000 * 3,
            what="the non-reading subscribers dropped by the heartbeat",
        )
    finally:
        for s in subs:
            s.close()
        for d in (dealer, ops):
            if d is not None:
                d.close()
        node.cleanup()
