"""review75: the REAL client session (meshreg/client/session.py ``ClientSession``) making
REGISTRY writes against the real node runtimes of the seeded simulation (tests/sim).

Theory of operation
-------------------
* **The cluster, faults and probe** are tests/sim/test_faults_sim.py's ``Faults`` (nodes
  started 0.1 s apart, pauses with a seeded resume order, partitions of nodes, one-way
  loss between nodes, kill + restart, the per-sample probe every 0.1 s); its providers
  (``beaters``) are replaced by :class:`Inst`, one per instance *lifecycle* of a real
  client (a re-registration after a deregistration is a new lifecycle).
* **A client** (:class:`SimClient`) is one ``ClientSession`` driven as client/agent.py
  drives it, with the simulated clock (``wall_offset`` 0: nodes' wall clocks are the
  simulation's, so the session stamps deadlines and ``after`` as the real Client does):

  - ``SendRequest(via=None)`` goes on the server connection: sent at once when its
    handshake is done, else queued on it (libzmq without IMMEDIATE) and sent when the
    handshake completes; dropped with the connection when a ``ConnectServer`` replaces
    it.  ``SendRequest(via=member)`` goes on that member's own DEALER (ZMQ_IMMEDIATE:
    sent only on a completed connection, else ``DirectSend.NOT_CONNECTED``), reported
    with ``direct_send_result`` as ``ClientAgent._send`` does.
  - Connection events as libzmq's monitors report them, seen every ``MONITOR`` s: a node
    that is up and running completes the handshake (``server_tcp_connected`` +
    ``server_handshaken``); a paused node accepts TCP only (``server_tcp_connected``; the
    handshake completes when it resumes); a node down: ``server_unreachable`` every
    ``RETRY_IVL`` s (EVENT_CONNECT_RETRIED); a node that died or restarted under an
    established connection: ``server_disconnected`` (server) / ``member_disconnected``
    (member DEALERs).  ``ConnectServer(settle=n)``: ``previous_connection_closed(n,
    handshaken)`` with whether the replaced connection had completed a handshake not
    reported yet.
  - the SUB on the server's notification port (moved with the server, subscribed again
    when its node restarts), notifications to ``on_notification``; ``CallListener`` calls
    the listener with the list at once (the notifier thread, without its delay).
  - ticks at ``next_wake`` (the loop's poll: ``int((wake-now)*1000)+1`` ms).
  - a killed client (SIGKILL) stops: nothing more is sent, replies are ignored; what is
    already on the wire arrives (the kernel delivers what was written).
  - ``close`` is ``Client.close`` step by step (CloseSession with half the budget,
    ListRegistrations(closing), Deregister of each with what is left, Settle, Shutdown).
* **A provider** (:class:`SessionProvider`) registers K instances (some with ``Register``,
  some in a ``RegisterBatch`` as ``register_many``), in a session or with per-instance
  beats, and at scheduled times deregisters some, registers some again, closes or is
  killed.  **A consumer** (:class:`SessionConsumer`) subscribes to services and records
  every list its listener got, with the time.

Invariants (checked per sample every 0.1 s and at the end; ``Faults`` defines "live",
"checked" and "faulted" exactly as tests/sim/test_faults_sim.py does, with the sends of
the real session: a renewal / beat / register reaches the nodes its target node can
reach when it is sent, none when that node is paused or down):

a. **no live instance lost**: an instance whose client is alive and keeps it (registered,
   acknowledged, not deregistered) is listed and healthy on every unfaulted node once it
   has been live for that node for the grace, and on every node at the end.
b. **no resurrection**: an instance whose deregistration the client was told OK, or whose
   client was killed (and then evicted), once gone from a ready node, does not come back
   there.  ALLOWED: the documented window (CHANGELOG review72 / PROTOCOL 2.1): a late copy
   of a register may list a deregistered instance until the client's follow-up
   deregistration, about a second; each resurrection is timed and one that lasts more
   than ``BACK_LIMIT`` (2 s) or is never repaired is a violation; a resurrection of an
   instance of a KILLED client (no follow-up can come) is a violation whatever its
   length, except on a node that had not heard its last beat (as test_faults_sim).
c. **empty protection**: a consumer's listener is never called with an empty list for a
   service one of whose instances was live (client alive, registered and acknowledged for
   at least the grace, not deregistered) at that time; and at the end its last list is
   the truth (every live instance, healthy; nothing else) within ``CONVERGE`` s after the
   faults end.
d. **convergence**: at the end every node holds the same table, every member ready
   (tests/sim/test_distro_sim.py ``check_invariants``), the repair traffic quiet.

Replay: every scenario prints its seed; ``MESHREG_R75_SEED=<seed>
MESHREG_R75_SCENARIO=<name> pytest -n 0 -p no:cacheprovider -s
tests/review75/test_r75_sweep.py -k replay`` replays one; ``MESHREG_SIM_TRACE=/tmp/t.txt``
writes the trace.
"""

from __future__ import annotations

import os
import random
import sys
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(os.path.dirname(HERE), "sim")
if SIM not in sys.path:
    sys.path.insert(0, SIM)

from network import Network, SimSubscriber  # noqa: E402
from test_distro_sim import check_invariants, lookup, run_settled  # noqa: E402
from test_faults_sim import DEFAULT, SHORT, Faults, Timings  # noqa: E402

from meshreg.client.actions import (  # noqa: E402
    CallListener,
    Complete,
    ConnectServer,
    DirectSend,
    Fail,
    LogLine,
    SendRequest,
    UnwatchTopic,
    WatchTopic,
)
from meshreg.client.commands import (  # noqa: E402
    CloseSession,
    Deregister,
    ListRegistrations,
    Register,
    RegisterBatch,
    Registration,
    Settle,
    Shutdown,
    Subscribe,
)
from meshreg.client.messages import decode_notification_frames, decode_reply_frames  # noqa: E402
from meshreg.client.session import ClientSession, SessionSettings  # noqa: E402
from meshreg.config import parse_address  # noqa: E402
from meshreg.errors import RemoteProtocolError  # noqa: E402
from meshreg.model import InstanceId, ServiceKey  # noqa: E402
from meshreg.transport.memory import MemClient  # noqa: E402
from meshreg.wire.notifications import topic_for  # noqa: E402

MONITOR = 0.005  # s between two looks at the connections (libzmq's monitor events)
RETRY_IVL = 0.1  # s; libzmq's reconnect interval: a connect to nothing is retried
BACK_LIMIT = 2.0  # s a resurrection may last (the documented window is about 1 s)
CONVERGE = 15.0  # s after the faults end for a consumer's list to be the truth
NS, GROUP = "public", "DEFAULT_GROUP"
TRACE_FILE = os.environ.get("MESHREG_SIM_TRACE")

# the real client learns beat_every = unhealthy_after / 3 (1 s at the short timings)
R_SHORT = Timings("short", SHORT.health, SHORT.cluster, 1.0)
R_DEFAULT = Timings("default", DEFAULT.health, DEFAULT.cluster, 5.0)
R_TIMINGS = {"short": R_SHORT, "default": R_DEFAULT}


class Handle:
    """A caller's Future, for the session's Complete/Fail."""

    def __init__(self, what: str = "") -> None:
        self.what = what
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.at = -1.0
        self.hooks: list[Callable[[Handle], None]] = []

    def done(self) -> bool:
        return self.finished

    def finish(self, now: float, result: Any = None, error: BaseException | None = None) -> None:
        if self.finished:
            return
        self.result, self.error, self.finished, self.at = result, error, True, now
        for hook in self.hooks:
            hook(self)


class Conn:
    """The server connection (one per ConnectServer)."""

    def __init__(self, chan: MemClient, address: str, number: int) -> None:
        self.chan = chan
        self.address = address
        self.number = number
        self.tcp = False
        self.up = False  # handshake completed (and reported)
        self.gen = 0  # the node incarnation it is connected to
        self.queue: list[bytes] = []  # sent before the handshake: leave when it completes
        self.next_retry = 0.0


class Direct:
    """A member's DEALER (ZMQ_IMMEDIATE)."""

    def __init__(self, chan: MemClient) -> None:
        self.chan = chan
        self.up = False
        self.gen = 0


class SimClient:
    """A real ClientSession on the simulated network (see the module docstring)."""

    def __init__(
        self,
        sc: Faults,
        name: str,
        first: str,
        sessions: bool,
        attempt: float = 1.0,
        beat: float = 5.0,
        timeout: float = 3.0,
    ) -> None:
        self.sc, self.net, self.name = sc, sc.net, name
        net = self.net
        ids = list(net.nodes)
        order = ids[ids.index(first) :] + ids[: ids.index(first)]
        servers = [parse_address(net.nodes[i].address) for i in order]
        settings = SessionSettings(beat, attempt, 10.0, True, False, (), 0.0, False)
        self.sid = f"{random.Random(name).getrandbits(128):032x}" if sessions else None
        session = (NS, self.sid) if self.sid is not None else None
        self.session = ClientSession(servers, settings, session)
        self.timeout = timeout
        self.conn: Conn | None = None
        self.conns = 0
        self.direct: dict[str, Direct] = {}
        self.sub: SimSubscriber | None = None
        self.topics: set[bytes] = set()
        self.alive = False
        self.killed_at: float | None = None
        self.wake = 0
        self.sends: deque[tuple[float, frozenset[str], str, tuple[Any, ...]]] = deque(maxlen=256)
        self.logs: list[str] = []
        # client <-> node link faults: node id -> "both" | "requests" | "replies" lost
        self.cut: dict[str, str] = {}
        self.on_send: list[Callable[[str, dict[str, Any], str], None]] = []

    # -- life --------------------------------------------------------------------------
    def start(self) -> None:
        self.alive = True
        self.perform(self.session.start(self.net.now))
        self.net.every(MONITOR, self._monitor)

    def kill(self) -> None:
        """SIGKILL: nothing more from this client; what is on the wire still arrives."""
        if not self.alive:
            return
        self.alive = False
        self.killed_at = self.net.now
        self.net.log(f"CLIENT {self.name} KILLED")
        if self.sub is not None:
            self.sub.close()

    def do(self, command: Any) -> None:
        if self.alive:
            self.perform(self.session.handle(command, self.net.now))

    # -- actions -------------------------------------------------------------------------
    def perform(self, actions: list[Any]) -> None:
        if not self.alive:
            return
        net, session = self.net, self.session
        for action in actions:
            match action:
                case SendRequest(request_id=rid, body=body, via=via):
                    self._note_send(body, via)
                    if via is None:
                        conn = self.conn
                        assert conn is not None
                        if conn.up:
                            conn.chan.send_multipart([b"", body])
                        else:
                            conn.queue.append(body)
                    else:
                        direct = self.direct.get(via)
                        if direct is None:
                            direct = self._open_direct(via)
                        if direct is None:
                            outcome = DirectSend.UNUSABLE
                        elif direct.up:
                            direct.chan.send_multipart([b"", body])
                            outcome = DirectSend.SENT
                        else:
                            outcome = DirectSend.NOT_CONNECTED
                        self.perform(session.direct_send_result(rid, outcome, net.now))
                case ConnectServer(host=host, port=port, settle=settle):
                    self._connect(f"{host}:{port}", settle)
                case WatchTopic(key=key):
                    self.topics.add(topic_for(key))
                    if self.sub is not None:
                        self.sub.subscribe(topic_for(key))
                case UnwatchTopic(key=key):
                    self.topics.discard(topic_for(key))
                case CallListener(listener=listener, listing=listing):
                    listener(listing)
                case Complete(reply_to=handle, result=result):
                    if handle is not None:
                        handle.finish(net.now, result)
                case Fail(reply_to=handle, error=error):
                    if handle is not None:
                        handle.finish(net.now, None, error)
                case LogLine(level=level, text=text):
                    if level in ("warning", "error") and len(self.logs) < 200:
                        self.logs.append(f"{net.now:.3f} {level} {text[:300]}")
                    net.log(f"{self.name}: {level} {text[:300]}")
                case _:
                    pass  # SaveToDisk, config actions
        self.wake += 1
        now = net.now
        wake = session.next_wake(now)
        delay = int(max(0.0, wake - now) * 1000.0) / 1000.0 + 0.001
        net.at(now + delay, self._tick, self.wake)

    def _tick(self, wake: int) -> None:
        if wake == self.wake and self.alive and not self.session.closed:
            self.perform(self.session.tick(self.net.now))

    def _note_send(self, body: bytes, via: str | None) -> None:
        net = self.net
        msg = msgpack.unpackb(body, raw=False)
        op = msg.get("op", "?")
        to = via or self.session.server
        node = net.by_address.get(to)
        heard: frozenset[str] = frozenset()
        if node is not None and node.runtime is not None and not net.is_paused(node.node_id):
            heard = frozenset(n for n in net.nodes if net.reachable(node.node_id, n))
        if op in ("beat", "register", "deregister"):
            idents: tuple[Any, ...] = ((msg["service"], msg["ip"], msg["port"]),)
        elif op == "register_batch":
            idents = tuple((e["service"], e["ip"], e["port"]) for e in msg["instances"])
        else:
            idents = ()
        self.sends.append((net.now, heard, op, idents))
        net.log(
            f"{self.name} -> {node.node_id if node else to} {op} id={msg.get('id')} "
            f"{[f'{s}/{p}' for s, _, p in idents][:4]} after={msg.get('after')} "
            f"deadline={msg.get('deadline')}"
        )
        for hook in self.on_send:
            hook(op, msg, node.node_id if node else to)

    # -- connections ---------------------------------------------------------------------
    def _connect(self, address: str, settle: int | None) -> None:
        net, session = self.net, self.session
        old = self.conn
        handshaken = False
        if old is not None:
            node = net.by_address.get(old.address)
            # a handshake completed that the monitor had not reported yet
            handshaken = (
                not old.up
                and node is not None
                and node.runtime is not None
                and not net.is_paused(node.node_id)
                and bool(old.queue)
            )
            if handshaken:  # what was queued left before the socket closed
                for body in old.queue:
                    old.chan.send_multipart([b"", body])
            old.queue.clear()
            old.chan.close()
        self.conns += 1
        chan = net.client(address, self._replied_server)
        chan.r75_client = self  # type: ignore[attr-defined]
        self.conn = Conn(chan, address, self.conns)
        session.server_connected(address, None)
        net.log(f"{self.name} CONNECT {address} settle={settle}")
        if settle is not None:
            self.perform(session.previous_connection_closed(settle, handshaken, net.now))
        host, port = parse_address(address)
        node = net.by_address[address]
        from meshreg.config import PUB_PORT_OFFSET

        endpoint = f"{host}:{port + PUB_PORT_OFFSET}"
        if self.sub is None or self.sub.endpoint != endpoint:
            if self.sub is not None:
                self.sub.close()
            self.sub = net.subscriber(node, self._pushed)
            self.sub.r75_client = self  # type: ignore[attr-defined]
            for topic in sorted(self.topics):
                self.sub.subscribe(topic)

    def _open_direct(self, address: str) -> Direct | None:
        if address not in self.net.by_address:
            return None
        source = address

        def replied(frames: list[bytes]) -> None:
            self._replied(source, frames)

        chan = self.net.client(address, replied)
        chan.r75_client = self  # type: ignore[attr-defined]
        direct = Direct(chan)
        self.direct[address] = direct
        return direct

    def _monitor(self) -> None:
        if not self.alive or self.session.closed:
            return
        net = self.net
        if self.sub is not None:
            self.sub.reconnect()
        conn = self.conn
        if conn is not None:
            node = net.by_address[conn.address]
            down = node.runtime is None
            paused = not down and net.is_paused(node.node_id)
            if conn.up and (down or node.gen != conn.gen):
                conn.up = conn.tcp = False
                net.log(f"{self.name} server {node.node_id} disconnected")
                self.perform(self.session.server_disconnected(net.now))
            elif not conn.up and down:
                if net.now >= conn.next_retry:
                    conn.next_retry = net.now + RETRY_IVL
                    conn.tcp = False
                    self.perform(self.session.server_unreachable(net.now))
            elif not conn.up and not down:
                if not conn.tcp:
                    conn.tcp = True
                    self.session.server_tcp_connected()
                if not paused:
                    conn.up, conn.gen = True, node.gen
                    self.session.server_handshaken()
                    queued, conn.queue = conn.queue, []
                    for body in queued:
                        conn.chan.send_multipart([b"", body])
                    self.perform(self.session.tick(net.now))
        for address, direct in list(self.direct.items()):
            node = net.by_address[address]
            down = node.runtime is None
            if direct.up and (down or node.gen != direct.gen):
                direct.up = False
                self.perform(self.session.member_disconnected(address, net.now))
            elif not direct.up and not down and not net.is_paused(node.node_id):
                direct.up, direct.gen = True, node.gen

    def _replied_server(self, frames: list[bytes]) -> None:
        self._replied(self.session.server, frames)

    def _replied(self, source: str, frames: list[bytes]) -> None:
        if not self.alive:
            return
        now = self.net.now
        try:
            reply = decode_reply_frames(frames)
        except RemoteProtocolError as exc:
            self.perform(self.session.on_malformed_reply(source, str(exc), now))
            return
        self.perform(self.session.on_reply(source, reply, now))

    def _pushed(self, frames: list[bytes]) -> None:
        if not self.alive or not frames or not any(frames[0].startswith(t) for t in self.topics):
            return
        try:
            note = decode_notification_frames(frames)
        except (RemoteProtocolError, KeyError, TypeError, ValueError) as exc:
            self.perform(self.session.on_malformed_notification(str(exc), self.net.now))
            return
        self.perform(self.session.on_notification(note, self.net.now))

    # -- processes (a caller thread's sequence of calls) ---------------------------------
    def process(self, gen: Generator[Any, None, None]) -> None:
        """Run a caller: it yields (handles, until): resumed once all are done or then
        (handles None: a sleep until then)."""

        def step() -> None:
            try:
                want = next(gen)
            except StopIteration:
                return
            handles, until = want
            poll(handles, until)

        def poll(handles: list[Handle], until: float) -> None:
            done = handles is not None and all(h.finished for h in handles)  # None: a sleep
            if done or self.net.now >= until or not self.alive:
                step()
            else:
                self.net.after(0.001, poll, handles, until)

        step()


# -- instances and their lifecycles ---------------------------------------------------------
class Inst:
    """One lifecycle of one instance of a provider, in the shape test_faults_sim's probe
    and test_distro_sim's ``check_invariants`` read (``Beater``/``Provider``)."""

    def __init__(self, prov: SessionProvider, service: str, index: int, mode: str) -> None:
        self.prov = prov
        self.key = ServiceKey(NS, GROUP, service)
        self.iid = InstanceId(f"10.7.{index // 200}.{index % 200 + 1}", 9000 + index, "DEFAULT")
        self.index = index
        self.mode = mode  # "register" | "many"
        self.name = f"{service}/{self.iid.ip}:{self.iid.port}#{index}"
        self.entry = prov.name
        self.wanted = False  # the caller's last word: registered
        self.registered_at: float | None = None
        self.stopped_at: float | None = None
        self.stop_at: float = -1.0
        self.deregister = False  # stopped by an acknowledged deregistration (else killed)
        self.superseded = False  # registered again since: a new lifecycle watches it
        self.unexpected: list[str] = []
        self.asked_dereg_at: float | None = None

    @property
    def ident(self) -> tuple[ServiceKey, InstanceId]:
        return (self.key, self.iid)

    @property
    def fields(self) -> dict[str, Any]:
        f = {"namespace": NS, "group": GROUP, "service": self.key.service, "ip": self.iid.ip,
             "port": self.iid.port, "cluster": "DEFAULT"}  # fmt: skip
        return f

    @property
    def active(self) -> bool:
        return self.wanted and self.prov.client.alive and not self.superseded

    @property
    def keeps_beating(self) -> bool:
        return self.active

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def registration(self) -> Registration:
        f = dict(self.fields, weight=1.0, enabled=True, metadata={"i": str(self.index)})
        if self.prov.client.sid is not None:
            f["session"] = self.prov.client.sid
        return Registration(self.key, self.iid, f)

    def _sends(self) -> list[tuple[float, frozenset[str]]]:
        mine = (self.key.service, self.iid.ip, self.iid.port)
        out = []
        for t, heard, op, idents in self.prov.client.sends:
            if op in ("session_renew", "session_open") or (
                op in ("beat", "register", "register_batch") and mine in idents
            ):
                out.append((t, heard))
        return out

    def live_for(self, node_id: str, now: float) -> bool:
        return node_id in self.live_set(now)

    def live_set(self, now: float) -> frozenset[str]:
        """The nodes it is live for at ``now`` (test_faults_sim's ``Faults.sample`` asks
        this once per beater and sample): those a beat within the window reached."""
        if not self.active or self.registered_at is None:
            return frozenset()
        if self.registered_at > now - self.prov.timings.beat:
            return frozenset()
        since = now - self.prov.timings.window
        live: frozenset[str] = frozenset()
        for t, heard in reversed(self._sends()):
            if t <= since:
                break
            live |= heard
        return live

    def heard_at_stop(self, node_id: str) -> bool:
        assert self.stopped_at is not None
        for t, heard in reversed(self._sends()):
            if t <= self.stopped_at:
                return node_id in heard
        return True


class SessionProvider:
    """A real client registering instances and keeping them alive (module docstring)."""

    def __init__(
        self,
        rs: RFaults,
        name: str,
        first: str,
        sessions: bool,
        services: list[str],
        per_service: int,
        many: float = 0.5,
        start: float = 1.0,
    ) -> None:
        self.rs, self.net, self.name = rs, rs.net, name
        self.timings = rs.timings
        self.client = SimClient(rs, name, first, sessions)
        self.insts: list[Inst] = []
        rng = rs.rng
        for service in services:
            for _ in range(per_service):
                index = next(rs.net.instance_ids)
                mode = "many" if rng.random() < many else "register"
                self.insts.append(Inst(self, service, index, mode))
        rs.beaters += self.insts
        self.results: list[str] = []
        self.net.at(start, self._start)

    def _observe(self) -> None:
        """An instance is registered once the session holds it (a register acknowledged,
        or a kept one made later)."""
        held = self.client.session.registrations
        for inst in self.insts:
            if inst.registered_at is None and inst.active and inst.ident in held:
                inst.registered_at = self.net.now

    def _start(self) -> None:
        self.client.start()
        self.net.every(0.05, self._observe)
        singles = [i for i in self.insts if i.mode == "register"]
        batch = [i for i in self.insts if i.mode == "many"]
        for inst in singles:
            self._register(inst)
        if batch:
            for inst in batch:
                inst.wanted = True
            handle = Handle("register_many")
            budget = self.client.timeout + len(batch) / 5000
            items = tuple((inst.registration(), None) for inst in batch)
            self.client.do(RegisterBatch(items, budget, handle))
            handle.hooks.append(lambda h: self.results.append(f"{h.at:.2f} many {h.result}"))

    def _register(self, inst: Inst) -> None:
        inst.wanted = True
        handle = Handle(f"register {inst.name}")
        self._last_handle = handle
        self.client.do(Register(inst.registration(), self.client.timeout, handle))

    def lifecycle(self, inst: Inst) -> Inst:
        """The current lifecycle of ``inst``'s instance."""
        for other in reversed(self.insts):
            if other.iid == inst.iid and other.key == inst.key:
                return other
        return inst

    # -- scheduled actions ----------------------------------------------------------------
    def deregister_at(self, t: float, inst: Inst) -> None:
        self.net.at(t, self._deregister, inst)

    def _deregister(self, inst: Inst) -> None:
        inst = self.lifecycle(inst)
        if not self.client.alive or not inst.wanted:
            return
        inst.wanted = False
        inst.asked_dereg_at = self.net.now
        handle = Handle(f"deregister {inst.name}")

        def done(h: Handle) -> None:
            if h.error is None and not inst.wanted and not inst.superseded:
                inst.stopped_at = h.at
                inst.stop_at = h.at
                inst.deregister = True
            self.results.append(f"{h.at:.2f} deregister {inst.name}: {h.error!r}")

        handle.hooks.append(done)
        self._last_handle = handle
        self.client.do(Deregister(inst.key, inst.iid, inst.fields, self.client.timeout, handle))

    def reregister_at(self, t: float, inst: Inst) -> None:
        self.net.at(t, self._reregister, inst)

    def _reregister(self, inst: Inst) -> None:
        inst = self.lifecycle(inst)
        if not self.client.alive or inst.wanted:
            return
        inst.superseded = True
        fresh = Inst(self, inst.key.service, inst.index, "register")
        self.insts.append(fresh)
        self.rs.beaters.append(fresh)
        self._register(fresh)

    def chain_at(self, t: float, inst: Inst, ops: list[str], gap: float = 0.0) -> None:
        """A caller thread: ``ops`` ("reg" / "dereg") of ``inst``'s instance one after
        the other, each as soon as the previous returned (plus ``gap`` s)."""
        self.net.at(t, self._chain, inst, list(ops), gap)

    def _chain(self, inst: Inst, ops: list[str], gap: float) -> None:
        client = self.client

        def run() -> Generator[Any, None, None]:
            for op in ops:
                cur = self.lifecycle(inst)
                before = len(self.results)
                if op == "reg":
                    if cur.wanted and not cur.superseded:
                        continue
                    self._reregister(cur)
                    h = self._last_handle
                else:
                    if not cur.wanted:
                        continue
                    self._deregister(cur)
                    h = self._last_handle
                del before
                yield [h], self.net.now + 10.0
                if gap:
                    yield None, self.net.now + gap

        client.process(run())

    def kill_at(self, t: float) -> None:
        self.net.at(t, self._kill)

    def _kill(self) -> None:
        if not self.client.alive:
            return
        now = self.net.now
        for inst in self.insts:
            if inst.wanted and not inst.superseded:
                inst.stopped_at = inst.stop_at = now
                inst.deregister = False
        self.client.kill()

    def close_at(self, t: float, budget: float = 3.0) -> None:
        self.net.at(t, self._close, budget)

    def _close(self, budget: float) -> None:
        """``Client.close(budget)``, step by step (client.py)."""
        client = self.client
        if not client.alive:
            return
        net = self.net
        begun = net.now
        ends = begun + budget
        closing = [i for i in self.insts if i.wanted and not i.superseded]
        for inst in closing:
            inst.wanted = False
            inst.asked_dereg_at = begun

        def run() -> Generator[Any, None, None]:
            if client.sid is not None:
                h = Handle("close session")
                client.do(CloseSession(budget / 2, h))
                yield [h], net.now + budget / 2 + 1.0
            h = Handle("list")
            wait = max(0.0, min(budget / 2, ends - net.now))
            client.do(ListRegistrations(h, closing=True, wait=wait))
            yield [h], net.now + budget + 1.0
            pending = []
            for key, iid, fields in h.result or ():
                d = Handle(f"close deregister {iid}")
                client.do(Deregister(key, iid, fields, max(0.05, ends - net.now), d))
                pending.append(d)
            yield pending, net.now + budget + 1.0
            s = Handle("settle")
            client.do(Settle(s, wait=max(0.0, ends - net.now)))
            yield [s], net.now + budget + 1.0
            left = s.result or ()
            self.results.append(f"{net.now:.2f} close settled, left {list(left)}")
            errors = [d.error for d in pending if d.error is not None]
            ok = not errors and not left
            for inst in closing:
                inst.stopped_at = inst.stop_at = net.now
                inst.deregister = ok  # the close's word: every deregistration answered
            sd = Handle("shutdown")
            client.do(Shutdown(sd))
            yield [sd], net.now + budget + 1.0
            client.alive = False
            if client.sub is not None:
                client.sub.close()

        client.process(run())


class SessionConsumer:
    """A real client watching services; ``calls[service]``: (time, sorted list)."""

    def __init__(self, rs: RFaults, name: str, first: str, services: list[str],
                 start: float = 0.5) -> None:  # fmt: skip
        self.rs, self.net, self.name = rs, rs.net, name
        self.client = SimClient(rs, name, first, sessions=False)
        self.services = services
        self.calls: dict[str, list[tuple[float, tuple[tuple[str, int, bool], ...]]]] = {
            s: [] for s in services
        }
        self.net.at(start, self._start)

    def _start(self) -> None:
        self.client.start()
        for service in self.services:
            key = ServiceKey(NS, GROUP, service)

            def listener(listing: Any, service: str = service) -> None:
                got = tuple(sorted((i.ip, i.port, bool(i.healthy)) for i in listing))
                self.calls[service].append((self.net.now, got))

            self.client.do(Subscribe(key, listener, self.client.timeout, Handle("subscribe")))


# -- the scenario ----------------------------------------------------------------------------
class RFaults(Faults):
    """test_faults_sim's ``Faults`` with real clients (``Inst`` for its beaters)."""

    def __init__(self, name: str, seed: int, timings: Timings, n_nodes: int = 3) -> None:
        super().__init__(name, seed, timings, n_nodes, trace=bool(TRACE_FILE))
        self.providers: list[SessionProvider] = []
        self.consumers: list[SessionConsumer] = []
        # (inst index in beaters, node, gen) -> when it came back
        self.back_since: dict[tuple[int, str, int], tuple[float, float]] = {}
        self.backs: list[tuple[str, str, float, float | None, str]] = []  # resurrections
        self.fault_end = 0.0
        self.violations: list[str] = []
        self.seed = seed

    def provider(
        self,
        name: str,
        first: str,
        sessions: bool,
        services: list[str],
        per_service: int,
        many: float = 0.5,
        start: float = 1.0,
    ) -> SessionProvider:
        p = SessionProvider(self, name, first, sessions, services, per_service, many, start)
        self.providers.append(p)
        return p

    def consumer(self, name: str, first: str, services: list[str]) -> SessionConsumer:
        c = SessionConsumer(self, name, first, services)
        self.consumers.append(c)
        return c

    def client_cut(self, client: SimClient, node_id: str, mode: str, at: float,
                   length: float) -> None:  # fmt: skip
        """Lose what goes between ``client`` and ``node_id`` (``mode``: "both",
        "requests" (client to node) or "replies" (node to client, incl. its pushes)) from
        ``at`` for ``length`` s; no node is faulted by it."""
        self.plan.append(f"cut {client.name}<->{node_id} {mode} {at:.1f}+{length:.1f}")
        if not getattr(self, "_client_hook", False):
            self._client_hook = True
            inner = self.net.drop

            def drop(src: Any, dst: Any, frames: list[bytes]) -> bool:
                c = getattr(src, "r75_client", None)
                if isinstance(src, SimSubscriber):
                    c = None  # (a subscription: TCP would deliver it after the cut)
                if c is not None and dst.name is not None:
                    mode = c.cut.get(dst.name)
                    if mode in ("both", "requests"):
                        self.net.count("client_cut")
                        return True
                c = getattr(dst, "r75_client", None)
                if c is not None and src.name is not None:
                    mode = c.cut.get(src.name)
                    if mode in ("both", "replies"):
                        self.net.count("client_cut")
                        return True
                return inner(src, dst, frames) if inner is not None else False

            self.net.drop = drop

        def begin() -> None:
            client.cut[node_id] = mode
            self.net.log(f"CUT {client.name}<->{node_id} {mode}")

        def end() -> None:
            client.cut.pop(node_id, None)
            self.net.log(f"CUT {client.name}<->{node_id} over")

        self.net.at(at, begin)
        self.net.at(at + length, end)

    def kill_restart(self, node_id: str, at: float, down: float) -> None:
        self.restart(node_id, at, down)

    def delay(self, at: float, length: float, slow_prob: float, slow_max: float) -> None:
        label = f"delay {slow_prob:.2f}<= {slow_max:.2f}s {at:.1f}+{length:.1f}"
        self.plan.append(label)

        def begin() -> None:
            self.net.slow_prob, self.net.slow_max = slow_prob, slow_max

        def end() -> None:
            self.net.slow_prob, self.net.slow_max = 0.0, 0.0

        self.net.at(at, begin)
        self.net.at(at + length, end)

    # -- (b): resurrections, timed ------------------------------------------------------
    def _watch_removal(self, i: int, p: Any, node: Any, core: Any) -> None:
        if p.stopped_at is None or p.superseded:
            key = (i, node.node_id, node.gen)
            if p.superseded and key in self.back_since:
                t0, gone = self.back_since.pop(key)
                self.backs.append((p.name, node.node_id, t0, self.net.now, "superseded"))
            return
        killed = not p.deregister
        if killed and not p.heard_at_stop(node.node_id):
            return
        key = (i, node.node_id, node.gen)
        rec = lookup(core, p)
        if rec is None:
            if key in self.back_since:
                t0, gone = self.back_since.pop(key)
                self.backs.append((p.name, node.node_id, t0, self.net.now,
                                   "killed" if killed else "deregistered"))  # fmt: skip
                self.gone[key] = self.net.now
            elif core.ready:
                self.gone.setdefault(key, self.net.now)
        elif key in self.gone and key not in self.back_since:
            self.back_since[key] = (self.net.now, self.gone.pop(key))
            self.net.log(f"RESURRECTION {p.name} on {node.node_id}")

    def resurrections(self) -> list[str]:
        out = []
        now = self.net.now
        for key, (t0, _gone) in self.back_since.items():
            p = self.beaters[key[0]]
            why = "killed" if not p.deregister else "deregistered"
            self.backs.append((p.name, key[1], t0, None, why))
        self.back_since.clear()
        for name, node_id, t0, t1, why in self.backs:
            length = (t1 if t1 is not None else now) - t0
            if why == "superseded":
                continue
            if t1 is None or length > BACK_LIMIT or why == "killed":
                out.append(
                    f"(b) {name} ({why}) back on {node_id} at t={t0:.2f} for "
                    f"{'ever (never repaired)' if t1 is None else f'{length:.2f}s'}"
                )
        return out

    def window_backs(self) -> list[str]:
        return [
            f"{name} on {node_id} t={t0:.2f} for {t1 - t0:.2f}s"
            for name, node_id, t0, t1, why in self.backs
            if t1 is not None and t1 - t0 <= BACK_LIMIT and why == "deregistered"
        ]

    # -- (c) ---------------------------------------------------------------------------------
    def _live_at(self, p: Inst, t: float, grace: float) -> bool:
        """Registered (acknowledged) for the grace, not deregistered nor asked to be, its
        client not dead for longer than unhealthy_after (then it may be evicted)."""
        killed = p.prov.client.killed_at
        return (
            p.registered_at is not None
            and p.registered_at <= t - grace
            and (p.asked_dereg_at is None or p.asked_dereg_at > t)
            and (killed is None or t < killed + self.timings.health.unhealthy_after)
        )

    def consumer_problems(self) -> list[str]:
        out = []
        grace = self.timings.grace
        for c in self.consumers:
            for service, calls in c.calls.items():
                insts = [p for p in self.beaters if p.key.service == service]
                for t, got in calls:
                    if got:
                        continue
                    live = [p.name for p in insts if self._live_at(p, t, grace)]
                    if live:
                        out.append(f"(c) {c.name} got [] for {service} at t={t:.2f} "
                                   f"while {live[:3]} live")  # fmt: skip
                # the last list is the truth
                truth = tuple(sorted((p.iid.ip, p.iid.port, True) for p in insts if p.active))
                last = calls[-1][1] if calls else None
                if last != truth:
                    out.append(f"(c) {c.name}'s last list of {service} {last} != truth {truth}"
                               f" (last call t={calls[-1][0] if calls else -1:.2f})")  # fmt: skip
        return out

    # -- running -----------------------------------------------------------------------------
    def run_all(self, end: float) -> list[str]:
        problems = run_settled(self.net, end)
        if self.bad_live.samples:
            problems.insert(0, "(a) " + self.bad_live.line())
        problems += self.resurrections()
        problems += [f"(a) {s}" for s in self.slow]
        if self.open_ends:
            problems.append(f"never converged after {[label for label, _ in self.open_ends]}")
        current = [p for p in self.beaters if not p.superseded]
        problems += [f"(d) {s}" for s in check_invariants(self.net, current)]
        problems += self.consumer_problems()
        self.problems = problems
        return problems

    def summary(self) -> str:
        return (
            f"[{self.name} seed {self.seed}] {'; '.join(self.plan)} | live-bad "
            f"{self.bad_live.samples} | backs {len(self.backs)} (window {len(self.window_backs())})"
            f" | converged {self.converged} | fallbacks "
            f"{self.net.counts.get('forward_fallback', 0)}"
        )


__all__ = [
    "BACK_LIMIT",
    "Handle",
    "Inst",
    "Network",
    "R_DEFAULT",
    "R_SHORT",
    "R_TIMINGS",
    "RFaults",
    "SessionConsumer",
    "SessionProvider",
    "SimClient",
]
