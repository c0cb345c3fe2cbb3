"""review25 F5: a node whose wall clock is BEHIND (or AHEAD of) the others' by more than
``unhealthy_after`` (but under the 30 s at which the cluster counts it out: DISTRO.md
"Clock skew", "Smaller offsets are not fenced"; `meshreg cluster` shows it up) makes every
session instance whose client renews through it unhealthy (or evicted) on every node, for
as long as it runs, in the services other nodes own.

Why (core/distro ``_on_sessions``): a peer takes a renewal's time from its stamp, "its age
on the wall clock" (``evidence_time``): the renewals the node behind stamps (its hybrid
clock: its own wall clock, pushed forward only by the stamps it sees) look D seconds old
on the judge, older than ``unhealthy_after``.

Expected: README "Sessions": "every node judges those instances by the session's last
renewal (unhealthy after 15 s without one ...)"; "In a cluster a renewal may reach any
node: that node replicates it to every peer"; the reviewed invariant: the registry never
loses a live instance. Actual (3 nodes, defaults 15/30 s, beat 5 s, one node 20 s behind,
75 s): the instance unhealthy on all 3 nodes from 15 s to the end; fast timings (3/6 s,
beat 1 s, 8 s behind): unhealthy, then evicted and re-registered over and over on all
nodes.
The mirror: a node AHEAD by as much judges the renewals a right node stamps as that old,
and marks the session instances of the services it owns (its lead, ``clock_lead``, is
used for deadlines only); the right node's clock is pushed forward by the marks it sees
and then stamps at that frozen time, so it flaps (fast) or stays unhealthy (defaults,
20 s ahead: unhealthy on every node from 15.3 s to the end of a 60 s run).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import service_owned_by, start_all, wait_until
from r25lib import Sampler, cluster_view, make_nodes, new_ports, spans, stats

from meshreg import Client
from meshreg.errors import MeshregError

CASES = {
    # name: (node0's skew s, unhealthy_after, evict_after, beat interval, observed s,
    #        the node the client renews through)
    "behind-fast": (-8.0, "3", "6", 1.0, 20.0, 0),
    "behind-defaults": (-20.0, "15", "30", 5.0, 40.0, 0),
    # the mirror: node0 ahead judges the renewals a right node stamps as old
    "ahead-fast": (8.0, "3", "6", 1.0, 20.0, 1),
    "ahead-defaults": (20.0, "15", "30", 5.0, 40.0, 1),
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", sorted(CASES))
def test_sessions_renewed_through_a_node_behind_stay_healthy(
    started_nodes, tmp_path: Path, case: str
) -> None:
    skew, unhealthy, evict, beat, observe, via = CASES[case]
    timings = ("--check-interval", "0.2", "--unhealthy-after", unhealthy, "--evict-after",
               evict, "--peer-timeout", "1.0")  # fmt: skip
    nodes = make_nodes(new_ports(3), timings, str(tmp_path), skews={0: skew})
    started_nodes.extend(nodes)
    start_all(nodes)
    ids = [n.address for n in nodes]
    wait_until(lambda: all(list((cluster_view(n) or {}).values()).count("up") == 3
                           for n in nodes), 20, 0.2, "3 up")  # fmt: skip
    wait_until(lambda: all(stats(n).get("ready") for n in nodes), 20, 0.2, "ready")
    svcs = [service_owned_by(ids[i], ids, f"cb25-{i}-") for i in range(3)]
    svcs = [svcs[via]] + [s for s in svcs if s != svcs[via]]
    with Client([nodes[via].address], beat_interval=beat, timeout=3.0) as c:
        for s in svcs:  # its node's own service first; the others once the client knows
            # the owners (forwarded through a node behind they would be refused: F2)
            end = time.monotonic() + 20
            while True:
                try:
                    c.register(s, "10.25.5.1", 80)
                    break
                except MeshregError:
                    if time.monotonic() > end:
                        raise
                    time.sleep(0.5)
        live = {s: {"10.25.5.1:80"} for s in svcs}
        sm = Sampler(nodes, svcs, 0.25).start()
        t0 = time.monotonic()
        wait_until(lambda: time.monotonic() - t0 >= observe, observe + 5, 0.2, "observed")
        sm.stop()
    bad = sm.bad(live)
    assert not bad, (
        f"a live session instance (its client renewing every {beat:g} s through node{via}; "
        f"node0's clock {skew:+g} s) not listed healthy in {len(bad)} of "
        f"{len(sm.samples)} samples: {spans(bad, t0)}"
    )
