"""A real node reading a peer's ``deltas`` message (PROTOCOL.md 2.14) with a bad delta
in the middle: the good ones apply, the bad one is counted and logged, nothing else."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgpack
import zmq
from conftest import CLUSTER_TIMINGS
from helpers import HOST, NodeProcess, free_port_pair, raw_request, wait_until


def stamp() -> int:
    return int(time.time() * 1_000_000) << 10  # core/versions: microseconds << 10


def payload(service: str, ip: str) -> dict[str, Any]:
    s = stamp()
    instance = {"ip": ip, "port": 80, "cluster": "DEFAULT", "weight": 1.0, "enabled": True,
                "healthy": True, "metadata": {}, "version": s, "alive": s, "down": 0}  # fmt: skip
    return {"namespace": "public", "group": "DEFAULT_GROUP", "service": service,
            "upsert": [instance], "remove": [], "settings": None}  # fmt: skip


def test_a_bad_delta_in_a_batch_is_counted_and_the_good_ones_apply(
    start_node: Callable[..., NodeProcess],
) -> None:
    fake = free_port_pair()  # a peer that only publishes: its PUB on port + 2
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(f"tcp://{HOST}:{fake + 2}")
    try:
        node = start_node(*CLUSTER_TIMINGS, "--peer", f"{HOST}:{fake}")
        me = f"{HOST}:{fake}"
        beacon = {"v": 1, "node": me, "address": me, "epoch": 5, "ready": True, "seq": 0}

        def heard() -> bool:  # the SUB is connected once a beacon got through
            pub.send_multipart([b"beacon", msgpack.packb(beacon)])
            view = raw_request(node.port, {"v": 1, "id": 1, "op": "cluster"})["result"]
            return any(m["id"] == me and m["state"] == "up" for m in view["members"])

        wait_until(heard, timeout=15, what="the node to hear the fake peer")
        before = raw_request(node.port, {"v": 1, "id": 2, "op": "stats"})["result"]
        bad = payload("batch-b", "10.5.0.2")
        bad["upsert"][0]["ip"] = "not a host"
        body = {"v": 1, "node": me, "epoch": 5, "seq": 1,
                "deltas": [payload("batch-a", "10.5.0.1"), bad,
                           payload("batch-c", "10.5.0.3")]}  # fmt: skip
        pub.send_multipart([b"deltas", msgpack.packb(body)])

        def listed(service: str) -> list[str]:
            req = {"v": 1, "id": 3, "op": "instances", "service": service}
            reply = raw_request(node.port, req)
            if not reply.get("ok"):  # (catching up: its peer, this test, answers no round)
                return []
            return [i["ip"] for i in reply["result"]["instances"]]

        wait_until(lambda: listed("batch-c") == ["10.5.0.3"], timeout=10, what="the last delta")
        assert listed("batch-a") == ["10.5.0.1"]
        assert listed("batch-b") == []
        after = raw_request(node.port, {"v": 1, "id": 4, "op": "stats"})["result"]
        assert after["replication_in"] - before["replication_in"] == 2
        assert after["replication_errors"] - before["replication_errors"] == 1
        wait_until(lambda: "bad delta 2 from" in node.log(), timeout=5, what="the log line")
        assert "'ip'" in node.log()
    finally:
        pub.close()
