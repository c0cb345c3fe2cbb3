"""The node's config glue (runtime/config_plane) without sockets: several planes whose peer
messages, client replies and notifications are delivered by the test, on a fake clock.

What the real-process tests (tests/integration/test_configs.py) cannot show exactly: the
order of Persist and sends, the ready gate, forwarding, waiting reads, bad peer input, and
(seeded) convergence with messages lost and reordered.
"""

from __future__ import annotations

import logging
import random
import shutil
from collections import deque
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgpack
import pytest

from meshreg.config import NodeConfig
from meshreg.configcenter.core import AGE_SKEW_MARGIN, SETTLE_SECONDS
from meshreg.configcenter.model import ConfigEntry, ConfigKey, content_md5
from meshreg.configcenter.replication import responsible_config_node
from meshreg.configcenter.sqlite_store import SqliteConfigStore, database_path
from meshreg.errors import ErrorCode, RequestRejected
from meshreg.runtime import config_plane
from meshreg.runtime.config_commit import LAZY_MARK_SECONDS
from meshreg.runtime.config_plane import (
    CONNECT_GRACE,
    PARK_SECONDS,
    PRUNE_BEHIND_INTERVAL,
    PRUNE_INTERVAL,
    ConfigPlane,
)
from meshreg.runtime.unlisted_notice import UNLISTED_SAID_AFTER
from meshreg.security.acl import NODE, Access, Principal, Rule
from meshreg.wire.config_messages import parse_config_message
from meshreg.wire.config_peer import CONFIG_FRAME, encode_config_peer
from meshreg.wire.replies import encode_error

PORTS = (7800, 7810, 7820)
ADDRESSES = tuple(f"127.0.0.1:{p}" for p in PORTS)
T0 = 1_800_000_000.0


def unbatched(body: bytes) -> list[dict[str, Any]]:
    """A peer message's body, or a config_batch's items, each as a message of its own."""
    msg = msgpack.unpackb(body, raw=False)
    if msg["op"] != "config_batch":
        return [msg]
    return [{"v": msg["v"], "from": msg["from"], **item} for item in msg["items"]]


class Net:
    """Planes connected by a queue of peer messages (``loss``: share dropped at random)."""

    def __init__(
        self,
        n: int = 3,
        data_dir: Path | None = None,
        seed: int = 0,
        loss: float = 0.0,
        up: bool = True,
    ) -> None:
        self.now = T0
        self.rng = random.Random(seed)
        self.loss = loss
        self.queue: deque[tuple[str, bytes]] = deque()
        self.replies: dict[bytes, list[dict[str, Any]]] = {}
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self.sent: list[tuple[str, str, str]] = []  # (from, to, op), batch items one by one
        self.batches = 0  # config_batch messages sent
        self.addresses = (*ADDRESSES, "127.0.0.1:7830")[:n]  # (a fourth: a majority of 3)
        self.data_dir = data_dir
        self.down: set[str] = set()
        self.cut: set[tuple[str, str]] = set()  # (from, to): its own connections drop
        self.answer_back = True  # the owner answers on the forward's connection (a ROUTER)
        self.planes: dict[str, ConfigPlane] = {}
        self.batched = False  # True: loop turns of several messages, one flush each
        for address in self.addresses:
            self.start(address)
        if up:
            self.all_up()
            for _ in range(50):  # the ready gate: each asks the others for their digests
                self.tick(0.1)
                if all(p.ready for p in self.planes.values()):
                    break
            else:
                raise AssertionError("the planes never got ready")

    def start(self, address: str, peers: tuple[str, ...] = ()) -> ConfigPlane:
        """``peers``: the node's list (default: every address of the net)."""
        port = int(address.rpartition(":")[2])
        peers = peers or tuple(self.addresses)
        data_dir = str(self.data_dir / str(port)) if self.data_dir else ""
        config = NodeConfig(port=port, peers=peers, data_dir=data_dir)
        plane = ConfigPlane(
            config,
            self.now,
            lambda to, frames, me=address: self._send(me, to, frames),
            lambda envelope, body: self.replies.setdefault(envelope[0], []).append(
                msgpack.unpackb(body, raw=False)
            ),
            lambda frames, me=address: self.notes.setdefault(me, []).append(
                msgpack.unpackb(frames[1], raw=False)
            ),
            send_back=lambda via, frames, me=address: self._send_back(me, via, frames),
        )
        self.planes[address] = plane
        self.down.discard(address)
        return plane

    def all_up(self) -> None:
        for address, plane in self.planes.items():
            plane.set_members_up({a for a in self.addresses if a not in self.down} - {address})

    def _send(self, sender: str, to: str, frames: list[bytes]) -> bool:
        assert frames[0] == CONFIG_FRAME
        self.sent.extend((sender, to, m["op"]) for m in unbatched(frames[1]))
        self.batches += msgpack.unpackb(frames[1], raw=False)["op"] == "config_batch"
        if to in self.down:
            return False
        if (self.loss and self.rng.random() < self.loss) or (sender, to) in self.cut:
            return True  # sent, then lost
        self.queue.append((to, frames[1]))
        return True

    def _send_back(self, sender: str, via: bytes, frames: list[bytes]) -> bool:
        """On the connection a message came by (the peer's own: a cut of ours spares it)."""
        if not self.answer_back:
            return False
        assert frames[0] == CONFIG_FRAME
        to = via.decode()
        self.sent.extend((sender, to, m["op"]) for m in unbatched(frames[1]))
        if to not in self.down:
            self.queue.append((to, frames[1]))
        return True

    def _on_peer(self, to: str, body: bytes) -> None:
        sender = msgpack.unpackb(body, raw=False)["from"]  # the connection it came by
        self.planes[to].on_peer(body, self.now, sender.encode())

    def deliver(self, limit: int = 100_000, shuffle: bool = False) -> None:
        for _ in range(limit):
            if not self.queue:
                return
            if shuffle and len(self.queue) > 1:
                self.queue.rotate(-self.rng.randrange(len(self.queue)))
            if self.batched:  # a turn: 1-8 messages, then each plane that got one flushes
                touched: dict[str, None] = {}
                for _ in range(min(self.rng.randrange(1, 9), len(self.queue))):
                    to, body = self.queue.popleft()
                    if to not in self.down:
                        self._on_peer(to, body)
                        touched[to] = None
                for to in touched:
                    self.planes[to].flush(self.now)
                continue
            to, body = self.queue.popleft()
            if to not in self.down:
                self._on_peer(to, body)
                self.planes[to].flush(self.now)  # one message per loop turn here
        raise AssertionError("messages kept flowing")

    def tick(self, seconds: float, step: float = 0.05) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += step
            for address, plane in self.planes.items():
                if address not in self.down:
                    plane.tick(self.now)
            self.deliver()

    def request(self, address: str, client: bytes, op: str, **fields: Any) -> Any:
        msg = {"v": 1, "id": len(self.replies.get(client, [])) + 1, "op": op, **fields}
        req = parse_config_message(msg)
        plane = self.planes[address]
        try:
            body = plane.serve([client, b""], req, msg, "tester", "10.1.1.1", self.now)
        except RequestRejected as exc:  # as the runtime answers it
            body = encode_error(exc.req_id, exc.code, exc.message, exc.unwritten)
        if not self.batched:  # else the turn ends at the next tick
            plane.flush(self.now)  # the end of the loop turn: the group commit, then sends
        if body is not None:
            self.replies.setdefault(client, []).append(msgpack.unpackb(body, raw=False))

    def last(self, client: bytes) -> dict[str, Any]:
        return self.replies[client][-1]

    def call(self, address: str, op: str, **fields: Any) -> dict[str, Any]:
        """A request, the messages it causes, and its reply."""
        client = f"c{len(self.replies)}".encode()
        self.request(address, client, op, **fields)
        self.deliver()
        assert client in self.replies, f"no reply to {op} on {address}"
        return self.last(client)


def owner_of(data_id: str, members: tuple[str, ...] = ADDRESSES) -> str:
    return responsible_config_node(ConfigKey("public", "DEFAULT_GROUP", data_id), members)


def test_one_node_publishes_and_reads_at_once() -> None:
    net = Net(1)
    reply = net.call(ADDRESSES[0], "config_publish", data_id="a", content="x")
    assert reply["ok"] and reply["result"]["revision"] == 1
    assert reply["result"]["modified_by"] == "tester" and reply["result"]["modified"] == net.now
    assert net.call(ADDRESSES[0], "config_get", data_id="a")["result"]["content"] == "x"
    assert [n["revision"] for n in net.notes[ADDRESSES[0]]] == [1]
    assert net.sent == []


def test_a_write_at_another_node_is_forwarded_acknowledged_and_notified_everywhere() -> None:
    net = Net(3)
    owner = owner_of("app")
    other = next(a for a in ADDRESSES if a != owner)
    reply = net.call(other, "config_publish", data_id="app", content="v1", if_revision=0)
    assert reply["ok"], reply
    assert reply["result"]["revision"] == 1 and reply["result"]["origin"] == owner
    for address, plane in net.planes.items():
        current = plane.store.current(ConfigKey("public", "DEFAULT_GROUP", "app"))
        assert current is not None and current.content == "v1", address
        assert [n["revision"] for n in net.notes[address]] == [1]
    assert net.planes[other].stats()["forwarded"] == 1
    ops = [op for _, _, op in net.sent]
    assert ops.count("config_forward") == 1 and ops.count("config_forward_reply") == 1
    # the node asked holds the acknowledged version before it answers: read-your-writes
    assert net.call(other, "config_get", data_id="app", min_revision=1)["ok"]


def test_persist_comes_before_every_send(tmp_path: Path) -> None:
    """An acknowledgement (a record's ack, a client reply) leaves only after the version is
    in the database: a SIGKILL right after it loses nothing."""
    net = Net(3, data_dir=tmp_path)
    seen: list[tuple[str, int]] = []
    for plane in net.planes.values():
        original = plane._send_peer

        def checked(to: str, frames: list[bytes], plane: ConfigPlane = plane,
                    original: Any = original) -> bool:  # fmt: skip
            for msg in unbatched(frames[1]):
                if msg["op"] in ("config_ack", "config_record"):
                    assert plane.db is not None
                    seen.append((msg["op"], plane.db.count()))
                    assert plane.db.count() >= 1  # the version is on disk already
            return bool(original(to, frames))

        plane._send_peer = checked
    owner = owner_of("durable")
    reply = net.call(owner, "config_publish", data_id="durable", content="v1")
    assert reply["ok"]
    assert {op for op, _ in seen} == {"config_ack", "config_record"}
    for address in ADDRESSES:
        with SqliteConfigStore(database_path(tmp_path / address.rpartition(":")[2])) as db:
            assert db.count() == 1


def test_a_minority_refuses_and_writes_nothing() -> None:
    net = Net(3)
    net.down = set(ADDRESSES[1:])
    net.all_up()
    plane = net.planes[ADDRESSES[0]]
    reply = net.call(ADDRESSES[0], "config_publish", data_id=f"m{0}", content="x")
    assert reply["error"]["name"] == "UNAVAILABLE"
    assert "nothing was written" in reply["error"]["message"]
    assert reply["error"]["written"] is False  # said in a field, not only in the text
    assert len(plane.store) == 0 and plane.stats()["refused_minority"] == 1


def test_an_owners_refusal_that_wrote_nothing_is_relayed_as_such() -> None:
    """review21 F5: "nothing was written" is a field (``error.written`` false), which a
    forwarding node relays; a client need not read the message text."""
    net = Net(3)
    owner = owner_of("x")
    other = next(a for a in ADDRESSES if a != owner)
    net.planes[owner].set_members_up(set())  # the owner sees no peer: a minority
    reply = net.call(other, "config_publish", data_id="x", content="1")
    assert reply["error"]["name"] == "UNAVAILABLE", reply
    assert "need a majority" in reply["error"]["message"]
    assert reply["error"]["written"] is False
    assert all(len(p.store) == 0 for p in net.planes.values())


def test_a_forward_to_an_unreachable_owner_is_refused_after_the_grace() -> None:
    net = Net(3)
    owner = owner_of("x")
    other = next(a for a in ADDRESSES if a != owner)
    grace = net.planes[other].forward_grace  # the connect grace + the peer timeout
    net.down = {owner}  # not yet seen down: the write is still meant for it, and waits
    net.request(other, b"cli", "config_publish", data_id="x", content="1")
    net.tick(grace * 0.9)
    assert b"cli" not in net.replies  # still trying: connecting, or the owner may be gone
    net.tick(grace * 0.2)
    reply = net.last(b"cli")
    assert reply["error"]["name"] == "UNAVAILABLE"
    assert "not reachable" in reply["error"]["message"]
    assert "nothing was written" in reply["error"]["message"]
    assert reply["error"]["written"] is False
    assert net.planes[other].stats()["forwards_pending"] == 0


def test_a_forward_waits_for_the_owners_connection_then_goes_through() -> None:
    """A DEALER just made (or reconnecting) refuses sends (ZMQ_IMMEDIATE): the forward is
    tried again and the write succeeds once the connection is up."""
    net = Net(3)
    owner = owner_of("late")
    other = next(a for a in ADDRESSES if a != owner)
    net.down = {owner}
    net.request(other, b"cli", "config_publish", data_id="late", content="1")
    net.tick(CONNECT_GRACE / 2)
    net.down = set()  # the connection is up
    net.tick(0.3)
    reply = net.last(b"cli")
    assert reply["ok"], reply
    assert reply["result"]["origin"] == owner
    assert [op for _, to, op in net.sent if to == owner].count("config_forward") >= 2


def test_a_forward_to_an_owner_that_died_goes_to_the_new_owner() -> None:
    """The owner was killed and is not seen down yet: the forward waits; once the view
    drops the owner, the write is decided again and goes to the new owner (seen in
    tests/integration/test_config_client.py, where it used to fail at once)."""
    net = Net(3)
    owner = owner_of("moved")
    other = next(a for a in ADDRESSES if a != owner)
    net.down = {owner}  # killed
    net.request(other, b"cli", "config_publish", data_id="moved", content="1")
    net.tick(0.5)
    assert b"cli" not in net.replies
    net.all_up()  # the survivors see it down (peer timeout)
    net.tick(0.5)
    reply = net.last(b"cli")
    assert reply["ok"], reply
    survivors = tuple(a for a in ADDRESSES if a != owner)
    assert reply["result"]["origin"] == owner_of("moved", survivors)


def test_the_owner_answers_a_forward_on_its_connection_when_its_own_is_cut() -> None:
    """review26 F1: the owner cannot reach the forwarding node (a one-way cut), which
    reaches it: the answer goes back on the forward's connection, at once."""
    net = Net(3)
    owner = owner_of("x")
    other = next(a for a in ADDRESSES if a != owner)
    net.cut.add((owner, other))
    reply = net.call(other, "config_publish", data_id="x", content="1")  # no time passes
    assert reply["ok"] and reply["result"]["revision"] == 1, reply
    # an older forwarder (or a send back that fails): the DEALER way, which the cut drops
    net.answer_back = False
    net.request(other, b"old", "config_publish", data_id="x", content="2")
    net.deliver()
    assert b"old" not in net.replies
    net.tick(6.0)
    assert "outcome is unknown" in net.last(b"old")["error"]["message"]


def test_an_unanswered_forward_times_out_as_outcome_unknown() -> None:
    net = Net(3)
    owner = owner_of("x")
    other = next(a for a in ADDRESSES if a != owner)
    net.request(other, b"cli", "config_publish", data_id="x", content="1")
    net.queue.clear()  # the forward is lost
    net.tick(6.0)
    reply = net.last(b"cli")
    assert (
        reply["error"]["name"] == "UNAVAILABLE"
        and "outcome is unknown" in (reply["error"]["message"])
    )
    assert "written" not in reply["error"]  # it may have been written


def test_a_cas_on_the_shown_revision_behind_an_unacknowledged_write_is_retried() -> None:
    """review38: an owner cut off from its peers holds its own revision 2, which no
    majority acknowledged (reads show 1); a CAS on 1, sent to it or through another node,
    is UNAVAILABLE with ``written`` false (retry: nothing was written), not a CONFLICT
    naming a revision no read shows; once the peers hear it again and acknowledge 2, the
    CAS on 1 is a CONFLICT naming 2, which reads show."""
    net = Net(3)
    owner = owner_of("x")
    others = [a for a in ADDRESSES if a != owner]
    assert net.call(owner, "config_publish", data_id="x", content="1")["ok"]
    net.cut.update((owner, a) for a in others)  # its records do not arrive
    net.request(owner, b"w1", "config_publish", data_id="x", content="2")
    net.deliver()
    assert b"w1" not in net.replies  # waiting for a majority
    assert net.call(owner, "config_get", data_id="x")["result"]["revision"] == 1
    for via in (owner, others[0]):
        reply = net.call(via, "config_publish", data_id="x", content="3", if_revision=1)
        error = reply["error"]
        assert error["name"] == "UNAVAILABLE" and error.get("written") is False, reply
        assert "revision 2 is being written" in error["message"], reply
    # a CAS above the owner's revision waits for a majority's versions (session 32: the
    # owner may lack a revision another owner wrote); cut off, it hears none yet
    net.request(owner, b"c9", "config_publish", data_id="x", content="3", if_revision=9)
    net.deliver()
    assert b"c9" not in net.replies
    net.cut.clear()
    net.tick(0.5)  # the record is sent again and acknowledged
    assert net.last(b"w1")["ok"], net.last(b"w1")
    conflict = net.last(b"c9")  # the versions came: nobody holds 9
    assert conflict["error"]["name"] == "CONFLICT", conflict
    assert "is at revision 2, not 9" in conflict["error"]["message"], conflict
    reply = net.call(owner, "config_publish", data_id="x", content="3", if_revision=1)
    assert reply["error"]["name"] == "CONFLICT" and "is at revision 2" in reply["error"]["message"]


def test_a_get_of_a_deleted_data_id_names_the_deletes_revision() -> None:
    """review38 F1: the client keeps it as a floor (``error.revision``); a data id never
    written has none, nor does a get of one revision."""
    net = Net(3)
    net.call(ADDRESSES[0], "config_publish", data_id="x", content="1")
    gone = net.call(ADDRESSES[1], "config_delete", data_id="x")
    assert gone["ok"], gone
    for address in ADDRESSES:
        reply = net.call(address, "config_get", data_id="x")
        assert reply["error"]["name"] == "NOT_FOUND", reply
        assert reply["error"]["revision"] == 2, reply
    never = net.call(ADDRESSES[0], "config_get", data_id="never")
    assert never["error"]["name"] == "NOT_FOUND" and "revision" not in never["error"]
    old = net.call(ADDRESSES[0], "config_get", data_id="x", revision=2)
    assert old["error"]["name"] == "NOT_FOUND" and "revision" not in old["error"]


def test_a_version_loaded_unacknowledged_settles_2_5_s_after_the_start(tmp_path: Path) -> None:
    """review46 F4: the versions a node loads at its start settled by their writer's
    ``modified``: one written by a node 20 s behind, never acknowledged, was shown at once
    after a restart.  It reached this node before the start: it settles 2.5 s after it
    (one written more than SETTLE_SECONDS + AGE_SKEW_MARGIN before the start stays shown:
    test_config_commit.py)."""
    port = ADDRESSES[0].rpartition(":")[2]
    key = ConfigKey("public", "DEFAULT_GROUP", "loaded")
    v1 = ConfigEntry(key, 1, "10.0.0.9:7800", "v1", "text", content_md5("v1"), T0 - 100.0,
                     committed=True)  # fmt: skip
    v2 = ConfigEntry(key, 2, "10.0.0.9:7800", "v2", "text", content_md5("v2"), T0 - 20.0)
    with SqliteConfigStore(database_path(tmp_path / port)) as db:
        db.save([v1, v2])
    net = Net(1, data_dir=tmp_path)
    assert net.call(ADDRESSES[0], "config_get", data_id="loaded")["result"]["revision"] == 1
    net.now += 2.6
    assert net.call(ADDRESSES[0], "config_get", data_id="loaded")["result"]["revision"] == 2


def test_every_node_keeps_with_a_version_when_it_settles_there(tmp_path: Path) -> None:
    """The save ops carry ``ConfigStore.arrival_settle`` (taken on the loop thread): a
    node restarted after it showed a version no commit message reached shows it at once
    (test_config_sqlite.py; the learner simulation's seed 42)."""
    net = Net(4, data_dir=tmp_path)  # (of 3, a peer saving a record makes the majority)
    written = net.now
    assert net.call(ADDRESSES[0], "config_publish", data_id="s", content="1")["ok"]
    for address in net.addresses:
        net.planes[address].close(net.now)
        with SqliteConfigStore(database_path(tmp_path / address.rpartition(":")[2])) as db:
            rows = db._conn.execute("SELECT settles_at FROM config_versions").fetchall()
        assert len(rows) == 1 and written + SETTLE_SECONDS <= rows[0][0], (address, rows)
        assert rows[0][0] <= net.now + SETTLE_SECONDS, (address, rows)


def test_a_node_whose_clock_is_off_serves_no_config_reads() -> None:
    """review44 F4: counted out for a clock off a majority's by more than 30 s, a node
    refused registry reads but served config reads; now both (the fast path too), and
    the answer says why.  Writes still go through it (forwarded to the owner)."""
    net = Net(3)
    off = net.planes[ADDRESSES[1]]
    assert net.call(ADDRESSES[0], "config_publish", data_id="c", content="1")["ok"]
    assert net.call(ADDRESSES[1], "config_get", data_id="c")["ok"]  # (its fast path cached)
    off._clock_skewed = lambda: True
    for op, fields in (("config_get", {"data_id": "c"}), ("config_listen", {"data_id": "c"}),
                       ("config_list", {}), ("config_history", {"data_id": "c"})):  # fmt: skip
        reply = net.call(ADDRESSES[1], op, **fields)
        assert reply["error"]["name"] == "UNAVAILABLE", (op, reply)
        message = reply["error"]["message"]
        assert "clock is off" in message and "ask another node" in message, message
    assert off.store.rejected["clock_skewed"] == 4
    assert net.call(ADDRESSES[1], "config_publish", data_id="c", content="2")["ok"]
    off._clock_skewed = lambda: False
    assert net.call(ADDRESSES[1], "config_get", data_id="c")["result"]["content"] == "2"


def _with_learner(net: Net, counted_by: set[str]) -> str:
    """A fourth node whose list names everyone, while the old lists do not name it (a
    scale-out: docs/CONFIG.md "A new node: learner"); ``counted_by``: the old nodes that
    have heard its beacons already (their learner)."""
    new = "127.0.0.1:7830"
    learner = net.start(new, (*net.addresses, new))
    learner.set_members_up(set(net.addresses))
    learner.set_learners(frozenset(), frozenset(net.addresses))
    for address in counted_by:
        net.planes[address].set_learners(frozenset({new}), frozenset())
    return new


def test_a_write_through_a_learner_waits_for_an_owner_that_has_not_heard_it_yet() -> None:
    """CI, once: a node just started as a learner forwarded a write to an owner that had
    not heard its beacons yet; the owner dropped the forward as from "not a configured
    peer" and the client got "outcome unknown" 2.2 s later. The owner now says it has not
    heard the sender (nothing written), and the learner tries again until its grace."""
    net = Net(3)
    owner = owner_of("scale")
    new = _with_learner(net, {a for a in ADDRESSES if a != owner})
    net.request(new, b"cli", "config_publish", data_id="scale", content="1")
    net.tick(0.5)
    assert b"cli" not in net.replies  # waiting: no "outcome unknown", no refusal yet
    assert net.planes[owner].stats()["peer_messages_rejected"] >= 1
    net.planes[owner].set_learners(frozenset({new}), frozenset())  # its beacons heard
    net.tick(0.2)
    reply = net.last(b"cli")
    assert reply["ok"], reply
    assert reply["result"]["origin"] == owner
    assert net.planes[new].stats()["forwards_pending"] == 0


def test_a_learner_the_owner_never_hears_is_refused_as_nothing_written() -> None:
    net = Net(3)
    owner = owner_of("scale")
    new = _with_learner(net, set())
    grace = net.planes[new].forward_grace
    net.request(new, b"cli", "config_publish", data_id="scale", content="1")
    net.tick(grace + 0.1)
    reply = net.last(b"cli")
    assert reply["error"]["name"] == "UNAVAILABLE", reply
    assert reply["error"]["written"] is False
    message = reply["error"]["message"]
    assert owner in message and "has not heard" in message and "nothing was written" in message
    assert all(len(net.planes[a].store) == 0 for a in ADDRESSES)


def test_ready_gate_a_restarted_node_catches_up_before_it_serves_reads() -> None:
    net = Net(3)
    owner = owner_of("cfg")
    for n in range(3):
        assert net.call(owner, "config_publish", data_id="cfg", content=f"v{n}")["ok"]
    late = next(a for a in ADDRESSES if a != owner)
    net.planes[late] = ConfigPlane(  # restarted with an empty memory store
        NodeConfig(port=int(late.rpartition(":")[2]), peers=ADDRESSES),
        net.now,
        lambda to, frames: net._send(late, to, frames),
        lambda envelope, body: net.replies.setdefault(envelope[0], []).append(
            msgpack.unpackb(body, raw=False)
        ),
        lambda frames: None,
    )
    net.planes[late].set_members_up(set(ADDRESSES) - {late})
    assert not net.planes[late].ready
    reply = net.call(late, "config_get", data_id="cfg")
    assert reply["error"]["name"] == "UNAVAILABLE" and "catching up" in reply["error"]["message"]
    net.tick(1.0)
    assert net.planes[late].ready
    got = net.call(late, "config_get", data_id="cfg")["result"]
    assert got["content"] == "v2" and got["revision"] == 3
    history = net.call(late, "config_history", data_id="cfg")["result"]["items"]
    assert [h["revision"] for h in history] == [3, 2, 1]


def test_a_node_back_with_an_empty_data_dir_waits_for_the_peer_holding_what_it_acked(
    tmp_path: Path,
) -> None:
    """review42 F1: the owner acknowledged v1 with Y (Z was down), then lost its disk
    and came back at its address with an empty data directory (README "Replace a dead
    node") while Y was cut off and Z, back, lacked v1.  It counted its own empty store
    in the majority: ready after Z's pages, it read v1 as absent and acknowledged a
    create-if-absent at revision 1 again (with Z): two acknowledged writes at one
    revision.  Now a store that started empty counts only whole peers and needs both:
    not ready, the create refused (nothing written) until Y is heard, then v1 is there
    and the create is a CONFLICT."""
    net = Net(3, data_dir=tmp_path)
    net.tick(0.5)  # a new cluster's nodes, each whole: a round to each peer at once
    assert all(len(p.replicator.seen_whole) == 2 for p in net.planes.values())
    owner = owner_of("cfg")
    y, z = (a for a in ADDRESSES if a != owner)
    net.down.add(z)
    net.all_up()
    first = net.call(owner, "config_publish", data_id="cfg", content="v1", if_revision=0)
    assert first["ok"] and first["result"]["revision"] == 1, first
    assert net.planes[z].store.current(ConfigKey("public", "DEFAULT_GROUP", "cfg")) is None
    net.planes[owner].close(net.now, drain=False)  # SIGKILL; then its disk is lost
    shutil.rmtree(tmp_path / owner.rpartition(":")[2])
    net.down.discard(z)
    net.cut.update({(y, owner), (owner, y)})  # Y unreachable for the new node
    fresh = net.start(owner)
    net.all_up()
    net.tick(3.0)  # Z's pages came long ago
    assert not fresh.ready and not fresh.replicator.intact
    reply = net.call(owner, "config_get", data_id="cfg")
    assert reply["error"]["name"] == "UNAVAILABLE", reply
    assert "data directory started empty" in reply["error"]["message"], reply
    assert "needs 2 of them (caught up with 1)" in reply["error"]["message"], reply
    net.down.add(y)  # Y down, not only cut: it says that it waits for it (review43 F2)
    net.all_up()
    down = net.call(owner, "config_get", data_id="cfg")["error"]["message"]
    assert "it sees 1 peers up: start the ones that are down, it waits for them" in down
    assert "retry shortly" not in down and "retry on another node" in down
    net.down.discard(y)
    net.all_up()
    net.request(owner, b"again", "config_publish", data_id="cfg", content="v2", if_revision=0)
    net.tick(3.0)  # its catch-up of the data id never hears a second whole store
    again = net.last(b"again")
    assert again["error"]["name"] == "UNAVAILABLE" and again["error"]["written"] is False, again
    net.cut.clear()
    net.tick(3.0)
    assert fresh.ready and fresh.replicator.intact
    assert net.call(owner, "config_get", data_id="cfg")["result"]["content"] == "v1"
    conflict = net.call(owner, "config_publish", data_id="cfg", content="v2", if_revision=0)
    assert conflict["error"]["name"] == "CONFLICT", conflict
    # whole from now on, across a restart (the state file says so)
    fresh.close(net.now)
    again_up = net.start(owner)
    assert again_up.replicator.intact and again_up.gate.intact


def test_a_new_cluster_gets_ready_with_a_member_missing_and_a_wiped_one_restarting_not(
    tmp_path: Path,
) -> None:
    """Every store started empty (a new cluster), one member not started: the two others
    are ready as a new cluster's nodes (each counts the other's pages, ``fresh`` or
    ``new``), take writes, and the third, started later, catches up from both and is
    whole.  A new node killed before it caught up keeps starting as a fresh one (the
    state file), although it holds some versions by then."""
    net = Net(3, data_dir=tmp_path, up=False)
    late = ADDRESSES[2]
    net.planes[late].close(net.now, drain=False)
    del net.planes[late]
    net.down.add(late)
    net.all_up()
    wait = 2 * NodeConfig().cluster.peer_timeout  # a new member waits (review43 F3)
    net.tick(wait - 0.2)
    a, b = (net.planes[x] for x in ADDRESSES[:2])
    assert not a.ready and not b.ready
    net.tick(0.5)
    assert a.ready and b.ready and a.replicator.new and b.replicator.new
    key = next(f"k{i}" for i in range(50) if owner_of(f"k{i}") != late)
    assert net.call(ADDRESSES[0], "config_publish", data_id=key, content="1")["ok"]
    third = net.start(late)
    net.down.discard(late)
    net.all_up()
    assert not third.replicator.intact
    net.tick(2.0)
    assert third.ready and third.replicator.intact and not third.replicator.new
    assert net.call(late, "config_get", data_id=key)["result"]["content"] == "1"
    # a fresh node killed before it caught up: still fresh at its next start
    other = ADDRESSES[1]
    net.planes[other].close(net.now, drain=False)
    shutil.rmtree(tmp_path / other.rpartition(":")[2])
    net.down.update({ADDRESSES[0], late})  # nobody to catch up from
    restarted = net.start(other)
    net.all_up()
    assert not restarted.replicator.intact
    net.deliver()
    restarted.close(net.now)
    assert not net.start(other).replicator.intact


def test_two_wiped_nodes_wait_for_a_whole_peer_up_whose_pages_are_late(tmp_path: Path) -> None:
    """review43 F3 again (its real-process test failed once in CI, under load): the whole
    store's beacons were heard (up) but its pages, on a slow peer-request link, were still
    on their way when the two wiped stores' grace ended, and they took each other for a
    new cluster: one answered "absent" for an acknowledged data id.  A peer up is waited
    for."""
    net = Net(3, data_dir=tmp_path)
    net.tick(0.5)  # each store seen whole by the others
    assert net.call(owner_of("cfg"), "config_publish", data_id="cfg", content="v1")["ok"]
    net.tick(0.5)
    whole, *wiped = ADDRESSES
    for address in wiped:
        net.planes[address].close(net.now, drain=False)  # SIGKILL, then the disk is lost
        shutil.rmtree(tmp_path / address.rpartition(":")[2])
    for address in wiped:
        net.start(address)
        net.cut.update({(address, whole), (whole, address)})  # its asks do not get through
    net.all_up()  # the whole one is up: its beacons are heard
    net.tick(2 * NodeConfig().cluster.peer_timeout + 1.0)
    for address in wiped:
        assert not net.planes[address].ready, f"{address} took itself for a new member"
        reply = net.call(address, "config_get", data_id="cfg")
        assert reply["error"]["name"] == "UNAVAILABLE", reply
    net.cut.clear()  # its pages come
    net.tick(3.0)
    for address in wiped:
        plane = net.planes[address]
        assert plane.ready and not plane.replicator.new
        assert net.call(address, "config_get", data_id="cfg")["result"]["content"] == "v1"


def test_force_ready_serves_a_lone_survivors_disk_at_once_and_is_idempotent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The runtime admin op (``config_force_ready``): a member whose peers are all down is
    not ready; forced, it serves its own versions, says so (stats, a WARNING naming who),
    writes still need a majority; asked again, nothing changes; a node that caught up by
    itself is not marked forced."""
    net = Net(3, data_dir=tmp_path)
    owner = owner_of("cfg")
    assert net.call(owner, "config_publish", data_id="cfg", content="v1")["ok"]
    net.deliver()
    for plane in net.planes.values():
        plane.close()
    lone = owner  # restarted alone from its disk; the others never come back
    net.down = set(ADDRESSES) - {lone}
    plane = net.start(lone)
    plane.set_members_up(set())
    net.tick(1.0)
    assert not plane.ready and not plane.forced_ready
    reply = net.call(lone, "config_get", data_id="cfg")
    assert reply["error"]["name"] == "UNAVAILABLE" and "catching up" in reply["error"]["message"]
    with caplog.at_level(logging.INFO, logger="meshreg.node"):
        net.request(lone, b"op", "config_force_ready")
    assert net.last(b"op") == {"v": 1, "id": 1, "ok": True, "result": {
        "node": lone, "was_ready": False, "forced_ready": True}}  # fmt: skip
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("READY FORCED by 'tester'" in m for m in warnings), warnings
    stats = plane.stats()
    assert stats["ready"] and stats["forced_ready"] and plane.status(net.now)["forced_ready"]
    got = net.call(lone, "config_get", data_id="cfg")["result"]
    assert got["content"] == "v1" and got["revision"] == 1
    reply = net.call(lone, "config_publish", data_id="cfg", content="alone")
    assert reply["error"]["name"] == "UNAVAILABLE"  # writes: still a majority
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="meshreg.node"):
        net.request(lone, b"op", "config_force_ready")  # again: nothing changes
    assert net.last(b"op")["result"] == {"node": lone, "was_ready": True, "forced_ready": True}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("already ready (forced)" in r.getMessage() for r in caplog.records)
    plane.close()
    # a member that caught up by itself: ready, not forced, left as it is
    fresh = Net(3)
    member = ADDRESSES[1]
    fresh.request(member, b"op", "config_force_ready")
    assert fresh.last(b"op")["result"] == {"node": member, "was_ready": True,
                                            "forced_ready": False}  # fmt: skip
    assert not fresh.planes[member].forced_ready


def test_a_forced_node_catches_up_when_its_peers_return_and_is_no_longer_forced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The override lasted until a restart: a forced node whose peers came back kept
    ``forced_ready`` (``meshreg cluster`` said FORCED for ever), its gate stopped, and it
    was never made not-ready again after a stall or a cut (``rearm`` skips a forced node).
    Now its gate goes on: once it has caught up with a majority it is a normal member."""
    net = Net(3, data_dir=tmp_path)
    owner = owner_of("cfg")
    assert net.call(owner, "config_publish", data_id="cfg", content="v1")["ok"]
    net.deliver()
    lone = next(a for a in ADDRESSES if a != owner)  # missed v2: acknowledged without it
    net.planes[lone].close()
    net.down.add(lone)
    net.all_up()
    assert net.call(owner, "config_publish", data_id="cfg", content="v2")["ok"]
    net.deliver()
    for plane in net.planes.values():
        plane.close()
    net.down = set(ADDRESSES) - {lone}
    plane = net.start(lone)
    plane.set_members_up(set())
    net.tick(1.0)
    net.request(lone, b"op", "config_force_ready")
    assert net.last(b"op")["result"]["forced_ready"] and plane.forced_ready
    assert net.call(lone, "config_get", data_id="cfg")["result"]["content"] == "v1"  # the risk
    net.tick(5.0)
    assert plane.forced_ready  # alone: forced it stays
    with caplog.at_level(logging.INFO, logger="meshreg.node"):
        for address in set(ADDRESSES) - {lone}:
            net.start(address)
        net.all_up()
        net.tick(3.0)
    assert not plane.forced_ready and plane.ready and not plane.stats()["forced_ready"]
    assert any("no longer forced" in r.getMessage() for r in caplog.records)
    got = net.call(lone, "config_get", data_id="cfg")["result"]
    assert (got["content"], got["revision"]) == ("v2", 2)
    plane.stalled(net.now, plane.absent_after + 1.0)  # a normal member: rearmed again
    assert not plane.ready and plane.stats()["sync_rearms"] == 1
    net.tick(3.0)
    assert plane.ready and not plane.forced_ready


def test_a_read_ahead_waits_for_the_version_then_answers() -> None:
    net = Net(3)
    owner = owner_of("w")
    reader = next(a for a in ADDRESSES if a != owner)
    net.request(reader, b"r1", "config_get", data_id="w", min_revision=1)
    assert b"r1" not in net.replies  # waiting
    assert net.call(owner, "config_publish", data_id="w", content="now")["ok"]
    assert net.last(b"r1")["result"]["content"] == "now"
    net.request(reader, b"r2", "config_get", data_id="w", min_revision=5)
    net.tick(PARK_SECONDS + 0.1)
    assert net.last(b"r2")["error"]["name"] == "UNAVAILABLE"
    assert net.planes[reader].stats()["reads_waiting"] == 0


def test_one_namespace_holds_a_bounded_share_of_the_waiting_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tenant flooding reads of a revision that never comes waits with the places
    beyond MAX_PARKED_PER_NAMESPACE kept free for the others (the rest refused at once);
    another namespace's read still waits, and gets its version; a read still behind after
    a version came waits on to its own deadline (its one heap entry), then is refused.
    review60 F9: a namespace alone was held to its share (a quarter) of the places."""
    monkeypatch.setattr(config_plane, "MAX_PARKED", 12)
    monkeypatch.setattr(config_plane, "MAX_PARKED_PER_NAMESPACE", 3)
    net = Net(3)
    owner = owner_of("w")
    reader = next(a for a in ADDRESSES if a != owner)
    for n in range(12):
        net.request(reader, f"f{n}".encode(), "config_get", namespace="flood", data_id="w",
                    min_revision=10**9)  # fmt: skip
    refused = [c for c in (f"f{n}".encode() for n in range(12)) if c in net.replies]
    assert len(refused) == 3 and all(
        net.last(c)["error"]["name"] == "UNAVAILABLE" for c in refused
    )
    assert net.planes[reader].stats()["reads_waiting"] == 9  # 12 - the others' 3
    net.request(reader, b"other", "config_get", data_id="w", min_revision=1)
    net.request(reader, b"later", "config_get", data_id="w", min_revision=2)
    assert b"other" not in net.replies and b"later" not in net.replies  # waiting
    net.tick(PARK_SECONDS / 2)
    assert net.call(owner, "config_publish", data_id="w", content="now")["ok"]
    assert net.last(b"other")["result"]["content"] == "now"
    assert b"later" not in net.replies  # revision 1 came, not 2: waits on
    net.tick(PARK_SECONDS / 2 + 0.1)
    assert net.last(b"later")["error"]["name"] == "UNAVAILABLE"
    net.tick(0.1)
    for n in range(12):
        assert net.last(f"f{n}".encode())["error"]["name"] == "UNAVAILABLE"
    assert net.planes[reader].stats()["reads_waiting"] == 0
    assert net.planes[reader]._parked_by_namespace == {}


@pytest.mark.parametrize(
    "body",
    [
        b"\xc1",
        msgpack.packb([1, 2]),
        msgpack.packb({"v": 1, "op": "config_record", "from": ADDRESSES[1], "entry": {}}),
        msgpack.packb({"v": 1, "op": "config_sync", "from": "10.0.0.9:1"}),  # not a member
        msgpack.packb({"v": 1, "op": "config_sync", "from": ADDRESSES[0]}),  # itself
        msgpack.packb(
            {
                "v": 1,
                "op": "config_forward",
                "from": ADDRESSES[1],
                "tag": 1,
                "request": {"op": "config_get"},
                "by": "",
            }
        ),  # fmt: skip
    ],
)
def test_bad_peer_messages_are_counted_and_change_nothing(body: bytes) -> None:
    net = Net(3)
    plane = net.planes[ADDRESSES[0]]
    plane.on_peer(body, net.now)
    assert plane.stats()["peer_messages_rejected"] == 1
    assert len(plane.store) == 0 and not net.queue


def test_a_record_with_a_wrong_md5_is_refused() -> None:
    net = Net(3)
    good = net.call(owner_of("k"), "config_publish", data_id="k", content="v")["result"]
    other = next(a for a in ADDRESSES if a != good["origin"])
    entry = {"key": ["public", "DEFAULT_GROUP", "k"], "revision": 2, "origin": good["origin"],
             "content": "evil", "type": "text", "md5": good["md5"], "modified": T0,
             "modified_by": "", "description": "", "tags": {}, "deleted": False,
             "change": "publish", "gray": None, "committed": True}  # fmt: skip
    frames = encode_config_peer("config_record", good["origin"], entry=entry)
    net.planes[other].on_peer(frames[1], net.now)
    assert net.planes[other].stats()["peer_messages_rejected"] == 1
    assert net.call(other, "config_get", data_id="k")["result"]["content"] == "v"


@pytest.mark.parametrize("seed", range(6))
def test_seeded_loss_and_reordering_converge_without_losing_acknowledged_writes(
    seed: int,
) -> None:
    """Writes on random nodes with 20 % of peer messages lost and delivery reordered; after
    healing (anti-entropy), every node holds every acknowledged version, the same current
    versions, and listeners saw revisions only grow."""
    net = Net(3, seed=seed, loss=0.2)
    rng = random.Random(seed)
    acked: dict[str, list[int]] = {}
    for i in range(30):
        data_id = f"d{rng.randrange(4)}"
        client = f"s{seed}-{i}".encode()
        net.request(rng.choice(ADDRESSES), client, "config_publish", data_id=data_id,
                    content=f"{i}")  # fmt: skip
        for _ in range(rng.randrange(1, 4)):
            net.tick(0.3)
            net.deliver(shuffle=True)
        net.tick(5.0)  # forwards and acks time out or complete
        reply = net.last(client)
        if reply["ok"]:
            acked.setdefault(data_id, []).append(reply["result"]["revision"])
    net.loss = 0.0
    net.tick(12.0)  # anti-entropy rounds (every 5 s, one peer in turn)
    assert acked, f"seed {seed}: nothing was acknowledged"
    currents = []
    for address, plane in net.planes.items():
        for data_id, revisions in acked.items():
            key = ConfigKey("public", "DEFAULT_GROUP", data_id)
            held = {e.revision for e in plane.store.entries(key)}
            assert set(revisions) <= held, (seed, address, data_id)
        currents.append({k: plane.store.current(k) for k in list(plane.store.keys())})
        for data_id in acked:
            seen = [n["revision"] for n in net.notes[address] if n["data_id"] == data_id]
            assert seen == sorted(seen), (seed, address, data_id)
    assert currents[0] == currents[1] == currents[2], f"seed {seed}: no convergence"


class _RecordingDb:
    """The plane's database, recording every ``save`` in one log with the plane's sends."""

    def __init__(self, db: SqliteConfigStore, log: list[tuple[Any, ...]], me: str) -> None:
        self.db, self.log, self.me = db, log, me

    def write(self, ops: Any) -> None:  # what the plane's group commit calls
        ops = [(save, list(entries), settles) for save, entries, settles in ops]
        self.db.write(ops)  # the commit first, then the log entry: "on disk"
        entries = [e for save, es, _ in ops if save for e in es]
        self.log.append(
            ("save", self.me, {(e.key.data_id, e.revision, e.committed) for e in entries})
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def _record_order(net: Net) -> list[tuple[Any, ...]]:
    """One log of each plane's saves, peer sends, client replies and notifications."""
    log: list[tuple[Any, ...]] = []
    for me, plane in net.planes.items():
        assert plane.db is not None
        plane.db = _RecordingDb(plane.db, log, me)  # type: ignore[assignment]
        send_peer, send_reply, notify = plane._send_peer, plane._send_reply, plane._notify

        def peer(to: str, frames: list[bytes], me: str = me, send: Any = send_peer) -> bool:
            for msg in unbatched(frames[1]):
                if msg["op"] == "config_record":
                    entry = msg["entry"]
                    log.append(("record", me, (entry["key"][2], entry["revision"])))
                elif msg["op"] == "config_ack" and msg["ok"]:
                    log.append(("ack", me, (msg["key"][2], msg["revision"])))
            return bool(send(to, frames))

        def reply(envelope: list[bytes], body: bytes, me: str = me, send: Any = send_reply) -> None:
            result = msgpack.unpackb(body, raw=False).get("result") or {}
            if "revision" in result:  # a read's answer (client b"reader") or a write's
                what = "read" if envelope[0] == b"reader" else "reply"
                log.append((what, me, (result["data_id"], result["revision"])))
            send(envelope, body)

        def note(frames: list[bytes], me: str = me, send: Any = notify) -> None:
            change = msgpack.unpackb(frames[1], raw=False)
            log.append(("notify", me, (change["data_id"], change["revision"])))
            send(frames)

        plane._send_peer, plane._send_reply, plane._notify = peer, reply, note
    return log


def _check_disk_first(
    log: list[tuple[Any, ...]], majority: int = 2, before: frozenset[Any] = frozenset()
) -> None:
    """Every ack, reply, read answer and notification of a version left after a commit of
    that version on that node (a write's reply: of the version marked committed); a reply
    and a notification only once a majority of the nodes hold the version on disk (a
    notification never shows a version that may be lost).  Records may leave before
    their owner's commit (they are not acknowledgements).  ``before``: versions on every
    disk before the log started."""
    saved: dict[str, set[tuple[str, int, bool]]] = {a: set(before) for a in ADDRESSES}
    for what, me, item in log:
        if what == "save":
            saved.setdefault(me, set()).update(item)
            continue
        if what == "record":
            continue
        on_disk = saved.get(me, set())
        need = {(*item, True)} if what == "reply" else {(*item, False), (*item, True)}
        assert need & on_disk, f"{what} {item} on {me} before its commit: {log}"
        if what in ("reply", "notify"):
            holders = [m for m, s in saved.items() if {(*item, False), (*item, True)} & s]
            assert len(holders) >= majority, f"{what} {item} on {me}: only on {holders}: {log}"


def test_group_commit_one_transaction_per_turn_and_nothing_leaves_before_it(
    tmp_path: Path,
) -> None:
    """Several writes in one loop turn: one transaction on each node per turn, and every
    reply, ack, record and notification after the commit holding its version."""
    net = Net(3, data_dir=tmp_path)
    owner = owner_of("g0")
    ids = [d for d in (f"g{i}" for i in range(40)) if owner_of(d) == owner][:5]
    assert len(ids) == 5
    for data_id in ids:  # revision 1 (and the owner's catch-up round) first
        assert net.call(owner, "config_publish", data_id=data_id, content="v0")["ok"]
    log = _record_order(net)
    plane = net.planes[owner]
    count = plane.db.count() if plane.db is not None else -1
    clients = [f"gc{i}".encode() for i in range(len(ids))]
    for client, data_id in zip(clients, ids, strict=True):  # one turn: 5 publishes
        msg = {"v": 1, "id": 1, "op": "config_publish", "data_id": data_id, "content": "v"}
        assert (
            plane.serve([client, b""], parse_config_message(msg), msg, "t", None, net.now) is None
        )
    # a read of a data id written in this turn waits for the commit
    get = {"v": 1, "id": 2, "op": "config_get", "data_id": ids[0]}
    assert plane.serve([b"reader", b""], parse_config_message(get), get, "t", None, net.now) is None
    assert log == [] and net.queue == deque() and plane.db is not None
    assert plane.db.count() == count  # nothing saved before the end of the turn
    plane.flush(net.now)
    assert log[0][0] == "save" and len(log[0][2]) == 5
    # saved here, not yet acknowledged by a majority: not announced (it may still lose)
    assert "notify" not in {e[0] for e in log}
    # ... and shows the version a majority acknowledged (revision 2 is not, yet)
    assert net.replies[b"reader"][0]["result"]["revision"] == 1
    # the turn's 5 records leave as ONE config_batch per peer, in their order
    assert sorted(to for to, _ in net.queue) == sorted(a for a in ADDRESSES if a != owner)
    for _, body in net.queue:
        assert msgpack.unpackb(body, raw=False)["op"] == "config_batch"
        assert sorted(m["entry"]["key"][2] for m in unbatched(body)) == sorted(ids)
    for _ in range(3):  # turns: each node takes every message queued for it, then flushes
        batch, net.queue = list(net.queue), deque()
        for to, body in batch:
            net.planes[to].on_peer(body, net.now)
        for p in net.planes.values():
            p.flush(net.now)
    _check_disk_first(log, before=frozenset((d, 1, True) for d in ids))
    saves = [me for what, me, _ in log if what == "save"]
    # one transaction per node per turn: the owner's versions, then its commit flags (its
    # replies wait for them); each peer's versions (all 5) in one. The first write of the
    # turn was alone (no other waiting for its majority): its records said ``saved`` and
    # the peers marked it in that same transaction; the other 4 went before the owner's
    # save and their flags come with commit messages (lazy: with the next transaction)
    peers = [a for a in ADDRESSES if a != owner]
    assert sorted(saves) == sorted([owner, owner, *peers]), log
    for what, me, items in log:
        if what == "save" and me in peers:
            assert items == {(d, 2, False) for d in ids} | {(ids[0], 2, True)}, log
    assert [net.planes[p].stats()["commit_marks_waiting"] for p in peers] == [4, 4]
    assert net.batches == 2 + 2 + 2  # records out, acks back, commits (of 4) out
    assert all(net.replies[c][0]["ok"] for c in clients)
    assert sorted(i for what, _, i in log if what == "reply") == [(d, 2) for d in sorted(ids)]
    net.tick(LAZY_MARK_SECONDS + 0.1)  # no other write came: the flags, one transaction each
    saves = [me for what, me, _ in log if what == "save"]
    assert sorted(saves) == sorted(list(ADDRESSES) * 2), log
    assert [net.planes[p].stats()["commit_marks_waiting"] for p in peers] == [0, 0]
    assert [net.planes[p].stats()["commit_marks_waiting"] for p in peers] == [0, 0]


def test_the_order_check_fails_when_a_reply_leaves_before_the_commit(tmp_path: Path) -> None:
    """The check above can fail: a plane whose flush sends before it saves is caught."""
    net = Net(1, data_dir=tmp_path)
    log = _record_order(net)
    plane = net.planes[ADDRESSES[0]]

    def sends_first(now: float) -> None:  # the bug: carry out the effects, then save
        turn = plane._commits.turn
        entries = [e for save, es, _ in turn.ops if save for e in es]
        turn.ops.clear()
        ConfigPlane.flush(plane, now)
        assert plane.db is not None
        plane.db.write([(True, entries, ())])

    plane.flush = sends_first  # type: ignore[method-assign]
    net.call(ADDRESSES[0], "config_publish", data_id="early", content="x")
    with pytest.raises(AssertionError, match="before its commit"):
        _check_disk_first(log)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batched_turns_with_loss_acknowledge_only_what_a_majority_saved(
    tmp_path: Path, seed: int
) -> None:
    """Seeded: several writes per turn on random nodes, peer messages taken in turns of
    1-8 (one group commit each), 10 % lost, reordered. Every record, ack, reply and
    notification leaves after the commit of its version on its node, every write reply
    when a majority of the databases hold the version; all converge."""
    net = Net(3, data_dir=tmp_path, seed=seed, loss=0.1)
    net.batched = True
    rng = random.Random(seed)
    acked: list[tuple[str, int]] = []
    log = _record_order(net)  # and every send after the commit of its version

    def on_disk(data_id: str, revision: int) -> int:
        sql = "SELECT COUNT(*) FROM config_versions WHERE data_id = ? AND revision = ?"
        return sum(
            p.db._conn.execute(sql, (data_id, revision)).fetchone()[0] > 0
            for p in net.planes.values()
            if p.db is not None
        )

    for plane in net.planes.values():

        def reply(envelope: list[bytes], body: bytes, send: Any = plane._send_reply) -> None:
            answer = msgpack.unpackb(body, raw=False)
            if envelope[0].startswith(b"w") and answer["ok"]:
                item = (answer["result"]["data_id"], answer["result"]["revision"])
                assert on_disk(*item) >= 2, (seed, item, "acknowledged before a majority saved")
                acked.append(item)
            send(envelope, body)

        plane._send_reply = reply
    for i in range(12):
        for j in range(rng.randrange(1, 5)):  # several writes in one turn
            data_id = f"b{rng.randrange(6)}"
            net.request(rng.choice(ADDRESSES), f"w{i}-{j}".encode(), "config_publish",
                        data_id=data_id, content=f"{i}-{j}")  # fmt: skip
        net.tick(0.3)
        net.deliver(shuffle=True)
    net.tick(5.0)
    net.loss = 0.0
    net.tick(12.0)
    assert len(acked) >= 5, (seed, acked)
    currents = [{k: p.store.current(k) for k in list(p.store.keys())} for p in net.planes.values()]
    assert currents[0] == currents[1] == currents[2], f"seed {seed}: no convergence"
    for item in acked:
        assert on_disk(*item) == 3, (seed, item)
    _check_disk_first(log)


def test_a_waiting_forward_gives_up_before_the_client_sends_the_write_again() -> None:
    """Writes are not idempotent: a client re-sends a write after its attempt budget, so a
    forward still waiting for its owner must have been answered by then."""
    from meshreg.client.config_session import CONFIG_WRITE_ATTEMPT
    from meshreg.runtime.config_plane import FORWARD_WAIT_MAX

    assert FORWARD_WAIT_MAX < CONFIG_WRITE_ATTEMPT
    net = Net(3)
    assert all(p.forward_grace <= FORWARD_WAIT_MAX for p in net.planes.values())


def test_a_new_exact_subscription_gets_the_current_version() -> None:
    """A listener whose SUB (re)connects after a change it missed learns of it at once
    (as a service's sync), not at its next resync; prefixes and unknown data ids get
    nothing."""
    from meshreg.wire.config_replies import config_topic

    net = Net(1)
    address = ADDRESSES[0]
    net.call(address, "config_publish", data_id="seen", content="v1")
    net.call(address, "config_publish", data_id="seen", content="v2")
    plane = net.planes[address]
    before = len(net.notes[address])
    plane.subscribed(config_topic(ConfigKey("public", "DEFAULT_GROUP", "seen")))
    plane.subscribed(config_topic(ConfigKey("public", "DEFAULT_GROUP", "unknown")))
    plane.subscribed(b"\x00config\x00public\x00")  # a namespace prefix: no sync
    sent = net.notes[address][before:]
    assert [(n["data_id"], n["revision"]) for n in sent] == [("seen", 2)]
    assert plane.stats()["subscription_syncs"] == 1


def test_a_get_is_answered_from_the_packed_result_of_the_current_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The current entry's get result is packed once and reused: the same bytes as packing
    it per request, never a stale version after a change, the gray content only to the
    clients the rule selects; the cache is bounded by bytes."""
    import meshreg.runtime.config_plane as plane_module
    from meshreg.wire.config_replies import entry_result
    from meshreg.wire.replies import encode_ok

    net = Net(1)
    a = ADDRESSES[0]
    plane = net.planes[a]
    assert net.call(a, "config_publish", data_id="c", content="one")["ok"]
    packs: list[Any] = []
    original = plane_module.pack_entry_result
    monkeypatch.setattr(plane_module, "pack_entry_result",
                        lambda e, *a: packs.append(e.revision) or original(e, *a))  # fmt: skip

    def get(**fields: Any) -> bytes:
        msg = {"v": 1, "id": 300, "op": "config_get", "data_id": "c", **fields}
        body = plane.serve([b"g", b""], parse_config_message(msg), msg, "t", "10.1.1.1", net.now)
        assert body is not None
        return body

    current = plane.store.current(ConfigKey("public", "DEFAULT_GROUP", "c"))
    assert current is not None
    expected = encode_ok(300, entry_result(current))
    assert get() == expected and get() == expected and packs == [1]  # packed once
    assert net.call(a, "config_publish", data_id="c", content="two")["ok"]
    assert msgpack.unpackb(get(), raw=False)["result"]["content"] == "two" and packs == [1, 2]
    assert net.call(a, "config_gray", data_id="c", content="canary", labels={"k": "v"})["ok"]
    assert msgpack.unpackb(get(labels={"k": "v"}), raw=False)["result"]["content"] == "canary"
    assert msgpack.unpackb(get(), raw=False)["result"]["content"] == "two"
    assert msgpack.unpackb(get(labels={"k": "v"}), raw=False)["result"]["content"] == "canary"
    assert packs == [1, 2, 3, 3]  # one per (entry, gray served, address listed)
    assert plane._replies_bytes == sum(len(p) for _, p in plane._replies.values())
    monkeypatch.setattr(plane_module, "CACHED_REPLIES_BYTES", 1000)  # full: emptied first
    assert net.call(a, "config_publish", data_id="d", content="x" * 2000)["ok"]
    assert len(plane._replies) == 2
    assert msgpack.unpackb(get(data_id="d"), raw=False)["result"]["content"] == "x" * 2000
    assert list(plane._replies) == [(ConfigKey("public", "DEFAULT_GROUP", "d"), False, None)]
    assert plane._replies_bytes == len(
        plane._replies[ConfigKey("public", "DEFAULT_GROUP", "d"), False, None][1]
    )


def _restart_empty(net: Net, address: str) -> ConfigPlane:
    """``address`` restarted with an empty memory store (its peers see it up)."""
    plane = ConfigPlane(
        NodeConfig(port=int(address.rpartition(":")[2]), peers=ADDRESSES),
        net.now,
        lambda to, frames: net._send(address, to, frames),
        lambda envelope, body: None,
        lambda frames: None,
    )
    net.planes[address] = plane
    plane.set_members_up(set(ADDRESSES) - {address})
    return plane


@pytest.mark.parametrize("seed", range(4))
def test_a_restarted_node_gets_the_digests_in_pages_and_is_ready_only_with_all(
    seed: int,
) -> None:
    """60 data ids, pages of 8, 30 % of peer messages lost: the restarted node asks page
    after page (again after a loss), no digest message holds more than a page, and at the
    turn it becomes ready it holds every acknowledged version (checked at every step)."""
    net = Net(3, seed=seed)
    late = ADDRESSES[seed % 3]
    acked = {}
    for i in range(60):
        data_id = f"big{i:02d}"
        reply = net.call(owner_of(data_id), "config_publish", data_id=data_id, content=f"{i}")
        acked[ConfigKey("public", "DEFAULT_GROUP", data_id)] = reply["result"]["revision"]
    pages: list[int] = []  # the digests in each page answered to the restarted node
    for answering in net.planes.values():
        answering.replicator.sync_page = 8
        on_sync = answering.replicator.on_sync

        def spying(sender: str, after: Any, ask: int = 0, on_sync: Any = on_sync) -> Any:
            effects = on_sync(sender, after, ask)
            pages.extend(len(e.digests) for e in effects)
            return effects

        answering.replicator.on_sync = spying  # type: ignore[method-assign]
    plane = _restart_empty(net, late)
    sent_before = len(net.sent)
    net.loss = 0.3
    for _ in range(400):
        net.tick(0.05)
        if plane.ready:
            for key, revision in acked.items():
                current = plane.store.current(key)
                assert current is not None and current.revision >= revision, (seed, key)
            break
    else:
        raise AssertionError(f"seed {seed}: not ready after 20 s: {plane.stats()}")
    stats = plane.stats()
    asks = [m for m in net.sent[sent_before:] if m[0] == late and m[2] == "config_sync"]
    assert stats["sync_pages_in"] >= 60 // 8 and len(asks) > 60 // 8, stats
    assert pages and max(pages) <= 8, pages


def test_a_page_outside_its_range_is_refused_and_moves_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bad pages: refused whole, counted, one warning line per 10 s (not one per page),
    nothing stored and the gate unmoved; the real pages then make the node ready."""
    net = Net(3)
    for i in range(5):
        net.call(owner_of(f"p{i}"), "config_publish", data_id=f"p{i}", content="x")
    late = ADDRESSES[1]
    plane = _restart_empty(net, late)
    ahead = net.planes[ADDRESSES[0]].store
    digests = [[*d.key, d.revision, d.md5, d.origin, d.committed, d.history]
               for d in ahead.digests()]  # fmt: skip
    bodies = [
        # claims (p0, p1]: holds p0..p4
        encode_config_peer("config_digests", ADDRESSES[0], digests=digests, reply=False,
                           after=digests[0][:3], upto=digests[1][:3])[1],  # fmt: skip
        encode_config_peer("config_digests", ADDRESSES[0], digests=digests, reply=False,
                           after=digests[1][:3], upto=digests[0][:3])[1],  # fmt: skip
    ]
    with caplog.at_level(logging.WARNING, logger="meshreg.node"):
        for body in bodies * 50:
            plane.on_peer(body, net.now)
    warned = [r for r in caplog.records if "bad config message" in r.getMessage()]
    assert len(warned) == 1 and "outside the range" in warned[0].getMessage()
    stats = plane.stats()
    assert stats["peer_messages_rejected"] == 100 and stats["sync_pages_in"] == 0
    assert not plane.ready and len(plane.store) == 0 and stats["sync_waiting"] == 0
    net.tick(1.0)  # the real pages: ready
    assert plane.ready and len(plane.store) == 5


def test_an_empty_store_asks_for_no_prune_wake_up_and_a_held_data_id_does() -> None:
    """A prune of an empty store removes nothing: no loop turn a second for it (a node
    without configs), its age cutoff moves on the turns that come anyway; once a data id
    is held, the prune wakes the loop again every PRUNE_INTERVAL."""
    net = Net(1)  # alone: no anti-entropy either, nothing else to wait for
    plane = net.planes[ADDRESSES[0]]
    assert len(plane.store) == 0
    assert plane.tick(net.now + 0.01) == float("inf")
    keep = plane.store.limits.keep_seconds
    assert keep is not None
    later = net.now + 5.0
    assert plane.tick(later) == float("inf")
    assert plane.store._age_cutoff == later - keep - AGE_SKEW_MARGIN  # pruned on a turn anyway
    net.now = later
    assert net.call(ADDRESSES[0], "config_publish", data_id="a", content="x")["ok"]
    assert plane.tick(net.now) <= net.now + PRUNE_INTERVAL
    plane.tick(net.now + PRUNE_INTERVAL)
    assert plane.store._age_cutoff == net.now + PRUNE_INTERVAL - keep - AGE_SKEW_MARGIN


def test_writes_faster_than_one_prune_step_a_second_keep_the_history_at_its_limit() -> None:
    """The prune takes 1,000 versions a step; a node taking more writes a second steps
    again within PRUNE_BEHIND_INTERVAL while behind, so the history stays within one
    interval's writes of keep_revisions per data id (before: one step a second, the
    history grew by (rate - 1,000) a second, and bench config's 14 s rows at ~5,000
    publishes a second grew it until the namespace's byte limit refused every publish:
    37,180 RESOURCE_EXHAUSTED on one node)."""
    net = Net(1)
    plane = net.planes[ADDRESSES[0]]
    keep = plane.store.limits.keep_revisions
    assert keep == 100 and plane.store.limits.prune_step == 1000
    rate, seconds, ids = 4000, 3.0, 4
    most = 0
    for i in range(int(rate * seconds)):
        net.now += 1 / rate
        reply = net.call(ADDRESSES[0], "config_publish", data_id=f"d{i % ids}", content=f"{i}")
        assert reply["ok"], reply
        plane.tick(net.now)
        most = max(most, plane.stats()["history_entries"]) if i % 50 == 0 else most
    # at most one interval's writes (and a step's) above what is kept; it was ~9,000
    assert most <= ids * keep + rate * (PRUNE_INTERVAL + 2 * PRUNE_BEHIND_INTERVAL), most
    net.tick(PRUNE_INTERVAL * 2)
    assert plane.stats()["history_entries"] == ids * keep


def _fast_and_full(plane: ConfigPlane, msg: dict[str, Any], now: float) -> tuple[Any, Any]:
    """``fast_get``'s answer, then the full path's (None: held or parked), for one body."""
    fast = plane.fast_get(msg, now)
    try:
        full = plane.serve([b"g", b""], parse_config_message(msg), msg, "t", "10.1.1.1", now)
    except RequestRejected as exc:
        full = encode_error(exc.req_id, exc.code, exc.message)
    return fast, full


def test_the_fast_get_answers_only_what_the_full_read_would() -> None:
    """``fast_get`` gives the full read's bytes for a plain get of a version read before,
    and None (the full path) for anything else: a first read, a newer version, a past
    revision, labels, a client ahead of the node, a gray rule, a delete, a version on
    its way to disk, a node not ready, and every malformed field."""
    net = Net(1)
    a = ADDRESSES[0]
    plane = net.planes[a]
    assert net.call(a, "config_publish", data_id="c", content="one")["ok"]

    def get(**fields: Any) -> dict[str, Any]:
        return {"v": 1, "id": 7, "op": "config_get", "data_id": "c", **fields}

    fast, full = _fast_and_full(plane, get(), net.now)
    assert fast is None and full is not None  # nothing packed before the first full read
    for fields in ({}, {"id": 2**40}, {"id": 0}, {"min_revision": 1}, {"min_revision": 0},
                   {"namespace": "public", "group": "DEFAULT_GROUP"}, {"revision": None},
                   {"labels": None}, {"unknown_field": 3}):  # fmt: skip
        fast, full = _fast_and_full(plane, get(**fields), net.now)
        assert fast is not None and fast == full, fields
    for fields in ({"min_revision": 2}, {"revision": 1}, {"labels": {"k": "v"}}, {"labels": {}},
                   {"id": -1}, {"id": "7"}, {"id": 2**64}, {"v": 2}, {"v": True},
                   {"min_revision": -1}, {"min_revision": True}, {"min_revision": "1"},
                   {"data_id": 5}, {"data_id": "bad name!"}, {"data_id": None},
                   {"namespace": "other"}, {"group": 3}, {"op": "config_listen"}):  # fmt: skip
        assert plane.fast_get(get(**fields), net.now) is None, fields
    assert plane.fast_get(["config_get"], net.now) is None

    assert net.call(a, "config_publish", data_id="c", content="two")["ok"]
    fast, full = _fast_and_full(plane, get(), net.now)  # a new version: read in full first
    assert fast is None and msgpack.unpackb(full, raw=False)["result"]["content"] == "two"
    fast, full = _fast_and_full(plane, get(), net.now)
    assert fast == full

    # a version shown (a majority has it) but still on its way to this node's disk: the
    # full read is held until the commit, so the fast path must not answer either
    key = ConfigKey("public", "DEFAULT_GROUP", "c")
    plane._commits.unsaved[key] = SimpleNamespace(effects=[])  # type: ignore[assignment]
    fast, full = _fast_and_full(plane, get(), net.now)
    assert fast is None and full is None
    del plane._commits.unsaved[key]
    net.batched = True  # a turn not ended: the version is on its way to disk
    net.request(a, b"w", "config_publish", data_id="c", content="three")
    assert plane.fast_get(get(), net.now) is None
    plane.flush(net.now)
    assert net.last(b"w")["ok"]
    net.batched = False
    _fast_and_full(plane, get(), net.now)
    fast, full = _fast_and_full(plane, get(), net.now)
    assert fast == full and msgpack.unpackb(fast, raw=False)["result"]["content"] == "three"

    assert net.call(a, "config_gray", data_id="c", content="canary", labels={"k": "v"})["ok"]
    _fast_and_full(plane, get(), net.now)
    assert plane.fast_get(get(), net.now) is None  # a gray rule may select any client
    assert net.call(a, "config_gray_drop", data_id="c")["ok"]
    _fast_and_full(plane, get(), net.now)
    assert plane.fast_get(get(), net.now) is not None
    # a node with --key: only a client allowed to read the group (the full path refuses
    # the others with PERMISSION_DENIED, and counts them)
    reader = Principal("reader", (Rule("public", "DEFAULT_GROUP", "*", Access.READ),))
    service_only = Principal("svc", (Rule("public", "DEFAULT_GROUP", "c", Access.READ),))
    other_ns = Principal("other", (Rule("other", "*", "*", Access.ADMIN),))
    assert plane.fast_get(get(), net.now, reader) == plane.fast_get(get(), net.now)
    assert plane.fast_get(get(), net.now, NODE) is not None
    assert plane.fast_get(get(), net.now, service_only) is None
    assert plane.fast_get(get(), net.now, other_ns) is None
    plane.ready = False
    assert plane.fast_get(get(), net.now) is None
    plane.ready = True
    assert net.call(a, "config_delete", data_id="c")["ok"]
    fast, full = _fast_and_full(plane, get(), net.now)
    assert fast is None and msgpack.unpackb(full, raw=False)["error"]["code"] == ErrorCode.NOT_FOUND


@pytest.mark.parametrize("seed", range(4))
def test_the_fast_get_agrees_with_the_full_read_under_loss_and_reordering(seed: int) -> None:
    """On three planes with messages lost, reordered and half delivered (versions a peer
    holds before the owner's commit, reads that must wait), at every step a fast answer,
    when there is one, is byte for byte the full read's."""
    net = Net(3, seed=seed, loss=0.2)
    rng = random.Random(seed)
    answered = 0
    for i in range(40):
        net.request(rng.choice(ADDRESSES), f"w{i}".encode(), "config_publish",
                    data_id=f"d{rng.randrange(3)}", content=f"{i}")  # fmt: skip
        for _ in range(min(rng.randrange(0, 6), len(net.queue))):  # some, in any order
            net.queue.rotate(-rng.randrange(len(net.queue)))
            to, body = net.queue.popleft()
            net.planes[to].on_peer(body, net.now)
            net.planes[to].flush(net.now)
        if rng.random() < 0.3:
            net.tick(rng.choice((0.05, 0.3, 3.0)))
        for address, plane in net.planes.items():
            for d in range(3):
                msg = {"v": 1, "id": i, "op": "config_get", "data_id": f"d{d}",
                       "min_revision": rng.randrange(0, 4)}  # fmt: skip
                fast, full = _fast_and_full(plane, msg, net.now)
                if fast is not None:
                    assert fast == full, (seed, i, address, d)
                    answered += 1
    assert answered > 0, f"seed {seed}: the fast path never answered"


def test_the_config_plane_leaves_no_cyclic_garbage() -> None:
    """A node turns automatic full collections off (runtime/gc_policy.py): a reference
    cycle that outlives the young collections would never be freed. Writes on every
    node with loss (forwards, acks, commits, re-sends, anti-entropy) and reads make
    none: a collection after them, with the collector off during them, finds nothing."""
    import gc

    net = Net(3, seed=1, loss=0.1)
    rng = random.Random(1)
    gc.collect()
    gc.disable()
    try:
        for i in range(150):
            net.request(rng.choice(ADDRESSES), f"c{i}".encode(), "config_publish",
                        data_id=f"d{rng.randrange(20)}", content=f"{i}")  # fmt: skip
            net.deliver(shuffle=True)
            net.tick(0.1)
            if i % 5 == 0:
                net.request(rng.choice(ADDRESSES), f"g{i}".encode(), "config_get",
                            data_id=f"d{rng.randrange(20)}", min_revision=1)  # fmt: skip
        net.tick(6.0)  # time-outs, anti-entropy rounds, prunes
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0, f"{found} objects in reference cycles"


def test_a_change_no_subscription_watches_is_not_encoded_yet_counts_as_announced() -> None:
    """``watched`` (the node's XPUB gate): a change of a data id no listener subscribed
    to is neither encoded nor sent, but is recorded as announced (a listener that
    subscribes later gets the current version from ``subscribed``); once watched, the
    next change is sent."""
    net = Net(1)
    plane = net.planes[ADDRESSES[0]]
    watching: set[str] = set()
    plane._watched = lambda key: key.data_id in watching
    net.call(ADDRESSES[0], "config_publish", data_id="a", content="x")
    assert ADDRESSES[0] not in net.notes
    stats = plane.stats()
    assert stats["notifications"] == 0 and stats["notifications_unwatched"] == 1
    watching.add("a")
    net.call(ADDRESSES[0], "config_publish", data_id="a", content="y")
    net.call(ADDRESSES[0], "config_publish", data_id="b", content="z")
    assert [(n["data_id"], n["revision"]) for n in net.notes[ADDRESSES[0]]] == [("a", 2)]
    stats = plane.stats()
    assert stats["notifications"] == 1 and stats["notifications_unwatched"] == 2


def test_a_node_stopped_past_the_peer_timeout_catches_up_before_it_serves_reads() -> None:
    """The loop's stall check tells the plane how long it was stopped: past the peer
    timeout (less a beacon interval) the others may have written without it, so config
    reads wait for a catch-up from a majority, with asks of a new number; a shorter stall
    changes nothing (review11: a resumed node served reads from before its pause)."""
    net = Net(3)
    away = owner_of("cfg")
    others = [a for a in ADDRESSES if a != away]
    plane = net.planes[away]
    assert net.call(away, "config_publish", data_id="cfg", content="v1")["ok"]
    plane.stalled(net.now, plane.absent_after - 0.1)
    assert plane.ready and plane.stats()["sync_rearms"] == 0
    net.down.add(away)  # stopped: the others take it for down and write without it
    for address in others:
        net.planes[address].set_members_up(set(others) - {address})
    assert net.call(others[0], "config_publish", data_id="cfg", content="v2")["ok"]
    assert net.call(others[0], "config_publish", data_id="new", content="n1")["ok"]
    net.down.discard(away)
    net.all_up()
    plane.stalled(net.now, plane.absent_after + 0.1)
    assert not plane.ready and plane.stats()["sync_rearms"] == 1
    for data_id in ("cfg", "new"):
        error = net.call(away, "config_get", data_id=data_id)["error"]
        assert error["name"] == "UNAVAILABLE", error
        assert "after this node was stopped for" in error["message"], error
    net.tick(1.0)
    assert plane.ready
    assert net.call(away, "config_get", data_id="cfg")["result"]["content"] == "v2"
    assert net.call(away, "config_get", data_id="new")["result"]["content"] == "n1"
    asks = [m for m in net.sent if m[0] == away and m[2] == "config_sync"]
    assert asks, "no catch-up asked"


def test_back_from_a_minority_a_node_catches_up_before_it_serves_reads() -> None:
    """Cut off from a majority it still answers reads from what it holds (writes are
    refused); once it sees a majority again, reads wait for its catch-up."""
    net = Net(3)
    cut = ADDRESSES[0]
    others = list(ADDRESSES[1:])
    plane = net.planes[cut]
    data_id = next(f"d{i}" for i in range(100) if owner_of(f"d{i}") != cut)
    assert net.call(cut, "config_publish", data_id=data_id, content="v1")["ok"]
    net.down.add(cut)
    plane.set_members_up(set())
    for address in others:
        net.planes[address].set_members_up(set(others) - {address})
    assert net.call(others[0], "config_publish", data_id=data_id, content="v2")["ok"]
    net.down.discard(cut)
    assert plane.ready  # in the minority: reads still served, from what it holds
    assert net.call(cut, "config_get", data_id=data_id)["result"]["content"] == "v1"
    net.all_up()
    assert not plane.ready and plane.stats()["sync_rearms"] == 1
    error = net.call(cut, "config_get", data_id=data_id)["error"]
    assert "after it was cut off from a majority" in error["message"], error
    net.tick(1.0)
    assert plane.ready
    assert net.call(cut, "config_get", data_id=data_id)["result"]["content"] == "v2"
    assert all(p.stats()["sync_rearms"] == 0 for a, p in net.planes.items() if a != cut)


def test_an_operators_forced_ready_is_kept_through_a_stall() -> None:
    net = Net(3)
    plane = net.planes[ADDRESSES[0]]
    plane.forced_ready = True  # as after ``meshreg config force-ready``
    plane.stalled(net.now, plane.absent_after + 10.0)
    assert plane.ready and plane.stats()["sync_rearms"] == 0


def test_a_write_that_waited_at_a_stopped_owner_is_answered_with_its_re_sends_version() -> None:
    """The client's write waits in its owner's socket while the owner is stopped; its
    re-send (same request id) is acknowledged elsewhere, then a later write goes on top.
    Back, the owner asks a majority about the request id before it writes (the fetch of
    the top revision alone misses it): the waiting write is answered with the re-send's
    version, not made again (found by the fault simulation, config seed 272 of 300)."""
    net = Net(3)
    owner = owner_of("cfg")
    other = next(a for a in ADDRESSES if a != owner)
    plane = net.planes[owner]
    assert net.call(other, "config_publish", data_id="cfg", content="v1")["ok"]
    rid = "waited-0123456789abcdef"
    net.down.add(owner)
    for address in set(ADDRESSES) - {owner}:
        net.planes[address].set_members_up(set(ADDRESSES) - {owner, address})
    resent = net.call(other, "config_publish", data_id="cfg", content="mine", request_id=rid,
                      resend=True)  # fmt: skip
    assert resent["result"]["revision"] == 2 and resent["result"]["origin"] != owner
    assert net.call(other, "config_publish", data_id="cfg", content="later")["ok"]
    net.down.discard(owner)
    net.all_up()
    plane.stalled(net.now, plane.absent_after + 5.0)
    reply = net.call(owner, "config_publish", data_id="cfg", content="mine", request_id=rid)
    assert reply["ok"] and reply["result"]["revision"] == 2, reply
    assert plane.stats()["request_checks"] == 1
    net.tick(1.0)
    for p in net.planes.values():
        made = [e for e in p.store.entries(ConfigKey("public", "DEFAULT_GROUP", "cfg"))
                if e.request_id == rid]  # fmt: skip
        assert [e.revision for e in made] == [2], made


def test_a_peer_list_not_naming_this_node_is_said_only_once_it_lasts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """review61 F1: a running peer names only the ids it has heard, so a node joining it
    was unnamed for a beacon or two and warned "give every node the same peer list" with
    lists alike.  The learner state is taken at once; the warning waits
    UNLISTED_SAID_AFTER, and names every peer then."""
    net = Net(3)
    me, a, b = ADDRESSES
    plane = net.planes[me]
    with caplog.at_level(logging.INFO, logger="meshreg.node"):
        plane.set_learners(frozenset(), frozenset({a}))
        assert plane.replicator.unlisted == {a}  # a learner at once
        net.tick(UNLISTED_SAID_AFTER / 2)
        plane.set_learners(frozenset(), frozenset())  # it heard us: names us now
        net.tick(UNLISTED_SAID_AFTER)
        said = [r.getMessage() for r in caplog.records if "name this node" in r.getMessage()]
        assert said == [] and not [r for r in caplog.records if "a full member" in r.getMessage()]
        plane.set_learners(frozenset(), frozenset({a}))  # lists that really differ
        net.tick(UNLISTED_SAID_AFTER - 0.2)
        plane.set_learners(frozenset(), frozenset({a, b}))  # b: for a beacon only
        net.tick(0.1)
        plane.set_learners(frozenset(), frozenset({a}))
        net.tick(0.3)
        said = [r.getMessage() for r in caplog.records if "name this node" in r.getMessage()]
        assert len(said) == 1 and a in said[0] and b not in said[0], said  # (review62)
        plane.set_learners(frozenset(), frozenset({a, b}))  # b for good, later
        net.tick(UNLISTED_SAID_AFTER + 0.2)
        said = [r.getMessage() for r in caplog.records if "name this node" in r.getMessage()]
        assert len(said) == 2 and a in said[1] and b in said[1], said
        net.tick(UNLISTED_SAID_AFTER * 2)  # said once each while it lasts
        assert len([r for r in caplog.records if "name this node" in r.getMessage()]) == 2
        plane.set_learners(frozenset(), frozenset())
        assert [r for r in caplog.records if "a full member" in r.getMessage()]
