"""Client sessions against real node processes: one renewal keeps many instances alive."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from conftest import FAST_TIMINGS
from helpers import NodeProcess, wait_until

from meshreg import Client

FAST_CLIENT = {"beat_interval": 0.2, "timeout": 3.0, "attempt_timeout": 0.5, "sessions": True}

# A provider process: registers N instances through the public Client, says so, waits.
CHILD = """
import sys, time
from meshreg import Client
address, n, sessions = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
c = Client([address], beat_interval=0.2, timeout=5.0, attempt_timeout=0.5, sessions=sessions)
items = [{"service": f"svc{i % 20}", "ip": f"10.{i // 60000}.{i // 250 % 240}.{i % 250 + 1}",
          "port": 80} for i in range(n)]
failed = c.register_many(items)
print("ready" if not failed else f"failed {len(failed)}", flush=True)
sys.stdin.read()  # until the test closes our stdin or kills us
"""


def start_child(node: NodeProcess, n: int, sessions: bool = True) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, node.address, str(n), "1" if sessions else "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline().strip()  # bounded: the child's register_many has a budget
    assert line == "ready", line
    return child


def counts(c: Client) -> tuple[int, int]:
    stats = c.stats()["instances"]
    return stats["healthy"], stats["unhealthy"]


def test_register_many_then_one_renewal_per_interval_keeps_them_alive(node: NodeProcess) -> None:
    with Client([node.address], **FAST_CLIENT) as c:
        items = [
            {"service": f"s{i % 7}", "ip": f"10.0.{i // 250}.{i % 250 + 1}", "port": 80}
            for i in range(3000)
        ]
        started = time.monotonic()
        assert c.register_many(items) == []
        assert time.monotonic() - started < 10
        assert counts(c) == (3000, 0)
        before = c.stats()
        start = time.monotonic()
        # ten beat intervals, over three times the node's unhealthy_after
        after = wait_until(
            lambda: (
                (s := c.stats())["sessions"]["renewals"] - before["sessions"]["renewals"] >= 10
                and s
            ),
            timeout=15,
            what="ten renewals",
        )
        elapsed = time.monotonic() - start
        assert counts(c) == (3000, 0)
        renewals = after["sessions"]["renewals"] - before["sessions"]["renewals"]
        assert renewals <= elapsed / 0.2 + 3  # one per interval, not one per instance
        assert after["beats_total"] == before["beats_total"] == 0
        assert after["sessions"]["instances"] == 3000
    with Client([node.address], **FAST_CLIENT) as c2:  # close() closed the session
        assert counts(c2) == (0, 0)
        assert c2.stats()["sessions"]["count"] == 0


@pytest.mark.parametrize("sessions", [True, False], ids=["session", "per-instance beats"])
@pytest.mark.parametrize("preserve", [True, False], ids=["preserving", "no-preservation"])
def test_a_killed_clients_instances_turn_unhealthy_then_are_evicted(
    start_node: Callable[..., NodeProcess], sessions: bool, preserve: bool
) -> None:
    node = start_node(*FAST_TIMINGS, *(() if preserve else ("--no-self-preservation",)))
    child = start_child(node, 500, sessions)
    try:
        with Client([node.address], **FAST_CLIENT) as c:
            wait_until(lambda: counts(c) == (500, 0), what="registered")
            # a beat stream, not a one-shot registration (which self-preservation ignores)
            op, least = ("session_renew", 2) if sessions else ("beat", 1000)
            wait_until(lambda: c.stats()["requests"].get(op, 0) >= least, what="renewals")
            child.kill()  # SIGKILL: no close, only expiry removes them
            child.wait(5)
            killed = time.monotonic()
            wait_until(lambda: counts(c) == (0, 500), timeout=5, what="all unhealthy")
            took = time.monotonic() - killed
            # unhealthy_after 0.6 + check_interval 0.1 after the last renewal (before the
            # kill), plus 1 s for asking on a loaded 2-core machine
            assert took < 0.6 + 0.1 + 1.0, took
            if preserve and not sessions:  # 500 beat streams silent at once: held, unhealthy
                wait_until(lambda: c.stats()["self_preservation"]["active"], timeout=5)
                assert counts(c) == (0, 500)
            else:  # (one session is one stream: one process that died, review24 F4)
                wait_until(lambda: counts(c) == (0, 0), timeout=5, what="evicted")
                assert not c.stats()["self_preservation"]["active"]
    finally:
        child.kill()
        child.wait(5)


def test_a_restarted_node_gets_the_sessions_instances_again(
    start_node: Callable[..., NodeProcess],
) -> None:
    node = start_node(*FAST_TIMINGS)
    with Client([node.address], **FAST_CLIENT) as c:
        items = [{"service": "orders", "ip": f"10.0.0.{i + 1}", "port": 80} for i in range(200)]
        assert c.register_many(items) == []
        node.stop()
        node.start()
        wait_until(lambda: counts(c) == (200, 0), timeout=10, what="registered again")


def test_a_dead_server_is_one_log_line_per_interval_not_one_per_instance(
    node: NodeProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """End to end, through the real logger (the policy over longer times, fake clock:
    tests/client/test_client_session_liveness.py)."""
    with Client([node.address], **FAST_CLIENT) as c:
        items = [
            {"service": "orders", "ip": f"10.0.{i // 250}.{i % 250 + 1}", "port": 80}
            for i in range(1000)
        ]
        assert c.register_many(items) == []
        caplog.set_level(logging.WARNING, "meshreg.client")
        node.kill()
        agent = c._agent
        failed_before = agent.status.renewals_failed
        wait_until(
            lambda: agent.status.renewals_failed - failed_before >= 4,
            timeout=20,
            what="four renewals without an answer",
        )
        lines = [r for r in caplog.records if r.name == "meshreg.client"]
        assert 1 <= len(lines) <= 6, [r.getMessage() for r in lines]
        c.close(timeout=0.5)
