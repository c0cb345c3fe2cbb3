"""review46 F2: ``--config-join-existing`` left on ONE member of a new cluster is not
harmless: with one member not started yet, the new cluster's config reads are never
ready, on any node, although a majority is up.

docs/OPERATIONS.md "Replacing a dead node": "it is kept until the store has caught up and
does nothing to a whole store, so leaving it in a unit file is harmless (only a new
cluster whose members all start with it waits for every member before its config reads
are ready, as no node may then take itself for a new one)."  deploy/node.toml carries the
line (``# join_existing = false  # true on a member replaced ...``), so a fleet rebuilt
from its unit files (new, empty data dirs) keeps the flag on the member that was once
replaced.

Three members listed, n2 not started (a new cluster with a member missing, as
tests/integration/test_config_join_existing_live.py starts one); n1 without the flag, n3
with it.  Expected (the doc: only all-flagged waits for every member; and the control,
no flag at all): n1 and n3 config-ready after a new member's wait (two peer timeouts).
Seen: neither ready after 20 s; ``ready.py`` ``_enough``: ``if self.joining or any(
s.joining for s in peers.values()): return ""``, and "whole" needs every peer synced.

Kept as designed (etcd's ``--initial-cluster-state existing`` on a new cluster's member
does no better), and the docs corrected: a member started with the flag says the cluster
holds configs, so no node of a new cluster may take itself for a new member while it
hears it; the cluster waits for every member, and ``ping`` says why (``config_waiting``
names the flag).  Once n2 starts, every node is ready.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import CLUSTER_TIMINGS
from r46util import HOST, NodeProcess, ping, port_block, start_all

WAIT = 8.0  # s: four times a new member's wait (2 x peer timeout 1 s)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("flag", ["n3-flagged", "no-flag"])
def test_new_cluster_with_one_member_flagged_and_one_down(tmp_path: Path, flag: str) -> None:
    ports = [port_block() for _ in range(3)]
    peers = [a for p in ports for a in ("--peer", f"{HOST}:{p}")]
    extra3 = ("--config-join-existing",) if flag == "n3-flagged" else ()
    n1 = NodeProcess(*CLUSTER_TIMINGS, *peers, "--data-dir", str(tmp_path / "n1"), port=ports[0])
    n3 = NodeProcess(*CLUSTER_TIMINGS, *peers, "--data-dir", str(tmp_path / "n3"), *extra3,
                     port=ports[2])  # fmt: skip
    n2 = NodeProcess(*CLUSTER_TIMINGS, *peers, "--data-dir", str(tmp_path / "n2"), port=ports[1])
    try:
        start_all([n1, n3])  # n2 not started
        start = time.monotonic()
        ready: dict[str, float] = {}
        while time.monotonic() < start + WAIT and len(ready) < 2:
            for name, node in (("n1", n1), ("n3", n3)):
                if name not in ready and ping(node).get("config_ready"):
                    ready[name] = round(time.monotonic() - start, 1)
            time.sleep(0.2)
        said = ping(n1).get("config_waiting") or ""
        if flag == "no-flag":  # a new cluster with a member missing: ready
            assert len(ready) == 2, (ready, said)
            return
        # the flag says the cluster holds configs: it waits for every member, and says so
        assert ready == {}, f"ready as new members while a peer says it joins: {ready}"
        assert "--config-join-existing" in said and "start the ones that are down" in said, said
        start_all([n2])
        for node in (n1, n2, n3):  # every member up: every node caught up with every peer
            deadline = time.monotonic() + 20
            while not ping(node).get("config_ready"):
                assert time.monotonic() < deadline, f"{node.address} never ready with n2 up"
                time.sleep(0.2)
    finally:
        for n in (n1, n2, n3):
            n.cleanup()
