"""review78 F1: a node its peers cannot hear (everything it sends to them is lost; it
still hears them) counts itself in the majority, so the review75 F1/F2 fix never
applies to it: it takes writes sent straight to it as their owner, its renewals and
pings say "3 of 3 up", and its clients neither go through another server nor move.
The majority, which has dropped it, marks the live instances it alone hears unhealthy.

Seeded simulation of review75 (real ``NodeRuntime``s, real ``ClientSession``), 3 nodes
at the short timings (check 0.5 s, unhealthy 3 s, evict 6 s, peer timeout 1.5 s).

Steps: a client (per-instance beats, or a session) whose server is n1 registers two
instances of a service n1 owns at t=1.  From t=3.0 to t=13.0 every message from n1 to
n0 and n2 is lost (n1 still hears them; clients reach every node).  n0 and n2 drop n1
at ~4.5 and take the service over; n1 still sees n0 and n2 up (their beacons arrive),
so ``DistroNode._member_counts`` (meshreg/core/distro.py) gives (3, 3): not cut off,
no ``direct`` refusal, no ``minority`` in renewals, ``ping`` says 3 of 3.  The client
keeps beating / renewing through n1; nothing reaches the majority.

What should happen (PROTOCOL.md 2.1 "Direct", 2.3a rule 8; review75 F1): a provider
that beats or renews every second and reaches every node is not marked unhealthy on
the majority.  n1 knows it is unheard: every peer's beacon lists a view (``members``)
without n1 (core/distro ``_on_beacon`` introduces itself again, ``_introduce``).
"""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "review75"))

from r75scen import owner_of  # noqa: E402
from r75sim import R_SHORT, RFaults  # noqa: E402
from test_distro_sim import lookup  # noqa: E402


def _mute(rs: RFaults, x: str, at: float, length: float) -> None:
    others = [n for n in rs.net.nodes if n != x]

    def begin() -> None:
        for o in others:
            rs.net.oneway_loss[(x, o)] = 1.0

    def end() -> None:
        for o in others:
            rs.net.oneway_loss.pop((x, o), None)

    rs.net.at(at, begin)
    rs.net.at(at + length, end)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sessions", [False, True], ids=["beats", "session"])
def test_f1_a_node_nobody_hears_keeps_its_clients_and_the_majority_marks_them(
    sessions: bool,
) -> None:
    rs = RFaults("r78-mute", 7801, R_SHORT, 3)
    service = next(f"svc{i}" for i in range(50) if owner_of(rs, f"svc{i}") == "n1")
    p = rs.provider("p0", "n1", sessions, [service], 2, many=0.0, start=1.0)
    _mute(rs, "n1", 3.0, 10.0)
    bad: dict[str, list[float]] = {}
    counts: list[tuple[int, int]] = []

    def probe() -> None:
        for node_id in ("n0", "n2"):
            for inst in p.insts:
                rec = lookup(rs.net.nodes[node_id].core, inst)
                if rec is None or not rec.healthy:
                    bad.setdefault(node_id, [rs.net.now, rs.net.now])[1] = rs.net.now
        counts.append(rs.net.nodes["n1"].core._member_counts())

    rs.net.every(0.1, probe, start=6.0)
    rs.net.run_until(12.5)
    assert all(i.registered_at is not None and i.registered_at < 3.0 for i in p.insts)
    n1 = rs.net.nodes["n1"].core
    views = {pid: pr.view for pid, pr in ((q.node_id, q) for q in n1.membership.up_peers())}
    assert not bad, (
        f"live instances of {p.name} ({'session' if sessions else 'beats'}, its client alive "
        f"and reaching every node) not healthy on the majority: "
        + ", ".join(f"{n} t={a:.1f}..{b:.1f}" for n, (a, b) in sorted(bad.items()))
        + f"; n1 counted itself (up, total) {sorted(set(counts))} meanwhile (no majority "
        f"lost by its count), direct_refused {n1.counters.get('direct_refused')}, while its "
        f"peers' views were {views}"
    )
