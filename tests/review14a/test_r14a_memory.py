"""review14a F2: the bytes of every kept config version live in every node's memory, with
no bound but max_configs x keep_revisions x the content cap.

Any client that may publish (on a node without a key: anyone who reaches the port) makes
every node of the cluster hold ~1 MiB of RAM per publish, up to 100 versions per data id
and 100,000 data ids: 100,000 x 100 x 1 MiB.  Measured on main: +100 MiB of RSS per 100
publishes of 1 MiB, about 90 MiB/s from one client; a first run of this review's probes
grew a node to 24 GB (the machine's memory) and the kernel's OOM killer ended it.  There is
no per-client share, no byte quota and no setting (docs/SECURITY.md "Limits per client"
covers instances and sessions; docs/CONFIG.md's limits count data ids, not bytes).

What the test asks: history that is on disk (SQLite) need not also be in memory, or a
byte bound must refuse the write (RESOURCE_EXHAUSTED, counted) before memory runs out.
It publishes 300 MiB of history and allows 150 MiB of growth."""

from __future__ import annotations

from helpers import NodeProcess, raw_request
from util14a import MiB, config_stats, req, rss_mib

from meshreg import Client, MeshregError


def test_kept_history_bytes_do_not_all_stay_in_node_memory(node: NodeProcess) -> None:
    assert node.proc is not None
    before = rss_mib(node.proc.pid)
    refused = 0
    size = MiB - 4096
    with Client([node.address], timeout=30) as c:
        for i in range(100):
            for k in range(3):
                try:
                    c.config_publish(f"m{k}", (f"{i:06d}{k}" + "x" * size)[:size], group="r14a")
                except MeshregError:
                    refused += 1
    after = rss_mib(node.proc.pid)
    kept = config_stats(node.port)["history_entries"]
    assert raw_request(node.port, req("ping"))["ok"]
    assert after - before < 150 or refused, (
        f"300 publishes of ~1 MiB (3 data ids, {kept} versions kept) grew the node from "
        f"{before} to {after} MiB of RSS, none refused: every kept version's content is "
        "held in memory, without a byte bound"
    )
