"""A large service's rows kept between ``instances`` reads (core/instance_views; review52
F3): never stale.  Seeded sequences of every kind of change a read shows (registrations,
deregistrations, health marks by the clock, recovered beats, operator overrides, the
protection threshold, metadata) on a service above ``MIN_ROWS``, each followed by reads
of both kinds, compared with a list built afresh; and the packed reply is byte for byte
what packing the map gives (wire/result_maps ``instances_packed``)."""

from __future__ import annotations

import random

import msgpack
import pytest

from meshreg.core.health import HealthPolicy
from meshreg.core.instance_views import MIN_ROWS, InstanceViews
from meshreg.core.registry import RegistryNode
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.messages import (
    Beat,
    DeregisterInstance,
    RegisterInstance,
    RequestRejected,
    SetService,
    UpdateInstance,
)
from meshreg.wire.replies import encode_ok
from meshreg.wire.result_maps import instances_map

SVC = ServiceKey("public", "DEFAULT_GROUP", "big")
N = MIN_ROWS + 44


def iid(i: int) -> InstanceId:
    return InstanceId(f"10.0.{i >> 8}.{i & 255}", 8080, "DEFAULT")


def fresh(node: RegistryNode, healthy_only: bool) -> tuple[bool, tuple[object, ...]]:
    svc = node.store.get(SVC)
    assert svc is not None
    threshold = node.store.service_settings(SVC)[0]
    return node._instance_rows(svc, SVC, healthy_only, threshold)


@pytest.mark.parametrize("seed", range(6))
def test_kept_rows_always_equal_a_fresh_build(seed: int) -> None:
    rng = random.Random(seed)
    node = RegistryNode(HealthPolicy(), 1, 0.0, detect_stalls=False)
    now, req = 0.0, 0
    for i in range(N):
        req += 1
        node.handle(RegisterInstance(req, SVC, iid(i), 1.0, True, {"v": "1"}), now)
    changes = 0
    for step in range(120):
        for healthy_only in (False, True):  # read (kept from here on), then change
            result = node.instances_result(SVC, healthy_only, now)
            assert (result.protected, result.instances) == fresh(node, healthy_only), step
            packed = encode_ok(7, result)
            reference = {"v": 1, "id": 7, "ok": True, "result": instances_map(result)}
            assert packed == msgpack.packb(reference), step
        req += 1
        kind = rng.choice(("register", "deregister", "tick", "beat", "override", "clear",
                           "threshold", "metadata", "nothing"))  # fmt: skip
        i = rng.randrange(N + 20)
        try:
            if kind == "register":
                node.handle(RegisterInstance(req, SVC, iid(i), float(rng.randint(1, 9)), True,
                                             {"v": str(rng.randint(1, 3))}), now)  # fmt: skip
            elif kind == "deregister":
                node.handle(DeregisterInstance(req, SVC, iid(i)), now)
            elif kind == "tick":  # a few silent ones turn unhealthy, then go
                silent = set(rng.sample(range(N + 20), 8))
                for j in range(N + 20):
                    if j not in silent and node.holds(SVC, iid(j)):
                        req += 1
                        node.handle(Beat(req, SVC, iid(j)), now)
                now += rng.choice((1.0, 6.0, 16.0))
                node.tick(now)
            elif kind == "beat":
                node.handle(Beat(req, SVC, iid(i)), now)
            elif kind == "override":
                node.handle(UpdateInstance(req, SVC, iid(i), rng.choice((None, 0.5, 3.0)),
                                           rng.choice((None, False, True))), now)  # fmt: skip
            elif kind == "clear":
                node.handle(UpdateInstance(req, SVC, iid(i), None, None, clear=True), now)
            elif kind == "threshold":
                node.handle(SetService(req, SVC, rng.choice((0.0, 0.5, 0.95)), None), now)
            elif kind == "metadata":
                node.handle(SetService(req, SVC, None, {"owner": str(step)}), now)
            changes += 1
        except RequestRejected:
            pass  # (an instance not held: nothing changed)
        node.take_effects()
    assert node.views.hits > 0 and changes > 50


def test_the_kept_rows_are_bounded_and_the_least_recently_read_go_first() -> None:
    views = InstanceViews(max_rows=3 * MIN_ROWS)
    keys = [ServiceKey("public", "g", f"s{i}") for i in range(4)]
    rows = tuple((f"10.0.0.{i}", 1, "DEFAULT", 1.0, True, True, {}) for i in range(MIN_ROWS))
    for k in keys[:3]:
        views.put(k, False, 1, False, rows)
    assert views.get(keys[0], False, 1) is not None  # read: now the most recent
    views.put(keys[3], False, 1, False, rows)  # over the bound: the oldest read goes
    assert views.rows == 3 * MIN_ROWS and len(views) == 3
    assert views.get(keys[1], False, 1) is None
    assert views.get(keys[0], False, 1) is not None
    assert views.get(keys[0], False, 2) is None  # another revision: not kept
    big = rows * 4  # above the bound: not kept, and the older list of it goes (stale)
    views.put(keys[0], False, 2, False, big)
    assert views.get(keys[0], False, 1) is None and views.rows == 2 * MIN_ROWS


def test_the_packed_lists_are_bounded_and_one_too_large_to_keep_is_not_packed_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wire's packed arrays (``instances_packed``) stay within their bound, the
    rows they hold counted too; a list the core does not keep (above ``MAX_ROWS``) is
    not kept packed either (it would push out the useful ones, for nothing)."""
    from meshreg.core.results import InstancesResult
    from meshreg.wire import result_maps

    monkeypatch.setattr(result_maps, "_packed_rows", type(result_maps._packed_rows)())
    monkeypatch.setattr(result_maps, "_packed_bytes", [0])
    monkeypatch.setattr(result_maps, "MAX_ROWS", 2 * MIN_ROWS)

    def result(n: int, tag: str) -> InstancesResult:
        rows = tuple((f"10.{tag}.{i >> 8}.{i & 255}", 1, "DEFAULT", 1.0, True, True, {})
                     for i in range(n))  # fmt: skip
        return InstancesResult(SVC, 1, 1, 0.0, False, {}, rows)

    one = result(MIN_ROWS, "1")
    packed = result_maps.instances_packed(one)
    assert packed == msgpack.packb(result_maps.instances_map(one))
    first = result_maps.packed_stats()
    assert first["packed"] == 1 and 0 < first["packed_bytes"] < len(packed), first
    result_maps.instances_packed(result(3 * MIN_ROWS, "2"))  # above MAX_ROWS: not kept
    assert result_maps.packed_stats()["packed"] == 1
    size = result_maps.packed_stats()["packed_bytes"]
    monkeypatch.setattr(result_maps, "PACKED_ROWS_BYTES", 5 * size)  # room for two
    for tag in "345":
        result_maps.instances_packed(result(MIN_ROWS, tag))
    stats = result_maps.packed_stats()
    assert stats["packed"] == 2 and 2 * stats["packed_bytes"] <= 5 * size, stats
