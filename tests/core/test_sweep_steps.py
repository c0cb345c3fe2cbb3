"""A health pass judged in bounded steps (SweepPass) decides what one whole sweep decides,
and does not punish an instance that beat or registered again while the pass ran."""

from __future__ import annotations

from typing import Any

import pytest

from meshreg.core import health
from meshreg.core.health import HealthPolicy, SweepPass, sweep
from meshreg.core.registry import RegistryNode
from meshreg.core.store import RegistryStore
from meshreg.model import InstanceId, ServiceKey

POLICY = HealthPolicy()  # 5 / 15 / 30 s


def key(k: int) -> ServiceKey:
    return ServiceKey("public", "DEFAULT_GROUP", f"svc-{k}")


def iid(i: int) -> InstanceId:
    return InstanceId(f"10.0.0.{i}", 80, "DEFAULT")


def table() -> RegistryStore:
    """12 services of 5 instances: fresh, silent (unhealthy at 40) and dead (evicted at 40)."""
    store = RegistryStore()
    for k in range(12):
        for i in range(5):
            store.register(key(k), iid(i), 1.0, True, {}, (0.0, 20.0, 35.0)[(k + i) % 3])
    return store


def outcome(store: RegistryStore) -> list[tuple[ServiceKey, list[tuple[InstanceId, bool]]]]:
    return [
        (svc.key, sorted((r.id, r.healthy) for r in svc.instances.values()))
        for svc in sorted(store.records(), key=lambda s: s.key)
    ]


def merged(changes: list[Any]) -> list[tuple[Any, str, list[Any], list[Any]]]:
    """Changes per (service, reason) in order, their instances together."""
    out: dict[tuple[Any, str], tuple[list[Any], list[Any]]] = {}
    for c in changes:
        upserted, removed = out.setdefault((c.key, c.reason), ([], []))
        upserted += [(v.ip, v.port, v.cluster) for v in c.upserted]
        removed += c.removed
    return [(k, r, sorted(u), sorted(d)) for (k, r), (u, d) in out.items()]


@pytest.mark.parametrize("step", [1, 4, 7, 60])
def test_a_pass_in_steps_decides_what_one_sweep_decides(step: int) -> None:
    whole, stepped = table(), table()
    expected = sweep(whole, 40.0, POLICY)
    run = SweepPass(stepped, 40.0, POLICY, step=step)
    steps = 1
    while not run.advance():  # bounded: every step judges at least one service
        steps += 1
    got = run.finish(40.0)
    assert outcome(stepped) == outcome(whole)
    # the same changes, a service's in chunks of ``step`` when it holds more (review83 F2:
    # one change of 40,000 marks stalled the owner and each peer applying it)
    assert merged(got) == merged(expected)
    assert all(len(c.upserted) + len(c.removed) <= max(step, 5) for c in got)
    per_step = -(-step // 5)  # services of 5: a step takes whole services until over budget
    assert steps == -(-12 // per_step)


def test_an_instance_that_beats_or_registers_again_during_the_pass_is_spared() -> None:
    store = RegistryStore()
    store.register(key(0), iid(1), 1.0, True, {}, 20.0)  # silent at 40: would turn unhealthy
    store.register(key(0), iid(2), 1.0, True, {}, 0.0)  # dead at 40: would be evicted
    store.register(key(0), iid(3), 1.0, True, {}, 0.0)  # dead, and stays dead
    run = SweepPass(store, 40.0, POLICY, step=1)
    assert run.advance()
    store.beat(key(0), iid(1), 40.5)  # beats after the pass judged it
    store.deregister(key(0), iid(2), 0, 40.5)
    store.register(key(0), iid(2), 1.0, True, {}, 40.5)  # a new registration of the same id
    changes = run.finish(41.0)
    left = {r.id: r.healthy for r in store.services[key(0)].instances.values()}
    assert left == {iid(1): True, iid(2): True}
    assert [(c.reason, c.removed) for c in changes] == [("evicted", (iid(3),))]


def test_the_node_runs_a_big_pass_over_several_ticks_and_serves_in_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(health, "SWEEP_STEP", 5)
    node = RegistryNode(POLICY, 1, 0.0, "127.0.0.1:7800", detect_stalls=False)
    for k in range(4):
        for i in range(5):
            node.store.register(key(k), iid(i), 1.0, True, {}, 0.0)
    node.store.register(key(9), iid(1), 1.0, True, {}, 0.0)
    wakes = [node.tick(20.0)]  # due at 5 s: every instance is silent for 20 s
    while wakes[-1] == 20.0 and len(wakes) < 50:  # bounded
        if len(wakes) == 2:
            assert node.fast_beat(tuple(key(9)), tuple(iid(1)), 20.0)  # a beat between steps
        wakes.append(node.tick(20.0))
    assert len(wakes) > 2 and wakes[-1] == 25.0  # several steps, then the next check
    healthy = {(s.key, r.id): r.healthy for s in node.store.records() for r in s.instances.values()}
    assert healthy.pop((key(9), iid(1))) is True  # judged before its beat, spared
    assert not any(healthy.values())


# -- the per-service oldest-beat bound ---------------------------------------------------------
def test_a_service_skipped_while_fresh_is_judged_once_an_instance_falls_silent() -> None:
    store = RegistryStore()
    store.register(key(0), iid(1), 1.0, True, {}, 0.0)
    store.register(key(0), iid(2), 1.0, True, {}, 0.0)
    store.beat(key(0), iid(1), 10.0)
    store.beat(key(0), iid(2), 12.0)
    assert sweep(store, 20.0, POLICY) == []  # silent before 5: nobody; the bound is now 10
    assert store.services[key(0)].oldest_beat == 10.0
    store.beat(key(0), iid(2), 24.0)
    (change,) = sweep(store, 26.0, POLICY)  # silent before 11: iid(1), beat at 10
    assert change.reason == "unhealthy" and [v.port for v in change.upserted] == [80]
    assert not store.services[key(0)].instances[iid(1)].healthy


def test_storing_an_older_beat_lowers_the_bound() -> None:
    store = RegistryStore()
    store.register(key(0), iid(1), 1.0, True, {}, 100.0)
    assert sweep(store, 100.0, POLICY) == []
    store.register(key(0), iid(2), 1.0, True, {}, 80.0)  # e.g. an injected clock in a test
    (change,) = sweep(store, 100.0, POLICY)
    assert [v.ip for v in change.upserted] == ["10.0.0.2"]


@pytest.mark.parametrize("seed", range(30))
def test_skipping_fresh_services_never_changes_the_outcome(seed: int) -> None:
    """Random registrations, beats and checks at increasing times, on two tables: one
    checked with the bound, one with the bound disabled (every record read)."""
    import random

    rng = random.Random(seed)
    fast, full = RegistryStore(), RegistryStore()
    now = 0.0
    for _ in range(300):  # bounded
        now += rng.choice((0.5, 1.0, 3.0, 7.0))
        k, i = key(rng.randrange(4)), iid(rng.randrange(6))
        op = rng.random()
        for store in (fast, full):
            if op < 0.25:
                store.register(k, i, 1.0, True, {}, now)
            elif op < 0.8:
                store.beat(k, i, now)
        if op >= 0.8:
            for svc in full.records():
                svc.oldest_beat = -1.0  # below any threshold: read every record
            got = sweep(fast, now, POLICY)
            want = sweep(full, now, POLICY)
            assert [(c.key, c.reason, c.removed) for c in got] == [
                (c.key, c.reason, c.removed) for c in want
            ]
            assert outcome(fast) == outcome(full)
