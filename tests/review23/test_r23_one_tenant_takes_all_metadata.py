"""review23 F3: one tenant key, confined by the ACL to its own namespace, takes the node's
whole `max_metadata_bytes` (512 MiB by default) in about 4 s; from then on every other
tenant's `register` carrying any metadata (`{"zone": "eu-1"}`) is refused with
RESOURCE_EXHAUSTED, cluster-wide owners included, until the flooder deregisters.

docs/SECURITY.md, "Limits per client": "Node-wide quotas ([limits], README) stop a node
from being grown until it falls over; three limits stop one client from taking all of it
from the others" (instances per key, expensive reads, sessions per client), and configs
got a per-namespace quota for exactly this (review14b F3: "one tenant allowed to write
only its own namespace ... no other namespace could create one").  Registry metadata has
neither a per-key nor a per-namespace share: 200,000 instances per key (the per-client
limit) × 16 KiB of metadata each (the per-instance limit) is 3.2 GB of a 512 MiB
node-wide budget, so one key needs only ~33,500 registers (it counts the bytes sent, so
the same 16 KB repeated costs the flooder nothing: the node's RSS stays ~60 MB).
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
allow = [{ namespace = "a", access = "write" }]
[[client]]
name = "tenant-b"
key_file = "tenant-b.pub"
allow = [{ namespace = "b", access = "write" }]
"""


@pytest.mark.timeout(150)
def test_one_tenant_cannot_take_every_other_tenants_metadata_room(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "tenant-a", "tenant-b")
    node = keyed_node(tmp_path, ACL, keys)
    a = b = None
    try:
        node.start()
        a = RawDealer(node.port, keys["tenant-a"])
        b = RawDealer(node.port, keys["tenant-b"])
        meta = {f"k{j:02d}": "x" * 1000 for j in range(16)}  # 16,000 chars: under 16 KiB
        outcome: dict[str, int] = {}
        sent, in_flight, total = 0, 0, 40_000
        deadline = time.monotonic() + 90
        while sent < total and time.monotonic() < deadline and "RESOURCE_EXHAUSTED" not in outcome:
            a.send("register", namespace="a", group="g", service=f"m{sent % 50}",
                   ip=f"10.1.{sent // 250}.{sent % 250}", port=1, metadata=meta)  # fmt: skip
            sent += 1
            in_flight += 1
            while in_flight > 200:
                r = a.replies(1, 30)[0]
                in_flight -= 1
                name = "ok" if r["ok"] else r["error"]["name"]
                outcome[name] = outcome.get(name, 0) + 1
        for r in a.replies(in_flight, 30):
            name = "ok" if r["ok"] else r["error"]["name"]
            outcome[name] = outcome.get(name, 0) + 1
        # top the last bytes up with smaller metadata, as a flooder would
        i = 0
        for size in (512, 128, 32, 8, 2, 1):
            while i < 5000:
                r = a.call("register", namespace="a", group="g", service="top",
                           ip=f"10.2.{i // 250}.{i % 250}", port=1,
                           metadata={"k": "y" * size})  # fmt: skip
                i += 1
                if not r["ok"]:
                    break
        other = b.call("register", namespace="b", group="g", service="web", ip="10.9.9.9",
                       port=80, metadata={"zone": "eu-1"})  # fmt: skip
        assert other["ok"], (
            f"tenant-a (write on namespace 'a' only) registered {outcome.get('ok', 0)} "
            f"instances with 16 KB of metadata ({outcome}), and tenant-b's register in its "
            f"own namespace with metadata {{'zone': 'eu-1'}} is refused: {reply_text(other)}"
        )
    finally:
        for d in (a, b):
            if d is not None:
                d.close()
        node.cleanup()
