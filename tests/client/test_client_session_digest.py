"""ClientSession: a renewal whose ``digest`` says the node holds as many instances in the
session as this client acknowledged, but not the same ones (review78 F4: one registered
and another deregistered on an owner cut off right after acknowledging them), lists the
session and registers its instances again through the server after ``SHORT_RENEWALS``
such renewals in a row; never on one (a registration in flight crosses a renewal), never
when the digests match, and as before when the node tells none (an older node).  The
client's digest moves with its acknowledged count (fake clock, ms)."""

from __future__ import annotations

from session_harness import SID, Handle, Harness, deregister, registration

from meshreg.client.commands import RegisterBatch, Registration
from meshreg.client.session import SHORT_RENEWALS
from meshreg.model import SESSION_DIGEST_MOD, session_key_hash


def digest_of(*regs: Registration) -> int:
    """What a node holding exactly ``regs`` in the session tells."""
    return sum(session_key_hash(reg.key, reg.iid) for reg in regs) % SESSION_DIGEST_MOD


MINE = [registration(n, session=True) for n in range(5)]
SWAPPED = [*MINE[:4], registration(9, session=True)]  # as many, one other


def registered(h: Harness) -> None:
    h.do(RegisterBatch(tuple((reg, Handle()) for reg in MINE), 5.0))
    h.answer_batches()
    h.answer_all("session_open", {"session": SID})
    assert len(h.core.registrations) == len(MINE)
    h.advance(0)
    h.answer_view()


def renew(h: Harness, answer: dict[str, object]) -> None:
    """The next renewal (and any other not answered yet), answered ``answer``."""
    h.advance(1000)
    renewals = h.unanswered("session_renew")
    assert renewals
    for renewal in renewals:
        h.reply(renewal, answer)


def redone(h: Harness) -> list[str]:
    """The ips registered again since the start (every batch or single register)."""
    return [e["ip"] for e in h.batched()[len(MINE) :]] + [
        r.fields["ip"] for r in h.requests("register")
    ]


def test_the_client_digest_follows_its_acknowledged_registrations() -> None:
    h = Harness(beat_ms=1000, session=True)
    registered(h)
    assert h.core._session_digest == digest_of(*MINE) != 0
    deregister(h, MINE[4])
    h.answer_all("deregister")
    assert h.core._session_acked == 4 and h.core._session_digest == digest_of(*MINE[:4])
    for _ in range(SHORT_RENEWALS + 2):  # the node agrees: nothing to do
        renew(h, {"instances": 4, "known": True, "digest": digest_of(*MINE[:4])})
    assert redone(h) == [] and h.unanswered("register_batch") == []


def test_same_count_other_set_twice_lists_the_session_and_registers_again() -> None:
    h = Harness(beat_ms=1000, session=True)
    registered(h)
    other = {"instances": 5, "known": True, "digest": digest_of(*SWAPPED)}
    for _ in range(SHORT_RENEWALS):
        assert h.unanswered("register_batch") == []
        renew(h, other)
    (again,) = h.unanswered("register_batch")  # through the server, in one batch
    assert again.to == "a:1"
    entries = again.fields["instances"]
    assert sorted(e["ip"] for e in entries) == sorted(r.iid.ip for r in MINE)
    assert {e["session"] for e in entries} == {SID}
    lines = [x for x in h.logs("warning") if "not the same ones" in x]
    assert len(lines) == 1 and "meshreg server a:1 holds 5 instances" in lines[0], h.logs()
    h.answer_batches()
    h.advance(1000)
    (listed,) = h.unanswered("session_renew")
    assert listed.fields.get("list") is True  # the strays it names go (``_drop_strays``)
    stray = SWAPPED[4]
    held = [
        {"group": r.key.group, "service": r.key.service, "ip": r.iid.ip, "port": r.iid.port,
         "cluster": r.iid.cluster}
        for r in [*MINE, stray]
    ]  # fmt: skip
    h.reply(listed, {"instances": 6, "known": True, "held": held, "held_more": False})
    (dereg,) = h.unanswered("deregister")
    assert dereg.fields["ip"] == stray.iid.ip


def test_one_renewal_with_another_set_is_not_enough() -> None:
    """A registration in flight crosses a renewal: the counter wants them in a row; a
    matching digest, or another count, starts it again."""
    h = Harness(beat_ms=1000, session=True)
    registered(h)
    other = {"instances": 5, "known": True, "digest": digest_of(*SWAPPED)}
    same = {"instances": 5, "known": True, "digest": digest_of(*MINE)}
    fewer = {"instances": 4, "known": True, "digest": digest_of(*MINE[:4])}
    for answer in (other, same, other, fewer, other, same):
        renew(h, answer)
    assert redone(h) == [] and h.unanswered("register_batch") == []
    assert [x for x in h.logs("warning") if "not the same ones" in x] == []
    h.advance(1000)
    (renewal,) = h.unanswered("session_renew")
    assert "list" not in renewal.fields


def test_without_a_digest_the_count_rules_alone_decide_as_before() -> None:
    """An older node tells no digest: equal counts are taken as the same set."""
    h = Harness(beat_ms=1000, session=True)
    registered(h)
    for _ in range(SHORT_RENEWALS + 2):
        renew(h, {"instances": 5, "known": True})
    assert redone(h) == [] and h.unanswered("register_batch") == []
    h.advance(1000)
    (renewal,) = h.unanswered("session_renew")
    assert "list" not in renewal.fields


def test_a_catching_up_node_s_digest_counts_for_nothing() -> None:
    h = Harness(beat_ms=1000, session=True)
    registered(h)
    for _ in range(SHORT_RENEWALS + 1):
        renew(h, {"instances": 5, "known": True, "ready": False, "digest": digest_of(*SWAPPED)})
    assert redone(h) == [] and h.unanswered("register_batch") == []
