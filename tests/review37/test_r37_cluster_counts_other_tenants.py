"""review37 F4: `cluster` tells any key (one confined to its own namespace, or one whose
ACL entry allows nothing) how many services and instances every other tenant holds.

SECURITY.md: `stats` needs read on everything because "the figures are node-wide, so
only a client that may read everything sees them"; `namespaces` counts "only what it
may read ... what it may not read is never counted nor named" (review30); "neither a
denial nor any other answer tells a client what exists in a namespace it may not read".
But `cluster` (no ACL access needed) returns per member the node-wide `services` and
`instances` counts: tenant A, with nothing registered and no right on nsB, sees each
registration and eviction of tenant B (by hand: 2 services / 2 instances of B's in the
members' counts; here: 3 services, 12 instances).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from r37lib import TENANTS_ACL, RawDealer, keyed_node, make_keys, reply_text


@pytest.mark.timeout(60)
def test_cluster_counts_only_what_the_key_may_read(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "tenantA", "tenantB", "ops")
    node = keyed_node(tmp_path, TENANTS_ACL, keys)
    a = b = None
    try:
        node.start()
        a = RawDealer(node.port, keys["tenantA"])
        b = RawDealer(node.port, keys["tenantB"])
        for s in range(3):
            for i in range(4):
                r = b.call("register", namespace="nsB", service=f"secret{s}", ip=f"10.0.{s}.{i}",
                           port=80)  # fmt: skip
                assert r["ok"], reply_text(r)
        # tenant A may not read nsB at all:
        r = a.call("services", namespace="nsB")
        assert not r["ok"] and r["error"]["name"] == "PERMISSION_DENIED", reply_text(r)

        def seen() -> tuple[int, int]:
            r = a.call("cluster")
            assert r["ok"], reply_text(r)
            ms = r["result"]["members"]
            return sum(m["services"] for m in ms), sum(m["instances"] for m in ms)

        services, instances = seen()
        assert (services, instances) == (0, 0), (
            f"tenant A (no right on nsB, nothing of its own) is told by `cluster` that the "
            f"node holds {services} services and {instances} instances: tenant B's"
        )
    finally:
        for d in (a, b):
            if d is not None:
                d.close()
        node.cleanup()
