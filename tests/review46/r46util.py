"""review46 helpers: real ``meshreg node`` processes on 127.0.0.1, ports 33000-33999 only
(this review's slice), with the claim files of tests/helpers.py so that two sessions never
take one block."""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "integration"))

import helpers  # noqa: E402
from helpers import HOST, NodeProcess, raw_request, run_cli, start_all, wait_until  # noqa: E402

LOW, HIGH = 33000, 34000

__all__ = ["HOST", "NodeProcess", "port_block", "ping", "raw_request", "run_cli", "start_all",
           "wait_until"]  # fmt: skip


def port_block(span: int = 4) -> int:
    """A port p with p .. p+span-1 free on 127.0.0.1 and claimed, all in 33000-33999."""
    os.makedirs(helpers._CLAIMS, exist_ok=True)
    rng = random.Random()
    for _ in range(400):
        port = rng.randrange(LOW, HIGH - span, span)
        block = range(port, port + span)
        if helpers._handed_out.intersection(block):
            continue
        if not all(helpers._bindable(p) for p in block):
            continue
        if all(helpers._claim(p) for p in block):
            helpers._handed_out.update(block)
            return port
    raise RuntimeError("no free block of ports in 33000-33999")


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
