"""Give memory back to the system after a large release (a subscription flood, an eviction).

When 200,000 subscriptions end, Python frees their objects but the process keeps the
memory: glibc holds freed heap pages for reuse, and a dict keeps the table of its largest
size (the subscription gate's tables stayed 10 MB each, empty).  Measured on a node
flooded with 200,000 subscriptions (review of 2026-12-07: 40 -> 270 MB): 245 MB after
every subscriber had left, for good; ``malloc_trim(0)`` alone took it to 135 MB, and
with the tables rebuilt as well to 108 MB.

:class:`ReleasePolicy` (pure: the node's time is an argument) watches one running count,
the subscriptions and instances that ended, and says when ``RELEASE_DROP`` more have
ended since the last release and none for ``QUIET`` (a release in the middle of 200,000
unsubscriptions gave back what had ended by then only), at most once per
``MIN_INTERVAL``.  The runtime looks at most every ``CHECK_INTERVAL``, in the turns it
makes anyway (the health sweep's wake-ups at least): a look costs two reads.  It then
rebuilds its tables at their present size and calls :func:`trim_heap` on a thread of its
own (``malloc_trim`` walks the heap; ctypes lets go of the GIL meanwhile, so the loop
goes on).  Without glibc (musl, macOS) the tables are still rebuilt.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
import os
import threading
import time

log = logging.getLogger("meshreg.node")

CHECK_INTERVAL = 0.5  # s between two looks at the count of ended ones, at most
RELEASE_DROP = 20_000  # subscriptions or instances ended since the last release: give back
QUIET = 2.0  # s without an end before the release
MIN_INTERVAL = 60.0  # s; one release per this at most


class ReleasePolicy:
    """When to give memory back: ``drop`` ended since the last time, none for ``quiet``."""

    def __init__(
        self, drop: int = RELEASE_DROP, min_interval: float = MIN_INTERVAL, quiet: float = QUIET
    ) -> None:
        self.drop = drop
        self.min_interval = min_interval
        self.quiet = quiet
        self.seen = 0  # the running count at the last look
        self.ended_at = -math.inf  # when it last grew
        self.at_release = 0  # the running count at the last release
        self.last = -math.inf  # when that was
        self.released = 0  # releases done

    def due(self, ended_total: int, now: float) -> int:
        """``ended_total``: subscriptions and instances that ended, ever.  How many ended
        since the last release if memory should be given back now, else 0."""
        if ended_total != self.seen:
            self.seen, self.ended_at = ended_total, now
        ended = ended_total - self.at_release
        not_before = max(self.ended_at + self.quiet, self.last + self.min_interval)
        if ended < self.drop or now < not_before:
            return 0
        self.at_release, self.last = ended_total, now
        self.released += 1
        return ended


def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        trim = libc.malloc_trim if libc is not None else None  # glibc only
    except (OSError, AttributeError):
        return None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def resident_bytes() -> int:
    """This process's resident memory (0 where /proc is not)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def trim_heap(why: str) -> threading.Thread | None:
    """``malloc_trim(0)`` on a thread of its own, logging what it gave back; None where
    the C library has no ``malloc_trim``."""
    if _TRIM is None:
        return None
    trim = _TRIM

    def run() -> None:
        before, t0 = resident_bytes(), time.perf_counter()
        trim(0)
        took, after = time.perf_counter() - t0, resident_bytes()
        log.info(
            "%s: resident memory %.0f MB -> %.0f MB given back to the system (%.0f ms)",
            why, before / 2**20, after / 2**20, took * 1e3,
        )  # fmt: skip

    thread = threading.Thread(target=run, name="meshreg-trim", daemon=True)
    thread.start()
    return thread
