"""A repair round's call that gets no answer is sent again well before its timeout
(review75 F4, review79).

loss-short seed 6: the owner n2 applied a register, its delta to n1 was lost, and n1's
rounds with n2 (a ``digests`` call, then a ``reconcile``) ran over a link that lost ~30 %
each way.  Each lost request or reply cost the round the call's whole timeout (2 s) and a
backoff (0.25-0.75 s) before the next round: six rounds failed in a row and n1 lacked the
instance for 11.6 s, though most messages got through.  Now a call unanswered for
``peer_request_timeout / RESEND_SHARE`` (0.25 s) is sent again, and again for one
``peer_request_timeout``; the first answer counts.

Two cores on an injected clock; the runtime's part (a call's reply, or ``peer_failed`` at
its timeout) is played by ``Pair``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
from answers import served_map

from meshreg.config import ClusterPolicy
from meshreg.core.distro import RESEND_SHARE, Broadcast, DistroNode, PeerCall
from meshreg.core.effects import Reply
from meshreg.core.health import HealthPolicy
from meshreg.core.mapping import responsible_node
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.messages import parse_request
from meshreg.wire.peer import ReplicatedDelta

POLICY = HealthPolicy(check_interval=0.5, unhealthy_after=3.0, evict_after=6.0)
CLUSTER = ClusterPolicy(peer_timeout=1.5, beacon_interval=0.25)  # requests time out in 2 s
ADDRESSES = {"n1": "10.0.0.1:7800", "n2": "10.0.0.2:7800"}
IID = InstanceId("10.1.1.1", 80, "DEFAULT")
TICK = 0.05
RESEND = CLUSTER.peer_request_timeout / RESEND_SHARE

# (src, dst, what, message) -> lose it?  what: "broadcast", "request" or "reply"
Drop = Callable[[str, str, str, Any], bool]


def owned_by_n2() -> ServiceKey:
    for i in range(100):
        key = ServiceKey("public", "DEFAULT_GROUP", f"svc{i}")
        if responsible_node(key, ("n1", "n2")) == "n2":
            return key
    raise AssertionError("unreachable")


class Pair:
    """n1 and n2 ticked every TICK s; broadcasts and calls arrive at once unless
    ``drop`` loses them; a call whose request or reply was lost fails at its timeout
    (``delay``: a reply held back that long, then delivered)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.nodes = {
            n: DistroNode(POLICY, CLUSTER, n, a, [b for m, b in ADDRESSES.items() if m != n], 7, 0)
            for n, a in ADDRESSES.items()
        }
        self.drop: Drop = lambda src, dst, what, msg: False
        self.delay: Callable[[str, PeerCall], float] = lambda src, call: 0.0
        self.later: list[tuple[float, Callable[[], None]]] = []
        self.calls: list[tuple[float, str, PeerCall]] = []  # (when, caller, call) round calls

    def tick(self) -> None:
        self.now = round(self.now + TICK, 6)
        due = [f for t, f in self.later if t <= self.now]
        self.later = [(t, f) for t, f in self.later if t > self.now]
        for f in due:
            f()
        for name, node in self.nodes.items():
            node.tick(self.now)
            self.carry_out(name, node.take_effects())

    def carry_out(self, src: str, effects: list[Any]) -> None:
        for e in effects:
            if isinstance(e, Broadcast):
                for dst, node in self.nodes.items():
                    if dst != src and not self.drop(src, dst, "broadcast", e.message):
                        node.on_replication(e.message, self.now)
            elif isinstance(e, PeerCall):
                self.call(src, e)

    def call(self, src: str, call: PeerCall) -> None:
        caller, callee = self.nodes[src], self.nodes[call.node_id]
        if call.op in ("digests", "reconcile"):
            self.calls.append((self.now, src, call))
        timeout = self.now + CLUSTER.peer_request_timeout
        if self.drop(src, call.node_id, "request", call.request):
            self.later.append((timeout, lambda: caller.peer_failed(call.tag, self.now)))
            return
        answer = callee.handle(call.request, self.now)
        self.carry_out(call.node_id, callee.take_effects())
        if call.op in ("beacon", "sessions", "join", "push"):
            return  # (their answers are not read)
        assert type(answer) is Reply, answer
        if self.drop(call.node_id, src, "reply", answer.result):
            self.later.append((timeout, lambda: caller.peer_failed(call.tag, self.now)))
            return

        def deliver() -> None:
            caller.peer_reply(call.tag, answer.result, self.now)
            self.carry_out(src, caller.take_effects())

        wait = self.delay(src, call)
        if wait:
            self.later.append((self.now + wait, deliver))
        else:
            deliver()

    def run(self, seconds: float, until: Callable[[], bool] = lambda: False) -> float:
        """Tick for ``seconds`` at most; returns when ``until`` became true (or inf)."""
        for _ in range(round(seconds / TICK)):
            self.tick()
            if until():
                return self.now
        return float("inf")

    def register(self, key: ServiceKey) -> None:
        names = {"namespace": key.namespace, "group": key.group, "service": key.service}
        body = {"v": 1, "id": 1, "op": "register", **names, "ip": IID.ip, "port": IID.port}
        node = self.nodes["n2"]
        served_map(node, parse_request(msgpack.packb(body)), self.now)
        self.carry_out("n2", node.take_effects())

    def holds(self, name: str, key: ServiceKey) -> bool:
        svc = self.nodes[name].store.services.get(key)
        return svc is not None and IID in svc.instances


def started() -> Pair:
    pair = Pair()
    pair.run(5.0)
    for node in pair.nodes.values():
        assert node.ready and node.members() == ("n1", "n2")
    return pair


def lose_the_delta(key: ServiceKey, then: Drop) -> Drop:
    """Lose n2's delta of ``key`` to n1; from then on, ``then`` decides."""

    def drop(src: str, dst: str, what: str, msg: Any) -> bool:
        if what == "broadcast" and isinstance(msg, ReplicatedDelta) and msg.payload.key == key:
            return dst == "n1"
        return then(src, dst, what, msg)

    return drop


def the_first(what: str, op: str) -> Drop:
    """Lose the first of n1's round calls ``op`` to n2 (its request, or n2's reply)."""
    lost: list[Any] = []

    def drop(src: str, dst: str, _what: str, msg: Any) -> bool:
        if lost or _what != what:
            return False
        if what == "request":
            mine = (src, dst) == ("n1", "n2") and getattr(msg, "op", None) == op
        else:
            mine = (src, dst) == ("n2", "n1") and _reply_of(msg) == op
        if mine:
            lost.append(msg)
        return mine

    return drop


def _reply_of(result: Any) -> str:
    return {"DigestPage": "digests", "ReconcileReply": "reconcile"}.get(type(result).__name__, "")


def test_a_lost_digests_request_is_sent_again_before_its_timeout() -> None:
    pair = started()
    key = owned_by_n2()
    pair.drop = lose_the_delta(key, the_first("request", "digests"))
    pair.register(key)
    assert pair.holds("n2", key) and not pair.holds("n1", key)
    start = pair.now
    # n2's next beacon shows n1 the gap; its round's first call is lost: sent again
    # RESEND s later (before: failed at its 2 s timeout, then a 0.25 s backoff)
    at = pair.run(5.0, until=lambda: pair.holds("n1", key))
    assert at - start <= CLUSTER.beacon_interval + RESEND + 3 * TICK, at - start
    assert pair.nodes["n1"].counters["repair_rounds_failed"] == 0


def test_a_lost_reconcile_reply_is_asked_again_before_its_timeout() -> None:
    pair = started()
    key = owned_by_n2()
    pair.drop = lose_the_delta(key, the_first("reply", "reconcile"))
    pair.register(key)
    start = pair.now
    at = pair.run(5.0, until=lambda: pair.holds("n1", key))
    assert at - start <= CLUSTER.beacon_interval + RESEND + 3 * TICK, at - start
    assert pair.nodes["n1"].counters["repair_rounds_failed"] == 0


def test_a_late_first_answer_counts_and_its_copys_answer_is_not_read() -> None:
    """A reply held back past the copy's send (a slow link, not a lost one): the first
    of the two answers is taken and the other dropped, not read as a page out of order
    (``replication_errors``) nor counted twice."""
    pair = started()
    key = owned_by_n2()
    held: set[int] = set()

    def delay(src: str, call: PeerCall) -> float:
        if src == "n1" and call.op == "digests" and not held:
            held.add(call.tag)
            return RESEND + 0.3  # the first page's reply comes after its copy was sent
        return 0.0

    pair.drop = lose_the_delta(key, lambda *a: False)
    pair.delay = delay
    pair.register(key)
    at = pair.run(5.0, until=lambda: pair.holds("n1", key))
    assert at < float("inf")
    pair.run(2.0)
    n1 = pair.nodes["n1"]
    assert n1.counters["replication_errors"] == 0 and n1.counters["repair_rounds_failed"] == 0
    copies = [c for t, s, c in pair.calls if s == "n1" and c.op == "digests" and t >= at - 1.0]
    assert len(copies) >= 2  # the first and its copy
    assert not n1._rounds or all(not r.asks for r in n1._rounds.values())


def test_a_peer_that_never_answers_fails_the_round_once_every_copy_failed() -> None:
    """A peer whose request port answers nothing (a firewall one way): each round's call
    is sent RESEND_SHARE times over one peer_request_timeout; the round fails when the
    last copy does, and backs off as before."""
    pair = started()
    n1 = pair.nodes["n1"]
    pair.drop = lambda src, dst, what, msg: what == "request" and (src, dst) == ("n1", "n2")
    pair.calls.clear()
    n1._sync_wanted.add("n2")  # a round is wanted (a gap, a digest that differs)
    pair.run(2 * CLUSTER.peer_request_timeout - RESEND + 2 * TICK)
    assert n1.counters["repair_rounds_failed"] == 1
    sent = [c for _, s, c in pair.calls if s == "n1" and c.op == "digests"]
    assert len(sent) == RESEND_SHARE
    assert "n2" not in n1._rounds and "n2" in n1._round_backoff


def test_a_peer_slow_to_answer_every_call_is_not_sent_copies_of_them() -> None:
    """A peer that answers every call, each after 0.6 s (busy, not losing anything):
    once its answers are known, a call waits twice the quickest of them before a copy
    goes, so it gets none (a copy every 0.25 s would have tripled its work)."""
    pair = started()
    n1 = pair.nodes["n1"]

    def delay(src: str, call: PeerCall) -> float:
        return 0.6 if src == "n1" and call.op in ("digests", "reconcile") else 0.0

    pair.delay = delay
    for _ in range(4):  # rounds until its last answers are all slow ones (copies meanwhile)
        n1._sync_wanted.add("n2")
        pair.run(2.0)
    assert "n2" not in n1._rounds and n1.counters["repair_rounds_failed"] == 0
    assert min(n1._answer_times["n2"]) >= 0.6 - 1e-9
    pair.calls.clear()
    n1._sync_wanted.add("n2")
    pair.run(2.0)
    sent = [c for _, s, c in pair.calls if s == "n1"]
    assert [c.op for c in sent] == ["digests"], sent
    assert "n2" not in n1._rounds and n1.counters["repair_rounds_failed"] == 0
