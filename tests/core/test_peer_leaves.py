"""A node that stops says so in its last beacon (``leaving``): its peers count it down at
once and take what it owned, instead of after ``peer_timeout`` of silence (review27 F1:
config writes to the data ids it owned failed for 3 s after its SIGTERM)."""

from __future__ import annotations

from test_catch_up_all_peers import A, sync_with

from meshreg.config import ClusterPolicy
from meshreg.core.distro import PLANNED_FLAP_RESTARTS, DistroNode
from meshreg.core.health import HealthPolicy
from meshreg.core.membership import MemberState
from meshreg.wire.peer import Beacon, decode_replication, encode_beacon


def two_members() -> DistroNode:
    node = DistroNode(HealthPolicy(), ClusterPolicy(), "n1", "10.0.0.1:7800", [A], 7, 0.0)
    sync_with(node, "n2", A, 0.2)
    assert node.ready and node.members() == ("n1", "n2")
    return node


def test_a_leaving_beacon_counts_the_peer_down_at_once_and_its_stale_beacons_are_ignored() -> None:
    node = two_members()
    node.on_replication(Beacon("n2", A, 99, False, 0, leaving=True), 0.3)
    assert node.members() == ("n1",)
    assert node.membership.peer_at(A).state is MemberState.DOWN  # type: ignore[union-attr]
    assert node.counters["peers_left"] == 1
    # a beacon of that incarnation sent before its leave, arriving after: still gone
    node.on_replication(Beacon("n2", A, 99, True, 0), 0.35)
    assert node.members() == ("n1",)
    # its next incarnation (a restart) is heard as usual
    node.on_replication(Beacon("n2", A, 100, True, 0), 1.1)
    assert node.membership.peer_at(A).state is MemberState.UP  # type: ignore[union-attr]


def test_a_leaving_beacon_of_another_incarnation_changes_nothing() -> None:
    node = two_members()
    node.on_replication(Beacon("n2", A, 98, False, 0, leaving=True), 0.3)  # an old one
    assert node.members() == ("n1", "n2")


def test_the_leaving_beacon_travels_and_says_not_ready() -> None:
    node = two_members()
    b = node.leaving_beacon(0.5)
    assert b.leaving and not b.ready and b.node == "n1" and b.epoch == 7
    back = decode_replication(encode_beacon(b))
    assert isinstance(back, Beacon) and back.leaving
    plain = decode_replication(encode_beacon(Beacon("n1", "10.0.0.1:7800", 7, True, 0)))
    assert isinstance(plain, Beacon) and not plain.leaving


def test_planned_restarts_are_not_a_crash_loop_but_crashes_still_are() -> None:
    """review30 F3: a rolling restart done twice (SIGTERM, start; again within
    ``4 x evict_after``) was held as a crash loop: out of the members 45 s, `ping --ready`
    failing.  A restart after the incarnation's leave beacon is planned: not counted."""
    node = two_members()
    t, epoch = 1.0, 99
    for _ in range(PLANNED_FLAP_RESTARTS - 1):  # a rolling restart done three times
        node.on_replication(Beacon("n2", A, epoch, True, 0), t)
        node.on_replication(Beacon("n2", A, epoch, False, 0, leaving=True), t + 0.1)
        epoch, t = epoch + 1, t + 0.7
        node.on_replication(Beacon("n2", A, epoch, True, 0), t)
        node.tick(t)
        t += 1.0
    assert node.counters["peers_held"] == 0 and not node.holding(t)
    assert node.members() == ("n1", "n2")
    # two crashes (no leave beacon: silence, then a new incarnation): held
    for _ in range(2):
        epoch, t = epoch + 1, t + 0.7
        node.on_replication(Beacon("n2", A, epoch, True, 0), t)
        node.tick(t)
    assert node.counters["peers_held"] == 1 and node.holding(t) == ("n2",)
    assert node.members() == ("n1",)


def test_a_supervisors_sigterm_loop_is_held_all_the_same() -> None:
    """review31: a node a supervisor stops with SIGTERM again and again (a liveness probe
    failing it) announces each stop; ``PLANNED_FLAP_RESTARTS`` planned restarts within
    ``4 x evict_after`` are a loop all the same: held."""
    node = two_members()
    t, epoch = 1.0, 99
    node.on_replication(Beacon("n2", A, epoch, True, 0), t)
    held_after = None
    for k in range(1, PLANNED_FLAP_RESTARTS + 1):
        node.on_replication(Beacon("n2", A, epoch, False, 0, leaving=True), t + 0.1)
        epoch, t = epoch + 1, t + 0.7
        node.on_replication(Beacon("n2", A, epoch, True, 0), t)
        node.tick(t)
        if held_after is None and node.holding(t):
            held_after = k
        t += 5.0
    assert held_after == PLANNED_FLAP_RESTARTS, held_after
    assert node.counters["peers_held"] == 1 and node.members() == ("n1",)
