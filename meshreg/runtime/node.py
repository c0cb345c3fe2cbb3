"""The node's event loop around :class:`meshreg.core.node.RegistryNode`.

One thread owns the sockets (ZeroMQ sockets are not thread-safe).  The loop:
poll the ROUTER and the XPUB until the next health tick, drain each in
batches, hand requests to the core with the real clock, send replies, publish
the effects.  ``stop()`` may be called from any thread or a signal handler.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable

import zmq

from meshreg import __version__
from meshreg.config import NodeConfig
from meshreg.core.events import Effect, ServiceChanged
from meshreg.core.node import RegistryNode
from meshreg.errors import ErrorCode
from meshreg.log_limiter import LogLimiter
from meshreg.transport.sockets import bind_notify_socket, bind_request_socket
from meshreg.wire.envelope import routable_envelope, split_envelope
from meshreg.wire.messages import RequestRejected, parse_request
from meshreg.wire.notifications import encode_change, encode_sync, parse_topic
from meshreg.wire.replies import encode_error, encode_ok

log = logging.getLogger("meshreg.node")

BATCH = 512  # messages drained per socket per loop turn, so no socket starves
MAX_POLL = 0.1  # s; longest poll, bounds how late a stop() is noticed


class NodeRuntime:
    """Binds the sockets and runs the loop until ``stop()``."""

    def __init__(
        self,
        config: NodeConfig,
        clock: Callable[[], float] = time.monotonic,
        epoch: int | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.epoch = epoch if epoch is not None else secrets.randbits(63)
        self.core = RegistryNode(config.health, self.epoch, clock(), config.address)
        self._stop = threading.Event()
        self._ctx: zmq.Context | None = None
        self._router: zmq.Socket | None = None
        self._xpub: zmq.Socket | None = None
        self._limiter = LogLimiter(log)

    def bind(self) -> None:
        """Bind both sockets (raises ConfigError naming the address on failure)."""
        cfg = self.config
        self._ctx = zmq.Context()
        try:
            self._router = bind_request_socket(self._ctx, cfg.host, cfg.port)
            self._xpub = bind_notify_socket(self._ctx, cfg.host, cfg.pub_port)
        except Exception:
            self.close()
            raise
        h = cfg.health
        log.info(
            "meshreg node %s serving requests on %s:%d, notifications on %s:%d "
            "(check every %gs, unhealthy after %gs, evict after %gs, epoch %d)",
            __version__,
            cfg.host,
            cfg.port,
            cfg.host,
            cfg.pub_port,
            h.check_interval,
            h.unhealthy_after,
            h.evict_after,
            self.epoch,
        )

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        for sock in (self._router, self._xpub):
            if sock is not None:
                sock.close()
        self._router = self._xpub = None
        if self._ctx is not None:
            self._ctx.destroy(linger=200)  # bounded: never wait on a stuck peer
            self._ctx = None

    def run(self) -> None:
        """Serve until ``stop()``; closes the sockets on the way out."""
        if self._router is None:
            self.bind()
        router, xpub = self._router, self._xpub
        assert router is not None and xpub is not None
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(xpub, zmq.POLLIN)
        core, clock = self.core, self.clock
        try:
            while not self._stop.is_set():
                now = clock()
                next_tick = core.tick(now)
                self._publish(core.take_effects())
                timeout = min(max(next_tick - now, 0.0), MAX_POLL)
                ready = poller.poll(timeout * 1000.0)
                for sock, _ in ready:
                    if sock is router:
                        self._drain_requests(router)
                    else:
                        self._drain_subscriptions(xpub)
                self._publish(core.take_effects())
        finally:
            log.info("meshreg node on %s stopping", self.config.address)
            self.close()

    # -- requests -------------------------------------------------------------
    def _drain_requests(self, router: zmq.Socket) -> None:
        recv, send, serve = router.recv_multipart, router.send_multipart, self._serve
        now = self.clock()
        for _ in range(BATCH):
            try:
                frames = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            send(serve(frames, now))

    def _serve(self, frames: list[bytes], now: float) -> list[bytes]:
        """One request's frames in, the reply's frames out. Never raises."""
        try:
            envelope, body = split_envelope(frames)
        except RequestRejected as exc:
            self._rejected(exc, now)
            return routable_envelope(frames) + [encode_error(0, exc.code, exc.message)]
        req = None
        try:
            req = parse_request(body)
            return envelope + [encode_ok(req.req_id, self.core.handle(req, now))]
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

    # -- subscriptions and notifications ---------------------------------------
    def _drain_subscriptions(self, xpub: zmq.Socket) -> None:
        core = self.core
        for _ in range(BATCH):
            try:
                msg = xpub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not msg or msg[0] not in (0, 1):
                continue  # XPUB upstream data we do not use
            core.subscription_changed(parse_topic(msg[1:]), msg[0] == 1)

    def _publish(self, effects: list[Effect]) -> None:
        if not effects:
            return
        xpub, epoch = self._xpub, self.epoch
        assert xpub is not None
        for effect in effects:
            if type(effect) is ServiceChanged:
                frames = encode_change(effect, epoch)
                if effect.reason in ("unhealthy", "evicted"):
                    names = [str(i) for i in effect.removed]
                    names += [f"{v.ip}:{v.port}" for v in effect.upserted]
                    log.info(
                        "%s: %s %s (revision %d)",
                        effect.key,
                        effect.reason,
                        ", ".join(names),
                        effect.revision,
                    )
            else:
                frames = encode_sync(effect, epoch)
            try:
                xpub.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                pass  # over HWM: watchers detect the gap by revision and re-pull
