"""Membership's shortcuts (run on every loop turn) agree with the full rules.

``tick`` skips its scan while no peer that is up can have been silent for
``peer_timeout``, and ``revision`` changes whenever what ``up_peers`` returns does
(core/distro derives its member list and the disputed views from it only then).
Checked against the plain rules over random beacons and ticks, at any times
(also earlier than the last: ``now`` is an input)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meshreg.core.effects import MemberState
from meshreg.core.membership import Membership

TIMEOUT = 3.0
ADDRESSES = ["10.0.0.2:7400", "10.0.0.3:7400", "10.0.0.4:7400"]

times = st.floats(min_value=0.0, max_value=40.0, allow_nan=False)
beacon = st.tuples(
    st.just("beacon"),
    st.sampled_from(ADDRESSES + ["10.0.0.9:7400"]),  # an unconfigured member too
    st.sampled_from(["n2", "n3", "n4"]),
    st.sampled_from([1, 2]),  # epoch: a change is a restart
    st.booleans(),
    st.sampled_from([None, ("n1", "n2"), ("n1", "n2", "n3")]),
    times,
)
tick = st.tuples(st.just("tick"), times)
late = st.tuples(st.just("stalled"), times)  # core/distro ``stalled``: last_heard raised


def expected_down(m: Membership, now: float) -> list[str]:
    """The plain rule: every peer up and silent for ``peer_timeout`` goes down."""
    return [
        p.address
        for p in m.peers.values()
        if p.state is MemberState.UP and now - p.last_heard >= m.peer_timeout
    ]


def up_signature(m: Membership) -> list[tuple[object, ...]]:
    return [(p.address, p.node_id, p.ready, p.view) for p in m.up_peers()]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(beacon, tick, late), max_size=60))
def test_tick_and_revision_agree_with_the_plain_rules(steps: list[tuple[object, ...]]) -> None:
    m = Membership("n1", "10.0.0.1:7400", ADDRESSES, TIMEOUT)
    seen = (m.revision, up_signature(m))
    for step in steps:
        if step[0] == "beacon":
            _, address, node_id, epoch, ready, view, now = step
            m.heard(node_id, address, epoch, ready, 0, now, view)  # type: ignore[arg-type]
        elif step[0] == "stalled":
            for p in m.up_peers():
                p.last_heard = max(p.last_heard, step[1])  # type: ignore[type-var]
        else:
            now = step[1]
            want = expected_down(m, now)  # type: ignore[arg-type]
            got = m.tick(now)  # type: ignore[arg-type]
            assert [c.address for c in got] == want
            assert not expected_down(m, now)  # type: ignore[arg-type]
        signature = up_signature(m)
        if signature != seen[1]:
            assert m.revision != seen[0], "up_peers changed, revision did not"
        seen = (m.revision, signature)


def test_a_peer_goes_down_exactly_at_its_deadline() -> None:
    m = Membership("n1", "10.0.0.1:7400", ADDRESSES, TIMEOUT)
    m.heard("n2", ADDRESSES[0], 1, True, 0, 1.0)
    m.heard("n3", ADDRESSES[1], 1, True, 0, 2.0)
    assert m.tick(3.9) == []
    assert [c.node_id for c in m.tick(4.0)] == ["n2"]
    assert m.tick(4.9) == []
    m.heard("n3", ADDRESSES[1], 1, True, 0, 0.5)  # an earlier time: its deadline moves back
    assert [c.node_id for c in m.tick(3.5)] == ["n3"]


def test_a_leave_holds_for_a_peer_timeout_then_a_peer_still_beaconing_is_up_again() -> None:
    """review29 F3: a leave beacon (forged, on a cluster without keys) kept a live peer
    down until it restarted; beacons of that incarnation still on the way after a real
    leave are ignored, but one that keeps beaconing a peer timeout later did not leave."""
    a = ADDRESSES[0]
    m = Membership("n1", "10.0.0.1:7400", ADDRESSES, TIMEOUT)
    m.heard("n2", a, 1, True, 0, 0.0)
    (down,) = m.left("n2", a, 1, 1.0)
    assert down.state is MemberState.DOWN and down.left
    assert m.heard("n2", a, 1, True, 1, 1.5) == []  # on its way before the leave
    assert m.heard("n2", a, 1, True, 2, 1.0 + TIMEOUT - 0.01) == []
    assert not m.up_peers()
    (up,) = m.heard("n2", a, 1, True, 3, 1.0 + TIMEOUT)
    assert up.state is MemberState.UP and up.leave_revoked and not up.restarted
    assert [p.node_id for p in m.up_peers()] == ["n2"]
    assert m.left("n2", a, 1, 9.0)[0].left  # a later (real) leave counts again
    (back,) = m.heard("n2", a, 2, True, 0, 9.5)  # its next incarnation: at once
    assert back.restarted and not back.leave_revoked
