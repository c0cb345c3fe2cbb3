"""Shared bits of the review14b tests (an outside review: real processes only)."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import CLUSTER_TIMINGS
from helpers import NodeProcess, free_port_pair, raw_request

SKEW_DIR = str(Path(__file__).parent / "skew")  # sitecustomize.py: shifts time.time()


def cluster_nodes(n: int, tmp: Path, *extra: str) -> list[NodeProcess]:
    """n nodes naming each other (test timings: unhealthy 3 s, evict 6 s, peer timeout 1 s),
    each with its own data dir; not started."""
    ports = [free_port_pair() for _ in range(n)]
    peers: list[str] = []
    for p in ports:
        peers += ["--peer", f"127.0.0.1:{p}"]
    return [
        NodeProcess(*CLUSTER_TIMINGS, *peers, "--data-dir", str(tmp / f"n{p}"), *extra, port=p)
        for p in ports
    ]


def launch_skewed(node: NodeProcess, skew: float) -> None:
    """Launch ``node`` with its wall clock ``skew`` seconds off (a machine whose NTP is
    broken): time.time() shifted, the monotonic clock untouched."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "MESHREG_R14B_SKEW")}
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [SKEW_DIR, saved["PYTHONPATH"]]))
    os.environ["MESHREG_R14B_SKEW"] = str(skew)
    try:
        node.launch()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def listing(node: NodeProcess, service: str, namespace: str = "public") -> dict[str, bool] | None:
    """address -> healthy of every instance ``node`` lists (None: the node refused)."""
    body = {
        "v": 1,
        "id": 1,
        "op": "instances",
        "namespace": namespace,
        "service": service,
        "healthy_only": False,
    }
    reply = raw_request(node.port, body, timeout=3.0)
    if not reply.get("ok"):
        return None
    return {f"{i['ip']}:{i['port']}": i["healthy"] for i in reply["result"]["instances"]}


def members_up(nodes: list[NodeProcess], states: tuple[str, ...] = ("up",)) -> bool:
    """Every node lists every node in one of ``states`` (a node counted out for its
    clock shows ``clock off``: core/distro "Clock skew")."""
    for n in nodes:
        view = raw_request(n.port, {"v": 1, "id": 1, "op": "cluster"}, timeout=3.0)["result"]
        if sum(1 for m in view["members"] if m["state"] in states) != len(nodes):
            return False
    return True


def rss_mb(node: NodeProcess) -> float:
    assert node.proc is not None
    with open(f"/proc/{node.proc.pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")
