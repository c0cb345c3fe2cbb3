"""review46 F1: review45 F1 (two or three nodes each taking themselves for a config data
id's owner when the peer lists name the nodes by host name) is fixed only for a list that
names the node itself.  README "Cluster": "Every node gets the same peer list (it may
include the node itself)", and docs/DISTRO.md: "The list may include the node itself; it
is skipped."  A node whose list leaves itself out (n1: ``--peer localhost:P2 --peer
localhost:P3``) has no entry to take its hash name from (``config_plane``:
``listed_as = [p for p in config.self_peers() ...]`` is empty, ``hash_names`` stays {}),
so it hashes itself as ``127.0.0.1:P1`` while both its peers hash it as ``localhost:P1``.

Three real nodes on 127.0.0.1, each listing the two others as ``localhost:P``; for 12
data ids, a publish through n1 (acknowledged), then three concurrent unconditional
publishes, one through each node.  Expected (as with IP lists, and as with localhost
lists that name every node, the control): every publish acknowledged, one version per
revision.  Seen: failures (CONFLICT / "outcome unknown") and two versions of a revision.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from r46util import NodeProcess, ping, port_block, start_all

ROUNDS = 12


@pytest.mark.timeout(150)
@pytest.mark.parametrize("lists", ["omit-self", "name-self"])
def test_concurrent_publishes_lists_by_host_name_without_self(tmp_path: Path, lists: str) -> None:
    from meshreg import Client
    from meshreg.errors import MeshregError

    ports = [port_block() for _ in range(3)]
    nodes = []
    for i, p in enumerate(ports):
        peers: list[str] = []
        for q in ports:
            if q != p or lists == "name-self":
                peers += ["--peer", f"localhost:{q}"]
        nodes.append(NodeProcess(*peers, "--data-dir", str(tmp_path / f"d{i}"), port=p))
    clients = []
    try:
        start_all(nodes)
        deadline = time.monotonic() + 40
        while not all(
            ping(n).get("config_ready") and ping(n).get("members_up") == 3 for n in nodes
        ):
            assert time.monotonic() < deadline, "cluster never ready"
            time.sleep(0.2)
        clients = [Client([n.address], handle_sigterm=False) for n in nodes]
        failures: list[str] = []
        for round_ in range(ROUNDS):
            data_id = f"r46-host-{round_}"
            clients[0].config_publish(data_id, "base")
            barrier = threading.Barrier(3)

            def publish(i: int, data_id: str = data_id, barrier=barrier) -> None:  # noqa: ANN001
                barrier.wait()
                try:
                    clients[i].config_publish(data_id, f"from {nodes[i].address}")
                except MeshregError as exc:
                    failures.append(f"{data_id} via {nodes[i].address}: {exc}"[:220])

            threads = [threading.Thread(target=publish, args=(i,)) for i in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        doubled = []
        for data_id in (f"r46-host-{r}" for r in range(ROUNDS)):
            revisions = [h.revision for h in clients[1].config_history(data_id)]
            if len(revisions) != len(set(revisions)):
                doubled.append((data_id, sorted(revisions)))
        assert not failures and not doubled, (
            f"peer lists by host name leaving the node itself out ({lists}): "
            f"{len(failures)} of {3 * ROUNDS} concurrent unconditional publishes failed, "
            f"{len(doubled)} of {ROUNDS} data ids hold two versions of one revision "
            f"{doubled[:3]}:\n" + "\n".join(failures[:6])
        )
    finally:
        for c in clients:
            c.close()
        for n in nodes:
            n.cleanup()
