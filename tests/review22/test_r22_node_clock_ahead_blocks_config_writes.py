"""review22 F3: one node whose wall clock runs a few seconds ahead (5 s: far below the 30 s
at which the cluster counts a node out, `meshreg cluster` shows it "up") makes every config
write of the data ids it owns fail, for every client, whatever server it goes through.

Since today's 66a67b8 every config write carries a `deadline` on the client's wall clock
(the attempt's end plus 0.5 s) and the *owner* refuses it past that by its own clock.  A
registry write has a fallback (the forwarding node applies it itself before the deadline,
PROTOCOL.md 2.1); a config write has none: it can only be applied by its owner.  So a
client with a correct clock gets UNAVAILABLE "... reached node X 4.1s after its deadline
(the client's clock): nothing was written ... check the clocks" for a third of its data
ids, retrying on other servers does not help, and the cluster does not notice (the
node is not "clock off": README "a node whose wall clock is more than 30 s off a
majority's counts itself out").  Before 66a67b8 these writes succeeded.

README "The Python client": config writes are retried "on another node"; docs/CONFIG.md:
the write goes to the data id's owner.  Expected: a node the cluster keeps as a member
(clock within its tolerance) can still own config writes; or the deadline check
tolerates the skew the cluster tolerates.  Actual: writes owned by the skewed node fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import HOST, NodeProcess, raw_request, start_all, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "review20"))
from r20lib import cluster, members_up  # noqa: E402

from meshreg import Client
from meshreg.errors import MeshregError

SKEWED = """import sys, time
_r = time.time
time.time = lambda: _r() + {skew}
from meshreg.cli import main
sys.argv = ["meshreg"] + sys.argv[1:]
main()
"""


class SkewedNode(NodeProcess):
    """A node process whose time.time() runs ``skew`` s ahead (its wall clock)."""

    def __init__(self, node: NodeProcess, script: Path) -> None:
        super().__init__(*node.extra, port=node.port)
        self.script = script

    def launch(self) -> NodeProcess:
        fd, self.log_path = tempfile.mkstemp(prefix="meshreg-node-", suffix=".log")
        self.proc = subprocess.Popen(
            [sys.executable, str(self.script), "node", "--host", HOST, "--port",
             str(self.port), *self.extra],
            stdout=fd, stderr=fd, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        os.close(fd)
        return self


@pytest.mark.timeout(120)
def test_config_writes_owned_by_a_node_5s_ahead_succeed(tmp_path: Path) -> None:
    script = tmp_path / "skewed.py"
    script.write_text(SKEWED.format(skew=5.0))
    nodes = cluster(3, str(tmp_path))
    nodes[0] = SkewedNode(nodes[0], script)
    start_all(nodes)
    try:
        wait_until(lambda: members_up(nodes), 20, 0.2, "3 members up on every node")

        def config_ready(node: NodeProcess) -> bool:  # caught up, the 3 members up
            r = raw_request(node.port, {"v": 1, "id": 1, "op": "stats"}, 2.0)
            cfg = r.get("result", {}).get("config", {}) if r.get("ok") else {}
            return bool(cfg.get("ready")) and cfg.get("members_up") == 3

        wait_until(lambda: all(config_ready(n) for n in nodes), 20, 0.2, "configs ready")

        def lead() -> float:  # 3 s of beacons say it runs ahead (PROTOCOL.md 2.8)
            r = raw_request(nodes[0].port, {"v": 1, "id": 1, "op": "stats"}, 2.0)
            return float(r["result"].get("clock_lead", 0.0)) if r.get("ok") else 0.0

        wait_until(lambda: lead() > 4.0, 20, 0.2, "the skewed node knows it runs ahead")
        with Client([n.address for n in nodes[1:]], timeout=4.0) as c:
            failed = {}
            for i in range(9):
                try:
                    c.config_publish(f"skew{i}", "content")
                except MeshregError as exc:
                    failed[f"skew{i}"] = str(exc)[:300]
        assert not failed, (
            f"{len(failed)} of 9 config writes failed with one node's clock 5 s ahead (the "
            "cluster shows it up): " + "; ".join(f"{k}: {v}" for k, v in failed.items())
        )
    finally:
        for n in nodes:
            n.cleanup()
