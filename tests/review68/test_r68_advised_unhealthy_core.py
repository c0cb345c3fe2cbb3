"""review68 F2 and F4: the node's advised ``unhealthy_after`` (``advised_unhealthy``).

F2 (medium): nothing bounds what one member's beacons make a node tell its clients but the
wire's 100 ms.  A member announcing ``unhealthy_after_ms: 100`` (an operator trying
``--unhealthy-after 0.1`` on one node, a buggy or hostile peer) makes every node of the
cluster answer ``unhealthy_after: 0.1`` to ``ping``/``session_open``/``session_renew``,
and every client of the cluster renew or beat at its floor, 10 times a second
(``MIN_BEAT_INTERVAL``): 50 times the load at the 5 s default, on every node, from one
member's setting, with no line on any node saying so.  Expected: the node bounds the
advice by its own policy (a fraction of its own ``unhealthy_after``, or its own
``check_interval``) and warns once that a member judges by a much lower value.

F4 (low): ``registry.least_unhealthy_after`` is recomputed only at a beacon tick, and the
beacon block runs only while the node has peers (``if self.membership.peers``).  A node
whose peers are all learned (a node started alone that others joined) keeps the last
value for good once it forgets the last of them outside that block (its peer list no
longer names us, ``_on_beacon``; a connect failure, ``_forget``): it tells its clients a
member's value that no member holds any more.
"""

from __future__ import annotations

import os
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "core"))

from answers import served_map  # noqa: E402
from test_distro_faults import CLUSTER, POLICY, Member  # noqa: E402

from meshreg.core.distro import DistroNode  # noqa: E402
from meshreg.core.membership import MemberState  # noqa: E402
from meshreg.wire.messages import parse_request  # noqa: E402
from meshreg.wire.peer import Beacon  # noqa: E402

A, B = "10.0.0.2:7800", "10.0.0.3:7800"
VIEW = ("n1", "n2", "n3")


def told(node: DistroNode, now: float) -> float:
    body = {"v": 1, "id": 7, "op": "ping"}
    return served_map(node, parse_request(msgpack.packb(body)), now)["unhealthy_after"]


def test_one_member_announcing_the_wire_minimum_sets_every_client_s_pace() -> None:
    m = Member()
    own = m.node.policy.unhealthy_after  # 3 s, check_interval 0.5 s
    for _ in range(20):
        m.node.on_replication(Beacon("n2", A, 9, True, 0, VIEW, unhealthy_ms=100), m.now)
        m.node.on_replication(Beacon("n3", B, 9, True, 0, VIEW), m.now)
        m.step(0.1)
    advised = told(m.node, m.now)
    # Today: 0.1 -> clients renew every 0.1 s (MIN_BEAT_INTERVAL).  Any bound by the
    # node's own policy passes: own / 10 = 0.3 s, check_interval 0.5 s, ...
    assert advised >= own / 10, f"one member's 100 ms makes this node advise {advised} s"


def test_the_least_is_not_kept_after_the_last_peer_is_forgotten() -> None:
    now = 0.0
    node = DistroNode(POLICY, CLUSTER, "n1", "10.0.0.1:7800", [], 7, 0.0)  # started alone
    node.tick(now)
    node.take_effects()
    node.membership.introduce((A,), now)  # n2 joined (learned, not configured)
    for _ in range(20):
        node.on_replication(
            Beacon("n2", A, 9, True, 0, ("n1", "n2"), configured=("n1", "n2"), unhealthy_ms=1000),
            now,
        )
        now += 0.1
        node.tick(now)
        node.take_effects()
    peer = node.membership.peer_at(A)
    assert peer is not None and peer.state is MemberState.UP
    assert told(node, now) == 1.0  # n2's value: the least (above a fifth of ours)
    # n2's peer list no longer names n1 (scaled in, or reconfigured): n1 forgets it
    node.on_replication(
        Beacon("n2", A, 9, True, 0, ("n2",), configured=("n2",), unhealthy_ms=1000), now
    )
    assert node.membership.peer_at(A) is None and not node.membership.peers
    for _ in range(50):  # 5 s: many beacon intervals
        now += 0.1
        node.tick(now)
        node.take_effects()
    assert told(node, now) == node.policy.unhealthy_after, "a forgotten member's value kept"
