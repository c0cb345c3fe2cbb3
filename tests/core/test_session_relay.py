"""Session renewals relayed where views differ (review15 F2).

A session's renewals reach the peers its client's node hears.  With two cuts that cross
(a <-> b and c <-> d) nobody hears everyone, so before this no node judged a session
instance while the cuts lasted: dead ones stayed healthy cluster-wide.  Now a node passes
the renewals it gets from a peer on to every peer it hears whose view lacks that peer
(one hop, news only), and a node judges sessions when every member a peer hears is heard
by it or by a peer that hears it."""

from __future__ import annotations

import msgpack
import pytest
from answers import served, stats_map
from test_distro_faults import FULL, Member, run_views

from meshreg.core.cluster_messages import Beacon, SessionBeats
from meshreg.core.distro import PeerCall
from meshreg.core.requests import PushBeacon, PushSessions
from meshreg.errors import ErrorCode, RequestRejected
from meshreg.wire.peer import parse_peer_request, peer_call_fields

SID, SID2 = "a" * 32, "b" * 32
A = "10.0.0.2:7800"  # n2's address in Member


def relays(m: Member) -> list[tuple[str, PushSessions]]:
    """The relayed ``sessions`` calls queued since the last look (and forget them)."""
    found = [
        (e.node_id, e.request)
        for e in m.effects
        if isinstance(e, PeerCall) and isinstance(e.request, PushSessions) and e.request.relayed
    ]
    m.effects.clear()
    return found  # type: ignore[return-value]


def renew_from(m: Member, peer: str, sid: str, dt: float = 0.0) -> None:
    stamp = m.node.registry.wall_stamp(m.now + dt)
    m.node.on_replication(SessionBeats(peer, 9, ((sid, "public", stamp),)), m.now)
    m.step()


def test_renewals_from_a_peer_go_on_to_the_peers_whose_views_lack_it() -> None:
    m = Member()
    m.run(1.0)  # (the fake wall clock starts at 0: a stamp of 0 is no renewal)
    renew_from(m, "n2", SID)  # views agree: nothing relayed
    m.run(0.5)
    assert relays(m) == []
    # n2 and n3 cannot hear each other; n1 hears both
    run_views(m, 1.0, ("n1", "n2"), ("n1", "n3"))
    # a new target first gets the latest stamp of each session renewed through the
    # peer it does not hear: n3 gets SID's (renewed through n2); n2 nothing (none via n3)
    ((to, req),) = relays(m)
    assert to == "n3" and req.beats.node == "n2" and [e[0] for e in req.beats.entries] == [SID]
    # a renewal n2 sent us goes to n3, once
    renew_from(m, "n2", SID2, 0.1)
    (to, req), *more = relays(m)
    assert (to, more) == ("n3", [])
    assert req.beats.node == "n2" and [e[0] for e in req.beats.entries] == [SID2]
    renew_from(m, "n2", SID2, 0.1)  # the same renewal again (its other path): not news
    assert relays(m) == []
    # one relayed to us is never relayed again
    stamp = m.node.registry.wall_stamp(m.now + 0.2)
    relayed = PushSessions(0, SessionBeats("n3", 9, ((SID2, "public", stamp),)), relayed=True)
    assert served(m.node, relayed, m.now, forwarded=True) is None
    m.step()
    assert relays(m) == []
    assert m.node.store.sessions.get(SID2).alive == stamp  # type: ignore[union-attr]
    assert m.node.counters["sessions_relayed_in"] == 1
    # the views agree again: nothing more is relayed
    run_views(m, 1.0, FULL, FULL)
    m.effects.clear()
    renew_from(m, "n3", SID, 0.3)
    assert relays(m) == []
    assert m.node.counters["sessions_relayed"] == 2  # SID to n3 at the start, SID2 to n3


def run_relaying(
    m: Member, seconds: float, n2: tuple[str, ...], n3: tuple[str, ...], n2_requests: bool = True
) -> None:
    """``run_views``, n2's beacons also by request (its requests reach us) if ``n2_requests``."""
    for _ in range(round(seconds / 0.1)):
        if n2_requests:
            m.node.handle(PushBeacon(5, Beacon("n2", A, 9, True, 0, n2)), m.now)
        run_views(m, 0.1, n2, n3)


def test_with_crossing_cuts_a_node_judges_sessions_when_a_peer_relays_what_it_cannot_hear() -> None:
    """n1 hears n2 and n3; n2 hears n4 (n1 does not), n3 does not hear n2: no view is the
    union.  n4's renewals reach n2, which hears n1 and relays them: n1 judges sessions.
    If no peer that hears n1 hears n4, n1 does not; nor if that peer's requests do not
    reach n1 (relayed renewals go by request; review16 F1: such a relay counted, and n1
    marked live session instances every unhealthy_after)."""
    m = Member()
    run_relaying(m, 2.0, ("n1", "n2", "n4"), ("n1", "n3"))
    assert m.node.judges_sessions()
    said = stats_map(m.node, m.now)["health_judgment"]
    assert "no member hears every other" in said and "relayed" in said
    run_relaying(m, 2.0, ("n1", "n2", "n4"), ("n1", "n3"), n2_requests=False)
    assert not m.node.judges_sessions()  # n2 heard on its stream only
    run_relaying(m, 2.0, ("n2", "n4"), ("n1", "n3"))  # n2 hears n4 but not n1: no relay
    assert not m.node.judges_sessions()
    said = stats_map(m.node, m.now)["health_judgment"]
    assert "no session instances" in said


def test_the_relayed_flag_crosses_the_wire_and_is_checked() -> None:
    beats = SessionBeats("n2", 9, ((SID, "public", 5),))
    for relayed in (False, True):
        fields = peer_call_fields(PushSessions(0, beats, relayed))
        assert ("relayed" in fields) is relayed  # absent when false: older nodes unchanged
        body = msgpack.packb({"v": 1, "id": 4, "op": "sessions", **fields})
        req = parse_peer_request(body)
        assert isinstance(req, PushSessions) and req.relayed is relayed and req.beats == beats
    bad = msgpack.packb(
        {
            "v": 1,
            "id": 4,
            "op": "sessions",
            **peer_call_fields(PushSessions(0, beats)),
            "relayed": 1,
        }
    )
    with pytest.raises(RequestRejected) as refused:
        parse_peer_request(bad)
    assert refused.value.code is ErrorCode.INVALID_ARGUMENT
    assert "relayed must be a boolean" in refused.value.message
