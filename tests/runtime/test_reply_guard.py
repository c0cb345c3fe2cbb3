"""transport/replies.ReplyGuard on real libzmq sockets (inproc: no kernel buffers, so
the queue and the budgets are all there is): what does not fit is dropped and counted,
what libzmq is done with is released, a send never blocks."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from helpers import wait_until

from meshreg.log_limiter import LogLimiter
from meshreg.transport.replies import TAIL_BYTES, ReplyGuard
from meshreg.transport.sockets import REPLY_OPTIONS, set_options

pytestmark = pytest.mark.timeout(30)

KB = 1000


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)


def _router(ctx: zmq.Context[Any], name: str, hwm: int) -> zmq.Socket[Any]:
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.SNDHWM, hwm)
    set_options(router, REPLY_OPTIONS)
    router.bind(f"inproc://{name}")
    return router


def _client(ctx: zmq.Context[Any], name: str, rid: bytes) -> zmq.Socket[Any]:
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.RCVHWM, 1)
    dealer.setsockopt(zmq.ROUTING_ID, rid)
    dealer.connect(f"inproc://{name}")
    return dealer


def _connected(router: zmq.Socket[Any], *dealers: zmq.Socket[Any]) -> None:
    for d in dealers:
        d.send_multipart([b"", b"hello"])
    for _ in dealers:
        assert router.poll(5000)
        router.recv_multipart()


def _guard(per_connection: int, per_node: int, hwm: int = 10) -> ReplyGuard:
    limiter = LogLimiter(logging.getLogger("test"))
    return ReplyGuard(limiter, "client", per_connection, per_node, hwm)


def test_small_replies_past_the_queue_are_dropped_and_counted(ctx: zmq.Context[Any]) -> None:
    router = _router(ctx, "small", hwm=10)
    a = _client(ctx, "small", b"A")
    _connected(router, a)
    guard = _guard(1_000_000, 10_000_000)
    sent = sum(guard.send(router, [b"A", b"", b"x" * 100], 0.0) for _ in range(100))
    # inproc: the pipe holds SNDHWM + the reader's RCVHWM; the rest is refused at once
    assert 0 < sent < 30
    assert guard.dropped_full == 100 - sent
    assert guard.dropped_bytes == 0 and guard.held == 0  # small: never tracked
    received = 0
    while a.poll(100):
        a.recv_multipart()
        received += 1
    assert received == sent


def test_a_closed_connection_is_unroutable_not_dropped(ctx: zmq.Context[Any]) -> None:
    router = _router(ctx, "gone", hwm=10)
    guard = _guard(1_000_000, 10_000_000)
    assert not guard.send(router, [b"nobody", b"", b"x"], 0.0)
    assert not guard.send(router, [b"nobody", b"", b"x" * 10 * KB], 0.0)
    assert guard.unroutable == 2 and guard.dropped_full == 0 and guard.dropped_bytes == 0


def test_large_replies_are_held_within_the_connection_and_node_budgets(
    ctx: zmq.Context[Any],
) -> None:
    router = _router(ctx, "large", hwm=1000)
    a, b = _client(ctx, "large", b"A"), _client(ctx, "large", b"B")
    _connected(router, a, b)
    guard = _guard(per_connection=300 * KB, per_node=500 * KB)
    big = b"y" * (100 * KB)
    assert [guard.send(router, [b"A", b"", big], 0.0) for _ in range(4)] == [1, 1, 1, 0]
    assert guard.dropped_bytes == 1 and guard.held == 300 * KB
    # B: the node has 200 KB left
    assert [guard.send(router, [b"B", b"", big], 0.0) for _ in range(3)] == [1, 1, 0]
    assert guard.dropped_bytes == 2 and guard.held == 500 * KB
    # A reads its replies: libzmq frees them, the guard releases them
    for _ in range(3):
        assert a.poll(5000)
        assert a.recv_multipart()[-1] == big
    wait_until(lambda: guard.reclaim() == 200 * KB, 5, what="A's replies released")
    assert guard.send(router, [b"A", b"", big], 0.0)
    assert guard.dropped_full == 0 and guard.unroutable == 0


def test_replies_below_pyzmqs_copy_threshold_are_held_too(ctx: zmq.Context[Any]) -> None:
    """review37 F2: pyzmq copies a message under its ``copy_threshold`` (64 KiB) even
    with copy=False and returns a finished tracker: 4-64 KiB replies were never held.
    Now a connection's copies pass ``TAIL_BYTES`` only with a tracked reply holding them."""
    router = _router(ctx, "mid", hwm=1000)
    a = _client(ctx, "mid", b"A")
    _connected(router, a)
    guard = _guard(per_connection=500 * KB, per_node=10_000 * KB)
    reply = b"m" * (60 * KB)
    sent = [guard.send(router, [b"A", b"", reply], 0.0) for _ in range(20)]
    # 4 copied (240 KB <= TAIL_BYTES), the 5th tracked holds 300 KB; 4 more, the 10th
    # holds 600 KB: the connection is over its budget, the rest are dropped
    assert TAIL_BYTES // reply.__len__() == 4
    assert sum(sent) == 10 and guard.dropped_bytes == 10
    assert guard.reclaim() == 600 * KB and guard.over(b"A")
    for _ in range(10):
        assert a.poll(5000) and a.recv_multipart()[-1] == reply
    wait_until(lambda: guard.reclaim() == 0, 5, what="released")
    assert not guard.over(b"A")


def test_one_reply_larger_than_the_budget_goes_when_nothing_is_held(
    ctx: zmq.Context[Any],
) -> None:
    router = _router(ctx, "huge", hwm=1000)
    a = _client(ctx, "huge", b"A")
    _connected(router, a)
    guard = _guard(per_connection=100 * KB, per_node=150 * KB)
    huge = b"z" * (400 * KB)
    assert guard.send(router, [b"A", b"", huge], 0.0)  # nothing held: it goes
    assert not guard.send(router, [b"A", b"", b"z" * (10 * KB)], 0.0)  # now it is held
    assert a.poll(5000) and a.recv_multipart()[-1] == huge
    wait_until(lambda: guard.reclaim() == 0, 5, what="released")
    assert guard.stats() == {
        "dropped_full": 0,
        "dropped_bytes": 1,
        "dropped_share": 0,
        "unroutable": 0,
        "held_bytes": 0,
        "reserved_bytes": 0,
        "blocked": 0,
        "waiting": 0,
        "deferred": 0,
    }


def test_a_client_holds_beyond_its_share_only_while_a_quarter_stays_free(
    ctx: zmq.Context[Any],
) -> None:
    """review64 F1: a key's connections together held the whole node budget (each within
    its own) and every other client's large replies were dropped.  A client now holds
    beyond a quarter of the budget only while a quarter stays free for the others."""
    router = _router(ctx, "share", hwm=1000)
    names = (b"A1", b"A2", b"B")
    a1, a2, b = (_client(ctx, "share", rid) for rid in names)
    _connected(router, a1, a2, b)
    guard = _guard(per_connection=1000 * KB, per_node=800 * KB)  # share 200, keep 200 free
    guard.owners.update({b"A1": "team-a", b"A2": "team-a", b"B": "team-b"})
    big = b"s" * (100 * KB)
    assert [guard.send(router, [b"A1", b"", big], 0.0) for _ in range(7)] == [1] * 6 + [0]
    assert not guard.send(router, [b"A2", b"", big], 0.0)  # another connection, same client
    assert guard.dropped_share == 2 and guard.held == 600 * KB
    assert guard.over(b"A1")  # paced: its further requests wait (within its 1000 KB)
    assert [guard.send(router, [b"B", b"", big], 0.0) for _ in range(3)] == [1, 1, 0]
    assert guard.dropped_share == 2 and guard.dropped_bytes == 3  # B's third: the node's
    for _ in range(3):  # team-a reads half of what it holds: its share frees up
        assert a1.poll(5000) and a1.recv_multipart()[-1] == big
    wait_until(lambda: not guard.over(b"A1"), 5, what="team-a under its bound")
    assert guard.send(router, [b"A2", b"", big], 0.0)
    assert guard.stats()["dropped_share"] == 2


def test_routing_ids_of_clients_holding_nothing_are_forgotten() -> None:
    guard = _guard(per_connection=1000 * KB, per_node=800 * KB)
    guard.owners.update({b"A": "team-a", b"B": "team-b"})
    guard._held[b"A"] = deque()  # (as if a reply of A's were held)
    owners = guard.owners
    guard.forget_owners()
    assert guard.owners is owners and owners == {b"A": "team-a"}
