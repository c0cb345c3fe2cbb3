"""The config ready gate and its override, with real processes (docs/CONFIG.md, "The
ready gate"): after a full-cluster restart where only one node comes back, that node never
answers config reads as ready (it cannot catch up from a majority); restarted with
``--config-force-ready`` it serves its own disk at once, says so (stats, ``meshreg
cluster``, a warning in its log), and still refuses writes (no majority); once the peers
are back the cluster takes writes again and the forced node gets them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import meshreg_cmd, start_all, wait_until
from test_configs import Conn, config_ready, start_nodes

pytestmark = pytest.mark.timeout(150)


def test_a_lone_survivor_is_not_ready_until_the_operator_forces_it(tmp_path: Path) -> None:
    nodes = start_nodes(3, tmp_path)
    conns: list[Conn] = []
    try:
        for node in nodes:
            wait_until(lambda n=node: config_ready(n), 15, what="config plane ready")
        first = Conn(nodes[0].port)
        conns.append(first)
        v1 = first.ok("config_publish", data_id="gate.txt", content="v1")
        for node in nodes:  # acknowledged by a majority; every node holds it (repair)
            conn = Conn(node.port)
            conns.append(conn)
            wait_until(
                lambda c=conn: c.call("config_get", data_id="gate.txt")["ok"], 15,
                what="v1 everywhere",
            )  # fmt: skip
        for node in nodes:
            node.stop()
        lone = nodes[0]
        lone.start()  # its peers never come back
        conn = Conn(lone.port)
        conns.append(conn)
        stats = conn.ok("stats")["config"]
        assert not stats["ready"] and not stats["forced_ready"]
        name, message = conn.error("config_get", data_id="gate.txt")
        assert name == "UNAVAILABLE" and "catching up" in message
        # the operator's override: a restart with --config-force-ready
        lone.stop()
        plain = lone.extra
        lone.extra = (*plain, "--config-force-ready")
        lone.start()
        conn = Conn(lone.port)
        conns.append(conn)
        got = conn.ok("config_get", data_id="gate.txt")
        assert got["content"] == "v1" and got["revision"] == v1["revision"]
        stats = conn.ok("stats")["config"]
        assert stats["ready"] and stats["forced_ready"]
        assert "READY FORCED" in lone.log()
        shown = subprocess.run(
            meshreg_cmd("cluster", "-s", lone.address), capture_output=True, text=True,
            timeout=30, check=True,
        ).stdout  # fmt: skip
        assert "configs: ready (FORCED by the operator" in shown, shown
        name, message = conn.error("config_publish", data_id="gate.txt", content="alone")
        assert name == "UNAVAILABLE" and "need a majority" in message  # writes: unchanged
        # the peers come back: writes work again, the forced node gets them
        start_all(nodes[1:])
        other = Conn(nodes[1].port)
        conns.append(other)

        def publish() -> bool:
            return bool(other.call("config_publish", data_id="gate.txt", content="v2")["ok"])

        wait_until(publish, 30, interval=0.2, what="a write once the peers are back")
        wait_until(
            lambda: conn.call("config_get", data_id="gate.txt")["result"]["content"] == "v2",
            15, what="v2 on the forced node",
        )  # fmt: skip
        lone.extra = plain
    finally:
        for c in conns:
            c.close()
        for node in nodes:
            node.cleanup()
