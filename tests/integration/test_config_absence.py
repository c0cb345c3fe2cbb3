"""A config node stopped (SIGSTOP) longer than the peer timeout, then resumed: real processes.

The others took it for down and acknowledged writes without it.  On its first turn back
it knows (the loop's stall check, before it reads any socket), so: config reads wait
until it caught up with a majority again (``ConfigPlane.rearm``), and a write that waited
in its socket meanwhile is judged against a majority's versions, not its own stale view
(``ConfigReplicator.forget_caught_up``).  Found by an outside review (review11): before,
a fresh client's first reads on the resumed node got the old revisions and "absent" for a
data id created during the pause, and a queued compare-and-set write that every other
node would refuse was stored as a revision on every node.  The seeded simulation checks
the same (tests/sim/test_config_faults_sim.py, ``check_fresh_after_pause``).
"""

from __future__ import annotations

import signal
from typing import Any

import msgpack
import pytest
import zmq
from helpers import HOST, NodeProcess, wait_until
from test_configs import Conn, config_ready, start_nodes

from meshreg.configcenter.model import ConfigKey
from meshreg.configcenter.replication import responsible_config_node

pytestmark = pytest.mark.timeout(120)


def _down_at(conn: Conn, address: str) -> bool:
    members = conn.ok("cluster")["members"]
    return any(m["address"] == address and m["state"] == "down" for m in members)


def _owned_by(node: NodeProcess, nodes: list[NodeProcess], prefix: str) -> str:
    members = sorted(n.address for n in nodes)
    return next(
        f"{prefix}{k}"
        for k in range(1000)
        if responsible_config_node(ConfigKey("public", "DEFAULT_GROUP", f"{prefix}{k}"), members)
        == node.address
    )


def test_a_resumed_node_answers_no_read_older_than_what_was_acknowledged(tmp_path: Any) -> None:
    nodes = start_nodes(3, tmp_path)  # test timings: --peer-timeout 1
    conns: list[Conn] = []
    try:
        for node in nodes:
            wait_until(lambda n=node: config_ready(n), 15, what="config plane ready")
        a, paused = nodes[0], nodes[1]
        ca, cp = Conn(a.port), Conn(paused.port)
        conns += [ca, cp]
        ids = [f"p{k}" for k in range(8)]
        for d in ids:
            ca.ok("config_publish", data_id=d, content="before")
        for d in ids:  # the node to pause holds every first version
            wait_until(lambda d=d: cp.call("config_get", data_id=d).get("ok"), 10, what=d)
        paused.signal(signal.SIGSTOP)
        try:
            wait_until(lambda: _down_at(ca, paused.address), 15, what="the paused node down")
            acked = {d: ca.ok("config_publish", data_id=d, content="during")["revision"]
                     for d in ids}  # fmt: skip
            ca.ok("config_publish", data_id="created-during", content="new")
        finally:
            paused.signal(signal.SIGCONT)
        fresh = Conn(paused.port)  # a fresh client's first reads, right away
        conns.append(fresh)
        stale, refused = [], 0
        for d in [*ids, "created-during"]:
            reply = fresh.call("config_get", data_id=d)
            if reply["ok"] and reply["result"]["content"] == "before":
                stale.append((d, reply["result"]["revision"], acked.get(d)))
            elif not reply["ok"] and reply["error"]["name"] == "NOT_FOUND":
                stale.append((d, "NOT_FOUND", "created during the pause"))
            elif not reply["ok"]:
                assert reply["error"]["name"] == "UNAVAILABLE", reply
                assert "after this node was stopped for" in reply["error"]["message"], reply
                refused += 1
        assert not stale, f"stale reads after SIGCONT (data id, served, acknowledged): {stale}"
        # ... and it does serve again, the new versions, once caught up
        wait_until(lambda: config_ready(paused), 15, what="the resumed node ready again")
        for d in ids:
            assert fresh.ok("config_get", data_id=d)["content"] == "during"
        assert fresh.ok("config_get", data_id="created-during")["content"] == "new"
        stats = fresh.ok("stats")["config"]
        assert stats["sync_rearms"] == 1, stats
        print(f"reads refused while catching up: {refused} of {len(ids) + 1}")
    finally:
        for c in conns:
            c.close()
        for node in nodes:
            node.cleanup()


@pytest.mark.parametrize("case", ["cas", "resent"])
def test_a_write_queued_at_a_stopped_owner_is_judged_against_the_others_writes(
    tmp_path: Any, case: str
) -> None:
    """``cas``: a compare-and-set on revision 1 waits in the stopped owner's socket while
    the others go on to revision 3: CONFLICT, stored nowhere.  ``resent``: a publish waits
    there while the client's re-send of it (same request id) is acknowledged by another
    node, then a later write: the queued original is answered with the re-send's version,
    never made a second time (found by the fault simulation, config seed 272 of 300)."""
    nodes = start_nodes(3, tmp_path)  # test timings: --peer-timeout 1
    conns: list[Conn] = []
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    try:
        for node in nodes:
            wait_until(lambda n=node: config_ready(n), 15, what="config plane ready")
        owner = nodes[1]
        data_id = _owned_by(owner, nodes, "z")
        ca = Conn(nodes[0].port)
        conns.append(ca)
        v1 = ca.ok("config_publish", data_id=data_id, content="v1")
        assert v1["revision"] == 1 and v1["origin"] == owner.address
        rid = f"absence-{case}-0001"
        body: dict[str, Any] = {"v": 1, "id": 7, "op": "config_publish", "data_id": data_id,
                                "content": "queued", "request_id": rid}  # fmt: skip
        if case == "cas":
            body["if_revision"] = 1
        owner.signal(signal.SIGSTOP)
        try:
            raw.connect(f"tcp://{HOST}:{owner.port}")
            raw.send_multipart([b"", msgpack.packb(body)])  # waits in the stopped owner
            wait_until(lambda: _down_at(ca, owner.address), 15, what="the owner down")
            if case == "cas":
                for rev in (2, 3):
                    got = ca.ok("config_publish", data_id=data_id, content=f"acked-{rev}",
                                if_revision=rev - 1)  # fmt: skip
                    assert got["revision"] == rev
            else:
                got = ca.ok("config_publish", data_id=data_id, content="queued",
                            request_id=rid, resend=True)  # fmt: skip
                assert got["revision"] == 2
                # and a later write: the re-send's version is below the top revision
                assert ca.ok("config_publish", data_id=data_id, content="after",
                             if_revision=2)["revision"] == 3  # fmt: skip
        finally:
            owner.signal(signal.SIGCONT)
        assert raw.poll(15_000), "the queued write was never answered"
        reply = msgpack.unpackb(raw.recv_multipart()[-1], raw=False)
        if case == "cas":
            assert not reply["ok"] and reply["error"]["name"] == "CONFLICT", reply
            assert "3" in reply["error"]["message"], reply  # names the current revision
            want_top, want_content = 3, "acked-3"
        else:
            assert reply["ok"] and reply["result"]["revision"] == 2, reply
            want_top, want_content = 3, "after"
        for node in nodes:
            conn = Conn(node.port)
            conns.append(conn)
            wait_until(lambda c=conn: c.call("config_get", data_id=data_id).get("ok"), 15,
                       what=f"reads on {node.address}")  # fmt: skip
            current = conn.ok("config_get", data_id=data_id)
            assert (current["revision"], current["content"]) == (want_top, want_content)
            history = conn.ok("config_history", data_id=data_id)["items"]
            queued = [(h["revision"], h["origin"]) for h in history if h["content"] == "queued"]
            assert len(queued) == (0 if case == "cas" else 1), (node.address, history)
    finally:
        raw.close()
        for c in conns:
            c.close()
        for node in nodes:
            node.cleanup()
