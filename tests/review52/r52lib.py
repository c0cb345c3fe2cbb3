"""Shared helpers of review52 (resource exhaustion from outside, real node processes)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import HOST, NodeProcess, raw_request  # noqa: E402

MIB = 1024 * 1024


def rss_mb(pid: int) -> float:
    """A process's resident set (VmRSS) in MiB, from /proc."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def stats(port: int) -> dict[str, Any]:
    reply = raw_request(port, {"v": 1, "id": 1, "op": "stats"}, 10.0)
    assert reply["ok"], reply
    return reply["result"]


def ping_latency(port: int, timeout: float = 5.0, curve: Any = None) -> float:
    """One ping from a fresh REQ socket (another client than the attacker's): seconds."""
    start = time.monotonic()
    reply = raw_request(port, {"v": 1, "id": 1, "op": "ping"}, timeout, curve)
    assert reply["ok"], reply
    return time.monotonic() - start


def dealer(port: int, sndhwm: int = 100_000, curve: Any = None) -> zmq.Socket:
    """A raw DEALER (``curve``: client public, client secret, server public)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = curve
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    sock.connect(f"tcp://{HOST}:{port}")
    return sock


def packb(body: dict[str, Any]) -> bytes:
    return msgpack.packb(body)


__all__ = [
    "HOST",
    "MIB",
    "NodeProcess",
    "dealer",
    "packb",
    "ping_latency",
    "raw_request",
    "rss_mb",
    "stats",
]
