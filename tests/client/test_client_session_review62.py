"""The code review of the register_many / kept-registration change (review62): each test
failed on its first version (the reviewer's experiments, /tmp/review62)."""

from __future__ import annotations

import pytest
from session_harness import Handle, Harness, Sent, lose_session, registration
from test_client_session_kept_registration import PING, node_answers

from meshreg.client import session as session_module
from meshreg.client.actions import Complete, Fail
from meshreg.client.commands import CloseSession, Deregister, Register, RegisterBatch, Registration
from meshreg.client.messages import ReplyError
from meshreg.errors import ErrorCode


def test_a_kept_entry_queued_behind_the_window_and_deregistered_is_not_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """F2: a kept try waiting in the bulk queue (the batch window full) went out after
    the caller's deregister of it: the node held it again."""
    monkeypatch.setattr(session_module, "BATCHES_IN_FLIGHT", 1)
    monkeypatch.setattr(session_module, "BATCH_ENTRIES", 2)
    h = Harness(attempt_ms=500)
    h.do(RegisterBatch(tuple((registration(n), None) for n in range(4)), 1.0, Handle("m")))
    h.advance(3000)
    assert h.core.status.kept_registrations == 4
    node_answers(h)
    (out,) = h.unanswered("register_batch")
    assert len(out.fields["instances"]) == 2
    gone = registration(3)
    h.do(Deregister(gone.key, gone.iid, gone.fields, 1.0, Handle("d")))
    at = max(i for i, s in enumerate(h.sent) if s.op == "deregister")
    for d in h.unanswered("deregister"):
        h.reply(d)
    h.answer_batches()
    later = [i for i, s in enumerate(h.sent) if i > at and s.op == "register_batch"
             and any(e["ip"] == gone.fields["ip"] for e in s.fields["instances"])]  # fmt: skip
    assert later == [] and (gone.key, gone.iid) not in h.core.registrations


def test_a_register_replacing_a_queued_kept_entry_is_the_last_the_node_gets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """F2 (b): the stale kept entry (weight 1) went after the caller's register (weight
    5): the node held 1, the client believed 5 (review60 F3 again, by the bulk queue)."""
    monkeypatch.setattr(session_module, "BATCHES_IN_FLIGHT", 1)
    monkeypatch.setattr(session_module, "BATCH_ENTRIES", 2)
    h = Harness(attempt_ms=500)
    h.do(RegisterBatch(tuple((registration(n), None) for n in range(4)), 1.0, Handle("m")))
    h.advance(3000)
    node_answers(h)
    queued = registration(3)
    newer = Registration(queued.key, queued.iid, {**queued.fields, "weight": 5.0})
    start = len(h.sent)
    h.do(Register(newer, 3.0, Handle("r")))
    h.answer_all("register")
    h.answer_batches()
    weights = [e["weight"] for s in h.sent[start:] if s.op == "register_batch"
               for e in s.fields["instances"] if e["ip"] == queued.fields["ip"]]  # fmt: skip
    assert weights == []
    assert h.core.registrations[(queued.key, queued.iid)].fields["weight"] == 5.0


def test_a_replacement_whose_try_never_left_does_not_skip_the_deregister() -> None:
    """F3: a first try reached the node (no answer: it may be applied); the caller's
    register again never left; the deregister was then skipped as "nothing to undo"."""
    h = Harness(attempt_ms=500)
    first = Handle("r1")
    h.do(Register(registration(0), 1.0, first))
    h.handshake = False  # the node took it, then the connection dropped for good
    h.advance(100)
    h.run(h.core.server_disconnected(h.now))
    h.advance(1200)
    error = h.outcome(first).error  # type: ignore[union-attr]
    assert error.registration_kept and not getattr(error, "unsent", False)
    again = Handle("r2")
    h.do(Register(registration(0), 1.0, again))
    h.advance(1500)
    assert getattr(h.outcome(again).error, "unsent", False)  # type: ignore[union-attr]
    sent = len(h.requests("deregister"))
    handle = Handle("d")
    reg = registration(0)
    h.do(Deregister(reg.key, reg.iid, reg.fields, 3.0, handle))
    assert len(h.requests("deregister")) > sent and h.outcome(handle) is None


def test_a_handshake_seen_only_late_still_closes_the_session() -> None:
    """F4: the register and session_open left on a connection whose handshake the loop
    saw only when closing it: close() sent no session_close."""
    h = Harness(attempt_ms=500, session=True, handshake=False, late_handshake=True)
    handle = Handle("r")
    h.do(Register(registration(0, session=True), 1.0, handle))
    h.advance(1200)
    assert not getattr(h.outcome(handle).error, "unsent", True)  # type: ignore[union-attr]
    h.do(CloseSession(3.0, Handle("c")))
    assert h.requests("session_close")


def test_a_redo_that_got_no_answer_does_not_bring_back_a_deregistered_instance() -> None:
    """F1 (high): the session's redo (a register_batch of this client's own, no caller)
    got no answer after the caller had deregistered one of its instances: it was kept,
    and the kept retry registered it again for the client's lifetime."""
    h = Harness(attempt_ms=500, session=True, servers=("a:1",))
    for n in range(2):
        h.do(Register(registration(n, session=True), 3.0, Handle(f"r{n}")))
    h.answer_all("session_open", {})
    h.answer_all("register")
    assert len(h.core.registrations) == 2
    lose_session(h)  # the node lost the session: the redo
    gone = registration(0)
    done = Handle("d")
    h.do(Deregister(gone.key, gone.iid, gone.fields, 3.0, done))
    h.reply(h.unanswered("deregister")[0])
    assert isinstance(h.outcome(done), Complete)
    h.advance(4000)  # the redo is never answered
    start = len(h.sent)
    for _ in range(80):  # the node answers again
        h.advance(100)
        for r in h.unanswered("session_renew"):
            h.reply(r, {"instances": 1, "known": True})
        for p in h.unanswered("ping"):
            h.reply(p, PING)
        for r in h.unanswered("register"):
            h.reply(r)
        h.answer_batches()
    again = [s for s in h.sent[start:] if s.op in ("register", "register_batch") and gone.fields[
        "ip"] in [s.fields.get("ip")] + [e["ip"] for e in s.fields.get("instances", [])]]
    assert again == [] and (gone.key, gone.iid) not in h.core.registrations


# -- review63: a copy refused as late, with the call's time left ------------------------------
LATE = ("register: public/DEFAULT_GROUP/orders 10.0.0.1:80 reached node a:1 0.551s after its "
        "deadline (the client's clock): not applied")  # fmt: skip


def refuse_late(h: Harness, req: Sent) -> None:
    h.run(h.core.on_reply(req.to, ReplyError(req.id, int(ErrorCode.UNAVAILABLE), LATE, True),
                          h.now))  # fmt: skip


def test_a_register_copy_refused_as_late_is_sent_once_more_with_a_new_deadline() -> None:
    """review63: a copy that waited in the client's socket while no node listened reached
    the node late; the call failed on it ("check the clocks"), its time-out 10 s off."""
    h = Harness(attempt_ms=500, wall_offset=1_000_000.0)
    handle = Handle("r")
    h.do(Register(registration(0), 12.0, handle))
    (first,) = h.unanswered("register")
    refuse_late(h, first)
    assert h.outcome(handle) is None
    (again,) = h.unanswered("register")
    assert again.fields["deadline"] >= first.fields["deadline"]
    h.reply(again)
    assert isinstance(h.outcome(handle), Complete)


def test_a_second_late_refusal_is_the_calls_answer() -> None:
    """Every copy refused as late: the clocks differ (the message says so); no loop."""
    h = Harness(attempt_ms=500, wall_offset=1_000_000.0)
    handle = Handle("r")
    h.do(Register(registration(0), 12.0, handle))
    refuse_late(h, h.unanswered("register")[0])
    refuse_late(h, h.unanswered("register")[0])
    done = h.outcome(handle)
    assert isinstance(done, Fail) and "after its deadline" in str(done.error)
    assert len(h.requests("register")) == 2


def test_register_many_entries_refused_as_late_are_sent_once_more() -> None:
    h = Harness(attempt_ms=500, wall_offset=1_000_000.0)
    handle = Handle("many")
    h.do(RegisterBatch(tuple((registration(n), None) for n in range(3)), 12.0, handle))
    (out,) = h.unanswered("register_batch")
    h.reply(out, {"results": [[int(ErrorCode.UNAVAILABLE), LATE], None, [int(
        ErrorCode.UNAVAILABLE), LATE]]})  # fmt: skip
    (again,) = h.unanswered("register_batch")
    assert len(again.fields["instances"]) == 2
    h.reply(again, {"results": [None, [int(ErrorCode.UNAVAILABLE), LATE]]})  # once only
    done = h.outcome(handle)
    assert isinstance(done, Complete) and [i for i, _ in done.result] == [2]
    assert len(h.core.registrations) == 2
