"""A member's state (core/distro ``NodeState``): every move is in ``TRANSITIONS``."""

from __future__ import annotations

import pytest
from answers import peer_reply
from test_preservation import distro_pair

from meshreg.config import ClusterPolicy
from meshreg.core.distro import CATCH_UP_PATIENCE, TRANSITIONS, DistroNode, NodeEvent, NodeState
from meshreg.core.effects import PeerCall
from meshreg.core.health import HealthPolicy
from meshreg.errors import LocalProtocolError
from meshreg.wire.peer import Beacon

EMPTY_PAGE = {"node": "n2", "digests": [], "more": False}


def test_a_lone_node_serves_at_once_and_a_member_catches_up_first() -> None:
    lone = DistroNode(HealthPolicy(), ClusterPolicy(), "n1", "10.0.0.1:7800", [], 7, 0.0)
    assert lone.state is NodeState.SERVING and lone.ready
    node, _, _ = distro_pair()  # synced with n2: caught up
    assert node.state is NodeState.SERVING


def test_a_stall_while_serving_resyncs_with_every_peer_before_judging() -> None:
    node, _, _ = distro_pair()
    node.take_effects()
    wake = node.tick(1.0)
    assert node.registry.check_stall(wake + 10.0)  # stopped for 10 s
    assert node.state is NodeState.RESYNCING and node.ready  # still serving
    assert node.may_judge(wake + 10.0) == (False, False)
    node.tick(wake + 10.0)
    (call,) = [
        e for e in node.take_effects() if type(e) is PeerCall and e.op != "beacon"
    ]  # the round with n2
    peer_reply(node, call.tag, EMPTY_PAGE, wake + 10.5)
    assert node.may_judge(wake + 10.5) == (True, True)
    assert node.state is NodeState.SERVING


def test_resyncing_ends_at_the_deadline_when_a_peer_never_answers() -> None:
    node, _, _ = distro_pair()
    wake = node.tick(1.0)
    node.registry.check_stall(wake + 10.0)
    assert node.state is NodeState.RESYNCING
    later = wake + 10.0 + CATCH_UP_PATIENCE * ClusterPolicy().peer_timeout
    node.on_replication(Beacon("n2", "10.0.0.2:7800", 99, True, 0), later)  # still up
    assert node.may_judge(later)[0] and node.state is NodeState.SERVING


def test_a_stall_while_catching_up_still_resyncs_once_caught_up() -> None:
    """n2 beacons but never answers a round: the node is ready after its patience, and a
    stall while catching up still holds its sweeps until the resync deadline."""
    node = DistroNode(
        HealthPolicy(), ClusterPolicy(), "n1", "10.0.0.1:7800", ["10.0.0.2:7800"], 7, 0.0
    )
    patience = CATCH_UP_PATIENCE * ClusterPolicy().peer_timeout
    now = 0.0
    while node.state is NodeState.CATCHING_UP:
        node.on_replication(Beacon("n2", "10.0.0.2:7800", 99, True, 0), now)
        if now == 1.0:
            stalled_at = now = node.tick(now) + 5.0  # stopped for 5 s
            assert node.registry.check_stall(now)
        node.tick(now)
        node.take_effects()  # calls that never get a reply
        now += 0.5
        assert now < 2 * patience
    assert node.state is NodeState.RESYNCING and node.ready
    assert node.may_judge(now) == (False, False)
    assert node.may_judge(stalled_at + patience) == (True, True)
    assert node.state is NodeState.SERVING


def node_in(state: NodeState) -> DistroNode:
    """A member in ``state``, brought there by the moves the node makes itself."""
    if state is NodeState.CATCHING_UP:
        node = DistroNode(
            HealthPolicy(), ClusterPolicy(), "n1", "10.0.0.1:7800", ["10.0.0.2:7800"], 7, 0.0
        )
    else:
        node, _, _ = distro_pair()
        if state is NodeState.RESYNCING:
            assert node.registry.check_stall(node.tick(1.0) + 10.0)
    assert node.state is state
    return node


@pytest.mark.parametrize("event", list(NodeEvent), ids=lambda e: e.name)
@pytest.mark.parametrize("state", list(NodeState), ids=lambda s: s.name)
def test_every_move_outside_the_table_is_refused(state: NodeState, event: NodeEvent) -> None:
    """Each (state, event): the table's move is made (``ready`` follows the state);
    any other is refused with LocalProtocolError and changes nothing."""
    node = node_in(state)
    ready, gate = node.ready, node.registry.fast_gate
    if (state, event) in TRANSITIONS:
        node._to(event)
        assert node.state is TRANSITIONS[(state, event)]
        assert node.ready is (node.state is not NodeState.CATCHING_UP)
    else:
        with pytest.raises(LocalProtocolError, match="no move from"):
            node._to(event)
        assert node.state is state and node.ready is ready
        assert node.registry.fast_gate is gate


def test_the_table_names_only_states_and_events() -> None:
    for (state, event), target in TRANSITIONS.items():
        assert type(state) is NodeState and type(event) is NodeEvent
        assert type(target) is NodeState
    # from catching up the only way out is caught up: nothing owns before it holds data
    exits = {e for (s, e), t in TRANSITIONS.items() if s is NodeState.CATCHING_UP and t != s}
    assert exits == {NodeEvent.CAUGHT_UP}
