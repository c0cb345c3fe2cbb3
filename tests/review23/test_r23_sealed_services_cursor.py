"""The fix of review23 F5 where the scan stops before the page fills: a key that may read
a few services behind thousands it may not gets a sealed cursor (no name in it), which
leads on to its services on this node; a tampered copy is refused.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from helpers import RawDealer
from r23lib import keyed_node, make_keys, reply_text

from meshreg.core.requests import SERVICES_SCAN_LIMIT
from meshreg.security.cursors import PADDED_BYTES

ACL = """
[[client]]
name = "owner"
key_file = "owner.pub"
allow = [{ namespace = "a", access = "write" }]
[[client]]
name = "narrow"
key_file = "narrow.pub"
allow = [{ namespace = "a", group = "g1", service = "z*", access = "read" }]
"""
HIDDEN = SERVICES_SCAN_LIMIT + 200  # g1/h00000 ... : before the visible ones (z1, z2)


@pytest.mark.timeout(90)
def test_a_scan_past_the_limit_ends_with_a_sealed_cursor_that_leads_on(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "owner", "narrow")
    node = keyed_node(tmp_path, ACL, keys)
    owner = narrow = None
    try:
        node.start()
        owner = RawDealer(node.port, keys["owner"])
        narrow = RawDealer(node.port, keys["narrow"])
        names = [f"h{i:05d}" for i in range(HIDDEN)] + ["z1", "z2"]
        for start in range(0, len(names), 500):
            entries = [{"group": "g1", "service": s, "ip": "10.0.0.1", "port": 1}
                       for s in names[start : start + 500]]  # fmt: skip
            r = owner.call("register_batch", namespace="a", instances=entries, timeout=20)
            assert r["ok"], reply_text(r)
        first = narrow.call("services", namespace="a", page_size=10)
        assert first["ok"], reply_text(first)
        assert first["result"]["services"] == []  # 5000 examined, none readable
        sealed = first["result"]["next_cursor"]
        # no name in it: not as text, nor in the decoded bytes ("h0" alone turned up by
        # chance in the base64 of random bytes, about 1 run in 80: CI once on 1695c99)
        assert sealed.startswith("~") and "/" not in sealed and "g1/h" not in sealed
        body = sealed[1:]
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        # padded to the longest name: its length says nothing of the name's (review83 F1)
        assert b"g1/h" not in raw and len(raw) == 12 + PADDED_BYTES + 16
        listed: list[str] = []
        cursor = sealed
        for _ in range(5):
            r = narrow.call("services", namespace="a", page_size=10, cursor=cursor)
            assert r["ok"], reply_text(r)
            listed += [s["service"] for s in r["result"]["services"]]
            cursor = r["result"]["next_cursor"]
            if cursor is None:
                break
        assert listed == ["z1", "z2"] and cursor is None
        tampered = sealed[:-2] + ("AA" if sealed[-2:] != "AA" else "BB")
        r = narrow.call("services", namespace="a", page_size=10, cursor=tampered)
        assert not r["ok"] and r["error"]["name"] == "INVALID_ARGUMENT", reply_text(r)
        assert "list again from the first page" in r["error"]["message"]
        # the owner (may read everything) pages with plain cursors, as before
        r = owner.call("services", namespace="a", page_size=3)
        assert r["result"]["next_cursor"] == "g1/h00002", reply_text(r)
    finally:
        for d in (owner, narrow):
            if d is not None:
                d.close()
        node.cleanup()
