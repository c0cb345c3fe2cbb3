"""ClientSession: a ``register`` no node could take is kept and made once a node answers
(review59 F2, Nacos 2's redo), on a fake clock (ms).  Before, the caller was told "never
left this client (not applied)" and nothing was ever tried again: a provider started
during an outage that logged the error and went on stayed undiscoverable."""

from __future__ import annotations

import pytest
from session_harness import SVC, Handle, Harness, registration

from meshreg.client import session as session_module
from meshreg.client.actions import Complete, Fail
from meshreg.client.commands import (
    CloseSession,
    Deregister,
    ListRegistrations,
    Register,
    RegisterBatch,
    Registration,
    Subscribe,
)
from meshreg.client.session import KEPT_REGISTER_RETRY
from meshreg.errors import ErrorCode, ServerUnreachableError

ATTEMPT_MS = 500
PING = {"epoch": 1, "version": "1", "address": "x"}
RETRY_MS = int(KEPT_REGISTER_RETRY * 1000)


def failed_register(h: Harness, n: int = 0) -> Fail:
    handle = Handle(f"r{n}")
    h.do(Register(registration(n, session=h.session), 1.0, handle))
    h.advance(1000)
    done = h.outcome(handle)
    assert isinstance(done, Fail), done
    return done


def node_answers(h: Harness) -> None:
    """The node is back: it answers the ping in flight (the offline probe)."""
    for _ in range(200):
        if pings := [p for p in h.unanswered("ping") if p.to == h.connected]:
            h.reply(pings[0], PING)
            return
        h.advance(100)
    raise AssertionError("no ping in flight")


@pytest.mark.parametrize("session", [False, True])
def test_a_register_no_node_answered_is_kept_and_made_once_a_node_answers(session: bool) -> None:
    h = Harness(attempt_ms=ATTEMPT_MS, session=session)
    done = failed_register(h)
    assert isinstance(done.error, ServerUnreachableError)
    assert done.error.registration_kept and "deregister() drops it" in str(done.error)
    assert h.core.registrations == {} and h.core.status.kept_registrations == 1
    node_answers(h)
    again = [r for r in h.unanswered("register") if r.to == h.connected]
    assert again, "the kept registration was not sent when the node answered"
    h.reply(again[-1])
    reg = registration(0)
    assert (reg.key, reg.iid) in h.core.registrations  # a registration as any other now
    assert h.core.status.kept_registrations == 0
    assert any("kept while no node could take it" in t for t in h.logs("info"))
    sent = len(h.requests("register"))
    h.advance(RETRY_MS * 2)
    assert len(h.requests("register")) == sent  # made: never tried again


def test_a_kept_registration_is_tried_every_few_seconds_while_nodes_refuse_it() -> None:
    """A node that answers but is not ready (UNAVAILABLE): tried again every
    KEPT_REGISTER_RETRY, not only when a node answers after a silence."""
    h = Harness(attempt_ms=ATTEMPT_MS)
    handle = Handle("r")
    h.do(Register(registration(0), 3.0, handle))
    (first,) = h.unanswered("register")
    h.fail(first, ErrorCode.UNAVAILABLE, "catching up")
    done = h.outcome(handle)
    assert isinstance(done, Fail) and done.error.registration_kept
    tries = len(h.requests("register"))
    h.advance(RETRY_MS + 100)
    assert len(h.requests("register")) == tries + 1
    h.reply(h.unanswered("register")[-1])
    assert h.core.registrations


def test_deregister_drops_a_kept_registration_and_a_refusal_keeps_nothing() -> None:
    h = Harness(attempt_ms=ATTEMPT_MS)
    failed_register(h, 0)
    reg = registration(0)
    h.do(Deregister(reg.key, reg.iid, reg.fields, 1.0, Handle("d")))
    node_answers(h)
    assert not [r for r in h.unanswered("register") if r.fields["ip"] == reg.fields["ip"]]
    # an error waiting cannot cure: nothing kept, nothing tried again
    handle = Handle("q")
    h.do(Register(registration(1), 3.0, handle))
    (sent,) = h.unanswered("register")
    h.fail(sent, ErrorCode.RESOURCE_EXHAUSTED, "max_instances_per_client")
    done = h.outcome(handle)
    assert isinstance(done, Fail) and not done.error.registration_kept
    tries = len(h.requests("register"))
    h.advance(RETRY_MS * 3)
    assert len(h.requests("register")) == tries and h.core.registrations == {}


def test_a_register_answered_is_not_kept_nor_sent_again() -> None:
    h = Harness(attempt_ms=ATTEMPT_MS)
    handle = Handle("r")
    h.do(Register(registration(0), 3.0, handle))
    h.reply(h.unanswered("register")[0])
    assert isinstance(h.outcome(handle), Complete)
    assert h.core._kept_registrations == {}


def test_a_closing_client_drops_its_kept_registrations_without_trying_them() -> None:
    h = Harness(attempt_ms=ATTEMPT_MS)
    failed_register(h)
    reg = registration(0)
    listed = Handle("list")
    h.do(ListRegistrations(listed, closing=True, wait=0.5))
    done = h.outcome(listed)
    # nothing answered "made", but the try left this client and failed (outcome unknown):
    # a node may hold it, so the close deregisters it too (review72 F3); nothing is tried
    assert isinstance(done, Complete), done
    assert [(key, iid) for key, iid, _ in done.result] == [(reg.key, reg.iid)]
    tries = len(h.requests("register"))
    node_answers(h)
    h.advance(RETRY_MS * 2)
    assert len(h.requests("register")) == tries
    assert h.core.status.kept_registrations == 0
    assert not [t for t in h.logs("warning") if "is dropped" in t]


# -- the code review of the change (review60), each failed before its fix ------------------
def test_a_kept_try_deregistered_in_flight_is_not_kept_alive_after_a_session_retry() -> None:
    """F2: the try refused RESOURCE_EXHAUSTED (session table full) went again without its
    guard: answered, the deregistered instance was kept alive."""
    h = Harness(attempt_ms=ATTEMPT_MS, session=True)
    handle = Handle("r")
    h.do(Register(registration(0, session=True), 3.0, handle))
    (first,) = h.unanswered("register")
    h.fail(first, ErrorCode.UNAVAILABLE, "not ready")
    for so in h.unanswered("session_open"):
        h.fail(so, ErrorCode.UNAVAILABLE, "not ready")
    done = h.outcome(handle)
    assert isinstance(done, Fail) and done.error.registration_kept
    for _ in range(31):
        h.advance(100)
        for p in h.unanswered("ping") + h.unanswered("session_open"):
            h.fail(p, ErrorCode.UNAVAILABLE, "not ready")
    (try_,) = h.unanswered("register")
    reg = registration(0)
    h.do(Deregister(reg.key, reg.iid, reg.fields, 1.0, Handle("d")))
    h.fail(try_, ErrorCode.RESOURCE_EXHAUSTED, "sessions table full")
    for retry in h.unanswered("register"):
        h.reply(retry)
    assert (reg.key, reg.iid) not in h.core.registrations


def test_over_the_bound_the_caller_is_not_told_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """F5: the bound kept nothing but the error said it was kept."""
    monkeypatch.setattr(session_module, "MAX_KEPT_REGISTRATIONS", 1)
    h = Harness(attempt_ms=ATTEMPT_MS)
    told = []
    for n in range(2):
        handle = Handle(f"r{n}")
        h.do(Register(registration(n), 3.0, handle))
        ip = registration(n).fields["ip"]
        sent = [s for s in h.unanswered("register") if s.fields["ip"] == ip]
        h.fail(sent[-1], ErrorCode.UNAVAILABLE, "not ready")
        done = h.outcome(handle)
        assert isinstance(done, Fail)
        told.append(done.error.registration_kept)
    assert told == [True, False] and h.core.status.kept_registrations == 1


def test_a_register_again_replaces_the_kept_one_no_older_try_goes_after_it() -> None:
    """F3: the kept weight-1 register went out after the caller's weight-5 one had been
    answered: the node held weight 1, the client believed 5."""
    h = Harness(attempt_ms=ATTEMPT_MS)
    h.do(Register(registration(0), 1.0, Handle("r1")))
    h.advance(1000)
    base = registration(0)
    newer = Registration(base.key, base.iid, {**base.fields, "weight": 5.0})
    h.do(Register(newer, 3.0, Handle("r2")))
    assert h.core.status.kept_registrations == 0
    mine = [s for s in h.unanswered("register") if s.fields["weight"] == 5.0]
    sent = len(h.sent)
    h.reply(mine[-1])
    for s in h.unanswered("register"):
        h.reply(s)
    weights = [s.fields["weight"] for s in h.sent[sent:] if s.op == "register"]
    assert 1.0 not in weights
    assert h.core.registrations[(base.key, base.iid)].fields["weight"] == 5.0


def test_a_kept_subscriber_refused_for_good_later_is_dropped_and_said() -> None:
    """F4: a kept subscriber whose later pulls the ACL refused was pulled every 3 s for
    ever, with nothing logged."""
    h = Harness(servers=("a:1",), attempt_ms=300, resync_ms=1_000_000)
    handle = Handle()
    h.do(Subscribe(SVC, lambda xs: None, 1.0, handle))
    h.fail_all("instances", ErrorCode.UNAVAILABLE, "catching up from its peers")
    h.advance(1100)
    assert h.outcome(handle).error.listener_kept  # type: ignore[union-attr]
    pulls = len(h.requests("instances"))
    for _ in range(200):  # 20 s; the node answers at once: PERMISSION_DENIED
        h.advance(100)
        h.fail_all("instances", ErrorCode.PERMISSION_DENIED, "key k may not read")
        for p in h.unanswered("ping"):
            h.reply(p, PING)
    assert len(h.requests("instances")) - pulls <= 1 and not h.core.watching(SVC)
    assert any("listener(s) are dropped" in t for t in h.logs("warning"))


# -- register_many: its entries no node could take are kept too -----------------------------
def bulk(h: Harness, count: int) -> Handle:
    """A ``register_many`` of ``count`` instances (one handle for all, as the client's)."""
    handle = Handle("many")
    h.do(RegisterBatch(tuple((registration(n), None) for n in range(count)), 1.0, handle))
    return handle


def test_register_many_entries_no_node_answered_are_kept_and_made_in_one_batch() -> None:
    """Before, ``register_many`` kept nothing: a fleet agent started during an outage
    logged the failed entries and its instances stayed undiscoverable."""
    h = Harness(attempt_ms=ATTEMPT_MS)
    handle = bulk(h, 5)
    h.advance(1500)
    done = h.outcome(handle)
    assert isinstance(done, Complete) and len(done.result) == 5
    assert all(exc.registration_kept for _, exc in done.result)
    assert h.core.status.kept_registrations == 5 and h.core.registrations == {}
    batches = len(h.requests("register_batch"))
    node_answers(h)
    again = h.unanswered("register_batch")
    assert len(again) == 1 and len(again[0].fields["instances"]) == 5  # one request, not 5
    assert h.unanswered("register") == []
    h.answer_batches()
    assert len(h.core.registrations) == 5 and h.core.status.kept_registrations == 0
    h.advance(RETRY_MS * 2)
    assert len(h.requests("register_batch")) == batches + 1  # made: never tried again


def test_register_many_entries_refused_not_ready_are_kept_a_quota_refusal_is_not() -> None:
    h = Harness(attempt_ms=ATTEMPT_MS)
    handle = bulk(h, 3)
    ips = [registration(n).fields["ip"] for n in range(3)]
    h.answer_batches({
        ips[0]: (ErrorCode.UNAVAILABLE, "catching up from its peers"),
        ips[1]: (ErrorCode.RESOURCE_EXHAUSTED, "max_instances_per_client"),
    })
    done = h.outcome(handle)
    assert isinstance(done, Complete)
    told = {index: exc.registration_kept for index, exc in done.result}
    assert told == {0: True, 1: False}
    assert h.core.status.kept_registrations == 1 and len(h.core.registrations) == 1
    for _ in range(RETRY_MS // 100 + 1):  # the node answers beats: the kept one is tried
        h.advance(100)
        h.answer_all("beat")
        h.answer_all("ping", PING)
    (again,) = h.unanswered("register")
    assert again.fields["ip"] == ips[0]
    h.reply(again)
    assert len(h.core.registrations) == 2 and h.core.status.kept_registrations == 0


def test_a_kept_entry_deregistered_while_its_batch_is_out_is_not_kept_alive() -> None:
    h = Harness(attempt_ms=ATTEMPT_MS)
    bulk(h, 3)
    h.advance(1500)
    node_answers(h)
    (out,) = h.unanswered("register_batch")
    gone = registration(1)
    h.do(Deregister(gone.key, gone.iid, gone.fields, 1.0, Handle("d")))
    h.answer_batches()
    assert (gone.key, gone.iid) not in h.core.registrations and len(h.core.registrations) == 2
    assert h.core.status.kept_registrations == 0


def test_a_register_many_replaces_the_kept_registration_of_the_same_instance() -> None:
    h = Harness(attempt_ms=ATTEMPT_MS)
    failed_register(h, 0)
    assert h.core.status.kept_registrations == 1
    singles = len(h.requests("register"))
    handle = bulk(h, 1)
    assert h.core.status.kept_registrations == 0  # the caller's newer one goes instead
    for _ in range(50):
        h.advance(100)
        if h.unanswered("register_batch"):
            break
    h.answer_batches()
    assert isinstance(h.outcome(handle), Complete) and h.outcome(handle).result == []  # type: ignore[union-attr]
    assert len(h.requests("register")) == singles  # the kept one was never sent again


def test_many_kept_registers_are_tried_again_in_batches() -> None:
    h = Harness(attempt_ms=ATTEMPT_MS)
    for n in range(4):
        h.do(Register(registration(n), 1.0, Handle(f"r{n}")))
    h.advance(1500)
    assert h.core.status.kept_registrations == 4
    singles = len(h.requests("register"))
    node_answers(h)
    assert len(h.requests("register")) == singles
    assert len(h.batched()) == 4
    h.answer_batches()
    assert len(h.core.registrations) == 4 and h.core.status.kept_registrations == 0
    assert any("kept while no node could take it" in t for t in h.logs("info"))


# -- review61 F4: a deregister of a kept registration no node can hold -----------------------
def test_deregister_of_a_kept_registration_that_never_left_completes_at_once() -> None:
    """Stopping a sidecar that no node ever answered waited its whole time-out for a
    deregister no node could take, then failed (exit 1)."""
    h = Harness(attempt_ms=ATTEMPT_MS, handshake=False)
    done = failed_register(h)
    assert done.error.registration_kept and done.error.unsent
    reg = registration(0)
    sent = len(h.requests("deregister"))
    handle = Handle("d")
    h.do(Deregister(reg.key, reg.iid, reg.fields, 3.0, handle))
    assert isinstance(h.outcome(handle), Complete)  # at once: nothing to undo
    assert len(h.requests("deregister")) == sent and h.core.status.kept_registrations == 0


def test_deregister_of_a_kept_registration_that_may_be_held_is_sent() -> None:
    """One try got no answer on a live connection (it may be applied): the deregister
    goes to the node as any other."""
    h = Harness(attempt_ms=ATTEMPT_MS)
    done = failed_register(h)
    assert done.error.registration_kept and not getattr(done.error, "unsent", False)
    reg = registration(0)
    h.do(Deregister(reg.key, reg.iid, reg.fields, 3.0, Handle("d")))
    assert h.unanswered("deregister")


def test_closing_a_session_no_connection_ever_carried_completes_at_once() -> None:
    """review61 F4: ``close()`` of a client that no node ever answered waited its whole
    time-out for a ``session_close`` that could not leave."""
    h = Harness(attempt_ms=ATTEMPT_MS, handshake=False, session=True)
    failed_register(h)
    handle = Handle("close")
    h.do(CloseSession(3.0, handle))
    done = h.outcome(handle)
    assert isinstance(done, Complete) and done.result == {"deregistered": 0}
    assert h.unanswered("session_close") == []
