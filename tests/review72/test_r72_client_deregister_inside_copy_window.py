"""F2, client side: a deregister made while a copy of the instance's register can still
be applied somewhere (an earlier attempt's deadline not past) is sent once, at once, and
never again; the late copy, applied after it, leaves the instance registered on every node
(test_r72_first_attempt_copy_outlives.py shows the node side).

The client knows the hazard and guards one order of it: a deregister handled *while* a
register try is out marks the try withdrawn, and the try's answer (or failure) sends the
deregister again after it (session.py ``_deregister`` sets ``tries.deregistered``;
``registered``/``failed`` call ``_undo_if_last_word``, the failed case ``UNDO_AFTER`` =
DEADLINE_SLACK + 0.5 s later "after them all").  It does not guard the next order: the try
is over (answered OK by a later attempt, or failed with OutcomeUnknownError) when the
caller deregisters, but an earlier attempt's copy is still valid (each attempt's deadline
is its end + DEADLINE_SLACK, 0.5 s).  ``_deregister`` then finds no try record (it was
deleted by ``_try_ended``) and schedules nothing.

Steps (fake clock, two servers a and b; registry writes carry deadlines, as the Python
Client's always do, ``wall_offset`` set):
(a) The defaults (timeout 3 s, attempt 1 s).  The register goes to a, which is silent
    (stalled: a GC pause, SIGSTOP, a VM freeze); at its attempt's end (1 s, deadline
    1.5 s) the client fails over and sends it to b, which answers OK at once.  The caller
    deregisters at once (b answers OK, 1.015 s).  a resumes at 1.3 s and serves the
    register, within its deadline: forwarded to the owner and applied after the
    deregistration (the node side, at these timings:
    test_r72_first_attempt_copy_outlives.py::test_a_register_held_by_a_stalled_server_...).
(b) Attempt 0.5 s, both servers silent: the register fails at its 1 s budget
    (OutcomeUnknownError: "it may have been applied"), the last attempt's copy valid until
    1.5 s; the caller deregisters at once (answered OK); the copy is applied at 1.3 s.

What happens: one deregister is sent; after the last register copy's deadline nothing
more: the instance stays registered on every node until it is evicted as silent (30 s).

What should happen: as for a deregister handled while the try is out, a deregister of an
instance one of whose register copies is still valid (the latest deadline the client
stamped on any attempt of it, plus the clock slack) is sent again once that has passed
(or the deregister is deferred until then).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import r72lib  # noqa: E402, F401  (tests/client on the path)
from session_harness import Handle, Harness, deregister, registration  # noqa: E402

from meshreg.client.actions import Complete, Fail  # noqa: E402
from meshreg.client.commands import Register  # noqa: E402


def deregisters_after(h: Harness, start: int, ip: str) -> list[tuple[str, float]]:
    return [(s.to, s.fields.get("deadline")) for s in h.sent[start:]
            if s.op == "deregister" and s.fields["ip"] == ip]  # fmt: skip


def test_r72_a_deregister_after_a_failover_register_is_sent_again_after_the_first_copy() -> None:
    h = Harness(servers=("a:1", "b:2"), attempt_ms=1000, wall_offset=0.0)  # the defaults
    reg = registration(0)
    made = Handle("r")
    h.do(Register(reg, 3.0, made))
    (first,) = h.unanswered("register")
    assert first.to == "a:1"
    copy_deadline = first.fields["deadline"]  # ms, the wall clock: 1500
    h.advance(1000)  # a is silent: the session fails over to b and sends it again
    second = [s for s in h.unanswered("register") if s.to == "b:2"]
    assert second, [(s.to, s.op) for s in h.sent]
    h.advance(5)
    h.reply(second[-1])
    assert isinstance(h.outcome(made), Complete)
    h.advance(5)
    gone = deregister(h, reg)
    (dereg,) = h.unanswered("deregister")
    h.advance(5)
    h.reply(dereg)
    assert isinstance(h.outcome(gone), Complete)
    assert h.now * 1000 < copy_deadline  # a's copy may still be applied (a resumes)
    start = len(h.sent)
    h.advance(3000)
    again = deregisters_after(h, start, reg.iid.ip)
    assert again, (
        f"the register's first copy (to a, deadline {copy_deadline} ms) was still valid when "
        f"the deregister was answered at {h.now_ms - 3000} ms; no deregister followed it"
    )


def test_r72_a_deregister_right_after_a_failed_register_is_sent_again_after_its_copies() -> None:
    h = Harness(servers=("a:1", "b:2"), attempt_ms=500, wall_offset=0.0)
    reg = registration(0)
    made = Handle("r")
    h.do(Register(reg, 1.0, made))
    h.advance(1000)  # a, then b: both silent
    failed = h.outcome(made)
    assert isinstance(failed, Fail), failed
    latest = max(s.fields["deadline"] for s in h.requests("register"))
    gone = deregister(h, reg)
    for dereg in h.unanswered("deregister"):
        h.reply(dereg)  # a node answers again: applied
    assert isinstance(h.outcome(gone), Complete)
    assert h.now * 1000 < latest
    start = len(h.sent)
    h.advance(3000)
    h.answer_all("ping", {"epoch": 1, "version": "0", "address": "a:1"})
    again = deregisters_after(h, start, reg.iid.ip)
    assert again, (
        f"the register failed (outcome unknown) with a copy valid until {latest} ms; the "
        f"deregister was answered at {h.now_ms - 3000} ms and none followed it"
    )
