"""A starting node stopped before it heard any peer does not start alone (review14c F5).

A restarted node that was stopped (SIGSTOP, a VM freeze) before it heard any of its peers
counted the stopped seconds as its peers' silence and, at SIGCONT, declared itself ready
alone with an empty table: it answered every live instance as missing until it heard the
others (0.3-1.2 s in the reviewer's runs).  The wait for peers now counts from the end of
the stall (``_awake_since``).
"""

from __future__ import annotations

from test_distro_faults import CLUSTER, POLICY

from meshreg.core.distro import DistroNode
from meshreg.wire.peer import Beacon

A, B = "10.0.0.2:7800", "10.0.0.3:7800"


def test_a_stall_before_hearing_any_peer_does_not_make_a_starting_node_ready_alone() -> None:
    node = DistroNode(POLICY, CLUSTER, "n1", "10.0.0.1:7800", [A, B], 7, 0.0)
    node.tick(0.0)
    node.tick(0.1)
    now = 0.1 + 3 * CLUSTER.peer_timeout  # stopped for longer than the peer timeout
    node.tick(now)  # the loop resumes: the stall is noticed first
    assert not node.ready, "ready alone right after a stall: it has heard nobody"
    # its peers' beacons, queued meanwhile, arrive: it catches up from them, not alone
    node.on_replication(Beacon("n2", A, 9, True, 0, ("n2", "n3")), now + 0.05)
    assert not node.ready
    # a whole peer timeout awake without hearing the others: then it may start alone
    node.tick(now + CLUSTER.peer_timeout * 0.5)
    assert not node.ready


def test_a_starting_node_nobody_answers_still_starts_alone_after_a_peer_timeout() -> None:
    node = DistroNode(POLICY, CLUSTER, "n1", "10.0.0.1:7800", [A, B], 7, 0.0)
    t = 0.0
    while t < CLUSTER.peer_timeout + 0.2:  # awake all along, nobody there
        node.tick(t)
        t += 0.1
    assert node.ready
