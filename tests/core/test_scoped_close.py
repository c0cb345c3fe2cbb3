"""A session's close removes what the session held, nothing a new session wrote since.

A close is applied where it is received, with a fresh stamp.  On a node whose table
was stale (back from a stall, across a partition, its clock ahead), that stamp was
newer than a registration of the same address by a new process elsewhere, and the
close's tombstone removed the new registration from every node (review20 F2's
open remainder).  The close's tombstone is now scoped (core/store
``_written_before``): it removes the closed session's copies however new, and other
copies only as old as the one the closing node held.  Fake clock, real wire.
"""

from __future__ import annotations

from typing import Any

import msgpack
from answers import served_map
from hypothesis import given, settings
from hypothesis import strategies as st

from meshreg.core.effects import Broadcast, InstanceView
from meshreg.core.health import HealthPolicy
from meshreg.core.registry import RegistryNode
from meshreg.core.store import RegistryStore
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.messages import parse_request
from meshreg.wire.peer import ReplicatedDelta, decode_replication, encode_delta

POLICY = HealthPolicy(check_interval=1.0, unhealthy_after=15.0, evict_after=30.0)
OLD = "0123456789abcdef0123456789abcdef"  # the process that shuts down
NEW = "fedcba9876543210fedcba9876543210"  # the process that took its address
KEY = ServiceKey("public", "DEFAULT_GROUP", "orders")
X = InstanceId("10.0.0.1", 80, "DEFAULT")


class Node:
    """A registry node whose deltas are published (as a cluster member's are)."""

    def __init__(self, address: str, epoch: int) -> None:
        self.now = 1.0
        self.node = RegistryNode(POLICY, epoch, 0.0, address, detect_stalls=False, node_id=address)
        self.node.outbox.peers = True

    def handle(self, op: str, **fields: Any) -> Any:
        body = msgpack.packb({"v": 1, "id": 1, "op": op, **fields})
        return served_map(self.node, parse_request(body), self.now)

    def register(self, session: str, ip: str = X.ip) -> None:
        self.handle("register", service="orders", ip=ip, port=80, session=session)

    def deltas(self) -> list[ReplicatedDelta]:
        """The deltas published since the last call, through the wire both ways."""
        out = []
        for eff in self.node.take_effects():
            if type(eff) is Broadcast and type(eff.message) is ReplicatedDelta:
                decoded = decode_replication(encode_delta(eff.message))
                assert type(decoded) is ReplicatedDelta
                out.append(decoded)
        return out

    def merge(self, deltas: list[ReplicatedDelta]) -> None:
        for d in deltas:
            p = d.payload
            self.node.store.merge(
                p.key, p.upserts, p.removals, self.now, p.settings, scopes=p.scopes
            )

    def holder(self, ip: str = X.ip) -> str | None:
        """The session of the record of ``ip`` here (None: not held)."""
        svc = self.node.store.services.get(KEY)
        rec = svc.instances.get(InstanceId(ip, 80, "DEFAULT")) if svc is not None else None
        return None if rec is None else (rec.session or "beats")


def test_a_close_on_a_stale_node_spares_a_new_sessions_registration() -> None:
    stale, owner = Node("10.0.1.1:7800", 1), Node("10.0.1.2:7800", 2)
    stale.register(OLD)
    owner.merge(stale.deltas())  # both hold the old process's record
    owner.now = 5.0
    owner.register(NEW)  # a new process on the same address; the stale node never hears
    registered = owner.deltas()
    stale.now = 10.0  # the close is applied later, with a newer stamp
    assert stale.handle("session_close", session=OLD) == {"deregistered": 1}
    closed = stale.deltas()
    assert closed and closed[0].payload.scopes == ((X, OLD, closed[0].payload.scopes[0][2]),)
    owner.merge(closed)
    assert owner.holder() == NEW  # before: removed (the close's stamp was the newer)
    stale.merge(registered)  # the new registration arrives late: it comes back
    assert stale.holder() == NEW


def test_a_close_removes_the_sessions_copies_the_closing_node_had_not_seen() -> None:
    stale, owner = Node("10.0.1.1:7800", 1), Node("10.0.1.2:7800", 2)
    stale.register(OLD)
    owner.merge(stale.deltas())
    owner.now = 5.0
    owner.handle(
        "register", service="orders", ip=X.ip, port=80, session=OLD, metadata={"v": "2"}
    )  # the same session updated it: the stale node missed it
    updated = owner.deltas()
    stale.now = 10.0
    stale.handle("session_close", session=OLD)
    owner.merge(stale.deltas())
    assert owner.holder() is None  # the closed session's newer copy is removed too
    stale.merge(updated)  # and its late copy stays dead
    assert stale.holder() is None


def test_an_unscoped_deregistration_still_outranks_every_older_copy() -> None:
    stale, owner = Node("10.0.1.1:7800", 1), Node("10.0.1.2:7800", 2)
    stale.register(OLD)
    owner.merge(stale.deltas())
    owner.now = 5.0
    owner.register(NEW)
    stale.now = 10.0
    stale.handle("deregister", service="orders", ip=X.ip, port=80)
    owner.merge(stale.deltas())
    assert owner.holder() is None  # a deregistration names the address, not a session


# -- the join: any order, any repetition, one exchange ----------------------------------
SESSIONS = (None, OLD, NEW)
STAMPS = st.integers(min_value=1, max_value=9)


def _session_of(version: int) -> str | None:
    return SESSIONS[version % 3]  # one write, one session (a stamp is one write)


RECORDS = st.builds(lambda v, extra: ("record", v, v + extra), STAMPS, st.integers(0, 3))
TOMBS = st.builds(
    lambda v, a, scoped, back: ("tomb", v, a, scoped, max(0, v - back)),
    st.integers(0, 9),
    st.integers(0, 9),
    st.booleans(),
    st.integers(0, 4),
)


def _view(version: int, alive: int) -> InstanceView:
    return InstanceView(
        X.ip, X.port, X.cluster, 1.0, True, True, {}, version, alive, 0, _session_of(version)
    )


def _apply(store: RegistryStore, item: tuple[Any, ...]) -> None:
    if item[0] == "record":
        store.merge(KEY, [_view(item[1], item[2])], (), 0.0)
        return
    _, v, a, scoped, base = item
    scope = _session_of(base) if scoped else None
    scopes = ((X, scope, base),) if scope is not None and v else ()
    store.merge(KEY, (), [(X, v, a)], 0.0, scopes=scopes)


def _state(store: RegistryStore) -> Any:
    svc = store.get(KEY)
    rec = svc.instances.get(X) if svc is not None else None
    tomb = store.tombstones.get(KEY, {}).get(X)
    return (
        None if rec is None else (rec.version, rec.alive, rec.down, rec.session),
        None if tomb is None else (tomb[0], tomb[1], tomb[3], tomb[4]),
    )


def _exchange(a: RegistryStore, b: RegistryStore) -> None:
    for src, dst in ((a, b), (b, a)):
        svc = src.get(KEY)
        recs = [r.view() for r in svc.instances.values()] if svc is not None else []
        dst.merge(KEY, recs, src.tombstones_of(KEY), 0.0, scopes=src.tombstone_scopes_of(KEY))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(RECORDS, TOMBS), min_size=1, max_size=5), st.randoms())
def test_scoped_and_plain_removals_merged_in_any_order_converge(
    items: list[tuple[Any, ...]], rng: Any
) -> None:
    """Two nodes that saw the same copies and removals (scoped or not) in different
    orders, some twice, hold the same record and tombstone after one exchange."""
    first, second = RegistryStore(), RegistryStore()
    shuffled = list(items)
    rng.shuffle(shuffled)
    for item in items:
        _apply(first, item)
    for item in (*shuffled, *shuffled):
        _apply(second, item)
    _exchange(first, second)
    assert _state(first)[0] == _state(second)[0]
