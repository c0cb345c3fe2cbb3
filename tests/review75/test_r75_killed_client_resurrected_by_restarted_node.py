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

import logging
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from r75sim import R_SHORT, RFaults  # noqa: E402


@pytest.mark.timeout(60)
def test_f3_a_killed_clients_evicted_instances_come_back_from_a_restarted_node() -> None:
    logging.disable(logging.WARNING)
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
    logging.disable(logging.WARNING)
    from r75scen import message, run

    rs, problems = run("kill-restart-short", 16)
    backs = [p for p in problems if p.startswith("(b)")]
    assert not backs, message(rs, "kill-restart-short", 16, backs)
