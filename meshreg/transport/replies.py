"""Replies a client does not read: bounded in bytes, per connection and per node.

libzmq bounds a ROUTER's queue per connection in messages only (``SNDHWM``), whatever
their size: before this, one client that sent `instances` requests for a large service
and never read the replies made the node hold 100,000 x ~82 KB (review12 F-unread).
libzmq has no byte limit, and a ROUTER says nothing about how far a connection has read.
So the reply sockets (client ROUTER on P, peer ROUTER on P+3) are set up so a send never
queues past a bound, and this module decides and counts:

* ``ZMQ_ROUTER_MANDATORY`` and ``SNDTIMEO`` 0: a send to a connection whose queue is
  full raises ``zmq.Again`` at once (and one to a connection that closed,
  ``EHOSTUNREACH``) instead of blocking or dropping silently; the reply is dropped and
  counted (``stats.replies``), with a rate-limited warning.  The queue is a count
  (``CLIENT_REPLY_HWM``), so it bounds the small replies (at most ``SMALL_REPLY_BYTES``
  each: beats, writes, short lists): 2,000 x 4 KiB = 8 MiB a connection.  Why 2,000:
  libzmq's writer learns what the connection took only every ``hwm / 2`` messages, so
  a reader with W replies outstanding can look full from W + hwm / 2; the Python
  client has up to 512 requests in flight (client/session ``MAX_IN_FLIGHT``), the
  benchmark loaders 128, so 2,000 leaves room for W up to about 1,000.
* A larger reply is sent zero-copy with a pyzmq ``MessageTracker``, which says when
  libzmq has written it to the kernel (or dropped it with its connection): until then
  its bytes are *held*.  A large reply goes only if its connection's held bytes stay
  within ``per_connection`` and the node's within ``per_node`` (one reply may always go
  on a connection, and at a node, holding nothing, so a reply larger than a budget is
  never refused for its size alone); otherwise it is dropped and counted.  A connection
  delivers its messages in order, so a connection's held replies are released from
  the oldest.  Only large replies pay for the tracker (a few us next to building and
  copying tens of KB); beats never do.

A client that does not read loses the replies it does not read: its request times out
(the Python client retries, on another server when it has one).  A client that reads
keeps far fewer replies queued than the bounds (its window of requests in flight), so
it never loses one.
"""

from __future__ import annotations

import errno
from collections import deque
from typing import Any

import zmq

from meshreg.log_limiter import LogLimiter

_SNDMORE = int(zmq.SNDMORE)
SMALL_REPLY_BYTES = 4096  # replies up to this are bounded by the queue's count only
CLIENT_REPLY_HWM = 2_000  # replies queued per client connection (all sizes)
CLIENT_CONNECTION_BYTES = 8 * 1024 * 1024  # large replies held per client connection
CLIENT_NODE_BYTES = 128 * 1024 * 1024  # large replies held for all clients of a node
PEER_CONNECTION_BYTES = 256 * 1024 * 1024  # large replies held per peer connection
PEER_NODE_BYTES = 512 * 1024 * 1024  # large replies held for all peers of a node


class ReplyGuard:
    """Sends replies on one ROUTER (``ROUTER_MANDATORY``, ``SNDTIMEO`` 0) within a
    byte budget for large replies; drops and counts what does not fit."""

    def __init__(
        self,
        limiter: LogLimiter,
        what: str,
        per_connection: int,
        per_node: int,
        hwm: int,
        small: int = SMALL_REPLY_BYTES,
    ) -> None:
        """``what``: who reads these replies, for the log ("client", "peer"); ``hwm``:
        the socket's ``SNDHWM`` (replies queued per connection), for the log."""
        self.what = what
        self.hwm = hwm
        self.small = small
        self.per_connection = per_connection
        self.per_node = per_node
        self._limiter = limiter
        self._held: dict[bytes, deque[tuple[Any, int]]] = {}  # rid -> (tracker, bytes)
        self._held_bytes: dict[bytes, int] = {}
        self.held = 0  # bytes of large replies libzmq still holds (as last reclaimed)
        self.dropped_full = 0  # the connection's queue was full (it does not read)
        self.dropped_bytes = 0  # over the byte budget of its connection or the node
        self.unroutable = 0  # its connection had closed

    def send(self, channel: Any, frames: list[Any], now: float) -> bool:
        """Send one reply (``frames``: routing envelope then body); False: dropped."""
        last = frames[-1]
        size = len(last) if len(frames) <= 3 else sum(len(f) for f in frames)
        if size <= self.small or not isinstance(channel, zmq.Socket):
            send = channel.send
            try:  # libzmq takes or refuses a message at its first frame
                send(frames[0], _SNDMORE)
            except zmq.ZMQError as exc:
                self.refused(exc, frames[0], now)
                return False
            for i in range(1, len(frames) - 1):
                send(frames[i], _SNDMORE)
            send(last, 0)
            return True
        rid = frames[0]
        if isinstance(rid, zmq.Frame):
            rid = rid.bytes
        if not self._fits(rid, size):
            self.dropped_bytes += 1
            self._limiter.warning(
                (self.what, "bytes"),
                now,
                "dropped a %d-byte reply to a %s connection that is not reading its replies "
                "(%d bytes of replies held for it, %d for all; limits %d and %d): its "
                "request times out",
                size,
                self.what,
                self._held_bytes.get(rid, 0),
                self.held,
                self.per_connection,
                self.per_node,
            )
            return False
        if isinstance(last, zmq.Frame):
            last = last.bytes
        try:
            channel.send(frames[0], _SNDMORE)
            for i in range(1, len(frames) - 1):
                channel.send(frames[i], _SNDMORE)
            tracker = channel.send(last, 0, copy=False, track=True)
        except zmq.ZMQError as exc:
            self.refused(exc, rid, now)
            return False
        held = self._held.get(rid)
        if held is None:
            held = self._held[rid] = deque()
        held.append((tracker, size))
        self._held_bytes[rid] = self._held_bytes.get(rid, 0) + size
        self.held += size
        return True

    def refused(self, exc: zmq.ZMQError, rid: Any, now: float) -> None:
        """A send raised at its first frame (libzmq refuses a message whole): count it.
        Called by the hot paths that send small replies themselves."""
        if exc.errno == errno.EHOSTUNREACH:  # closed meanwhile: nobody to tell
            self.unroutable += 1
            return
        if exc.errno != zmq.EAGAIN:
            raise exc
        self.dropped_full += 1
        self._limiter.warning(
            (self.what, "full"),
            now,
            "dropped a reply to a %s connection that is not reading its replies (its queue "
            "of %d replies is full): its request times out",
            self.what,
            self.hwm,
        )

    def _fits(self, rid: bytes, size: int) -> bool:
        """Whether ``size`` more bytes may be held for ``rid`` (released first what libzmq
        is done with: the connection's oldest replies, and all when the node is full)."""
        mine = self._release(rid)
        if mine and mine + size > self.per_connection:
            return False
        if self.held and self.held + size > self.per_node:
            self.reclaim()
            return not self.held or self.held + size <= self.per_node
        return True

    def _release(self, rid: bytes) -> int:
        held = self._held.get(rid)
        if held is None:
            return 0
        freed = 0
        while held and held[0][0].done:
            freed += held.popleft()[1]
        self.held -= freed
        if not held:
            del self._held[rid]
            del self._held_bytes[rid]
            return 0
        left = self._held_bytes[rid] - freed
        self._held_bytes[rid] = left
        return left

    def reclaim(self) -> int:
        """Release every reply libzmq is done with; returns the bytes still held."""
        for rid in list(self._held):
            self._release(rid)
        return self.held

    def stats(self) -> dict[str, int]:
        """``stats.replies`` (client port) / ``stats.peer_replies`` (peer port)."""
        return {
            "dropped_full": self.dropped_full,
            "dropped_bytes": self.dropped_bytes,
            "unroutable": self.unroutable,
            "held_bytes": self.reclaim(),
        }


__all__ = [
    "CLIENT_CONNECTION_BYTES",
    "CLIENT_NODE_BYTES",
    "CLIENT_REPLY_HWM",
    "PEER_CONNECTION_BYTES",
    "PEER_NODE_BYTES",
    "SMALL_REPLY_BYTES",
    "ReplyGuard",
]
