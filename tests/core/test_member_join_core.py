"""Joins: a node introduces itself to the peers it lists that do not hear it.

A node added to its own peer list only (or restarted with a shorter one) is heard by
some members and not by others; without joins the ones that never subscribed to it
never count it in, and what it owns by its own view stays on it alone.  A learned
member is kept only while its beacons say it lists us, and is forgotten when never heard
or long down, so a typo in one list is undone by fixing it and nothing stays for good.
Checked on the core with a fake clock."""

from __future__ import annotations

from answers import peer_reply

from meshreg.config import ClusterPolicy
from meshreg.core.distro import DistroNode, PeerCall
from meshreg.core.effects import (
    MemberChanged,
    MemberState,
    PeerDataRejected,
    PeerForgotten,
    PeerIntroduced,
)
from meshreg.core.health import HealthPolicy
from meshreg.core.membership import (
    FORGET_DOWN_AFTER,
    MAX_ADDRESSES,
    MAX_PENDING,
    NEVER_HEARD_AFTER,
    Membership,
)
from meshreg.core.requests import Join
from meshreg.wire.peer import Beacon

SELF, A, B = "10.0.0.1:7800", "10.0.0.2:7800", "10.0.0.3:7800"
NEW = "10.0.0.4:7800"
TIMEOUT = ClusterPolicy().peer_timeout


def ready_node(now: float = 0.0) -> DistroNode:
    """n1 (SELF) listing A and B, caught up with both (their rounds found nothing)."""
    node = DistroNode(HealthPolicy(), ClusterPolicy(), SELF, SELF, [A, B], 7, now)
    for peer in (A, B):
        node.on_replication(Beacon(peer, peer, 99, True, 0, (A, B, SELF)), now)
    node.tick(now)
    for call in [e for e in node.take_effects() if isinstance(e, PeerCall) and e.op != "beacon"]:
        peer_reply(node, call.tag, {"node": call.node_id, "digests": [], "more": False}, now)
    node.tick(now)
    node.take_effects()
    assert node.ready and node.members() == tuple(sorted((SELF, A, B)))
    return node


def joins(node: DistroNode) -> list[PeerCall]:
    return [e for e in node.take_effects() if isinstance(e, PeerCall) and e.op == "join"]


def effects(node: DistroNode, kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in node.take_effects() if isinstance(e, kind)]


def learn_new(node: DistroNode, now: float, lists_us: bool = True) -> None:
    """NEW (listing us) joins and is heard."""
    node.handle(Join(5, NEW, (NEW,)), now)
    assert effects(node, PeerIntroduced) == [PeerIntroduced(NEW, NEW)]
    configured = (A, B, SELF) if lists_us else (A, B)
    node.on_replication(Beacon(NEW, NEW, 3, True, 0, (A, B, NEW, SELF), configured), now)
    node.tick(now)


def test_a_listed_peer_that_does_not_hear_us_is_sent_our_address() -> None:
    node = ready_node()
    node.on_replication(Beacon(A, A, 99, True, 0, (A, B, SELF)), 0.1)
    assert joins(node) == []  # it hears us: nothing to say
    node.on_replication(Beacon(A, A, 99, True, 0, (A, B)), 0.2)  # A does not hear us
    sent = joins(node)
    assert [c.address for c in sent] == [A]
    request = sent[0].request
    assert isinstance(request, Join)
    assert (request.node, request.addresses) == (SELF, (SELF,))  # ourselves, no one else
    assert node.counters["joins_sent"] == 1


def test_joins_to_one_peer_are_spaced_by_the_peer_timeout() -> None:
    node = ready_node()
    node.on_replication(Beacon(A, A, 99, True, 0, (A, B)), 1.0)
    assert len(joins(node)) == 1
    node.on_replication(Beacon(A, A, 99, True, 0, (A, B)), 1.0 + TIMEOUT - 0.01)
    assert joins(node) == []
    node.on_replication(Beacon(A, A, 99, True, 0, (A, B)), 1.0 + TIMEOUT)
    assert len(joins(node)) == 1  # it still does not hear us: once more
    node.on_replication(Beacon(B, B, 99, True, 0, (A, B)), 1.0 + TIMEOUT)
    assert [c.address for c in joins(node)] == [B]  # per peer


def test_no_join_for_a_peer_that_hears_us_or_another_member_we_do_not() -> None:
    node = ready_node()
    node.on_replication(Beacon(A, A, 99, True, 0, (A, B, SELF, NEW)), 0.5)
    assert joins(node) == []  # NEW is for NEW to introduce (only to the nodes it lists)


def test_a_catching_up_peer_whose_view_lacks_us_is_sent_our_address_at_once() -> None:
    """(Before, only once it was ready: it served, for a moment, a table without what we
    own; see the next test.)  Its view may lack us only because it has not heard us yet:
    that join changes nothing there, and is sent at most once per peer timeout."""
    node = ready_node()
    node.on_replication(Beacon(A, A, 100, False, 0, (B,)), 0.5)  # A restarted, catching up
    assert len(joins(node)) == 1
    node.on_replication(Beacon(A, A, 100, True, 0, (A, B)), 0.6)
    assert joins(node) == []  # once per peer timeout


def shorter_list_node() -> DistroNode:
    """SELF restarted listing A only, while A (ready) and B list SELF: A's sync found
    nothing and A's view names B, unknown here."""
    node = DistroNode(HealthPolicy(), ClusterPolicy(), SELF, SELF, [A], 7, 0.0)
    node.on_replication(Beacon(A, A, 99, True, 0, (A, B)), 0.1)
    node.tick(0.1)
    calls = [e for e in node.take_effects() if isinstance(e, PeerCall) and e.op != "beacon"]
    assert calls
    for call in calls:
        peer_reply(node, call.tag, {"node": call.node_id, "digests": [], "more": False}, 0.1)
    node.tick(0.2)
    node.take_effects()
    return node


def test_a_node_restarted_with_a_shorter_list_waits_for_the_joins_of_members_it_missed() -> None:
    """The mismatched-lists simulation, seeds 85 and 87 of 400: a node restarted with a
    shorter list was ready on the peers it lists alone, and served an instance B's stream
    had removed meanwhile (back, for a fraction of a second) until B's join came."""
    node = shorter_list_node()
    assert not node.ready  # B, named by A's view, may still introduce itself
    node.handle(Join(5, B, (B,)), 0.3)
    assert effects(node, PeerIntroduced) == [PeerIntroduced(B, B)]
    node.tick(0.3)
    assert not node.ready  # B known, not heard yet
    node.on_replication(Beacon(B, B, 99, True, 0, (A, B)), 0.4)
    node.tick(0.4)
    calls = [e for e in node.take_effects() if isinstance(e, PeerCall) and e.node_id == B]
    assert calls and not node.ready  # catching up from B too
    for call in calls:
        peer_reply(node, call.tag, {"node": B, "digests": [], "more": False}, 0.5)
    node.tick(0.5)
    assert node.ready and node.members() == tuple(sorted((SELF, A, B)))


def test_a_join_that_does_not_come_is_waited_for_a_peer_timeout_at_most() -> None:
    """B may not list us (lists that disagree otherwise): it never joins."""
    node = shorter_list_node()
    node.tick(0.1 + TIMEOUT - 0.01)
    assert not node.ready
    node.tick(0.1 + TIMEOUT + 0.01)
    assert node.ready and node.members() == tuple(sorted((SELF, A)))


def test_a_catching_up_node_sends_no_join() -> None:
    node = DistroNode(HealthPolicy(), ClusterPolicy(), SELF, SELF, [A, B], 7, 0.0)
    node.on_replication(Beacon(A, A, 99, True, 0, (A,)), 0.1)
    assert not node.ready
    assert joins(node) == []  # our view is not settled: nothing to teach


def test_a_learned_peer_is_sent_no_join() -> None:
    node = ready_node()
    learn_new(node, 0.3)
    node.on_replication(Beacon(NEW, NEW, 3, True, 0, (A, B, NEW), (A, B, SELF)), 0.4)
    assert joins(node) == []  # it lists us: it hears us already (or will)


def test_a_join_keeps_the_address_and_asks_to_subscribe() -> None:
    node = ready_node()
    learn_new(node, 0.3)
    assert node.counters["members_joined"] == 1
    assert node.membership.peers[NEW].configured is False
    assert NEW in node.members()
    rows = {m.address: m for m in node.cluster_result(0.5).members}
    assert rows[NEW].configured is False and rows[A].configured is True
    node.handle(Join(6, NEW, (NEW,)), 0.6)  # known already: nothing more
    assert effects(node, PeerIntroduced) == []


def test_a_learned_member_whose_list_stops_naming_us_is_forgotten() -> None:
    """A typo merged us with NEW; NEW's list is fixed and NEW restarted: its beacons no
    longer name us, so we drop it (and do not take its beacons on the way back in)."""
    node = ready_node()
    learn_new(node, 0.3)
    node.on_replication(Beacon(NEW, NEW, 4, False, 0, (NEW,), ()), 0.9)  # starting again
    assert NEW in node.membership.peers  # not ready: it may not have heard us yet
    node.on_replication(Beacon(NEW, NEW, 4, True, 0, (NEW,), ()), 1.0)
    out = node.take_effects()
    assert [e for e in out if isinstance(e, PeerForgotten)][0].address == NEW
    assert MemberChanged(NEW, NEW, MemberState.DOWN) in out
    assert NEW not in node.membership.peers and NEW not in node.members()
    assert node.counters["members_forgotten"] == 1
    node.on_replication(Beacon(NEW, NEW, 4, True, 0, (NEW,), ()), 1.1)  # still on the way
    assert NEW not in node.membership.peers


def test_a_learned_address_never_heard_is_forgotten() -> None:
    node = ready_node()
    node.handle(Join(5, "ghost", ("10.9.9.9:7800",)), 1.0)
    node.take_effects()
    node.tick(1.0 + NEVER_HEARD_AFTER * TIMEOUT - 0.6)
    assert "10.9.9.9:7800" in node.membership.peers
    node.tick(1.0 + NEVER_HEARD_AFTER * TIMEOUT + 0.6)  # the next beacon turn after
    assert [e.address for e in effects(node, PeerForgotten)] == ["10.9.9.9:7800"]
    assert "10.9.9.9:7800" not in node.membership.peers


def test_a_learned_member_long_down_is_forgotten() -> None:
    node = ready_node()
    learn_new(node, 0.3)
    for t in (1.0, 2.0, 3.0, 4.0):  # A and B keep beaconing; NEW falls silent
        for peer in (A, B):
            node.on_replication(Beacon(peer, peer, 99, True, 0, (A, B, NEW, SELF)), t)
        node.tick(t)
    node.take_effects()
    assert node.membership.peers[NEW].state is MemberState.DOWN
    down_at = node.membership.peers[NEW].down_since
    t = down_at + FORGET_DOWN_AFTER * TIMEOUT + 1.0
    for peer in (A, B):
        node.on_replication(Beacon(peer, peer, 99, True, 0, (A, B, SELF)), t)
    node.tick(t)
    assert [e.address for e in effects(node, PeerForgotten)] == [NEW]
    assert NEW not in node.membership.peers
    assert A in node.membership.peers  # configured peers are never forgotten


def test_joins_are_bounded_by_pending_and_total_addresses() -> None:
    node = ready_node()
    flood = tuple(f"10.1.{i // 250}.{i % 250}:7800" for i in range(MAX_ADDRESSES))
    node.handle(Join(7, "n9", flood), 1.0)
    added = effects(node, PeerIntroduced)
    assert len(added) == MAX_PENDING  # never heard: at most MAX_PENDING at once
    assert node.counters["joins_refused"] == MAX_ADDRESSES - MAX_PENDING
    node.tick(1.0 + NEVER_HEARD_AFTER * TIMEOUT + 0.6)  # they expire: room again
    assert len(effects(node, PeerForgotten)) == MAX_PENDING
    node.handle(Join(8, NEW, (NEW,)), 20.0)
    assert effects(node, PeerIntroduced) == [PeerIntroduced(NEW, NEW)]


def test_two_nodes_with_one_id_are_reported() -> None:
    node = ready_node()
    node.on_replication(Beacon(A, "10.0.0.8:7800", 5, True, 0, (A, B, SELF)), 0.5)
    reports = effects(node, PeerDataRejected)
    assert node.counters["duplicate_ids"] == 1
    assert "10.0.0.8:7800" in reports[0].reason and A in reports[0].reason
    node.on_replication(Beacon(SELF, "10.0.0.9:7800", 5, True, 0, (A, B, SELF)), 11.0)
    reports = effects(node, PeerDataRejected)
    assert node.counters["duplicate_ids"] == 2
    assert "this node's id" in reports[0].reason


def test_membership_introduce_ignores_self_known_and_wildcard_addresses() -> None:
    m = Membership("n1", SELF, [A], 3.0)
    added, refused = m.introduce((SELF, A, B, B, "0.0.0.0:7800", ":::7800", "[::]:7800"), 0.0)
    assert (added, refused) == ([B], 0)  # a node bound to every interface names no host
    assert m.peers[B].configured is False and m.peers[A].configured is True


def test_a_join_that_comes_late_is_waited_for_until_its_member_is_heard_and_caught_up() -> None:
    """Code review of the change above: the join removed the member from the awaited ones,
    and a join arriving after a peer timeout of the node's start (its listed peer late)
    let it be ready at once on that peer alone, the joined member not heard yet."""
    node = DistroNode(HealthPolicy(), ClusterPolicy(), SELF, SELF, [A], 7, 0.0)
    t = TIMEOUT + 0.5  # A heard only now
    node.on_replication(Beacon(A, A, 99, True, 0, (A, B)), t)  # ready, naming B
    node.tick(t)
    for call in [e for e in node.take_effects() if isinstance(e, PeerCall) and e.op != "beacon"]:
        peer_reply(node, call.tag, {"node": call.node_id, "digests": [], "more": False}, t)
    node.tick(t + 0.01)
    node.take_effects()
    assert not node.ready
    node.handle(Join(5, B, (B,)), t + 0.1)
    node.tick(t + 0.1)
    assert not node.ready  # B known, not heard: its beacons and round are waited for
    node.on_replication(Beacon(B, B, 99, True, 0, (A, B)), t + 0.2)
    node.tick(t + 0.2)
    calls = [e for e in node.take_effects() if isinstance(e, PeerCall) and e.node_id == B]
    assert calls and not node.ready
    for call in calls:
        peer_reply(node, call.tag, {"node": B, "digests": [], "more": False}, t + 0.3)
    node.tick(t + 0.3)
    assert node.ready and node.members() == tuple(sorted((SELF, A, B)))
