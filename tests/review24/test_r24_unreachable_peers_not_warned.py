"""review24 F14: a node whose configured peers never answer (a typo in the peer list, a
firewall) runs alone for as long as you like with nothing above INFO in its log.

README "A cluster": `--peer` lists the members; docs/DISTRO.md: with no peer up within
`peer_timeout`, the node starts alone ("a cluster starting from nothing").  That is
right for a fresh cluster, but it means a node with a mistyped peer list serves a
registry of its own (providers registering there are invisible to the real cluster's
consumers) and refuses every config write ("this node sees 1 up").  `meshreg cluster`
shows the peers as "(never heard)", but the log -- what journalctl shows an operator --
has only INFO "caught up: ready, 0 services known; members <itself>" and nothing later
(40 s observed).  Nacos logs member-unreachable errors; etcd logs "failed to reach the
peer" warnings continuously.  Expected: a WARNING naming the configured peers that have
never answered (and where: host:port, ports P+2/P+3).
"""

from __future__ import annotations

import pytest
from helpers import HOST, NodeProcess, free_port_pair, wait_until


@pytest.mark.timeout(60)
def test_a_node_that_never_hears_its_peers_warns(tmp_path) -> None:
    port, ghost1, ghost2 = free_port_pair(), free_port_pair(), free_port_pair()
    node = NodeProcess("--peer-timeout", "1", "--peer", f"{HOST}:{port}",
                       "--peer", f"{HOST}:{ghost1}", "--peer", f"{HOST}:{ghost2}",
                       "--data-dir", str(tmp_path / "d"), port=port)  # fmt: skip
    try:
        node.start()
        wait_until(lambda: "caught up" in node.log(), 10, 0.05, "the node runs alone")

        def warned() -> bool:
            return any(("WARNING" in ln or "ERROR" in ln) and str(ghost1) in ln
                       for ln in node.log().splitlines())  # fmt: skip

        try:
            wait_until(warned, 15, 0.2, "a warning naming the silent peer")
        except AssertionError:
            pass
        assert warned(), (
            f"after 15 s (peer timeout 1 s) alone, the node's log says nothing above INFO "
            f"about peer {HOST}:{ghost1} never answering:\n" + node.log()[-1500:]
        )
    finally:
        node.cleanup()
