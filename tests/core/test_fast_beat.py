"""``fast_beat``: the heartbeat hot path applies exactly what the full path would, or declines."""

from __future__ import annotations

import msgpack
from answers import served
from test_fuzz_handler import populated_node, state
from test_preservation import distro_pair

from meshreg.config import ClusterPolicy
from meshreg.core.distro import DistroNode, Forward
from meshreg.core.effects import Rejected, Reply
from meshreg.core.health import HealthPolicy
from meshreg.core.registry import RegistryNode
from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.messages import parse_request

KEY = ("public", "DEFAULT_GROUP", "orders")
HEALTHY = ("10.0.0.1", 8080, "DEFAULT")
UNHEALTHY = ("10.0.0.1", 8081, "DEFAULT")


def beats(node: RegistryNode) -> tuple[int, int]:
    return node.stats.beats, node.stats.requests.get("beat", 0)


def test_renews_a_healthy_instance_and_counts_it_like_the_full_path() -> None:
    node = populated_node()
    before = beats(node)
    assert node.fast_beat(KEY, HEALTHY, 123.0)
    rec = node.store.services[ServiceKey(*KEY)].instances[InstanceId(*HEALTHY)]
    assert rec.last_beat == 123.0
    assert beats(node) == (before[0] + 1, before[1] + 1)
    assert node.take_effects() == []


def test_declines_unknown_and_unhealthy_instances_without_touching_anything() -> None:
    node = populated_node()
    rec = node.store.services[ServiceKey(*KEY)].instances[InstanceId(*UNHEALTHY)]
    last, before = rec.last_beat, beats(node)
    for key, iid in [
        (KEY, UNHEALTHY),  # the full path heals it and publishes the change
        (KEY, ("10.0.0.9", 8080, "DEFAULT")),
        (("public", "DEFAULT_GROUP", "nope"), HEALTHY),
    ]:
        assert not node.fast_beat(key, iid, 123.0)
    assert rec.last_beat == last and not rec.healthy
    assert beats(node) == before and node.take_effects() == []


def test_a_cluster_member_takes_the_fast_path_only_for_its_own_services() -> None:
    node, mine, theirs = distro_pair()
    for key in (*mine[:1], *theirs[:1]):
        names = {"namespace": key.namespace, "group": key.group, "service": key.service}
        body = {"v": 1, "id": 1, "op": "register", **names, "ip": "10.1.1.1", "port": 80}
        served(node, parse_request(msgpack.packb(body)), 1.0, forwarded=True)
        node.owner_of(key)  # the full path looks the owner up once
    iid = ("10.1.1.1", 80, "DEFAULT")
    assert node.fast_beat(tuple(mine[0]), iid, 2.0)
    assert not node.fast_beat(tuple(theirs[0]), iid, 2.0)  # the full path forwards it
    ns, group, service = theirs[0]
    names = {"namespace": ns, "group": group, "service": service}
    beat = {"v": 1, "id": 2, "op": "beat", **names, "ip": "10.1.1.1", "port": 80}
    assert type(served(node, parse_request(msgpack.packb(beat)), 2.0)) is Forward


def test_a_member_still_catching_up_declines() -> None:
    node = DistroNode(
        HealthPolicy(), ClusterPolicy(), "n1", "10.0.0.1:7800", ["10.0.0.2:7800"], 7, 0.0
    )
    assert not node.ready
    assert not node.fast_beat(KEY, HEALTHY, 1.0)
    # even for an instance it holds (a write relayed to it while catching up)
    names = {"namespace": KEY[0], "group": KEY[1], "service": KEY[2]}
    body = {"v": 1, "id": 1, "op": "register", **names, "ip": HEALTHY[0], "port": HEALTHY[1]}
    served(node, parse_request(msgpack.packb(body)), 1.0, forwarded=True)
    assert node.registry.holds(ServiceKey(*KEY), InstanceId(*HEALTHY))
    assert not node.fast_beat(KEY, HEALTHY, 2.0)
    # ready, but it sees 1 of its 2 members up (no majority: cut off): a beat through its
    # server still takes the fast path (review78 F3: every beat took the full path, 2.3x
    # the CPU); one sent straight to it as the owner is left by the runtime to ``handle``
    # (``cut_off``), which refuses it (review75 F1)
    node.assume_caught_up(3.0)
    assert node.ready and node.cut_off and node.fast_beat(KEY, HEALTHY, 4.0)
    beat = {"v": 1, "id": 2, "op": "beat", **names, "ip": HEALTHY[0], "port": HEALTHY[1]}
    answer = node.handle(parse_request(msgpack.packb(beat)), 4.0, direct=True)
    assert type(answer) is Rejected and answer.code is ErrorCode.UNAVAILABLE, answer
    answer = node.handle(parse_request(msgpack.packb(beat)), 4.0)  # through its server: taken
    assert type(answer) is Reply, answer


def test_the_fast_path_is_renews_common_case() -> None:
    """Where ``fast_beat`` takes a beat, ``renew`` (the one primitive every beat path
    calls) leaves the very same table and no effect; where it declines, it changed
    nothing and ``renew`` has more to do."""
    cases = [(KEY, HEALTHY, 0), (KEY, UNHEALTHY, 0), (KEY, HEALTHY, 1)]  # 1: floor above
    for key, iid, floor_above in cases:
        fast, full = populated_node(), populated_node()
        assert state(fast) == state(full)
        rec = fast.store.services[ServiceKey(*key)].instances[InstanceId(*iid)]
        if floor_above:  # evidence older than the floor: the beat must refresh it
            fast.registry.alive_floor = full.registry.alive_floor = rec.alive + 1
        before = state(fast)
        took = fast.fast_beat(key, iid, 123.0)
        full.registry.renew(ServiceKey(*key), InstanceId(*iid), 123.0, 123.0)
        effects = full.take_effects()
        if took:
            assert state(fast) == state(full) and effects == [] and fast.take_effects() == []
        else:
            assert state(fast) == before and state(full) != before
