"""Handshakes that failed on a connecting socket, reported by a socket monitor.

libzmq keeps a failed handshake to itself.  Two uses:

* **a client's notification connection** (client/agent.py, review17 F5): libzmq ends a
  connection whose CURVE handshake the node refused (its ZAP handler: a key the ACL
  does not name) and never reconnects it.  A node drops every notification connection
  when it reloads its ACL; a client whose key an operator's edit left out for a moment
  was refused on reconnecting, and its SUB stayed without notifications for good after
  the key was put back.  The client connects it again after ``retry_at`` (a pause
  doubling from ``RETRY_FIRST`` to ``RETRY_MAX``) until a handshake succeeds.
* **a node's connections to its peers** (transport/zeromq.py, review17 F3): a peer
  whose security differs (no key, another cluster's key) failed silently on both sides,
  like a firewall; the node logs it naming the peer.
"""

from __future__ import annotations

import errno
import math
from collections.abc import Callable

import zmq
from zmq.utils.monitor import recv_monitor_message

REFUSED = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)
RETRY_FIRST, RETRY_MAX = 0.5, 10.0  # s
SAY_AFTER = 3  # connections closed mid-handshake in a row before it is said


class HandshakeWatch:
    """The handshake events of one socket: ``drain(now)`` after its ``monitor`` polls
    readable; ``retry_at``: when to connect the socket again (inf: no need)."""

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        events = REFUSED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_MONITOR_STOPPED
        self.monitor = sock.get_monitor_socket(events)
        self.retry_at = math.inf
        self.pause = RETRY_FIRST
        self.endpoint = ""  # the endpoint of the last refusal
        self.refused: set[str] = set()  # endpoints refused since the last ``reconnect``
        self.streak: dict[str, int] = {}  # endpoint -> failures since its last success
        self.definitive = False  # the last failure was a refusal or a mismatch, not a
        # connection closed mid-handshake (a peer restarting may do that once)
        self.stopped = False  # the socket was closed: close ``monitor`` too

    def drain(self, now: float) -> str | None:
        """Read the events waiting; a refusal (what libzmq said) schedules a retry."""
        refused = None
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return refused
            if event["event"] == zmq.EVENT_MONITOR_STOPPED:
                self.stopped = True
                return refused
            endpoint = bytes(event.get("endpoint") or b"").decode(errors="replace")
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.refused.discard(endpoint)
                self.streak.pop(endpoint, None)
                if not self.refused:
                    self.pause, self.retry_at = RETRY_FIRST, math.inf
                if endpoint == self.endpoint:
                    refused = None
                continue
            if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL and event["value"] in (
                errno.EAGAIN,
                errno.ETIMEDOUT,
            ):
                continue  # the handshake timed out: a peer stopped or busy, not its keys
                # (review18 F3: a SIGSTOPped peer was said to differ in security)
            self.endpoint = endpoint
            if endpoint:
                self.refused.add(endpoint)
                self.streak[endpoint] = self.streak.get(endpoint, 0) + 1
            self.definitive = event["event"] != zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            refused = describe(event["event"], int(event["value"]))
            if self.retry_at == math.inf:
                self.retry_at = now + self.pause
                self.pause = min(RETRY_MAX, self.pause * 2)

    def worth_saying(self) -> bool:
        """Whether the last failure says the two ends' security differs: a refusal or a
        mismatch, or a connection closed mid-handshake ``SAY_AFTER`` times in a row."""
        return self.definitive or self.streak.get(self.endpoint, 0) >= SAY_AFTER

    def reconnect(self, sock: zmq.Socket[bytes]) -> None:
        """Connect ``sock`` again to the endpoints refused (libzmq gave up on some:
        a refusal by ZAP, a mechanism mismatch); its subscriptions go again."""
        self.retry_at = math.inf
        refused, self.refused = self.refused, set()
        for endpoint in refused:
            try:
                sock.disconnect(endpoint)
            except zmq.ZMQError:
                pass  # already gone
            try:
                sock.connect(endpoint)
            except zmq.ZMQError:
                pass  # (an endpoint it took before)

    def forget(self, endpoint: str) -> None:
        """The socket no longer connects to ``endpoint``: no reconnect of it."""
        self.refused.discard(endpoint)
        self.streak.pop(endpoint, None)

    def close(self, sock: zmq.Socket[bytes] | None = None) -> None:
        """Stop watching ``sock`` (None: it is closed already) and close the monitor."""
        if sock is not None:
            try:
                sock.disable_monitor()
            except zmq.ZMQError:
                pass
        self.monitor.close(linger=0)


# libzmq's protocol error codes (EVENT_HANDSHAKE_FAILED_PROTOCOL's value) by value
_PROTOCOL_ERRORS = {
    int(getattr(zmq, n)): n.removeprefix("PROTOCOL_ERROR_").lower()
    for n in dir(zmq)
    if n.startswith("PROTOCOL_ERROR_")
}


def handshake_failure(event: int, value: int) -> tuple[str, bool] | None:
    """A failed handshake event in words, and whether it is definitive (a refusal or a
    mismatch: the node will not take this client as it is); None: not a failure that
    says anything (a handshake that timed out: a node stopped or busy)."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL and value in (errno.EAGAIN, errno.ETIMEDOUT):
        return None
    if event not in (
        zmq.EVENT_HANDSHAKE_FAILED_AUTH,
        zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
        zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
    ):
        return None
    return describe(event, value), event != zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL


def describe(event: int, value: int) -> str:
    """What a failed handshake event says, in words."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return f"authentication refused (ZAP status {value})"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if value == getattr(zmq, "PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH", -1):
            return "security mechanism mismatch (one side has a key, the other none)"
        return f"protocol error {_PROTOCOL_ERRORS.get(value, hex(value))}"
    return f"connection closed during the handshake ({zmq.strerror(value)})"


def close_seeing_handshake(
    sock: zmq.Socket[bytes], monitor: zmq.Socket[bytes], clock: Callable[[], float], wait: float
) -> bool:
    """Close ``sock`` and say whether its ``monitor`` (which must watch
    HANDSHAKE_SUCCEEDED and MONITOR_STOPPED) reports a handshake completed since it was
    last read: then what was queued on ``sock`` may have left; closes ``monitor`` too.

    libzmq reports a completed handshake before the connection takes the first message
    from the queue, and stops the monitor only once the closed socket is gone (its
    connections with it): no HANDSHAKE_SUCCEEDED before MONITOR_STOPPED means nothing
    queued left. Waits at most ``wait`` s (the stop takes a fraction of a millisecond);
    a monitor not stopped by then counts as a handshake (it may have left)."""
    sock.close(linger=0)
    left = False
    ends = clock() + wait
    try:
        while True:
            wait_ms = (ends - clock()) * 1000.0
            if wait_ms <= 0 or not monitor.poll(max(1, int(wait_ms))):
                return True  # not stopped in time: it may have connected
            event = recv_monitor_message(monitor, zmq.NOBLOCK)["event"]
            if event == zmq.EVENT_MONITOR_STOPPED:
                return left
            left = left or event == zmq.EVENT_HANDSHAKE_SUCCEEDED
    finally:
        monitor.close(linger=0)
