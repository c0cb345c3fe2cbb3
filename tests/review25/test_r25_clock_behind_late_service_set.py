"""review25 F1 (registry side): review20 F2 comes back on a node whose clock is behind.
A `service_set` whose first attempt waited in a stopped node's socket is applied when that
node resumes, long past its deadline, because the node (8 s behind) judges the deadline
by its own clock; with a fresh stamp it undoes the operator's later `service_set` on every
node (and in every registry-state.sqlite3).

Steps (review20's, 2 nodes, A's clock 8 s behind, the service owned by A): an operator's
Client([A, B]) sets v0; A is SIGSTOPped; set_service(v1): the attempt to A times out, the
client resends it to B, which applies it; set_service(v2) through B; A resumed 4 s after
the stop (past every attempt's deadline by the client's clock).
Expected (CHANGELOG review20 F1/F2: "A node refuses them past the deadline"; README "no
node applies it more than 0.5 s after the error"): v2 everywhere. The same steps with
clocks right pass (tests/review20/test_r20_late_service_set.py).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from helpers import holds_for, service_owned_by, start_all, wait_until
from r25lib import make_nodes, members_up, new_ports, req

from meshreg import Client


def settings(node, service: str) -> tuple[float, dict[str, str]] | None:
    r = req(node, "instances", 1.0, service=service, healthy_only=False)
    if not r or not r.get("ok"):
        return None
    return r["result"].get("protect_threshold"), r["result"].get("service_metadata")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("behind", [0.0, -8.0], ids=["clocks-right", "owner-8s-behind"])
def test_stale_service_set_on_a_node_behind_does_not_undo_a_later_one(
    started_nodes, tmp_path: Path, behind: float
) -> None:
    nodes = make_nodes(new_ports(2), ("--peer-timeout", "1.0", "--check-interval", "0.5"),
                       str(tmp_path), skews={0: behind} if behind else {})  # fmt: skip
    started_nodes.extend(nodes)
    start_all(nodes)
    a, b = nodes
    wait_until(lambda: members_up(nodes), 15, 0.2, "both members up")
    svc = service_owned_by(a.address, [a.address, b.address], "ss25-")
    with Client([a.address, b.address]) as operator:
        operator.set_service(svc, protect_threshold=0.1, metadata={"v": "0"})
        wait_until(lambda: settings(b, svc) == (0.1, {"v": "0"}), 5, 0.1, "v0 on B")
        a.signal(signal.SIGSTOP)
        try:
            stopped = time.monotonic()
            operator.set_service(svc, protect_threshold=0.5, metadata={"v": "1"})
            operator.set_service(svc, protect_threshold=0.0, metadata={"v": "2"})
            assert settings(b, svc) == (0.0, {"v": "2"})
            resume_at = stopped + 4.0
            wait_until(lambda: time.monotonic() >= resume_at, 6, 0.05, "the stop's end")
        finally:
            a.signal(signal.SIGCONT)
        latest = (0.0, {"v": "2"})
        seen: list[object] = []

        def latest_on_b() -> bool:
            seen.append(settings(b, svc))
            return seen[-1] in (None, latest)

        try:
            holds_for(latest_on_b, 4.0, 0.1, "the operator's last service_set (v2) on B")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; B shows {seen[-1]!r}, A {settings(a, svc)!r} (A's clock {behind:+g} s)"
            ) from None
