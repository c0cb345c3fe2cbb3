"""review36 F2: a deregistration that only the node which acknowledged it knew of, that
node then dying, leaves the instance registered and HEALTHY on every other node for as
long as its provider runs: the provider's session renewals keep alive the copy the other
nodes hold, since the copy names the session.

Steps: 3 nodes; a provider (the Python client, sessions on: the default) registers three
instances of a service owned by node A; B and C are stopped (SIGSTOP: for A, a partition)
until A counts them down; the provider deregisters one instance (A applies it and answers
ok); A dies (SIGKILL) before B and C hear of it; B and C resume.

Expected (README "The Python client": "SIGKILL and crashes leave the instances to the node:
unhealthy after `unhealthy_after`, evicted after `evict_after`"; DISTRO.md "Sessions": an
instance is judged by its session's renewals): the deregistered instance is no longer
renewed by anyone (its provider deregistered it) and is gone from B and C within
`evict_after` plus the grace of a member change, as it is with per-instance beats
(`sessions=False`, the control case, passes).  Seen: listed healthy on B and C (and on A
once restarted) for as long as the provider runs (30 s and more with `evict_after` 6 s).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from r36lib import Node, new_nodes, running, wait_until  # noqa: E402

from meshreg.client import Client  # noqa: E402
from meshreg.core.mapping import responsible_node  # noqa: E402
from meshreg.model import ServiceKey  # noqa: E402

GONE = "10.36.2.1:80"
KEPT = ("10.36.2.2:80", "10.36.2.3:80")
# SHORT timings: unhealthy 3 s, evict 6 s, peer timeout 1 s; a member change adds a grace
# of unhealthy_after; the budget is twice all of it
DEADLINE = 2 * (6.0 + 3.0 + 3.0)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[Node]]:
    with running(new_nodes(3, str(tmp_path))) as nodes:
        yield nodes


def _others_down(node: Node) -> bool:
    c = node.cluster()
    return bool(c) and all(m["state"] == "down" for m in c["members"] if not m["self"])


def _down_on(node: Node, address: str) -> bool:
    c = node.cluster()
    return bool(c) and any(m["address"] == address and m["state"] == "down" for m in c["members"])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sessions", [True, False], ids=["sessions", "beats-control"])
def test_lost_deregistration_is_not_kept_alive(cluster: list[Node], sessions: bool) -> None:
    a, b, c = cluster
    peers = [n.address for n in cluster]
    svc = next(
        f"lost36-{i}"
        for i in range(500)
        if responsible_node(ServiceKey("public", "DEFAULT_GROUP", f"lost36-{i}"), peers)
        == a.address
    )
    prov = Client(peers, handle_sigterm=False, server_order="listed", sessions=sessions,
                  beat_interval=1.0)  # fmt: skip
    try:
        for j in (1, 2, 3):
            prov.register(svc, f"10.36.2.{j}", 80)
        wait_until(lambda: all(len(n.listing(svc) or {}) == 3 for n in cluster), 10, 0.05,
                   "3 instances on every node")  # fmt: skip

        b.signal(signal.SIGSTOP)
        c.signal(signal.SIGSTOP)
        wait_until(lambda: _others_down(a), 15, 0.1, "A counts B and C down")
        prov.deregister(svc, GONE.split(":")[0], 80)  # A (the owner) applies it: ok
        assert GONE not in (a.listing(svc) or {GONE: True})
        a.kill()  # A dies before B and C learn of the deregistration
        b.signal(signal.SIGCONT)
        c.signal(signal.SIGCONT)
        wait_until(lambda: _down_on(b, a.address) and _down_on(c, a.address), 15, 0.1,
                   "B and C count A down")  # fmt: skip

        def settled() -> bool:  # the deregistered one gone, the two live ones kept
            for n in (b, c):
                got = n.listing(svc)
                if got is None or GONE in got or not all(got.get(k) for k in KEPT):
                    return False
            return True

        try:
            wait_until(settled, DEADLINE, 0.2)
        except AssertionError:
            raise AssertionError(
                f"{DEADLINE:g} s after A's death the deregistered {GONE} is still listed: "
                f"B {b.listing(svc)}, C {c.listing(svc)} (address: healthy); the provider "
                f"({'a session' if sessions else 'per-instance beats'}) keeps running"
            ) from None
    finally:
        prov.close(2.0)
