"""review24 F13: a node whose peer list names itself (what README recommends: "Every node
gets the same peer list (it may include the node itself)") logs "peer X is this node
...; not treating it as a peer" three times at start.  Harmless, but it is the first
thing an operator reads in every node's log, and repeated lines read like a loop."""

from __future__ import annotations

import pytest
from helpers import HOST, NodeProcess, free_port_pair, wait_until


@pytest.mark.timeout(60)
def test_the_self_peer_line_is_logged_once(tmp_path) -> None:
    port, other = free_port_pair(), free_port_pair()
    node = NodeProcess("--peer", f"{HOST}:{port}", "--peer", f"{HOST}:{other}",
                       "--data-dir", str(tmp_path / "d"), port=port)  # fmt: skip
    try:
        node.start()
        wait_until(lambda: "serving requests" in node.log(), 10, 0.05, "the start line")
        lines = [ln for ln in node.log().splitlines() if "is this node" in ln]
        assert len(lines) == 1, f"{len(lines)} lines:\n" + "\n".join(lines)
    finally:
        node.cleanup()
