"""The node's ZAP handler: who may complete a CURVE handshake, and as whom.

libzmq asks it (RFC 27, ZAP over ``inproc://zeromq.zap.01``) for every CURVE handshake
on a socket with a ZAP domain; the answer's user id travels on every message of that
connection as the ``User-Id`` property, which is how the runtime knows who sent a
request or a subscription.  The handler is polled by the node's own loop (one thread
owns every socket), so a handshake waits at most one loop turn.

Rules: the peer domain admits only the cluster key (user id ``node``); the client
and notification domains admit the cluster key too (an operator holding it is an
administrator) and every key of the ACL (user id: the key itself in z85, so a key
removed from the ACL loses its access on the next request, not the next connection).
Anything else is refused with status 400, counted and logged (rate-limited).

The notification port (an XPUB) asks for every connection, with or without keys
(NULL, admitted when the node has no keys), and its user id ends in ``;N``, a number
unique to the connection: libzmq tells which connection sent a subscription only by
this property, and the subscription gate must not count one connection's repeats of a
topic twice (runtime/subscription_gate).  ``connection_user`` splits it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import zmq
import zmq.utils.z85

from meshreg.log_limiter import LogLimiter
from meshreg.transport.sockets import CLIENT_DOMAIN, NOTIFY_DOMAIN, PEER_DOMAIN

log = logging.getLogger("meshreg.node")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
NODE_USER = b"node"
MAX_ZAP_BATCH = 256  # handshakes answered per loop turn


def admit(
    node_public: bytes | None,
    client_name: Callable[[bytes], str | None],
    domain: bytes,
    mechanism: bytes,
    key: bytes,
) -> bytes | None:
    """The rules above: the user id a handshake gets (before its ``;N``), or None to
    refuse it.  ``node_public`` None: a node without keys (only its notification port
    asks, with NULL).

    A function of its own so the in-memory transport (the seeded simulation) admits
    connections by the same rules as libzmq's handshakes here."""
    if node_public is None:
        return b"" if domain == NOTIFY_DOMAIN and mechanism == b"NULL" else None
    if mechanism != b"CURVE" or len(key) != 32:
        return None
    if key == node_public:
        return NODE_USER
    if domain in (CLIENT_DOMAIN, NOTIFY_DOMAIN) and client_name(key) is not None:
        return zmq.utils.z85.encode(key)
    return None


def connection_user(user_id: str) -> tuple[str, str]:
    """(user, connection) of a notification connection's ``User-Id`` (``user;N``); a
    user id without ``;`` (another port's) is the user, with no connection id.  ``;`` is
    not a z85 character, so a key never contains it."""
    user, sep, conn = user_id.rpartition(";")
    return (user, conn) if sep else (user_id, "")


class ZapHandler:
    """Answers ZAP requests for one node's context."""

    def __init__(
        self,
        ctx: zmq.Context[Any],
        node_public: bytes | None,
        client_name: Callable[[bytes], str | None],
        clock: Callable[[], float],
    ) -> None:
        """``node_public``: the cluster's public key (32 raw bytes; None: a node without
        keys, which asks only for its notification connections' ids; ``secure`` sets it
        later); ``client_name``: the ACL client a raw key belongs to, or None (looked up
        on every handshake, so a reload applies; a refusal's log line names it)."""
        self.node_public = node_public
        self.client_name = client_name
        self.clock = clock
        self.refused = 0
        self.connections = 0  # notification connections numbered so far
        self._limiter = LogLimiter(log)
        self.socket: zmq.Socket[bytes] = ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(ZAP_ENDPOINT)

    def decide(self, domain: bytes, mechanism: bytes, key: bytes) -> bytes | None:
        """The user id for a handshake, or None to refuse it."""
        return admit(self.node_public, self.client_name, domain, mechanism, key)

    def drain(self) -> None:
        sock = self.socket
        for _ in range(MAX_ZAP_BATCH):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            # [routing id, b"", version, request id, domain, address, identity, mechanism, creds...]
            if len(frames) < 8 or frames[1] != b"" or frames[2] != b"1.0":
                continue
            domain, address, mechanism = frames[4], frames[5], frames[7]
            key = frames[8] if len(frames) > 8 else b""
            user = self.decide(domain, mechanism, key)
            if user is not None and domain == NOTIFY_DOMAIN:
                self.connections += 1
                user += b";%d" % self.connections
            if user is None:
                self.refused += 1
                self._log_refused(domain, address, mechanism, key)
                reply = [frames[0], b"", b"1.0", frames[3], b"400", b"unknown key", b"", b""]
            else:
                reply = [frames[0], b"", b"1.0", frames[3], b"200", b"OK", user, b""]
            sock.send_multipart(reply)

    def _log_refused(self, domain: bytes, address: bytes, mechanism: bytes, key: bytes) -> None:
        """One rate-limited line: which plane, from where, which key, and why."""
        plane = "peer" if domain == PEER_DOMAIN else "client"
        if mechanism != b"CURVE" or len(key) != 32:
            shown, why = "missing", "not CURVE with a key (this node requires CURVE keys)"
        else:
            shown = zmq.utils.z85.encode(key).decode()
            client = self.client_name(key)
            if plane == "client":
                why = (
                    "in neither the ACL nor the cluster key (add it to the ACL file "
                    "and send the node SIGHUP)"
                )
            elif client is not None:
                why = (
                    f"ACL client '{client}', not the cluster key: client keys connect "
                    "to the client ports (P, P+1), never to the peer ports (P+2, P+3)"
                )
            else:
                why = "not the cluster key (every node of a cluster needs the same key)"
        self._limiter.warning(
            ("zap", plane),
            self.clock(),
            "refused a %s connection from %s: key %s is %s",
            plane,
            address.decode(errors="replace"),
            shown,
            why,
        )

    def close(self) -> None:
        self.socket.close(linger=0)
