"""An in-memory :class:`~meshreg.transport.base.Transport` on a simulated, seeded network.

Theory of operation
-------------------
* **Clock and scheduler.**  :class:`MemoryNetwork` holds one float (``now``)
  and a priority queue of timed events ``(time, sequence, callback)``;
  ``run_until(t)`` pops them in order.  The sequence number breaks ties, so a
  run is a pure function of the seed: every random choice comes from
  ``net.rng`` (``random.Random("net-<seed>")``) and nothing iterates a set of
  strings.  :meth:`MemoryNetwork.clock` is the clock a node runtime is given.
* **Transports and channels.**  One :class:`MemoryTransport` per node
  incarnation, named by its node id.  Its channels behave as the ZeroMQ
  sockets the runtime uses: a ROUTER prepends the sender's identity and routes
  a reply by it (an unknown or gone identity: dropped), a DEALER to a node
  with nothing bound there raises ``zmq.Again`` at once (ZMQ_IMMEDIATE: a
  dead owner costs no time-out), a PUB sends to every connected SUB (an XPUB
  to those with an admitted topic, see :class:`MemPub`), a
  SUB connects to endpoints bound now or later.  Endpoints are ``host:port``
  strings.  ``close()`` (a crash) unbinds everything: what is in flight to or
  from a closed channel is dropped on arrival (its TCP connection is gone).
* **Links.**  Every message is one transmission: lost with probability
  ``loss`` (and ``oneway_loss[(a, b)]`` from transport ``a`` to ``b``), else
  delivered after a random delay in [min_delay, max_delay] (a ``slow_prob``
  of them up to ``slow_max``): messages overtake each other.  ``groups``
  partitions the named transports (checked on arrival, so a partition also
  eats what was in flight); clients (``client()``) reach every node.
  ``drop`` (a callable, optional) may lose any message by its endpoints and
  frames: the tests' targeted faults.
* **Pauses** (SIGSTOP, a VM freeze): ``pause(name)`` holds everything that
  arrives for that transport, in order, until ``release(name)`` hands the
  held deliveries back to be put in with :meth:`deliver_held`.
* **Input.**  A delivery into a channel calls its transport's ``on_input``
  (the simulation runs one loop turn of that node's runtime there); the
  poller never blocks: a channel is ready when it holds a message.
* **CURVE** (a node with a key, :meth:`MemoryTransport.secure`): each channel the
  node binds admits a connection as libzmq's handshake and the node's ZAP handler
  do, by the same rule (``transport/zap.admit``, per plane: client or peer domain):
  the first message of a connection decides; a refused connection gets nothing
  through, either way (counted as ``handshakes_refused``); an admitted one's
  messages carry the ``User-Id`` (``frame.get("User-Id")``) the runtime reads.  A
  connecting channel presents ``curve_key`` (raw public key; None: no CURVE).  The
  client side's check of the server key and the encryption itself are not modelled.
* Randomness is drawn only when a knob is in use, so adding a knob does not
  change the runs of seeds that do not use it.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from meshreg.addresses import PEER_PORT_OFFSET, REPLICATION_PORT_OFFSET, split_node_address
from meshreg.errors import ConfigError
from meshreg.security.keys import z85_to_raw
from meshreg.transport.base import RecvFn, SendFn
from meshreg.transport.sockets import CLIENT_DOMAIN, NOTIFY_DOMAIN, PEER_DOMAIN, CurveKeys
from meshreg.transport.zap import admit

_SNDMORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)
_EVENTS = int(zmq.EVENTS)
_SUBSCRIBE, _UNSUBSCRIBE = int(zmq.SUBSCRIBE), int(zmq.UNSUBSCRIBE)
_POLLIN = int(zmq.POLLIN)
Frames = list[bytes]


class _Empty(zmq.Again):
    """``zmq.Again`` without its ``strerror`` look-up (raised on every empty poll)."""

    errno = zmq.EAGAIN
    strerror = "Resource temporarily unavailable"

    def __init__(self) -> None:
        pass


class MemFrame(bytes):
    """A received frame (``recv(copy=False)``): bytes with ``more`` and ``bytes``."""

    more: bool = False
    user: str = ""  # the connection's CURVE user id ("": none)

    @property
    def bytes(self) -> bytes:
        return self[:]

    def get(self, prop: str) -> str:
        """Message properties: ``User-Id`` under CURVE; the rest read as empty."""
        return self.user if prop == "User-Id" else ""


class CurveGuard:
    """A bound channel's admission of connections, under CURVE (the ZAP handler's role).

    The first message of a connection (a channel that sends here, or subscribes)
    decides by :func:`~meshreg.transport.zap.admit`; the answer holds for the
    connection's life, as a handshake's does."""

    def __init__(self, transport: MemoryTransport, domain: bytes) -> None:
        self.transport = transport
        self.domain = domain
        self._users: dict[MemChannel, str | None] = {}

    def user(self, src: MemChannel | None) -> str | None:
        """The user id of ``src``'s connection, or None if it is refused."""
        if src is None:
            return None
        users = self._users
        if src in users:
            return users[src]
        t, key = self.transport, src.curve_key
        assert t.node_public is not None and t.client_name is not None
        if not key:  # no CURVE (NULL): refused by a CURVE server
            got = admit(t.node_public, t.client_name, self.domain, b"NULL", b"")
        else:
            got = admit(t.node_public, t.client_name, self.domain, b"CURVE", key)
        user = None if got is None else got.decode()
        if user is None:
            t.refused += 1
        users[src] = user
        return user

    def forget(self) -> None:
        """Every connection handshakes again (its next message is admitted anew)."""
        self._users.clear()


class MemChannel:
    """A socket-like channel (see ``transport/base.Channel``)."""

    kind = "?"
    curve_key: bytes | None = None  # the raw public key it connects with (None: no CURVE)
    guard: CurveGuard | None = None  # bound by a node with a key: who may connect

    def __init__(self, net: MemoryNetwork, owner: MemoryTransport | None) -> None:
        self.net = net
        self.owner = owner
        self.name = owner.name if owner is not None else None
        self.closed = False
        self.endpoint = ""
        self._inbox: deque[Frames] = deque()
        self._inbox_src: deque[MemChannel | None] = deque()  # each inbox message's sender
        self._src: MemChannel | None = None  # the sender of the message being read
        self._current: deque[bytes] = deque()  # the rest of a message being read by recv()
        self._out: Frames = []  # parts sent with SNDMORE

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name} {self.endpoint}>"

    @property
    def ready(self) -> bool:
        return bool(self._inbox or self._current)

    # -- receiving -------------------------------------------------------------------
    def recv(self, flags: int = 0, copy: bool = True) -> Any:
        current = self._current
        if not current:
            if not self._inbox:
                raise _Empty()
            current.extend(self._inbox.popleft())
            self._src = self._inbox_src.popleft()
        part = current.popleft()
        if copy:
            return part
        frame = MemFrame(part)
        frame.more = bool(current)
        if self.guard is not None:
            frame.user = self.guard.user(self._src) or ""
        return frame

    def recv_multipart(self, flags: int = 0, copy: bool = True) -> Frames:
        if self._current:
            parts = list(self._current)
            self._current.clear()
            return parts
        if not self._inbox:
            raise _Empty()
        self._src = self._inbox_src.popleft()
        return list(self._inbox.popleft())

    def get(self, option: int) -> int:
        """``getsockopt``: only ``RCVMORE`` (the secure drain reads a message that way)
        and ``EVENTS`` (POLLIN: a message waits; the node's loop asks mid-drain)."""
        if option == _EVENTS:
            return _POLLIN if self._inbox or self._current else 0
        if option != _RCVMORE:
            raise zmq.ZMQError(zmq.EINVAL, f"option {option} is not simulated")
        return int(bool(self._current))

    def _accept(self, src: MemChannel | None, frames: Frames) -> None:
        """Put a message in the inbox."""
        self._inbox.append(frames)
        self._inbox_src.append(src)

    def _deliver(self, src: MemChannel | None, frames: Frames) -> None:
        """Put a message in the inbox and wake the owner."""
        self._accept(src, frames)
        owner = self.owner
        if owner is not None and owner.on_input is not None:
            owner.on_input()

    # -- sending ---------------------------------------------------------------------
    def send(self, data: Any, flags: int = 0) -> None:
        self._out.append(bytes(data))
        if not flags & _SNDMORE:
            frames, self._out = self._out, []
            self.send_multipart(frames)

    def send_multipart(self, msg_parts: Sequence[Any], flags: int = 0) -> None:
        raise zmq.ZMQError(zmq.ENOTSUP, f"cannot send on a {self.kind}")

    def setsockopt(self, option: int, optval: Any) -> None:
        pass  # no options simulated (an XPUB keeps its admitted topics: MemPub)

    def connect(self, addr: str) -> None:
        raise zmq.ZMQError(zmq.ENOTSUP, f"cannot connect a {self.kind}")

    def close(self, linger: int | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.net._unbind(self)


class MemRouter(MemChannel):
    kind = "ROUTER"

    def __init__(self, net: MemoryNetwork, owner: MemoryTransport | None) -> None:
        super().__init__(net, owner)
        self._ids: dict[MemChannel, bytes] = {}  # peer channel -> routing id
        self._peers: dict[bytes, MemChannel] = {}  # routing id -> peer channel

    def _accept(self, src: MemChannel | None, frames: Frames) -> None:
        assert src is not None
        ident = self._ids.get(src)
        if ident is None:  # a new connection: a new routing id, as libzmq makes
            ident = b"\x00" + self.net.next_identity().to_bytes(4, "big")
            self._ids[src] = ident
            self._peers[ident] = src
        self._inbox.append([ident, *frames])
        self._inbox_src.append(src)

    def send_multipart(self, msg_parts: Sequence[Any], flags: int = 0) -> None:
        peer = self._peers.get(bytes(msg_parts[0]))
        if peer is None or peer.closed:
            return  # as a ROUTER does: an unroutable reply is dropped
        self.net.transmit(self, peer, [bytes(p) for p in msg_parts[1:]])


class MemDealer(MemChannel):
    kind = "DEALER"

    def connect(self, addr: str) -> None:
        self.endpoint = addr

    def send_multipart(self, msg_parts: Sequence[Any], flags: int = 0) -> None:
        target = self.net.bound.get(self.endpoint)
        if target is None:
            raise _Empty()  # ZMQ_IMMEDIATE: no live connection, nothing queued
        self.net.transmit(self, target, [bytes(p) for p in msg_parts])


class MemPub(MemChannel):
    """A PUB (replication: to every connected SUB) or, as ``kind = "XPUB"``, the manual
    XPUB of notifications: a subscriber gets the messages whose first frame starts with
    a topic the runtime admitted for it (``setsockopt(SUBSCRIBE, topic)`` right after
    reading its subscription message, as libzmq applies it to that message's pipe)."""

    kind = "PUB"

    def __init__(self, net: MemoryNetwork, owner: MemoryTransport | None) -> None:
        super().__init__(net, owner)
        self._topics: dict[MemChannel, set[bytes]] = {}  # XPUB: subscriber -> admitted
        self._connections: dict[MemChannel, int] = {}  # XPUB: subscriber -> connection id
        self.generation = 0  # XPUB: connections dropped (reset) so many times

    def recv(self, flags: int = 0, copy: bool = True) -> Any:
        """As a channel's; an XPUB's frames carry ``User-Id`` ``user;N``, N the
        connection's number, as the ZAP handler gives it (transport/zap)."""
        frame = super().recv(flags, copy)
        if self.kind == "XPUB" and not copy:
            ids = self._connections
            conn = ids.get(self._src)  # type: ignore[arg-type]
            if conn is None:
                conn = ids[self._src] = len(ids) + 1  # type: ignore[index]
            frame.user = f"{frame.user};{conn}"
        return frame

    def reset(self) -> None:
        """Drop every subscriber's connection: what it was admitted, its id, its
        handshake (they subscribe again: ``SimSubscriber.reconnect``)."""
        self._topics.clear()
        self._connections.clear()
        if self.guard is not None:
            self.guard.forget()
        self.generation += 1

    def setsockopt(self, option: int, optval: Any) -> None:
        src = self._src
        if self.kind != "XPUB" or src is None:
            return
        if option == _SUBSCRIBE:
            self._topics.setdefault(src, set()).add(bytes(optval))
        elif option == _UNSUBSCRIBE:
            self._topics.get(src, set()).discard(bytes(optval))

    def send_multipart(self, msg_parts: Sequence[Any], flags: int = 0) -> None:
        frames = [bytes(p) for p in msg_parts]
        net = self.net
        if self.kind == "PUB":  # replication (not notifications): counted by kind
            net.count(f"pub_{frames[0].decode(errors='replace')}")
        subs = net.subscribers.get(self.endpoint)
        if not subs:
            return
        if any(s.closed for s in subs):
            subs[:] = [s for s in subs if not s.closed]
        guard, topics = self.guard, self._topics if self.kind == "XPUB" else None
        head = frames[0]
        for sub in subs:
            if sub.owner is self.owner or (guard is not None and guard.user(sub) is None):
                continue
            if topics is not None and not any(head.startswith(t) for t in topics.get(sub, ())):
                continue  # not subscribed (or not admitted) to this topic
            net.transmit(self, sub, frames)


class MemSub(MemChannel):
    kind = "SUB"

    def connect(self, addr: str) -> None:
        self.net.subscribers.setdefault(addr, []).append(self)

    def disconnect(self, addr: str) -> None:
        # libzmq (issue 2163) aborts the process when a SUB disconnected from an
        # endpoint still queues a multipart message from it: so does the simulation
        if any(src is not None and src.endpoint == addr for src in self._inbox_src):
            raise AssertionError(
                f"SUB disconnected from {addr} with a message from it queued: libzmq "
                "aborts the process here ('!_more', src/fq.cpp, issue 2163)"
            )
        subs = self.net.subscribers.get(addr, [])
        if self in subs:
            subs.remove(self)


class MemClient(MemChannel):
    """A simulated client's DEALER: replies go to ``on_reply`` as they arrive."""

    kind = "CLIENT"

    def __init__(
        self, net: MemoryNetwork, on_reply: Callable[[Frames], None], key: bytes | None = None
    ) -> None:
        super().__init__(net, None)
        self.on_reply = on_reply
        self.curve_key = key

    def connect(self, addr: str) -> None:
        self.endpoint = addr

    def send_multipart(self, msg_parts: Sequence[Any], flags: int = 0) -> None:
        target = self.net.bound.get(self.endpoint)
        if target is None:
            self.net.count("dropped_dst_down")
            return  # not IMMEDIATE: it would wait for a connection; the client times out
        self.net.transmit(self, target, [bytes(p) for p in msg_parts])

    def _deliver(self, src: MemChannel | None, frames: Frames) -> None:
        self.on_reply(frames)


class MemPoller:
    """Polls without waiting: the simulation calls the runtime when input arrived."""

    def __init__(self) -> None:
        self.channels: list[MemChannel] = []

    def register(self, socket: Any, flags: int = _POLLIN) -> None:
        if socket not in self.channels:
            self.channels.append(socket)

    def unregister(self, socket: Any) -> None:
        if socket in self.channels:
            self.channels.remove(socket)

    def poll(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        return [(c, _POLLIN) for c in self.channels if c._inbox or c._current]


class MemoryTransport:
    """One node incarnation's channels on a :class:`MemoryNetwork`."""

    max_poll = float("inf")  # the simulation wakes the node; no stop() to notice

    def __init__(self, net: MemoryNetwork, name: str) -> None:
        self.net = net
        self.name = name
        self.channels: list[MemChannel] = []
        self.on_input: Callable[[], None] | None = None  # input arrived: run a turn
        self.node_public: bytes | None = None  # under CURVE: the cluster key (raw)
        self.client_name: Callable[[bytes], str | None] | None = None
        self.refused = 0  # connections refused (the ZAP handler's count)
        self.notifications: MemPub | None = None  # the XPUB, once bound

    def secure(self, keys: CurveKeys, client_name: Callable[[bytes], str | None]) -> None:
        assert not self.channels, "secure() comes before any channel"
        self.node_public = z85_to_raw(keys.public)
        self.client_name = client_name

    def _bind(
        self, channel: MemChannel, host: str, port: int, what: str, domain: bytes = CLIENT_DOMAIN
    ) -> MemChannel:
        endpoint = f"{host}:{port}"
        if endpoint in self.net.bound:
            raise ConfigError(f"cannot bind the {what} socket on {endpoint}: address in use")
        if self.node_public is not None:
            channel.guard = CurveGuard(self, domain)
        channel.endpoint = endpoint
        self.net.bound[endpoint] = channel
        self.channels.append(channel)
        return channel

    def bind_requests(self, host: str, port: int) -> MemChannel:
        return self._bind(MemRouter(self.net, self), host, port, "request")

    def bind_notifications(self, host: str, port: int) -> MemChannel:
        xpub = MemPub(self.net, self)
        xpub.kind = "XPUB"
        self.notifications = xpub
        return self._bind(xpub, host, port, "notification", NOTIFY_DOMAIN)

    def reset_notifications(self) -> None:
        if self.notifications is not None:
            self.notifications.reset()

    def bind_replication(self, host: str, port: int) -> MemChannel:
        return self._bind(MemPub(self.net, self), host, port, "replication", PEER_DOMAIN)

    def bind_peer_requests(self, host: str, port: int) -> MemChannel:
        return self._bind(MemRouter(self.net, self), host, port, "peer request", PEER_DOMAIN)

    def connect_replication(self, addresses: Sequence[str]) -> MemChannel:
        sub = MemSub(self.net, self)
        sub.curve_key = self.node_public  # the cluster key: a peer's
        self.channels.append(sub)
        for address in addresses:
            host, port = split_node_address(address)
            sub.connect(f"{host}:{port + REPLICATION_PORT_OFFSET}")
        return sub

    def add_replication_peer(self, channel: Any, address: str) -> None:
        host, port = split_node_address(address)
        channel.connect(f"{host}:{port + REPLICATION_PORT_OFFSET}")

    def remove_replication_peer(self, channel: Any, address: str) -> None:
        host, port = split_node_address(address)
        channel.disconnect(f"{host}:{port + REPLICATION_PORT_OFFSET}")

    def connect_peer(self, address: str) -> MemChannel:
        host, port = split_node_address(address)
        dealer = MemDealer(self.net, self)
        dealer.curve_key = self.node_public
        dealer.connect(f"{host}:{port + PEER_PORT_OFFSET}")
        self.channels.append(dealer)
        return dealer

    def poller(self) -> MemPoller:
        return MemPoller()

    def fast_io(self) -> tuple[RecvFn, SendFn]:
        return MemChannel.recv, MemChannel.send

    def service(self, channel: Any, now: float) -> bool:
        return False

    def tick(self, now: float) -> None:
        pass

    def stats(self) -> dict[str, Any]:
        return {"handshakes_refused": self.refused}

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


class MemoryNetwork:
    """The simulated clock, scheduler and links that memory transports share."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(f"net-{seed}")
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self._identities = 0
        self.bound: dict[str, MemChannel] = {}  # endpoint -> the channel bound there
        self.subscribers: dict[str, list[MemChannel]] = {}  # PUB endpoint -> SUBs
        self.counts: dict[str, int] = {}
        # faults
        self.loss = 0.0  # probability that one message is lost
        self.min_delay = 0.0005  # s
        self.max_delay = 0.02  # s
        self.slow_prob = 0.0  # probability of a slow message (up to slow_max s)
        self.slow_max = 0.0
        self.groups: list[frozenset[str]] | None = None  # a partition; None: all connected
        self.oneway_loss: dict[tuple[str, str], float] = {}  # (src, dst) -> loss probability
        self.drop: Callable[[MemChannel, MemChannel, Frames], bool] | None = None
        self._paused: dict[str, list[tuple[MemChannel | None, MemChannel, Frames]]] = {}

    # -- clock ------------------------------------------------------------------------
    def clock(self) -> float:
        return self.now

    def at(self, t: float, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (max(t, self.now), self._seq, fn, args))

    def after(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        """``at(now + delay)``, inlined: every message and every turn schedules one."""
        self._seq += 1
        now = self.now
        t = now + delay
        heapq.heappush(self._queue, (t if t >= now else now, self._seq, fn, args))

    def run_until(self, t_end: float) -> None:
        queue = self._queue
        while queue and queue[0][0] <= t_end:
            t, _, fn, args = heapq.heappop(queue)
            self.now = t
            fn(*args)
        self.now = t_end

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    # -- endpoints --------------------------------------------------------------------
    def transport(self, name: str) -> MemoryTransport:
        return MemoryTransport(self, name)

    def client(
        self, address: str, on_reply: Callable[[Frames], None], key: bytes | None = None
    ) -> MemClient:
        """A client's DEALER connected to ``address`` (a node's client port, or any
        other); ``key``: the raw CURVE public key it presents (None: no CURVE)."""
        client = MemClient(self, on_reply, key)
        client.connect(address)
        return client

    def next_identity(self) -> int:
        self._identities += 1
        return self._identities

    def _unbind(self, channel: MemChannel) -> None:
        if self.bound.get(channel.endpoint) is channel:
            del self.bound[channel.endpoint]

    # -- links ------------------------------------------------------------------------
    def reachable(self, a: str, b: str) -> bool:
        groups = self.groups
        if groups is None:
            return True
        return any(a in g and b in g for g in groups)

    def delay(self) -> float:
        rng = self.rng
        if self.slow_prob and rng.random() < self.slow_prob:
            return rng.uniform(self.max_delay, self.slow_max)
        return rng.uniform(self.min_delay, self.max_delay)

    def transmit(self, src: MemChannel, dst: MemChannel, frames: Frames) -> None:
        """One message from ``src`` to ``dst``: maybe lost, else delivered after a delay."""
        if self.loss and self.rng.random() < self.loss:
            self.count("lost")
            return
        if self.oneway_loss and src.name is not None and dst.name is not None:
            p = self.oneway_loss.get((src.name, dst.name), 0.0)
            if p and self.rng.random() < p:
                self.count("lost_oneway")
                return
        if self.drop is not None and self.drop(src, dst, frames):
            self.count("lost_dropped")
            return
        self.after(self.delay(), self._arrive, src, dst, frames)

    def _arrive(self, src: MemChannel, dst: MemChannel, frames: Frames) -> None:
        if dst.closed:
            self.count("dropped_dst_down")
            return
        if dst.name is not None:  # to a node (a client takes a reply from anyone)
            if src.closed:  # the sender crashed or restarted: its connection is gone
                self.count("dropped_src_restarted")
                return
            if src.name is not None and not self.reachable(src.name, dst.name):
                self.count("dropped_partition")
                return
            if dst.guard is not None and dst.guard.user(src) is None:
                self.count("refused_handshake")  # nothing of it reaches the node
                return
            held = self._paused.get(dst.name) if self._paused else None
            if held is not None:
                held.append((src, dst, frames))
                self.count("held")
                return
        dst._deliver(src, frames)

    # -- pauses -----------------------------------------------------------------------
    def pause(self, name: str) -> None:
        """Hold whatever arrives for transport ``name`` until ``release``."""
        self._paused.setdefault(name, [])

    def is_paused(self, name: str) -> bool:
        return name in self._paused

    def release(self, name: str) -> list[tuple[MemChannel | None, MemChannel, Frames]]:
        """Stop holding for ``name``; returns what was held, in arrival order."""
        return self._paused.pop(name, [])

    def deliver_held(self, held: list[tuple[MemChannel | None, MemChannel, Frames]]) -> None:
        """Put held messages in their channels (those still open), without waking anyone."""
        for src, dst, frames in held:
            if not dst.closed:
                dst._accept(src, frames)


__all__ = [
    "CurveGuard",
    "MemChannel",
    "MemClient",
    "MemFrame",
    "MemPoller",
    "MemoryNetwork",
    "MemoryTransport",
]
