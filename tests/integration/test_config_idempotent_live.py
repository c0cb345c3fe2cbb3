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
        # a new request id is a new write: CAS on revision 1 now conflicts (once the node
        # sees the owner down: the re-sends above are answered from its own store, so they
        # may come before that, and a write forwarded to the dead owner is "outcome unknown")
        wait_until(lambda: survivors[0].ok("stats")["config"]["members_up"] == 2, 10,
                   what="the owner seen down")  # fmt: skip
        name, message = survivors[0].error(
            "config_publish", data_id="idem.txt", content="v3", if_revision=1,
            request_id="idem-new-write-000003",
        )  # fmt: skip
        assert name == "CONFLICT" and "revision 2" in message, (name, message)
    finally:
        for conn in conns:
            conn.close()
        for node in nodes:
            node.cleanup()


RID_LOST = "idem-lost-answer-0000000003"
RID_NEXT = "idem-next-write-00000000004"


def _placed(nodes: list[Any], data_id: str) -> tuple[int, int, int]:
    """The data id's owner among all three (b), among the other two (w), and the third (s)."""
    from meshreg.configcenter.model import ConfigKey
    from meshreg.configcenter.replication import responsible_config_node

    addresses = [n.address for n in nodes]
    key = ConfigKey("public", "DEFAULT_GROUP", data_id)
    b = addresses.index(responsible_config_node(key, addresses))
    w = addresses.index(responsible_config_node(key, [a for a in addresses if a != addresses[b]]))
    return b, w, 3 - b - w


def test_a_resend_to_a_new_owner_that_lacks_the_version_is_checked_with_a_majority(
    tmp_path: Path,
) -> None:
    """The re-send check with real processes (docs/CONFIG.md, "A re-send to an owner that
    moved on"). B owns the data id when all three are up; with B down, W owns it and
    writes V (request id X) at revision 1, acknowledged by W and S, whose answer the
    client never reads, then another write at revision 2. W is SIGKILLed; B comes back
    (empty: it never held the data id) and is the owner again. The client re-sends X to
    B: B's catch-up alone would fetch only revision 2, so without asking the majority for
    X it would write V a second time at revision 3. It answers V at revision 1 instead,
    and no node ever holds X at two revisions (B's start-up sync may bring V first: then
    B answers from its own store, the same answer)."""
    nodes = start_nodes(3, tmp_path)
    conns: dict[int, Conn] = {}
    try:
        for node in nodes:
            wait_until(lambda n=node: config_ready(n), 15, what="config plane ready")
        data_id = "lost-answer.txt"
        b, w, s = _placed(nodes, data_id)
        nodes[b].signal(signal.SIGKILL)
        conns = {j: Conn(nodes[j].port) for j in (w, s)}
        for j in (w, s):
            wait_until(lambda c=conns[j]: c.ok("stats")["config"]["members_up"] == 2, 10,
                       what="B seen down")  # fmt: skip
        lost = conns[w].ok("config_publish", data_id=data_id, content="v1", if_revision=0,
                           request_id=RID_LOST)  # fmt: skip  # the client never reads this
        assert lost["revision"] == 1 and lost["origin"] == nodes[w].address
        conns[w].ok("config_publish", data_id=data_id, content="v2", if_revision=1,
                    request_id=RID_NEXT)  # fmt: skip
        nodes[w].signal(signal.SIGKILL)
        conns.pop(w).close()
        nodes[b].start()
        conns[b] = Conn(nodes[b].port)

        def resend() -> Any:
            reply = conns[b].call("config_publish", data_id=data_id, content="v1",
                                  if_revision=0, request_id=RID_LOST, resend=True)  # fmt: skip
            if not reply["ok"]:  # B does not see a majority yet: nothing written, again
                assert reply["error"]["name"] == "UNAVAILABLE", reply
                return None
            return reply["result"]

        again = wait_until(resend, 20, interval=0.05, what="the re-send answered by B")
        assert (again["revision"], again["origin"], again["md5"]) == (
            1, lost["origin"], lost["md5"])  # fmt: skip
        stats = conns[b].ok("stats")["config"]
        print("re-send path:", {k: stats[k] for k in ("request_checks", "deduplicated")})

        def history(conn: Conn) -> Any:  # B answers reads once its ready gate opens
            reply = conn.call("config_history", data_id=data_id)
            return [(h["revision"], h["content"]) for h in reply["result"]["items"]] if reply[
                "ok"] else None  # fmt: skip

        for j in (b, s):
            wait_until(lambda c=conns[j]: history(c) == [(2, "v2"), (1, "v1")], 15,
                       what="both revisions, once each, on the node")  # fmt: skip
        # answered as a re-send (``deduplicated``), never applied as a new write; whether B
        # asked the majority (``request_checks``) or its start-up sync had already brought V
        # from S depends on which reached B first (notes: 8 of 10 runs asked the majority)
        assert stats["deduplicated"] >= 1, stats
    finally:
        for conn in conns.values():
            conn.close()
        for node in nodes:
            node.cleanup()
