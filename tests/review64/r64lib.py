"""Shared helpers of review64 (a platform team hosting tenants on one keyed cluster)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import zmq.auth  # noqa: E402
from helpers import NodeProcess, free_port_pair, meshreg_cmd, raw_request, wait_until  # noqa: E402

ACL = """
[[client]]
name = "team-a"
key_file = "team-a.pub"
allow = [{ namespace = "team-a", group = "*", service = "*", access = "admin" }]

[[client]]
name = "team-b"
key_file = "team-b.pub"
allow = [{ namespace = "team-b", group = "*", service = "*", access = "admin" }]

[[client]]
name = "admin"
key_file = "admin.pub"
allow = [{ namespace = "*", group = "*", service = "*", access = "admin" }]
"""


def curve(tmp: Path, name: str) -> tuple[bytes, bytes, bytes]:
    """(client public, client secret, server public) of key ``name`` for raw sockets."""
    pub, sec = zmq.auth.load_certificate(str(tmp / f"{name}.key"))
    spub, _ = zmq.auth.load_certificate(str(tmp / "cluster.pub"))
    assert sec is not None
    return pub, sec, spub


def tenant_nodes(tmp: Path, count: int = 1, *extra: str, acl: str = ACL) -> list[NodeProcess]:
    """``count`` nodes (a cluster when above 1) with a cluster key and README-style ACL:
    team-a and team-b admin of their own namespace only, admin of everything.  Keys in
    ``tmp``.  Launched and answering a ping with the admin key; the caller cleans up."""
    for name in ("cluster", "team-a", "team-b", "admin"):
        subprocess.run(meshreg_cmd("keygen", name), cwd=tmp, check=True, capture_output=True)
    (tmp / "acl.toml").write_text(acl)
    ports = [free_port_pair() for _ in range(count)]
    peers = [a for p in ports for a in ("--peer", f"127.0.0.1:{p}")] if count > 1 else []
    nodes = [
        NodeProcess(*peers, "--key", str(tmp / "cluster.key"), "--acl", str(tmp / "acl.toml"),
                    "--data-dir", str(tmp / f"d{p}"), *extra, port=p, curve=curve(tmp, "admin"))
        for p in ports
    ]  # fmt: skip
    try:
        for node in nodes:
            node.launch()
        for node in nodes:
            node.wait_ready(30)
        if count > 1:
            wait_until(lambda: all(_config_ready(tmp, n) for n in nodes), 30, 0.2,
                       "every node's configs ready")  # fmt: skip
    except BaseException:
        for node in nodes:
            node.cleanup()
        raise
    return nodes


def _config_ready(tmp: Path, node: NodeProcess) -> bool:
    try:
        r = raw_request(node.port, {"v": 1, "id": 1, "op": "ping"}, 1.0, curve(tmp, "admin"))
    except zmq.Again:
        return False
    return bool(r["ok"] and r["result"].get("config_ready"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def admin_stats(tmp: Path, node: NodeProcess) -> dict[str, Any]:
    r = raw_request(node.port, {"v": 1, "id": 1, "op": "stats"}, 5.0, curve(tmp, "admin"))
    assert r["ok"], r
    return r["result"]


__all__ = ["curve", "tenant_nodes", "rss_kib", "admin_stats", "os"]
