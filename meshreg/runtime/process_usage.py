"""What the node's process uses of the machine: memory, CPU, descriptors, threads.

An operator alerts on a node growing (a subscription flood took one from 40 to 270 MB,
runtime/memory_release), on its CPU and on its descriptors nearing the limit (each client
connection holds one), and meshreg has no HTTP endpoint a process exporter could scrape:
``stats.process`` carries them, and ``meshreg stats --format prometheus`` exports them as
``meshreg_process_*`` (the names of Prometheus clients' process metrics, prefixed: a
textfile next to node_exporter's own ``process_*`` must not collide with them).

Read from ``/proc/self`` when ``stats`` is asked (a few system calls, no state kept);
where ``/proc`` is missing (macOS) the fields it alone gives are 0.
"""

from __future__ import annotations

import os
import resource
import threading
from typing import Any

from meshreg.runtime.memory_release import resident_bytes


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _threads() -> int:
    """Every thread of the process (libzmq's I/O threads too, which ``threading`` does
    not know of); ``threading``'s count where ``/proc`` is missing."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return threading.active_count()


def process_usage() -> dict[str, Any]:
    """``stats.process``: resident memory (bytes), CPU seconds (user + system, since the
    start), open and maximum descriptors (the soft limit), threads."""
    times = os.times()
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "resident_bytes": resident_bytes(),
        "cpu_seconds": round(times.user + times.system, 3),
        "open_fds": _open_fds(),
        "max_fds": soft if soft != resource.RLIM_INFINITY else 0,
        "threads": _threads(),
    }
