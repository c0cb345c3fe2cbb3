"""Client side of review72 F2's fix (session.py ``_copies_out``/``_copies_void_at``/
``_undo_at``), fake clock, two servers a and b, registry writes stamped with deadlines
(``wall_offset`` set, as the Python Client always does).

F-B: the window in which a deregister is sent again ends at the copies' deadline, not at
the deadline plus COPY_CLOCK_MARGIN.  The margin exists because a node whose clock is
behind the client's (up to 0.5 s) still takes a copy as valid after the client's
``void_at`` (session.py COPY_CLOCK_MARGIN's comment); but ``_copies_void_at`` drops the
window once ``until <= now`` (no margin), so a deregister made in
``(void_at, void_at + 0.5)`` gets no follow-up although the same late copy the margin is
for can still be applied after it.

F-C: the symmetric order.  A deregister sent twice (a failover) leaves a copy a stalled
node may apply until its deadline; the caller registers the instance again meanwhile
(answered at once by b).  The late deregistration copy, applied after the register,
removes the instance on every node; the client sends nothing after the copy's deadline
(it only finds out at its next beat's NOT_FOUND, or after several short session
renewals), so an acknowledged registration is missing from every consumer's list for
up to a beat interval (5 s by default) or ``SHORT_RENEWALS`` renewals.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import r73lib  # noqa: E402, F401  (tests/client on the path)
from session_harness import Handle, Harness, deregister, registration  # noqa: E402

from meshreg.client import session as session_module  # noqa: E402
from meshreg.client.actions import Complete, Fail  # noqa: E402
from meshreg.client.commands import Register  # noqa: E402

MARGIN_MS = int(session_module.COPY_CLOCK_MARGIN * 1000)


def sends_after(h: Harness, start: int, ops: tuple[str, ...], ip: str) -> list[str]:
    out = []
    for s in h.sent[start:]:
        if s.op not in ops:
            continue
        entries = s.fields["instances"] if s.op == "register_batch" else [s.fields]
        if any(e["ip"] == ip for e in entries):
            out.append(f"{s.op}->{s.to}")
    return out


@pytest.mark.parametrize("past_ms", [-100, 100])
def test_r73_a_deregister_inside_the_copy_clock_margin_is_not_sent_again(past_ms: int) -> None:
    """F-B: the register fails unanswered (both servers silent: its last copy, to b, is
    valid until 1.5 s on the client's clock, up to 2.0 s on a node 0.5 s behind);
    the caller deregisters at 1.6 s (answered); nothing follows it.  Control: at 1.4 s
    (``past_ms`` -100) it is sent again at 2.0 s."""
    h = Harness(servers=("a:1", "b:2"), attempt_ms=500, beat_ms=5000, wall_offset=0.0)
    reg = registration(0)
    made = Handle("r")
    h.do(Register(reg, 1.0, made))
    h.advance(1000)
    assert isinstance(h.outcome(made), Fail)
    void_ms = max(int(s.fields["deadline"]) for s in h.requests("register"))
    h.advance(void_ms + past_ms - h.now_ms)  # past the copy's deadline, inside the margin
    gone = deregister(h, reg)
    for d in h.unanswered("deregister"):
        h.reply(d)
    assert isinstance(h.outcome(gone), Complete)
    start = len(h.sent)
    h.advance(3000)
    for p in h.unanswered("ping"):
        h.reply(p, {"epoch": 1, "version": "0", "address": p.to})
    again = sends_after(h, start, ("deregister",), reg.iid.ip)
    assert again, (
        f"the register's last copy was stamped void at {void_ms} ms (client clock); a node "
        f"whose clock is behind by less than COPY_CLOCK_MARGIN ({MARGIN_MS} ms) may apply "
        f"it until {void_ms + MARGIN_MS} ms; the deregister answered at {void_ms + past_ms} ms "
        "was not sent again"
    )


def test_r73_a_register_made_while_a_deregister_copy_may_apply_is_not_sent_again() -> None:
    """F-C: the deregister's first copy (to a, silent: a stalled server) is valid until
    1.5 s after it left; at the attempt's end (1 s) it goes to b, answered; the caller
    registers again at once (answered by b).  a resumes inside the deadline and the copy
    removes the instance everywhere: the client sends no register after it."""
    h = Harness(servers=("a:1", "b:2"), attempt_ms=1000, beat_ms=5000, wall_offset=0.0)
    reg = registration(0)
    h.do(Register(reg, 3.0, Handle("r")))
    h.answer_all("register")
    t0 = h.now_ms
    gone = deregister(h, reg)
    (first,) = h.unanswered("deregister")
    assert first.to == "a:1"
    h.advance(1000)  # a silent: failover to b
    second = [s for s in h.unanswered("deregister") if s.to == "b:2"]
    assert second, [(s.op, s.to) for s in h.sent]
    h.reply(second[-1])
    assert isinstance(h.outcome(gone), Complete)
    again = Handle("again")
    h.do(Register(reg, 3.0, again))
    h.answer_all("register")
    assert isinstance(h.outcome(again), Complete)
    answered_ms = h.now_ms
    copy_deadline = int(first.fields["deadline"])
    assert h.now_ms < copy_deadline, (h.now_ms, copy_deadline, t0)
    start = len(h.sent)
    h.advance(copy_deadline + MARGIN_MS + 200 - h.now_ms)  # before the first beat is due
    redone = sends_after(h, start, ("register", "register_batch"), reg.iid.ip)
    assert redone, (
        f"the deregister's first copy (to a) was valid until {copy_deadline} ms; the caller's "
        f"register of the instance was answered at {answered_ms} ms"
        " (its last word); nothing was sent after the copy could have removed it"
    )


def test_r73_the_follow_up_waits_for_the_answered_copys_deadline_too() -> None:
    """F-E (docs/low): at the defaults (timeout 3 s, attempt 1 s) the register goes to a
    (silent: deadline 1.5 s), then to b (deadline 2.5 s), answered at once at 1.0 s.  The
    only copy that can still land is a's (void at 1.5 s, 2.0 s with the clock margin):
    b's was answered, and a forwarder's copy of it is void once the forwarder stopped
    waiting (before it answered).  ``Pending.void_at`` is the max over *every* attempt,
    the answered one included, so the follow-up deregister goes at 3.0 s: a late copy of
    a's applied at 1.3 s lists the instance for 1.7 s, not "under a second" as the
    CHANGELOG (and PROTOCOL.md 5.2's row) says."""
    h = Harness(servers=("a:1", "b:2"), attempt_ms=1000, beat_ms=5000, wall_offset=0.0)
    reg = registration(0)
    h.do(Register(reg, 3.0, Handle("r")))
    (first,) = h.unanswered("register")
    h.advance(1000)
    (second,) = [s for s in h.unanswered("register") if s.to == "b:2"]
    h.reply(second)
    gone = deregister(h, reg)
    h.answer_all("deregister")
    assert isinstance(h.outcome(gone), Complete)
    answered_ms = h.now_ms
    start = len(h.sent)
    sent_at = None
    while h.now_ms < 4000 and sent_at is None:
        h.advance(10)
        if sends_after(h, start, ("deregister",), reg.iid.ip):
            sent_at = h.now_ms
    assert sent_at is not None
    stale_void = int(first.fields["deadline"]) + MARGIN_MS  # a's copy, with the margin
    assert sent_at <= stale_void + 20, (
        f"deregister answered at {answered_ms} ms; the only copy that can still land (a's) "
        f"is void by {stale_void} ms with the margin; the follow-up went at {sent_at} ms "
        f"(b's answered copy's deadline {second.fields['deadline']} ms + margin)"
    )
