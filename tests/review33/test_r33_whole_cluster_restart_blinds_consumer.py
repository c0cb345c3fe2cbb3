"""review33 F1: a whole-cluster restart pushes an empty (then partial) list to a
subscriber, although README ("Push-empty protection") says a list from a node that
restarted less than 15 s ago that drops instances the consumer sees, "empty or partial,
is not trusted at all ... so neither a node's restart nor a whole-cluster restart blinds
consumers".

Three nodes started by the CLI (short timings), a provider on a session with 3
instances, a consumer subscribed.  SIGKILL every node, start them again on their data
dirs: the providers register again by themselves within seconds; the consumer must keep
its 3 instances meanwhile.  client/session.py ``_pulled`` skips the young-node hold once
the node says ``synced``, which a node caught up from equally empty peers says at once."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import HOST, NodeProcess, free_port_pair, start_all, wait_until  # noqa: E402

from meshreg import Client  # noqa: E402

# unhealthy_after 6 s: the provider renews its session every 2 s (as a default client
# renews every 5 s against the default 15 s), so it registers again up to 2 s after the
# restart: the window in which the nodes hold nothing is the renewal interval
TIMINGS = ("--check-interval", "0.5", "--unhealthy-after", "6", "--evict-after", "12")
PEER = ("--peer-timeout", "1.5")


@pytest.mark.timeout(90)
def test_whole_cluster_restart_never_pushes_fewer_instances() -> None:
    data = tempfile.mkdtemp(prefix="r33-f1-")
    ports = [free_port_pair() for _ in range(3)]
    addrs = [f"{HOST}:{p}" for p in ports]
    peers = [arg for a in addrs for arg in ("--peer", a)]
    nodes = [
        NodeProcess(*TIMINGS, *PEER, *peers, "--data-dir", os.path.join(data, f"n{i}"), port=p)
        for i, p in enumerate(ports)
    ]
    provider = consumer = None
    views: list[tuple[float, int]] = []
    lock = threading.Lock()
    try:
        start_all(nodes, 30)
        provider = Client(addrs, beat_interval=2.0, handle_sigterm=False)
        for port in (80, 81, 82):
            provider.register("web", "10.0.0.1", port)
        consumer = Client(addrs, handle_sigterm=False)

        def seen(instances: list) -> None:
            with lock:
                views.append((time.monotonic(), len(instances)))

        consumer.subscribe("web", seen)
        wait_until(lambda: views and views[-1][1] == 3, 15, what="the consumer sees 3")

        for node in nodes:  # the whole cluster dies at once
            assert node.proc is not None
            node.proc.kill()
        for node in nodes:
            assert node.proc is not None
            node.proc.wait(5)
        fault = time.monotonic()
        time.sleep(1.0)  # (the outage itself, not an assertion)
        for node in nodes:
            node.launch()
        for node in nodes:
            node.wait_ready(30)

        # the provider registers again by itself; wait until every node lists all 3 and
        # the consumer holds them, then judge everything the consumer was pushed
        def back() -> bool:
            for node in nodes:
                c = Client([node.address], timeout=2, handle_sigterm=False)
                try:
                    if len(c.instances("web", healthy_only=False)) != 3:
                        return False
                except Exception:
                    return False
                finally:
                    c.close()
            return True

        wait_until(back, 30, 0.3, what="every node lists the 3 instances again")
        wait_until(lambda: views[-1][1] == 3, 10, what="the consumer holds 3 again")
        with lock:
            after = [(round(t - fault, 2), n) for t, n in views if t >= fault]
        fewer = [(t, n) for t, n in after if n < 3]
        assert not fewer, (
            "after a whole-cluster restart the subscriber was pushed fewer instances than "
            f"it held (s after the SIGKILL, instances): {after}"
        )
    finally:
        for c in (provider, consumer):
            if c is not None:
                c.close(timeout=1.0)
        for node in nodes:
            node.cleanup()
