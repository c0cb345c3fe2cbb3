"""A seeded simulated cluster: real node runtimes on the in-memory transport.

Theory of operation
-------------------
* **Clock, links, faults.**  :class:`Network` is a
  :class:`~meshreg.transport.memory.MemoryNetwork`: one float clock and a
  seeded event queue (a run is a pure function of its seed), every message
  one transmission with ``loss``, ``oneway_loss``, random delays (reordering),
  ``slow_prob``/``slow_max`` and ``groups`` (a partition, checked on arrival),
  as described there.  ``blocked_calls`` (caller, callee) loses the peer
  calls (digest pages, reconciles) one node sends another.
* **Nodes.**  A :class:`SimNode` holds one incarnation: a real
  :class:`~meshreg.runtime.node.NodeRuntime` (its ``core`` is the Distro core)
  on its own :class:`~meshreg.transport.memory.MemoryTransport`, with the
  simulated clock and this host's clock skew.  Everything the runtime does
  runs: the fast beat, forwards and their fallback when the owner is
  unreachable (a DEALER to a node with nothing bound fails at once; an owner
  that does not answer times out), the ``written`` frame of a relayed write
  (read-your-writes), peer calls and their timeouts, replication batching.
  A crash closes the transport (what is in flight to or from it is lost); a
  restart makes a new runtime at the same id and address with a new epoch
  and an empty registry store.  ``gen`` counts incarnations.  With
  ``data_dir`` every node keeps its configs (runtime/config_plane) in an
  SQLite database under ``<data_dir>/<node id>``, as ``meshreg node
  --data-dir`` does, so a restarted node reloads what it had committed;
  without it they live in memory and a restart loses them.
* **Turns.**  The runtime's loop is ``prepare``, poll, ``dispatch``; here a
  node runs one turn (:meth:`NodeRuntime.step`) whenever input arrives for
  it, and at the time its last turn asked to be woken.  ``batch_hold`` > 0
  makes every node busy that long: input waits for the next turn, so many
  inputs share one turn and their deltas share replication messages.
* **Process pause** (SIGSTOP/SIGCONT): :meth:`Network.pause` stops a node
  without killing it: no turn runs, what arrives is held in order, its
  timers wait.  On :meth:`Network.resume` the held messages are put in its
  channels and it runs a turn; ``order`` ``"tick"`` runs one turn first (the
  kernel had not handed anything over yet), ``"runtime"`` and ``"held"`` put
  them in first (the runtime's own order inside a turn then applies).
* **Clients.**  :meth:`Network.client_request` sends a request from a new
  client connection to a node's client port; the reply (or
  ``CLIENT_TIMEOUT``) ends it.  :meth:`Network.subscriber` is a client's SUB
  on a node's notification port (service and config topics): it subscribes
  through the node's XPUB as a ZeroMQ SUB does (the runtime admits each
  subscription) and gets what the node publishes.
* **CURVE** (``keys``, a :class:`SimKeys`): every node starts with the cluster
  key and an ACL (``--key``/``--acl``), so the runtime takes its secure paths
  (per-message ``User-Id``, the ACL on requests and subscriptions) and the
  in-memory transport admits connections by the ZAP rules; simulated clients
  present ``keys.app`` unless a test gives another key.
* **Observation.**  The core's effects are recorded as the runtime takes
  them (changes, member events, counts) and the merge rule is checked on
  every change (:meth:`Network._check_versions`).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshreg.config import PUB_PORT_OFFSET, NodeConfig, SecurityConfig, parse_address
from meshreg.core.distro import ClusterPolicy, DistroNode
from meshreg.core.events import PeerDataRejected, ServiceChanged, StallDetected
from meshreg.core.health import HealthPolicy
from meshreg.core.membership import MemberChanged
from meshreg.core.preservation import SelfPreservationEnded, SelfPreservationStarted
from meshreg.core.store import _joined, _written_before
from meshreg.errors import ErrorCode
from meshreg.runtime.node import NodeRuntime
from meshreg.security.keys import generate_key_files, load_secret_key
from meshreg.transport.memory import Frames, MemChannel, MemDealer, MemoryNetwork
from meshreg.wire import limits
from meshreg.wire.messages import decode_body
from meshreg.wire.replies import decode_reply, encode_request

CLIENT_TIMEOUT = 4.0  # s a simulated client waits for a reply (below the 5 s beat interval)
MIN_TURN = 0.001  # s between two timer turns of one node (a turn takes time)

# What a request came to: ("ok", result), ("error", ErrorCode) or ("timeout", None).
Outcome = tuple[str, Any]


@dataclass(frozen=True)
class SimKeys:
    """Key files for a secured simulated cluster (raw public keys for the clients).

    ``cluster``: every node's key file; ``acl``: the ACL file, listing ``app`` (write
    on every name), ``reader`` (read on every name) and ``orders`` (write on services
    ``orders*`` of namespace ``public``, nothing else); ``stranger`` is in no ACL."""

    cluster: str
    acl: str
    cluster_public: bytes
    app: bytes
    reader: bytes
    orders: bytes
    stranger: bytes

    @classmethod
    def make(cls, directory: str | Path) -> SimKeys:
        root = Path(directory)
        raw: dict[str, bytes] = {}
        for name in ("cluster", "app", "reader", "orders", "stranger"):
            key_file, _ = generate_key_files(root / name)
            raw[name] = load_secret_key(key_file).raw_public
        acl = root / "acl.toml"
        acl.write_text(
            '[[client]]\nname = "app"\nkey_file = "app.pub"\n'
            'allow = [{ namespace = "*", access = "write" }]\n'
            '[[client]]\nname = "reader"\nkey_file = "reader.pub"\n'
            'allow = [{ namespace = "*", access = "read" }]\n'
            '[[client]]\nname = "orders"\nkey_file = "orders.pub"\n'
            'allow = [{ namespace = "public", service = "orders*", access = "write" }]\n',
            encoding="utf-8",
        )
        return cls(
            str(root / "cluster.key"),
            str(acl),
            raw["cluster"],
            raw["app"],
            raw["reader"],
            raw["orders"],
            raw["stranger"],
        )


class SimNode:
    """One member: its id and address, and its current incarnation (if up)."""

    def __init__(self, node_id: str, address: str, wall_offset: float) -> None:
        self.node_id = node_id
        self.address = address
        self.wall_offset = wall_offset  # this host's clock skew (s)
        self.runtime: NodeRuntime | None = None
        self.gen = 0  # incarnations so far
        self.wake = 0  # the turn scheduled last (older scheduled turns are void)
        self.turn_due = False  # batch_hold: a turn for input is scheduled
        self.held_turn = False  # paused: a turn fell due meanwhile
        self.fallbacks = 0  # this incarnation's forwards applied locally, counted so far
        self.changes: list[tuple[float, ServiceChanged]] = []  # this incarnation's changes
        self.member_events: list[tuple[float, MemberChanged]] = []  # this incarnation's
        # (service, instance) -> (record stamps, tombstone stamps) this incarnation holds
        self.versions: dict[tuple[Any, Any], tuple[Any, Any, Any]] = {}

    @property
    def core(self) -> DistroNode | None:
        return self.runtime.core if self.runtime is not None else None


class SimSubscriber(MemChannel):
    """A client's SUB on a node's notification port (P+1): every message the XPUB bound
    there publishes goes to ``on_message`` (the client filters by topic).  ``subscribe``
    sends the subscription to the XPUB; :meth:`reconnect` sends them all again when a
    new XPUB is bound there (the node restarted), as a ZeroMQ SUB does on reconnect."""

    kind = "CLIENT-SUB"

    def __init__(
        self,
        net: MemoryNetwork,
        endpoint: str,
        on_message: Callable[[Frames], None],
        key: bytes | None = None,
    ) -> None:
        super().__init__(net, None)
        self.curve_key = key
        self.endpoint = endpoint
        self.on_message = on_message
        self.topics: list[bytes] = []
        self._xpub: MemChannel | None = net.bound.get(endpoint)
        self._generation = getattr(self._xpub, "generation", 0)
        net.subscribers.setdefault(endpoint, []).append(self)

    def subscribe(self, topic: bytes) -> None:
        self.topics.append(topic)
        if self._xpub is not None and not self._xpub.closed:
            self.net.transmit(self, self._xpub, [b"\x01" + topic])

    def reconnect(self) -> bool:
        """Subscribe again if the XPUB bound at the endpoint changed, or dropped its
        connections (``reset_notifications``); True if so."""
        xpub = self.net.bound.get(self.endpoint)
        generation = getattr(xpub, "generation", 0)
        if xpub is None or (xpub is self._xpub and generation == self._generation):
            return False
        self._xpub, self._generation = xpub, generation
        for topic in self.topics:
            self.net.transmit(self, xpub, [b"\x01" + topic])
        return True

    def _deliver(self, src: MemChannel | None, frames: Frames) -> None:
        self.on_message(frames)


class Network(MemoryNetwork):
    """Simulated clock, links and node runtimes."""

    RESUME_ORDERS = ("runtime", "held", "tick")

    def __init__(
        self,
        seed: int,
        node_ids: list[str],
        health: HealthPolicy | None = None,
        cluster: ClusterPolicy | None = None,
        max_skew: float = 0.0,
        trace: bool = False,
        data_dir: str | None = None,
        node_options: dict[str, Any] | None = None,
        keys: SimKeys | None = None,
    ) -> None:
        super().__init__(seed)
        self.keys = keys  # CURVE and an ACL on every node (None: insecure, as before)
        self.client_key = keys.app if keys is not None else None  # what clients present
        self.data_dir = data_dir  # each node's configs in <data_dir>/<node id> (None: memory)
        self.node_options = node_options or {}  # more NodeConfig fields (config_keep_*, ...)
        self.options_of: dict[str, dict[str, Any]] = {}  # one node's, at its next starts
        self.req_ids = itertools.count(1)  # client request ids
        self.instance_ids = itertools.count(0)  # simulated providers' instance numbers
        self.health = health or HealthPolicy()
        self.cluster = cluster or ClusterPolicy()
        self.batch_hold = 0.0  # s a node is busy per turn (0: it serves input at once)
        self.blocked_calls: set[tuple[str, str]] = set()  # (caller, callee): calls lost
        self.drop = self._inspect
        self.trace: list[str] | None = [] if trace else None
        self.violations: list[str] = []  # broken invariants seen while running
        addresses = [f"10.9.0.{i + 1}:7400" for i in range(len(node_ids))]
        self.nodes: dict[str, SimNode] = {}
        for node_id, address in zip(node_ids, addresses, strict=True):
            skew = self.rng.uniform(-max_skew, max_skew)
            self.nodes[node_id] = SimNode(node_id, address, skew)
        self.by_address = {n.address: n for n in self.nodes.values()}
        self.peer_list = list(addresses)  # every node's configured peers (itself included)
        self.peer_lists: dict[str, list[str]] = {}  # a node's own list instead (mismatches)

    # -- clock ------------------------------------------------------------------------
    def every(self, interval: float, fn: Callable[[], None], start: float | None = None) -> None:
        """Call ``fn()`` every ``interval`` s (probes and periodic checks)."""

        def step() -> None:
            fn()
            self.after(interval, step)

        self.at(self.now if start is None else start, step)

    def log(self, text: str) -> None:
        if self.trace is not None:
            self.trace.append(f"{self.now:9.4f} {text}")

    # -- nodes ------------------------------------------------------------------------
    def live(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.runtime is not None]

    def start(self, node_id: str) -> None:
        """Start (or restart) a node: a new incarnation with an empty registry store."""
        node = self.nodes[node_id]
        assert node.runtime is None, f"{node_id} is already running"
        node.gen += 1
        epoch = self.rng.getrandbits(63)
        host, port = parse_address(node.address)
        config = NodeConfig(
            host=host,
            port=port,
            health=self.health,
            cluster=self.cluster,
            node_id=node_id,
            peers=tuple(self.peer_lists.get(node_id, self.peer_list)),
            security=SecurityConfig(key=self.keys.cluster, acl=self.keys.acl)
            if self.keys is not None
            else SecurityConfig(insecure=True),
            data_dir=os.path.join(self.data_dir, node_id) if self.data_dir else "",
            **{**self.node_options, **self.options_of.get(node_id, {})},
        )
        transport = self.transport(node_id)
        runtime = NodeRuntime(
            config, self.clock, epoch, transport=transport, wall_offset=node.wall_offset
        )
        node.runtime = runtime
        node.changes = []
        node.member_events = []
        node.versions = {}
        node.fallbacks = 0
        node.turn_due = node.held_turn = False
        self._observe(node, runtime.core)
        gen = node.gen
        transport.on_input = lambda: self._input(node, gen)
        runtime.start_loop()
        self.log(f"START {node_id} gen={node.gen} epoch={epoch}")
        self.count("starts")
        self._turn(node, gen)

    def crash(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.runtime is not None:
            runtime, node.runtime = node.runtime, None
            runtime.close()
            self.release(node_id)  # a paused process can be killed too
            self.log(f"CRASH {node_id}")
            self.count("crashes")

    def pause(self, node_id: str) -> None:
        """Stop a node's process (SIGSTOP): nothing reaches its runtime until ``resume``."""
        node = self.nodes[node_id]
        assert node.runtime is not None, f"{node_id} is down"
        assert not self.is_paused(node_id), f"{node_id} is paused already"
        super().pause(node_id)
        self.log(f"PAUSE {node_id}")
        self.count("pauses")

    def resume(self, node_id: str, order: str | None = None) -> None:
        """Continue a paused node (SIGCONT): what it missed runs now.

        ``order``: ``"tick"`` runs a turn before the held input is visible,
        ``"runtime"``/``"held"`` after (None: a seeded choice of the three).
        """
        if not self.is_paused(node_id):
            return
        held = self.release(node_id)
        node = self.nodes[node_id]
        if order is None:
            order = self.rng.choice(self.RESUME_ORDERS)
        assert order in self.RESUME_ORDERS, order
        self.log(f"RESUME {node_id}: {len(held)} held, order {order}")
        self.count("resumes")
        node.held_turn = False
        if order == "tick":
            self._turn(node, node.gen)
            if node.runtime is None or self.is_paused(node_id):
                return
        self.deliver_held(held)
        self._turn(node, node.gen)

    # -- turns ------------------------------------------------------------------------
    def _input(self, node: SimNode, gen: int) -> None:
        """Input arrived for ``node``: it runs a turn (after ``batch_hold``, if busy)."""
        if not self.batch_hold:
            self._turn(node, gen)
        elif not node.turn_due:
            node.turn_due = True
            self.after(self.batch_hold, self._busy_turn, node, gen)

    def _busy_turn(self, node: SimNode, gen: int) -> None:
        if node.gen == gen:
            node.turn_due = False
            self._turn(node, gen)

    def _woken(self, node: SimNode, gen: int, wake: int) -> None:
        if node.wake == wake:
            self._turn(node, gen)

    def _turn(self, node: SimNode, gen: int) -> None:
        """One turn of the node's loop; then wake it when it asked to be."""
        runtime = node.runtime
        if runtime is None or node.gen != gen:
            return
        if self._paused and self.is_paused(node.node_id):
            node.held_turn = True
            return
        timeout = runtime.step()
        peers = runtime._peers
        if peers is not None and peers.forward_failures != node.fallbacks:
            for _ in range(peers.forward_failures - node.fallbacks):
                self.count("forward_fallback")
                self.log(f"{node.node_id} applies a forward locally (owner unreachable)")
            node.fallbacks = peers.forward_failures
        node.wake += 1
        self.after(max(timeout, MIN_TURN), self._woken, node, gen, node.wake)

    # -- links ------------------------------------------------------------------------
    def _inspect(self, src: MemChannel, dst: MemChannel, frames: list[bytes]) -> bool:
        """Counts what the tests count; True: lose it (``blocked_calls``)."""
        if type(src) is MemDealer and len(frames) == 2 and frames[0] == b"":
            op = decode_body(frames[1], limits.MAX_PEER_BODY_BYTES).get("op", "?")  # a peer's
            caller, callee = src.name, dst.name
            self.count(f"call_{op}")
            self.log(f"{caller} -> {callee} {op}")
            if (caller, callee) in self.blocked_calls:
                return True
        return False

    # -- observation ------------------------------------------------------------------
    def _observe(self, node: SimNode, core: DistroNode) -> None:
        """Record the core's effects as the runtime takes them."""
        take = core.take_effects

        def taken() -> list[Any]:
            effects = take()
            for eff in effects:
                self._record(node, core, eff)
            return effects

        core.take_effects = taken  # type: ignore[method-assign]

    def _record(self, node: SimNode, core: DistroNode, eff: Any) -> None:
        t = type(eff)
        if t is ServiceChanged:
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

    def _check_versions(self, node: SimNode, change: ServiceChanged) -> None:
        """The merge rule is a join (core/store): per instance, a node only moves up.

        An instance's state on a node is its record's stamps (write, alive,
        down) or, once removed, its tombstone's (write, alive).  A record may
        only move to stamps at least as high, one of them higher; a removal
        must leave a tombstone the record does not survive; a record coming
        back must be newer on both counts than the tombstone (a session-scoped
        one: or written by another session after its base).  Anything else
        is a stale copy winning: a resurrection or a lost write.
        """
        key = change.key
        for v in change.upserted:
            iid = (v.ip, v.port, v.cluster)
            rec, tomb, _ = node.versions.get((key, iid), (None, None, None))
            new = (v.version, v.alive, v.down)
            if rec is not None:
                bad = any(a < b for a, b in zip(new, rec, strict=True)) or new == rec
            else:
                bad = tomb is not None and (
                    v.alive <= tomb[1] or _written_before(v.version, v.session, tomb)
                )
            if bad:
                self._went_back(node, key, iid, f"record {new} after {rec} / {tomb}", change)
            node.versions[(key, iid)] = (new, tomb, v.session)
        scopes = {s[0]: s for s in change.removed_scopes}
        for iid, stamps in zip(change.removed, change.removed_versions, strict=True):
            rec, tomb, session = node.versions.get((key, tuple(iid)), (None, None, None))
            scope = scopes.get(iid)
            s, base = (None, stamps[0]) if scope is None else (scope[1], scope[2])
            version, alive, s, base = _joined(tomb, stamps[0], stamps[1], s, base)
            joined = (version, alive, 0.0, s, base)  # a tombstone as core/store holds it
            if rec is not None and rec[1] > alive and not _written_before(rec[0], session, joined):
                self._went_back(node, key, tuple(iid), f"removal {stamps} of {rec}", change)
            node.versions[(key, tuple(iid))] = (None, joined, None)

    def _went_back(
        self, node: SimNode, key: Any, iid: Any, what: str, change: ServiceChanged
    ) -> None:
        self.violations.append(
            f"t={self.now:.3f} {node.node_id} went back on {key.service} "
            f"{iid[0]}:{iid[1]}: {what} ({change.reason})"
        )

    # -- client requests --------------------------------------------------------------
    def subscriber(
        self, node: SimNode, on_message: Callable[[Frames], None], key: bytes | None = None
    ) -> SimSubscriber:
        """A client's SUB connected to ``node``'s notification port (``key``: the CURVE
        key it presents; None: the network's client key; ``b""``: none)."""
        host, port = parse_address(node.address)
        endpoint = f"{host}:{port + PUB_PORT_OFFSET}"
        return SimSubscriber(self, endpoint, on_message, self.client_key if key is None else key)

    def client_request(
        self,
        entry: SimNode,
        op: str,
        req_id: int,
        fields: dict[str, Any],
        on_done: Callable[[Outcome], None],
        key: bytes | None = None,
        port_offset: int = 0,
    ) -> None:
        """A client sends a request to ``entry``; ``on_done`` gets exactly one outcome.

        ``key``: the CURVE key it presents (None: the network's client key; ``b""``:
        none);
        ``port_offset``: 0 for the client port (P), else another of the node's ports
        (an attacker speaking to the peer port, P+3)."""
        done = False
        self.count(f"client_{op}")

        def finish(outcome: Outcome) -> None:
            nonlocal done
            if not done:
                done = True
                on_done(outcome)

        def replied(frames: list[bytes]) -> None:
            reply = decode_reply(frames[-1])
            if reply["ok"]:
                finish(("ok", reply.get("result")))
            else:
                finish(("error", ErrorCode(reply["error"]["code"])))

        self.after(CLIENT_TIMEOUT, finish, ("timeout", None))
        address = entry.address
        if port_offset:
            host, port = parse_address(address)
            address = f"{host}:{port + port_offset}"
        client = self.client(address, replied, self.client_key if key is None else key)
        client.send_multipart([b"", encode_request(op, req_id, **fields)])


__all__ = ["CLIENT_TIMEOUT", "Network", "Outcome", "SimKeys", "SimNode", "SimSubscriber"]
