"""Quotas on client writes (core/quotas) and the store's running counts behind them."""

from __future__ import annotations

from typing import Any

import pytest
from answers import served, stats_map
from hypothesis import given, settings
from hypothesis import strategies as st

from meshreg.config import load_node_config
from meshreg.core.distro import ClusterPolicy, DistroNode
from meshreg.core.effects import InstanceView
from meshreg.core.health import HealthPolicy
from meshreg.core.quotas import LimitsPolicy
from meshreg.core.registry import RegistryNode
from meshreg.core.store import RegistryStore, metadata_size
from meshreg.core.versions import TAG_BITS
from meshreg.errors import ConfigError, ErrorCode
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.messages import (
    Beat,
    DeregisterInstance,
    RegisterInstance,
    RequestRejected,
    SetService,
    UpdateInstance,
)
from meshreg.wire.peer import ServicePayload

EPOCH = 3


def key(service: str = "orders", namespace: str = "public", group: str = "G") -> ServiceKey:
    return ServiceKey(namespace, group, service)


def iid(n: int = 1) -> InstanceId:
    return InstanceId(f"10.0.0.{n}", 8080, "DEFAULT")


def register(k: ServiceKey, i: InstanceId, metadata: dict[str, str] | None = None) -> Any:
    return RegisterInstance(1, k, i, 1.0, True, dict(metadata or {}))


def node_with(**limits: int) -> RegistryNode:
    return RegistryNode(HealthPolicy(), EPOCH, 0.0, limits=LimitsPolicy(**limits))


def snapshot(node: RegistryNode) -> Any:
    store = node.store
    return (
        {
            k: {i: (r.weight, r.enabled, dict(r.metadata)) for i, r in s.instances.items()}
            for k, s in store.services.items()
        },
        dict(store.settings),
        store.revision,
        store.counts(),
    )


# (limits, writes that fill it, the write over it, the limit named, words in the message)
CASES = [
    (
        {"max_instances_per_service": 2},
        [register(key(), iid(1)), register(key(), iid(2))],
        register(key(), iid(3)),
        "max_instances_per_service",
        ["public/G/orders", "has 2 instances", "max_instances_per_service = 2", "deregister"],
    ),
    (
        {"max_instances": 3},
        [register(key("a"), iid(1)), register(key("b"), iid(1)), register(key("c"), iid(1))],
        register(key("d"), iid(1)),
        "max_instances",
        ["holds 3 instances", "max_instances = 3", "raise [limits] max_instances"],
    ),
    (
        {"max_services_per_namespace": 2},
        [register(key("a"), iid()), SetService(1, key("b"), 0.5, None)],  # settings count
        register(key("c"), iid()),
        "max_services_per_namespace",
        ["namespace 'public' holds 2 services", "G/c", "max_services_per_namespace = 2"],
    ),
    (
        {"max_services_per_namespace": 2},
        [register(key("a"), iid()), register(key("b"), iid())],
        SetService(1, key("c"), 0.5, None),  # settings on an empty service: a new service
        "max_services_per_namespace",
        ["service_set: quota reached", "namespace 'public'"],
    ),
    (
        {"max_namespaces": 2},
        [register(key(namespace="n1"), iid()), register(key(namespace="n2"), iid())],
        register(key(namespace="n3"), iid()),
        "max_namespaces",
        ["holds 2 namespaces", "'n3'", "max_namespaces = 2"],
    ),
    (
        {"max_services": 2},
        [register(key("a", "n1"), iid()), register(key("b", "n2"), iid())],
        register(key("c", "n3"), iid()),
        "max_services",
        ["holds 2 services", "max_services = 2", "n3/G/c"],
    ),
    (
        {"max_metadata_bytes": 20, "max_metadata_bytes_per_namespace": 20},
        [register(key(), iid(1), {"zone": "abcdefgh"})],  # 12 bytes
        register(key(), iid(2), {"zone": "abcdefgh"}),  # 12 more: 24 > 20
        "max_metadata_bytes",
        ["totals 12 bytes", "max_metadata_bytes = 20", "would add 12"],
    ),
    (
        {"max_metadata_bytes": 20, "max_metadata_bytes_per_namespace": 20},
        [register(key(), iid(1), {"zone": "a"})],
        register(key(), iid(1), {"zone": "a" * 20}),  # the same instance, more metadata
        "max_metadata_bytes",
        ["instance 10.0.0.1:8080", "would add 19"],
    ),
    (
        {"max_metadata_bytes": 20, "max_metadata_bytes_per_namespace": 20},
        [register(key(), iid(1), {"zone": "abcdefgh"})],
        SetService(1, key(), None, {"owner": "team-x"}),  # 11 more: 23 > 20
        "max_metadata_bytes",
        ["service_set", "the service metadata", "would add 11"],
    ),
    (
        {"max_metadata_bytes": 10, "max_metadata_bytes_per_namespace": 10},
        [],
        register(key(), iid(), {"é": "ü" * 3}),  # UTF-8: 2 + 6 = 8 bytes, fits
        None,
        [],
    ),
    (  # review23 F3: one namespace takes at most its share (a quarter by default)
        {"max_metadata_bytes": 48},
        [register(key(), iid(1), {"zone": "abcdefgh"})],  # 12 bytes: all of public's share
        register(key(), iid(2), {"z": "1"}),  # 2 more in the same namespace
        "max_metadata_bytes_per_namespace",
        ["namespace 'public' totals 12 bytes", "= 12: max_metadata_bytes // 4", "would add 2"],
    ),
    (  # ... another namespace is not touched by it
        {"max_metadata_bytes": 48},
        [register(key(), iid(1), {"zone": "abcdefgh"})],
        register(key(namespace="tenant-b"), iid(2), {"zone": "abcdefgh"}),
        None,
        [],
    ),
    (  # filled up to the limit exactly: the last one fits
        {"max_instances_per_service": 2},
        [register(key(), iid(1))],
        register(key(), iid(2)),
        None,
        [],
    ),
]


@pytest.mark.parametrize(("limits", "fill", "write", "limit", "words"), CASES)
def test_a_write_over_a_quota_is_refused_and_changes_nothing(
    limits: dict[str, int], fill: list[Any], write: Any, limit: str | None, words: list[str]
) -> None:
    node = node_with(**limits)
    for req in fill:
        served(node, req, 0.0)
    node.take_effects()
    before = snapshot(node)
    if limit is None:
        served(node, write, 1.0)
        assert node.quotas.rejected == {}
        return
    with pytest.raises(RequestRejected) as caught:
        served(node, write, 1.0)
    exc = caught.value
    assert exc.code is ErrorCode.RESOURCE_EXHAUSTED and exc.op == write.op
    for word in words:
        assert word in exc.message, exc.message
    assert f"raise [limits] {limit} in the node config" in exc.message
    assert snapshot(node) == before  # a rejected write changes nothing
    assert node.take_effects() == []
    stats = stats_map(node, 1.0)
    assert stats["rejected_quota"] == {limit: 1}
    assert stats["limits"][limit] == limits.get(limit, 0)  # (0: a share of another limit)


def test_beats_deregistrations_updates_and_repeats_are_never_refused() -> None:
    node = node_with(
        max_instances=1,
        max_metadata_bytes=8,
        max_metadata_bytes_per_namespace=8,
        max_instances_per_service=1,
    )
    k, i = key(), iid()
    served(node, register(k, i, {"z": "1234567"}), 0.0)  # 8 bytes: exactly full
    served(node, register(k, i, {"z": "1234567"}), 1.0)  # a repeat: only a beat
    served(node, register(k, i, {"z": "7654321"}), 1.5)  # same size: grows nothing
    served(node, Beat(1, k, i), 2.0)
    served(node, UpdateInstance(1, k, i, 5.0, False), 3.0)
    assert node.fast_beat(tuple(k), tuple(i), 4.0)  # type: ignore[arg-type]
    served(node, DeregisterInstance(1, k, i), 5.0)
    served(node, DeregisterInstance(1, k, iid(9)), 5.0)  # unknown: still a tombstone
    assert node.quotas.rejected == {}
    served(node, register(k, i, {"z": "1234567"}), 6.0)  # room again after deregistering
    assert node.store.instance_total == 1 and node.store.metadata_bytes == 8


def test_replicated_state_is_never_refused() -> None:
    node = DistroNode(
        HealthPolicy(),
        ClusterPolicy(),
        "n1",
        "10.0.0.1:7800",
        ["10.0.0.2:7800"],
        EPOCH,
        0.0,
        limits=LimitsPolicy(max_instances=1, max_namespaces=1),
    )
    stamp = 5 << TAG_BITS
    for n in range(3):
        view = InstanceView(f"10.0.1.{n}", 80, "DEFAULT", 1.0, True, True, {}, stamp, stamp)
        node._merge(ServicePayload(key(namespace=f"ns{n}"), (view,), (), None), 1.0)
    assert node.store.instance_total == 3 and len(node.store.namespaces) == 3
    with pytest.raises(RequestRejected):  # a client's write is still refused
        served(node, register(key(namespace="ns9"), iid()), 2.0, forwarded=True)


def test_stats_show_usage_with_empty_services_tombstones_and_metadata() -> None:
    node = node_with()
    served(node, register(key("a"), iid(1), {"zone": "eu"}), 0.0)
    served(node, register(key("a"), iid(2)), 0.0)
    served(node, SetService(1, key("empty", "dev"), 0.5, {"o": "x"}), 0.0)
    served(node, DeregisterInstance(1, key("a"), iid(2)), 1.0)
    usage = stats_map(node, 1.0)["usage"]
    assert usage == {
        "namespaces": 2,
        "services": 2,
        "empty_services": 1,
        "instances": 1,
        "metadata_bytes": 6 + 2,
        "tombstones": 1,
        "tombstones_dropped": 0,
        "overrides": 0,
        "overrides_expired": 0,
        "overrides_cleared": 0,
    }
    assert stats_map(node, 1.0)["services"] == 1  # with instances, as before


def test_limits_policy_validates_and_loads_from_toml(tmp_path: Any) -> None:
    assert LimitsPolicy().max_instances == 2_000_000
    with pytest.raises(ConfigError, match=r"\[limits\] max_instances must be a whole number >= 1"):
        LimitsPolicy(max_instances=0)
    path = tmp_path / "node.toml"
    path.write_text("[limits]\nmax_instances = 5\nmax_tombstones = 7\n")
    cfg = load_node_config(path)
    assert (cfg.limits.max_instances, cfg.limits.max_tombstones) == (5, 7)
    assert cfg.limits.max_namespaces == 10_000
    for text, error in (
        ("[limits]\nmax_instances = 1.5\n", "max_instances must be a whole number"),
        ("[limits]\nmax_instances = true\n", "max_instances must be a whole number"),
        ("[limits]\nmax_instances = -1\n", "max_instances must be a whole number >= 1"),
        ("[limits]\nmax_bananas = 1\n", "unknown key(s) ['max_bananas'] in [limits]"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_node_config(path)
        assert error in str(caught.value)


# -- the running counts agree with a recount, whatever happens ----------------------------------
KEYS = [ServiceKey(ns, "G", s) for ns in ("n1", "n2") for s in ("a", "b")]
IIDS = [InstanceId(f"10.0.0.{n}", 80, "DEFAULT") for n in range(3)]
META = [{}, {"z": "1"}, {"zone": "é-east"}]

op = st.one_of(
    st.tuples(
        st.just("register"), st.sampled_from(KEYS), st.sampled_from(IIDS), st.sampled_from(META)
    ),
    st.tuples(st.just("deregister"), st.sampled_from(KEYS), st.sampled_from(IIDS)),
    st.tuples(st.just("mark"), st.sampled_from(KEYS), st.sampled_from(IIDS), st.booleans()),
    st.tuples(st.just("evict"), st.sampled_from(KEYS), st.sampled_from(IIDS)),
    st.tuples(st.just("settings"), st.sampled_from(KEYS), st.sampled_from(META)),
    st.tuples(
        st.just("merge"),
        st.sampled_from(KEYS),
        st.sampled_from(IIDS),
        st.sampled_from(META),
        st.integers(1, 30),
        st.integers(0, 30),
        st.booleans(),
    ),
    st.tuples(
        st.just("merge_removal"),
        st.sampled_from(KEYS),
        st.sampled_from(IIDS),
        st.integers(0, 40),
        st.integers(0, 40),
    ),
    st.tuples(st.just("purge"), st.integers(0, 5)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=40), st.integers(1, 4))
def test_running_counts_match_a_recount(script: list[tuple[Any, ...]], cap: int) -> None:
    store = RegistryStore(max_tombstones=cap)
    for version, item in enumerate(script, start=1):
        now = float(version)
        kind, k = item[0], item[1]
        if kind == "register":
            store.register(k, item[2], 1.0, True, dict(item[3]), now, version)
        elif kind == "deregister":
            if store.deregister(k, item[2], version, now) is None:
                store.remember_removal(k, item[2], version, now)
        elif kind == "mark":
            store.set_health(k, (item[2],), item[3], version)
        elif kind == "evict":
            store.remove(k, (item[2],), "evicted", version, now)
        elif kind == "settings":
            store.set_service(k, 0.5, dict(item[2]), version)
        elif kind == "merge":
            _, _, i, meta, v, down, healthy = item
            view = InstanceView(i.ip, i.port, i.cluster, 1.0, True, healthy, dict(meta), v, v, down)
            store.merge(k, (view,), (), now)
        elif kind == "merge_removal":
            store.merge(k, (), ((item[2], item[3], item[4]),), now)
        else:
            store.purge_tombstones(now, float(item[1]))
        assert store.counts() == store.recount(), item
        assert store.tombstone_count <= cap
    assert store.metadata_bytes == sum(
        metadata_size(r.metadata) for s in store.services.values() for r in s.instances.values()
    ) + sum(metadata_size(s[2]) for s in store.settings.values())
