"""NOT COLLECTED (known_*): a documented limit, not fixed (docs/SECURITY.md, "What is not
protected", "Tenants sharing a node"); it fails by design.  Run it by hand with
``pytest tests/review64/known_r64_namespace_quota_no_share.py``.

review64 F4 (low/medium, multi-tenant starvation): `[limits] max_namespaces` is one
node-wide pool with no share per key: a tenant granted its own prefix (`team-a*`, the
usual way to give a team team-a-dev, team-a-prod, ... as Nacos namespaces per
environment) takes every namespace place, and then another tenant cannot register
anything in its own namespace once that namespace is empty for a moment (all its
instances evicted or deregistered, e.g. a full redeploy):

    RESOURCE_EXHAUSTED register: quota reached: this node holds 6 namespaces
    ([limits] max_namespaces = 6); namespace 'team-b' would be a new one ...

(the refusal also tells team-b how many namespaces the node holds).  docs/SECURITY.md
"Limits per client" lists three per-client limits and four namespace shares; the
namespace count is neither, and README's `[limits]` says nothing of it.  The default is
10,000 (about 10,000 pipelined registers, seconds); this test lowers it to 6 to stay
bounded, the mechanism is the same.

Expected: one tenant's key cannot use up the node's namespace places (a share per key,
as `max_sessions_per_client`), or the docs say so next to the other quotas.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import RawDealer

from .r64lib import ACL, curve, tenant_nodes

pytestmark = pytest.mark.timeout(90)


def test_a_prefix_tenant_cannot_take_every_namespace_place(tmp_path: Path) -> None:
    (tmp_path / "node.toml").write_text("[limits]\nmax_namespaces = 6\n")
    acl = ACL.replace('{ namespace = "team-a", group', '{ namespace = "team-a*", group')
    assert acl != ACL
    (node,) = tenant_nodes(tmp_path, 1, "--config", str(tmp_path / "node.toml"), acl=acl)
    a = RawDealer(node.port, curve(tmp_path, "team-a"))
    b = RawDealer(node.port, curve(tmp_path, "team-b"))
    try:
        taken = 0
        for i in range(8):  # team-a's own namespaces, as its grant allows
            r = a.call("register", namespace=f"team-a-{i}", service="s", ip="10.0.0.1", port=80)
            taken += bool(r["ok"])
        r = b.call("register", namespace="team-b", service="s", ip="10.0.0.2", port=80)
        assert r["ok"], (
            f"team-b's first register in its own namespace, after team-a took {taken} "
            f"namespaces of its prefix: {r['error']}"
        )
    finally:
        a.close()
        b.close()
        node.cleanup()
