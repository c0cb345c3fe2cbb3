"""review25: the registry through a documented membership change with live providers:
grow 3 -> 5 (the new nodes first with the full list; then each old node restarted with
it, one at a time, waiting for it to be ready) and shrink 5 -> 3 (the two nodes SIGKILLed
while they own services; then each remaining node restarted with the 3-member list). All
the while providers keep instances alive through A, B and C (a session client and a
per-instance-beat client per node, every old node listed, its own first) and every
node is sampled every 0.25 s. Judged: a live instance is never missing or unhealthy on a
node that is up and ready (a node being restarted is not judged until it says ready).

README "Add or remove a node": "nothing is split meanwhile"; DISTRO.md "Joining".
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import NodeProcess, start_all, wait_until
from r25lib import Sampler, listing, new_ports, peer_args, spans, stats

from meshreg import Client

TIMINGS = ("--check-interval", "0.5", "--unhealthy-after", "3", "--evict-after", "6",
           "--peer-timeout", "1.5")  # fmt: skip


@pytest.mark.timeout(300)
def test_grow_and_shrink_keep_every_live_instance(started_nodes, tmp_path: Path) -> None:
    ports = new_ports(5)
    addrs = [f"127.0.0.1:{p}" for p in ports]

    def mk(i: int, k: int) -> NodeProcess:
        n = NodeProcess(*TIMINGS, *peer_args(ports[:k]), "--data-dir", f"{tmp_path}/d{i}",
                        port=ports[i])  # fmt: skip
        started_nodes.append(n)
        return n

    nodes: list[NodeProcess] = [mk(i, 3) for i in range(3)]
    start_all(nodes)
    wait_until(lambda: all(stats(n).get("ready") for n in nodes), 30, 0.2, "A, B, C ready")
    svcs = [f"mem25-{i}" for i in range(10)]
    live: dict[str, set[str]] = {s: set() for s in svcs}
    clients = []
    for i in range(3):
        servers = [addrs[i]] + [a for a in addrs[:3] if a != addrs[i]]
        for sessions in (True, False):
            c = Client(servers, beat_interval=1.0, timeout=3.0, sessions=sessions)
            clients.append(c)
            for s in svcs:
                ip = f"10.25.{30 + i}.{1 if sessions else 2}"
                c.register(s, ip, 80)
                live[s].add(f"{ip}:80")
    wait_until(lambda: all(all((listing(n, s) or {}).get(x) is True for s in svcs for x in live[s])
                           for n in nodes), 20, 0.2, "all healthy")  # fmt: skip
    sampled: list[NodeProcess] = list(nodes) + [mk(3, 5), mk(4, 5)]
    started_nodes[:] = [n for n in started_nodes if n not in sampled[3:]] + sampled[3:]
    sm = Sampler(sampled, svcs, 0.25, limit=280)
    sm.skip.update({3, 4})
    sm.start()
    t0 = time.monotonic()
    events: list[str] = []

    def ev(what: str) -> None:
        events.append(f"{time.monotonic() - t0:.1f} {what}")

    def replace(i: int, k: int) -> None:
        sm.skip.add(i)
        sampled[i].stop()
        sampled[i] = mk(i, k)
        sampled[i].start()
        wait_until(lambda: stats(sampled[i]).get("ready"), 30, 0.2, f"node {i} ready")
        sm.skip.discard(i)
        ev(f"node {'ABCDE'[i]} restarted with a {k}-member list, ready")

    try:
        sm.observe(5)
        start_all(sampled[3:5])
        wait_until(lambda: all(stats(sampled[i]).get("ready") for i in (3, 4)), 30, 0.2, "D, E")
        sm.skip.difference_update({3, 4})
        ev("D, E started (5-member list), ready")
        sm.observe(8)
        for i in range(3):
            replace(i, 5)
            sm.observe(8)
        ev("grown")
        for i in (3, 4):
            sm.skip.add(i)
            sampled[i].kill()
        ev("D, E killed")
        sm.observe(10)
        for i in range(3):
            replace(i, 3)
            sm.observe(8)
        ev("shrunk")
        sm.observe(15)
    finally:
        sm.stop()
        for c in clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
    bad = sm.bad(live)
    assert not bad, f"live instances not healthy: {spans(bad, t0)}; events {events}"
