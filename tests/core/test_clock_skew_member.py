"""A member whose wall clock is far off the others' is counted out (review14b, "Clock skew").

Every stamp a node makes is its wall clock: a node two minutes behind rejected every peer's
change as from the future and answered reads, as a ready member, with an empty or
all-unhealthy registry; two minutes ahead, it refused the writes of every service it owned
as past their deadline.  Beacons carry the sender's wall clock (``wall``, ms): a node that a
strict majority of the cluster it hears (itself included) is apart from, by more than
``MAX_CLOCK_SKEW``, counts itself out and refuses reads; the others count it out.
Driven on a fake clock: n1 (wall offset 0 in ``Member``) with peers n2 and n3.
"""

from __future__ import annotations

import msgpack
import pytest
from answers import served_map, stats_map
from test_distro_faults import Member

from meshreg.core.distro import MAX_CLOCK_SKEW
from meshreg.core.effects import ClockSkew
from meshreg.errors import ErrorCode, RequestRejected
from meshreg.wire.messages import parse_request
from meshreg.wire.peer import Beacon

A, B = "10.0.0.2:7800", "10.0.0.3:7800"


def beacons(m: Member, offsets: dict[str, float]) -> None:
    """n2 and n3 beacon, their wall clocks ``offsets`` s off n1's."""
    for peer, address in (("n2", A), ("n3", B)):
        wall = int((m.now + m.node.registry.wall_offset + offsets[peer]) * 1000)
        view = ("n1", "n2", "n3")
        m.node.on_replication(Beacon(peer, address, 9, True, 0, view, None, None, wall), m.now)


def run(m: Member, seconds: float, offsets: dict[str, float]) -> None:
    for _ in range(round(seconds / 0.1)):
        beacons(m, offsets)
        m.step(0.1)


def query(m: Member) -> dict:
    body = {"v": 1, "id": 7, "op": "instances", "service": "orders"}
    return served_map(m.node, parse_request(msgpack.packb(body)), m.now)


def test_a_node_whose_clock_is_off_both_peers_counts_itself_out_and_refuses_reads() -> None:
    m = Member()
    run(m, 1.0, {"n2": 0.0, "n3": 0.0})
    assert not m.node.clock_skewed and m.node.members() == ("n1", "n2", "n3")
    run(m, 1.0, {"n2": 120.0, "n3": 120.2})  # n1 is two minutes behind both
    assert m.node.clock_skewed
    assert m.node.members() == ("n2", "n3")  # it owns nothing: as the peers count it
    with pytest.raises(RequestRejected) as refused:
        query(m)
    assert refused.value.code is ErrorCode.UNAVAILABLE and "clock" in refused.value.message
    assert stats_map(m.node, m.now)["clock_skewed"] is True
    assert any(isinstance(e, ClockSkew) and e.skewed for e in m.effects)
    rows = {r.address: r.state for r in m.node.cluster_result(m.now).members}
    assert rows["10.0.0.1:7800"] == "clock off"
    run(m, 1.0, {"n2": 0.3, "n3": -0.2})  # NTP fixed it
    assert not m.node.clock_skewed and m.node.members() == ("n1", "n2", "n3")
    assert "instances" in query(m)


def test_the_node_in_the_majority_counts_the_off_peer_out() -> None:
    m = Member()
    run(m, 1.0, {"n2": 0.0, "n3": -120.0})  # n3 is the wrong one
    assert not m.node.clock_skewed
    assert m.node.members() == ("n1", "n2")
    rows = {r.address: r for r in m.node.cluster_result(m.now).members}
    assert rows[B].state == "clock off" and rows[B].clock_offset is not None
    assert rows[B].clock_offset < -MAX_CLOCK_SKEW
    assert "instances" in query(m)
    # back within half the limit: counted in again (hysteresis: not at the limit)
    run(m, 1.0, {"n2": 0.0, "n3": -(MAX_CLOCK_SKEW * 0.75)})
    assert m.node.members() == ("n1", "n2")
    run(m, 1.0, {"n2": 0.0, "n3": -1.0})
    assert m.node.members() == ("n1", "n2", "n3")


def test_two_nodes_cannot_tell_whose_clock_is_wrong() -> None:
    """Only n2 tells its clock (n3 is of a version without ``wall``): n1 is apart from 1
    of the 2 it can compare (itself, n2), not a strict majority either way: nobody is
    counted out, n1 keeps serving."""
    m = Member()
    for _ in range(10):  # only n2 tells its clock
        wall = int((m.now + m.node.registry.wall_offset + 200.0) * 1000)
        m.node.on_replication(
            Beacon("n2", A, 9, True, 0, ("n1", "n2", "n3"), None, None, wall), m.now
        )
        m.node.on_replication(Beacon("n3", B, 9, True, 0, ("n1", "n2", "n3")), m.now)
        m.step(0.1)
    assert not m.node.clock_skewed  # 1 apart of 2 (itself, n2): not a strict majority
    assert m.node.members() == ("n1", "n2", "n3")  # nor is n2 counted out
    assert "instances" in query(m)


def late_beacons(m: Member, delay: float, told_ms: int | None) -> None:
    """n3 beacons on time; n2's beacons reach n1 ``delay`` s after they were sent (a
    stream backed up behind a load), and say n2's least sample of n1's clock is
    ``told_ms`` ahead of n1's (None: n2 tells nothing, an older node)."""
    view = ("n1", "n2", "n3")
    wall_now = m.now + m.node.registry.wall_offset
    leads = None if told_ms is None else (("n1", told_ms),)
    late = int((wall_now - delay) * 1000)
    m.node.on_replication(Beacon("n2", A, 9, True, 0, view, None, None, late, leads=leads), m.now)
    m.node.on_replication(Beacon("n3", B, 9, True, 0, view, None, None, int(wall_now * 1000)),
                          m.now)  # fmt: skip


def test_beacons_that_waited_in_a_backed_up_stream_are_not_a_clock_off() -> None:
    """review37 F7: under one tenant's bulk registrations a beacon reached a node 31 s
    after it was sent; the node took it for a clock 31 s off. The peer's word (its least
    sample of our clock, about 0: our beacons reach it on time) bounds the pair's offset
    whatever the delay: the sample alone no longer counts the peer out."""
    m = Member()
    run(m, 1.0, {"n2": 0.0, "n3": 0.0})
    for _ in range(30):
        late_beacons(m, 31.0, 40)  # n2 saw n1's clock 40 ms ahead: the clocks agree
        m.step(0.1)
    assert m.node.members() == ("n1", "n2", "n3")
    assert not any(isinstance(e, ClockSkew) for e in m.effects)
    rows = {r.address: r.state for r in m.node.cluster_result(m.now).members}
    assert rows[A] == "up"


def test_a_peer_behind_by_its_own_word_is_counted_out_at_once() -> None:
    """The same delay, but the peer's word agrees: its clock is 60 s behind ours."""
    m = Member()
    run(m, 1.0, {"n2": 0.0, "n3": 0.0})
    late_beacons(m, 60.0, -60_000)
    m.step(0.1)
    assert m.node.members() == ("n1", "n3")
    assert [e for e in m.effects if isinstance(e, ClockSkew) and e.peer == A]


def test_without_the_peers_word_one_late_beacon_is_not_a_clock_off() -> None:
    """An older peer tells nothing: our least sample of the last LEAD_WINDOW must say
    so too, so one beacon delayed past the limit among prompt ones counts nobody out."""
    m = Member()
    run(m, 1.0, {"n2": 0.0, "n3": 0.0})
    late_beacons(m, 31.0, None)
    m.step(0.1)
    assert m.node.members() == ("n1", "n2", "n3")
    for _ in range(100):  # every beacon late for longer than the window: counted out
        late_beacons(m, 31.0, None)
        m.step(0.1)
    assert m.node.members() == ("n1", "n3")


def test_a_writes_after_is_observed_up_to_the_fastest_members_clock() -> None:
    """review72 F1's ``after``: a stamp a member 5 s ahead issued is observed whole (the
    client's next write is stamped above it); one further ahead than any member's clock
    (plus AFTER_MARGIN) only up to that, so that a client cannot push the node's clock,
    and through replication every node's, ahead of what a member's own clock does."""
    from meshreg.core.registry import AFTER_MARGIN
    from meshreg.core.requests import DeregisterInstance
    from meshreg.core.versions import TAG_BITS, highest_stamp_at
    from meshreg.model import InstanceId, ServiceKey

    m = Member()
    run(m, 3.0, {"n2": 5.0, "n3": 0.0})  # n2 runs 5 s ahead of n1 (not fenced)
    ahead = m.node.registry.after_ahead
    assert ahead == pytest.approx(5.0 + AFTER_MARGIN, abs=0.2), ahead
    wall = m.now + m.node.registry.wall_offset
    key, iid = ServiceKey("public", "DEFAULT_GROUP", "orders"), InstanceId("10.0.0.9", 1, "DEFAULT")

    def stamp_of(after: int) -> int:
        m.node.registry.apply(DeregisterInstance(1, key, iid, None, after), m.now, m.now)
        return m.node.registry.hlc.last_us << TAG_BITS

    told = highest_stamp_at(wall + 4.9)  # what n2 stamped: observed, the write above it
    assert stamp_of(told) > told - (1 << TAG_BITS)
    far = highest_stamp_at(wall + 20.0)  # no member's clock is there: held at the ceiling
    got = stamp_of(far)
    assert got < far and got <= highest_stamp_at(wall + ahead) + (2 << TAG_BITS)
