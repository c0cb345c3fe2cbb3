"""The configuration center served by real node processes (docs/CONFIG.md, PROTOCOL.md 2.15+).

One single node and one 3-node cluster serve the non-destructive tests of this module
(module fixtures); the fault tests (SIGKILL of the owner, a minority, a full restart)
start their own cluster.  Requests go over a raw DEALER with msgpack, as any client.
"""

from __future__ import annotations

import itertools
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
from conftest import CLUSTER_TIMINGS
from helpers import HOST, NodeProcess, free_port_pair, start_all, wait_until

from meshreg import Client
from meshreg.configcenter.model import ConfigKey
from meshreg.configcenter.replication import responsible_config_node
from meshreg.errors import MeshregError
from meshreg.security.keys import generate_key_files, load_secret_key
from meshreg.wire.config_replies import config_topic

pytestmark = pytest.mark.timeout(120)


class Conn:
    """A raw DEALER to one node's client port: ``call(op, **fields)`` -> the reply map."""

    _ids = itertools.count(1)

    def __init__(self, port: int, curve: tuple[bytes, bytes, bytes] | None = None) -> None:
        """``curve``: (client public, client secret, server public), z85."""
        self.port = port
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            self.sock.curve_publickey, self.sock.curve_secretkey = curve[0], curve[1]
            self.sock.curve_serverkey = curve[2]
        self.sock.connect(f"tcp://{HOST}:{port}")

    def call(self, op: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        req_id = next(self._ids)
        body = {"v": 1, "id": req_id, "op": op, **fields}
        self.sock.send_multipart([b"", msgpack.packb(body)])
        while True:
            if not self.sock.poll(timeout * 1000):
                raise AssertionError(f"no reply to {op} from port {self.port} in {timeout}s")
            reply = msgpack.unpackb(self.sock.recv_multipart()[-1], raw=False)
            if reply["id"] in (req_id, 0):  # 0: a body too large to read its id
                return reply

    def ok(self, op: str, **fields: Any) -> Any:
        reply = self.call(op, **fields)
        assert reply["ok"], reply
        return reply["result"]

    def error(self, op: str, **fields: Any) -> tuple[str, str]:
        reply = self.call(op, **fields)
        assert not reply["ok"], reply
        return reply["error"]["name"], reply["error"]["message"]

    def close(self) -> None:
        self.sock.close()


def start_nodes(
    n: int, tmp: Path, *extra: str, curve: tuple[bytes, bytes, bytes] | None = None
) -> list[NodeProcess]:
    ports = [free_port_pair() for _ in range(n)]
    peers = [a for p in ports for a in ("--peer", f"{HOST}:{p}")] if n > 1 else []
    nodes = []
    for i, p in enumerate(ports):
        args = (*CLUSTER_TIMINGS, *peers, "--data-dir", str(tmp / f"node{i}"), *extra)
        nodes.append(NodeProcess(*args, port=p, curve=curve))
    return start_all(nodes)  # all at once (kills them all on a failure)


def config_ready(node: NodeProcess) -> bool:
    conn = Conn(node.port)
    try:
        return bool(conn.ok("stats")["config"]["ready"])
    finally:
        conn.close()


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Conn]:
    (node,) = start_nodes(1, tmp_path_factory.mktemp("single"))
    conn = Conn(node.port)
    yield conn
    conn.close()
    node.cleanup()


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    nodes = start_nodes(3, tmp_path_factory.mktemp("trio"))
    for node in nodes:
        wait_until(lambda n=node: config_ready(n), 15, what="config plane ready")
    yield nodes
    for node in nodes:
        node.cleanup()


# -- one node ------------------------------------------------------------------------------
def test_publish_get_list_history_rollback_delete(single: Conn) -> None:
    c = single
    first = c.ok("config_publish", data_id="app.yaml", content="a: 1", type="yaml", desc="app",
                 tags={"team": "core"})  # fmt: skip
    assert first["revision"] == 1 and first["type"] == "yaml" and first["tags"] == {"team": "core"}
    assert first["md5"] == "270f9e65a80226eccd82c99cdd0dd2fb" and not first["deleted"]
    second = c.ok("config_publish", data_id="app.yaml", content=b"a: 2", if_revision=1)
    assert second["revision"] == 2 and second["content"] == "a: 2" and second["change"] == "publish"
    got = c.ok("config_get", data_id="app.yaml")
    assert got["content"] == "a: 2" and got["revision"] == 2 and got["gray_served"] is False
    assert c.ok("config_get", data_id="app.yaml", revision=1)["content"] == "a: 1"
    c.ok("config_publish", data_id="other.json", content="{}", type="json", group="g2")
    listed = c.ok("config_list")
    assert [(i["group"], i["data_id"]) for i in listed["items"]] == [
        ("DEFAULT_GROUP", "app.yaml"),
        ("g2", "other.json"),
    ]
    assert "content" not in listed["items"][0] and listed["next_cursor"] is None
    assert [i["data_id"] for i in c.ok("config_list", group="g2")["items"]] == ["other.json"]
    assert [i["data_id"] for i in c.ok("config_list", pattern="*.json")["items"]] == ["other.json"]
    page = c.ok("config_list", page_size=1)
    assert len(page["items"]) == 1 and page["next_cursor"] is not None
    rolled = c.ok("config_rollback", data_id="app.yaml", revision=1)
    assert (
        rolled["revision"] == 3 and rolled["content"] == "a: 1" and rolled["change"] == "rollback"
    )
    history = c.ok("config_history", data_id="app.yaml")
    assert [(h["revision"], h["content"]) for h in history["items"]] == [
        (3, "a: 1"),
        (2, "a: 2"),
        (1, "a: 1"),
    ]
    two = c.ok("config_history", data_id="app.yaml", page_size=2)
    assert len(two["items"]) == 2 and two["next_cursor"] == 2
    rest = c.ok("config_history", data_id="app.yaml", cursor=two["next_cursor"])
    assert [h["revision"] for h in rest["items"]] == [1]
    gone = c.ok("config_delete", data_id="app.yaml", if_revision=3)
    assert gone["deleted"] and gone["revision"] == 4 and gone["content"] == ""
    assert c.error("config_get", data_id="app.yaml")[0] == "NOT_FOUND"
    again = c.ok("config_publish", data_id="app.yaml", content="a: 3", if_revision=0)
    assert again["revision"] == 5  # the sequence continues after a delete


def test_cas_conflict_names_the_current_revision(single: Conn) -> None:
    single.ok("config_publish", data_id="cas.txt", content="one")
    name, message = single.error("config_publish", data_id="cas.txt", content="x", if_revision=7)
    assert name == "CONFLICT" and "is at revision 1, not 7" in message
    name, message = single.error("config_publish", data_id="cas.txt", content="x", if_revision=0)
    assert name == "CONFLICT"
    assert single.ok("config_get", data_id="cas.txt")["content"] == "one"  # nothing changed


def test_bad_input_is_refused_and_changes_nothing(single: Conn) -> None:
    c = single
    before = c.ok("stats")["config"]
    cap = before["max_content_bytes"]
    name, message = c.error("config_publish", data_id="big", content="x" * (cap + 1))
    assert name == "TOO_LARGE" and str(cap) in message
    name, message = c.error("config_publish", data_id="big", content="x" * (cap + 70_000))
    assert name == "TOO_LARGE" and "content cap" in message  # above the body's limit
    assert c.error("config_publish", data_id="bad", content=b"\xff\xfe")[0] == "INVALID_ARGUMENT"
    assert c.error("config_publish", data_id="a b", content="x")[0] == "INVALID_ARGUMENT"
    name, message = c.error("config_publish", data_id="t", content="x", type="exe")
    assert name == "INVALID_ARGUMENT" and "yaml" in message
    name, message = c.error("config_gray", data_id="t", content="x")
    assert name == "INVALID_ARGUMENT" and "selector" in message
    assert c.error("config_get", data_id="nope")[0] == "NOT_FOUND"
    assert c.error("config_rollback", data_id="cas.txt", revision=99)[0] == "NOT_FOUND"
    # a non-config op above 64 KiB is still refused, whatever the config limit
    name, message = c.error("register", service="s", ip="10.0.0.1", port=1, metadata={
        "k": "v" * 70_000})  # fmt: skip
    assert name == "TOO_LARGE" and "65536" in message
    after = c.ok("stats")["config"]
    assert after["configs"] == before["configs"] and after["committed"] == before["committed"]
    for name in ("big", "bad", "t"):
        assert c.error("config_get", data_id=name)[0] == "NOT_FOUND"


def test_gray_by_label_and_by_address(single: Conn) -> None:
    c = single
    c.ok("config_publish", data_id="gray.txt", content="main")
    c.ok("config_gray", data_id="gray.txt", content="beta", labels={"canary": "yes"})
    assert c.ok("config_get", data_id="gray.txt")["content"] == "main"
    got = c.ok("config_get", data_id="gray.txt", labels={"canary": "yes", "zone": "a"})
    assert got["content"] == "beta" and got["gray_served"] is True
    name, message = c.error("config_gray", data_id="gray.txt", content="x",
                            clients=["127.0.0.1:1"])  # fmt: skip
    assert name == "INVALID_ARGUMENT" and "'127.0.0.1:1' names a port" in message, message
    assert c.ok("config_get", data_id="gray.txt", labels={"canary": "yes"})["content"] == "beta"
    c.ok("config_gray", data_id="gray.txt", content="by-ip", clients=["127.0.0.1"])
    assert c.ok("config_get", data_id="gray.txt")["content"] == "by-ip"  # our address
    c.ok("config_gray", data_id="gray.txt", content="elsewhere", clients=["10.9.9.9"])
    assert c.ok("config_get", data_id="gray.txt")["content"] == "main"
    promoted = c.ok("config_promote", data_id="gray.txt")
    assert promoted["content"] == "elsewhere" and "gray" not in promoted
    c.ok("config_gray", data_id="gray.txt", content="again", labels={"x": "1"})
    dropped = c.ok("config_gray_drop", data_id="gray.txt")
    assert "gray" not in dropped and dropped["content"] == "elsewhere"
    assert c.error("config_promote", data_id="gray.txt")[0] == "NOT_FOUND"


def test_listen_answers_what_the_client_missed(single: Conn) -> None:
    c = single
    entry = c.ok("config_publish", data_id="listen.txt", content="v1")
    missed = c.ok("config_listen", data_id="listen.txt", revision=0)
    assert missed["revision"] == entry["revision"] and missed["entry"]["content"] == "v1"
    held = c.ok("config_listen", data_id="listen.txt", revision=entry["revision"])
    assert held == {"revision": entry["revision"], "entry": None, "deleted": False}
    assert c.ok("config_listen", data_id="none.txt", revision=0)["revision"] == 0
    assert c.ok("config_unlisten", data_id="listen.txt") is None
    stats = c.ok("stats")["config"]
    assert stats["listens"] >= 3 and stats["unlistens"] >= 1


def test_a_read_ahead_of_the_node_waits_then_is_unavailable(single: Conn) -> None:
    entry = single.ok("config_publish", data_id="ahead.txt", content="v1")
    name, message = single.error("config_get", data_id="ahead.txt",
                                 min_revision=entry["revision"] + 1)  # fmt: skip
    assert name == "UNAVAILABLE" and "catching up" in message
    assert single.ok("stats")["config"]["reads_waited"] >= 1


ACL = """
[[client]]
name = "cfg-admin"
key_file = "admin.pub"
allow = [{ namespace = "public", group = "*", service = "*", access = "admin" }]

[[client]]
name = "reader"
key_file = "reader.pub"
allow = [{ namespace = "public", group = "*", service = "*", access = "read" }]

[[client]]
name = "orders-app"
key_file = "app.pub"
allow = [{ namespace = "public", group = "*", service = "orders*", access = "admin" }]
"""


def keys_and_acl(
    tmp_path: Path, names: tuple[str, ...], acl: str
) -> Callable[[str], tuple[bytes, bytes, bytes]]:
    """Key files for "cluster" and ``names`` and acl.toml in ``tmp_path``; returns
    ``curve(name)``: that key's (public, secret, the cluster's public key)."""
    for name in ("cluster", *names):
        generate_key_files(tmp_path / name)
    (tmp_path / "acl.toml").write_text(acl)
    cluster = load_secret_key(tmp_path / "cluster.key")

    def curve(name: str) -> tuple[bytes, bytes, bytes]:
        pair = load_secret_key(tmp_path / f"{name}.key")
        assert pair.secret is not None
        return pair.public, pair.secret, cluster.public

    return curve


def test_config_ops_and_topics_go_through_the_acl(tmp_path: Path) -> None:
    curve = keys_and_acl(tmp_path, ("admin", "reader", "app"), ACL)
    (node,) = start_nodes(1, tmp_path, "--key", str(tmp_path / "cluster.key"), "--acl",
                          str(tmp_path / "acl.toml"), curve=curve("cluster"))  # fmt: skip
    admin, reader, app, root = (
        Conn(node.port, curve(n)) for n in ("admin", "reader", "app", "cluster")
    )
    sub = zmq.Context.instance().socket(zmq.SUB)
    try:
        entry = admin.ok("config_publish", data_id="app.yaml", content="a: 1")
        assert entry["modified_by"] == "cfg-admin"  # the key's name
        assert reader.ok("config_get", data_id="app.yaml")["content"] == "a: 1"
        name, message = reader.error("config_publish", data_id="app.yaml", content="x")
        assert name == "PERMISSION_DENIED" and "'reader'" in message
        # write on some services is not write on the config group: every name there
        assert app.error("config_publish", data_id="orders", content="x")[0] == "PERMISSION_DENIED"
        assert app.error("config_get", data_id="app.yaml")[0] == "PERMISSION_DENIED"
        assert admin.ok("config_rollback", data_id="app.yaml", revision=1)["revision"] == 2
        # topics: the reader's admitted, the app's refused
        before = root.ok("stats")
        sub.setsockopt(zmq.LINGER, 0)
        pub, secret, server = curve("app")
        sub.curve_publickey, sub.curve_secretkey, sub.curve_serverkey = pub, secret, server
        sub.connect(f"tcp://{HOST}:{node.port + 1}")
        sub.setsockopt(zmq.SUBSCRIBE, config_topic(ConfigKey("public", "DEFAULT_GROUP", "x")))
        wait_until(lambda: root.ok("stats")["subscriptions_refused"]["denied"]
                   > before["subscriptions_refused"]["denied"], 5, what="refused")  # fmt: skip
        assert root.ok("stats")["subscriptions_admitted"] == before["subscriptions_admitted"]
        sub.close()
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        pub, secret, server = curve("reader")
        sub.curve_publickey, sub.curve_secretkey, sub.curve_serverkey = pub, secret, server
        sub.connect(f"tcp://{HOST}:{node.port + 1}")
        sub.setsockopt(zmq.SUBSCRIBE, config_topic(ConfigKey("public", "DEFAULT_GROUP", "x")))
        wait_until(lambda: root.ok("stats")["subscriptions_admitted"]
                   > before["subscriptions_admitted"], 5, what="admitted")  # fmt: skip
        admin.ok("config_publish", data_id="x", content="pushed")
        assert sub.poll(2000), "the reader got no notification"
        assert msgpack.unpackb(sub.recv_multipart()[1])["data_id"] == "x"
    finally:
        sub.close()
        for conn in (admin, reader, app, root):
            conn.close()
        node.cleanup()


# -- three nodes ---------------------------------------------------------------------------
def test_publish_on_one_node_read_and_notified_on_another(trio: list[NodeProcess]) -> None:
    a, _, c = trio
    key = ConfigKey("public", "DEFAULT_GROUP", "notify.yaml")
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"tcp://{HOST}:{c.port + 1}")
    on_a, on_c = Conn(a.port), Conn(c.port)
    try:
        admitted = on_c.ok("stats")["subscriptions_admitted"]
        sub.setsockopt(zmq.SUBSCRIBE, config_topic(key))
        wait_until(lambda: on_c.ok("stats")["subscriptions_admitted"] > admitted, 5,
                   what="the subscription admitted on C")  # fmt: skip
        entry = on_a.ok("config_publish", data_id="notify.yaml", content="x: 1", type="yaml")
        assert sub.poll(2000), "no notification on C within 2 s"
        topic, body = sub.recv_multipart()
        note = msgpack.unpackb(body, raw=False)
        assert topic == config_topic(key)
        assert note == {
            "v": 1,
            "kind": "config",
            "namespace": "public",
            "group": "DEFAULT_GROUP",
            "data_id": "notify.yaml",
            "revision": entry["revision"],
            "md5": entry["md5"],
            "deleted": False,
            "gray": False,
            "gray_md5": "",
        }
        got = on_c.ok("config_get", data_id="notify.yaml", min_revision=entry["revision"])
        assert got["content"] == "x: 1" and got["revision"] == entry["revision"]
    finally:
        sub.close()
        on_a.close()
        on_c.close()


def test_writes_on_every_node_reach_every_node(trio: list[NodeProcess]) -> None:
    conns = [Conn(n.port) for n in trio]
    try:
        revision = 0
        for i, conn in enumerate(conns * 2):  # each node writes: some are forwarded
            entry = conn.ok("config_publish", data_id="shared.txt", content=f"v{i}",
                            if_revision=revision)  # fmt: skip
            revision = entry["revision"]
            for other in conns:  # read-your-writes on any node with the seen revision
                got = other.ok("config_get", data_id="shared.txt", min_revision=revision)
                assert got["content"] == f"v{i}"
        forwarded = sum(c.ok("stats")["config"]["forwarded"] for c in conns)
        assert forwarded >= 2  # the two nodes that are not the owner forwarded theirs
        history = conns[2].ok("config_history", data_id="shared.txt")["items"]
        assert [h["revision"] for h in history] == list(range(revision, 0, -1))
    finally:
        for conn in conns:
            conn.close()


# -- faults (their own cluster) ------------------------------------------------------------
def owner_of(nodes: list[NodeProcess], data_id: str) -> int:
    owner = responsible_config_node(
        ConfigKey("public", "DEFAULT_GROUP", data_id), [n.address for n in nodes]
    )
    return [n.address for n in nodes].index(owner)


def test_owner_killed_minority_and_full_restart(tmp_path: Path) -> None:
    nodes = start_nodes(3, tmp_path)
    try:
        for node in nodes:
            wait_until(lambda n=node: config_ready(n), 15, what="config plane ready")
        i = owner_of(nodes, "durable.txt")
        owner = Conn(nodes[i].port)
        for n in range(1, 4):
            owner.ok("config_publish", data_id="durable.txt", content=f"v{n}")
        acked = owner.ok("config_publish", data_id="durable.txt", content="v4")
        nodes[i].signal(signal.SIGKILL)  # right after the acknowledgement
        owner.close()
        survivors = [n for j, n in enumerate(nodes) if j != i]
        conns = [Conn(n.port) for n in survivors]

        def holds(conn: Conn, revision: int, content: str) -> bool:
            reply = conn.call("config_get", data_id="durable.txt", min_revision=revision)
            return reply["ok"] and reply["result"]["content"] == content

        for conn in conns:
            wait_until(
                lambda c=conn: holds(c, acked["revision"], "v4"), 15, what="v4 on a survivor"
            )
            history = conn.ok("config_history", data_id="durable.txt")["items"]
            assert [h["content"] for h in history] == ["v4", "v3", "v2", "v1"]

        # the survivors are a majority: they take writes (once they see the owner down)
        def publish() -> Any:
            reply = conns[0].call("config_publish", data_id="durable.txt", content="v5",
                                  if_revision=acked["revision"])  # fmt: skip
            return reply["result"] if reply["ok"] else None

        v5 = wait_until(publish, 20, interval=0.2, what="a write on the surviving majority")
        assert v5["revision"] == acked["revision"] + 1
        # the owner comes back with everything, and catches up on what it missed
        nodes[i].start()
        back = Conn(nodes[i].port)
        conns.append(back)
        wait_until(lambda: holds(back, v5["revision"], "v5"), 15, what="v5 on the restarted owner")
        history = back.ok("config_history", data_id="durable.txt")["items"]
        assert [h["content"] for h in history] == ["v5", "v4", "v3", "v2", "v1"]
        # a minority refuses writes: two of three killed
        for node in survivors:
            node.signal(signal.SIGKILL)
        wait_until(lambda: back.ok("stats")["config"]["members_up"] == 1, 10,
                   what="the last node sees its peers down")  # fmt: skip
        name, message = back.error("config_publish", data_id="durable.txt", content="minority")
        assert name == "UNAVAILABLE" and "nothing was written" in message
        # through a client given every server: the error says what the live node answered
        # (it named that node as unreachable, and lost the answer, before)
        servers = [nodes[i].address] + [n.address for n in survivors]
        with (
            Client(servers, timeout=4.0, config_write_timeout=4.0) as client,
            pytest.raises(MeshregError) as caught,
        ):
            client.config_publish("durable.txt", "minority")
        text = str(caught.value)
        assert f"UNAVAILABLE from {nodes[i].address}" in text and "need a majority" in text
        # (which of the two dead nodes it tried after: the client shuffles its list)
        assert any(f"then no answer from {n.address}" in text for n in survivors), text
        assert back.ok("config_get", data_id="durable.txt")["content"] == "v5"  # reads: served
        assert back.ok("stats")["config"]["refused_minority"] >= 1
        # the full cluster restarts: everything is kept
        nodes[i].stop()
        start_all(nodes)
        for node in nodes:
            conn = Conn(node.port)
            conns.append(conn)
            wait_until(lambda c=conn: holds(c, v5["revision"], "v5"), 15, what="v5 after restart")
            history = conn.ok("config_history", data_id="durable.txt")["items"]
            assert [h["content"] for h in history] == ["v5", "v4", "v3", "v2", "v1"]
        for conn in conns:
            conn.close()
    finally:
        for node in nodes:
            node.cleanup()
