"""A seeded simulated network and clock for Distro node cores (sans-IO).

Theory of operation
-------------------
* **Clock.**  One float (``net.now``) and a priority queue of timed events
  ``(time, sequence, callback)``; ``run_until(t)`` pops them in order.  The
  sequence number breaks ties, so a run is a pure function of its seed: every
  random choice comes from ``net.rng`` (``random.Random(seed)``) and nothing
  iterates a set of strings (whose order depends on ``PYTHONHASHSEED``).
* **Nodes.**  A :class:`SimNode` holds one ``DistroNode`` incarnation.  A
  crash drops the core (and with it everything in flight to or from it); a
  restart creates a *new* core at the same id and address with a new epoch
  and an empty store.  ``gen`` counts incarnations: a message from or to an
  older incarnation is dropped on arrival (its TCP connection is gone).
* **Links.**  Every message between two nodes (replication PUB/SUB, peer
  requests, forwarded writes and their replies) and between a client and a
  node is sent with :meth:`Network.transmit`: it is lost with probability
  ``loss``, else delivered after a random delay (so messages overtake each
  other: reordering).  ``groups`` partitions the nodes: two nodes in
  different groups cannot talk (checked on arrival, so a partition also eats
  what was in flight).  Clients reach every live node.
* **Wire.**  Everything goes through the real encoding: replication messages
  through ``encode_beacon/encode_digest``, deltas through each node's
  ``DeltaBatcher`` (as the runtime: the deltas of one drain of effects share
  messages, flushed before a beacon or digest and at the end of the drain;
  each message is one transmission, lost or delayed whole; ``batch_hold`` > 0
  holds a batch that long instead, as a busy runtime's turn would, so many
  inputs' deltas share it), and ``decode_replication``, requests through ``encode_request`` and
  ``parse_request`` (clients) or ``parse_peer_request`` (peers), results
  through a msgpack round trip.
* **Runtime.**  :meth:`Network.client_request` plays the node runtime for a
  client's request: the entry node handles it; a ``Forward`` is relayed to
  the responsible node (``forwarded=True``) and its reply relayed back; if
  that node's process is gone (connection refused) or no reply comes within
  ``peer_request_timeout``, the entry node applies it itself.  ``PeerCall``
  effects are sent as requests and answered with ``peer_reply`` or
  ``peer_failed``.  Each node is ticked at the time its last ``tick`` asked
  for.
* **Process pause** (SIGSTOP/SIGCONT, a VM freeze): :meth:`Network.pause`
  stops a node without killing it.  Its core is neither ticked nor given
  anything: every message that arrives for it (replication, peer calls and
  their replies, forwarded writes and their replies, client requests) is
  held in arrival order, and its own timers (the tick, call and forward
  timeouts) are held until :meth:`Network.resume`.  Its peers' requests time
  out on their side as usual.  On resume the held messages and timers run
  in arrival order, placed around the first tick by ``order`` (a seeded
  choice unless given): ``"runtime"`` as ``runtime/node.py`` does it (the
  replication messages, then the tick, then requests, replies and timers),
  ``"held"`` (everything, then the tick) or ``"tick"`` (the tick first: the
  kernel had not handed anything over yet).
* **One-way loss**: ``oneway_loss[(a, b)] = p`` loses each message from node
  ``a`` to node ``b`` with probability ``p`` (on top of ``loss``), the other
  direction untouched: asymmetric links, flapping peers.
* Both knobs draw from ``net.rng`` only when used, so runs that do not use
  them replay exactly as before.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
from legacy_core import DistroNode  # the old handle contract, for this runtime copy

from meshreg.core.distro import Broadcast, ClusterPolicy, Forward, PeerCall
from meshreg.core.events import PeerDataRejected, ServiceChanged, StallDetected, SyncAnnounced
from meshreg.core.health import HealthPolicy
from meshreg.core.membership import MemberChanged
from meshreg.core.preservation import SelfPreservationEnded, SelfPreservationStarted
from meshreg.wire.batching import DeltaBatcher
from meshreg.wire.messages import RequestRejected, parse_request
from meshreg.wire.peer import (
    Beacon,
    DeltaBatch,
    DigestSummary,
    ReplicatedDelta,
    SessionBeats,
    decode_replication,
    encode_beacon,
    encode_delta,
    encode_digest,
    encode_sessions,
    parse_peer_request,
)
from meshreg.wire.replies import encode_request

CLIENT_TIMEOUT = 4.0  # s a simulated client waits for a reply (below the 5 s beat interval)

# What a request came to: ("ok", result), ("error", ErrorCode) or ("timeout", None).
Outcome = tuple[str, Any]


def roundtrip(result: Any) -> Any:
    """A result as the other side of the socket sees it."""
    return msgpack.unpackb(msgpack.packb(result), raw=False, strict_map_key=False)


def encode_replication(
    msg: Beacon | ReplicatedDelta | DigestSummary | SessionBeats,
) -> list[bytes]:
    if type(msg) is Beacon:
        return encode_beacon(msg)
    if type(msg) is SessionBeats:
        return encode_sessions(msg)
    if type(msg) is ReplicatedDelta:
        return encode_delta(msg)
    return encode_digest(msg)  # type: ignore[arg-type]


class SimNode:
    """One member: its id and address, and its current incarnation (if up)."""

    def __init__(self, node_id: str, address: str, wall_offset: float) -> None:
        self.node_id = node_id
        self.address = address
        self.wall_offset = wall_offset  # this host's clock skew (s)
        self.core: DistroNode | None = None
        self.batcher = DeltaBatcher()  # this incarnation's deltas -> PUB messages
        self.flush_due = False  # a _flush_batch is scheduled (Network.batch_hold)
        self.gen = 0  # incarnations so far
        self.changes: list[tuple[float, ServiceChanged]] = []  # this incarnation's changes
        self.member_events: list[tuple[float, MemberChanged]] = []  # this incarnation's
        # (service, instance) -> (record stamps, tombstone stamps) this incarnation holds
        self.versions: dict[tuple[Any, Any], tuple[Any, Any]] = {}


@dataclass
class _Pending:
    """A request waiting for its reply or its timeout, whichever comes first."""

    done: bool = False


class Network:
    """Simulated clock, links and runtime for a set of DistroNode cores."""

    def __init__(
        self,
        seed: int,
        node_ids: list[str],
        health: HealthPolicy | None = None,
        cluster: ClusterPolicy | None = None,
        max_skew: float = 0.0,
        trace: bool = False,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(f"net-{seed}")
        self.req_ids = itertools.count(1)  # client request ids
        self.instance_ids = itertools.count(0)  # simulated providers' instance numbers
        self.health = health or HealthPolicy()
        self.cluster = cluster or ClusterPolicy()
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        # faults
        self.loss = 0.0  # probability that one message is lost
        self.min_delay = 0.0005  # s
        self.max_delay = 0.02  # s
        self.slow_prob = 0.0  # probability of a slow message (up to slow_max s)
        self.slow_max = 0.0
        self.batch_hold = 0.0  # s a node holds its batch of deltas (0: to the drain's end)
        self.groups: list[frozenset[str]] | None = None  # a partition; None: all connected
        self.blocked_calls: set[tuple[str, str]] = set()  # (caller, callee): requests lost
        self.oneway_loss: dict[tuple[str, str], float] = {}  # (src, dst) -> loss probability
        # paused node -> what arrived or fell due for it meanwhile, in order
        self.paused: dict[str, list[tuple[Callable[..., None], tuple[Any, ...]]]] = {}
        self._held_ticks: dict[str, int] = {}  # paused node -> gen of its held tick
        self.trace: list[str] | None = [] if trace else None
        self.counts: dict[str, int] = {}
        self.violations: list[str] = []  # broken invariants seen while running
        addresses = [f"10.9.0.{i + 1}:7400" for i in range(len(node_ids))]
        self.nodes: dict[str, SimNode] = {}
        for node_id, address in zip(node_ids, addresses, strict=True):
            skew = self.rng.uniform(-max_skew, max_skew)
            self.nodes[node_id] = SimNode(node_id, address, skew)
        self.by_address = {n.address: n for n in self.nodes.values()}
        self.peer_list = list(addresses)  # every node's configured peers (itself included)

    # -- clock ------------------------------------------------------------------------
    def at(self, t: float, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (max(t, self.now), self._seq, fn, args))

    def after(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        self.at(self.now + delay, fn, *args)

    def every(self, interval: float, fn: Callable[[], None], start: float | None = None) -> None:
        """Call ``fn()`` every ``interval`` s (probes and periodic checks)."""

        def step() -> None:
            fn()
            self.after(interval, step)

        self.at(self.now if start is None else start, step)

    def run_until(self, t_end: float) -> None:
        queue = self._queue
        while queue and queue[0][0] <= t_end:
            t, _, fn, args = heapq.heappop(queue)
            self.now = t
            fn(*args)
        self.now = t_end

    def log(self, text: str) -> None:
        if self.trace is not None:
            self.trace.append(f"{self.now:9.4f} {text}")

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    # -- nodes ------------------------------------------------------------------------
    def live(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.core is not None]

    def start(self, node_id: str) -> None:
        """Start (or restart) a node: a new incarnation with an empty store."""
        node = self.nodes[node_id]
        assert node.core is None, f"{node_id} is already running"
        node.gen += 1
        epoch = self.rng.getrandbits(63)
        node.core = DistroNode(
            self.health,
            self.cluster,
            node_id,
            node.address,
            list(self.peer_list),
            epoch,
            self.now,
            node.wall_offset,
        )
        node.batcher = DeltaBatcher()
        node.flush_due = False
        node.changes = []
        node.member_events = []
        node.versions = {}
        self.log(f"START {node_id} gen={node.gen} epoch={epoch}")
        self.count("starts")
        self._tick(node, node.gen)

    def crash(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.core is not None:
            node.core = None
            self.paused.pop(node_id, None)  # a paused process can be killed too
            self._held_ticks.pop(node_id, None)
            self.log(f"CRASH {node_id}")
            self.count("crashes")

    def pause(self, node_id: str) -> None:
        """Stop a node's process (SIGSTOP): nothing reaches its core until ``resume``."""
        node = self.nodes[node_id]
        assert node.core is not None, f"{node_id} is down"
        assert node_id not in self.paused, f"{node_id} is paused already"
        self.paused[node_id] = []
        self.log(f"PAUSE {node_id}")
        self.count("pauses")

    def is_paused(self, node_id: str) -> bool:
        return node_id in self.paused

    RESUME_ORDERS = ("runtime", "held", "tick")

    def resume(self, node_id: str, order: str | None = None) -> None:
        """Continue a paused node (SIGCONT): what it missed runs now, in order.

        ``order`` places its first tick: ``"runtime"`` after the held
        replication messages and before the rest, ``"held"`` after everything
        held, ``"tick"`` before it (None: a seeded choice of the three).
        """
        held = self.paused.pop(node_id, None)
        if held is None:
            return
        node = self.nodes[node_id]
        gen = self._held_ticks.pop(node_id, None)
        if order is None:
            order = self.rng.choice(self.RESUME_ORDERS)
        assert order in self.RESUME_ORDERS, order
        self.log(f"RESUME {node_id}: {len(held)} held, order {order}")
        self.count("resumes")
        if order == "runtime":
            first = [h for h in held if h[0] == self._on_pub]
            held = first + [h for h in held if h[0] != self._on_pub]
            before_tick = len(first)
        else:
            before_tick = len(held) if order == "held" else 0
        for i, (fn, args) in enumerate(held):
            if i == before_tick and gen is not None:
                self._tick(node, gen)
                gen = None
            if node.core is None or node_id in self.paused:
                return  # crashed or paused again by what it ran: the rest is moot
            self._wake(node)
            fn(*args)
        if gen is not None:
            self._tick(node, gen)

    def _hold(self, node: SimNode, fn: Callable[..., None], *args: Any) -> bool:
        """If ``node`` is paused, keep ``fn(*args)`` for its resume and say so."""
        held = self.paused.get(node.node_id)
        if held is None:
            return False
        held.append((fn, args))
        self.count("held")
        return True

    def _tick(self, node: SimNode, gen: int) -> None:
        core = node.core
        if core is None or node.gen != gen:
            return
        if node.node_id in self.paused:
            self._held_ticks[node.node_id] = gen
            return
        wake = core.tick(self.now)
        self._drain(node)
        self.at(max(wake, self.now + 0.001), self._tick, node, gen)

    # -- links ------------------------------------------------------------------------
    def reachable(self, a: str, b: str) -> bool:
        groups = self.groups
        if groups is None:
            return True
        return any(a in g and b in g for g in groups)

    def _delay(self) -> float:
        rng = self.rng
        if self.slow_prob and rng.random() < self.slow_prob:
            return rng.uniform(self.max_delay, self.slow_max)
        return rng.uniform(self.min_delay, self.max_delay)

    def transmit(
        self, src: SimNode | None, dst: SimNode, deliver: Callable[..., None], *args: Any
    ) -> None:
        """Send a message from ``src`` (None: a client) to ``dst``; maybe lose it."""
        if self.loss and self.rng.random() < self.loss:
            self.count("lost")
            return
        if self.oneway_loss and src is not None:
            p = self.oneway_loss.get((src.node_id, dst.node_id), 0.0)
            if p and self.rng.random() < p:
                self.count("lost_oneway")
                return
        src_gen = src.gen if src is not None else 0
        self.after(self._delay(), self._arrive, src, src_gen, dst, dst.gen, deliver, args)

    def _arrive(
        self,
        src: SimNode | None,
        src_gen: int,
        dst: SimNode,
        dst_gen: int,
        deliver: Callable[..., None],
        args: tuple[Any, ...],
    ) -> None:
        if dst.core is None or dst.gen != dst_gen:
            self.count("dropped_dst_down")
            return
        if src is not None:
            if src.gen != src_gen:  # the sender restarted: its old connection is gone
                self.count("dropped_src_restarted")
                return
            if not self.reachable(src.node_id, dst.node_id):
                self.count("dropped_partition")
                return
        if self.paused and self._hold(dst, deliver, *args):
            return
        self._wake(dst)
        deliver(*args)

    def _wake(self, node: SimNode) -> None:
        """The runtime wakes up for input: it first checks whether it was stopped."""
        core = node.core
        if core is not None and core.check_stall(self.now):
            self._drain(node)

    # -- effects ----------------------------------------------------------------------
    def _drain(self, node: SimNode) -> None:
        core = node.core
        if core is None:
            return
        batcher = node.batcher
        for eff in core.take_effects():
            t = type(eff)
            if t is Broadcast:
                msg = eff.message
                if type(msg) is ReplicatedDelta:
                    for frames in batcher.add(msg, self.now):
                        self._publish(node, frames)
                    continue
                if len(batcher):  # the deltas before it go first, as the runtime does
                    self._publish(node, batcher.flush() or [])
                self._publish(node, encode_replication(msg))
            elif t is PeerCall:
                self._peer_call(node, eff)
            elif t is ServiceChanged:
                node.changes.append((self.now, eff))
                self._check_versions(node, eff)
                if self.trace is not None:
                    self.log(
                        f"{node.node_id} {eff.reason} {eff.key.service} "
                        f"+{[f'{v.ip}:{v.port}/{int(v.healthy)}' for v in eff.upserted]} "
                        f"-{[f'{i.ip}:{i.port}' for i in eff.removed]}"
                    )
            elif t is MemberChanged:
                node.member_events.append((self.now, eff))
                self.log(
                    f"{node.node_id} sees {eff.node_id} {eff.state.value}"
                    + (" (restarted)" if eff.restarted else "")
                    + f" members={core.members()} ready={core.ready}"
                )
            elif t is SelfPreservationStarted or t is SelfPreservationEnded:
                self.count(f"self_preservation_{'on' if t is SelfPreservationStarted else 'off'}")
                self.log(f"{node.node_id} {eff!r}")
            elif t is StallDetected:
                self.count("stalls")
                self.log(f"{node.node_id} {eff!r}")
            elif t is PeerDataRejected:
                self.count("peer_data_rejected")
                self.log(f"{node.node_id} {eff!r}")
            elif t is not SyncAnnounced:
                raise AssertionError(f"unknown effect {eff!r}")
        if len(batcher):
            if not self.batch_hold:  # the runtime's turn ends: the batch goes
                self._publish(node, batcher.flush() or [])
            elif not node.flush_due:
                node.flush_due = True
                self.after(self.batch_hold, self._flush_batch, node, node.gen)

    def _flush_batch(self, node: SimNode, gen: int) -> None:
        """The end of a busy turn (``batch_hold``): the deltas held go out."""
        if node.core is None or node.gen != gen:
            return
        if self.paused and self._hold(node, self._flush_batch, node, gen):
            return
        node.flush_due = False
        if len(node.batcher):
            self._publish(node, node.batcher.flush() or [])

    def _publish(self, node: SimNode, frames: list[bytes]) -> None:
        """One replication message from ``node`` to every other live node."""
        self.count(f"pub_{frames[0].decode()}")
        for other in self.nodes.values():
            if other is not node and other.core is not None:
                self.transmit(node, other, self._on_pub, other, frames)

    def _check_versions(self, node: SimNode, change: ServiceChanged) -> None:
        """The merge rule is a join (core/store): per instance, a node only moves up.

        An instance's state on a node is its record's stamps (write, alive,
        down) or, once removed, its tombstone's (write, alive).  A record may
        only move to stamps at least as high, one of them higher; a removal
        must leave a tombstone the record does not survive; a record coming
        back must be newer on both counts than the tombstone.  Anything else
        is a stale copy winning: a resurrection or a lost write.
        """
        key = change.key
        for v in change.upserted:
            iid = (v.ip, v.port, v.cluster)
            rec, tomb = node.versions.get((key, iid), (None, None))
            new = (v.version, v.alive, v.down)
            if rec is not None:
                bad = any(a < b for a, b in zip(new, rec, strict=True)) or new == rec
            else:
                bad = tomb is not None and not (v.version > tomb[0] and v.alive > tomb[1])
            if bad:
                self._went_back(node, key, iid, f"record {new} after {rec} / {tomb}", change)
            node.versions[(key, iid)] = (new, tomb)
        for iid, stamps in zip(change.removed, change.removed_versions, strict=True):
            rec, tomb = node.versions.get((key, tuple(iid)), (None, None))
            joined = stamps if tomb is None else (max(stamps[0], tomb[0]), max(stamps[1], tomb[1]))
            if rec is not None and rec[0] > joined[0] and rec[1] > joined[1]:
                self._went_back(node, key, tuple(iid), f"removal {stamps} of {rec}", change)
            node.versions[(key, tuple(iid))] = (None, joined)

    def _went_back(
        self, node: SimNode, key: Any, iid: Any, what: str, change: ServiceChanged
    ) -> None:
        self.violations.append(
            f"t={self.now:.3f} {node.node_id} went back on {key.service} "
            f"{iid[0]}:{iid[1]}: {what} ({change.reason})"
        )

    def _on_pub(self, node: SimNode, frames: list[bytes]) -> None:
        core = node.core
        assert core is not None
        msg = decode_replication(frames)
        self.count("repl_in")
        if type(msg) is DeltaBatch:
            assert not msg.rejected, msg.rejected  # the sim's nodes send valid deltas
            for delta in msg.deltas:
                core.on_replication(delta, self.now)
        else:
            core.on_replication(msg, self.now)
        self._drain(node)

    # -- peer requests ---------------------------------------------------------------
    def _peer_call(self, node: SimNode, call: PeerCall) -> None:
        body = encode_request(call.op, call.tag, **call.fields)
        target = self.by_address[call.address]
        pending = _Pending()
        self.count(f"call_{call.op}")
        self.log(f"{node.node_id} -> {call.node_id} {call.op} #{call.tag}")
        self.after(
            self.cluster.peer_request_timeout, self._call_timeout, node, node.gen, call, pending
        )
        if target is node:  # cannot happen; the core never calls itself
            raise AssertionError(f"{node.node_id} called itself: {call}")
        if (node.node_id, target.node_id) in self.blocked_calls:
            return
        self.transmit(node, target, self._serve_call, target, node, body, call, pending)

    def _serve_call(
        self, target: SimNode, caller: SimNode, body: bytes, call: PeerCall, pending: _Pending
    ) -> None:
        core = target.core
        assert core is not None
        outcome: Outcome
        try:
            req = parse_peer_request(body)  # the peer plane
            outcome = ("ok", roundtrip(core.handle(req, self.now)))
        except RequestRejected as exc:
            core.rejected(exc)
            outcome = ("error", exc.code)
        self._drain(target)
        self.transmit(target, caller, self._call_replied, caller, call, pending, outcome)

    def _call_replied(
        self, caller: SimNode, call: PeerCall, pending: _Pending, outcome: Outcome
    ) -> None:
        if pending.done:
            return  # the caller gave up already
        pending.done = True
        core = caller.core
        assert core is not None
        if outcome[0] == "ok":
            core.peer_reply(call.tag, outcome[1], self.now)
        else:
            self.log(f"{caller.node_id} call #{call.tag} {call.op} failed: {outcome[1]!r}")
            core.peer_failed(call.tag, self.now)
        self._drain(caller)

    def _call_timeout(self, caller: SimNode, gen: int, call: PeerCall, pending: _Pending) -> None:
        if pending.done:
            return
        held = (caller, gen, call, pending)
        if self.paused and caller.gen == gen and self._hold(caller, self._call_timeout, *held):
            return
        pending.done = True
        core = caller.core
        if core is None or caller.gen != gen:
            return
        self.log(f"{caller.node_id} call #{call.tag} {call.op} to {call.node_id} timed out")
        core.peer_failed(call.tag, self.now)
        self._drain(caller)

    # -- client requests --------------------------------------------------------------
    def client_request(
        self,
        entry: SimNode,
        op: str,
        req_id: int,
        fields: dict[str, Any],
        on_done: Callable[[Outcome], None],
    ) -> None:
        """A client sends a request to ``entry``; ``on_done`` gets exactly one outcome."""
        body = encode_request(op, req_id, **fields)
        call = _Pending()
        self.count(f"client_{op}")

        def finish(outcome: Outcome) -> None:
            if not call.done:
                call.done = True
                on_done(outcome)

        self.after(CLIENT_TIMEOUT, finish, ("timeout", None))
        self.transmit(None, entry, self._serve_client, entry, body, finish)

    def _reply_client(
        self, node: SimNode, finish: Callable[[Outcome], None], outcome: Outcome
    ) -> None:
        if self.loss and self.rng.random() < self.loss:
            self.count("lost")
            return
        self.after(self._delay(), finish, outcome)

    def _serve_client(self, entry: SimNode, body: bytes, finish: Callable[[Outcome], None]) -> None:
        core = entry.core
        assert core is not None
        try:
            req = parse_request(body)
            result = core.handle(req, self.now)
        except RequestRejected as exc:
            core.rejected(exc)
            self._drain(entry)
            self._reply_client(entry, finish, ("error", exc.code))
            return
        self._drain(entry)
        if type(result) is not Forward:
            self._reply_client(entry, finish, ("ok", roundtrip(result)))
            return
        target = self.by_address[result.address]
        if target.core is None:  # its process is gone: the connection fails at once
            self.count("forward_fallback")
            self.log(f"{entry.node_id} applies a forward locally ({target.node_id} is down)")
            self._reply_client(entry, finish, self._apply_forwarded(entry, body))
            return
        self.log(f"{entry.node_id} forwards {req.op} to {target.node_id}")
        pending = _Pending()
        self.after(
            self.cluster.peer_request_timeout,
            self._forward_timeout,
            entry,
            entry.gen,
            body,
            pending,
            finish,
            self.now,
        )
        self.transmit(entry, target, self._serve_forwarded, target, entry, body, pending, finish)

    def _serve_forwarded(
        self,
        target: SimNode,
        entry: SimNode,
        body: bytes,
        pending: _Pending,
        finish: Callable[[Outcome], None],
    ) -> None:
        self.count("forwarded")
        outcome = self._apply_forwarded(target, body)
        self.transmit(target, entry, self._forward_replied, entry, pending, finish, outcome)

    def _apply_forwarded(
        self, node: SimNode, body: bytes, received_at: float | None = None
    ) -> Outcome:
        core = node.core
        assert core is not None
        try:
            req = parse_peer_request(body)  # a forwarded write comes on the peer plane
            result = core.handle(req, self.now, forwarded=True, received_at=received_at)
            outcome: Outcome = ("ok", roundtrip(result))
        except RequestRejected as exc:
            core.rejected(exc)
            outcome = ("error", exc.code)
        self._drain(node)
        return outcome

    def _forward_replied(
        self,
        entry: SimNode,
        pending: _Pending,
        finish: Callable[[Outcome], None],
        outcome: Outcome,
    ) -> None:
        if pending.done:
            return
        pending.done = True
        self._reply_client(entry, finish, outcome)

    def _forward_timeout(
        self,
        entry: SimNode,
        gen: int,
        body: bytes,
        pending: _Pending,
        finish: Callable[[Outcome], None],
        received_at: float,
    ) -> None:
        """The responsible node did not answer: the entry applies it (as the runtime does,
        a beat counting from when the entry received it)."""
        if pending.done:
            return
        if self.paused and entry.gen == gen:
            args = (entry, gen, body, pending, finish, received_at)
            if self._hold(entry, self._forward_timeout, *args):
                return
        pending.done = True
        if entry.core is None or entry.gen != gen:
            return
        self.count("forward_fallback")
        self.log(f"{entry.node_id} applies a forward locally (responsible node unreachable)")
        self._reply_client(entry, finish, self._apply_forwarded(entry, body, received_at))


__all__ = ["CLIENT_TIMEOUT", "Network", "Outcome", "SimNode", "roundtrip"]
