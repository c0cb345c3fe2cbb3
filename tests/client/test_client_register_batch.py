"""ClientSession's bulk registration: ``register_batch`` requests in a bounded window,
grouped by owner with a cluster view, per-entry results, renewals never queued behind
them, one log line per problem, and the fall-back for a node without the op (fake clock)."""

from __future__ import annotations

from session_harness import SID, SVC, Handle, Harness, registration
from test_client_session_failover import MEMBERS, with_view

from meshreg.client.actions import Complete, Fail
from meshreg.client.commands import RegisterBatch
from meshreg.client.session import BATCH_ENTRIES, BATCHES_IN_FLIGHT, MAX_IN_FLIGHT
from meshreg.core.mapping import responsible_node
from meshreg.errors import ErrorCode
from meshreg.model import ServiceKey


def many(count: int, session: bool = False, services: int = 1) -> tuple[tuple, list[Handle]]:
    handles = [Handle(str(n)) for n in range(count)]
    items = tuple(
        (registration(n, session, SVC._replace(service=f"s{n % services}")), handles[n])
        for n in range(count)
    )
    return items, handles


def test_a_bulk_registration_goes_out_in_batches_within_a_bounded_window() -> None:
    h = Harness(servers=("a:1",))
    items, handles = many(5000)
    h.do(RegisterBatch(items, 30.0))
    assert h.requests("register") == []
    out = h.unanswered("register_batch")
    assert len(out) == BATCHES_IN_FLIGHT  # the window: the rest waits in the client
    assert all(len(s.fields["instances"]) == BATCH_ENTRIES for s in out)
    h.answer_batches()
    assert len(h.batched()) == 5000  # each instance sent once
    assert len(h.requests("register_batch")) == -(-5000 // BATCH_ENTRIES)
    assert all(isinstance(h.outcome(x), Complete) for x in handles)
    assert len(h.core.registrations) == 5000


def test_a_renewal_never_waits_behind_registrations() -> None:
    """Session renewals skip the window and its backlog: with registrations queued in
    the client and the request window full, the renewal still leaves at its time."""
    h = Harness(servers=("a:1",), beat_ms=1000, session=True)
    items, _ = many(300, session=True)
    h.do(RegisterBatch(items, 30.0))
    h.answer_all("session_open", {"session": SID})
    h.answer_batches()
    more, _ = many(20_000, session=True)  # a huge registration, left unanswered
    h.do(RegisterBatch(more, 60.0))
    for _ in range(MAX_IN_FLIGHT + 10):  # and the general window full of other calls
        h.core.request("ping", {}, 60.0)
    assert h.core._backlog
    h.advance(1000)
    renewals = h.unanswered("session_renew")  # (and one more: the attempts time out, the
    assert renewals  # client reconnects and asks the timings again, review68 F1)
    assert all(r.fields == {"namespace": "public", "session": SID} for r in renewals)


def test_each_entry_gets_its_own_result_and_refusals_are_one_log_line() -> None:
    h = Harness(servers=("a:1",))
    items, handles = many(600)
    h.do(RegisterBatch(items, 30.0))
    bad = {f"10.0.{n // 250}.{n % 250 + 1}" for n in range(0, 600, 7)}
    h.answer_batches({ip: (ErrorCode.RESOURCE_EXHAUSTED, "quota") for ip in bad})
    for n, handle in enumerate(handles):
        done = h.outcome(handle)
        if n % 7 == 0:
            assert isinstance(done, Fail) and done.error.code == ErrorCode.RESOURCE_EXHAUSTED
        else:
            assert isinstance(done, Complete)
    assert len(h.core.registrations) == 600 - len(bad)
    lines = [x for x in h.logs() if "refused" in x]
    assert len(lines) == 1 and "quota" in lines[0], h.logs()


def test_an_unanswered_batch_fails_its_callers_with_one_log_line() -> None:
    h = Harness(servers=("a:1",), attempt_ms=100)
    items, handles = many(1000)
    h.do(RegisterBatch(items, 1.0))
    h.advance(1500)  # nobody answers, on any server
    assert all(isinstance(h.outcome(x), Fail) for x in handles)
    assert len([x for x in h.logs() if "not registered" in x]) == 1, h.logs()


def test_a_node_without_register_batch_gets_single_registers() -> None:
    h = Harness(servers=("a:1",))
    items, handles = many(600)
    h.do(RegisterBatch(items, 30.0))
    assert h.fail_all("register_batch", ErrorCode.UNKNOWN_OP, "unknown op") == 3  # 600 / 256
    h.answer_all("register")
    assert len(h.requests("register")) == 600
    assert all(isinstance(h.outcome(x), Complete) for x in handles)
    assert len([x for x in h.logs() if "does not know register_batch" in x]) == 1
    h.do(RegisterBatch(many(3)[0], 30.0))  # from then on, single registers
    assert len(h.unanswered("register")) == 3 and h.unanswered("register_batch") == []


def test_with_a_cluster_view_each_batch_holds_one_owners_instances_and_goes_to_it() -> None:
    h = Harness(servers=("a:1",))
    with_view(h)
    items, handles = many(900, services=30)
    h.do(RegisterBatch(items, 30.0))
    h.answer_batches()
    assert all(isinstance(h.outcome(x), Complete) for x in handles)
    members = sorted(MEMBERS)
    for sent in h.requests("register_batch"):
        owners = {
            responsible_node(ServiceKey("public", "DEFAULT_GROUP", e["service"]), members)
            for e in sent.fields["instances"]
        }
        assert len(owners) == 1
        assert sent.to == MEMBERS[owners.pop()]


def test_one_handle_for_a_whole_command_gets_the_failures_once() -> None:
    """``register_many``'s form: one handle per command (no Future per instance),
    completed once when its last item is done, with the (index, error) of the failed."""
    h = Harness(servers=("a:1",))
    items, _ = many(700)
    chunk = Handle("chunk")
    h.do(RegisterBatch(tuple((reg, None) for reg, _ in items), 30.0, chunk))
    h.answer_batches()
    done = h.outcome(chunk)
    assert isinstance(done, Complete) and done.result == []
    h2 = Harness(servers=("a:1",))
    chunk2 = Handle("chunk2")
    h2.do(RegisterBatch(tuple((reg, None) for reg, _ in items), 30.0, chunk2))
    out = h2.unanswered("register_batch")
    h2.reply(out[0], {"results": [None] * len(out[0].fields["instances"])})
    assert h2.outcome(chunk2) is None  # two batches still out
    h2.answer_batches({"10.0.1.51": (ErrorCode.PERMISSION_DENIED, "acl")})  # item 300
    done = h2.outcome(chunk2)
    assert isinstance(done, Complete)
    assert [(i, e.code) for i, e in done.result] == [(300, ErrorCode.PERMISSION_DENIED)]
    empty = Handle("empty")
    h2.do(RegisterBatch((), 30.0, empty))
    assert isinstance(h2.outcome(empty), Complete)
