"""review23 helpers: a keyed node (CURVE + ACL) on free loopback ports, tenant keys, RSS."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import NodeProcess, run_cli  # noqa: E402

Curve = tuple[bytes, bytes, bytes]


def make_keys(tmp: Path, *names: str) -> dict[str, Curve]:
    """``meshreg keygen`` each name (plus ``cluster``); name -> (public, secret, server
    public), the triple a raw CURVE socket of that client needs."""
    for name in ("cluster", *names):
        out = run_cli("keygen", str(tmp / name))
        assert out.returncode == 0, out.stderr
    server_pub, _ = zmq.auth.load_certificate(str(tmp / "cluster.key"))
    keys: dict[str, Curve] = {}
    for name in ("cluster", *names):
        pub, sec = zmq.auth.load_certificate(str(tmp / f"{name}.key"))
        assert sec is not None
        keys[name] = (pub, sec, server_pub)
    return keys


def keyed_node(tmp: Path, acl: str, keys: dict[str, Curve], *extra: str,
               ping_as: str = "cluster") -> NodeProcess:  # fmt: skip
    """A node with ``--key cluster.key --acl acl.toml`` (not started)."""
    (tmp / "acl.toml").write_text(acl)
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    return NodeProcess("--key", str(tmp / "cluster.key"), "--acl", str(tmp / "acl.toml"),
                       "--data-dir", str(data), *extra, curve=keys[ping_as])  # fmt: skip


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def reply_text(r: dict[str, Any]) -> str:
    if r.get("ok"):
        return "ok " + repr(r.get("result"))[:300]
    return f"{r['error'].get('name')}: {r['error'].get('message', '')[:300]}"
