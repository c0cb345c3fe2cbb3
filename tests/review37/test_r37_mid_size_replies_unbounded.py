"""review37 F2: replies between 4 KiB and 64 KiB escape the reply byte budgets.

SECURITY.md "Replies a client does not read": larger replies (above 4 KiB) are "sent
zero-copy and tracked until libzmq has written them to the kernel; a connection may hold
at most 8 MiB of them and all connections together 128 MiB", and the worst case a
non-reading client can make the node hold is "8 MiB + max(8 MiB, the largest reply) per
connection ... plus the requests that wait (16 MiB)", for the node "max(128 MiB, the
largest reply) of large replies plus 8 MiB per open connection of small ones".

transport/replies.py sends such a reply with ``copy=False, track=True``; pyzmq copies a
message below ``zmq.COPY_THRESHOLD`` (65,536 bytes) anyway and returns an
already-finished tracker, so the guard believes a 4-64 KiB reply is written the moment
it is queued: it is never counted in ``held_bytes``, never blocks the connection, and
the only bound left is the queue of 2,000 replies per connection (up to 128 MiB each).
By hand (/tmp/r37/e9.py): one tenant key, 24 connections sending 900 `instances`
requests for its own 200-instance service (25 KB replies) and never reading: node RSS
43 -> 523 MB, held_bytes 0, dropped_bytes 0, blocked 0, for as long as the connections
stay open (a key may open any number of them).
"""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
import zmq
from r37lib import (
    HOST,
    TENANTS_ACL,
    RawDealer,
    keyed_node,
    make_keys,
    reply_text,
    rss_mb,
    wait_until,
)

CONNS = 6
REQUESTS = 1_900  # per connection: below the 2,000-reply queue (nothing dropped_full)
CONTENT = 60_000  # bytes: a config_get reply of ~60 KB, below pyzmq's copy threshold
MIB = 1024 * 1024
# SECURITY.md's worst case for CONNS non-reading connections: large replies 8 MiB +
# max(8 MiB, largest reply) each (at most 128 MiB for the node), small replies 8 MiB each,
# waiting requests 16 MiB each
DOC_BOUND = min(CONNS * 16 * MIB, 128 * MIB) + CONNS * 8 * MIB + CONNS * 16 * MIB


@pytest.mark.timeout(180)
def test_non_reading_connections_hold_at_most_the_documented_reply_bytes(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "tenantA", "tenantB", "ops")
    node = keyed_node(tmp_path, TENANTS_ACL, keys)
    socks: list[zmq.Socket] = []
    a = ops = None
    try:
        node.start()
        assert node.proc is not None
        a = RawDealer(node.port, keys["tenantA"])
        ops = RawDealer(node.port, keys["ops"])
        wait_until(
            lambda: a.call("config_publish", namespace="nsA", data_id="blob", content="x" * CONTENT,
                           request_id="r37f2" + "0" * 27, timeout=10)["ok"],
            30, 0.5, what="the config to be published",
        )  # fmt: skip
        one = a.call("config_get", namespace="nsA", data_id="blob")
        assert one["ok"], reply_text(one)
        size = len(msgpack.packb(one))
        assert 4096 < size < 65536, size

        base_rss = rss_mb(node.proc.pid)
        body = msgpack.packb({"v": 1, "id": 1, "op": "config_get", "namespace": "nsA",
                              "data_id": "blob"})  # fmt: skip
        for _ in range(CONNS):
            s = zmq.Context.instance().socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVBUF, 4096)
            s.setsockopt(zmq.RCVHWM, 1)
            s.curve_publickey, s.curve_secretkey, s.curve_serverkey = keys["tenantA"]
            s.connect(f"tcp://{HOST}:{node.port}")
            socks.append(s)
            for _ in range(REQUESTS):
                s.send_multipart([b"", body])  # never read
        # the node has taken what it will take once its RSS is steady (3 samples 1 s apart)
        last = [rss_mb(node.proc.pid)]
        calm = [0]

        def steady() -> bool:
            now = rss_mb(node.proc.pid)
            calm[0] = calm[0] + 1 if abs(now - last[0]) < 2.0 and now - base_rss > 1.0 else 0
            last[0] = now
            return calm[0] >= 3

        wait_until(steady, 60, 1.0, what="the node's RSS to settle")
        grown = (rss_mb(node.proc.pid) - base_rss) * MIB
        r = ops.call("stats")
        replies = r["result"]["replies"]
        assert grown <= DOC_BOUND, (
            f"{CONNS} connections of one tenant key that never read made the node grow by "
            f"{grown / MIB:.0f} MiB (RSS), above SECURITY.md's worst case "
            f"{DOC_BOUND / MIB:.0f} MiB for them; {size}-byte replies; stats.replies "
            f"held_bytes {replies['held_bytes']}, blocked {replies['blocked']}, dropped_bytes "
            f"{replies['dropped_bytes']}, dropped_full {replies['dropped_full']}"
        )
    finally:
        for s in socks:
            s.close()
        for d in (a, ops):
            if d is not None:
                d.close()
        node.cleanup()
