"""review25 F7: a node whose disk is full stays the owner of its data ids, so nobody can
write them, through any node, for as long as the disk stays full, though the other two
members (a majority, disks fine) are up.

docs/CONFIG.md "A disk that keeps failing": new writes that reach it "(from a client, or
forwarded to it as the owner) are refused at once with UNAVAILABLE: '... nothing was
written: write through another node, and fix the disk there'". Writing through another
node does not help: that node forwards to the owner, which refuses. (Also: "Reads are
still served (from memory ...)", but most config_get on it answer UNAVAILABLE "this node
could not save configs to its disk".)

Setup: 3 nodes; B's --data-dir is a 600 KiB tmpfs mounted in a private mount namespace
(unshare -m; root needed, else skipped); 60 KB config contents fill it; then 5 writes,
through A, of data ids B owns. Expected: the config center stays writable while a
majority of members is healthy (or, at least, "write through another node" works).
Actual: refused, every one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import NodeProcess, TinyDiskNode, config_stats, start_all, wait_until
from r25lib import new_ports, peer_args

from meshreg import Client
from meshreg.configcenter.model import ConfigKey
from meshreg.configcenter.replication import responsible_config_node
from meshreg.errors import MeshregError

TIMINGS = ("--check-interval", "0.2", "--unhealthy-after", "3", "--evict-after", "6",
           "--peer-timeout", "1.0")  # fmt: skip


@pytest.mark.timeout(120)
def test_data_ids_of_a_node_with_a_full_disk_stay_writable(started_nodes, tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare (a tmpfs in a private mount namespace)")
    ports = new_ports(3)
    ids = [f"127.0.0.1:{p}" for p in ports]
    nodes: list[NodeProcess] = []
    for i, p in enumerate(ports):
        d = tmp_path / f"d{i}"
        d.mkdir()
        extra = (*TIMINGS, *peer_args(ports), "--data-dir", str(d))
        nodes.append(TinyDiskNode(*extra, port=p, ddir=str(d), size="600k") if i == 1
                     else NodeProcess(*extra, port=p))  # fmt: skip
    started_nodes.extend(nodes)
    start_all(nodes)
    a, b, _c = nodes
    wait_until(lambda: all(config_stats(n).get("ready") and config_stats(n).get("members_up") == 3
                           for n in nodes), 30, 0.2, "configs ready")  # fmt: skip
    owner = {did: responsible_config_node(ConfigKey("public", "DEFAULT_GROUP", did), ids)
             for did in (f"full25-{i}" for i in range(60))}  # fmt: skip
    elsewhere = [d for d, o in owner.items() if o != b.address]
    of_b = [d for d, o in owner.items() if o == b.address]
    big = "x" * 60_000
    with Client([a.address], timeout=4) as c:  # fill B's disk with replicated versions
        for i in range(30):
            try:
                c.config_publish(elsewhere[i % len(elsewhere)], f"{i}:{big}")
            except MeshregError:
                pass
            if config_stats(b).get("commit_failing"):
                break
    wait_until(lambda: config_stats(b).get("commit_failing"), 20, 0.2, "B's disk full")
    failed: dict[str, str] = {}
    with Client([a.address], timeout=4) as c:  # through A: its disk is fine
        for did in of_b[:5]:
            try:
                c.config_publish(did, "small")
            except MeshregError as exc:
                failed[did] = str(exc)[:220]
    assert not failed, (
        f"{len(failed)} of {len(of_b[:5])} config writes through A of data ids B owns failed "
        f"while B's disk is full (A and C: a majority, disks fine): "
        + "; ".join(f"{k}: {v}" for k, v in list(failed.items())[:2])
    )
