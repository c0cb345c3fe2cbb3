"""NOT COLLECTED (known_*): a documented limit, not fixed (docs/SECURITY.md, "What is not
protected", "Tenants sharing a node"); it fails by design.  Run it by hand with
``pytest tests/review64/known_r64_revision_counts_other_tenants.py``.

review64 F2 (low, information leak): a key confined to its own namespace reads the
node-wide registry revision, and with it counts every other tenant's registry changes.

`instances` of a service that does not exist answers with "the node-wide revision"
(docs/PROTOCOL.md 2.6), which grows by one with every change anywhere on the node, in
every namespace.  So team-a, admin of namespace team-a only, asks `instances` of a name
of its own that it never registered, before and after: the difference is exactly how many
registers, deregisters, evictions and health changes every other tenant made meanwhile.
docs/SECURITY.md says node-wide figures are for keys that may read everything: `stats`
needs read on `*`, and `cluster` hides its per-member `services`/`instances` from a
tenant key since review37 F4 ("a key confined to its namespace saw every other tenant's
registrations and evictions in them"); this is the same figure by another door.

Seen by hand: team-b registered 37 instances of a service in its namespace; team-a's
`instances team-a/nothing-here` revision went 6 -> 43 (delta 37), and 43 -> 80 after
team-b's 37 deregisters.

Expected: a tenant learns nothing about other namespaces' activity (e.g. the revision
of an absent service is one that moves only with the namespace's own changes, or 0).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import RawDealer

from .r64lib import curve, tenant_nodes

pytestmark = pytest.mark.timeout(90)


def test_a_tenant_cannot_count_another_tenants_registry_changes(tmp_path: Path) -> None:
    (node,) = tenant_nodes(tmp_path, 1)
    a = RawDealer(node.port, curve(tmp_path, "team-a"))
    b = RawDealer(node.port, curve(tmp_path, "team-b"))
    try:

        def probe() -> int:
            r = a.call("instances", namespace="team-a", service="nothing-here")
            assert r["ok"], r
            return int(r["result"]["revision"])

        before = probe()
        n = 23
        for i in range(n):
            b.send("register", namespace="team-b", service="secret-project",
                   ip=f"10.9.0.{i + 1}", port=80)  # fmt: skip
        assert all(r["ok"] for r in b.replies(n))
        after = probe()  # one node: b's writes are applied before a's read is served
        assert after - before != n, (
            f"team-a (its own namespace only) read the revision of an absent service of its "
            f"own before and after team-b's {n} registers in team-b: {before} -> {after}, "
            f"exactly team-b's {n} changes"
        )
    finally:
        a.close()
        b.close()
        node.cleanup()
