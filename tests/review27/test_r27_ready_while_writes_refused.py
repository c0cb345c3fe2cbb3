"""review27 notes: with 2 of 3 members down, `meshreg ping` and `meshreg cluster` on the
survivor said "ready" / "configs: ready" and nothing else, while every config write was
refused for want of a majority.  Ready still means caught up (reads are served; a
rolling restart waits for it), and both now say that config writes are refused, and why."""

from __future__ import annotations

import signal

import pytest
from helpers import run_cli
from r27lib import all_ready, cluster, req, wait_until


@pytest.mark.timeout(90)
def test_ping_and_cluster_say_config_writes_are_refused_without_a_majority(tmp_path) -> None:
    nodes = cluster(3, str(tmp_path))
    try:
        wait_until(lambda: all_ready(nodes), 30, 0.1, "3 members up and ready")
        pong = run_cli("ping", "-s", nodes[0].address)
        assert pong.returncode == 0 and "refused" not in pong.stdout, pong.stdout
        shown = run_cli("cluster", "-s", nodes[0].address).stdout
        assert "configs: ready\n" in shown and "REFUSED" not in shown, shown
        for n in nodes[1:]:
            n.signal(signal.SIGKILL)

        def alone() -> bool:
            r = req(nodes[0], "ping")
            return bool(r and r["ok"] and r["result"].get("members_up") == 1)

        wait_until(alone, 20, 0.1, "the survivor counts its peers down")
        pong = run_cli("ping", "--ready", "-s", nodes[0].address)
        assert pong.returncode == 0, pong.stdout + pong.stderr  # caught up: reads served
        assert (
            "ready; config writes refused: this node sees 1 of its 3 configured members up "
            "and a config write needs 2" in pong.stdout
        ), pong.stdout
        shown = run_cli("cluster", "-s", nodes[0].address).stdout
        assert "configs: ready; WRITES REFUSED: this node sees 1 of its 3" in shown, shown
        wrote = run_cli("config", "publish", "x.yaml", "--content", "x", "-s", nodes[0].address)
        assert wrote.returncode == 1 and "majority" in wrote.stderr, wrote.stderr
    finally:
        for n in nodes:
            n.cleanup()
