"""How long this thread has waited for a CPU: a busy machine told apart from a slow disk.

An inline config commit that takes long (runtime/config_commit ``InlineChoice``) sends
the next commits to the writer thread for a while, so that the loop does not stall on a
slow disk.  But a commit's wall time also holds the time the loop thread sat runnable and
not running: preempted, or woken from its fsync with no core free.  The writer thread
does not avoid that, and each handoff to it costs two thread wake-ups on the same busy
cores.  Measured (3 nodes and a 3-loader paced publish at 1,000/s on 2 cores, with other
work running): 40% of the inline commits were "slow" by their wall time, the nodes
spent most of the run handing every commit to the thread, and a peer saved a version
p50 7 ms after it arrived.  Linux counts that waiting per thread, in nanoseconds, as
the second field of ``/proc/thread-self/schedstat`` (``CONFIG_SCHED_INFO``, on in the
usual distribution kernels); a commit's duration minus what its thread waited there is
the disk's time plus its own CPU.  Where the file cannot be read this says 0 (the wall
time alone, as before).
"""

from __future__ import annotations

import os
import threading

SCHEDSTAT = "/proc/thread-self/schedstat"


class RunQueueWait:
    """Called, the seconds the calling thread has waited on a run queue since it started
    (cumulative; compare two readings).  The file names the thread that opened it, so it
    is opened again when another thread asks.  About 1 us a reading (one ``pread``)."""

    def __init__(self, path: str = SCHEDSTAT) -> None:
        self._path = path
        self._fd: int | None = None
        self._thread: int | None = None

    def __call__(self) -> float:
        ident = threading.get_ident()
        if ident != self._thread:
            self._reopen(ident)
        if self._fd is None:
            return 0.0
        try:
            return int(os.pread(self._fd, 128, 0).split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return 0.0

    def _reopen(self, ident: int) -> None:
        self.close()
        self._thread = ident
        try:
            self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # not Linux, or no schedstat: the wall time alone
            self._fd = None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
