"""The client's background I/O thread (the zguide's Clone agent).

It alone owns the ZeroMQ sockets: a DEALER to the current server for
requests, a SUB to its notification port, and an inproc PULL that wakes it
when a caller thread queues a command.  It keeps registrations alive with
beats, re-registers what a node forgot, keeps watched services' views fresh
(deltas, gap -> pull, periodic resync) and fails over to the next server when
one stops answering.

Liveness: by default a client keeps its registrations alive with one *session*
(core/sessions, docs/PROTOCOL.md "Sessions"): every registration names the
session, and one ``session_renew`` per beat interval keeps them all alive
however many there are.  A renewal's reply says how many instances the node
holds in the session; when it holds fewer than were acknowledged (a node that
restarted, instances evicted while this process was stopped) on two renewals
in a row, or does not know the session, everything is registered again.
Without a session (``sessions=False``) each registration beats on its own.

At most ``MAX_IN_FLIGHT`` requests are in flight at once; more wait in a queue
and go out as replies come back, so registering 100,000 instances is a
pipeline of requests, not 100,000 round trips, and never overflows the
socket.  Problems are logged once per kind and server per ``LOG_INTERVAL``
(meshreg/log_limiter), never once per instance.

Every request is idempotent (register, deregister, beat, queries), so on an
attempt time-out the agent reconnects - to the next server when there are
several - and sends everything still pending again.

Everything a node sends is untrusted input (``wire/results``): a malformed reply
fails only the call it answers (with an error naming the node), a malformed view
is ignored (the previous one is kept), and the loop survives any exception a
turn raises.  Only a broken ZeroMQ context ends the thread; calls made after
that raise :class:`ClientClosedError` naming the cause.
"""

from __future__ import annotations

import errno
import itertools
import logging
import math
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import msgpack
import zmq

from meshreg.client.cache import Outcome, ServiceView
from meshreg.client.disk_cache import DiskCache
from meshreg.config import PUB_PORT_OFFSET
from meshreg.core.mapping import responsible_node
from meshreg.errors import (
    ClientClosedError,
    ConfigError,
    ErrorCode,
    MeshregError,
    RemoteProtocolError,
    ServerUnreachableError,
    server_error,
)
from meshreg.log_limiter import LogLimiter
from meshreg.model import Instance, InstanceId, InstanceList, ServiceKey
from meshreg.transport.sockets import CurveKeys, curve_client, tcp_endpoint
from meshreg.wire.notifications import decode_notification, topic_for
from meshreg.wire.replies import decode_reply, encode_request
from meshreg.wire.results import check_result, split_address

log = logging.getLogger("meshreg.client")

WRITE_OPS = frozenset(("register", "deregister", "beat", "update", "service_set"))
MAX_IN_FLIGHT = 512  # requests awaiting a reply at once; more wait in the backlog (FIFO)
BACKLOG_HIGH = 8 * MAX_IN_FLIGHT  # requests waiting to be sent before commands wait too
COMMAND_SLICE = 0.01  # s; longest run of queued commands in one loop turn
SHORT_RENEWALS = 2  # renewals in a row holding fewer instances than acknowledged: redo
VIEW_INTERVAL = 10.0  # s; how often a client with registrations refreshes the cluster view
YOUNG_NODE_GRACE = 15.0  # s; a node up for less may list nothing only because providers
# have not registered again yet (three default beat intervals): its empty lists wait
READ_YOUR_WRITES_WINDOW = 2.0  # s after a write during which reads bypass the pushed view
BACKOFF_BASE = 0.5  # s; first pause after every server failed once
BACKOFF_MAX = 30.0  # s; longest pause between switches while no server answers
MAX_SERVERS = 64  # servers given plus cluster members learned from the view
PROBE_INTERVAL = 5.0  # s; a client that only watches pings its server this often
UNUSABLE_FOR = 10.0  # s; a member address that could not be connected is not retried sooner
ERROR_PAUSE_MAX = 1.0  # s; longest pause after a loop turn failed (doubling from 1 ms)
# ZeroMQ errors after which no socket of the context works again: the thread ends.
FATAL_ERRNOS = frozenset((zmq.ETERM, errno.ENOTSOCK))

Listener = Callable[[list[Instance]], None]
Notify = Callable[[Listener, InstanceList], None]


@dataclass
class Pending:
    op: str
    body: bytes
    timeout: float  # s; the whole call's budget, for the error message
    deadline: float  # absolute; the call fails after it
    attempt_deadline: float  # absolute; the server is suspected after it
    future: Future[Any] | None = None
    on_reply: Callable[[Any], None] | None = None
    on_error: Callable[[BaseException], None] | None = None
    tried: list[str] = field(default_factory=list)
    via: str | None = None  # the responsible node it went straight to (None: the server)
    insist: int = 0  # retries left to reach ``via`` while its connection is being set up


@dataclass
class Registration:
    key: ServiceKey
    iid: InstanceId
    fields: dict[str, Any]  # the register request's fields, to redo it
    beat_fields: dict[str, Any] = field(init=False)  # built once: beats are the hot path

    def __post_init__(self) -> None:
        names = ("namespace", "group", "service", "ip", "port", "cluster")
        self.beat_fields = {k: self.fields[k] for k in names}

    @property
    def session(self) -> str | None:
        return self.fields.get("session")  # type: ignore[no-any-return]


@dataclass
class Watch:
    view: ServiceView
    listeners: list[Listener] = field(default_factory=list)
    pulling: bool = False
    repull: bool = False  # a gap was seen while a pull was in flight
    fresh_reads_until: float = 0.0  # after our own write: read from the server, not the view
    pinned: bool = False  # kept without listeners: a service the client asked for (local cache)
    said_stale: bool = False  # logged that we serve a copy no node has confirmed
    waiting: list[tuple[Future[Any], Listener | None]] = field(default_factory=list)


def malformed_reply_error(op: str, source: str, why: object) -> RemoteProtocolError:
    """The error a caller sees when a node answered with something we cannot read."""
    return RemoteProtocolError(
        f"{op}: the node at {source} sent a malformed reply: {why}; "
        "is it a meshreg node of a compatible version? check --server / MESHREG_SERVERS"
    )


class ClientAgent:
    """Runs in its own thread; callers talk to it only through ``submit``."""

    def __init__(
        self,
        servers: list[tuple[str, int]],
        beat_interval: float,
        attempt_timeout: float,
        resync_interval: float,
        notify: Notify,
        cache: DiskCache | None = None,
        empty_protection: bool = True,
        curve: tuple[CurveKeys, bytes] | None = None,
        session: tuple[str, str] | None = None,
    ) -> None:
        """``curve``: this client's key pair and the cluster's public key (z85);
        ``session``: (namespace, session id) registrations are kept alive by (None:
        per-instance beats)."""
        self.curve = curve
        self.session = session
        self._session_acked = 0  # registrations in the session the node acknowledged
        self._short_renewals = 0  # renewals in a row that held fewer than that
        self.renewals_failed = 0  # session renewals that got an error or no answer
        self._session_opened = False
        self.cache = cache
        self.empty_protection = empty_protection
        self.servers = servers
        self.beat_interval = beat_interval
        self.attempt_timeout = attempt_timeout
        self.resync_interval = resync_interval
        self.notify = notify
        self.ctx = zmq.Context()
        self._commands: queue.SimpleQueue[tuple[str, tuple[Any, ...]]] = queue.SimpleQueue()
        self._wake_lock = threading.Lock()
        self._wake_endpoint = f"inproc://meshreg-client-{id(self)}"
        self._wake_pull = self.ctx.socket(zmq.PULL)
        self._wake_pull.bind(self._wake_endpoint)
        self._wake_push = self.ctx.socket(zmq.PUSH)
        self._wake_push.connect(self._wake_endpoint)
        self._ids = itertools.count(1)
        self._pending: dict[int, Pending] = {}
        self._backlog: deque[tuple[int, Pending]] = deque()  # beyond MAX_IN_FLIGHT, FIFO
        self._commands_left = False  # commands queued that a turn left for the next
        self._earliest = math.inf  # <= every attempt deadline in flight (_check_deadlines)
        self.registrations: dict[tuple[ServiceKey, InstanceId], Registration] = {}
        self.watches: dict[ServiceKey, Watch] = {}
        self._server_index = 0
        self._dealer: zmq.Socket[bytes] | None = None
        self._sub: zmq.Socket[bytes] | None = None
        self._sub_endpoint = ""
        self._closed = False
        self._limiter = LogLimiter(log)
        self._poller = zmq.Poller()
        # The cluster view: writes go straight to a service's responsible node.
        self._members: tuple[str, ...] = ()
        self._member_address: dict[str, str] = {}
        self._direct: dict[str, zmq.Socket[bytes]] = {}
        self._next_view = 0.0
        self._next_probe = 0.0
        self._failed_switches = 0  # server switches since the last reply from anyone
        self._next_switch = 0.0  # monotonic time before which we do not switch again
        self.connect_errors: dict[str, str] = {}  # server -> why it could not be used
        self.malformed: dict[str, tuple[str, float]] = {}  # server -> (its last unreadable
        # reply, when); forgotten when it answers properly
        self._unusable: dict[str, float] = {}  # member address -> when to try it again
        self._dead = False  # the I/O thread ended; ``_death`` says why
        self._death = "the meshreg client was closed"
        self._next_beat = self._next_resync = 0.0
        self._thread = threading.Thread(target=self._run, name="meshreg-client-io", daemon=True)

    # -- caller side (any thread) ---------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, command: str, *args: Any) -> None:
        with self._wake_lock:
            if self._dead:
                raise ClientClosedError(self._death)
            if self._closed:
                raise ClientClosedError("this meshreg Client is closed; create a new one")
            self._commands.put((command, args))
            try:
                self._wake_push.send(b"", zmq.NOBLOCK)
            except zmq.Again:
                pass  # wake-ups already queued: the thread drains every command anyway

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def server(self) -> str:
        host, port = self.servers[self._server_index]
        return f"{host}:{port}"

    # -- the I/O thread ---------------------------------------------------------
    def _run(self) -> None:
        death = "this meshreg Client is closed; create a new one"
        try:
            self._connect()
            self._loop()
        except Exception as exc:  # never leave callers hanging, nor guessing why
            log.exception("meshreg client I/O thread failed")
            death = (
                f"the meshreg client's I/O thread stopped ({type(exc).__name__}: {exc}; "
                f"servers {', '.join(f'{h}:{p}' for h, p in self.servers)}); "
                "create a new Client, and report this if it happens again"
            )
        finally:
            with self._wake_lock:
                self._dead, self._death = True, death
                self._wake_push.close(linger=0)
            self._fail_all(ClientClosedError(death))
            for sock in (self._dealer, self._sub, self._wake_pull):
                if sock is not None:
                    sock.close(linger=0)
            for sock in self._direct.values():
                sock.close(linger=0)
            self.ctx.term()

    def _loop(self) -> None:
        poller = self._poller
        poller.register(self._wake_pull, zmq.POLLIN)
        assert self._sub is not None and self._dealer is not None
        poller.register(self._sub, zmq.POLLIN)
        poller.register(self._dealer, zmq.POLLIN)
        now = time.monotonic()
        self._next_beat = now + self.beat_interval
        self._next_resync = now + self.resync_interval
        failures = 0  # turns failed in a row
        while not self._closed:
            try:
                self._turn()
                failures = 0
            except Exception as exc:
                if isinstance(exc, zmq.ZMQError) and exc.errno in FATAL_ERRNOS:
                    raise
                # Whatever a node sent (or a bug) must not stop beats for good: log it,
                # pause briefly so a turn that fails every time cannot spin, go on.
                failures += 1
                self._limiter.warning(
                    ("turn", type(exc).__name__),
                    time.monotonic(),
                    "meshreg client I/O loop: unexpected error (server %s); continuing:\n%s",
                    self.server,
                    traceback.format_exc().rstrip(),
                )
                time.sleep(min(ERROR_PAUSE_MAX, 0.001 * 2 ** min(failures, 10)))

    def _turn(self) -> None:
        """One loop turn: wait for input or the next timer, then handle both."""
        now = time.monotonic()
        wake = min(self._next_beat, self._next_resync, self._next_deadline(now + 1.0))
        if self._commands_left and len(self._backlog) < BACKLOG_HIGH:
            wake = now  # commands wait: look at the sockets, then run more of them
            self._drain_commands()
        for sock, _ in self._poller.poll(int(max(0.0, wake - now) * 1000.0) + 1):
            if sock is self._wake_pull:
                self._drain_commands()
            elif sock is self._sub:
                self._drain_notifications()
            else:
                self._drain_replies(sock)
        now = time.monotonic()
        if now >= self._next_beat:
            self._next_beat = now + self.beat_interval
            self._send_beats(now)
        if now >= self._next_resync:
            self._next_resync = now + self.resync_interval
            for key in list(self.watches):
                self._pull(key)
        if now >= self._next_view and self.registrations:
            self._refresh_view(now)
        if self.watches and now >= self._next_probe:
            # A watcher sends nothing on its own: ping so a dead server is noticed.
            self._next_probe = now + PROBE_INTERVAL
            if not self._pending:
                self.request("ping", {}, self.attempt_timeout)
        self._check_deadlines(time.monotonic())

    def _next_deadline(self, default: float) -> float:
        return min(default, self._earliest)

    def _recompute_earliest(self) -> None:
        self._earliest = min((p.attempt_deadline for p in self._pending.values()), default=math.inf)

    # -- connections -------------------------------------------------------------
    def _socket(self, kind: int) -> zmq.Socket[bytes]:
        """A socket to a node: no linger, CURVE when the client has a key."""
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if self.curve is not None:
            curve_client(sock, self.curve[0], self.curve[1])
        return sock

    def _connect(self) -> None:
        host, port = self.servers[self._server_index]
        dealer = self._socket(zmq.DEALER)
        if ":" in host:
            dealer.setsockopt(zmq.IPV6, 1)
        if self._sub is None:
            self._sub = self._socket(zmq.SUB)
            if ":" in host:
                self._sub.setsockopt(zmq.IPV6, 1)
            for key in self.watches:
                self._sub.setsockopt(zmq.SUBSCRIBE, topic_for(key))
        self._dealer = dealer
        try:
            endpoint = tcp_endpoint(host, port)
            dealer.connect(endpoint)
            pub_endpoint = tcp_endpoint(host, port + PUB_PORT_OFFSET)
        except (ConfigError, zmq.ZMQError) as exc:
            # An unconnected DEALER: requests time out and the next server is tried.
            self.connect_errors[self.server] = str(exc)
            return
        self.connect_errors.pop(self.server, None)
        if pub_endpoint != self._sub_endpoint:
            if self._sub_endpoint:
                try:
                    self._sub.disconnect(self._sub_endpoint)
                except zmq.ZMQError:
                    pass
            self._sub.connect(pub_endpoint)
            self._sub_endpoint = pub_endpoint

    def _failover(self, now: float) -> None:
        """The current server did not answer in time: reconnect (to the next one).

        After a whole round of servers failed, further switches back off
        exponentially (0.5 s doubling to 30 s) until some server answers again.
        """
        self._failed_switches += 1
        if self._failed_switches > len(self.servers):
            if now < self._next_switch:
                for p in self._pending.values():  # wait on the current connection meanwhile
                    p.attempt_deadline = min(p.deadline, self._next_switch)
                self._recompute_earliest()
                return
            rounds = self._failed_switches - len(self.servers)
            self._next_switch = now + min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(rounds, 16))
        old = self.server
        if self._dealer is not None:
            self._poller.unregister(self._dealer)
            self._dealer.close(linger=0)
        self._server_index = (self._server_index + 1) % len(self.servers)
        if self.server != old:
            self._limiter.warning(
                "failover",
                now,
                "meshreg server %s did not answer within %gs; trying %s",
                old,
                self.attempt_timeout,
                self.server,
            )
        self._connect()
        assert self._dealer is not None
        self._poller.register(self._dealer, zmq.POLLIN)
        self._forget_view(now)
        for p in self._pending.values():
            p.attempt_deadline = min(p.deadline, now + self.attempt_timeout)
            p.tried.append(self.server)
            p.via = None
            self._send(p)
        for key in self.watches:  # the new server may be another incarnation
            self.watches[key].pulling = False
            self._pull(key)

    # -- the cluster view: writes straight to the responsible node ------------------
    def _refresh_view(self, now: float) -> None:
        self._next_view = now + VIEW_INTERVAL

        def got(result: Any) -> None:  # checked by wire/results: ids and addresses are sane
            members = [m for m in result["members"] if m["state"] == "up"]
            self._members = tuple(sorted({m["id"] for m in members}))
            self._member_address = {m["id"]: m["address"] for m in members}
            for m in result["members"]:  # every member is a server to fall back on
                address = split_address(m["address"])
                if address not in self.servers and len(self.servers) < MAX_SERVERS:
                    self.servers.append(address)

        def failed(exc: BaseException) -> None:  # keep the view we have; the server serves
            if isinstance(exc, RemoteProtocolError):
                self._limiter.warning("view", time.monotonic(), "ignoring a cluster view: %s", exc)

        self.request("cluster", {}, self.attempt_timeout, on_reply=got, on_error=failed)

    def _forget_view(self, now: float) -> None:
        """The view led us astray (or the server changed): use the server until refreshed."""
        self._members = ()
        self._next_view = now + self.attempt_timeout

    def _direct_socket(self, address: str) -> zmq.Socket[bytes] | None:
        """The DEALER to a member; None when its address cannot be used (unresolvable,
        refused by libzmq): the server forwards instead, and we retry it later."""
        sock = self._direct.get(address)
        if sock is None:
            now = time.monotonic()
            if now < self._unusable.get(address, 0.0):
                return None
            try:
                host, port = split_address(address)
                endpoint = tcp_endpoint(host, port)
            except (ConfigError, RemoteProtocolError) as exc:
                self._not_usable(address, now, exc)
                return None
            sock = self._socket(zmq.DEALER)
            sock.setsockopt(zmq.IMMEDIATE, 1)  # no connection: fail now, use the server
            if ":" in host:
                sock.setsockopt(zmq.IPV6, 1)
            try:
                sock.connect(endpoint)
            except zmq.ZMQError as exc:
                sock.close(linger=0)
                self._not_usable(address, now, exc)
                return None
            self._direct[address] = sock
            self._poller.register(sock, zmq.POLLIN)
        return sock

    def _not_usable(self, address: str, now: float, exc: BaseException) -> None:
        if len(self._unusable) >= MAX_SERVERS:  # addresses come from the network: bounded
            self._unusable.clear()
        self._unusable[address] = now + UNUSABLE_FOR
        self._limiter.warning(
            ("member", address),
            now,
            "cannot connect to cluster member %s (%s); sending its writes through %s",
            address,
            exc,
            self.server,
        )

    # -- requests ----------------------------------------------------------------
    def request(
        self,
        op: str,
        fields: dict[str, Any],
        timeout: float,
        future: Future[Any] | None = None,
        on_reply: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        via: str | None = None,
    ) -> None:
        req_id = next(self._ids)
        body = encode_request(op, req_id, **fields)
        now = time.monotonic()
        pending = Pending(
            op,
            body,
            timeout,
            now + timeout,
            now + min(timeout, self.attempt_timeout),
            future,
            on_reply,
            on_error,
            [self.server],
        )
        pending.via = via
        if via is not None:
            pending.insist = 20  # about 1 s of 50 ms tries while the connection comes up
        if self._backlog or len(self._pending) >= MAX_IN_FLIGHT:
            self._backlog.append((req_id, pending))  # waits its turn (FIFO): ``_pump``
            return
        self._pending[req_id] = pending
        self._dispatch(pending, fields)

    def _dispatch(self, pending: Pending, fields: dict[str, Any] | None = None) -> None:
        """Send a request now: a write straight to its service's responsible node."""
        if pending.op in WRITE_OPS and len(self._members) > 1 and pending.via is None:
            if fields is None:
                fields = msgpack.unpackb(pending.body)
            key = ServiceKey(fields["namespace"], fields["group"], fields["service"])
            owner = self._member_address.get(responsible_node(key, self._members))
            if owner is not None and owner != self.server:
                pending.via = owner
        self._send(pending)

    def _pump(self, now: float) -> None:
        """Send from the backlog while fewer than MAX_IN_FLIGHT are in flight; fail what
        waited past its whole deadline."""
        backlog, pending = self._backlog, self._pending
        while backlog and len(pending) < MAX_IN_FLIGHT:
            req_id, p = backlog.popleft()
            if now >= p.deadline:
                self._resolve(p, None, self._unanswered(p))
                continue
            p.attempt_deadline = min(p.deadline, now + self.attempt_timeout)
            p.tried = [self.server]
            pending[req_id] = p
            self._dispatch(p)

    def _send(self, pending: Pending) -> None:
        if pending.attempt_deadline < self._earliest:
            self._earliest = pending.attempt_deadline
        direct = self._direct_socket(pending.via) if pending.via is not None else None
        if direct is None:
            pending.via = None
        else:
            try:
                direct.send_multipart([b"", pending.body], zmq.NOBLOCK)
                pending.insist = 0  # sent: from now on an ordinary attempt
                return
            except zmq.Again:
                if pending.insist > 0:  # a second opinion must come from that node: wait
                    pending.insist -= 1
                    pending.attempt_deadline = min(pending.deadline, time.monotonic() + 0.05)
                    return
                pending.via = None  # not connected (yet): the server forwards it
        assert self._dealer is not None
        try:
            self._dealer.send_multipart([b"", pending.body], zmq.NOBLOCK)
        except zmq.Again:
            pass  # queue full: the attempt deadline will retry it

    def _drain_replies(self, dealer: zmq.Socket[bytes]) -> None:
        source = self.server
        if dealer is not self._dealer:  # a member's DEALER (writes sent straight to it)
            source = next((a for a, s in self._direct.items() if s is dealer), source)
        for _ in range(1024):
            try:
                frames = dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                if len(frames) != 2 or frames[0] != b"":
                    raise RemoteProtocolError(f"{len(frames)} frames instead of ['', body]")
                reply = decode_reply(frames[1])
            except RemoteProtocolError as exc:
                # No id to tell whose it was: remembered, so that the calls this node then
                # fails to answer say why instead of "no reply".
                self._malformed_from(source, str(exc))
                continue
            self._failed_switches = 0  # somebody answers: no more backoff
            pending = self._pending.pop(reply["id"], None)
            if self._backlog:
                self._pump(time.monotonic())
            if pending is None:
                continue  # a late answer to an attempt we already re-sent
            if reply["ok"]:
                try:
                    result = check_result(pending.op, reply.get("result"))
                except RemoteProtocolError as exc:
                    self._malformed_from(source, f"{pending.op}: {exc}")
                    self._resolve(pending, None, malformed_reply_error(pending.op, source, exc))
                    continue
                self.malformed.pop(source, None)
                self._resolve(pending, result, None)
            else:
                self.malformed.pop(source, None)
                err = reply["error"]
                error = server_error(err["code"], str(err.get("message", ""))[:4096], source)
                self._resolve(pending, None, error)

    def _malformed_from(self, source: str, why: str) -> None:
        if source in self.malformed or len(self.malformed) < MAX_SERVERS:
            self.malformed[source] = (why[:500], time.monotonic())
        self._limiter.warning(
            ("malformed", source),
            time.monotonic(),
            "ignoring a malformed reply from %s: %s",
            source,
            why,
        )

    def _resolve(self, pending: Pending, result: Any, error: BaseException | None) -> None:
        """Run a request's completion hooks; a failing hook must not kill the thread."""
        try:
            if error is None:
                if pending.on_reply is not None:
                    pending.on_reply(result)
            elif pending.on_error is not None:
                pending.on_error(error)
        except Exception:
            log.exception("meshreg client: completion of %s failed", pending.op)
        fut = pending.future
        if fut is not None and not fut.done():
            if error is None:
                fut.set_result(result)
            else:
                fut.set_exception(error)

    def _unanswered(self, p: Pending) -> MeshregError:
        """The error of a call no server answered within its deadline."""
        tried = list(dict.fromkeys(p.tried))
        errors = self.connect_errors
        why = "".join(f" ({s}: {errors[s]})" for s in tried if s in errors)
        since = p.deadline - p.timeout  # the call's start
        garbled = [s for s in tried if self.malformed.get(s, ("", -1.0))[1] >= since]
        if garbled:  # it did answer, with something we cannot read
            return malformed_reply_error(p.op, garbled[0], self.malformed[garbled[0]][0])
        return ServerUnreachableError(
            f"{p.op}: no reply from meshreg server(s) {', '.join(tried)} "
            f"within {p.timeout:g}s{why}; "
            "is `meshreg node` running there? check --server / MESHREG_SERVERS"
            + (
                "; or the node refused this client's key: is server_key the cluster's "
                "public key, and this client's key in the node's ACL?"
                if self.curve is not None
                else "; if the node runs with --key, give this client key= and "
                "server_key= (CLI: --key, --server-key)"
            )
        )

    def _check_deadlines(self, now: float) -> bool:
        """Fail calls past their deadline; True when the server must be replaced.

        O(1) until the earliest attempt deadline (``_earliest``, a lower bound kept by
        ``_send``) has passed: then one pass over what is in flight recomputes it."""
        self._pump(now)
        if now < self._earliest:
            return False
        self._earliest = math.inf  # lowered again by every _send below
        suspect = False
        for req_id, p in list(self._pending.items()):
            if now >= p.deadline:
                del self._pending[req_id]
                suspect = True  # it never answered: try the next server for the rest
                self._resolve(p, None, self._unanswered(p))
            elif now >= p.attempt_deadline:
                if p.via is not None and p.insist > 0:
                    self._send(p)  # still connecting to the node we must ask
                elif p.via is not None:  # the responsible node is silent: go through the server
                    p.via = None
                    p.attempt_deadline = min(p.deadline, now + self.attempt_timeout)
                    self._forget_view(now)
                    self._send(p)
                else:
                    suspect = True
            if req_id in self._pending and p.attempt_deadline < self._earliest:
                self._earliest = p.attempt_deadline
        if suspect:
            self._failover(now)
        return suspect

    def _fail_all(self, exc: BaseException) -> None:
        for p in [*self._pending.values(), *(p for _, p in self._backlog)]:
            if p.future is not None and not p.future.done():
                p.future.set_exception(exc)
        self._pending.clear()
        self._backlog.clear()
        for w in self.watches.values():
            for fut, _ in w.waiting:
                if not fut.done():
                    fut.set_exception(exc)
        while True:
            try:
                _, args = self._commands.get_nowait()
            except queue.Empty:
                break
            for a in args:
                if isinstance(a, Future) and not a.done():
                    a.set_exception(exc)

    # -- commands from callers -------------------------------------------------------
    def _drain_commands(self) -> None:
        """Run queued commands for at most COMMAND_SLICE s, and none while the backlog is
        over BACKLOG_HIGH: replies keep being read between them (a caller queueing 250,000
        registrations must not stall the loop), and a caller outrunning the node waits in
        the command queue instead of growing the backlog."""
        while True:
            try:
                self._wake_pull.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        until = time.monotonic() + COMMAND_SLICE
        while True:
            if len(self._backlog) >= BACKLOG_HIGH or time.monotonic() >= until:
                self._commands_left = True
                return
            try:
                command, args = self._commands.get_nowait()
            except queue.Empty:
                self._commands_left = False
                return
            try:
                getattr(self, "_cmd_" + command)(*args)
            except Exception as exc:  # pragma: no cover - a bug in a command
                log.exception("meshreg client command %s failed", command)
                for a in args:
                    if isinstance(a, Future) and not a.done():
                        a.set_exception(exc)

    def _cmd_call(
        self, op: str, fields: dict[str, Any], timeout: float, future: Future[Any]
    ) -> None:
        self.request(op, fields, timeout, future)

    def _cmd_register(self, reg: Registration, timeout: float, future: Future[Any]) -> None:
        self._open_session()

        def registered(_: dict[str, Any]) -> None:
            ident = (reg.key, reg.iid)
            if reg.session is not None and ident not in self.registrations:
                self._session_acked += 1
            self.registrations[ident] = reg
            self._wrote(reg.key)

        self.request("register", reg.fields, timeout, future, on_reply=registered)

    def _cmd_register_batch(
        self, batch: list[tuple[Registration, Future[Any]]], timeout: float
    ) -> None:
        """Many registrations at once: pipelined through the send window."""
        for reg, future in batch:
            self._cmd_register(reg, timeout, future)

    def _open_session(self) -> None:
        """Open the session before the first registration names it (a node that has not
        heard of it opens it on the registration or renewal anyway: this only says hello
        early and learns the node's timings)."""
        if self.session is None or self._session_opened:
            return
        self._session_opened = True
        namespace, sid = self.session
        self.request(
            "session_open",
            {"namespace": namespace, "session": sid},
            max(self.beat_interval, self.attempt_timeout),
            on_error=self._renewal_failed,
        )

    def _renew_session(self) -> None:
        """One renewal for every registration in the session (the whole liveness cost)."""
        assert self.session is not None
        namespace, sid = self.session

        def renewed(result: dict[str, Any]) -> None:
            held, acked = result["instances"], self._session_acked
            if result.get("known") is False and acked:
                self._short_renewals = SHORT_RENEWALS  # the node never heard of it
            elif held < acked:
                self._short_renewals += 1
            else:
                self._short_renewals = 0
            if self._short_renewals >= SHORT_RENEWALS:
                self._short_renewals = 0
                self._limiter.warning(
                    ("session-redo", self.server),
                    time.monotonic(),
                    "meshreg server %s holds %d of the %d instances of this client's session "
                    "(a node restarted, or they were evicted while this process was stopped); "
                    "registering them again",
                    self.server,
                    held,
                    acked,
                )
                self._reregister_session()

        self.request(
            "session_renew",
            {"namespace": namespace, "session": sid},
            max(self.beat_interval, self.attempt_timeout),
            on_reply=renewed,
            on_error=self._renewal_failed,
        )

    def _reregister_session(self) -> None:
        timeout = max(self.beat_interval, self.attempt_timeout) + len(self.registrations) / 5000
        for reg in list(self.registrations.values()):
            if reg.session is not None:
                self.request("register", reg.fields, timeout)

    def _renewal_failed(self, exc: BaseException) -> None:
        self.renewals_failed += 1
        if getattr(exc, "code", None) == ErrorCode.UNKNOWN_OP and self.session is not None:
            # a node older than sessions: fall back on per-instance beats, for good
            log.warning(
                "meshreg server %s does not know sessions (%s); keeping registrations "
                "alive with per-instance beats",
                self.server,
                exc,
            )
            self.session = None
            self._session_acked = 0
            for reg in self.registrations.values():
                reg.fields.pop("session", None)
            return
        self._limiter.warning(
            ("session", self.server, type(exc).__name__),
            time.monotonic(),
            "session renewal failed (server %s); %d registrations depend on it: %s",
            self.server,
            len(self.registrations),
            exc,
        )

    def _cmd_deregister(
        self,
        key: ServiceKey,
        iid: InstanceId,
        fields: dict[str, Any],
        timeout: float,
        future: Future[Any],
    ) -> None:
        reg = self.registrations.pop((key, iid), None)
        if reg is not None and reg.session is not None:
            self._session_acked -= 1
        self.request("deregister", fields, timeout, future, on_reply=lambda _: self._wrote(key))

    def _cmd_wrote(self, key: ServiceKey) -> None:
        self._wrote(key)

    def _wrote(self, key: ServiceKey) -> None:
        """Our own write may not be in the pushed view yet: read our writes from the server."""
        watch = self.watches.get(key)
        if watch is not None:
            watch.fresh_reads_until = time.monotonic() + READ_YOUR_WRITES_WINDOW

    def _cmd_session_close(self, timeout: float, future: Future[Any]) -> None:
        """Close the session: the node deregisters every instance registered in it."""
        if self.session is None:
            future.set_result({"deregistered": 0})
            return
        namespace, sid = self.session
        for ident, reg in list(self.registrations.items()):
            if reg.session is not None:
                del self.registrations[ident]
        self._session_acked = 0
        self.request("session_close", {"namespace": namespace, "session": sid}, timeout, future)

    def _cmd_close(self, future: Future[Any]) -> None:
        self._closed = True
        future.set_result(None)

    def _cmd_subscribe(
        self,
        key: ServiceKey,
        listener: Listener | None,
        timeout: float,
        future: Future[Any],
        pinned: bool = False,
    ) -> None:
        watch = self.watches.get(key)
        if watch is None:
            watch = self.watches[key] = Watch(ServiceView(key))
            assert self._sub is not None
            self._sub.setsockopt(zmq.SUBSCRIBE, topic_for(key))
            if self.cache is not None:
                saved = self.cache.load(key)
                if saved is not None:
                    watch.view.preload(saved[0])
        watch.pinned = watch.pinned or pinned
        if listener is not None:
            watch.listeners.append(listener)
        if watch.view.loaded and not (watch.view.from_disk and not watch.said_stale):
            if listener is not None:
                self.notify(listener, watch.view.listing())
            future.set_result(watch.view.listing())
            return
        watch.waiting.append((future, listener))
        self._pull(key, timeout)

    def _cmd_unsubscribe(
        self, key: ServiceKey, listener: Listener | None, future: Future[Any]
    ) -> None:
        watch = self.watches.get(key)
        if watch is not None:
            watch.listeners = [
                cb for cb in watch.listeners if listener is not None and cb != listener
            ]
            if not watch.listeners and not watch.pinned:
                del self.watches[key]
                assert self._sub is not None
                self._sub.setsockopt(zmq.UNSUBSCRIBE, topic_for(key))
        future.set_result(None)

    def _cmd_cached(self, key: ServiceKey, healthy_only: bool, future: Future[Any]) -> None:
        """("view", list) from the local view; ("bypass", list or None) just after our own
        write; ("none", None) when the service is not cached yet."""
        watch = self.watches.get(key)
        if watch is None or not watch.view.loaded:
            future.set_result(("none", None))
        elif time.monotonic() < watch.fresh_reads_until:
            future.set_result(("bypass", watch.view.listing(healthy_only)))
        else:
            future.set_result(("view", watch.view.listing(healthy_only)))

    def _persist(self, key: ServiceKey, listing: InstanceList) -> None:
        """Save a changed list to the disk cache, on the notifier thread (no I/O here)."""
        cache = self.cache
        if cache is not None:
            self.notify(lambda xs, key=key: cache.save(key, xs), listing)

    # -- beats and redo ----------------------------------------------------------------
    def _send_beats(self, now: float) -> None:
        if self.session is not None and self._session_acked:
            self._renew_session()
        for reg in list(self.registrations.values()):
            if reg.session is not None:
                continue  # kept alive by the session's renewal
            self.request(
                "beat",
                reg.beat_fields,
                max(self.beat_interval, self.attempt_timeout),
                on_error=lambda exc, reg=reg: self._beat_failed(reg, exc),
            )

    def _beat_failed(self, reg: Registration, exc: BaseException) -> None:
        code = getattr(exc, "code", None)
        if isinstance(exc, ServerUnreachableError):
            self._limiter.warning(  # one line per server and interval, not per instance
                ("beat", self.server),
                time.monotonic(),
                "beats are not answered (e.g. %s %s): %s",
                reg.key,
                reg.iid,
                exc,
            )
        if code == ErrorCode.NOT_FOUND and (reg.key, reg.iid) in self.registrations:
            self._limiter.warning(
                ("reregister", self.server),
                time.monotonic(),
                "instances unknown to %s (evicted or the node restarted), e.g. %s %s; "
                "registering them again",
                self.server,
                reg.key,
                reg.iid,
            )
            self.request("register", reg.fields, max(self.beat_interval, self.attempt_timeout))

    # -- watches ---------------------------------------------------------------------
    def _pull(self, key: ServiceKey, timeout: float | None = None, confirm: bool = False) -> None:
        """Re-pull a service's list; ``confirm``: ask another server, and trust its answer
        even if it empties the list (push-empty protection asks for that second opinion)."""
        watch = self.watches.get(key)
        if watch is None:
            return
        if watch.pulling:  # the reply in flight may predate what made us pull again
            watch.repull = True
            return
        watch.pulling = True
        watch.repull = False
        fields = {"namespace": key.namespace, "group": key.group, "service": key.service}

        def pulled(result: dict[str, Any]) -> None:
            watch.pulling = False
            source = via or self.server
            if self._would_empty(watch, result):
                uptime = result.get("uptime")
                restarted = result.get("epoch") != watch.view.epoch  # not the node we knew
                if restarted and isinstance(uptime, (int, float)) and uptime < YOUNG_NODE_GRACE:
                    self._limiter.warning(
                        ("young", key),
                        time.monotonic(),
                        "%s: %s started %.1fs ago and lists nothing yet; keeping the last "
                        "list until its providers have had time to register again",
                        key,
                        source,
                        uptime,
                    )
                    self._resolve_waiting(watch)
                    return
                if not confirm:
                    self._confirm_empty(key, f"{source} answered an empty list")
                    return
            try:
                outcome = watch.view.apply_snapshot(result)
            except (KeyError, TypeError, ValueError) as exc:
                failed(RemoteProtocolError(f"malformed instances reply from {self.server}: {exc}"))
                return
            listing = watch.view.listing()
            if watch.said_stale:
                watch.said_stale = False
                log.info("%s: live data again from %s", key, source)
            if outcome is not Outcome.UNCHANGED:
                self._persist(key, listing)
                for cb in watch.listeners:
                    if all(cb is not waiter for _, waiter in watch.waiting):
                        self.notify(cb, listing)
            self._resolve_waiting(watch)
            if outcome is Outcome.GAP or watch.repull:  # already stale: pull again
                self._pull(key)

        def failed(exc: BaseException) -> None:
            watch.pulling = False
            if watch.view.loaded:  # no node answers: serve what we have (memory or disk)
                if not watch.said_stale:
                    watch.said_stale = True
                    source = "disk cache" if watch.view.from_disk else "last known list"
                    log.warning(
                        "%s: no meshreg server answers (%s); serving the %s", key, exc, source
                    )
                self._resolve_waiting(watch)
                return
            for fut, cb in watch.waiting:
                if not fut.done():
                    fut.set_exception(exc)
                if cb is not None and cb in watch.listeners:
                    watch.listeners.remove(cb)
            watch.waiting.clear()
            if not watch.listeners and not watch.pinned and self.watches.get(key) is watch:
                del self.watches[key]
                assert self._sub is not None
                self._sub.setsockopt(zmq.UNSUBSCRIBE, topic_for(key))

        via = None
        if confirm and len(self.servers) > 1:
            host, port = self.servers[(self._server_index + 1) % len(self.servers)]
            via = f"{host}:{port}"
        self.request(
            "instances",
            fields,
            timeout or max(3.0, self.attempt_timeout),
            on_reply=pulled,
            on_error=failed,
            via=via,
        )

    def _delta_would_empty(self, watch: Watch, msg: dict[str, Any]) -> bool:
        view = watch.view
        if not (self.empty_protection and view.loaded and view.instances):
            return False
        if msg["kind"] != "delta" or msg.get("upsert") or msg["epoch"] != view.epoch:
            return False
        if msg.get("base") != view.revision:
            return False
        removed = {InstanceId(ip, port, cluster) for ip, port, cluster in msg.get("remove") or ()}
        return set(view.instances) <= removed

    def _resolve_waiting(self, watch: Watch) -> None:
        """Answer callers waiting on a pull with the list we keep."""
        listing = watch.view.listing()
        for fut, cb in watch.waiting:
            if cb is not None:
                self.notify(cb, listing)
            if not fut.done():
                fut.set_result(listing)
        watch.waiting.clear()

    def _would_empty(self, watch: Watch, result: Any) -> bool:
        """A snapshot that would blank out a non-empty list (needs a second opinion)."""
        return (
            self.empty_protection
            and watch.view.loaded
            and bool(watch.view.instances)
            and isinstance(result, dict)
            and result.get("instances") == []
        )

    def _confirm_empty(self, key: ServiceKey, why: str) -> None:
        self._limiter.warning(
            ("empty", key),
            time.monotonic(),
            "%s: %s; keeping the last list until a fresh query confirms it",
            key,
            why,
        )
        self._pull(key, confirm=True)

    def _drain_notifications(self) -> None:
        assert self._sub is not None
        for _ in range(1024):
            try:
                frames = self._sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = decode_notification(frames)
                key = ServiceKey(msg["namespace"], msg["group"], msg["service"])
                watch = self.watches.get(key)
                if watch is None:
                    continue
                if self._delta_would_empty(watch, msg):
                    self._confirm_empty(key, f"a push from {self.server} would empty it")
                    continue
                outcome = watch.view.apply_notification(msg)
            except (RemoteProtocolError, KeyError, TypeError, ValueError) as exc:
                self._limiter.warning(
                    "notification",
                    time.monotonic(),
                    "ignoring a malformed notification from %s: %s",
                    self.server,
                    exc,
                )
                continue
            if outcome is Outcome.APPLIED:
                listing = watch.view.listing()
                self._persist(key, listing)
                for cb in watch.listeners:
                    self.notify(cb, listing)
            elif outcome is Outcome.GAP:
                self._pull(key)
