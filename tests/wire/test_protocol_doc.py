"""docs/PROTOCOL.md cannot drift: every example in it is produced by the real code.

A fenced block right after an HTML comment ``<!-- check: NAME -->`` must be exactly
what ``EXAMPLES[NAME]()`` produces now: request bodies from ``wire/replies.encode_request``
(and accepted by the node's own validator), replies and notifications from a real
``NodeRuntime`` serving the frames (its ``_serve``, its ``_carry_out`` to a recording
XPUB) on a fake clock, and the rendezvous test vectors from ``core/mapping``.  So a
change of a field, a default, a message or a byte fails this test, which prints the
block as it must now read.  Regenerate every block after a deliberate change with::

    python tests/wire/test_protocol_doc.py --write

Besides the blocks: every op of ``CLIENT_OPS`` and ``PEER_OPS`` has its section, every
``ErrorCode`` its row, and every key the node puts in a reply (``stats`` included, with
the runtime's keys) or a notification is named in the section that documents it.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import msgpack
import pytest
import xxhash
import zmq
from answers import peer_reply

from meshreg.client import agent, client
from meshreg.client.config_session import CONFIG_RESYNC_INTERVAL
from meshreg.client.defaults import DEFAULT_CONFIG_WRITE_TIMEOUT
from meshreg.client.session import COPY_CLOCK_MARGIN, OFFLINE_PROBE_INTERVAL
from meshreg.config import NodeConfig
from meshreg.configcenter.model import (
    CONFIG_BEHIND_ATTEMPT,
    CONFIG_WRITE_ATTEMPT,
    DEFAULT_ACK_TIMEOUT,
    DEFAULT_MAX_CONTENT_BYTES,
    FORWARD_TIMEOUT,
    ConfigKey,
    config_key_bytes,
)
from meshreg.configcenter.replication import responsible_config_node
from meshreg.core.distro import CATCH_UP_PATIENCE, ClusterPolicy, PeerCall
from meshreg.core.effects import ServiceChanged
from meshreg.core.health import HealthPolicy
from meshreg.core.mapping import member_score, responsible_node, service_key_bytes
from meshreg.core.quotas import LimitsPolicy
from meshreg.core.requests import BEAT_FORWARD_WAIT, DEADLINE_SLACK, FORWARD_LEAD
from meshreg.errors import ErrorCode
from meshreg.model import ServiceKey
from meshreg.runtime.config_plane import PARK_SECONDS
from meshreg.runtime.node import NodeRuntime
from meshreg.security.acl import NODE, Access
from meshreg.security.authz import OP_ACCESS
from meshreg.transport import sockets
from meshreg.wire import limits
from meshreg.wire import peer as wire_peer
from meshreg.wire.config_messages import CONFIG_WRITE_OPS
from meshreg.wire.config_peer import config_frame_bytes
from meshreg.wire.messages import CLIENT_OPS, FORWARDED_OPS, PEER_OPS, parse_message
from meshreg.wire.peer import Beacon, parse_peer_message
from meshreg.wire.replies import encode_request
from meshreg.wire.result_maps import clear_packed

DOC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"
MARK = re.compile(r"<!-- check: ([a-z0-9:_-]+) -->\n```[a-z]*\n(.*?)```", re.S)

EPOCH = 1234567890123  # every example node's epoch (cf 00 00 01 1f 71 fb 04 cb)
START = 1764547200.0  # s; the fake clock at start (2025-12-01T00:00:00Z, wall clock too)
KEY = ServiceKey("public", "DEFAULT_GROUP", "orders")
ME = {"ip": "10.0.0.5", "port": 8080}
FULL = {"namespace": "public", "group": "DEFAULT_GROUP", "service": "orders", **ME}
FULL["cluster"] = "DEFAULT"
REGISTER = {**FULL, "weight": 1.0, "enabled": True, "metadata": {"zone": "eu-1"}}
SID = "0123456789abcdef0123456789abcdef"
BATCH = {
    "namespace": "public",
    "instances": [
        {"service": "orders", "ip": "10.0.0.5", "port": 8080, "session": SID},
        {"service": "orders", "ip": "10.0.0.6", "port": 0, "session": SID},
        {"service": "payments", "ip": "10.0.0.7", "port": 9000, "metadata": {"zone": "eu-1"}},
    ],
}


# -- rendering ----------------------------------------------------------------------------
def render(value: Any, indent: int = 0, width: int = 92) -> str:
    """A msgpack value as the doc writes it: JSON with nil, floats with a point."""
    flat = _flat(value)
    if len(flat) + indent <= width or not isinstance(value, (dict, list)) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k)}: {render(v, indent + 2, width)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + render(v, indent + 2, width) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def _flat(value: Any) -> str:
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, str)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_flat(v)}" for k, v in value.items()) + "}"
    return "[" + ", ".join(_flat(v) for v in value) + "]"


def hexdump(data: bytes) -> str:
    rows = [data[i : i + 16] for i in range(0, len(data), 16)]
    return "\n".join(" ".join(f"{b:02x}" for b in row) for row in rows)


def body_block(body: bytes, show: Any = None) -> str:
    """The decoded body, its size and its bytes."""
    value = msgpack.unpackb(body, raw=False) if show is None else show
    return f"{render(value)}\n\n{len(body)} bytes:\n{hexdump(body)}\n"


def frames_block(frames: list[bytes]) -> str:
    """A multipart message: every frame but the last as a Python bytes literal."""
    head = ", ".join(repr(f) for f in frames[:-1])
    return f"frames: [{head}, <body>]\n" + body_block(frames[-1])


# -- an annotated msgpack walk (the tables of 6.1 and 6.2) ---------------------------------
def annotate(data: bytes) -> str:
    rows: list[tuple[int, bytes, str]] = []

    def item(pos: int, role: str) -> int:
        b = data[pos]
        if b <= 0x7F:
            rows.append((pos, data[pos : pos + 1], f"{role}positive fixint {b}"))
            return pos + 1
        if 0x80 <= b <= 0x8F:
            rows.append((pos, data[pos : pos + 1], f"{role}fixmap (0x80 + n), {b & 0x0F} entries"))
            pos += 1
            for _ in range(b & 0x0F):
                pos = item(pos, "key: ")
                pos = item(pos, "value: ")
            return pos
        if 0xA0 <= b <= 0xBF:
            n = b & 0x1F
            text = data[pos + 1 : pos + 1 + n].decode()
            rows.append(
                (pos, data[pos : pos + 1 + n], f"{role}fixstr (0xa0 + n), {n} bytes: {text}")
            )
            return pos + 1 + n
        simple = {0xC0: "nil", 0xC2: "false", 0xC3: "true"}
        if b in simple:
            rows.append((pos, data[pos : pos + 1], role + simple[b]))
            return pos + 1
        if b == 0xCD:
            (v,) = struct.unpack(">H", data[pos + 1 : pos + 3])
            rows.append((pos, data[pos : pos + 3], f"{role}uint16 (cd), big-endian: {v}"))
            return pos + 3
        if b == 0xCB:
            (f,) = struct.unpack(">d", data[pos + 1 : pos + 9])
            rows.append((pos, data[pos : pos + 9], f"{role}float64 (cb), big-endian: {f!r}"))
            return pos + 9
        raise AssertionError(f"annotate: add msgpack type {b:#04x}")

    end = item(0, "")
    assert end == len(data)
    width = max(len(hexdump(bs).replace("\n", " ")) for _, bs, _ in rows)
    lines = [f"{'offset':>6}  {'bytes':<{width}}  meaning"]
    for pos, bs, what in rows:
        lines.append(f"{pos:>6}  {hexdump(bs).replace(chr(10), ' '):<{width}}  {what}")
    return "\n".join(lines) + "\n"


# -- a real node on a fake clock -----------------------------------------------------------
class RecordingSocket:
    def __init__(self) -> None:
        self.sent: list[list[bytes]] = []

    def send_multipart(self, frames: list[bytes], flags: int = 0) -> None:
        self.sent.append(list(frames))


class ClientFrame(zmq.Frame):
    """A routing frame that tells the client's IP address, as a received frame does
    (``Peer-Address``): a config version's ``modified_by`` names it (review86 F2: the
    examples showed an empty one, which no real node sends)."""

    def get(self, option: Any) -> Any:
        return "127.0.0.1" if option == "Peer-Address" else super().get(option)


class Node:
    """A ``NodeRuntime`` with no sockets: frames in, frames out, notifications recorded."""

    def __init__(self, peers: tuple[str, ...] = (), limits: LimitsPolicy | None = None) -> None:
        self.now = START
        config = NodeConfig(host="127.0.0.1", port=7800, peers=peers)
        if limits is not None:
            config = NodeConfig(host="127.0.0.1", port=7800, peers=peers, limits=limits)
        self.rt = NodeRuntime(config, clock=lambda: self.now, epoch=EPOCH)
        self.rt.core.registry.wall_offset = 0.0  # stamps from the fake clock: the examples repeat
        self.xpub = RecordingSocket()
        self.rt._xpub = self.xpub  # type: ignore[assignment]

    def serve(self, frames: list[bytes], advance: float = 1.0, peer: bool = False) -> list[bytes]:
        """The reply to ``frames`` on the client port (``peer``: on the peer port)."""
        self.now += advance
        if peer:
            reply = self.rt._serve(frames, self.now, NODE, peer=True)
        else:
            reply = self.rt._serve(frames, self.now)
        assert reply is not None
        self.flush()
        return reply

    def call(self, op: str, req_id: int = 7, **fields: Any) -> bytes:
        return self.serve([ClientFrame(b"client-1"), b"", encode_request(op, req_id, **fields)])[-1]

    def subscribe(self, key: ServiceKey) -> None:
        topic = b"\x00".join((key.namespace.encode(), key.group.encode(), key.service.encode()))
        assert self.rt.gate.subscribe(topic + b"\x00", True) is None
        self.rt.core.registry.subscription_changed(key, True)
        self.flush()

    def flush(self) -> None:
        self.rt._carry_out(self.rt.core.take_effects(), self.now)

    def join(self, peers: tuple[str, ...]) -> None:
        """Ready peers beacon; their anti-entropy calls are answered (they hold nothing)."""
        core = self.rt.core
        for _ in range(20):
            if core.ready:
                return
            for peer in peers:
                core.on_replication(Beacon(peer, peer, EPOCH + 1, True, 0), self.now)
            for effect in core.take_effects():
                if type(effect) is PeerCall and effect.op == "digests":
                    empty = {"node": effect.node_id, "digests": [], "more": False}
                    peer_reply(core, effect.tag, empty, self.now)
            core.take_effects()
            self.now += 0.25
            core.tick(self.now)
        raise AssertionError("the example cluster did not become ready")

    def result(self, op: str, **fields: Any) -> Any:
        reply = msgpack.unpackb(self.call(op, **fields), raw=False)
        assert reply["ok"], reply
        return reply["result"]


def registered(**extra: Any) -> Node:
    node = Node(**extra)
    node.subscribe(KEY)
    node.call("register", **REGISTER)
    return node


# -- the examples --------------------------------------------------------------------------
def request(op: str, **fields: Any) -> str:
    body = encode_request(op, 7, **fields)
    msg = msgpack.unpackb(body, raw=False)
    parse = parse_peer_message if op in PEER_OPS else parse_message
    assert parse(msg).op == op  # the node's own validator accepts it
    return body_block(body)


def reply(op: str, node: Node | None = None, **fields: Any) -> str:
    return body_block((node or registered()).call(op, **fields))


def error(frames: list[bytes], node: Node | None = None) -> str:
    body = (node or Node()).serve(frames)[-1]
    assert msgpack.unpackb(body, raw=False)["ok"] is False
    return body_block(body)


def error_for(op: str, node: Node | None = None, **fields: Any) -> str:
    return error([ClientFrame(b"client-1"), b"", encode_request(op, 7, **fields)], node)


def notifications() -> list[list[bytes]]:
    """What a watcher of ``orders`` receives: sync, register's delta, deregister's delta."""
    node = registered()
    node.call("deregister", **FULL)
    return node.xpub.sent


def services_page() -> str:
    node = registered()
    node.call("register", **{**REGISTER, "service": "payments"})
    return body_block(node.call("services", namespace="public", page_size=1))


def stats_reply() -> str:
    clear_packed()  # (the process's: lists other tests' nodes packed)
    node = registered()
    node.call("beat", **FULL)
    node.call("instances", **{k: FULL[k] for k in ("namespace", "group", "service")})
    node.call("beat", ip="10.0.0.9", port=1, service="orders")  # NOT_FOUND
    usage = {"resident_bytes": 41_943_040, "cpu_seconds": 1.25, "open_fds": 14,
             "max_fds": 1_048_576, "threads": 5}  # fmt: skip (the process's own: vary)
    with mock.patch("meshreg.runtime.node.process_usage", lambda: usage):
        return render(msgpack.unpackb(node.call("stats"), raw=False)) + "\n"


def cluster_node() -> Node:
    """A member of three whose peers have beaconed (ready)."""
    node = Node(peers=("127.0.0.1:7804", "127.0.0.1:7808"))
    node.join(("127.0.0.1:7804", "127.0.0.1:7808"))
    return node


def one_per_service() -> Node:
    """A node whose quota lets a service have one instance, holding ``orders``'s."""
    node = Node(limits=LimitsPolicy(max_instances_per_service=1))
    node.call("register", **REGISTER)
    return node


def catching_up() -> Node:
    """A member that has not finished its first anti-entropy round."""
    node = Node(peers=("127.0.0.1:7804",))
    node.rt.core.on_replication(Beacon("127.0.0.1:7804", "127.0.0.1:7804", 1, True, 0), node.now)
    node.rt.core.take_effects()  # its digests call stays unanswered
    assert not node.rt.core.ready
    return node


APP = {"data_id": "app.yaml"}
APP_MD5 = "270f9e65a80226eccd82c99cdd0dd2fb"  # md5("a: 1")
LOST_MD5 = "c8e7a5d2b4f3e1a0918273645f6e7d8c"  # a version that lost revision 1 elsewhere


def config_node() -> Node:
    """A single node holding ``app.yaml`` at revision 1 ("a: 1"), on the fake clock."""
    node = Node()
    node.rt._wall_offset = 0.0  # config stamps from the fake clock: the examples repeat
    replies: list[bytes] = []
    node.rt.configs._send_reply = lambda envelope, body: replies.append(body)  # type: ignore
    node.now += 1.0
    publish = encode_request("config_publish", 6, **APP, content="a: 1", type="yaml")
    # answered after the commit
    assert node.rt._serve([ClientFrame(b"client-1"), b"", publish], node.now) is None
    node.rt.configs.flush(node.now)
    assert msgpack.unpackb(replies[0], raw=False)["result"]["md5"] == APP_MD5
    return node


def config_notification() -> str:
    """What a listener of ``app.yaml`` receives when config_node's publish is made
    (4.5; review86 S3: the one notification without an example)."""
    node = Node()
    node.rt._wall_offset = 0.0
    topic = b"\x00config\x00public\x00DEFAULT_GROUP\x00app.yaml\x00"
    assert node.rt.gate.subscribe(topic, True) is None
    node.rt.configs._send_reply = lambda envelope, body: None  # type: ignore
    node.now += 1.0
    publish = encode_request("config_publish", 6, **APP, content="a: 1", type="yaml")
    node.rt._serve([ClientFrame(b"client-1"), b"", publish], node.now)
    node.rt.configs.flush(node.now)
    (frames,) = [f for f in node.xpub.sent if f[0] == topic]
    return frames_block(frames)


REQUEST_ID = "5f0c6a2e9b1d4c7a8e3f2b6d0a9c1e47"  # 128 random bits, as the reference client's
PUBLISH = {**APP, "content": "a: 2", "type": "yaml", "request_id": REQUEST_ID}


def config_write_reply() -> str:
    """The answer to a ``config_publish`` (revision 2 of ``app.yaml``): sent once a
    majority persisted it (a node alone is its own majority), so after the commit."""
    node = config_node()
    replies: list[bytes] = []
    node.rt.configs._send_reply = lambda envelope, body: replies.append(body)  # type: ignore
    node.now += 1.0
    frames = [ClientFrame(b"client-1"), b"", encode_request("config_publish", 7, **PUBLISH)]
    assert node.rt._serve(frames, node.now) is None  # answered after the commit
    node.rt.configs.flush(node.now)
    (body,) = replies
    return body_block(body)


def rendezvous(members: list[str], key: ServiceKey) -> str:
    """A test vector, computed twice: by core/mapping and from the documented rule."""
    kb = service_key_bytes(key)
    documented = b"\x00".join(p.encode("utf-8") for p in key)
    assert kb == documented
    title = f"service key: {key.namespace} / {key.group} / {key.service}"
    return _vector(title, kb, members, responsible_node(key, members))


def config_rendezvous(members: list[str], key: ConfigKey) -> str:
    """A data id's owner (2.15, section 6): the same score over ``config_key_bytes``, the
    members being the configured **addresses** (replication.py ``responsible_config_node``
    is given the addresses of the members up, never their node ids)."""
    kb = config_key_bytes(key)
    names = (key.namespace, key.group, key.data_id)
    assert kb == b"config\x00" + b"\x00".join(p.encode("utf-8") for p in names)
    title = f"config key: {key.namespace} / {key.group} / {key.data_id}"
    return _vector(title, kb, members, responsible_config_node(key, members))


def _vector(title: str, kb: bytes, members: list[str], owner: str) -> str:
    """The lines of one vector; ``owner`` (the code's answer) must be the documented rule's."""
    lines = [title]
    lines.append(f"key bytes ({len(kb)}): {hexdump(kb).replace(chr(10), ' ')}")
    best: tuple[int, str] | None = None
    for member in sorted(members):
        data = member.encode("utf-8") + b"\x01" + kb
        score = xxhash.xxh64(data, seed=0).intdigest()
        assert score == member_score(member, kb)
        lines.append(f"member {json.dumps(member)}")
        lines.append(f"  hashed bytes ({len(data)}): {hexdump(data).replace(chr(10), ' ')}")
        lines.append(f"  xxh64(seed=0) = 0x{score:016x} = {score}")
        if best is None or (score, member) > best:
            best = (score, member)
    assert best is not None
    assert owner == best[1]
    lines.append(f"owner: {json.dumps(owner)} (the highest xxh64)")
    return "\n".join(lines) + "\n"


def ops_table() -> str:
    """Every operation: where it is accepted, whether it is forwarded, its ACL access."""
    rows = [("op", "port", "kind", "ACL access (scope)")]
    for op in CLIENT_OPS + PEER_OPS:
        if op in PEER_OPS:
            port, kind = "P+3 only", "peer: node to node"
        elif op in FORWARDED_OPS:
            port, kind = "P (P+3 when forwarded)", "write: runs on the responsible node"
        elif op in CONFIG_WRITE_OPS:
            port, kind = "P (P+3 when forwarded)", "config write: owner, majority acks"
        elif OP_ACCESS[op] == (Access.ADMIN, "everything"):
            port, kind = "P", "node admin: acts on the node asked"
        elif op.startswith("session_"):  # (review21 F10: not reads)
            port, kind = "P", "session: applied here, replicated"
        else:
            port, kind = "P", "read: answered by the node asked"
        access, scope = OP_ACCESS[op]
        rows.append((op, port, kind, f"{access.name.lower()} ({scope})"))
    return _table(rows)


def timings_table() -> str:
    health, cluster = HealthPolicy(), ClusterPolicy()
    rows = [
        ("name", "value", "what"),
        ("beat_interval", client.DEFAULT_BEAT_INTERVAL, "s; client: beat period"),
        ("attempt_timeout", client.DEFAULT_ATTEMPT_TIMEOUT, "s; client: one server's time"),
        ("timeout", client.DEFAULT_TIMEOUT, "s; client: a call's whole budget"),
        ("resync_interval", client.DEFAULT_RESYNC_INTERVAL, "s; client: re-pull watched"),
        ("VIEW_INTERVAL", agent.VIEW_INTERVAL, "s; client: re-fetch cluster"),
        ("READ_YOUR_WRITES_WINDOW", agent.READ_YOUR_WRITES_WINDOW, "s; client: read the node"),
        ("YOUNG_NODE_GRACE", agent.YOUNG_NODE_GRACE, "s; client: distrust lists dropping some"),
        ("BACKOFF_BASE", agent.BACKOFF_BASE, "s; client: first failover pause"),
        ("BACKOFF_MAX", agent.BACKOFF_MAX, "s; client: longest failover pause"),
        ("PROBE_INTERVAL", agent.PROBE_INTERVAL, "s; client: ping when only watching"),
        ("OFFLINE_PROBE_INTERVAL", OFFLINE_PROBE_INTERVAL, "s; client: offline, ping others"),
        ("check_interval", health.check_interval, "s; node: health sweep period"),
        ("unhealthy_after", health.unhealthy_after, "s; node: silence -> unhealthy"),
        ("evict_after", health.evict_after, "s; node: silence -> removed"),
        ("peer_timeout", cluster.peer_timeout, "s; node: silence -> peer down"),
        ("beacon_interval", cluster.beacon_interval, "s; node: beacon period"),
        ("anti_entropy_interval", cluster.anti_entropy_interval, "s; node: digest period"),
        ("peer_request_timeout", cluster.peer_request_timeout, "s; node: wait for the owner"),
        ("DEADLINE_SLACK", DEADLINE_SLACK, "s; client: a write's deadline past its attempt"),
        ("COPY_CLOCK_MARGIN", COPY_CLOCK_MARGIN, "s; client: write again past a copy"),
        ("FORWARD_LEAD", FORWARD_LEAD, "s; node: a forwarder answers before the deadline"),
        ("BEAT_FORWARD_WAIT", BEAT_FORWARD_WAIT, "s; node: a forwarder answers a beat"),
        ("CATCH_UP_PATIENCE", CATCH_UP_PATIENCE, "peer timeouts; node: longest catch-up"),
        ("DEFAULT_ACK_TIMEOUT", DEFAULT_ACK_TIMEOUT, "s; node: the owner answers a config write"),
        ("FORWARD_TIMEOUT", FORWARD_TIMEOUT, "s; node: a forwarder answers a config write"),
        ("CONFIG_WRITE_ATTEMPT", CONFIG_WRITE_ATTEMPT, "s; client: one server's time, a write"),
        ("DEFAULT_CONFIG_WRITE_TIMEOUT", DEFAULT_CONFIG_WRITE_TIMEOUT,
         "s; client: a config write's whole budget, at least"),  # fmt: skip
        ("PARK_SECONDS", PARK_SECONDS, "s; node: a read waits for its min_revision"),
        ("CONFIG_BEHIND_ATTEMPT", CONFIG_BEHIND_ATTEMPT,
         "s; client: one server's time, a read with min_revision > 0"),  # fmt: skip
        ("CONFIG_RESYNC_INTERVAL", CONFIG_RESYNC_INTERVAL, "s; client: config_listen again"),
    ]
    return _table([(str(a), str(b), str(c)) for a, b, c in rows])


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


THREE = ["127.0.0.1:7800", "127.0.0.1:7804", "127.0.0.1:7808"]

EXAMPLES: dict[str, Callable[[], str]] = {
    "table:ops": ops_table,
    "table:timings": timings_table,
    # requests
    "request:beat": lambda: request("beat", **FULL),
    "annotate:beat": lambda: annotate(encode_request("beat", 7, **FULL)),
    "request:beat-short": lambda: request("beat", service="orders", **ME),
    "request:register": lambda: request("register", **REGISTER),
    "request:deregister": lambda: request("deregister", **FULL),
    "request:register_batch": lambda: request("register_batch", **BATCH),
    "request:update": lambda: request("update", **FULL, weight=0.0),
    "request:service_set": lambda: request(
        "service_set",
        namespace="public",
        group="DEFAULT_GROUP",
        service="orders",
        protect_threshold=0.5,
        metadata={"owner": "team-a"},
    ),
    "request:instances": lambda: request(
        "instances", namespace="public", group="DEFAULT_GROUP", service="orders", healthy_only=True
    ),
    "request:services": lambda: request("services", namespace="public", group="DEFAULT_GROUP"),
    "request:services-page": lambda: request(
        "services", namespace="public", page_size=1, cursor="DEFAULT_GROUP/orders"
    ),
    "request:stats": lambda: request("stats"),
    "request:ping": lambda: request("ping"),
    "request:cluster": lambda: request("cluster"),
    "request:digests": lambda: request("digests", node="127.0.0.1:7804", limit=100),
    "request:config_publish": lambda: request("config_publish", **PUBLISH),
    "request:config_get": lambda: request("config_get", **APP, min_revision=1),
    "request:config_listen": lambda: request("config_listen", **APP, revision=1, md5=LOST_MD5),
    "request:config_force_ready": lambda: request("config_force_ready"),
    # replies
    "reply:ok": lambda: reply("beat", **FULL),
    "annotate:ok": lambda: annotate(registered().call("beat", **FULL)),
    "reply:instances": lambda: reply(
        "instances", namespace="public", group="DEFAULT_GROUP", service="orders", healthy_only=True
    ),
    "reply:services": lambda: reply("services", namespace="public"),
    "reply:register_batch": lambda: reply("register_batch", Node(), **BATCH),
    "reply:services-page": services_page,
    "reply:config_publish": config_write_reply,
    "reply:config_get": lambda: reply("config_get", config_node(), **APP, min_revision=1),
    "reply:config_listen": lambda: reply(
        "config_listen", config_node(), **APP, revision=1, md5=LOST_MD5
    ),
    "reply:config_listen-same": lambda: reply(
        "config_listen", config_node(), **APP, revision=1, md5=APP_MD5
    ),
    "reply:config_force_ready": lambda: reply(
        "config_force_ready", Node(peers=("127.0.0.1:7804",))
    ),
    "reply:stats": stats_reply,
    "reply:ping": lambda: reply("ping"),
    "reply:cluster": lambda: reply("cluster", cluster_node()),
    "reply:digests": lambda: body_block(
        registered().serve([b"peer", b"", encode_request("digests", 7, limit=100)], peer=True)[-1]
    ),
    # errors
    "error:not-found": lambda: error_for("beat", Node(), **FULL),
    "error:invalid-argument": lambda: error_for(
        "register", service="orders", ip="10.0.0.5", port=0
    ),
    "error:too-large": lambda: error_for(
        "register", service="orders", **ME, metadata={f"k{i}": "" for i in range(65)}
    ),
    "error:unsupported-version": lambda: error(
        [ClientFrame(b"client-1"), b"", msgpack.packb({"v": 2, "id": 7, "op": "ping"})]
    ),
    "error:unknown-op": lambda: error_for("watch"),
    "error:malformed": lambda: error([ClientFrame(b"client-1"), b"", b"\xc1"]),
    "error:no-delimiter": lambda: error([ClientFrame(b"client-1"), encode_request("ping", 7)]),
    "error:permission-denied": lambda: error_for("digests"),
    "error:unavailable": lambda: error_for("beat", catching_up(), **FULL),
    "error:resource-exhausted": lambda: error_for(
        "register", one_per_service(), **{**REGISTER, "port": 8081}
    ),
    # notifications
    "notify:sync": lambda: frames_block(notifications()[0]),
    "notify:delta-register": lambda: frames_block(notifications()[1]),
    "notify:delta-deregister": lambda: frames_block(notifications()[2]),
    "notify:config": config_notification,
    # the rendezvous hash
    "rendezvous:orders-3": lambda: rendezvous(THREE, KEY),
    "rendezvous:orders-2": lambda: rendezvous(
        [m for m in THREE if m != responsible_node(KEY, THREE)], KEY
    ),
    "rendezvous:other-key": lambda: rendezvous(
        ["node-a", "node-b", "node-c"], ServiceKey("prod", "billing", "invoices")
    ),
    "rendezvous:config": lambda: config_rendezvous(
        THREE, ConfigKey("public", "DEFAULT_GROUP", "app.yaml")
    ),
}


# -- the checks ------------------------------------------------------------------------------
def doc_blocks(text: str) -> dict[str, str]:
    blocks: dict[str, str] = {}
    for m in MARK.finditer(text):
        assert m.group(1) not in blocks, f"two blocks are marked {m.group(1)!r}"
        blocks[m.group(1)] = m.group(2)
    return blocks


def write() -> int:
    text = DOC.read_text()
    names = set(doc_blocks(text))

    def fill(m: re.Match[str]) -> str:
        head = m.group(0)[: m.start(2) - m.start(0)]
        return head + EXAMPLES[m.group(1)]() + "```"

    DOC.write_text(MARK.sub(fill, text))
    missing = sorted(set(EXAMPLES) - names)
    for name in missing:
        print(f"not in the doc yet: <!-- check: {name} -->")
    return 1 if missing else 0


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text()


def test_every_example_is_in_the_doc(doc: str) -> None:
    blocks = doc_blocks(doc)
    assert sorted(set(EXAMPLES) - set(blocks)) == []
    assert sorted(set(blocks) - set(EXAMPLES)) == [], "a block is marked with no generator"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_block_is_what_the_code_produces(doc: str, name: str) -> None:
    blocks = doc_blocks(doc)
    if name not in blocks:
        pytest.fail(f"docs/PROTOCOL.md has no block <!-- check: {name} -->")
    expected = EXAMPLES[name]()
    assert blocks[name] == expected, (
        f"docs/PROTOCOL.md block {name!r} is stale; it must read:\n{expected}\n"
        "(regenerate: python tests/wire/test_protocol_doc.py --write)"
    )


def test_the_check_can_fail(doc: str) -> None:
    """A block that differs by one byte is caught (the comparison is exact)."""
    name = "request:beat"
    block = doc_blocks(doc)[name]
    assert block.replace("cd 1f 90", "cd 1f 91") != EXAMPLES[name]()


def section(doc: str, heading: str) -> str:
    """The text of a section from its heading to the next heading of its level or above."""
    m = re.search(rf"^(#+) {re.escape(heading)}.*$", doc, re.M)
    assert m is not None, f"docs/PROTOCOL.md has no section {heading!r}"
    level = len(m.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(doc, m.end())
    return doc[m.end() : end.start() if end else len(doc)]


@pytest.mark.parametrize("op", CLIENT_OPS + PEER_OPS)
def test_every_op_has_its_section(doc: str, op: str) -> None:
    assert re.search(rf"^### [0-9.a-z]+ `{op}`", doc, re.M), f"no section for op {op!r}"


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_has_its_row(doc: str, code: ErrorCode) -> None:
    assert f"| {int(code)} | `{code.name}` |" in section(doc, "3 Errors")


# Maps whose keys are data (names, ops, codes), not fields.
DATA_MAPS = {"metadata", "service_metadata", "requests", "errors", "rejected_quota"}


def keys_of(value: Any, out: set[str] | None = None) -> set[str]:
    out = set() if out is None else out
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(k)
            if k not in DATA_MAPS:
                keys_of(v, out)
    elif isinstance(value, list):
        for v in value:
            keys_of(v, out)
    return out


def _undocumented(text: str, keys: set[str]) -> list[str]:
    """The keys ``text`` names neither as `key` nor as "key" (inside a map's shape)."""
    return sorted(k for k in keys if f"`{k}`" not in text and f'"{k}"' not in text)


def test_every_stats_key_is_documented(doc: str) -> None:
    stats = registered().result("stats")
    stats_cluster = cluster_node().result("stats")
    keys = keys_of(stats) | keys_of(stats_cluster)
    assert "security" in keys and "health_judgment" in keys  # runtime's and core's keys
    # in the tables, not only in the example (review21 F6: a key there only was missed)
    prose = re.sub(r"```.*?```", "", section(doc, "2.8 `stats`"), flags=re.S)
    assert _undocumented(prose, keys) == []


@pytest.mark.parametrize(
    ("heading", "op", "fields"),
    [
        ("2.6 `instances`", "instances", {"service": "orders"}),
        ("2.7 `services`", "services", {"namespace": "public"}),
        ("2.9 `ping`", "ping", {}),
    ],
)
def test_every_reply_key_is_documented(
    doc: str, heading: str, op: str, fields: dict[str, Any]
) -> None:
    assert _undocumented(section(doc, heading), keys_of(registered().result(op, **fields))) == []


def test_every_cluster_key_is_documented(doc: str) -> None:
    keys = keys_of(cluster_node().result("cluster"))
    assert _undocumented(section(doc, "2.10 `cluster`"), keys) == []


def test_every_notification_key_is_documented(doc: str) -> None:
    keys: set[str] = set()
    for frames in notifications():
        keys |= keys_of(msgpack.unpackb(frames[1], raw=False))
    text = section(doc, "4.2 Bodies") + section(doc, "2.6 `instances`")  # instance maps: 2.6
    assert _undocumented(text, keys) == []


LIMIT_ROW = re.compile(r"^\| `([A-Z_]+)` \| ([0-9]+) \|", re.M)


def test_every_limit_in_a_table_is_the_codes(doc: str) -> None:
    rows = LIMIT_ROW.findall(doc)
    assert len(rows) >= 30
    for name, value in rows:
        owners = [m for m in (limits, wire_peer, sockets) if hasattr(m, name)]
        assert owners, f"docs/PROTOCOL.md lists a limit {name} that the code does not have"
        assert getattr(owners[0], name) == int(value), f"{name} is {getattr(owners[0], name)}"


RUN = re.compile(r"<!-- run: minimal-client -->\n```python\n(.*?)```", re.S)


def test_the_minimal_client_works(start_node: Callable[..., Any]) -> None:
    """Section 8's code, run as written against a real node (shorter beats)."""
    m = RUN.search(DOC.read_text())
    assert m is not None, "docs/PROTOCOL.md has no <!-- run: minimal-client --> block"
    node = start_node()
    code = m.group(1)
    assert 'call("config_publish"' in code and 'call("config_get"' in code  # a config part
    for old, new in (
        ('ADDRESS = "tcp://127.0.0.1:7800"', f'ADDRESS = "tcp://{node.address}"'),
        ("BEAT_INTERVAL = 5.0", "BEAT_INTERVAL = 0.05"),
    ):
        assert old in code
        code = code.replace(old, new)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_the_example_node_publishes_what_the_runtime_publishes() -> None:
    """The notification examples are the runtime's own output: each change the core
    emits reaches the (recording) XPUB through ``_carry_out``, encoded there."""
    node = registered()
    node.call("register", **{**REGISTER, "weight": 2.0})
    assert [e for e in node.rt.core.take_effects() if type(e) is ServiceChanged] == []
    kinds = [msgpack.unpackb(f[1], raw=False)["kind"] for f in node.xpub.sent]
    assert kinds == ["sync", "delta", "delta"]
    assert msgpack.unpackb(node.xpub.sent[-1][1], raw=False)["upsert"][0]["weight"] == 2.0


def test_a_data_ids_owner_is_hashed_over_addresses_not_node_ids() -> None:
    """2.15 / 6.1: with ``--node-id`` the ids differ from the addresses; the config plane
    still hashes the addresses (what the ``rendezvous:config`` vector shows)."""
    peers = ("127.0.0.1:7804", "127.0.0.1:7808")
    config = NodeConfig(host="127.0.0.1", port=7800, peers=peers, node_id="zz-0")
    rt = NodeRuntime(config, clock=lambda: START, epoch=EPOCH)
    rt.configs.set_members_up(frozenset(peers), START)
    ids = ["zz-0", "zz-1", "zz-2"]
    differ = 0
    for i in range(30):
        key = ConfigKey("public", "DEFAULT_GROUP", f"d{i}")
        owner = rt.configs.replicator.responsible(key)
        assert owner == responsible_config_node(key, THREE)
        differ += THREE.index(owner) != ids.index(responsible_config_node(key, ids))
    assert differ > 0  # the two rules disagree on some keys: the test can tell them apart


def test_a_subscription_to_an_absent_data_id_gets_no_sync() -> None:
    """4.5: an exact config topic subscribed gets the current version at once (a sync),
    and nothing when the data id does not exist (so a client cannot see its admission)."""
    node = config_node()
    node.xpub.sent.clear()
    node.rt.configs.subscribed(b"\x00config\x00public\x00DEFAULT_GROUP\x00nosuch\x00")
    assert node.xpub.sent == []
    node.rt.configs.subscribed(b"\x00config\x00public\x00DEFAULT_GROUP\x00app.yaml\x00")
    assert [msgpack.unpackb(f[-1], raw=False)["revision"] for f in node.xpub.sent] == [1]


def test_a_data_id_created_after_its_subscription_was_admitted_is_pushed() -> None:
    """4.5's argument that a client loses nothing without a sync for an absent data id:
    once the subscription is admitted, the data id's first version is pushed on it."""
    node = config_node()
    topic = b"\x00config\x00public\x00DEFAULT_GROUP\x00new.yaml\x00"
    assert node.rt.gate.subscribe(topic, True) is None  # admitted (as _drain_subscriptions)
    node.rt.configs.subscribed(topic)
    node.xpub.sent.clear()
    replies: list[bytes] = []
    node.rt.configs._send_reply = lambda envelope, body: replies.append(body)  # type: ignore
    node.now += 1.0
    frames = [ClientFrame(b"client-1"), b"", encode_request("config_publish", 8, data_id="new.yaml",
                                                content="b: 1")]  # fmt: skip
    node.rt._serve(frames, node.now)
    node.rt.configs.flush(node.now)
    assert len(replies) == 1 and msgpack.unpackb(replies[0], raw=False)["ok"]
    pushed = [(f[0], msgpack.unpackb(f[-1], raw=False)["revision"]) for f in node.xpub.sent]
    assert pushed == [(topic, 1)]


def test_the_frame_limit_row_gives_the_effective_default(doc: str) -> None:
    """1.6: the frame limit a client meets with the default content cap, in bytes."""
    row = next(line for line in doc.splitlines() if line.startswith("| `MAX_FRAME_BYTES` |"))
    effective = config_frame_bytes(DEFAULT_MAX_CONTENT_BYTES)
    assert f"{effective} bytes" in row, row


# What a second-language client author asked (review11 F-doc), answered where they look.
ANSWERS = [
    ("1.5 Common request fields", "config write is idempotent only with its `request_id`"),
    ("2.15 The configuration center", "addresses"),
    ("2.15 The configuration center", "test vector (6.1)"),
    ("2.15 The configuration center", "Again after an absence"),
    ("2.22 `config_listen`", "Stateless on the node"),
    ("2.23 `config_unlisten`", "nothing to undo"),
    ("3 Errors", "re-send the write with the same fields and `request_id`"),
    ("4.5 Config notifications", "no sync"),
    ("4.5 Config notifications", "subscribe first"),
    ("5.3 Failover", "`config_listen`"),
    ("6 The rendezvous hash", "addresses"),
    # review67 (a JavaScript client written from this document alone)
    ("2.15 The configuration center", "Never hash the member map's `address`"),
    ("2.15 The configuration center", "Hash each one's `announced`"),
    ("2.5 `service_set`", "**enabled or not**"),
    ("2.18 `config_delete`", "A delete drops the gray version"),
    ("3 Errors", "a per-entry `UNAVAILABLE` **always** means"),
]
CONTRADICTIONS = [
    ("1.5 Common request fields", "all operations are\nidempotent"),
    ("3 Errors", '"outcome unknown": read the data id, then retry'),
    ("3 Errors", "may retry (every op is idempotent)"),
    ("2.15 The configuration center", "A node that was down answers config reads only once"),
    # review67 F3: a re-send carries a fresh deadline, so it is not "the same body"
    ("3 Errors", "re-send the same body"),
    ("5.2 Rules", "same bodies"),
    ("5.3 Failover", "same bodies"),
    # review67 F4: a write's result is never resolved for the writer
    ("2.16 `config_publish`", "unless `gray_served`"),
]


@pytest.mark.parametrize(("heading", "text"), ANSWERS)
def test_the_doc_answers(doc: str, heading: str, text: str) -> None:
    assert text in section(doc, heading), f"{heading!r} does not say {text!r}"


@pytest.mark.parametrize(("heading", "text"), CONTRADICTIONS)
def test_the_doc_does_not_contradict_the_code(doc: str, heading: str, text: str) -> None:
    assert text not in section(doc, heading), f"{heading!r} still says {text!r}"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/wire/test_protocol_doc.py --write")
    sys.exit(write())
