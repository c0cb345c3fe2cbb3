"""review45 F1: nodes whose peer lists name each other by host name (`--peer localhost:P`,
which docs/DISTRO.md "Beacons" supports: "A peer list may name a node by host name
(`node2.dc:7800`, `localhost:7801`)") disagree about which node owns a config data id.
Each node names itself by its own address (127.0.0.1:P) and its peers by the listed
spelling (localhost:P), and a data id's owner is a rendezvous hash over those strings
(PROTOCOL.md 6.1), so for most data ids two or three nodes each take themselves for the
owner.  Concurrent unconditional publishes of one data id through different nodes, which
a cluster listed by IP serializes (revisions N+1, N+2, N+3, all acknowledged), then fail:
CONFLICT "request_id ... made revision N+1 of ..." for a write without --if-revision, or
UNAVAILABLE "other versions were written concurrently; the outcome ..." for all of them;
`config history` shows two or three versions of one revision.

Expected: the same as with IP peer lists: every publish acknowledged, one version per
revision.  Fixed: a node hashes itself under the name the list gives it
(``ConfigReplicator.hash_names``)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from helpers import NodeProcess, free_port_pair, raw_request, start_all


@pytest.mark.timeout(120)
def test_concurrent_publishes_through_hostname_listed_peers(tmp_path: Path) -> None:
    from meshreg import Client
    from meshreg.errors import MeshregError

    ports = [free_port_pair() for _ in range(3)]
    peers: list[str] = []
    for p in ports:
        peers += ["--peer", f"localhost:{p}"]
    nodes = [
        NodeProcess(*peers, "--data-dir", str(tmp_path / f"d{i}"), port=p)
        for i, p in enumerate(ports)
    ]
    clients = []
    try:
        start_all(nodes)
        ping = {"v": 1, "id": 1, "op": "ping"}
        deadline = time.monotonic() + 30
        while not all(
            raw_request(n.port, ping, 2.0)["result"].get("config_ready")
            and raw_request(n.port, ping, 2.0)["result"].get("members_up") == 3
            for n in nodes
        ):
            assert time.monotonic() < deadline, "cluster never ready"
            time.sleep(0.2)
        clients = [Client([n.address], handle_sigterm=False) for n in nodes]
        failures: list[str] = []
        for round_ in range(12):
            data_id = f"r45-host-{round_}"
            clients[0].config_publish(data_id, "base")  # acknowledged by a majority
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
        for data_id in (f"r45-host-{r}" for r in range(12)):  # one version per revision
            items = clients[1].config_history(data_id)
            revisions = [h.revision for h in items]
            assert len(revisions) == len(set(revisions)) == 4, (data_id, items)
        assert not failures, (
            f"{len(failures)} of 36 concurrent unconditional publishes (12 data ids, one "
            "through each node) failed on a cluster whose peer lists say localhost:PORT:\n"
            + "\n".join(failures)
        )
    finally:
        for c in clients:
            c.close()
        for n in nodes:
            n.cleanup()
