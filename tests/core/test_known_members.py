"""Full hearers confirmed by what the peers know of, and cuts that cross (review16 F3).

With five nodes and four cuts (a <-> b, a <-> d, b <-> c, b <-> e) a node took a peer for
a full hearer when that peer's view was the union of the views the node knew, though the
peer knew of a member it did not hear: a and b each deferred to such peers, which saw no
full hearer and judged only what they owned in every view; the dead instances of the
services owned by a or b stayed healthy on all five nodes for the whole fault.  Now every
beacon names the members the sender knows of and does not hear (``unheard``); a full
hearer must hear every member known that way; with none, each node judges the services
hashed to it over every member it knows of, and every node passes on what it learns
(changes, evidence that rose, session renewals), news only, so it reaches that judge."""

from __future__ import annotations

import msgpack
from answers import served, stats_map
from test_distro_faults import CLUSTER, FULL, POLICY, A, B, Broadcast, Member, keys_owned_by
from test_session_relay import SID, relays

from meshreg.core.cluster_messages import Beacon, ReplicatedDelta, ServicePayload, SessionBeats
from meshreg.core.distro import DISPUTE_PATIENCE
from meshreg.core.effects import InstanceView
from meshreg.core.mapping import responsible_node
from meshreg.core.requests import PushBeacon, PushSessions
from meshreg.wire.peer import beacon_fields, decode_replication

KNOWN = ("n1", "n2", "n3", "n4")
HELD = DISPUTE_PATIENCE * CLUSTER.peer_timeout + 0.5  # s: views differing that long are held


def run_known(
    m: Member,
    seconds: float,
    n2: tuple[str, ...],
    n3: tuple[str, ...],
    n2_unheard: tuple[str, ...] | None = None,
    requests: bool = True,
) -> None:
    """Tick every 0.1 s; n2 and n3 beacon their views (n2 naming ``n2_unheard``), on their
    streams and, if ``requests``, by request too (their requests reach n1)."""
    for _ in range(round(seconds / 0.1)):
        b2 = Beacon("n2", A, 9, True, 0, n2, unheard=n2_unheard)
        b3 = Beacon("n3", B, 9, True, 0, n3)
        m.node.on_replication(b2, m.now)
        m.node.on_replication(b3, m.now)
        if requests:
            m.node.handle(PushBeacon(5, b2), m.now)
            m.node.handle(PushBeacon(5, b3), m.now)
        m.step(0.1)


def test_a_peer_that_knows_of_a_member_it_does_not_hear_is_no_full_hearer() -> None:
    """n1 hears n2 and n3; n2's view is n1's own, n3's lacks n2.  Alone, n1 and n2 look
    like full hearers (the union of the views n1 knows).  n2's beacons say it knows of n4,
    which it does not hear: nobody is a full hearer, and n1 judges the services hashed to
    it over the four members it knows of."""
    m = Member()
    run_known(m, HELD, FULL, ("n1", "n3"))
    assert m.node._full_hearers == ("n1", "n2")  # noqa: SLF001 (before: taken as is)
    run_known(m, HELD, FULL, ("n1", "n3"), n2_unheard=("n4",))
    assert m.node._full_hearers == ()  # noqa: SLF001
    assert m.node._judge_over == KNOWN  # noqa: SLF001
    ours = keys_owned_by("n1", KNOWN, 3)
    n4s = keys_owned_by("n4", KNOWN, 3)
    assert all(m.node._judges(k) for k in ours)  # noqa: SLF001
    assert not any(m.node._judges(k) for k in n4s)  # noqa: SLF001
    said = stats_map(m.node, m.now)["health_judgment"]
    assert "no member hears every other" in said and "over the 4 members known" in said
    run_known(m, HELD, FULL, FULL)  # the views agree again
    assert m.node._judge_over == () and all(m.node._judges(k) is m.node._owns(k) for k in n4s)  # noqa: SLF001


def sent_beacons(m: Member) -> list[Beacon]:
    return [
        e.message for e in m.effects if isinstance(e, Broadcast) and isinstance(e.message, Beacon)
    ]


def test_a_beacon_names_the_members_the_views_it_knows_name_and_it_does_not_hear() -> None:
    m = Member()
    run_known(m, HELD, ("n1", "n2", "n4"), ("n1", "n3"))
    m.effects.clear()
    m.step(1.0)
    beacons = sent_beacons(m)
    assert beacons and all(b.unheard == ("n4",) for b in beacons)
    # on the wire (optional, absent when empty: older nodes unchanged), and back
    body = {"v": 1, **beacon_fields(beacons[-1])}
    assert body["unheard"] == ["n4"]
    frames = [b"beacon", msgpack.packb(body)]
    assert decode_replication(frames).unheard == ("n4",)  # type: ignore[union-attr]
    run_known(m, 1.0, FULL, FULL)
    m.effects.clear()
    m.step(1.0)
    last = sent_beacons(m)[-1]
    assert last.unheard is None and "unheard" not in beacon_fields(last)


def _delta(key, seq: int, alive: int, healthy: bool = True) -> ReplicatedDelta:  # type: ignore[no-untyped-def]
    view = InstanceView("10.9.9.9", 80, "DEFAULT", 1.0, True, healthy, {}, alive, alive)
    return ReplicatedDelta("n3", 9, seq, ServicePayload(key, (view,), ()))


def test_with_no_full_hearer_every_node_passes_on_what_it_learns_news_only() -> None:
    """A change of a service n1 does not own, from n3, goes on from n1 (its judge may be
    where n3 is not heard); the same delta again is no news and goes nowhere.  With a full
    hearer (or views that agree) n1 passes on only what it owns, as before."""
    m = Member()
    run_known(m, HELD, FULL, ("n1", "n3"), n2_unheard=("n4",))
    (key,) = [k for k in keys_owned_by("n3", FULL, 6) if responsible_node(k, KNOWN) != "n1"][:1]
    stamp = m.node.registry.wall_stamp(m.now)
    m.effects.clear()
    m.node.on_replication(_delta(key, 1, stamp), m.now)
    m.step()
    assert [d.payload.key for d in m.deltas()] == [key]
    assert stats_map(m.node, m.now)["passed_on"] == 1
    m.effects.clear()
    m.node.on_replication(_delta(key, 2, stamp), m.now)  # the same: no news
    m.step()
    assert m.deltas() == []
    run_known(m, HELD, FULL, ("n1", "n3"))  # n1 and n2 hear everyone known
    m.effects.clear()
    (other,) = [k for k in keys_owned_by("n3", FULL, 12) if k != key][:1]
    m.node.on_replication(_delta(other, 3, m.node.registry.wall_stamp(m.now)), m.now)
    m.step()
    assert m.deltas() == [] and stats_map(m.node, m.now)["passed_on"] == 1


def test_with_no_full_hearer_relayed_renewals_go_on_to_peers_lacking_their_origin() -> None:
    """n2 knows of n4 (does not hear it), n3 hears n4: a renewal of n4's relayed to n1 by
    n3 goes on to n2, whose view lacks n4 (one hop was the rule: a judge three hops from
    a session's node never heard it).  While a full hearer exists, never."""
    m = Member()
    m.run(1.0)
    run_known(m, HELD, FULL, ("n1", "n3", "n4"), n2_unheard=("n4",))
    assert m.node._flooding  # noqa: SLF001
    relays(m)
    stamp = m.node.registry.wall_stamp(m.now)
    relayed = PushSessions(0, SessionBeats("n4", 9, ((SID, "public", stamp),)), relayed=True)
    assert served(m.node, relayed, m.now, forwarded=True) is None
    m.step()
    ((to, req),) = relays(m)
    assert to == "n2" and req.beats.node == "n4" and req.relayed
    assert served(m.node, relayed, m.now, forwarded=True) is None  # again: no news
    m.step()
    assert relays(m) == []
    assert m.node.judges_sessions()  # n4's renewals reach us through n3


def test_a_node_starting_to_pass_on_passes_on_the_evidence_it_learned_before() -> None:
    """Evidence merged while the views settle into crossing cuts (a full hearer still
    seen, or the dispute not yet held) was not passed on; when no full hearer is left,
    n1 passes on, once, the evidence it learned less than ``unhealthy_after`` ago of the
    services it does not own: it is news no more, and its sender refreshes it only every
    ``refresh_every``, so a judge several hops away would find it too old."""
    m = Member()
    run_known(m, HELD, FULL, ("n1", "n3"))  # n1 and n2 hear everyone: no passing on
    keys = [k for k in keys_owned_by("n3", FULL, 12) if responsible_node(k, KNOWN) != "n1"]
    fresh, stale = keys[0], keys[1]
    now_stamp = m.node.registry.wall_stamp(m.now)
    old_stamp = m.node.registry.wall_stamp(m.now - 2 * POLICY.unhealthy_after)
    m.node.on_replication(_delta(fresh, 1, now_stamp), m.now)
    m.node.on_replication(_delta(stale, 2, old_stamp), m.now)
    m.step()
    m.effects.clear()
    run_known(m, HELD, FULL, ("n1", "n3"), n2_unheard=("n4",))  # nobody hears everyone
    assert m.node._flooding  # noqa: SLF001
    passed = [d.payload for d in m.deltas()]
    assert [p.key for p in passed] == [fresh]
    assert passed[0].upserts[0].alive == now_stamp
    m.effects.clear()
    run_known(m, 1.0, FULL, ("n1", "n3"), n2_unheard=("n4",))  # still: once only
    assert m.deltas() == []
