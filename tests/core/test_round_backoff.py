"""Anti-entropy rounds that fail back off instead of restarting on every tick (issue 10)."""

from __future__ import annotations

from answers import peer_reply

from meshreg.config import ClusterPolicy
from meshreg.core.distro import ROUND_BACKOFF_FIRST, ROUND_BACKOFF_MAX, DistroNode, PeerCall
from meshreg.core.health import HealthPolicy
from meshreg.wire.peer import Beacon

A = "10.0.0.2:7800"


def calls_after_tick(node: DistroNode, now: float) -> list[PeerCall]:
    node.tick(now)
    return [e for e in node.take_effects() if isinstance(e, PeerCall) and e.op != "beacon"]


def test_failed_rounds_back_off_doubling_and_success_resets() -> None:
    node = DistroNode(HealthPolicy(), ClusterPolicy(), "n1", "10.0.0.1:7800", [A], 7, 0.0)
    node.on_replication(Beacon("n2", A, 99, True, 0), 0.0)
    now = 0.0
    starts = []
    for _ in range(400):  # 40 s of ticks every 0.1 s; every round fails at once
        calls = calls_after_tick(node, now)
        if calls:
            starts.append(now)
            for call in calls:
                node.peer_failed(call.tag, now)
        if int(now * 10) % 10 == 0:
            node.on_replication(Beacon("n2", A, 99, True, 0), now)  # n2 stays up
        now = round(now + 0.1, 1)
    gaps = [round(b - a, 1) for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps[0] >= ROUND_BACKOFF_FIRST
    assert all(b >= a for a, b in zip(gaps, gaps[1:], strict=False))  # doubling, then flat
    assert max(gaps) <= ROUND_BACKOFF_MAX + 0.1
    assert len(starts) <= 40 / ROUND_BACKOFF_MAX + 5  # not one per tick (400)
    # a round that succeeds clears the backoff: the next wanted round starts at once
    calls = []
    for _ in range(100):  # within the longest wait
        node.on_replication(Beacon("n2", A, 99, True, 0), now)
        calls = calls_after_tick(node, now)
        if calls:
            break
        now = round(now + 0.1, 1)
    assert calls
    for call in calls:
        peer_reply(node, call.tag, {"node": "n2", "digests": [], "more": False}, now)
    node.on_replication(Beacon("n2", A, 99, True, 5), now)  # it published deltas we missed
    assert calls_after_tick(node, now), "the next round should not wait"
