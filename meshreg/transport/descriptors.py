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
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from meshreg.log_limiter import LogLimiter

log = logging.getLogger("meshreg.node")

MONITOR_BATCH = 1024  # events drained per loop turn; libzmq may retry an accept in a loop
REARM_AFTER = 1.0  # s; the monitor is off this long after a failure (see AcceptMonitor)
LOW_LIMIT = 4096  # descriptors; below this a busy node can run out (logged as a warning)

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
    """

    def __init__(self, sock: zmq.Socket[Any], address: str, limiter: LogLimiter) -> None:
        self.address = address
        self.failures = 0  # noticed since start; shown in stats as accept_failures
        self.socket: zmq.Socket[Any] | None = None
        self._limiter = limiter
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
        for _ in range(MONITOR_BATCH):
            try:
                event = recv_monitor_message(self.socket, zmq.NOBLOCK)
            except zmq.Again:
                break
            if event.get("event") == zmq.EVENT_ACCEPT_FAILED:
                seen += 1
                cause = int(event.get("value") or 0)
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
            self._watched.monitor(endpoint, zmq.EVENT_ACCEPT_FAILED)
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

    def close(self) -> None:
        self._disarm(0.0)
