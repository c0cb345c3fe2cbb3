"""The transport seam: what the node runtime needs from a network, and nothing more.

Theory of operation
-------------------
The runtime (``runtime/node.py``) never creates a socket itself: it asks a
:class:`Transport` for its four listening channels (ports P..P+3: client ROUTER,
notification XPUB, replication PUB, peer ROUTER), for the replication SUB and
for one DEALER per peer, and for a :class:`Poller` over them.  Two
implementations exist: ``transport/zeromq.py`` (production: libzmq sockets,
CURVE and the ZAP handler, the accept monitor) and ``transport/memory.py``
(the seeded simulation: channels on a simulated clock with loss, delay,
partitions and pauses).

A :class:`Channel` is the subset of ``zmq.Socket`` the runtime uses, with the
same signatures and flags, so the ZeroMQ implementation hands out its sockets
as they are: the per-message path pays no wrapper.  A receive that would block
raises ``zmq.Again`` in both implementations (the one exception the hot path
catches); a send that cannot go now (a peer DEALER with no live connection,
ZMQ_IMMEDIATE) raises it too.  ``recv(flags, copy=False)`` returns a frame
with ``.more``, ``.bytes`` and ``.get(property)`` (``"User-Id"`` under CURVE).

:meth:`Transport.fast_io` returns the unbound ``recv``/``send`` functions of
the client ROUTER's type, so the runtime's beat loop calls them without
attribute lookups (for ZeroMQ: the backend's, past pyzmq's sugar).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from meshreg.transport.sockets import CurveKeys

# recv(channel, flags, copy) -> frame;  send(channel, data, flags) -> None
RecvFn = Callable[[Any, int, bool], Any]
SendFn = Callable[[Any, Any, int], Any]


class Channel(Protocol):
    """One socket-like endpoint (the part of ``zmq.Socket`` the runtime uses)."""

    def recv(self, flags: int = 0, copy: bool = True) -> Any: ...

    def send(self, data: Any, flags: int = 0) -> Any: ...

    def recv_multipart(self, flags: int = 0) -> list[bytes]: ...

    def send_multipart(self, msg_parts: Sequence[Any], flags: int = 0) -> Any: ...

    def setsockopt(self, option: int, optval: Any) -> None: ...

    def get(self, option: int) -> Any: ...

    def connect(self, addr: str) -> Any: ...

    def close(self, linger: int | None = None) -> None: ...


class Poller(Protocol):
    """``zmq.Poller``'s shape: register channels, poll with a timeout in ms."""

    def register(self, socket: Any, flags: int = ...) -> None: ...

    def unregister(self, socket: Any) -> None: ...

    def poll(self, timeout: float | None = None) -> list[tuple[Any, int]]: ...


@runtime_checkable
class Transport(Protocol):
    """What a node runtime needs from the network (one instance per node incarnation)."""

    max_poll: float  # s; the longest poll (bounds how late a stop() is noticed)

    def secure(self, keys: CurveKeys, client_name: Callable[[bytes], str | None]) -> None:
        """Serve CURVE with the node's ``keys`` on every channel, admitting connections by
        ``transport/zap.admit`` (``client_name``: the ACL client a raw key belongs to,
        or None; asked on each handshake).  Called before anything is bound; again with
        the same keys, a no-op."""
        ...

    def bind_requests(self, host: str, port: int) -> Channel:
        """The client ROUTER on port P."""
        ...

    def bind_notifications(self, host: str, port: int) -> Channel:
        """The notification XPUB (manual: the runtime admits subscriptions) on P+1."""
        ...

    def reset_notifications(self) -> None:
        """Drop every connection of the notification channel (they reconnect and
        subscribe again, admitted anew): an ACL reload must reach subscriptions already
        admitted, and a manual XPUB cannot drop one connection's."""
        ...

    def bind_replication(self, host: str, port: int) -> Channel:
        """The replication PUB on P+2."""
        ...

    def bind_peer_requests(self, host: str, port: int) -> Channel:
        """The peer ROUTER on P+3 (forwarded writes, peer calls)."""
        ...

    def connect_replication(self, addresses: Sequence[str]) -> Channel:
        """One SUB connected to every peer's replication PUB (``host:P`` addresses)."""
        ...

    def add_replication_peer(self, channel: Channel, address: str) -> None:
        """Connect the SUB of ``connect_replication`` to one more peer's PUB (a member
        another introduced: core/distro ``join``)."""
        ...

    def remove_replication_peer(self, channel: Channel, address: str) -> None:
        """Undo ``add_replication_peer`` (a learned member forgotten)."""
        ...

    def connect_peer(self, address: str) -> Channel:
        """A DEALER to the peer ROUTER of the node at ``host:P``; a send with no live
        connection raises ``zmq.Again`` at once (no queueing for a dead owner)."""
        ...

    def poller(self) -> Poller:
        """A poller with the transport's own channels (ZAP, monitors) registered."""
        ...

    def fast_io(self) -> tuple[RecvFn, SendFn]:
        """Unbound recv/send for the client ROUTER (the beat path)."""
        ...

    def service(self, channel: Any, now: float) -> bool:
        """Serve an input on one of the transport's own channels; False: not one of them."""
        ...

    def tick(self, now: float) -> None:
        """Once per loop turn (timers of the transport's own, e.g. the accept monitor)."""
        ...

    def stats(self) -> dict[str, Any]:
        """What the transport counts for ``stats`` (handshakes refused, accept failures)."""
        ...

    def close(self) -> None:
        """Close every channel (bounded: never waits on a stuck peer)."""
        ...


__all__ = ["Channel", "Poller", "RecvFn", "SendFn", "Transport"]
