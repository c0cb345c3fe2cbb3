"""review78 F2: where no node can see a majority of the configured members (4 configured,
2 stopped; 5 configured, 3 stopped; 2 configured, 1 stopped and the other's clients still
viewing both), every node refuses every write sent straight to it (PROTOCOL.md 2.1
"Direct"), although nothing is cut off: each such write costs a refusal, a second send
through the server and a forward back to the same owner, and the client, which forgets its
view at each refusal, fetches ``cluster`` again every attempt time-out (not every
VIEW_INTERVAL), for as long as the nodes stay down.

Seeded simulation of review75 (real ``NodeRuntime``s, real ``ClientSession``), 4 nodes,
short timings.  Steps: a beats client (server n0) registers two instances of a service
whose owner among {n0, n1} is n1; n2 and n3 are stopped at t=4 for good.  n0 and n1 see
each other (2 of 4 up: ``DistroNode._minority``, meshreg/core/distro.py), list each
other as members in ``cluster``, and both set ``_cut_off`` (``_recompute_members``).  Every
beat goes straight to n1 (the view says it owns the service), is refused
(``_refuse_direct``), is sent again through n0 (session.py ``on_reply``: ``_forget_view``,
``via = None``), which forwards it to n1, which takes it (forwarded); the view comes back
one attempt time-out later (``_forget_view``: ``_next_view = now + attempt_timeout``) and
the next beat goes straight to n1 again.

What the docs give as the reason to refuse (2.1 "Direct"): "the others, the client's own
server among them, would not hear it" (a node cut off by a partition).  Here n1 replicates
to n0, the client's server: nothing would be lost by taking the write.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "review75"))

from r75sim import R_SHORT, RFaults  # noqa: E402

from meshreg.core.mapping import responsible_node  # noqa: E402
from meshreg.model import ServiceKey  # noqa: E402


@pytest.mark.timeout(60)
def test_f2_two_of_four_up_every_direct_write_refused_and_the_view_refetched_every_second() -> None:
    rs = RFaults("r78-nomajority", 7802, R_SHORT, 4)
    service = next(
        f"svc{i}"
        for i in range(50)
        if responsible_node(ServiceKey("public", "DEFAULT_GROUP", f"svc{i}"), ("n0", "n1")) == "n1"
    )
    p = rs.provider("p0", "n0", False, [service], 2, many=0.0, start=1.0)
    for node_id in ("n2", "n3"):
        rs.net.at(4.0, rs.net.crash, node_id)
    sent: Counter[tuple[str, str, bool]] = Counter()
    window = (15.0, 45.0)

    def note(op: str, msg: dict, node_id: str) -> None:
        if window[0] <= rs.net.now < window[1]:
            sent[(op, node_id, msg.get("direct") is True)] += 1

    p.client.on_send.append(note)
    rs.net.run_until(window[1])
    n0, n1 = rs.net.nodes["n0"].core, rs.net.nodes["n1"].core
    assert n0.members() == ("n0", "n1") and n1.members() == ("n0", "n1"), "setup: both members"
    beats = sum(v for (op, _, _), v in sent.items() if op == "beat")
    refused = n1.counters.get("direct_refused", 0) + n0.counters.get("direct_refused", 0)
    views = sum(v for (op, _, _), v in sent.items() if op == "cluster")
    length = window[1] - window[0]
    assert refused == 0 and views <= length / 10.0 + 1, (
        f"n2, n3 down, n0 and n1 up, hearing each other (no partition): in {length:.0f}s the "
        f"client sent {beats} beats ({dict(sent)}); n0/n1 refused {refused} direct writes "
        f"(direct_refused n0={n0.counters.get('direct_refused')} "
        f"n1={n1.counters.get('direct_refused')}), "
        f"and the client fetched the cluster view {views} times (VIEW_INTERVAL 10s: "
        f"{length / 10.0:.0f})"
    )
