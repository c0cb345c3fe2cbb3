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
  its bytes are *held*.  Its ``zmq.Frame`` is made zero-copy explicitly: the socket
  would copy any message under pyzmq's ``copy_threshold`` (64 KiB) and hand back a
  tracker already done, so 4-64 KiB replies were never held (review37 F2: +646 MB).
  Zero-copy below 64 KiB costs (pyzmq frees each message through its garbage-collector
  thread): a node answering 8 KB `config_get`s spent 40 us a reply against 20.  So a
  reply under ``COPY_BYTES`` is copied, untracked, while its connection's replies copied
  since its last tracked one (its *tail*) stay within ``TAIL_BYTES``; the reply that
  would pass it is tracked and holds the tail's bytes with its own: a connection writes
  in order, so when libzmq is done with it, it is done with those before it.  What is
  not held is thus at most ``TAIL_BYTES`` a connection (the tails of ``MAX_TAILS``
  connections are remembered, the least recent forgotten first: a connection
  forgotten that way may copy one more tail).  A large reply goes only if its
  connection's held bytes stay within ``per_connection`` and the node's within
  ``per_node`` (one reply may always go on a connection, and at a node, holding nothing,
  so a reply larger than a budget is never refused for its size alone); otherwise it is
  dropped and counted.  A connection
  delivers its messages in order, so a connection's held replies are released from
  the oldest.  Only large replies pay for the tracker (a few us next to building and
  copying tens of KB); beats never do.

**Back-pressure per connection** (review14a F1).  A client that reads, but pipelines
requests whose replies are large (40 `config_history` pages of 4 MiB, `config export`'s
64), used to lose most of them: the node built them in one loop turn (or held them for
a config commit and released them together) faster than the connection could take them,
and the byte budget dropped all but the first.  So a connection's budget now paces what
the node *serves* it, not only what it sends: its **reply bytes** are its large replies
libzmq still holds plus those the config plane holds for a commit (``reserve``); while
they are at or over ``per_connection`` the connection is *blocked*: the runtime keeps its
further requests (``defer``, in order, without serving them) and serves them, in order,
as its replies drain (``over`` turns False: the runtime looks again every
``RESUME_FIRST`` s, backing off to ``RESUME_MOST`` while nothing drains: a tracker has
no descriptor to poll).  A reply to a request the node served (``admitted``) is never
dropped for its connection's budget: the gate bounds it (at most the budget plus the
replies of the requests served just before it was reached: one, or one loop turn's held
for a commit, each counted when made).  Waiting requests are bounded
(``DEFER_REQUESTS`` and ``DEFER_CONNECTION_BYTES`` per connection, ``DEFER_NODE_BYTES``
for all): what does not fit is dropped unserved and counted in ``dropped_bytes`` (its
reply would have been over the budget), so a client that does not read is still cut
off, at no cost but its request's bytes.  A connection that closed: its held replies are
released by libzmq, the first of its waiting requests served gets ``EHOSTUNREACH`` and
the rest are dropped (``unroutable``).  Other connections are not slowed: only the
blocked connection's requests wait (the runtime's drain then checks each request's
connection, a dict lookup; beats take the fast drain whenever no connection waits).

A client that does not read loses the replies it does not read: its request times out
(the Python client retries, on another server when it has one).  A client that reads
loses none: at most its window of requests in flight waits, and its replies go as fast
as it takes them.  The node-wide budget (``per_node``) stays a hard bound: a reply that
would pass it is dropped (many connections holding large replies at once).

**A client's share** (review64 F1).  The connection budget bounds one connection, not
one client: a key that opened 28 connections and read none of them held the whole node
budget, and every other tenant's large replies were dropped for as long as it liked (a
ROUTER cannot close one connection, and libzmq frees a connection's queue only when it
reads or goes).  So the runtime names the client of each request on a keyed port
(``owners``: routing id -> its ACL client's name; ``MAX_OWNERS`` remembered) and a
client's held bytes, over all its connections, are counted: beyond ``per_node / 4`` (its
share) a client holds more only while ``per_node / 4`` stays free for the others (alone,
three quarters of the budget).  A client at that bound is paced as a connection over its
budget is, on every connection of it (``over``; while some client holds its share or
more, ``pacing``, the runtime checks each request: the gated drain), so the reply of a
request served under the bound always goes (it may pass the bound by that one reply,
as a connection's budget); a reply that was not (a relayed write's) and would pass it is
dropped (``dropped_share``; the warning names the client).  One reply may always go to a
client that holds nothing.  Without keys every client is one tenant: no share.
"""

from __future__ import annotations

import errno
from collections import deque
from typing import Any

import zmq

from meshreg.log_limiter import LogLimiter

_SNDMORE = int(zmq.SNDMORE)
SMALL_REPLY_BYTES = 4096  # replies up to this are bounded by the queue's count only
COPY_BYTES = 65536  # pyzmq's zero-copy threshold: below, a tracked send costs twice a copy
TAIL_BYTES = 256 * 1024  # large replies below COPY_BYTES sent untracked per connection
MAX_TAILS = 4096  # connections whose untracked replies are remembered
CLIENT_REPLY_HWM = 2_000  # replies queued per client connection (all sizes)
CLIENT_CONNECTION_BYTES = 8 * 1024 * 1024  # large replies held per client connection
CLIENT_NODE_BYTES = 128 * 1024 * 1024  # large replies held for all clients of a node
PEER_CONNECTION_BYTES = 256 * 1024 * 1024  # large replies held per peer connection
PEER_NODE_BYTES = 512 * 1024 * 1024  # large replies held for all peers of a node
DEFER_REQUESTS = 1_000  # requests waiting per blocked connection (a reader's window of
# requests in flight: the Python client has up to 512, `config export` 64)
DEFER_CONNECTION_BYTES = 16 * 1024 * 1024  # their bytes per connection (16 config writes
# at the 1 MiB content cap; a read request is ~100 bytes)
DEFER_NODE_BYTES = 128 * 1024 * 1024  # their bytes for all connections of a node
SHARE_PARTS = 4  # a client holds beyond per_node / 4 only while per_node / 4 stays free
MAX_OWNERS = 16_384  # routing ids whose client is remembered (beyond: those holding nothing
# are forgotten)
RESUME_FIRST = 0.001  # s; a blocked connection is looked at again this soon ...
RESUME_MOST = 0.05  # s; ... backing off (x2) to this while none of them drains


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
        # rid -> (tracker, bytes, its client's name or None), oldest first
        self._held: dict[bytes, deque[tuple[Any, int, str | None]]] = {}
        self._held_bytes: dict[bytes, int] = {}
        # a client's share (module docstring): rid -> the ACL client that sent on it (set
        # by the runtime per request on a keyed port), and each client's held bytes
        self.owners: dict[bytes, str] = {}
        self._client_held: dict[str, int] = {}
        self.share = per_node // SHARE_PARTS
        self.keep_free = per_node // SHARE_PARTS
        self.pacing: set[str] = set()  # clients holding their share or more (a superset
        # of those at their bound: ``over`` decides)
        # rid -> bytes of the large replies copied since its last tracked one (at most
        # TAIL_BYTES each; MAX_TAILS connections, the least recent forgotten first)
        self._tails: dict[bytes, int] = {}
        self.held = 0  # bytes of large replies libzmq still holds (as last reclaimed)
        self._reserved: dict[bytes, int] = {}  # rid -> bytes of replies held for a commit
        self.reserved = 0
        # blocked connections (rid -> their waiting requests, in order), oldest first
        self.waiting: dict[bytes, deque[tuple[Any, int]]] = {}
        self._waiting_bytes: dict[bytes, int] = {}
        self.waiting_bytes = 0
        self.waiting_count = 0
        self.defer_requests = DEFER_REQUESTS
        self.defer_connection = DEFER_CONNECTION_BYTES
        self.defer_node = DEFER_NODE_BYTES
        self._resume_wait = RESUME_FIRST
        self._resume_at = float("inf")
        self.deferred = 0  # requests that waited (ever)
        self.blocks = 0  # times a connection was blocked
        self.dropped_full = 0  # the connection's queue was full (it does not read)
        self.dropped_bytes = 0  # over the byte budget of its connection or the node
        self.dropped_share = 0  # of those, over its client's share (module docstring)
        self.unroutable = 0  # its connection had closed

    def send(
        self,
        channel: Any,
        frames: list[Any],
        now: float,
        admitted: bool = False,
        reserved: int = 0,
    ) -> bool:
        """Send one reply (``frames``: routing envelope then body); False: dropped.
        ``admitted``: the reply of a request served while its connection was under its
        budget (the runtime's drains): never dropped for the connection's budget, only
        for the node's.  ``reserved``: what ``reserve`` counted for it (a reply held for
        a commit; admitted)."""
        if reserved:
            rid = frames[0]
            self._unreserve(rid, reserved)
            admitted = True
            if rid in self.waiting:  # a commit released it: its connection may go on soon
                self._resume_wait = RESUME_FIRST
                self._resume_at = min(self._resume_at, now + RESUME_FIRST)
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
        why = self._fits(rid, size, admitted)
        if why:
            self.dropped_bytes += 1
            if why == "share":
                self.dropped_share += 1
                name = self.owners.get(rid, "?")
                self._limiter.warning(
                    (self.what, "share", name),
                    now,
                    "dropped a %d-byte reply to a connection of %s client %r: its "
                    "connections hold %d bytes of replies not yet written (a client may "
                    "hold %d, more only while %d of the node's %d stay free for the other "
                    "clients; its connections do not read their replies, or too many of "
                    "them fetch large replies at once): its request times out",
                    size, self.what, name, self._client_held.get(name, 0), self.share,
                    self.keep_free, self.per_node,
                )  # fmt: skip
            elif why == "node":
                self._limiter.warning(
                    (self.what, "node"),
                    now,
                    "dropped a %d-byte reply to a %s connection: the node holds %d bytes of "
                    "replies not yet written for all its %ss (limit %d; many connections "
                    "fetching large replies at once, or not reading them%s): its request "
                    "times out",
                    size, self.what, self.held, self.what, self.per_node, self._most(),
                )  # fmt: skip
            else:
                self._limiter.warning(
                    (self.what, "bytes"),
                    now,
                    "dropped a %d-byte reply to a %s connection that is not reading its "
                    "replies as fast as they come (%d bytes of its replies not yet written; "
                    "limit %d): its request times out",
                    size, self.what, self._held_bytes.get(rid, 0), self.per_connection,
                )  # fmt: skip
            return False
        if isinstance(last, zmq.Frame):
            last = last.bytes
        tails = self._tails
        tail = tails.pop(rid, 0)
        copied = size < COPY_BYTES and tail + size <= TAIL_BYTES  # (module docstring)
        try:
            channel.send(frames[0], _SNDMORE)
            for i in range(1, len(frames) - 1):
                channel.send(frames[i], _SNDMORE)
            if copied:
                channel.send(last, 0)
            else:  # zero-copy made here: pyzmq's socket would copy it under 64 KiB and
                # hand back a tracker already done (review37 F2)
                tracker = channel.send(zmq.Frame(last, copy=False, track=True), 0, copy=False)
        except zmq.ZMQError as exc:
            if tail:
                tails[rid] = tail
            self.refused(exc, rid, now)
            return False
        if copied:
            if len(tails) >= MAX_TAILS:  # the least recent connection's is forgotten
                del tails[next(iter(tails))]
            tails[rid] = tail + size
            return True
        size += tail  # the copies before it are written before it (in order)
        held = self._held.get(rid)
        if held is None:
            held = self._held[rid] = deque()
        client = self.owners.get(rid)
        held.append((tracker, size, client))
        self._held_bytes[rid] = self._held_bytes.get(rid, 0) + size
        self.held += size
        if client is not None:
            mine = self._client_held[client] = self._client_held.get(client, 0) + size
            if mine >= self.share:
                self.pacing.add(client)
        return True

    def _most(self) -> str:
        """The client holding the most, for the node's warning ("" without keys)."""
        if not self._client_held:
            return ""
        client, held = max(self._client_held.items(), key=lambda item: item[1])
        return f"; the most by client {client!r}: {held} bytes"

    def _over_share(self, client: str, size: int) -> bool:
        """Whether ``size`` more bytes held for ``client`` would pass its share while less
        than ``keep_free`` stays free (``size`` 0: whether it is at that bound)."""
        mine, bound = self._client_held.get(client, 0), self.per_node - self.keep_free
        if size:
            return mine > 0 and mine + size > self.share and self.held + size > bound
        return mine >= self.share and self.held >= bound

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

    def _fits(self, rid: bytes, size: int, admitted: bool) -> str:
        """Whether ``size`` more bytes may be held for ``rid`` (released first what libzmq
        is done with: the connection's oldest replies, and all when the node is full):
        "" yes, else why not ("connection", "node").  ``admitted``: the connection's
        budget was checked when its request was served (``over``)."""
        mine = self._release(rid)
        if not admitted and mine and mine + size > self.per_connection:
            return "connection"
        if self.held and self.held + size > self.per_node:
            self.reclaim()
            if self.held and self.held + size > self.per_node:
                return "node"
        client = None if admitted else self.owners.get(rid)  # (admitted: the gate, ``over``)
        if client is not None and self._over_share(client, size):
            self.reclaim()
            if self._over_share(client, size):
                return "share"
        return ""

    def _release(self, rid: bytes) -> int:
        held = self._held.get(rid)
        if held is None:
            return 0
        freed = 0
        while held and held[0][0].done:
            _, size, client = held.popleft()
            freed += size
            if client is not None:
                left = self._client_held[client] - size
                if left > 0:
                    self._client_held[client] = left
                else:
                    del self._client_held[client]
                if left < self.share:
                    self.pacing.discard(client)
        self.held -= freed
        if not held:
            del self._held[rid]
            del self._held_bytes[rid]
            return 0
        left = self._held_bytes[rid] - freed
        self._held_bytes[rid] = left
        return left

    # -- back-pressure (module docstring) ------------------------------------------------
    def reserve(self, rid: bytes, size: int) -> int:
        """A reply of ``size`` bytes for ``rid`` is held (for a config commit) before it is
        sent: counted in its connection's reply bytes until ``send(reserved=...)``;
        returns what was counted (0: a small reply, never counted)."""
        if size <= self.small:
            return 0
        self._reserved[rid] = self._reserved.get(rid, 0) + size
        self.reserved += size
        return size

    def _unreserve(self, rid: bytes, size: int) -> None:
        left = self._reserved.get(rid, 0) - size
        if left > 0:
            self._reserved[rid] = left
        else:
            self._reserved.pop(rid, None)
        self.reserved -= size

    def release_reserved(self, rid: bytes, size: int) -> None:
        """A reserved reply that will not be sent (an error goes instead)."""
        if size:
            self._unreserve(rid, size)

    def over(self, rid: bytes) -> bool:
        """Whether ``rid``'s reply bytes (large replies libzmq holds, and reserved ones)
        are at or over its connection's budget: its requests wait (``block``)."""
        reserved = self._reserved.get(rid, 0)
        if (reserved or rid in self._held) and (
            self._release(rid) + reserved >= self.per_connection
        ):
            return True
        if not self.pacing:
            return False
        client = self.owners.get(rid)  # its client at its bound (module docstring), on
        if client is None or client not in self.pacing or not self._over_share(client, 0):
            return False
        self.reclaim()  # (its other connections may have drained)
        return self._over_share(client, 0)

    def forget_owners(self) -> None:
        """Over ``MAX_OWNERS`` routing ids remembered: keep only those holding, reserving
        or waiting (the rest name their client again with their next request)."""
        keep = self._held.keys() | self._reserved.keys() | self.waiting.keys()
        owners = self.owners  # (in place: the runtime's drains hold it)
        for rid in [rid for rid in owners if rid not in keep]:
            del owners[rid]

    def block(self, rid: bytes, now: float) -> None:
        """``rid`` is over its budget: its next requests wait (``defer``) until it is not."""
        if rid in self.waiting:
            return
        self.waiting[rid] = deque()
        self._waiting_bytes[rid] = 0
        self.blocks += 1
        self._resume_wait = RESUME_FIRST
        self._resume_at = min(self._resume_at, now + RESUME_FIRST)

    def defer(self, rid: bytes, request: Any, size: int, now: float) -> bool:
        """Keep a request of a blocked connection (``size``: its bytes) behind the ones it
        sent before; False: dropped unserved (over the bounds), counted and logged."""
        queue = self.waiting[rid]
        mine = self._waiting_bytes[rid]
        if (
            len(queue) >= self.defer_requests
            or (queue and mine + size > self.defer_connection)
            or (self.waiting_count and self.waiting_bytes + size > self.defer_node)
        ):
            self.dropped_bytes += 1
            self._limiter.warning(
                (self.what, "waiting"),
                now,
                "dropped a request from a %s connection that is not reading its replies: "
                "%d of its requests (%d bytes) already wait behind its replies not yet "
                "written (limits: %d requests, %d bytes a connection, %d for all): its "
                "request times out",
                self.what, len(queue), mine, self.defer_requests, self.defer_connection,
                self.defer_node,
            )  # fmt: skip
            return False
        queue.append((request, size))
        self._waiting_bytes[rid] = mine + size
        self.waiting_bytes += size
        self.waiting_count += 1
        self.deferred += 1
        return True

    def resume_due(self, now: float) -> bool:
        """Whether the blocked connections should be looked at now."""
        return now >= self._resume_at

    def next_resume(self) -> float:
        """When the blocked connections are to be looked at (inf: none is)."""
        return self._resume_at

    def ready(self, rid: bytes) -> Any | None:
        """The next waiting request of blocked ``rid`` if its replies are now under its
        budget (served by the caller, in order), else None.  A connection with nothing
        waiting and under budget is unblocked (its requests are served at once again)."""
        if self.over(rid):
            return None
        queue = self.waiting.get(rid)
        if queue is None:
            return None
        if not queue:
            self._unblock(rid)
            return None
        request, size = queue.popleft()
        self._waiting_bytes[rid] -= size
        self.waiting_bytes -= size
        self.waiting_count -= 1
        return request

    def resumed(self, now: float, served: int) -> None:
        """The caller looked at the blocked connections (``served`` requests of theirs):
        the next look ``RESUME_FIRST`` later if some drained, else twice the last wait
        (at most ``RESUME_MOST``); none blocked: never."""
        if not self.waiting:
            self._resume_at = float("inf")
            return
        self._resume_wait = RESUME_FIRST if served else min(self._resume_wait * 2, RESUME_MOST)
        self._resume_at = now + self._resume_wait

    def rotate(self, rid: bytes) -> None:
        """``rid`` had its turn: behind the other blocked connections next time."""
        queue = self.waiting.pop(rid, None)
        if queue is not None:
            self.waiting[rid] = queue

    def gone(self, rid: bytes) -> int:
        """``rid``'s connection closed (a send was unroutable): its waiting requests are
        dropped (counted ``unroutable``), it is unblocked; returns how many."""
        queue = self.waiting.get(rid)
        if queue is None:
            return 0
        n = len(queue)
        self.unroutable += n
        self.waiting_count -= n
        self.waiting_bytes -= self._waiting_bytes[rid]
        self._unblock(rid)
        return n

    def _unblock(self, rid: bytes) -> None:
        del self.waiting[rid]
        del self._waiting_bytes[rid]

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
            "dropped_share": self.dropped_share,  # of dropped_bytes: over a client's share
            "unroutable": self.unroutable,
            "held_bytes": self.reclaim(),
            "reserved_bytes": self.reserved,  # held for a config commit, not sent yet
            "blocked": len(self.waiting),  # connections whose requests wait now
            "waiting": self.waiting_count,  # requests waiting now
            "deferred": self.deferred,  # requests that waited (ever)
        }


__all__ = [
    "CLIENT_CONNECTION_BYTES",
    "CLIENT_NODE_BYTES",
    "CLIENT_REPLY_HWM",
    "DEFER_CONNECTION_BYTES",
    "DEFER_NODE_BYTES",
    "DEFER_REQUESTS",
    "MAX_OWNERS",
    "PEER_CONNECTION_BYTES",
    "PEER_NODE_BYTES",
    "RESUME_FIRST",
    "RESUME_MOST",
    "SMALL_REPLY_BYTES",
    "ReplyGuard",
]
