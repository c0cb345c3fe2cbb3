"""review37 F6: `namespaces` asked by a key that may not read everything costs the node
O(every service it holds) on its loop, with an ACL match per service (store
``count_by_namespace``), yet the read rate counts it as one request like any other
(`read_rate_per_client` 200/s, burst 400).  A tenant that may read only its own
namespace stalls the node for everyone with a handful of requests.

By hand (/tmp/r37/e17.py, keyed 3-node cluster, tenant A's own 50,400 services in nsA,
within its quota of 100,000): one `namespaces` as tenant A 285-1,950 ms, as the ops key
(read everything) 0 ms; 8 connections of tenant A sending them for 20 s (118 answered:
~6/s, far under the rate limit): node0 detected 27 stalls of its own loop ("judging
nobody's health"), tenant B's session renewals p50 978 ms, max 2.9 s (1 ms before).

SECURITY.md "Expensive reads": the rate limit exists "so a flood of them cannot take the
node from the hot path"; PROTOCOL.md 2.7a: counted among the rate-limited reads.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgpack
import pytest
import zmq
from r37lib import HOST, TENANTS_ACL, RawDealer, keyed_node, make_keys, reply_text

SERVICES = 99_400  # tenant A's own, in its own namespace (quota: 100,000)
CONNS = 60  # one `namespaces` each: 60 requests, far within the key's burst of 400


@pytest.mark.timeout(120)
def test_a_few_namespaces_requests_do_not_stall_the_node(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "tenantA", "tenantB", "ops")
    node = keyed_node(tmp_path, TENANTS_ACL, keys)
    a = b = None
    socks: list[zmq.Socket] = []
    try:
        node.start()
        a = RawDealer(node.port, keys["tenantA"])
        b = RawDealer(node.port, keys["tenantB"])
        s = b.call("session_open", namespace="nsB")
        assert s["ok"], reply_text(s)
        session = s["result"]["session"]
        sent = 0
        while sent < SERVICES:
            for _ in range(8):
                a.send("register_batch", namespace="nsA", instances=[
                    {"service": f"svc{sent + i}", "ip": "10.0.0.1", "port": 80} for i in range(700)
                ])  # fmt: skip
                sent += 700
            for r in a.replies(8, timeout=60):
                assert r["ok"], reply_text(r)
        body = msgpack.packb({"v": 1, "id": 1, "op": "namespaces"})
        for _ in range(CONNS):
            sock = zmq.Context.instance().socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = keys["tenantA"]
            sock.connect(f"tcp://{HOST}:{node.port}")
            socks.append(sock)
        for sock in socks:  # wait for every handshake: one ping each
            sock.send_multipart([b"", msgpack.packb({"v": 1, "id": 2, "op": "ping"})])
        for sock in socks:
            assert sock.poll(10_000), "no ping reply"
            sock.recv_multipart()
        for sock in socks:
            sock.send_multipart([b"", body])
        # tenant B renews its session as often as it can while they are served
        worst = 0.0
        deadline = time.monotonic() + 60
        pending = set(range(CONNS))
        while pending and time.monotonic() < deadline:
            t = time.monotonic()
            r = b.call("session_renew", namespace="nsB", session=session, timeout=60)
            worst = max(worst, time.monotonic() - t)
            assert r["ok"], reply_text(r)
            for i in list(pending):
                if socks[i].poll(0):
                    socks[i].recv_multipart()
                    pending.discard(i)
        assert worst < 1.0, (
            f"tenant B's session renewal took up to {worst:.1f}s while {CONNS} `namespaces` "
            f"requests of tenant A were served (A may read only its own namespace, of "
            f"{SERVICES} services; the key's read rate allows 200/s, burst 400)"
        )
    finally:
        for sock in socks:
            sock.close()
        for d in (a, b):
            if d is not None:
                d.close()
        node.cleanup()
