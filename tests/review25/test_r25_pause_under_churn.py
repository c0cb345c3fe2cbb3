"""review25: a node SIGSTOPped for longer than every timeout (peer, unhealthy, evict)
while clients register and deregister instances through the other nodes at a steady rate;
then SIGCONT. Judged on every node: an instance deregistered (its deregister
acknowledged) never shows again once the node has shown it absent (zombie), every stable
live instance stays listed and healthy on the nodes never stopped, and all nodes converge
on the final set within 10 s after the churn ends.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import pytest
from helpers import service_owned_by, start_all, wait_until
from r25lib import Sampler, cluster_view, listing, make_nodes, new_ports, spans

from meshreg import Client
from meshreg.errors import MeshregError

TIMINGS = ("--check-interval", "0.2", "--unhealthy-after", "2", "--evict-after", "4",
           "--peer-timeout", "1.0")  # fmt: skip
PAUSE = 7.0


@pytest.mark.timeout(150)
def test_pause_longer_than_every_timeout_under_churn(started_nodes, tmp_path: Path) -> None:
    nodes = make_nodes(new_ports(3), TIMINGS, str(tmp_path))
    started_nodes.extend(nodes)
    start_all(nodes)
    a, b, c = nodes
    ids = [n.address for n in nodes]
    wait_until(lambda: all(list((cluster_view(n) or {}).values()).count("up") == 3
                           for n in nodes), 20, 0.2, "3 up")  # fmt: skip
    svcs = [service_owned_by(ids[i], ids, f"ch25-{i}-") for i in range(3)]
    stable = Client([c.address], beat_interval=0.5, timeout=3.0)
    live = {s: {"10.25.9.1:80"} for s in svcs}
    for s in svcs:
        stable.register(s, "10.25.9.1", 80)
    wait_until(lambda: all((listing(n, s) or {}).get("10.25.9.1:80") for n in nodes for s in svcs),
               10, 0.1, "stable everywhere")  # fmt: skip
    removed: dict[tuple[str, str], float] = {}  # (svc, addr) -> when its deregister returned
    present: set[tuple[str, str]] = set()
    stop = threading.Event()
    rng = random.Random(25)

    def churn() -> None:
        with Client([b.address, c.address], beat_interval=0.5, timeout=3.0) as ch:
            k = 0
            while not stop.is_set() and k < 10_000:
                k += 1
                s = svcs[k % 3]
                addr = ("10.25.10." + str(k % 250 + 1), 1000 + k)
                try:
                    ch.register(s, *addr)
                    present.add((s, f"{addr[0]}:{addr[1]}"))
                except MeshregError:
                    continue
                if len(present) > 6:
                    s2, a2 = sorted(present)[rng.randrange(len(present))]
                    ip, port = a2.split(":")
                    try:
                        ch.deregister(s2, ip, int(port))
                        present.discard((s2, a2))
                        removed[(s2, a2)] = time.monotonic()
                    except MeshregError:
                        pass
                time.sleep(0.05)

    sm = Sampler(nodes, svcs, 0.2, limit=120).start()
    t = threading.Thread(target=churn, daemon=True)
    t.start()
    time.sleep(3)
    t0 = time.monotonic()
    a.signal(signal.SIGSTOP)
    wait_until(lambda: time.monotonic() - t0 >= PAUSE, PAUSE + 2, 0.05, "pause")
    a.signal(signal.SIGCONT)
    t_resume = time.monotonic()
    time.sleep(6)
    stop.set()
    t.join(10)
    t_end = time.monotonic()
    time.sleep(10)
    sm.stop()
    # zombies: shown absent on a node after its deregister returned, then shown again there
    zombies = []
    gone_seen: dict[tuple[int, str, str], float] = {}
    for ts, i, s, got in sm.samples:
        if got is None:
            continue
        for (s2, a2), when in removed.items():
            if s2 != s or ts < when:
                continue
            key = (i, s2, a2)
            if a2 not in got:
                gone_seen.setdefault(key, ts)
            elif key in gone_seen:
                zombies.append((round(ts - t0, 2), i, s2, a2))
    bad_live = sm.bad(live, nodes={1, 2})
    final = {i: {s: set(listing(n, s) or {}) for s in svcs} for i, n in enumerate(nodes)}
    stable.close()
    want = live  # the churn client closed at the churn's end: its instances deregistered
    diverged = {i: {s: sorted(final[i][s] ^ want[s]) for s in svcs if final[i][s] != want[s]}
                for i in final if any(final[i][s] != want[s] for s in svcs)}  # fmt: skip
    assert not zombies and not bad_live and not diverged, (
        f"pause {PAUSE:g} s at t=0 (resumed {t_resume - t0:.1f}, churn ended {t_end - t0:.1f}); "
        f"{len(removed)} deregistered; zombies (t, node, svc, addr): {zombies[:10]}; stable "
        f"instance not healthy on b/c: {spans(bad_live, t0)}; diverged at the end: {diverged}"
    )
