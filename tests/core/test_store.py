"""RegistryStore: the table, its revisions and what counts as a visible change."""

from __future__ import annotations

import sys

import pytest

from meshreg.core.effects import InstanceView, ServiceChanged
from meshreg.core.store import SHARED_METADATA, RegistryStore, ServiceRecord
from meshreg.model import InstanceId, ServiceKey

SVC = ServiceKey("public", "DEFAULT_GROUP", "orders")
OTHER = ServiceKey("public", "DEFAULT_GROUP", "payments")
A = InstanceId("10.0.0.1", 8080, "DEFAULT")
B = InstanceId("10.0.0.2", 8080, "DEFAULT")
C = InstanceId("10.0.0.3", 9090, "east")


def reg(
    store: RegistryStore,
    iid: InstanceId = A,
    key: ServiceKey = SVC,
    weight: float = 1.0,
    enabled: bool = True,
    metadata: dict[str, str] | None = None,
    now: float = 0.0,
) -> ServiceChanged | None:
    return store.register(key, iid, weight, enabled, dict(metadata or {}), now)


def svc_of(store: RegistryStore, key: ServiceKey = SVC) -> ServiceRecord:
    svc = store.get(key)
    assert svc is not None, f"{key} not in the store"
    return svc


def test_register_new_instance_is_a_change_from_base_zero() -> None:
    store = RegistryStore()
    change = reg(store, metadata={"zone": "a"})
    assert change == ServiceChanged(
        SVC,
        0,
        1,
        (InstanceView("10.0.0.1", 8080, "DEFAULT", 1.0, True, True, {"zone": "a"}),),
        (),
        "registered",
    )
    assert store.revision == 1
    svc = store.get(SVC)
    assert svc is not None and svc.revision == 1
    rec = svc.instances[A]
    assert (rec.registered_at, rec.last_beat, rec.healthy) == (0.0, 0.0, True)


def test_second_instance_chains_base_to_previous_revision() -> None:
    store = RegistryStore()
    first = reg(store, A)
    second = reg(store, B, now=1.0)
    assert first is not None and second is not None
    assert (second.base, second.revision) == (first.revision, first.revision + 1)
    assert [v.ip for v in second.upserted] == ["10.0.0.2"]


def test_revision_is_node_wide_and_services_take_its_value() -> None:
    store = RegistryStore()
    c1 = reg(store, A, SVC)
    c2 = reg(store, A, OTHER)
    c3 = reg(store, B, SVC)
    assert [(c.key, c.base, c.revision) for c in (c1, c2, c3) if c] == [
        (SVC, 0, 1),
        (OTHER, 0, 2),
        (SVC, 1, 3),
    ]
    assert store.revision == 3
    assert svc_of(store).revision == 3
    assert svc_of(store, OTHER).revision == 2


def test_repeat_register_with_equal_fields_is_invisible_but_refreshes_beat() -> None:
    store = RegistryStore()
    reg(store, metadata={"k": "v"}, weight=2.0, now=0.0)
    assert reg(store, metadata={"k": "v"}, weight=2.0, now=7.5) is None
    assert store.revision == 1
    rec = svc_of(store).instances[A]
    assert rec.last_beat == 7.5
    assert rec.registered_at == 0.0


def test_int_weight_equal_to_float_weight_is_no_change() -> None:
    store = RegistryStore()
    reg(store, weight=3.0)
    assert reg(store, weight=3) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("weight", 2.5),
        ("weight", 0.0),
        ("enabled", False),
        ("metadata", {"version": "2"}),
        ("metadata", {}),
    ],
)
def test_changed_field_is_a_visible_update(field: str, value: object) -> None:
    store = RegistryStore()
    reg(store, B)
    reg(store, A, metadata={"version": "1"})
    before = store.revision
    fields: dict[str, object] = {"metadata": {"version": "1"}, field: value}
    change = reg(store, A, now=3.0, **fields)
    assert change is not None
    assert change.reason == "updated"
    assert (change.base, change.revision) == (before, before + 1)
    assert change.removed == ()
    (view,) = change.upserted
    assert getattr(view, field) == value
    assert store.revision == before + 1
    assert svc_of(store).instances[A].last_beat == 3.0


def test_register_heals_an_unhealthy_instance_with_equal_fields() -> None:
    store = RegistryStore()
    reg(store)
    store.set_health(SVC, [A], False)
    change = reg(store, now=20.0)
    assert change is not None
    assert change.upserted[0].healthy is True
    assert svc_of(store).instances[A].healthy is True
    assert change.revision == store.revision == 3


def test_deregister_removes_and_reports() -> None:
    store = RegistryStore()
    reg(store, A)
    reg(store, B)
    change = store.deregister(SVC, A)
    assert change == ServiceChanged(SVC, 2, 3, (), (A,), "deregistered")
    assert list(svc_of(store).instances) == [B]


@pytest.mark.parametrize(
    ("key", "iid"),
    [
        (SVC, B),  # known service, unknown instance
        (SVC, InstanceId("10.0.0.1", 8080, "other-cluster")),  # cluster is part of the id
        (SVC, InstanceId("10.0.0.1", 8081, "DEFAULT")),
        (OTHER, A),  # unknown service
        (ServiceKey("dev", "DEFAULT_GROUP", "orders"), A),  # namespace is part of the key
    ],
)
def test_deregister_of_unknown_instance_is_idempotent(key: ServiceKey, iid: InstanceId) -> None:
    store = RegistryStore()
    reg(store, A)
    assert store.deregister(key, iid) is None
    assert store.revision == 1
    assert list(svc_of(store).instances) == [A]
    assert store.deregister(SVC, A) is not None
    assert store.deregister(SVC, A) is None  # twice: still fine
    assert store.revision == 2


def test_emptied_service_is_dropped_and_recreated_with_higher_revision() -> None:
    store = RegistryStore()
    reg(store, A)
    reg(store, A, OTHER)
    gone = store.deregister(SVC, A)
    assert gone is not None and gone.revision == 3
    assert store.get(SVC) is None
    assert store.service_names("public", None) == [("DEFAULT_GROUP", "payments")]
    again = reg(store, A, now=50.0)
    assert again is not None
    assert again.reason == "registered"
    assert again.revision == 4 > gone.revision
    rec = svc_of(store).instances[A]
    assert rec.registered_at == 50.0


def test_revision_of_missing_service_is_node_wide() -> None:
    store = RegistryStore()
    assert store.revision_of(SVC) == 0
    reg(store, A, SVC)
    reg(store, A, OTHER)
    assert (store.revision_of(SVC), store.revision_of(OTHER)) == (1, 2)
    store.deregister(SVC, A)
    assert store.revision_of(SVC) == 3  # never below the revision of its last change
    reg(store, B, OTHER)
    assert store.revision_of(SVC) == 4
    assert store.revision_of(ServiceKey("x", "y", "z")) == 4


def test_beat_moves_last_beat_only() -> None:
    store = RegistryStore()
    reg(store)
    rec = store.beat(SVC, A, 4.0)
    assert rec is not None and rec.last_beat == 4.0
    assert store.revision == 1


@pytest.mark.parametrize(("key", "iid"), [(SVC, B), (OTHER, A)])
def test_beat_for_unknown_instance_returns_none(key: ServiceKey, iid: InstanceId) -> None:
    store = RegistryStore()
    reg(store, A)
    assert store.beat(key, iid, 9.0) is None
    assert svc_of(store).instances[A].last_beat == 0.0
    assert store.get(OTHER) is None  # a beat never creates a service
    assert store.revision == 1


def test_set_health_is_one_change_for_many_instances() -> None:
    store = RegistryStore()
    for iid in (A, B, C):
        reg(store, iid)
    change = store.set_health(SVC, [A, C], False)
    assert change is not None
    assert change.reason == "unhealthy"
    assert (change.base, change.revision) == (3, 4)
    assert sorted(v.ip for v in change.upserted) == ["10.0.0.1", "10.0.0.3"]
    assert all(not v.healthy for v in change.upserted)
    assert store.instance_count() == (1, 2)
    back = store.set_health(SVC, [A, B], True)  # B already healthy: only A changes
    assert back is not None and back.reason == "recovered"
    assert [v.ip for v in back.upserted] == ["10.0.0.1"]
    assert store.instance_count() == (2, 1)


@pytest.mark.parametrize(
    ("key", "iids", "healthy"),
    [
        (SVC, [A], True),  # already healthy
        (SVC, [B], False),  # unknown instance
        (SVC, [], False),
        (OTHER, [A], False),  # unknown service
    ],
)
def test_set_health_without_effect_is_none(
    key: ServiceKey, iids: list[InstanceId], healthy: bool
) -> None:
    store = RegistryStore()
    reg(store, A)
    assert store.set_health(key, iids, healthy) is None
    assert store.revision == 1


def test_remove_many_is_one_change_and_ignores_unknown() -> None:
    store = RegistryStore()
    reg(store, A)
    reg(store, B)
    reg(store, C)
    change = store.remove(SVC, [A, InstanceId("1.1.1.1", 1, "DEFAULT"), C], "evicted")
    assert change == ServiceChanged(SVC, 3, 4, (), (A, C), "evicted")
    assert store.remove(SVC, [A], "evicted") is None
    assert store.revision == 4


def test_service_names_sorted_filtered_by_namespace_and_group() -> None:
    store = RegistryStore()
    keys = [
        ServiceKey("public", "g2", "b"),
        ServiceKey("public", "g1", "z"),
        ServiceKey("public", "g1", "a"),
        ServiceKey("dev", "g1", "a"),
    ]
    for key in keys:
        reg(store, A, key)
    assert store.service_names("public", None) == [("g1", "a"), ("g1", "z"), ("g2", "b")]
    assert store.service_names("public", "g1") == [("g1", "a"), ("g1", "z")]
    assert store.service_names("dev", None) == [("g1", "a")]
    assert store.service_names("nope", None) == []
    assert store.service_names("public", "g3") == []


def test_views_are_copies() -> None:
    store = RegistryStore()
    change = reg(store, metadata={"k": "v"})
    assert change is not None
    change.upserted[0].metadata["k"] = "mutated"
    assert svc_of(store).instances[A].metadata == {"k": "v"}


def test_records_iterates_a_snapshot() -> None:
    store = RegistryStore()
    reg(store, A, SVC)
    reg(store, A, OTHER)
    seen = []
    for svc in store.records():  # dropping services while iterating is allowed
        seen.append(svc.key)
        store.remove(svc.key, [A], "evicted")
    assert sorted(seen) == sorted([SVC, OTHER])
    assert store.services == {}


# -- memory: what records share (see the store's theory of operation) ------------------
def test_equal_metadata_is_one_dict_per_service() -> None:
    store = RegistryStore()
    reg(store, A, metadata={"zone": "a"})
    reg(store, B, metadata={"zone": "a"})
    reg(store, C, metadata={"zone": "b"})
    reg(store, A, OTHER, metadata={"zone": "a"})
    recs = svc_of(store).instances
    assert recs[A].metadata is recs[B].metadata == {"zone": "a"}
    assert recs[C].metadata == {"zone": "b"} and recs[C].metadata is not recs[A].metadata
    assert svc_of(store, OTHER).instances[A].metadata is not recs[A].metadata  # per service


def test_metadata_change_replaces_the_dict_and_leaves_the_others() -> None:
    store = RegistryStore()
    reg(store, A, metadata={"zone": "a"})
    reg(store, B, metadata={"zone": "a"})
    change = reg(store, A, metadata={"zone": "b"})
    assert change is not None and change.reason == "updated"
    recs = svc_of(store).instances
    assert (recs[A].metadata, recs[B].metadata) == ({"zone": "b"}, {"zone": "a"})
    change = reg(store, A, metadata={"zone": "a"})  # back: shares again
    assert change is not None and recs[A].metadata is recs[B].metadata


def test_metadata_sharing_is_bounded_per_service() -> None:
    store = RegistryStore()
    for k in range(3 * SHARED_METADATA):
        reg(store, InstanceId(f"10.0.1.{k}", 80, "DEFAULT"), metadata={"host": f"h{k}"})
    svc = svc_of(store)
    assert len(svc.metadata_seen) == SHARED_METADATA
    assert [m["host"] for m in svc.metadata_seen] == [
        f"h{k}" for k in range(2 * SHARED_METADATA, 3 * SHARED_METADATA)
    ]
    assert {r.metadata["host"] for r in svc.instances.values()} == {
        f"h{k}" for k in range(3 * SHARED_METADATA)
    }


def test_merged_metadata_is_shared_but_never_the_views_own() -> None:
    store = RegistryStore()
    reg(store, A, metadata={"zone": "a"})
    views = [
        InstanceView("10.0.0.2", 8080, "DEFAULT", 1.0, True, True, {"zone": "a"}, 5),
        InstanceView("10.0.0.3", 9090, "east", 1.0, True, True, {"zone": "c"}, 5),
    ]
    change, *_ = store.merge(SVC, views, (), now=1.0)
    assert change is not None
    recs = svc_of(store).instances
    assert recs[B].metadata is recs[A].metadata
    assert recs[C].metadata == {"zone": "c"} and recs[C].metadata is not views[1].metadata
    views[1].metadata["zone"] = "mutated"
    assert recs[C].metadata == {"zone": "c"}


def test_records_keep_interned_cluster_names_and_one_default_weight() -> None:
    store = RegistryStore()
    cluster = "".join(["ea", "st"])  # a str built at run time, as a decoder makes it
    weight = float("1.0")
    store.register(SVC, InstanceId("10.0.0.9", 80, cluster), weight, True, {}, 0.0)
    store.register(SVC, InstanceId("10.0.0.8", 80, "".join(["ea", "st"])), 1.0, True, {}, 0.0)
    (first, second) = svc_of(store).instances.values()
    assert first.id.cluster is second.id.cluster == "east"
    assert first.weight is second.weight == 1.0
    assert type(first.weight) is float
    # an int weight stays what it was given (no type change on the wire)
    reg(store, C, weight=1)
    assert type(svc_of(store).instances[C].weight) is int


def test_removed_ids_are_the_stored_ones() -> None:
    store = RegistryStore()
    reg(store, A)
    change = store.remove(SVC, [InstanceId("10.0.0.1", 8080, "".join(["DEF", "AULT"]))], "evicted")
    assert change is not None and change.removed == (A,)
    assert change.removed[0].cluster is sys.intern("DEFAULT")
    assert list(store.tombstones[SVC]) == [A]
