"""review36 F3: a node stopped (SIGSTOP, a VM pause) for longer than the 600 s the cluster
remembers removals brings back, on EVERY node, the instances deregistered or evicted while
it was stopped: listed healthy, pushed to consumers as healthy; the evicted ones go again
after `unhealthy_after`/`evict_after`, the deregistered ones whose provider still runs stay
for good (F2's mechanism: the provider's session renews the copy).

Seen on the shipped code (/work/notes/review36.md, F3): 4 nodes, one stopped 640 s during a
3 -> 4 membership change: at SIGCONT every node listed the 6 deregistered and 3 dead
instances healthy within 0.5 s, consumers on the other nodes were pushed them (12
callbacks), and 25 s later every node still listed the 6 deregistered ones healthy.

This test runs the same with the removal memory (core/registry TOMBSTONE_TTL, a constant,
600 s) set to 20 s in the node processes by a wrapper, so that it takes a minute;
``R36_FULL_TTL=1`` runs it with the shipped 600 s (about 12 minutes).

Expected: README "A cluster": a node paused longer than `evict_after` "...when it comes back
it notices its own stall ..., judges nobody until it has resynced ..., and the merge keeps
every instance that kept beating. A deregistration made during a partition stays made";
DISTRO.md failure table: a node paused "longer than every timeout" ... "no live instance
is marked or evicted".  Nothing says a long pause brings back the dead: a node whose stall
outlasted the removal memory should not push its pre-stall table into its peers (resync
from them first, or drop what they no longer hold).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from helpers import HOST, holds_for, meshreg_cmd  # noqa: E402
from r36lib import Node, new_nodes, running, wait_until  # noqa: E402

from meshreg.client import Client  # noqa: E402

FULL = bool(os.environ.get("R36_FULL_TTL"))
TTL = 600.0 if FULL else 20.0
SVC = "ttl36"
WRAPPER = """import sys
import meshreg.core.registry as registry
registry.TOMBSTONE_TTL = {ttl}
from meshreg.cli import main
sys.argv = ["meshreg"] + sys.argv[1:]
main()
"""


class TtlNode(Node):
    """A node whose removal memory is ``TTL`` s (the shipped constant when FULL)."""

    script = ""

    def launch(self, peers: list[str]) -> Node:
        if FULL:
            return super().launch(peers)
        import tempfile

        self.peers = list(peers)
        os.makedirs(self.data_dir, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix=f"r36-node-{self.port}-", suffix=".log")
        self.logs.append(path)
        args = [sys.executable, self.script, "node", "--host", HOST, "--port", str(self.port),
                *self.timings, "--data-dir", self.data_dir]  # fmt: skip
        for p in peers:
            args += ["--peer", p]
        self.proc = subprocess.Popen(args, stdout=fd, stderr=fd, start_new_session=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
        os.close(fd)
        return self


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[Node]]:
    script = tmp_path / "ttl_node.py"
    script.write_text(WRAPPER.format(ttl=TTL))
    nodes: list[Node] = []
    for n in new_nodes(3, str(tmp_path)):
        t = TtlNode(n.port, n.data_dir, n.timings)
        t.script = str(script)
        nodes.append(t)
    with running(nodes):
        yield nodes


def _down_on(node: Node, address: str) -> bool:
    c = node.cluster()
    return bool(c) and any(m["address"] == address and m["state"] == "down" for m in c["members"])


@pytest.mark.timeout(1000 if FULL else 150)
def test_node_resumed_after_the_removal_memory_brings_back_nothing(cluster: list[Node]) -> None:
    a, b, victim = cluster
    prov = Client([a.address, b.address], handle_sigterm=False, server_order="listed")
    dead = subprocess.Popen(  # a provider in a process of its own, to die without a word
        meshreg_cmd("register", SVC, "10.36.3.9:80", "-s", f"{a.address},{b.address}"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    gone = {"10.36.3.1:80", "10.36.3.9:80"}
    try:
        for j in (1, 2, 3):
            prov.register(SVC, f"10.36.3.{j}", 80)
        wait_until(lambda: all(len(n.listing(SVC) or {}) == 4 for n in cluster), 20, 0.1,
                   "4 instances on every node")  # fmt: skip

        victim.signal(signal.SIGSTOP)
        wait_until(lambda: _down_on(a, victim.address) and _down_on(b, victim.address), 15,
                   0.1, "the others count the stopped node down")  # fmt: skip
        prov.deregister(SVC, "10.36.3.1", 80)  # deregistered while the node is stopped
        os.killpg(dead.pid, signal.SIGKILL)  # dies while the node is stopped
        wait_until(lambda: all(not (set(n.listing(SVC) or gone) & gone) for n in (a, b)), 30,
                   0.2, "both gone from the running nodes (deregistered, evicted)")  # fmt: skip

        def forgotten(n: Node) -> bool:  # the removals' tombstones purged (TTL s after them)
            usage = n.stats().get("usage")
            return usage is not None and usage.get("tombstones") == 0

        wait_until(lambda: forgotten(a) and forgotten(b), TTL + 60, 0.5,
                   "the running nodes forget the removals")  # fmt: skip
        victim.signal(signal.SIGCONT)

        def nothing_back() -> bool:  # on the nodes that kept running (the resumed node's
            # own stale answers in its first moments are F1)
            for n in (a, b):
                got = n.listing(SVC, 0.5) or {}
                if {x for x in gone if got.get(x)}:
                    return False
            return True

        try:
            holds_for(nothing_back, 10.0, 0.1, "the dead stay gone on the running nodes")
        except AssertionError as exc:
            raise AssertionError(
                f"after SIGCONT ({exc}): A lists {a.listing(SVC)}, B {b.listing(SVC)}, "
                f"the resumed node {victim.listing(SVC)}; deregistered 10.36.3.1:80 and dead "
                f"10.36.3.9:80 must stay gone"
            ) from None
    finally:
        prov.close(2.0)
        try:
            os.killpg(dead.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        dead.wait(5)
