"""A starting node is ready only after syncing with every peer it can hear, not with the
first one to answer: otherwise it reads, and owns, without the others' services."""

from __future__ import annotations

from answers import peer_reply

from meshreg.config import ClusterPolicy
from meshreg.core.distro import DistroNode, PeerCall
from meshreg.core.health import HealthPolicy
from meshreg.wire.peer import Beacon

A, B = "10.0.0.2:7800", "10.0.0.3:7800"


def starting_node() -> DistroNode:
    return DistroNode(HealthPolicy(), ClusterPolicy(), "n1", "10.0.0.1:7800", [A, B], 7, 0.0)


def sync_with(node: DistroNode, peer_id: str, address: str, now: float) -> None:
    """The peer's beacon arrives and the round it starts finds nothing to fetch."""
    node.on_replication(Beacon(peer_id, address, 99, True, 0), now)
    node.tick(now)
    calls = [e for e in node.take_effects() if isinstance(e, PeerCall) and e.op != "beacon"]
    assert calls, "a round with the peer should start"
    for call in calls:
        peer_reply(node, call.tag, {"node": peer_id, "digests": [], "more": False}, now)
    node.tick(now)


def test_not_ready_after_the_first_peer_while_another_has_not_been_heard() -> None:
    node = starting_node()
    sync_with(node, "n2", A, 0.2)
    assert not node.ready  # n3 is configured and not heard from yet
    sync_with(node, "n3", B, 0.4)
    assert node.ready


def test_a_peer_silent_for_a_whole_peer_timeout_counts_as_down() -> None:
    node = starting_node()
    sync_with(node, "n2", A, 0.2)
    assert not node.ready
    timeout = ClusterPolicy().peer_timeout
    t = 0.3
    while t < timeout - 0.1:  # the loop turns meanwhile (a gap would be its own stall)
        node.on_replication(Beacon("n2", A, 99, True, 0), t)  # n2 stays up
        node.tick(t)
        t = round(t + 0.1, 6)
    node.on_replication(Beacon("n2", A, 99, True, 0), timeout - 0.1)
    node.tick(timeout - 0.1)
    assert not node.ready
    node.on_replication(Beacon("n2", A, 99, True, 0), timeout)
    node.tick(timeout)
    assert node.ready  # n3 never spoke: down, nothing to wait for


def test_a_node_that_started_alone_is_synced_once_it_synced_with_every_peer_up() -> None:
    """Started with no peer up, it serves alone and its reads do not say ``synced`` (its
    table holds only what was registered there); once it has done a round with every
    peer that came up since, they do (a client held its answers back 15 s before)."""
    node = starting_node()
    t = 0.0
    while not node.ready:  # nobody answers: ready alone after the patience
        t = round(t + 0.1, 6)
        node.tick(t)
    assert node.registry.synced is False
    node.on_replication(Beacon("n3", B, 99, True, 0), t + 0.05)  # n3 is up: its round
    node.tick(t + 0.05)  # starts, unanswered yet
    n3_round = [e for e in node.take_effects() if isinstance(e, PeerCall) and e.op != "beacon"]
    assert n3_round
    sync_with(node, "n2", A, t + 0.1)
    assert node.registry.synced is False  # n3 is up too and not synced with yet
    for call in n3_round:
        peer_reply(node, call.tag, {"node": "n3", "digests": [], "more": False}, t + 0.2)
    node.tick(t + 0.2)
    assert node.registry.synced is True
