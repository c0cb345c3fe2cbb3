"""review27 F7: when the node a consumer is connected to is stopped gracefully (a rolling
restart's step), the consumer's subscribed view is frozen until its next probe (up to
PROBE_INTERVAL, 5 s): changes made meanwhile are not pushed, so it serves an instance
that was deregistered and does not see the new one.

Measured in a 3-node rolling restart under traffic (/work/notes/review27.md, run3): a
provider replaced its `churn` instance (registered 10.9.0.22, deregistered 10.9.0.21) 2.1 s
after the consumers' node got SIGTERM; both consumers kept listing 10.9.0.21 only until
41.58 s, 6.0 s after the previous change and 3.1 s after this one; 10.9.0.22 never
appeared in their callbacks (the next change replaced it).  Their "did not answer in
time" warnings came 5 s after the node stopped.

Cause: the client sees its server connection drop (client/agent.py ``_dealer_events``
gets EVENT_DISCONNECTED) but session.py ``server_disconnected`` only marks the link down;
it neither fails over nor probes at once: a client that only watches finds out at its
next ping, every ``PROBE_INTERVAL`` (session.py), 5 s.

Expected (a Nacos 2 client's gRPC stream closes and it reconnects to the next server and
redoes its subscriptions at once; Consul's blocking queries return on a closed agent
connection): a consumer of a node stopped gracefully is current again within about a
second.
"""

from __future__ import annotations

import threading
import time

import pytest
from r27lib import all_ready, cluster, wait_until

from meshreg import Client


@pytest.mark.timeout(120)
def test_a_consumer_sees_changes_soon_after_its_node_is_stopped(tmp_path) -> None:
    nodes = cluster(3, str(tmp_path))
    consumer = Client([n.address for n in nodes], handle_sigterm=False, server_order="listed")
    provider = Client([nodes[2].address, nodes[1].address], handle_sigterm=False)
    seen: dict[str, float] = {}
    lock = threading.Lock()

    def on_change(instances: list) -> None:
        now = time.monotonic()
        with lock:
            for i in instances:
                seen.setdefault(i.address, now)

    try:
        wait_until(lambda: all_ready(nodes), 30, 0.1, "3 members up and ready")
        provider.register("orders", "10.0.0.1", 80)
        consumer.subscribe("orders", on_change)
        wait_until(lambda: "10.0.0.1:80" in seen, 10, 0.05, "the consumer's first list")
        lags = []
        # twice: the consumer's server (nodes[0]) is stopped; then the one it moved to
        for step, victim in enumerate(nodes[:2]):
            wait_until(lambda v=victim: consumer.server == v.address, 15, 0.05,
                       f"the consumer on {victim.address}")  # fmt: skip
            assert victim.stop() == 0
            address = f"10.0.1.{step}"
            registered = time.monotonic()
            provider.register("orders", address, 80)
            wait_until(lambda a=address: f"{a}:80" in seen, 20, 0.05, f"{address} seen")
            lags.append(seen[f"{address}:80"] - registered)
            if step == 0:
                victim.start(30)  # back, as a rolling restart does
                wait_until(lambda: all_ready(nodes), 60, 0.1, "ready again")
        assert max(lags) < 1.0, (
            "a change made right after the consumer's node was stopped gracefully reached "
            f"the consumer {', '.join(f'{x:.2f}s' for x in lags)} later (two stops)"
        )
    finally:
        consumer.close(timeout=1)
        provider.close(timeout=1)
        for n in nodes:
            n.cleanup()
