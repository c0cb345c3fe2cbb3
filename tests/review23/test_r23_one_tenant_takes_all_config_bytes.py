"""review23 F4: one tenant key, confined by the ACL to its own namespace, fills the node's
config content quota (`[config] max_total_bytes`, 256 MiB, every kept version's) with 256
publishes of 1 MiB to five data ids (~7 s); from then on no other namespace can publish
or update anything, not even 4 bytes, for as long as the flooder's history is kept (100
revisions, 30 days: it is on disk, so restarts do not help).

docs/SECURITY.md "Limits per client": "Node-wide quotas stop a node from being grown until
it falls over; three limits stop one client from taking all of it from the others, and
one stops one namespace from taking every config slot: Configs per namespace ... It
isolates tenants whose keys the ACL confines to their namespaces".  That per-namespace
limit counts data ids only (10,000 of them); the bytes quota beside it has no share, and
the flooder needs only 5 data ids.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest
from helpers import RawDealer, wait_until
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


def publish(d: RawDealer, ns: str, data_id: str, content: str) -> dict:
    return d.call("config_publish", timeout=30, namespace=ns, group="g", data_id=data_id,
                  content=content, request_id=secrets.token_hex(16), echo=False)  # fmt: skip


@pytest.mark.timeout(180)
def test_one_tenant_cannot_take_every_other_tenants_config_bytes(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "tenant-a", "tenant-b")
    node = keyed_node(tmp_path, ACL, keys)
    a = b = None
    try:
        node.start()
        a = RawDealer(node.port, keys["tenant-a"])
        b = RawDealer(node.port, keys["tenant-b"])
        wait_until(lambda: publish(b, "b", "app.yaml", "a: 1")["ok"], 20, 0.2,
                   "tenant-b's first publish (the config center ready)")  # fmt: skip
        big = "x" * (1024 * 1024 - 100)
        accepted, last = 0, None
        deadline = time.monotonic() + 100
        for i in range(400):
            last = publish(a, "a", f"big{i % 5}", big + str(i))
            if not last["ok"] or time.monotonic() > deadline:
                break
            accepted += 1
        assert last is not None and not last["ok"], "no quota met in 400 publishes of 1 MiB"
        i = 0
        for size in (16384, 1024, 64, 4, 1):  # the last bytes, as a flooder would
            while i < 500:
                i += 1
                if not publish(a, "a", f"top{i % 50}", "y" * size)["ok"]:
                    break
        other = publish(b, "b", "app.yaml", "a: 2")
        assert other["ok"], (
            f"tenant-a (write on namespace 'a' only) published {accepted} versions of 1 MiB "
            f"to 5 data ids ({reply_text(last)[:160]}), and tenant-b can no longer update "
            f"its own 4-byte config in namespace 'b': {reply_text(other)}"
        )
    finally:
        for d in (a, b):
            if d is not None:
                d.close()
        node.cleanup()
