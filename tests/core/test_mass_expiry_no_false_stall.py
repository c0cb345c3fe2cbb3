"""A mass expiry (one client's session holding a whole large service, lapsing) is applied
in steps, and the node does not take the seconds it spends on it for a stall (review83
F2).

Driven as the runtime drives a node, on an injected clock: ``tick`` at the time it asks
for, and while a pass is under way (``tick`` answers ``now``) one loop turn after
another, each costing ``TURN`` seconds.  On the code of the review, the session check due
during the seconds of marks was answered as the next wake once the marks were done, a
time already past: the next turn, a millisecond later, measured itself "stalled" from it
(every node of a 3-node cluster logged stalls of 1-3 s, stopped judging health for 15 s
and refused config reads), and the 40,000 marks of one service were one change (0.5 s of
the owner's loop; one replicated delta that took each peer 1-3 s to apply).
"""

from __future__ import annotations

import math

import pytest

from meshreg.core import health
from meshreg.core.effects import ServiceChanged
from meshreg.core.health import HealthPolicy
from meshreg.core.registry import RegistryNode
from meshreg.model import InstanceId, ServiceKey

POLICY = HealthPolicy()  # check 5 s, unhealthy after 15 s, evicted after 30 s
STEP = 100  # instances per step (SWEEP_STEP, monkeypatched; the node's is 5,000)
HELD = 4_000  # the lapsing session's instances, all in ONE service: 40 steps of marks
TURN = 0.2  # s of the clock per busy loop turn: the marks take 8 s, past the session check
# due 1 s after the sweep began by more than a lone node's stall threshold (5 s; a cluster
# member's is 1 s: min(peer_timeout, unhealthy_after) / 3)
KEY = ServiceKey("ta", "DEFAULT_GROUP", "flood0")
SESSION = "a" * 32


def iid(i: int) -> InstanceId:
    return InstanceId(f"10.1.{i // 250}.{i % 250 + 1}", 1000, "DEFAULT")


@pytest.mark.parametrize("phase", [0.0, 1.3, 2.7, 4.1])
def test_a_lapsing_session_is_marked_in_steps_without_a_false_stall(
    monkeypatch: pytest.MonkeyPatch, phase: float
) -> None:
    monkeypatch.setattr(health, "SWEEP_STEP", STEP)
    now = 0.0
    node = RegistryNode(POLICY, 1, now, "127.0.0.1:7800")  # stalls detected (the default)
    for i in range(HELD):
        node.store.register(KEY, iid(i), 1.0, True, {}, now, 1, SESSION)
    node.store.sessions.renew(SESSION, "ta", phase, 0, phase)  # its last renewal
    marked: list[int] = []
    while now < 60.0:  # bounded: the clock always moves forward
        wake = node.tick(now)
        for effect in node.take_effects():
            if type(effect) is ServiceChanged and effect.reason in ("unhealthy", "evicted"):
                marked.append(len(effect.upserted) + len(effect.removed))
        now = now + TURN if wake <= now else wake
        if node.store.services.get(KEY) is None:
            break
    assert node.stalls == 0, (
        f"{node.stalls} stall(s) taken from the seconds of the node's own marks "
        f"(last turn {node.last_turn:.2f}, wake asked {node.wake_at:.2f})"
    )
    assert sum(marked[: HELD // STEP]) == HELD and max(marked) <= STEP, marked[:5]
    assert node.store.services.get(KEY) is None, "the lapsed session's instances evicted"
    assert math.isfinite(now)
