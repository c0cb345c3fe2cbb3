"""``forward_failed``: when the responsible node cannot be reached, the core decides.

The runtime only reports the failure (the ``Forward`` it could not deliver, or whose
reply did not come within ``peer_request_timeout``); the core applies the write here
and answers, or answers UNAVAILABLE.  Fake clock throughout.
"""

from __future__ import annotations

from test_preservation import distro_pair

from meshreg.config import ClusterPolicy
from meshreg.core.distro import DistroNode
from meshreg.core.effects import Forward, Rejected, Reply, ServiceChanged
from meshreg.core.health import HealthPolicy
from meshreg.core.results import Written
from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.messages import Beat, DeregisterInstance, RegisterInstance
from meshreg.wire.peer import Beacon

IID = InstanceId("10.1.1.1", 80, "DEFAULT")


def register(key: ServiceKey, req_id: int = 1) -> RegisterInstance:
    return RegisterInstance(req_id, key, IID, 1.0, True, {})


def test_a_write_for_another_member_is_forwarded_and_changes_nothing_here() -> None:
    node, _, theirs = distro_pair()
    node.take_effects()
    answer = node.handle(register(theirs[0]), 5.0)
    assert type(answer) is Forward
    assert (answer.node_id, answer.address) == ("n2", "10.0.0.2:7800")
    assert answer.received_at == 5.0 and answer.request == register(theirs[0])
    assert node.store.get(theirs[0]) is None and node.take_effects() == []
    assert node.counters["forwarded"] == 1


def test_a_failed_forward_is_applied_here_and_answered() -> None:
    node, _, theirs = distro_pair()
    node.take_effects()
    fwd = node.handle(register(theirs[0], req_id=7), 5.0)
    assert type(fwd) is Forward
    answer = node.forward_failed(fwd, 7.0)  # peer_request_timeout later
    assert type(answer) is Reply and answer.req_id == 7 and type(answer.result) is Written
    assert node.registry.holds(theirs[0], IID)
    changes = [e for e in node.take_effects() if type(e) is ServiceChanged]
    assert [c.reason for c in changes] == ["registered"]  # published: watchers and peers


def test_a_failed_beat_counts_from_when_it_reached_this_node() -> None:
    node, _, theirs = distro_pair()
    key = theirs[0]
    node.handle(register(key), 1.0, forwarded=True)  # a replicated copy, say
    fwd = node.handle(Beat(3, key, IID), 5.0)
    assert type(fwd) is Forward
    assert node.forward_failed(fwd, 7.0) == Reply(3, None)
    rec = node.store.get(key).instances[IID]  # type: ignore[union-attr]
    assert rec.last_beat == 5.0  # received at 5, applied at 7: evidence of life at 5


def test_a_failed_write_the_core_refuses_is_answered_with_its_code() -> None:
    node, _, theirs = distro_pair()
    fwd = node.handle(Beat(4, theirs[0], IID), 5.0)  # not registered anywhere
    assert type(fwd) is Forward
    answer = node.forward_failed(fwd, 7.0)
    assert type(answer) is Rejected and answer.code is ErrorCode.NOT_FOUND
    assert answer.req_id == 4 and node.stats.errors == {"NOT_FOUND": 1}
    assert node.take_effects() == []


def test_catching_up_a_failed_beat_for_an_instance_not_held_yet_is_unavailable() -> None:
    node = DistroNode(
        HealthPolicy(), ClusterPolicy(), "n1", "10.0.0.1:7800", ["10.0.0.2:7800"], 7, 0.0
    )
    node.on_replication(Beacon("n2", "10.0.0.2:7800", 99, True, 0), 0.0)
    node.tick(0.0)
    assert not node.ready and node.members() == ("n2",)  # the peer owns everything
    key = ServiceKey("public", "DEFAULT_GROUP", "orders")
    fwd = node.handle(Beat(5, key, IID), 1.0)
    assert type(fwd) is Forward
    answer = node.forward_failed(fwd, 3.0)
    assert type(answer) is Rejected and answer.code is ErrorCode.UNAVAILABLE
    assert "catching up" in answer.message  # the provider is alive: not NOT_FOUND


def test_a_forwarded_request_is_never_forwarded_again() -> None:
    node, _, theirs = distro_pair()
    answer = node.handle(DeregisterInstance(9, theirs[0], IID), 5.0, forwarded=True)
    assert type(answer) is Reply and answer.req_id == 9 and type(answer.result) is Written
