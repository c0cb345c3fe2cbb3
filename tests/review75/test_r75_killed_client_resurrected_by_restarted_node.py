"""F3 (review75): the instances of a KILLED session client, evicted by their owner, come
back healthy on every node from a node that restarted just before the eviction.

Found by the random-short sweep (seed 8: ``MESHREG_R75_SCENARIO=random-short
MESHREG_R75_SEED=8 ... -k replay``); reduced here to one real client.  5 nodes at the
short timings (check 0.5 s, unhealthy 3 s, evict 6 s), the seeded simulation of
tests/review75/r75sim.py (real ``ClientSession``, real ``NodeRuntime``s):

1. the client (a session, its server n3) registers two instances of svc0 (owner n4) at
   t=2 and renews every second;
2. n2 is killed at t=41.0; the client is killed (SIGKILL, no close) at t=43.36, its last
   renewal at 43.04;
3. n4 marks both unhealthy at 46.4 and evicts them at 49.4 (replicated at once);
4. n2 restarts at 49.1164 (a new incarnation, empty store) and catches up (its reconcile
   with n4 at 49.18 gives it both records, unhealthy); at 49.41, just after the
   eviction, n2 writes both records healthy again (``/1``) and replicates them: every
   node lists the dead client's instances again, healthy until n4 marks them unhealthy
   at 52.9, present until n4 evicts them again at 55.9: 6.4 s after a correct eviction,
   3.5 s of them healthy (consumers are routed to a dead process).

What should happen: an instance whose client is dead and that its owner evicted stays
evicted (test_faults_sim's rule 2; no client follow-up can repair it).  The stamps obey
the merge rule (the network's ``_check_versions`` sees no violation): the healthy record
n2 wrote is newer than the eviction, i.e. n2 made up fresh liveness evidence for a
session nobody renewed since 43.04.  Where (a guess from the trace): the restarted
node's evidence for records it learned by catch-up (core/registry.py ``seen`` /
``_refresh_seen`` / ``renew_session``'s heal on the session table a peer pushed to the
new incarnation), which its healing write then replicates over the eviction.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from r75sim import R_SHORT, RFaults  # noqa: E402
from test_distro_sim import lookup  # noqa: E402


@pytest.mark.timeout(60)
def test_f3_a_killed_clients_evicted_instances_come_back_from_a_restarted_node() -> None:
    rs = RFaults("kill-evict", 8, R_SHORT, 5)
    p = rs.provider("pX", "n3", True, ["svc0"], 2, many=1.0, start=2.0)
    rs.kill_restart("n2", 41.0, 49.1164 - 41.0)
    p.kill_at(43.36)
    rs.net.run_until(63.36)
    evicted = [inst.name for inst in p.insts if inst.stopped_at is not None]
    assert evicted == [i.name for i in p.insts], "setup: the client was killed holding both"
    backs = rs.resurrections()
    assert not backs, (
        "a killed client's instances, evicted by their owner n4 at t=49.4, came back: "
        + "; ".join(backs)
        + f" (merge-rule violations: {rs.net.violations[:2]})"
    )


@pytest.mark.timeout(60)
def test_f3_the_kill_restart_sweep_seed_16() -> None:
    """The same found again by the kill-restart-short sweep (seed 16: 5 nodes, a session
    client pK killed at 15.77, n1 down 13.5-21.1): both instances, evicted by n4, back
    on every node at 21.5 for 6.4 s."""
    from r75scen import message, run

    rs, problems = run("kill-restart-short", 16)
    backs = [p for p in problems if p.startswith("(b)")]
    assert not backs, message(rs, "kill-restart-short", 16, backs)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("restart_at", [44.0, 45.5, 48.5])
def test_f3_a_node_restart_gives_a_dead_sessions_instances_a_new_life(restart_at: float) -> None:
    """The client killed at 43.36 (last renewal 43.04); without a restart its instances
    are healthy until 46.4 and gone at 49.4 on every node.  n2 down from 41.0 and started
    again at ``restart_at``: they are present until restart_at + 6.4 (50.4, 51.9, 54.9),
    and healthy until restart_at + 3.4 for the restarts at 44.0 and 45.5 (47.4, 48.9).

    Fixed part (review75 F3): the restarted node's first sight of the dead session is no
    evidence of life (``SessionRecord.evidence``), so it no longer tells it to its peers
    as one.  What stays is by design (docs/DISTRO.md, "A member coming (back) into the
    view"): a member's return starts a grace period on every node (beats of its services
    may have gone to it), so a dead instance is judged ``unhealthy_after`` /
    ``evict_after`` after the later of its last sign of life and the return; this test
    holds the cluster to that bound (before the fix, the same: the resurrection, not the
    grace, was the bug)."""
    rs = RFaults("kill-evict", 8, R_SHORT, 5)
    p = rs.provider("pX", "n3", True, ["svc0"], 2, many=1.0, start=2.0)
    rs.kill_restart("n2", 41.0, restart_at - 41.0)
    p.kill_at(43.36)
    last = {"present": 0.0, "healthy": 0.0}

    def probe() -> None:
        for node in rs.net.nodes.values():
            for inst in p.insts:
                rec = lookup(node.core, inst) if node.core is not None else None
                if rec is not None:
                    last["present"] = rs.net.now
                    if rec.healthy:
                        last["healthy"] = rs.net.now

    rs.net.every(0.05, probe, start=43.0)
    rs.net.run_until(75.0)
    h = R_SHORT.health
    # the later of the last renewal (43.04) and n2's return (its member grace), plus
    # unhealthy_after / evict_after, plus two sweeps
    since = max(43.04, restart_at)
    assert last["healthy"] <= since + h.unhealthy_after + 2 * h.check_interval and (
        last["present"] <= since + h.evict_after + 2 * h.check_interval
    ), (
        f"the dead client's instances (last renewal 43.04) were healthy until "
        f"{last['healthy']:.2f} and listed until {last['present']:.2f} with n2 restarted at "
        f"{restart_at} (without the restart: 46.4 and 49.4)"
    )
