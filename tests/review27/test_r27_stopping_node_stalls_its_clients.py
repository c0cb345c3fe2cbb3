"""review27 F2: a node stopped gracefully (SIGTERM, as a rolling restart does) leaves the
requests of its clients unanswered: each client waits its whole ``attempt_timeout``
(1 s for a registry call; 2.5 s for a config write) before it tries the next server.

Measured (/work/notes/review27.md): a client whose first server is stopped: instances(),
set_service() and config_get() calls in flight took 0.98-1.01 s, config publishes
1.9-3.0 s; during a 3-node roll a client followed the restarts (it moves to the next
node, which is the next restarted) and stalled 2-3 times.  Cause: runtime/node.py
NodeRuntime.finish() leaves the loop and closes the sockets; requests queued or arriving
after the SIGTERM get no reply (nor an UNAVAILABLE "stopping"), and nothing tells the
client the connection is going away.

Expected (Nacos 2 sends its gRPC clients a ConnectResetRequest before it shuts down;
Consul's agents close their RPC connections so callers fail over at once): a graceful stop
costs a client at most a few milliseconds.
"""

from __future__ import annotations

import threading
import time

import pytest
from r27lib import all_ready, cluster, wait_until

from meshreg import Client


@pytest.mark.timeout(90)
def test_a_graceful_stop_does_not_stall_the_clients_of_the_stopped_node(tmp_path) -> None:
    nodes = cluster(3, str(tmp_path))
    victim = nodes[0]
    c = Client([n.address for n in nodes], handle_sigterm=False, server_order="listed")
    try:
        wait_until(lambda: all_ready(nodes), 30, 0.1, "3 members up and ready")
        assert c.server == victim.address  # the first listed node
        lat: list[tuple[float, float]] = []
        stop = threading.Event()
        stopped = [0.0]

        def loop() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                t0 = time.monotonic()
                c.services()  # a read the client cannot answer from a local view
                lat.append((t0, time.monotonic() - t0))
                stop.wait(0.02)

        th = threading.Thread(target=loop, daemon=True)
        th.start()
        wait_until(lambda: len(lat) >= 20, 10, 0.05, "reads flowing")
        stopped[0] = time.monotonic()
        assert victim.stop() == 0
        wait_until(lambda: time.monotonic() - stopped[0] > 3, 5, 0.1, "3 s of reads")
        stop.set()
        th.join(10)
        after = [d for t0, d in lat if t0 >= stopped[0] - 0.05]
        worst = max(after)
        assert worst < 0.5, (
            f"a read in flight when its node was stopped gracefully took {worst:.2f}s "
            f"(reads before the stop: max {max(d for t0, d in lat if t0 < stopped[0] - 0.05):.3f}s)"
        )
    finally:
        c.close(timeout=1)
        for n in nodes:
            n.cleanup()
