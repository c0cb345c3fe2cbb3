"""Bounded stamps (issue 10, H1's data part): a stamp far ahead of the receiver's clock is
rejected, counted and reported without moving the clock, and a node's own stamps always
pass the wire, so no message can leave a node unable to replicate (docs/DISTRO.md)."""

from __future__ import annotations

from typing import Any

import pytest
from answers import peer_reply, served, stats_map

from meshreg.config import ClusterPolicy
from meshreg.core import distro
from meshreg.core.distro import Broadcast, DistroNode, PeerCall
from meshreg.core.effects import InstanceView, PeerDataRejected
from meshreg.core.health import HealthPolicy
from meshreg.core.versions import MAX_US, TAG_BITS, HybridClock, stamp_limit
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire import limits
from meshreg.wire.messages import RegisterInstance, RequestRejected
from meshreg.wire.peer import (
    ReplicatedDelta,
    ServicePayload,
    decode_replication,
    encode_delta,
    parse_peer_message,
    payload_to_wire,
)

WALL = 1_790_000_000.0  # s; the wall clock is monotonic time + this offset
A, B = "10.0.0.1:7800", "10.0.0.2:7800"
KEY = ServiceKey("public", "DEFAULT_GROUP", "orders")
OTHER = ServiceKey("public", "DEFAULT_GROUP", "pay")
IID = InstanceId("10.1.1.1", 80, "DEFAULT")
NOW = 10.0
AHEAD = int(limits.MAX_CLOCK_AHEAD * 1_000_000)  # µs


def node(node_id: str = "n1", offset: float = WALL) -> DistroNode:
    address, peer = (A, B) if node_id == "n1" else (B, A)
    return DistroNode(
        HealthPolicy(), ClusterPolicy(), node_id, address, [peer], 1, 0.0, wall_offset=offset
    )


def stamp_at(wall: float, tag: int = 5) -> int:
    return (int(wall * 1_000_000) << TAG_BITS) | tag


def view(version: int, alive: int | None = None, down: int = 0) -> InstanceView:
    alive = version if alive is None else alive
    return InstanceView(
        IID.ip, IID.port, IID.cluster, 1.0, True, down < alive, {}, version, alive, down
    )


def delta(p: ServicePayload, seq: int = 1) -> ReplicatedDelta:
    """Through the real wire: what decode_replication lets in."""
    frames = encode_delta(ReplicatedDelta("n3", 9, seq, p))
    msg = decode_replication(frames)
    assert type(msg) is ReplicatedDelta
    return msg


def snapshot(n: DistroNode) -> Any:
    return (
        {
            k: {i: (r.version, r.alive, r.down) for i, r in s.instances.items()}
            for k, s in n.store.services.items()
        },
        dict(n.store.tombstones),
        dict(n.store.settings),
        n.store.revision,
        n.hlc.last_us,
        dict(n.applied_seq),
    )


def rejections(n: DistroNode) -> list[PeerDataRejected]:
    return [e for e in n.take_effects() if type(e) is PeerDataRejected]


# -- the probe's case -----------------------------------------------------------------------
def test_a_version_of_2_63_minus_1_is_rejected_and_moves_nothing() -> None:
    n1 = node()
    before = snapshot(n1)
    hostile = delta(ServicePayload(KEY, (view(limits.MAX_STAMP),), ()))
    n1.on_replication(hostile, NOW)
    assert snapshot(n1) == before  # no record, no clock move, no applied seq
    assert n1.counters["future_stamps"] == 1 and n1.counters["replication_errors"] == 1
    [report] = rejections(n1)
    assert report.peer == "n3" and report.what == "delta"
    assert "ahead of this node's clock" in report.reason and "NTP" in report.reason
    assert stats_map(n1, NOW)["future_stamps"] == 1


def test_after_a_hostile_stamp_a_node_still_replicates_to_its_peers() -> None:
    """The finding: from then on every replicated change was rejected, forever."""
    n1, n2 = node("n1"), node("n2")
    for target in (n1, n2):
        target.on_replication(delta(ServicePayload(KEY, (view(limits.MAX_STAMP),), ())), NOW)
    served(n1, RegisterInstance(1, OTHER, IID, 1.0, True, {}), NOW, forwarded=True)
    sent = [e.message for e in n1.take_effects() if type(e) is Broadcast]
    assert sent
    for message in sent:
        frames = encode_delta(message)  # type: ignore[arg-type]
        n2.on_replication(decode_replication(frames), NOW + 0.01)  # the wire accepts it
    rec = n2.store.get(OTHER).instances[IID]  # type: ignore[union-attr]
    assert rec.version >> TAG_BITS == int((NOW + WALL) * 1_000_000)
    assert n2.counters["future_stamps"] == 1  # only the hostile one


# -- where the bound lies --------------------------------------------------------------------
@pytest.mark.parametrize(("ahead", "accepted"), [(0.0, True), (59.0, True), (61.0, False)])
def test_the_bound_is_max_clock_ahead_of_the_receivers_wall_clock(
    ahead: float, accepted: bool
) -> None:
    n1 = node()
    stamp = stamp_at(NOW + WALL + ahead)
    n1.on_replication(delta(ServicePayload(KEY, (view(stamp),), ())), NOW)
    assert (n1.store.get(KEY) is not None) is accepted
    assert n1.counters["future_stamps"] == (0 if accepted else 1)
    if accepted:  # the clock follows what it accepted
        assert n1.hlc.last_us == stamp >> TAG_BITS
        assert n1.applied_seq["n3"] == (9, 1)
    else:
        assert n1.hlc.last_us == 0 and "n3" not in n1.applied_seq


FAR = stamp_at(WALL + NOW + 3600)
OK = stamp_at(WALL + NOW - 1)
PAYLOADS_WITH_ONE_FUTURE_STAMP = {
    "version": ServicePayload(KEY, (view(FAR),), ()),
    "alive": ServicePayload(KEY, (view(OK, FAR),), ()),
    "down": ServicePayload(KEY, (view(OK, FAR, FAR + 1),), ()),
    "tombstone version": ServicePayload(KEY, (), ((IID, FAR, 0),)),
    "tombstone alive": ServicePayload(KEY, (), ((IID, OK, FAR),)),
    "settings version": ServicePayload(KEY, (), (), (0.5, FAR, {})),
}


@pytest.mark.parametrize("field", sorted(PAYLOADS_WITH_ONE_FUTURE_STAMP))
def test_every_stamp_field_is_bounded(field: str) -> None:
    n1 = node()
    n1.on_replication(delta(ServicePayload(OTHER, (view(OK),), ())), NOW)  # some state
    before = snapshot(n1)
    n1.on_replication(delta(PAYLOADS_WITH_ONE_FUTURE_STAMP[field], seq=2), NOW)
    assert snapshot(n1) == before
    assert n1.counters["future_stamps"] == 1


# -- reconcile requests and replies ----------------------------------------------------------------
def test_a_reconcile_request_merges_its_good_services_and_rejects_the_future_one() -> None:
    from meshreg.wire.peer import Beacon

    n1 = node()
    n1.on_replication(Beacon("n2", B, 9, True, 0, ("n1", "n2")), NOW)  # a member it heard
    n1.take_effects()
    clock_before = n1.hlc.last_us
    good = ServicePayload(OTHER, (view(OK),), ())
    bad = ServicePayload(KEY, (view(FAR),), ())
    msg = {"v": 1, "id": 3, "op": "reconcile", "node": "n2"}
    req = parse_peer_message({**msg, "services": [payload_to_wire(good), payload_to_wire(bad)]})
    result = served(n1, req, NOW)
    assert n1.store.get(OTHER) is not None and n1.store.get(KEY) is None
    assert [p.key.service for p in result.services] == ["pay", "orders"]  # both answered
    assert n1.counters["future_stamps"] == 1
    assert n1.hlc.last_us == max(clock_before, OK >> TAG_BITS)  # the far stamp: not taken
    assert [r.what for r in rejections(n1)] == ["reconcile"]


def round_to_reconcile(n1: DistroNode) -> PeerCall:
    """n2 comes up; n1's round pages its digests (listing KEY) and asks to reconcile KEY."""
    from meshreg.wire.peer import Beacon

    n1.on_replication(Beacon("n2", B, 9, True, 0, ("n1", "n2")), NOW)
    n1.tick(NOW)
    [ask] = [e for e in n1.take_effects() if type(e) is PeerCall and e.op != "beacon"]
    assert ask.op == "digests"
    page = {"node": "n2", "digests": [["public", "DEFAULT_GROUP", "orders", 1, 1]], "more": False}
    peer_reply(n1, ask.tag, page, NOW)
    [call] = [e for e in n1.take_effects() if type(e) is PeerCall and e.op != "beacon"]
    assert call.op == "reconcile"
    return call


def test_a_reconcile_reply_with_a_future_stamp_changes_nothing() -> None:
    n1 = node()
    call = round_to_reconcile(n1)
    before = snapshot(n1)
    reply = {"services": [payload_to_wire(ServicePayload(KEY, (view(FAR),), ()))]}
    peer_reply(n1, call.tag, reply, NOW)
    assert snapshot(n1)[:4] == before[:4]
    # the round is over and n1 ready: its clock ticks for that, but never towards the stamp
    assert n1.hlc.last_us <= int((NOW + WALL) * 1_000_000) + 10
    assert n1.counters["future_stamps"] == 1
    assert [r.what for r in rejections(n1)] == ["reconcile reply"]


def test_a_reconcile_reply_naming_a_service_not_asked_for_is_rejected_whole() -> None:
    n1 = node()
    call = round_to_reconcile(n1)
    before = snapshot(n1)
    services = [ServicePayload(KEY, (view(OK),), ()), ServicePayload(OTHER, (view(OK),), ())]
    peer_reply(n1, call.tag, {"services": [payload_to_wire(p) for p in services]}, NOW)
    assert snapshot(n1)[:5] == before[:5]  # not even the service that was asked for
    assert "n2" not in n1._rounds  # aborted; retried on a later tick
    assert n1.counters["replication_errors"] == 1 and n1.counters["future_stamps"] == 0
    [report] = rejections(n1)
    assert report.what == "reconcile reply" and "not asked for" in report.reason


def test_a_digest_page_with_a_bad_name_aborts_the_round_and_is_reported() -> None:
    from meshreg.wire.peer import Beacon

    n1 = node()
    n1.on_replication(Beacon("n2", B, 9, True, 0, ("n1", "n2")), NOW)
    n1.tick(NOW)
    [ask] = [e for e in n1.take_effects() if type(e) is PeerCall and e.op != "beacon"]
    page = {"digests": [["public", "DEFAULT_GROUP", "orders\0evil", 1, 1]], "more": False}
    peer_reply(n1, ask.tag, page, NOW)
    assert n1.counters["replication_errors"] == 1
    assert "n2" not in n1._rounds  # aborted; retried on a later tick
    [report] = rejections(n1)
    assert report.what == "digests reply" and "'service'" in report.reason


# -- reports are rate-limited; counters are not ----------------------------------------------
def test_reports_are_rate_limited_per_kind_and_count_what_they_suppressed() -> None:
    n1 = node()
    hostile = delta(ServicePayload(KEY, (view(FAR),), ()))
    for i in range(50):
        n1.on_replication(hostile, NOW + i * 0.01)
    assert n1.counters["future_stamps"] == 50
    assert len(rejections(n1)) == 1
    n1.on_replication(hostile, NOW + distro.REPORT_INTERVAL + 0.01)
    [report] = rejections(n1)
    assert report.suppressed == 49


# -- the clock itself ------------------------------------------------------------------------
def test_the_clock_never_issues_a_stamp_the_wire_rejects() -> None:
    clock = HybridClock("n1")
    clock.observe(limits.MAX_STAMP)  # as a node did before the bound (or a clock in 2255)
    stamps = [clock.stamp(WALL) for _ in range(3)] + [clock.stamp(1e12)]
    assert all(0 < s <= limits.MAX_STAMP for s in stamps)
    assert clock.last_us == MAX_US
    for s in stamps:  # each one passes the wire's check
        decode_replication(
            encode_delta(ReplicatedDelta("n1", 1, 1, ServicePayload(KEY, (view(s),), ())))
        )


def test_the_clock_is_strictly_increasing_below_saturation() -> None:
    clock = HybridClock("n1")
    stamps = [clock.stamp(WALL) for _ in range(1000)] + [clock.stamp(WALL - 5)]
    assert all(a < b for a, b in zip(stamps, stamps[1:], strict=False))


def test_stamp_limit_is_the_wall_clock_plus_max_clock_ahead() -> None:
    limit = stamp_limit(WALL)
    assert limit >> TAG_BITS == int(WALL * 1_000_000) + AHEAD
    assert stamp_limit(1e13) <= limits.MAX_STAMP  # saturates too
    assert stamp_limit(-100.0) >= 0


def test_a_rejected_reconcile_request_with_a_bad_name_never_reaches_the_core() -> None:
    bad = payload_to_wire(ServicePayload(KEY, (view(OK),), ()))
    bad["service"] = "orders\0evil"
    with pytest.raises(RequestRejected):
        parse_peer_message({"v": 1, "id": 1, "op": "reconcile", "node": "n2", "services": [bad]})


@pytest.mark.parametrize("healthy", [True, False])
def test_a_drain_or_a_changed_registration_replicates(healthy: bool) -> None:
    """Found by the request fuzzer: an update (or a registration with new fields) stamped
    ``version`` above ``alive``, and every peer's wire refused the delta ("alive must be
    >= version"). A write now counts as evidence (as the merge has it) and leaves an
    unhealthy record unhealthy, so the delta passes and both nodes hold the same stamps."""
    from meshreg.wire.messages import UpdateInstance

    n1, n2 = node("n1"), node("n2")

    def replicate() -> tuple[Any, ...]:
        for effect in n1.take_effects():
            if type(effect) is Broadcast:
                msg = decode_replication(encode_delta(effect.message))  # type: ignore[arg-type]
                n2.on_replication(msg, 4.0)
        mine, theirs = (n.store.get(KEY).instances[IID] for n in (n1, n2))  # type: ignore[union-attr]
        stamps = [
            (r.version, r.alive, r.down, r.healthy, *n.store.effective(KEY, r)[::-1])
            for r, n in ((mine, n1), (theirs, n2))
        ]
        assert stamps[0] == stamps[1]
        assert mine.alive >= mine.version
        return stamps[0]

    served(n1, RegisterInstance(1, KEY, IID, 1.0, True, {}), 1.0, forwarded=True)
    if not healthy:
        n1.registry.emit(n1.store.set_health(KEY, (IID,), False, n1.registry.stamp(2.0)))
    replicate()
    served(n1, UpdateInstance(2, KEY, IID, None, False), 3.0, forwarded=True)
    assert replicate()[3:5] == (healthy, False)  # drained; a drain heals nobody
    served(n1, RegisterInstance(3, KEY, IID, 2.0, True, {"v": "2"}), 4.0, forwarded=True)
    # the provider itself: healed; the operator's drain stays (core/overrides, F-drain)
    assert replicate()[3:] == (True, False, 2.0)


def test_digest_pages_must_move_forward() -> None:
    """A page that lists a service again (or out of order) aborts the round: a peer cannot
    keep one paging through the same services forever."""
    from meshreg.wire.peer import Beacon

    n1 = node()
    n1.on_replication(Beacon("n2", B, 9, True, 0, ("n1", "n2")), NOW)
    n1.tick(NOW)
    [ask] = [e for e in n1.take_effects() if type(e) is PeerCall and e.op != "beacon"]
    first = {"digests": [["public", "G", "a", 1, 1], ["public", "G", "b", 1, 1]], "more": True}
    peer_reply(n1, ask.tag, first, NOW)
    [more] = [e for e in n1.take_effects() if type(e) is PeerCall and e.op != "beacon"]
    assert more.request.cursor == ServiceKey("public", "G", "b")
    peer_reply(n1, more.tag, {"digests": [["public", "G", "b", 1, 1]], "more": True}, NOW)
    assert n1.counters["replication_errors"] == 1 and "n2" not in n1._rounds
    [report] = rejections(n1)
    assert "is not after" in report.reason
