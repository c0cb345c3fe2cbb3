"""review65: a client's share of the node's large-reply budget (review64 F1,
transport/replies ``owners``, ``_over_share``), on real libzmq sockets (inproc), as in
test_reply_guard.py.  Each test failed on the reviewed version for the reason its
docstring gives (the reviewer's experiments, /tmp/review65)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from meshreg.log_limiter import LogLimiter
from meshreg.transport.replies import ReplyGuard
from meshreg.transport.sockets import REPLY_OPTIONS, set_options

pytestmark = pytest.mark.timeout(30)

KB = 1000


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)


def _router(ctx: zmq.Context[Any], name: str) -> zmq.Socket[Any]:
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.SNDHWM, 1000)
    set_options(router, REPLY_OPTIONS)
    router.bind(f"inproc://{name}")
    return router


def _connected(
    ctx: zmq.Context[Any], router: zmq.Socket[Any], name: str, *rids: bytes
) -> list[zmq.Socket[Any]]:
    dealers = []
    for rid in rids:
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.RCVHWM, 1)
        dealer.setsockopt(zmq.ROUTING_ID, rid)
        dealer.connect(f"inproc://{name}")
        dealer.send_multipart([b"", b"hello"])
        dealers.append(dealer)
    for _ in rids:
        assert router.poll(5000)
        router.recv_multipart()
    return dealers


def _guard() -> ReplyGuard:
    """per_node 800 KB: a client's share 200 KB, 200 KB kept free (bound 600 KB)."""
    limiter = LogLimiter(logging.getLogger("test"))
    return ReplyGuard(limiter, "client", 1000 * KB, 800 * KB, 1000)


def test_a_reply_served_while_its_client_was_under_its_bound_is_not_dropped_for_the_share(
    ctx: zmq.Context[Any],
) -> None:
    """F3: the gate (``over``) lets a connection's requests be served until its client is
    *at* its bound (``mine >= share``), but the reply of a request so served (admitted)
    is dropped when it would take the client *past* it (``mine + size > share``): a
    client that reads, with two replies in flight on one connection, loses the second
    while the node has room (700 of 800 KB).  The connection budget lets an admitted
    reply pass by one and paces the next requests; SECURITY.md promises a client that
    reads loses no reply to its own pipelining but when the node's budget is full."""
    router = _router(ctx, "served")
    dealers = _connected(ctx, router, "served", b"A1", b"B")  # (kept open)
    guard = _guard()
    guard.owners.update({b"A1": "team-a", b"B": "team-b"})
    for _ in range(3):  # team-b does not read: 450 KB (allowed: 200 KB stay free)
        assert guard.send(router, [b"B", b"", b"b" * (150 * KB)], 0.0)
    assert guard.send(router, [b"A1", b"", b"a" * (150 * KB)], 0.0, True)  # team-a: 150
    assert not guard.over(b"A1")  # under its connection budget and its client's bound:
    # its next request is served ...
    sent = guard.send(router, [b"A1", b"", b"a" * (100 * KB)], 0.0, True)
    assert sent, f"the reply of a request served under the bound was dropped: {guard.stats()}"
    assert len(dealers) == 2


def test_a_connection_of_a_client_at_its_bound_is_paced(ctx: zmq.Context[Any]) -> None:
    """F3: SECURITY.md / the module: "A client at that bound is paced as a connection
    over its budget is (its connections' further requests wait)".  Only a connection
    that holds something is: ``over`` returns False for one that holds nothing before it
    looks at the client, so another connection of the client is served at once, every
    time, and each of its large replies dropped (``dropped_share``)."""
    router = _router(ctx, "paced")
    dealers = _connected(ctx, router, "paced", b"A1", b"A2")  # (kept open)
    guard = _guard()
    guard.owners.update({b"A1": "team-a", b"A2": "team-a"})
    while guard.send(router, [b"A1", b"", b"a" * (100 * KB)], 0.0):
        pass  # team-a's first connection does not read: held up to its bound
    assert guard.over(b"A1")
    assert guard.over(b"A2"), "another connection of a client at its bound is not paced"
    assert len(dealers) == 2
