"""ClientSession: watched services (pull, deltas, gaps, resync), empty protection, reading
our own writes, serving the last list while no node answers (fake clock, ms)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from session_harness import (
    PONG,
    SID,
    SVC,
    Handle,
    Harness,
    addition,
    instance_map,
    registration,
    removal,
    snapshot,
)

from meshreg.client.actions import (
    CallListener,
    Complete,
    Fail,
    SaveToDisk,
    UnwatchTopic,
    WatchTopic,
)
from meshreg.client.commands import (
    Call,
    CloseSession,
    Deregister,
    ReadCached,
    Register,
    Subscribe,
    Unsubscribe,
)
from meshreg.client.messages import ServiceSync
from meshreg.client.session import (
    KEPT_REGISTER_RETRY,
    PIN_IDLE,
    READ_YOUR_WRITES_WINDOW,
    SUBSCRIPTION_CONFIRM,
    YOUNG_NODE_GRACE,
)
from meshreg.errors import ErrorCode, ServerUnreachableError
from meshreg.log_limiter import LOG_INTERVAL
from meshreg.model import Instance, ServiceKey


def ips(listing: list[Instance]) -> list[str]:
    return [i.ip for i in listing]


def watching(h: Harness, *start: str, epoch: int = 1, revision: int = 5) -> list[Any]:
    """Subscribe a listener to SVC and answer its first pull; returns what it was given."""
    calls: list[list[Instance]] = []
    handle = Handle()
    h.do(Subscribe(SVC, calls.append, 3.0, handle))
    assert WatchTopic(SVC) in h.actions
    (pull,) = h.unanswered("instances")
    h.reply(pull, snapshot(epoch, revision, *start))
    done = h.outcome(handle)
    assert isinstance(done, Complete) and ips(done.result) == list(start)
    h.advance(0)  # a client that only watches pings its server: it answers
    h.answer_all("ping", {"epoch": epoch, "version": "1", "address": h.connected})
    return h.listener_calls()


def test_subscribe_pulls_then_applies_deltas_and_saves_each_change() -> None:
    h = Harness()
    assert [ips(x) for x in watching(h, "10.0.0.1")] == [["10.0.0.1"]]
    h.push(addition(1, 5, "10.0.0.2"))
    assert [ips(x) for x in h.listener_calls()][-1] == ["10.0.0.1", "10.0.0.2"]
    saved = [a for a in h.actions if isinstance(a, SaveToDisk)]
    assert [ips(a.listing) for a in saved] == [["10.0.0.1"], ["10.0.0.1", "10.0.0.2"]]


def test_a_gap_pulls_once_and_a_second_gap_meanwhile_pulls_again_after() -> None:
    h = Harness()
    watching(h, "10.0.0.1")
    h.push(addition(1, 7, "10.0.0.2"))  # base 7, we hold 5: a gap
    h.push(addition(1, 9, "10.0.0.3"))  # another, while the pull is in flight
    (pull,) = h.unanswered("instances")
    h.reply(pull, snapshot(1, 8, "10.0.0.1", "10.0.0.2"))
    (again,) = h.unanswered("instances")  # the answer may predate the second gap
    h.reply(again, snapshot(1, 10, "10.0.0.1", "10.0.0.2", "10.0.0.3"))
    assert h.unanswered("instances") == []
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def _two_watches(h: Harness) -> int:
    """SVC watched at revision 5 with one instance, payments pinned at 1, empty; the
    number of pulls so far."""
    watching(h, "10.0.0.1")
    other = SVC._replace(service="payments")
    h.do(Subscribe(other, None, 3.0, Handle(), pinned=True))
    h.reply(h.unanswered("instances")[0], dict(snapshot(1, 1), service="payments"))
    return len(h.requests("instances"))


def test_each_resync_checks_every_view_in_one_request_and_pulls_only_the_stale() -> None:
    h = Harness(resync_ms=2000)
    pulls = _two_watches(h)
    h.advance(1999)
    assert h.requests("revisions") == []
    h.advance(1)
    (check,) = h.unanswered("revisions")
    assert check.fields == {
        "namespace": "public",
        "epoch": 1,
        "services": [["DEFAULT_GROUP", "orders", 5, True], ["DEFAULT_GROUP", "payments", 1, False]],
    }
    assert len(h.requests("instances")) == pulls  # nothing pulled before the answer
    h.reply(check, {"epoch": 1, "stale": [1]})
    assert [r.fields["service"] for r in h.requests("instances")[pulls:]] == ["payments"]
    h.reply(h.unanswered("instances")[0], dict(snapshot(1, 9), service="payments"))
    h.advance(2000)
    h.reply(h.unanswered("revisions")[0], {"epoch": 1, "stale": []})
    assert len(h.requests("instances")) == pulls + 1  # nothing stale: nothing pulled


def test_a_node_that_does_not_know_revisions_gets_pulls_as_before() -> None:
    h = Harness(resync_ms=2000)
    pulls = _two_watches(h)
    h.advance(2000)
    h.fail(h.unanswered("revisions")[0], ErrorCode.UNKNOWN_OP, "unknown op 'revisions'")
    assert {r.fields["service"] for r in h.requests("instances")[pulls:]} == {"orders", "payments"}
    h.answer_all("instances", snapshot(1, 5, "10.0.0.1"))
    pulls = len(h.requests("instances"))
    h.advance(2000)
    assert len(h.requests("revisions")) == 1  # not asked again: pulled
    assert len(h.requests("instances")) == pulls + 2


def test_a_failed_check_pulls_every_view_it_named() -> None:
    h = Harness(resync_ms=2000)
    pulls = _two_watches(h)
    h.advance(2000)
    h.fail(h.unanswered("revisions")[0], ErrorCode.UNAVAILABLE, "catching up")
    assert len(h.requests("instances")) == pulls + 2


def test_a_view_from_another_incarnation_is_pulled_not_checked() -> None:
    """The server restarted (a pull of another service answered a new epoch): the view
    of SVC, of the old epoch, is pulled; the check names only the new epoch's views."""
    h = Harness(resync_ms=2000)
    pulls = _two_watches(h)
    h.advance(1000)
    h.push(ServiceSync(SVC._replace(service="payments"), 2, 3))  # a restarted node's sync
    h.reply(h.unanswered("instances")[0], dict(snapshot(2, 3), service="payments"))
    pulls = len(h.requests("instances"))
    h.advance(1000)
    assert [r.fields["service"] for r in h.requests("instances")[pulls:]] == ["orders"]
    (check,) = h.unanswered("revisions")
    assert check.fields["epoch"] == 2
    assert check.fields["services"] == [["DEFAULT_GROUP", "payments", 3, False]]


def test_the_same_callback_subscribed_twice_is_called_once_per_change() -> None:
    """review48: it ran twice for every change (Nacos keeps a set of listeners)."""
    h = Harness()
    calls = watching(h, "10.0.0.1")
    assert len(calls) == 1
    handle = Handle()
    h.do(Subscribe(SVC, h.listener_calls().append, 3.0, handle))  # another callback
    first = [a.listener for a in h.actions if isinstance(a, CallListener)][0]
    h.do(Subscribe(SVC, first, 3.0, Handle()))  # the first one again: called now, once
    assert len(h.listener_calls()) == 3
    h.push(addition(1, 5, "10.0.0.2"))
    assert len(h.listener_calls()) == 5  # each of the two callbacks once
    h.do(Unsubscribe(SVC, first, Handle()))
    h.push(addition(1, 6, "10.0.0.3"))
    assert len(h.listener_calls()) == 6


def test_unsubscribing_the_last_listener_stops_watching() -> None:
    h = Harness()
    watching(h, "10.0.0.1")
    h.do(Unsubscribe(SVC, None, Handle()))
    assert UnwatchTopic(SVC) in h.actions and not h.core.watching(SVC)


# -- empty protection -------------------------------------------------------------------------
def test_a_push_that_would_empty_the_list_needs_another_servers_confirmation() -> None:
    h = Harness(servers=("a:1", "b:2"))
    watching(h, "10.0.0.1")
    h.push(removal(1, 5, "10.0.0.1"))
    assert len(h.listener_calls()) == 1  # not emptied
    (confirm,) = h.unanswered("instances")
    assert confirm.to == "b:2"  # a second opinion, from another server
    h.reply(confirm, snapshot(2, 3, "10.0.0.1"))  # b still lists it
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1"]
    lines = [x for x in h.logs() if "keeping the last list" in x]
    assert len(lines) == 1 and "a push from a:1 would empty it" in lines[0]


def test_an_empty_list_confirmed_by_another_server_is_taken() -> None:
    h = Harness(servers=("a:1", "b:2"))
    watching(h, "10.0.0.1")
    h.push(removal(1, 5, "10.0.0.1"))
    (confirm,) = h.unanswered("instances")
    h.reply(confirm, snapshot(2, 4))
    assert h.listener_calls()[-1] == []


@pytest.mark.parametrize("synced", [True, False])
def test_in_a_new_cluster_a_young_second_opinion_that_agrees_empties_the_list(
    synced: bool,
) -> None:
    """review48 F5: every node of a new cluster is young; the server the view came from
    (young itself) pushes the removal of the last instance, and the second opinion comes
    from a node this client never took an answer from, caught up from its peers
    (``synced``) with a young table: it agrees, so the list empties now (it was held
    until the tables were 15 s old, and select() handed out the removed instance).  A
    young node that has not caught up is not believed, as before."""
    h = Harness(servers=("a:1", "b:2"))
    handle = Handle()
    h.do(Subscribe(SVC, lambda listing: None, 3.0, handle))
    (pull,) = h.unanswered("instances")
    h.reply(pull, {**snapshot(1, 5, "10.0.0.1", uptime=2.0), "synced": True, "table_age": 2.0})
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1"]
    h.push(removal(1, 5, "10.0.0.1"))
    (confirm,) = h.unanswered("instances")
    assert confirm.to == "b:2"
    young = {**snapshot(2, 4, uptime=3.0), "table_age": 3.0}
    h.reply(confirm, {**young, "synced": True} if synced else young)
    if synced:
        assert h.listener_calls()[-1] == []
    else:
        assert ips(h.listener_calls()[-1]) == ["10.0.0.1"]
        assert any("started 3.0s ago" in x for x in h.logs())


def test_a_young_node_agreeing_with_an_old_node_s_empty_list_is_not_believed() -> None:
    """review49 F2: the view came from an old node; its list emptied for a moment when the
    provider's node crashed and restarted, and that restarted node, young, agreed: the
    consumer was called with [] for a live instance.  A young node's agreement counts
    only when the node that emptied the list is young too (a new cluster)."""
    h = Harness(servers=("a:1", "b:2"))
    watching(h, "10.0.0.1")  # a:1's table is old (its answer says nothing of an age)
    h.push(removal(1, 5, "10.0.0.1"))
    (confirm,) = h.unanswered("instances")
    h.reply(confirm, {**snapshot(2, 4, uptime=1.0), "synced": True, "table_age": 1.0})
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1"]
    assert any("started 1.0s ago" in x for x in h.logs())


def test_a_confirmation_the_server_answered_for_a_dead_member_is_the_servers() -> None:
    """review17 F7: the second opinion goes via b; b is dead, so the session's server a
    answers it.  Its answer is a's (an incarnation already taken), not a young unknown
    b's: the empty list is taken (before: kept for 15 s, the log blaming b)."""
    h = Harness(servers=("a:1", "b:2"))
    watching(h, "10.0.0.1", epoch=1)
    h.push(removal(1, 5, "10.0.0.1"))
    (confirm,) = h.unanswered("instances")
    assert confirm.to == "b:2"
    h.reply(confirm, snapshot(1, 6, uptime=1.2), source="a:1")  # a young cluster: a is 1.2 s old
    assert h.listener_calls()[-1] == []
    assert not [x for x in h.logs() if "b:2 started" in x]


def test_the_confirmation_waits_for_the_other_servers_connection() -> None:
    from meshreg.client.actions import DirectSend

    h = Harness(servers=("a:1", "b:2"), direct=DirectSend.NOT_CONNECTED)
    watching(h, "10.0.0.1")
    h.push(removal(1, 5, "10.0.0.1"))
    h.advance(200)  # b's connection is not up: tried again every 50 ms, not sent to a
    assert {r.to for r in h.requests("instances")[1:]} == {"b:2"}
    assert len(h.requests("instances")) >= 4


def test_a_confirmation_sent_once_the_connection_is_up_gets_a_whole_attempt() -> None:
    """ci on 080a444: the second opinion's connection to b was not up at first (tried again
    every 50 ms); once sent, its attempt deadline was the last retry's, already past, so
    the next tick sent it to a, which had emptied the list: a's "empty" was taken as b's
    agreement while b (which still listed the instance) answered a moment later."""
    from meshreg.client.actions import DirectSend

    h = Harness(servers=("a:1", "b:2"), direct=DirectSend.NOT_CONNECTED)
    watching(h, "10.0.0.1")
    h.push(removal(1, 5, "10.0.0.1"))
    h.advance(120)  # b's connection comes up after two retries
    h.direct = DirectSend.SENT
    h.advance(100)
    assert {r.to for r in h.requests("instances")[1:]} == {"b:2"}
    h.advance(300)  # b is slow, but within an attempt (500 ms)
    assert {r.to for r in h.requests("instances")[1:]} == {"b:2"}
    (confirm,) = h.unanswered("instances")
    h.reply(confirm, snapshot(2, 3, "10.0.0.1"))  # b still lists it
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1"]


def test_a_silent_second_opinion_falls_back_on_the_server_only_at_the_last_attempt() -> None:
    """review70 F1, with review17 F7's dead b: b is given the pull's budget but one
    attempt; then (nobody else to ask) the server answers, and its "empty" is taken,
    said as its own word, not as an agreement."""
    h = Harness(servers=("a:1", "b:2"))  # attempt 500 ms; a pull's budget 3 s
    watching(h, "10.0.0.1")
    h.push(removal(1, 5, "10.0.0.1"))
    h.advance(2400)  # b is silent
    assert {r.to for r in h.requests("instances")[1:]} == {"b:2"}
    h.advance(200)
    (fallback,) = [r for r in h.unanswered("instances") if r.to == "a:1"]
    h.reply(fallback, snapshot(1, 6))
    assert h.listener_calls()[-1] == []
    assert any("no other server answered; a:1 lists nothing still" in x for x in h.logs())


def test_with_three_servers_a_silent_second_opinion_asks_the_third_not_the_emptier() -> None:
    h = Harness(servers=("a:1", "b:2", "c:3"))
    watching(h, "10.0.0.1")
    h.push(removal(1, 5, "10.0.0.1"))
    h.advance(600)  # b is silent past its attempt
    assert [r.to for r in h.requests("instances")[1:]] == ["b:2", "c:3"]
    (confirm,) = [r for r in h.unanswered("instances") if r.to == "c:3"]
    h.reply(confirm, snapshot(3, 9, "10.0.0.1"))
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1"]


def test_an_empty_snapshot_from_a_node_that_just_restarted_keeps_the_list() -> None:
    h = Harness(servers=("a:1", "b:2"), resync_ms=1000)
    watching(h, "10.0.0.1", epoch=1)
    h.advance(1000)  # resync: a restarted meanwhile (epoch 2), up for 3 s, empty
    h.all_stale()  # its check says the view is stale: pulled
    (pull,) = h.unanswered("instances")
    h.reply(pull, snapshot(2, 0, uptime=3.0))
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1"]
    assert h.unanswered("instances") == []  # no second opinion needed: wait for providers
    assert any("started 3.0s ago and lists nothing yet" in x for x in h.logs())
    h.advance(1000)  # later, once it is no longer young, its empty answer is confirmed
    h.all_stale()  # its check says the view is stale: pulled
    h.reply(h.unanswered("instances")[0], snapshot(2, 0, uptime=YOUNG_NODE_GRACE + 1))
    assert h.unanswered("instances")[0].to == "b:2"


def test_a_restarted_nodes_second_empty_answer_within_the_grace_keeps_the_list() -> None:
    """One server, restarted: every answer of its young incarnation that drops instances
    is held, not only the first (review11: the first empty answer recorded the new epoch,
    the second was "confirmed" by asking the same young node, and the view emptied)."""
    h = Harness(servers=("a:1",), resync_ms=1000)
    watching(h, "10.0.0.1", epoch=1)
    h.advance(1000)  # resync: the node restarted (epoch 2), up 0.5 s, lists nothing yet
    h.all_stale()  # its check says the view is stale: pulled
    (pull,) = h.unanswered("instances")
    h.reply(pull, snapshot(2, 0, uptime=0.5))
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1"]
    h.advance(1000)  # pulled again: the same incarnation, up 1.5 s, still empty
    h.all_stale()  # its check says the view is stale: pulled
    (pull,) = h.unanswered("instances")
    h.reply(pull, snapshot(2, 0, uptime=1.5))
    for confirm in h.unanswered("instances"):  # (none expected: nothing to confirm yet)
        h.reply(confirm, snapshot(2, 0, uptime=1.6))
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1"], h.logs()[-3:]


def test_a_partial_list_from_a_node_catching_up_is_held_then_taken_when_whole() -> None:
    """A restarted node catching up lists the instance registered after its restart but
    not yet the others: the view keeps every instance, pulls again a second later, and
    takes the list once it drops nothing (review11: the healthy instances vanished)."""
    h = Harness(servers=("a:1",), resync_ms=60_000)
    watching(h, "10.0.0.1", "10.0.0.2", epoch=1)
    h.push(removal(2, 1, "10.0.0.9"))  # the restarted node's first delta: a new epoch
    (pull,) = h.unanswered("instances")
    h.reply(pull, snapshot(2, 1, "10.0.0.7", uptime=0.4))
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1", "10.0.0.2"]
    assert any("lists only part of it yet" in x for x in h.logs())
    assert h.unanswered("instances") == []
    h.advance(1000)  # YOUNG_RECHECK later: pulled again; caught up now
    (pull,) = h.unanswered("instances")
    h.reply(pull, snapshot(2, 3, "10.0.0.1", "10.0.0.2", "10.0.0.7", uptime=1.4))
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1", "10.0.0.2", "10.0.0.7"]
    h.advance(3000)
    assert h.unanswered("instances") == []  # no more rechecks
    # that incarnation's answers are taken from now on: a real removal goes through
    h.push(removal(2, 3, "10.0.0.2"))
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1", "10.0.0.7"]


def test_a_young_nodes_list_that_drops_nothing_is_taken_at_once() -> None:
    h = Harness(servers=("a:1",), resync_ms=1000)
    watching(h, "10.0.0.1", epoch=1)
    h.advance(1000)
    h.all_stale()  # its check says the view is stale: pulled
    (pull,) = h.unanswered("instances")
    h.reply(pull, snapshot(2, 2, "10.0.0.1", "10.0.0.3", uptime=0.5))
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1", "10.0.0.3"]


def test_a_young_server_not_restarted_gets_a_second_opinion_after_another_fed_the_view() -> None:
    """A restart is judged per server: b's confirmation fed the view (epoch 7), yet a still
    answers as the incarnation it was (epoch 1): its empty list is not a restart's."""
    h = Harness(servers=("a:1", "b:2"), resync_ms=1000)
    watching(h, "10.0.0.1", epoch=1)
    h.push(removal(1, 5, "10.0.0.1"))
    (confirm,) = h.unanswered("instances")
    h.reply(confirm, snapshot(7, 3, "10.0.0.1"))  # b still lists it: b's view now
    h.advance(1000)  # resync at a: same incarnation, up 3 s, empty
    (pull,) = h.unanswered("instances")
    assert pull.to != "b:2"
    h.reply(pull, snapshot(1, 6, uptime=3.0))
    assert not any("lists nothing yet" in x for x in h.logs())
    (second,) = h.unanswered("instances")
    assert second.to == "b:2"  # asked for a second opinion at once, not held for 15 s


def test_without_empty_protection_an_empty_push_is_applied_at_once() -> None:
    h = Harness(empty_protection=False)
    watching(h, "10.0.0.1")
    h.push(removal(1, 5, "10.0.0.1"))
    assert h.listener_calls()[-1] == [] and h.unanswered("instances") == []


# -- reads -------------------------------------------------------------------------------------
def test_reads_bypass_the_pushed_view_for_a_while_after_our_own_write() -> None:
    h = Harness()
    watching(h, "10.0.0.1")

    def read() -> str:
        handle = Handle()
        h.do(ReadCached(SVC, True, handle))
        done = h.outcome(handle)
        assert isinstance(done, Complete)
        return str(done.result[0])

    assert read() == "view"
    h.do(Register(registration(1), 3.0, Handle()))
    h.answer_all("register")
    assert read() == "bypass"
    h.advance(int(READ_YOUR_WRITES_WINDOW * 1000) - 1)
    assert read() == "bypass"
    h.advance(1)
    assert read() == "view"


def test_while_no_node_answers_the_last_list_is_served_and_said_once() -> None:
    h = Harness(servers=("a:1",), resync_ms=1000, attempt_ms=300)
    watching(h, "10.0.0.1")
    h.advance(10_000)  # nobody answers the pulls
    lines = [x for x in h.logs() if "no meshreg server answers" in x]
    assert len(lines) == 1 and "serving the last known list" in lines[0]
    assert lines[0].startswith("public/DEFAULT_GROUP/orders: no meshreg server answers (")
    handle = Handle()
    h.do(ReadCached(SVC, True, handle))
    assert ips(h.outcome(handle).result[1]) == ["10.0.0.1"]  # type: ignore[union-attr]
    h.advance(1000)
    h.reply(h.unanswered("instances")[-1], snapshot(1, 6, "10.0.0.1", "10.0.0.2"))
    assert "orders: live data again from a:1" in h.logs("info")[-1]


def test_a_disk_copy_is_served_only_when_no_node_answers() -> None:
    h = Harness(servers=("a:1",), attempt_ms=300)
    saved = (Instance.from_wire(instance_map("10.9.9.9")),)
    handle = Handle()
    h.do(Subscribe(SVC, None, 1.0, handle, pinned=True, saved=saved))
    assert h.outcome(handle) is None  # a node is asked first
    h.advance(1000)
    done = h.outcome(handle)
    assert isinstance(done, Complete) and ips(done.result) == ["10.9.9.9"]
    assert any("serving the disk cache" in x for x in h.logs())


def test_serving_a_disk_copy_says_how_old_it_is() -> None:
    """review24 (notes): a 90-day-old copy was served with no word of its age."""
    h = Harness(servers=("a:1",), attempt_ms=300, wall_offset=1e9)  # wall = now + 1e9 s
    saved = (Instance.from_wire(instance_map("10.9.9.9")),)
    written = 1e9 - 90 * 86400.0
    h.do(Subscribe(SVC, None, 1.0, Handle(), pinned=True, saved=saved, saved_at=written))
    h.advance(1000)
    assert any("serving the disk cache (written 90 days ago)" in x for x in h.logs("warning"))
    # more served in the same LOG_INTERVAL: one line when it ends, with the first one's age
    for n, hours in enumerate((3.5, 1.0)):
        key, at = SVC._replace(service=f"p{n}"), 1e9 - hours * 3600
        h.do(Subscribe(key, None, 1.0, Handle(), pinned=True, saved=saved, saved_at=at))
    h.advance(int(LOG_INTERVAL * 1000))
    last = h.logs("warning")[-1]
    assert last.startswith("2 watched services (e.g. public/DEFAULT_GROUP/p0): no meshreg ")
    assert last.endswith("; serving the disk cache (p0's written 3.5 h ago)")


def test_a_first_pull_no_node_answers_fails_the_subscribe_and_keeps_the_watch() -> None:
    """Nacos 2's redo: the caller is told, the listener stays (called once a node answers)."""
    h = Harness(servers=("a:1",), attempt_ms=300)
    handle = Handle()
    h.do(Subscribe(SVC, lambda xs: None, 1.0, handle))
    h.advance(1000)
    done = h.outcome(handle)
    assert isinstance(done, Fail) and isinstance(done.error, ServerUnreachableError)
    assert done.error.listener_kept
    assert UnwatchTopic(SVC) not in h.actions and h.core.watching(SVC)


def test_a_kept_subscriber_a_node_not_ready_refused_is_pulled_again_in_seconds() -> None:
    """The node answers (the client is not offline) but refuses the read: the kept
    subscriber's service is pulled again within seconds, not at the 10 s resync."""
    h = Harness(servers=("a:1",), attempt_ms=300, resync_ms=1_000_000)
    handle = Handle()
    h.do(Subscribe(SVC, lambda xs: None, 1.0, handle))
    h.fail_all("instances", ErrorCode.UNAVAILABLE, "catching up from its peers")
    h.advance(1100)
    done = h.outcome(handle)
    assert isinstance(done, Fail) and done.error.listener_kept, done
    sent, waited = len(h.requests("instances")), 0
    while len(h.requests("instances")) == sent:
        h.advance(100)
        waited += 100
        assert waited <= int(KEPT_REGISTER_RETRY * 1000) + 1100, "not pulled again in time"
    h.reply(h.requests("instances")[-1], snapshot(1, 1, "10.0.0.1"))
    assert [[i.ip for i in c] for c in h.listener_calls()] == [["10.0.0.1"]]


def test_a_first_pull_refused_for_good_fails_the_subscribe_and_drops_the_watch() -> None:
    h = Harness(servers=("a:1",), attempt_ms=300)
    handle = Handle()
    h.do(Subscribe(SVC, lambda xs: None, 1.0, handle))
    h.fail_all("instances", ErrorCode.PERMISSION_DENIED, "key k may not read")
    done = h.outcome(handle)
    assert isinstance(done, Fail) and not done.error.listener_kept
    assert UnwatchTopic(SVC) in h.actions and not h.core.watching(SVC)


def _keep_answering(h: Harness, ms: int) -> None:
    """Move time on ``ms``, the server answering every ping and pull (it is up)."""
    for _ in range(ms // 500):
        h.advance(500)
        h.answer_all("ping", {"epoch": 1, "version": "1", "address": h.connected})
        h.answer_all("instances", snapshot(1, 5, "10.0.0.1"))


def _refusal_warnings(h: Harness) -> list[str]:
    return [line for line in h.logs("warning") if "may have refused it" in line]


def test_a_watch_with_no_push_after_subscribing_is_said_once() -> None:
    """review14b F5: a node whose subscription limit is full refuses a subscription
    silently; the consumer then learns changes from its resync only.  A node answers a
    subscription it admits with a push at once, so none within SUBSCRIPTION_CONFIRM on a
    server that answers is said (once), naming the service, the server and what to check."""
    h = Harness(resync_ms=60_000)
    watching(h, "10.0.0.1")
    _keep_answering(h, int(SUBSCRIPTION_CONFIRM * 1000) - 1000)
    assert _refusal_warnings(h) == []
    _keep_answering(h, 2000)
    (line,) = _refusal_warnings(h)
    assert str(SVC) in line and h.connected in line and "subscriptions_refused" in line
    _keep_answering(h, 10_000)
    assert len(_refusal_warnings(h)) == 1


def test_a_watch_pushed_after_subscribing_is_not_said() -> None:
    h = Harness(resync_ms=60_000)
    watching(h, "10.0.0.1")
    h.push(ServiceSync(SVC, 1, 5))  # the node's answer to the subscription
    _keep_answering(h, 10_000)
    assert _refusal_warnings(h) == []


def test_a_watch_made_while_no_server_answered_waits_from_when_one_does() -> None:
    """The subscription reaches a node only once it answers: the wait starts then (else
    a node that comes back after SUBSCRIPTION_CONFIRM was said to refuse at once)."""
    h = Harness(servers=("a:1",), resync_ms=60_000)
    saved = (Instance.from_wire(instance_map("10.0.0.1")),)  # its disk copy: served
    h.do(Subscribe(SVC, lambda listing: None, 3.0, Handle(), saved=saved))
    h.advance(10_000)  # nothing answers: its requests time out, it is silent
    assert h.core.offline
    while h.core.offline:  # it answers again (the client pings it on its backoff)
        _keep_answering(h, 500)
    _keep_answering(h, int(SUBSCRIPTION_CONFIRM * 1000) - 1000)
    assert _refusal_warnings(h) == []
    _keep_answering(h, 2000)
    assert len(_refusal_warnings(h)) == 1  # and still sends no push


def test_a_young_node_caught_up_from_its_peers_is_taken_at_once() -> None:
    """review24 F1: after its server restarted, a consumer kept its old list for 15 s (a
    deregistered instance served, its replacement hidden), though the node had caught up
    from its peers 0.2 s after start: such an answer says ``synced`` and is taken."""
    h = Harness(servers=("a:1", "b:2"), resync_ms=1000)
    watching(h, "10.0.0.1", "10.0.0.2", epoch=1)
    h.advance(1000)
    h.all_stale()  # its check says the view is stale: pulled
    (pull,) = h.unanswered("instances")
    synced = {**snapshot(2, 2, "10.0.0.2", "10.0.0.3", uptime=0.3), "synced": True}
    h.reply(pull, synced)
    assert ips(h.listener_calls()[-1]) == ["10.0.0.2", "10.0.0.3"]
    assert not any("started" in x for x in h.logs())


def test_a_young_node_caught_up_from_old_peers_tells_their_tables_age_and_is_taken() -> None:
    """The same with ``table_age``: up 0.3 s, its table (its peers') an hour old."""
    h = Harness(servers=("a:1", "b:2"), resync_ms=1000)
    watching(h, "10.0.0.1", "10.0.0.2", epoch=1)
    h.advance(1000)
    h.all_stale()
    (pull,) = h.unanswered("instances")
    old = {**snapshot(2, 2, "10.0.0.2", uptime=0.3), "synced": True, "table_age": 3600.0}
    h.reply(pull, old)
    assert ips(h.listener_calls()[-1]) == ["10.0.0.2"]


def test_after_a_whole_cluster_restart_a_synced_answer_with_a_young_table_is_held() -> None:
    """review33 F1: every node restarted; each caught up from peers as empty as itself,
    so it says ``synced``, with a young ``table_age``: a list that drops instances (empty,
    then partial, while the providers register again) is held, pulled again every
    second, and taken once whole, or once the table is ``YOUNG_NODE_GRACE`` old."""
    h = Harness(servers=("a:1",), resync_ms=1000)
    watching(h, "10.0.0.1", "10.0.0.2", epoch=1)
    h.advance(1000)
    h.all_stale()
    (pull,) = h.unanswered("instances")
    h.reply(pull, {**snapshot(2, 0, uptime=1.0), "synced": True, "table_age": 1.2})
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1", "10.0.0.2"]
    assert any("the whole cluster restarted" in x for x in h.logs())
    assert h.unanswered("instances") == []  # no second opinion: held, asked again later
    h.advance(1000)  # one provider has registered again: still partial, still held
    (pull,) = h.unanswered("instances")
    h.reply(pull, {**snapshot(2, 1, "10.0.0.2", uptime=2.0), "synced": True, "table_age": 2.2})
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1", "10.0.0.2"]
    h.advance(1000)  # 10.0.0.1 is gone for good: once the table is old enough, taken
    (pull,) = h.unanswered("instances")
    grown = YOUNG_NODE_GRACE + 0.5
    h.reply(pull, {**snapshot(2, 1, "10.0.0.2", uptime=grown), "synced": True,
                   "table_age": grown})  # fmt: skip
    assert ips(h.listener_calls()[-1]) == ["10.0.0.2"]


def test_after_a_whole_cluster_restart_one_provider_back_trusts_no_other_services_list() -> None:
    """review56 F2: after a whole-cluster restart, the first provider back made each node's
    new incarnation trusted (its answer for that provider's service was taken), and the
    services of a provider not back yet were emptied: a pull from that incarnation, and a
    push confirmed by another young node (the "new cluster" rule of review48 F5), were
    believed.  The lists were told before those young tables started: both are held."""
    h = Harness(servers=("a:1", "b:2"), resync_ms=1000)
    watching(h, "10.0.0.1", epoch=1)  # SVC, from the cluster before the restart
    other = SVC._replace(service="payments")
    h.do(Subscribe(other, None, 3.0, Handle(), pinned=True))
    h.reply(h.unanswered("instances")[0], dict(snapshot(1, 1, "10.0.0.9"), service="payments"))
    h.advance(5000)  # every node restarted 2 s ago; payments' provider is back already
    h.all_stale()
    pulls = {p.fields["service"]: p for p in h.unanswered("instances")}
    young = {"synced": True, "table_age": 2.0}
    h.reply(pulls["payments"], {**snapshot(2, 1, "10.0.0.9", uptime=2.0), **young,
                                "service": "payments"})  # fmt: skip
    h.reply(pulls[SVC.service], {**snapshot(2, 1, uptime=2.0), **young})
    # the second opinion, b:2 (young, caught up from peers as empty as itself) agrees
    for opinion in [p for p in h.unanswered("instances") if p.fields["service"] == SVC.service]:
        h.reply(opinion, {**snapshot(2, 1, uptime=2.0), **young})
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1"]  # held, though epoch 2 is trusted
    assert any("the whole cluster restarted" in x for x in h.logs())
    h.advance(1000)  # asked again a second later: listed; then a push that empties it
    for again in [p for p in h.unanswered("instances") if p.fields["service"] == SVC.service]:
        h.reply(again, {**snapshot(2, 1, "10.0.0.1", uptime=3.0), **young, "table_age": 3.0})
    h.push(removal(2, 1, "10.0.0.1"))
    (confirm,) = [p for p in h.unanswered("instances") if p.fields["service"] == SVC.service]
    h.reply(confirm, {**snapshot(2, 2, uptime=3.0), **young, "table_age": 3.0})
    assert h.listener_calls()[-1] == []  # told by these tables: a scale to zero, taken


def test_a_server_catching_up_is_asked_no_read_the_next_one_answers() -> None:
    """review24 F8: a node catching up answers reads UNAVAILABLE; the pull goes to the
    next server at once (a fresh consumer got an empty list of a live service before)."""
    h = Harness(servers=("a:1", "b:2"), resync_ms=60_000)
    handle = Handle()
    h.do(Subscribe(SVC, lambda listing: None, 3.0, handle))
    (pull,) = h.unanswered("instances")
    assert pull.to == "a:1"
    h.fail(pull, ErrorCode.UNAVAILABLE, "instances: node a:1 is still catching up")
    h.advance(1)  # the next tick moves to the next server, which is asked the read
    again = h.unanswered("instances")[-1]
    assert again.to == "b:2" and h.core.server == "b:2"
    h.reply(again, {**snapshot(1, 1, "10.0.0.1", uptime=100.0), "synced": True})
    done = h.outcome(handle)
    assert isinstance(done, Complete) and ips(done.result) == ["10.0.0.1"]
    # said as what it was: a refusal, not a silence (the server answered)
    (moved,) = [x for x in h.logs("warning") if "a:1" in x]
    assert "catching up" in moved and "did not answer" not in moved, moved
    assert not h.core.offline and "a:1" not in h.core._silent


# -- what empty protection says (review24 F6, F9) ----------------------------------------------
def many_watched(h: Harness, count: int, epoch: int = 1) -> list[ServiceKey]:
    keys = [ServiceKey("public", "DEFAULT_GROUP", f"s{n}") for n in range(count)]
    for key in keys:
        h.do(Subscribe(key, lambda xs: None, 3.0, Handle()))
    for pull in h.unanswered("instances"):
        svc = pull.fields["service"]
        h.reply(pull, {**snapshot(epoch, 5, "10.0.0.1"), "service": svc})
    return keys


def test_the_clients_own_deregistration_empties_its_watch_at_once_and_quietly() -> None:
    """The README quick start: a client watching the service it registered in closes;
    the push of its own removal is applied without a second opinion or a warning."""
    h = Harness(servers=("a:1", "b:2"))
    watching(h, "10.0.0.1")
    reg = registration(0)  # 10.0.0.1
    h.do(Register(reg, 3.0, Handle()))
    h.answer_all("register")
    h.do(Deregister(SVC, reg.iid, reg.fields, 3.0, Handle()))
    h.push(removal(1, 5, "10.0.0.1"))
    assert h.listener_calls()[-1] == []
    assert h.unanswered("instances") == []  # no confirmation asked
    assert h.logs("warning") == [] and h.logs("info") == []


def test_closing_the_session_empties_its_watches_quietly() -> None:
    h = Harness(servers=("a:1",), session=True)
    watching(h, "10.0.0.1")
    h.do(Register(registration(0, session=True), 3.0, Handle()))
    h.answer_all("session_open", {"session": SID})
    h.answer_all("register")
    h.do(CloseSession(3.0, Handle()))
    h.push(removal(1, 5, "10.0.0.1"))
    assert h.listener_calls()[-1] == []
    assert h.unanswered("instances") == [] and h.logs("warning") == []


def test_someone_elses_removal_still_needs_a_second_opinion_after_our_own() -> None:
    h = Harness(servers=("a:1", "b:2"))
    watching(h, "10.0.0.1", "10.0.0.2")
    reg = registration(0)  # 10.0.0.1: ours; 10.0.0.2: another provider's
    h.do(Register(reg, 3.0, Handle()))
    h.answer_all("register")
    h.do(Deregister(SVC, reg.iid, reg.fields, 3.0, Handle()))
    h.push(removal(1, 5, "10.0.0.1", "10.0.0.2"))
    (confirm,) = h.unanswered("instances")
    assert confirm.to == "b:2"


def test_a_confirmed_scale_to_zero_of_many_services_is_one_info_line_per_interval() -> None:
    """A provider of 50 services stops: every consumer used to log 50 WARNINGs."""
    h = Harness(servers=("a:1", "b:2"), resync_ms=60_000)
    keys = many_watched(h, 50)
    for key in keys:
        h.push(removal(1, 5, "10.0.0.1", key=key))
    for confirm in h.unanswered("instances"):
        h.reply(confirm, snapshot(1, 6))
    assert all(calls == [] for calls in h.listener_calls()[-50:])
    assert h.logs("warning") == []
    assert len(h.logs("info")) == 1 and "agrees" in h.logs("info")[0]
    for _ in range(int(LOG_INTERVAL) * 10):  # the probe's pings answered as they go
        h.answer_all("ping", PONG)
        h.advance(100)
    assert len(h.logs("info")) == 2
    assert h.logs("info")[1].startswith("49 watched services (e.g. public/DEFAULT_GROUP/s1)")
    assert h.logs("warning") == []


def test_a_restarted_server_holding_back_many_services_is_one_warning_per_interval() -> None:
    h = Harness(servers=("a:1",), resync_ms=1000)
    many_watched(h, 200)
    h.advance(1000)  # resync: the node restarted (epoch 2), up 0.5 s, lists nothing yet
    h.all_stale()  # its check says the view is stale: pulled
    for pull in h.unanswered("instances"):
        h.reply(pull, {**snapshot(2, 0, uptime=0.5), "service": pull.fields["service"]})
    for _ in range(int(LOG_INTERVAL)):  # held back, pulled again every second
        h.advance(1000)
        for pull in h.unanswered("instances"):
            h.reply(pull, {**snapshot(2, 0, uptime=0.5), "service": pull.fields["service"]})
    h.advance(1)
    warnings = [x for x in h.logs("warning") if "started" in x]
    assert len(warnings) == 2, warnings
    assert "lists nothing yet" in warnings[0]
    assert warnings[1].startswith("200 watched services (e.g. public/DEFAULT_GROUP/s")


# -- an outage of many watched services (review51 F4) --------------------------------------------
def named(lines: list[str]) -> int:
    """How many services ``lines`` name: "N watched services (e.g. ...): ..." names N."""
    head = [line.split(" watched services (e.g. ", 1) for line in lines]
    return sum(int(h[0]) if len(h) == 2 and h[0].isdigit() else 1 for h in head)


def node_answers(h: Harness) -> None:
    """The node is up: every ping, check and pull not answered yet is (nothing changed)."""
    h.answer_all("ping", PONG)
    h.answer_all("revisions", {"epoch": 1, "stale": []})
    for pull in h.unanswered("instances"):
        h.reply(pull, {**snapshot(1, 5, "10.0.0.1"), "service": pull.fields["service"]})


def test_an_outage_of_200_watched_services_is_one_line_each_way_not_200() -> None:
    """review51 F4: a consumer watching 200 services logged 200 WARNINGs "no meshreg server
    answers (...); serving the last known list" when its one server went away and 200
    INFOs "live data again" when it came back: one line per kind and LOG_INTERVAL now,
    naming how many; every service is still counted, once each way."""
    h = Harness(servers=("a:1",), resync_ms=1000, attempt_ms=300)
    many_watched(h, 200)
    h.advance(5_000)  # nobody answers: the check, then every pull, fails
    assert h.core.offline and all(w.said_stale for w in h.core.watches.values())
    stale = [x for x in h.logs() if "no meshreg server answers" in x]
    assert len(stale) == 1 and h.logs("warning") == stale
    assert stale[0].startswith(
        "200 watched services (e.g. public/DEFAULT_GROUP/s0): no meshreg server answers "
        "(instances: no reply from meshreg server(s) a:1"
    )
    assert stale[0].endswith("; serving the last known list")
    for _ in range(int(LOG_INTERVAL) * 10 + 1):  # the node is back: the views pulled again
        node_answers(h)
        h.advance(100)
    assert not h.core.offline and not any(w.said_stale for w in h.core.watches.values())
    again = [x for x in h.logs() if "live data again" in x]
    # the first at once, the 199 answered after it in the same interval when it ends
    assert again == [
        "public/DEFAULT_GROUP/s0: live data again from a:1",
        "199 watched services (e.g. public/DEFAULT_GROUP/s1): live data again from a:1",
    ]
    assert h.logs("info") == again  # (a warning says the pushes are not confirmed: no SUB)
    assert len([c for c in h.listener_calls() if c]) == 200  # each listener: its first pull
    # review59: the summed-up line comes at the interval's end and says how old it is
    raw = [x for x in h.logs(raw=True) if "live data again" in x]
    assert raw[0] == again[0]  # said at once: as it is
    assert raw[1].startswith(again[1] + " (noted ") and raw[1].endswith(
        "s ago; lines of this kind are held back to one per 10s)"
    ), raw[1]


def test_a_held_list_taken_before_its_line_was_said_is_not_said_late() -> None:
    """review59: "s1: a:1 started 0.4s ago and lists only part of it yet; keeping the last
    list" came out at the interval's end, 10 s after the list had been taken (after "live
    data again"): it read as news.  A list taken drops its line not said yet."""
    h = Harness(servers=("a:1",), resync_ms=60_000)
    keys = many_watched(h, 2)
    for key in keys:  # the node restarted: its first deltas (a new epoch), partial lists
        h.push(removal(2, 1, "10.0.0.9", key=key))
    for pull in h.unanswered("instances"):
        h.reply(pull, {**snapshot(2, 1, "10.0.0.7", uptime=0.4), "service": pull.fields["service"]})
    held = [x for x in h.logs() if "keeping the last list" in x]
    assert held == [held[0]] and held[0].startswith("public/DEFAULT_GROUP/s0: ")
    h.advance(1000)  # pulled again a second later: whole now, taken
    for pull in h.unanswered("instances"):
        whole = snapshot(2, 3, "10.0.0.1", "10.0.0.7", uptime=1.4)
        h.reply(pull, {**whole, "service": pull.fields["service"]})
    h.advance(int(LOG_INTERVAL * 1000) + 1000)
    assert [x for x in h.logs() if "keeping the last list" in x] == held


def test_a_flapping_server_is_one_line_per_kind_per_interval_whatever_it_concerns() -> None:
    """Six outages of 6 s, 3 s apart, 200 watched services served stale each time: each
    kind of line at most once per LOG_INTERVAL (before review51 F4: 200 of each a flap)."""
    h = Harness(servers=("a:1",), resync_ms=1000, attempt_ms=300)
    many_watched(h, 200)
    said: list[tuple[int, str]] = []  # (when, line)

    def step(answer: bool = False) -> None:
        if answer:
            node_answers(h)
            said.extend((h.now_ms, x) for x in h.logs()[len(said) :])
        h.advance(100)
        said.extend((h.now_ms, x) for x in h.logs()[len(said) :])

    step()
    assert said == []
    for _ in range(6):
        for up in (False, True):
            for _ in range(30 if up else 60):
                step(answer=up)
            stale = [w.said_stale for w in h.core.watches.values()]
            assert all(stale) if not up else not any(stale)  # served as before, each flap
    for _ in range(int(LOG_INTERVAL) * 10):  # what the last interval held is summed up
        step()
    for kind in ("no meshreg server answers", "live data again"):
        at = [ms for ms, x in said if kind in x]
        assert 2 <= len(at) <= 8, said  # 64 s: the first at once, then one per interval
        assert all(b - a >= LOG_INTERVAL * 1000 for a, b in zip(at, at[1:], strict=False))


def test_a_view_kept_only_for_reads_is_dropped_after_pin_idle_without_a_read() -> None:
    """review24 (notes): instances() of 3,000 services once left 3,000 subscriptions and
    300 pulls/s, forever.  A view read within PIN_IDLE, or with a listener, is kept."""
    h = Harness(servers=("a:1",), resync_ms=10_000)
    keys = [ServiceKey("public", "DEFAULT_GROUP", f"r{n}") for n in range(3)]
    for key in keys:
        h.do(Subscribe(key, None, 3.0, Handle(), pinned=True))
    h.do(Subscribe(SVC, lambda xs: None, 3.0, Handle()))  # a listener: kept
    elapsed = 0
    while elapsed < PIN_IDLE * 1000 + 20_000:
        h.answer_all("instances", snapshot(1, 5, "10.0.0.1"))
        h.answer_all("ping", PONG)
        if elapsed == 200_000:
            h.do(ReadCached(keys[0], True, Handle()))  # read: kept PIN_IDLE from now
        h.advance(500)
        elapsed += 500
    dropped = [a.key for a in h.actions if isinstance(a, UnwatchTopic)]
    assert dropped == keys[1:], dropped
    assert h.core.watching(keys[0]) and h.core.watching(SVC)


@pytest.mark.parametrize("servers", [("a:1",), ("a:1", "b:2")])
def test_a_subscription_is_awaited_again_only_on_a_new_server(servers: tuple[str, ...]) -> None:
    """review56 note: after its only server was stopped (SIGSTOP) and resumed, a consumer
    logged "sent no push within 5s of the subscription; it may have refused it" in every
    run: the reconnects to the same server restarted the wait, but the loop keeps that
    server's SUB, subscriptions and all, so no new first push comes.  On another server
    (a new SUB) the first push is awaited again (tests/integration/
    test_subscription_refused_said.py: said when it does not come)."""
    h = Harness(servers=servers, attempt_ms=500, resync_ms=60_000)
    watching(h, "10.0.0.1")
    h.push(addition(1, 5, "10.0.0.2"))  # the subscription holds
    (watch,) = h.core.watches.values()
    assert watch.awaiting_push_since == math.inf
    h.do(Call("ping", {}, 30.0, Handle()))
    h.advance(600)  # no answer: the client connects again (to a:1, or to b:2)
    assert h.connects()[-1] == servers[-1] and len(h.connects()) == 2
    assert (watch.awaiting_push_since < math.inf) is (len(servers) > 1)
    if len(servers) > 1:
        return
    for pull in h.unanswered("instances"):
        h.reply(pull, snapshot(1, 6, "10.0.0.1", "10.0.0.2"))
    h.answer_all("ping", {"epoch": 1, "version": "1", "address": "a:1"})
    h.advance(int((SUBSCRIPTION_CONFIRM + 1) * 1000))
    h.answer_all("ping", {"epoch": 1, "version": "1", "address": "a:1"})
    assert [x for x in h.logs() if "sent no push" in x] == []


def test_a_watcher_whose_server_sees_no_majority_moves_to_one_that_does() -> None:
    """review of 2026-12-07: a consumer on a node cut off from its peers (which marks every
    instance renewed elsewhere unhealthy) stayed there for the whole cut, select() failing,
    while the other servers listed them healthy.  Its probe's pong says 1 of 3: it pings
    the others straight and moves to one that sees a majority, and pulls there."""
    h = Harness(servers=("a:1", "b:2", "c:3"))
    calls: list[list[Instance]] = []
    handle = Handle()
    h.do(Subscribe(SVC, calls.append, 3.0, handle))
    (pull,) = h.unanswered("instances")
    h.reply(pull, snapshot(1, 5, "10.0.0.1"))
    h.advance(0)
    (probe,) = h.unanswered("ping")
    assert probe.to == "a:1"
    h.reply(probe, {**PONG, "members_up": 1, "members": 3})
    others = {p.to: p for p in h.unanswered("ping")}
    assert set(others) == {"b:2", "c:3"}, others
    h.reply(others["c:3"], {**PONG, "members_up": 1, "members": 3})
    assert h.core.server == "a:1"  # c sees no majority either
    h.reply(others["b:2"], {**PONG, "members_up": 2, "members": 3})
    assert h.core.server == "b:2" and h.connects()[-1] == "b:2"
    assert any("sees only 1 of the 3 configured members" in x for x in h.logs("warning"))


def test_a_watcher_whose_server_sees_a_majority_stays() -> None:
    h = Harness(servers=("a:1", "b:2", "c:3"))
    watching(h, "10.0.0.1")  # its probe was answered without members_up: a majority
    h.advance(5000)
    h.answer_all("ping", {**PONG, "members_up": 3, "members": 3})
    assert h.core.server == "a:1" and [p.to for p in h.unanswered("ping")] == []


def _young_empty(h: Harness) -> dict[str, Any]:
    """A node that started 2 s ago, not caught up from its peers, lists nothing."""
    return {**snapshot(1, 1), "synced": False, "table_age": 2.0}


def test_a_first_empty_list_from_a_young_node_not_caught_up_asks_another_server() -> None:
    """review of 2026-12-07: a consumer started on a node restarted inside a cut (alone,
    its table young, not caught up) was handed [] for a service the others listed.  The
    empty first answer is held; another server is asked, and its list is taken."""
    h = Harness(servers=("a:1", "b:2"))
    calls: list[list[Instance]] = []
    handle = Handle()
    h.do(Subscribe(SVC, calls.append, 3.0, handle))
    (pull,) = h.unanswered("instances")
    assert pull.to == "a:1"
    h.reply(pull, _young_empty(h))
    assert h.outcome(handle) is None  # not answered with []
    (second,) = h.unanswered("instances")
    assert second.to == "b:2", second
    h.reply(second, snapshot(7, 9, "10.0.0.1", "10.0.0.2"))
    done = h.outcome(handle)
    assert isinstance(done, Complete) and ips(done.result) == ["10.0.0.1", "10.0.0.2"], done


def test_a_young_nodes_empty_first_answer_is_taken_when_no_other_server_answers() -> None:
    h = Harness(servers=("a:1", "b:2"))
    handle = Handle()
    h.do(Subscribe(SVC, lambda listing: None, 5.0, handle))
    h.reply(h.unanswered("instances")[0], _young_empty(h))
    for _ in range(40):  # b never answers: the held answer is the one
        if h.outcome(handle) is not None:
            break
        h.advance(100)
    done = h.outcome(handle)
    assert isinstance(done, Complete) and done.result == [], done


def test_an_empty_first_answer_from_a_caught_up_node_is_taken_at_once() -> None:
    h = Harness(servers=("a:1", "b:2"))
    handle = Handle()
    h.do(Subscribe(SVC, lambda listing: None, 3.0, handle))
    h.reply(h.unanswered("instances")[0], {**snapshot(1, 1), "synced": True, "table_age": 2.0})
    done = h.outcome(handle)
    assert isinstance(done, Complete) and done.result == [] and not h.unanswered("instances")
