"""review23 F7: a session id the node chooses (`session_open` without `session`, as
PROTOCOL.md 2.3a allows) is xxh3_128 of "address|node_tag(node id)|epoch|counter"
(core/registry._new_session_id): every input is in the node's `ping` and `cluster`
answers, which any known key may ask for, and the counter counts from 1.  A key with
write on *another* service of the same namespace computes the id and `session_close`s
it: every instance of the victim's session is deregistered, on every node.

docs/PROTOCOL.md 2.3a: "Session id. 32 lowercase hex digits: 128 random bits
(`secrets.token_hex(16)`), chosen by the client, or by the node when `session_open`
leaves it out. The id is the capability to renew and close the session: keep it private";
security/authz.py: "The session id is the capability: 128 random bits only its client
knows".  docs/SECURITY.md "What a write key writes": a key that may write `orders` may
deregister other `orders` instances, not `payments` ones.

(The Python client chooses its own random id, so it is not exposed; a client written from
PROTOCOL.md that lets the node choose is.  With F2, a key of another namespace can do the
same through `session_renew`, at a session's first renewal on a node.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import xxhash
from helpers import RawDealer, holds_for
from r23lib import keyed_node, make_keys, reply_text

from meshreg.core.versions import node_tag

ACL = """
[[client]]
name = "orders-app"
key_file = "orders-app.pub"
allow = [{ namespace = "public", group = "*", service = "orders*", access = "write" }]
[[client]]
name = "payments-app"
key_file = "payments-app.pub"
allow = [{ namespace = "public", group = "*", service = "payments*", access = "write" }]
"""


@pytest.mark.timeout(60)
def test_a_node_chosen_session_id_cannot_be_computed_by_another_client(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "orders-app", "payments-app")
    node = keyed_node(tmp_path, ACL, keys)
    victim = attacker = None
    try:
        node.start()
        victim = RawDealer(node.port, keys["payments-app"])
        attacker = RawDealer(node.port, keys["orders-app"])
        opened = victim.call("session_open", namespace="public")  # the node chooses the id
        assert opened["ok"], reply_text(opened)
        sid = opened["result"]["session"]
        r = victim.call("register", namespace="public", group="DEFAULT_GROUP",
                        service="payments", ip="10.5.5.5", port=443, session=sid)  # fmt: skip
        assert r["ok"], reply_text(r)

        # the attacker: what any key may ask, then guesses of the counter
        ping = attacker.call("ping")["result"]
        node_id = attacker.call("cluster")["result"]["node"]
        closed = 0
        for n in range(1, 50):
            guess = xxhash.xxh3_128_hexdigest(
                f"{ping['address']}|{node_tag(node_id)}|{ping['epoch']}|{n}".encode()
            )
            r = attacker.call("session_close", namespace="public", session=guess)
            if r["ok"] and r["result"]["deregistered"]:
                closed += r["result"]["deregistered"]

        def listed() -> list[tuple[str, int]]:
            got = victim.call("instances", namespace="public", group="DEFAULT_GROUP",
                              service="payments", healthy_only=False)  # fmt: skip
            assert got["ok"], reply_text(got)
            return [(i["ip"], i["port"]) for i in got["result"]["instances"]]

        holds_for(
            lambda: listed() == [("10.5.5.5", 443)],
            0.5,
            what=(
                f"payments-app's instance registered, after orders-app (write on orders* "
                f"only) computed the node-chosen session id from ping/cluster and closed it "
                f"({closed} instance(s) deregistered by its session_close)"
            ),
        )
    finally:
        for d in (victim, attacker):
            if d is not None:
                d.close()
        node.cleanup()
