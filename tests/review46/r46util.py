"""review46 helpers: real ``meshreg node`` processes on 127.0.0.1, on ports from
tests/helpers.py's ``free_port_pair`` (below the kernel's ephemeral range, claimed)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "integration"))

import helpers  # noqa: E402
from helpers import HOST, NodeProcess, raw_request, run_cli, start_all, wait_until  # noqa: E402

__all__ = ["HOST", "NodeProcess", "port_block", "ping", "raw_request", "run_cli", "start_all",
           "wait_until"]  # fmt: skip


def port_block(span: int = 4) -> int:
    """A port p with p .. p+span-1 free on 127.0.0.1 and claimed.  The reviewer's slice,
    33000-33999, lay in the ephemeral range (32768-60999 here), from which every outgoing
    connection takes its local port: CI on 0877501 failed 3 tests when a restarted node
    found its port taken ("Address already in use") while other tests' clients were
    connecting."""
    return helpers.free_port_pair(span)


def ping(node: NodeProcess, timeout: float = 2.0) -> dict:
    return raw_request(node.port, {"v": 1, "id": 1, "op": "ping"}, timeout)["result"]


def holds(pred, seconds: float, step: float = 0.25) -> bool:  # noqa: ANN001
    """pred() true at every look for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not pred():
            return False
        time.sleep(step)
    return True
