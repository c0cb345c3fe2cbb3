"""F1 (fixed: a write's answer tells the stamp it left, and the client's next write of the
instance carries it as ``after``; the node that stamps it observes it first, so the
deregistration is stamped above the register whatever the clocks; this test sends the
deregistration as the Python client now does, and failed before the fix without it).

A forwarder whose clock runs ahead applies a register itself (its forward went
unanswered) with its own, future stamp; the client's deregistration reaches the owner
before the fallback's delta does, is stamped lower by the owner's clock, and loses on
every node: a deregistered (acknowledged) instance is listed again everywhere.

Steps (seeded simulation, 3 nodes, default timings; the service's owner is n1; n2's wall
clock runs ``lead`` s ahead of n0's and n1's, well inside what is never fenced (30 s)):
1. The cluster runs 8 s (every node's ``clock_lead`` settled: n2's is ``lead`` when
   ``lead`` >= 0.25 s, else 0).
2. n2's forwards to n1 are lost (n1's peer request port P+3 dropped one way from n2, a
   row of DISTRO.md's failure table: "writes forwarded to it time out and are applied
   where they arrived; its deltas still arrive on P+2"), and n2's replication to n1 runs
   late (a backed-up PUB stream, 0.3 s) or loses a delta (best-effort PUB, repaired by
   anti-entropy).
3. A client registers instance 4 through n2 (attempt 1 s, deadline as the Python client
   stamps it).  n2 forwards it, hears nothing, applies it itself at the end of its wait
   (``forward_failed``), stamped with n2's clock, and answers OK.
4. At once the client deregisters instance 4, straight to the owner n1 (the Python
   client sends writes to the responsible node once it has the cluster view) or through
   n0 (which forwards it to n1 over its working DEALER).  n1 does not hold the instance
   yet: it records the removal (``remember_removal``) stamped with *its* clock, answers OK
   and replicates the tombstone.
5. n2's delta (or the repair round that follows the gap) reaches n1.

What happens: the register's stamp is n2's wall clock at step 3, the tombstone's n1's at
step 4, a few ms of real time later; n2's clock is ``lead`` ahead, so the register has the
higher stamp whenever ``lead`` exceeds the client's round trip.  It wins the merge on n1
(the late delta/repair brings it in over the tombstone), on n2 (the tombstone is older than
its record) and on n0: the instance the client deregistered, and was told was removed, is
listed healthy on every node until it is evicted as silent (``evict_after``, 30 s).  The
hybrid clock does not help (n1 never saw the fallback's stamp before it stamped the
deregistration); ``clock_lead`` (and its 0.25 s dead band) is applied to deadlines only,
never to stamps (core/registry.py:1235-1237 ``stamp``), so the result is the same at 0.1,
0.5 and 2 s of lead.  With clocks that agree (lead 0, the control case) the
deregistration, made later in real time, has the higher stamp and wins.

What should happen: PROTOCOL.md 2.1 "Deadline" / DISTRO.md "Writes and forwarding": the
client's later write wins; a deregistration acknowledged is not undone by the register
that preceded it.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from r72lib import (  # noqa: E402
    Faults,
    cluster,
    deadline_ms,
    held,
    owned_by,
    register_fields,
    request,
    run_until_true,
    runtime,
    scenario_message,
)

ATTEMPT = 1.0  # s; the Python client's default attempt_timeout


@pytest.mark.parametrize("delta", ["late", "lost"])
@pytest.mark.parametrize("path", ["direct", "via_n0"])
@pytest.mark.parametrize("lead", [0.0, 0.1, 0.5, 2.0])
def test_a_fallback_stamped_by_a_clock_ahead_undoes_the_later_deregistration(
    lead: float, path: str, delta: str
) -> None:
    net = cluster(7201, {"n2": lead})
    net.run_until(8.0)
    service = owned_by(net, "n1")[0]
    faults = Faults(net)
    faults.lost_forwards.add(("n2", "n1", "register"))
    faults.late_deltas[("n2", "n1")] = 0.3 if delta == "late" else float("inf")
    fields = {**register_fields(service, 4), "deadline": deadline_ms(net, ATTEMPT)}
    reg = request(net, net.nodes["n2"], "register", **fields)
    run_until_true(net, lambda: bool(reg), net.now + 2.0)
    ((status, written),) = reg
    assert status == "ok" and set(written) == {"stamp"}, reg
    assert runtime(net, "n2")._peers.forward_failures == 1, "setup: n2 applied it itself"
    registered_at = net.now
    dereg = {**register_fields(service, 4), "deadline": deadline_ms(net, ATTEMPT)}
    dereg.pop("weight")
    # as the Python client does: its next write of the instance carries the stamp the
    # register's answer told (PROTOCOL.md 2.1 "After"), so it is stamped above it
    dereg["after"] = written["stamp"]
    entry = net.nodes["n1" if path == "direct" else "n0"]
    gone = request(net, entry, "deregister", **dereg)
    run_until_true(net, lambda: bool(gone), net.now + 2.0)
    problems = []
    if [status for status, _ in gone] != ["ok"]:
        problems.append(f"the deregistration's answer: {gone}")
    took = net.now - registered_at
    faults.late_deltas.clear()
    faults.lost_forwards.clear()
    net.run_until(net.now + 3.0)  # the late delta, or the repair after the gap
    for node_id in net.nodes:
        if held(net, node_id, service, 4):
            problems.append(
                f"{node_id} lists instance 4, deregistered (acknowledged) {took * 1000:.0f} ms "
                f"after the register n2 applied itself (n2's clock {lead:g} s ahead; "
                f"n2 clock_lead {runtime(net, 'n2').core.registry.clock_lead:g})"
            )
    assert not problems, scenario_message(net, "skewed fallback stamp", problems)
