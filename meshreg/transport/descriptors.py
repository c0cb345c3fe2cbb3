"""File descriptors: raise the process's limit at start; say when accepts fail.

Every client connection costs the node one descriptor.  With the common default
soft limit (1024) about a thousand idle TCP connections - from clients, a load
balancer's health checks, or an attacker - are enough to stop the node from
accepting any new client, and libzmq keeps that to itself: the listener retries
in its own thread and the application hears nothing.

So a node (the ``meshreg node`` process) raises its soft ``RLIMIT_NOFILE`` to the
hard limit at start and logs the result (``deploy/meshreg-node.service`` sets the
hard limit, ``LimitNOFILE``); and the request socket is watched through a ZeroMQ
socket monitor for ``EVENT_ACCEPT_FAILED``, logged (rate-limited, naming the
cause and the limit) and counted in ``stats`` (``accept_failures``).

The same monitor reports connections whose security handshake failed before the ZAP
handler was asked: a client without CURVE on a keyed node, one with a key on a node
without, or one that uses another server key - the commonest mistakes in setting a
client up, which libzmq answers with silence (review86 F1: the protocol document said
the node counted them; it counted none).  Two kinds of event:

* ``EVENT_HANDSHAKE_FAILED_PROTOCOL``: the node read what was wrong (the mechanisms
  differ, the client's hello does not decrypt with this node's key).  Counted with the
  handshakes the ZAP handler refused (``stats.handshakes_refused``), logged naming it.
* ``EVENT_HANDSHAKE_FAILED_NO_DETAIL``: the other side hung up before the handshake
  ended.  A client without CURVE usually ends here, not above: it reads the node's
  greeting, sees the mismatch and closes before the node has read its own (measured
  on one machine: 5 of 8 plain clients).  A port probe (connect, close) looks the
  same, so these are counted apart (``stats.handshakes_unfinished``) and logged as
  either, at INFO and at most once per ``UNFINISHED_LOG_INTERVAL``: a load balancer's
  or an orchestrator's TCP check does this every few seconds for good, and a WARNING
  each 10 s on a healthy node (the default, keyless, included) teaches operators to
  ignore the node's warnings.  A mistaken client is still told: by its own error (a
  client that gets no answer names the keys first), and here, at INFO.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from meshreg.log_limiter import LogLimiter
from meshreg.transport.handshakes import describe

log = logging.getLogger("meshreg.node")

MONITOR_BATCH = 1024  # events drained per loop turn; libzmq may retry an accept in a loop
REARM_AFTER = 1.0  # s; the monitor is off this long after a failure (see AcceptMonitor)
LOW_LIMIT = 4096  # descriptors; below this a busy node can run out (logged as a warning)
UNFINISHED_LOG_INTERVAL = 300.0  # s; at most one line on unfinished handshakes (a probe's)

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]


def raise_descriptor_limit() -> int | None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; log and return the result
    (None where the platform has no such limit)."""
    if resource is None:  # pragma: no cover
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if target == resource.RLIM_INFINITY:  # no ceiling: ask for what the unit file sets
        target = max(soft, 65536) if soft != resource.RLIM_INFINITY else soft
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # e.g. above fs.nr_open
            log.warning("could not raise the open file limit from %d to %d: %s", soft, hard, exc)
    shown = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
    if soft != resource.RLIM_INFINITY and soft < LOW_LIMIT:
        log.warning(
            "open file limit is %s descriptors: the node can hold about that many client "
            "connections; raise it (LimitNOFILE= in the systemd unit, ulimit -n) to at least %d",
            shown,
            LOW_LIMIT,
        )
    else:
        log.info("open file limit: %s descriptors", shown)
    return None if soft == resource.RLIM_INFINITY else soft


def descriptor_limit() -> int | None:
    if resource is None:  # pragma: no cover
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


class AcceptMonitor:
    """Watches a listening ZeroMQ socket for connections it failed to accept.

    ``attach(poller)`` puts the monitor socket into the node's poller; ``drain(now)``
    reads the events waiting and logs at most one line per interval; ``tick(now)``
    re-arms it.  Why the care: out of descriptors, libzmq retries the accept at once
    and emits an event each time, and it blocks its I/O thread - every connection of
    the node - while a monitor queue is full.  With pyzmq's ``get_monitor_socket``
    (a 1000-message queue) an existing client's ping went from 0.2 ms to ~20 ms, the
    loop spent half a core reading events, and switching the monitor off could
    deadlock.  So our end of the monitor has no queue limit (libzmq never waits on
    it), and after a failure the monitor is switched off for ``REARM_AFTER``: the
    queue cannot grow meanwhile.  Re-arming needs descriptors too; failing for lack
    of them means the node is still out.  ``failures`` counts the failures noticed
    (up to ``MONITOR_BATCH`` a second while it lasts), not every retry.
    ``handshakes_failed`` and ``handshakes_unfinished`` count the connections whose
    handshake failed (above); they do not switch the monitor off (each is one
    connection the client made).
    """

    def __init__(
        self, sock: zmq.Socket[Any], address: str, limiter: LogLimiter, keyed: bool = False
    ) -> None:
        self.address = address
        self.keyed = keyed  # the node requires CURVE (words of the handshake log line)
        self.failures = 0  # noticed since start; shown in stats as accept_failures
        self.handshakes_failed = 0  # in stats' handshakes_refused
        self.handshakes_unfinished = 0  # stats' handshakes_unfinished
        self.socket: zmq.Socket[Any] | None = None
        self._limiter = limiter
        self._probes = LogLimiter(limiter.logger, UNFINISHED_LOG_INTERVAL)
        self._watched = sock
        self._poller: zmq.Poller | None = None
        self._rearm_at = 0.0
        self._armed = 0  # times armed: each time a fresh inproc endpoint
        self._arm(0.0)

    def attach(self, poller: zmq.Poller) -> None:
        self._poller = poller
        if self.socket is not None:
            poller.register(self.socket, zmq.POLLIN)

    def tick(self, now: float) -> None:
        if self.socket is None and now >= self._rearm_at:
            self._arm(now)

    def drain(self, now: float) -> int:
        if self.socket is None:
            return 0
        seen = 0
        cause = 0
        handshakes = 0
        why = 0
        unfinished = 0
        for _ in range(MONITOR_BATCH):
            try:
                event = recv_monitor_message(self.socket, zmq.NOBLOCK)
            except zmq.Again:
                break
            kind = event.get("event")
            if kind == zmq.EVENT_ACCEPT_FAILED:
                seen += 1
                cause = int(event.get("value") or 0)
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                handshakes += 1
                why = int(event.get("value") or 0)
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                unfinished += 1
        if handshakes:
            self._handshake_failed(now, why, handshakes)
        if unfinished:
            self._handshake_unfinished(now, unfinished)
        if seen:
            self._failed(now, cause, seen)
            self._disarm(now)
        return seen

    def _arm(self, now: float) -> None:
        """Start the monitor. Our PAIR exists and is connected (inproc allows connecting
        before the bind) before libzmq's side starts, and has no receive limit: libzmq
        never waits on it, so switching the monitor off never waits on libzmq."""
        self._armed += 1
        endpoint = f"inproc://meshreg-accept-monitor-{id(self)}-{self._armed}"
        pair: zmq.Socket[Any] | None = None
        try:
            pair = self._watched.context.socket(zmq.PAIR)
            pair.setsockopt(zmq.LINGER, 0)
            pair.setsockopt(zmq.RCVHWM, 0)
            pair.connect(endpoint)
            self._watched.monitor(
                endpoint,
                zmq.EVENT_ACCEPT_FAILED
                | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
            )
        except zmq.ZMQError as exc:
            if pair is not None:
                pair.close(linger=0)
            self._rearm_at = now + REARM_AFTER
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                self._failed(now, exc.errno, 1)  # still out of descriptors
            else:
                log.warning("cannot watch %s for failed accepts: %s", self.address, exc)
            return
        self.socket = pair
        if self._poller is not None:
            self._poller.register(pair, zmq.POLLIN)

    def _disarm(self, now: float) -> None:
        sock, self.socket = self.socket, None
        self._rearm_at = now + REARM_AFTER
        if sock is None:
            return
        if self._poller is not None:
            self._poller.unregister(sock)
        try:
            self._watched.disable_monitor()
        except zmq.ZMQError:
            pass
        sock.close(linger=0)

    def _failed(self, now: float, cause: int, count: int) -> None:
        self.failures += count
        why = os.strerror(cause) if cause else "unknown error"
        name = errno.errorcode.get(cause, str(cause))
        if cause in (errno.EMFILE, errno.ENFILE):
            hint = (
                f"out of file descriptors (limit {descriptor_limit()}): raise the limit "
                "(LimitNOFILE= in the systemd unit, ulimit -n) or find who holds so many "
                "connections (ss -tn state established '( sport = :PORT )')"
            ).replace("PORT", self.address.rpartition(":")[2])
        else:
            hint = "new clients cannot connect until this clears"
        self._limiter.warning(
            "accept-failed",
            now,
            "cannot accept connections on %s: %s (%s); %s (%d noticed so far)",
            self.address,
            why,
            name,
            hint,
            self.failures,
        )

    def _handshake_failed(self, now: float, value: int, count: int) -> None:
        self.handshakes_failed += count
        if value == getattr(zmq, "PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH", -1):
            what, hint = self._mismatch()
        else:
            failed = describe(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, value)
            what = f"a handshake that failed: {failed}"
            hint = ("a client with CURVE keys but another server key than this node's public "
                    "key is the usual cause: check the client's --server-key")  # fmt: skip
        self._limiter.warning(
            ("handshake-failed", value),  # one budget per cause: each is said
            now,
            "a connection to %s never completed its security handshake, %s; nothing is "
            "answered, so to that client this node looks down; %s (%d such so far)",
            self.address,
            what,
            hint,
            self.handshakes_failed,
        )

    def _handshake_unfinished(self, now: float, count: int) -> None:
        self.handshakes_unfinished += count
        self._probes.info(
            "handshake-unfinished",
            now,
            "connections to %s closed by the other side during the security handshake "
            "(%d so far): a TCP port check (connect, close; `meshreg ping --ready` is the "
            "health check to use) or %s, which hangs up once it sees the mismatch; a "
            "client that gets no answer: %s",
            self.address,
            self.handshakes_unfinished,
            *self._mismatch(),
        )

    def _mismatch(self) -> tuple[str, str]:
        """Who fails a handshake on a mechanism mismatch with this node, and what to do."""
        if self.keyed:
            return ("a client without CURVE keys (this node requires them)",
                    "give the client a key its ACL entry names and this node's public key "
                    "(docs/SECURITY.md \"Keys\"; `meshreg ... --key NAME.key --server-key "
                    "cluster.pub`)")  # fmt: skip
        return ("a client with a CURVE key (this node runs without keys)",
                "run the client without a key, or give the node one (--key)")  # fmt: skip

    def close(self) -> None:
        self._disarm(0.0)
