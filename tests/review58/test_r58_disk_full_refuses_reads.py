"""review58 F2 (medium): a node whose data disk is full refuses config READS
(`config list`, `config history`, `config get` of a data id written since), for as long as
the disk stays full, though the docs say reads are still served.

docs/CONFIG.md "A disk that keeps failing": "Meanwhile new config writes from a client are
refused at once with UNAVAILABLE ... Reads are still served (from memory; what they show
was committed before the failure or waits for the retry)."  (review25 F7 mentioned the
refused `config_get` in passing, in its docstring; it tested and fixed only the writes.)

Observed (3 nodes from deploy/node.toml with keys, the third's data_dir on a 300 KiB
tmpfs, filled): for the 50 s the disk stayed full, on the full node, every try:
  `meshreg config list`: UNAVAILABLE "config_list: this node could not save configs to
  its disk (OperationalError: database or disk is full); retry, or ask another node"
  `meshreg config history app.yaml` (committed long before): the same;
  `meshreg config get big1.txt`: the same; `config get app.yaml` (fast path): served.
3 tries of each, 1 s apart, twice; served again the moment the filler was removed.
Why (runtime/config_plane.py, the commit turn's failure): every read answered in a loop
turn whose commit failed gets that error, and while the disk is full every turn's commit
(the retry every 0.1 s) fails.  A client given only this node (a sidecar, `-s` one host)
cannot read its configs at all; a client given several pays a failover on every read.

Setup here: 3 nodes; B's --data-dir is a 600 KiB tmpfs in a private mount namespace
(unshare -m, root needed, else skipped, as review25's test); `keep.yaml` published and
committed on B first; then 60 KB configs through A until B's `commit_failing`.
Expected: `config list` and `config history keep.yaml` answered by B while its disk is full.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import (
    HOST,
    NodeProcess,
    TinyDiskNode,
    config_stats,
    free_port_pair,
    run_cli,
    start_all,
    wait_until,
)

from meshreg import Client
from meshreg.errors import MeshregError


@pytest.mark.timeout(150)
def test_a_node_with_a_full_disk_still_serves_config_reads(started_nodes, tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare (a tmpfs in a private mount namespace)")
    ports = [free_port_pair() for _ in range(3)]
    peers: list[str] = []
    for p in ports:
        peers += ["--peer", f"{HOST}:{p}"]
    nodes: list[NodeProcess] = []
    for i, p in enumerate(ports):
        d = tmp_path / f"d{i}"
        d.mkdir()
        extra = ("--peer-timeout", "1.0", *peers, "--data-dir", str(d))
        nodes.append(TinyDiskNode(*extra, port=p, ddir=str(d), size="600k") if i == 1
                     else NodeProcess(*extra, port=p))  # fmt: skip
    started_nodes.extend(nodes)
    start_all(nodes)
    a, b, _c = nodes
    wait_until(lambda: all(config_stats(n).get("ready") and config_stats(n).get("members_up") == 3
                           for n in nodes), 30, 0.2, "configs ready")  # fmt: skip
    out = run_cli("config", "publish", "keep.yaml", "--content", "kept: 1", "-s", a.address)
    assert out.returncode == 0, out
    wait_until(lambda: run_cli("config", "get", "keep.yaml", "-s", b.address).returncode == 0,
               10, 0.1, "keep.yaml on B")  # fmt: skip
    big = "x" * 60_000
    with Client([a.address], timeout=4) as c:  # fill B's disk with replicated versions
        for i in range(40):
            try:
                c.config_publish(f"fill-{i % 20}", f"{i}:{big}")
            except MeshregError:
                pass
            if config_stats(b).get("commit_failing"):
                break
    wait_until(lambda: config_stats(b).get("commit_failing"), 20, 0.2, "B's disk full")
    refused: dict[str, str] = {}
    for what in (("config", "list"), ("config", "history", "keep.yaml")):
        got = run_cli(*what, "--timeout", "2", "-s", b.address)
        if got.returncode != 0:
            refused[" ".join(what)] = (got.stdout + got.stderr).strip()[:240]
    # ready (it serves reads) yet refusing writes: `meshreg ping` says so (an operations
    # review: it printed "ready" alone while the node refused every config write)
    pong = run_cli("ping", "--ready", "-s", b.address)
    assert pong.returncode == 0 and "CONFIG WRITES REFUSED: this node cannot save" in (
        pong.stdout
    ), pong
    assert config_stats(b).get("commit_failing"), "B's disk recovered meanwhile: inconclusive"
    assert not refused, (
        f"B (disk full, {config_stats(b).get('commit_failures_in_a_row')} failed saves in a row) "
        f"refused {len(refused)} of 2 config reads: {refused}"
    )
