"""A notification connection whose handshake the node refused, tried again (review17 F5).

libzmq ends a connection whose CURVE handshake the node refused (its ZAP handler: a
key the ACL does not name) and never reconnects it.  A node drops every notification
connection when it reloads its ACL; a client whose key an operator's edit left out for
a moment was refused on reconnecting, and its SUB stayed without notifications for
good after the key was put back (its watches fell back on their periodic re-pulls).
A socket monitor reports the refusal; the client connects the SUB again after a pause
(doubling from ``RETRY_FIRST`` to ``RETRY_MAX``) until a handshake succeeds.
"""

from __future__ import annotations

import math

import zmq
from zmq.utils.monitor import recv_monitor_message

REFUSED = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)
RETRY_FIRST, RETRY_MAX = 0.5, 10.0  # s


class HandshakeWatch:
    """The handshake events of one socket: ``drain(now)`` after its ``monitor`` polls
    readable; ``retry_at``: when to connect the socket again (inf: no need)."""

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        self.monitor = sock.get_monitor_socket(REFUSED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self.retry_at = math.inf
        self.pause = RETRY_FIRST

    def drain(self, now: float) -> str | None:
        """Read the events waiting; a refusal (what libzmq said) schedules a retry."""
        refused = None
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return refused
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.pause, self.retry_at = RETRY_FIRST, math.inf
                refused = None
                continue
            if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                refused = f"authentication refused (ZAP status {event['value']})"
            else:
                refused = f"handshake failed ({zmq.strerror(event['value'])})"
            if self.retry_at == math.inf:
                self.retry_at = now + self.pause
                self.pause = min(RETRY_MAX, self.pause * 2)

    def retried(self) -> None:
        self.retry_at = math.inf

    def close(self, sock: zmq.Socket[bytes]) -> None:
        try:
            sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self.monitor.close(linger=0)
