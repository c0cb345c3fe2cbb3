"""review28: a meshreg client written from docs/PROTOCOL.md (+ README, docs/*.md) alone.

Imports only zmq, msgpack and xxhash (no meshreg). It follows the document's sections:
framing 1.3, common fields 1.5, cluster view 1.8, the ops of 2, errors 3, notifications
and the per-service view algorithm 4.4, config notifications 4.5, the client contract 5,
the rendezvous hash 6 / 6.1.  Single-threaded: a call polls the DEALER and the SUB, and
notifications that arrive meanwhile are queued and handled by ``pump()``.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import xxhash
import zmq

# 3 Errors
MALFORMED, UNSUPPORTED_VERSION, UNKNOWN_OP, INVALID_ARGUMENT, TOO_LARGE = 1, 2, 3, 4, 5
NOT_FOUND, INTERNAL, UNAVAILABLE, PERMISSION_DENIED, RESOURCE_EXHAUSTED, CONFLICT = (
    6, 7, 8, 9, 10, 11)

# 5.1 defaults
ATTEMPT_TIMEOUT = 1.0
TIMEOUT = 3.0
YOUNG_NODE_GRACE = 15.0
CONFIG_WRITE_ATTEMPT = 2.5
CONFIG_BEHIND_ATTEMPT = 1.5
DEADLINE_SLACK = 0.5
CONFIG_WRITE_OPS = {"config_publish", "config_delete", "config_rollback", "config_gray",
                    "config_promote", "config_gray_drop"}
REGISTRY_WRITE_OPS = {"register", "register_batch", "deregister", "update", "service_set",
                      "session_close"}


class NoReply(Exception):
    """No reply within the budget (5.2: node down, CURVE refused, reply lost...)."""


class ServerError(Exception):
    def __init__(self, reply: dict[str, Any]) -> None:
        err = reply["error"]
        self.code = err["code"]
        self.name = err["name"]
        self.message = err["message"]
        self.written = err.get("written")
        self.reply = reply
        super().__init__(f"{self.name}({self.code}): {self.message}")


# ---------------------------------------------------------------- 6 rendezvous hash

def service_key(namespace: str, group: str, service: str) -> bytes:
    return b"\x00".join(s.encode("utf-8") for s in (namespace, group, service))


def config_key(namespace: str, group: str, data_id: str) -> bytes:
    return b"config\x00" + service_key(namespace, group, data_id)


def score(member: str, key: bytes) -> int:
    return xxhash.xxh64(member.encode("utf-8") + b"\x01" + key, seed=0).intdigest()


def owner(members: list[str], key: bytes) -> str | None:
    if not members:
        return None
    # highest score; on equal scores the larger id (code point order)
    return max(members, key=lambda m: (score(m, key), m))


def service_owner_members(cluster_result: dict[str, Any]) -> list[str]:
    """6 step 4: the ids of the members whose state is "up"."""
    return [m["id"] for m in cluster_result["members"] if m["state"] == "up"]


def config_owner_members(cluster_result: dict[str, Any]) -> list[str]:
    """6.1 / 2.15: addresses of configured members "up" or "catching up"."""
    return [m["address"] for m in cluster_result["members"]
            if m.get("configured", True) and m["state"] in ("up", "catching up")]


# ---------------------------------------------------------------- topics (4.1, 4.5)

def service_topic(namespace: str, group: str, service: str) -> bytes:
    return service_key(namespace, group, service) + b"\x00"


def config_topic(namespace: str, group: str, data_id: str) -> bytes:
    return b"\x00config\x00" + service_key(namespace, group, data_id) + b"\x00"


def endpoint(server: str, plus: int = 0) -> str:
    s = server[len("tcp://"):] if server.startswith("tcp://") else server
    host, _, port = s.rpartition(":")
    return f"tcp://{host}:{int(port) + plus}"


# ---------------------------------------------------------------- 4.4 view

def ikey(i: Any) -> tuple[str, int, str]:
    if isinstance(i, dict):
        return (i["ip"], i["port"], i["cluster"])
    return (i[0], i[1], i[2])


@dataclass
class View:
    namespace: str
    group: str
    service: str
    epoch: int | None = None
    revision: int = 0
    instances: dict[tuple[str, int, str], dict[str, Any]] = field(default_factory=dict)
    settings: tuple[float, dict[str, str]] = (0.0, {})
    loaded: bool = False
    hint: tuple[int, int] | None = None
    pulls: int = 0
    callbacks: list[Callable[[list[dict[str, Any]]], None]] = field(default_factory=list)

    def healthy(self) -> list[dict[str, Any]]:
        xs = list(self.instances.values())
        thr = self.settings[0]
        good = [i for i in xs if i["healthy"] and i["enabled"]]
        if xs and thr > 0 and len([i for i in xs if i["healthy"]]) / len(xs) < thr:
            return xs
        return good


@dataclass
class ConfigHold:
    namespace: str
    group: str
    data_id: str
    revision: int = 0
    md5: str | None = None
    content: str | None = None
    deleted: bool = False
    callbacks: list[Callable[[str | None, int], None]] = field(default_factory=list)


# ---------------------------------------------------------------- the client

class DocClient:
    def __init__(self, servers: list[str], namespace: str = "public",
                 group: str = "DEFAULT_GROUP", curve: tuple[bytes, bytes, bytes] | None = None,
                 attempt_timeout: float = ATTEMPT_TIMEOUT, timeout: float = TIMEOUT,
                 labels: dict[str, str] | None = None) -> None:
        self.servers = list(servers)
        self.namespace, self.group = namespace, group
        self.curve = curve  # (client public, client secret, server public), z85 bytes
        self.attempt_timeout, self.timeout = attempt_timeout, timeout
        self.labels = labels
        self.ctx = zmq.Context.instance()
        self.ids = itertools.count(1)  # 1.5: start at 1
        self.current = 0
        self.dealer: zmq.Socket | None = None
        self.sub: zmq.Socket | None = None
        self.sub_endpoint: str | None = None
        self.stray_replies: list[dict[str, Any]] = []
        self.notifications: list[tuple[bytes, dict[str, Any]]] = []  # every one received
        self._queue: list[tuple[bytes, dict[str, Any]]] = []
        self.views: dict[tuple[str, str, str], View] = {}
        self.configs: dict[tuple[str, str, str], ConfigHold] = {}
        self.taken: set[int] = set()
        self.cluster_view: dict[str, Any] | None = None
        self.registered: dict[tuple[str, str, str, str, int, str], dict[str, Any]] = {}
        self.failovers = 0
        self.max_seen_config: dict[tuple[str, str, str], int] = {}
        self._connect(self.servers[self.current])

    # -- sockets (5.3)
    def _secure(self, s: zmq.Socket) -> None:
        if self.curve:
            pub, sec, srv = self.curve
            s.curve_publickey, s.curve_secretkey, s.curve_serverkey = pub, sec, srv

    def _connect(self, server: str) -> None:
        if self.dealer is not None:
            self.dealer.close(linger=0)
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.linger = 0
        self._secure(self.dealer)
        self.dealer.connect(endpoint(server))
        if self.sub is None:
            self.sub = self.ctx.socket(zmq.SUB)
            self.sub.linger = 0
            self._secure(self.sub)
        elif self.sub_endpoint:
            self.sub.disconnect(self.sub_endpoint)
        self.sub_endpoint = endpoint(server, 1)
        self.sub.connect(self.sub_endpoint)

    @property
    def server(self) -> str:
        return self.servers[self.current]

    def failover(self) -> None:
        """5.3 steps 1-6."""
        self.current = (self.current + 1) % len(self.servers)
        self.failovers += 1
        self._connect(self.server)
        self.cluster_view = None
        for v in self.views.values():
            self.pull(v)
        for h in self.configs.values():
            self._listen_one(h)

    def close(self) -> None:
        for s in (self.dealer, self.sub):
            if s is not None:
                s.close(linger=0)

    # -- requests (1.3, 1.5)
    def send_raw(self, frames: list[bytes]) -> None:
        assert self.dealer is not None
        self.dealer.send_multipart(frames)

    def recv_raw(self, timeout: float) -> list[bytes] | None:
        assert self.dealer is not None
        if self.dealer.poll(int(timeout * 1000)):
            return self.dealer.recv_multipart()
        return None

    def _poll_until(self, rid: int, deadline: float) -> dict[str, Any] | None:
        poller = zmq.Poller()
        poller.register(self.dealer, zmq.POLLIN)
        poller.register(self.sub, zmq.POLLIN)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            events = dict(poller.poll(int(left * 1000) + 1))
            if self.sub in events:
                self._drain_sub()
            if self.dealer in events:
                while self.dealer.poll(0):
                    frames = self.dealer.recv_multipart()
                    reply = msgpack.unpackb(frames[-1], raw=False)
                    if reply.get("id") == rid:
                        return reply
                    self.stray_replies.append(reply)  # 1.3: not pending: drop (kept for tests)

    def call_once(self, op: str, attempt: float | None = None, server_index: int | None = None,
                  **fields: Any) -> dict[str, Any]:
        """One attempt on the current server; returns the raw reply map or raises NoReply."""
        rid = next(self.ids)
        body = {"v": 1, "id": rid, "op": op, **{k: v for k, v in fields.items()}}
        attempt = attempt if attempt is not None else self.attempt_timeout
        if op in REGISTRY_WRITE_OPS or op in CONFIG_WRITE_OPS:
            body.setdefault("deadline", int((time.time() + attempt + DEADLINE_SLACK) * 1000))
        self.send_raw([b"", msgpack.packb(body)])
        reply = self._poll_until(rid, time.monotonic() + attempt)
        if reply is None:
            raise NoReply(f"{op}: no reply from {self.server} within {attempt}s")
        return reply

    def call(self, op: str, **fields: Any) -> Any:
        """A call with failover (5.2/5.3); returns result or raises ServerError/NoReply."""
        end = time.monotonic() + self.timeout
        is_cfg_write = op in CONFIG_WRITE_OPS
        if is_cfg_write:
            fields.setdefault("request_id", uuid.uuid4().hex)
        attempt = self.attempt_timeout
        if is_cfg_write:
            attempt = CONFIG_WRITE_ATTEMPT
        elif op == "config_get" and fields.get("min_revision"):
            attempt = CONFIG_BEHIND_ATTEMPT
        tried = 0
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise NoReply(f"{op}: no answer within {self.timeout}s ({tried} attempts)")
            try:
                reply = self.call_once(op, attempt=min(attempt, max(left, 0.05)), **fields)
            except NoReply:
                tried += 1
                self.failover()
                if is_cfg_write:
                    fields["resend"] = True
                continue
            tried += 1
            if reply["ok"]:
                return reply["result"]
            err = ServerError(reply)
            retriable = is_cfg_write or op.startswith("config_") or op in ("instances", "revisions")
            more = time.monotonic() + 0.05 < end and len(self.servers) > 1
            if err.code == UNAVAILABLE and retriable and more:
                if is_cfg_write and err.written is None:
                    fields["resend"] = True
                self.failover()
                continue
            raise err

    # -- cluster view (1.8)
    def cluster(self) -> dict[str, Any]:
        self.cluster_view = self.call("cluster")
        return self.cluster_view

    def owner_of_service(self, service: str, group: str | None = None) -> str | None:
        view = self.cluster_view or self.cluster()
        key = service_key(self.namespace, group or self.group, service)
        o = owner(service_owner_members(view), key)
        for m in view["members"]:
            if m["id"] == o:
                return m["address"]
        return None

    # -- registry ops
    def _names(self, service: str, group: str | None) -> dict[str, Any]:
        return {"namespace": self.namespace, "group": group or self.group, "service": service}

    def register(self, service: str, ip: str, port: int, group: str | None = None,
                 cluster: str = "DEFAULT", **extra: Any) -> Any:
        f = {**self._names(service, group), "ip": ip, "port": port, "cluster": cluster, **extra}
        r = self.call("register", **f)
        self.registered[(f["namespace"], f["group"], service, ip, port, cluster)] = f
        return r

    def deregister(self, service: str, ip: str, port: int, group: str | None = None,
                   cluster: str = "DEFAULT") -> Any:
        names = self._names(service, group)
        self.registered.pop((names["namespace"], names["group"], service, ip, port, cluster), None)
        return self.call("deregister", **names, ip=ip, port=port, cluster=cluster)

    def beat_all(self) -> list[tuple[tuple, str]]:
        """5.2: NOT_FOUND -> register again; UNAVAILABLE -> keep quiet."""
        out = []
        for key, f in list(self.registered.items()):
            ident = {k: f[k] for k in ("namespace", "group", "service", "ip", "port", "cluster")}
            try:
                self.call("beat", **ident)
                out.append((key, "ok"))
            except ServerError as e:
                if e.code == NOT_FOUND:
                    self.call("register", **f)
                    out.append((key, "re-registered"))
                elif e.code == UNAVAILABLE:
                    out.append((key, "unavailable"))
                else:
                    out.append((key, e.name))
        return out

    def instances(self, service: str, group: str | None = None, healthy_only: bool = False) -> Any:
        return self.call("instances", **self._names(service, group), healthy_only=healthy_only)

    # -- watching (4.4)
    def subscribe(self, service: str, callback: Callable | None = None,
                  group: str | None = None) -> View:
        key = (self.namespace, group or self.group, service)
        v = self.views.get(key)
        if v is None:
            v = self.views[key] = View(*key)
            assert self.sub is not None
            self.sub.setsockopt(zmq.SUBSCRIBE, service_topic(*key))  # 1. subscribe FIRST
            self.pull(v)  # 2. then pull
        if callback:
            v.callbacks.append(callback)
            callback(v.healthy())
        return v

    def pull(self, v: View) -> None:
        v.pulls += 1
        try:
            r = self.call("instances", namespace=v.namespace, group=v.group, service=v.service)
        except (NoReply, ServerError):
            return
        if v.loaded and r["epoch"] == v.epoch and r["revision"] < v.revision:
            return
        dropped = v.loaded and any(k not in {ikey(i) for i in r["instances"]} for k in v.instances)
        if dropped and r["epoch"] not in self.taken and r["uptime"] < YOUNG_NODE_GRACE \
                and not r.get("synced"):
            return  # young node: keep the view (the caller re-pulls later)
        self.taken.add(r["epoch"])
        v.epoch, v.revision, v.loaded = r["epoch"], r["revision"], True
        v.instances = {ikey(i): i for i in r["instances"]}
        v.settings = (r["protect_threshold"], r["service_metadata"])
        hint, v.hint = v.hint, None
        self._fire(v)
        if hint and hint[0] == v.epoch and hint[1] > v.revision:
            self.pull(v)

    def _fire(self, v: View) -> None:
        for cb in v.callbacks:
            cb(v.healthy())

    def _drain_sub(self) -> None:
        assert self.sub is not None
        while self.sub.poll(0):
            frames = self.sub.recv_multipart()
            body = msgpack.unpackb(frames[-1], raw=False)
            self.notifications.append((frames[0], body))
            self._queue.append((frames[0], body))

    def pump(self, seconds: float = 0.0) -> None:
        """Receive notifications for up to ``seconds`` and apply them."""
        end = time.monotonic() + seconds
        while True:
            self._drain_sub()
            while self._queue:
                topic, n = self._queue.pop(0)
                self._on_notification(n)
            left = end - time.monotonic()
            if left <= 0:
                return
            assert self.sub is not None
            self.sub.poll(int(min(left, 0.05) * 1000) + 1)

    def _on_notification(self, n: dict[str, Any]) -> None:
        kind = n.get("kind")
        if kind in ("delta", "sync"):
            v = self.views.get((n["namespace"], n["group"], n["service"]))
            if v is None:
                return
            if not v.loaded:
                if v.hint is None or (n["epoch"], n["revision"]) > v.hint:
                    v.hint = (n["epoch"], n["revision"])
                return
            if kind == "sync":
                if n["epoch"] != v.epoch or n["revision"] != v.revision:
                    self.pull(v)
                return
            if n["epoch"] != v.epoch:
                self.pull(v)
            elif n["revision"] <= v.revision:
                return
            elif n["base"] != v.revision:
                self.pull(v)
            else:
                for i in n["upsert"]:
                    v.instances[ikey(i)] = i
                for r in n["remove"]:
                    v.instances.pop(ikey(r), None)
                v.settings = (n["protect_threshold"], n["service_metadata"])
                v.revision = n["revision"]
                self._fire(v)
        elif kind == "config":
            h = self.configs.get((n["namespace"], n["group"], n["data_id"]))
            if h is None:
                return
            if n["revision"] < h.revision:
                return
            if n["revision"] == h.revision and n["md5"] == h.md5 and n["deleted"] == h.deleted \
                    and not n.get("gray"):
                return
            self._config_pull(h, n["revision"])

    def resync(self) -> list[int]:
        """4.4 backstop: one `revisions` per namespace; pull what it says is stale."""
        views = [v for v in self.views.values() if v.loaded]
        if not views:
            return []
        epoch = views[0].epoch
        same = [v for v in views if v.epoch == epoch]
        entries = [[v.group, v.service, v.revision, bool(v.instances)] for v in same]
        r = self.call("revisions", namespace=self.namespace, epoch=epoch, services=entries)
        for i in r["stale"]:
            self.pull(same[i])
        for v in views:
            if v.epoch != epoch:
                self.pull(v)
        return r["stale"]

    # -- sessions (2.3a)
    def session_open(self, session: str | None = None) -> dict[str, Any]:
        f: dict[str, Any] = {"namespace": self.namespace}
        if session:
            f["session"] = session
        return self.call("session_open", **f)

    # -- configs (2.15 - 2.26, 4.5)
    def _cnames(self, data_id: str, group: str | None) -> dict[str, Any]:
        return {"namespace": self.namespace, "group": group or self.group, "data_id": data_id}

    def config_publish(self, data_id: str, content: str, group: str | None = None,
                       **extra: Any) -> dict[str, Any]:
        r = self.call("config_publish", **self._cnames(data_id, group), content=content, **extra)
        key = (self.namespace, group or self.group, data_id)
        self.max_seen_config[key] = max(self.max_seen_config.get(key, 0), r["revision"])
        return r

    def config_get(self, data_id: str, group: str | None = None, **extra: Any) -> dict[str, Any]:
        key = (self.namespace, group or self.group, data_id)
        extra.setdefault("min_revision", self.max_seen_config.get(key, 0))
        if self.labels:
            extra.setdefault("labels", self.labels)
        r = self.call("config_get", **self._cnames(data_id, group), **extra)
        self.max_seen_config[key] = max(self.max_seen_config.get(key, 0), r["revision"])
        return r

    def config_listen(self, data_id: str, callback: Callable[[str | None, int], None] | None = None,
                      group: str | None = None) -> ConfigHold:
        key = (self.namespace, group or self.group, data_id)
        h = self.configs.get(key)
        if h is None:
            h = self.configs[key] = ConfigHold(*key)
            assert self.sub is not None
            self.sub.setsockopt(zmq.SUBSCRIBE, config_topic(*key))  # subscribe first
        if callback:
            h.callbacks.append(callback)
        self._listen_one(h)
        return h

    def _listen_one(self, h: ConfigHold) -> None:
        f: dict[str, Any] = {"namespace": h.namespace, "group": h.group, "data_id": h.data_id,
                             "revision": h.revision}
        if h.md5 is not None:
            f["md5"] = h.md5
        if self.labels:
            f["labels"] = self.labels
        try:
            r = self.call("config_listen", **f)
        except (NoReply, ServerError):
            return
        if r["entry"] is not None:
            self._config_take(h, r["entry"])
        elif r["deleted"] and not h.deleted and r["revision"] >= h.revision and h.revision:
            h.revision, h.deleted, h.content, h.md5 = r["revision"], True, None, ""
            for cb in h.callbacks:
                cb(None, h.revision)

    def _config_pull(self, h: ConfigHold, revision: int) -> None:
        f: dict[str, Any] = {"namespace": h.namespace, "group": h.group, "data_id": h.data_id,
                             "min_revision": revision}
        if self.labels:
            f["labels"] = self.labels
        try:
            e = self.call("config_get", **f)
        except ServerError as err:
            if err.code == NOT_FOUND:  # deleted
                h.revision, h.deleted, h.content, h.md5 = revision, True, None, ""
                for cb in h.callbacks:
                    cb(None, revision)
            return
        except NoReply:
            return
        self._config_take(h, e)

    def _config_take(self, h: ConfigHold, e: dict[str, Any]) -> None:
        if e["revision"] < h.revision:
            return
        if e["revision"] == h.revision and e["md5"] == h.md5:
            return
        h.revision, h.md5, h.deleted = e["revision"], e["md5"], e["deleted"]
        h.content = e.get("content")
        for cb in h.callbacks:
            cb(h.content, h.revision)


def load_zpl_keys(path: str) -> tuple[bytes, bytes | None]:
    """SECURITY.md: keygen files are ZPL certificates (zmq.auth reads them)."""
    import zmq.auth

    pub, sec = zmq.auth.load_certificate(path)
    return pub, sec


if __name__ == "__main__":  # pragma: no cover - a smoke run against a node
    import sys

    c = DocClient(sys.argv[1:] or ["127.0.0.1:7800"])
    print(c.call("ping"))
    c.close()
    os._exit(0)
