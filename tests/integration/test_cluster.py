"""Distro clusters of 3 and 5 real node processes on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from conftest import CLUSTER_CHECK_INTERVAL, CLUSTER_EVICT_AFTER, CLUSTER_UNHEALTHY_AFTER
from helpers import NodeProcess, raw_request, wait_until

from meshreg import Client, Instance, ServiceKey
from meshreg.core.mapping import responsible_node

FAST = {"beat_interval": 0.3, "timeout": 5.0, "attempt_timeout": 1.0}


def addresses(instances: list[Instance]) -> set[str]:
    return {i.address for i in instances}


def owner_of(service: str, nodes: list[NodeProcess]) -> NodeProcess:
    key = ServiceKey("public", "DEFAULT_GROUP", service)
    owner = responsible_node(key, [n.address for n in nodes])
    return next(n for n in nodes if n.address == owner)


def service_owned_by(target: NodeProcess, nodes: list[NodeProcess], prefix: str) -> str:
    for i in range(1000):
        if owner_of(f"{prefix}{i}", nodes) is target:
            return f"{prefix}{i}"
    raise AssertionError("no service name maps to the target node")


def all_ready(nodes: list[NodeProcess]) -> bool:
    views = []
    for n in nodes:
        with Client([n.address]) as c:
            view = c.cluster()
        if not view["ready"] or any(m["state"] != "up" for m in view["members"]):
            return False
        views.append(sorted(m["id"] for m in view["members"]))
    return all(v == views[0] for v in views)


def listed_everywhere(nodes: list[NodeProcess], service: str, expected: set[str]) -> bool:
    for n in nodes:
        with Client([n.address]) as c:
            if addresses(c.instances(service, healthy_only=False)) != expected:
                return False
    return True


def test_three_nodes_write_through_non_responsible_node_and_watch_elsewhere(
    start_cluster: Callable[..., list[NodeProcess]],
) -> None:
    nodes = start_cluster(3)
    a, b, c = nodes
    wait_until(lambda: all_ready(nodes), timeout=20, what="cluster to form")
    service = service_owned_by(b, nodes, "orders")  # owned by B; we write through A
    seen: list[set[str]] = []
    with Client([c.address], **FAST) as watcher, Client([a.address], **FAST) as provider:
        watcher.subscribe(service, lambda xs: seen.append(addresses(xs)))
        provider.register(service, "10.9.0.1", 8080)
        assert provider.stats()["forwarded"] >= 1  # A relayed it to B
        wait_until(lambda: listed_everywhere(nodes, service, {"10.9.0.1:8080"}), timeout=10)
        wait_until(lambda: seen and seen[-1] == {"10.9.0.1:8080"}, what="push on node C")
        # service settings replicate like instances
        provider.set_service(service, protect_threshold=0.5, metadata={"owner": "team-a"})

        def threshold_everywhere() -> bool:
            body = {"v": 1, "id": 1, "op": "instances", "service": service}
            results = [raw_request(n.port, body)["result"] for n in nodes]
            return all(
                r["protect_threshold"] == 0.5 and r["service_metadata"] == {"owner": "team-a"}
                for r in results
            )

        wait_until(threshold_everywhere, timeout=10, what="settings on every node")
        wait_until(lambda: watcher.instances(service).service_metadata == {"owner": "team-a"})
        provider.deregister(service, "10.9.0.1", 8080)
        wait_until(lambda: listed_everywhere(nodes, service, set()), timeout=10)
        wait_until(lambda: seen[-1] == set(), what="deregistration pushed on C")


def test_responsibility_is_spread_across_members(
    start_cluster: Callable[..., list[NodeProcess]],
) -> None:
    nodes = start_cluster(3)
    wait_until(lambda: all_ready(nodes), timeout=20, what="cluster to form")
    with Client([nodes[0].address], **FAST) as c:
        for i in range(30):
            c.register(f"spread{i}", "10.8.0.1", 1000 + i)

        def counts() -> list[int] | None:
            view = c.cluster()
            got = [m["services"] for m in view["members"]]
            return got if sum(got) == 30 else None

        per_node = wait_until(counts, timeout=10)
        # what the mapping says for these members (the ports, so the ids, vary per run: a
        # fixed lower bound per node would fail now and then by chance)
        ids = [m["id"] for m in c.cluster()["members"]]
        owners = [
            responsible_node(ServiceKey("public", "DEFAULT_GROUP", f"spread{i}"), ids)
            for i in range(30)
        ]
        assert per_node == [owners.count(i) for i in ids], (per_node, ids)
        assert sum(1 for n in per_node if n > 0) >= 2, per_node


def test_killed_node_loses_nothing_and_restarted_node_catches_up(
    start_cluster: Callable[..., list[NodeProcess]],
    start_node: Callable[..., NodeProcess],
) -> None:
    nodes = start_cluster(3)
    a, b, c = nodes
    wait_until(lambda: all_ready(nodes), timeout=20, what="cluster to form")
    services = [service_owned_by(b, nodes, "pay"), service_owned_by(b, nodes, "cart")]
    services.append(service_owned_by(a, nodes, "feed"))
    states: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def record(xs: list[Instance]) -> None:
        with lock:
            states.extend((i.address, i.healthy) for i in xs)

    # providers talk to B first (then A) and keep beating through the kill
    with (
        Client([b.address, a.address], **FAST, server_order="listed") as provider,
        Client([c.address], **FAST) as watcher,
    ):
        for n, service in enumerate(services):
            provider.register(service, f"10.7.0.{n}", 9000)
        for service in services:
            watcher.subscribe(service, record)
        expected = {s: {f"10.7.0.{n}:9000"} for n, s in enumerate(services)}
        for s in services:
            wait_until(lambda s=s: listed_everywhere(nodes, s, expected[s]), timeout=10)
        b.kill()
        survivors = [a, c]
        wait_until(lambda: all_ready(survivors), timeout=15, what="survivors to drop B")
        # longer than unhealthy_after (3 s) and evict_after (6 s) after the survivors took
        # B's services over, plus two sweeps: beats must keep them alive all that time
        # (it waited 40 polls of 0.2 s or more before, 8-10 s: a count, not the bound)
        took_over = time.monotonic()
        hold = CLUSTER_EVICT_AFTER + 2 * CLUSTER_CHECK_INTERVAL + 0.5

        def stable_for_a_while() -> bool:
            return time.monotonic() - took_over >= hold and all(
                listed_everywhere(survivors, s, expected[s]) for s in services
            )

        wait_until(stable_for_a_while, timeout=30, interval=0.2)
        with lock:
            assert all(healthy for _, healthy in states), "an instance turned unhealthy"
        # B comes back empty, catches up from the survivors and takes its services back
        restarted = start_node(*b.extra, port=b.port)
        everyone = [a, restarted, c]
        wait_until(lambda: all_ready(everyone), timeout=20, what="restarted B ready")
        for s in services:
            wait_until(lambda s=s: listed_everywhere(everyone, s, expected[s]), timeout=15)
        with Client([restarted.address]) as direct:
            view = direct.cluster()
            me = next(m for m in view["members"] if m["self"])
            assert me["services"] >= 2
        with lock:
            assert all(healthy for _, healthy in states), "an instance turned unhealthy"


def test_five_nodes_converge(start_cluster: Callable[..., list[NodeProcess]]) -> None:
    nodes = start_cluster(5)
    wait_until(lambda: all_ready(nodes), timeout=30, what="5-node cluster to form")
    clients = [Client([n.address], **FAST) for n in nodes]
    try:
        for i, c in enumerate(clients):
            for k in range(4):
                c.register(f"five{k}", f"10.6.{i}.1", 7000 + k)
        for k in range(4):
            expected = {f"10.6.{i}.1:{7000 + k}" for i in range(5)}
            wait_until(lambda k=k, e=expected: listed_everywhere(nodes, f"five{k}", e), timeout=15)
    finally:
        for c in clients:
            c.close()
    for k in range(4):
        wait_until(lambda k=k: listed_everywhere(nodes, f"five{k}", set()), timeout=15)


def test_client_sends_writes_straight_to_the_responsible_node(
    start_cluster: Callable[..., list[NodeProcess]],
) -> None:
    nodes = start_cluster(3)
    a, b, _ = nodes
    wait_until(lambda: all_ready(nodes), timeout=20, what="cluster to form")
    service = service_owned_by(b, nodes, "direct")
    # per-instance beats, twice as often as FAST's: the 2 x 10 beats counted below take 3 s
    fast_beats = {**FAST, "beat_interval": 0.15}
    with Client([a.address], sessions=False, **fast_beats) as provider:
        provider.register(service, "10.5.0.1", 80)  # no view yet: A forwards it
        with Client([b.address]) as on_b:
            beats_on_b = on_b.stats()["requests"].get("beat", 0)
            # once the client knows the view, its beats reach B without A relaying them
            wait_until(
                lambda: on_b.stats()["requests"].get("beat", 0) >= beats_on_b + 10,
                timeout=15,
                what="beats arriving at the responsible node",
            )
            forwarded = provider.stats()["forwarded"]
            seen = on_b.stats()["requests"].get("beat", 0)
            wait_until(lambda: on_b.stats()["requests"].get("beat", 0) >= seen + 10, timeout=15)
            assert provider.stats()["forwarded"] == forwarded  # A relayed none of them


def test_client_given_one_server_falls_back_on_members_it_learned(
    start_cluster: Callable[..., list[NodeProcess]],
) -> None:
    nodes = start_cluster(3)
    a, b, c = nodes
    wait_until(lambda: all_ready(nodes), timeout=20, what="cluster to form")
    service = service_owned_by(b, nodes, "lone")
    with Client([a.address], **FAST) as provider:
        provider.register(service, "10.4.4.4", 44)
        agent = provider._agent
        wait_until(lambda: len(agent.status.servers) == 3, timeout=20, what="members learned")
        a.kill()
        wait_until(lambda: provider.server != a.address, timeout=15, what="fallback")
        # beats keep reaching the cluster: still healthy on the survivors past
        # unhealthy_after (3 s) and two sweeps after the fallback (it waited 5 s before)
        hold = CLUSTER_UNHEALTHY_AFTER + 2 * CLUSTER_CHECK_INTERVAL + 0.5
        with Client([c.address]) as on_c:
            start = on_c.stats()["uptime"]
            wait_until(lambda: on_c.stats()["uptime"] > start + hold, timeout=20)
            listed = on_c.instances(service, healthy_only=False)
            assert [(i.address, i.healthy) for i in listed] == [("10.4.4.4:44", True)]


def test_read_your_writes_through_the_node_that_forwarded_them(
    start_cluster: Callable[..., list[NodeProcess]],
) -> None:
    """A write relayed by A to its owner B is held by A before A answers: an immediate
    read on A sees it (it used to miss about one in four: the delta came later)."""
    nodes = start_cluster(3)
    a, b, _ = nodes
    wait_until(lambda: all_ready(nodes), timeout=20, what="cluster to form")
    service = service_owned_by(b, nodes, "ryw")
    names = {"namespace": "public", "group": "DEFAULT_GROUP", "service": service}

    def on_a(op: str, **fields: object) -> dict:
        reply = raw_request(a.port, {"v": 1, "id": 1, "op": op, **names, **fields})
        assert reply["ok"], reply
        return reply["result"]

    def hosts_on_a() -> set[str]:
        return {i["ip"] for i in on_a("instances")["instances"]}

    for n in range(40):
        ip = f"10.7.0.{n}"
        on_a("register", ip=ip, port=80)
        assert ip in hosts_on_a(), f"register {n}: not yet on the forwarding node"
        on_a("deregister", ip=ip, port=80)
        assert ip not in hosts_on_a(), f"deregister {n}: still on the forwarding node"
    on_a("service_set", protect_threshold=0.25)
    assert on_a("instances")["protect_threshold"] == 0.25
    assert raw_request(a.port, {"v": 1, "id": 2, "op": "stats"})["result"]["forwarded"] >= 81


@pytest.mark.parametrize("batch", [None, 1])
def test_a_burst_of_registrations_replicates_in_batches_and_misses_nothing(
    start_cluster: Callable[..., list[NodeProcess]], batch: int | None
) -> None:
    """Many writes in one turn of the owner's loop share PUB messages (wire/batching);
    every delta of them reaches both peers, none rejected, no gap to repair (a pull may
    still come from the cluster's forming: rounds started by a member's join can run
    late, 2 to 4 of them at formation in 12 runs).  With
    ``--replication-batch 1`` every delta goes alone, and the same holds."""
    import msgpack
    import zmq

    nodes = start_cluster(3, *(("--replication-batch", str(batch)) if batch else ()))
    wait_until(lambda: all_ready(nodes), timeout=20, what="cluster to form")
    owner = nodes[0]
    service = service_owned_by(owner, nodes, "burst")
    before = [raw_request(n.port, {"v": 1, "id": 1, "op": "stats"})["result"] for n in nodes]
    count = 600
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    try:
        sock.connect(f"tcp://127.0.0.1:{owner.port}")
        for i in range(count):  # all in flight at once: the owner drains many per turn
            body = {"v": 1, "id": i + 1, "op": "register", "service": service,
                    "ip": f"10.7.{i // 250}.{i % 250 + 1}", "port": 80}  # fmt: skip
            sock.send_multipart([b"", msgpack.packb(body)])
        for _ in range(count):
            reply = msgpack.unpackb(sock.recv_multipart()[-1], raw=False)
            assert reply["ok"], reply
    finally:
        sock.close()

    def everywhere() -> bool:
        body = {"v": 1, "id": 2, "op": "instances", "service": service}
        return all(len(raw_request(n.port, body)["result"]["instances"]) == count for n in nodes)

    wait_until(everywhere, timeout=20, what="every registration on every node")
    after = [raw_request(n.port, {"v": 1, "id": 3, "op": "stats"})["result"] for n in nodes]
    deltas = after[0]["replication_out"] - before[0]["replication_out"]
    messages = after[0]["replication_messages_out"] - before[0]["replication_messages_out"]
    if batch == 1:
        assert deltas >= count and messages == deltas, (deltas, messages)  # one per message
    else:
        assert deltas >= count and messages < deltas / 4, (deltas, messages)  # batched
    for b, a in zip(before[1:], after[1:], strict=True):
        assert a["replication_errors"] == b["replication_errors"] == 0
        assert a["replication_in"] - b["replication_in"] >= count
        assert a["replication_gaps"] == b["replication_gaps"]  # no delta lost on the way
        if a["stalls"] == b["stalls"]:  # a loop starved past the stall threshold resyncs on
            # purpose (runtime/node.py, "this node was stalled")
            assert a["digest_mismatches"] == b["digest_mismatches"]
