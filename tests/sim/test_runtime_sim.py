"""The node runtime's own branches under the seeded simulation (``network.py``).

The simulation runs real ``NodeRuntime`` loops over the in-memory transport, so
what the runtime decides with the core's output runs here too:

* a forward to an owner whose process is gone fails at once (no connection:
  the DEALER refuses) and the entry applies the write itself; a forward to a
  stopped owner times out and the entry applies it then;
* read-your-writes through a forwarding node: the owner sends back what the
  write left (the ``written`` frame) and the entry holds it before it
  answers, so a read on the entry right after the reply sees the write,
  under message loss too (a lost forward or reply ends in the fallback);
* the fast beat: a beat reaching the service's owner is renewed on the beat
  path (``_drain_requests``) without the full parser; a beat elsewhere is
  forwarded;
* replication batching (``wire/batching.py``) under loss and reordering:
  batches lost or overtaken are repaired like single deltas;
* ``register_batch`` split by owner (one forward per owner) with an owner killed
  mid-batch: every entry the reply acknowledged is on every node after healing.

A failing scenario prints its seed; ``MESHREG_SIM_TRACE=/tmp/trace.txt``
writes its trace.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import pytest
import zmq

from meshreg.core.distro import NodeState
from meshreg.model import ServiceKey
from meshreg.runtime.node import TURN_ENTRIES
from meshreg.transport.memory import MemPub
from meshreg.wire.batching import CHECK_EVERY
from meshreg.wire.messages import decode_body
from meshreg.wire.notifications import topic_for

sys.path.insert(0, os.path.dirname(__file__))

from network import Network, Outcome, SimNode  # noqa: E402
from test_distro_sim import (  # noqa: E402
    add_providers,
    check_invariants,
    core_of,
    run_settled,
    scenario_message,
    start_cluster,
)

WHERE = {"namespace": "public", "group": "DEFAULT_GROUP"}


def request(net: Network, entry: SimNode, op: str, **fields: Any) -> list[Outcome]:
    """Send a request now; the list gets its outcome when it comes."""
    out: list[Outcome] = []
    net.client_request(entry, op, next(net.req_ids), fields, out.append)
    return out


def register_fields(service: str, index: int) -> dict[str, Any]:
    return dict(WHERE, service=service, ip=f"10.2.0.{index + 1}", port=9000 + index, weight=1.0)


def listed(outcome: Outcome, index: int) -> bool:
    """Whether an ``instances`` reply lists the instance ``register_fields`` made."""
    assert outcome[0] == "ok", outcome
    return any(i["port"] == 9000 + index for i in outcome[1]["instances"])


def owned_by(net: Network, owner: str, count: int = 1) -> list[str]:
    """Services whose responsible node is ``owner`` (as every node sees it)."""
    core = core_of(net, owner)
    out = []
    for i in range(200):
        name = f"own{i}"
        if core.owner_of(ServiceKey(WHERE["namespace"], WHERE["group"], name)) == owner:
            out.append(name)
            if len(out) == count:
                return out
    raise AssertionError(f"no service owned by {owner}")


@pytest.mark.parametrize("seed", [61, 62, 63])
def test_a_forward_to_a_dead_owner_is_applied_by_the_entry_at_once(seed: int) -> None:
    net = start_cluster(seed, 3)
    net.run_until(5.0)
    service = owned_by(net, "n2")[0]
    net.crash("n2")  # gone: the others still think it up for peer_timeout (3 s)
    entry = net.nodes["n0"]
    sent_at = net.now
    reply = request(net, entry, "register", **register_fields(service, 1))
    net.run_until(net.now + 0.2)  # far less than peer_request_timeout (2 s)
    problems = []
    if [s for s, _ in reply] != ["ok"]:
        problems.append(f"register through n0 with its owner dead: {reply}")
    if not net.counts.get("forward_fallback"):
        problems.append("no forward fallback counted")
    read = request(net, entry, "instances", service=service, **WHERE)
    net.run_until(net.now + 0.2)
    if not read or not listed(read[0], 1):
        problems.append(f"n0 does not list what it applied in place of n2: {read}")
    net.at(net.now + 5.0, net.start, "n2")
    net.run_until(sent_at + 12.0)  # n2 back and caught up; the instance not evicted yet
    for node_id in net.nodes:
        read = request(net, net.nodes[node_id], "instances", service=service, **WHERE)
        net.run_until(net.now + 0.2)
        if not read or not listed(read[0], 1):
            problems.append(f"{node_id} lost the write the fallback applied: {read}")
    assert not problems, scenario_message(net, "forward to a dead owner", problems)


@pytest.mark.parametrize("seed", [64, 65])
def test_a_forward_to_a_stopped_owner_times_out_into_the_fallback(seed: int) -> None:
    net = start_cluster(seed, 3)
    net.run_until(5.0)
    service = owned_by(net, "n1")[0]
    net.pause("n1")  # SIGSTOP: its connections stay up, nothing answers
    entry = net.nodes["n2"]
    sent_at = net.now
    reply = request(net, entry, "register", **register_fields(service, 2))
    timeout = net.cluster.peer_request_timeout
    net.run_until(sent_at + timeout * 0.9)
    problems = []
    if reply:
        problems.append(f"answered before the forward timed out: {reply}")
    net.run_until(sent_at + timeout + 0.2)
    if [s for s, _ in reply] != ["ok"]:
        problems.append(f"no fallback answer after the forward timed out: {reply}")
    if not net.counts.get("forward_fallback"):
        problems.append("no forward fallback counted")
    net.resume("n1", "runtime")
    net.run_until(net.now + 3.0)
    read = request(net, net.nodes["n1"], "instances", service=service, **WHERE)
    net.run_until(net.now + 0.2)
    if not read or not listed(read[0], 2):
        problems.append(f"the owner never got the write applied meanwhile: {read}")
    assert not problems, scenario_message(net, "forward to a stopped owner", problems)


@pytest.mark.parametrize(("seed", "loss"), [(66, 0.0), (67, 0.05), (68, 0.1)])
def test_read_your_writes_through_a_forwarding_node(seed: int, loss: float) -> None:
    """Each register goes to a node that is not the owner; as soon as its reply
    comes, the client reads the service on that same node: the write is there."""
    net = start_cluster(seed, 4)
    net.run_until(5.0)
    net.loss = loss
    rng = net.rng
    checked: list[int] = []
    problems: list[str] = []
    owners = {}
    for node_id in net.nodes:
        for name in owned_by(net, node_id, 3):
            owners[name] = node_id

    def write_then_read(index: int) -> None:
        service = rng.choice(sorted(owners))
        others = [n for n in sorted(net.nodes) if n != owners[service]]
        entry = net.nodes[rng.choice(others)]

        def registered(outcome: Outcome) -> None:
            if outcome[0] != "ok":
                return  # lost: the client would retry

            def read(outcome: Outcome) -> None:
                if outcome[0] == "ok":
                    checked.append(index)
                    if not listed(outcome, index):
                        problems.append(
                            f"t={net.now:.3f} {entry.node_id} answered the register of "
                            f"{service}/{index} (owner {owners[service]}) but does not list it"
                        )

            net.client_request(
                entry, "instances", next(net.req_ids), dict(WHERE, service=service), read
            )

        net.client_request(
            entry, "register", next(net.req_ids), register_fields(service, index), registered
        )

    for index in range(120):
        net.at(5.0 + index * 0.05, write_then_read, index)
    net.run_until(20.0)
    if len(checked) < 60:
        problems.append(f"only {len(checked)} of 120 writes were read back")
    if loss and not net.counts.get("lost"):
        problems.append("no message was lost")
    assert not problems, scenario_message(net, f"read-your-writes, loss {loss}", problems)


@pytest.mark.parametrize("seed", [69, 70])
def test_beats_at_the_owner_take_the_fast_path_and_others_are_forwarded(seed: int) -> None:
    net = start_cluster(seed, 3)
    fast = {"hits": 0, "misses": 0}

    def spy(node: SimNode) -> None:
        core = node.core
        assert core is not None
        real = core.fast_beat

        def fast_beat(*args: Any) -> bool:
            ok = real(*args)
            fast["hits" if ok else "misses"] += 1
            return ok

        core.fast_beat = fast_beat  # type: ignore[method-assign]

    net.run_until(3.0)
    for node in net.nodes.values():
        spy(node)
    forwarded_before = sum(core_of(net, n).counters["forwarded"] for n in net.nodes)
    providers = add_providers(net, services=4, per_service=3, start=(3.0, 5.0))
    problems = run_settled(net, 70.0)
    problems += check_invariants(net, providers)
    forwarded = sum(core_of(net, n).counters["forwarded"] for n in net.nodes) - forwarded_before
    beats = net.counts.get("client_beat", 0)
    if not fast["hits"]:
        problems.append(f"no beat of {beats} took the fast path")
    if not forwarded:
        problems.append("no write or beat was forwarded")
    if not fast["misses"]:
        problems.append(f"all {fast['hits']} beats took the fast path: none was forwarded")
    assert not problems, scenario_message(net, "fast beat", problems)


@pytest.mark.parametrize("seed", [91, 92, 93])
def test_a_write_is_pushed_and_replicated_before_its_reply(seed: int) -> None:
    """The owner carries out a write's effects as it serves it (runtime/node
    ``_after_write``): its delta leaves on the replication channel, and its watchers'
    push, before its reply and before the requests after it in the same drain (they
    used to wait for the rest of the drain, and the delta for the end of the turn)."""
    net = start_cluster(seed, 3)
    net.batch_hold = 0.005  # requests arriving together are served in one drain
    net.run_until(3.0)
    owner = net.nodes["n0"]
    rt = owner.runtime
    assert rt is not None and rt._fast_io is not None
    service = owned_by(net, "n0")[0]
    log: list[str] = []
    recv, send = rt._fast_io
    serve, publish, notify = rt._serve, rt._publish, rt.outbox.send

    def spy_send(sock: Any, data: Any, flags: int = 0) -> Any:
        if sock is rt._router and not flags & zmq.SNDMORE:
            log.append("reply")
        return send(sock, data, flags)

    def spy_serve(frames: Any, *args: Any, **kw: Any) -> Any:
        op = decode_body(frames[-1]).get("op", "?") if len(frames) > 1 else "?"
        log.append(f"serve {op}")
        return serve(frames, *args, **kw)

    def spy_publish(frames: list[bytes]) -> None:
        log.append("publish")
        publish(frames)

    def spy_notify(frames: list[bytes], now: float) -> None:
        log.append("push")
        notify(frames, now)

    rt._fast_io = (recv, spy_send)
    rt._serve = spy_serve  # type: ignore[method-assign]
    rt._publish = spy_publish  # type: ignore[method-assign]
    rt.outbox.send = spy_notify  # type: ignore[method-assign]
    got: list[bytes] = []
    sub = net.subscriber(owner, got.append)
    sub.subscribe(topic_for(ServiceKey(WHERE["namespace"], WHERE["group"], service)))
    net.run_until(4.0)
    log.clear()
    # one delay for every message: the reads arrive after the write, in its drain (random
    # delays up to 20 ms against a 5 ms drain made that a matter of the seed's draws)
    net.min_delay = net.max_delay = 0.002
    wrote = request(net, owner, "register", **register_fields(service, 0))
    reads = [request(net, owner, "instances", service=service, **WHERE) for _ in range(8)]
    net.run_until(6.0)
    problems = []
    if not wrote or wrote[0][0] != "ok" or not all(r and r[0][0] == "ok" for r in reads):
        problems.append(f"not all answered: {wrote} {reads}")
    at = log.index("serve register") if "serve register" in log else -1
    after = log[at + 1 : at + 4]
    if at < 0 or after[:2] not in (["publish", "push"], ["push", "publish"]):
        problems.append(f"after serving the write: {after} (want the push and the publish)")
    elif after[2:] != ["reply"]:
        problems.append(f"the reply is not next: {after}")
    if "serve instances" not in log[at:]:
        problems.append(f"no read was served after the write: {log}")
    assert not problems, scenario_message(net, "write before its reply", problems)


@pytest.mark.parametrize("seed", [94, 95])
def test_a_delta_waiting_during_a_long_drain_is_applied_before_the_drain_ends(seed: int) -> None:
    """Every CHECK_EVERY requests of a long drain the runtime applies the replication
    waiting (runtime/node ``_mid_drain``): reads late in a burst already see a change
    that arrived with it (they used to wait for the rest of the drain)."""
    net = start_cluster(seed, 3)
    net.run_until(3.0)
    service = owned_by(net, "n0")[0]
    reader = net.nodes["n1"]
    rt = reader.runtime
    assert rt is not None and rt._router is not None
    net.pause("n1")  # its input waits: the reads and n0's delta, in its sockets together
    reads = [request(net, reader, "instances", service=service, **WHERE) for _ in range(100)]
    net.run_until(net.now + 0.1)
    wrote = request(net, net.nodes["n0"], "register", **register_fields(service, 0))
    net.run_until(net.now + 0.5)
    net.deliver_held(net.release("n1"))  # in its sockets, no turn yet
    rt._drain_requests(rt._router)  # one drain of the 100 reads, the delta waiting
    net.run_until(net.now + 2.0)
    problems = []
    if not wrote or wrote[0][0] != "ok":
        problems.append(f"the write was not acknowledged: {wrote}")
    seen = [listed(r[0], 0) for r in reads if r]
    if len(seen) != len(reads):
        problems.append(f"{len(reads) - len(seen)} reads unanswered")
    elif seen.count(False) != CHECK_EVERY:  # those served before the drain's first look
        problems.append(f"{seen.count(True)} of {len(seen)} reads saw the change")
    assert not problems, scenario_message(net, "a delta during a long drain", problems)


@pytest.mark.parametrize(("seed", "loss"), [(71, 0.02), (72, 0.05), (73, 0.05)])
def test_batched_replication_under_loss_and_reordering(seed: int, loss: float) -> None:
    """Busy turns (many deltas a message), messages lost and overtaking each other:
    the cluster still converges, and a batch's loss is repaired like a delta's."""
    net = start_cluster(seed, 4)
    net.batch_hold = 0.02
    net.run_until(3.0)
    net.loss = loss
    net.max_delay = 0.05  # a batch may overtake the one before it
    providers = add_providers(
        net, services=6, per_service=6, start=(3.0, 5.0), stop=(20.0, 30.0), deregister=True
    )
    providers += add_providers(net, services=3, per_service=4, start=(3.0, 5.0))
    # A lone write's delta leaves at once (runtime/node ``_after_write``): many deltas
    # share a message when a burst of writes is served, or one request makes many (a
    # ``register_batch`` over services of each owner: one delta per service).
    for b in range(6):
        entries = [
            {"service": f"bulk{s}", "ip": f"10.6.{b}.{k + 1}", "port": 9300}
            for s in range(8)
            for k in range(3)
        ]
        entry = net.nodes[f"n{b % 4}"]
        net.at(6.0 + b, lambda e=entry, i=entries: request(net, e, "register_batch", instances=i))
    net.run_until(45.0)
    net.loss = 0.0
    net.max_delay = 0.02
    problems = run_settled(net, 120.0)
    problems += check_invariants(net, providers)
    if not net.counts.get("pub_deltas"):
        problems.append("no message carried more than one delta: batching not exercised")
    for n in net.nodes:
        if core_of(net, n).counters["replication_errors"]:
            problems.append(f"{n}: replication errors")
    assert not problems, scenario_message(net, f"batches under loss {loss}", problems)


@pytest.mark.parametrize(
    ("seed", "crash_after"),
    # crash times spread over the message delays (0.5-20 ms a hop): the forwarded part lost
    # (71, 73, 74: the entry applies it itself) or answered before the crash (72, 75, 71)
    [(71, 0.005), (72, 0.015), (73, 0.015), (74, 0.04), (75, 0.025), (71, 0.06)],
)
def test_a_batch_whose_owner_is_killed_mid_batch_loses_no_acknowledged_entry(
    seed: int, crash_after: float
) -> None:
    """``register_batch`` through n0 spanning every owner; n2 (an owner of part of it) is
    killed while the batch is in flight, at a seeded point (before its part arrives,
    while applying, before or after its reply), then restarted.  Every entry the reply
    acknowledged is listed on every node after healing; the refused one nowhere."""
    net = start_cluster(seed, 3)
    net.run_until(5.0)
    services = owned_by(net, "n0", 2) + owned_by(net, "n1", 2) + owned_by(net, "n2", 3)
    entries: list[dict[str, Any]] = [
        {"service": s, "ip": f"10.3.{i}.{k + 1}", "port": 9100 + k}
        for i, s in enumerate(services)
        for k in range(3)
    ]
    entries.insert(4, {"service": services[0], "ip": "10.3.9.9", "port": 0})  # refused
    sent_at = net.now
    reply = request(net, net.nodes["n0"], "register_batch", namespace="public", instances=entries)
    net.at(sent_at + crash_after, net.crash, "n2")
    net.run_until(sent_at + 3.0)  # answered by then (the peer timeout is 2 s)
    problems: list[str] = []
    if len(reply) != 1 or reply[0][0] != "ok":
        problems.append(f"no batch reply: {reply}")
        assert not problems, scenario_message(net, "batch, owner killed", problems)
    results = reply[0][1]["results"]
    acked = [e for e, r in zip(entries, results, strict=True) if r is None]
    refused = [e for e, r in zip(entries, results, strict=True) if r is not None]
    if refused != [entries[4]]:
        problems.append(f"refused {refused}, expected only the bad entry")
    net.at(net.now + 1.0, net.start, "n2")
    net.run_until(sent_at + 16.0)  # healed and repaired; nothing evicted yet (30 s)
    for node_id, node in net.nodes.items():
        for service in services:
            read = request(net, node, "instances", service=service, **WHERE)
            net.run_until(net.now + 0.2)
            if not read or read[0][0] != "ok":
                problems.append(f"{node_id}: no answer for {service}: {read}")
                continue
            have = {(i["ip"], i["port"]) for i in read[0][1]["instances"]}
            want = {(e["ip"], e["port"]) for e in acked if e["service"] == service}
            if have != want:
                problems.append(f"{node_id} lists {sorted(have)} of {service}, not {sorted(want)}")
    problems += net.violations
    assert not problems, scenario_message(net, "batch, owner killed mid-batch", problems)


@pytest.mark.parametrize("seed", [81, 82])
def test_a_flood_of_batches_is_served_over_several_turns(seed: int) -> None:
    """Many ``register_batch`` requests arriving at once: a turn serves at most
    ``TURN_ENTRIES`` of their entries (the loop gets back to beacons and renewals), the
    next turn comes at once, and every batch is answered."""
    net = start_cluster(seed, 3)
    net.run_until(5.0)
    net.batch_hold = 0.05  # busy: everything sent now waits for one turn
    runtime = net.nodes["n0"].runtime
    assert runtime is not None
    served: list[int] = []
    step = runtime.step

    def counting_step() -> float:
        wait = step()
        served.append(runtime._entries)
        return wait

    runtime.step = counting_step  # type: ignore[method-assign]
    service = owned_by(net, "n0")[0]
    replies = []
    for b in range(9):  # 2,700 entries: more than a turn serves
        entries = [
            {"service": service, "ip": f"10.4.{b}.{k + 1}", "port": 9000} for k in range(300)
        ]
        replies.append(request(net, net.nodes["n0"], "register_batch", instances=entries))
    net.run_until(net.now + 3.0)
    problems = [f"batch {i}: {r[:1]}" for i, r in enumerate(replies) if [x[0] for x in r] != ["ok"]]
    if max(served, default=0) > TURN_ENTRIES + 300:
        problems.append(f"a turn served {max(served)} entries (limit {TURN_ENTRIES} + a batch)")
    if sum(1 for s in served if s) < 2:
        problems.append(f"2,700 entries served in one turn: {served}")
    svc = core_of(net, "n0").store.get(ServiceKey("public", "DEFAULT_GROUP", service))
    if svc is None or len(svc.instances) != 2700:
        problems.append("n0 does not hold the 2,700 instances")
    assert not problems, scenario_message(net, "a flood of batches", problems)


@pytest.mark.parametrize(("seed", "loss"), [(91, 0.0), (92, 0.5)])
def test_a_batch_is_one_delta_per_service_and_every_node_converges(seed: int, loss: float) -> None:
    """``register_batch`` through n0 spanning every owner: each owner publishes one delta
    per service of its part (core/store, "Batches"), never one per entry, and every node
    lists every entry (with loss: the lost deltas repaired by anti-entropy)."""
    net = start_cluster(seed, 3)
    net.run_until(5.0)
    owned = {n: owned_by(net, n, 2) for n in ("n0", "n1", "n2")}
    entries = [
        {"service": s, "ip": f"10.5.{i}.{k + 1}", "port": 9200}
        for i, s in enumerate(sum(owned.values(), []))
        for k in range(20)
    ]
    out = {n: core_of(net, n).counters["replication_out"] for n in owned}

    def lose_deltas(src: Any, dst: Any, frames: list[bytes]) -> bool:
        """``loss`` of the deltas only: a lost forward would make n0 apply the entries
        itself after its timeout (one test at a time: this one checks the publishing)."""
        return (
            isinstance(src, MemPub)
            and frames[0] in (b"delta", b"deltas")
            and (net.rng.random() < loss)
        )

    net.drop = lose_deltas
    reply = request(net, net.nodes["n0"], "register_batch", namespace="public", instances=entries)
    net.run_until(net.now + 0.5)
    problems: list[str] = []
    if [x[0] for x in reply] != ["ok"] or reply[0][1]["results"] != [None] * len(entries):
        problems.append(f"batch reply: {reply}")
    for n in owned:  # the entries' deltas (nothing else changes meanwhile)
        published = core_of(net, n).counters["replication_out"] - out[n]
        if published != len(owned[n]):
            problems.append(f"{n} published {published} deltas for {len(owned[n])} services")
    net.drop = None
    net.run_until(net.now + 12.0)  # anti-entropy repairs what was lost
    for node_id in owned:
        store = core_of(net, node_id).store
        for service in sum(owned.values(), []):
            svc = store.get(ServiceKey("public", "DEFAULT_GROUP", service))
            if svc is None or len(svc.instances) != 20:
                problems.append(f"{node_id} holds {svc and len(svc.instances)} of {service}")
    problems += net.violations
    assert not problems, scenario_message(net, "a batch, one delta per service", problems)


@pytest.mark.parametrize("seed", [1, 2])
def test_each_member_logs_caught_up_once_and_a_stall_does_not_repeat_it(
    seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The runtime follows the core's state (core/distro ``NodeState``): leaving
    *catching up* is logged once per member; a stall (serving, then resyncing, then
    serving again) is not a second catch-up."""
    caplog.set_level(logging.INFO, logger="meshreg.node")
    net = start_cluster(seed)
    net.at(20.0, net.pause, "n1")
    net.at(26.0, net.resume, "n1")  # 6 s: a stall, and a peer timeout for the others
    net.run_until(45.0)
    caught_up = [r for r in caplog.records if r.getMessage().startswith("caught up: ready")]
    assert len(caught_up) == 3, [r.getMessage() for r in caught_up]
    assert core_of(net, "n1").registry.stalls >= 1
    assert {core_of(net, n).state for n in net.nodes} == {NodeState.SERVING}
