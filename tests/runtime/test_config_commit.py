"""The config plane's pipelined group commit (runtime/config_commit.py).

Turn N is committed while the loop serves turn N+1; what these tests show:

* the ordering rule with commits that finish late, in any interleaving (a held writer
  the test completes turn by turn, seeded, 3 planes with loss): nothing derived from a
  version (a record, an ack, a reply, a read, an announcement) leaves before its commit;
* the real writer thread with a disk the test holds: reads of committed data ids and
  the next turns are served meanwhile, a read of a version in flight waits for it, the
  wake-up fd signals the commit, back-pressure waits when too much is in flight;
* close drains: what was queued or in flight is committed and answered, then closed;
* a failed commit answers its writers and readers with an error, sends nothing of it,
  fails the turns queued behind it, and tries again: the version becomes durable,
  announced and readable, never before.
"""

from __future__ import annotations

import logging
import random
import select
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import msgpack
import pytest
from test_config_plane import (
    ADDRESSES,
    T0,
    Net,
    _check_disk_first,
    _record_order,
    owner_of,
    unbatched,
)

from meshreg.config import NodeConfig
from meshreg.configcenter.core import SETTLE_SECONDS, ConfigStore
from meshreg.configcenter.model import ConfigKey
from meshreg.configcenter.replication import Persist
from meshreg.configcenter.sqlite_store import SqliteConfigStore, database_path
from meshreg.errors import ErrorCode, RequestRejected
from meshreg.runtime import config_commit
from meshreg.runtime.config_commit import CommitFailed, Done, Turn
from meshreg.runtime.config_plane import ConfigPlane
from meshreg.runtime.run_queue import RunQueueWait
from meshreg.wire.config_messages import parse_config_message

DEADLINE = 10.0  # s; bound of every wait for the writer thread


class HeldWriter:
    """A writer that commits (to the real database, one transaction) only when the test
    says, in order; ``fail``: the next commits raise (and the turns behind fail)."""

    wakeup_fd = None

    def __init__(self, db: Any) -> None:
        self.db = db  # () -> the plane's database (a test may wrap it)
        self.queue: deque[Turn] = deque()
        self.done: deque[Done] = deque()
        self.transactions = 0
        self.fail = 0
        self.failed_gen = -1

    def submit(self, turns: list[Turn]) -> None:
        self.queue.extend(turns)

    def commit(self, n: int | None = None) -> None:
        group = [self.queue.popleft() for _ in range(len(self.queue) if n is None else n)]
        skipped = [t for t in group if t.gen <= self.failed_gen]
        group = [t for t in group if t.gen > self.failed_gen]
        self.done.extend(Done(t.seq, CommitFailed("earlier")) for t in skipped)
        if not group:
            return
        if self.fail:
            self.fail -= 1
            self.failed_gen = max(t.gen for t in group)
            self.done.extend(Done(t.seq, OSError(5, "I/O error")) for t in group)
            return
        self.db().write([op for t in group for op in t.ops])
        self.transactions += 1
        self.done.extend(Done(t.seq, None) for t in group)

    def take(self) -> list[Done]:
        done = list(self.done)
        self.done.clear()
        return done

    def wait(self, timeout: float) -> bool:
        if not self.done and self.queue:
            self.commit()
        return bool(self.done)

    def clear_wakeup(self) -> None:
        pass

    def close(self, timeout: float) -> bool:
        self.commit()
        return True


def held(net: Net) -> dict[str, HeldWriter]:
    writers = {}
    for address, plane in net.planes.items():
        writer = HeldWriter(lambda plane=plane: plane.db)
        plane._commits.writer = writer
        writers[address] = writer
    return writers


def commit_some(net: Net, writers: dict[str, HeldWriter], rng: random.Random) -> None:
    for address, writer in writers.items():
        if writer.queue:
            writer.commit(rng.randrange(len(writer.queue) + 1))
        net.planes[address].committed(net.now)


def on_disk(net: Net, data_id: str, revision: int) -> int:
    sql = "SELECT COUNT(*) FROM config_versions WHERE data_id = ? AND revision = ?"
    with_row = 0
    for address in net.addresses:
        with SqliteConfigStore(database_path(net.data_dir / address.rpartition(":")[2])) as db:  # type: ignore[operator]
            with_row += db._conn.execute(sql, (data_id, revision)).fetchone()[0] > 0
    return with_row


@pytest.mark.parametrize("seed", range(4))
def test_late_commits_in_any_order_of_turns_let_nothing_leave_before_its_version(
    tmp_path: Path, seed: int
) -> None:
    """Seeded, 3 planes, 10 % loss, messages reordered, turns of 1-8 messages, several
    writes per turn, and each node's commits finishing after 0 to all of its turns in
    flight: every record, ack, reply, read and announcement leaves after the commit of
    its version on its node; every acknowledged write is on a majority's disk when
    answered; all converge."""
    data_dir = tmp_path
    net = Net(3, data_dir=data_dir, seed=seed, loss=0.1)
    log = _record_order(net)
    writers = held(net)
    net.batched = True
    rng = random.Random(seed)
    acked: list[tuple[str, int]] = []
    in_flight_seen = 0
    for plane in net.planes.values():

        def reply(envelope: list[bytes], body: bytes, send: Any = plane._send_reply) -> None:
            answer = msgpack.unpackb(body, raw=False)
            if envelope[0].startswith(b"w") and answer["ok"]:
                item = (answer["result"]["data_id"], answer["result"]["revision"])
                assert on_disk(net, *item) >= 2, (seed, item, "acked before a majority")
                acked.append(item)
            send(envelope, body)

        plane._send_reply = reply
    for i in range(14):
        for j in range(rng.randrange(1, 5)):
            address = rng.choice(ADDRESSES)
            net.request(address, f"w{i}-{j}".encode(), "config_publish",
                        data_id=f"p{rng.randrange(5)}", content=f"{i}-{j}")  # fmt: skip
            net.request(rng.choice(ADDRESSES), b"reader", "config_get",
                        data_id=f"p{rng.randrange(5)}")  # fmt: skip
        for _ in range(6):
            net.tick(0.05)
            in_flight_seen += sum(len(w.queue) for w in writers.values())
            commit_some(net, writers, rng)
            net.deliver(shuffle=True)
    net.loss = 0.0
    for _ in range(300):  # heal: everything committed as it comes
        net.tick(0.05)
        commit_some(net, writers, random.Random(0))
        for w in writers.values():
            w.commit()
        for p in net.planes.values():
            p.committed(net.now)
    assert in_flight_seen > 20, "the turns were never in flight together"
    assert len(acked) >= 5, (seed, acked)
    currents = [{k: p.store.current(k) for k in list(p.store.keys())}
                for p in net.planes.values()]  # fmt: skip
    assert currents[0] == currents[1] == currents[2], f"seed {seed}: no convergence"
    for item in acked:
        assert on_disk(net, *item) == 3, (seed, item)
    _check_disk_first(log)
    for p in net.planes.values():
        p.close()


class GatedDb:
    """The writer's database, whose commits wait for the test's ``gate``."""

    def __init__(self, db: SqliteConfigStore) -> None:
        self.db, self.gate, self.entered = db, threading.Event(), threading.Event()
        self.writes = 0
        self.fail = 0
        self.threads: list[int] = []  # the thread of each write
        self.on_write: Any = None  # called at each write (a test's clock moves on)

    def write(self, ops: Any) -> None:
        self.threads.append(threading.get_ident())
        if self.on_write is not None:
            self.on_write()
        self.entered.set()
        assert self.gate.wait(DEADLINE), "the test never opened the gate"
        if self.fail:
            self.fail -= 1
            raise OSError(28, "No space left on device")
        self.db.write(ops)
        self.writes += 1

    def close(self) -> None:
        self.db.close()


class Node:
    """One plane with a real writer thread on a gated database (majority 1); ``inline``:
    small turns with nothing in flight committed on the loop thread (as in a node), else
    every turn on the thread (what most of these tests look at)."""

    def __init__(self, tmp_path: Path, inline: bool = False) -> None:
        self.now = T0
        self.replies: list[tuple[bytes, dict[str, Any]]] = []
        self.notes: list[dict[str, Any]] = []
        self.config = NodeConfig(port=7900, data_dir=str(tmp_path / "n"))
        self.path = database_path(self.config.data_dir)
        self.plane = ConfigPlane(
            self.config,
            self.now,
            lambda to, frames: True,
            self.reply,
            lambda frames: self.notes.append(msgpack.unpackb(frames[1], raw=False)),
            commit_thread=True,
        )
        writer = self.plane._commits.writer
        assert isinstance(writer, config_commit.ThreadWriter)
        assert writer.inline is not None  # a node's default
        if not inline:
            writer.inline = None
        self.writer = writer
        self.gated = GatedDb(writer._db)
        writer._db = self.gated  # type: ignore[assignment]

    def reply(self, envelope: list[bytes], body: bytes) -> None:
        answer = msgpack.unpackb(body, raw=False)
        result = answer.get("result") or {}
        if answer["ok"] and "revision" in result:  # never before the version is on disk
            assert self.rows(result["data_id"], result["revision"]) == 1, answer
        self.replies.append((envelope[0], answer))

    def rows(self, data_id: str, revision: int) -> int:
        with SqliteConfigStore(self.path) as db:
            sql = "SELECT COUNT(*) FROM config_versions WHERE data_id = ? AND revision = ?"
            return int(db._conn.execute(sql, (data_id, revision)).fetchone()[0])

    def serve(self, client: bytes, op: str, **fields: Any) -> Any:
        msg = {"v": 1, "id": 1, "op": op, **fields}
        body = self.plane.serve([client, b""], parse_config_message(msg), msg, "t", None,
                                self.now)  # fmt: skip
        return None if body is None else msgpack.unpackb(body, raw=False)

    def answered(self, client: bytes) -> list[dict[str, Any]]:
        return [a for c, a in self.replies if c == client]

    def wait_committed(self) -> None:
        """Wait (bounded) for the writer's wake-up fd, as the runtime's poll does."""
        fd = self.plane.wakeup_fd
        assert fd is not None
        ready, _, _ = select.select([fd], [], [], DEADLINE)
        assert ready, "the writer never signalled a commit"
        self.plane.committed(self.now)

    def wait_answered(self, client: bytes) -> None:
        """Wait (bounded) until ``client`` is answered.  Not one ``wait_committed``: a turn
        that failed with the one before it may leave a second wake-up in the pipe after
        both were handled, and a later wait would return on it before the next commit."""
        deadline = time.monotonic() + DEADLINE
        while not self.answered(client):
            assert time.monotonic() < deadline, f"{client!r} never answered"
            self.wait_committed()


def test_the_loop_serves_the_next_turn_while_the_writer_commits(tmp_path: Path) -> None:
    node = Node(tmp_path)
    plane, gated = node.plane, node.gated
    gated.gate.set()
    assert node.serve(b"w0", "config_publish", data_id="old", content="v1") is None
    plane.flush(node.now)
    node.wait_committed()
    assert node.answered(b"w0")[0]["ok"]
    gated.gate.clear()
    gated.entered.clear()
    # turn 1: a publish, committed on the writer thread while the loop goes on
    assert node.serve(b"w1", "config_publish", data_id="app", content="v1") is None
    plane.flush(node.now)
    assert gated.entered.wait(DEADLINE)
    assert plane.stats()["commit_turns_in_flight"] == 1
    # turn 2, meanwhile: a committed data id is read at once; the one in flight waits
    got = node.serve(b"r-old", "config_get", data_id="old")
    assert got is not None and got["result"]["content"] == "v1"
    assert node.serve(b"r-app", "config_get", data_id="app") is None
    assert node.serve(b"w2", "config_publish", data_id="other", content="x") is None
    plane.flush(node.now)
    assert plane.stats()["commit_turns_in_flight"] == 2
    assert node.answered(b"w1") == node.answered(b"r-app") == [] and len(node.notes) == 1
    gated.gate.set()
    deadline = time.monotonic() + DEADLINE
    while node.answered(b"w2") == [] and time.monotonic() < deadline:
        node.wait_committed()
    assert node.answered(b"w1")[0]["ok"] and node.answered(b"r-app")[0]["result"]["revision"] == 1
    assert node.answered(b"w2")[0]["ok"]
    assert [n["data_id"] for n in node.notes] == ["old", "app", "other"]
    stats = plane.stats()
    assert stats["commit_mode"] == "thread" and stats["commit_turns_in_flight"] == 0
    assert stats["commit_transactions"] in (2, 3)  # turns 1 and 2 may share one
    plane.close()


def test_too_much_in_flight_makes_the_loop_wait(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(config_commit, "MAX_TURNS", 2)
    node = Node(tmp_path)
    plane, gated = node.plane, node.gated
    for i in range(2):
        node.serve(f"w{i}".encode(), "config_publish", data_id=f"d{i}", content="x")
        plane.flush(node.now)
    assert gated.entered.wait(DEADLINE)
    node.serve(b"w2", "config_publish", data_id="d2", content="x")
    threading.Timer(0.05, gated.gate.set).start()  # the disk answers later
    plane.flush(node.now)  # waits for the writer: 2 turns in flight already
    stats = plane.stats()
    assert stats["commit_backpressure_waits"] >= 1 and stats["commit_backpressure_ms"] > 0
    plane.close()
    assert all(node.answered(f"w{i}".encode())[0]["ok"] for i in range(3))


def test_close_drains_what_is_queued_and_in_flight_then_closes(tmp_path: Path) -> None:
    node = Node(tmp_path)
    plane, gated = node.plane, node.gated
    node.serve(b"w1", "config_publish", data_id="a", content="1")
    plane.flush(node.now)  # in flight, held by the gate
    assert gated.entered.wait(DEADLINE)
    node.serve(b"w2", "config_publish", data_id="b", content="2")  # queued, not flushed
    threading.Timer(0.05, gated.gate.set).start()
    plane.close()
    assert node.answered(b"w1")[0]["ok"] and node.answered(b"w2")[0]["ok"]
    assert plane.db is None
    writer_threads = [t for t in threading.enumerate() if t.name == "meshreg-config-writer"]
    assert all(not t.is_alive() for t in writer_threads) or len(writer_threads) == 0
    with SqliteConfigStore(node.path) as db:
        assert db.count() == 2


def test_a_failed_commit_answers_an_error_sends_nothing_and_is_tried_again(
    tmp_path: Path,
) -> None:
    """The disk fails once: the writer of that turn gets UNAVAILABLE naming the disk
    error, its reader too, the turn queued behind fails with it; nothing is announced;
    after RETRY_INTERVAL both turns' versions are committed (in their order), announced
    and read; a re-send with the request id gets the version."""
    node = Node(tmp_path)
    plane, gated = node.plane, node.gated
    gated.fail = 1
    node.serve(b"w1", "config_publish", data_id="a", content="1", request_id="r" * 32)
    plane.flush(node.now)
    assert gated.entered.wait(DEADLINE)
    assert node.serve(b"r1", "config_get", data_id="a") is None  # held
    node.serve(b"w2", "config_publish", data_id="b", content="2")
    plane.flush(node.now)
    gated.gate.set()
    deadline = time.monotonic() + DEADLINE
    while not node.answered(b"w2") and time.monotonic() < deadline:
        node.wait_committed()
    for client in (b"w1", b"r1", b"w2"):
        (answer,) = node.answered(client)
        assert not answer["ok"] and answer["error"]["name"] == "UNAVAILABLE", answer
        assert "could not save configs to its disk (OSError" in answer["error"]["message"]
    assert node.notes == [] and node.rows("a", 1) == node.rows("b", 1) == 0
    stats = plane.stats()
    assert stats["commit_failures"] == 2 and stats["commit_turns"] == 0
    # still unsaved: a read waits; the retry goes after RETRY_INTERVAL, with this turn
    assert node.serve(b"r2", "config_get", data_id="a") is None
    node.now += config_commit.RETRY_INTERVAL / 2
    plane.flush(node.now)
    assert plane.stats()["commit_turns_in_flight"] == 0  # not yet
    node.now += config_commit.RETRY_INTERVAL
    plane.tick(node.now)
    node.wait_answered(b"r2")
    assert node.answered(b"r2")[0]["result"]["revision"] == 1
    assert [n["data_id"] for n in node.notes] == ["a", "b"]
    assert node.rows("a", 1) == node.rows("b", 1) == 1
    with SqliteConfigStore(node.path) as db:  # in the order the turns were
        order = [r[0] for r in db._conn.execute("SELECT data_id FROM config_versions ORDER BY seq")]
    assert order == ["a", "b"]
    node.serve(b"w3", "config_publish", data_id="a", content="1", request_id="r" * 32)
    plane.flush(node.now)
    node.wait_answered(b"w3")
    (again,) = node.answered(b"w3")
    assert again["ok"] and again["result"]["revision"] == 1  # the original, not a second
    plane.close()


def test_a_peer_whose_commit_fails_acks_only_after_the_retry(tmp_path: Path) -> None:
    """Inline (deterministic), 3 planes: a peer's commit fails once. Its ack is not sent
    (the owner sends the record again); the version is acknowledged after the retry made
    it durable there, never before (the order log); the write succeeds."""
    net = Net(3, data_dir=tmp_path)
    log = _record_order(net)
    writers = held(net)
    owner = owner_of("f")
    peer = next(a for a in ADDRESSES if a != owner)
    writers[peer].fail = 1
    net.request(owner, b"w1", "config_publish", data_id="f", content="x")
    for _ in range(80):
        for w in writers.values():
            w.commit()
        for p in net.planes.values():
            p.committed(net.now)
        net.deliver()
        if b"w1" in net.replies:
            break
        net.tick(0.05)
    assert net.replies[b"w1"][-1]["ok"], net.replies[b"w1"]
    assert net.planes[peer].stats()["commit_failures"] == 1
    _check_disk_first(log)
    net.tick(1.0)
    for w in writers.values():
        w.commit()
    for p in net.planes.values():
        p.committed(net.now)
    key = ConfigKey("public", "DEFAULT_GROUP", "f")
    assert all(p.store.current(key) is not None for p in net.planes.values())
    assert on_disk(net, "f", 1) == 3


def test_records_leave_after_the_owners_save_and_the_peers_commit_on_their_own_save(
    tmp_path: Path,
) -> None:
    """Three members (a majority of 2): a publish's records wait for the owner's own
    commit (they say its vote is on disk: ``saved``); each peer saves the version with its
    committed flag in one transaction and announces it then, with no commit message (its
    vote and the owner's are a majority); the owner answers once its flag is on disk."""
    net = Net(3, data_dir=tmp_path)
    owner = owner_of("rf")
    assert net.call(owner, "config_publish", data_id="rf", content="v1")["ok"]  # catch-up
    writers = held(net)
    net.request(owner, b"w", "config_publish", data_id="rf", content="v2")
    assert writers[owner].queue, "the owner's version is on its way to disk"
    assert not net.queue, "no record before the owner's save"
    writers[owner].commit()
    net.planes[owner].committed(net.now)
    records = [body for to, body in net.queue if to != owner]
    assert len(records) == 2 and all(m.get("saved") for b in records for m in unbatched(b))
    assert on_disk(net, "rf", 2) == 1
    peers = [a for a in ADDRESSES if a != owner]
    batch, net.queue = list(net.queue), deque()
    for to, body in batch:  # the peers take the records; their commits are held
        net.planes[to].on_peer(body, net.now)
        net.planes[to].flush(net.now)
    for peer in peers:  # saved with the flag, not yet on disk: not announced, no ack
        assert [n["revision"] for n in net.notes.get(peer, [])] == [1]
        (turn,) = writers[peer].queue
        assert {(e.revision, e.committed) for _, es, _ in turn.ops for e in es} == {(2, False),
                                                                                  (2, True)}
    assert not net.queue
    for peer in peers:
        writers[peer].commit()
        net.planes[peer].committed(net.now)
        assert [n["revision"] for n in net.notes[peer]] == [1, 2]  # on its own save
    acks = [m for _, b in net.queue for m in unbatched(b)]
    assert [(m["op"], m.get("committed")) for m in acks] == [("config_ack", True)] * 2
    net.deliver()  # the acks: the owner commits (its flag on the way to disk), no commits
    assert not [op for _, _, op in net.sent if op == "config_commit"]
    assert b"w" not in net.replies, "a reply waits for the owner's committed flag"
    writers[owner].commit()
    net.planes[owner].committed(net.now)
    assert net.last(b"w")["ok"] and net.last(b"w")["result"]["revision"] == 2
    assert on_disk(net, "rf", 2) == 3
    for w in writers.values():
        w.commit()
    for p in net.planes.values():
        p.close()


def test_a_loaded_version_no_majority_acknowledged_is_shown_once_settled(tmp_path: Path) -> None:
    """A node restarts holding a current version nobody acknowledged (its owner died
    before the majority answered): it shows the older, settled one, then this one once
    it is ``SETTLE_SECONDS`` old, also to listeners (before: never announced)."""
    key = ConfigKey("public", "DEFAULT_GROUP", "loaded")
    store = ConfigStore(ADDRESSES[1])
    old = store.publish(key, "a", now=T0 - 100.0)  # long settled
    young = store.publish(key, "b", now=T0)  # neither acknowledged nor settled at T0
    port = ADDRESSES[0].rpartition(":")[2]
    with SqliteConfigStore(database_path(tmp_path / port)) as db:
        db.save([old, young])
    net = Net(3, data_dir=tmp_path)
    plane = net.planes[ADDRESSES[0]]
    assert net.now < T0 + SETTLE_SECONDS and plane.store.shown(key, net.now) == old
    net.tick(T0 + SETTLE_SECONDS + 0.2 - net.now)
    assert [n["revision"] for n in net.notes.get(ADDRESSES[0], []) if n["data_id"] == "loaded"] == [
        2
    ]
    assert all(p.store.shown(key, net.now) == young for p in net.planes.values())
    for p in net.planes.values():
        p.close()


def test_a_commit_that_keeps_failing_refuses_writes_and_recovers(
    tmp_path: Path, caplog: Any
) -> None:
    """The disk keeps failing: after the first failed commit, stats say so (the error,
    attempts in a row), new writes are refused at once with UNAVAILABLE naming the data
    directory and the error, nothing written; reads still answer.  When the disk works
    again the retry commits, writes are accepted again and a log line says so."""
    node = Node(tmp_path)
    plane, gated = node.plane, node.gated
    gated.fail = 10**6
    gated.gate.set()
    node.serve(b"w1", "config_publish", data_id="a", content="1", request_id="r" * 32)
    plane.flush(node.now)
    node.wait_committed()
    (first,) = node.answered(b"w1")
    assert not first["ok"] and "could not save configs" in first["error"]["message"]
    for _ in range(3):  # retries, all failing
        node.now += config_commit.RETRY_INTERVAL
        plane.tick(node.now)
        node.wait_committed()
    stats = plane.stats()
    assert stats["commit_failing"] and stats["commit_failures_in_a_row"] >= 3
    assert "No space left on device" in stats["commit_error"]
    data_dir = str(node.path.parent)
    with pytest.raises(RequestRejected) as info:
        node.serve(b"w2", "config_publish", data_id="b", content="2")
    message = str(info.value)
    assert info.value.code is ErrorCode.UNAVAILABLE and data_dir in message
    assert "No space left on device" in message and "nothing was written" in message
    assert plane.stats()["refused_disk"] == 1
    assert plane.status(node.now)["disk_refusal"] is not None
    assert plane.store.current(ConfigKey("public", "DEFAULT_GROUP", "b")) is None
    assert any("new config writes refused" in r.getMessage() for r in caplog.records)
    gated.fail = 0  # the disk recovers: the next retry commits, writes are accepted
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="meshreg.node"):
        node.now += config_commit.RETRY_INTERVAL
        plane.tick(node.now)
        node.wait_committed()
    assert not plane.stats()["commit_failing"] and plane.status(node.now)["disk_refusal"] is None
    assert node.rows("a", 1) == 1
    assert any("works again" in r.getMessage() for r in caplog.records)
    node.serve(b"w3", "config_publish", data_id="b", content="2")
    plane.flush(node.now)
    node.wait_committed()
    (ok,) = node.answered(b"w3")
    assert ok["ok"] and node.rows("b", 1) == 1
    plane.close()


# -- the adaptive choice: inline on the loop thread, or the writer thread -------------------
def test_inline_choice_takes_small_idle_turns_and_backs_off_after_a_slow_commit() -> None:
    choice = config_commit.InlineChoice(max_versions=4, slow=0.004, backoff=0.5, in_a_row=2)
    table = [  # (versions, idle, now, inline?)
        (1, True, 10.0, True),
        (4, True, 10.0, True),
        (5, True, 10.0, False),  # too big: the thread (its commit would stall the loop)
        (1, False, 10.0, False),  # something in flight: behind it, on the thread
    ]
    for versions, idle, now, inline in table:
        assert choice.choose(versions, idle, now) is inline, (versions, idle, now)
    choice.took(0.004, 10.0)  # at the limit: not slow
    assert choice.choose(1, True, 10.0) and choice.slow_commits == 0
    choice.took(0.0041, 10.5)  # slow once (a preempted loop, as often as a slow disk) ...
    choice.took(0.001, 10.6)  # ... then fast: no back-off
    choice.took(0.0041, 10.7)
    assert choice.choose(1, True, 10.7) and (choice.slow_commits, choice.backoffs) == (2, 0)
    choice.took(0.0041, 11.0)  # slow twice in a row: the thread until 11.5
    assert (choice.slow_commits, choice.backoffs) == (3, 1)
    assert not choice.choose(1, True, 11.0) and not choice.choose(1, True, 11.4999)
    assert choice.choose(1, True, 11.5)
    choice.took(0.0041, 11.6)  # the run starts again after a back-off
    assert choice.choose(1, True, 11.6)
    assert (choice.inline, choice.threaded) == (6, 4)


def test_a_small_turn_with_nothing_in_flight_commits_on_the_loop_thread(tmp_path: Path) -> None:
    """Nothing in flight: the turn is committed by the loop itself in its flush (answered
    there, no wake-up); with a turn in flight on the thread, the next one goes behind it on
    the thread, and both are answered in order."""
    node = Node(tmp_path, inline=True)
    plane, gated, writer = node.plane, node.gated, node.writer
    assert writer.inline is not None
    plane._commits._clock = lambda: 100.0  # no inline commit is slow (else: the thread)
    gated.gate.set()
    node.serve(b"w1", "config_publish", data_id="a", content="1")
    plane.flush(node.now)
    (ok,) = node.answered(b"w1")  # answered in the flush: committed inline
    assert ok["ok"] and node.rows("a", 1) == 1
    assert gated.threads == [threading.get_ident()]
    assert select.select([plane.wakeup_fd], [], [], 0)[0] == []  # no wake-up byte
    stats = plane.stats()
    assert (stats["commit_inline"], stats["commit_threaded"]) == (1, 0)
    assert stats["commit_turns_in_flight"] == 0
    # a turn held on the thread (too big for inline here), then a small one: behind it
    gated.gate.clear()
    gated.entered.clear()
    writer.inline.max_versions = 0
    node.serve(b"w2", "config_publish", data_id="b", content="2")
    plane.flush(node.now)
    assert gated.entered.wait(DEADLINE)
    writer.inline.max_versions = config_commit.INLINE_MAX_VERSIONS
    node.serve(b"w3", "config_publish", data_id="c", content="3")
    plane.flush(node.now)  # b in flight: c is handed to the thread, not committed here
    assert plane.stats()["commit_threaded"] == 2 and node.answered(b"w3") == []
    gated.gate.set()
    deadline = time.monotonic() + DEADLINE
    while node.answered(b"w3") == [] and time.monotonic() < deadline:
        node.wait_committed()
    assert node.answered(b"w2")[0]["ok"] and node.answered(b"w3")[0]["ok"]
    assert [n["data_id"] for n in node.notes] == ["a", "b", "c"]
    assert all(t != threading.get_ident() for t in gated.threads[1:])
    # nothing in flight again: inline again
    node.serve(b"w4", "config_publish", data_id="d", content="4")
    plane.flush(node.now)
    assert node.answered(b"w4")[0]["ok"] and gated.threads[-1] == threading.get_ident()
    plane.close()


def test_a_slow_inline_commit_sends_the_next_turns_to_the_thread_for_a_while(
    tmp_path: Path,
) -> None:
    """The pipeline's clock (injected) says two inline commits in a row took 10 ms: the
    next turns go to the writer thread for ``INLINE_BACKOFF``, then inline again."""
    node = Node(tmp_path, inline=True)
    plane, gated = node.plane, node.gated
    clock = [100.0]
    plane._commits._clock = lambda: clock[0]
    plane._commits._waited = lambda: 0.0  # the loop thread never waited for a core
    gated.gate.set()
    gated.on_write = lambda: clock.__setitem__(0, clock[0] + 0.010)  # a slow disk
    for client, data_id in ((b"w0", "z"), (b"w1", "a")):
        node.serve(client, "config_publish", data_id=data_id, content="1")
        plane.flush(node.now)
        assert node.answered(client)[0]["ok"]
    stats = plane.stats()
    assert (stats["commit_inline_slow"], stats["commit_inline_backoffs"]) == (2, 1)
    gated.on_write = None
    node.serve(b"w2", "config_publish", data_id="b", content="2")
    plane.flush(node.now)  # backing off: the thread
    node.wait_committed()
    assert node.answered(b"w2")[0]["ok"] and gated.threads[-1] != threading.get_ident()
    clock[0] += config_commit.INLINE_BACKOFF
    node.serve(b"w3", "config_publish", data_id="c", content="3")
    plane.flush(node.now)
    assert node.answered(b"w3")[0]["ok"] and gated.threads[-1] == threading.get_ident()
    stats = plane.stats()
    assert (stats["commit_inline"], stats["commit_threaded"]) == (3, 1)
    plane.close()


def test_an_inline_commit_slow_only_by_waiting_for_a_core_keeps_the_next_inline(
    tmp_path: Path,
) -> None:
    """Inline commits that took 10 ms of which the loop thread waited 9.5 ms for a core (a
    busy machine, runtime/run_queue) are not slow: the next turns stay on the loop thread
    (the writer thread would wait as long, plus two wake-ups).  Without the wait, the
    same commits send them to the thread (the test above)."""
    node = Node(tmp_path, inline=True)
    plane, gated = node.plane, node.gated
    clock, waited = [100.0], [0.0]
    plane._commits._clock = lambda: clock[0]
    plane._commits._waited = lambda: waited[0]

    def busy_machine() -> None:
        clock[0] += 0.010
        waited[0] += 0.0095

    gated.gate.set()
    gated.on_write = busy_machine
    for client, data_id in ((b"w0", "z"), (b"w1", "a"), (b"w2", "b")):
        node.serve(client, "config_publish", data_id=data_id, content="1")
        plane.flush(node.now)
        assert node.answered(client)[0]["ok"]  # answered in the flush: inline
    stats = plane.stats()
    assert (stats["commit_inline"], stats["commit_threaded"]) == (3, 0), stats
    assert (stats["commit_inline_slow"], stats["commit_inline_backoffs"]) == (0, 0), stats
    assert all(t == threading.get_ident() for t in gated.threads)
    plane.close()


def test_run_queue_wait_reads_this_threads_schedstat_and_says_0_without_one(
    tmp_path: Path,
) -> None:
    """The reading grows (never falls) for the thread that asks, follows the thread that
    asks, and is 0 where the file cannot be read (not Linux, no schedstat)."""
    wait = RunQueueWait()
    first = wait()
    assert first >= 0.0
    assert wait() >= first
    other: list[float] = []
    worker = threading.Thread(target=lambda: other.append(wait()))
    worker.start()
    worker.join(DEADLINE)
    assert other and other[0] >= 0.0 and wait() >= first  # reopened for each thread
    wait.close()
    assert RunQueueWait(str(tmp_path / "missing"))() == 0.0
    garbled = tmp_path / "schedstat"
    garbled.write_text("12\n")
    assert RunQueueWait(str(garbled))() == 0.0


def test_inline_commits_in_a_cluster_send_the_records_after_the_save_without_a_wakeup(
    tmp_path: Path,
) -> None:
    """Three planes whose writers commit inline (as nodes do when idle): the owner's
    records leave right after its own commit in the same turn (a majority of 2: they say
    its vote is on disk), every commit is on the loop's thread, and the publish is
    answered with no writer-thread wake-up."""
    net = Net(3, data_dir=tmp_path)
    events: list[tuple[str, str]] = []
    for address, plane in net.planes.items():
        assert plane.db is not None
        writer = config_commit.ThreadWriter(plane.db, config_commit.InlineChoice())
        plane._commits.writer, plane._commits.mode = writer, "thread"
        plane._commits._clock = lambda: 100.0  # no inline commit is slow (else: the thread)
        gated = GatedDb(plane.db)
        gated.gate.set()
        gated.on_write = lambda me=address: events.append(("write", me))
        writer._db = gated  # type: ignore[assignment]
    send = net._send

    def recorded(sender: str, to: str, frames: list[bytes]) -> bool:
        events.extend(("send " + m["op"], sender) for m in unbatched(frames[1]))
        return send(sender, to, frames)

    net._send = recorded  # type: ignore[method-assign]
    owner = owner_of("inl")
    answer = net.call(owner, "config_publish", data_id="inl", content="v1")
    assert answer["ok"] and answer["result"]["revision"] == 1
    first_write = events.index(("write", owner))
    records = [i for i, e in enumerate(events) if e == ("send config_record", owner)]
    assert len(records) == 2 and min(records) > first_write, events
    assert on_disk(net, "inl", 1) == 3
    for plane in net.planes.values():
        stats = plane.stats()
        assert stats["commit_inline"] >= 1 and stats["commit_threaded"] == 0, stats
        assert stats["commit_turns_in_flight"] == 0
        plane.close()


def flags(net: Net, address: str, data_id: str) -> dict[int, int]:
    """revision -> committed flag of ``data_id``'s rows on ``address``'s disk."""
    sql = "SELECT revision, committed FROM config_versions WHERE data_id = ?"
    assert net.data_dir is not None
    with SqliteConfigStore(database_path(net.data_dir / address.rpartition(":")[2])) as db:
        return dict(db._conn.execute(sql, (data_id,)).fetchall())


def test_a_peers_committed_flag_rides_on_its_next_write_or_goes_alone_when_due(
    tmp_path: Path,
) -> None:
    """A peer's committed flag from a commit message (nothing waits for it) is not a
    transaction of its own: it is written with the peer's next one (the next record), or
    alone ``LAZY_MARK_SECONDS`` later, or at close; the announcement does not wait for it;
    the owner's own flag is on disk before its reply, as before.  (The owner here sends
    records without ``saved``, as a node before them did, so the peers learn the commit
    from commit messages: sent to each on its ack.)"""
    net = Net(3, data_dir=tmp_path)
    owner = owner_of("lz")
    net.planes[owner].saved_records = False  # an older owner: no ``saved`` records
    net.planes[owner].replicator.records_after_save = False
    peer = next(a for a in ADDRESSES if a != owner)
    plane = net.planes[peer]
    assert net.call(owner, "config_publish", data_id="lz", content="v1")["ok"]
    assert flags(net, owner, "lz") == {1: 1}  # the writer's flag: before its reply
    assert flags(net, peer, "lz") == {1: 0}  # waiting for the peer's next transaction
    assert plane.stats()["commit_marks_waiting"] == 1
    assert [n["revision"] for n in net.notes[peer]] == [1]  # announced without it
    writer = plane._commits.writer
    assert writer is not None
    before = writer.transactions
    assert net.call(owner, "config_publish", data_id="lz", content="v2")["ok"]
    assert writer.transactions == before + 1, "one transaction per publish on a peer"
    assert flags(net, peer, "lz") == {1: 1, 2: 0}  # v1's flag rode on v2's record
    assert [n["revision"] for n in net.notes[peer]] == [1, 2]
    net.tick(config_commit.LAZY_MARK_SECONDS + 0.1)  # no write comes: alone, when due
    assert flags(net, peer, "lz") == {1: 1, 2: 1}
    assert writer.transactions == before + 2 and plane.stats()["commit_marks_waiting"] == 0
    assert net.call(owner, "config_publish", data_id="lz", content="v3")["ok"]
    assert flags(net, peer, "lz")[3] == 0
    for p in net.planes.values():  # close drains the flags waiting
        p.close()
    assert flags(net, peer, "lz")[3] == 1


def test_a_flag_waiting_is_written_before_a_prune_deletes_its_row(tmp_path: Path) -> None:
    """A flag waiting for a later transaction joins the ops before a delete of pruned
    versions, so the upsert never writes a pruned version's row back."""
    db = SqliteConfigStore(tmp_path / "c.db")
    pipeline = config_commit.CommitPipeline(lambda: db, thread=False)
    store = ConfigStore("a:1")
    key = ConfigKey("public", "DEFAULT_GROUP", "pr")
    entry = store.publish(key, "x", now=T0)
    pipeline.add([Persist((entry,))])
    pipeline.end_turn(T0)
    pipeline.finished(T0)
    pipeline.add([Persist((entry.as_committed(),), mark=True, lazy=True)])
    pipeline.end_turn(T0)
    assert len(pipeline.lazy) == 1 and pipeline.lazy_due() == T0 + config_commit.LAZY_MARK_SECONDS
    pipeline.remove([entry])  # pruned before the flag was written
    pipeline.end_turn(T0)
    pipeline.finished(T0)
    assert db.count() == 0, "the pruned row came back"
    assert pipeline.lazy == [] and pipeline.lazy_due() is None
    db.close()


def test_under_load_records_leave_before_the_save_unflagged(tmp_path: Path) -> None:
    """With a turn of the owner still on its way to disk, the next write's records leave
    at the end of its own turn (before its save, not ``saved``) and every peer gets a
    commit message; once nothing is in flight, records wait for the save again, flagged."""
    net = Net(3, data_dir=tmp_path)
    owner = owner_of("ld")
    other = next(d for d in (f"ld{i}" for i in range(50)) if owner_of(d) == owner)
    for data_id in ("ld", other):  # the catch-up rounds first
        assert net.call(owner, "config_publish", data_id=data_id, content="v1")["ok"]
    writers = held(net)
    net.request(owner, b"w1", "config_publish", data_id="ld", content="v2")
    assert not net.queue and writers[owner].queue  # flagged: waits for its save
    net.request(owner, b"w2", "config_publish", data_id=other, content="v2")  # w1 in flight
    records = [m for _, b in net.queue for m in unbatched(b)]
    assert [(m["op"], m["entry"]["key"][2], m.get("saved")) for m in records] == [
        ("config_record", other, None)
    ] * 2
    for _ in range(20):  # everything committed as it comes
        for address, w in writers.items():
            w.commit()
            net.planes[address].committed(net.now)
        net.deliver()
    assert net.last(b"w1")["ok"] and net.last(b"w2")["ok"]
    commits = [(to, op) for frm, to, op in net.sent if op == "config_commit" and frm == owner]
    assert len(commits) == 2, net.sent  # w2's, one per peer; none for w1 (peers marked it)
    assert on_disk(net, other, 2) == 3
    for w in writers.values():
        w.commit()
    for p in net.planes.values():
        p.close()


def test_a_forward_waiting_behind_a_commit_whose_owner_left_is_decided_again(
    tmp_path: Path,
) -> None:
    """A forward rides on the turn in flight (it leaves after that turn's commit); its
    owner left (the leave beacon) meanwhile, so no forward was waiting to be decided
    again then: it went to the stopped owner and failed after FORWARD_TIMEOUT with an
    unknown outcome (CI, review27's graceful-stop test, 1 write in ~5,000).  It is
    decided again when it leaves: the new owner applies it, nothing goes to the old."""
    net = Net(3, data_dir=tmp_path)
    victim = owner_of("x")
    other = next(a for a in ADDRESSES if a != victim)
    mine = next(f"m{i}" for i in range(100) if owner_of(f"m{i}") == other)
    assert net.call(other, "config_publish", data_id=mine, content="0")["ok"]  # (caught up)
    writers = held(net)
    net.request(other, b"own", "config_publish", data_id=mine, content="1")
    assert writers[other].queue  # its version's turn is in flight
    net.request(other, b"cli", "config_publish", data_id="x", content="1", request_id="ab" * 16)
    net.down = {victim}
    net.all_up()  # the victim's leave beacon, before the turn's commit
    sent_before = len(net.sent)
    for _ in range(40):
        for address, writer in writers.items():
            if writer.queue:
                writer.commit()
            net.planes[address].committed(net.now)
        net.tick(0.05)
        if b"cli" in net.replies and b"own" in net.replies:
            break
    assert (other, victim, "config_forward") not in net.sent[sent_before:]
    reply = net.last(b"cli")
    assert reply["ok"], reply
    survivors = tuple(a for a in ADDRESSES if a != victim)
    assert reply["result"]["origin"] == owner_of("x", survivors)
    assert net.last(b"own")["ok"]
