"""review65: a register and a deregister of one instance at once (the change after
e1c298d: ``RegisterTries``).  Each test failed on the reviewed version, for the reason its
docstring gives (the reviewer's experiments, /tmp/review65).

PROTOCOL.md 5.2: "your last word on the instance wins: a register answered after you sent
its deregister is not kept alive ...; a redo not sent yet is dropped.  A register sent
after the deregister is the last word again"."""

from __future__ import annotations

import pytest
from session_harness import Handle, Harness, Sent, deregister, lose_session, registration

from meshreg.client import session as session_module
from meshreg.client.actions import Fail
from meshreg.client.commands import Register, RegisterBatch, Registration
from meshreg.errors import ErrorCode


def registers_of(h: Harness, start: int, reg: Registration) -> list[Sent]:
    """The registers of ``reg``'s instance sent since ``start`` (batch entries too)."""
    ip = reg.fields["ip"]
    out = [s for s in h.sent[start:] if s.op == "register" and s.fields["ip"] == ip]
    out += [s for s in h.sent[start:] if s.op == "register_batch"
            and ip in [e["ip"] for e in s.fields["instances"]]]  # fmt: skip
    return out


def register_a_deregister_register_b(h: Harness) -> tuple[Registration, Sent, Sent, Handle]:
    """The caller's three calls in this order: register A, deregister, register B (the
    same instance, weight 7): A's and B's registers both out, the deregister answered."""
    a = registration(0)
    h.do(Register(a, 5.0, Handle("a")))
    (ra,) = h.unanswered("register")
    deregister(h, a)
    h.reply(h.unanswered("deregister")[0])
    b = Registration(a.key, a.iid, {**a.fields, "weight": 7.0})
    hb = Handle("b")
    h.do(Register(b, 1.0, hb))
    (rb,) = [s for s in h.unanswered("register") if s.id != ra.id]
    return a, ra, rb, hb


def test_a_register_out_before_a_deregister_is_not_held_after_a_refused_register() -> None:
    """F1: ``withdrawn`` is one flag per instance, cleared by any register that begins
    after the deregister: A's try, out before the deregister, is then taken as current.
    B is refused for good (a quota); A's late answer is held (beaten), its beats answered
    NOT_FOUND (the node applied A then the deregister) register A again on the node, for
    the client's lifetime: the deregistered instance is back, what the change fixes for
    a single register."""
    h = Harness(attempt_ms=500, servers=("a:1",))
    a, ra, rb, hb = register_a_deregister_register_b(h)
    h.fail(rb, ErrorCode.RESOURCE_EXHAUSTED, "max_metadata_bytes_per_namespace")
    assert isinstance(h.outcome(hb), Fail)
    start = len(h.sent)
    h.reply(ra)  # A's answer comes last (it took a longer way: a forward, a failover)
    for _ in range(3):
        h.advance(1000)
        for beat in h.unanswered("beat"):
            h.fail(beat, ErrorCode.NOT_FOUND, "unknown instance")
    assert (a.key, a.iid) not in h.core.registrations, "A, deregistered, is held"
    assert registers_of(h, start, a) == [], "the client registered A again on the node"


def test_a_register_answered_after_its_deregister_does_not_replace_a_later_register() -> None:
    """F1: register A, deregister, register B; B kept (no answer: "it is made once a node
    answers"), then A's answer: A (weight 1) is held and B, the caller's last word, is
    dropped from the kept registrations: never made (the same when B was answered first:
    A's late answer replaces B in the registrations, and a redo sends A's fields)."""
    h = Harness(attempt_ms=500, servers=("a:1",))
    a, ra, _, hb = register_a_deregister_register_b(h)
    h.advance(1200)  # B gets no answer within its 1 s: kept
    done = h.outcome(hb)
    assert isinstance(done, Fail) and done.error.registration_kept
    h.reply(ra)
    held = h.core.registrations.get((a.key, a.iid))
    kept = h.core._kept_registrations.get((a.key, a.iid))
    assert (held is None and kept is not None and kept.fields["weight"] == 7.0) or (
        held is not None and held.fields["weight"] == 7.0
    ), f"held {held and held.fields['weight']}, kept {kept and kept.fields['weight']}"


@pytest.mark.parametrize("answer_first", [True, False])
def test_the_later_register_is_what_the_client_holds_whatever_the_answers_order(
    answer_first: bool,
) -> None:
    """F1: as test_client_session_register_race's "register again" test, with B answered
    before A (A took the longer way): the client holds A's fields, not B's."""
    h = Harness(attempt_ms=500, servers=("a:1",))
    a, ra, rb, _ = register_a_deregister_register_b(h)
    first, second = (rb, ra) if answer_first else (ra, rb)
    h.reply(first)
    h.reply(second)
    assert h.core.registrations[(a.key, a.iid)].fields["weight"] == 7.0


def test_a_register_refused_resource_exhausted_is_not_sent_again_after_its_deregister() -> None:
    """F2: a register naming a session no node confirmed, refused RESOURCE_EXHAUSTED, is
    sent once more without it (``_register``'s retry), even when the caller deregistered
    the instance meanwhile: a register leaves after the deregister (its answer is then
    followed by a deregister; no answer: the node may hold it, not beaten, until it
    expires)."""
    h = Harness(attempt_ms=500, session=True, servers=("a:1",))
    reg = registration(0, session=True)
    h.do(Register(reg, 3.0, Handle("r")))
    (register,) = h.unanswered("register")
    deregister(h, reg)
    start = len(h.sent)
    h.fail(register, ErrorCode.RESOURCE_EXHAUSTED, "the node holds max_sessions")
    assert registers_of(h, start, reg) == [], "a register of it left after its deregister"


def test_a_queued_redo_of_a_deregistered_instance_is_not_sent_on_the_unknown_op_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """F2: a redo still queued (the batch window full) when its instance is deregistered
    is dropped by ``_pump_bulk``, but not when the batch in flight is refused UNKNOWN_OP:
    ``_send_batch`` sends every queued entry as a single register (``_register_single``:
    its ``wanted`` is looked at only once answered)."""
    monkeypatch.setattr(session_module, "BATCHES_IN_FLIGHT", 1)
    monkeypatch.setattr(session_module, "BATCH_ENTRIES", 2)
    h = Harness(attempt_ms=500, session=True, servers=("a:1",))
    regs = [registration(n, session=True) for n in range(4)]
    h.do(RegisterBatch(tuple((r, None) for r in regs), 3.0, Handle("m")))
    h.answer_all("session_open", {})
    for _ in range(4):
        h.answer_batches()
    out = lose_session(h)
    out_ips = [e["ip"] for e in out.fields["instances"]]
    queued = next(r for r in regs if r.fields["ip"] not in out_ips)
    deregister(h, queued)
    start = len(h.sent)
    h.fail(out, ErrorCode.UNKNOWN_OP, "unknown op 'register_batch'")
    assert registers_of(h, start, queued) == [], "the deregistered instance's redo was sent"
