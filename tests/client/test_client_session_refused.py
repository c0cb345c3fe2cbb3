"""ClientSession: a node that refuses the session (RESOURCE_EXHAUSTED: its session table,
or this client's share of it, is full; review finding F-sessflood) still gets the
registrations, kept alive by per-instance beats, and the session is tried again later
(fake clock, ms)."""

from __future__ import annotations

from session_harness import PONG, SID, Handle, Harness, registration

from meshreg.client.actions import Complete, Fail
from meshreg.client.commands import Register, RegisterBatch
from meshreg.client.session import SESSION_RETRY
from meshreg.errors import ErrorCode

FULL = "session_open: quota reached: ... ([limits] max_sessions_per_client = 20)"
RETRY_MS = int(SESSION_RETRY * 1000)
QUOTA = "register: quota reached: ... ([limits] max_instances_per_client = 3)"


def refused_at_open(h: Harness, n: int = 1) -> list[Handle]:
    """``n`` registrations whose session_open the node refuses, as a full node does:
    the open first, then each register naming the session."""
    handles = [Handle() for _ in range(n)]
    for i, handle in enumerate(handles):
        h.do(Register(registration(i, session=True), 3.0, handle))
    (opened,) = h.unanswered("session_open")
    h.fail(opened, ErrorCode.RESOURCE_EXHAUSTED, FULL)
    assert h.fail_all("register", ErrorCode.RESOURCE_EXHAUSTED, FULL) == n
    return handles


def live(h: Harness, ms: int) -> None:
    """``ms`` pass with the node answering every beat (a server that does not answer
    is failed over from, and an offline client tries nothing)."""
    for _ in range(ms // 250):  # (within an attempt's time: no failover)
        h.advance(250)
        h.answer_all("beat")
        h.answer_all("ping", PONG)  # (a per-instance client pings its server each interval)
        h.answer_view()


def test_a_refused_session_leaves_the_registrations_on_beats() -> None:
    h = Harness(beat_ms=1000, session=True)
    handles = refused_at_open(h, 3)
    again = h.unanswered("register")  # each once more, without the session
    assert len(again) == 3 and all("session" not in r.fields for r in again)
    assert all(h.outcome(x) is None for x in handles)  # the callers wait for those
    h.answer_all("register")
    assert all(isinstance(h.outcome(x), Complete) for x in handles)
    assert h.core.status.session_id is None
    h.advance(1000)
    assert len(h.unanswered("beat")) == 3 and h.unanswered("session_renew") == []
    lines = [x for x in h.logs("warning") if "refused this client's session" in x]
    assert len(lines) == 1 and "per-instance beats" in lines[0] and FULL in lines[0]


def test_the_session_is_tried_again_later_and_takes_the_registrations_back() -> None:
    h = Harness(beat_ms=1000, session=True)
    refused_at_open(h, 3)
    h.answer_all("register")
    live(h, RETRY_MS - 1000)
    assert h.unanswered("session_open") == []
    live(h, 1000)
    (opened,) = h.unanswered("session_open")
    assert opened.fields == {"namespace": "public", "session": SID}
    h.reply(opened, {"session": SID, "instances": 0, "unhealthy_after": 15.0,
                     "evict_after": 30.0})  # fmt: skip
    (redo,) = h.unanswered("register_batch")  # back into the session, in one batch
    assert {e["session"] for e in redo.fields["instances"]} == {SID}
    assert len(redo.fields["instances"]) == 3
    h.answer_batches()
    assert h.core.status.session_id == SID
    h.answer_all("beat")
    h.advance(1000)
    assert len(h.unanswered("session_renew")) == 1 and h.unanswered("beat") == []


def test_a_session_still_refused_is_tried_again_every_retry_interval() -> None:
    h = Harness(beat_ms=1000, session=True)
    refused_at_open(h, 1)
    h.answer_all("register")
    for _ in range(3):
        live(h, RETRY_MS)
        (opened,) = h.unanswered("session_open")
        h.fail(opened, ErrorCode.RESOURCE_EXHAUSTED, FULL)
    assert len(h.requests("session_open")) == 4  # the first and three tries
    assert len([x for x in h.logs("warning") if "refused" in x]) == 1  # logged once
    assert h.unanswered("register_batch") == []


def test_a_refused_renewal_moves_the_registrations_out_of_the_session() -> None:
    """The node forgot the session (restarted) and cannot open it again: the instances
    it holds in the session are registered again without it, then beat."""
    h = Harness(beat_ms=1000, session=True)
    h.do(RegisterBatch(tuple((registration(n, True), Handle()) for n in range(5)), 5.0))
    h.answer_all("session_open", {"session": SID})
    h.answer_batches()
    h.advance(0)
    h.answer_view()  # (unanswered, it moved the client to b:2 and back)
    h.advance(1000)
    (renewal,) = h.unanswered("session_renew")
    h.fail(renewal, ErrorCode.RESOURCE_EXHAUSTED, FULL)
    (out,) = h.unanswered("register_batch")
    assert len(out.fields["instances"]) == 5
    assert all("session" not in e for e in out.fields["instances"])
    h.answer_batches()
    h.advance(1000)
    assert len(h.unanswered("beat")) == 5 and h.unanswered("session_renew") == []


def test_batch_entries_refused_for_the_session_are_sent_again_without_it() -> None:
    h = Harness(beat_ms=1000, session=True)
    h.do(RegisterBatch(tuple((registration(n, True), Handle()) for n in range(4)), 5.0))
    (opened,) = h.unanswered("session_open")
    h.fail(opened, ErrorCode.RESOURCE_EXHAUSTED, FULL)
    refused = {f"10.0.0.{n + 1}": (ErrorCode.RESOURCE_EXHAUSTED, FULL) for n in range(4)}
    (first,) = h.unanswered("register_batch")
    h.reply(first, {"results": [[int(c), m] for c, m in refused.values()]})
    (second,) = h.unanswered("register_batch")
    assert all("session" not in e for e in second.fields["instances"])
    h.answer_batches()
    assert len(h.core.registrations) == 4
    h.advance(1000)
    assert len(h.unanswered("beat")) == 4


def test_an_instance_quota_in_an_open_session_is_the_callers_answer_at_once() -> None:
    """The node answered the open: a RESOURCE_EXHAUSTED to a register is about the
    instance (a quota), and the caller gets it as it is; nothing is sent again."""
    h = Harness(beat_ms=1000, session=True)
    handle = Handle()
    h.do(Register(registration(0, session=True), 3.0, handle))
    h.answer_all("session_open", {"session": SID})
    (first,) = h.unanswered("register")
    h.fail(first, ErrorCode.RESOURCE_EXHAUSTED, QUOTA)
    done = h.outcome(handle)
    assert isinstance(done, Fail) and "max_instances_per_client" in str(done.error)
    assert len(h.requests("register")) == 1
    assert h.core.status.session_id == SID and h.core.registrations == {}


def test_a_register_refused_before_the_open_is_answered_is_tried_without_the_session() -> None:
    """A register that went straight to its service's node may be answered before the
    open: the refusal may be the session's (that node's table is full), so it is sent
    once more without it; an instance quota refuses it again, and the caller gets that."""
    h = Harness(beat_ms=1000, session=True)
    handle = Handle()
    h.do(Register(registration(0, session=True), 3.0, handle))
    (first,) = h.unanswered("register")
    h.fail(first, ErrorCode.RESOURCE_EXHAUSTED, QUOTA)
    (second,) = h.unanswered("register")
    assert "session" not in second.fields and h.outcome(handle) is None
    h.fail(second, ErrorCode.RESOURCE_EXHAUSTED, QUOTA)
    done = h.outcome(handle)
    assert isinstance(done, Fail) and "max_instances_per_client" in str(done.error)
