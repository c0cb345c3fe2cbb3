"""review80: sessions whose renewals reached the cluster through a member that left.

A session is renewed at its client's server, which replicates the renewal to its peers
(core/sessions; ``SessionRecord.via`` names that server on the others).  When the others
stop hearing that server (it died, or a one-way cut loses what it sends), the client
learns that its server sees no majority only from the server itself: half a peer timeout
after the peers dropped it (DEAF_GRACE) for a node whose messages are lost, then at the
client's next renewal; only then does it move.  The owner of its services judged the
instances on the renewal before the cut: at the short timings (unhealthy 3 s, renewals
every 1 s, peer timeout 1.5 s) they were marked unhealthy on the majority 2.2-2.6 s into
the cut, before the client could move (review78's sweep: deaf-short seeds 2, 18, 24, 29,
31, 32).  Now such a session counts as renewed when its server left the view, as a
session first seen does (core/distro ``_relays_left``).

Seeded simulation of review75 (real ``NodeRuntime``s, real ``ClientSession``).
"""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "review75"))

from r75scen import owner_of, run  # noqa: E402
from r75sim import R_SHORT, RFaults  # noqa: E402
from test_distro_sim import lookup  # noqa: E402


def _cut(rs: RFaults, x: str, at: float, length: float, mute: bool) -> None:
    """From ``at`` for ``length`` s, everything ``x`` sends to its peers is lost
    (``mute``), or everything they send it (deaf)."""
    others = [n for n in rs.net.nodes if n != x]
    pairs = [(x, o) if mute else (o, x) for o in others]

    def begin() -> None:
        for pair in pairs:
            rs.net.oneway_loss[pair] = 1.0

    def end() -> None:
        for pair in pairs:
            rs.net.oneway_loss.pop(pair, None)

    rs.net.at(at, begin)
    rs.net.at(at + length, end)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("phase", [0.0, 0.2, 0.4, 0.6, 0.8])
def test_a_session_on_a_mute_server_is_not_marked_before_its_client_can_move(phase: float) -> None:
    """The session client's server n1 goes mute at 8 + ``phase`` s (the renewals come
    every second: each phase cuts at another point of the interval); the instances' owner
    is n0.  Every sample on n0 and n2 must show them healthy: the client moves to a server
    that sees a majority and renews there."""
    rs = RFaults("r80-mute", 8001, R_SHORT, 3)
    service = next(f"svc{i}" for i in range(50) if owner_of(rs, f"svc{i}") == "n0")
    p = rs.provider("p0", "n1", True, [service], 2, many=0.0, start=1.0)
    start = 8.0 + phase
    _cut(rs, "n1", start, 8.0, mute=True)
    bad: dict[str, list[float]] = {}

    def probe() -> None:
        for node_id in ("n0", "n2"):
            for inst in p.insts:
                rec = lookup(rs.net.nodes[node_id].core, inst)
                if rec is None or not rec.healthy:
                    bad.setdefault(node_id, [rs.net.now, rs.net.now])[1] = rs.net.now

    rs.net.every(0.1, probe, start=start)
    rs.net.run_until(start + 8.0)
    assert all(i.registered_at is not None and i.registered_at < start for i in p.insts)
    assert p.client.session.server != "10.9.0.2:7400", "the client never moved from n1"
    assert not bad, (
        f"live session instances of {p.name} (server n1, muted at {start:.1f} s; the client "
        "alive and reaching every node) not healthy on the majority: "
        + ", ".join(f"{n} t={a:.1f}..{b:.1f}" for n, (a, b) in sorted(bad.items()))
    )


@pytest.mark.timeout(60)
def test_a_session_that_died_with_its_server_is_judged_from_when_the_server_left() -> None:
    """The other side of the rule: the client and its server n1 die together at 8.3 s.
    The owner n0 drops n1 a peer timeout later (the view changes) and marks the instances
    ``unhealthy_after`` after that, not after their last renewal; and it does mark them
    and evict them (the grace is one, not a reprieve)."""
    rs = RFaults("r80-died", 8002, R_SHORT, 3)
    service = next(f"svc{i}" for i in range(50) if owner_of(rs, f"svc{i}") == "n0")
    p = rs.provider("p0", "n1", True, [service], 2, many=0.0, start=1.0)
    died = 8.3
    p.kill_at(died)
    rs.net.at(died, rs.net.crash, "n1")
    n0 = rs.net.nodes["n0"]
    dropped: list[float] = []
    marked: list[float] = []
    gone: list[float] = []

    def probe() -> None:
        now = rs.net.now
        if not dropped and "n1" not in n0.core.members():
            dropped.append(now)
        recs = [lookup(n0.core, inst) for inst in p.insts]
        if not marked and all(r is None or not r.healthy for r in recs):
            marked.append(now)
        if not gone and all(r is None for r in recs):
            gone.append(now)

    rs.net.every(0.05, probe, start=died)
    h = R_SHORT.health
    rs.net.run_until(died + R_SHORT.cluster.peer_timeout + h.evict_after + 4.0)
    assert dropped, "n0 never dropped n1"
    assert marked and gone, f"never marked ({marked}) or evicted ({gone}) on n0"
    # judged from the drop: not before unhealthy_after after it (a check interval late
    # at most), and evicted in time
    assert marked[0] >= dropped[0] + h.unhealthy_after - 0.1, (dropped, marked)
    assert marked[0] <= dropped[0] + h.unhealthy_after + h.check_interval + 0.2, (dropped, marked)
    assert gone[0] <= dropped[0] + h.evict_after + h.check_interval + 0.2, (dropped, gone)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", [2, 24, 31])
def test_review78_deaf_short_seeds_hold_every_invariant(seed: int) -> None:
    """Three of the six deaf-short seeds that failed (review78's stop note): 2 and 31 the
    marks above; 24 also a deregister copy applied late by the mute server that won over
    the client's later register after the heal (session.py ``_after_copies``)."""
    from r75scen import message

    rs, problems = run("deaf-short", seed)
    assert not problems, message(rs, "deaf-short", seed, problems)


@pytest.mark.timeout(60)
def test_a_beater_whose_owner_stops_keeps_its_healthy_server() -> None:
    """A per-instance beater (server n1) of a service owned by n0; n0 stops (SIGSTOP) for
    2.5 s, under the peer timeout (3 s): n1 still counts it a member and forwards the
    beats to it.  The client sends each beat straight to n0 first (no answer), then
    through n1 for its last attempt (1 s): n1 answers within BEAT_FORWARD_WAIT, applying
    the beat itself, and the client stays on n1.  With ``peer_request_timeout`` (2 s) it
    waited longer than the attempt: the client failed over from its healthy server."""
    from r75sim import R_DEFAULT

    rs = RFaults("r80-beat-wait", 8003, R_DEFAULT, 3)
    service = next(f"svc{i}" for i in range(50) if owner_of(rs, f"svc{i}") == "n0")
    p = rs.provider("p0", "n1", False, [service], 1, many=0.0, start=1.0)
    servers: set[str] = set()
    rs.net.every(0.05, lambda: servers.add(p.client.session.server), start=2.0)
    for k in range(6):  # six stops, 8.8 s apart: at six points of the 5 s beat interval
        at = 12.0 + 8.8 * k
        rs.net.at(at, rs.net.pause, "n0")
        rs.net.at(at + 2.5, rs.net.resume, "n0", "runtime")
    rs.net.run_until(12.0 + 8.8 * 6)
    assert p.insts[0].registered_at is not None
    assert servers == {"10.9.0.2:7400"}, (
        f"the beater left its server n1 (10.9.0.2:7400) while only the owner n0 was "
        f"stopped: servers seen {sorted(servers)}; fallbacks "
        f"{rs.net.counts.get('forward_fallback', 0)}"
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sessions", [True, False], ids=["session", "beats"])
def test_a_register_made_while_its_deregister_is_out_survives_it(sessions: bool) -> None:
    """A caller deregisters an instance and registers it again 0.1 s later, without
    waiting (another thread).  Every deregister on its way to the owner n2 is slow (0.4
    s: a lossy or delayed link; in loss-short seed 24, after review79's change, it went
    through another node whose forward was slow): the register reaches the owner first (a
    repeat, no write), the deregister after it and removes the instance, which the caller
    registered last.  The client, told the deregister's answer while the
    instance is registered again, sends the register once more, after it."""
    rs = RFaults("r80-race", 8004, R_SHORT, 3)
    service = next(f"svc{i}" for i in range(50) if owner_of(rs, f"svc{i}") == "n2")
    p = rs.provider("p0", "n1", sessions, [service], 1, many=0.0, start=1.0)
    inner = rs.net.drop

    def slow_forward(src: object, dst: object, frames: list[bytes]) -> bool:
        if getattr(dst, "name", None) == "n2" and any(b"deregister" in f for f in frames):
            rs.net.after(0.4, rs.net._arrive, src, dst, frames)
            return True  # (delivered late, above)
        return inner(src, dst, frames) if inner is not None else False

    rs.net.drop = slow_forward
    inst = p.insts[0]
    p.deregister_at(8.0, inst)
    p.reregister_at(8.1, inst)
    missing: list[str] = []

    def probe() -> None:  # the deregister lands at ~8.4; the redo follows its answer
        if rs.net.now >= 8.95:  # (then the session's or the beats' own repair may come)
            return
        for node_id in rs.net.nodes:
            if lookup(rs.net.nodes[node_id].core, p.lifecycle(inst)) is None:
                missing.append(f"{node_id}@{rs.net.now:.2f}")

    rs.net.every(0.05, probe, start=8.6)
    rs.fault_end = 8.5
    problems = rs.run_all(rs.fault_end + R_SHORT.health.evict_after + 40.0)  # (as r75scen)
    live = p.lifecycle(inst)
    assert live.wanted and live.registered_at is not None, p.results
    assert not problems, "\n".join(problems[:5])
    assert not missing, (
        f"the instance, registered last, missing after its deregister's late copy: "
        f"{missing[:6]} (the client did not send the register again once told the "
        "deregister's answer)"
    )
