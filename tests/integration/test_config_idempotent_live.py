"""Idempotent config writes on 3 real nodes (docs/PROTOCOL.md 2.15, "Re-sending a
write"): one request id sent through every node makes one version, each answer carrying
its revision; after the owner is SIGKILLed, a re-send to a survivor answers the original
version (success, not CONFLICT for a compare-and-set), never a second one."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
from test_configs import Conn, config_ready, owner_of, start_nodes

pytestmark = pytest.mark.timeout(120)

RID1 = "idem-0123456789abcdef0001"
RID2 = "idem-0123456789abcdef0002"


def test_the_same_request_id_on_every_node_and_after_the_owner_died(tmp_path: Path) -> None:
    nodes = start_nodes(3, tmp_path)
    conns: list[Conn] = []
    try:
        for node in nodes:
            wait_until(lambda n=node: config_ready(n), 15, what="config plane ready")
        conns = [Conn(n.port) for n in nodes]
        i = owner_of(nodes, "idem.txt")
        order = [j for j in range(3) if j != i] + [i]  # through a non-owner first
        first = conns[order[0]].ok("config_publish", data_id="idem.txt", content="v1",
                                   if_revision=0, request_id=RID1)  # fmt: skip
        for j in order:  # the same write again, through every node: the same answer
            again = conns[j].ok("config_publish", data_id="idem.txt", content="v1",
                                if_revision=0, request_id=RID1)  # fmt: skip
            assert again == first
        for conn in conns:
            history = conn.ok("config_history", data_id="idem.txt")["items"]
            assert [h["revision"] for h in history] == [1], history
        dedup = sum(c.ok("stats")["config"]["deduplicated"] for c in conns)
        assert dedup == 3

        second = conns[i].ok("config_publish", data_id="idem.txt", content="v2",
                             if_revision=1, request_id=RID2)  # fmt: skip
        nodes[i].signal(signal.SIGKILL)  # as if the client never read that answer
        conns[i].close()
        survivors = [conns[j] for j in order[:2]]

        def resend(conn: Conn) -> Any:
            reply = conn.call("config_publish", data_id="idem.txt", content="v2",
                              if_revision=1, request_id=RID2)  # fmt: skip
            if not reply["ok"]:  # the owner not seen down yet: outcome unknown, re-send
                assert reply["error"]["name"] == "UNAVAILABLE", reply
                return None
            return reply["result"]

        for conn in survivors:
            result = wait_until(lambda c=conn: resend(c), 20, interval=0.2, what="a re-send")
            assert (result["revision"], result["origin"], result["md5"]) == (
                2, second["origin"], second["md5"])  # fmt: skip
            history = conn.ok("config_history", data_id="idem.txt")["items"]
            assert [h["revision"] for h in history] == [2, 1], history

        # a new request id is a new write: CAS on revision 1 now conflicts.  The re-sends
        # above were answered from the survivors' dedup tables, so they may finish before
        # the survivors see the owner down; until then this write is forwarded to the dead
        # owner and answered UNAVAILABLE (outcome unknown): re-send it with its request id,
        # as that answer says (it failed 1 run in 3 without this, on a quiet machine).
        def new_write() -> tuple[str, str] | None:
            name, message = survivors[0].error(
                "config_publish", data_id="idem.txt", content="v3", if_revision=1,
                request_id="idem-new-write-000003",
            )  # fmt: skip
            return None if name == "UNAVAILABLE" else (name, message)

        name, message = wait_until(new_write, 20, interval=0.2, what="the new write's answer")
        assert name == "CONFLICT" and "revision 2" in message, (name, message)
    finally:
        for conn in conns:
            conn.close()
        for node in nodes:
            node.cleanup()
