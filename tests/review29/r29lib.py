"""review29 helpers: keyed node (CURVE + ACL) from review23's helpers, RSS/CPU from /proc."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "review23"))
from helpers import HOST, NodeProcess, RawDealer, holds_for, raw_request, wait_until  # noqa: E402,F401
from r23lib import keyed_node, make_keys, reply_text, rss_mb  # noqa: E402,F401


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
