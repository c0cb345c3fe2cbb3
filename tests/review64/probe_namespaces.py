"""Probe: a tenant granted `team-a*` (its dev/prod namespaces) fills the node's
max_namespaces (lowered to 6 in the node's config for a bounded run)."""
import os, sys, tempfile, subprocess
from pathlib import Path
sys.path.insert(0, "/work/rev64/tests")
from helpers import NodeProcess, RawDealer, free_port_pair
from review64.r64lib import curve, ACL
import review64.r64lib as L
tmp = Path(tempfile.mkdtemp(prefix="r64ns-"))
(tmp / "node.toml").write_text("[limits]\nmax_namespaces = 6\n")
acl = ACL.replace('allow = [{ namespace = "team-a", group', 'allow = [{ namespace = "team-a*", group')
(node,) = L.tenant_nodes(tmp, 1, "--config", str(tmp / "node.toml"), acl=acl)
print("node pid", node.proc.pid)
try:
    a = RawDealer(node.port, curve(tmp, "team-a")); b = RawDealer(node.port, curve(tmp, "team-b"))
    for i in range(8):
        r = a.call("register", namespace=f"team-a-{i}", service="s", ip="10.0.0.1", port=80)
        print("team-a register in", f"team-a-{i}", r["ok"], r.get("error", {}).get("message", "")[:200])
    r = b.call("register", namespace="team-b", service="s", ip="10.0.0.2", port=80)
    print("team-b register in its own namespace:", r)
    r = b.call("config_publish", namespace="team-b", data_id="x", content="1")
    print("team-b config publish:", r["ok"], r.get("error"))
finally:
    node.cleanup()
