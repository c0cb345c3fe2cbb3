"""Per-client limits: instances held through a node, and the rate of expensive reads."""

from hypothesis import given, settings
from hypothesis import strategies as st

from meshreg.core.client_limits import (
    PRUNE_AFTER,
    PRUNE_EVERY,
    ClientHoldings,
    ReadRate,
    WriteRate,
)
from meshreg.core.store import RegistryStore
from meshreg.model import InstanceId, ServiceKey

SVC = ServiceKey("public", "DEFAULT_GROUP", "orders")


def iid(n: int) -> InstanceId:
    return InstanceId(f"10.0.0.{n}", 80, "c")


def test_a_client_over_its_limit_is_refused_and_others_are_not() -> None:
    held = ClientHoldings(limit=2)
    assert held.admit("app", SVC, iid(1), 0.0) is None
    assert held.admit("app", SVC, iid(2), 0.0) is None
    assert held.admit("app", SVC, iid(1), 0.0) is None  # re-registration: already held
    why = held.admit("app", SVC, iid(3), 0.0)
    assert why is not None
    assert "'app'" in why and "max_instances_per_client = 2" in why and "10.0.0.3" in why
    assert held.refused == 1
    assert held.admit("other", SVC, iid(3), 0.0) is None  # another key's count is its own
    held.release("app", SVC, iid(2))
    assert held.admit("app", SVC, iid(3), 0.0) is None  # room again
    assert held.count() == 3


def test_prune_forgets_removed_instances_but_not_fresh_ones() -> None:
    store = RegistryStore()
    store.register(SVC, iid(1), 1.0, True, {}, 0.0)
    held = ClientHoldings(limit=10)
    held.admit("app", SVC, iid(1), 0.0)
    held.admit("app", SVC, iid(2), 0.0)  # never reached the store (e.g. refused at the owner)
    held.prune(store.holds, PRUNE_AFTER - 1)  # too fresh: may not be replicated back yet
    assert held.count() == 2
    held.prune(store.holds, PRUNE_EVERY + PRUNE_AFTER)
    assert held.count() == 1
    assert held.held["app"] == {(SVC, iid(1)): 0.0}


def test_prune_is_bounded_per_call() -> None:
    store = RegistryStore()
    held = ClientHoldings(limit=1000)
    for n in range(100):
        held.admit("app", SVC, InstanceId("10.0.1.1", 1000 + n, "c"), 0.0)
    held.prune(store.holds, 100.0, budget=30)
    assert held.count() == 70
    held.prune(store.holds, 100.0, budget=1000)  # the pass goes on where it was
    assert held.count() == 0


def test_read_rate_per_client_and_per_node() -> None:
    rate = ReadRate(per_client=10, per_node=25)
    assert all(rate.take("a", 0.0) == 0.0 for _ in range(20))  # burst: twice the rate
    wait = rate.take("a", 0.0)
    assert 0.09 <= wait <= 0.11 and rate.throttled == 1
    assert rate.take("b", 0.0) == 0.0  # another client has its own bucket...
    assert rate.take("a", 0.1) == 0.0  # ...and a refills at its rate


def test_many_clients_share_the_node_budget() -> None:
    rate = ReadRate(per_client=10, per_node=25)
    for conn in range(10):
        assert all(rate.take(("conn", conn), 0.0) == 0.0 for _ in range(5))
    wait = rate.take("fresh", 0.0)  # the node's burst (50) is spent, whoever asks
    assert 0.03 <= wait <= 0.05
    assert rate.take("fresh", 0.05) == 0.0


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(0, 0.5)), max_size=200))
def test_read_rate_never_admits_more_than_burst_plus_rate(steps: list[tuple[int, float]]) -> None:
    rate = ReadRate(per_client=10, per_node=1000)
    now = 0.0
    admitted: dict[int, int] = {}
    for client, dt in steps:
        now += dt
        if rate.take(client, now) == 0.0:
            admitted[client] = admitted.get(client, 0) + 1
    for n in admitted.values():
        assert n <= 20 + 10 * now + 1e-6


def test_forget_gone_drops_at_once_what_the_store_no_longer_has() -> None:
    store = RegistryStore()
    store.register(SVC, iid(1), 1.0, True, {}, 0.0)
    held = ClientHoldings(limit=10)
    for n in (1, 2, 3):
        held.admit("app", SVC, iid(n), 0.0)
    held.forget_gone("app", store.holds)  # fresh or not: a session_close just removed them
    assert held.held["app"] == {(SVC, iid(1)): 0.0}
    held.forget_gone("nobody", store.holds)


def test_a_clients_share_of_a_namespace_services_holds_once_a_quarter_is_free() -> None:
    """review83 F3: one key took all of a shared namespace's services.  With a namespace
    limit of 20 and a share of 5: free room above a quarter admits anyone; at a quarter or
    less free, a key holding its share gets no new service, a key under it does."""
    held = ClientHoldings(limit=1000, services_limit=20, services_share=5)

    def svc(name: str, ns: str = "public") -> ServiceKey:
        return ServiceKey(ns, "g", name)

    for n in range(15):  # in_namespace 0..14: more than a quarter (5) free
        assert held.admit("orders", svc(f"orders-{n}"), iid(1), 0.0, n) is None
    why = held.admit("orders", svc("orders-15"), iid(1), 0.0, 15)  # 5 free, share used
    assert why is not None and "max_services_per_client_in_namespace = 5" in why, why
    assert "'public'" in why and "orders-15" in why
    assert held.refused_services == 1
    # an existing service (None) takes nothing of the namespace: admitted
    assert held.admit("orders", svc("orders-3"), iid(2), 0.0, None) is None
    # another key under its share still adds services in the last quarter
    for n in range(5):
        assert held.admit("payments", svc(f"payments-{n}"), iid(1), 0.0, 15 + n) is None
    assert held.admit("payments", svc("payments-5"), iid(1), 0.0, 20) is not None
    # another namespace is its own
    assert held.admit("orders", svc("x", "other"), iid(1), 0.0, 15) is None
    # releasing every instance of services gives the share back
    for n in range(12):
        held.release("orders", svc(f"orders-{n}"), iid(1))
    held.release("orders", svc("orders-3"), iid(2))
    assert held.admit("orders", svc("orders-15"), iid(1), 0.0, 15) is None  # holds 4 now


def test_no_share_is_checked_without_one() -> None:
    held = ClientHoldings(limit=1000)
    for n in range(50):
        assert held.admit("a", ServiceKey("p", "g", f"s{n}"), iid(1), 0.0, 10_000) is None
    assert held.services == {}


def test_write_rate_off_admits_everything() -> None:
    rate = WriteRate(0)
    assert all(rate.take("a", 0.0, 500) == 0.0 for _ in range(1000)) and rate.throttled == 0


def test_write_rate_counts_a_batchs_entries_per_client() -> None:
    rate = WriteRate(100)  # burst 200
    assert rate.take("a", 0.0, 150) == 0.0
    wait = rate.take("a", 0.0, 100)  # 50 left: 100 more need 0.5 s of refill
    assert 0.49 <= wait <= 0.51 and rate.throttled == 1
    assert rate.take("b", 0.0, 200) == 0.0  # another client has its own bucket
    assert rate.take("a", 0.5, 100) == 0.0


def test_a_batch_above_the_burst_waits_for_a_full_bucket_then_goes_into_debt() -> None:
    """Never refused forever: a batch of 500 at 100/s (burst 200) goes once the bucket is
    full, and the client's next write waits until the debt is paid back."""
    rate = WriteRate(100)
    assert rate.take("a", 0.0, 1) == 0.0
    assert rate.take("a", 0.0, 500) > 0  # 199 in the bucket: not full
    assert rate.take("a", 0.01, 500) == 0.0  # full again (200): taken, 300 owed
    wait = rate.take("a", 0.01, 1)
    assert 3.0 <= wait <= 3.02  # -300 -> 1: 3.01 s at 100/s


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(0, 0.5), st.integers(1, 300)), max_size=200))
def test_write_rate_never_admits_more_than_burst_plus_rate_plus_one_write(
    steps: list[tuple[int, float, int]],
) -> None:
    """Over any run, a client's admitted entries stay within the burst, the rate times the
    time, and the one write that may take the bucket below zero (at most 300 here)."""
    rate = WriteRate(100)
    now = 0.0
    admitted: dict[int, int] = {}
    for client, dt, cost in steps:
        now += dt
        if rate.take(client, now, cost) == 0.0:
            admitted[client] = admitted.get(client, 0) + cost
    for n in admitted.values():
        assert n <= 200 + 100 * now + 300 + 1e-6


def test_writes_refused_together_are_told_their_turns_and_each_is_taken_at_its_own() -> None:
    """review84 F7: 8 batches of 256 refused at once were all told the next token's wait
    and came back together (one taken per round).  Each is told its turn now; coming back
    then, each is taken."""
    rate = WriteRate(150)  # burst 300
    assert rate.take("app", 0.0, 256) == 0.0  # 44 left
    waits = [rate.take("app", 0.0, 256) for _ in range(7)]
    assert waits == sorted(waits) and len(set(waits)) == 7, waits
    assert all(abs(b - a - 256 / 150) < 1e-9 for a, b in zip(waits, waits[1:], strict=False))
    for wait in waits:
        assert rate.take("app", wait + 1e-6, 256) == 0.0, wait
    assert rate.take("other", 0.0, 256) == 0.0  # another client's bucket is its own


def test_a_refused_write_that_never_comes_back_delays_only_its_own_clients_writes() -> None:
    """Its turn is counted until an admitted write takes it back: a write of the same
    client refused meanwhile is told a turn after it; nobody else's is."""
    rate = WriteRate(10)  # burst 20
    assert rate.take("a", 0.0, 20) == 0.0
    assert rate.take("a", 0.0, 20) == 2.0  # told 2 s; never comes back
    assert rate.take("b", 0.0, 20) == 0.0
    assert rate.take("a", 1.0, 20) == 3.0  # (20 - 10 + 20) / 10: after the abandoned turn
    assert rate.take("a", 4.0, 20) == 0.0  # the bucket is full again: taken
    assert rate.take("a", 4.0, 20) == 4.0  # one turn (20) still counted: 2 s more than 2 s
    assert rate.take("a", 8.0, 20) == 0.0
