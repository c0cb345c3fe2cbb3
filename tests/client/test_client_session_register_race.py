"""A register and a deregister of one instance at once (two threads of one client, or a
redo of the client's own in flight): whatever the order the node applies them in, the
client ends holding the instance only if a register came last, and then only once.

Before: a register whose answer came after a deregister of the same instance put it back
in the client's registrations, so it was renewed (or beaten, and registered again on the
node's NOT_FOUND) for the client's lifetime: deregistered by the caller, listed forever.
"""

from __future__ import annotations

import pytest
from session_harness import Handle, Harness, Sent, deregister, lose_session, registration
from test_client_session_kept_registration import node_answers

from meshreg.client import session as session_module
from meshreg.client.actions import Complete
from meshreg.client.commands import (
    Deregister,
    ListRegistrations,
    Register,
    RegisterBatch,
    Registration,
    Settle,
)
from meshreg.errors import ErrorCode


def held(h: Harness, reg: Registration) -> bool:
    return (reg.key, reg.iid) in h.core.registrations


def deregisters_after(h: Harness, start: int, reg: Registration) -> int:
    ip = reg.fields["ip"]
    return sum(1 for s in h.sent[start:] if s.op == "deregister" and s.fields["ip"] == ip)


@pytest.mark.parametrize("session", [False, True])
def test_a_register_answered_after_a_deregister_of_it_is_not_held(session: bool) -> None:
    h = Harness(attempt_ms=500, session=session, servers=("a:1",))
    reg = registration(0, session=session)
    made = Handle("r")
    h.do(Register(reg, 3.0, made))
    h.answer_all("session_open", {})
    (register,) = h.unanswered("register")
    gone = deregister(h, reg)
    (dereg,) = h.unanswered("deregister")
    h.reply(register)  # the node applied both, in the order they left: register, deregister
    at = len(h.sent)
    h.reply(dereg)
    assert isinstance(h.outcome(made), Complete) and isinstance(h.outcome(gone), Complete)
    assert not held(h, reg)
    h.answer_all("deregister")  # the follow-up (below), if any
    h.advance(5000)  # beats / renewals go on for the others: none for this one
    assert not [s for s in h.sent[at:] if s.op in ("beat", "register", "register_batch")]
    assert h.core.registrations == {}


def test_the_register_that_may_have_overtaken_the_deregister_is_undone_after_its_answer() -> None:
    """The two copies may take different ways to the owner (a failover, a forward): the
    register answered after the deregister is followed by a deregister of it, so that the
    last write the owner gets for the instance is a deregister."""
    h = Harness(attempt_ms=500, servers=("a:1",))
    reg = registration(0)
    h.do(Register(reg, 3.0, Handle("r")))
    (register,) = h.unanswered("register")
    deregister(h, reg)
    h.reply(h.unanswered("deregister")[0])
    start = len(h.sent)
    h.reply(register)
    assert deregisters_after(h, start, reg) == 1
    assert not held(h, reg)


def test_a_register_again_after_the_deregister_is_what_the_client_holds() -> None:
    """register A, deregister, register B (three calls in that order): B is the caller's
    last word; A's late answer sends no deregister that would undo B."""
    h = Harness(attempt_ms=500, servers=("a:1",))
    first = registration(0)
    h.do(Register(first, 3.0, Handle("a")))
    (a,) = h.unanswered("register")
    deregister(h, first)
    h.reply(h.unanswered("deregister")[0])
    second = Registration(first.key, first.iid, {**first.fields, "weight": 7.0})
    h.do(Register(second, 3.0, Handle("b")))
    (b,) = [s for s in h.unanswered("register") if s.id != a.id]
    start = len(h.sent)
    h.reply(a)
    h.reply(b)
    assert deregisters_after(h, start, first) == 0
    assert h.core.registrations[(first.key, first.iid)].fields["weight"] == 7.0


def test_a_register_that_failed_after_a_deregister_of_it_is_not_kept() -> None:
    """No node answered the register; the caller deregistered meanwhile: the register is
    not kept (it was kept, and made once a node answered: the instance came back)."""
    h = Harness(attempt_ms=500, servers=("a:1",))
    reg = registration(0)
    made = Handle("r")
    h.do(Register(reg, 1.0, made))
    assert h.unanswered("register")
    deregister(h, reg)
    h.advance(3000)  # neither is answered
    assert h.outcome(made) is not None
    assert h.core.status.kept_registrations == 0
    start = len(h.sent)
    node_answers(h)
    h.advance(5000)
    assert not [s for s in h.sent[start:] if s.op in ("register", "register_batch")]


def test_a_batch_entry_answered_after_a_deregister_of_it_is_not_held() -> None:
    h = Harness(attempt_ms=500, servers=("a:1",))
    regs = [registration(n) for n in range(3)]
    many = Handle("m")
    h.do(RegisterBatch(tuple((r, None) for r in regs), 3.0, many))
    (batch,) = h.unanswered("register_batch")
    deregister(h, regs[1])
    h.reply(h.unanswered("deregister")[0])
    start = len(h.sent)
    h.answer_batches()
    done = h.outcome(many)
    assert isinstance(done, Complete) and done.result == []
    assert held(h, regs[0]) and held(h, regs[2]) and not held(h, regs[1])
    assert deregisters_after(h, start, regs[1]) == 1
    assert batch.id  # (one batch carried all three)


def test_a_session_redo_answered_after_a_deregister_does_not_bring_the_instance_back() -> None:
    """The node lost the session: the client registers its instances again (a batch of
    its own, no caller); a deregister handled while that batch is out must win."""
    h = Harness(attempt_ms=500, session=True, servers=("a:1",))
    regs = [registration(n, session=True) for n in range(2)]
    for n, reg in enumerate(regs):
        h.do(Register(reg, 3.0, Handle(f"r{n}")))
    h.answer_all("session_open", {})
    h.answer_all("register")
    lose_session(h)  # the node lost the session: the redo
    deregister(h, regs[0])
    h.reply(h.unanswered("deregister")[0])
    h.answer_batches()
    assert not held(h, regs[0]) and held(h, regs[1])


def test_a_redo_queued_behind_the_window_and_deregistered_is_not_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A redo entry still queued (the batch window full) when its instance is
    deregistered never leaves (it went out after the deregister: the node held it)."""
    monkeypatch.setattr(session_module, "BATCHES_IN_FLIGHT", 1)
    monkeypatch.setattr(session_module, "BATCH_ENTRIES", 2)
    h = Harness(attempt_ms=500, session=True, servers=("a:1",))
    regs = [registration(n, session=True) for n in range(4)]
    h.do(RegisterBatch(tuple((r, None) for r in regs), 3.0, Handle("m")))
    h.answer_all("session_open", {})
    for _ in range(4):
        h.answer_batches()
    assert len(h.core.registrations) == 4
    out = lose_session(h)
    out_ips = [e["ip"] for e in out.fields["instances"]]
    queued = next(r for r in regs if r.fields["ip"] not in out_ips)
    deregister(h, queued)
    at = max(i for i, s in enumerate(h.sent) if s.op == "deregister")
    h.reply(h.sent[at])
    for _ in range(4):
        h.answer_batches()
    later = [s for s in h.sent[at:] if s.op == "register_batch"
             and queued.fields["ip"] in [e["ip"] for e in s.fields["instances"]]]  # fmt: skip
    assert later == [] and not held(h, queued)
    assert len(h.core.registrations) == 3


def test_no_record_is_left_once_the_tries_are_answered() -> None:
    """The per-instance record of register tries in flight is dropped with the last
    answer (bounded by what is in flight, not by what was ever registered)."""
    h = Harness(attempt_ms=500, servers=("a:1",))
    for n in range(50):
        h.do(Register(registration(n), 3.0, Handle(f"r{n}")))
    for n in range(0, 50, 2):
        deregister(h, registration(n), f"d{n}")
    h.answer_all("register")
    h.answer_all("deregister")
    h.answer_all("deregister")
    h.do(RegisterBatch(tuple((registration(n), None) for n in range(100, 120)), 3.0, Handle("m")))
    h.fail_all("register_batch", ErrorCode.INVALID_ARGUMENT)
    assert h.core._register_tries == {}
    assert len(h.core.registrations) == 25


@pytest.mark.parametrize("registered_again", [False, True])
def test_a_failed_register_out_before_the_deregister_is_undone_past_its_deadline(
    registered_again: bool,
) -> None:
    """A register no node answered, with a deregister of it made meanwhile: one of its
    copies may still reach the owner after the deregister (another way, held up), until
    DEADLINE_SLACK past its end.  Its deregister goes once more UNDO_AFTER after the
    failure, unless a register was made since (then that is the last word)."""
    h = Harness(attempt_ms=500, servers=("a:1",), wall_offset=1_000_000.0)
    reg = registration(0)
    made = Handle("r")
    h.do(Register(reg, 1.0, made))
    deregister(h, reg)
    h.reply(h.unanswered("deregister")[0])
    h.advance(1100)  # the register's time-out: no answer
    assert h.outcome(made) is not None
    assert h.core.status.kept_registrations == 0
    start = len(h.sent)
    if registered_again:
        h.do(Register(reg, 3.0, Handle("r2")))
        h.answer_all("register")
    h.advance(int(session_module.UNDO_AFTER * 1000) + 100)
    assert deregisters_after(h, start, reg) == (0 if registered_again else 1)
    assert held(h, reg) == registered_again


def beats_answered_not_found(h: Harness, reg: Registration) -> Sent:
    """Beat until a beat of ``reg`` goes out, answer it NOT_FOUND (the node lost the
    instance): the client registers it again; that register."""
    for _ in range(40):
        beats = [s for s in h.unanswered("beat") if s.fields["ip"] == reg.fields["ip"]]
        if beats:
            break
        h.advance(250)
    h.fail(beats[0], ErrorCode.NOT_FOUND, "no such instance")
    again = [s for s in h.unanswered("register") if s.fields["ip"] == reg.fields["ip"]]
    regs = [*again, *(s for s in h.unanswered("register_batch"))]
    assert len(regs) == 1, [s.op for s in h.sent[-5:]]
    return regs[0]


def reply_register(h: Harness, sent: Sent) -> None:
    if sent.op == "register_batch":
        h.answer_batches()
    else:
        h.reply(sent)


def test_a_beat_answered_not_found_registers_again_as_a_numbered_try() -> None:
    """A beat answered NOT_FOUND registers the instance again (beats, no session); the
    caller deregisters it while that register is out: when the register is answered, a
    deregister follows it (the two may reach the owner by different ways), and the
    instance is not held.  Before: the register again was a bare request, not weighed
    against the deregister, so a register that overtook it left the instance on the node
    (listed until evicted, though its provider had deregistered it)."""
    h = Harness(attempt_ms=500, session=False, servers=("a:1",))
    reg = registration(0)
    h.do(Register(reg, 3.0, Handle("r")))
    h.reply(h.unanswered("register")[0])
    assert held(h, reg)
    again = beats_answered_not_found(h, reg)
    gone = deregister(h, reg)
    h.reply(h.unanswered("deregister")[0])
    assert isinstance(h.outcome(gone), Complete)
    start = len(h.sent)
    reply_register(h, again)
    assert deregisters_after(h, start, reg) == 1
    assert not held(h, reg)
    h.answer_all("deregister")
    h.advance(5000)
    assert not [s for s in h.sent[start:] if s.op in ("beat", "register", "register_batch")]


def test_a_register_again_after_not_found_that_failed_is_followed_by_the_deregister() -> None:
    """The same, the register again unanswered (it may still be applied until its
    copies' deadlines): the deregister goes once more past them."""
    h = Harness(attempt_ms=500, session=False, servers=("a:1",))
    reg = registration(0)
    h.do(Register(reg, 3.0, Handle("r")))
    h.reply(h.unanswered("register")[0])
    beats_answered_not_found(h, reg)
    deregister(h, reg)
    h.reply(h.unanswered("deregister")[0])
    start = len(h.sent)
    h.advance(int((session_module.UNDO_AFTER + 10) * 1000))
    assert deregisters_after(h, start, reg) >= 1
    assert not held(h, reg)


def test_a_register_again_after_not_found_keeps_the_instance_alive() -> None:
    """No deregister: the register again is answered and the instance is beaten on."""
    h = Harness(attempt_ms=500, session=False, servers=("a:1",))
    reg = registration(0)
    h.do(Register(reg, 3.0, Handle("r")))
    h.reply(h.unanswered("register")[0])
    again = beats_answered_not_found(h, reg)
    start = len(h.sent)
    reply_register(h, again)
    assert held(h, reg)
    assert deregisters_after(h, start, reg) == 0
    h.advance(3000)
    assert [s for s in h.sent[start:] if s.op == "beat" and s.fields["ip"] == reg.fields["ip"]]


# -- review72 F2/F3: a register's earlier copy, void only at its deadline ---------------------
def failed_over_register(h: Harness, reg: Registration) -> int:
    """The register goes to a (silent), then at its attempt's end to b, which answers:
    a's copy stays valid until its deadline (ms, returned; b's was the one answered)."""
    h.do(Register(reg, 3.0, Handle("r")))
    (first,) = h.unanswered("register")
    h.advance(1000)
    (second,) = [s for s in h.unanswered("register") if s.to == "b:2"]
    h.reply(second)
    return int(first.fields["deadline"])


def test_a_deregister_inside_an_earlier_copys_window_goes_again_after_it_not_before() -> None:
    h = Harness(servers=("a:1", "b:2"), attempt_ms=1000, wall_offset=0.0)
    reg = registration(0)
    void_ms = failed_over_register(h, reg)
    deregister(h, reg)
    h.answer_all("deregister")
    start = len(h.sent)
    while h.now_ms < void_ms + session_module.COPY_CLOCK_MARGIN * 1000 - 10:
        h.advance(10)
        assert deregisters_after(h, start, reg) == 0, h.now_ms  # not while a copy may land
    h.advance(20)
    assert deregisters_after(h, start, reg) == 1  # after a's copy, whatever it did
    h.answer_all("deregister")
    h.advance(3000)
    assert deregisters_after(h, start, reg) == 1  # once


def test_a_register_made_again_meanwhile_is_not_undone() -> None:
    h = Harness(servers=("a:1", "b:2"), attempt_ms=1000, wall_offset=0.0)
    reg = registration(0)
    failed_over_register(h, reg)
    deregister(h, reg)
    h.answer_all("deregister")
    h.do(Register(reg, 3.0, Handle("again")))  # the caller's last word is a register now
    h.answer_all("register")
    start = len(h.sent)
    h.advance(3000)
    assert deregisters_after(h, start, reg) == 0 and held(h, reg)


def test_one_answered_copy_leaves_nothing_to_undo() -> None:
    """A register sent once and answered: no other copy exists, the deregister goes once."""
    h = Harness(servers=("a:1", "b:2"), attempt_ms=1000, wall_offset=0.0)
    reg = registration(0)
    h.do(Register(reg, 3.0, Handle("r")))
    h.answer_all("register")
    start = len(h.sent)
    deregister(h, reg)
    h.answer_all("deregister")
    h.advance(3000)
    assert deregisters_after(h, start, reg) == 1


def test_the_close_settles_a_register_answered_after_its_deregister() -> None:
    """F3: the close lists a register still out, deregisters it, and its Settle waits for
    the register's answer and the deregister that follows it; what is still out at the
    end of its wait is named (the close logs it)."""
    h = Harness(servers=("a:1",), attempt_ms=1000, wall_offset=0.0)
    reg = registration(0)
    h.do(Register(reg, 3.0, Handle("r")))
    (register,) = h.unanswered("register")
    listed = Handle("list")
    h.do(ListRegistrations(listed, closing=True, wait=0.5))
    h.advance(500)
    done = h.outcome(listed)
    assert isinstance(done, Complete) and [k for k, _, _ in done.result] == [reg.key]
    for key, iid, fields in done.result:
        h.do(Deregister(key, iid, fields, 1.0, Handle("d")))
    h.answer_all("deregister")  # applied before the register (held by a stalled owner)
    settled = Handle("settle")
    h.do(Settle(settled, wait=1.0))
    assert h.outcome(settled) is None  # the register is still out
    start = len(h.sent)
    h.advance(200)
    h.reply(register)  # applied after the deregister: one more follows it
    assert deregisters_after(h, start, reg) == 1
    assert h.outcome(settled) is None
    h.answer_all("deregister")
    assert h.outcome(settled) == Complete(settled, ())


def test_a_settle_that_runs_out_names_what_may_stay() -> None:
    h = Harness(servers=("a:1",), attempt_ms=1000, wall_offset=0.0)
    reg = registration(0)
    h.do(Register(reg, 3.0, Handle("r")))
    settled = Handle("settle")
    h.do(Settle(settled, wait=0.3))
    h.advance(300)
    done = h.outcome(settled)
    assert isinstance(done, Complete) and done.result == ((reg.key, reg.iid),)
