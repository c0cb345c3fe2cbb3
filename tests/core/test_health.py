"""Health rules: HealthPolicy validation, sweep thresholds and the 5/15/30 s timeline."""

from __future__ import annotations

import math

import pytest
from answers import served_map

from meshreg.core.effects import ServiceChanged
from meshreg.core.health import HealthPolicy, sweep
from meshreg.core.registry import RegistryNode
from meshreg.core.store import RegistryStore
from meshreg.errors import ConfigError
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.messages import Beat, RegisterInstance

SVC = ServiceKey("public", "DEFAULT_GROUP", "orders")
OTHER = ServiceKey("public", "DEFAULT_GROUP", "payments")
A = InstanceId("10.0.0.1", 8080, "DEFAULT")
B = InstanceId("10.0.0.2", 8080, "DEFAULT")
C = InstanceId("10.0.0.3", 8080, "DEFAULT")


# -- HealthPolicy ----------------------------------------------------------------------------
def test_default_policy_is_5_15_30() -> None:
    p = HealthPolicy()
    assert (p.check_interval, p.unhealthy_after, p.evict_after) == (5.0, 15.0, 30.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"check_interval": 0.0}, "check_interval"),
        ({"check_interval": -1.0}, "check_interval"),
        ({"check_interval": math.nan}, "check_interval"),
        ({"unhealthy_after": 0.0}, "unhealthy_after"),
        ({"unhealthy_after": -5.0}, "unhealthy_after"),
        ({"unhealthy_after": math.nan}, "unhealthy_after"),
        ({"evict_after": 14.9}, "evict_after"),
        ({"unhealthy_after": 31.0}, "evict_after"),
        ({"unhealthy_after": 2.0, "evict_after": 1.0}, "evict_after"),
        ({"evict_after": math.nan}, "evict_after"),
    ],
)
def test_invalid_policy_raises_config_error(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        HealthPolicy(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"evict_after": 15.0},  # equal is allowed: unhealthy and evicted at once
        {"check_interval": 0.1, "unhealthy_after": 0.6, "evict_after": 1.2},
        {"check_interval": 60.0},
    ],
)
def test_valid_policies(kwargs: dict[str, float]) -> None:
    HealthPolicy(**kwargs)


# -- sweep: thresholds --------------------------------------------------------------------------
def _store_with(last_beat: float, healthy: bool = True) -> RegistryStore:
    store = RegistryStore()
    store.register(SVC, A, 1.0, True, {}, last_beat)
    if not healthy:
        store.set_health(SVC, [A], False)
    return store


def _state(store: RegistryStore) -> str:
    svc = store.get(SVC)
    if svc is None or A not in svc.instances:
        return "evicted"
    return "healthy" if svc.instances[A].healthy else "unhealthy"


@pytest.mark.parametrize(
    ("silent", "healthy_before", "expected", "reason"),
    [
        (0.0, True, "healthy", None),
        (14.9, True, "healthy", None),
        (14.999, True, "healthy", None),
        (15.0, True, "unhealthy", "unhealthy"),
        (15.1, True, "unhealthy", "unhealthy"),
        (29.9, True, "unhealthy", "unhealthy"),
        (29.9, False, "unhealthy", None),  # already unhealthy: nothing new to say
        (30.0, False, "evicted", "evicted"),
        (30.0, True, "evicted", "evicted"),  # a late sweep evicts directly
        (1000.0, True, "evicted", "evicted"),
    ],
)
def test_sweep_thresholds_with_default_policy(
    silent: float, healthy_before: bool, expected: str, reason: str | None
) -> None:
    now = 100.0
    store = _store_with(now - silent, healthy_before)
    revision = store.revision
    changes = sweep(store, now, HealthPolicy())
    assert _state(store) == expected
    assert [c.reason for c in changes] == ([reason] if reason else [])
    assert store.revision == revision + len(changes)


def test_sweep_groups_one_change_per_service_and_kind() -> None:
    store = RegistryStore()
    store.register(SVC, A, 1.0, True, {}, 0.0)  # -> unhealthy
    store.register(SVC, B, 1.0, True, {}, 2.0)  # -> unhealthy
    store.register(SVC, C, 1.0, True, {}, 19.0)  # fine
    store.register(OTHER, A, 1.0, True, {}, -15.0)  # -> evicted (service dropped)
    assert store.revision == 4
    changes = sweep(store, 17.0, HealthPolicy())
    by_key = {c.key: c for c in changes}
    assert set(by_key) == {SVC, OTHER}
    mark = by_key[SVC]
    assert mark.reason == "unhealthy"
    assert sorted(v.ip for v in mark.upserted) == ["10.0.0.1", "10.0.0.2"]
    assert by_key[OTHER] == ServiceChanged(OTHER, 4, by_key[OTHER].revision, (), (A,), "evicted")
    assert sorted(c.revision for c in changes) == [5, 6]
    assert store.get(OTHER) is None
    assert store.instance_count() == (1, 2)


def test_sweep_marks_and_evicts_in_one_service_as_two_contiguous_changes() -> None:
    store = RegistryStore()
    store.register(SVC, A, 1.0, True, {}, 0.0)  # silent 30 at t=30 -> evicted
    store.register(SVC, B, 1.0, True, {}, 10.0)  # silent 20 -> unhealthy
    store.register(SVC, C, 1.0, True, {}, 20.0)  # silent 10 -> healthy
    mark, evict = sweep(store, 30.0, HealthPolicy())
    assert (mark.reason, mark.base, mark.revision) == ("unhealthy", 3, 4)
    assert [v.ip for v in mark.upserted] == ["10.0.0.2"]
    assert (evict.reason, evict.base, evict.revision, evict.removed) == ("evicted", 4, 5, (A,))


def test_sweep_of_empty_or_fresh_store_changes_nothing() -> None:
    assert sweep(RegistryStore(), 1e9, HealthPolicy()) == []
    store = _store_with(10.0)
    assert sweep(store, 10.0, HealthPolicy()) == []
    assert store.revision == 1


def test_sweep_uses_the_policy_thresholds() -> None:
    policy = HealthPolicy(check_interval=0.1, unhealthy_after=0.6, evict_after=1.2)
    store = _store_with(0.0)
    assert sweep(store, 0.59, policy) == []
    assert [c.reason for c in sweep(store, 0.6, policy)] == ["unhealthy"]
    assert sweep(store, 1.19, policy) == []
    assert [c.reason for c in sweep(store, 1.2, policy)] == ["evicted"]


# -- the node's timeline: tick every 5 s, unhealthy at 15 s, evicted at 30 s ----------------------
def _register(node: RegistryNode, now: float, iid: InstanceId = A) -> None:
    served_map(node, RegisterInstance(1, SVC, iid, 1.0, True, {}), now)


def _beat(node: RegistryNode, now: float, iid: InstanceId = A) -> None:
    served_map(node, Beat(2, SVC, iid), now)


def _timeline(beats: list[float], until: float) -> dict[float, str]:
    """Register at 0, beat at ``beats``, tick every 5 s; state after each tick."""
    node = RegistryNode(HealthPolicy(), epoch=1, now=0.0, detect_stalls=False)
    _register(node, 0.0)
    pending = sorted(beats)
    states: dict[float, str] = {}
    t = 5.0
    while t <= until:
        while pending and pending[0] <= t:
            when = pending.pop(0)
            if _state(node.store) != "evicted":
                _beat(node, when)
        assert node.tick(t) == t + 5.0
        states[t] = _state(node.store)
        t += 5.0
    return states


@pytest.mark.parametrize(
    ("beats", "expected"),
    [
        (
            [],
            {
                5: "healthy",
                10: "healthy",
                15: "unhealthy",
                20: "unhealthy",
                25: "unhealthy",
                30: "evicted",
                35: "evicted",
            },
        ),
        (
            [14.9],  # a beat just before the 15 s check keeps it healthy
            {15: "healthy", 25: "healthy", 30: "unhealthy", 40: "unhealthy", 45: "evicted"},
        ),
        (
            [4.0, 9.0, 14.0, 19.0, 24.0, 29.0, 34.0],  # regular 5 s beats
            {t: "healthy" for t in (5, 10, 15, 20, 25, 30, 35, 40)},
        ),
        (
            [20.0],  # unhealthy at 15, the beat heals it, silent again from 20
            {15: "unhealthy", 20: "healthy", 30: "healthy", 35: "unhealthy", 50: "evicted"},
        ),
        (
            [29.9],  # last-second rescue from eviction
            {15: "unhealthy", 30: "healthy", 40: "healthy", 45: "unhealthy", 60: "evicted"},
        ),
    ],
    ids=["silent", "beat-14.9", "regular", "heal-at-20", "rescue-at-29.9"],
)
def test_timeline_with_default_policy(beats: list[float], expected: dict[int, str]) -> None:
    states = _timeline(beats, until=max(expected))
    assert {t: states[float(t)] for t in expected} == expected


def test_tick_before_due_does_nothing_and_returns_next_check() -> None:
    node = RegistryNode(HealthPolicy(), epoch=1, now=100.0, detect_stalls=False)
    _register(node, 100.0)
    node.take_effects()
    assert node.tick(104.99) == 105.0
    assert node.tick(200.0) == 205.0  # late: one sweep, re-anchored on now
    assert _state(node.store) == "evicted"
    (effect,) = node.take_effects()
    assert isinstance(effect, ServiceChanged) and effect.reason == "evicted"
    assert node.tick(204.0) == 205.0


def test_late_tick_marks_unhealthy_without_catching_up() -> None:
    node = RegistryNode(HealthPolicy(), epoch=1, now=0.0, detect_stalls=False)
    _register(node, 0.0)
    assert node.tick(17.0) == 22.0
    assert _state(node.store) == "unhealthy"
    assert node.tick(21.9) == 22.0  # not due yet
    assert node.tick(22.0) == 27.0
    assert node.tick(30.0) == 35.0  # due since 27: sweeps at 30, next at 35
    assert _state(node.store) == "evicted"
