"""Tombstones are capped (oldest dropped first), purged by age, and counted in ``stats``."""

from __future__ import annotations

from answers import served, stats_map

from meshreg.core.health import HealthPolicy
from meshreg.core.quotas import LimitsPolicy
from meshreg.core.registry import TOMBSTONE_TTL, RegistryNode
from meshreg.core.store import RegistryStore
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.messages import DeregisterInstance, RegisterInstance

SVC = ServiceKey("public", "G", "orders")


def iid(n: int) -> InstanceId:
    return InstanceId(f"10.0.{n // 250}.{n % 250}", 80, "DEFAULT")


def churn(store: RegistryStore, n: int, start: float = 0.0) -> None:
    """n instances registered and deregistered, one per second: n tombstones."""
    for i in range(n):
        now = start + i
        store.register(SVC, iid(i), 1.0, True, {}, now, version=2 * i + 1)
        store.deregister(SVC, iid(i), version=2 * i + 2, now=now)


def test_the_cap_drops_the_oldest_first() -> None:
    store = RegistryStore(max_tombstones=3)
    churn(store, 5)
    assert store.tombstone_count == 3 and store.tombstones_dropped == 2
    assert sorted(store.tombstones[SVC]) == sorted([iid(2), iid(3), iid(4)])


def test_a_rewritten_tombstone_is_young_again() -> None:
    store = RegistryStore(max_tombstones=3)
    churn(store, 3)  # tombstones of 0, 1, 2 at t = 0, 1, 2
    store.remember_removal(SVC, iid(0), version=100, now=10.0)  # 0's is rewritten at t = 10
    store.register(SVC, iid(7), 1.0, True, {}, 11.0, version=101)
    store.deregister(SVC, iid(7), version=102, now=11.0)
    assert sorted(store.tombstones[SVC]) == sorted([iid(0), iid(2), iid(7)])  # 1 was oldest


def test_a_registration_again_forgets_its_tombstone_and_frees_a_place() -> None:
    store = RegistryStore(max_tombstones=2)
    churn(store, 2)
    store.register(SVC, iid(0), 1.0, True, {}, 5.0, version=50)
    assert store.tombstone_count == 1
    store.deregister(SVC, iid(5), version=51, now=6.0)  # not held: remembered anyway
    store.remember_removal(SVC, iid(5), version=51, now=6.0)
    assert store.tombstone_count == 2 and store.tombstones_dropped == 0


def test_purge_by_age_costs_what_it_purges_and_keeps_the_young() -> None:
    store = RegistryStore()
    churn(store, 10)  # tombstones at t = 0..9
    assert store.purge_tombstones(now=605.0, ttl=600.0) == 6  # t <= 5
    assert store.tombstone_count == 4 and sorted(store.tombstones[SVC]) == sorted(
        iid(i) for i in range(6, 10)
    )
    assert store.purge_tombstones(now=700.0, ttl=600.0) == 4
    assert store.tombstones == {} and store.tombstone_count == 0


def test_stale_order_entries_are_compacted() -> None:
    store = RegistryStore()
    for t in range(3000):  # the same instance churned: one tombstone, many writes
        store.register(SVC, iid(1), 1.0, True, {}, float(t), version=2 * t + 1)
        store.deregister(SVC, iid(1), version=2 * t + 2, now=float(t))
    assert store.tombstone_count == 1
    assert len(store._tombstone_order) <= 2 * 1 + 1024 + 1


def test_the_node_caps_tombstones_from_its_limits_and_shows_them() -> None:
    node = RegistryNode(HealthPolicy(), 1, 0.0, limits=LimitsPolicy(max_tombstones=10))
    for i in range(25):
        inst = iid(i)
        served(node, RegisterInstance(1, SVC, inst, 1.0, True, {}), float(i))
        served(node, DeregisterInstance(1, SVC, inst), float(i))
    usage = stats_map(node, 30.0)["usage"]
    assert (usage["tombstones"], usage["tombstones_dropped"]) == (10, 15)
    node.tick(30.0 + TOMBSTONE_TTL)  # a sweep purges them by age
    assert stats_map(node, 31.0 + TOMBSTONE_TTL)["usage"]["tombstones"] == 0
