"""review37 F5: a deregister the node refuses (it came after its `deadline`: nothing is
removed) still gives its instance's place back in the client's quota, so one key holds
any number of instances past `max_instances_per_client`, up to the node-wide
`max_instances`, and then every other tenant's register is refused.

SECURITY.md "Limits per client": "Instances per key (`max_instances_per_client`) ... The
node a client's `register` arrives at counts the instances that key registered through
it and refuses a new one over the limit ... Deregistering through the node frees room
at once"; PROTOCOL.md 2.0: "A rejected request never changes state".
runtime/node.py ``_client_limits`` releases the instance when the deregister is
authorized, before the core refuses it as late.
By hand (/tmp/r37/e15.py, `max_instances_per_client = 5`): 4 rounds of "register 5 new,
deregister them with a deadline 60 s in the past" -> the node holds 20 of the key's
instances, `stats.client_instances_held` 0.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from r37lib import TENANTS_ACL, RawDealer, keyed_node, make_keys, reply_text

LIMITS = "[limits]\nmax_instances_per_client = 5\nmax_instances = 12\n"


@pytest.mark.timeout(60)
def test_a_refused_deregister_does_not_free_quota(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "tenantA", "tenantB", "ops")
    (tmp_path / "node.toml").write_text(LIMITS)
    node = keyed_node(tmp_path, TENANTS_ACL, keys, "--config", str(tmp_path / "node.toml"))
    a = b = None
    try:
        node.start()
        a = RawDealer(node.port, keys["tenantA"])
        b = RawDealer(node.port, keys["tenantB"])
        accepted = 0
        port = 0
        for _ in range(3):
            for _ in range(5):
                port += 1
                r = a.call("register", namespace="nsA", service="s", ip="10.0.0.1", port=port)
                accepted += bool(r["ok"])
            for p in range(1, port + 1):  # refused as late: nothing is removed
                r = a.call("deregister", namespace="nsA", service="s", ip="10.0.0.1", port=p,
                           deadline=int(time.time() * 1000) - 60_000)  # fmt: skip
                assert not r["ok"] and r["error"]["name"] == "UNAVAILABLE", reply_text(r)
        held = a.call("instances", namespace="nsA", service="s", healthy_only=False)
        assert held["ok"], reply_text(held)
        r = b.call("register", namespace="nsB", service="pay", ip="10.2.2.2", port=80)
        assert accepted <= 5 and r["ok"], (
            f"tenant A's key (max_instances_per_client = 5) had {accepted} registrations "
            f"accepted and holds {len(held['result']['instances'])} instances on the node "
            f"(its deregisters were refused as late, and freed its quota); tenant B's "
            f"register: {reply_text(r)}"
        )
    finally:
        for d in (a, b):
            if d is not None:
                d.close()
        node.cleanup()
