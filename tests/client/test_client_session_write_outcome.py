"""ClientSession: a registry write while its service's responsible node is frozen (review13,
F-freeze-reg); fake clock (ms), scripted nodes.

Budget: every attempt's deadline lets a node that forwards the write answer it (the owner's
answer, or its own fallback, FORWARD_LEAD before the deadline: core/requests) before the
attempt ends, so the client never gives up on a node that is working on its write, and a
second attempt fits in the default time-out after a first one at a frozen owner.
Wording: a write that does time out may have been applied: ``OutcomeUnknownError`` saying
so, attempt by attempt (whom, in what role, how long), not "no reply from server(s) ...".
"""

from __future__ import annotations

import pytest
from session_harness import Handle, Harness, Sent, registration
from test_client_session_failover import owned_elsewhere, with_view

from meshreg.client.actions import Complete, ConnectServer, Fail, SendRequest
from meshreg.client.commands import Call, Register
from meshreg.client.defaults import DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_TIMEOUT
from meshreg.client.messages import ReplyError
from meshreg.core.requests import FORWARD_LEAD, FORWARD_MARGIN, FORWARD_MIN_WAIT
from meshreg.errors import ErrorCode, OutcomeUnknownError, ServerUnreachableError

WALL = 1_800_000_000.0  # the client's wall clock is its monotonic clock plus this
PEER_REQUEST_TIMEOUT = 2.0  # s; the nodes' default


def forwarder_answers_at(sent: Sent) -> float:
    """When a node that forwards ``sent`` to a silent owner gives up on it and answers
    (client clock, clocks in sync): FORWARD_LEAD before its deadline (DistroNode.
    forward_wait, before its bounds: tests/core/test_forward_wait.py)."""
    return sent.fields["deadline"] / 1000 - WALL - FORWARD_LEAD


def default_harness(servers: tuple[str, ...] = ("a:1", "b:2", "c:3")) -> Harness:
    return Harness(
        servers=servers, attempt_ms=round(DEFAULT_ATTEMPT_TIMEOUT * 1000), wall_offset=WALL
    )


def test_after_a_frozen_owner_the_forwarding_node_answers_before_the_attempt_ends() -> None:
    """The reviewer's budget: the owner (a) is the first server and frozen; b forwards to
    it, and answers (its fallback) within the client's attempt: the call succeeds."""
    h = default_harness()
    handle = Handle("r")
    h.do(Register(registration(0), DEFAULT_TIMEOUT, handle))
    h.advance(1000)  # the frozen owner: no answer
    (at_b,) = h.requests("register", to="b:2")
    answer_at = forwarder_answers_at(at_b)
    assert answer_at <= 1.0 + DEFAULT_ATTEMPT_TIMEOUT - FORWARD_MARGIN + 1e-9
    h.advance(round(answer_at * 1000) - h.now_ms)
    assert h.requests("register", to="c:3") == []  # the client still waits for b
    h.reply(at_b)
    assert isinstance(h.outcome(handle), Complete)
    assert h.now < DEFAULT_TIMEOUT


def test_a_first_server_forwarding_to_a_frozen_owner_answers_within_the_first_attempt() -> None:
    """The owner last in the list (the reviewer's failing run): a forwards, answers in time."""
    h = default_harness()
    handle = Handle("r")
    h.do(Register(registration(0), DEFAULT_TIMEOUT, handle))
    (at_a,) = h.requests("register", to="a:1")
    answer_at = forwarder_answers_at(at_a)
    assert answer_at == pytest.approx(DEFAULT_ATTEMPT_TIMEOUT - FORWARD_MARGIN)
    h.advance(round(answer_at * 1000))
    assert [s.to for s in h.requests("register")] == ["a:1"]  # no failover meanwhile
    h.reply(at_a)
    assert isinstance(h.outcome(handle), Complete)
    assert h.connects() == ["a:1"]


@pytest.mark.parametrize(
    ("timeout", "attempt_ms"), [(3.0, 1000), (3.0, 500), (2.5, 2000), (10.0, 3000)]
)
def test_every_attempt_leaves_a_forwarding_node_time_to_answer(
    timeout: float, attempt_ms: int
) -> None:
    """Whatever the budgets, each attempt's deadline makes a forwarding node answer
    FORWARD_MARGIN before the attempt ends (when the attempt is longer than the margin
    plus the owner's least wait), the last, cut short by the call's time-out, included."""
    h = Harness(servers=("a:1", "b:2", "c:3"), attempt_ms=attempt_ms, wall_offset=WALL)
    h.do(Register(registration(0), timeout, Handle("r")))
    h.advance(round(timeout * 1000) + 10)
    sends = h.requests("register")
    assert len(sends) >= 2
    starts = [0.0, *[min(timeout, (i + 1) * attempt_ms / 1000) for i in range(len(sends) - 1)]]
    for sent, start in zip(sends, starts, strict=True):
        end = min(timeout, start + attempt_ms / 1000)
        if end - start < FORWARD_MARGIN + FORWARD_MIN_WAIT:
            continue
        wait = min(PEER_REQUEST_TIMEOUT, max(FORWARD_MIN_WAIT, forwarder_answers_at(sent) - start))
        assert start + wait <= end - FORWARD_MARGIN + 1e-9, (sent, start, end)


def test_a_write_that_times_out_says_its_outcome_is_unknown_attempt_by_attempt() -> None:
    """With the cluster view: straight to the owner (frozen), then through the server
    (forwarding), then the next server: none answers.  The error says the write may have
    been applied, and what each node was and how long it was given."""
    h = Harness(servers=("a:1",), attempt_ms=1000, wall_offset=WALL)
    with_view(h)
    reg, owner = owned_elsewhere()
    handle = Handle("r")
    h.do(Register(reg, 3.0, handle))
    h.advance(3000)
    done = h.outcome(handle)
    assert isinstance(done, Fail) and isinstance(done.error, OutcomeUnknownError)
    assert isinstance(done.error, ServerUnreachableError)  # callers catching it still do
    text = str(done.error)
    service = reg.key.service
    assert text.startswith(
        f"register {service} 10.0.0.1:80 (public/DEFAULT_GROUP): outcome unknown"
    )
    assert "may have been applied, or may still be until 0.5s after this error" in text
    assert f"{owner} (the service's responsible node): no reply in 1s" in text
    assert f"a:1 (forwarding it to the responsible node {owner}): no reply in 1s" in text
    tried = [s.to for s in h.requests("register") if s.fields.get("service") == service]
    assert tried[:2] == [owner, "a:1"] and len(tried) == 3
    third = tried[2]
    role = "the service's responsible node" if third == owner else "forwarding it to"
    assert f"{third} ({role}" in text
    assert "no reply from meshreg server(s)" not in text  # not "unreachable"
    assert "registry writes are idempotent" in text
    assert "so each node named did not answer itself" in text


def test_a_write_without_a_view_or_deadline_says_so() -> None:
    h = Harness(servers=("a:1", "b:2"), attempt_ms=500)  # no wall clock: no deadline
    handle = Handle("r")
    h.do(Call("deregister", {**registration(0).fields}, 1.0, handle))
    h.advance(1000)
    done = h.outcome(handle)
    assert isinstance(done, Fail) and isinstance(done.error, OutcomeUnknownError)
    text = str(done.error)
    assert "(it carried no deadline)" in text
    role = "applies it or forwards it to the service's responsible node"
    assert f"a:1 ({role}): no reply in 0.5s; b:2 ({role}): no reply in 0.5s" in text
    assert "did not answer itself" not in text  # without a deadline a forwarder waits 2 s


def test_a_read_that_times_out_is_still_unreachable_not_unknown() -> None:
    h = Harness(servers=("a:1",), attempt_ms=500, wall_offset=WALL)
    handle = Handle("r")
    h.do(Call("services", {"namespace": "public", "group": "DEFAULT_GROUP"}, 1.0, handle))
    h.advance(1000)
    done = h.outcome(handle)
    assert isinstance(done, Fail) and type(done.error) is ServerUnreachableError


def test_a_write_that_never_left_the_client_is_not_an_unknown_outcome() -> None:
    """review19 F8: no server connection completed its handshake (nothing listens, the node
    is stopped, the keys differ): libzmq still held the write, and dropped it with the
    connection; it was not applied, and the error says so, naming no outcome."""
    h = Harness(servers=("a:1", "b:2"), attempt_ms=500, handshake=False, wall_offset=WALL)
    handle = Handle("r")
    h.do(Call("deregister", {**registration(0).fields}, 1.0, handle))
    h.advance(1000)
    done = h.outcome(handle)
    assert isinstance(done, Fail) and type(done.error) is ServerUnreachableError, done
    assert done.error.unsent and "never left this client (not applied)" in str(done.error)
    h2 = Harness(servers=("a:1",), attempt_ms=500, handshake=False, wall_offset=WALL)
    h2.do(Call("deregister", {**registration(0).fields}, 1.0, handle2 := Handle("r2")))
    h2.advance(200)
    h2.core.server_handshaken()  # the connection comes up: the write leaves
    h2.advance(800)
    late = h2.outcome(handle2)
    assert isinstance(late, Fail) and isinstance(late.error, OutcomeUnknownError), late


def test_a_write_sent_after_the_connection_dropped_never_left_the_client() -> None:
    """review24 (notes): every node went down after the handshake; the first write after
    it was called an unknown outcome, blaming a stopped or overloaded node."""
    h = Harness(servers=("a:1",), attempt_ms=500, wall_offset=WALL)
    before = Handle("before")
    h.do(Call("deregister", {**registration(0).fields}, 1.0, before))  # left on a live link
    h.run(h.core.server_disconnected(h.now))  # the node died: none completes from now on
    h.handshake = False
    after = Handle("after")
    h.do(Call("deregister", {**registration(1).fields}, 1.0, after))
    h.advance(1000)
    early, late = h.outcome(before), h.outcome(after)
    assert isinstance(early, Fail) and isinstance(early.error, OutcomeUnknownError), early
    assert isinstance(late, Fail) and type(late.error) is ServerUnreachableError, late
    assert late.error.unsent and "never left this client (not applied)" in str(late.error)


def test_a_refused_handshake_is_named_and_marked_definitive() -> None:
    """review22 F1: the node's ACL refused this client's key (ZAP 400): the error says so
    and is ``refused`` (a sidecar stops waiting); a connection closed midway is named
    but not definitive (a node restarting does that)."""
    for why, definitive in (("authentication refused (ZAP status 400)", True),
                            ("connection closed during the handshake", False)):  # fmt: skip
        h = Harness(servers=("a:1",), attempt_ms=500, handshake=False, wall_offset=WALL)
        h.core.server_refused(why, definitive)
        handle = Handle("r")
        h.do(Call("deregister", {**registration(0).fields}, 1.0, handle))
        h.advance(1000)
        done = h.outcome(handle)
        assert isinstance(done, Fail) and isinstance(done.error, ServerUnreachableError)
        assert done.error.unsent and f"(a:1 said: {why})" in str(done.error)
        assert done.error.refused is definitive


def test_an_attempt_cut_short_by_a_closed_connection_is_not_called_a_time_out() -> None:
    """review33 nit: a deregister whose node was being stopped reported "no reply in 0s"
    for the attempt its closed connection ended at once."""
    h = Harness(servers=("a:1", "b:2"), attempt_ms=1000)
    handle = Handle("r")
    h.do(Call("deregister", {**registration(0).fields}, 2.0, handle))
    h.advance(3)
    h.run(h.core.server_disconnected(h.now))  # a:1 stopped: over to b:2 at once
    h.advance(2000)
    done = h.outcome(handle)
    assert isinstance(done, Fail) and isinstance(done.error, OutcomeUnknownError)
    text = str(done.error)
    role = "applies it or forwards it to the service's responsible node"
    assert f"a:1 ({role}): no reply, attempt cut short after 3 ms (its connection " in text
    assert f"b:2 ({role}): no reply in " in text and "in 0s" not in text


def test_a_write_failed_as_never_sent_is_dropped_from_the_socket_first() -> None:
    """review34 F4: with one server, a config write that waited in the connection's queue
    (the node stopped before the handshake) was failed as "never left this client (not
    applied)", and the queue kept it: the node resumed 0.13 s later and applied it.  The
    socket is replaced (its queue dropped) before that error, and what else waited on
    it is sent again on the new one."""
    h = Harness(servers=("a:1",), attempt_ms=500, handshake=False, wall_offset=WALL)
    first, second = Handle("first"), Handle("second")
    h.do(Call("deregister", {**registration(0).fields}, 2.0, first))
    h.advance(1000)
    h.do(Call("deregister", {**registration(1).fields}, 3.0, second))
    h.advance(1000)
    done = h.outcome(first)
    assert isinstance(done, Fail) and "never left this client (not applied)" in str(done.error)
    failed_at = next(i for i, a in enumerate(h.actions) if isinstance(a, Fail)
                     and a.reply_to is first)  # fmt: skip
    first_id = next(s.id for s in h.sent if s.fields.get("ip") == registration(0).iid.ip
                    and s.fields.get("port") == registration(0).iid.port)  # fmt: skip
    last_send = max(i for i, a in enumerate(h.actions)
                    if isinstance(a, SendRequest) and a.request_id == first_id)  # fmt: skip
    connects = [i for i, a in enumerate(h.actions) if isinstance(a, ConnectServer)]
    assert any(last_send < i < failed_at for i in connects), h.actions[last_send:failed_at + 1]
    again = [i for i, a in enumerate(h.actions) if isinstance(a, SendRequest)
             and a.request_id != first_id and i > failed_at - 3]  # fmt: skip
    assert again, "the other waiting write was not sent again on the new socket"


def _late_refusal(h: Harness, req: Sent) -> None:
    message = "register: reached node n1 0.2s after its deadline: not applied"
    h.run(h.core.on_reply(req.to, ReplyError(req.id, int(ErrorCode.UNAVAILABLE), message,
                                             unwritten=True), h.now))  # fmt: skip


@pytest.mark.parametrize("other", ["answers", "silent"])
def test_one_copy_refused_as_late_is_not_the_calls_answer(other: str) -> None:
    """review35 F1: a write sent straight to its owner, then again through the server
    under the same id; the owner, resumed from a stop, refused the first copy as late
    ("not applied") and the client took that for the call's answer, while the second
    copy was applied.  Now the refusal ends nothing while another copy is out: the
    other's answer is the call's, or, if none comes, the outcome is unknown."""
    h = Harness(servers=("a:1",), attempt_ms=1000, wall_offset=WALL)
    with_view(h)
    reg, owner = owned_elsewhere()
    handle = Handle("r")
    h.do(Register(reg, 3.0, handle))
    h.advance(1000)  # the owner silent: the same write again through the server
    copies = [s for s in h.requests("register") if s.fields.get("service") == reg.key.service]
    assert [c.to for c in copies] == [owner, "a:1"]
    _late_refusal(h, copies[0])
    assert h.outcome(handle) is None  # not the call's answer
    if other == "answers":
        h.reply(copies[1])
        assert isinstance(h.outcome(handle), Complete)
        return
    h.advance(2500)
    done = h.outcome(handle)
    assert isinstance(done, Fail) and isinstance(done.error, OutcomeUnknownError), done
    assert f"Meanwhile {owner} refused one copy" in str(done.error)


def test_a_write_whose_every_copy_was_refused_as_late_was_not_applied() -> None:
    h = Harness(servers=("a:1",), attempt_ms=1000, wall_offset=WALL)
    with_view(h)
    reg, owner = owned_elsewhere()
    handle = Handle("r")
    h.do(Register(reg, 3.0, handle))
    h.advance(1000)
    copies = [s for s in h.requests("register") if s.fields.get("service") == reg.key.service]
    _late_refusal(h, copies[0])
    assert h.outcome(handle) is None
    _late_refusal(h, copies[1])  # (the one answer each copy gets)
    # the first late refusal sent one copy more, with a new deadline (review63): refused
    # late too, it is the call's answer (the clocks differ)
    mine = [s for s in h.requests("register") if s.fields.get("service") == reg.key.service]
    assert len(mine) == len(copies) + 1
    _late_refusal(h, mine[-1])
    done = h.outcome(handle)
    assert isinstance(done, Fail) and not isinstance(done.error, OutcomeUnknownError), done
    assert "not applied" in str(done.error)


def test_a_copy_that_never_left_does_not_hold_back_a_refusal() -> None:
    """A copy queued on a connection that never completed its handshake (nothing listened
    there: the client moved to the next server, the socket and its queue replaced) is
    no copy: the next server's refusal that wrote nothing is the call's answer at once
    (CI on b58ffc9: a client given three servers, two of them killed, waited out its
    time-out and said "outcome unknown" instead of "UNAVAILABLE ... need a majority")."""
    h = Harness(servers=("a:1", "b:2"), attempt_ms=1000, handshake=False, wall_offset=WALL)
    handle = Handle("r")
    h.do(Call("deregister", {**registration(0).fields}, 3.0, handle))
    h.handshake = True  # the next connection completes
    h.run(h.core.server_unreachable(h.now))  # nothing listens at a:1: over to b:2
    (there,) = [s for s in h.requests("deregister") if s.to == "b:2"]
    _late_refusal(h, there)
    (fresh,) = h.unanswered("deregister")  # sent once more after a late refusal (review63)
    _late_refusal(h, fresh)
    done = h.outcome(handle)
    assert isinstance(done, Fail) and not isinstance(done.error, OutcomeUnknownError), done
    assert "not applied" in str(done.error)


def test_a_late_handshake_on_the_dropped_socket_makes_never_left_unknown() -> None:
    """review34/35 notes: a handshake completing between the loop's poll and the deadline
    check let a queued write leave that the client then failed as "never left (not
    applied)".  The error waits until the loop has closed that socket and said whether
    it connected meanwhile: if it did, the outcome is unknown."""
    h = Harness(servers=("a:1",), attempt_ms=500, handshake=False, wall_offset=WALL)
    h.late_handshake = True  # seen only when the socket was closed
    handle = Handle("r")
    h.do(Call("deregister", {**registration(0).fields}, 1.0, handle))
    h.advance(1000)
    done = h.outcome(handle)
    assert isinstance(done, Fail) and isinstance(done.error, OutcomeUnknownError), done
    assert "never left" not in str(done.error)
    settles = [a for a in h.actions if isinstance(a, ConnectServer) and a.settle is not None]
    assert settles, "the socket the write waited on was replaced without asking"


def test_writes_past_their_deadline_are_not_sent_again_on_the_new_socket() -> None:
    """Two undelivered writes reach their deadline in one turn: both are failed as never
    sent, so neither may go out again on the socket that replaces the dropped one (the
    second was, and would be applied once that connected)."""
    h = Harness(servers=("a:1",), attempt_ms=2000, handshake=False, wall_offset=WALL)
    first, second = Handle("first"), Handle("second")
    h.do(Call("deregister", {**registration(0).fields}, 1.0, first))
    h.do(Call("deregister", {**registration(1).fields}, 1.0, second))
    ids = {s.id for s in h.requests("deregister")}
    before = len(h.actions)
    h.advance(1000)
    for handle in (first, second):
        done = h.outcome(handle)
        assert isinstance(done, Fail) and "never left this client (not applied)" in str(
            done.error
        ), done
    replaced = min(i for i, a in enumerate(h.actions) if isinstance(a, ConnectServer)
                   and i >= before)  # fmt: skip
    again = [a for a in h.actions[replaced:] if isinstance(a, SendRequest)
             and a.request_id in ids]  # fmt: skip
    assert not again, again


def test_every_server_refusing_with_a_late_handshake_keeps_the_call() -> None:
    """``fail_when_refused`` (the CLI): every server refused the connection, so what waits
    is failed as never sent; if the socket turns out to have connected before it was
    closed, the call may have left: it goes on (sent again) instead of "not applied"."""
    h = Harness(servers=("a:1",), attempt_ms=500, handshake=False, wall_offset=WALL,
                fail_when_refused=True)  # fmt: skip
    h.late_handshake = True
    handle = Handle("r")
    h.do(Call("deregister", {**registration(0).fields}, 2.0, handle))
    h.run(h.core.server_unreachable(h.now))
    assert h.outcome(handle) is None
    assert len(h.requests("deregister")) == 2  # sent again on the new connection


def test_a_copy_queued_on_a_socket_that_connected_late_holds_back_a_refusal() -> None:
    """The converse of the test above: the client moved on from a:1, whose socket had
    connected (unseen) before it was closed: that copy may have reached a:1, so the
    next server's refusal is not the call's answer."""
    h = Harness(servers=("a:1", "b:2"), attempt_ms=1000, handshake=False, wall_offset=WALL)
    h.late_handshake = True
    handle = Handle("r")
    h.do(Call("deregister", {**registration(0).fields}, 3.0, handle))
    h.handshake = True
    h.run(h.core.server_unreachable(h.now))
    (there,) = [s for s in h.requests("deregister") if s.to == "b:2"]
    _late_refusal(h, there)
    assert h.outcome(handle) is None
