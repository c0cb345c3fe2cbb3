"""``close_seeing_handshake`` on real sockets: whether what a closed DEALER queued may have
left.  The client fails a write as "never left (not applied)" only when it says no."""

from __future__ import annotations

import itertools
import time

import pytest
import zmq
from helpers import free_port_pair as free_port

from meshreg.transport.handshakes import close_seeing_handshake

pytestmark = pytest.mark.timeout(30)
EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_MONITOR_STOPPED
_IDS = itertools.count()


def _dealer(ctx: zmq.Context[zmq.Socket[bytes]], port: int) -> tuple[zmq.Socket[bytes], ...]:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    monitor = sock.get_monitor_socket(EVENTS, f"inproc://test-close-seeing.{next(_IDS)}")
    sock.connect(f"tcp://127.0.0.1:{port}")
    return sock, monitor


def _listener(ctx: zmq.Context[zmq.Socket[bytes]]) -> tuple[zmq.Socket[bytes], int]:
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    return router, router.bind_to_random_port("tcp://127.0.0.1")


def test_a_queued_message_that_reached_a_listener_counts_as_left() -> None:
    ctx = zmq.Context.instance()
    router, port = _listener(ctx)
    try:
        sock, monitor = _dealer(ctx, port)
        sock.send(b"write")
        assert router.poll(10_000), "the listener never got the message"
        assert close_seeing_handshake(sock, monitor, time.monotonic, 5.0)
        assert monitor.closed and sock.closed
    finally:
        router.close()


def test_a_message_queued_where_nothing_listens_never_left() -> None:
    ctx = zmq.Context.instance()
    sock, monitor = _dealer(ctx, free_port())
    sock.send(b"write")
    assert not close_seeing_handshake(sock, monitor, time.monotonic, 5.0)
    assert monitor.closed


def test_a_handshake_already_read_from_the_monitor_is_not_counted_again() -> None:
    """The loop reported it (the session marked what was sent as delivered): a socket
    closed later says no more."""
    ctx = zmq.Context.instance()
    router, port = _listener(ctx)
    try:
        sock, monitor = _dealer(ctx, port)
        assert monitor.poll(10_000)
        assert monitor.recv_multipart()  # HANDSHAKE_SUCCEEDED, read by the loop
        assert not close_seeing_handshake(sock, monitor, time.monotonic, 5.0)
    finally:
        router.close()
