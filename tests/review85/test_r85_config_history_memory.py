"""review85 F1: a node's memory for kept config versions is about 1 KB per version
whatever the content's size, and nothing bounds it but counts (data ids x
``keep_revisions``): ``[config] max_total_bytes``, documented as the content a node
holds "in memory as well as on disk", counts content characters only.

So under steady, legal publishing to a fixed set of data ids (each below every quota) a
node's RSS grows with every publish until each data id holds keep_revisions + 1 versions:
with the defaults (keep_revisions 100, max_configs_per_namespace 10,000) about 1 GB per
node for one namespace of small configs, while the content quota (256 MiB) is far from
reached.  In the review's focused run (scripts/config_version_memory.py): +9.6 MB of RSS
for 10,000 versions of 4-5 characters (1,006 bytes per version).

Here: max_total_bytes = 64 KiB; 300 data ids x 80 versions of one character each (24,000
characters held, under the quota, nothing refused).  Expected: the node's RSS grows by
no more than a small multiple of what the content quota admits (here at most 10 x 64 KiB
plus 4 MiB of slack); observed: about 24 MB.

Failed on the code of its review (5 of 5 runs).  Fixed: each kept version counts its
content plus ``VERSION_BYTES`` (1 KiB) in the byte quotas, so here the quota admits 63
versions and refuses the rest (RESOURCE_EXHAUSTED, as etcd's backend quota does); the
test now expects those refusals and still bounds the growth."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from helpers import NodeProcess, raw_request

from meshreg import Client, ResourceExhaustedError

pytestmark = pytest.mark.timeout(120)

IDS, VERSIONS, THREADS = 300, 80, 8
QUOTA = 64 * 1024


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        return next(int(x.split()[1]) * 1024 for x in fh if x.startswith("VmRSS:"))


def config_stats(port: int) -> dict:
    reply = raw_request(port, {"v": 1, "id": 1, "op": "stats"}, 5.0)
    assert reply["ok"], reply
    return reply["result"]["config"]


def test_kept_versions_memory_is_bounded_by_the_content_quota(tmp_path: Path) -> None:
    conf = tmp_path / "node.toml"
    conf.write_text(f"[config]\nmax_content_bytes = 1024\nmax_total_bytes = {QUOTA}\n")
    node = NodeProcess("--config", str(conf), "--data-dir", str(tmp_path / "data"))
    try:
        node.start()
        assert node.proc is not None
        client = Client(node.address, timeout=10.0, handle_sigterm=False)
        errors: list[BaseException] = []
        refusals: list[ResourceExhaustedError] = []
        deadline = time.monotonic() + 70

        def work(k: int) -> None:
            try:
                for v in range(VERSIONS):
                    for i in range(k, IDS, THREADS):
                        assert time.monotonic() < deadline, "publishing took too long"
                        try:
                            client.config_publish(f"flag-{i}", "ab"[v % 2])
                        except ResourceExhaustedError as exc:  # the quota: expected
                            refusals.append(exc)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        try:
            client.config_publish("warm-up", "x")  # the config plane's first allocations
            before = rss_bytes(node.proc.pid)
            threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(90)
        finally:
            client.close()
        assert not errors, f"a publish failed: {errors[0]!r}"
        grown = rss_bytes(node.proc.pid) - before
        stats = config_stats(node.port)
        assert stats["held_bytes"] <= QUOTA, stats  # every version within the quota
        assert refusals and "max_total_bytes" in str(refusals[0]), "the quota never bound"
        bound = 10 * QUOTA + 4 * 1024 * 1024
        assert grown <= bound, (
            f"the node's RSS grew by {grown / 2**20:.1f} MiB for {stats['history_entries']} "
            f"kept versions holding {stats['content_chars']} characters of content "
            f"({grown / max(stats['history_entries'], 1):.0f} bytes per version), with "
            f"[config] max_total_bytes = {QUOTA}: the kept versions' memory is bounded by "
            f"counts only (keep_revisions x data ids), not by the content quota; stats "
            f"{json.dumps({k: stats[k] for k in ('configs', 'history_entries')})}"
        )
    finally:
        node.cleanup()
