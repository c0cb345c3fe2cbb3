"""The node's links to its peers: one DEALER per peer (made by the transport).

Peer DEALERs connect to each peer's peer port (``port + 3``), never to its client
port.  Forwarded writes travel as ``[forward id, b"", body]`` so the peer's reply
``[forward id, b"", reply]`` finds the client that asked; peer calls (digest
pages, reconciles) travel as ``[b"", body]`` with the core's tag as request
id.  A send to a peer with no live connection fails at once (``zmq.Again``; the
ZeroMQ transport sets ZMQ_IMMEDIATE) instead of queueing, so a dead owner costs
no time-out.  Each forward waits its own time (``Forward.wait``: a write's deadline
bounds it), so forwards expire from a heap, not in the order they were sent.
"""

from __future__ import annotations

import heapq
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from meshreg.core.effects import PeerCall
from meshreg.errors import ConfigError
from meshreg.transport.base import Channel, Transport
from meshreg.wire.peer import decode_peer_reply, peer_call_fields
from meshreg.wire.replies import encode_request

log = logging.getLogger("meshreg.node")


@dataclass
class PendingForward:
    envelope: list[bytes]  # the client's envelope, to route the reply back
    request: Any  # the parsed request, for the local fallback
    deadline: float
    received_at: float  # when the client's request arrived (a late beat counts from then)
    address: str = ""  # the owner it went to
    join: Any = None  # a register_batch part: (BatchJoin, its entries' indices)


class PeerLinks:
    """DEALERs to peers (created on first use) and the pending forwards/calls."""

    def __init__(self, transport: Transport, timeout: float) -> None:
        """``transport`` makes the DEALERs (``Transport.connect_peer``)."""
        self.transport = transport
        self.timeout = timeout
        self.dealers: dict[str, Channel] = {}
        self.forwards: dict[bytes, PendingForward] = {}
        self._expiry: list[tuple[float, bytes]] = []  # (deadline, fid), a heap; an entry
        # whose fid was answered meanwhile is dropped when it comes up
        self.calls: OrderedDict[int, float] = OrderedDict()  # tag -> deadline
        self._next_forward = 0
        self.forward_failures = 0  # forwards not sent or not answered in time (fallbacks)
        self.poller_add: Callable[[Channel], None] = lambda s: None
        self.poller_remove: Callable[[Channel], None] = lambda s: None

    def dealer(self, address: str) -> Channel:
        """The DEALER to ``address`` (made on first use); ``zmq.Again`` if it cannot be
        made (an address a peer announced that no socket can take): the send fails as
        for a peer with no live connection, never the loop."""
        sock = self.dealers.get(address)
        if sock is None:
            try:
                sock = self.transport.connect_peer(address)
            except (zmq.ZMQError, ConfigError) as exc:
                log.warning("cannot connect to peer %s: %s", address, exc)
                raise zmq.Again() from None
            self.dealers[address] = sock
            self.poller_add(sock)
        return sock

    def drop(self, address: str) -> None:
        """Close the DEALER to a member forgotten (its pending forwards and calls expire
        as usual): libzmq would otherwise keep reconnecting to it for good."""
        sock = self.dealers.pop(address, None)
        if sock is not None:
            self.poller_remove(sock)
            sock.close(linger=0)

    def forward(
        self,
        address: str,
        envelope: list[bytes],
        request: Any,
        body: bytes,
        now: float,
        join: Any = None,
        wait: float | None = None,
    ) -> bool:
        """Send a client's request on to its responsible node; False if not possible now.
        ``wait``: how long its reply is waited for (None: ``timeout``)."""
        self._next_forward += 1
        fid = self._next_forward.to_bytes(8, "big")
        try:
            self.dealer(address).send_multipart([fid, b"", body], zmq.NOBLOCK)
        except zmq.Again:
            self.forward_failures += 1
            return False
        deadline = now + (self.timeout if wait is None else wait)
        self.forwards[fid] = PendingForward(envelope, request, deadline, now, address, join)
        heapq.heappush(self._expiry, (deadline, fid))
        return True

    def orphaned(self, left: set[str]) -> list[PendingForward]:
        """The forwards waiting on an owner that said it stopped (``left``: addresses),
        taken out: decided again now rather than at their deadline.  Not those of an
        owner counted down for its silence: stopped (SIGSTOP, a VM freeze), it may resume
        and apply its copy until the copy's deadline, the end of the forward's wait; the
        write applied here before then, a later write of the client's (a deregistration)
        was undone by that copy (review71 F4: a deregistered instance back on every node)."""
        gone = [fid for fid, p in self.forwards.items() if p.address in left]
        self.forward_failures += len(gone)
        return [self.forwards.pop(fid) for fid in gone]

    def call(self, effect: PeerCall, now: float) -> bool:
        body = encode_request(effect.op, effect.tag, **peer_call_fields(effect.request))
        try:
            self.dealer(effect.address).send_multipart([b"", body], zmq.NOBLOCK)
        except zmq.Again:
            return False
        self.calls[effect.tag] = now + self.timeout
        return True

    def expired(self, now: float) -> tuple[list[PendingForward], list[int]]:
        """Forwards and calls past their deadline (a call's deadlines grow with insertion)."""
        forwards: list[PendingForward] = []
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, fid = heapq.heappop(expiry)
            pending = self.forwards.pop(fid, None)
            if pending is None:
                continue  # answered meanwhile
            forwards.append(pending)
            self.forward_failures += 1
        calls: list[int] = []
        while self.calls:
            tag, deadline = next(iter(self.calls.items()))
            if deadline > now:
                break
            del self.calls[tag]
            calls.append(tag)
        return forwards, calls

    def next_deadline(self) -> float | None:
        times = []
        expiry = self._expiry
        while expiry and expiry[0][1] not in self.forwards:
            heapq.heappop(expiry)  # answered: not a deadline to wake for
        if expiry:
            times.append(expiry[0][0])
        if self.calls:
            times.append(next(iter(self.calls.values())))
        return min(times) if times else None

    def close(self) -> None:
        for sock in self.dealers.values():
            sock.close(linger=0)
        self.dealers.clear()


def decode_call_reply(body: bytes) -> tuple[int, bool, Any]:
    """(tag, ok, result) of a peer call's reply; raises RemoteProtocolError."""
    return decode_peer_reply(body)
