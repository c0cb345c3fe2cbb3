"""review78 F4: a session client whose server is in the majority, writing straight to the
owner of its view in the first peer time-out of a partition that cuts that owner off
(before the owner sees it is cut off: no ``direct`` refusal yet), registers one instance
and deregisters another there: both acknowledged by the cut-off owner alone.  The
majority lacks the registered one and keeps the deregistered one (the session's renewals
keep it alive and healthy) for the whole partition: the count the renewals answer still
matches (review75 F2's seed 39 shape), and the review75 fixes do not reach it: the
``direct`` refusal starts only once the owner sees itself cut off, and the ``list: true``
renewal + redo run only when the client leaves a cut-off *server* (session.py
``_move_to``); here the server never was.

Seeded simulation of review75 (real ``NodeRuntime``s, real ``ClientSession``), 3 nodes,
short timings (peer time-out 1.5 s).  Steps: the client (session, server n0) registers A
and B of a service n1 owns at t=1; deregisters A at 2.0; n1 is cut off from n0 and n2 at
3.0 (the client reaches every node); at 3.2 it registers A again and at 3.5 deregisters
B, both straight to n1 (its DEALER is up, n1 still sees its peers up: it sees them go
at ~4.5); both answered OK.  At t=20 (partition until 25): n0 and n2 lack A and list B
healthy.

What should happen (PROTOCOL.md 1.8 read-your-writes through the server, 2.3a: the
renewal's count mismatch repairs what the server lacks): a write acknowledged to a
client whose server is in the majority is on the majority within a renewal or two (as
review75 F2's fix promises for a cut-off server).
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


def _state(rs: RFaults, inst, node_id: str) -> str:
    rec = lookup(rs.net.nodes[node_id].core, inst)
    return "missing" if rec is None else ("healthy" if rec.healthy else "unhealthy")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", [7804, 7805])
def test_f4_a_swap_acknowledged_by_the_owner_before_it_sees_the_cut_stays_wrong_on_the_majority(
    seed: int,
) -> None:
    rs = RFaults("r78-swap", seed, R_SHORT, 3)
    service = next(f"svc{i}" for i in range(50) if owner_of(rs, f"svc{i}") == "n1")
    p = rs.provider("p0", "n0", True, [service], 2, many=0.0, start=1.0)
    a, b = p.insts
    p.deregister_at(2.0, a)
    rs.partition(["n1"], 3.0, 22.0)
    p.reregister_at(3.2, a)
    p.deregister_at(3.5, b)
    rs.net.run_until(20.0)
    a2 = p.lifecycle(a)
    assert a2 is not a and a2.registered_at is not None, f"setup: A registered again {p.results}"
    assert b.stopped_at is not None, f"setup: B deregistered (acknowledged) {p.results}"
    where = {n: (_state(rs, a2, n), _state(rs, b, n)) for n in ("n0", "n1", "n2")}
    sends = [(round(t, 2), op, sorted(heard)) for t, heard, op, _ in p.client.sends
             if op in ("register", "deregister", "register_batch") and 3.0 <= t < 4.0]  # fmt: skip
    assert where["n0"] == ("healthy", "missing") and where["n2"] == ("healthy", "missing"), (
        f"(A registered again at {a2.registered_at:.2f}, B deregistered at {b.stopped_at:.2f}, "
        f"both acknowledged) at t=20, 17 s later, (A, B) per node: {where}; the writes at "
        f"3.0-4.0 (time, op, nodes its target reached): {sends}; n1 refused "
        f"{rs.net.nodes['n1'].core.counters.get('direct_refused')} direct writes"
    )
