"""Client sessions (core/sessions): one renewal keeps every instance of a session alive.

A lone node and a cluster member, on a fake clock, through the real wire parser.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from answers import peer_reply, served, served_map, stats_map
from test_distro_faults import keys_owned_by as owned_keys

from meshreg.core.distro import Broadcast, ClusterPolicy, DistroNode, PeerCall
from meshreg.core.effects import ServiceChanged
from meshreg.core.health import HealthPolicy, SweepPass
from meshreg.core.quotas import LimitsPolicy
from meshreg.core.registry import RegistryNode
from meshreg.errors import ErrorCode
from meshreg.model import SESSION_DIGEST_MOD, InstanceId, ServiceKey, session_member_hash
from meshreg.wire.messages import RequestRejected, decode_body, parse_request
from meshreg.wire.peer import (
    Beacon,
    ReplicatedDelta,
    ServicePayload,
    SessionBeats,
    decode_replication,
    encode_delta,
    encode_sessions,
    parse_peer_message,
)

POLICY = HealthPolicy(check_interval=1.0, unhealthy_after=3.0, evict_after=6.0)
SID = "0123456789abcdef0123456789abcdef"
SID2 = "fedcba9876543210fedcba9876543210"
A, B = "10.0.0.2:7800", "10.0.0.3:7800"
CLUSTER = ClusterPolicy(peer_timeout=1.5, beacon_interval=0.25)


def body(op: str, req_id: int = 1, **fields: Any) -> bytes:
    return msgpack.packb({"v": 1, "id": req_id, "op": op, **fields})


class Lone:
    """A lone node ticked every 0.1 s; effects collected."""

    def __init__(self, policy: HealthPolicy = POLICY, limits: LimitsPolicy | None = None) -> None:
        self.now = 0.0
        self.node = RegistryNode(
            policy, 1, 0.0, "127.0.0.1:7800", detect_stalls=False, limits=limits
        )
        self.effects: list[Any] = []

    def handle(self, op: str, **fields: Any) -> Any:
        result = served_map(self.node, parse_request(body(op, **fields)), self.now)
        self.effects += self.node.take_effects()
        return result

    def register(self, service: str, ip: str, session: str | None = SID) -> None:
        extra = {} if session is None else {"session": session}
        self.handle("register", service=service, ip=ip, port=80, **extra)

    def run(self, seconds: float, renew: str | None = None, every: float = 1.0) -> None:
        steps = round(seconds / 0.1)
        per = round(every / 0.1)
        for i in range(steps):
            self.now = round(self.now + 0.1, 6)
            if renew is not None and i % per == 0:
                self.handle("session_renew", session=renew)
            self.node.tick(self.now)
            self.effects += self.node.take_effects()

    def healthy(self, service: str) -> dict[str, bool]:
        svc = self.node.store.services.get(ServiceKey("public", "DEFAULT_GROUP", service))
        return {} if svc is None else {i.ip: r.healthy for i, r in svc.instances.items()}

    def reasons(self) -> list[tuple[str, str]]:
        return [(e.key.service, e.reason) for e in self.effects if isinstance(e, ServiceChanged)]


def test_open_chooses_an_id_or_takes_the_clients() -> None:
    n = Lone()
    mine = n.handle("session_open", session=SID)
    assert mine["session"] == SID and mine["instances"] == 0
    theirs = n.handle("session_open")
    assert len(theirs["session"]) == 32 and theirs["session"] != SID
    assert n.handle("session_open")["session"] != theirs["session"]
    assert stats_map(n.node, n.now)["sessions"]["count"] == 3


def test_renewals_keep_every_instance_alive_and_silence_marks_then_evicts() -> None:
    n = Lone()
    n.handle("session_open", session=SID)
    for ip in ("10.0.0.1", "10.0.0.2"):
        n.register("orders", ip)
    n.register("payments", "10.0.0.3")
    n.run(20.0, renew=SID)  # well past evict_after: renewals alone keep them
    assert n.healthy("orders") == {"10.0.0.1": True, "10.0.0.2": True}
    renewed = n.handle("session_renew", session=SID)
    held = (("orders", "10.0.0.1"), ("orders", "10.0.0.2"), ("payments", "10.0.0.3"))
    hashes = [session_member_hash("DEFAULT_GROUP", svc, ip, 80, "DEFAULT") for svc, ip in held]
    digest = sum(hashes) % SESSION_DIGEST_MOD
    want = {"instances": 3, "known": True, "unhealthy_after": renewed["unhealthy_after"]}
    assert renewed == {**want, "digest": digest}  # the set as one number (review78 F4)
    assert renewed["unhealthy_after"] > 0  # the node's own (review27 F6)
    n.effects.clear()
    last = n.now
    n.run(2.9)  # silent: unhealthy after 3 s, at the first sweep from then on
    assert n.healthy("orders") == {"10.0.0.1": True, "10.0.0.2": True}
    n.run(1.1)
    assert n.healthy("orders") == {"10.0.0.1": False, "10.0.0.2": False}
    assert n.healthy("payments") == {"10.0.0.3": False}
    assert sorted(n.reasons()) == [("orders", "unhealthy"), ("payments", "unhealthy")]
    n.run(6.0 - (n.now - last))
    n.run(1.0)
    assert n.healthy("orders") == {} and n.healthy("payments") == {}
    assert ("orders", "evicted") in n.reasons() and ("payments", "evicted") in n.reasons()
    # empty and silent for evict_after: forgotten; a late renewal says it holds nothing
    assert n.node.store.sessions.get(SID) is None
    gone = n.handle("session_renew", session=SID)
    assert (gone["instances"], gone["known"]) == (0, False)
    assert n.node.store.recount() == n.node.store.counts()


def test_a_renewal_heals_a_silent_session_at_once() -> None:
    n = Lone()
    n.handle("session_open", session=SID)
    n.register("orders", "10.0.0.1")
    n.run(1.0, renew=SID)
    n.run(4.5)
    assert n.healthy("orders") == {"10.0.0.1": False}
    n.effects.clear()
    n.handle("session_renew", session=SID)
    assert n.healthy("orders") == {"10.0.0.1": True}
    assert n.reasons() == [("orders", "recovered")]


def test_per_instance_beats_still_rule_instances_outside_sessions() -> None:
    n = Lone()
    n.handle("session_open", session=SID)
    n.register("orders", "10.0.0.1")
    n.register("orders", "10.0.0.9", session=None)  # beats of its own
    n.run(4.5, renew=SID)
    assert n.healthy("orders") == {"10.0.0.1": True, "10.0.0.9": False}
    n.handle("beat", service="orders", ip="10.0.0.9", port=80)
    assert n.healthy("orders") == {"10.0.0.1": True, "10.0.0.9": True}


def test_a_beat_does_not_heal_an_instance_its_silent_session_holds() -> None:
    n = Lone()
    n.register("orders", "10.0.0.1")
    n.run(4.5)
    assert n.healthy("orders") == {"10.0.0.1": False}
    n.handle("beat", service="orders", ip="10.0.0.1", port=80)  # accepted, changes nothing
    assert n.healthy("orders") == {"10.0.0.1": False}


def test_close_deregisters_every_instance_of_the_session() -> None:
    n = Lone()
    n.handle("session_open", session=SID)
    n.register("orders", "10.0.0.1")
    n.register("payments", "10.0.0.2")
    n.register("orders", "10.0.0.9", session=None)
    n.effects.clear()
    assert n.handle("session_close", session=SID) == {"deregistered": 2}
    assert n.healthy("orders") == {"10.0.0.9": True} and n.healthy("payments") == {}
    assert sorted(n.reasons()) == [("orders", "deregistered"), ("payments", "deregistered")]
    assert n.node.store.sessions.get(SID) is None
    assert n.handle("session_close", session=SID) == {"deregistered": 0}  # idempotent
    assert n.node.store.recount() == n.node.store.counts()


def test_registering_again_in_another_session_moves_the_instance() -> None:
    n = Lone()
    n.register("orders", "10.0.0.1", SID)
    n.register("orders", "10.0.0.1", SID2)  # the client restarted with a new session
    assert n.node.store.sessions.get(SID).count == 0  # type: ignore[union-attr]
    assert n.node.store.sessions.get(SID2).count == 1  # type: ignore[union-attr]
    n.run(10.0, renew=SID2)
    assert n.healthy("orders") == {"10.0.0.1": True}


@pytest.mark.parametrize(
    ("op", "fields", "code", "words"),
    [
        ("session_open", {"session": "ABC"}, ErrorCode.INVALID_ARGUMENT, "32 lowercase hex"),
        ("session_open", {"session": 5}, ErrorCode.INVALID_ARGUMENT, "'session'"),
        ("session_renew", {}, ErrorCode.INVALID_ARGUMENT, "'session' is required"),
        ("session_close", {"session": SID + "0"}, ErrorCode.INVALID_ARGUMENT, "hex"),
        (
            "session_renew",
            {"session": SID, "namespace": "a b"},
            ErrorCode.INVALID_ARGUMENT,
            "namespace",
        ),
        (
            "register",
            {"service": "s", "ip": "10.0.0.1", "port": 1, "session": "x" * 32},
            ErrorCode.INVALID_ARGUMENT,
            "session",
        ),
    ],
)
def test_invalid_session_requests_are_rejected(
    op: str, fields: dict[str, Any], code: ErrorCode, words: str
) -> None:
    with pytest.raises(RequestRejected) as info:
        parse_request(body(op, **fields))
    assert info.value.code == code and words in info.value.message


def test_a_session_belongs_to_one_namespace() -> None:
    n = Lone()
    n.handle("session_open", session=SID)
    before = n.node.store.counts()
    with pytest.raises(RequestRejected) as info:
        n.handle("register", namespace="other", service="s", ip="10.0.0.1", port=1, session=SID)
    assert (
        info.value.code == ErrorCode.INVALID_ARGUMENT and "another namespace" in info.value.message
    )
    with pytest.raises(RequestRejected) as info:
        n.handle("session_renew", namespace="other", session=SID)
    assert info.value.code == ErrorCode.NOT_FOUND
    with pytest.raises(RequestRejected):
        n.handle("session_close", namespace="other", session=SID)
    assert n.node.store.counts() == before


def test_max_sessions_refuses_new_sessions_only() -> None:
    n = Lone(limits=LimitsPolicy(max_sessions=1))
    n.handle("session_open", session=SID)
    for op, fields in (
        ("session_open", {"session": SID2}),
        ("session_renew", {"session": SID2}),
        ("register", {"service": "s", "ip": "10.0.0.1", "port": 1, "session": SID2}),
    ):
        with pytest.raises(RequestRejected) as info:
            n.handle(op, **fields)
        assert info.value.code == ErrorCode.RESOURCE_EXHAUSTED
        assert "max_sessions" in info.value.message
    assert n.node.store.counts()["instances"] == 0 and len(n.node.store.sessions) == 1
    n.handle("session_renew", session=SID)  # the session it holds is served as usual
    n.register("s", "10.0.0.1", SID)


def test_the_sweep_reads_sessions_not_the_instances_they_keep_alive() -> None:
    n = Lone()
    n.handle("session_open", session=SID)
    for i in range(5000):
        n.register(f"svc{i % 10}", f"10.{i // 250}.{i % 250}.1")
    n.run(2.0, renew=SID)  # the first pass reads the new records once
    store = n.node.store
    run = SweepPass(store, n.now, POLICY, step=100)
    turns = 0
    while not run.advance():
        turns += 1
        assert turns < 5  # 10 services and 1 session: a few steps of 100, not 5000 reads
    assert run.silent == 0 and run.found == [] and run.total == 5000


def test_self_preservation_counts_silent_sessions_as_streams() -> None:
    """Two silent sessions holding most instances look like this node's network: held.
    One is one process that stopped (review24 F4: its 20 of 21 instances were held, and
    served under a protect threshold, up to self_preservation_max): evicted on time."""
    policy = HealthPolicy(check_interval=1.0, unhealthy_after=3.0, evict_after=6.0)
    for sessions, held in ((1, False), (2, True)):
        n = Lone(policy)
        sids = [SID, SID2][:sessions]
        for sid in sids:
            n.handle("session_open", session=sid)
        for i in range(20):
            n.register("orders", f"10.0.0.{i + 1}", session=sids[i % sessions])
        n.register("orders", "10.0.1.1", session=None)
        for _ in range(20):  # proven: renewed after registering
            for sid in sids:
                n.handle("session_renew", session=sid)
            n.run(0.1)
        for _ in range(100):  # silent for 10 s, the lone instance beating
            n.handle("beat", service="orders", ip="10.0.1.1", port=80)
            n.run(0.1)
        assert n.node.preservation.active is held, sessions
        if held:
            assert len(n.healthy("orders")) == 21  # held: marked, not evicted
            assert list(n.healthy("orders").values()).count(False) == 20
        else:
            assert n.healthy("orders") == {"10.0.1.1": True}  # evicted on time


def test_a_session_never_renewed_is_evicted_even_while_preserving() -> None:
    n = Lone()
    n.register("orders", "10.0.0.1", SID)  # no session_open, no renewal: unproven
    for i in range(20):
        n.register("orders", f"10.0.1.{i + 1}", session=None)
    n.run(1.0)
    for _ in range(2):
        for i in range(20):
            n.handle("beat", service="orders", ip=f"10.0.1.{i + 1}", port=80)
        n.run(0.5)
    n.run(10.0)  # everything silent: preserving, but the unproven one goes
    assert n.node.preservation.active
    assert "10.0.0.1" not in n.healthy("orders") and len(n.healthy("orders")) == 20


# -- a cluster member ----------------------------------------------------------------------
def keys_owned_by(owner: str, n: int = 1) -> list[ServiceKey]:
    return owned_keys(owner, ("n1", "n2", "n3"), n)


class Member:
    """n1 of n1..n3, ready, peers beaconing every 0.1 s."""

    def __init__(self) -> None:
        self.now = 0.0
        self.node = DistroNode(POLICY, CLUSTER, "n1", "10.0.0.1:7800", [A, B], 7, 0.0)
        self.effects: list[Any] = []
        self.beacons()
        self.step()
        for call in [e for e in self.effects if isinstance(e, PeerCall) and e.op != "beacon"]:
            peer_reply(self.node, call.tag, {"node": call.node_id, "digests": [], "more": False}, 0)
        self.step()
        assert self.node.ready

    def beacons(self) -> None:
        for peer, address in (("n2", A), ("n3", B)):
            self.node.on_replication(
                Beacon(peer, address, 9, True, 0, ("n1", "n2", "n3")), self.now
            )

    def step(self, dt: float = 0.0) -> None:
        self.now = round(self.now + dt, 6)
        self.node.tick(self.now)
        self.effects += self.node.take_effects()

    def run(self, seconds: float, peer_renews: str | None = None) -> None:
        for i in range(round(seconds / 0.1)):
            self.beacons()
            if peer_renews is not None and i % 10 == 0:
                stamp = self.node.registry.wall_stamp(self.now)
                beats = SessionBeats("n2", 9, ((peer_renews, "public", stamp),))
                self.node.on_replication(decode_replication(encode_sessions(beats)), self.now)
            self.step(0.1)

    def handle(self, op: str, forwarded: bool = False, **fields: Any) -> Any:
        result = served_map(self.node, parse_request(body(op, **fields)), self.now, forwarded)
        self.effects += self.node.take_effects()
        return result

    def broadcasts(self, kind: type) -> list[Any]:
        return [
            e.message
            for e in self.effects
            if isinstance(e, Broadcast) and isinstance(e.message, kind)
        ]


def test_a_renewal_is_replicated_once_per_turn_whatever_the_session_holds() -> None:
    m = Member()
    (key,) = keys_owned_by("n1")
    m.handle("session_open", session=SID)
    for i in range(50):
        m.handle("register", service=key.service, ip=f"10.0.0.{i + 1}", port=80, session=SID)
    m.effects.clear()
    m.handle("session_renew", session=SID)
    beats = m.broadcasts(SessionBeats)
    assert len(beats) == 1 and [e[0] for e in beats[0].entries] == [SID]
    assert not m.broadcasts(ReplicatedDelta)  # nothing per instance
    # and it decodes on a peer as it was sent
    assert decode_replication(encode_sessions(beats[0])) == beats[0]


def test_renewals_a_peer_received_keep_the_owners_instances_alive() -> None:
    m = Member()
    (key,) = keys_owned_by("n1")
    m.handle("register", service=key.service, ip="10.0.0.1", port=80, session=SID)
    m.run(12.0, peer_renews=SID)  # the client renews at n2; n1 judges the service
    rec = m.node.store.services[key].instances[InstanceId("10.0.0.1", 80, "DEFAULT")]
    assert rec.healthy
    m.run(4.5)  # n2 stops relaying renewals: n1 judges by the last one
    assert not rec.healthy


def test_an_old_renewal_does_not_heal_a_silent_session_and_a_fresh_one_does() -> None:
    """A renewal heals the instances of a silent session only if it is news that the
    session lives now: newer than any known, and within unhealthy_after.  A relayed one
    (review15 F2), a relay's first catch-up or a late copy from the second path may be
    old: healing on it (before) revived the instances of a dead session, and the healing
    write refuted their eviction (the flapping pair cut sims: dead session instances
    listed 20-24.5 s after the kill, bound 19.5 s)."""
    m = Member()
    (key,) = keys_owned_by("n1")
    m.handle("register", service=key.service, ip="10.0.0.1", port=80, session=SID)
    m.run(2.0, peer_renews=SID)
    last = m.node.registry.wall_stamp(m.now - 0.1)  # the client's last renewal
    m.run(4.5)  # silent since: marked
    rec = m.node.store.services[key].instances[InstanceId("10.0.0.1", 80, "DEFAULT")]
    assert not rec.healthy
    for stamp in (last, m.node.registry.wall_stamp(m.now - POLICY.unhealthy_after - 0.5)):
        m.node.on_replication(SessionBeats("n3", 9, ((SID, "public", stamp),)), m.now)
        m.step()
        assert not rec.healthy  # not news, or news of a time it was silent already
    m.node.on_replication(
        SessionBeats("n2", 9, ((SID, "public", m.node.registry.wall_stamp(m.now)),)), m.now
    )
    m.step()
    assert rec.healthy


def test_an_instance_learned_from_a_peer_gets_a_grace_period_from_first_sight() -> None:
    m = Member()
    (key,) = keys_owned_by("n1")
    m.run(10.0)
    # n2 registered it long ago (its stamps are old): n1 only learns of it now
    old = m.node.registry.wall_stamp(0.5)
    other = RegistryNode(POLICY, 3, 0.5, "x", detect_stalls=False)
    served(
        other,
        parse_request(body("register", service=key.service, ip="10.0.0.1", port=80, session=SID)),
        0.5,
    )
    view = other.store.services[key].instances[InstanceId("10.0.0.1", 80, "DEFAULT")].view()
    assert view.session == SID and view.version <= old + 2**20
    delta = ReplicatedDelta("n2", 9, 1, ServicePayload(key, (view,), (), None))
    m.node.on_replication(decode_replication(encode_delta(delta)), m.now)
    assert m.node.store.sessions.get(SID) is not None
    m.run(2.5)
    rec = m.node.store.services[key].instances[InstanceId("10.0.0.1", 80, "DEFAULT")]
    assert rec.healthy  # no renewal heard yet, but it was first seen 2.5 s ago
    m.run(2.0)
    assert not rec.healthy  # still none: the session is silent


def test_a_mark_on_older_session_evidence_is_refuted() -> None:
    m = Member()
    (key,) = keys_owned_by("n2")
    m.handle("register", forwarded=True, service=key.service, ip="10.0.0.1", port=80, session=SID)
    iid = InstanceId("10.0.0.1", 80, "DEFAULT")
    rec = m.node.store.services[key].instances[iid]
    m.run(5.0, peer_renews=SID)  # longer ago than unhealthy_after: only the session counts
    m.handle("session_renew", session=SID)  # the client renews here
    m.effects.clear()
    stale = rec.view()
    marked = type(stale)(
        stale.ip,
        stale.port,
        stale.cluster,
        1.0,
        True,
        False,
        {},
        rec.version,
        rec.version,
        rec.version,
        SID,
    )
    m.node.on_replication(
        ReplicatedDelta("n2", 9, 1, ServicePayload(key, (marked,), (), None)), m.now
    )
    m.effects += m.node.take_effects()
    assert rec.healthy and m.node.counters["refuted"] == 1
    assert [d for d in m.broadcasts(ReplicatedDelta) if d.payload.key == key]


def test_evidence_in_a_replicated_record_renews_the_session_for_the_sweep() -> None:
    """The judge lost the renewals (a partition) and marked; a peer that kept hearing
    them refutes and replicates the record with its newer evidence.  That evidence must
    count for the session here, or the judge's next sweep marks the record again on its
    own older news, with a stamp the peer can no longer refute (chaos dereg-partition,
    seed 1173934470: 0.7 s unhealthy after the heal)."""
    m = Member()
    (key,) = keys_owned_by("n1")
    m.handle("register", service=key.service, ip="10.0.0.1", port=80, session=SID)
    iid = InstanceId("10.0.0.1", 80, "DEFAULT")
    rec = m.node.store.services[key].instances[iid]
    m.run(4.5)  # no renewal reaches n1: it marks
    assert not rec.healthy
    # n2 heard the renewals all along: its record carries one from 0.2 s ago
    evidence = m.node.registry.wall_stamp(m.now - 0.2) | 5
    view = rec.view()
    refuted = type(view)(
        view.ip,
        view.port,
        view.cluster,
        1.0,
        True,
        True,
        {},
        rec.version,
        evidence,
        rec.down,
        SID,
    )
    m.node.on_replication(
        ReplicatedDelta("n2", 9, 1, ServicePayload(key, (refuted,), (), None)), m.now
    )
    assert rec.healthy
    m.run(2.0)  # sweeps at n1 before any renewal reaches it: less than 3 s since 0.2 s ago
    assert rec.healthy
    m.run(1.5)  # then silence again: judged by that evidence, not forever
    assert not rec.healthy


def test_a_peer_renewal_with_a_stamp_far_ahead_is_ignored() -> None:
    m = Member()
    m.handle("register", forwarded=True, service="s", ip="10.0.0.1", port=80, session=SID)
    before = m.node.store.sessions.get(SID).last_renewed  # type: ignore[union-attr]
    ahead = m.node.registry.wall_stamp(m.now + 3600)
    m.node.on_replication(SessionBeats("n2", 9, ((SID, "public", ahead),)), m.now + 1)
    assert m.node.store.sessions.get(SID).last_renewed == before  # type: ignore[union-attr]
    assert m.node.counters["future_stamps"] == 1


def test_a_mass_expiry_is_applied_in_bounded_steps() -> None:
    """A client holding 12,000 instances dies: marking them takes several loop turns of
    at most about SWEEP_STEP instances each, never one long stall."""
    n = Lone()
    n.handle("session_open", session=SID)
    for i in range(12_000):
        n.register(f"svc{i % 120}", f"10.{i // 250}.{i % 250}.1")
    n.run(2.0, renew=SID)
    n.run(2.9)
    assert n.node.store.counts()["unhealthy"] == 0
    n.now = round(n.now + 1.0, 6)  # past unhealthy_after, at a sweep
    marked_per_turn = []
    for _ in range(50):  # bounded: a handful of turns is expected
        wake = n.node.tick(n.now)
        changes = [e for e in n.node.take_effects() if isinstance(e, ServiceChanged)]
        marked_per_turn.append(sum(len(c.upserted) for c in changes))
        if wake > n.now:
            break
    assert sum(marked_per_turn) == 12_000 == n.node.store.counts()["unhealthy"]
    assert max(marked_per_turn) <= 6_000 and len([m for m in marked_per_turn if m]) >= 2


def test_renewals_go_to_each_peer_over_the_request_path_too() -> None:
    """A second path (DISTRO.md "Two paths"): a stalled replication stream must not
    silence the sessions renewed through its node; a lost push aborts no sync round."""
    m = Member()
    m.handle("session_open", session=SID)
    m.effects.clear()
    m.handle("session_renew", session=SID)
    calls = [e for e in m.effects if isinstance(e, PeerCall) and e.op == "sessions"]
    assert sorted(c.node_id for c in calls) == ["n2", "n3"]
    assert [tuple(e[:2]) for e in calls[0].request.beats.entries] == [(SID, "public")]
    rounds = dict(m.node._rounds)
    for c in calls:
        m.node.peer_failed(c.tag, m.now)
    assert m.node._rounds == rounds and not m.node._round_backoff


def test_a_pushed_renewal_counts_like_a_published_one() -> None:
    m = Member()
    (key,) = keys_owned_by("n1")
    m.handle("register", service=key.service, ip="10.0.0.1", port=80, session=SID)
    rec = m.node.store.services[key].instances[InstanceId("10.0.0.1", 80, "DEFAULT")]
    for _ in range(12):  # the client renews at n2, whose stream is stalled: only pushes
        stamp = m.node.registry.wall_stamp(m.now)
        push = msgpack.packb(
            {
                "v": 1,
                "id": 3,
                "op": "sessions",
                "node": "n2",
                "epoch": 9,
                "sessions": [[SID, "public", stamp]],
            }
        )
        assert served(m.node, parse_peer_message(decode_body(push)), m.now, True) is None
        m.run(1.0)
    assert rec.healthy and m.node.counters["session_beats_in"] == 12


def test_a_session_is_checked_against_its_clients_access_per_generation_and_service() -> None:
    """review17 F8, review18 F1: a renewal by the session's client checks its instances
    against the client's access (``check_session_access``): once per access generation,
    and again when a service entered the session since (registered through another node,
    under another ACL, in a rolling restart)."""
    m = Lone()
    m.handle("session_open", session=SID)
    m.register("s1", "10.0.0.1")
    asked: list[str] = []

    def only_s1(key: ServiceKey) -> bool:
        asked.append(key.service)
        return key.service == "s1"

    assert m.node.check_session_access(SID, "public", 0, only_s1, m.now) == 0
    assert asked == ["s1"]
    assert m.node.check_session_access(SID, "public", 0, only_s1, m.now) == 0  # checked already
    assert asked == ["s1"]
    m.register("s2", "10.0.0.2")  # a service new to the session: checked again
    assert m.node.check_session_access(SID, "public", 0, only_s1, m.now) == 1
    assert m.healthy("s2") == {} and m.healthy("s1") == {"10.0.0.1": True}
    removed = [e for e in m.node.take_effects() + m.effects if isinstance(e, ServiceChanged)]
    assert any(c.key.service == "s2" and c.removed for c in removed)
    assert m.node.check_session_access(SID, "public", 1, lambda key: False, m.now) == 1  # a reload
    assert m.healthy("s1") == {}


def test_a_renewal_naming_another_namespace_checks_nothing() -> None:
    """review23 F2: a renewal of the session under another namespace is refused; the
    access check ran before with the sender's rights (a key of that other namespace, which
    may write nothing here) and deregistered every instance of the session."""
    m = Lone()
    m.handle("session_open", session=SID)
    m.register("s1", "10.0.0.1")
    assert m.node.check_session_access(SID, "other", 0, lambda key: False, m.now) == 0
    assert m.healthy("s1") == {"10.0.0.1": True}
    assert m.node.check_session_access(SID, "public", 0, lambda key: True, m.now) == 0
