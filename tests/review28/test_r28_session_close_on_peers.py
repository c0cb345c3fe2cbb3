"""review28 F4: `session_close` forgets the session only on the node that received it;
every other node keeps it, known and empty, until `empty_session_after` (10 s).

PROTOCOL.md 2.3a/2.3c: `session_close` "deregisters every instance of the session ... and
forgets it"; `session_renew` says `known: false` "when the node did not know the session
(it restarted, or the session expired and was forgotten)", and "in a cluster a renewal may
go to any node".  Seen (3 nodes, doc_client): open + register through node 1, close through
node 2 -> {"deregistered": 1}; a renewal through node 0 right after ->
{"instances": 0, "known": true, ...}; node 0's stats.sessions.count fell only 10-14 s
later (stats.sessions.forgotten).  A client that follows 2.3a rule 2 cannot tell a closed
session from a live one there, and each closed session holds a slot of every peer's
`max_sessions` table (and of its client's share) for 10 s after its close.
"""

from __future__ import annotations

import secrets
import time

import pytest
from r28lib import DocClient, all_up, cluster, wait_until


@pytest.mark.timeout(120)
def test_a_session_closed_on_one_node_is_not_known_on_the_others(tmp_path) -> None:
    nodes = cluster(3, str(tmp_path))
    clients: list[DocClient] = []
    try:
        clients = [DocClient([n.address]) for n in nodes]
        wait_until(lambda: all_up(clients, 3), 30, what="3 members up and ready")
        sid = secrets.token_hex(16)
        clients[1].call("session_open", session=sid)
        clients[1].call("register", service="orders", ip="10.0.0.5", port=8080, session=sid)
        wait_until(
            lambda: clients[0].call("instances", service="orders")["instances"], 5,
            what="the registration replicated to node 0",
        )  # fmt: skip
        closed = clients[2].call("session_close", session=sid)
        assert closed == {"deregistered": 1}, closed
        t = time.monotonic()
        wait_until(
            lambda: not clients[0].call("instances", service="orders")["instances"], 5,
            what="the close's deregistration replicated to node 0",
        )  # fmt: skip
        renew = clients[0].call("session_renew", session=sid)
        assert renew["known"] is False, (
            f"{time.monotonic() - t:.2f}s after the close (made on another node) node 0 still "
            f"knows the closed session: {renew}"
        )
    finally:
        for c in clients:
            c.close()
        for n in nodes:
            n.cleanup()
