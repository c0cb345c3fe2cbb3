"""Beacons take two paths: the replication stream and the request path (review14c F1/F2).

A node that could not hear a peer's replication stream (port P+2 dropped one way, the
classic firewall rule missing one port) counted it down while the peer counted it up: the
views disagreed for as long as it lasted, and the services whose owner they disagreed on
were judged by nobody (dead instances healthy cluster-wide for the whole fault), or a node
whose stream nobody heard had its beat-only providers judged silent everywhere.  Every
node now also sends its beacon to every peer it hears as a ``beacon`` peer request: a peer
heard either way is up.  Driven on a fake clock: n1 with peers n2 (stream silent) and n3.
"""

from __future__ import annotations

import math

import msgpack
import pytest
from answers import peer_reply
from test_distro_faults import CLUSTER, Member, keys_owned_by

from meshreg.core.distro import Broadcast, PeerCall
from meshreg.core.effects import RepairFailing, ReplicationStream
from meshreg.core.requests import ListDigests, PushBeacon, Reconcile
from meshreg.errors import ErrorCode, RequestRejected
from meshreg.wire.peer import (
    Beacon,
    decode_peer_reply,
    decode_replication,
    encode_beacon,
    parse_peer_request,
    peer_call_fields,
    refused_as_unknown,
)
from meshreg.wire.replies import encode_error, encode_request

A, B = "10.0.0.2:7800", "10.0.0.3:7800"
VIEW = ("n1", "n2", "n3")


def by_request(m: Member, seq: int = 0, address: str = A, node: str = "n2") -> None:
    m.node.handle(PushBeacon(5, Beacon(node, address, 9, True, seq, VIEW)), m.now)


def run(m: Member, seconds: float, seq: int = 0, n2_stream: bool = False) -> None:
    """Tick every 0.1 s: n3 beacons on its stream, n2 by request (and on its stream)."""
    for _ in range(round(seconds / 0.1)):
        m.beacons(VIEW, ("n2", "n3") if n2_stream else ("n3",))
        by_request(m, seq)
        m.step(0.1)


def calls(m: Member, kind: type) -> list[PeerCall]:
    return [e for e in m.effects if isinstance(e, PeerCall) and type(e.request) is kind]


def test_a_peer_heard_by_request_only_stays_a_member_and_is_reported() -> None:
    m = Member()
    run(m, 10.0)  # n2's stream silent for 10 s (peer_timeout 1.5 s)
    assert m.node.members() == VIEW
    lost = [e for e in m.effects if isinstance(e, ReplicationStream)]
    assert len(lost) == 1 and lost[0].lost and lost[0].node_id == "n2" and lost[0].address == A
    rows = {r.address: r for r in m.node.cluster_result(m.now).members}
    assert rows[A].state == "up" and rows[A].stream_silent is not None
    assert rows[A].stream_silent >= CLUSTER.peer_timeout and rows[B].stream_silent is None
    assert m.node.counters["replication_streams_lost"] == 1
    run(m, 1.0, n2_stream=True)  # the firewall rule removed
    back = [e for e in m.effects if isinstance(e, ReplicationStream)]
    assert len(back) == 2 and not back[1].lost
    rows = {r.address: r for r in m.node.cluster_result(m.now).members}
    assert rows[A].stream_silent is None


def test_without_the_second_path_the_peer_goes_down() -> None:
    """The fault as it was: n2's stream silent and nothing else is n2 down."""
    m = Member()
    for _ in range(30):
        m.beacons(VIEW, ("n3",))
        m.step(0.1)
    assert m.node.members() == ("n1", "n3")


def test_a_stream_silent_at_start_is_not_reported_before_a_peer_timeout() -> None:
    """A SUB still connecting misses the first beacons: not a lost stream."""
    m = Member()
    run(m, CLUSTER.peer_timeout * 0.8)
    assert not [e for e in m.effects if isinstance(e, ReplicationStream)]


def test_the_seq_of_a_beacon_by_request_repairs_only_while_the_stream_is_silent() -> None:
    m = Member()
    run(m, 0.5, seq=0, n2_stream=True)
    gaps = m.node.counters["replication_gaps"]
    pulls = len(calls(m, ListDigests))
    by_request(m, seq=40)  # overtakes deltas still on the stream: no gap, no round
    m.step(0.1)
    assert m.node.counters["replication_gaps"] == gaps
    assert len(calls(m, ListDigests)) == pulls
    run(m, 3.0, seq=40)  # the stream silent now: the seq tells the deltas we missed
    assert m.node.counters["replication_gaps"] > gaps
    assert [c for c in calls(m, ListDigests)[pulls:] if c.node_id == "n2"]


def test_a_node_sends_its_beacon_to_every_peer_up_each_interval() -> None:
    m = Member()
    before = len(calls(m, PushBeacon))
    m.run(1.0)
    sent = calls(m, PushBeacon)[before:]
    assert {c.node_id for c in sent} == {"n2", "n3"}
    per_peer = len(sent) / 2
    assert 1.0 / CLUSTER.beacon_interval - 1 <= per_peer <= 1.0 / CLUSTER.beacon_interval + 1
    beacon = sent[-1].request.beacon  # type: ignore[attr-defined]
    assert beacon.node == "n1" and beacon.members == VIEW


def test_a_beacon_by_request_from_an_address_not_followed_is_ignored() -> None:
    m = Member()
    by_request(m, address="10.9.9.9:7800", node="n9")
    by_request(m, address=A, node="n7")  # another node than the one at that address
    m.step(0.1)
    assert m.node.members() == VIEW
    assert "10.9.9.9:7800" not in m.node.membership.peers


def test_the_beacon_peer_op_reads_back_as_sent() -> None:
    push = PushBeacon(3, Beacon("n1", "10.0.0.1:7800", 9, True, 12, VIEW, VIEW, ("n4",), 1700))
    body = encode_request(push.op, push.req_id, **peer_call_fields(push))
    assert parse_peer_request(body) == push
    cut = Beacon("n1", "10.0.0.1:7800", 9, True, 12, VIEW, None, None, None, ("n3", "n2"))
    assert decode_replication(encode_beacon(cut)).unreachable == ("n2", "n3")  # type: ignore[union-attr]
    bad = msgpack.unpackb(body)
    bad["ready"] = "yes"
    with pytest.raises(RequestRejected) as refused:
        parse_peer_request(msgpack.packb(bad))
    assert refused.value.code is ErrorCode.INVALID_ARGUMENT and "ready" in refused.value.message


def test_an_older_peer_that_does_not_know_the_op_gets_no_more_beacon_requests() -> None:
    """A rolling upgrade: an older node answers ``beacon`` UNKNOWN_OP (and logs it); it
    is sent no more until it restarts (a new epoch: upgraded, maybe)."""
    m = Member()
    m.run(0.5)
    (call,) = [c for c in calls(m, PushBeacon) if c.node_id == "n2"][-1:]
    m.node.peer_failed(call.tag, m.now, unknown_op=True)
    before = len(calls(m, PushBeacon))
    m.run(1.0)
    sent = calls(m, PushBeacon)[before:]
    assert sent and {c.node_id for c in sent} == {"n3"}
    for _ in range(3):  # n2 restarted: a new epoch
        m.node.on_replication(Beacon("n2", A, 10, True, 0, VIEW), m.now)
        m.beacons(VIEW, ("n3",))
        m.step(0.1)
    assert [c for c in calls(m, PushBeacon)[before + len(sent) :] if c.node_id == "n2"]


def test_a_peer_error_reply_says_whether_the_op_was_unknown() -> None:
    unknown = encode_error(4, ErrorCode.UNKNOWN_OP, "unknown op 'beacon' on the peer port")
    tag, ok, error = decode_peer_reply(unknown)
    assert (tag, ok) == (4, False) and refused_as_unknown(error)
    tag, ok, error = decode_peer_reply(encode_error(5, ErrorCode.UNAVAILABLE, "busy"))
    assert not ok and not refused_as_unknown(error)
    assert not refused_as_unknown(None) and not refused_as_unknown({"code": "3"})


def test_a_peer_heard_by_request_whose_repairs_fail_is_reported_unreachable() -> None:
    """review15 F1: its stream silent here and our requests to it failing (a firewall on
    it that misses this node), nothing of its reaches us: said loudly, not "by repair"."""
    m = Member()
    run(m, 4.0, seq=5)  # its stream silent, its beacons by request show deltas we lack
    assert m.node.membership.peers[A].stream_lost
    rounds = [c for c in calls(m, ListDigests) if c.node_id == "n2"]
    assert rounds
    for call in rounds:
        m.node.peer_failed(call.tag, m.now)
    m.effects += m.node.take_effects()
    failing = [e for e in m.effects if isinstance(e, ReplicationStream) and e.repair_failing]
    assert len(failing) == 1 and failing[0].node_id == "n2"
    assert m.node.counters["replication_unreachable"] == 1
    run(m, 1.0, n2_stream=True)  # both ports open again
    assert not m.node.membership.peers[A].repair_failing


def test_a_node_that_cannot_reach_a_peer_says_so_in_its_beacons() -> None:
    """review15 F1, the deaf side: its stream silent and our rounds with it failing, our
    beacons name it (``unreachable``), so that it pushes us its changes."""
    m = Member()
    run(m, 4.0, seq=5)
    for call in [c for c in calls(m, ListDigests) if c.node_id == "n2"]:
        m.node.peer_failed(call.tag, m.now)
    m.effects.clear()
    run(m, 1.0, seq=5)
    beacons = [e.message for e in m.effects if isinstance(e, Broadcast)]
    beacons = [b for b in beacons if isinstance(b, Beacon)]
    assert beacons and beacons[-1].unreachable == ("n2",)


def test_a_peer_that_cannot_reach_us_is_pushed_our_changes() -> None:
    """review15 F1, the owner's side: n2's beacons say it cannot reach n1; n1 pushes it
    every service it owns at once (reconcile calls), then each delta it publishes, until
    n2's beacons stop saying so."""
    m = Member()
    mine = keys_owned_by("n1", VIEW, 3)
    for key in mine:
        m.request("register", key)
    m.effects.clear()
    cut_off = Beacon("n2", A, 9, True, 0, VIEW, None, None, None, ("n1",))
    for _ in range(3):
        m.node.on_replication(cut_off, m.now)
        m.beacons(VIEW, ("n3",))
        m.step(0.1)
    pushed = [c for c in calls(m, Reconcile) if c.node_id == "n2"]
    assert pushed and {p.key for c in pushed for p in c.request.services} >= set(mine)
    assert not [c for c in calls(m, Reconcile) if c.node_id == "n3"]
    m.effects.clear()
    m.request("deregister", mine[0])
    m.node.on_replication(cut_off, m.now)
    m.step(0.1)
    (push,) = [c for c in calls(m, Reconcile) if c.node_id == "n2"]
    assert [p.key for p in push.request.services] == [mine[0]]
    assert push.request.services[0].removals  # the tombstone
    m.effects.clear()
    run(m, 1.0, n2_stream=True)  # n2 reaches us again: its beacons say nothing
    m.request("register", mine[1])
    m.step(0.1)
    assert not [c for c in calls(m, Reconcile) if c.node_id == "n2"]


def fail_rounds_to_n2(m: Member, seconds: float, failed: set[int]) -> None:
    """n2 heard (a gap in its seqs: a repair round every so often), each round to it
    failing (its P+3 does not answer); ``failed``: the calls failed so far."""
    for _ in range(round(seconds / 0.1)):
        m.node.on_replication(Beacon("n2", A, 9, True, 5, VIEW), m.now)  # a gap: a round
        m.beacons(VIEW, ("n3",))
        m.step(0.1)
        for call in calls(m, ListDigests):
            if call.node_id == "n2" and call.tag not in failed:
                failed.add(call.tag)
                m.node.peer_failed(call.tag, m.now)


def test_repair_rounds_failing_with_a_peer_up_are_reported_once_and_again_when_back() -> None:
    """review15 F4: a peer whose P+3 does not answer this node (its P+2 fine) was
    invisible; three failed rounds in a row are logged (``RepairFailing``), once."""
    m = Member()
    failed: set[int] = set()
    fail_rounds_to_n2(m, 6.0, failed)  # rounds back off 0.25 s doubling up to 0.75 s
    m.effects += m.node.take_effects()
    said = [e for e in m.effects if isinstance(e, RepairFailing)]
    assert [(e.node_id, e.failures) for e in said] == [("n2", 3)]
    assert m.node.counters["repair_rounds_failed"] >= 3
    m.node.on_replication(Beacon("n2", A, 9, True, 5, VIEW), m.now)
    for _ in range(20):  # P+3 open again: the next round completes
        m.step(0.1)
        for call in calls(m, ListDigests):
            if call.node_id == "n2" and call.tag not in failed:
                failed.add(call.tag)
                peer_reply(m.node, call.tag, {"node": "n2", "digests": [], "more": False}, m.now)
    m.effects += m.node.take_effects()
    said = [e for e in m.effects if isinstance(e, RepairFailing)]
    assert [(e.node_id, e.failures) for e in said] == [("n2", 3), ("n2", 0)]


def test_beacon_requests_unanswered_by_a_peer_up_are_reported_once_and_again_when_back() -> None:
    """review15 F4 remainder: a peer whose P+3 does not answer us (its P+2 fine, so it
    stays up) was reported only after three failed repair rounds, and a healthy cluster
    may try none.  Our beacon requests go every beacon interval: a peer_timeout's worth
    of them unanswered in a row is reported once, and again when one is answered."""
    m = Member()
    failed: set[int] = set()

    def beacons_to_n2(answer: bool) -> None:
        for call in calls(m, PushBeacon):
            if call.node_id == "n2" and call.tag not in failed:
                failed.add(call.tag)
                if answer:
                    peer_reply(m.node, call.tag, None, m.now)
                else:
                    m.node.peer_failed(call.tag, m.now)

    threshold = math.ceil(CLUSTER.peer_timeout / CLUSTER.beacon_interval)
    for _ in range(round(1.5 * CLUSTER.peer_timeout / 0.1)):
        m.beacons(VIEW)  # n2 is heard (its P+2 works)
        m.step(0.1)
        beacons_to_n2(answer=False)
    m.effects += m.node.take_effects()
    # past the count but not two peer_timeouts: a peer killed or restarting fails sends
    # at once until it is seen down (review16 F2)
    assert not [e for e in m.effects if isinstance(e, RepairFailing)]
    for _ in range(round(1.5 * CLUSTER.peer_timeout / 0.1)):
        m.beacons(VIEW)
        m.step(0.1)
        beacons_to_n2(answer=False)
    m.effects += m.node.take_effects()
    said = [e for e in m.effects if isinstance(e, RepairFailing)]
    assert [(e.node_id, e.failures >= threshold, e.what) for e in said] == [
        ("n2", True, "beacon requests")
    ]
    assert m.node.counters["peer_requests_unanswered"] == 1
    assert m.node.members() == VIEW  # still up: reported, not counted down
    for _ in range(5):
        m.beacons(VIEW)
        m.step(0.1)
        beacons_to_n2(answer=True)
    m.effects += m.node.take_effects()
    said = [e for e in m.effects if isinstance(e, RepairFailing)]
    assert [(e.failures > 0, e.what) for e in said] == [
        (True, "beacon requests"),
        (False, "beacon requests"),
    ]


def test_beacon_requests_failing_to_a_peer_that_restarts_are_not_reported() -> None:
    """review16 F2: a peer restarting (or killed: then until it is seen down) fails every
    send at once, no connection, a beacon interval apart: a peer_timeout's worth of them
    within a peer_timeout, while its stream comes back.  Not a P+3 dropped one way."""
    m = Member()
    done: set[int] = set()
    for i in range(round(1.2 * CLUSTER.peer_timeout / 0.1)):
        m.beacons(VIEW, ("n3",) if i < 5 else ("n2", "n3"))  # n2 back on its stream
        m.step(0.1)
        for call in calls(m, PushBeacon):
            if call.node_id == "n2" and call.tag not in done:
                done.add(call.tag)
                m.node.peer_failed(call.tag, m.now)  # not connected (yet)
    failed = len(done)
    for _ in range(5):  # connected again: answered
        m.beacons(VIEW)
        m.step(0.1)
        for call in calls(m, PushBeacon):
            if call.node_id == "n2" and call.tag not in done:
                done.add(call.tag)
                peer_reply(m.node, call.tag, None, m.now)
    m.effects += m.node.take_effects()
    assert failed >= math.ceil(CLUSTER.peer_timeout / CLUSTER.beacon_interval)
    assert not [e for e in m.effects if isinstance(e, RepairFailing)]
    assert m.node.counters["peer_requests_unanswered"] == 0


def test_repair_rounds_failing_right_after_our_own_stall_are_not_reported() -> None:
    """review40 S1: 0.35 s after a 2.6 s SIGSTOP a node warned that 3 repair rounds to a
    live peer failed in a row ("a firewall one way?"): the stall had dropped its peer
    connections, and sends fail at once until they are made again. Failures within a
    peer_timeout of our stall's end are not counted; later ones are, as before."""
    m = Member()
    failed: set[int] = set()
    m.node.stalled(m.now, 2.6)
    fail_rounds_to_n2(m, CLUSTER.peer_timeout * 0.9, failed)
    m.effects += m.node.take_effects()
    assert m.node.counters["repair_rounds_failed"] >= 3
    assert not [e for e in m.effects if isinstance(e, RepairFailing)]
    fail_rounds_to_n2(m, 6.0, failed)  # the fault lasts past a peer_timeout: reported, once
    m.effects += m.node.take_effects()
    said = [e for e in m.effects if isinstance(e, RepairFailing)]
    assert [(e.node_id, e.failures) for e in said] == [("n2", 3)]
