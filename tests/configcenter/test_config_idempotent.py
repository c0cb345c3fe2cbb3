"""Config writes with a request id are applied at most once (configcenter/core.py
``find_request``, replication.py ``_replay``), and the write timing contract's order.

Replicators on a fake clock (``now`` is a number), connected by a queue of effects the
test delivers (``Net3``): a re-send while the first attempt waits for its majority joins
it; a re-send after the answer gets the original version (a CAS write included); a
re-send after the owner died, sent to the new owner, gets the version the old owner
wrote (the request id travelled with the replicated version); the window is the history.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from meshreg.configcenter.core import AGE_SKEW_MARGIN, ConfigStore
from meshreg.configcenter.model import (
    MAX_REQUEST_ID_LEN,
    ConfigKey,
    ConfigLimits,
    ConfigRejected,
    check_request_id,
)
from meshreg.configcenter.replication import (
    CONFIG_WRITE_ATTEMPT,
    DEFAULT_ACK_TIMEOUT,
    FORWARD_TIMEOUT,
    ConfigReplicator,
    ConfigWrite,
    FetchVersions,
    ForwardWrite,
    Persist,
    ReplyEntry,
    ReplyError,
    SendAck,
    SendCommit,
    SendDigests,
    SendHave,
    SendKeyVersions,
    SendRecord,
    responsible_config_node,
)
from meshreg.errors import ErrorCode

K = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")
RID = "0123456789abcdef0123456789abcdef"
RID2 = "fedcba9876543210fedcba9876543210"
IDS = ("n0", "n1", "n2")


# -- the store: the index and its window ----------------------------------------------------
def test_the_store_finds_the_version_a_request_id_made() -> None:
    s = ConfigStore("n1")
    e1 = s.publish(K, "a", now=1.0, request_id=RID)
    e2 = s.publish(K, "b", now=2.0)
    assert s.find_request(K, RID) == e1
    assert s.find_request(K, "") is None and s.find_request(K, RID2) is None
    assert e2.request_id == ""
    g = s.publish_gray(K, "c", labels={"env": "x"}, now=3.0, request_id=RID2)
    p = s.promote(K, now=4.0)  # derived from the gray version: not its request id
    assert g.request_id == RID2 and p.request_id == ""
    assert s.find_request(K, RID2) == g
    other = ConfigKey("public", "DEFAULT_GROUP", "other")
    assert s.find_request(other, RID) is None  # a request id is per data id


def test_the_dedup_window_is_the_history_retention() -> None:
    s = ConfigStore("n1", ConfigLimits(keep_revisions=2, keep_seconds=100.0))
    s.publish(K, "a", now=1.0, request_id=RID)
    s.publish(K, "b", now=2.0)
    assert s.find_request(K, RID) is not None
    s.publish(K, "c", now=3.0)
    s.prune(now=4.0)  # revision 1 is third from the top: pruned, its id forgotten
    assert s.find_request(K, RID) is None
    s.publish(K, "d", now=5.0, request_id=RID2)
    assert s.find_request(K, RID2) is not None
    s.delete(K, now=6.0)
    s.prune(now=6.0 + 101.0 + AGE_SKEW_MARGIN)  # older than keep_seconds (+ the clock
    # skew margin): all of it goes
    assert s.current(K) is None and s.find_request(K, RID2) is None
    # nothing left behind (request ids are found in the history itself: no index)
    assert s.history_entries == 0 and s.held_bytes == 0 and s.content_bytes == 0


def test_a_loaded_or_replicated_version_keeps_its_request_id() -> None:
    a, b = ConfigStore("n1"), ConfigStore("n2")
    e = a.publish(K, "a", now=1.0, request_id=RID)
    b.apply(e)
    assert b.find_request(K, RID) == e
    b.commit(K, 1, "n1", e.md5)  # the committed flag: the index still finds it
    found = b.find_request(K, RID)
    assert found is not None and found.committed


@pytest.mark.parametrize(
    "bad",
    [1, b"0123456789abcdef", "", "short", "x" * (MAX_REQUEST_ID_LEN + 1), "0123456789abcdé0",
     "0123456789abcdef\n", "0123456789 abcdef", ["0123456789abcdef"]],
)  # fmt: skip
def test_bad_request_ids_are_refused(bad: Any) -> None:
    with pytest.raises(ConfigRejected) as info:
        check_request_id(bad)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT and "request_id" in info.value.message


def test_good_request_ids() -> None:
    for good in (None, RID, "550e8400-e29b-41d4-a716-446655440000", "a" * MAX_REQUEST_ID_LEN,
                 "client-7:write_12.x"):  # fmt: skip
        assert check_request_id(good) == (good or "")


# -- the replicators ------------------------------------------------------------------------
class Net3:
    """Three replicators; effects are delivered in order; ``cut``: nodes whose messages
    (both ways) are dropped, ``drop``: messages dropped; replies are collected by request.
    Every node starts caught up on K (its first write needs no catch-up round)."""

    def __init__(self, limits: ConfigLimits | None = None) -> None:
        self.now = 0.0
        self.reps = {
            i: ConfigReplicator(i, IDS, ConfigStore(i, limits or ConfigLimits()), 0.0) for i in IDS
        }
        for r in self.reps.values():
            r.set_members_up(IDS)
            r._fresh[K] = r._view
        self.drop: Any = lambda message: False
        self.queue: deque[tuple[str, str, Any]] = deque()
        self.replies: list[ReplyEntry | ReplyError] = []
        self.cut: set[str] = set()
        self.disk: dict[str, list[Any]] = {i: [] for i in IDS}

    def run(self, node: str, effects: list[Any]) -> None:
        for e in effects:
            if isinstance(e, Persist):
                self.disk[node].extend(e.entries)
            elif isinstance(e, ReplyEntry | ReplyError):
                self.replies.append(e)
            elif node not in self.cut and e.peer not in self.cut and not self.drop(e):
                self.queue.append((node, e.peer, e))

    def write(self, node: str, write: ConfigWrite) -> None:
        self.run(node, self.reps[node].write(self.now, write))

    def deliver(self) -> None:
        while self.queue:
            src, dst, m = self.queue.popleft()
            if src in self.cut or dst in self.cut or self.drop(m):
                continue
            r = self.reps[dst]
            if isinstance(m, ForwardWrite):
                out = r.write(self.now, m.write)
            elif isinstance(m, SendRecord):
                out = r.on_record(self.now, src, m.entry)
            elif isinstance(m, SendAck):
                out = r.on_ack(self.now, src, m.key, m.revision, m.origin, m.md5, m.ok, m.current)
            elif isinstance(m, SendCommit):
                out = r.on_commit(m.key, m.revision, m.origin, m.md5)
            elif isinstance(m, FetchVersions):
                out = r.on_fetch(src, m.key, m.request_id)
            elif isinstance(m, SendKeyVersions):
                out = r.on_key_versions(self.now, src, m.key, m.entries, m.request_id)
            elif isinstance(m, SendDigests):  # anti-entropy (a member came back)
                out = r.on_digests(src, m.digests, m.reply, m.after, m.upto)
            elif isinstance(m, SendHave):
                out = r.on_have(src, m.items, m.reply)
            else:
                out = r.on_versions(m.entries)
            self.run(dst, out)

    def tick(self, seconds: float, step: float = 0.05) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now += step
            for i, r in self.reps.items():
                if i not in self.cut:
                    self.run(i, r.tick(self.now))
            self.deliver()

    def answers(self, request: Any) -> list[ReplyEntry | ReplyError]:
        return [r for r in self.replies if r.request == request]


def publish(
    request: Any, content: str = "v1", rid: str = RID, cas: int | None = None
) -> ConfigWrite:
    return ConfigWrite(request, "publish", K, {"content": content}, cas, request_id=rid)


def versions(net: Net3, node: str) -> list[Any]:
    return net.reps[node].store.entries(K)


OWNER = responsible_config_node(K, IDS)
OTHERS = tuple(i for i in IDS if i != OWNER)


def test_a_resend_after_the_answer_gets_the_original_version() -> None:
    net = Net3()
    net.write(OWNER, publish("first"))
    net.deliver()
    (first,) = net.answers("first")
    assert isinstance(first, ReplyEntry) and first.entry.revision == 1
    net.now += 1.0
    for node in IDS:  # on the owner, and on the others (committed there: answered at once)
        net.write(node, publish(("again", node)))
        net.deliver()
        (again,) = net.answers(("again", node))
        assert isinstance(again, ReplyEntry), again
        assert again.entry == first.entry
    assert len(versions(net, OWNER)) == 1
    assert [net.reps[i].counters["deduplicated"] for i in IDS] == [1, 1, 1]  # each itself


def test_a_cas_resend_answers_the_original_success_not_conflict() -> None:
    net = Net3()
    net.write(OWNER, publish("a", "v1", RID))
    net.deliver()
    net.write(OWNER, publish("b", "v2", RID2, cas=1))
    net.deliver()
    (won,) = net.answers("b")
    assert isinstance(won, ReplyEntry) and won.entry.revision == 2
    net.write(OWNER, publish("b-again", "v2", RID2, cas=1))  # a re-send of the CAS write
    net.deliver()
    (again,) = net.answers("b-again")
    assert isinstance(again, ReplyEntry), again  # not CONFLICT: it is the write that won
    assert again.entry == won.entry
    net.write(OWNER, publish("c", "v3", "c" * 32, cas=1))  # another write, same CAS: lost
    (lost,) = net.answers("c")
    assert isinstance(lost, ReplyError) and lost.code is ErrorCode.CONFLICT


def test_a_resend_while_the_first_waits_for_its_majority_joins_it() -> None:
    net = Net3()
    net.drop = lambda m: isinstance(m, SendRecord)  # the records do not arrive yet
    net.write(OWNER, publish("first"))
    net.tick(0.5)
    net.write(OWNER, publish("again"))  # the client re-sent (to the owner directly)
    net.write(OTHERS[0], publish("via-other"))  # and through another node
    net.deliver()  # the forward arrives at the owner: joins too
    assert net.replies == []
    assert len(versions(net, OWNER)) == 1  # no second version
    assert net.reps[OWNER].counters["deduplicated"] == 2
    net.drop = lambda m: False
    net.tick(0.3)  # the records are resent and acknowledged
    answers = [net.answers(r) for r in ("first", "again", "via-other")]
    assert all(len(a) == 1 and isinstance(a[0], ReplyEntry) for a in answers), answers
    entries = {a[0].entry for a in answers}  # type: ignore[union-attr]
    assert len(entries) == 1 and next(iter(entries)).committed
    for node in IDS:
        assert len(versions(net, node)) == 1


def test_joined_resends_also_hear_an_unknown_outcome() -> None:
    net = Net3()
    net.cut = set(OTHERS)
    net.write(OWNER, publish("first"))
    net.tick(0.2)
    net.write(OWNER, publish("again"))
    net.tick(DEFAULT_ACK_TIMEOUT)
    for request in ("first", "again"):
        (err,) = net.answers(request)
        assert isinstance(err, ReplyError) and err.code is ErrorCode.UNAVAILABLE
        assert "same request_id" in err.message
    net.cut = set()
    net.write(OWNER, publish("third"))  # re-sent once the peers answer: drives it again
    net.tick(0.5)
    (ok,) = net.answers("third")
    assert isinstance(ok, ReplyEntry) and ok.entry.revision == 1 and ok.entry.committed
    assert all(len(versions(net, n)) == 1 for n in IDS)


def test_a_resend_to_the_new_owner_after_the_owner_died_gets_the_original() -> None:
    """The owner persisted the version on a majority and died before the client got its
    reply; the re-send goes to the new owner, which finds the version (the request id
    came with the replicated record) after its catch-up, instead of writing a second
    revision."""
    net = Net3()
    heir = responsible_config_node(K, OTHERS)
    third = next(i for i in OTHERS if i != heir)
    net.cut = {heir}  # only the third node gets the record: owner + third = a majority
    net.write(OWNER, publish("first"))
    net.deliver()
    (first,) = net.answers("first")  # (the client never reads it: the owner dies now)
    assert isinstance(first, ReplyEntry)
    assert net.reps[heir].store.current(K) is None
    net.cut = {OWNER}
    for node in OTHERS:
        net.reps[node].set_members_up(OTHERS)
    for node in (heir, third):  # the new owner; a node holding it committed answers itself
        net.write(node, publish(("resend", node)))
        net.deliver()
        net.tick(0.3)
        (again,) = net.answers(("resend", node))
        assert isinstance(again, ReplyEntry), again
        assert (again.entry.revision, again.entry.origin, again.entry.md5) == (
            1, OWNER, first.entry.md5)  # fmt: skip
        assert net.reps[node].counters["deduplicated"] == 1
    for node in OTHERS:
        assert [e.revision for e in versions(net, node)] == [1]


def test_an_uncommitted_version_of_a_dead_owner_is_driven_again_by_the_new_owner() -> None:
    """The owner died with the version on itself and one peer, before any ack came back:
    nobody knows it is on a majority.  A re-send to the new owner finishes that write
    (the same version, committed) rather than writing another."""
    net = Net3()
    heir = responsible_config_node(K, OTHERS)
    net.write(OWNER, publish("first"))
    # the record reaches the heir, but the ack never gets back: the owner dies
    src, dst, record = net.queue.popleft()
    assert isinstance(record, SendRecord)
    net.queue.clear()
    net.run(heir, net.reps[heir].on_record(net.now, OWNER, record.entry))
    net.queue.clear()
    net.cut = {OWNER}
    for node in OTHERS:
        net.reps[node].set_members_up(OTHERS)
    net.write(heir, publish("resend"))
    net.deliver()
    net.tick(0.3)
    (again,) = net.answers("resend")
    assert isinstance(again, ReplyEntry), again
    assert again.entry.origin == OWNER and again.entry.revision == 1 and again.entry.committed
    for node in OTHERS:
        assert len(versions(net, node)) == 1


def test_a_request_id_reused_for_another_kind_of_write_is_refused() -> None:
    net = Net3()
    net.write(OWNER, publish("first"))
    net.deliver()
    net.write(OWNER, ConfigWrite("del", "delete", K, {}, request_id=RID))
    (err,) = net.answers("del")
    assert isinstance(err, ReplyError) and err.code is ErrorCode.INVALID_ARGUMENT
    assert "new request id" in err.message
    assert net.reps[OWNER].store.current(K).revision == 1  # type: ignore[union-attr]


def test_a_request_id_reused_for_a_publish_of_other_content_is_refused() -> None:
    """review of 2026-12-07: a second publish under the first's id was answered with the
    first's version (success), its own content lost.  A re-send is byte for byte the
    same write; another content is another write: refused, nothing written."""
    net = Net3()
    net.write(OWNER, publish("one", "one"))
    net.deliver()
    first = net.reps[OWNER].store.current(K)
    assert first is not None and first.content == "one"
    net.write(OWNER, ConfigWrite("two", "publish", K, {"content": "TWO"}, request_id=RID))
    (err,) = net.answers("two")
    assert isinstance(err, ReplyError) and err.code is ErrorCode.INVALID_ARGUMENT, err
    assert RID in err.message and first.md5 in err.message and "new request id" in err.message
    assert net.reps[OWNER].store.current(K) == first
    net.write(OWNER, ConfigWrite("again", "publish", K, {"content": "one"}, request_id=RID))
    (same,) = net.answers("again")  # the true re-send is still answered with the version
    assert isinstance(same, ReplyEntry) and same.entry.revision == first.revision


def test_without_a_request_id_a_resend_is_a_new_write() -> None:
    net = Net3()
    net.write(OWNER, publish("a", rid=""))
    net.write(OWNER, publish("b", rid=""))
    net.deliver()
    assert [e.revision for e in versions(net, OWNER)] == [1, 2]


@pytest.mark.parametrize("op", ["delete", "rollback", "gray", "promote", "gray_drop"])
def test_every_write_op_is_deduplicated(op: str) -> None:
    net = Net3()
    net.write(OWNER, publish("p1", "v1", "1" * 32))
    net.write(OWNER, ConfigWrite("g", "gray", K, {"content": "g", "labels": {"e": "x"}},
                                 request_id="2" * 32))  # fmt: skip
    net.deliver()
    args = {
        "delete": {},
        "rollback": {"revision": 1},
        "gray": {"content": "g2", "labels": {"e": "y"}},
        "promote": {},
        "gray_drop": {},
    }[op]
    for request in ("x1", "x2"):
        net.write(OWNER, ConfigWrite(request, op, K, args, request_id="3" * 32))
        net.deliver()
    one, two = net.answers("x1"), net.answers("x2")
    assert isinstance(one[0], ReplyEntry) and isinstance(two[0], ReplyEntry), (one, two)
    assert one[0].entry == two[0].entry and one[0].entry.revision == 3
    assert len(versions(net, OWNER)) == 3


def test_the_owner_answers_within_its_ack_timeout_of_the_arrival_catch_up_included() -> None:
    """A write that waits for the owner's catch-up still gets its answer within
    ``DEFAULT_ACK_TIMEOUT`` of its arrival (the contract's first step)."""
    net = Net3()
    net.reps[OWNER].set_members_up(IDS[:2])
    net.reps[OWNER].set_members_up(IDS)  # a view change: catch up first
    net.cut = set(OTHERS)  # the catch-up is answered only after 1.5 s
    net.write(OWNER, publish("w"))
    net.tick(1.5)
    net.cut = set()
    net.drop = lambda m: isinstance(m, SendAck)  # then the records are not acknowledged
    while not net.answers("w"):
        net.tick(0.05)
    assert net.reps[OWNER].store.current(K) is not None  # it was written after the catch-up
    (err,) = net.answers("w")
    assert isinstance(err, ReplyError) and err.code is ErrorCode.UNAVAILABLE, err
    assert "outcome is unknown" in err.message
    assert net.now <= DEFAULT_ACK_TIMEOUT + 0.051  # from its arrival at 0.0, not 2 + 1.5


def test_the_timing_contract_is_ordered() -> None:
    """The owner answers before the forwarding node gives up, which answers before the
    client's attempt ends (docs/PROTOCOL.md, "Re-sending a write")."""
    from meshreg.client import config_session
    from meshreg.runtime import config_plane

    assert DEFAULT_ACK_TIMEOUT < FORWARD_TIMEOUT < CONFIG_WRITE_ATTEMPT
    assert config_plane.FORWARD_WAIT_MAX < FORWARD_TIMEOUT
    assert config_session.CONFIG_WRITE_ATTEMPT is CONFIG_WRITE_ATTEMPT
    assert CONFIG_WRITE_ATTEMPT - FORWARD_TIMEOUT >= 0.2  # room for the client's round trip


def test_two_owners_applying_one_resend_make_one_write() -> None:
    """During a membership change two nodes both believe they own K: the old owner (its
    view: all three) holds the first attempt's version, pending; the client re-sends the
    write to the new owner (its view lost the old owner), which, not having seen it,
    applies it again at the same revision, and a majority commits that one.  The two
    versions carry one request id: they are one write.  The old owner, refused by the
    others, answers the first attempt with the committed twin (not "outcome unknown"),
    and no node counts the twin as a conflict (a separate write that lost)."""
    net = Net3()
    heir = responsible_config_node(K, OTHERS)
    net.cut = {OWNER}  # the old owner's records do not arrive yet; it still owns K
    net.write(OWNER, publish("first"))
    net.reps[heir].set_members_up(OTHERS)  # the heir's view dropped the old owner
    net.write(heir, publish("again"))  # the client's re-send, same request id
    net.tick(0.2)  # the heir's catch-up (the third node: nothing) and its majority
    (again,) = net.answers("again")
    assert isinstance(again, ReplyEntry) and again.entry.origin == heir, again
    assert again.entry.revision == 1 and again.entry.committed
    net.cut = set()  # the old owner's record goes out again: refused by both
    net.reps[heir].set_members_up(IDS)
    net.tick(0.5)
    (first,) = net.answers("first")
    assert isinstance(first, ReplyEntry), first  # the same write: its winner
    assert first.entry.same_version(again.entry) and first.entry.committed
    for node in IDS:
        store = net.reps[node].store
        held = [e for e in versions(net, node) if e.revision == 1]
        assert store.current(K).same_version(again.entry)  # type: ignore[union-attr]
        assert store.find_request(K, RID).same_version(again.entry)  # type: ignore[union-attr]
        assert store.stats()["conflicts"] == 0, (node, held)
    assert len([e for e in versions(net, OWNER) if e.revision == 1]) == 2  # both kept
    # a later re-send anywhere gets the winner too
    for node in IDS:
        net.write(node, publish(("late", node)))
        net.tick(0.2)
        (late,) = net.answers(("late", node))
        assert isinstance(late, ReplyEntry) and late.entry.same_version(again.entry), late


def _behind_heir(resend: bool) -> tuple[Net3, str, ReplyEntry]:
    """The old owner commits X (RID) at revision 2 with the third node; its answer is lost.
    The heir (its view lost the old owner) caught up on K before the third node held X,
    and holds another version at revision 2 (Y, whose own majority never came).  The
    client re-sends X to the heir: ``resend`` says whether the attempt says so."""
    net = Net3()
    heir = responsible_config_node(K, OTHERS)
    third = next(i for i in OTHERS if i != heir)
    net.write(OWNER, publish("base", "v0", RID2))
    net.deliver()
    net.queue.clear()
    net.reps[heir].set_members_up(OTHERS)
    net.drop = lambda m: isinstance(m, SendRecord) and m.entry.request_id == "y" * 16
    net.run(heir, net.reps[heir].write(net.now, publish("y", "vy", "y" * 16)))
    net.deliver()  # the catch-up round with the third node (it holds revision 1); Y's
    # records are lost: the heir holds Y at 2, pending
    assert net.reps[heir].store.current(K).revision == 2  # type: ignore[union-attr]
    net.cut = {heir}
    net.write(OWNER, publish("first", "vx"))
    net.deliver()  # X at 2: owner + third, committed; the answer never reaches the client
    (first,) = net.answers("first")
    assert isinstance(first, ReplyEntry) and first.entry.committed
    net.cut = {OWNER}  # the old owner dies
    net.reps[third].set_members_up(OTHERS)
    net.tick(2.5)  # Y times out on the heir (outcome unknown)
    w = ConfigWrite("again", "publish", K, {"content": "vx"}, request_id=RID, resend=resend)
    net.write(heir, w)
    net.deliver()
    net.tick(0.5)
    return net, heir, first


def test_a_resend_to_an_owner_that_moved_on_is_checked_with_a_majority() -> None:
    """One request id, one write across owners: the heir never saw X (it holds Y at X's
    revision), so without asking it would apply X again at revision 3 (two committed
    revisions of one write).  The re-send says it is one; the heir asks a majority for
    the request id first, finds X at 2 committed on the third node, and answers with it."""
    net, heir, first = _behind_heir(resend=True)
    (again,) = net.answers("again")
    assert isinstance(again, ReplyEntry), again
    assert again.entry.same_version(first.entry) and again.entry.committed
    for node in OTHERS:
        made = {e.revision for e in versions(net, node) if e.request_id == RID}
        assert made == {2}, (node, versions(net, node))


def test_without_the_resend_flag_the_moved_on_owner_writes_it_again() -> None:
    """The gap the flag closes (the test above fails without the request check): a first
    attempt is not checked (one round trip saved per write), so an old client that does
    not say "resend" gets the second revision."""
    net, heir, _ = _behind_heir(resend=False)
    (again,) = net.answers("again")
    assert isinstance(again, ReplyEntry) and again.entry.revision == 3
    assert {e.revision for e in versions(net, heir) if e.request_id == RID} == {3}
    net.cut = set()  # the old owner is back: anti-entropy brings X at 2 to the heir
    net.reps[heir].set_members_up(IDS)
    net.tick(6.0)
    assert {e.revision for e in versions(net, heir) if e.request_id == RID} == {2, 3}


def test_a_resend_the_majority_does_not_hold_is_applied_once() -> None:
    """A re-send whose first attempt never landed: the check finds nothing, it is applied
    (once); a second re-send finds it here and is answered with it."""
    net = Net3()
    w = ConfigWrite("a1", "publish", K, {"content": "v"}, request_id=RID, resend=True)
    net.write(OWNER, w)
    net.deliver()
    (a1,) = net.answers("a1")
    assert isinstance(a1, ReplyEntry) and a1.entry.revision == 1 and a1.entry.committed
    net.write(OWNER, ConfigWrite("a2", "publish", K, {"content": "v"}, request_id=RID,
                                 resend=True))  # fmt: skip
    net.deliver()
    (a2,) = net.answers("a2")
    assert isinstance(a2, ReplyEntry) and a2.entry.same_version(a1.entry)
    assert [e.revision for e in versions(net, OWNER)] == [1]


def test_the_request_check_times_out_as_unavailable_nothing_written() -> None:
    net = Net3()
    net.cut = set(OTHERS)  # the owner still sees them up; they never answer
    w = ConfigWrite("a1", "publish", K, {"content": "v"}, request_id=RID, resend=True)
    net.write(OWNER, w)
    net.tick(DEFAULT_ACK_TIMEOUT + 0.1)
    (a1,) = net.answers("a1")
    assert isinstance(a1, ReplyError) and a1.code is ErrorCode.UNAVAILABLE
    assert "nothing was written" in a1.message and versions(net, OWNER) == []


def test_two_writes_at_one_revision_still_count_as_a_conflict() -> None:
    a, b = ConfigStore("n1"), ConfigStore("n2")
    ea = a.publish(K, "a", now=1.0, request_id=RID)
    eb = b.publish(K, "b", now=1.0, request_id=RID2)
    a.apply(eb)
    assert a.stats()["conflicts"] == 1
    c = ConfigStore("n3")
    c.apply(ea)
    c.apply(b.publish(ConfigKey("public", "DEFAULT_GROUP", "other"), "x", now=1.0))
    twin = ConfigStore("n2").publish(K, "a", now=1.0, request_id=RID)
    c.apply(twin)
    assert c.stats()["conflicts"] == 0  # one request id: one write


def _minority_attempt_and_its_resend() -> tuple[Any, Any, Any]:
    """W (another write) won revision 1, committed; X1 (RID) is a first attempt at 1 that
    only a minority held (its owner died before a majority answered); X2 (RID) is what the
    re-send made at revision 2 on the next owner, whose check could not find X1."""
    from dataclasses import replace

    w = replace(ConfigStore("n2").publish(K, "w", now=1.0, request_id=RID2), committed=True)
    x1 = ConfigStore("n0").publish(K, "x", now=1.5, request_id=RID)
    holder = ConfigStore("n1")
    holder.apply(w)
    x2 = replace(holder.publish(K, "x", now=2.0, request_id=RID), committed=True)
    assert (w.revision, x1.revision, x2.revision) == (1, 1, 2)
    return w, x1, x2


def test_a_minority_attempt_below_its_resend_is_one_write_in_any_order() -> None:
    """One request id, one write, also across revisions: whatever order a node stored
    them in, the request id names the committed version (X2; before, the last one stored:
    X1, so a further re-send was answered CONFLICT "nothing of this write is current"
    after its success), and the history lists the write once (X1 left out; W, the winner
    of revision 1, stays)."""
    from itertools import permutations

    w, x1, x2 = _minority_attempt_and_its_resend()
    for order in permutations((w, x1, x2)):
        s = ConfigStore("n9")
        for e in order:
            s.apply(e)
        found = s.find_request(K, RID)
        assert found is not None and found.same_version(x2) and found.committed, order
        items = s.history(K).items
        assert [(e.revision, e.content) for e in items] == [(2, "x"), (1, "w")], order
        assert s.get(K, revision=1).same_version(w)
        assert s.attempt_superseded(x1) and not s.attempt_superseded(x2)
        r = ConfigReplicator("n9", IDS, s, 0.0)
        r.set_members_up(IDS)
        out = r.write(3.0, ConfigWrite("again", "publish", K, {"content": "x"},
                                       request_id=RID, resend=True))  # fmt: skip
        assert len(out) == 1 and isinstance(out[0], ReplyEntry), (order, out)
        assert out[0].entry.same_version(x2)


def test_until_its_resend_is_committed_a_minority_attempt_is_listed() -> None:
    """The rule hides an attempt only once another version of its request id is committed
    at another revision: before that, both are history (either may still win)."""
    from dataclasses import replace

    w, x1, x2 = _minority_attempt_and_its_resend()
    s = ConfigStore("n9")
    for e in (w, x1, replace(x2, committed=False)):
        s.apply(e)
    assert [e.revision for e in s.history(K).items] == [2, 1, 1]
    found = s.find_request(K, RID)
    assert found is not None and found.revision == 2  # the higher attempt, while neither won


def test_the_request_index_keeps_every_revision_until_each_is_pruned() -> None:
    """Pruning the minority attempt's revision keeps the re-send's version findable;
    dropping the data id empties the index."""
    w, x1, x2 = _minority_attempt_and_its_resend()
    s = ConfigStore("n9", ConfigLimits(keep_revisions=1, keep_seconds=None))
    for e in (x2, w, x1):
        s.apply(e)
    assert [e.revision for e in s.prune(10.0)] == [1, 1]
    found = s.find_request(K, RID)
    assert found is not None and found.same_version(x2)
    assert s.find_request(K, RID2) is None  # W's revision went with X1's


def test_writes_of_one_data_id_waiting_for_checks_are_applied_in_arrival_order() -> None:
    """review19 F1: two re-sent writes of one data id, each with its request check, wait in
    one round and are applied in the order they came, whichever check is answered first
    (in rounds of their own, the later one's could finish first: the earlier write then
    landed on top of it)."""
    net = Net3()
    first = ConfigWrite("w1", "publish", K, {"content": "first"}, request_id=RID, resend=True)
    second = ConfigWrite("w2", "publish", K, {"content": "second"}, request_id=RID2,
                         resend=True)  # fmt: skip
    net.write(OWNER, first)
    net.write(OWNER, second)
    net.drop = lambda m: isinstance(m, FetchVersions) and m.request_id == RID  # slow answers
    net.deliver()
    assert net.answers("w1") == [] and net.answers("w2") == []  # the second waits its turn
    net.drop = lambda m: False
    net.tick(1.0)  # the first's check is asked again and answered
    (w1,), (w2,) = net.answers("w1"), net.answers("w2")
    assert isinstance(w1, ReplyEntry) and isinstance(w2, ReplyEntry), (w1, w2)
    assert (w1.entry.revision, w2.entry.revision) == (1, 2)
    assert net.reps[OWNER].store.current(K).content == "second"  # type: ignore[union-attr]


def test_a_write_past_its_deadline_makes_no_version() -> None:
    """review19 F1: a write that waited (a stopped owner's socket, a forward, a catch-up)
    past its client's deadline is refused, nothing written (``unwritten``), counted; a
    re-send of one that made a version is still answered with that version."""
    net = Net3()
    net.now = 100.0
    late = ConfigWrite("late", "publish", K, {"content": "x"}, request_id=RID, deadline=99.0)
    net.write(OWNER, late)
    (refused,) = net.answers("late")
    assert isinstance(refused, ReplyError) and refused.code is ErrorCode.UNAVAILABLE
    assert refused.unwritten and "after its deadline" in refused.message
    assert versions(net, OWNER) == [] and net.reps[OWNER].counters["late_writes"] == 1
    # in time when it came, past its deadline when its catch-up round ends: refused too
    net.reps[OWNER]._fresh.clear()
    net.cut = set(OTHERS)
    net.write(OWNER, ConfigWrite("slow", "publish", K, {"content": "y"}, request_id=RID2,
                                 deadline=100.5))  # fmt: skip
    net.tick(0.6)
    net.cut = set()
    net.tick(0.6)
    (slow,) = net.answers("slow")
    assert isinstance(slow, ReplyError) and slow.unwritten, slow
    assert versions(net, OWNER) == []
    # a write that made its version: a late re-send is answered with it, not refused
    net.write(OWNER, ConfigWrite("made", "publish", K, {"content": "z"}, request_id=RID))
    net.deliver()
    (made,) = net.answers("made")
    assert isinstance(made, ReplyEntry)
    net.write(OWNER, ConfigWrite("again", "publish", K, {"content": "z"}, request_id=RID,
                                 resend=True, deadline=net.now - 1))  # fmt: skip
    net.deliver()
    (again,) = net.answers("again")
    assert isinstance(again, ReplyEntry) and again.entry.same_version(made.entry)
    # an owner whose clock runs ahead of its peers' judges by theirs (review22 F3)
    net.reps[OWNER].clock_lead = 5.0
    net.write(OWNER, ConfigWrite("ahead", "publish", K, {"content": "w"}, request_id="a" * 32,
                                 deadline=net.now - 2.0))  # fmt: skip
    net.deliver()
    (ahead,) = net.answers("ahead")
    assert isinstance(ahead, ReplyEntry), ahead


def test_a_cas_naming_a_revision_the_owner_lacks_is_decided_after_a_catch_up() -> None:
    """Two owners while the member views differ (a node rejoining; review41's rolling
    upgrade, session 32): the one that does not see the owner yet writes revision 2 with
    the third node's vote.  The client reads it and sends a CAS on 2 to the owner, which
    caught up before that write and lacks it: it fetches a majority's versions again and
    decides on them, rather than answering CONFLICT "at revision 1, not 2" (a revision
    no read shows any more)."""
    net = Net3()
    net.write(OWNER, publish("v1", "v1", RID, cas=0))
    net.tick(0.3)
    assert [e.revision for e in versions(net, OWNER)] == [1]
    other = responsible_config_node(K, OTHERS)  # the owner of a view without OWNER
    third = next(i for i in OTHERS if i != other)
    net.reps[other].set_members_up((other, third))  # it does not see OWNER yet
    net.drop = lambda m: OWNER in (getattr(m, "peer", None),)  # nor does OWNER hear it
    net.write(other, publish("v2", "v2", RID2, cas=1))
    net.deliver()
    (v2,) = net.answers("v2")
    assert isinstance(v2, ReplyEntry) and v2.entry.revision == 2, v2  # acknowledged
    assert [e.revision for e in versions(net, OWNER)] == [1]  # not here yet
    net.drop = lambda m: False
    net.write(OWNER, publish("v3", "v3", "c" * 32, cas=2))  # the client read revision 2
    net.deliver()
    (v3,) = net.answers("v3")
    assert isinstance(v3, ReplyEntry), v3  # not CONFLICT: revision 2 holds
    assert v3.entry.revision == 3 and v3.entry.content == "v3"
    assert net.reps[OWNER].counters["cas_catch_ups"] == 1
    # a CAS on a revision nobody holds is still a CONFLICT, after one catch-up round
    net.write(OWNER, publish("v9", "v9", "d" * 32, cas=9))
    net.deliver()
    (v9,) = net.answers("v9")
    assert isinstance(v9, ReplyError) and v9.code is ErrorCode.CONFLICT, v9
    assert "at revision 3, not 9" in v9.message
    assert net.reps[OWNER].counters["cas_catch_ups"] == 2
    # a CAS below what the owner holds is decided at once (no round: it cannot be behind)
    net.write(OWNER, publish("v1b", "x", "e" * 32, cas=1))
    (v1b,) = net.answers("v1b")
    assert isinstance(v1b, ReplyError) and v1b.code is ErrorCode.CONFLICT
    assert net.reps[OWNER].counters["cas_catch_ups"] == 2


def test_a_plain_write_that_lost_its_revision_to_another_owner_is_not_applied_twice() -> None:
    """Two owners while a node rejoins: the one that lacks revision 2 takes a publish
    without a CAS and makes revision 2 too, which the peers refuse (they hold the
    committed one).  The client hears "outcome unknown", and its re-send CONFLICT
    ("nothing of this write is current"): at most once comes first.  (Session 32 applied
    such a write again on top instead; review50 F1, F2: without a majority's answer about
    its request id, the redo could apply one write at two revisions, or past its
    deadline.  Reverted; a redo needs the request check first.)"""
    net = Net3()
    net.write(OWNER, publish("v1", "v1", RID, cas=0))
    net.tick(0.3)
    other = responsible_config_node(K, OTHERS)  # the owner of a view without OWNER
    third = next(i for i in OTHERS if i != other)
    net.reps[other].set_members_up((other, third))
    net.drop = lambda m: OWNER in (getattr(m, "peer", None),)
    net.write(other, publish("v2", "v2", RID2))
    net.deliver()
    net.drop = lambda m: False
    rid = "c" * 32
    net.write(OWNER, publish("w", "mine", rid))
    net.deliver()
    (w,) = net.answers("w")
    assert isinstance(w, ReplyError) and w.code is ErrorCode.UNAVAILABLE, w
    net.write(OWNER, ConfigWrite("again", "publish", K, {"content": "mine"}, request_id=rid,
                                 resend=True))  # fmt: skip
    net.deliver()
    (again,) = net.answers("again")
    assert isinstance(again, ReplyError) and again.code is ErrorCode.CONFLICT, again
    for node in IDS:  # the write is in effect nowhere
        assert not [e for e in net.reps[node].store.entries(K) if e.request_id == rid
                    and e.committed]  # fmt: skip
