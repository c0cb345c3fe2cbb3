"""ClientSession: a ``register`` no node could take is kept and made once a node answers
(review59 F2, Nacos 2's redo), on a fake clock (ms).  Before, the caller was told "never
left this client (not applied)" and nothing was ever tried again: a provider started
during an outage that logged the error and went on stayed undiscoverable."""

from __future__ import annotations

import pytest
from session_harness import Handle, Harness, registration

from meshreg.client.actions import Complete, Fail
from meshreg.client.commands import Deregister, ListRegistrations, Register
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
    listed = Handle("list")
    h.do(ListRegistrations(listed, closing=True, wait=0.5))
    done = h.outcome(listed)
    assert isinstance(done, Complete) and done.result == ()  # nothing made: nothing to drop
    tries = len(h.requests("register"))
    node_answers(h)
    h.advance(RETRY_MS * 2)
    assert len(h.requests("register")) == tries
    assert h.core.status.kept_registrations == 0
    assert not [t for t in h.logs("warning") if "is dropped" in t]
