"""The per-service digest is kept up to date incrementally (core/digests): after any
sequence of changes - registrations, batches, updates, marks, refreshes, removals,
replicated merges, settings - it equals the digest computed from scratch, and two stores
holding the same records (reached in any order) have equal digests."""

from __future__ import annotations

import random
from typing import Any

import pytest
from helpers import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from meshreg.core import store as store_module
from meshreg.core.digests import digest_from_scratch, record_digest, service_digest
from meshreg.core.effects import InstanceView
from meshreg.core.store import RegistryStore
from meshreg.model import InstanceId, ServiceKey

KEYS = [ServiceKey("public", "DEFAULT_GROUP", f"svc{k}") for k in range(3)]
SESSIONS = [None, "a" * 32, "b" * 32]
IPS = 8


def iid(i: int) -> InstanceId:
    return InstanceId(f"10.0.0.{i + 1}", 80, "DEFAULT")


_key = st.integers(0, len(KEYS) - 1)
_ip = st.integers(0, IPS - 1)
_ips = st.lists(_ip, min_size=1, max_size=4)
_stamp = st.integers(0, 40)
_ops = st.one_of(
    st.tuples(st.just("register"), _key, _ip, st.sampled_from([1.0, 2.0]), st.integers(0, 2)),
    st.tuples(st.just("batch"), st.lists(st.tuples(_key, _ip, st.sampled_from([1.0, 3.0])))),
    st.tuples(st.just("update"), _key, _ip, st.sampled_from([0.5, 1.0, 4.0])),
    st.tuples(st.just("health"), _key, _ips, st.booleans()),
    st.tuples(st.just("refresh"), _key, _ip),
    st.tuples(st.just("deregister"), _key, _ip),
    st.tuples(st.just("evict"), _key, _ips),
    st.tuples(
        st.just("merge"),
        _key,
        st.lists(st.tuples(_ip, _stamp, _stamp, _stamp, st.integers(0, 2)), max_size=4),
        st.lists(st.tuples(_ip, _stamp, _stamp), max_size=2),
    ),
    st.tuples(st.just("settings"), _key),
    st.just(("digest",)),
)


def records(store: RegistryStore) -> dict[ServiceKey, set[tuple[Any, ...]]]:
    """What a digest covers: each record's id and stamps, per service."""
    return {
        key: {(r.id, r.version, r.alive, r.down) for r in svc.instances.values()}
        for key, svc in store.services.items()
    }


def check(store: RegistryStore) -> None:
    for key, svc in store.services.items():
        version = store.settings.get(key, (0.0, 0, {}))[1]
        assert service_digest(svc, version) == digest_from_scratch(svc, version), key
        assert service_digest(svc, version) == digest_from_scratch(svc, version)  # cached


def apply(store: RegistryStore, op: tuple[Any, ...], clock: list[int]) -> None:
    clock[0] += 50  # stamps grow: each write newer than the merges' stamps so far
    ver, now = clock[0], clock[0] / 100
    kind = op[0]
    if kind == "register":
        _, k, i, weight, s = op
        store.register(KEYS[k], iid(i), weight, True, {}, now, ver, SESSIONS[s])
    elif kind == "batch":
        store.hold_changes()
        for n, (k, i, weight) in enumerate(op[1]):
            store.register(KEYS[k], iid(i), weight, True, {}, now, ver + n)
        store.release_changes()
        clock[0] += len(op[1])
    elif kind == "update":
        _, k, i, weight = op
        if store.holds(KEYS[k], iid(i)):
            store.update(KEYS[k], iid(i), weight, None, ver)
    elif kind == "health":
        _, k, ips, healthy = op
        store.set_health(KEYS[k], [iid(i) for i in ips], healthy, ver, lambda r: ver - 1)
    elif kind == "refresh":
        _, k, i = op
        svc = store.services.get(KEYS[k])
        if svc is not None and iid(i) in svc.instances:
            store.refresh(KEYS[k], svc.instances[iid(i)], ver)
    elif kind == "deregister":
        store.deregister(KEYS[op[1]], iid(op[2]), ver, now)
    elif kind == "evict":
        store.remove(KEYS[op[1]], [iid(i) for i in op[2]], "evicted", 0, now)
    elif kind == "merge":
        _, k, ups, rms = op
        views = []
        for i, v, a, d, s in ups:
            v, a, d = v * 10, max(a, v) * 10, d * 10
            views.append(
                InstanceView(iid(i).ip, 80, "DEFAULT", 1.0, True, d < a, {}, v, a, d, SESSIONS[s])
            )
        removals = [(iid(i), tv * 10, ta * 10) for i, tv, ta in rms]
        store.merge(KEYS[k], views, removals, now, local_evidence=lambda r: 0)
    elif kind == "settings":
        store.set_service(KEYS[op[1]], 0.5, None, ver)
    elif kind == "digest":
        check(store)


@pytest.mark.parametrize("slack", [64, 0])  # 0: the dirty set's bound is hit all the time
@fuzz_settings(300)
@given(ops=st.lists(_ops, max_size=60))
def test_the_incremental_digest_always_equals_the_digest_from_scratch(
    slack: int, ops: list[tuple[Any, ...]]
) -> None:
    saved = store_module.DIGEST_DIRTY_SLACK
    store_module.DIGEST_DIRTY_SLACK = slack
    try:
        store, clock = RegistryStore(), [0]
        check(store)
        for op in ops:
            apply(store, op, clock)
        check(store)
        # A peer that received the same records in another order, digesting as it goes,
        # holds the same records and has the same digest for every service.
        peer = RegistryStore()
        views = [(s.key, r.view()) for s in store.services.values() for r in s.instances.values()]
        random.Random(len(ops)).shuffle(views)
        for n, (key, view) in enumerate(views):
            peer.merge(key, [view], [], 1.0)
            if n % 3 == 0:
                check(peer)
        for key, settings in store.settings.items():
            if key in peer.services:
                peer.set_service(key, settings[0], None, settings[1])
        assert records(peer) == records(store)
        for key, svc in store.services.items():
            version = store.settings.get(key, (0.0, 0, {}))[1]
            assert service_digest(peer.services[key], version) == service_digest(svc, version)
    finally:
        store_module.DIGEST_DIRTY_SLACK = saved


def test_the_digest_is_a_sum_over_records_and_changes_with_any_stamp() -> None:
    store = RegistryStore()
    for i in range(4):
        store.register(KEYS[0], iid(i), 1.0, True, {}, 0.0, 10 + i)
    svc = store.services[KEYS[0]]
    before = service_digest(svc)
    assert svc.digest_dirty == set()  # tracked from the first digest on
    rec = svc.instances[iid(2)]
    share = rec.digest
    store.refresh(KEYS[0], rec, 99)
    assert svc.digest_dirty == {rec}  # only the record that changed is hashed again
    after = service_digest(svc)
    assert after != before and rec.digest == record_digest(rec) != share
    assert (after - before) % 2**64 == (rec.digest - share) % 2**64
    store.deregister(KEYS[0], iid(1), 100, 1.0)
    assert service_digest(svc) == digest_from_scratch(svc)


def test_a_lone_node_never_tracks() -> None:
    store = RegistryStore()
    store.register(KEYS[0], iid(0), 1.0, True, {}, 0.0, 1)
    store.set_health(KEYS[0], [iid(0)], False, 2)
    svc = store.services[KEYS[0]]
    assert svc.digest_dirty is None and svc.digest_sum is None
