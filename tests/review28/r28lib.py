"""review28 helpers: real node processes (tests/helpers.py) driven by the doc-only client
(doc_client.py: zmq + msgpack + xxhash, written from docs/PROTOCOL.md alone)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from doc_client import DocClient, NoReply, ServerError, owner, service_key  # noqa: E402,F401
from helpers import HOST, NodeProcess, free_port_pair, start_all, wait_until  # noqa: E402,F401

PROTOCOL_MD = HERE.parent.parent / "docs" / "PROTOCOL.md"


def cluster(n: int, tmp: str, extra: tuple[str, ...] = ()) -> list[NodeProcess]:
    """n nodes naming each other (README "A cluster"), each with its own data dir."""
    ports = [free_port_pair() for _ in range(n)]
    peers = sum((["--peer", f"{HOST}:{p}"] for p in ports), [])
    nodes = [
        NodeProcess(*extra, *peers, "--data-dir", os.path.join(tmp, f"data{i}"), port=p)
        for i, p in enumerate(ports)
    ]
    return start_all(nodes)


def all_up(clients: list[DocClient], n: int) -> bool:
    for c in clients:
        try:
            ping = c.call("ping")
            if not (ping.get("ready") and ping.get("config_ready")):
                return False
            members = c.call("cluster")["members"]
        except (NoReply, ServerError):
            return False
        if sum(1 for m in members if m["state"] == "up") != n:
            return False
    return True


def section(title_prefix: str) -> str:
    """The text of one PROTOCOL.md section, from its heading to the next heading."""
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    lines = text.splitlines()
    out: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("#"):
            if inside:
                break
            if line.lstrip("#").strip().startswith(title_prefix):
                inside = True
                continue
        if inside:
            out.append(line)
    assert out, f"no section {title_prefix!r} in PROTOCOL.md"
    return "\n".join(out)


def result_or_error(c: DocClient, op: str, **fields: Any) -> dict[str, Any]:
    return c.call_once(op, attempt=5.0, **fields)
