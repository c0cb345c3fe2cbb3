"""transport/replies.ReplyGuard's back-pressure per connection (review14a F1): a connection
whose replies not yet written (held by libzmq, or held for a config commit: ``reserve``)
are at or over its budget is blocked; its requests wait, in order and bounded, and are
handed back as its replies drain; a reply to a request it served is never dropped for its
connection's budget.  The accounting on a fake clock (no sockets: reservations make a
connection over its budget, a send on a channel that is not a zmq socket releases them),
then the admitted sends on real inproc sockets."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from helpers import wait_until

from meshreg.log_limiter import LogLimiter
from meshreg.transport.replies import RESUME_FIRST, RESUME_MOST, ReplyGuard
from meshreg.transport.sockets import REPLY_OPTIONS, set_options

pytestmark = pytest.mark.timeout(30)

KB = 1000
A, B = b"A", b"B"


class _Channel:
    """Not a zmq socket: the guard sends on it without tracking (as the memory transport)."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, data: Any, flags: int = 0) -> None:
        self.sent.append(data)


def _guard(per_connection: int = 100 * KB, per_node: int = 1_000 * KB) -> ReplyGuard:
    return ReplyGuard(LogLimiter(logging.getLogger("test")), "client", per_connection, per_node, 10)


def test_a_connection_over_its_budget_waits_in_order_and_resumes_as_it_drains() -> None:
    guard, channel = _guard(), _Channel()
    first = guard.reserve(A, 60 * KB)  # a history page held for a commit
    assert first == 60 * KB and not guard.over(A)
    second = guard.reserve(A, 60 * KB)
    assert guard.over(A) and not guard.over(B)  # B holds nothing: never over
    guard.block(A, 10.0)
    assert guard.next_resume() == pytest.approx(10.0 + RESUME_FIRST)
    assert not guard.resume_due(10.0) and guard.resume_due(10.0 + RESUME_FIRST)
    for i in range(3):
        assert guard.defer(A, f"request {i}", 100, 10.0)
    assert guard.stats()["waiting"] == 3 and guard.stats()["blocked"] == 1
    assert guard.ready(A) is None  # still over: nothing handed back
    # the commit: the first reply goes (the reservation becomes a sent reply)
    assert guard.send(channel, [A, b"", b"x" * first], 10.1, reserved=first)
    assert guard.reserved == second and not guard.over(A)
    assert [guard.ready(A), guard.ready(A), guard.ready(A)] == [
        "request 0",
        "request 1",
        "request 2",
    ]
    assert A in guard.waiting  # blocked until seen empty and under budget
    assert guard.ready(A) is None and A not in guard.waiting
    assert guard.send(channel, [A, b"", b"y" * second], 10.2, reserved=second)
    assert guard.reserved == 0 and guard.stats()["deferred"] == 3
    assert guard.dropped_bytes == 0


def test_a_small_reply_is_never_reserved() -> None:
    guard = _guard()
    assert guard.reserve(A, 100) == 0 and guard.reserved == 0 and not guard.over(A)


def test_waiting_requests_are_bounded_the_rest_dropped_unserved_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = _guard()
    guard.defer_requests, guard.defer_connection, guard.defer_node = 3, 1_000, 1_500
    guard.reserve(A, 200 * KB)
    guard.reserve(B, 200 * KB)
    guard.block(A, 0.0)
    guard.block(B, 0.0)
    with caplog.at_level(logging.WARNING):
        assert [guard.defer(A, i, 100, 0.0) for i in range(5)] == [1, 1, 1, 0, 0]  # count
        assert guard.defer(B, "big", 1_200, 0.0)  # the first always waits (its own size)
        assert not guard.defer(B, "more", 200, 0.0)  # past the connection's 1,000 bytes
        assert guard.waiting_bytes == 1_500 and guard.waiting_count == 4
    assert guard.dropped_bytes == 3 and guard.deferred == 4
    assert [guard.ready(A), guard.ready(B)] == [None, None]  # over budget: they wait
    assert "not reading its replies" in caplog.text and "limits: 3 requests" in caplog.text


def test_the_node_wide_bound_on_waiting_bytes() -> None:
    guard = _guard()
    guard.defer_connection, guard.defer_node = 10_000, 1_000
    for rid in (A, B):
        guard.reserve(rid, 200 * KB)
        guard.block(rid, 0.0)
    assert guard.defer(A, 1, 800, 0.0)
    assert not guard.defer(B, 2, 300, 0.0)  # 1,100 of waiting requests for the node
    assert guard.defer(B, 3, 200, 0.0)
    assert guard.dropped_bytes == 1


def test_looks_again_soon_after_progress_and_backs_off_while_nothing_drains() -> None:
    guard = _guard()
    guard.reserve(A, 200 * KB)
    guard.block(A, 0.0)
    waits = []
    now = 0.0
    for _ in range(10):
        now = guard.next_resume()
        guard.resumed(now, served=0)
        waits.append(round(guard.next_resume() - now, 6))
    assert waits[0] == 2 * RESUME_FIRST and waits[-1] == RESUME_MOST
    assert waits == sorted(waits)
    guard.resumed(now, served=2)  # something drained: soon again
    assert guard.next_resume() == pytest.approx(now + RESUME_FIRST)
    guard.gone(A)
    guard.resumed(now, served=0)
    assert guard.next_resume() == float("inf")  # nobody blocked: no wake-ups


def test_a_connection_that_closed_drops_what_waits_as_unroutable() -> None:
    guard = _guard()
    guard.reserve(A, 200 * KB)
    guard.block(A, 0.0)
    for i in range(4):
        guard.defer(A, i, 100, 0.0)
    assert guard.gone(A) == 4
    assert guard.unroutable == 4 and guard.waiting_count == 0 and guard.waiting_bytes == 0
    assert A not in guard.waiting and guard.gone(A) == 0


def test_a_reservation_cancelled_frees_the_budget() -> None:
    guard = _guard()
    size = guard.reserve(A, 150 * KB)
    assert guard.over(A)
    guard.release_reserved(A, size)
    assert not guard.over(A) and guard.reserved == 0


# -- on real libzmq sockets: admitted replies and the node's bound ----------------------


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)


def _pair(ctx: zmq.Context[Any], name: str, *rids: bytes) -> tuple[Any, list[Any]]:
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.SNDHWM, 1000)
    set_options(router, REPLY_OPTIONS)
    router.bind(f"inproc://{name}")
    dealers = []
    for rid in rids:
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.RCVHWM, 1)
        d.setsockopt(zmq.ROUTING_ID, rid)
        d.connect(f"inproc://{name}")
        d.send_multipart([b"", b"hello"])
        dealers.append(d)
    for _ in rids:
        assert router.poll(5000)
        router.recv_multipart()
    return router, dealers


def test_an_admitted_reply_is_never_dropped_for_its_connection_budget(
    ctx: zmq.Context[Any],
) -> None:
    router, (a,) = _pair(ctx, "admitted", A)
    guard = _guard(per_connection=300 * KB, per_node=10_000 * KB)
    big = b"y" * (100 * KB)
    # served while under budget: the last one takes it over, and goes
    sent = []
    for _ in range(5):
        if guard.over(A):
            break
        sent.append(guard.send(router, [A, b"", big], 0.0, admitted=True))
    assert sent == [True, True, True] and guard.over(A) and guard.dropped_bytes == 0
    # a reply not admitted (a forward's relay) still meets the old rule
    assert not guard.send(router, [A, b"", big], 0.0)
    assert guard.dropped_bytes == 1
    # A reads: under budget again
    for _ in range(3):
        assert a.poll(5000) and a.recv_multipart()[-1] == big
    wait_until(lambda: not guard.over(A), 5, what="A's replies released")


def test_the_node_budget_still_drops_an_admitted_reply(ctx: zmq.Context[Any]) -> None:
    router, _ = _pair(ctx, "node", A, B)
    guard = _guard(per_connection=1_000 * KB, per_node=250 * KB)
    big = b"z" * (100 * KB)
    assert guard.send(router, [A, b"", big], 0.0, admitted=True)
    assert guard.send(router, [B, b"", big], 0.0, admitted=True)
    assert not guard.send(router, [B, b"", big], 0.0, admitted=True)  # 300 KB > 250 KB
    assert guard.dropped_bytes == 1
