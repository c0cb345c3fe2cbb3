"""A node's loop that falls behind its peers must not abort the process in libzmq.

libzmq 4.3.5 (issue 3937, open): a connection whose receive queue is full stops reading
its socket, so its ZMTP heartbeats time it out; the connection made again then trips
"Assertion failed: _input_stopped" once the application reads on: SIGABRT.  review37 F7
saw every node of a cluster abort so while one tenant's 56,000 registrations kept their
loops behind.  The peer sockets a node connects (replication SUB, peer DEALERs) have
heartbeats, so they take every message the peers send (no receive limit)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(60)

# a replication SUB as the node makes it, fed by a PUB faster than it reads, in rounds:
# not read for longer than the heartbeat timeout, then a burst read
SCRIPT = textwrap.dedent(
    """
    import time, zmq
    from meshreg.transport.sockets import (
        PeerLiveness, connect_replication_socket, set_options)
    ctx = zmq.Context()
    live = PeerLiveness.from_timing(1.0, 0.25)  # reconnect after 0.5 s without an answer
    pub = ctx.socket(zmq.PUB)
    set_options(pub, live.accepting())
    pub.setsockopt(zmq.SNDHWM, 100_000)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = connect_replication_socket(ctx, None, live)
    sub.connect(f"tcp://127.0.0.1:{port}")
    deadline = time.monotonic() + 10
    while not sub.poll(10) and time.monotonic() < deadline:  # connected and subscribed
        pub.send(b"hello")
    for _ in range(4):
        ends = time.monotonic() + 1.2  # the loop busy elsewhere: nothing read
        while time.monotonic() < ends:
            try:
                pub.send(b"x" * 2000, zmq.NOBLOCK)
            except zmq.Again:
                pub.poll(1, zmq.POLLOUT)
        for _ in range(5000):  # the loop reads again
            if not sub.poll(0):
                break
            sub.recv()
    print("alive")
    """
)


def test_a_replication_subscriber_that_falls_behind_does_not_abort() -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=45)  # fmt: skip
    assert run.returncode == 0 and "alive" in run.stdout, (run.returncode, run.stderr[-500:])
