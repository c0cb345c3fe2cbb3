"""The client's background I/O thread (the zguide's Clone agent), around a sans-IO session.

Every decision is the session's (meshreg/client/session.py: failover, backoff,
routing, liveness, redo, resync, empty protection, what to log).  This loop only
does I/O: it owns the ZeroMQ sockets (a DEALER to the current server, a SUB to its
notification port, a DEALER per cluster member writes go straight to, an inproc
PULL that wakes it when a caller thread queues a command), reads the clock once
per turn, feeds the session what arrived (decoded by meshreg/client/messages) and
carries out the actions it returns.

Callers talk to it only through ``submit`` (typed commands from session.py, each
with a Future to complete) and read only ``status``, an immutable snapshot.

Everything a node sends is untrusted input: a malformed reply fails only the call
it answers, a malformed notification is ignored, and the loop survives any
exception a turn raises.  Only a broken ZeroMQ context ends the thread; calls made
after that raise :class:`ClientClosedError` naming the cause.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import itertools
import logging
import math
import os
import queue
import random
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from meshreg.addresses import PUB_PORT_OFFSET
from meshreg.client.actions import (
    Action,
    CallConfigListener,
    CallListener,
    Complete,
    ConnectServer,
    DirectSend,
    Fail,
    LogLine,
    SaveConfig,
    SaveToDisk,
    SendRequest,
    UnwatchConfigTopic,
    UnwatchTopic,
    WatchConfigTopic,
    WatchTopic,
)
from meshreg.client.commands import Command, RegisterBatch, Subscribe
from meshreg.client.configs import config_topic
from meshreg.client.disk_cache import DiskCache, DiskWriter
from meshreg.client.messages import decode_notification_frames, decode_reply_frames

# Some constants are imported only for tests/wire/test_protocol_doc.py, which checks
# docs/PROTOCOL.md's table against ``agent.NAME``.
from meshreg.client.session import (  # noqa: F401
    BACKOFF_BASE,
    BACKOFF_MAX,
    MAX_SERVERS,
    PROBE_INTERVAL,
    READ_YOUR_WRITES_WINDOW,
    VIEW_INTERVAL,
    YOUNG_NODE_GRACE,
    ClientSession,
    SessionSettings,
    SessionStatus,
)
from meshreg.errors import ClientClosedError, ConfigError, RemoteProtocolError
from meshreg.log_limiter import LogLimiter
from meshreg.model import InstanceList
from meshreg.transport.handshakes import (
    REFUSED,
    HandshakeWatch,
    close_seeing_handshake,
    handshake_failure,
)
from meshreg.transport.sockets import CurveKeys, curve_client, tcp_endpoint
from meshreg.wire.notifications import topic_for
from meshreg.wire.results import split_address

SUB_RCVHWM = 100_000  # notifications this client queues before its loop reads them

log = logging.getLogger("meshreg.client")

COMMANDS_PER_TURN = 256  # commands run before the sockets are looked at again
UNUSABLE_FOR = 10.0  # s; a member address that could not be connected is not retried sooner
# ms; a member's DEALER (writes straight to it, offline probes) that lost its connection
# tries again after 100 ms, doubling up to this: it is kept for the client's life, and
# libzmq's default (every 100 ms, forever) sent a member that died 10 connection attempts
# a second from every client that ever probed it (review51 F3: 80 clients, 530/s).  Short
# enough that a probe of a member back after a whole-cluster outage is answered within
# about a probe round or two (review47 F1's reason for the probes).
DIRECT_RECONNECT_IVL_MAX = 2_000
ERROR_PAUSE_MAX = 1.0  # s; longest pause after a loop turn failed (doubling from 1 ms)
SETTLE_WAIT = 0.2  # s; longest wait for a closed server DEALER's monitor to stop
_MONITOR_IDS = itertools.count()


def _monitor_endpoint() -> str:
    """A monitor's inproc endpoint of its own. pyzmq names it after the socket's
    descriptor, which a socket made next reuses while the closed one's endpoint may
    still be bound (libzmq releases it asynchronously): "Address already in use"."""
    return f"inproc://meshreg.client-monitor.{os.getpid()}.{next(_MONITOR_IDS)}"


DRAIN_BATCH = 1024  # messages read from one socket in one turn
# ZeroMQ errors after which no socket of the context works again: the thread ends.
FATAL_ERRNOS = frozenset((zmq.ETERM, errno.ENOTSOCK))
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# (callback, its argument) to run on the notifier thread; argument None: callback()
Notify = Callable[[Callable[..., None], InstanceList | None], None]


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
        clock: Callable[[], float] = time.monotonic,
        labels: dict[str, str] | None = None,
        wall_offset: float | None = None,
        fail_when_refused: bool = False,
    ) -> None:
        """``curve``: this client's key pair and the cluster's public key (z85);
        ``session``: (namespace, session id) registrations are kept alive by (None:
        per-instance beats); ``clock``: monotonic seconds, read once per turn; ``labels``:
        this client's labels (config gray release); ``wall_offset``: the wall clock less
        ``clock`` (registry writes then carry deadlines; None: they do not)."""
        settings = SessionSettings(
            beat_interval,
            attempt_timeout,
            resync_interval,
            empty_protection,
            curve is not None,
            tuple(sorted((labels or {}).items())),
            wall_offset,
            fail_when_refused,
        )
        self.core = ClientSession(servers, settings, session, shuffle=random.shuffle)
        self.curve = curve
        self.cache = cache
        # disk saves on their own thread, never ahead of a listener (review24 F3)
        self.writer = DiskWriter(cache) if cache is not None else None
        self.notify = notify
        self._clock = clock
        self._now = 0.0
        self.ctx = zmq.Context()
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._wake_lock = threading.Lock()
        self._wake_endpoint = f"inproc://meshreg-client-{id(self)}"
        try:  # (out of descriptors: the context and what it made go, nothing left open)
            self._wake_pull = self.ctx.socket(zmq.PULL)
            self._wake_pull.bind(self._wake_endpoint)
            self._wake_push = self.ctx.socket(zmq.PUSH)
            self._wake_push.connect(self._wake_endpoint)
        except zmq.ZMQError:
            self.ctx.destroy(linger=0)
            raise
        self._commands_left = False  # commands queued that a turn left for the next
        self._dealer: zmq.Socket[bytes] | None = None
        # the server DEALER's completed handshakes: until one, what it queued never left
        # (a write that timed out so was not applied: review19 F8)
        self._dealer_monitor: zmq.Socket[bytes] | None = None
        self._sub: zmq.Socket[bytes] | None = None
        self._sub_endpoint = ""
        self._sub_watch: HandshakeWatch | None = None  # with CURVE: refusals tried again
        self._poller = zmq.Poller()
        self._direct: dict[str, zmq.Socket[bytes]] = {}  # member address -> its DEALER
        self._direct_source: dict[zmq.Socket[bytes], str] = {}
        # each member DEALER's monitor -> the member: a dropped connection re-sends what
        # went straight to it through the server at once (it stopped or died)
        self._direct_monitors: dict[zmq.Socket[bytes], str] = {}
        self._unusable: dict[str, float] = {}  # member address -> when to try it again
        self._limiter = LogLimiter(log)
        self._dead = False  # the I/O thread ended; ``_death`` says why
        self._death = "the meshreg client was closed"
        self._thread = threading.Thread(target=self._run, name="meshreg-client-io", daemon=True)

    # -- caller side (any thread) ---------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, command: Command) -> None:
        with self._wake_lock:
            if self._dead:
                raise ClientClosedError(self._death)
            self._commands.put(command)
            try:
                self._wake_push.send(b"", zmq.NOBLOCK)
            except zmq.Again:
                pass  # wake-ups already queued: the thread drains every command anyway

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def forked(self, why: str) -> None:
        """In a child process made by ``os.fork()``: the I/O thread and its sockets stay
        in the parent, so every command fails at once with ``why``; the lock is made anew
        (another thread of the parent may have held it at the fork)."""
        self._wake_lock = threading.Lock()
        self._dead, self._death = True, why

    @property
    def status(self) -> SessionStatus:
        """An immutable snapshot: the server in use, the servers known, the session."""
        return self.core.status

    @property
    def server(self) -> str:
        return self.status.server

    # -- the I/O thread ---------------------------------------------------------
    def _read_clock(self) -> float:
        """The one place the loop reads the time; the session gets it as ``now``."""
        self._now = self._clock()
        return self._now

    def _run(self) -> None:
        death = "this meshreg Client is closed; create a new one"
        try:
            self._poller.register(self._wake_pull, zmq.POLLIN)
            now = self._read_clock()
            self._perform(self.core.start(now), now)
            self._loop()
        except Exception as exc:  # never leave callers hanging, nor guessing why
            log.exception("meshreg client I/O thread failed")
            servers = ", ".join(f"{h}:{p}" for h, p in self.core.status.servers)
            death = (
                f"the meshreg client's I/O thread stopped ({type(exc).__name__}: {exc}; "
                f"servers {servers}); create a new Client, and report this if it happens again"
            )
        finally:
            with self._wake_lock:
                self._dead, self._death = True, death
                self._wake_push.close(linger=0)
            self._abandon(ClientClosedError(death))
            if self._sub_watch is not None and self._sub is not None:
                self._sub_watch.close(self._sub)
            self._close_dealer_monitor()
            for sock in (self._dealer, self._sub, self._wake_pull):
                if sock is not None:
                    sock.close(linger=0)
            for monitor in self._direct_monitors:
                monitor.close(linger=0)
            for sock in self._direct.values():
                sock.close(linger=0)
            self.ctx.term()

    def _loop(self) -> None:
        failures = 0  # turns failed in a row
        while not self.core.closed:
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
                    self._now,
                    "meshreg client I/O loop: unexpected error (server %s); continuing:\n%s",
                    self.core.server,
                    traceback.format_exc().rstrip(),
                )
                time.sleep(min(ERROR_PAUSE_MAX, 0.001 * 2 ** min(failures, 10)))

    def _turn(self) -> None:
        """One loop turn: wait for input or the session's next timer, then handle both."""
        if self._commands_left and not self.core.backlog_full:
            timeout_ms = 0  # commands wait: look at the sockets, then run more of them
        else:
            wake = self.core.next_wake(self._now)
            if self._sub_watch is not None:
                wake = min(wake, self._sub_watch.retry_at)
            timeout_ms = int(max(0.0, wake - self._now) * 1000.0) + 1
        events = self._poller.poll(timeout_ms)
        now = self._read_clock()
        watch = self._sub_watch
        for sock, _ in events:
            if sock.closed:  # closed by a failover earlier in this turn (its replies with it)
                continue
            if sock is self._wake_pull:
                self._drain_wakeups()
            elif sock is self._sub:
                self._drain_notifications(now)
            elif watch is not None and sock is watch.monitor:
                self._sub_refused(watch.drain(now), now)
            elif sock is self._dealer_monitor:
                self._dealer_events(sock)
            elif sock in self._direct_monitors:
                self._member_events(sock, now)
            else:
                self._drain_replies(sock, now)
        watch = self._sub_watch  # (a server switch in this turn made a new SUB and watch)
        if watch is not None and now >= watch.retry_at:
            self._reconnect_sub(watch)
        if self._commands_left or any(sock is self._wake_pull for sock, _ in events):
            self._drain_commands(now)
        self._perform(self.core.tick(now), now)

    # -- carrying out the session's actions ----------------------------------------------------
    def _perform(self, actions: list[Action], now: float) -> None:
        for action in actions:
            match action:
                case SendRequest():
                    self._send(action, now)
                case Complete(reply_to, result):
                    if not reply_to.done():
                        reply_to.set_result(result)
                case Fail(reply_to, error):
                    if not reply_to.done():
                        reply_to.set_exception(error)
                case CallListener(listener, listing):
                    self.notify(listener, listing)
                case SaveToDisk(key, listing):
                    if self.writer is not None:  # its own thread: no file I/O here
                        self.writer.save(key, listing)
                case WatchTopic(key):
                    assert self._sub is not None
                    self._sub.setsockopt(zmq.SUBSCRIBE, topic_for(key))
                case UnwatchTopic(key):
                    assert self._sub is not None
                    self._sub.setsockopt(zmq.UNSUBSCRIBE, topic_for(key))
                case ConnectServer(host, port, settle):
                    handshaken = self._connect(host, port, settle is not None)
                    if settle is not None:
                        now = self._read_clock()
                        closed = self.core.previous_connection_closed(settle, handshaken, now)
                        self._perform(closed, now)
                case LogLine(level, text):
                    log.log(LOG_LEVELS[level], "%s", text)
                case CallConfigListener(listener, content, revision):
                    self.notify(functools.partial(listener, content, revision), None)
                case SaveConfig(key, entry):
                    if self.writer is not None:  # its own thread: no file I/O here
                        self.writer.save_config(key, entry)
                case WatchConfigTopic(key):
                    assert self._sub is not None
                    self._sub.setsockopt(zmq.SUBSCRIBE, config_topic(key))
                case UnwatchConfigTopic(key):
                    assert self._sub is not None
                    self._sub.setsockopt(zmq.UNSUBSCRIBE, config_topic(key))

    def _abandon(self, error: BaseException) -> None:
        """Fail every call still waiting, in the session and in the command queue."""
        for action in self.core.abandon(error):
            if isinstance(action, Fail) and not action.reply_to.done():
                action.reply_to.set_exception(error)
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                break
            for fut in _reply_handles(command):
                if not fut.done():
                    fut.set_exception(error)

    # -- connections -------------------------------------------------------------
    def _socket(self, kind: int) -> zmq.Socket[bytes]:
        """A socket to a node: no linger, CURVE when the client has a key."""
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if self.curve is not None:
            curve_client(sock, self.curve[0], self.curve[1])
        return sock

    def _connect(self, host: str, port: int, settle: bool = False) -> bool:
        """A new DEALER to the server; the SUB moves to its notification port.

        ``settle``: close the old DEALER first and return whether it completed a
        handshake this loop had not seen yet (``_close_watching``)."""
        handshaken = False
        if self._dealer is not None:
            self._poller.unregister(self._dealer)
            if settle:
                handshaken = self._close_watching()
            else:
                self._close_dealer_monitor()
                self._dealer.close(linger=0)
        self._open_dealer(host, port)
        return handshaken

    def _close_watching(self) -> bool:
        """Close the server DEALER and say whether a handshake on it completed that
        ``_dealer_events`` has not reported: then what it queued may have left."""
        assert self._dealer is not None and self._dealer_monitor is not None
        dealer, monitor = self._dealer, self._dealer_monitor
        self._dealer = self._dealer_monitor = None
        self._poller.unregister(monitor)
        return close_seeing_handshake(dealer, monitor, self._read_clock, SETTLE_WAIT)

    def _open_dealer(self, host: str, port: int) -> None:
        dealer = self._socket(zmq.DEALER)
        self._dealer_monitor = dealer.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED
            | zmq.EVENT_CONNECTED
            | REFUSED
            | zmq.EVENT_DISCONNECTED
            | zmq.EVENT_CONNECT_RETRIED
            | zmq.EVENT_MONITOR_STOPPED,
            _monitor_endpoint(),
        )
        self._poller.register(self._dealer_monitor, zmq.POLLIN)
        if ":" in host:
            dealer.setsockopt(zmq.IPV6, 1)
        if self._sub is None:
            self._open_sub(":" in host)
        self._dealer = dealer
        self._poller.register(dealer, zmq.POLLIN)
        address = f"{host}:{port}"
        try:
            dealer.connect(tcp_endpoint(host, port))
            pub_endpoint = tcp_endpoint(host, port + PUB_PORT_OFFSET)
        except (ConfigError, zmq.ZMQError) as exc:
            # An unconnected DEALER: requests time out and the next server is tried.
            self.core.server_connected(address, str(exc))
            return
        self.core.server_connected(address, None)
        if pub_endpoint != self._sub_endpoint:
            if self._sub_endpoint:  # a new SUB, not a disconnect: see ``_close_sub``
                self._close_sub()
                self._open_sub(":" in host)
            assert self._sub is not None
            self._sub.connect(pub_endpoint)
            self._sub_endpoint = pub_endpoint

    def _open_sub(self, ipv6: bool) -> None:
        """The SUB, subscribed to every topic watched (connected by ``_open_dealer``)."""
        sub = self._sub = self._socket(zmq.SUB)
        # our own queue, ours to hold: a burst of notifications (a rolling deploy of
        # every watched service) drains from the node's queue of 1,000 per subscriber
        # (review23 F1) into this one, not dropped there
        sub.setsockopt(zmq.RCVHWM, SUB_RCVHWM)
        if ipv6:
            sub.setsockopt(zmq.IPV6, 1)
        for key in self.core.watches:
            sub.setsockopt(zmq.SUBSCRIBE, topic_for(key))
        for ckey in self.core.configs.listens:
            sub.setsockopt(zmq.SUBSCRIBE, config_topic(ckey))
        self._poller.register(sub, zmq.POLLIN)
        if self.curve is not None:
            self._sub_watch = HandshakeWatch(sub)
            self._poller.register(self._sub_watch.monitor, zmq.POLLIN)

    def _close_sub(self) -> None:
        """Close the SUB of the server left, with what it still queues.  Disconnecting
        it instead (one SUB for every server) aborted the process when a multipart
        notification of the old server was queued: libzmq reads its first frame from the
        pipe the disconnect terminated and asserts on the second ("Assertion failed:
        !_more (src/fq.cpp:80)", libzmq issue 2163; review42's roll test, 3 in 17 runs).
        What it held is pulled again on the new server (``_use_server``)."""
        sub, watch = self._sub, self._sub_watch
        self._sub, self._sub_watch, self._sub_endpoint = None, None, ""
        if sub is None:
            return
        self._poller.unregister(sub)
        if watch is not None:
            self._poller.unregister(watch.monitor)
            watch.close(sub)
        sub.close(linger=0)

    def _dealer_events(self, monitor: zmq.Socket[bytes]) -> None:
        """The server connection's handshake completed, or failed: tell the session."""
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.core.server_handshaken()
                continue
            if event["event"] == zmq.EVENT_CONNECTED:  # TCP only: a process holds the port
                self.core.server_tcp_connected()
                continue
            if event["event"] == zmq.EVENT_DISCONNECTED:
                now = self._read_clock()
                self._perform(self.core.server_disconnected(now), now)
                return  # (a failover replaced the socket and its monitor)
            if event["event"] == zmq.EVENT_CONNECT_RETRIED:
                now = self._read_clock()
                self._perform(self.core.server_unreachable(now), now)
                return
            if event["event"] == zmq.EVENT_MONITOR_STOPPED:
                return
            failure = handshake_failure(event["event"], int(event["value"]))
            if failure is not None:
                now = self._read_clock()
                self._perform(self.core.server_refused(*failure, now), now)
                if monitor is not self._dealer_monitor:
                    return  # a failover replaced the socket and closed this monitor (review54
                    # F1: read after that, it stopped the client's I/O thread)

    def _close_dealer_monitor(self) -> None:
        monitor, self._dealer_monitor = self._dealer_monitor, None
        if monitor is None:
            return
        self._poller.unregister(monitor)
        if self._dealer is not None:
            try:
                self._dealer.disable_monitor()
            except zmq.ZMQError:
                pass
        monitor.close(linger=0)

    def _sub_refused(self, refused: str | None, now: float) -> None:
        """The node refused the notification connection's handshake (``HandshakeWatch``)."""
        watch = self._sub_watch
        if refused is None or watch is None or not watch.worth_saying():
            return
        if refused.startswith("authentication refused"):  # ZAP: the node's ACL said no
            why = "its key is not accepted there now (the node's ACL)"
        elif refused.startswith("security mechanism mismatch"):
            why = (
                "give this client key= and server_key= if the node runs with --key, none "
                "if it does not"
            )
        else:  # closed mid-handshake: most often a server_key that is not the node's
            why = (
                "is server_key the cluster's public key now (a cluster key rotated?), and "
                "this client's key in the node's ACL?"
            )
        again = (
            f"connecting again in {max(0.0, watch.retry_at - now):.3g}s"
            if watch.definitive
            else "libzmq connects again by itself"
        )
        self._limiter.warning(
            ("sub refused", self._sub_endpoint),
            now,
            "meshreg server %s refused this client's notification connection (%s): %s; "
            "watches and config listeners get changes only by their periodic re-pulls "
            "until it is accepted; %s",
            self.core.server,
            refused,
            why,
            again,
        )

    def _reconnect_sub(self, watch: HandshakeWatch) -> None:
        """Connect the SUB to its endpoint again: libzmq gave up on it after a refusal; its
        subscriptions go again on the new connection (and exact ones are answered with a
        sync by the node, so nothing is missed)."""
        if self._sub is not None and self._sub_endpoint:
            watch.refused = {self._sub_endpoint}  # its one endpoint (the server's, now)
            watch.reconnect(self._sub)
        else:
            watch.retry_at = math.inf

    def _direct_socket(self, address: str, now: float) -> zmq.Socket[bytes] | None:
        """The DEALER to a member; None when its address cannot be used (unresolvable,
        refused by libzmq): the server forwards instead, and we retry it later."""
        sock = self._direct.get(address)
        if sock is None:
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
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, DIRECT_RECONNECT_IVL_MAX)
            if ":" in host:
                sock.setsockopt(zmq.IPV6, 1)
            try:
                sock.connect(endpoint)
            except zmq.ZMQError as exc:
                sock.close(linger=0)
                self._not_usable(address, now, exc)
                return None
            self._direct[address] = sock
            self._direct_source[sock] = address
            self._poller.register(sock, zmq.POLLIN)
            monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED, _monitor_endpoint())
            self._direct_monitors[monitor] = address
            self._poller.register(monitor, zmq.POLLIN)
        return sock

    def _member_events(self, monitor: zmq.Socket[bytes], now: float) -> None:
        """A member's connection dropped: what went straight to it goes another way."""
        dropped = False
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                break
            dropped = dropped or event["event"] == zmq.EVENT_DISCONNECTED
        if dropped:
            self._perform(self.core.member_disconnected(self._direct_monitors[monitor], now), now)

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
            self.core.server,
        )

    # -- sockets ---------------------------------------------------------------------------
    def _send(self, action: SendRequest, now: float) -> None:
        if action.via is None:
            assert self._dealer is not None
            try:
                self._dealer.send_multipart([b"", action.body], zmq.NOBLOCK)
            except zmq.Again:
                pass  # queue full: the attempt deadline will retry it
            return
        direct = self._direct_socket(action.via, now)
        if direct is None:
            outcome = DirectSend.UNUSABLE
        else:
            try:
                direct.send_multipart([b"", action.body], zmq.NOBLOCK)
                outcome = DirectSend.SENT
            except zmq.Again:
                outcome = DirectSend.NOT_CONNECTED
        self._perform(self.core.direct_send_result(action.request_id, outcome, now), now)

    def _drain_replies(self, dealer: zmq.Socket[bytes], now: float) -> None:
        source = self.core.server
        if dealer is not self._dealer:  # a member's DEALER (writes sent straight to it)
            source = self._direct_source.get(dealer, source)
        core = self.core
        for _ in range(DRAIN_BATCH):
            try:
                frames = dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                reply = decode_reply_frames(frames)
            except RemoteProtocolError as exc:
                self._perform(core.on_malformed_reply(source, str(exc), now), now)
                continue
            self._perform(core.on_reply(source, reply, now), now)
            if dealer.closed:  # a reply that moved the client closed it (its others with it)
                return

    def _drain_notifications(self, now: float) -> None:
        assert self._sub is not None
        for _ in range(DRAIN_BATCH):
            try:
                frames = self._sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                note = decode_notification_frames(frames)
            except (RemoteProtocolError, KeyError, TypeError, ValueError) as exc:
                self._perform(self.core.on_malformed_notification(str(exc), now), now)
                continue
            self._perform(self.core.on_notification(note, now), now)

    # -- commands from callers -------------------------------------------------------
    def _drain_wakeups(self) -> None:
        while True:
            try:
                self._wake_pull.recv(zmq.NOBLOCK)
            except zmq.Again:
                return

    def _drain_commands(self, now: float) -> None:
        """Run at most COMMANDS_PER_TURN queued commands, and none while the session's
        backlog is full: replies keep being read between them (a caller queueing 250,000
        registrations must not stall the loop), and a caller outrunning the node waits in
        the command queue instead of growing the backlog."""
        for _ in range(COMMANDS_PER_TURN):
            if self.core.backlog_full:
                self._commands_left = True
                return
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                self._commands_left = False
                return
            if (
                isinstance(command, Subscribe)
                and self.cache is not None
                and not self.core.watching(command.key)
            ):
                saved = self.cache.load(command.key)  # the disk copy, until a node answers
                if saved is not None:
                    command = dataclasses.replace(command, saved=tuple(saved[0]), saved_at=saved[1])
            try:
                self._perform(self.core.handle(command, now), now)
            except Exception as exc:  # pragma: no cover - a bug in a command
                log.exception("meshreg client command %s failed", type(command).__name__)
                for fut in _reply_handles(command):
                    if not fut.done():
                        fut.set_exception(exc)
        self._commands_left = True


def _reply_handles(command: Command) -> list[Future[Any]]:
    """The futures a command's caller waits on."""
    if isinstance(command, RegisterBatch):
        handles = [fut for _, fut in command.items] + [command.reply_to]
        return [fut for fut in handles if isinstance(fut, Future)]
    fut = getattr(command, "reply_to", None)
    return [fut] if isinstance(fut, Future) else []
