"""Idempotent config writes through the node glue (runtime/config_plane), on the fake
clock and message queue of tests/runtime/test_config_plane.py: a request id re-sent
through another node, while the first attempt waits, after an owner change, and the
forward's answer before the client's attempt ends."""

from __future__ import annotations

from pathlib import Path

from test_config_plane import ADDRESSES, Net, owner_of

from meshreg.configcenter.model import ConfigKey
from meshreg.configcenter.replication import CONFIG_WRITE_ATTEMPT, FORWARD_TIMEOUT
from meshreg.configcenter.sqlite_store import SqliteConfigStore, database_path

RID = "0123456789abcdef0123456789abcdef"
K = ConfigKey("public", "DEFAULT_GROUP", "x")


def test_the_same_request_id_through_every_node_makes_one_version() -> None:
    net = Net(3)
    first = net.call(ADDRESSES[0], "config_publish", data_id="x", content="1", request_id=RID)
    assert first["ok"], first
    for address in ADDRESSES:
        again = net.call(address, "config_publish", data_id="x", content="1", request_id=RID)
        assert again["ok"], again
        assert again["result"]["revision"] == first["result"]["revision"] == 1
        assert again["result"]["modified"] == first["result"]["modified"]
    for plane in net.planes.values():
        assert [e.revision for e in plane.store.entries(K)] == [1]
    assert sum(p.stats()["deduplicated"] for p in net.planes.values()) == 3


def test_a_resend_while_the_forward_waits_joins_the_first_attempt() -> None:
    net = Net(3)
    owner = owner_of("x")
    a, b = (x for x in ADDRESSES if x != owner)
    net.request(a, b"c1", "config_publish", data_id="x", content="1", request_id=RID)
    net.request(b, b"c2", "config_publish", data_id="x", content="1", request_id=RID)
    net.request(owner, b"c3", "config_publish", data_id="x", content="1", request_id=RID)
    net.deliver()
    net.tick(0.1)
    revisions = {net.last(c)["result"]["revision"] for c in (b"c1", b"c2", b"c3")}
    assert revisions == {1}
    assert [e.revision for e in net.planes[owner].store.entries(K)] == [1]


def test_a_forward_answers_unavailable_before_the_clients_attempt_ends() -> None:
    """The owner is cut off after the forward left: the forwarding node answers
    UNAVAILABLE, naming the owner and saying to re-send with the same request id, within
    FORWARD_TIMEOUT, so before the client's write attempt (CONFIG_WRITE_ATTEMPT) ends."""
    net = Net(3)
    owner = owner_of("x")
    other = next(a for a in ADDRESSES if a != owner)
    start = net.now
    net.request(other, b"cli", "config_publish", data_id="x", content="1", request_id=RID)
    net.queue.clear()  # the forward left, and was lost with the owner's link
    while b"cli" not in net.replies:
        net.tick(0.05)
    took = net.now - start
    assert FORWARD_TIMEOUT - 0.05 <= took <= FORWARD_TIMEOUT + 0.06 < CONFIG_WRITE_ATTEMPT
    error = net.last(b"cli")["error"]
    assert error["name"] == "UNAVAILABLE"
    assert owner in error["message"] and "same request_id" in error["message"]
    assert "outcome is unknown" in error["message"]


def test_a_forward_that_waited_for_a_connection_keeps_its_first_deadline() -> None:
    """A forward that found no connection at first and left later is still answered
    within FORWARD_TIMEOUT of the client's write, not of its sending."""
    net = Net(3)
    owner = owner_of("x")
    other = next(a for a in ADDRESSES if a != owner)
    start = net.now
    net.down = {owner}  # connecting: the forward waits
    net.request(other, b"cli", "config_publish", data_id="x", content="1", request_id=RID)
    net.tick(1.0)
    net.down = set()
    net.loss = 1.0  # it leaves now, and is lost
    while b"cli" not in net.replies:
        net.tick(0.05)
    assert "config_forward" in [op for _, to, op in net.sent if to == owner]
    assert net.now - start <= FORWARD_TIMEOUT + 0.06
    assert net.last(b"cli")["error"]["name"] == "UNAVAILABLE"


def test_a_resend_after_the_owner_died_gets_the_original_from_the_new_owner(
    tmp_path: Path,
) -> None:
    """The owner acknowledged (a majority has the version on disk, request id included)
    and died before the client read the answer; the client re-sends through another
    node once the owner is seen down: the same revision, one version."""
    net = Net(3, data_dir=tmp_path)
    owner = owner_of("x")
    survivors = tuple(a for a in ADDRESSES if a != owner)
    heir = owner_of("x", survivors)
    first = net.call(owner, "config_publish", data_id="x", content="1", request_id=RID)
    assert first["ok"]
    port = owner.rpartition(":")[2]
    net.planes[owner].close()
    net.down = {owner}
    for address in survivors:  # the request id is on the survivors' disks
        with SqliteConfigStore(database_path(tmp_path / port)) as db:
            assert db.count() == 1
        plane = net.planes[address]
        found = plane.store.find_request(K, RID)
        assert found is not None and found.revision == 1
    net.all_up()
    net.tick(0.1)
    third = next(a for a in survivors if a != heir)
    for address in (third, heir):
        again = net.call(address, "config_publish", data_id="x", content="1", request_id=RID)
        assert again["ok"], again
        assert (again["result"]["revision"], again["result"]["origin"]) == (1, owner)
        assert [e.revision for e in net.planes[address].store.entries(K)] == [1]
    fresh = net.call(heir, "config_publish", data_id="x", content="1", request_id="9" * 32)
    assert fresh["ok"] and fresh["result"]["revision"] == 2  # a new id: a new write


def test_a_forward_whose_owner_leaves_the_view_is_decided_again_at_once() -> None:
    """review27 F1: the owner stopped (SIGTERM) after the forward reached it, unanswered;
    its leave beacon drops it from the view: the write goes to the new owner now (the
    request id keeps it at most once) instead of failing after FORWARD_TIMEOUT."""
    net = Net(3)
    owner = owner_of("x")
    other = next(a for a in ADDRESSES if a != owner)
    net.request(other, b"cli", "config_publish", data_id="x", content="1", request_id=RID)
    net.queue.clear()  # the forward reached the owner, which stops without answering
    net.down = {owner}
    net.all_up()  # its leave: the others count it down at once
    net.tick(0.1)
    reply = net.last(b"cli")
    assert reply["ok"], reply
    survivors = tuple(a for a in ADDRESSES if a != owner)
    assert reply["result"]["origin"] == owner_of("x", survivors)
    assert net.planes[other].stats()["forwards_redecided"] == 1


def test_a_forward_without_a_request_id_is_not_sent_twice() -> None:
    """Sent again, a write without a request id could be applied twice: it waits and
    fails with an unknown outcome, as before."""
    net = Net(3)
    owner = owner_of("x")
    other = next(a for a in ADDRESSES if a != owner)
    net.request(other, b"cli", "config_publish", data_id="x", content="1")
    net.queue.clear()
    net.down = {owner}
    net.all_up()
    net.tick(0.1)
    assert b"cli" not in net.replies
    assert net.planes[other].stats()["forwards_redecided"] == 0
    net.tick(FORWARD_TIMEOUT)
    assert "outcome is unknown" in net.last(b"cli")["error"]["message"]


def test_a_redecided_forward_refused_never_says_nothing_was_written() -> None:
    """Its first attempt reached the owner, which may have written it before leaving: a
    refusal of the second decision (here: no majority left) may not say "nothing was
    written" (the config sim's learner seed 26 caught one that had been written)."""
    net = Net(3)
    owner = owner_of("x")
    other, third = (a for a in ADDRESSES if a != owner)
    net.request(other, b"cli", "config_publish", data_id="x", content="1", request_id=RID)
    net.queue.clear()
    net.down = {owner, third}  # the owner left; the third is gone too: no majority
    net.all_up()
    net.tick(0.1)
    reply = net.last(b"cli")
    assert not reply["ok"], reply
    assert "nothing was written" not in reply["error"]["message"], reply
    assert "written" not in reply["error"], reply  # (written: false would invite a retry)
    assert "may have been written" in reply["error"]["message"]
