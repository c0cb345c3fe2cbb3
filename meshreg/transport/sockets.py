"""Creating and binding the node's ZeroMQ sockets, with the options we rely on.

Every limit here bounds memory a remote party can make the node hold: frame sizes are
capped per socket before anything is decoded (the client port takes client-sized
frames only, the peer port peer-sized ones), and queues are bounded in messages, so in
bytes by messages x frame cap.  With a :class:`CurveKeys`, every socket is a CURVE
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
from meshreg.wire import limits

NOTIFY_SNDHWM = 10_000  # messages per subscriber; a subscriber that far behind loses
# notifications (it sees the revision gap and re-pulls) rather than growing the node
REPLICATION_SNDHWM = 100_000  # messages per peer; a burst of changes should not drop
ROUTER_SNDHWM = 100_000  # replies queued per client connection before dropping
ROUTER_RCVHWM = 1_000  # requests queued per connection; then TCP backpressure, not memory
PEER_RCVHWM = 100_000  # requests queued per peer (peers are authenticated nodes)
SUBSCRIPTION_FRAME_BYTES = 2048  # a subscription is one topic (<= ~460 bytes) + 1
REPLICATION_INBOUND_BYTES = 4096  # a peer SUB sends the empty subscription (and CURVE handshakes)
# bytes per frame a replication SUB takes from a peer's PUB: a body the decoder accepts
# (MAX_PEER_BODY_BYTES) and its kind, with room to spare; a batch of deltas is at most
# wire/batching's BATCH_BYTES (256 KiB), so it always fits, CURVE's framing included
REPLICATION_FRAME_BYTES = limits.MAX_PEER_BODY_BYTES + 1024

CLIENT_DOMAIN = b"meshreg-client"  # ZAP domain: requests and notifications
PEER_DOMAIN = b"meshreg-peer"  # ZAP domain: replication and peer requests


@dataclass(frozen=True)
class CurveKeys:
    """A node's (or client's) CURVE key pair, z85-encoded (40 bytes each)."""

    public: bytes
    secret: bytes


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
    for option, value in options.items():
        sock.setsockopt(option, value)
    curve_server(sock, keys, domain)
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
    }
    return _bind_server(ctx, zmq.ROUTER, host, port, "request", options, keys, CLIENT_DOMAIN)


def bind_peer_socket(
    ctx: zmq.Context[Any],
    host: str,
    port: int,
    keys: CurveKeys | None = None,
    max_frame_bytes: int = limits.MAX_PEER_BODY_BYTES + 1024,
) -> zmq.Socket[Any]:
    """ROUTER for requests from peers: forwarded writes, digest pages, reconciles, and
    the config messages (``max_frame_bytes``: wire/config_peer ``config_peer_frame_bytes``)."""
    options = {
        zmq.MAXMSGSIZE: max_frame_bytes,
        zmq.SNDHWM: ROUTER_SNDHWM,
        zmq.RCVHWM: PEER_RCVHWM,
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
        zmq.MAXMSGSIZE: SUBSCRIPTION_FRAME_BYTES,
        zmq.XPUB_VERBOSER: 1,
        zmq.XPUB_MANUAL: 1,
    }
    return _bind_server(ctx, zmq.XPUB, host, port, "notification", options, keys, CLIENT_DOMAIN)


def bind_replication_socket(
    ctx: zmq.Context[Any], host: str, port: int, keys: CurveKeys | None = None
) -> zmq.Socket[Any]:
    """PUB for replication to peers (deltas, beacons, digests)."""
    options = {zmq.SNDHWM: REPLICATION_SNDHWM, zmq.MAXMSGSIZE: REPLICATION_INBOUND_BYTES}
    return _bind_server(ctx, zmq.PUB, host, port, "replication", options, keys, PEER_DOMAIN)


def connect_replication_socket(
    ctx: zmq.Context[Any], keys: CurveKeys | None = None
) -> zmq.Socket[Any]:
    """SUB for the peers' replication PUBs (the caller connects it to each peer).

    Its frame cap drops a peer connection that sends a frame larger than any body the
    decoder would accept, before buffering it (``REPLICATION_FRAME_BYTES``).
    """
    sock: zmq.Socket[Any] = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, REPLICATION_FRAME_BYTES)
    curve_client(sock, keys, keys.public if keys else None)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    return sock
