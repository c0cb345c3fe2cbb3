"""review23 F2: a `session_renew` the node refuses (NOT_FOUND: "belongs to another
namespace") still runs the session's one-time ACL check, against the refused sender's
access, and deregisters (cluster-wide) every instance of another tenant's session.

docs/SECURITY.md, "Reloading": "after a reload that changes the ACL (and on a node's first
renewal of a session after its start), a node that receives a client's renewal checks that
session's instances once against the client's access, deregisters (replicated, as any
write) those in services it may no longer register in"; the op table: `session_renew`
needs write on some service of the request's namespace; README: "a bad request gets an
error reply ... and changes nothing".

tenant-b (write on namespace "b" only) sends `session_renew {namespace: "b", session:
<tenant-a's id>}`: the reply is NOT_FOUND, yet tenant-a's instance in "a" is gone and the
node logs "deregistered 1 instance(s) of a session of client 'tenant-b': after the ACL
reload it may no longer register them" (no reload happened, and the session is not
tenant-b's). tenant-a's next renewal then reports 0 instances. The same request from the
session's own client, or a `session_close`/`register` naming it, leaves it alone.
(Exploiting it needs the 128-bit session id: its risk is the capability leaking, e.g.
the node's own rejection log lines print it; but a refused request must not write.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import RawDealer, holds_for
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


@pytest.mark.timeout(60)
def test_a_refused_renewal_of_another_tenants_session_changes_nothing(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "tenant-a", "tenant-b")
    node = keyed_node(tmp_path, ACL, keys)
    a = b = None
    try:
        node.start()
        a = RawDealer(node.port, keys["tenant-a"])
        b = RawDealer(node.port, keys["tenant-b"])
        opened = a.call("session_open", namespace="a")
        assert opened["ok"], reply_text(opened)
        sid = opened["result"]["session"]
        r = a.call("register", namespace="a", group="g", service="orders", ip="10.0.0.5",
                   port=8080, session=sid)  # fmt: skip
        assert r["ok"], reply_text(r)

        def listed() -> list[tuple[str, int]]:
            got = a.call("instances", namespace="a", group="g", service="orders",
                         healthy_only=False)  # fmt: skip
            assert got["ok"], reply_text(got)
            return [(i["ip"], i["port"]) for i in got["result"]["instances"]]

        assert listed() == [("10.0.0.5", 8080)]
        refused = b.call("session_renew", namespace="b", session=sid)
        assert not refused["ok"], f"tenant-b renewed tenant-a's session: {reply_text(refused)}"
        holds_for(
            lambda: listed() == [("10.0.0.5", 8080)],
            1.5,
            what=(
                f"tenant-a's instance still registered after tenant-b's refused renewal "
                f"({reply_text(refused)[:120]}); node log:\n"
                + "\n".join(ln for ln in node.log().splitlines() if "deregistered" in ln)
            ),
        )
        renewed = a.call("session_renew", namespace="a", session=sid)
        assert renewed["ok"] and renewed["result"]["instances"] == 1, reply_text(renewed)
    finally:
        for d in (a, b):
            if d is not None:
                d.close()
        node.cleanup()
