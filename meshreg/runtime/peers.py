"""The node's links to its peers: one DEALER per peer, the replication SUB.

Peer DEALERs connect to each peer's peer port (``port + 3``), never to its client
port.  Forwarded writes travel as ``[forward id, b"", body]`` so the peer's reply
``[forward id, b"", reply]`` finds the client that asked; peer calls (digest
pages, reconciles) travel as ``[b"", body]`` with the core's tag as request
id.  Peer DEALERs use ZMQ_IMMEDIATE: a send to a peer with no live connection
fails at once instead of queueing, so a dead owner costs no time-out.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from meshreg.config import PEER_PORT_OFFSET, REPLICATION_PORT_OFFSET, parse_address
from meshreg.core.effects import PeerCall
from meshreg.transport.sockets import CurveKeys, curve_client, tcp_endpoint
from meshreg.wire import limits
from meshreg.wire.peer import decode_peer_reply
from meshreg.wire.replies import encode_request

log = logging.getLogger("meshreg.node")

PEER_HWM = 100_000  # messages queued to one peer before sends fail


@dataclass
class PendingForward:
    envelope: list[bytes]  # the client's envelope, to route the reply back
    request: Any  # the parsed request, for the local fallback
    deadline: float
    received_at: float  # when the client's request arrived (a late beat counts from then)
    address: str = ""  # the owner it went to


class PeerLinks:
    """DEALERs to peers (created on first use) and the pending forwards/calls."""

    def __init__(
        self, ctx: zmq.Context[Any], timeout: float, keys: CurveKeys | None = None
    ) -> None:
        """``keys``: the cluster key pair; peers' servers use the same public key."""
        self.ctx = ctx
        self.timeout = timeout
        self.keys = keys
        self.dealers: dict[str, zmq.Socket[bytes]] = {}
        self.forwards: OrderedDict[bytes, PendingForward] = OrderedDict()
        self.calls: OrderedDict[int, float] = OrderedDict()  # tag -> deadline
        self._next_forward = 0
        self.poller_add: Callable[[zmq.Socket[bytes]], None] = lambda s: None

    def dealer(self, address: str) -> zmq.Socket[bytes]:
        sock = self.dealers.get(address)
        if sock is None:
            host, port = parse_address(address)
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.SNDHWM, PEER_HWM)
            sock.setsockopt(zmq.RCVHWM, PEER_HWM)
            sock.setsockopt(zmq.MAXMSGSIZE, limits.MAX_PEER_REPLY_BYTES)
            curve_client(sock, self.keys, self.keys.public if self.keys else None)
            sock.connect(tcp_endpoint(host, port + PEER_PORT_OFFSET))
            self.dealers[address] = sock
            self.poller_add(sock)
        return sock

    def forward(
        self, address: str, envelope: list[bytes], request: Any, body: bytes, now: float
    ) -> bool:
        """Send a client's request on to its responsible node; False if not possible now."""
        self._next_forward += 1
        fid = self._next_forward.to_bytes(8, "big")
        try:
            self.dealer(address).send_multipart([fid, b"", body], zmq.NOBLOCK)
        except zmq.Again:
            return False
        self.forwards[fid] = PendingForward(envelope, request, now + self.timeout, now, address)
        return True

    def call(self, effect: PeerCall, now: float) -> bool:
        body = encode_request(effect.op, effect.tag, **effect.fields)
        try:
            self.dealer(effect.address).send_multipart([b"", body], zmq.NOBLOCK)
        except zmq.Again:
            return False
        self.calls[effect.tag] = now + self.timeout
        return True

    def expired(self, now: float) -> tuple[list[PendingForward], list[int]]:
        """Forwards and calls past their deadline (deadlines grow with insertion)."""
        forwards: list[PendingForward] = []
        while self.forwards:
            fid, pending = next(iter(self.forwards.items()))
            if pending.deadline > now:
                break
            del self.forwards[fid]
            forwards.append(pending)
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
        if self.forwards:
            times.append(next(iter(self.forwards.values())).deadline)
        if self.calls:
            times.append(next(iter(self.calls.values())))
        return min(times) if times else None

    def close(self) -> None:
        for sock in self.dealers.values():
            sock.close(linger=0)
        self.dealers.clear()


def replication_endpoint(address: str) -> str:
    host, port = parse_address(address)
    return tcp_endpoint(host, port + REPLICATION_PORT_OFFSET)


def decode_call_reply(body: bytes) -> tuple[int, bool, Any]:
    """(tag, ok, result) of a peer call's reply; raises RemoteProtocolError."""
    return decode_peer_reply(body)
