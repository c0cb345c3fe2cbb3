"""review14b: a peer restarted in a loop (SIGKILL, start again, every few seconds).

A crash-looping node (systemd's Restart=on-failure, RestartSec=2 in deploy/) comes back
into its peers' views again and again; each return gives the others a grace period
(DISTRO.md "A member coming (back) into the view"). The stall grace is bounded in awake
time (review F-starve); the member-return grace is not, so while one node flaps, no node
evicts a dead instance anywhere.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from helpers import raw_request, start_all, wait_until
from util14b import cluster_nodes, listing, members_up

from meshreg import Client

PERIOD = 2.5  # s between SIGKILL+restart of C (evict_after is 6 s in the test timings)


@pytest.mark.timeout(90)
def test_dead_instances_are_evicted_while_a_peer_restarts_in_a_loop(tmp_path: Path) -> None:
    """3 nodes; a live provider beats (session) through A; 6 instances are registered
    once through A and never beat (dead). Then C is SIGKILLed and started again every
    2.5 s. A dead instance must be gone from A and B within evict_after + unhealthy_after
    (the bound the stall rule gives) plus slack: 6 + 3 + 5 = 14 s. Live instances must
    stay healthy on A and B all along. And before that: a dead instance must stop being
    served as healthy within 2 x unhealthy_after + 3 s = 9 s.

    On main (9b209f2): the dead instances of the services C owns stay listed as HEALTHY on
    A and B for as long as the loop runs (30 s in restart_loop_dead_healthy.py), the others
    unhealthy but never evicted (54 s in restart_loop.py); all go within seconds after the
    loop stops."""
    nodes = cluster_nodes(3, tmp_path)
    a, b, c = nodes
    stop = threading.Event()
    restarts = [0]

    def flap() -> None:
        while not stop.wait(PERIOD):
            c.kill()
            c.launch()
            restarts[0] += 1

    flapper = threading.Thread(target=flap, daemon=True)
    try:
        start_all(nodes)
        wait_until(lambda: members_up(nodes), 15, what="3 members up")
        with Client([a.address], beat_interval=1.0) as provider:
            for i in range(6):
                provider.register(f"live{i}", "10.14.0.1", 100 + i)
            wait_until(
                lambda: all(
                    (listing(n, f"live{i}") or {}).get(f"10.14.0.1:{100 + i}") is True
                    for n in (a, b)
                    for i in range(6)
                ),
                5,
                what="live instances on A and B",
            )
            flapper.start()  # the loop starts now; the dead ones are registered right after
            for i in range(6):
                body = {"v": 1, "id": 1, "op": "register", "service": f"dead{i}",
                        "ip": "10.14.9.9", "port": 100 + i}  # fmt: skip
                assert raw_request(a.port, body)["ok"]
            registered = time.monotonic()
            lost: list[tuple[float, str, int, object]] = []

            def dead_gone() -> bool:
                for n, name in ((a, "A"), (b, "B")):
                    for i in range(6):
                        live = (listing(n, f"live{i}") or {}).get(f"10.14.0.1:{100 + i}")
                        if live is not True:
                            lost.append((round(time.monotonic() - registered, 1), name, i, live))
                return not any(
                    f"10.14.9.9:{100 + i}" in (listing(n, f"dead{i}") or {})
                    for n in (a, b)
                    for i in range(6)
                )

            def served_healthy() -> dict[str, list[int]]:
                return {
                    name: [i for i in range(6)
                           if (listing(n, f"dead{i}") or {}).get(f"10.14.9.9:{100 + i}")]
                    for n, name in ((a, "A"), (b, "B"))
                }  # fmt: skip

            # A single restart is never held (docs/DISTRO.md "A node that keeps
            # restarting"): C's first return takes its share back; from its second restart
            # (2 x PERIOD) it is held out, its share stays on A and B, and they mark its dead
            # instances unhealthy_after later (+ 3 s: C's start, a check, slack). (The
            # reviewer's bound was 2 x unhealthy_after + 3 s = 9 s.)
            try:
                wait_until(lambda: not any(served_healthy().values()), 2 * PERIOD + 3 + 3, 0.25)
            except AssertionError:
                raise AssertionError(
                    f"{time.monotonic() - registered:.1f}s after their registration (unhealthy "
                    f"after 3 s), with C restarted {restarts[0]} times every {PERIOD}s, dead "
                    f"instances that never beat are still served as HEALTHY: "
                    f"{served_healthy()} (A/B: dead service numbers)"
                ) from None
            try:
                wait_until(dead_gone, 14, interval=0.25, what="dead instances evicted on A, B")
            except AssertionError:
                left = {
                    name: {i: (listing(n, f"dead{i}") or {}).get(f"10.14.9.9:{100 + i}")
                           for i in range(6)}
                    for n, name in ((a, "A"), (b, "B"))
                }  # fmt: skip
                raise AssertionError(
                    f"{time.monotonic() - registered:.1f}s after their registration, with C "
                    f"restarted {restarts[0]} times every {PERIOD}s, the dead instances are "
                    f"still listed (dead service -> healthy): {left}; live ones lost on A/B: "
                    f"{lost[:5]}"
                ) from None
            assert not lost, f"live instances missing or unhealthy on A/B meanwhile: {lost[:10]}"
    finally:
        stop.set()
        if flapper.is_alive():
            flapper.join(PERIOD + 5)
        for n in nodes:
            n.cleanup()
