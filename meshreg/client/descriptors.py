"""Whether this process has the file descriptors a client needs, asked before it opens any.

libzmq aborts the whole process (SIGABRT, "Too many open files (src/epoll.cpp:38)") when
it cannot make its I/O thread's poller, and a socket refused for want of a descriptor
raises a bare ``ZMQError``: an application near its limit lost the process, or got an
error that named neither meshreg nor the limit (review55).  A client is refused first,
with an error that says what to change.
"""

from __future__ import annotations

import errno
import os

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows: nothing to check
    resource = None  # type: ignore[assignment]

# What one client opens: its ZeroMQ context (I/O thread poller, reaper, mailboxes), its
# command sockets (measured: 10-13 with one server) ...
BASE_DESCRIPTORS = 16
PER_SERVER = 2  # ... and per server, a DEALER's mailbox and its TCP connection


def descriptor_shortfall(servers: int) -> str | None:
    """None when a client with ``servers`` servers fits under the process's descriptor
    limit (or it cannot be known), else why not, for the error."""
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    need = BASE_DESCRIPTORS + PER_SERVER * servers
    try:
        used = len(os.listdir("/proc/self/fd")) - 1  # less the one listdir held
    except OSError as exc:
        if exc.errno not in (errno.EMFILE, errno.ENFILE):
            return None  # no /proc: not known
        used = soft
    if soft - used >= need:
        return None
    return (
        f"this process has {used} of its {soft} file descriptors open (ulimit -n) and a "
        f"meshreg client needs about {need} more (its ZeroMQ context, sockets and "
        "connections): raise the limit (ulimit -n; LimitNOFILE= in a systemd unit) or close "
        "what holds them (one Client per process serves every thread)"
    )
