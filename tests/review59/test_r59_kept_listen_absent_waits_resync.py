"""review59 F3 (low): a `config_listen()` kept during a whole-cluster outage, for a data id
that does not exist, is called (with `(None, 0)`, "now" for an absent data id) only at the
client's 30 s resync, about 20 s after the cluster is back and ready; a kept `subscribe()`
is called within a second of a node answering, and a kept listener of a data id that
exists gets its version within a second of the cluster being ready (the node's
subscription sync pushes it).

README "Consumers", Outage: the listener "is called with the live list as soon as a node
answers"; docs/CONFIG.md "Disk": a kept config listener "is listened to again when a node
answers, else at the next 30 s resync, and called with the live version"; CONFIG.md
"Listening": the callback gets "`(None, 0)` at first for a data id that does not exist".
An application that waits for its first config callback before serving (the usual
"initial config, or defaults if absent" start-up) stays blocked ~20-30 s after the
registry is back.  Nacos 2 redoes config listens every few seconds (its listen loop
runs at least every 5 s).

Observed (3 configured nodes all down; Client with the 3 servers; node A started, B 5 s
later; A ready at t=10.0 s): the kept listener was called `(None, 0)` at t=31.2 s, 21 s
after A answered `ping --ready` (3 of 3 runs: one script, this test twice, each
still uncalled 10 s after ready; the same data id published before the
outage: called 0.4 s BEFORE A was ready, 1 of 1 runs).
"""

from __future__ import annotations

import tempfile
import threading
import time

import pytest
from helpers import NodeProcess, free_port_pair, run_cli, wait_until

from meshreg import Client
from meshreg.errors import MeshregError

pytestmark = pytest.mark.timeout(150)

def test_kept_listener_of_absent_data_id_is_called_once_the_cluster_is_ready() -> None:
    ports = [free_port_pair() for _ in range(3)]
    addrs = [f"127.0.0.1:{p}" for p in ports]
    peers = [x for a in addrs for x in ("--peer", a)]
    timing = ("--check-interval", "0.5", "--peer-timeout", "1.0")
    with tempfile.TemporaryDirectory(prefix="r59-") as tmp:
        nodes = [NodeProcess(*peers, *timing, "--data-dir", f"{tmp}/{p}", port=p) for p in ports]
        heard: list[tuple[float, object, int]] = []
        lock = threading.Lock()

        def listener(content: object, revision: int) -> None:
            with lock:
                heard.append((time.monotonic(), content, revision))

        client = Client(addrs, timeout=2.0, attempt_timeout=0.5)
        try:
            with pytest.raises(MeshregError) as caught:  # every node down: kept
                client.config_listen("absent.yaml", listener)
            assert caught.value.listener_kept, caught.value
            nodes[0].start()
            wait_until(lambda: run_cli("ping", "-s", addrs[0]).returncode == 0, 20, 0.2,
                       "node A to answer")  # fmt: skip
            # A alone: up, configs not ready (no majority), as in a restart; the kept
            # listener's listen is refused by it (not ready) before B starts
            with Client([addrs[0]], timeout=2.0) as probe:

                def refused_by_a() -> bool:
                    return probe.stats()["config"]["reads_not_ready"] >= 1

                wait_until(refused_by_a, 20, 0.1, "A to refuse the kept listen (not ready)")
            nodes[1].start()
            wait_until(lambda: run_cli("ping", "--ready", "-s", addrs[0]).returncode == 0,
                       60, 0.3, "node A ready (registry and configs)")  # fmt: skip
            ready_at = time.monotonic()
            wait_until(lambda: heard, 10, 0.1,
                       "the kept listener to be called with (None, 0) within 10 s of the "
                       "cluster being ready")  # fmt: skip
            assert heard[0][1:] == (None, 0), heard
            assert heard[0][0] - ready_at < 10, heard
        finally:
            client.close()
            for node in nodes:
                node.cleanup()
