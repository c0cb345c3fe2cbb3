"""review23 F5: `services` paging hands a client the names of services it may not read, in
`next_cursor`: with page_size 1 a key that may read `a/g1/s*` only enumerates every
service of namespace `a`, other groups included (`g1/a0`, `g1/t9`, `g2/zz-hidden`, ...).

docs/SECURITY.md: `services` needs read on "some service of the namespace (or group); the
list shows only the services the client may read"; "A check looks only at the key and the
request, never at the registry ... so neither a denial nor any other answer tells a client
what exists in a namespace it may not read."  The listing is filtered
(security/authz.visible_services), but the cursor is the `group/service` of the last name
examined, visible or not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import RawDealer
from r23lib import keyed_node, make_keys, reply_text

ACL = """
[[client]]
name = "owner"
key_file = "owner.pub"
allow = [{ namespace = "a", access = "write" }]
[[client]]
name = "narrow"
key_file = "narrow.pub"
allow = [{ namespace = "a", group = "g1", service = "s*", access = "read" }]
"""

HIDDEN = [("g1", "a0-internal"), ("g1", "t9-billing"), ("g2", "zz-hidden"), ("h", "x")]
VISIBLE = [("g1", "s1"), ("g1", "s2")]


@pytest.mark.timeout(60)
def test_services_paging_reveals_no_name_the_client_may_not_read(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "owner", "narrow")
    node = keyed_node(tmp_path, ACL, keys)
    owner = narrow = None
    try:
        node.start()
        owner = RawDealer(node.port, keys["owner"])
        narrow = RawDealer(node.port, keys["narrow"])
        for group, service in HIDDEN + VISIBLE:
            r = owner.call("register", namespace="a", group=group, service=service,
                           ip="10.0.0.1", port=1)  # fmt: skip
            assert r["ok"], reply_text(r)
        seen: set[str] = set()
        cursor = None
        for _ in range(20):
            fields = {"namespace": "a", "page_size": 1}
            if cursor:
                fields["cursor"] = cursor
            r = narrow.call("services", **fields)
            assert r["ok"], reply_text(r)
            res = r["result"]
            seen.update(f"{s['group']}/{s['service']}" for s in res["services"])
            cursor = res["next_cursor"]
            if not cursor:
                break
            seen.add(cursor)
        leaked = sorted(seen - {f"{g}/{s}" for g, s in VISIBLE})
        assert not leaked, (
            f"a key that may read a/g1/s* only learned these service names of namespace "
            f"'a' from services' next_cursor: {leaked}"
        )
    finally:
        for d in (owner, narrow):
            if d is not None:
                d.close()
        node.cleanup()
