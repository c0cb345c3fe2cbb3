"""review42: the chaos lab of review38 (tests/review38/r38lab.py) with per-node peer lists,
a node replaced with an empty data directory, and small helpers.

Everything runs in network namespaces (tests/chaos/netlab.py); the nodes are real
``python -m meshreg node`` processes, the clients the public ``Client`` (r38_worker.py,
r38_repl.py).  Root only.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "review38"))
sys.path.insert(0, str(HERE.parent / "chaos"))

from r38lab import PORT, CasLab, Repl, keep_workdir, load, skip_reason  # noqa: E402

from meshreg.configcenter.model import ConfigKey  # noqa: E402
from meshreg.configcenter.replication import responsible_config_node  # noqa: E402

__all__ = ["PORT", "Lab42", "Repl", "keep_workdir", "load", "skip_reason", "wait"]


def wait(cond: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    """``cond()``'s first truthy value within ``timeout`` s, else None."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() >= deadline:
            return None
        time.sleep(step)


class Lab42(CasLab):
    """A CasLab whose nodes may each run their own peer list (``lists[j]``: indexes)."""

    def __init__(
        self,
        workdir: Path,
        n: int,
        peer_timeout: float = 1.0,
        conf: str = "[config]\nkeep_revisions = 0\n",
    ) -> None:
        super().__init__(workdir, n=n, peer_timeout=peer_timeout)
        self.conf.write_text(conf)
        self.lists: list[list[int]] = [list(range(n)) for _ in range(n)]
        self.skew: dict[int, float] = {}  # node -> seconds its wall clock runs ahead

    # A node whose wall clock is off: time.time()/time_ns() patched before meshreg.cli
    # runs (no LD_PRELOAD, no product option: meshreg has none a user can set)
    SKEWED = (
        "import sys, time\n"
        "_t, _ns, _s = time.time, time.time_ns, float(sys.argv.pop(1))\n"
        "time.time = lambda: _t() + _s\n"
        "time.time_ns = lambda: _ns() + int(_s * 1e9)\n"
        "from meshreg.cli import main\n"
        "sys.argv[0] = 'meshreg'\n"
        "sys.exit(main())\n"
    )

    def owner_among(self, data_id: str, members: Sequence[int]) -> int:
        addrs = [self.addr(j) for j in members]
        owner = responsible_config_node(ConfigKey("public", "DEFAULT_GROUP", data_id), addrs)
        return members[addrs.index(owner)]

    def start_node(self, j: int) -> None:  # the node's own list, ``self.lists[j]``
        peers: list[str] = []
        for i in self.lists[j]:
            peers += ["--peer", self.addr(i)]
        head = [sys.executable, "-m", "meshreg"]
        if self.skew.get(j):
            head = [sys.executable, "-c", self.SKEWED, str(self.skew[j])]
        argv = [
            *head, "node",
            "--host", self.lab.addresses[j], "--port", str(PORT), *peers,
            "--check-interval", "0.5", "--unhealthy-after", "3", "--evict-after", "6",
            "--peer-timeout", str(self.peer_timeout), "--insecure",
            "--data-dir", str(self.workdir / f"data-n{j + 1}"),
            "--config", str(self.conf),
        ]  # fmt: skip
        self.nodes[j] = self.lab.spawn(j, f"node-n{j + 1}-{len(self.lab.procs)}", argv)
        self.ev(f"n{j + 1} started with {[i + 1 for i in self.lists[j]]}")

    def up_nodes(self, nodes: Sequence[int], members: int | None = None) -> None:
        self.lab.up()
        for j in nodes:
            self.start_node(j)
        for j in nodes:
            if not self.wait_ready(j, members or len(nodes)):
                raise RuntimeError(f"n{j + 1} not ready:\n{self.nodes[j].log_tail()}")  # type: ignore[union-attr]
        self.ev("cluster ready")

    def wait_ready(self, j: int, members: int | None = None, timeout: float = 30.0) -> bool:  # type: ignore[override]
        m = str(members if members is not None else len(self.lists[j]))
        return self.oneshot(j, "ready", "--members", m, timeout=timeout) == "ready"

    def kill(self, j: int, wipe: bool = False) -> None:
        node = self.nodes[j]
        if node is not None:
            node.kill()
        self.nodes[j] = None
        if wipe:
            shutil.rmtree(self.workdir / f"data-n{j + 1}", ignore_errors=True)
        self.ev(f"n{j + 1} SIGKILLed{' and its data dir removed' if wipe else ''}")

    def stop(self, j: int) -> None:
        node = self.nodes[j]
        if node is not None:
            node.stop(10.0)
        self.nodes[j] = None
        self.ev(f"n{j + 1} stopped (SIGTERM)")

    def restart(self, j: int, members: list[int], ready_members: int | None = None) -> None:
        """Stop node j, start it with the list ``members`` and wait until it is ready."""
        self.stop(j)
        self.lists[j] = list(members)
        self.start_node(j)
        if not self.wait_ready(j, ready_members):
            raise RuntimeError(f"n{j + 1} not ready after restart:\n{self.nodes[j].log_tail()}")  # type: ignore[union-attr]

    def dump(self, j: int, data_id: str) -> Any:
        line = self.oneshot(j, "dump", timeout=10, data_id=data_id)
        try:
            return json.loads(line or "")
        except ValueError:
            return None

    def up_count(self, j: int, via: int | None = None) -> int:
        """How many members node j sees up (itself included), asked from inside ``via``'s
        namespace (default j's); -1 when it does not answer."""
        script = (
            "import sys\nfrom meshreg import Client\n"
            f"c = Client([{self.addr(j)!r}], timeout=3, sessions=False)\n"
            "v = c.cluster()\n"
            "print(sum(1 for m in v.get('members', []) if m.get('state') == 'up' or m.get('self')))\n"  # noqa: E501
        )
        p = self.lab.spawn(j if via is None else via, f"cv-n{j + 1}-{len(self.lab.procs)}",
                           [sys.executable, "-c", script], pipe=True)  # fmt: skip
        from netlab import read_line

        line = read_line(p, 8)
        p.kill()
        try:
            return int(line or "")
        except ValueError:
            return -1
