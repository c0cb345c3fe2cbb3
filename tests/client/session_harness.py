"""A ClientSession driven by a fake clock (milliseconds) and scripted nodes.

No socket, no thread, no sleep: the test moves time with ``advance(ms)``, sees every
request the session sends (``sent``, with the destination it would go to) and answers
them with ``reply``/``fail``.  Everything the session asks the loop to do is kept in
``actions``; ``logs()``, ``listener_calls`` and ``outcome(handle)`` read them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import msgpack

from meshreg.client.actions import (
    Action,
    CallListener,
    Complete,
    ConnectServer,
    DirectSend,
    Fail,
    LogLine,
    SendRequest,
)
from meshreg.client.commands import Command, Deregister, Registration
from meshreg.client.messages import (
    ReplyError,
    ReplyOk,
    ServiceDelta,
    ServiceSync,
    decode_result,
)
from meshreg.client.session import ClientSession, SessionSettings
from meshreg.errors import ErrorCode
from meshreg.model import Instance, InstanceId, ServiceKey

LATE = re.compile(r" \(noted [0-9.]+s ago; lines of this kind are held back to one per \d+s\)$")
SID = "0123456789abcdef0123456789abcdef"
SVC = ServiceKey("public", "DEFAULT_GROUP", "orders")
PONG = {"epoch": 1, "version": "0", "address": "a:1"}  # a node's ping reply (a majority seen)


@dataclass
class Sent:
    """A request as it left: where to, its op, id and fields."""

    to: str
    op: str
    id: int
    fields: dict[str, Any]


@dataclass(eq=False)
class Handle:
    """Stands for a caller's Future: the session only hands it back."""

    name: str = ""


@dataclass
class Harness:
    servers: tuple[str, ...] = ("a:1", "b:2")
    beat_ms: int = 1000
    attempt_ms: int = 500
    resync_ms: int = 10_000
    session: bool = False
    empty_protection: bool = True
    direct: DirectSend = DirectSend.SENT  # what becomes of a send straight to a member
    now_ms: int = 0
    actions: list[Action] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    connected: str = ""
    wall_offset: float | None = None  # registry writes carry deadlines when set
    handshake: bool = True  # a server connection completes its handshake (as the loop says)
    # a replaced connection completed a handshake the loop saw only when it closed it
    late_handshake: bool = False
    fail_when_refused: bool = False  # the CLI's setting

    def __post_init__(self) -> None:
        addresses = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in self.servers)]
        settings = SessionSettings(
            self.beat_ms / 1000, self.attempt_ms / 1000, self.resync_ms / 1000,
            self.empty_protection, wall_offset=self.wall_offset,
            fail_when_refused=self.fail_when_refused,
        )  # fmt: skip
        self.core = ClientSession(addresses, settings, ("public", SID) if self.session else None)
        self.run(self.core.start(self.now))

    @property
    def now(self) -> float:
        return self.now_ms / 1000

    # -- driving ---------------------------------------------------------------------------
    def run(self, actions: list[Action]) -> None:
        for action in actions:
            self.actions.append(action)
            if isinstance(action, ConnectServer):
                self.connected = f"{action.host}:{action.port}"
                if action.settle is not None:  # the old connection closed: did it connect?
                    closed = self.core.previous_connection_closed(
                        action.settle, self.late_handshake, self.now
                    )
                    self.run(closed)
                if self.handshake:  # (a connect error, set by a test, stays named)
                    self.core.server_handshaken()
            elif isinstance(action, SendRequest):
                body = msgpack.unpackb(action.body)
                op, req_id = body.pop("op"), body.pop("id")
                body.pop("v")
                self.sent.append(Sent(action.via or self.connected, op, req_id, body))
                if action.via is not None:
                    self.run(self.core.direct_send_result(req_id, self.direct, self.now))

    def do(self, command: Command) -> None:
        self.run(self.core.handle(command, self.now))

    def advance(self, ms: int) -> None:
        """Move the clock ``ms`` ahead, ticking now and at every wake-up the session asks
        for (to the millisecond, as the loop's poll does), and at the end."""
        end = self.now_ms + ms
        self.run(self.core.tick(self.now))
        while self.now_ms < end:
            wake = self.core.next_wake(self.now)
            wake_ms = math.ceil(wake * 1000)
            if wake_ms / 1000 < wake:  # float rounding: never tick before the deadline
                wake_ms += 1
            self.now_ms = min(end, max(self.now_ms + 1, wake_ms))
            self.run(self.core.tick(self.now))

    def reply(self, req: Sent, result: Any = None, source: str | None = None) -> None:
        src = source or req.to
        self.run(self.core.on_reply(src, ReplyOk(req.id, result), self.now))

    def fail(self, req: Sent, code: ErrorCode, message: str = "no") -> None:
        self.run(self.core.on_reply(req.to, ReplyError(req.id, int(code), message), self.now))

    def fail_all(self, op: str, code: ErrorCode, message: str = "no") -> int:
        """Refuse every request of ``op`` not answered yet; how many."""
        todo = self.unanswered(op)
        for req in todo:
            self.fail(req, code, message)
        return len(todo)

    def push(self, note: ServiceDelta | ServiceSync) -> None:
        self.run(self.core.on_notification(note, self.now))

    def answer_all(self, op: str, result: Any = None) -> list[Sent]:
        """Reply to every request of ``op`` not answered yet (and to those the replies let
        out of the backlog)."""
        done: list[Sent] = []
        while todo := self.unanswered(op):
            for req in todo:
                self.reply(req, result)
            done += todo
        return done

    def all_stale(self, epoch: int = 0) -> None:
        """Answer every ``revisions`` check not answered yet: every view it names is stale
        (the node restarted, say): the session pulls each of them."""
        for req in self.unanswered("revisions"):
            self.reply(req, {"epoch": epoch, "stale": list(range(len(req.fields["services"])))})

    def answer_batches(
        self, refused: dict[str, tuple[ErrorCode, str]] | None = None, stamp: int | None = None
    ) -> list[Sent]:
        """Reply to every ``register_batch`` not answered yet (and to those the replies let
        out): each entry registered, but those whose ip is in ``refused`` (code, message);
        ``stamp``: what the registered ones are told they left (None: no ``stamps``, as an
        older node answers)."""
        refused = refused or {}
        done: list[Sent] = []
        while todo := self.unanswered("register_batch"):
            for req in todo:
                results = []
                for entry in req.fields["instances"]:
                    why = refused.get(entry["ip"])
                    results.append(None if why is None else [int(why[0]), why[1]])
                told = (
                    {}
                    if stamp is None
                    else {"stamps": [stamp if r is None else None for r in results]}
                )
                self.reply(req, {"results": results, **told})
            done += todo
        return done

    def batched(self) -> list[dict[str, Any]]:
        """Every entry of every ``register_batch`` sent, in order (re-sends included)."""
        return [e for s in self.requests("register_batch") for e in s.fields["instances"]]

    def answer_view(self) -> None:
        """Answer the cluster view requests: the server alone (no routing to owners)."""
        members = [
            {
                "id": "n0",
                "address": self.connected,
                "state": "up",
                "self": True,
                "services": 0,
                "instances": 0,
                "lag": 0,
            }  # fmt: skip
        ]
        self.answer_all("cluster", {"node": "n0", "ready": True, "members": members})

    # -- reading ---------------------------------------------------------------------------
    def requests(self, op: str, to: str | None = None) -> list[Sent]:
        return [s for s in self.sent if s.op == op and (to is None or s.to == to)]

    def unanswered(self, op: str) -> list[Sent]:
        """The latest send of each request of ``op`` still awaiting a reply."""
        latest = {s.id: s for s in self.sent}
        pending = self.core._pending  # the ids still awaiting a reply
        return [s for i, s in latest.items() if s.op == op and i in pending]

    def logs(self, level: str | None = None, raw: bool = False) -> list[str]:
        """The lines logged; without ``raw``, a summed-up line's "(noted Ns ago; ...)" is
        cut (the tests of the text; test_client_session_watch.py checks it)."""
        return [
            a.text if raw else LATE.sub("", a.text)
            for a in self.actions
            if isinstance(a, LogLine) and (level is None or a.level == level)
        ]

    def outcome(self, handle: Handle) -> Complete | Fail | None:
        done = [a for a in self.actions if isinstance(a, (Complete, Fail)) and a.reply_to is handle]
        assert len(done) <= 1, done
        return done[0] if done else None

    def listener_calls(self) -> list[list[Instance]]:
        return [list(a.listing) for a in self.actions if isinstance(a, CallListener)]

    def connects(self) -> list[str]:
        return [f"{a.host}:{a.port}" for a in self.actions if isinstance(a, ConnectServer)]


def registration(n: int, session: bool = False, key: ServiceKey = SVC) -> Registration:
    fields: dict[str, Any] = {
        "namespace": key.namespace,
        "group": key.group,
        "service": key.service,
        "ip": f"10.0.{n // 250}.{n % 250 + 1}",
        "port": 80,
        "cluster": "DEFAULT",
        "weight": 1.0,
        "enabled": True,
        "metadata": {},
    }
    if session:
        fields["session"] = SID
    return Registration(key, InstanceId(fields["ip"], 80, "DEFAULT"), fields)


def instance_map(ip: str, port: int = 80, healthy: bool = True) -> dict[str, Any]:
    return {"ip": ip, "port": port, "cluster": "DEFAULT", "weight": 1.0, "enabled": True,
            "healthy": healthy, "metadata": {}}  # fmt: skip


def snapshot(epoch: int, revision: int, *ips: str, uptime: float | None = None) -> dict[str, Any]:
    """An ``instances`` result as a node sends it."""
    result: dict[str, Any] = {
        "epoch": epoch,
        "revision": revision,
        "instances": [instance_map(ip) for ip in ips],
    }
    if uptime is not None:
        result["uptime"] = uptime
    decode_result("instances", result)  # a shape the client accepts
    return result


def removal(epoch: int, base: int, *ips: str, key: ServiceKey = SVC) -> ServiceDelta:
    removed = tuple(InstanceId(ip, 80, "DEFAULT") for ip in ips)
    return ServiceDelta(key, epoch, base + 1, base, (), removed)


def addition(epoch: int, base: int, *ips: str, key: ServiceKey = SVC) -> ServiceDelta:
    upsert = tuple(Instance.from_wire(instance_map(ip)) for ip in ips)
    return ServiceDelta(key, epoch, base + 1, base, upsert, ())


def lose_session(h: Harness) -> Sent:
    """The node forgot the client's session: renewals are answered "unknown" until the
    client registers its instances again (a ``register_batch`` of its own): that batch."""
    for _ in range(60):
        h.advance(100)
        for r in h.unanswered("session_renew"):
            h.reply(r, {"instances": 0, "known": False})
        if redo := h.unanswered("register_batch"):
            return redo[0]
    raise AssertionError("no redo after the session was lost")


def deregister(h: Harness, reg: Registration, name: str = "d") -> Handle:
    """The caller deregisters ``reg``'s instance (3 s): its handle."""
    handle = Handle(name)
    h.do(Deregister(reg.key, reg.iid, dict(reg.beat_fields), 3.0, handle))
    return handle
