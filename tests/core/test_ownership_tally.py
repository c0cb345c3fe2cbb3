"""The per-member counts behind ``cluster``: exact when small, stepped when large."""

from meshreg.core.mapping import responsible_node
from meshreg.core.ownership_tally import COUNT_AT_ONCE, PASS_EVERY, OwnershipTally, count_owned
from meshreg.core.store import RegistryStore
from meshreg.model import InstanceId, ServiceKey

MEMBERS = ("a", "b", "c")


def owner(key: ServiceKey) -> str:
    return responsible_node(key, MEMBERS)


def fill(store: RegistryStore, services: int, start: int = 0) -> None:
    for i in range(start, start + services):
        key = ServiceKey("public", "DEFAULT_GROUP", f"svc-{i}")
        store.register(key, InstanceId("10.0.0.1", 80, "c"), 1.0, True, {}, 0.0)
        if i % 2:
            store.register(key, InstanceId("10.0.0.2", 80, "c"), 1.0, True, {}, 0.0)


def total(counts: dict[str, list[int]]) -> list[int]:
    return [sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())]


def test_small_registry_is_counted_on_each_request() -> None:
    store = RegistryStore()
    fill(store, 10)
    tally = OwnershipTally()
    assert total(tally.counts(store, owner)) == [10, 15]
    fill(store, 1, start=10)
    assert total(tally.counts(store, owner)) == [11, 16]


def test_large_registry_is_counted_in_bounded_steps() -> None:
    store = RegistryStore()
    n = COUNT_AT_ONCE + 2_000
    fill(store, n)
    calls = 0

    def counting_owner(key: ServiceKey) -> str:
        nonlocal calls
        calls += 1
        return owner(key)

    tally = OwnershipTally()
    assert tally.counts(store, counting_owner) == {}  # no pass finished yet: nothing hashed
    assert calls == 0
    tally.step(store, counting_owner, MEMBERS, 0.0, budget=1_000)
    assert calls == 1_000 and tally.last == {}
    steps = 1
    while not tally.last:
        tally.step(store, counting_owner, MEMBERS, 0.0, budget=1_000)
        steps += 1
        assert steps < 100
    assert tally.last == count_owned(store, owner)
    assert total(tally.last) == [n, n + n // 2]


def test_membership_change_restarts_the_pass() -> None:
    store = RegistryStore()
    fill(store, COUNT_AT_ONCE + 10)
    tally = OwnershipTally()
    tally.step(store, owner, MEMBERS, 0.0, budget=COUNT_AT_ONCE)
    tally.step(store, lambda k: responsible_node(k, ("a", "b")), ("a", "b"), 0.0, budget=10)
    assert tally.last == {}  # the first pass was dropped, not finished with mixed owners
    tally.step(store, lambda k: responsible_node(k, ("a", "b")), ("a", "b"), 0.0, budget=10**6)
    assert set(tally.last) <= {"a", "b"}
    assert total(tally.last)[0] == COUNT_AT_ONCE + 10


def test_passes_are_paced() -> None:
    store = RegistryStore()
    fill(store, COUNT_AT_ONCE + 10)
    tally = OwnershipTally()
    tally.step(store, owner, MEMBERS, 0.0, budget=10**6)
    first = tally.last
    assert total(first)[0] == COUNT_AT_ONCE + 10
    fill(store, 5, start=COUNT_AT_ONCE + 10)
    tally.step(store, owner, MEMBERS, PASS_EVERY - 1, budget=10**6)
    assert tally.last is first  # too soon: no new pass
    tally.step(store, owner, MEMBERS, PASS_EVERY, budget=10**6)
    assert total(tally.last)[0] == COUNT_AT_ONCE + 15
