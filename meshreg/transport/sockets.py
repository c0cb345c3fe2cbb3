"""Creating and binding the node's ZeroMQ sockets, with the options we rely on."""

from __future__ import annotations

import socket

import zmq

from meshreg.errors import ConfigError
from meshreg.wire import limits

NOTIFY_SNDHWM = 100_000  # messages; a burst of changes should not drop at the PUB
ROUTER_HWM = 100_000  # messages; in-flight requests/replies per peer before dropping


def tcp_endpoint(host: str, port: int) -> str:
    """``tcp://`` endpoint for host (resolved: libzmq binds IPs or interfaces)."""
    if ":" in host:  # IPv6 literal
        return f"tcp://[{host}]:{port}"
    try:
        ip = socket.gethostbyname(host)
    except OSError as exc:
        raise ConfigError(f"cannot resolve host {host!r}: {exc}") from None
    return f"tcp://{ip}:{port}"


def _bind(sock: zmq.Socket, host: str, port: int, what: str) -> None:
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


def bind_request_socket(ctx: zmq.Context, host: str, port: int) -> zmq.Socket:
    """ROUTER for client requests; oversized frames drop the sender's connection."""
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, limits.MAX_FRAME_BYTES)
    sock.setsockopt(zmq.SNDHWM, ROUTER_HWM)
    sock.setsockopt(zmq.RCVHWM, ROUTER_HWM)
    if ":" in host:
        sock.setsockopt(zmq.IPV6, 1)
    _bind(sock, host, port, "request")
    return sock


def bind_notify_socket(ctx: zmq.Context, host: str, port: int) -> zmq.Socket:
    """XPUB for notifications; verbose so every (un)subscription reaches us."""
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 200)
    sock.setsockopt(zmq.SNDHWM, NOTIFY_SNDHWM)
    sock.setsockopt(zmq.MAXMSGSIZE, 64 * 1024)  # subscriptions are short topics
    sock.setsockopt(zmq.XPUB_VERBOSER, 1)
    if ":" in host:
        sock.setsockopt(zmq.IPV6, 1)
    _bind(sock, host, port, "notification")
    return sock


def bind_replication_socket(ctx: zmq.Context, host: str, port: int) -> zmq.Socket:
    """PUB for replication to peers (deltas, beacons, digests)."""
    sock = ctx.socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, NOTIFY_SNDHWM)
    if ":" in host:
        sock.setsockopt(zmq.IPV6, 1)
    _bind(sock, host, port, "replication")
    return sock
