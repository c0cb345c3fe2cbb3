"""Messages between nodes: replication (PUB/SUB) and peer requests (ROUTER).

Replication channel (each node's XPUB... PUB on ``port + 2``), frames
``[kind, body]`` with kind one of ``b"beacon"``, ``b"delta"``, ``b"digest"``:

* beacon: ``{"v","node","address","epoch","ready","seq","members"}`` every beacon
  interval; ``seq`` is the sender's last delta sequence (gap detection in quiet
  times), ``members`` the ids it hashes responsibility over (its view; a node
  does not judge the health of a service whose owner another view names).
* delta:  ``{"v","node","epoch","seq","namespace","group","service",
  "upsert":[instance + "version", "alive", "down"],
  "remove":[[ip, port, cluster, version, alive]]}`` (the stamps of core/store's
  merge rule; a 4-element removal and an upsert without alive/down, from an
  older node, read as alive = version and down = 0, or = alive if unhealthy).
* digest: ``{"v","node","epoch","services","digest"}``: how many services the
  sender is responsible for and one checksum over them (see core/digests).

Peer requests ride the ordinary request socket (same envelope and reply
shape as client requests): ``digests`` (page through the per-service
checksums of the services the node is responsible for), ``reconcile`` (send
our records of some services, get the node's merged records back) and
``cluster`` (the member view; also for clients and ``meshreg cluster``).
Everything is validated here; the core sees only these dataclasses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgpack

from meshreg.core.events import InstanceView
from meshreg.errors import ErrorCode, RemoteProtocolError
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire import limits
from meshreg.wire.messages import RequestRejected, is_valid_host, validate_metadata
from meshreg.wire.notifications import instance_to_wire

MAX_DIGEST_PAGE = 2000  # services per ``digests`` reply
MAX_RECONCILE_SERVICES = 64  # services per ``reconcile`` request
MAX_RECONCILE_INSTANCES = (
    100_000  # instances + tombstones per ``reconcile`` request (one big service)
)
MAX_DELTA_ENTRIES = 100_000  # upserts + removals in one replicated delta
MAX_MEMBERS = 256  # node ids in a beacon's member view


@dataclass(frozen=True, slots=True)
class Beacon:
    node: str
    address: str
    epoch: int
    ready: bool
    seq: int
    members: tuple[str, ...] | None = None  # the sender's member view (None: not told)


@dataclass(frozen=True, slots=True)
class ServicePayload:
    """One service's records and tombstones, as replicated."""

    key: ServiceKey
    upserts: tuple[InstanceView, ...]
    removals: tuple[tuple[InstanceId, int, int], ...]  # (id, tombstone version, alive)
    settings: tuple[float, int, dict[str, str]] | None = None  # (threshold, version, metadata)


@dataclass(frozen=True, slots=True)
class ReplicatedDelta:
    node: str
    epoch: int
    seq: int
    payload: ServicePayload


@dataclass(frozen=True, slots=True)
class DigestSummary:
    node: str
    epoch: int
    services: int
    digest: int


@dataclass(frozen=True, slots=True)
class ListDigests:
    req_id: int
    cursor: ServiceKey | None
    limit: int
    caller: str | None = None  # the asking node's id, when it says it is catching up
    op = "digests"


@dataclass(frozen=True, slots=True)
class Reconcile:
    req_id: int
    node: str
    services: tuple[ServicePayload, ...]
    op = "reconcile"


@dataclass(frozen=True, slots=True)
class GetCluster:
    req_id: int
    op = "cluster"


PEER_OPS = ("digests", "reconcile", "cluster")


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, ErrorCode.INVALID_ARGUMENT)


def _uint(value: Any, what: str, upper: int = 2**64 - 1) -> int:
    if type(value) is not int or not 0 <= value <= upper:
        raise _bad(f"{what} must be an unsigned integer")
    return value


def _str(value: Any, what: str, max_len: int) -> str:
    if type(value) is not str or not 0 < len(value) <= max_len:
        raise _bad(f"{what} must be a string of 1..{max_len} characters")
    return value


def _key(ns: Any, group: Any, service: Any) -> ServiceKey:
    return ServiceKey(
        _str(ns, "namespace", limits.MAX_NAMESPACE_LEN),
        _str(group, "group", limits.MAX_GROUP_LEN),
        _str(service, "service", limits.MAX_SERVICE_LEN),
    )


def instance_to_peer(v: InstanceView) -> dict[str, Any]:
    """The client-facing fields plus the stamps peers merge by."""
    d = instance_to_wire(v)
    d["version"] = v.version
    d["alive"] = v.alive
    d["down"] = v.down
    return d


def _instance(d: Any) -> InstanceView:
    if not isinstance(d, dict):
        raise _bad("instance must be a map")
    ip = _str(d.get("ip"), "ip", limits.MAX_HOST_LEN)
    if not is_valid_host(ip):
        raise _bad(f"ip {ip!r} is not an IP address or host name")
    port = d.get("port")
    if type(port) is not int or not 0 < port < 65536:
        raise _bad("port must be in 1..65535")
    cluster = _str(d.get("cluster"), "cluster", limits.MAX_CLUSTER_LEN)
    weight: Any = d.get("weight")
    if type(weight) not in (int, float) or not math.isfinite(weight) or not 0 <= weight <= 1e4:
        raise _bad("weight out of range")
    enabled, healthy = d.get("enabled"), d.get("healthy")
    if type(enabled) is not bool or type(healthy) is not bool:
        raise _bad("enabled and healthy must be booleans")
    metadata = d.get("metadata")
    if not isinstance(metadata, dict):
        raise _bad("metadata must be a map")
    try:
        validate_metadata(metadata)
    except RequestRejected as exc:
        raise _bad(exc.message) from None
    version = _uint(d.get("version"), "version", 2**63 - 1)
    alive = _uint(d.get("alive", version), "alive", 2**63 - 1)
    down = _uint(d.get("down", 0 if healthy else alive), "down", 2**63 - 1)
    if alive < version:
        raise _bad("alive must be >= version (a write is evidence of life)")
    if alive and (down < alive) != healthy:
        raise _bad("healthy must equal down < alive")
    return InstanceView(
        ip, port, cluster, float(weight), enabled, healthy, metadata, version, alive, down
    )


def _removal(r: Any) -> tuple[InstanceId, int, int]:
    if not isinstance(r, list) or len(r) not in (4, 5):
        raise _bad("removal must be [ip, port, cluster, version, alive]")
    ip = _str(r[0], "ip", limits.MAX_HOST_LEN)
    port = r[1]
    if type(port) is not int or not 0 < port < 65536:
        raise _bad("port must be in 1..65535")
    cluster = _str(r[2], "cluster", limits.MAX_CLUSTER_LEN)
    alive = _uint(r[4], "alive", 2**63 - 1) if len(r) == 5 else 0
    return InstanceId(ip, port, cluster), _uint(r[3], "version", 2**63 - 1), alive


def payload_to_wire(p: ServicePayload) -> dict[str, Any]:
    return {
        "namespace": p.key.namespace,
        "group": p.key.group,
        "service": p.key.service,
        "upsert": [instance_to_peer(v) for v in p.upserts],
        "remove": [[i.ip, i.port, i.cluster, ver, alive] for i, ver, alive in p.removals],
        "settings": None if p.settings is None else list(p.settings),
    }


def payload_from_wire(d: Any, max_entries: int = MAX_DELTA_ENTRIES) -> ServicePayload:
    if not isinstance(d, dict):
        raise _bad("service payload must be a map")
    upsert, remove = d.get("upsert"), d.get("remove")
    if not isinstance(upsert, list) or not isinstance(remove, list):
        raise _bad("upsert and remove must be lists")
    if len(upsert) + len(remove) > max_entries:
        raise RemoteProtocolError("too many entries in one service payload", ErrorCode.TOO_LARGE)
    settings = d.get("settings")
    if settings is not None:
        if (
            not isinstance(settings, list)
            or len(settings) != 3
            or type(settings[0]) not in (int, float)
            or not 0.0 <= settings[0] <= 1.0
            or not isinstance(settings[2], dict)
        ):
            raise _bad("settings must be [protect_threshold in 0..1, version, metadata]")
        try:
            validate_metadata(settings[2])
        except RequestRejected as exc:
            raise _bad(exc.message) from None
        settings = (
            float(settings[0]),
            _uint(settings[1], "settings version", 2**63 - 1),
            settings[2],
        )
    return ServicePayload(
        _key(d.get("namespace"), d.get("group"), d.get("service")),
        tuple(_instance(x) for x in upsert),
        tuple(_removal(x) for x in remove),
        settings,
    )


# -- replication channel ---------------------------------------------------------
def encode_beacon(b: Beacon) -> list[bytes]:
    body = {
        "v": limits.PROTOCOL_VERSION,
        "node": b.node,
        "address": b.address,
        "epoch": b.epoch,
        "ready": b.ready,
        "seq": b.seq,
    }
    if b.members is not None:
        body["members"] = list(b.members)
    return [b"beacon", msgpack.packb(body)]


def encode_delta(d: ReplicatedDelta) -> list[bytes]:
    body = {"v": limits.PROTOCOL_VERSION, "node": d.node, "epoch": d.epoch, "seq": d.seq}
    body.update(payload_to_wire(d.payload))
    return [b"delta", msgpack.packb(body)]


def encode_digest(d: DigestSummary) -> list[bytes]:
    body = {
        "v": limits.PROTOCOL_VERSION,
        "node": d.node,
        "epoch": d.epoch,
        "services": d.services,
        "digest": d.digest,
    }
    return [b"digest", msgpack.packb(body)]


def decode_replication(frames: list[bytes]) -> Beacon | ReplicatedDelta | DigestSummary:
    """Validate one message from a peer's replication PUB socket."""
    if len(frames) != 2:
        raise RemoteProtocolError(f"replication message must have 2 frames, got {len(frames)}")
    kind, body = frames
    try:
        m = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception as exc:
        raise RemoteProtocolError(
            f"replication body is not msgpack ({type(exc).__name__})"
        ) from None
    if not isinstance(m, dict) or m.get("v") != limits.PROTOCOL_VERSION:
        raise RemoteProtocolError("replication body must be a v1 map")
    node = _str(m.get("node"), "node", 256)
    epoch = _uint(m.get("epoch"), "epoch")
    if kind == b"beacon":
        ready = m.get("ready")
        if type(ready) is not bool:
            raise _bad("ready must be a boolean")
        address = _str(m.get("address"), "address", 300)
        members = m.get("members")
        if members is not None:
            if not isinstance(members, list) or len(members) > MAX_MEMBERS:
                raise _bad(f"members must be a list of at most {MAX_MEMBERS} node ids")
            members = tuple(sorted(_str(x, "member id", 256) for x in members))
        return Beacon(node, address, epoch, ready, _uint(m.get("seq"), "seq"), members)
    if kind == b"delta":
        return ReplicatedDelta(node, epoch, _uint(m.get("seq"), "seq"), payload_from_wire(m))
    if kind == b"digest":
        return DigestSummary(
            node, epoch, _uint(m.get("services"), "services"), _uint(m.get("digest"), "digest")
        )
    raise RemoteProtocolError(f"unknown replication kind {kind[:16]!r}")


# -- peer requests ------------------------------------------------------------------
def parse_peer_request(op: str, msg: dict[str, Any], req_id: int) -> Any:
    """Validate a peer op's fields (called by parse_request for PEER_OPS)."""
    try:
        if op == "cluster":
            return GetCluster(req_id)
        if op == "digests":
            cursor = msg.get("cursor")
            key = None
            if cursor is not None:
                if not isinstance(cursor, list) or len(cursor) != 3:
                    raise _bad("cursor must be [namespace, group, service] or nil")
                key = _key(*cursor)
            limit = msg.get("limit", MAX_DIGEST_PAGE)
            if type(limit) is not int or not 0 < limit <= MAX_DIGEST_PAGE:
                raise _bad(f"limit must be in 1..{MAX_DIGEST_PAGE}")
            caller = msg.get("node")
            if caller is not None:
                caller = _str(caller, "node", 256)
            ready = msg.get("ready", True)
            if type(ready) is not bool:
                raise _bad("ready must be a boolean")
            return ListDigests(req_id, key, limit, None if ready else caller)
        if op == "reconcile":
            services = msg.get("services")
            if not isinstance(services, list) or len(services) > MAX_RECONCILE_SERVICES:
                raise _bad(f"services must be a list of at most {MAX_RECONCILE_SERVICES}")
            payloads = tuple(payload_from_wire(s, MAX_RECONCILE_INSTANCES) for s in services)
            total = sum(len(p.upserts) + len(p.removals) for p in payloads)
            if total > MAX_RECONCILE_INSTANCES:
                raise RemoteProtocolError(
                    "reconcile carries too many instances", ErrorCode.TOO_LARGE
                )
            return Reconcile(req_id, _str(msg.get("node"), "node", 256), payloads)
    except RemoteProtocolError as exc:
        raise RequestRejected(exc.code, f"{op}: {exc.message}", req_id, op) from None
    raise RequestRejected(ErrorCode.UNKNOWN_OP, f"unknown op {op!r}", req_id)
