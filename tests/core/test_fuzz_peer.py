"""Fuzzing the peer handler (issue 10): a cluster member fed random, partly valid peer
messages through the real wire (``decode_replication`` + ``on_replication``,
``parse_peer_message`` + ``handle``, ``peer_reply`` for digests pages and reconcile
replies) with random stamps (some far ahead, some at the wire's bound) and clock steps.

Properties, for every sequence:

* nothing but the wire's rejections (RemoteProtocolError, RequestRejected) escapes;
* a rejected message changes nothing: neither the table, nor the clock, nor the
  applied sequence numbers (whether the wire or the stamp bound rejected it);
* the hybrid clock never moves past ``MAX_CLOCK_AHEAD`` ahead of the node's own
  wall clock, and every delta the node publishes passes the wire.
"""

from __future__ import annotations

import copy
from typing import Any

import msgpack
from answers import peer_reply, served
from helpers import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from meshreg.config import ClusterPolicy
from meshreg.core.distro import Broadcast, DistroNode, PeerCall
from meshreg.core.effects import InstanceView
from meshreg.core.health import HealthPolicy
from meshreg.core.versions import MAX_AHEAD_US, TAG_BITS
from meshreg.errors import RemoteProtocolError
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire import limits
from meshreg.wire.messages import RegisterInstance, RequestRejected
from meshreg.wire.peer import (
    Beacon,
    DigestSummary,
    ReplicatedDelta,
    ServicePayload,
    decode_replication,
    encode_beacon,
    encode_delta,
    encode_digest,
    parse_peer_message,
    payload_to_wire,
)

FUZZ = fuzz_settings(300)  # deterministic: the same examples every run
WALL = 1_790_000_000.0
A, B = "10.0.0.1:7800", "10.0.0.2:7800"
KEYS = [ServiceKey("public", "DEFAULT_GROUP", s) for s in ("orders", "pay", "ship")]
IIDS = [InstanceId("10.1.1.1", 80, "DEFAULT"), InstanceId("10.1.1.2", 80, "DEFAULT")]
BAD_NAMES = ["orders\0evil", "a b", "", "\x1b[2J"]


def wall_us(now: float) -> int:
    return int((now + WALL) * 1_000_000)


def fresh_node() -> DistroNode:
    node = DistroNode(HealthPolicy(), ClusterPolicy(), "n1", A, [B], 1, 0.0, wall_offset=WALL)
    node.on_replication(Beacon("n2", B, 9, True, 0, ("n1", "n2")), 0.0)
    for i, key in enumerate(KEYS[:2]):
        served(node, RegisterInstance(i, key, IIDS[0], 1.0, True, {}), 0.0, forwarded=True)
    node.take_effects()
    return node


def snapshot(node: DistroNode) -> Any:
    return (
        {
            k: {
                i: (r.version, r.alive, r.down, r.healthy, r.weight) for i, r in s.instances.items()
            }
            for k, s in node.store.services.items()
        },
        {k: dict(v) for k, v in node.store.tombstones.items()},
        dict(node.store.settings),
        node.hlc.last_us,
        dict(node.applied_seq),
    )


# -- strategies --------------------------------------------------------------------------------
def stamps(now: float) -> st.SearchStrategy[int]:
    base = wall_us(now)
    offsets = st.one_of(  # seconds from the node's wall clock
        st.floats(-120.0, 0.0), st.floats(0.0, 59.0), st.floats(61.0, 1e6)
    )
    return st.one_of(
        offsets.map(lambda s: ((base + int(s * 1_000_000)) << TAG_BITS) | 7),
        st.sampled_from([0, 1, limits.MAX_STAMP, limits.MAX_STAMP - 1, 2**63, -1]),
    )


@st.composite
def payloads(draw: st.DrawFn, now: float) -> dict[str, Any]:
    key = draw(st.sampled_from(KEYS))
    upserts = []
    for iid in draw(st.lists(st.sampled_from(IIDS), max_size=2, unique=True)):
        version = draw(stamps(now))
        alive = draw(st.one_of(st.just(version), stamps(now)))
        down = draw(st.one_of(st.just(0), stamps(now)))
        healthy = (down < alive) if draw(st.integers(0, 9)) else draw(st.booleans())
        upserts.append((iid, version, alive, down, healthy))
    wire = payload_to_wire(ServicePayload(key, (), (), None))
    wire["upsert"] = [
        {
            "ip": iid.ip,
            "port": iid.port,
            "cluster": iid.cluster,
            "weight": 1.0,
            "enabled": True,
            "healthy": healthy,
            "metadata": {},
            "version": version,
            "alive": alive,
            "down": down,
        }
        for iid, version, alive, down, healthy in upserts
    ]
    wire["remove"] = [
        [iid.ip, iid.port, iid.cluster, draw(stamps(now)), draw(stamps(now))]
        for iid in draw(st.lists(st.sampled_from(IIDS), max_size=1))
    ]
    if draw(st.booleans()):
        wire["settings"] = [draw(st.sampled_from([0.0, 0.5, 2.0])), draw(stamps(now)), {}]
    if draw(st.integers(0, 5)) == 0:  # a name a client could not send
        wire[draw(st.sampled_from(["namespace", "group", "service"]))] = draw(
            st.sampled_from(BAD_NAMES)
        )
    return wire


ACTIONS = st.sampled_from(["delta", "reconcile", "round", "tick", "register", "noise"])


# -- one step of each kind ----------------------------------------------------------------------
def has_future_stamp(p: ServicePayload, now: float) -> bool:
    """The oracle, written apart from the core's: any stamp beyond wall + MAX_CLOCK_AHEAD."""
    found = [p.settings[1]] if p.settings is not None else []
    for v in p.upserts:
        found += [v.version, v.alive, v.down]
    for _, t_version, t_alive in p.removals:
        found += [t_version, t_alive]
    return any(s >> TAG_BITS > wall_us(now) + MAX_AHEAD_US for s in found)


def deliver_delta(node: DistroNode, wire: dict[str, Any], seq: int, now: float) -> None:
    body = {"v": 1, "node": "n2", "epoch": 9, "seq": seq, **wire}
    before = snapshot(node)
    try:
        msg = decode_replication([b"delta", msgpack.packb(body)])
    except RemoteProtocolError:
        return  # the runtime counts it; the core never sees it
    assert type(msg) is ReplicatedDelta
    future = has_future_stamp(msg.payload, now)
    rejected_before = node.counters["future_stamps"]
    node.on_replication(msg, now)
    if future:
        assert snapshot(node) == before, "a rejected delta changed something"
        assert node.counters["future_stamps"] == rejected_before + 1


def deliver_reconcile(node: DistroNode, wires: list[dict[str, Any]], now: float) -> None:
    msg = {"v": 1, "id": 1, "op": "reconcile", "node": "n2", "services": wires}
    before = snapshot(node)
    try:
        req = parse_peer_message(msg)
    except RequestRejected:
        assert snapshot(node) == before
        return
    future = {p.key for p in req.services if has_future_stamp(p, now)}
    accepted = {p.key for p in req.services if not has_future_stamp(p, now)}
    result = served(node, req, now)
    assert [s.key.service for s in result.services] == [p.key.service for p in req.services]
    for key in future - accepted:  # only rejected payloads for it: untouched
        assert snapshot(node)[0].get(key) == before[0].get(key)
        assert snapshot(node)[2].get(key) == before[2].get(key)


def run_round(node: DistroNode, draw: st.DrawFn, now: float) -> None:
    """Whatever calls the node has in flight get random, partly valid replies."""
    for _ in range(3):
        calls = [e for e in node.take_effects() if type(e) is PeerCall and e.op != "beacon"]
        if not calls:
            return
        for call in calls:
            if call.op == "digests":
                entries = [
                    [k.namespace, k.group, draw(st.sampled_from([k.service, *BAD_NAMES])), 1, 1]
                    for k in draw(st.lists(st.sampled_from(KEYS), max_size=3))
                ]
                reply: Any = {"node": "n2", "digests": entries, "more": False}
            else:
                asked = [p.key.service for p in call.request.services]
                wires = [draw(payloads(now)) for _ in asked]
                for wire, service in zip(wires, asked, strict=True):
                    if draw(st.integers(0, 4)):
                        wire["service"] = service
                reply = {"services": wires}
            if draw(st.integers(0, 6)) == 0:
                reply = draw(st.sampled_from([None, [], {"services": "x"}, {"digests": 1}]))
            before = snapshot(node)
            errors = node.counters["replication_errors"]
            peer_reply(node, call.tag, copy.deepcopy(reply), now)
            if node.counters["replication_errors"] > errors and call.op == "digests":
                assert snapshot(node)[:3] == before[:3]


def check_invariants(node: DistroNode, now: float) -> None:
    assert node.hlc.last_us <= wall_us(now) + MAX_AHEAD_US + 10_000
    for effect in node.take_effects():
        if type(effect) is Broadcast:
            m = effect.message
            frames = (
                encode_delta(m)
                if type(m) is ReplicatedDelta
                else encode_beacon(m)
                if type(m) is Beacon
                else encode_digest(m)
            )
            decode_replication(frames)  # our own messages always pass the wire
        assert type(effect) is not DigestSummary


@FUZZ
@given(data=st.data(), actions=st.lists(ACTIONS, min_size=1, max_size=8))
def test_random_peer_traffic_changes_only_what_it_may(
    data: st.DataObject, actions: list[str]
) -> None:
    node = fresh_node()
    now, seq = 1.0, 0
    for action in actions:
        if action == "tick":
            now += data.draw(st.sampled_from([0.01, 0.5, 3.0, 30.0]))
            node.tick(now)
        elif action == "delta":
            seq += data.draw(st.sampled_from([1, 1, 2, 0]))
            deliver_delta(node, data.draw(payloads(now)), seq, now)
        elif action == "reconcile":
            wires = data.draw(st.lists(payloads(now), min_size=0, max_size=3))
            deliver_reconcile(node, wires, now)
        elif action == "round":
            node.tick(now)
            run_round(node, data.draw, now)
        elif action == "register":
            key = data.draw(st.sampled_from(KEYS))
            served(node, RegisterInstance(7, key, IIDS[1], 2.0, True, {}), now, forwarded=True)
        else:
            node.on_replication(
                Beacon("n2", B, 9, True, data.draw(st.integers(0, 5)), ("n1", "n2")), now
            )
        check_invariants(node, now)


def test_the_probes_sequence_leaves_the_node_able_to_replicate() -> None:
    """orders\\0evil, then 2**63-1 stamps, then a normal write that must replicate."""
    node = fresh_node()
    evil = payload_to_wire(
        ServicePayload(
            KEYS[0],
            (InstanceView("6.6.6.6", 1, "DEFAULT", 1.0, True, True, {}, 2**63 - 1, 2**63 - 1, 0),),
            ((IIDS[0], 2**63 - 1, 0),),
        )
    )
    before = snapshot(node)
    poisoned = copy.deepcopy(evil)
    poisoned["service"] = "orders\0evil"
    try:
        parse_peer_message(
            {"v": 1, "id": 1, "op": "reconcile", "node": "x", "services": [poisoned]}
        )
    except RequestRejected:
        pass
    else:
        raise AssertionError("orders\\0evil got through")
    served(
        node,
        parse_peer_message({"v": 1, "id": 1, "op": "reconcile", "node": "x", "services": [evil]}),
        1.0,
    )
    body = {"v": 1, "node": "x", "epoch": 1, "seq": 1, **evil}
    node.on_replication(decode_replication([b"delta", msgpack.packb(body)]), 1.0)
    assert snapshot(node) == before
    # the reconcile, from a node never heard, merged nothing (review52 F2); the delta's
    # stamps were refused (replication comes only from the peers' own sockets)
    assert node.counters["reconciles_unheard"] == 1
    assert node.counters["future_stamps"] == 1
    served(node, RegisterInstance(9, KEYS[2], IIDS[0], 1.0, True, {}), 2.0, forwarded=True)
    check_invariants(node, 2.0)
