"""review29 F1: a subscriber that never reads but sends ZMTP heartbeats itself is never
dropped: the node holds its full notification queue (up to 16 MiB) for as long as it likes.

docs/SECURITY.md "Limits per client": "One whose connection stops reading (it answers no
ZMTP heartbeat) is disconnected after 20 s, which frees what the node held for it";
"makes the node hold up to 16 MiB for each, for up to 20 s after it stops reading".
libzmq's heartbeat time-out is cancelled by *any* message received from the peer, so a
client socket with its own ``ZMQ_HEARTBEAT_IVL`` (it sends PINGs from its I/O thread
while its receive side is stalled) keeps the connection alive without reading a byte.
review23's own test of this fix (test_r23_slow_subscriber_bounded) passes only because
its subscribers send no heartbeat.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import zmq
from r29lib import RawDealer, holds_for, keyed_node, make_keys, reply_text, rss_mb

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


def _stats(ops: RawDealer) -> dict[str, Any]:
    r = ops.call("stats")
    assert r["ok"], reply_text(r)
    return r["result"]


@pytest.mark.timeout(180)
def test_a_non_reading_subscriber_that_sends_heartbeats_is_still_dropped(tmp_path: Path) -> None:
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
            s.setsockopt(zmq.HEARTBEAT_IVL, 1000)  # the only difference from review23's test:
            s.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3_600_000)  # PINGs out, no wait for PONGs
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
        flooded = time.monotonic()
        grown = rss_mb(node.proc.pid) - before
        print(f"node RSS +{grown:.0f} MB after the flood")
        # the documented bound in time: dropped within the heartbeat time-out (20 s);
        # allow 1.5x. The subscribers never read a byte in all this time.
        try:
            holds_for(
                lambda: _stats(ops)["subscribers"] == SUBSCRIBERS,
                NOTIFY_HEARTBEAT_TIMEOUT / 1000 * 1.5,
                interval=1.0,
                what="the non-reading subscribers still connected",
            )
        except AssertionError as exc:
            print("dropped after", round(time.monotonic() - flooded, 1), "s:", exc,
                  _stats(ops)["subscribers"])
            return  # dropped: the bound holds
        held = rss_mb(node.proc.pid) - before
        pytest.fail(
            f"{SUBSCRIBERS} subscribers that never read since the flood were still "
            f"connected {time.monotonic() - flooded:.0f} s later (documented: dropped after "
            f"{NOTIFY_HEARTBEAT_TIMEOUT / 1000:.0f} s); the node still holds +{held:.0f} MB "
            "for them (RSS over the start of the flood)"
        )
    finally:
        for s in subs:
            s.close()
        for d in (dealer, ops):
            if d is not None:
                d.close()
        node.cleanup()
