"""ClientSession: beats, session renewals, redo after failover or session loss, and one
log line per problem, never one per instance (fake clock, ms)."""

from __future__ import annotations

import pytest
from session_harness import PONG, SID, Handle, Harness, registration

from meshreg.client.actions import Complete, DirectSend
from meshreg.client.commands import (
    CloseSession,
    Deregister,
    Register,
    RegisterBatch,
    Registration,
)
from meshreg.client.session import LONG_RENEWALS, SHORT_RENEWALS
from meshreg.errors import ErrorCode
from meshreg.log_limiter import LOG_INTERVAL


def registered(h: Harness, count: int, session: bool = False) -> None:
    items = tuple((registration(n, session), Handle()) for n in range(count))
    h.do(RegisterBatch(items, 5.0))
    h.answer_batches()
    h.answer_all("session_open", {"session": SID})
    assert len(h.core.registrations) == count
    h.advance(0)
    h.answer_view()


# -- per-instance beats -------------------------------------------------------------------------
def test_each_registration_beats_once_per_interval() -> None:
    h = Harness(beat_ms=1000)
    registered(h, 3)
    h.advance(999)
    assert h.requests("beat") == []
    h.advance(1)
    beats = h.requests("beat")
    assert sorted(b.fields["ip"] for b in beats) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert set(beats[0].fields) == {"namespace", "group", "service", "ip", "port", "cluster"}
    h.answer_all("beat")
    h.answer_all("ping", PONG)  # one a beat interval: it tells whether a:1 sees a majority
    h.advance(1000)
    assert len(h.requests("beat")) == 6


def test_a_beat_answered_not_found_registers_that_instance_again_with_one_log_line() -> None:
    h = Harness(beat_ms=1000)
    registered(h, 100)
    h.advance(1000)
    start = len(h.sent)
    assert h.fail_all("beat", ErrorCode.NOT_FOUND, "not registered") == 100
    h.answer_batches()
    # numbered tries, as a redo is (test_client_session_register_race), batched
    batches = [s for s in h.sent[start:] if s.op == "register_batch"]
    again = [e for s in batches for e in s.fields["instances"]]
    assert len(again) == 100 and len(batches) < 100
    assert again[0] == registration(0).fields  # the full fields, not the beat's
    lines = [line for line in h.logs() if "registering them again" in line]
    assert len(lines) == 1 and "instances unknown to a:1" in lines[0]


def test_a_beat_for_an_instance_deregistered_meanwhile_does_not_bring_it_back() -> None:
    h = Harness(beat_ms=1000)
    registered(h, 1)
    h.advance(1000)
    (beat,) = h.unanswered("beat")
    reg = registration(0)
    h.do(Deregister(reg.key, reg.iid, reg.beat_fields, 3.0, Handle()))
    h.fail(beat, ErrorCode.NOT_FOUND)
    assert h.unanswered("register") == []


def test_a_beat_answered_unavailable_is_left_to_the_next_beat() -> None:
    """docs/PROTOCOL.md 5.2: a member catching up; do not re-register, do not fail over."""
    h = Harness(beat_ms=1000)
    registered(h, 50)
    h.advance(1000)
    assert h.fail_all("beat", ErrorCode.UNAVAILABLE, "still catching up") == 50
    assert h.unanswered("register") == []
    assert h.connects() == ["a:1"]
    assert h.logs() == []
    h.advance(1000)
    assert len(h.unanswered("beat")) == 50  # the next interval's beats


def test_a_beat_refused_otherwise_is_logged_once_per_interval() -> None:
    h = Harness(beat_ms=1000)
    registered(h, 20)
    for _ in range(3):
        h.advance(1000)
        assert h.fail_all("beat", ErrorCode.PERMISSION_DENIED, "beat: not allowed") == 20
        h.answer_all("ping", PONG)
    lines = h.logs("warning")
    assert len(lines) == 1 and "beats refused by a:1" in lines[0], lines
    assert h.unanswered("register") == []


def test_after_a_failover_the_new_server_gets_the_registrations_again() -> None:
    h = Harness(servers=("a:1", "b:2"), beat_ms=1000, attempt_ms=500)
    registered(h, 10)
    h.advance(1000)
    h.advance(500)  # a died: the beats go to b
    beats = h.unanswered("beat")
    assert {b.to for b in beats} == {"b:2"} and len(beats) == 10
    start = len(h.sent)
    h.fail_all("beat", ErrorCode.NOT_FOUND)  # b never heard of them
    h.answer_batches()
    batches = [s for s in h.sent[start:] if s.op == "register_batch"]
    assert {s.to for s in batches} == {"b:2"}
    assert sum(len(s.fields["instances"]) for s in batches) == 10


def test_a_dead_server_is_one_log_line_per_interval_not_one_per_instance() -> None:
    h = Harness(servers=("a:1",), beat_ms=200, attempt_ms=500)
    registered(h, 1000)
    h.advance(int(2 * LOG_INTERVAL * 1000))  # nothing answers for two log intervals
    lines = h.logs("warning")
    # per interval at most: the failover line and the unanswered-beats line
    assert 2 <= len(lines) <= 2 * 3, lines
    assert len(h.unanswered("beat")) <= 1000  # beats do not pile up without bound


# -- client sessions -----------------------------------------------------------------------------
def test_one_renewal_per_interval_keeps_every_session_registration_alive() -> None:
    h = Harness(beat_ms=1000, session=True)
    registered(h, 500, session=True)
    assert len(h.requests("session_open")) == 1
    h.advance(1000)
    renewals = h.requests("session_renew")
    assert len(renewals) == 1 and renewals[0].fields == {"namespace": "public", "session": SID}
    assert h.requests("beat") == []


@pytest.mark.parametrize(
    "answers",
    [
        [{"instances": 0, "known": False}],  # the session expired / the node restarted
        [{"instances": 2}] * SHORT_RENEWALS,  # the node holds fewer than acknowledged
    ],
    ids=["unknown-session", "short-renewals"],
)
def test_a_lost_session_is_opened_again_by_registering_its_instances_again(
    answers: list[dict[str, object]],
) -> None:
    h = Harness(beat_ms=1000, session=True)
    registered(h, 5, session=True)
    for answer in answers:
        assert h.unanswered("register") == h.unanswered("register_batch") == []
        h.advance(1000)
        (renewal,) = h.unanswered("session_renew")
        h.reply(renewal, answer)
    (again,) = h.unanswered("register_batch")  # in one batch
    entries = again.fields["instances"]
    assert len(entries) == 5 and {e["session"] for e in entries} == {SID}
    assert len([x for x in h.logs() if "registering them again" in x]) == 1


def test_a_catching_up_node_s_unknown_or_short_renewals_register_nothing_again() -> None:
    """review21 F8: a member still catching up (``ready: false``) may not hold the session
    yet; registering every instance again on its word is the storm the beat rule avoids.
    Once it answers ready and still does not know the session, the client registers."""
    h = Harness(beat_ms=1000, session=True)
    registered(h, 5, session=True)
    for answer in [{"instances": 0, "known": False, "ready": False}] * (SHORT_RENEWALS + 1):
        h.advance(1000)
        (renewal,) = h.unanswered("session_renew")
        h.reply(renewal, answer)
        assert h.unanswered("register") == h.unanswered("register_batch") == []
    h.advance(1000)
    (renewal,) = h.unanswered("session_renew")
    h.reply(renewal, {"instances": 0, "known": False})  # caught up: it really is lost
    (again,) = h.unanswered("register_batch")
    assert len(again.fields["instances"]) == 5


@pytest.mark.parametrize("known_while_catching_up", [False, True])
def test_a_node_that_opened_the_session_while_catching_up_gets_it_again_at_once(
    known_while_catching_up: bool,
) -> None:
    """After a whole-cluster restart the renewal sent while the node caught up opened
    the session there (``known`` false, ``ready`` false: ignored); its next renewal said
    "known" with no instance held, one short renewal, and the client awaited a second:
    the instances stayed unlisted 10 s (a review, 2 of 4 restarts).  The node that had
    never heard of the session before its catch-up and still holds fewer once ready has
    lost them: registered again at once.  A node that knew it while catching up keeps the
    usual rule (one short renewal may cross a registration)."""
    h = Harness(beat_ms=1000, session=True)
    registered(h, 5, session=True)
    h.advance(1000)
    (renewal,) = h.unanswered("session_renew")
    h.reply(renewal, {"instances": 0, "known": known_while_catching_up, "ready": False})
    h.advance(1000)
    (renewal,) = h.unanswered("session_renew")
    h.reply(renewal, {"instances": 0, "known": True})  # ready: opened by the first one
    if known_while_catching_up:
        assert h.unanswered("register") == h.unanswered("register_batch") == []
        return
    (again,) = h.unanswered("register_batch")
    assert len(again.fields["instances"]) == 5


def test_one_short_renewal_is_not_enough_to_register_again() -> None:
    h = Harness(beat_ms=1000, session=True)
    registered(h, 5, session=True)
    for held in (2, 5, 2, 5):  # a renewal that crossed a registration: not twice in a row
        h.advance(1000)
        (renewal,) = h.unanswered("session_renew")
        h.reply(renewal, {"instances": held})
    assert h.unanswered("register") == h.unanswered("register_batch") == []


def test_unanswered_renewals_are_counted_and_logged_once_per_interval() -> None:
    h = Harness(servers=("a:1",), beat_ms=200, attempt_ms=100, session=True)
    registered(h, 1000, session=True)
    h.advance(int(LOG_INTERVAL * 1000) - 1)
    assert h.core.status.renewals_failed >= 10
    renewal_lines = [x for x in h.logs() if "session renewal failed" in x]
    assert len(renewal_lines) == 1, renewal_lines
    assert "1000 registrations depend on it" in renewal_lines[0]


def test_a_node_without_sessions_makes_the_client_fall_back_on_beats() -> None:
    """UNKNOWN_OP to session_open (a node older than sessions): per-instance beats from
    then on, and registrations made later no longer name the session."""
    h = Harness(beat_ms=1000, session=True)
    h.do(Register(registration(0, session=True), 3.0, Handle()))
    (opened,) = h.unanswered("session_open")
    h.fail(opened, ErrorCode.UNKNOWN_OP, "unknown op session_open")
    h.answer_all("register")
    assert h.core.session is None and h.core.status.session_id is None
    h.do(Register(registration(1, session=True), 3.0, Handle()))
    assert "session" not in h.unanswered("register")[0].fields
    h.answer_all("register")
    h.advance(1000)
    assert len(h.unanswered("beat")) == 2 and h.requests("session_renew") == []
    assert [x for x in h.logs() if "does not know sessions" in x]


def test_closing_the_session_is_one_request_and_forgets_its_registrations() -> None:
    h = Harness(session=True)
    registered(h, 100, session=True)
    handle = Handle()
    h.do(CloseSession(3.0, handle))
    (close,) = h.unanswered("session_close")
    h.reply(close, {"deregistered": 100})
    done = h.outcome(handle)
    assert isinstance(done, Complete) and done.result == {"deregistered": 100}
    assert h.core.registrations == {}
    h.advance(5000)
    assert h.requests("session_renew") == []


def test_a_client_that_never_registered_closes_without_a_session_close() -> None:
    """A read-only client (the CLI's `instances`, `stats`) opened no session: its close
    sends nothing; one that registered in a session closes it with one message."""
    h = Harness(session=True)
    done = Handle()
    h.do(CloseSession(5.0, done))
    assert not h.requests("session_close")
    assert any(isinstance(a, Complete) and a.reply_to is done for a in h.actions)
    h2 = Harness(session=True)
    registered(h2, 2, session=True)
    h2.do(CloseSession(5.0, Handle()))
    assert len(h2.requests("session_close")) == 1


def test_a_session_no_node_ever_answered_closes_quietly() -> None:
    """review45 F10: a sidecar stopped before any node answered warned "could not close
    session ... on close (its instances are evicted when it expires)" for a session that
    never opened anywhere.  The close is still sent (a registration whose reply was lost
    may have opened it); no answer is then not a failure."""
    h = Harness(session=True)
    h.do(Register(registration(0, session=True), 3.0, Handle()))  # no node answers
    done = Handle()
    h.do(CloseSession(2.0, done))
    assert len(h.requests("session_close")) == 1
    h.advance(2500)
    closed = h.outcome(done)
    assert isinstance(closed, Complete) and closed.result == {"deregistered": 0}, closed


def _view(node: str, states: dict[str, str]) -> dict[str, object]:
    members = [
        {"id": a, "address": a, "state": s, "self": a == node, "services": 0, "instances": 0,
         "lag": 0, "configured": True}
        for a, s in states.items()
    ]  # fmt: skip
    return {"node": node, "ready": True, "members": members}


def test_a_server_cut_off_from_the_majority_is_left_for_one_that_sees_it() -> None:
    """review20 F3: the server renews the session but sees 1 of 3 members (cut off from
    the others, which judge the session silent); the client pings the other servers
    (straight, never through its server) and moves to one that sees a majority.  One
    that sees none is not used."""
    h = Harness(servers=("a:1", "b:2", "c:3"), beat_ms=1000, session=True)
    registered(h, 5, session=True)
    h.advance(1000)
    (renewal,) = h.unanswered("session_renew")
    h.reply(renewal, {"instances": 5, "known": True, "members_up": 1, "members": 3})
    probes = {p.to: p for p in h.unanswered("ping")}
    assert set(probes) == {"b:2", "c:3"}, probes
    pong = {"epoch": 1, "version": "0", "address": "x"}
    h.reply(probes["c:3"], {**pong, "members_up": 1, "members": 3})
    assert h.core.server == "a:1"  # c sees no majority either: stay
    h.reply(probes["b:2"], {**pong, "members_up": 2, "members": 3})
    assert h.core.server == "b:2" and h.connects()[-1] == "b:2"
    assert any("sees only 1 of the 3 configured members" in x for x in h.logs("warning"))
    # what was written through a may be missing on the majority (review75 F2, seed 39):
    # the session's instances go again through b, and its next renewal names them
    (redo,) = h.unanswered("register_batch")
    assert redo.to == "b:2" and len(redo.fields["instances"]) == 5, redo
    h.answer_batches()
    (at_once,) = h.unanswered("session_renew")  # the new server's timings (_ask_timings)
    assert at_once.to == "b:2" and at_once.fields.get("list") is True, at_once
    h.reply(at_once, {"instances": 5, "known": True})
    majority_view = _view("b:2", {"a:1": "down", "b:2": "up", "c:3": "up"})
    h.advance(600)  # the new server's view is asked for
    h.answer_all("cluster", majority_view)
    h.advance(400)
    assert {r.to for r in h.unanswered("session_renew")} == {"b:2"}
    h.answer_all("session_renew", {"instances": 5, "known": True})
    h.advance(1000)  # a server that sees a majority: nobody is asked
    assert [p.to for p in h.unanswered("ping")] == []


def test_a_probe_of_an_unreachable_server_never_goes_through_the_server() -> None:
    """The probe is about that node: not connected, or silent, it is dropped (through the
    server it would only ask the node that sees no majority, and cost it a request)."""
    for direct in (DirectSend.NOT_CONNECTED, DirectSend.SENT):
        h = Harness(servers=("a:1", "b:2"), beat_ms=1000, session=True, direct=direct)
        registered(h, 2, session=True)
        h.advance(1000)
        (renewal,) = h.unanswered("session_renew")
        h.reply(renewal, {"instances": 2, "known": True, "members_up": 1, "members": 2})
        for _ in range(12):  # connecting retries, then the attempt: given up
            h.advance(250)
            h.answer_all("session_renew", {"instances": 2, "known": True})
            h.answer_all("cluster", {"node": "n0", "ready": True, "members": []})
        assert h.requests("ping") and {s.to for s in h.requests("ping")} == {"b:2"}
        assert h.unanswered("ping") == []  # dropped, not re-sent through a:1
        assert h.core.server == "a:1" and h.connects() == ["a:1"]


def test_while_no_node_sees_a_majority_the_probes_back_off() -> None:
    """review22: a 2|2 split (or a 2-node cluster with one node down) lasts as long as it
    lasts; a probe per renewal for all of it is load with no move possible."""
    h = Harness(servers=("a:1", "b:2"), beat_ms=1000, session=True)
    registered(h, 2, session=True)
    for _ in range(20):
        h.advance(1000)
        h.answer_all("session_renew", {"instances": 2, "known": True, "members_up": 1,
                                       "members": 2})  # fmt: skip
        h.answer_all("ping", {"epoch": 1, "version": "0", "address": "b:2", "members_up": 1,
                              "members": 2})  # fmt: skip
        h.answer_all("cluster", {"node": "n0", "ready": True, "members": []})
    probes = [s for s in h.requests("ping") if s.to == "b:2"]
    assert 3 <= len(probes) <= 5, len(probes)  # 1, 2, 4, 8 s apart: not one a second
    assert h.core.server == "a:1"


def test_a_client_closing_its_session_does_not_move() -> None:
    """A move sends what is in flight to the new server: a session close sent there, to
    a node whose table may be older, removed an instance registered again since."""
    h = Harness(servers=("a:1", "b:2"), beat_ms=1000, session=True)
    registered(h, 2, session=True)
    h.advance(1000)
    (renewal,) = h.unanswered("session_renew")
    h.do(CloseSession(2.0, Handle("close")))
    h.reply(renewal, {"instances": 2, "known": True, "members_up": 1, "members": 2})
    assert h.unanswered("session_close") and h.unanswered("ping") == []


def test_a_per_instance_client_learns_of_a_cut_off_server_from_its_ping() -> None:
    """A beat's reply says nothing of the node's view: a client without a session pings
    its server once per beat interval, and moves as a session client does (before, it
    learned only from the cluster view's refresh, 10 s, when its instances could already
    be marked silent on the majority side)."""
    h = Harness(servers=("a:1", "b:2", "c:3"), beat_ms=1000)
    registered(h, 3)
    h.advance(1000)
    assert len(h.unanswered("beat")) == 3
    (ping,) = [p for p in h.unanswered("ping") if p.to == "a:1"]
    h.answer_all("beat")
    pong = {"epoch": 1, "version": "0", "address": "a:1"}
    h.reply(ping, {**pong, "members_up": 1, "members": 3})
    probes = {p.to: p for p in h.unanswered("ping")}
    assert set(probes) == {"b:2", "c:3"}, probes
    h.reply(probes["b:2"], {**pong, "members_up": 3, "members": 3})
    assert h.core.server == "b:2" and h.connects()[-1] == "b:2"
    assert any("sees only 1 of the 3 configured members" in x for x in h.logs("warning"))


def test_a_per_instance_client_of_a_whole_cluster_pings_nobody_else() -> None:
    h = Harness(servers=("a:1", "b:2", "c:3"), beat_ms=1000)
    registered(h, 2)
    for _ in range(5):
        h.advance(1000)
        h.answer_all("beat")
        h.answer_all("ping", {"epoch": 1, "version": "0", "address": "a:1"})
    assert {p.to for p in h.requests("ping")} == {"a:1"}  # one a beat interval, no probe
    assert len(h.requests("ping")) == 5 and h.core.server == "a:1"


# -- the node's unhealthy_after bounds the interval (review24 F11) --------------------------------
def opened_with(h: Harness, unhealthy_after: float) -> None:
    items = ((registration(0, True), Handle()),)
    h.do(RegisterBatch(items, 5.0))
    h.answer_batches()
    opened = {"session": SID, "instances": 1, "unhealthy_after": unhealthy_after,
              "evict_after": 2 * unhealthy_after}  # fmt: skip
    h.answer_all("session_open", opened)
    h.advance(0)
    h.answer_view()


@pytest.mark.parametrize(
    ("unhealthy_ms", "every_ms"),
    [(3000, 1000), (150, 100), (15_000, 5000), (30_000, 5000)],
    ids=["3s-node", "below-the-floor", "default-node", "slower-node"],
)
def test_renewals_fit_three_times_in_the_node_s_unhealthy_after(
    unhealthy_ms: int, every_ms: int
) -> None:
    """A 5 s client of a node with unhealthy_after 3 s renews every second (a third of
    it; never more often than every 0.1 s) and says so in one warning; a node that allows
    5 s beats keeps beat_interval, with nothing logged."""
    h = Harness(beat_ms=5000, session=True)
    opened_with(h, unhealthy_ms / 1000)
    for _ in range(10):
        h.advance(every_ms)
        h.answer_all("session_renew", {"instances": 1})
        h.answer_view()  # (unanswered, its refresh moved the client to b:2 and back)
    h.advance(every_ms // 2)  # (float rounding of the fake clock: a renewal due at 10 x)
    assert len(h.requests("session_renew")) == 10
    warned = [t for t in h.logs("warning") if "unhealthy_after" in t]
    if every_ms < 5000:
        assert len(warned) == 1, h.logs()
        assert f"renewing every {every_ms / 1000:g}s instead" in warned[0]
    else:
        assert warned == []


def test_the_renewal_interval_follows_the_node_it_opened_on_last() -> None:
    """A session opened again on a node with a longer unhealthy_after goes back to
    beat_interval (never beyond it)."""
    h = Harness(beat_ms=5000, session=True)
    opened_with(h, 3.0)
    assert h.core.beat_every == 1.0
    h.core._learn_timings({"unhealthy_after": 60.0})
    assert h.core.beat_every == 5.0
    h.core._learn_timings({"unhealthy_after": "soon"})  # not a number: ignored
    assert h.core.beat_every == 5.0


def test_an_open_session_follows_an_unhealthy_after_lowered_since_from_its_renewals() -> None:
    """review27 F6: the operator lowered unhealthy_after to 3 s by a rolling restart; a
    session opened before renewed every 5 s, and its instances flapped unhealthy on every
    node for as long as the process ran.  Renewal replies carry the node's value."""
    h = Harness(beat_ms=5000, session=True)
    opened_with(h, 15.0)
    assert h.core.beat_every == 5.0
    h.advance(5000)
    h.answer_all("session_renew", {"instances": 1, "unhealthy_after": 3.0})
    assert h.core.beat_every == 1.0
    renewals = len(h.requests("session_renew"))
    h.advance(1000)
    assert len(h.requests("session_renew")) == renewals + 1
    assert any("renewing every 1s instead" in t for t in h.logs("warning"))


@pytest.mark.parametrize("session", [True, False], ids=["session", "beats"])
def test_a_new_server_is_asked_its_timings_at_once(session: bool) -> None:
    """The last node of a rolling restart to --unhealthy-after 3 stops; its client (told
    15 s by it: renewing every 5 s) moves to a node already restarted.  It renewed (or
    pinged) there only at its next 5 s turn, so the others, judging by 3 s, marked its
    instances unhealthy once the roll was over (CI 2026-12-06, review27 F6's test, 1 run
    in about 100 under load).  Now a server switch renews (sessions) or pings (beats) at
    once: the new server's ``unhealthy_after`` is learned within a round trip."""
    h = Harness(servers=("a:1", "b:2"), beat_ms=5000, session=session)
    if session:
        opened_with(h, 15.0)
    else:
        registered(h, 1)
        h.advance(5000)
        h.answer_all("beat")
        h.answer_all("ping", {**PONG, "unhealthy_after": 15.0})
    assert h.core.beat_every == 5.0
    h.advance(1000)  # between two renewals: none in flight
    start = len(h.sent)
    h.run(h.core.server_disconnected(h.now))  # a:1 stopped
    assert h.core.server == "b:2"
    h.advance(0)
    op = "session_renew" if session else "ping"
    asked = [s for s in h.sent[start:] if s.op == op and s.to == "b:2"]
    assert asked, [(s.op, s.to) for s in h.sent[start:]]
    told = {"instances": 1, "unhealthy_after": 3.0} if session else {**PONG, "unhealthy_after": 3.0}
    h.reply(asked[-1], told)
    assert h.core.beat_every == 1.0


def test_a_per_instance_client_learns_a_short_unhealthy_after_from_its_ping() -> None:
    """review24 F11's remainder: a client without a session was told nothing of a node's
    short ``unhealthy_after``; its ping reply says it, and the beats follow it."""
    h = Harness(servers=("a:1",), beat_ms=1000)
    registered(h, 1)
    h.advance(1000)
    h.answer_all("beat")
    h.answer_all("ping", {**PONG, "unhealthy_after": 0.9})  # 1 s beats would be too slow
    assert any("renewing every 0.3s" in x for x in h.logs("warning")), h.logs()
    sent = len(h.requests("beat"))
    h.advance(300)
    assert len(h.requests("beat")) == sent + 1


def _held(*regs: Registration) -> list[dict[str, object]]:
    return [{"group": r.key.group, "service": r.key.service, "ip": r.iid.ip,
             "port": r.iid.port, "cluster": r.iid.cluster} for r in regs]  # fmt: skip


def test_instances_the_node_holds_in_the_session_beyond_ours_are_deregistered_again() -> None:
    """review36 F2: a deregistration acknowledged by a node that died before passing it
    on left the instance on every other node, named in this client's session, whose
    renewals then kept it alive for good.  Renewals that hold more than this client holds
    (three in a row) make the next one ask the node to name them; those this client does
    not hold, nor is registering, are deregistered again (and said so, once)."""
    h = Harness(beat_ms=1000, session=True)
    registered(h, 3, session=True)
    gone = registration(3, session=True)  # deregistered by this client; the node kept it
    for _ in range(LONG_RENEWALS):
        h.advance(1000)
        h.answer_view()  # (unanswered, its refresh moves the client to b:2)
        (renewal,) = h.unanswered("session_renew")
        assert "list" not in renewal.fields
        h.reply(renewal, {"instances": 4})
    h.advance(1000)
    (renewal,) = h.unanswered("session_renew")
    assert renewal.fields.get("list") is True
    kept = [registration(n, session=True) for n in range(3)]
    h.reply(renewal, {"instances": 4, "held": _held(*kept, gone), "held_more": False})
    (dereg,) = h.unanswered("deregister")
    assert (dereg.fields["ip"], dereg.fields["port"]) == (gone.iid.ip, gone.iid.port)
    assert len([x for x in h.logs() if "deregistering them again" in x]) == 1
    assert h.core.strays_dropped == 1
    h.reply(dereg)
    h.advance(1000)
    (renewal,) = h.unanswered("session_renew")
    assert "list" not in renewal.fields  # named once: no more listing


def test_a_registration_in_flight_is_not_taken_for_a_stray() -> None:
    h = Harness(beat_ms=1000, session=True)
    registered(h, 2, session=True)
    late = registration(5, session=True)
    h.do(Register(late, 5.0, Handle()))  # not acknowledged yet; the node holds it already
    for _ in range(LONG_RENEWALS + 1):
        h.advance(1000)
        for renewal in h.unanswered("session_renew"):
            held = [registration(n, session=True) for n in range(2)] + [late]
            h.reply(renewal, {"instances": 3, "held": _held(*held)})
    assert h.unanswered("deregister") == []


def test_a_failed_session_with_no_registration_left_is_not_a_warning() -> None:
    """review55's note: a register refused while its session opened logged "session
    renewal failed ...; 0 registrations depend on it" at WARNING, naming nothing at
    stake."""
    h = Harness(servers=("a:1",), beat_ms=1000, session=True)
    h.do(Register(registration(0, session=True), 3.0, Handle()))
    (opened,) = h.unanswered("session_open")
    assert h.fail_all("register", ErrorCode.INVALID_ARGUMENT) == 1
    assert not h.core.registrations
    h.fail(opened, ErrorCode.UNAVAILABLE, "busy")
    assert [x for x in h.logs("warning") if "session" in x] == []
    assert any("session renewal failed" in x for x in h.logs("debug"))


def test_members_learned_from_the_view_are_forgotten_once_no_view_names_them_heard() -> None:
    """An operations review: clients learned every member a view named (a typo'd address
    a node's list held, a removed member) and tried them at every failover 11 minutes
    later.  A member named unheard is still learned (at a start a node has heard no peer
    yet: review18's client, whose one server died then, failed over only to them), but
    one no view names heard for ``LEARNED_MEMBER_TTL`` is forgotten, and not taken again
    until heard; never a server the caller gave, nor the one in use."""
    from meshreg.client.session import LEARNED_MEMBER_TTL, VIEW_INTERVAL

    def member(i: str, address: str, state: str = "up") -> dict[str, object]:
        return {"id": i, "address": address, "state": state, "self": i == "n0",
                "services": 0, "instances": 0, "lag": 0}  # fmt: skip

    def run(seconds: float, *members: dict[str, object]) -> None:
        end = h.now + seconds
        while h.now < end:  # every request answered at once, as a healthy node does
            h.advance(500)
            h.answer_all("session_renew", {"instances": 1, "known": True})
            h.answer_all("cluster", {"node": "n0", "ready": True, "members": list(members)})

    h = Harness(servers=("a:1",), beat_ms=1000, session=True)
    registered(h, 1, session=True)
    a, typo = member("n0", "a:1"), member("", "typo:9", "down")
    run(2 * VIEW_INTERVAL, a, member("n1", "b:2", "catching up"), member("n2", "c:3", "down"), typo)
    assert sorted(h.core.servers) == [("a", 1), ("b", 2), ("c", 3), ("typo", 9)]
    run(LEARNED_MEMBER_TTL - 3 * VIEW_INTERVAL, a, member("n2", "c:3", "down"), typo)  # b gone
    assert sorted(h.core.servers) == [("a", 1), ("b", 2), ("c", 3), ("typo", 9)]  # the TTL
    run(4 * VIEW_INTERVAL, a, member("n2", "c:3", "down"), typo)
    assert sorted(h.core.servers) == [("a", 1), ("c", 3)]  # b and the typo forgotten
    run(2 * VIEW_INTERVAL, a, member("n2", "c:3", "down"), typo)  # not taken again unheard
    assert sorted(h.core.servers) == [("a", 1), ("c", 3)] and h.core.server == "a:1"
    run(2 * VIEW_INTERVAL, a, member("n2", "c:3", "down"), member("n9", "typo:9"))  # heard
    assert sorted(h.core.servers) == [("a", 1), ("c", 3), ("typo", 9)]
