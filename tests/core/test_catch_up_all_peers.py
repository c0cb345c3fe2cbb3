"""A starting node is ready only after syncing with every peer it can hear, not with the
first one to answer: otherwise it reads, and owns, without the others' services."""

from __future__ import annotations

from answers import peer_reply

from meshreg.config import ClusterPolicy
from meshreg.core.distro import DistroNode, PeerCall
from meshreg.core.health import HealthPolicy
from meshreg.model import ServiceKey
from meshreg.wire.peer import Beacon

A, B = "10.0.0.2:7800", "10.0.0.3:7800"


def starting_node() -> DistroNode:
    return DistroNode(HealthPolicy(), ClusterPolicy(), "n1", "10.0.0.1:7800", [A, B], 7, 0.0)


def sync_with(
    node: DistroNode, peer_id: str, address: str, now: float, age_ms: int | None = None
) -> None:
    """The peer's beacon arrives (``age_ms``: its table's age, None: not told) and the
    round it starts finds nothing to fetch."""
    node.on_replication(Beacon(peer_id, address, 99, True, 0, table_age=age_ms), now)
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


def instances_age(node: DistroNode, now: float) -> tuple[bool | None, float | None]:
    result = node.registry.instances_result(ServiceKey("public", "DEFAULT_GROUP", "orders"),
                                            False, now)  # fmt: skip
    return result.synced, result.table_age


def test_caught_up_from_old_peers_the_table_is_as_old_as_theirs() -> None:
    """A node restarted alone serves its peers' table: as old as theirs, trusted at once
    (review24 F1), and its beacons say so."""
    node = starting_node()
    sync_with(node, "n2", A, 0.2, 3_600_000)  # up an hour
    sync_with(node, "n3", B, 0.4, 7_200_000)
    assert node.ready
    synced, age = instances_age(node, 1.0)
    assert synced is True
    assert age is not None and age >= 7_200  # the oldest source's table
    told = node._table_age_ms(1.0)  # what its beacons say
    assert told is not None and told >= 7_200_000


def test_after_a_whole_cluster_restart_the_table_is_young_though_synced() -> None:
    """review33 F1: every node restarted together; each catches up from peers as young as
    itself, so its reads say ``synced`` and a young ``table_age``: a client holds back a
    list that drops instances until the providers had time to register again."""
    node = starting_node()  # started at 0.0
    sync_with(node, "n2", A, 0.5, 900)  # n2 started at -0.4, before us
    sync_with(node, "n3", B, 0.6, 100)  # n3 at 0.5
    assert node.ready
    synced, age = instances_age(node, 2.0)
    assert synced is True
    assert age == 2.4  # since the oldest start among them and us: n2's
    assert node._table_age_ms(2.0) == 2400


def test_a_source_that_does_not_tell_its_age_counts_as_old() -> None:
    """A peer of an older version sends no ``table_age``: its table counts as old, as the
    ``synced`` rule took it before; reads then say no age and beacons carry none."""
    node = starting_node()
    sync_with(node, "n2", A, 0.2, None)
    sync_with(node, "n3", B, 0.3, 100)
    synced, age = instances_age(node, 1.0)
    assert synced is True and age is None
    assert node._table_age_ms(1.0) is None


def test_a_lone_node_tells_its_uptime_as_its_tables_age() -> None:
    node = starting_node()
    t = 0.0
    while not node.ready:  # nobody answers: ready alone after the patience
        t = round(t + 0.1, 6)
        node.tick(t)
    synced, age = instances_age(node, t + 1.0)
    assert synced is False and age is not None and abs(age - (t + 1.0)) < 0.01
