"""review25 F1b: one node whose wall clock is BEHIND (8 s) makes its peers, whose clocks are
right, judge write deadlines by a clock seconds behind too: each takes the median of its
peers' offsets for "how far ahead am I" (``stats.clock_lead``: 4.0 on both right nodes of
3 with one 8 s behind, 10.0 with one 20 s behind) and accepts writes that many seconds
past their deadline. So a single node behind weakens the late-write guard (review19 F1,
review20 F1/F2) on every node, not only on itself.

Expected: PROTOCOL.md 2.1 "Deadline": "A node that would apply the write after
`deadline` by its own wall clock refuses it instead"; the lead rule is for "a node whose
wall clock runs ahead of its peers'". Actual: a right node applies a register whose
deadline passed 2.5 s before it arrived.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import raw_request, service_owned_by, start_all, wait_until
from r25lib import cluster_view, make_nodes, new_ports, stats

TIMINGS = ("--check-interval", "0.2", "--unhealthy-after", "3", "--evict-after", "6",
           "--peer-timeout", "1.0")  # fmt: skip


@pytest.mark.timeout(90)
@pytest.mark.parametrize("behind", [0.0, -8.0], ids=["clocks-right", "one-node-8s-behind"])
def test_a_right_node_refuses_a_write_past_its_deadline(
    started_nodes, tmp_path: Path, behind: float
) -> None:
    nodes = make_nodes(new_ports(3), TIMINGS, str(tmp_path), skews={0: behind} if behind else {})
    started_nodes.extend(nodes)
    start_all(nodes)
    ids = [n.address for n in nodes]
    wait_until(lambda: all(list((cluster_view(n) or {}).values()).count("up") == 3
                           for n in nodes), 20, 0.2, "3 up")  # fmt: skip
    right = nodes[1]  # its clock is right
    if behind:  # wait until the beacons' samples span the 3 s a lead needs: the node
        # behind knows it is (since the fix the right ones stay at 0; before, they took 4)
        wait_until(lambda: stats(nodes[0]).get("clock_lead", 0) < -1.0, 20, 0.2, "a lead")
    else:
        wait_until(lambda: stats(right).get("ready"), 10, 0.2, "ready")
    lead = stats(right).get("clock_lead")
    svc = service_owned_by(right.address, ids, "late25-")
    body = {"v": 1, "id": 7, "op": "register", "namespace": "public", "group": "DEFAULT_GROUP",
            "service": svc, "ip": "10.25.6.1", "port": 80,
            "deadline": round((time.time() - 2.5) * 1000)}  # fmt: skip
    r = raw_request(right.port, body, 3.0)
    assert not r.get("ok"), (
        f"a node whose clock is right applied a register whose deadline had passed 2.5 s "
        f"before (its clock_lead {lead}, from a peer {-behind:g} s behind): {r}"
    )
