"""review13: the per-client session share (``max_sessions_per_client``) can be walked
around by ``register`` naming fresh session ids (sessions a register creates "count in no
share", PROTOCOL.md 2.3a), so ONE key fills the node's whole session table, and keeps it
after deregistering (an empty session that is renewed is never forgotten).

docs/SECURITY.md "Sessions per client" says: "With keys: a write key holds at most its
share per node it talks to ... so it takes 16 stolen or misbehaving keys at their full
share to fill a node's table".
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from helpers import NodeProcess, raw_request, wait_until
from r13util import Dealer, Keys, stats

MAX_SESSIONS = 32  # a share of 2 per client


def keyed_node(tmp_path: Path, start_node: Callable[..., NodeProcess]) -> tuple[Keys, NodeProcess]:
    keys = Keys(tmp_path)
    config = tmp_path / "node.toml"
    config.write_text(f"[limits]\nmax_sessions = {MAX_SESSIONS}\n")
    node = start_node(
        "--key", keys.key("cluster"), "--acl", str(keys.acl), "--config", str(config),
        curve=keys.curve("cluster"),
    )  # fmt: skip
    return keys, node


def _register(i: int, session: str) -> tuple[str, dict]:
    fields = {"namespace": "public", "service": "flood", "ip": "10.9.0.1", "port": 1000 + i}
    return "register", {**fields, "session": session}


def test_one_key_fills_the_session_table_through_register(
    tmp_path: Path, start_node: Callable[..., NodeProcess]
) -> None:
    keys, node = keyed_node(tmp_path, start_node)
    app = Dealer(node.port, keys.curve("app"))
    other = Dealer(node.port, keys.curve("other"))
    try:
        # The share holds: a third session_open of this key is refused.
        opens = [app.call("session_open", namespace="public") for _ in range(3)]
        assert [r["ok"] for r in opens] == [True, True, False]
        # ... but a register naming a new session id opens one with no share counted.
        sessions = [secrets.token_hex(16) for _ in range(MAX_SESSIONS)]
        replies = app.pipeline([_register(i, s) for i, s in enumerate(sessions)])
        accepted = [s for s, r in zip(sessions, replies, strict=True) if r["ok"]]
        # Deregister them all: the sessions are now empty; renewing keeps them
        # (a renew of a known session is not a new session, so no share applies).
        app.pipeline(
            [
                ("deregister", {"namespace": "public", "service": "flood", "ip": "10.9.0.1",
                                "port": 1000 + i})
                for i, s in enumerate(sessions) if s in accepted
            ]
        )  # fmt: skip
        renewed = app.pipeline(
            [("session_renew", {"namespace": "public", "session": s}) for s in accepted]
        )
        held = stats(node, keys.curve("cluster"))["sessions"]["count"]
        # another key, holding no session at all, asks for its first one:
        first = other.call("session_open", namespace="public")
        assert first["ok"], (
            f"key 'app' (share {MAX_SESSIONS // 16}) holds {held} of {MAX_SESSIONS} sessions "
            f"({len(accepted)} opened by register, {sum(r['ok'] for r in renewed)} kept empty "
            f"by renewals); key 'other' is refused its first session: {first}"
        )
    finally:
        app.close()
        other.close()


def test_a_register_forwarded_to_the_owner_is_held_to_the_share_where_it_arrived(
    tmp_path: Path, start_cluster: Callable[..., list[NodeProcess]]
) -> None:
    """The gap left by the fix above: a register naming a new session id that the node
    forwards to the service's owner made its session there in no share. Two nodes
    without keys (a client is its connection), a share of 2: the third fresh session
    through A, for services B owns, is refused at A."""
    from meshreg import ServiceKey
    from meshreg.core.mapping import responsible_node

    config = tmp_path / "node.toml"
    config.write_text(f"[limits]\nmax_sessions = {MAX_SESSIONS}\n")
    a, b = start_cluster(2, "--config", str(config))
    members = sorted([a.address, b.address])

    def formed() -> bool:
        reply = raw_request(a.port, {"v": 1, "id": 1, "op": "cluster"}, 2.0)["result"]
        return reply["ready"] and sum(m["state"] == "up" for m in reply["members"]) == 2

    wait_until(formed, 15, what="A to see B up")
    service = next(
        f"far{i}"
        for i in range(1000)
        if responsible_node(ServiceKey("public", "DEFAULT_GROUP", f"far{i}"), members) == b.address
    )
    app = Dealer(a.port)
    try:
        replies = []
        for i in range(3):
            fields = {"service": service, "ip": "10.9.0.2", "port": 2000 + i,
                      "session": secrets.token_hex(16)}  # fmt: skip
            replies.append(app.call("register", **fields))
    finally:
        app.close()
    assert [r["ok"] for r in replies] == [True, True, False], replies
    assert "max_sessions_per_client" in replies[2]["error"]["message"]
    assert stats(a)["forwarded"] >= 2  # the two admitted went to B
