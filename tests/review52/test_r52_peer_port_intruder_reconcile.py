"""review52 F2: on a cluster without a key, any client that reaches P+3 can send a
``reconcile`` naming a node id that is no member, and the owner merges it: past every
quota, replicated to the other members, and kept alive by self-preservation.

PROTOCOL.md 2.12: ``reconcile`` is "node to node only ... A client never sends it";
1.6/2.8: quotas (``[limits]``) stop a node from being grown until it falls over and are
checked by the node that applies a write ("nor is anything replicated" refused: "its
owner admitted it").  core/distro ``_repairs_from`` merges a payload when the service's
owner is this node *or* the sender: a reconcile that names ``intruder:1`` is merged for
every service the receiving node owns, with no check that ``intruder:1`` is a member
(beacons are ignored unless from a followed peer, config peer messages are refused as
"not from a configured member": ``config.peer_messages_rejected``; this one is not).

By hand (/tmp/r52/probe_reconcile2.py): limits max_namespaces 5, max_instances 100,
max_instances_per_service 10; one 64-service reconcile of 50 instances each to node A of
two: both nodes hold 34 namespaces and 1,700 instances (50 per service); the instances
are never beaten, A enters self-preservation 2 s later (silent 1700/1700, held 1700) and
keeps them past evict_after (6 s) for the 22 s watched (max_duration: 900 s), which also
keeps any really dead instance of A's services; a well-behaved client's register in a
new namespace is refused (RESOURCE_EXHAUSTED: "this node holds 34 namespaces").
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import forged_reconcile_services, free_port_pair, replication_barrier, start_all
from r52lib import NodeProcess, raw_request, stats

TIMINGS = ("--check-interval", "0.2", "--unhealthy-after", "3", "--evict-after", "6",
           "--peer-timeout", "1.0")  # fmt: skip
LIMITS = "[limits]\nmax_instances = 100\nmax_namespaces = 5\nmax_instances_per_service = 10\n"


def _intruder_reconcile(port: int) -> dict:
    services = forged_reconcile_services([f"ns{s}" for s in range(64)], 0)
    body = {"v": 1, "id": 1, "op": "reconcile", "node": "intruder:1", "services": services}
    return raw_request(port + 3, body, 10.0)


@pytest.mark.timeout(90)
def test_a_reconcile_from_a_non_member_is_not_merged_past_the_quotas(tmp_path: Path) -> None:
    cfg = tmp_path / "node.toml"
    cfg.write_text(LIMITS)
    ports = [free_port_pair(), free_port_pair()]
    peers = [arg for p in ports for arg in ("--peer", f"127.0.0.1:{p}")]
    nodes = [
        NodeProcess(*TIMINGS, *peers, "--config", str(cfg), "--data-dir", str(tmp_path / str(p)),
                    port=p)
        for p in ports
    ]  # fmt: skip
    try:
        start_all(nodes)
        a = nodes[0]
        deadline = time.monotonic() + 15
        while True:  # both members up and ready (the cluster as clients see it)
            cl = raw_request(a.port, {"v": 1, "id": 2, "op": "cluster"})
            if cl["ok"] and [m["state"] for m in cl["result"]["members"]] == ["up", "up"]:
                break
            assert time.monotonic() < deadline, f"cluster not up: {cl}"
            time.sleep(0.1)
        reply = _intruder_reconcile(a.port)
        replication_barrier(ports)  # what it replicated has arrived
        usage = {n.port: stats(n.port)["usage"] for n in nodes}
        register = raw_request(
            a.port,
            {"v": 1, "id": 3, "op": "register", "namespace": "public", "service": "x",
             "ip": "1.2.3.4", "port": 1},
        )  # fmt: skip
        problems = []
        for port, u in usage.items():
            if u["namespaces"] > 5 or u["instances"] > 100:
                problems.append(f"node :{port} holds {u['namespaces']} namespaces and "
                                f"{u['instances']} instances (limits 5 and 100)")  # fmt: skip
        if not register["ok"]:
            problems.append(f"a client's register was refused: {register['error']['message']}")
        assert not problems, (
            f"a reconcile naming node 'intruder:1' (no member) sent to P+3 by a client was "
            f"answered ok={reply.get('ok')} and merged: " + "; ".join(problems)
        )
    finally:
        for n in nodes:
            n.stop()
            n.cleanup()
