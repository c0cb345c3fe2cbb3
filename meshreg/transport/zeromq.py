"""The production :class:`~meshreg.transport.base.Transport`: libzmq sockets.

The channels it hands out are the ``zmq.Socket`` objects themselves (the
runtime's hot path calls the backend's ``recv``/``send`` on them directly, see
:meth:`ZmqTransport.fast_io`).  Everything ZeroMQ-specific stays here and in
``transport/sockets.py``: the context, socket options and limits, CURVE on
every socket with the node's ZAP handler (``transport/zap.py``), which is bound
before any socket so no handshake goes unanswered, and the accept monitor of
the client port (``transport/descriptors.py``).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import zmq
import zmq.backend
import zmq.utils.z85

from meshreg.addresses import PEER_PORT_OFFSET, REPLICATION_PORT_OFFSET, split_node_address
from meshreg.core.distro import ClusterPolicy
from meshreg.errors import ConfigError
from meshreg.log_limiter import LogLimiter
from meshreg.transport.base import Poller, RecvFn, SendFn
from meshreg.transport.descriptors import AcceptMonitor
from meshreg.transport.handshakes import HandshakeWatch
from meshreg.transport.sockets import (
    CONNECTING_PEER_RCVHWM,
    CurveKeys,
    PeerLiveness,
    bind_notify_socket,
    bind_peer_socket,
    bind_replication_socket,
    bind_request_socket,
    connect_endpoint,
    connect_replication_socket,
    curve_client,
    set_options,
)
from meshreg.transport.zap import ZapHandler
from meshreg.wire import limits

PEER_HWM = 100_000  # messages queued to one peer before sends fail
RESET_BIND_ATTEMPTS = 100  # x 10 ms: binding the notification port again after a reset
MAX_POLL = 0.1  # s; longest poll, bounds how late a stop() is noticed


class ZmqTransport:
    """A node's ZeroMQ sockets, in one context; CURVE and ZAP when given ``keys``."""

    max_poll = MAX_POLL

    def __init__(
        self,
        keys: CurveKeys | None = None,
        client_name: Callable[[bytes], str | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        limiter: LogLimiter | None = None,
        request_frame_bytes: int = limits.MAX_FRAME_BYTES,
        peer_frame_bytes: int = limits.MAX_PEER_BODY_BYTES + 1024,
        peer_liveness: PeerLiveness | None = None,
    ) -> None:
        """``client_name``: the ACL client a raw CURVE key belongs to, or None (asked on
        every handshake, so an ACL reload applies); ``clock`` and ``limiter``: the ZAP
        handler's and the accept monitor's (rate-limited logging); ``*_frame_bytes``: the
        frame limits of the client and peer ROUTERs (raised for config bodies);
        ``peer_liveness``: ZMTP heartbeats and connect timeouts of the peer sockets
        (default: from the default peer timing; the node passes its own)."""
        if peer_liveness is None:
            default = ClusterPolicy()
            peer_liveness = PeerLiveness.from_timing(default.peer_timeout, default.beacon_interval)
        self.peer_liveness = peer_liveness
        self.request_frame_bytes = request_frame_bytes
        self._ipv6 = False  # this node binds an IPv6 address: its peers' names are IPv6 too
        self.peer_frame_bytes = peer_frame_bytes
        self.ctx: zmq.Context[Any] = zmq.Context()
        self._limiter = limiter or LogLimiter(logging.getLogger("meshreg.node"))
        self._accepts: AcceptMonitor | None = None
        self._clock = clock
        self.keys: CurveKeys | None = None
        self._notify: tuple[zmq.Socket[bytes], str] | None = None  # the XPUB, its endpoint
        self.notification_resets = 0
        # the handshakes of the sockets that connect to peers (review17 F3), by monitor
        # monitor -> (its watch, the socket, the peers' port offset, the port's name)
        self._handshakes: dict[Any, tuple[HandshakeWatch, Any, int, str]] = {}
        self._poller: zmq.Poller | None = None
        self.peer_handshakes_failed = 0
        try:
            # before the sockets: no handshake may go unanswered (the notification port
            # asks even without keys: its connections' ids, transport/zap)
            self._zap: ZapHandler | None = ZapHandler(
                self.ctx, None, client_name or (lambda key: None), clock
            )
            if keys is not None:
                self.secure(keys, client_name or (lambda key: None))
        except Exception:
            self.close()
            raise

    def secure(self, keys: CurveKeys, client_name: Callable[[bytes], str | None]) -> None:
        if self.keys is not None:
            if self.keys != keys:
                raise ValueError("this transport serves CURVE with other keys already")
            return
        assert self._zap is not None
        self._zap.node_public = zmq.utils.z85.decode(keys.public)
        self._zap.client_name = client_name
        self.keys = keys

    # -- listening channels ----------------------------------------------------------
    def bind_requests(self, host: str, port: int) -> zmq.Socket[bytes]:
        sock = bind_request_socket(self.ctx, host, port, self.keys, self.request_frame_bytes)
        self._ipv6 = ":" in host
        self._accepts = AcceptMonitor(sock, f"{host}:{port}", self._limiter, self.keys is not None)
        return sock

    def bind_notifications(self, host: str, port: int) -> zmq.Socket[bytes]:
        sock = bind_notify_socket(self.ctx, host, port, self.keys)
        self._notify = (sock, sock.getsockopt_string(zmq.LAST_ENDPOINT))
        return sock

    def reset_notifications(self) -> None:
        """Drop every notification connection: unbind the XPUB's endpoint (libzmq closes
        the connections accepted through it; their unsubscriptions follow as if they had
        closed) and bind it again at once.  Subscribers reconnect, handshake again (an
        ACL reload applies to them) and subscribe again, each answered with a sync."""
        if self._notify is None:
            return
        sock, endpoint = self._notify
        sock.unbind(endpoint)
        for attempt in range(RESET_BIND_ATTEMPTS):
            try:
                sock.bind(endpoint)
                break
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EADDRINUSE or attempt == RESET_BIND_ATTEMPTS - 1:
                    raise ConfigError(
                        f"cannot bind the notification socket on {endpoint} again after "
                        f"dropping its connections: {exc.strerror}; restart the node"
                    ) from None
                time.sleep(0.01)  # libzmq's I/O thread is still closing the listener
        self.notification_resets += 1

    def bind_replication(self, host: str, port: int) -> zmq.Socket[bytes]:
        return bind_replication_socket(self.ctx, host, port, self.keys, self.peer_liveness)

    def bind_peer_requests(self, host: str, port: int) -> zmq.Socket[bytes]:
        return bind_peer_socket(
            self.ctx, host, port, self.keys, self.peer_frame_bytes, self.peer_liveness
        )

    # -- connecting channels ---------------------------------------------------------
    def connect_replication(self, addresses: Sequence[str]) -> zmq.Socket[bytes]:
        sub = connect_replication_socket(self.ctx, self.keys, self.peer_liveness)
        self._watch_handshakes(sub, REPLICATION_PORT_OFFSET, "replication")
        for address in addresses:
            host, port = split_node_address(address)
            _ipv6_if_needed(sub, host, self._ipv6)
            # (resolved by libzmq, as every peer connection: review69 F5, an IPv6-only
            # name failed the start in gethostbyname)
            sub.connect(connect_endpoint(host, port + REPLICATION_PORT_OFFSET))
        return sub

    def add_replication_peer(self, channel: Any, address: str) -> None:
        host, port = split_node_address(address)
        _ipv6_if_needed(channel, host, self._ipv6)
        channel.connect(connect_endpoint(host, port + REPLICATION_PORT_OFFSET))

    def remove_replication_peer(self, channel: Any, address: str) -> None:
        host, port = split_node_address(address)
        endpoint = connect_endpoint(host, port + REPLICATION_PORT_OFFSET)
        for watch, sock, _, _ in self._handshakes.values():
            if sock is channel:
                watch.forget(endpoint)
        try:
            channel.disconnect(endpoint)
        except zmq.ZMQError:  # not connected (ENOENT): nothing to undo
            pass

    def connect_peer(self, address: str) -> zmq.Socket[bytes]:
        host, port = split_node_address(address)
        sock: zmq.Socket[bytes] = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # no live connection: a send fails at once
        sock.setsockopt(zmq.SNDHWM, PEER_HWM)
        sock.setsockopt(zmq.RCVHWM, CONNECTING_PEER_RCVHWM)  # (libzmq issue 3937)
        sock.setsockopt(zmq.MAXMSGSIZE, limits.MAX_PEER_REPLY_BYTES)
        set_options(sock, self.peer_liveness.connecting())
        keys = self.keys
        curve_client(sock, keys, keys.public if keys else None)
        self._watch_handshakes(sock, PEER_PORT_OFFSET, "peer")
        _ipv6_if_needed(sock, host, self._ipv6)
        sock.connect(connect_endpoint(host, port + PEER_PORT_OFFSET))  # (a name: resolved
        return sock  # by libzmq, never in the loop: a peer's address may name anything)

    def _watch_handshakes(self, sock: zmq.Socket[bytes], offset: int, port_name: str) -> None:
        """Report the failed handshakes of a socket connecting to peers' ``port_name``
        ports (P+``offset``): a peer whose security differs from ours fails every one,
        silently in libzmq."""
        watch = HandshakeWatch(sock)
        self._handshakes[watch.monitor] = (watch, sock, offset, port_name)
        if self._poller is not None:
            self._poller.register(watch.monitor, zmq.POLLIN)

    def _handshake_events(self, watched: tuple[HandshakeWatch, Any, int, str], now: float) -> None:
        watch, _, offset, port_name = watched
        failed = watch.drain(now)
        if failed is not None:
            self.peer_handshakes_failed += 1
        if failed is not None and watch.worth_saying():
            mine = "has a cluster key" if self.keys is not None else "runs without a key"
            again = (  # (review61 F3: "every 10 s at most" was said of libzmq's own retries)
                "this node connects again after 0.5 s, doubling up to every 10 s"
                if watch.definitive  # libzmq gave up on it
                else "libzmq connects again by itself, about every 0.1 s, each counted in "
                "stats.peer_handshakes_failed"
            )
            self._limiter.warning(
                ("peer-handshake", watch.endpoint, failed[:24]),  # a new cause is said
                now,
                "handshake with peer %s failed: %s; the two nodes' security differs (this "
                "node %s; a key from another cluster fails the same way): give every node "
                "the same cluster key file (--key) or none (docs/SECURITY.md); until then "
                "they do not hear each other (%s)",
                _peer_named(watch.endpoint, offset, port_name),
                failed,
                mine,
                again,
            )
        if watch.stopped:  # its socket was closed
            self._handshakes.pop(watch.monitor, None)
            if self._poller is not None:
                self._poller.unregister(watch.monitor)
            watch.close()

    # -- the loop --------------------------------------------------------------------
    def poller(self) -> Poller:
        poller = self._poller = zmq.Poller()
        if self._zap is not None:
            poller.register(self._zap.socket, zmq.POLLIN)
        if self._accepts is not None:
            self._accepts.attach(poller)
        for monitor in self._handshakes:
            poller.register(monitor, zmq.POLLIN)
        return cast(Poller, poller)  # pyzmq types poll(timeout) as int ms; it takes floats

    def fast_io(self) -> tuple[RecvFn, SendFn]:
        # the backend's methods, past the sugar's wrappers (pyzmq's helpers cost more
        # than all of meshreg's own work on a beat)
        return zmq.backend.Socket.recv, zmq.backend.Socket.send

    def service(self, channel: Any, now: float) -> bool:
        zap, accepts = self._zap, self._accepts
        if zap is not None and channel is zap.socket:
            zap.drain()
            return True
        if accepts is not None and channel is accepts.socket:
            accepts.drain(now)
            return True
        watched = self._handshakes.get(channel)
        if watched is not None:
            self._handshake_events(watched, now)
            return True
        return False

    def tick(self, now: float) -> None:
        if self._accepts is not None:
            self._accepts.tick(now)
        for watch, sock, _, _ in self._handshakes.values():
            if now >= watch.retry_at:  # libzmq gives up on some refusals: try again
                watch.reconnect(sock)

    def stats(self) -> dict[str, Any]:
        zap, accepts = self._zap, self._accepts
        return {
            # refused by the ZAP handler, or failed before it was asked (no CURVE, another
            # server key: the accept monitor, transport/descriptors)
            "handshakes_refused": (zap.refused if zap is not None else 0)
            + (accepts.handshakes_failed if accepts is not None else 0),
            "handshakes_unfinished": accepts.handshakes_unfinished if accepts is not None else 0,
            "accept_failures": accepts.failures if accepts is not None else 0,
            "peer_handshakes_failed": self.peer_handshakes_failed,
        }

    def close(self) -> None:
        for watch, _, _, _ in self._handshakes.values():
            watch.close()
        self._handshakes.clear()
        if self._accepts is not None:
            self._accepts.close()
            self._accepts = None
        if self._zap is not None:
            self._zap.close()
            self._zap = None
        if self.ctx is not None:
            self.ctx.destroy(linger=200)  # bounded: never wait on a stuck peer
            self.ctx = None  # type: ignore[assignment]


def _ipv6_if_needed(sock: zmq.Socket[bytes], host: str, node_ipv6: bool) -> None:
    """Let ``sock``'s next connect reach an IPv6 address: libzmq refuses one on a socket
    without ``IPV6`` and retries for ever, silently (an IPv6 cluster never formed).  Set
    for an IPv6 address, and for a name when this node binds an IPv6 address (its peers'
    names resolve to IPv6: review69 F5), not otherwise: with it, libzmq resolves every
    host to IPv6 (IPv4 ones mapped), which a kernel without IPv6 cannot connect to."""
    if ":" in host or (node_ipv6 and not _is_ipv4(host)):
        sock.setsockopt(zmq.IPV6, 1)


def _is_ipv4(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 4
    except ValueError:
        return False  # a name


def _peer_named(endpoint: str, offset: int, port_name: str) -> str:
    """``tcp://host:P+offset`` -> ``host:P (its <port_name> port P+offset)``."""
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    if not port.isdigit() or int(port) <= offset:
        return endpoint or "?"
    return f"{host}:{int(port) - offset} (its {port_name} port {port})"


__all__ = ["MAX_POLL", "PEER_HWM", "ZmqTransport"]
