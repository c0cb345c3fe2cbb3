"""A silent session's instances turn unhealthy within ``unhealthy_after + check_interval`` of
its client's death, with margin, whatever the phase of the sweep (issue 13).

The node is driven as the runtime drives it, on an injected clock: ``tick`` at the time it
asks for, and while a pass is under way (``tick`` answers ``now``) one loop turn after
another, each costing ``TURN`` seconds of the clock (a step of marks on a loaded machine).
"""

from __future__ import annotations

import math

import pytest

from meshreg.core import health
from meshreg.core.health import HealthPolicy, SweepPass
from meshreg.core.registry import RegistryNode
from meshreg.model import InstanceId, ServiceKey

POLICY = HealthPolicy()  # the defaults: check 5 s, unhealthy after 15 s, evicted after 30 s
GOAL = POLICY.unhealthy_after + POLICY.check_interval  # 20 s: the bound
MARGIN = 2.0  # s the bound must hold by
STEP = 100  # instances marked per loop turn (SWEEP_STEP, monkeypatched; the node's is 5,000)
HELD = 2_500  # the victim's instances, 100 per service: 25 turns of marks
TURN = 0.06  # s of the clock per busy loop turn: the marks take 1.5 s (250,000 on a loaded VM)
VICTIM, OTHER = "a" * 32, "b" * 32


def iid(i: int) -> InstanceId:
    return InstanceId(f"10.0.{i // 250}.{i % 250 + 1}", 80, "DEFAULT")


def key(i: int) -> ServiceKey:
    return ServiceKey("public", "DEFAULT_GROUP", f"svc-{i // 100}")


def node_holding(now: float) -> RegistryNode:
    node = RegistryNode(POLICY, 1, now, "127.0.0.1:7800", detect_stalls=False)
    for i in range(HELD):
        node.store.register(key(i), iid(i), 1.0, True, {}, now, 1, VICTIM)
        node.store.register(key(i), iid(HELD + i), 1.0, True, {}, now, 1, OTHER)
    return node


def expiry_after_kill(phase: float) -> float:
    """Seconds from the victim's last renewal (its client killed right after it) until
    all its instances are unhealthy; the renewal lands ``phase`` s after a sweep began."""
    now = 0.0
    node = node_holding(now)
    sessions = node.store.sessions
    renew_every = 5.0  # the client's beat interval
    next_renewal = phase  # the sweeps begin at 5, 10, ...: renewals at the wanted phase
    killed_at = math.inf
    while now < 120.0:  # bounded: the clock always moves forward
        if now >= next_renewal:
            sessions.renew(OTHER, "public", now, 0, now)
            if killed_at == math.inf:
                sessions.renew(VICTIM, "public", now, 0, now)
                if now >= 50.0:
                    killed_at = now  # SIGKILL right after this renewal
            next_renewal += renew_every
        wake = node.tick(now)
        node.take_effects()
        if killed_at < math.inf and node.store.unhealthy_total >= HELD:
            assert node.store.unhealthy_total == HELD  # the other session's are untouched
            return now - killed_at
        now = now + TURN if wake <= now else min(wake, next_renewal)
    raise AssertionError("the victim's instances were never all marked unhealthy")


@pytest.mark.parametrize("phase", [0.0, 0.5, 1.5, 2.5, 3.5, 4.5, 4.9])
def test_a_killed_clients_instances_are_unhealthy_well_within_the_bound(
    monkeypatch: pytest.MonkeyPatch, phase: float
) -> None:
    monkeypatch.setattr(health, "SWEEP_STEP", STEP)
    took = expiry_after_kill(phase)
    # at least unhealthy_after (the rule the user sees did not change) ...
    assert took >= POLICY.unhealthy_after
    # ... and at most the goal less the margin, whatever the phase of the 5 s sweep
    assert took <= GOAL - MARGIN, f"{took:.2f} s after the kill (goal {GOAL:g} s)"


def test_the_session_check_marks_only_and_reads_a_marked_session_once() -> None:
    node = node_holding(0.0)
    store = node.store
    store.sessions.renew(OTHER, "public", 16.0, 0, 16.0)
    check = SweepPass(store, 16.0, POLICY, sessions_only=True)
    assert check.advance()
    check.finish(16.0)
    assert store.unhealthy_total == HELD
    # silent past evict_after: still only marked (eviction is the sweep's, with
    # self-preservation's count), and a session marked at its last renewal is skipped
    store.sessions.renew(OTHER, "public", 40.0, 0, 40.0)
    again = SweepPass(store, 40.0, POLICY, sessions_only=True)
    assert again.advance() and again.found == [] and again.silent_sessions == 0
    assert again.finish(40.0) == [] and store.instance_total == 2 * HELD
    # a healthy instance joining the silent session makes it judged again
    store.register(key(0), iid(9_999), 1.0, True, {}, 40.0, 1, VICTIM)
    third = SweepPass(store, 40.0, POLICY, sessions_only=True)
    assert third.advance()
    assert [(k, marked) for k, marked, _ in third.found] == [(key(0), [iid(9_999)])]
    # the sweep still evicts them (the new one too: its session is what is silent)
    sweep = SweepPass(store, 40.0, POLICY)
    while not sweep.advance():  # bounded: each step judges at least one service
        pass
    assert {c.reason for c in sweep.finish(40.0)} == {"evicted"}
    assert store.instance_total == HELD


def test_a_session_check_on_a_member_skips_a_session_marked_where_it_judges() -> None:
    """A cluster member judges the services it owns: once it marked those of a silent
    session, later checks skip the session (no rereading every second till eviction)."""
    node = node_holding(0.0)
    store = node.store
    mine = {key(0), key(100)}  # 2 of the 25 services (100 instances of the victim each)
    store.sessions.renew(OTHER, "public", 16.0, 0, 16.0)
    check = SweepPass(store, 16.0, POLICY, owns=mine.__contains__, sessions_only=True)
    assert check.advance()
    assert sorted(k for k, _, _ in check.found) == sorted(mine)
    check.finish(16.0)
    assert store.unhealthy_total == 200
    again = SweepPass(store, 17.0, POLICY, owns=mine.__contains__, sessions_only=True)
    assert again.advance() and again.found == [] and again.silent_sessions == 0  # not read


def test_a_lone_node_without_sessions_wakes_for_the_sweep_only() -> None:
    node = RegistryNode(POLICY, 1, 0.0, "127.0.0.1:7800", detect_stalls=False)
    assert node.tick(0.5) == POLICY.check_interval
    node.store.register(key(0), iid(0), 1.0, True, {}, 0.5, 1, VICTIM)
    assert node.tick(0.6) == health.session_check_interval(POLICY)
