"""Joins: members that hear different sets of members introduce the missing ones.

A node added to its own peer list only (or restarted with a shorter one) is heard by
some members and not by others; without joins the ones that never subscribed to it
never count it in, and what it owns by its own view stays on it alone.  Checked on the
core with a fake clock: who sends a join, to whom, how often, what a join adds, and
that a join cannot make a node hold addresses without bound."""

from __future__ import annotations

from answers import peer_reply

from meshreg.config import ClusterPolicy
from meshreg.core.distro import DistroNode, PeerCall
from meshreg.core.effects import PeerIntroduced
from meshreg.core.health import HealthPolicy
from meshreg.core.membership import MAX_ADDRESSES, Membership
from meshreg.core.requests import Join
from meshreg.wire.peer import Beacon

SELF, A, B = "10.0.0.1:7800", "10.0.0.2:7800", "10.0.0.3:7800"
NEW = "10.0.0.4:7800"


def ready_node(now: float = 0.0) -> DistroNode:
    """n1 (SELF) listing A and B, caught up with both (their rounds found nothing)."""
    node = DistroNode(HealthPolicy(), ClusterPolicy(), SELF, SELF, [A, B], 7, now)
    for peer in (A, B):
        node.on_replication(Beacon(peer, peer, 99, True, 0, (A, B, SELF)), now)
    node.tick(now)
    for call in [e for e in node.take_effects() if isinstance(e, PeerCall)]:
        peer_reply(node, call.tag, {"node": call.node_id, "digests": [], "more": False}, now)
    node.tick(now)
    node.take_effects()
    assert node.ready and node.members() == tuple(sorted((SELF, A, B)))
    return node


def joins(node: DistroNode) -> list[PeerCall]:
    return [e for e in node.take_effects() if isinstance(e, PeerCall) and e.op == "join"]


def test_a_peer_whose_view_lacks_us_is_sent_our_members_addresses() -> None:
    node = ready_node()
    node.on_replication(Beacon(A, A, 99, True, 0, (A, B, SELF)), 0.1)
    assert joins(node) == []  # same view: nothing to say
    node.on_replication(Beacon(A, A, 99, True, 0, (A, B)), 0.2)  # A does not hear us
    sent = joins(node)
    assert [c.address for c in sent] == [A]
    request = sent[0].request
    assert isinstance(request, Join)
    assert request.node == SELF
    assert sorted(request.addresses) == sorted((SELF, A, B))
    assert node.counters["joins_sent"] == 1


def test_joins_to_one_peer_are_spaced_by_the_peer_timeout() -> None:
    node = ready_node()
    timeout = ClusterPolicy().peer_timeout
    node.on_replication(Beacon(A, A, 99, True, 0, (A, B)), 1.0)
    assert len(joins(node)) == 1
    node.on_replication(Beacon(A, A, 99, True, 0, (A, B)), 1.0 + timeout - 0.01)
    assert joins(node) == []
    node.on_replication(Beacon(A, A, 99, True, 0, (A, B)), 1.0 + timeout)
    assert len(joins(node)) == 1  # it still does not hear us: once more
    node.on_replication(Beacon(B, B, 99, True, 0, (A, B)), 1.0 + timeout)
    assert [c.address for c in joins(node)] == [B]  # per peer


def test_a_peer_that_hears_more_than_us_is_not_sent_a_join() -> None:
    node = ready_node()
    node.on_replication(Beacon(A, A, 99, True, 0, (A, B, SELF, NEW)), 0.5)
    assert joins(node) == []  # it is the one to introduce NEW to us


def test_a_catching_up_peer_is_sent_no_join() -> None:
    node = ready_node()
    node.on_replication(Beacon(A, A, 100, False, 0, (B,)), 0.5)  # A restarted, catching up
    assert joins(node) == []  # its view is partial until it is ready
    node.on_replication(Beacon(A, A, 100, True, 0, (A, B)), 0.6)
    assert len(joins(node)) == 1


def test_a_catching_up_node_sends_no_join() -> None:
    node = DistroNode(HealthPolicy(), ClusterPolicy(), SELF, SELF, [A, B], 7, 0.0)
    node.on_replication(Beacon(A, A, 99, True, 0, (A,)), 0.1)
    assert not node.ready
    assert joins(node) == []  # our view is not settled: nothing to teach


def test_a_join_adds_the_unknown_addresses_and_asks_to_subscribe() -> None:
    node = ready_node()
    node.handle(Join(5, NEW, (NEW, A, SELF)), 0.3)
    introduced = [e for e in node.take_effects() if isinstance(e, PeerIntroduced)]
    assert introduced == [PeerIntroduced(NEW, NEW)]
    assert node.counters["members_joined"] == 1
    peer = node.membership.peers[NEW]
    assert peer.configured is False
    assert NEW not in node.members()  # down until its beacons are heard
    node.on_replication(Beacon(NEW, NEW, 3, True, 0, (A, B, NEW, SELF)), 0.4)
    node.tick(0.4)
    assert NEW in node.members()
    rows = {m.address: m for m in node.cluster_result(0.5).members}
    assert rows[NEW].configured is False and rows[A].configured is True
    node.handle(Join(6, NEW, (NEW, A)), 0.6)  # known already: nothing more
    assert [e for e in node.take_effects() if isinstance(e, PeerIntroduced)] == []


def test_a_join_beyond_the_address_cap_is_refused_and_counted() -> None:
    node = ready_node()
    flood = tuple(f"10.1.{i // 250}.{i % 250}:7800" for i in range(MAX_ADDRESSES))
    node.handle(Join(7, "n9", flood), 1.0)
    added = [e for e in node.take_effects() if isinstance(e, PeerIntroduced)]
    assert len(node.membership.peers) + 1 == MAX_ADDRESSES
    assert len(added) == MAX_ADDRESSES - 3  # self, A and B held already
    assert node.counters["joins_refused"] == 3
    assert node.counters["members_joined"] == len(added)


def test_membership_introduce_ignores_self_known_and_wildcard_addresses() -> None:
    m = Membership("n1", SELF, [A], 3.0)
    added, refused = m.introduce((SELF, A, B, B, "0.0.0.0:7800", ":::7800", "[::]:7800"))
    assert (added, refused) == ([B], 0)  # a node bound to every interface names no host
    assert m.peers[B].configured is False and m.peers[A].configured is True
