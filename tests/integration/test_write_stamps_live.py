"""A register's and a deregister's answer tell the version stamp the write left, and a
write's ``after`` (the stamp the client was told for its previous write of the instance)
puts the new write's stamp above it (PROTOCOL.md 2.1 "After"; review72 F1: a register a
node with a clock ahead stamped won over the client's later deregistration).  Against a
real node process, over its ROUTER: the wire, the checks and the answers."""

from __future__ import annotations

import time

from helpers import NodeProcess, raw_request

from meshreg import Client
from meshreg.core.versions import TAG_BITS, stamp_seconds

INST = {"service": "stamps", "ip": "10.72.0.1", "port": 1}


def call(node: NodeProcess, op: str, **fields: object) -> dict:  # type: ignore[type-arg]
    return raw_request(node.port, {"v": 1, "id": 1, "op": op, **fields}, 5.0)


def listed(node: NodeProcess) -> list[str]:
    reply = call(node, "instances", service="stamps")
    return [f"{i['ip']}:{i['port']}" for i in reply["result"]["instances"]]


def test_writes_answer_their_stamp_and_after_orders_the_next_write(node: NodeProcess) -> None:
    first = call(node, "register", **INST)
    assert first["ok"] and set(first["result"]) == {"stamp"}, first
    stamp = first["result"]["stamp"]
    assert type(stamp) is int and abs(stamp_seconds(stamp) - time.time()) < 30
    again = call(node, "register", **INST)  # a repeat leaves the record as it was
    assert again["result"] == {"stamp": stamp}, again
    # a stamp told by a node whose clock is 0.5 s ahead: the next write goes above it
    ahead = stamp + (500_000 << TAG_BITS)
    gone = call(node, "deregister", **INST, after=ahead)
    assert gone["ok"] and gone["result"]["stamp"] > ahead, (gone, ahead)
    assert listed(node) == []
    # ... and every write after it on this node too (a hybrid clock only grows)
    back = call(node, "register", **INST)
    assert back["result"]["stamp"] > gone["result"]["stamp"]
    # 10 s ahead, further than any member's clock (a lone node: its own, plus the 1 s
    # margin): observed up to that ceiling only, so that a client cannot drag the node's
    # clock (and every stamp of the cluster) ahead; the write applies
    far = back["result"]["stamp"] + (10_000_000 << TAG_BITS)
    gone2 = call(node, "deregister", **INST, after=far)
    assert gone2["ok"] and gone2["result"]["stamp"] < far, gone2
    assert stamp_seconds(gone2["result"]["stamp"]) < time.time() + 2.0
    assert listed(node) == []
    # beyond what a node accepts from a peer (60 s ahead): not observed at all
    beyond = gone2["result"]["stamp"] + (3600_000_000 << TAG_BITS)
    back2 = call(node, "register", **INST, after=beyond)
    assert back2["ok"] and stamp_seconds(back2["result"]["stamp"]) < time.time() + 2.0


def test_a_bad_after_is_refused_and_changes_nothing(node: NodeProcess) -> None:
    assert call(node, "register", **INST)["ok"]
    for bad in ("1", -1, 2**63, 1.5, [1]):
        reply = call(node, "deregister", **INST, after=bad)
        assert not reply["ok"], (bad, reply)
        assert reply["error"]["name"] == "INVALID_ARGUMENT", reply
        assert "'after'" in reply["error"]["message"], reply
    assert listed(node) == ["10.72.0.1:1"]  # refused: nothing changed


def test_the_client_carries_the_stamp_it_was_told(node: NodeProcess) -> None:
    """Through the Python client: its register's answer is kept as the instance's stamp
    (its next write's ``after``); the instance registers, deregisters and registers again."""
    with Client([node.address], handle_sigterm=False) as c:
        c.register("stamps", "10.72.0.2", 2)
        stamps = c._agent.core._stamps  # (the session's record: what the next write sends)
        (told,) = stamps.values()
        assert type(told) is int
        c.deregister("stamps", "10.72.0.2", 2)
        assert max(stamps.values()) > told  # the deregister's stamp, above the register's
        c.register("stamps", "10.72.0.2", 2)
        assert listed(node) == ["10.72.0.2:2"]
