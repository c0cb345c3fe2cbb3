"""A consumer whose only server restarts keeps every healthy instance in its view.

Three real nodes; a consumer follows node C alone; C is SIGKILLed and started again (same
port, same data directory) while its peers hold every instance; a new instance registers
right after, so the consumer re-pulls from C while C is still catching up. C's first
answers list nothing or only the new instance: the client holds them back (a young
incarnation's list that drops instances, client/session.py) and takes C's list once it
drops nothing. Found by an outside review (review11): the consumer's callback got
``['10.0.0.7:8080']`` alone, or ``[]``, in 12 of 16 runs.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
from test_configs import Conn, start_nodes

from meshreg import Client

pytestmark = pytest.mark.timeout(120)


def _down_at(conn: Conn, address: str) -> bool:
    members = conn.ok("cluster")["members"]
    return any(m["address"] == address and m["state"] == "down" for m in members)


def test_a_subscriber_keeps_the_healthy_instances_when_its_only_node_restarts(
    tmp_path: Path,
) -> None:
    nodes = start_nodes(3, tmp_path)  # test timings: --peer-timeout 1
    calls: list[list[str]] = []
    lock = threading.Lock()

    def seen(instances: list[Any]) -> None:
        with lock:
            calls.append(sorted(i.address for i in instances))

    other = Conn(nodes[0].port)
    try:
        watched = nodes[2]
        with Client([n.address for n in nodes]) as provider, Client([watched.address]) as consumer:
            provider.register("orders", "10.0.0.5", 8080)
            provider.register("orders", "10.0.0.6", 8080)
            want = ["10.0.0.5:8080", "10.0.0.6:8080"]
            consumer.subscribe("orders", seen)
            wait_until(lambda: calls and calls[-1] == want, 10, what="both instances seen")
            with lock:
                start = len(calls)  # the callbacks from the restart on
            watched.kill()
            wait_until(lambda: _down_at(other, watched.address), 15, what="C seen down")
            watched.start()  # its peers still hold both instances
            provider.register("orders", "10.0.0.7", 8080)  # the consumer re-pulls from C
            want3 = [*want, "10.0.0.7:8080"]
            wait_until(lambda: calls[-1] == want3, 30, what="the consumer follows C again")
            with lock:
                later = calls[start:]
        shrunk = [c for c in later if not set(want) <= set(c)]
        assert not shrunk, f"healthy instances vanished from the view: {later}"
    finally:
        other.close()
        for node in nodes:
            node.cleanup()
