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
unhealthy 3 s, evict 6 s, peer timeout 1.5 s); F2 also at the defaults.

F1 steps: the client (beats, server n0) registers two instances of a service owned by n1
at t=1 (its view fetched at ~1.0, next at ~11.0) and deregisters one at 1.5 (straight to
n1: its DEALER to n1 is up); n1 is cut off from n0 and n2 at 2.0 (the client reaches
every node); n0 and n2 drop n1 at ~3.5 and take over the service.  Every beat from 6.0
goes straight to n1 (OK); the majority marks the live instance unhealthy at 6.6, evicts
it at 9.6 (the consumer on n2 is called with ``[]``), and has it back at 12.0 only,
after the client's view refresh at ~11.05 sent the beats to n0.  At the defaults
(unhealthy 15 s > VIEW_INTERVAL) the partition-default sweep saw nothing of it.

F2 steps: the client (session, server n0) deregisters an instance of a service owned by
n1 at 2.0 (straight to n1), n1 is cut off at 3.0, the instance is registered again at
6.0 (7.5 at the defaults): straight to n1, OK; n0 and n2 do not list it 3 s later (at
the defaults: 8.5 s later, until the view refresh); the renewal's "holds fewer" redo
goes to n1 too (session.py ``_dispatch``: ``responsible_node(key, self._members)``).

What should happen: a write acknowledged to a client whose server is in the majority is
on the majority (PROTOCOL 1.8: the responsible node; the client's server n0 forwards to
the owner of *its* view, n0 or n2); a live provider is not evicted.  Where: session.py
``_dispatch`` routes by a view up to VIEW_INTERVAL old (``_refresh_view``), and neither
a server's ``members_up`` (ping/renewal replies) nor n1 seeing only itself is taken as a
reason to refresh it or to go through the server; the node side: a member that sees
no other member (n1) still answers writes for every service as their owner.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from r75scen import owner_of  # noqa: E402
from r75sim import R_SHORT, R_TIMINGS, Handle, RFaults, SessionConsumer, SessionProvider  # noqa: E402
from test_distro_sim import lookup  # noqa: E402

from meshreg.client.commands import Register  # noqa: E402


def _setup(seed: int, sessions: bool, timings=R_SHORT, per_service: int = 1) -> tuple[
        RFaults, SessionProvider, SessionConsumer, str]:  # fmt: skip
    rs = RFaults("stale-owner", seed, timings, 3)
    service = next(f"svc{i}" for i in range(50) if owner_of(rs, f"svc{i}") == "n1")
    p = rs.provider("p0", "n0", sessions, [service], per_service, many=0.0, start=1.0)
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
    rs, p, c, service = _setup(seed, sessions=False, per_service=2)
    inst = p.insts[0]
    p.deregister_at(1.5, p.insts[1])  # a write before the cut: the DEALER to n1 is up
    rs.partition(["n1"], 2.0, 11.0)  # the view was fetched at ~1.0: next at ~11.0
    seen: dict[tuple[str, str], list[float]] = {}  # (node, state) -> [first, last]

    def probe() -> None:
        for node_id in ("n0", "n2"):  # the majority, the provider's server n0 among them
            state = _listed(rs, inst, node_id)
            if state != "healthy":
                seen.setdefault((node_id, state), [rs.net.now, rs.net.now])[1] = rs.net.now

    rs.net.every(0.1, probe, start=2.0)
    rs.net.run_until(13.0)
    registered = inst.registered_at
    assert registered is not None and registered < 2.0, "setup: registered before the cut"
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
    beats_to = sorted({to for t, heard, op, _ in p.client.sends if op == "beat" and t > 3.5
                       for to in [("n1" if heard == frozenset({"n1"}) else "other")]})  # fmt: skip
    assert not problems, (
        "\n".join(problems)
        + f"\n(the beats after t=3.5 went to: {beats_to}; the majority dropped n1 at ~3.5)"
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("timing", "seed", "register_at"),
    [("short", 7511, 6.0), ("short", 7512, 6.0), ("default", 7511, 7.5)],
)
def test_f2_a_register_acknowledged_by_a_cut_off_owner_is_missing_on_the_majority(
    timing: str, seed: int, register_at: float
) -> None:
    """(At the defaults too: acknowledged at 7.52, on the majority from 16.05.)"""
    rs, p, c, service = _setup(seed, sessions=True, timings=R_TIMINGS[timing])
    inst = p.insts[0]
    p.deregister_at(2.0, inst)  # (a write of it before the cut: straight to its owner n1)
    rs.partition(["n1"], 3.0, 10.0)
    rs.net.run_until(register_at)  # the majority dropped n1 (peer_timeout after the cut)
    assert inst.stopped_at is not None, "setup: the deregistration was answered"
    fresh = p.insts[0].__class__(p, service, inst.index, "register")  # registered again
    p.insts.append(fresh)
    fresh.wanted = True
    h = Handle("register")
    p.client.do(Register(fresh.registration(), 3.0, h))
    rs.net.run_until(register_at + 0.5)
    assert h.finished and h.error is None, f"setup: the register was answered OK ({h.error!r})"
    rs.net.run_until(register_at + 3.5)  # 3 s after the answer
    states = {n: _listed(rs, fresh, n) for n in ("n0", "n1", "n2")}
    assert states["n0"] == "healthy" and states["n2"] == "healthy", (
        f"a register acknowledged at t={h.at:.2f} (client in a session, its server n0 in the "
        f"majority) is not on the majority 3 s later: {states} (the register went straight "
        "to the owner of the client's 10 s old view, n1, cut off since t=3.0)"
    )
