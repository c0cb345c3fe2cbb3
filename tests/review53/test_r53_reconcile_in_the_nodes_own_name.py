"""review53 F-reconcile: review52 F2's check ("a node merges a reconcile only from a node
it has heard as a member", core/distro ``_reconcile``) lets through a reconcile that
names the receiving node itself: ``req.node != self.node_id and ...``.  A node's id is
its address by default (PROTOCOL.md 1.1: "default host:P") and every client reads it in
``stats.node_id``, so anything that reaches P+3 of a cluster without a key puts
instances past every quota by naming each node in its own reconcile, with no other
member's id needed (and it works while no peer is heard at all, which the check was
meant to cover): ``_repairs_from(key, self)`` is true for every service the node owns.

SECURITY.md (this release): "A node merges a repair round's `reconcile` only from a
node it has heard as a member (`reconciles_unheard` counts the others ...)". A node never
hears itself as a member (its own beacons are dropped: ``on_replication``), and no node
sends itself a reconcile, so the exemption serves nothing.

By hand (probe_r53_bypass.py reconcile): limits max_namespaces 5, max_instances 100; a
reconcile of 8 services x 50 instances sent to each of two nodes in its own name: both
nodes hold 800 instances in 17 namespaces (usage), reconciles_unheard 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import forged_reconcile_services, replication_barrier
from r53lib import HOST, TREE_NEW, TreeNode, free_port_pair, members_up, req, wait_for

LIMITS = "[limits]\nmax_instances = 100\nmax_namespaces = 5\nmax_instances_per_service = 10\n"


def _owned_namespaces(owner: str, members: list[str], tag: str, count: int) -> list[str]:
    """``count`` namespaces whose service ``svc`` ``owner`` is responsible for (so that
    the reconcile in its own name is merged whatever the ports drawn)."""
    from meshreg.core.mapping import responsible_node
    from meshreg.model import ServiceKey

    names = [f"{tag}{i}" for i in range(1000)]
    owned = [n for n in names if responsible_node(ServiceKey(n, "DEFAULT_GROUP", "svc"),
                                                  members) == owner]  # fmt: skip
    return owned[:count]


def _reconcile_as(port: int, node_id: str, namespaces: list[str]) -> dict:
    services = forged_reconcile_services(namespaces, 77)
    return req(port + 3, "reconcile", 10.0, node=node_id, services=services)


@pytest.mark.timeout(120)
def test_a_reconcile_naming_the_receiving_node_itself_is_not_merged(tmp_path: Path) -> None:
    cfg = tmp_path / "node.toml"
    cfg.write_text(LIMITS)
    work = tmp_path / "cwd"
    work.mkdir()
    ports = [free_port_pair(), free_port_pair()]
    peers = [arg for p in ports for arg in ("--peer", f"{HOST}:{p}")]
    nodes = [
        TreeNode("--peer-timeout", "1.0", *peers, "--config", str(cfg),
                 "--data-dir", str(tmp_path / str(p)), port=p, tree=TREE_NEW, workdir=work)
        for p in ports
    ]  # fmt: skip
    try:
        for n in nodes:
            n.launch()
        for n in nodes:
            n.wait_ready(30)
        for p in ports:
            wait_for(lambda p=p: members_up(p, 2), 30, f"node :{p} sees both members up")
        answers = {}
        ids = [req(p, "stats", 5.0)["result"]["node_id"] for p in ports]  # any client reads it
        for k, p in enumerate(ports):
            mine = _owned_namespaces(ids[k], ids, f"own{k}x", 8)
            answers[p] = (ids[k], _reconcile_as(p, ids[k], mine).get("ok"))
        replication_barrier(ports)  # what each replicated has arrived
        problems = []
        for p in ports:
            st = req(p, "stats", 5.0)["result"]
            u = st["usage"]
            if u["namespaces"] > 5 or u["instances"] > 100:
                problems.append(f"node :{p} holds {u['namespaces']} namespaces and "
                                f"{u['instances']} instances (limits 5 and 100)")  # fmt: skip
        assert not problems, (
            f"reconciles sent to P+3 naming each receiving node itself {answers} were "
            "merged past the quotas: " + "; ".join(problems)
        )
    finally:
        for n in nodes:
            n.stop()
            n.cleanup()
