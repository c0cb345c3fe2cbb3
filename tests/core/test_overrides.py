"""Operator overrides (review13 F-drain): a drain or weight set by ``update`` is a layer of
its own over the provider's registration, merged per entry by stamp, replicated, expired
when its instance stays absent (core/overrides).  Fake clock throughout."""

from __future__ import annotations

import msgpack
import pytest
from answers import served

from meshreg.config import ClusterPolicy
from meshreg.core.distro import Broadcast, DistroNode
from meshreg.core.health import HealthPolicy
from meshreg.core.overrides import ABSENCE_CHECK_INTERVAL, CLEARED_TTL
from meshreg.core.registry import RegistryNode
from meshreg.core.store import RegistryStore
from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.messages import (
    DeregisterInstance,
    RegisterInstance,
    RequestRejected,
    UpdateInstance,
    parse_request,
)
from meshreg.wire.notifications import encode_change
from meshreg.wire.peer import (
    ReplicatedDelta,
    ServicePayload,
    decode_replication,
    encode_delta,
    payload_from_wire,
    payload_to_wire,
)

KEY = ServiceKey("public", "DEFAULT_GROUP", "orders")
I1 = InstanceId("10.1.1.1", 80, "DEFAULT")
I2 = InstanceId("10.1.1.2", 80, "DEFAULT")
WALL = 1_790_000_000.0
A, B = "10.0.0.1:7800", "10.0.0.2:7800"


def effective(store: RegistryStore, iid: InstanceId) -> tuple[float, bool]:
    rec = store.get(KEY).instances[iid]  # type: ignore[union-attr]
    return store.effective(KEY, rec)


# -- the store: a layer the provider's writes never touch ------------------------------
def test_a_registration_again_keeps_the_operators_drain_and_weight() -> None:
    s = RegistryStore()
    s.register(KEY, I1, 1.0, True, {}, 1.0, 10)
    change = s.update(KEY, I1, None, False, 20, 2.0)
    assert change is not None and change.overrides == ((I1, None, False, 0, 20),)
    assert effective(s, I1) == (1.0, False)
    # the provider's own change of weight applies (not overridden); enabled stays drained
    s.register(KEY, I1, 3.0, True, {}, 3.0, 30)
    assert effective(s, I1) == (3.0, False)
    # the app restarts: deregister, register again
    s.deregister(KEY, I1, 40, 4.0)
    change = s.register(KEY, I1, 1.0, True, {}, 5.0, 50)
    assert change is not None and change.overrides == ((I1, None, False, 0, 20),)
    assert effective(s, I1) == (1.0, False)
    # a weight added to the drain keeps the drain; clear gives the provider's values back
    s.update(KEY, I1, 5.0, None, 60, 6.0)
    assert effective(s, I1) == (5.0, False)
    assert s.update(KEY, I1, 5.0, None, 65, 6.5) is None  # the same override: no change
    change = s.update(KEY, I1, None, None, 70, 7.0, clear=True)
    assert change is not None and change.overrides == ((I1, None, None, 70, 70),)
    assert effective(s, I1) == (1.0, True)
    assert s.update(KEY, I1, None, None, 80, 8.0, clear=True) is None  # nothing to clear


def test_update_of_an_unregistered_instance_is_not_found_and_changes_nothing() -> None:
    s = RegistryStore()
    with pytest.raises(KeyError):
        s.update(KEY, I1, None, False, 10, 1.0)
    with pytest.raises(KeyError):
        s.update(KEY, I1, None, None, 10, 1.0, clear=True)
    assert len(s.overrides) == 0


def test_an_absent_instances_override_can_be_cleared() -> None:
    s = RegistryStore()
    s.register(KEY, I1, 1.0, True, {}, 1.0, 10)
    s.register(KEY, I2, 1.0, True, {}, 1.0, 11)
    s.update(KEY, I1, None, False, 20, 2.0)
    s.deregister(KEY, I1, 30, 3.0)
    assert s.update(KEY, I1, None, None, 40, 4.0, clear=True) is None  # nothing watchers see
    assert s.overrides.get(KEY, I1)[:4] == (None, None, 40, 40)  # type: ignore[index]
    s.register(KEY, I1, 1.0, True, {}, 5.0, 50)
    assert effective(s, I1) == (1.0, True)


def test_overrides_merge_per_entry_by_stamp_both_sides_of_a_partition_survive() -> None:
    left, right = RegistryStore(), RegistryStore()
    for s in (left, right):
        s.register(KEY, I1, 1.0, True, {}, 1.0, 10)
        s.register(KEY, I2, 1.0, True, {}, 1.0, 11)
    left.update(KEY, I1, None, False, 20, 2.0)  # drained on one side
    right.update(KEY, I2, 4.0, None, 21, 2.0)  # weighted on the other
    # the partition heals: each side's full entries reach the other (anti-entropy)
    change, _, _ = left.merge(KEY, (), (), 3.0, overrides=right.overrides.entries(KEY))
    assert change is not None and [v.port for v in change.upserted] == [80]
    right.merge(KEY, (), (), 3.0, overrides=left.overrides.entries(KEY))
    for s in (left, right):
        assert effective(s, I1) == (1.0, False) and effective(s, I2) == (4.0, True)
    # an older copy loses; a newer one (a clear) wins
    left.merge(KEY, (), (), 4.0, overrides=((I1, None, True, 0, 15),))
    assert effective(left, I1) == (1.0, False)
    left.merge(KEY, (), (), 4.0, overrides=((I1, None, None, 25, 25),))
    assert effective(left, I1) == (1.0, True)
    # a merge that changes nothing visible makes no change
    change, _, _ = left.merge(KEY, (), (), 5.0, overrides=((I1, None, None, 25, 25),))
    assert change is None


def test_two_fields_set_through_two_nodes_before_either_saw_the_other_both_survive() -> None:
    """review13b F1: a drain through A and a weight through B, neither node holding the
    other's write yet (the owner frozen): with one stamp per entry the later write, made
    without the earlier one, replaced it everywhere (the drain lost). Per field, both
    stay; and a clear through a node that holds nothing yet beats an earlier drain."""
    a, b = RegistryStore(), RegistryStore()
    for s in (a, b):
        s.register(KEY, I1, 1.0, True, {}, 1.0, 10)
    a.update(KEY, I1, None, False, 20, 2.0)  # drained through A
    b.update(KEY, I1, 5.0, None, 21, 2.1)  # weighted through B (A's drain not there yet)
    a.merge(KEY, (), (), 3.0, overrides=b.overrides.entries(KEY))
    b.merge(KEY, (), (), 3.0, overrides=a.overrides.entries(KEY))
    for s in (a, b):
        assert effective(s, I1) == (5.0, False)
    c = RegistryStore()
    c.register(KEY, I1, 1.0, True, {}, 1.0, 10)
    assert c.update(KEY, I1, None, None, 30, 3.5, clear=True) is None  # nothing held here
    a.merge(KEY, (), (), 4.0, overrides=c.overrides.entries(KEY))
    assert effective(a, I1) == (1.0, True)  # the later clear wins over both fields


def test_the_watchers_delta_carries_the_effective_values() -> None:
    s = RegistryStore()
    s.register(KEY, I1, 2.0, True, {}, 1.0, 10)
    s.update(KEY, I1, None, False, 20, 2.0)
    change = s.register(KEY, I1, 2.0, True, {"v": "2"}, 3.0, 30)
    assert change is not None
    body = msgpack.unpackb(encode_change(change, 1)[1])
    assert [(u["weight"], u["enabled"]) for u in body["upsert"]] == [(2.0, False)]
    # while the peers' payload keeps the provider's own values and the override apart
    assert change.upserted[0].enabled is True


# -- the registry: reads, expiry ----------------------------------------------------------
def _lone(ttl: float = 60.0) -> RegistryNode:
    policy = HealthPolicy(
        check_interval=1.0, unhealthy_after=5.0, evict_after=10.0, override_ttl=ttl
    )
    return RegistryNode(policy, 1, 0.0, detect_stalls=False)


def test_reads_show_the_override_and_healthy_only_skips_a_drained_instance() -> None:
    n = _lone()
    served(n, RegisterInstance(1, KEY, I1, 1.0, True, {}), 1.0)
    served(n, RegisterInstance(2, KEY, I2, 1.0, True, {}), 1.0)
    served(n, UpdateInstance(3, KEY, I1, 2.0, False), 1.5)
    served(n, RegisterInstance(4, KEY, I1, 1.0, True, {}), 2.0)  # the provider again
    rows = n.instances_result(KEY, False).instances
    assert [(r[3], r[4]) for r in rows] == [(2.0, False), (1.0, True)]
    assert [r[0] for r in n.instances_result(KEY, True).instances] == [I2.ip]


def test_an_override_of_an_instance_absent_for_the_ttl_is_cleared_not_before() -> None:
    n = _lone(ttl=60.0)
    served(n, RegisterInstance(1, KEY, I1, 1.0, True, {}), 1.0)
    served(n, RegisterInstance(2, KEY, I2, 1.0, True, {}), 1.0)
    served(n, UpdateInstance(3, KEY, I1, None, False), 1.5)
    served(n, UpdateInstance(4, KEY, I2, 3.0, None), 1.5)
    served(n, DeregisterInstance(5, KEY, I1), 2.0)
    t = 2.0
    while t < 50.0:  # absent for less than the ttl: kept
        t += 1.0
        n.tick(t)
        served(n, RegisterInstance(6, KEY, I2, 1.0, True, {}), t)  # I2 stays registered
    served(n, RegisterInstance(7, KEY, I1, 1.0, True, {}), t)  # back from maintenance
    assert n.instances_result(KEY, False).instances[0][4] is False  # still drained
    served(n, DeregisterInstance(8, KEY, I1), t)
    gone_at = t
    while t < gone_at + 60.0 + 2 * ABSENCE_CHECK_INTERVAL + 2:
        t += 1.0
        n.tick(t)
        served(n, RegisterInstance(6, KEY, I2, 1.0, True, {}), t)
    entry = n.store.overrides.get(KEY, I1)
    assert entry is not None and entry[:2] == (None, None)  # cleared (remembered a while)
    assert n.store.overrides.expired == 1
    assert n.store.overrides.get(KEY, I2)[:2] == (3.0, None)  # type: ignore[index]
    served(n, RegisterInstance(9, KEY, I1, 1.0, True, {}), t)
    assert n.instances_result(KEY, False).instances[0][4] is True
    while t < gone_at + CLEARED_TTL + 60.0 + 3 * ABSENCE_CHECK_INTERVAL:
        t += 5.0
        n.tick(t)
    assert n.store.overrides.get(KEY, I1) is None and len(n.store.overrides) == 1


def test_update_bad_input_is_refused_with_a_clear_error_and_changes_nothing() -> None:
    base = {"v": 1, "id": 1, "op": "update", "service": "orders", "ip": I1.ip, "port": 80}
    for body, words in (
        ({**base, "clear": "yes"}, "'clear' must be true or false"),
        ({**base, "clear": 1}, "'clear' must be true or false"),
        ({**base, "clear": True, "enabled": False}, "give it alone"),
        ({**base, "clear": True, "weight": 2.0}, "give it alone"),
        (base, "or 'clear'"),
    ):
        with pytest.raises(RequestRejected) as info:
            parse_request(msgpack.packb(body))
        assert info.value.code == ErrorCode.INVALID_ARGUMENT and words in info.value.message
    req = parse_request(msgpack.packb({**base, "clear": True}))
    assert type(req) is UpdateInstance and req.clear
    n = _lone()
    served(n, RegisterInstance(1, KEY, I1, 1.0, True, {}), 1.0)
    reply = n.handle(UpdateInstance(2, KEY, I2, None, None, clear=True), 1.0)
    assert reply.code == ErrorCode.NOT_FOUND  # type: ignore[union-attr]
    assert "no override" in reply.message  # type: ignore[union-attr]
    assert n.stats.errors and len(n.store.overrides) == 0


# -- replication: two members on the real peer wire ---------------------------------------
def _member(node_id: str) -> DistroNode:
    address, peer = (A, B) if node_id == "n1" else (B, A)
    return DistroNode(
        HealthPolicy(), ClusterPolicy(), node_id, address, [peer], 1, 0.0, wall_offset=WALL
    )


def _carry(src: DistroNode, dst: DistroNode, now: float) -> None:
    for e in src.take_effects():
        if type(e) is Broadcast and type(e.message) is ReplicatedDelta:
            dst.on_replication(decode_replication(encode_delta(e.message)), now)


def test_an_override_replicates_over_the_wire_and_outlives_a_registration_there() -> None:
    n1, n2 = _member("n1"), _member("n2")
    served(n1, RegisterInstance(1, KEY, I1, 1.0, True, {}), 1.0, forwarded=True)
    _carry(n1, n2, 1.1)
    served(n1, UpdateInstance(2, KEY, I1, None, False), 2.0, forwarded=True)
    _carry(n1, n2, 2.1)
    assert n2.registry.instances_result(KEY, False).instances[0][4] is False
    # the provider registers again through n2 (forwarded there): the drain stays, both sides
    served(n2, RegisterInstance(3, KEY, I1, 1.0, True, {"v": "2"}), 3.0, forwarded=True)
    _carry(n2, n1, 3.1)
    for n in (n1, n2):
        assert n.registry.instances_result(KEY, False).instances[0][4] is False
    # anti-entropy: the override is in the digest and in the full payload
    assert n1._digest_of(KEY) == n2._digest_of(KEY)
    before = n1._digest_of(KEY)
    served(n1, UpdateInstance(4, KEY, I1, None, None, clear=True), 4.0, forwarded=True)
    assert n1._digest_of(KEY) != before
    payload = payload_from_wire(payload_to_wire(n1.payload_of(KEY)))
    entry = n1.store.overrides.get(KEY, I1)
    assert entry is not None and payload.overrides == ((I1, None, None, entry[2], entry[3]),)
    _carry(n1, n2, 4.1)
    assert n2.registry.instances_result(KEY, False).instances[0][4] is True
    assert n1._digest_of(KEY) == n2._digest_of(KEY)


def test_a_peer_payload_with_a_bad_override_is_rejected() -> None:
    from meshreg.errors import RemoteProtocolError

    good = payload_to_wire(ServicePayload(KEY, (), (), None, ((I1, None, False, 0, 5),)))
    assert payload_from_wire(good).overrides == ((I1, None, False, 0, 5),)
    for bad in (
        [[I1.ip, 80, "DEFAULT", None, "no", 0, 5]],
        [[I1.ip, 80, "DEFAULT", -1.0, None, 5, 0]],
        [[I1.ip, 80, "DEFAULT", None, False, 5]],  # one stamp: the old shape
        [[I1.ip, 80, "DEFAULT", None, None]],
        "x",
    ):
        with pytest.raises(RemoteProtocolError):
            payload_from_wire({**good, "overrides": bad})


def test_a_clear_of_an_absent_instances_override_reaches_the_peers() -> None:
    n1, n2 = _member("n1"), _member("n2")
    served(n1, RegisterInstance(1, KEY, I1, 1.0, True, {}), 1.0, forwarded=True)
    served(n1, RegisterInstance(2, KEY, I2, 1.0, True, {}), 1.0, forwarded=True)
    served(n1, UpdateInstance(3, KEY, I1, None, False), 1.5, forwarded=True)
    served(n1, DeregisterInstance(4, KEY, I1), 2.0, forwarded=True)
    _carry(n1, n2, 2.1)
    assert n2.store.overrides.get(KEY, I1)[:2] == (None, False)  # type: ignore[index]
    served(n1, UpdateInstance(5, KEY, I1, None, None, clear=True), 3.0, forwarded=True)
    _carry(n1, n2, 3.1)
    assert n2.store.overrides.get(KEY, I1)[:2] == (None, None)  # type: ignore[index]
    # the provider comes back through n2: its own values, no drain
    served(n2, RegisterInstance(6, KEY, I1, 1.0, True, {}), 4.0, forwarded=True)
    assert n2.registry.instances_result(KEY, True).instances[0][4] is True


def test_one_namespace_takes_at_most_a_quarter_of_the_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """review23 F6: an admin of one namespace filled the node's 100,000 overrides and every
    other tenant's drain was refused.  (The bound is lowered here: 8, a namespace 2.)"""
    import meshreg.core.registry as registry

    monkeypatch.setattr(registry, "MAX_OVERRIDES", 8)
    monkeypatch.setattr(registry, "MAX_OVERRIDES_PER_NAMESPACE", 2)
    n = _lone()
    tenant_b = ServiceKey("b", "DEFAULT_GROUP", "web")
    for i, key in enumerate((KEY, KEY, KEY, tenant_b)):
        served(
            n,
            RegisterInstance(1, key, InstanceId(f"10.2.0.{i}", 80, "DEFAULT"), 1.0, True, {}),
            1.0,
        )
    served(n, UpdateInstance(2, KEY, InstanceId("10.2.0.0", 80, "DEFAULT"), 2.0, None), 1.0)
    served(n, UpdateInstance(3, KEY, InstanceId("10.2.0.1", 80, "DEFAULT"), 2.0, None), 1.0)
    with pytest.raises(RequestRejected) as caught:
        served(n, UpdateInstance(4, KEY, InstanceId("10.2.0.2", 80, "DEFAULT"), 2.0, None), 1.0)
    assert caught.value.code is ErrorCode.RESOURCE_EXHAUSTED
    assert "namespace 'public' holds 2 operator overrides" in caught.value.message
    assert len(n.store.overrides) == 2  # nothing changed
    # another namespace drains as before; an override held may be changed or cleared
    served(n, UpdateInstance(5, tenant_b, InstanceId("10.2.0.3", 80, "DEFAULT"), None, False), 1.0)
    served(n, UpdateInstance(6, KEY, InstanceId("10.2.0.0", 80, "DEFAULT"), 3.0, None), 1.0)
    assert n.store.overrides.by_namespace == {"public": 2, "b": 1}
