"""F1, F2 (review75): the real client session routes registry writes straight to the
owner of its cluster view, refreshed only every VIEW_INTERVAL (10 s).  When that owner
is cut off from the other nodes (a partition of nodes; the client still reaches every
node, its own server in the majority), the client keeps sending its writes there:

* F1, per-instance beats (``sessions=False``, the default of a Client made with
  ``sessions=False`` and what a node older than sessions gets): the beats go to the
  cut-off owner, which answers OK; the majority (where the provider's own server is)
  hears none, marks the live instance unhealthy after ``unhealthy_after`` and evicts it
  after ``evict_after``; a consumer is called with ``[]`` (both its server and the
  second opinion are majority nodes).  Repaired only after the next view refresh (a
  beat to the new owner: NOT_FOUND, register again).
* F2, a session client: a register made during the partition is acknowledged by the
  cut-off owner alone; the majority does not list the instance until the next view
  refresh (the session renewal's "holds fewer" redo goes to the same cut-off owner).

Both with the seeded simulation of tests/review75/r75sim.py (real ``ClientSession``,
real ``NodeRuntime``s), 3 nodes at the short timings of test_faults_sim (check 0.5 s,
unhealthy 3 s, evict 6 s, peer timeout 1.5 s).
"""

from __future__ import annotations

import logging
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from r75scen import owner_of  # noqa: E402
from r75sim import R_SHORT, Handle, RFaults, SessionConsumer, SessionProvider  # noqa: E402

from meshreg.client.commands import Register  # noqa: E402
from test_distro_sim import lookup  # noqa: E402


def _setup(seed: int, sessions: bool) -> tuple[RFaults, SessionProvider, SessionConsumer, str]:
    logging.disable(logging.WARNING)
    rs = RFaults("stale-owner", seed, R_SHORT, 3)
    service = next(f"svc{i}" for i in range(50) if owner_of(rs, f"svc{i}") == "n1")
    p = rs.provider("p0", "n0", sessions, [service], 1, many=0.0, start=1.0)
    c = rs.consumer("c0", "n2", [service])
    return rs, p, c, service


def _listed(rs: RFaults, inst, node_id: str) -> str:
    core = rs.net.nodes[node_id].core
    rec = lookup(core, inst)
    return "missing" if rec is None else ("healthy" if rec.healthy else "unhealthy")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", [7501, 7502])
def test_f1_beats_to_a_cut_off_owner_get_a_live_instance_evicted_on_the_majority(
    seed: int,
) -> None:
    rs, p, c, service = _setup(seed, sessions=False)
    inst = p.insts[0]
    rs.partition(["n1"], 3.0, 10.0)  # the view was fetched at ~1.0: next at ~11.0
    seen: dict[tuple[str, str], list[float]] = {}  # (node, state) -> [first, last]

    def probe() -> None:
        for node_id in ("n0", "n2"):  # the majority, the provider's server n0 among them
            state = _listed(rs, inst, node_id)
            if state != "healthy":
                seen.setdefault((node_id, state), [rs.net.now, rs.net.now])[1] = rs.net.now

    rs.net.every(0.1, probe, start=3.0)
    rs.net.run_until(13.0)
    registered = inst.registered_at
    assert registered is not None and registered < 3.0, "setup: registered before the cut"
    empties = [round(t, 2) for t, got in c.calls[service] if not got and t > registered]
    problems = []
    if seen:
        problems.append(
            f"the live instance {inst.name} (its client alive, beating every "
            f"{p.client.session.beat_every:g}s, its server n0 in the majority) was not healthy "
            f"on the majority: "
            + ", ".join(f"{n} {st} t={a:.1f}..{b:.1f}" for (n, st), (a, b) in sorted(seen.items()))
        )
    if empties:
        problems.append(f"the consumer on n2 was called with [] at {empties}")
    beats_to = sorted({to for t, heard, op, _ in p.client.sends if op == "beat" and t > 4.5
                       for to in [("n1" if heard == frozenset({"n1"}) else "other")]})  # fmt: skip
    assert not problems, (
        "\n".join(problems)
        + f"\n(the beats after t=4.5 went to: {beats_to}; the majority dropped n1 at ~4.5)"
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", [7511, 7512])
def test_f2_a_register_acknowledged_by_a_cut_off_owner_is_missing_on_the_majority(
    seed: int,
) -> None:
    rs, p, c, service = _setup(seed, sessions=True)
    inst = p.insts[0]
    p.deregister_at(2.0, inst)  # (a write of it before the cut: straight to its owner n1)
    rs.partition(["n1"], 3.0, 10.0)
    rs.net.run_until(6.0)  # the majority dropped n1 at ~4.5
    assert inst.stopped_at is not None, "setup: the deregistration was answered"
    fresh = p.insts[0].__class__(p, service, inst.index, "register")  # registered again
    p.insts.append(fresh)
    fresh.wanted = True
    h = Handle("register")
    p.client.do(Register(fresh.registration(), 3.0, h))
    rs.net.run_until(6.5)
    assert h.finished and h.error is None, f"setup: the register was answered OK ({h.error!r})"
    rs.net.run_until(9.5)  # 3 s later (three renewals)
    states = {n: _listed(rs, fresh, n) for n in ("n0", "n1", "n2")}
    assert states["n0"] == "healthy" and states["n2"] == "healthy", (
        f"a register acknowledged at t={h.at:.2f} (client in a session, its server n0 in the "
        f"majority) is not on the majority 3 s later: {states} (the register went straight "
        "to the owner of the client's 10 s old view, n1, cut off since t=3.0)"
    )
