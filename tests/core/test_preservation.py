"""Self-preservation: mass silence holds evictions; it ends by itself and never sticks.

Every scenario runs a fleet of providers against a node core on a fake clock:
the clock advances in 1 s steps, provider i beats every 5 s (at the seconds
where ``t % 5 == i % 5``, so beats are spread like real ones), and the node is
ticked at every step (it sweeps when its ``check_interval`` is due).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from answers import peer_reply, served, stats_map

from meshreg.config import NodeConfig, load_node_config
from meshreg.core.distro import ClusterPolicy, DistroNode, PeerCall
from meshreg.core.effects import ServiceChanged
from meshreg.core.health import HealthPolicy
from meshreg.core.mapping import responsible_node
from meshreg.core.preservation import (
    SelfPreservation,
    SelfPreservationEnded,
    SelfPreservationExpired,
    SelfPreservationStarted,
)
from meshreg.core.registry import RegistryNode
from meshreg.errors import ConfigError
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.messages import Beat, DeregisterInstance, RegisterInstance
from meshreg.wire.peer import Beacon

EPOCH = 7
BEAT_INTERVAL = 5  # s, the client's default
SERVICES = [ServiceKey("public", "DEFAULT_GROUP", f"svc{i}") for i in range(4)]

Provider = tuple[ServiceKey, InstanceId]


@dataclass
class Fleet:
    """A node core, its providers and a fake clock."""

    node: RegistryNode
    now: float = 0.0
    providers: list[Provider] = field(default_factory=list)
    beating: set[Provider] = field(default_factory=set)
    effects: list[Any] = field(default_factory=list)

    def add(
        self, n: int, services: list[ServiceKey] = SERVICES, forwarded: bool = False
    ) -> list[Provider]:
        """Register n providers now (spread over ``services``); they beat from now on."""
        new = []
        for _ in range(n):
            i = len(self.providers)
            p = (
                services[i % len(services)],
                InstanceId(f"10.0.{i // 200}.{i % 200 + 1}", 8000, "DEFAULT"),
            )
            reg = RegisterInstance(i, p[0], p[1], 1.0, True, {})
            if forwarded:  # a copy held here, as replication would leave it
                assert isinstance(self.node, DistroNode)
                served(self.node, reg, self.now, forwarded=True)
            else:
                served(self.node, reg, self.now)
            self.providers.append(p)
            self.beating.add(p)
            new.append(p)
        self.effects += self.node.take_effects()
        return new

    def step(self) -> None:
        """Beats due at this second, then a tick."""
        second = round(self.now)
        for i, p in enumerate(self.providers):
            if p in self.beating and second % BEAT_INTERVAL == i % BEAT_INTERVAL:
                served(self.node, Beat(0, p[0], p[1]), self.now)
        self.node.tick(self.now)
        self.effects += self.node.take_effects()

    def run_until(self, t: float) -> None:
        while self.now < t:
            self.now += 1.0
            self.step()

    def deregister(self, providers: list[Provider]) -> None:
        for p in providers:
            served(self.node, DeregisterInstance(0, p[0], p[1]), self.now)
            self.beating.discard(p)
        self.effects += self.node.take_effects()

    # -- what the node holds -----------------------------------------------------------
    def state(self, p: Provider) -> str:
        svc = self.node.store.get(p[0])
        rec = svc.instances.get(p[1]) if svc is not None else None
        if rec is None:
            return "gone"
        return "healthy" if rec.healthy else "unhealthy"

    def states(self, providers: list[Provider]) -> set[str]:
        return {self.state(p) for p in providers}

    def sp(self) -> dict[str, Any]:
        result: dict[str, Any] = stats_map(self.node, self.now)["self_preservation"]
        return result

    def evictions(self) -> int:
        return sum(
            len(e.removed)
            for e in self.effects
            if isinstance(e, ServiceChanged) and e.reason == "evicted"
        )

    def events(self) -> list[Any]:
        return [
            e
            for e in self.effects
            if isinstance(e, (SelfPreservationStarted, SelfPreservationEnded))
        ]


def fleet(n: int, **policy: Any) -> Fleet:
    f = Fleet(RegistryNode(HealthPolicy(**policy), EPOCH, 0.0, detect_stalls=False))
    f.add(n)
    return f


def silence(f: Fleet, providers: list[Provider]) -> None:
    for p in providers:
        f.beating.discard(p)


# -- mass expiry: held, or evicted on time ------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "silent", "policy", "held"),
    [
        (100, 90, {}, True),  # 90% > 85%, 90 >= 10: the node blames its own network
        (100, 100, {}, True),  # every beat stopped
        (100, 86, {}, True),  # just above the share
        (100, 85, {}, False),  # exactly 85% is not "more than 85%"
        (100, 5, {}, False),  # a handful dying is normal
        (12, 12, {}, True),  # all of a small fleet, at least the minimum
        (10, 10, {}, True),  # exactly the minimum
        (8, 8, {}, False),  # all of a fleet below the minimum: evicted on time
        (8, 8, {"self_preservation_min": 5}, True),
        (100, 20, {"self_preservation_threshold": 0.1}, True),
        (100, 90, {"self_preservation": False}, False),  # turned off: evicted as before
    ],
)
def test_mass_silence_holds_evictions_a_handful_is_evicted_on_time(
    n: int, silent: int, policy: dict[str, Any], held: bool
) -> None:
    f = fleet(n, **policy)
    f.run_until(10.0)
    quiet = f.providers[:silent]
    alive = f.providers[silent:]
    silence(f, quiet)
    f.run_until(10.0 + 3 * 30.0)  # three eviction spans later
    assert f.states(alive) <= {"healthy"}
    sp = f.sp()
    if held:
        assert f.states(quiet) == {"unhealthy"}, "silent instances are marked, never evicted"
        assert f.evictions() == 0
        assert sp["active"] is True and sp["evicting"] is False
        assert (sp["silent"], sp["of"], sp["held"]) == (silent, n, silent)
        assert sp["active_for"] is not None and sp["active_for"] > 60.0
        (started,) = f.events()
        assert started == SelfPreservationStarted(
            silent,
            n,
            policy.get("self_preservation_threshold", 0.85),
            policy.get("self_preservation_min", 10),
        )
    else:
        assert f.states(quiet) <= {"gone"}
        assert f.evictions() == silent
        assert f.events() == []
        assert sp["active"] is False and sp["active_for"] is None and sp["held"] == 0
        assert (sp["silent"], sp["of"]) == (0, n - silent)


def test_evicted_on_time_below_the_threshold() -> None:
    """A few silent instances keep the 15 s / 30 s timeline to the second."""
    f = fleet(100)
    f.run_until(10.0)
    quiet = f.providers[:5]  # last beats at 10 (i=0, 5) or at 6..9
    silence(f, quiet)
    f.run_until(39.0)
    assert f.states(quiet) == {"unhealthy"}
    f.run_until(45.0)  # every last beat <= 10 s, sweeps every 5 s: gone by 40 + 5
    assert f.states(quiet) == {"gone"}


def test_unhealthy_marking_goes_on_and_the_start_is_announced_before_it() -> None:
    f = fleet(100)
    f.run_until(10.0)
    silence(f, f.providers[:90])
    f.run_until(30.0)
    kinds = [type(e).__name__ if not isinstance(e, ServiceChanged) else e.reason for e in f.effects]
    first_mark = kinds.index("unhealthy")
    assert "SelfPreservationStarted" in kinds
    assert kinds.index("SelfPreservationStarted") < first_mark  # the log says why first
    assert f.states(f.providers[:90]) == {"unhealthy"}
    assert stats_map(f.node, f.now)["instances"] == {"total": 100, "healthy": 10, "unhealthy": 90}


# -- leaving the mode ---------------------------------------------------------------------------
def test_beats_recover_the_mode_ends_and_nothing_is_lost() -> None:
    f = fleet(100)
    f.run_until(10.0)
    quiet = f.providers[:90]
    silence(f, quiet)
    f.run_until(100.0)
    assert f.sp()["active"] is True
    f.beating.update(quiet)  # the node's network is back
    f.run_until(110.0)
    assert f.states(f.providers) == {"healthy"}
    assert f.sp()["active"] is False and f.sp()["silent"] == 0
    started, ended = f.events()
    assert isinstance(started, SelfPreservationStarted) and isinstance(ended, SelfPreservationEnded)
    assert ended.evictions_resume_in == 15.0 and ended.lasted > 60.0
    f.run_until(300.0)  # nothing stuck: the mode stays off, nothing is evicted
    assert f.evictions() == 0 and len(f.events()) == 2
    assert f.states(f.providers) == {"healthy"}


def test_staggered_recovery_evicts_no_live_instance_and_then_the_dead_ones() -> None:
    """Beats come back over a beat interval: the first sweeps see only some of them."""
    f = fleet(100, check_interval=1.0)  # a sweep every second, five per beat interval
    f.run_until(10.0)
    quiet = f.providers[:90]
    silence(f, quiet)
    f.run_until(100.0)
    assert f.sp()["active"] is True
    back, dead = quiet[:60], quiet[60:]
    f.beating.update(back)
    f.run_until(101.0)  # one second later only a fifth of them has beaten
    (ended,) = [e for e in f.events() if isinstance(e, SelfPreservationEnded)]
    assert ended.silent > 40  # alive but not yet heard of: held a while longer
    assert f.sp()["evicting"] is False
    f.run_until(101.0 + 14.0)
    assert f.states(quiet) == {"healthy", "unhealthy"}  # nothing evicted in the grace span
    assert f.evictions() == 0
    f.run_until(101.0 + 16.0)
    assert f.states(back) == {"healthy"}
    assert f.states(dead) == {"gone"}  # really dead: evicted once the grace span is over
    assert f.evictions() == 30 and f.sp()["evicting"] is True


def test_deregistering_the_dead_ends_the_mode() -> None:
    """The baseline follows deliberate deregistrations: an operator can clear a mass death."""
    f = fleet(100)
    f.run_until(10.0)
    quiet = f.providers[:90]
    silence(f, quiet)
    f.run_until(60.0)
    assert f.sp()["active"] is True
    f.deregister(quiet)
    f.run_until(65.0)
    assert f.sp()["active"] is False and (f.sp()["silent"], f.sp()["of"]) == (0, 10)
    assert f.evictions() == 0


def test_new_registrations_end_the_mode_and_the_dead_are_evicted_after_the_grace_span() -> None:
    """A fleet killed without deregistering and replaced by a new one: not stuck."""
    f = fleet(100)
    f.run_until(10.0)
    quiet = f.providers[:90]
    silence(f, quiet)
    f.run_until(60.0)
    assert f.sp()["active"] is True
    replacements = f.add(100)
    f.run_until(65.0)  # 90 silent of 200: 45%
    assert f.sp()["active"] is False
    f.run_until(85.0)
    assert f.states(quiet) == {"gone"} and f.evictions() == 90
    assert f.states(replacements + f.providers[90:100]) == {"healthy"}


# -- the baseline follows scale-downs -------------------------------------------------------------
def test_scale_down_by_deregistration_then_a_few_die_evicted_normally() -> None:
    f = fleet(100)
    f.run_until(10.0)
    f.deregister(f.providers[:90])
    f.run_until(20.0)
    rest = f.providers[90:]
    silence(f, rest[:5])  # half of what is left, but fewer than the minimum
    f.run_until(60.0)
    assert f.states(rest[:5]) == {"gone"} and f.states(rest[5:]) == {"healthy"}
    assert f.events() == [] and f.sp()["of"] == 5


def test_scale_down_by_deregistration_lowers_the_baseline() -> None:
    """12 left of 100, and all 12 go silent: that is 100% of the table, not 12%."""
    f = fleet(100)
    f.run_until(10.0)
    f.deregister(f.providers[:88])
    f.run_until(20.0)
    rest = f.providers[88:]
    silence(f, rest)
    f.run_until(100.0)
    assert f.states(rest) == {"unhealthy"}
    assert f.sp()["active"] is True and (f.sp()["silent"], f.sp()["of"]) == (12, 12)


def test_scale_down_by_eviction_below_the_threshold_does_not_leave_the_mode_on() -> None:
    """Eureka's stuck case (Netflix/eureka #1073): evictions lower the baseline here."""
    f = fleet(100)
    f.run_until(10.0)
    gone = f.providers[:80]  # killed without deregistering: 80% < 85%
    silence(f, gone)
    f.run_until(50.0)
    assert f.states(gone) == {"gone"} and f.evictions() == 80
    f.run_until(200.0)  # the 20 left beat on: no trace of the 80 in the baseline
    assert f.sp()["active"] is False and f.sp()["times_entered"] == 0
    assert (f.sp()["silent"], f.sp()["of"]) == (0, 20)
    rest = f.providers[80:]
    silence(f, rest[:5])  # later, a few more die: evicted on time
    f.run_until(240.0)
    assert f.states(rest[:5]) == {"gone"} and f.states(rest[5:]) == {"healthy"}
    assert f.events() == []


# -- the state machine alone ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sweeps", "expected"),
    [
        # (now, silent, total, overdue) -> (evicting, active, events) after each sweep
        (
            [
                (0, 0, 100, 0),
                (5, 90, 100, 0),
                (10, 90, 100, 90),
                (15, 0, 100, 0),
                (29, 0, 100, 0),
                (30, 0, 100, 0),
            ],
            [
                (True, False, ""),
                (False, True, "started"),
                (False, True, ""),
                (False, False, "ended"),  # grace: held ones get evict_after - unhealthy_after
                (False, False, ""),
                (True, False, ""),
            ],
        ),
        (
            [(0, 9, 9, 9), (5, 10, 100, 10), (10, 10, 11, 10)],
            [(True, False, ""), (True, False, ""), (False, True, "started")],
        ),
        (  # tripped again during the grace span: back in the mode, a new grace after it
            [
                (0, 90, 100, 0),
                (5, 10, 100, 10),
                (10, 90, 100, 90),
                (15, 0, 100, 0),
                (30, 0, 100, 0),
            ],
            [
                (False, True, "started"),
                (False, False, "ended"),
                (False, True, "started"),
                (False, False, "ended"),
                (True, False, ""),
            ],
        ),
        (  # emptied table: nothing silent, the mode ends
            [(0, 12, 12, 12), (5, 0, 0, 0)],
            [(False, True, "started"), (False, False, "ended")],
        ),
    ],
)
def test_transitions(
    sweeps: list[tuple[float, int, int, int]], expected: list[tuple[bool, bool, str]]
) -> None:
    sp = SelfPreservation(HealthPolicy())
    seen = []
    for now, silent, total, overdue in sweeps:
        evicting = sp.assess(now, silent, total, overdue)
        events = sp.take_events()
        kind = ""
        if events:
            (event,) = events
            kind = "started" if isinstance(event, SelfPreservationStarted) else "ended"
        seen.append((evicting, sp.active, kind))
    assert seen == expected


# -- a cluster member judges only the services it is responsible for -----------------------------
def distro_pair() -> tuple[DistroNode, list[ServiceKey], list[ServiceKey]]:
    """n1, ready, with n2 up: the services n1 owns and those n2 owns."""
    node = DistroNode(
        HealthPolicy(), ClusterPolicy(), "n1", "10.0.0.1:7800", ["10.0.0.2:7800"], EPOCH, 0.0
    )
    node.on_replication(Beacon("n2", "10.0.0.2:7800", 99, True, 0), 0.0)
    node.tick(0.0)
    (call,) = [e for e in node.take_effects() if isinstance(e, PeerCall) and e.op != "beacon"]
    peer_reply(node, call.tag, {"node": "n2", "digests": [], "more": False}, 0.0)
    assert node.ready and node.members() == ("n1", "n2")
    keys = [ServiceKey("public", "DEFAULT_GROUP", f"svc{i}") for i in range(40)]
    mine = [k for k in keys if responsible_node(k, ("n1", "n2")) == "n1"][:4]
    theirs = [k for k in keys if responsible_node(k, ("n1", "n2")) == "n2"][:4]
    return node, mine, theirs


class PairFleet(Fleet):
    def step(self) -> None:
        assert isinstance(self.node, DistroNode)
        self.node.on_replication(Beacon("n2", "10.0.0.2:7800", 99, True, 0), self.now)
        super().step()


def test_distro_node_counts_only_the_services_it_is_responsible_for() -> None:
    node, mine, theirs = distro_pair()
    f = PairFleet(node)
    own = f.add(20, mine)
    other = f.add(200, theirs, forwarded=True)  # replicated copies: their beats go to n2
    silence(f, other)
    f.run_until(10.0)
    silence(f, own[:2])  # 2 of 20 here; counting n2's would make it 202 of 220
    f.run_until(60.0)
    assert f.states(own[:2]) == {"gone"} and f.states(own[2:]) == {"healthy"}
    assert f.states(other) == {"healthy"}  # not ours to judge
    assert f.events() == [] and (f.sp()["silent"], f.sp()["of"]) == (0, 18)
    assert node.members() == ("n1", "n2")


def test_distro_node_preserves_its_own_services_when_their_beats_stop() -> None:
    node, mine, theirs = distro_pair()
    f = PairFleet(node)
    own = f.add(12, mine)
    f.add(100, theirs, forwarded=True)
    f.run_until(10.0)
    silence(f, own)
    f.run_until(100.0)
    assert f.states(own) == {"unhealthy"}
    assert f.sp()["active"] is True and (f.sp()["silent"], f.sp()["of"]) == (12, 12)
    stats = stats_map(node, f.now)
    assert stats["self_preservation"]["active"] is True and stats["ready"] is True


# -- configuration -----------------------------------------------------------------------------
def test_defaults() -> None:
    p = HealthPolicy()
    assert (p.self_preservation, p.self_preservation_threshold, p.self_preservation_min) == (
        True,
        0.85,
        10,
    )
    sp = stats_map(RegistryNode(p, EPOCH, 0.0), 0.0)["self_preservation"]
    assert sp == {
        "enabled": True,
        "active": False,
        "active_for": None,
        "evicting": True,
        "silent": 0,
        "of": 0,
        "held": 0,
        "threshold": 0.85,
        "min_instances": 10,
        "times_entered": 0,
        "state": "normal",
        "max_duration": 900.0,
        "times_expired": 0,
    }


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"self_preservation_threshold": 0.0}, "self_preservation_threshold"),
        ({"self_preservation_threshold": 1.0}, "self_preservation_threshold"),
        ({"self_preservation_threshold": 85.0}, "self_preservation_threshold"),
        ({"self_preservation_threshold": float("nan")}, "self_preservation_threshold"),
        ({"self_preservation_min": 0}, "self_preservation_min"),
        ({"self_preservation_min": 2.5}, "self_preservation_min"),
        ({"self_preservation_min": True}, "self_preservation_min"),
        ({"self_preservation": 1}, "self_preservation"),
    ],
)
def test_invalid_settings_raise_config_error(kwargs: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ConfigError, match=field_name):
        HealthPolicy(**kwargs)


def test_toml_and_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "node.toml"
    cfg.write_text(
        "[health]\nself_preservation = false\nself_preservation_threshold = 0.9\n"
        "self_preservation_min = 3\n"
    )
    h = load_node_config(cfg).health
    assert (h.self_preservation, h.self_preservation_threshold, h.self_preservation_min) == (
        False,
        0.9,
        3,
    )
    assert type(h.self_preservation_min) is int
    h2 = NodeConfig().with_overrides(self_preservation=False, self_preservation_min=4).health
    assert (h2.self_preservation, h2.self_preservation_min) == (False, 4)
    with pytest.raises(ConfigError, match="self_preservation_threshold"):
        NodeConfig().with_overrides(self_preservation_threshold=1.5)
    for text, needle in [
        ("self_preservation = 1\n", "true or false"),
        ("self_preservation_min = 2.0\n", "whole number"),
        ('self_preservation_threshold = "high"\n', "must be a number"),
        ("self_preservation_threshold = 0\n", "self_preservation_threshold"),
    ]:
        cfg.write_text("[health]\n" + text)
        with pytest.raises(ConfigError, match=needle):
            load_node_config(cfg)


# -- junk cannot lock the mode (issue 10, M3) ---------------------------------------------------
def junk(f: Fleet, n: int, beats: int = 0) -> list[Provider]:
    """n one-shot registrations: registered now, they beat ``beats`` times, then never."""
    added = f.add(n, services=[ServiceKey("public", "DEFAULT_GROUP", "junk")])
    if beats == 0:
        silence(f, added)
    else:
        f.run_until(f.now + beats * BEAT_INTERVAL)
        silence(f, added)
    return added


def expirations(f: Fleet) -> list[SelfPreservationExpired]:
    return [e for e in f.effects if isinstance(e, SelfPreservationExpired)]


def test_one_shot_junk_beside_live_instances_never_trips_and_is_evicted() -> None:
    """M3: 140 registrations that never beat beside 20 live ones (87% silent at once)."""
    f = fleet(20)
    spam = junk(f, 140)
    f.run_until(45.0)
    assert f.states(spam) == {"gone"}, "never beaten: evicted as usual (30 s + one sweep)"
    assert f.events() == [] and f.sp()["times_entered"] == 0
    live = f.providers[:20]
    assert f.states(live) == {"healthy"}
    dead = live[0]
    silence(f, [dead])  # a provider really dies: it is evicted within a bounded time
    f.run_until(45.0 + 30.0 + 5.0 + 5.0)
    assert f.state(dead) == "gone" and f.states(live[1:]) == {"healthy"}
    assert f.events() == []


def test_junk_is_not_counted_so_a_real_fault_among_it_still_trips() -> None:
    """Junk beside a live fleet that then goes silent at once: 20 of 20 that had a beat
    stream stopped; the live ones are held, the junk is evicted even during the mode."""
    f = fleet(20)
    f.run_until(10.0)
    spam = junk(f, 140)
    live = f.providers[:20]
    silence(f, live)
    f.run_until(100.0)
    assert f.sp()["active"] is True and (f.sp()["silent"], f.sp()["of"]) == (20, 20)
    assert f.states(live) == {"unhealthy"} and f.states(spam) == {"gone"}


def test_junk_that_beat_once_trips_the_mode_but_it_expires_and_the_dead_are_evicted() -> None:
    """Junk that beats once counts (it had a stream); the episode cannot last forever."""
    f = fleet(20, self_preservation_max=120.0)
    f.run_until(10.0)
    spam = junk(f, 140, beats=1)
    start = f.now
    f.run_until(start + 30.0)
    assert f.sp()["active"] is True  # 140 of 160 silent at once
    entered = f.now - f.sp()["active_for"]
    live = f.providers[:20]
    dead = live[0]
    silence(f, [dead])
    f.run_until(entered + 119.0)
    assert f.state(dead) == "unhealthy" and f.states(spam) == {"unhealthy"}  # held
    f.run_until(entered + 120.0 + 5.0)  # the first sweep at or after the maximum
    (expired,) = expirations(f)
    assert expired.silent == 141 and expired.total == 160 and expired.held == 141
    assert expired.lasted >= 120.0
    assert f.state(dead) == "gone" and f.states(spam) == {"gone"}
    assert f.states(live[1:]) == {"healthy"}
    sp = f.sp()
    assert sp["state"] == "normal" and sp["times_expired"] == 1 and sp["evicting"] is True
    # armed again: a later real mass silence still triggers protection
    f.run_until(f.now + 10.0)
    silence(f, live[1:])
    f.run_until(f.now + 40.0)
    assert f.sp()["active"] is True and f.sp()["times_entered"] == 2
    assert f.states(live[1:]) == {"unhealthy"}


def test_a_real_mass_silence_is_held_until_the_maximum() -> None:
    f = fleet(160)
    f.run_until(10.0)
    quiet = f.providers[:150]
    silence(f, quiet)
    f.run_until(10.0 + 800.0)
    assert f.sp()["active"] is True and f.states(quiet) == {"unhealthy"}
    assert f.evictions() == 0 and expirations(f) == []
    f.run_until(10.0 + 15.0 + 900.0 + 10.0)
    assert len(expirations(f)) == 1 and f.states(quiet) == {"gone"}


@pytest.mark.parametrize(
    ("sweeps", "expected"),
    [
        # (now, silent, total, overdue) -> (evicting, state) with self_preservation_max = 20
        (
            [
                (0, 90, 100, 0),
                (10, 90, 100, 90),
                (20, 90, 100, 90),
                (25, 90, 100, 0),
                (30, 0, 100, 0),
                (35, 90, 100, 0),
            ],
            [
                (False, "preserving"),
                (False, "preserving"),
                (True, "expired"),
                (True, "expired"),
                (True, "normal"),
                (False, "preserving"),
            ],
        ),
        (  # ends normally before the maximum: the usual grace, no expiry
            [(0, 90, 100, 0), (19, 0, 100, 0), (40, 90, 100, 0)],
            [(False, "preserving"), (False, "normal"), (False, "preserving")],
        ),
    ],
)
def test_expiry_transitions(
    sweeps: list[tuple[float, int, int, int]], expected: list[tuple[bool, str]]
) -> None:
    sp = SelfPreservation(HealthPolicy(self_preservation_max=20.0))
    seen = [(sp.assess(now, s, t, o), sp.state.value) for now, s, t, o in sweeps]
    assert seen == expected
    assert sp.times_expired == (1 if expected[2][1] == "expired" else 0)


def test_self_preservation_max_is_validated() -> None:
    for bad in (0, -1.0, float("inf"), "900"):
        with pytest.raises(ConfigError, match="self_preservation_max must be a finite number"):
            HealthPolicy(self_preservation_max=bad)  # type: ignore[arg-type]
