"""A session's digest (core/sessions ``SessionRecord.digest``, docs/PROTOCOL.md 2.3b):
the sum mod 2**64 of model ``session_member_hash`` over the instances the session holds,
kept in step with its index by ``attach``/``detach`` wherever the set changes, and told
with every renewal (review78 F4: a client holding as many but other instances sees it)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import xxhash
from test_session_liveness import SID, SID2, Lone

from meshreg.core.sessions import SessionRecord, Sessions
from meshreg.model import (
    SESSION_DIGEST_MOD,
    InstanceId,
    ServiceKey,
    session_key_hash,
    session_member_hash,
)

# docs/PROTOCOL.md 2.3b's test vector
VECTOR_BYTES = "44454641554c545f47524f5550006f72646572730031302e302e302e310038300044454641554c54"
VECTOR_BYTES_TWO = (
    "44454641554c545f47524f5550006f72646572730031302e302e302e320038300044454641554c54"
)
VECTOR_ONE = 17659682522729597483  # DEFAULT_GROUP/orders 10.0.0.1:80 DEFAULT
VECTOR_TWO = 17926969740640806691  # ... 10.0.0.2:80 DEFAULT
VECTOR_SUM = 17139908189660852558  # both: the sum wraps past 2**64


def recount(sess: SessionRecord) -> int:
    return (
        sum(session_key_hash(key, iid) for key, ids in sess.instances.items() for iid in ids)
        % SESSION_DIGEST_MOD
    )


def test_the_documented_vector() -> None:
    layout = b"DEFAULT_GROUP\x00orders\x0010.0.0.1\x0080\x00DEFAULT"
    assert layout.hex() == VECTOR_BYTES
    assert session_member_hash("DEFAULT_GROUP", "orders", "10.0.0.1", 80, "DEFAULT") == VECTOR_ONE
    assert session_member_hash("DEFAULT_GROUP", "orders", "10.0.0.2", 80, "DEFAULT") == VECTOR_TWO
    assert VECTOR_ONE + VECTOR_TWO >= SESSION_DIGEST_MOD
    assert (VECTOR_ONE + VECTOR_TWO) % SESSION_DIGEST_MOD == VECTOR_SUM
    key = ServiceKey("public", "DEFAULT_GROUP", "orders")
    assert session_key_hash(key, InstanceId("10.0.0.1", 80, "DEFAULT")) == VECTOR_ONE
    # the namespace is the session's, not hashed
    other_ns = ServiceKey("dev", "DEFAULT_GROUP", "orders")
    assert session_key_hash(other_ns, InstanceId("10.0.0.1", 80, "DEFAULT")) == VECTOR_ONE


def test_attach_and_detach_keep_the_digest_equal_to_a_recount() -> None:
    rng = random.Random(7901)
    sessions = Sessions()
    keys = [ServiceKey("public", g, s) for g in ("g", "DEFAULT_GROUP") for s in ("a", "b", "ü")]
    ids = [InstanceId(f"10.0.0.{i}", p, c) for i in range(4) for p in (80, 8080) for c in "XY"]
    sids = [SID, SID2]
    for step in range(3000):
        sid, key, iid = rng.choice(sids), rng.choice(keys), rng.choice(ids)
        if rng.random() < 0.55:  # (attaching one already held changes nothing)
            sessions.attach(sid, key, iid, float(step), rng.random() < 0.9)
        else:  # (detaching one not held changes nothing)
            sessions.detach(sid, key, iid)
        for s in sessions:
            assert s.digest == recount(s), step
            assert s.count == sum(len(v) for v in s.instances.values())
    held = sessions.get(SID)
    assert held is not None and held.count and held.digest
    for key, members in list(held.instances.items()):
        for iid in list(members):
            sessions.detach(SID, key, iid)
    assert (held.count, held.digest) == (0, 0)
    assert sessions.drop(SID2) is not None and sessions.get(SID2) is None
    sessions.attach(SID2, keys[0], ids[0], 1.0, True)  # back: a fresh record, from nothing
    again = sessions.get(SID2)
    assert again is not None and again.digest == session_key_hash(keys[0], ids[0])


def test_a_renewal_tells_the_digest_of_what_the_node_holds() -> None:
    """Through the node: registrations, a move to another session, a deregistration,
    an eviction and a close all leave the renewal's digest equal to a recount."""
    n = Lone()
    n.handle("session_open", session=SID)

    def told() -> int:
        answer = n.handle("session_renew", session=SID)
        sess = n.node.store.sessions.get(SID)
        assert sess is not None and answer["digest"] == recount(sess)
        assert answer["instances"] == sess.count
        return int(answer["digest"])

    assert told() == 0
    n.register("orders", "10.0.0.1")
    n.register("orders", "10.0.0.2")
    assert told() == VECTOR_SUM
    n.register("orders", "10.0.0.2")  # a repeat: the same set
    assert told() == VECTOR_SUM
    n.register("payments", "10.0.0.3")
    n.register("orders", "10.0.0.2", SID2)  # moved to another session
    three = session_member_hash("DEFAULT_GROUP", "payments", "10.0.0.3", 80, "DEFAULT")
    assert told() == (VECTOR_ONE + three) % SESSION_DIGEST_MOD
    n.handle("deregister", service="payments", ip="10.0.0.3", port=80)
    assert told() == VECTOR_ONE
    n.register("orders", "10.0.0.1", None)  # out of any session: its own beats
    assert told() == 0
    n.register("orders", "10.0.0.4")
    n.run(10.0, renew=SID2)  # SID silent: its instance is evicted
    assert n.healthy("orders").get("10.0.0.4") is None
    assert told() == 0
    n.register("orders", "10.0.0.4")
    assert n.handle("session_close", session=SID)["deregistered"] == 1
    assert n.node.store.sessions.get(SID) is None
    assert n.handle("session_renew", session=SID)["digest"] == 0  # opened again: empty


def test_the_protocol_doc_shows_this_vector() -> None:
    """docs/PROTOCOL.md 2.3b's table: each row's bytes hash to the value it shows."""
    doc = (Path(__file__).parents[2] / "docs" / "PROTOCOL.md").read_text()
    rows = re.findall(r"\| `([0-9a-f]{40,})` \| (\d+)", doc)
    assert rows == [(VECTOR_BYTES, str(VECTOR_ONE)), (VECTOR_BYTES_TWO, str(VECTOR_TWO))]
    for layout, value in rows:
        assert xxhash.xxh64_intdigest(bytes.fromhex(layout)) == int(value)
    assert f"= {VECTOR_SUM} (the sum wraps)" in doc.replace("\n", " ")
