"""review25 helpers: real node processes on loopback, optionally with a wall clock that
is off by a fixed number of seconds, and a sampler of every node's listings."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "review20"))
from helpers import HOST, NodeProcess, free_port_pair  # noqa: E402
from r20lib import listing, members_up, req  # noqa: E402,F401

# a node process whose time.time() is off by SKEW s (its wall clock; the node reads
# time.time() once at start, runtime/node.py, so this is a node whose clock is off)
SKEWED = """import sys, time
_r = time.time
time.time = lambda: _r() + {skew}
from meshreg.cli import main
sys.argv = ["meshreg"] + sys.argv[1:]
main()
"""


class SkewedNode(NodeProcess):
    """A node whose wall clock is ``skew`` s off (negative: behind)."""

    def __init__(self, *extra: str, port: int, skew: float, workdir: str) -> None:
        super().__init__(*extra, port=port)
        self.script = Path(workdir) / f"skewed-{port}.py"
        self.script.write_text(SKEWED.format(skew=skew))

    def launch(self) -> NodeProcess:
        fd, self.log_path = tempfile.mkstemp(prefix="meshreg-node-", suffix=".log")
        self.proc = subprocess.Popen(
            [sys.executable, str(self.script), "node", "--host", HOST, "--port",
             str(self.port), *self.extra],
            stdout=fd, stderr=fd, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        os.close(fd)
        return self


def peer_args(ports: list[int]) -> list[str]:
    return sum((["--peer", f"{HOST}:{p}"] for p in ports), [])


def make_nodes(
    ports: list[int],
    timings: tuple[str, ...],
    tmp: str,
    skews: dict[int, float] | None = None,
    members: list[int] | None = None,
) -> list[NodeProcess]:
    """One node per port, each listing ``members`` (default: ``ports``) as peers."""
    skews = skews or {}
    peers = peer_args(members if members is not None else ports)
    out: list[NodeProcess] = []
    for i, p in enumerate(ports):
        d = os.path.join(tmp, f"data-{p}")
        os.makedirs(d, exist_ok=True)
        extra = (*timings, *peers, "--data-dir", d)
        if i in skews:
            out.append(SkewedNode(*extra, port=p, skew=skews[i], workdir=tmp))
        else:
            out.append(NodeProcess(*extra, port=p))
    return out


def cluster_view(node: NodeProcess) -> dict[str, str] | None:
    r = req(node, "cluster", 1.0)
    if not r or not r.get("ok"):
        return None
    return {m["address"]: m.get("state", "") for m in r["result"]["members"]}


def stats(node: NodeProcess) -> dict[str, Any]:
    r = req(node, "stats", 1.0)
    return r["result"] if r and r.get("ok") else {}


class Sampler:
    """Samples every node's full listing of each service every ``every`` s (a thread);
    ``samples``: (monotonic time, node index, service, {address: healthy} or None)."""

    def __init__(self, nodes: list[NodeProcess], services: list[str], every: float = 0.2,
                 limit: float = 300.0) -> None:  # fmt: skip
        self.nodes, self.services, self.every, self.limit = nodes, services, every, limit
        self.samples: list[tuple[float, int, str, dict[str, bool] | None]] = []
        self.skip: set[int] = set()
        self.rounds = 0  # full passes over the nodes done
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._t.start()
        return self

    def _run(self) -> None:
        end = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < end:
            for i, n in enumerate(list(self.nodes)):
                if i in self.skip:
                    continue
                for s in self.services:
                    got = listing(n, s, 0.5)
                    self.samples.append((time.monotonic(), i, s, got))
            self.rounds += 1
            self._stop.wait(self.every)

    def observe(self, rounds: int) -> None:
        """Wait until the sampler has made ``rounds`` more passes over the nodes: the
        cluster is watched for that long between two steps of a test."""
        start = self.rounds
        deadline = time.monotonic() + rounds * (self.every + 5.0)
        while self.rounds < start + rounds:
            assert time.monotonic() < deadline, f"{self.rounds - start} of {rounds} rounds"
            self._stop.wait(self.every / 4)

    def stop(self) -> None:
        self._stop.set()
        self._t.join(5)

    def bad(self, live: dict[str, set[str]], since: float = 0.0,
            nodes: set[int] | None = None) -> list[tuple[float, int, str, str, str]]:  # fmt: skip
        """(t, node, service, address, 'missing'|'unhealthy') for every sample after
        ``since`` in which a live instance was not listed healthy."""
        out = []
        for t, i, s, got in self.samples:
            if t < since or got is None or (nodes is not None and i not in nodes):
                continue
            for addr in live.get(s, ()):
                if addr not in got:
                    out.append((t, i, s, addr, "missing"))
                elif not got[addr]:
                    out.append((t, i, s, addr, "unhealthy"))
        return out


def spans(bad: list[tuple[float, int, str, str, str]], t0: float) -> str:
    """A summary: per (node, address, kind), first/last time after t0 and count."""
    agg: dict[tuple[int, str, str], list[float]] = {}
    for t, i, _s, addr, kind in bad:
        agg.setdefault((i, addr, kind), []).append(t - t0)
    return "; ".join(
        f"node{i} {addr} {kind} x{len(ts)} at {min(ts):.1f}-{max(ts):.1f}s"
        for (i, addr, kind), ts in sorted(agg.items())
    )


def new_ports(n: int) -> list[int]:
    return [free_port_pair() for _ in range(n)]
