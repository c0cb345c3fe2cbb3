"""The node's event loop around :class:`meshreg.core.distro.DistroNode`.

One thread owns every socket (ZeroMQ sockets are not thread-safe).  The loop
polls the ROUTER (clients and peers), the XPUB (client subscriptions), and,
in a cluster, the replication SUB and one DEALER per peer; it hands each
input to the core with the real clock and carries out the effects: replies,
client notifications, replication broadcasts, forwards and peer calls.
``stop()`` may be called from any thread or a signal handler.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from meshreg import __version__
from meshreg.config import NodeConfig
from meshreg.core.distro import Broadcast, DistroNode, Forward, PeerCall
from meshreg.core.events import ServiceChanged, StallDetected, SyncAnnounced
from meshreg.core.membership import MemberChanged, MemberState
from meshreg.core.preservation import SelfPreservationEnded, SelfPreservationStarted
from meshreg.errors import ErrorCode, RemoteProtocolError
from meshreg.log_limiter import LogLimiter
from meshreg.runtime.descriptors import AcceptMonitor
from meshreg.runtime.gc_policy import avoid_full_collections
from meshreg.runtime.peers import PeerLinks, decode_call_reply, replication_endpoint
from meshreg.transport.sockets import (
    bind_notify_socket,
    bind_replication_socket,
    bind_request_socket,
)
from meshreg.wire.envelope import routable_envelope, split_envelope
from meshreg.wire.messages import RequestRejected, beat_fields, decode_body, parse_message
from meshreg.wire.notifications import encode_change, encode_sync, parse_topic
from meshreg.wire.peer import (
    Beacon,
    DigestSummary,
    decode_replication,
    encode_beacon,
    encode_delta,
    encode_digest,
)
from meshreg.wire.replies import encode_error, encode_ok

log = logging.getLogger("meshreg.node")

BATCH = 512  # messages drained per socket per loop turn, so no socket starves
_NOBLOCK, _SNDMORE, _RCVMORE = int(zmq.NOBLOCK), int(zmq.SNDMORE), int(zmq.RCVMORE)
MAX_POLL = 0.1  # s; longest poll, bounds how late a stop() is noticed


class NodeRuntime:
    """Binds the sockets and runs the loop until ``stop()``."""

    def __init__(
        self,
        config: NodeConfig,
        clock: Callable[[], float] = time.monotonic,
        epoch: int | None = None,
        avoid_full_gc: bool = False,
    ) -> None:
        """``avoid_full_gc``: no automatic full GC collections (runtime/gc_policy):
        process-wide, so only for a process that is a node."""
        self.config = config
        self.clock = clock
        self.epoch = epoch if epoch is not None else secrets.randbits(63)
        now = clock()
        self.peer_addresses = config.peer_addresses()
        self.core = DistroNode(
            config.health,
            config.cluster,
            config.member_id,
            config.address,
            self.peer_addresses,
            self.epoch,
            now,
            wall_offset=time.time() - now,
        )
        self._stop = threading.Event()
        self._ctx: zmq.Context[Any] | None = None
        self._router: zmq.Socket[bytes] | None = None
        self._xpub: zmq.Socket[bytes] | None = None
        self._repl_pub: zmq.Socket[bytes] | None = None
        self._repl_sub: zmq.Socket[bytes] | None = None
        self._peers: PeerLinks | None = None
        self._limiter = LogLimiter(log)
        self._accepts: AcceptMonitor | None = None  # says when clients cannot connect
        if avoid_full_gc:
            avoid_full_collections()

    def bind(self) -> None:
        """Bind the sockets (raises ConfigError naming the address on failure)."""
        cfg = self.config
        self._ctx = zmq.Context()
        try:
            self._router = bind_request_socket(self._ctx, cfg.host, cfg.port)
            self._accepts = AcceptMonitor(self._router, cfg.address, self._limiter)
            self._xpub = bind_notify_socket(self._ctx, cfg.host, cfg.pub_port)
            if self.peer_addresses:
                self._repl_pub = bind_replication_socket(self._ctx, cfg.host, cfg.replication_port)
                sub = self._repl_sub = self._ctx.socket(zmq.SUB)
                sub.setsockopt(zmq.LINGER, 0)
                sub.setsockopt(zmq.SUBSCRIBE, b"")
                for address in self.peer_addresses:
                    sub.connect(replication_endpoint(address))
                self._peers = PeerLinks(self._ctx, cfg.cluster.peer_request_timeout)
        except Exception:
            self.close()
            raise
        h = cfg.health
        log.info(
            "meshreg node %s (id %s) serving requests on %s:%d, notifications on %s:%d "
            "(check every %gs, unhealthy after %gs, evict after %gs, self-preservation %s, "
            "epoch %d)",
            __version__,
            cfg.member_id,
            cfg.host,
            cfg.port,
            cfg.host,
            cfg.pub_port,
            h.check_interval,
            h.unhealthy_after,
            h.evict_after,
            f"above {h.self_preservation_threshold:g} of >= {h.self_preservation_min} silent"
            if h.self_preservation
            else "off",
            self.epoch,
        )
        if self.peer_addresses:
            log.info(
                "cluster: replication on %s:%d, peers %s (peer timeout %gs); catching up",
                cfg.host,
                cfg.replication_port,
                ", ".join(self.peer_addresses),
                cfg.cluster.peer_timeout,
            )

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self._accepts is not None:
            self._accepts.close()
            self._accepts = None
        if self._peers is not None:
            self._peers.close()
            self._peers = None
        for sock in (self._router, self._xpub, self._repl_pub, self._repl_sub):
            if sock is not None:
                sock.close()
        self._router = self._xpub = self._repl_pub = self._repl_sub = None
        if self._ctx is not None:
            self._ctx.destroy(linger=200)  # bounded: never wait on a stuck peer
            self._ctx = None

    def run(self) -> None:
        """Serve until ``stop()``; closes the sockets on the way out."""
        if self._router is None:
            self.bind()
        router, xpub, sub, peers = self._router, self._xpub, self._repl_sub, self._peers
        assert router is not None and xpub is not None
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(xpub, zmq.POLLIN)
        if sub is not None:
            poller.register(sub, zmq.POLLIN)
        accepts = self._accepts
        if accepts is not None:
            accepts.attach(poller)
        dealers: set[zmq.Socket[bytes]] = set()
        if peers is not None:

            def add(sock: zmq.Socket[bytes]) -> None:
                poller.register(sock, zmq.POLLIN)
                dealers.add(sock)

            peers.poller_add = add
        core, clock = self.core, self.clock
        was_ready = core.ready
        try:
            while not self._stop.is_set():
                if sub is not None:
                    # Beacons queued while we were busy come first: after a long step
                    # of our own, a peer must not look silent only because we were.
                    self._drain_replication(sub)
                now = clock()
                if accepts is not None:
                    accepts.tick(now)
                wake = core.tick(now)
                self._carry_out(core.take_effects(), now)
                if core.ready and not was_ready:
                    was_ready = True
                    log.info(
                        "caught up: ready, %d services known; members %s",
                        len(core.store.services),
                        ", ".join(core.members()),
                    )
                if peers is not None:
                    self._expire(peers, now)
                    deadline = peers.next_deadline()
                    if deadline is not None:
                        wake = min(wake, deadline)
                timeout = min(max(wake - now, 0.0), MAX_POLL)
                events = poller.poll(timeout * 1000.0)
                if events and core.check_stall(clock()):
                    # stopped while waiting (SIGSTOP, a VM freeze): what is waiting in the
                    # sockets may be old; the core knows it before it reads any of it
                    self._carry_out(core.take_effects(), clock())
                for sock, _ in events:
                    if sock is router:
                        self._drain_requests(router)
                    elif sock is xpub:
                        self._drain_subscriptions(xpub)
                    elif sock is sub:
                        self._drain_replication(sub)
                    elif sock in dealers:
                        self._drain_peer_replies(sock)
                    elif accepts is not None and sock is accepts.socket:
                        accepts.drain(clock())
                        core.counters["accept_failures"] = accepts.failures
                    self._carry_out(core.take_effects(), clock())
        finally:
            log.info("meshreg node on %s stopping", self.config.address)
            self.close()

    # -- requests -------------------------------------------------------------
    def _drain_requests(self, router: zmq.Socket[bytes]) -> None:
        # The hot path: plain recv/send with int flags instead of the multipart helpers
        # (pyzmq's helpers cost more than all of meshreg's own work on a beat).
        recv, send, get, serve = router.recv, router.send, router.get, self._serve
        now = self.clock()
        for _ in range(BATCH):
            try:
                frames = [recv(_NOBLOCK)]
            except zmq.Again:
                return
            while get(_RCVMORE):
                frames.append(recv(0))
            reply = serve(frames, now)
            if reply is not None:
                last = len(reply) - 1
                for i, frame in enumerate(reply):
                    send(frame, 0 if i == last else _SNDMORE)

    def _serve(self, frames: list[bytes], now: float) -> list[bytes] | None:
        """One request's frames in, the reply's frames out (None: forwarded). Never raises."""
        try:
            envelope, body = split_envelope(frames)
        except RequestRejected as exc:
            self._rejected(exc, now)
            return routable_envelope(frames) + [encode_error(0, exc.code, exc.message)]
        req = None
        try:
            msg = decode_body(body)
            beat = beat_fields(msg)
            if beat is not None and self.core.fast_beat(beat[1], beat[2], now):
                return envelope + [encode_ok(beat[0], None)]
            req = parse_message(msg)
            forwarded = len(envelope) > 2  # a peer relayed it: never forward again
            result = self.core.handle(req, now, forwarded)
            if type(result) is Forward:
                peers = self._peers
                if peers is not None and peers.forward(result.address, envelope, req, body, now):
                    return None
                result = self.core.handle(req, now, True)  # owner unreachable: apply here
            return envelope + [encode_ok(req.req_id, result)]
        except RequestRejected as exc:
            self._rejected(exc, now)
            return envelope + [encode_error(exc.req_id, exc.code, exc.message)]
        except Exception:  # a bug must not take the node down; answer and log it
            log.exception("internal error while serving a request")
            self.core.stats.count_error(ErrorCode.INTERNAL)
            req_id = req.req_id if req is not None else 0
            return envelope + [
                encode_error(req_id, ErrorCode.INTERNAL, "internal error; see the node log")
            ]

    def _rejected(self, exc: RequestRejected, now: float) -> None:
        self.core.rejected(exc)
        if exc.code == ErrorCode.NOT_FOUND:
            log.debug("%s", exc.message)  # routine: evicted or restarted; client re-registers
            return
        self._limiter.warning(exc.code, now, "rejected request: %s: %s", exc.code.name, exc.message)

    # -- peers ----------------------------------------------------------------------
    def _drain_peer_replies(self, dealer: zmq.Socket[bytes]) -> None:
        peers, router, core = self._peers, self._router, self.core
        assert peers is not None and router is not None
        now = self.clock()
        for _ in range(BATCH):
            try:
                frames = dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) == 3 and frames[1] == b"":  # a forwarded write's reply
                pending = peers.forwards.pop(frames[0], None)
                if pending is not None:
                    router.send_multipart(pending.envelope + [frames[2]])
            elif len(frames) == 2 and frames[0] == b"":  # a peer call's reply
                try:
                    tag, ok, result = decode_call_reply(frames[1])
                except RemoteProtocolError as exc:
                    self._limiter.warning("peer-reply", now, "bad reply from a peer: %s", exc)
                    continue
                if peers.calls.pop(tag, None) is None:
                    continue
                if ok:
                    core.peer_reply(tag, result, now)
                else:
                    core.peer_failed(tag, now)

    def _expire(self, peers: PeerLinks, now: float) -> None:
        forwards, calls = peers.expired(now)
        router = self._router
        assert router is not None
        for pending in forwards:  # the owner did not answer: apply the write here
            req = pending.request
            try:
                result = self.core.handle(req, now, True, received_at=pending.received_at)
                body = encode_ok(req.req_id, result)
            except RequestRejected as exc:
                body = encode_error(exc.req_id, exc.code, exc.message)
            router.send_multipart(pending.envelope + [body])
        for tag in calls:
            self.core.peer_failed(tag, now)

    def _drain_replication(self, sub: zmq.Socket[bytes]) -> None:
        core = self.core
        now = self.clock()
        for _ in range(BATCH):
            try:
                frames = sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = decode_replication(frames)
            except RemoteProtocolError as exc:
                core.counters["replication_errors"] += 1
                self._limiter.warning("replication", now, "bad replication message: %s", exc)
                continue
            core.on_replication(msg, now)

    # -- subscriptions and notifications ---------------------------------------
    def _drain_subscriptions(self, xpub: zmq.Socket[bytes]) -> None:
        core = self.core
        for _ in range(BATCH):
            try:
                msg = xpub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not msg or msg[0] not in (0, 1):
                continue  # XPUB upstream data we do not use
            core.subscription_changed(parse_topic(msg[1:]), msg[0] == 1)

    def _carry_out(self, effects: list[Any], now: float) -> None:
        if not effects:
            return
        xpub, epoch, watched = self._xpub, self.epoch, self.core.watched
        assert xpub is not None
        for effect in effects:
            t = type(effect)
            if t is ServiceChanged:
                if watched(effect.key):
                    self._notify(xpub, encode_change(effect, epoch))
                if effect.reason in ("unhealthy", "evicted"):
                    log.info(
                        "%s: %s %s (revision %d)",
                        effect.key,
                        effect.reason,
                        _some_names(effect),
                        effect.revision,
                    )
            elif t is SyncAnnounced:
                self._notify(xpub, encode_sync(effect, epoch))
            elif t is Broadcast:
                self._broadcast(effect.message)
            elif t is PeerCall:
                peers = self._peers
                if peers is None or not peers.call(effect, now):
                    self.core.peer_failed(effect.tag, now)
            elif t is SelfPreservationStarted:
                log.warning(
                    "SELF-PRESERVATION ON: %d of the %d instances this node is responsible for "
                    "missed their beats at once (more than %g%%, at least %d): suspecting this "
                    "node's own network, not the providers; marking them unhealthy but evicting "
                    "nothing until beats recover",
                    effect.silent,
                    effect.total,
                    effect.threshold * 100,
                    effect.min_instances,
                )
            elif t is SelfPreservationEnded:
                log.info(
                    "self-preservation off after %.1fs: %d of %d instances silent; instances "
                    "still silent are evicted in %gs",
                    effect.lasted,
                    effect.silent,
                    effect.total,
                    effect.evictions_resume_in,
                )
            elif t is StallDetected:
                log.warning(
                    "this node was stalled for %.1fs (stopped, frozen or starved): judging "
                    "nobody's health for %gs and resyncing with its peers first",
                    effect.late,
                    effect.grace,
                )
            elif t is MemberChanged:
                if effect.state is MemberState.UP:
                    how = "restarted" if effect.restarted else "up"
                    log.info("peer %s (%s) is %s", effect.node_id, effect.address, how)
                else:
                    log.warning("peer %s (%s) is down", effect.node_id, effect.address)

    def _notify(self, xpub: zmq.Socket[bytes], frames: list[bytes]) -> None:
        try:
            xpub.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            pass  # over HWM: watchers detect the gap by revision and re-pull

    def _broadcast(self, message: Any) -> None:
        pub = self._repl_pub
        if pub is None:
            return
        if type(message) is Beacon:
            frames = encode_beacon(message)
        elif type(message) is DigestSummary:
            frames = encode_digest(message)
        else:
            frames = encode_delta(message)
        try:
            pub.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            pass  # over HWM: peers see the seq gap and repair by anti-entropy


LOGGED_NAMES = 10  # instances named in one "unhealthy"/"evicted" log line; the rest counted


def _some_names(change: ServiceChanged) -> str:
    """The first instances of a health change, and how many more: one bounded log line
    even when a mass expiry marks thousands at once."""
    count = len(change.removed) + len(change.upserted)
    names = [str(i) for i in change.removed[:LOGGED_NAMES]]
    names += [f"{v.ip}:{v.port}" for v in change.upserted[: LOGGED_NAMES - len(names)]]
    more = count - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")
