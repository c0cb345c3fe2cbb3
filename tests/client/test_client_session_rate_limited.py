"""ClientSession: a call a node refused by a rate limit (RESOURCE_EXHAUSTED with
``error.retry_after``: ``[limits] write_rate_per_client`` or the read rate) is sent to the
same node again after the wait, within the call's time-out; with no time left for it,
the refusal is the caller's answer (fake clock, ms)."""

from __future__ import annotations

import pytest
from session_harness import PONG, SID, Handle, Harness, Sent, registration

from meshreg.client.actions import Complete, Fail
from meshreg.client.commands import Register, RegisterBatch
from meshreg.client.messages import ReplyError
from meshreg.errors import ErrorCode

LIMITED = (
    "register: write rate limit: at most 100 writes/s per client on this node (a batch's "
    "entries each count; [limits] write_rate_per_client); nothing was applied; retry in 300 ms"
)


def limited(h: Harness, req: Sent, wait: float | None) -> None:
    reply = ReplyError(req.id, int(ErrorCode.RESOURCE_EXHAUSTED), LIMITED, retry_after=wait)
    h.run(h.core.on_reply(req.to, reply, h.now))


def register(timeout: float) -> tuple[Harness, Handle, Sent]:
    """A session, one register call of ``timeout`` s, and the request it sent."""
    h, handle = Harness(), Handle()
    h.do(Register(registration(0), timeout, handle))
    (first,) = h.unanswered("register")
    return h, handle, first


def test_a_rate_limited_register_is_sent_again_after_the_wait() -> None:
    h, handle, first = register(3.0)
    limited(h, first, 0.3)
    assert h.outcome(handle) is None and len(h.requests("register")) == 1
    h.advance(290)
    assert len(h.requests("register")) == 1  # not before the wait
    h.advance(20)
    (again,) = h.unanswered("register")
    assert again.id == first.id and again.to == first.to  # the same call, the same node
    h.reply(again)
    assert isinstance(h.outcome(handle), Complete)
    assert h.connects() == [first.to]  # no failover: the node is up, only busy with us


def test_a_wait_longer_than_the_time_left_is_the_callers_answer_at_once() -> None:
    h, handle, first = register(1.0)
    limited(h, first, 2.5)
    done = h.outcome(handle)
    assert isinstance(done, Fail) and "write_rate_per_client" in str(done.error)
    assert len(h.requests("register")) == 1


def test_refused_again_until_the_time_out_the_refusal_is_the_answer() -> None:
    h, handle, _ = register(1.0)
    for _ in range(4):
        (req,) = h.unanswered("register")
        limited(h, req, 0.2)
        h.advance(210)
    (req,) = h.unanswered("register")
    limited(h, req, 0.2)  # 0.84 s gone: 0.2 s more would pass the 1 s time-out
    done = h.outcome(handle)
    assert isinstance(done, Fail) and "retry in 300 ms" in str(done.error)


def test_a_quota_refusal_without_retry_after_is_not_sent_again() -> None:
    """Only a rate limit's refusal carries ``retry_after``: an instance quota (the same
    code) is the caller's answer, as before."""
    h, handle, first = register(3.0)
    limited(h, first, None)
    assert isinstance(h.outcome(handle), Fail) and len(h.requests("register")) == 1


def redo_sent(write_rate: int) -> tuple[Harness, Sent]:
    """5 session instances registered on a node whose rate is ``write_rate`` (0: none);
    the node restarts (a renewal finds no session): the redo's register_batch."""
    h = Harness(servers=("a:1",), beat_ms=1000, session=True)
    items = tuple((registration(n, True), Handle()) for n in range(5))
    h.do(RegisterBatch(items, 5.0))
    h.answer_batches()
    h.answer_all("session_open", {"session": SID, "instances": 0, "unhealthy_after": 15.0,
                                  "evict_after": 30.0, "write_rate": write_rate})  # fmt: skip
    h.advance(0)
    h.answer_view()
    h.advance(1000)
    (renewal,) = h.unanswered("session_renew")
    h.reply(renewal, {"instances": 0, "known": False})  # the node restarted: a redo
    (redo,) = h.unanswered("register_batch")
    return h, redo


@pytest.mark.parametrize("write_rate", [0, 2])
def test_a_sessions_redo_is_given_the_time_the_nodes_write_rate_needs(write_rate: int) -> None:
    """review84 F1: the redo after a node lost the session had one budget (the beat
    interval + n/5000 s), and the batches the rate held longer failed every redo.  The
    node says its rate in the session_open reply (0: none): 5 instances at 2/s get 2.5 s
    more, so a refusal asking 3 s is waited for; without a rate, it is the answer."""
    h, redo = redo_sent(write_rate)
    limited(h, redo, 3.0)

    def live(ms: int) -> None:  # the server answers everything else meanwhile
        for _ in range(ms // 10):
            h.advance(10)
            h.answer_all("session_renew", {"instances": 5, "known": True})
            h.answer_all("ping", PONG)
            h.answer_view()

    live(2990)
    assert [s.id for s in h.requests("register_batch")].count(redo.id) == 1  # waiting
    live(20)
    failed = [x for x in h.logs() if "registrations not registered" in x]
    if write_rate:  # sent again after the wait, and answered
        assert [s.id for s in h.requests("register_batch")].count(redo.id) == 2
        assert not failed
        h.answer_batches()
        assert not [x for x in h.logs() if "registrations not registered" in x]
    else:  # the wait is past the redo's budget: the refusal is its answer
        assert len(failed) == 1 and "write rate limit" in failed[0], failed


def test_renewals_short_while_a_redo_waits_for_the_rate_start_no_second_redo() -> None:
    """CI on 6345740 (review84's real-process redo test, 1 run in ~7): renewals that found
    the node still short while the redo waited out the write rate started another redo,
    which re-sent every instance; the copies queued behind the first took the rate's
    turns, each refusal told a later wait (13 -> 26 s), and 2,744 of 3,000 instances were
    back 41 s after the restart.  While a redo is queued or out, none other starts."""
    h, redo = redo_sent(2)
    before = {s.id for s in h.requests("register_batch")}  # the caller's batch, the redo
    limited(h, redo, 3.0)
    for _ in range(290):  # the wait: every renewal finds the node still short
        h.advance(10)
        h.answer_all("session_renew", {"instances": 0, "known": True})
        h.answer_all("ping", PONG)
        h.answer_view()
    assert {s.id for s in h.requests("register_batch")} == before, "a second redo"
    assert len([x for x in h.logs() if "registering them again" in x]) == 1  # the first
