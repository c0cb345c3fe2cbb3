"""ClientSession: a call a node refused by a rate limit (RESOURCE_EXHAUSTED with
``error.retry_after``: ``[limits] write_rate_per_client`` or the read rate) is sent to the
same node again after the wait, within the call's time-out; with no time left for it,
the refusal is the caller's answer (fake clock, ms)."""

from __future__ import annotations

from session_harness import Handle, Harness, Sent, registration

from meshreg.client.actions import Complete, Fail
from meshreg.client.commands import Register
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
