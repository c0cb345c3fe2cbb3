"""F1 (review74): a ``register_batch`` entry answered "registered" after the caller's
deregister of it is followed by its deregister once more (``_undo_if_last_word``), sent
at once from inside ``_batch_results``; but the batch's ``stamps`` are heard
(``_heard_stamp``) only *after* ``_batch_results`` returns (session.py ``_send_batch``'s
``replied``).  The follow-up therefore carries as ``after`` the stamp known before the
batch's answer (the caller's deregister's, or none), not the stamp the batch entry left:
a node whose clock is ahead stamped the entry above it, and the follow-up, stamped by
the owner's clock above the stale ``after`` only, loses to the register: the
deregistered instance stays listed (review72 F1 / review73 F-A, reopened for the race
the follow-up exists for).  A single ``register`` hears its stamp in ``_resolve`` before
its ``on_reply`` runs: the control passes."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import r74lib  # noqa: E402, F401  (tests/client on the path)
from session_harness import Handle, Harness, deregister, registration  # noqa: E402

from meshreg.client.actions import Complete  # noqa: E402
from meshreg.client.commands import Register, RegisterBatch  # noqa: E402

DEREG_STAMP = 100  # what the caller's deregister left (the owner's clock)
REG_STAMP = 5_000  # what the register left (a node whose clock is ahead)


def follow_ups(h: Harness, start: int, ip: str) -> list[dict]:
    return [s.fields for s in h.sent[start:] if s.op == "deregister" and s.fields["ip"] == ip]


def test_r74_a_batch_entrys_follow_up_deregister_carries_the_entrys_stamp() -> None:
    h = Harness(servers=("a:1",), attempt_ms=1000, beat_ms=5000, wall_offset=0.0)
    reg = registration(0)
    chunk = Handle("many")
    h.do(RegisterBatch(((reg, None),), 3.0, chunk))
    (batch,) = h.unanswered("register_batch")
    gone = deregister(h, reg)  # while the batch is out: the caller's last word
    (d,) = h.unanswered("deregister")
    h.reply(d, {"stamp": DEREG_STAMP})
    assert isinstance(h.outcome(gone), Complete)
    start = len(h.sent)
    h.reply(batch, {"results": [None], "stamps": [REG_STAMP]})
    assert isinstance(h.outcome(chunk), Complete)
    h.advance(10)
    again = follow_ups(h, start, reg.iid.ip)
    assert again, "no follow-up deregister after the batch entry answered registered"
    assert again[0].get("after", 0) >= REG_STAMP, (
        f"the batch entry left stamp {REG_STAMP}; its follow-up deregister carries after="
        f"{again[0].get('after')} (the deregister's {DEREG_STAMP}): stamped below the "
        "register by a node whose clock is behind, it loses, and the instance stays"
    )
    assert h.core._stamps[(reg.key, reg.iid)] == REG_STAMP  # heard, but too late


def test_r74_control_a_single_registers_follow_up_carries_its_stamp() -> None:
    h = Harness(servers=("a:1",), attempt_ms=1000, beat_ms=5000, wall_offset=0.0)
    reg = registration(0)
    made = Handle("r")
    h.do(Register(reg, 3.0, made))
    (r,) = h.unanswered("register")
    gone = deregister(h, reg)
    (d,) = h.unanswered("deregister")
    h.reply(d, {"stamp": DEREG_STAMP})
    assert isinstance(h.outcome(gone), Complete)
    start = len(h.sent)
    h.reply(r, {"stamp": REG_STAMP})
    h.advance(10)
    again = follow_ups(h, start, reg.iid.ip)
    assert again and again[0].get("after") == REG_STAMP
