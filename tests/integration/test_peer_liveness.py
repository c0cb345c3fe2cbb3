"""Peer-plane connections that stop carrying data are replaced (transport/sockets.py
``PeerLiveness``): ZMTP heartbeats close them and the connecting side reconnects.

The stall is made by a TCP relay in the test that turns its established connections into
black holes (bytes read and thrown away both ways, the TCP connections left open), while
it relays new connections normally: like a partition whose established connections sit in
retransmission backoff after the heal.  Without heartbeats the sockets would wait on the
dead connection forever; with them a message sent after the stall arrives within about
the heartbeat timeout.  The options themselves are checked on a node's real sockets.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import zmq
from helpers import HOST, free_port_pair, wait_until

from meshreg.config import NodeConfig
from meshreg.core.distro import ClusterPolicy
from meshreg.runtime.node import NodeRuntime
from meshreg.transport.sockets import PeerLiveness
from meshreg.transport.zeromq import ZmqTransport


class BlackholeRelay:
    """Relays TCP connections from ``listen_port`` to ``target_port`` on 127.0.0.1;
    ``freeze()`` makes every connection relayed so far swallow its bytes both ways."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server((HOST, listen_port))
        self.listener.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ)
        self.pairs: dict[socket.socket, socket.socket] = {}
        self.frozen: set[socket.socket] = set()
        self.accepted = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def freeze(self) -> None:
        with self._lock:
            self.frozen.update(self.pairs)

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.sel.select(0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self.listener:
                    self._accept()
                    continue
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                with self._lock:
                    other = self.pairs.get(sock)
                    frozen = sock in self.frozen
                if not data or other is None:
                    self._drop(sock)
                elif not frozen:
                    try:
                        other.sendall(data)
                    except OSError:
                        self._drop(sock)

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except BlockingIOError:
            return
        upstream = socket.create_connection((HOST, self.target_port), timeout=2)
        with self._lock:
            self.accepted += 1
            self.pairs[client] = upstream
            self.pairs[upstream] = client
        for s in (client, upstream):
            s.setblocking(True)
            self.sel.register(s, selectors.EVENT_READ)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            other = self.pairs.pop(sock, None)
            if other is not None:
                self.pairs.pop(other, None)
        for s in (sock, other):
            if s is None:
                continue
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in list(self.pairs):
            s.close()
        self.listener.close()
        self.sel.close()


# peers down after 0.6 s: heartbeat every 0.1 s, a connection silent 0.3 s is replaced
LIVENESS = PeerLiveness.from_timing(peer_timeout=0.6, beacon_interval=0.1)
RECOVERY_BOUND = 3.0  # s; expected about timeout + reconnect, well under 1 s


@pytest.fixture
def transports() -> Iterator[tuple[ZmqTransport, ZmqTransport]]:
    a, b = ZmqTransport(peer_liveness=LIVENESS), ZmqTransport(peer_liveness=LIVENESS)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def relay_ports() -> Iterator[tuple[int, int, list[BlackholeRelay]]]:
    """(the real node's port P, the port Q its peer is told, the relays to start)."""
    relays: list[BlackholeRelay] = []
    yield free_port_pair(), free_port_pair(), relays
    for r in relays:
        r.close()


def test_the_liveness_settings_follow_the_peer_timing() -> None:
    lv = PeerLiveness.from_timing(peer_timeout=3.0, beacon_interval=0.5)
    assert (lv.heartbeat_ivl, lv.heartbeat_timeout, lv.heartbeat_ttl) == (500, 1500, 2000)
    assert (lv.connect_timeout, lv.handshake_ivl) == (1500, 3000)
    chaos = PeerLiveness.from_timing(peer_timeout=1.5, beacon_interval=0.25)
    assert (chaos.heartbeat_ivl, chaos.heartbeat_timeout, chaos.connect_timeout) == (
        250,
        750,
        750,
    )
    assert chaos.heartbeat_ttl == 1000 and chaos.handshake_ivl == 1500
    tiny = PeerLiveness.from_timing(peer_timeout=0.2, beacon_interval=0.01)
    assert tiny.heartbeat_ivl == 100  # never below MIN_HEARTBEAT_IVL
    assert tiny.heartbeat_ttl % 100 == 0 and tiny.heartbeat_ttl >= 200  # libzmq: 1/10 s
    assert tiny.handshake_ivl == 1000


def test_a_node_sets_the_options_on_every_peer_socket_from_its_config() -> None:
    port, other = free_port_pair(), free_port_pair()
    cfg = NodeConfig(
        host=HOST,
        port=port,
        peers=(f"{HOST}:{other}",),
        cluster=ClusterPolicy(peer_timeout=2.0, beacon_interval=0.4),
    )
    rt = NodeRuntime(cfg)
    rt.bind()
    try:
        want = PeerLiveness.from_timing(2.0, 0.4)
        assert (want.heartbeat_ivl, want.heartbeat_timeout) == (400, 1000)
        accepting = {"replication PUB": rt._repl_pub, "peer ROUTER": rt._peer_router}
        assert rt._peers is not None
        connecting = {
            "replication SUB": rt._repl_sub,
            "peer DEALER": rt._peers.dealer(f"{HOST}:{other}"),
        }
        for name, sock in {**accepting, **connecting}.items():
            assert isinstance(sock, zmq.Socket)
            got = {
                "ivl": sock.getsockopt(zmq.HEARTBEAT_IVL),
                "timeout": sock.getsockopt(zmq.HEARTBEAT_TIMEOUT),
                "ttl": sock.getsockopt(zmq.HEARTBEAT_TTL),
                "handshake": sock.getsockopt(zmq.HANDSHAKE_IVL),
            }
            assert got == {
                "ivl": want.heartbeat_ivl,
                "timeout": want.heartbeat_timeout,
                "ttl": want.heartbeat_ttl,
                "handshake": want.handshake_ivl,
            }, name
        for name, sock in connecting.items():
            assert isinstance(sock, zmq.Socket)
            assert sock.getsockopt(zmq.CONNECT_TIMEOUT) == want.connect_timeout, name
        # the client plane is left as it was (see docs/PROTOCOL.md 1.1)
        assert isinstance(rt._router, zmq.Socket)
        assert rt._router.getsockopt(zmq.HEARTBEAT_IVL) == 0
    finally:
        rt.close()


def test_a_stalled_replication_connection_is_replaced(
    transports: tuple[ZmqTransport, ZmqTransport],
    relay_ports: tuple[int, int, list[BlackholeRelay]],
) -> None:
    a, b = transports
    port, told, relays = relay_ports
    pub = a.bind_replication(HOST, port + 2)
    relay = BlackholeRelay(told + 2, port + 2)
    relays.append(relay)
    sub = b.connect_replication([f"{HOST}:{told}"])
    counter = iter(range(10**9))

    def heard_after(mark: int) -> bool:
        """Publish the next number; True once a number >= mark was received."""
        pub.send(str(next(counter)).encode())
        while sub.poll(10):
            if int(sub.recv()) >= mark:
                return True
        return False

    wait_until(lambda: heard_after(0), 5, what="the first message")
    relay.freeze()
    frozen_at, mark = time.monotonic(), next(counter) + 1
    wait_until(lambda: heard_after(mark), RECOVERY_BOUND, what="a message after the stall")
    assert relay.accepted >= 2  # the SUB reconnected
    assert time.monotonic() - frozen_at < RECOVERY_BOUND


def test_a_stalled_peer_request_connection_is_replaced(
    transports: tuple[ZmqTransport, ZmqTransport],
    relay_ports: tuple[int, int, list[BlackholeRelay]],
) -> None:
    a, b = transports
    port, told, relays = relay_ports
    router = a.bind_peer_requests(HOST, port + 3)
    relay = BlackholeRelay(told + 3, port + 3)
    relays.append(relay)
    dealer = b.connect_peer(f"{HOST}:{told}")
    counter = iter(range(10**9))

    def answered_after(mark: int) -> bool:
        """Send the next request (if the DEALER has a connection: ZMQ_IMMEDIATE), answer
        what arrived; True once a reply to a request >= mark came back."""
        try:
            dealer.send_multipart([b"", str(next(counter)).encode()], zmq.NOBLOCK)
        except zmq.Again:
            pass  # the stalled connection was closed; the new one is not up yet
        while router.poll(10):
            ident, empty, body = router.recv_multipart()
            router.send_multipart([ident, empty, body])
        while dealer.poll(10):
            if int(dealer.recv_multipart()[1]) >= mark:
                return True
        return False

    wait_until(lambda: answered_after(0), 5, what="the first reply")
    relay.freeze()
    frozen_at, mark = time.monotonic(), next(counter) + 1
    wait_until(lambda: answered_after(mark), RECOVERY_BOUND, what="a reply after the stall")
    assert relay.accepted >= 2  # the DEALER reconnected
    assert time.monotonic() - frozen_at < RECOVERY_BOUND
