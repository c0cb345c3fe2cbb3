"""review23 F6: a key with admin on its own namespace only fills the node-wide table of
operator overrides (MAX_OVERRIDES = 100,000) in ~10 s (100,000 registers in batches, then
one `update` each, all under its 200,000-instance per-key quota); every other tenant's
`instance-set` (a drain: `enabled false`) is then refused with RESOURCE_EXHAUSTED, for
`override_ttl` (600 s) after the flooder's instances lapse, and across restarts (the
overrides are kept in registry-state.sqlite3).

README "Draining": "`stats.usage.overrides` counts the overrides a node holds (at most
100,000)"; docs/SECURITY.md "Limits per client": node-wide quotas, and per-client limits
"stop one client from taking all of it from the others": the overrides table has no share
per key or namespace (the same gap as F3's metadata and F4's config bytes).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import RawDealer
from r23lib import keyed_node, make_keys, reply_text

ACL = """
[[client]]
name = "tenant-a"
key_file = "tenant-a.pub"
allow = [{ namespace = "a", access = "admin" }]
[[client]]
name = "tenant-b"
key_file = "tenant-b.pub"
allow = [{ namespace = "b", access = "admin" }]
"""

N = 100_050


def _addr(i: int) -> str:
    return f"10.{i // 62500}.{(i // 250) % 250}.{i % 250}"


@pytest.mark.timeout(150)
def test_one_tenant_cannot_take_every_other_tenants_overrides(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "tenant-a", "tenant-b")
    node = keyed_node(tmp_path, ACL, keys)
    a = b = None
    try:
        node.start()
        a = RawDealer(node.port, keys["tenant-a"])
        b = RawDealer(node.port, keys["tenant-b"])
        r = b.call("register", namespace="b", group="g", service="web", ip="10.9.9.9", port=80)
        assert r["ok"], reply_text(r)
        batches = 0
        for start in range(0, N, 800):
            a.send("register_batch", namespace="a", instances=[
                {"group": "g", "service": f"o{(start + i) // 40000}", "ip": _addr(start + i),
                 "port": 1} for i in range(min(800, N - start))])  # fmt: skip
            batches += 1
        for r in a.replies(batches, 60):
            assert r["ok"], reply_text(r)
        outcome: dict[str, int] = {}
        sent = in_flight = 0
        deadline = time.monotonic() + 90
        while sent < N and time.monotonic() < deadline:
            a.send("update", namespace="a", group="g", service=f"o{sent // 40000}",
                   ip=_addr(sent), port=1, weight=2.0)  # fmt: skip
            sent += 1
            in_flight += 1
            while in_flight > 300 or (sent >= N and in_flight):
                r = a.replies(1, 60)[0]
                in_flight -= 1
                name = "ok" if r["ok"] else r["error"]["name"]
                outcome[name] = outcome.get(name, 0) + 1
        drain = b.call("update", namespace="b", group="g", service="web", ip="10.9.9.9",
                       port=80, enabled=False)  # fmt: skip
        assert drain["ok"], (
            f"tenant-a (admin on namespace 'a' only) set {outcome.get('ok', 0)} overrides "
            f"({outcome}); tenant-b can no longer drain its own instance: {reply_text(drain)}"
        )
    finally:
        for d in (a, b):
            if d is not None:
                d.close()
        node.cleanup()
