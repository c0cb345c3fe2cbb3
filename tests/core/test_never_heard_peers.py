"""Configured peers never heard (a typo in the peer list, a firewall) are reported: one
peer timeout after the start, then every ``NEVER_HEARD_REPORT_EVERY`` s while it lasts,
and once more (``PeerHeardAtLast``) when one answers (review24 F14).  Fake clock: the
loop turns every 0.1 s, as the runtime's would."""

from __future__ import annotations

from meshreg.config import ClusterPolicy
from meshreg.core.distro import NEVER_HEARD_REPORT_EVERY, DistroNode
from meshreg.core.effects import PeerHeardAtLast, PeersNeverHeard
from meshreg.core.health import HealthPolicy
from meshreg.wire.peer import Beacon

A, B = "10.0.0.2:7800", "10.0.0.3:7800"
STEP = 0.1


def node_with_two_peers() -> DistroNode:
    return DistroNode(HealthPolicy(), ClusterPolicy(), "n1", "10.0.0.1:7800", [A, B], 7, 0.0)


def run(node: DistroNode, start: float, end: float, heard: tuple[tuple[str, str], ...] = ()):
    """Turn the loop from ``start`` to ``end`` (peers in ``heard`` beaconing every turn);
    returns (time, effect) of the reports."""
    reports = []
    t = start
    while t <= end + 1e-9:
        for node_id, address in heard:
            node.on_replication(Beacon(node_id, address, 99, True, 0), t)
        node.tick(t)
        for e in node.take_effects():
            if isinstance(e, (PeersNeverHeard, PeerHeardAtLast)):
                reports.append((t, e))
        t = round(t + STEP, 6)
    return reports


def test_silent_peers_are_warned_after_a_peer_timeout_then_once_a_minute() -> None:
    node = node_with_two_peers()
    timeout = ClusterPolicy().peer_timeout
    reports = run(node, 0.0, 150.0)
    times = [t for t, _ in reports]
    assert all(isinstance(e, PeersNeverHeard) for _, e in reports)
    assert reports[0][1].addresses == (A, B)
    assert timeout <= times[0] < timeout + 1.0  # on the beacon cadence after the timeout
    assert len(reports) == 3  # ~3 s, ~63 s, ~123 s
    assert all(
        abs(b - a - NEVER_HEARD_REPORT_EVERY) < 1.0 for a, b in zip(times, times[1:], strict=False)
    )
    assert reports[0][1].again_in == NEVER_HEARD_REPORT_EVERY


def test_a_peer_heard_at_last_is_said_once_and_leaves_the_warning() -> None:
    node = node_with_two_peers()
    first = run(node, 0.0, 10.0)
    assert [e.addresses for _, e in first] == [(A, B)]
    heard = run(node, 10.1, 75.0, heard=(("n2", A),))
    at_last = [e for _, e in heard if isinstance(e, PeerHeardAtLast)]
    assert at_last == [PeerHeardAtLast("n2", A, at_last[0].waited)]
    assert 10.0 <= at_last[0].waited < 11.0
    again = [e for _, e in heard if isinstance(e, PeersNeverHeard)]
    assert [e.addresses for e in again] == [(B,)]  # the next warning names only B


def test_no_warning_when_every_peer_answers_in_time() -> None:
    node = node_with_two_peers()
    reports = run(node, 0.0, 70.0, heard=(("n2", A), ("n3", B)))
    assert reports == []


def test_a_peer_that_was_heard_then_went_down_is_not_never_heard() -> None:
    node = node_with_two_peers()
    run(node, 0.0, 1.0, heard=(("n2", A), ("n3", B)))
    reports = run(node, 1.1, 70.0, heard=(("n2", A),))  # n3 goes down: MemberChanged says so
    assert reports == []


def test_a_reconcile_from_a_node_not_heard_is_routine_while_a_peer_is_not_heard_up() -> None:
    """An operations review: a rolling restart logged 5 WARNINGs "something that is not a
    node speaks the peer port" (a peer's round reached a node that had not heard it yet).
    While a configured peer is not heard up, such a reconcile is routine (INFO); with every
    configured peer up under its id, it is none of them (WARNING).  Nothing is merged
    either way."""
    from meshreg.core.effects import PeerDataRejected
    from meshreg.core.requests import Reconcile

    def rejected(node: DistroNode, sender: str, now: float) -> PeerDataRejected:
        node.handle(Reconcile(1, sender, ()), now)
        (report,) = [e for e in node.take_effects() if isinstance(e, PeerDataRejected)]
        return report

    node = node_with_two_peers()
    run(node, 0.0, 1.0, heard=(("n2", A),))  # B (n3) not heard yet: it is starting
    early = rejected(node, "n3", 1.1)
    assert early.routine and "a peer just started or restarted" in early.reason
    run(node, 40.0, 41.0, heard=(("n2", A), ("n3", B)))  # (past the report interval)
    odd = rejected(node, "intruder", 41.1)
    assert not odd.routine and "give the cluster a key" in odd.reason
    assert node.counters["reconciles_unheard"] == 2
