"""Creating and binding the node's ZeroMQ sockets, with the options we rely on.

Every limit here bounds memory a remote party can make the node hold: frame sizes are
capped per socket before anything is decoded (the client port takes client-sized
frames only, the peer port peer-sized ones), and queues are bounded in messages, so in
bytes by messages x frame cap.  Replies have no frame cap (a service list, a config
content): the reply ROUTERs refuse a send to a full connection at once
(``REPLY_OPTIONS``) and transport/replies.py holds large replies within a byte budget,
dropping and counting what does not fit.  With a :class:`CurveKeys`, every socket is a CURVE
server whose handshakes go to the node's ZAP handler (``transport/zap.py``) under a
domain naming the plane; ``ZAP_ENFORCE_DOMAIN`` makes a missing handler refuse
everyone instead of letting unknown keys in.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import zmq

from meshreg.errors import ConfigError
from meshreg.transport.replies import CLIENT_REPLY_HWM
from meshreg.wire import limits

NOTIFY_SNDHWM = 1_000  # messages per subscriber; then the runtime holds notifications
# for up to 0.5 s (runtime/notify_outbox), then a subscriber that far
# behind loses them (it sees the revision gap and re-pulls) rather than growing the node.  A
# delta above wire/notifications MAX_DELTA_NOTIFICATION_BYTES goes out as a sync (the
# watcher pulls), so one subscriber holds at most ~16 MiB here (review23 F1: 10,000
# deltas of 16 KiB metadata, 160 MB per connection that never read)
# ZMTP heartbeats on the notification port: a subscriber whose libzmq stops reading (its
# queue full: the application does not read) answers no PING and is disconnected, and
# what the node queued for it is freed; one that reads (or idles) answers at once
NOTIFY_HEARTBEAT_IVL = 5_000  # ms
NOTIFY_HEARTBEAT_TIMEOUT = 20_000  # ms
# ... and TCP's own bound for one that sends PINGs of its own while it reads nothing (its
# libzmq answers and pings from its I/O thread: review29 F1, 47 MB held per 3 such
# connections for good): data the subscriber's kernel has not taken for this long (its
# window stays shut) ends the connection (TCP_USER_TIMEOUT, zero-window probes included)
NOTIFY_TCP_MAXRT = 20_000  # ms
REPLICATION_SNDHWM = 100_000  # messages per peer; a burst of changes should not drop
ROUTER_SNDHWM = CLIENT_REPLY_HWM  # replies queued per client connection; then a send
# raises (ROUTER_MANDATORY) and the reply is dropped and counted (transport/replies.py,
# which also bounds the bytes of large replies)
PEER_SNDHWM = 100_000  # replies queued per peer connection (peers are authenticated nodes)
ROUTER_RCVHWM = 1_000  # requests queued per connection; then TCP backpressure, not memory
PEER_RCVHWM = 100_000  # requests queued per peer (peers are authenticated nodes)
# No limit on what a connecting peer socket (replication SUB, peer DEALER) queues for the
# loop: a full queue stops libzmq's input on that connection, its heartbeats then time it
# out, and the connection made again aborts the process when the loop reads on (libzmq
# issue 3937, open in 4.3.5: "Assertion failed: _input_stopped"; review37 F7, every node
# of a cluster loaded by one tenant's 56,000 registrations).  What a peer sends is
# bounded by its own send queue and the node's own calls; the loop catches up.
CONNECTING_PEER_RCVHWM = 0
# The reply ROUTERs (P, P+3): a send to a connection whose queue is full raises zmq.Again
# (to one that closed, EHOSTUNREACH) at once, never blocks: transport/replies.py drops
# and counts it
REPLY_OPTIONS = {zmq.ROUTER_MANDATORY: 1, zmq.SNDTIMEO: 0}
SUBSCRIPTION_FRAME_BYTES = 2048  # a subscription is one topic (<= ~460 bytes) + 1
REPLICATION_INBOUND_BYTES = 4096  # a peer SUB sends the empty subscription (and CURVE handshakes)
# bytes per frame a replication SUB takes from a peer's PUB: a body the decoder accepts
# (MAX_PEER_BODY_BYTES) and its kind, with room to spare; a batch of deltas is at most
# wire/batching's BATCH_BYTES (256 KiB), so it always fits, CURVE's framing included
REPLICATION_FRAME_BYTES = limits.MAX_PEER_BODY_BYTES + 1024

# ZMTP heartbeats on the peer plane (PeerLiveness): the shortest ping interval, and the
# shortest handshake allowance (a CURVE handshake waits for the peer's ZAP handler, which
# runs in its event loop)
MIN_HEARTBEAT_IVL = 0.1  # s
MIN_HANDSHAKE_IVL = 1.0  # s

CLIENT_DOMAIN = b"meshreg-client"  # ZAP domain: requests
NOTIFY_DOMAIN = b"meshreg-notify"  # ZAP domain: notifications (asked without keys too)
PEER_DOMAIN = b"meshreg-peer"  # ZAP domain: replication and peer requests


@dataclass(frozen=True)
class CurveKeys:
    """A node's (or client's) CURVE key pair, z85-encoded (40 bytes each)."""

    public: bytes
    secret: bytes


@dataclass(frozen=True)
class PeerLiveness:
    """How the peer-plane sockets (replication PUB/SUB on P+2, peer ROUTER/DEALERs on
    P+3) notice a connection that stopped carrying data, in libzmq's unit (ms).

    Without it a connection across a partition sits in TCP retransmission backoff (the
    RTO doubles: after an 8 s cut the next try can be ~5 s after the heal), and a
    reconnect attempt in the kernel's SYN backoff (1, 2, 4 s ...).  With it:

    * ``heartbeat_ivl``: both ends of every peer connection send a ZMTP 3.1 PING this
      often (the beacon interval, at least ``MIN_HEARTBEAT_IVL``);
    * ``heartbeat_timeout``: an end that receives nothing for this long after its PING
      closes the connection (half the peer timeout, so a stalled connection is replaced
      before the peer is taken for down); the connecting end (SUB, DEALER) reconnects
      on a fresh TCP connection with a fresh RTO.  What was queued on the closed
      connection is dropped: replication repairs the gap (a lost delta's seq), config
      records are resent, and a peer call or forward times out and falls back;
    * ``heartbeat_ttl``: carried in each PING: the other end closes after this long
      without traffic (ivl + timeout), also when it set no heartbeat itself;
    * ``connect_timeout``: a TCP connect unanswered this long is abandoned, and libzmq
      tries again after its reconnect interval (100 ms): after a heal the next SYN
      leaves within about this, not at the next SYN retransmission (so the round trip
      between nodes must be well under it: 1.5 s at the default peer timeout);
    * ``handshake_ivl``: the ZMTP/CURVE handshake must finish within this (the peer
      timeout, at least ``MIN_HANDSHAKE_IVL``; libzmq's default is 30 s).
    """

    heartbeat_ivl: int
    heartbeat_timeout: int
    heartbeat_ttl: int
    connect_timeout: int
    handshake_ivl: int

    @classmethod
    def from_timing(cls, peer_timeout: float, beacon_interval: float) -> PeerLiveness:
        """The settings for a node whose peers are down after ``peer_timeout`` s of
        silence and who beacon every ``beacon_interval`` s (both > 0)."""
        timeout = peer_timeout / 2
        ivl = max(MIN_HEARTBEAT_IVL, min(beacon_interval, timeout))
        return cls(
            heartbeat_ivl=round(ivl * 1000),
            heartbeat_timeout=round(timeout * 1000),
            # libzmq sends the TTL in tenths of a second: round up, never to 0 (none)
            heartbeat_ttl=-(-round((ivl + timeout) * 1000) // 100) * 100,
            connect_timeout=round(timeout * 1000),
            handshake_ivl=round(max(MIN_HANDSHAKE_IVL, peer_timeout) * 1000),
        )

    def accepting(self) -> dict[Any, int]:
        """Options of a bound peer socket (PUB, ROUTER)."""
        return {
            zmq.HEARTBEAT_IVL: self.heartbeat_ivl,
            zmq.HEARTBEAT_TIMEOUT: self.heartbeat_timeout,
            zmq.HEARTBEAT_TTL: self.heartbeat_ttl,
            zmq.HANDSHAKE_IVL: self.handshake_ivl,
        }

    def connecting(self) -> dict[Any, int]:
        """Options of a connecting peer socket (SUB, DEALER); set before ``connect``."""
        return {**self.accepting(), zmq.CONNECT_TIMEOUT: self.connect_timeout}

    def describe(self) -> str:
        return (
            f"heartbeat every {self.heartbeat_ivl / 1000:g}s, reconnect after "
            f"{self.heartbeat_timeout / 1000:g}s without an answer"
        )


def set_options(sock: zmq.Socket[Any], options: dict[Any, int]) -> None:
    for option, value in options.items():
        sock.setsockopt(option, value)


def curve_server(sock: zmq.Socket[Any], keys: CurveKeys | None, domain: bytes) -> None:
    """Make ``sock`` a CURVE server authenticated by ZAP under ``domain`` (no-op without keys)."""
    if keys is None:
        return
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
    sock.setsockopt(zmq.ZAP_DOMAIN, domain)
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)


def curve_client(
    sock: zmq.Socket[Any], keys: CurveKeys | None, server_public: bytes | None
) -> None:
    """Make ``sock`` a CURVE client of a server whose public key is ``server_public``."""
    if keys is None or server_public is None:
        return
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_public)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)


def tcp_endpoint(host: str, port: int) -> str:
    """``tcp://`` endpoint for host (resolved: libzmq binds IPs or interfaces)."""
    if ":" in host:  # IPv6 literal
        return f"tcp://[{host}]:{port}"
    try:
        ip = socket.gethostbyname(host)
    except OSError as exc:
        raise ConfigError(f"cannot resolve host {host!r}: {exc}") from None
    return f"tcp://{ip}:{port}"


def connect_endpoint(host: str, port: int) -> str:
    """``tcp://`` endpoint to connect to, the host left as it is: libzmq resolves a name
    in its I/O thread when it connects (and again when it reconnects), so a slow or
    failing DNS never blocks the node's loop nor raises there (an address learned from
    a peer may name anything)."""
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def _bind_server(
    ctx: zmq.Context[Any],
    kind: int,
    host: str,
    port: int,
    what: str,
    options: dict[Any, int],
    keys: CurveKeys | None,
    domain: bytes,
) -> zmq.Socket[Any]:
    """A socket of ``kind`` with ``options`` (LINGER 0 unless given), CURVE when
    ``keys``, bound on host:port; a bind failure says which socket and what to try."""
    sock: zmq.Socket[Any] = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    set_options(sock, options)
    curve_server(sock, keys, domain)
    if keys is None and options.get(zmq.ZAP_ENFORCE_DOMAIN):
        sock.setsockopt(zmq.ZAP_DOMAIN, domain)  # ZAP without CURVE (NULL): see the caller
    if ":" in host:
        sock.setsockopt(zmq.IPV6, 1)
    endpoint = tcp_endpoint(host, port)
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        hint = (
            "is another meshreg node (or program) using it? stop it or pick --port"
            if exc.errno == zmq.EADDRINUSE
            else "check --host"
        )
        raise ConfigError(
            f"cannot bind the {what} socket on {host}:{port}: {exc.strerror}; {hint}"
        ) from None
    return sock


def bind_request_socket(
    ctx: zmq.Context[Any],
    host: str,
    port: int,
    keys: CurveKeys | None = None,
    max_frame_bytes: int = limits.MAX_FRAME_BYTES,
) -> zmq.Socket[Any]:
    """ROUTER for client requests; oversized frames drop the sender's connection.

    Bodies above ``MAX_BODY_BYTES`` but under the frame cap still get a TOO_LARGE reply
    (``max_frame_bytes``: raised for config bodies, wire/config_peer ``config_frame_bytes``).
    """
    options = {
        zmq.MAXMSGSIZE: max_frame_bytes,
        zmq.SNDHWM: ROUTER_SNDHWM,
        zmq.RCVHWM: ROUTER_RCVHWM,
        **REPLY_OPTIONS,
    }
    return _bind_server(ctx, zmq.ROUTER, host, port, "request", options, keys, CLIENT_DOMAIN)


def bind_peer_socket(
    ctx: zmq.Context[Any],
    host: str,
    port: int,
    keys: CurveKeys | None = None,
    max_frame_bytes: int = limits.MAX_PEER_BODY_BYTES + 1024,
    liveness: PeerLiveness | None = None,
) -> zmq.Socket[Any]:
    """ROUTER for requests from peers: forwarded writes, digest pages, reconciles, and
    the config messages (``max_frame_bytes``: wire/config_peer ``config_peer_frame_bytes``;
    ``liveness``: ZMTP heartbeats, none without)."""
    options = {
        zmq.MAXMSGSIZE: max_frame_bytes,
        zmq.SNDHWM: PEER_SNDHWM,
        zmq.RCVHWM: PEER_RCVHWM,
        **REPLY_OPTIONS,
        **(liveness.accepting() if liveness else {}),
    }
    return _bind_server(ctx, zmq.ROUTER, host, port, "peer request", options, keys, PEER_DOMAIN)


def bind_notify_socket(
    ctx: zmq.Context[Any], host: str, port: int, keys: CurveKeys | None = None
) -> zmq.Socket[Any]:
    """XPUB for notifications, in manual mode: the runtime admits each subscription
    (valid topic, allowed by the ACL, under the cap) before it takes effect."""
    options = {
        zmq.LINGER: 200,
        zmq.SNDHWM: NOTIFY_SNDHWM,
        zmq.HEARTBEAT_IVL: NOTIFY_HEARTBEAT_IVL,
        zmq.HEARTBEAT_TIMEOUT: NOTIFY_HEARTBEAT_TIMEOUT,
        zmq.TCP_MAXRT: NOTIFY_TCP_MAXRT,
        zmq.MAXMSGSIZE: SUBSCRIPTION_FRAME_BYTES,
        zmq.XPUB_VERBOSER: 1,
        zmq.XPUB_MANUAL: 1,
        # a send a full subscriber queue refuses raises zmq.Again: the runtime holds it
        # (runtime/notify_outbox) rather than libzmq dropping it for that subscriber
        zmq.XPUB_NODROP: 1,
    }
    if keys is None:
        # Every handshake asks the ZAP handler even without CURVE (NULL), for the id it
        # gives each connection: a subscription message then says which connection sent
        # it, so the same connection's repeats are not counted twice (runtime/subscription_gate).
        # (Set before the bind: a listener takes the socket's options as they are then.)
        options = {**options, zmq.ZAP_ENFORCE_DOMAIN: 1}
    sock = _bind_server(ctx, zmq.XPUB, host, port, "notification", options, keys, NOTIFY_DOMAIN)
    return sock


def bind_replication_socket(
    ctx: zmq.Context[Any],
    host: str,
    port: int,
    keys: CurveKeys | None = None,
    liveness: PeerLiveness | None = None,
) -> zmq.Socket[Any]:
    """PUB for replication to peers (deltas, beacons, digests)."""
    options = {
        zmq.SNDHWM: REPLICATION_SNDHWM,
        zmq.MAXMSGSIZE: REPLICATION_INBOUND_BYTES,
        **(liveness.accepting() if liveness else {}),
    }
    return _bind_server(ctx, zmq.PUB, host, port, "replication", options, keys, PEER_DOMAIN)


def connect_replication_socket(
    ctx: zmq.Context[Any], keys: CurveKeys | None = None, liveness: PeerLiveness | None = None
) -> zmq.Socket[Any]:
    """SUB for the peers' replication PUBs (the caller connects it to each peer).

    Its frame cap drops a peer connection that sends a frame larger than any body the
    decoder would accept, before buffering it (``REPLICATION_FRAME_BYTES``).
    """
    sock: zmq.Socket[Any] = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, REPLICATION_FRAME_BYTES)
    sock.setsockopt(zmq.RCVHWM, CONNECTING_PEER_RCVHWM)
    if liveness is not None:
        set_options(sock, liveness.connecting())
    curve_client(sock, keys, keys.public if keys else None)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    return sock
