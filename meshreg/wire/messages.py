"""Request messages and their validation.

A request body is one msgpack map.  ``parse_request`` turns untrusted bytes
into one of the frozen request dataclasses below or raises
:class:`RequestRejected`, which carries the wire error code, a message naming
the offending field, and the request id / op when they could be read (so the
error reply can be matched by the caller).  Unknown extra keys are ignored
(forward compatibility); missing optional keys take the documented defaults.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any

import msgpack

from meshreg.errors import ErrorCode, RemoteProtocolError
from meshreg.model import (
    DEFAULT_CLUSTER,
    DEFAULT_GROUP,
    DEFAULT_NAMESPACE,
    InstanceId,
    ServiceKey,
)
from meshreg.wire import limits

# Nacos-compatible name alphabets (ASCII only: names become PUB/SUB topics,
# joined by NUL, so NUL and anything outside these sets must never get in).
_NAME_RE = re.compile(r"[0-9A-Za-z@.:_\-]+\Z")
_CLUSTER_RE = re.compile(r"[0-9A-Za-z_.\-]+\Z")
_ZONE_RE = re.compile(r"[0-9A-Za-z_.\-]{1,64}\Z")
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*\.?\Z"
)


_PEER_HEAD = b"\xa2op\xa9reconcile"  # msgpack of "op": "reconcile"


class RequestRejected(RemoteProtocolError):
    """A request failed validation; the node replies with ``code``."""

    def __init__(
        self, code: ErrorCode, message: str, req_id: int = 0, op: str | None = None
    ) -> None:
        super().__init__(message, code)
        self.req_id = req_id
        self.op = op


@dataclass(frozen=True, slots=True)
class RegisterInstance:
    req_id: int
    key: ServiceKey
    instance: InstanceId
    weight: float
    enabled: bool
    metadata: dict[str, str]
    op = "register"


@dataclass(frozen=True, slots=True)
class DeregisterInstance:
    req_id: int
    key: ServiceKey
    instance: InstanceId
    op = "deregister"


@dataclass(frozen=True, slots=True)
class Beat:
    req_id: int
    key: ServiceKey
    instance: InstanceId
    op = "beat"


@dataclass(frozen=True, slots=True)
class UpdateInstance:
    """An operator's change to a registered instance (drain: enabled=False; weight)."""

    req_id: int
    key: ServiceKey
    instance: InstanceId
    weight: float | None
    enabled: bool | None
    op = "update"


@dataclass(frozen=True, slots=True)
class SetService:
    """Service settings: the protection threshold (Nacos's; 0 turns it off) and metadata.

    A field that is None is left as it is.
    """

    req_id: int
    key: ServiceKey
    protect_threshold: float | None
    metadata: dict[str, str] | None
    op = "service_set"


@dataclass(frozen=True, slots=True)
class QueryInstances:
    req_id: int
    key: ServiceKey
    healthy_only: bool
    op = "instances"


@dataclass(frozen=True, slots=True)
class ListServices:
    """One page of a namespace's services (docs/PROTOCOL.md, ``services``)."""

    req_id: int
    namespace: str
    group: str | None  # None: every group of the namespace
    page_size: int = limits.DEFAULT_SERVICES_PAGE
    after: tuple[str, str] | None = None  # (group, service) from the cursor; None: first page
    op = "services"


@dataclass(frozen=True, slots=True)
class GetStats:
    req_id: int
    op = "stats"


@dataclass(frozen=True, slots=True)
class Ping:
    req_id: int
    op = "ping"


Request = (
    RegisterInstance
    | DeregisterInstance
    | Beat
    | UpdateInstance
    | SetService
    | QueryInstances
    | ListServices
    | GetStats
    | Ping
)

OPS = (
    "register",
    "deregister",
    "beat",
    "update",
    "service_set",
    "instances",
    "services",
    "stats",
    "ping",
    "cluster",
    "digests",
    "reconcile",
)


def decode_body(body: bytes) -> Any:
    """msgpack-decode one body, mapping every decoder failure to MALFORMED."""
    size = len(body)
    # Node-to-node reconciles carry whole services; they put "op" first (our encoder
    # does), so a glance at the head tells them apart before any decoding.
    if size > limits.MAX_BODY_BYTES:
        limit = limits.MAX_PEER_BODY_BYTES if _PEER_HEAD in body[:48] else limits.MAX_BODY_BYTES
    else:
        limit = limits.MAX_BODY_BYTES
    if size > limit:
        raise RequestRejected(
            ErrorCode.TOO_LARGE, f"request body is {size} bytes; the limit is {limit}"
        )
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types; all mean the same here
        raise RequestRejected(
            ErrorCode.MALFORMED, f"body is not one valid msgpack value ({type(exc).__name__})"
        ) from None


def parse_request(body: bytes) -> Request:
    """Validate untrusted ``body`` bytes and return a typed request."""
    return parse_message(decode_body(body))


BeatFields = tuple[int, tuple[str, str, str], tuple[str, int, str]]


def beat_fields(msg: Any) -> BeatFields | None:
    """A well-formed beat's ``(id, (namespace, group, service), (ip, port, cluster))``.

    The heartbeat fast path: the same type and length checks ``parse_message``
    makes for a beat, but plain tuples instead of a request object and two
    NamedTuples (a NamedTuple key hashes and compares equal to the tuple).
    None for anything else, which then takes ``parse_message`` and gets its
    precise error.
    """
    if type(msg) is not dict or msg.get("op") != "beat":
        return None
    req_id = msg.get("id")
    version = msg.get("v")
    if (
        type(req_id) is not int
        or not 0 <= req_id <= limits.MAX_REQUEST_ID
        or type(version) is not int
        or version != limits.PROTOCOL_VERSION
    ):
        return None
    ns = msg.get("namespace")
    if ns is None:
        ns = DEFAULT_NAMESPACE
    group = msg.get("group")
    if group is None:
        group = DEFAULT_GROUP
    service = msg.get("service")
    ip = msg.get("ip")
    port = msg.get("port")
    cluster = msg.get("cluster")
    if cluster is None:
        cluster = DEFAULT_CLUSTER
    if (
        type(ns) is not str
        or type(group) is not str
        or type(service) is not str
        or type(ip) is not str
        or type(port) is not int
        or type(cluster) is not str
        or not 0 < len(ns) <= limits.MAX_NAMESPACE_LEN
        or not 0 < len(group) <= limits.MAX_GROUP_LEN
        or not 0 < len(service) <= limits.MAX_SERVICE_LEN
        or not 0 < len(ip) <= limits.MAX_HOST_LEN
        or not 0 < port < 65536
        or not 0 < len(cluster) <= limits.MAX_CLUSTER_LEN
    ):
        return None
    return req_id, (ns, group, service), (ip, port, cluster)


def parse_message(msg: Any) -> Request:
    """Validate an untrusted decoded body and return a typed request."""
    if not isinstance(msg, dict):
        raise RequestRejected(ErrorCode.MALFORMED, "body must be a msgpack map")
    req_id = msg.get("id")
    if type(req_id) is not int or not 0 <= req_id <= limits.MAX_REQUEST_ID:
        raise RequestRejected(
            ErrorCode.INVALID_ARGUMENT, "field 'id' must be an unsigned 64-bit integer"
        )
    version = msg.get("v")
    if version != limits.PROTOCOL_VERSION or type(version) is not int:
        raise RequestRejected(
            ErrorCode.UNSUPPORTED_VERSION,
            f"protocol version {version!r} is not supported; this node speaks "
            f"v={limits.PROTOCOL_VERSION}",
            req_id,
        )
    op = msg.get("op")
    if op == "beat":  # the hot path: checked first, validated by type and length only
        return Beat(req_id, _beat_key(msg, req_id), _instance_id(msg, req_id, op, False))
    if op == "register":
        return _register(msg, req_id)
    if op == "deregister":
        return DeregisterInstance(
            req_id, _service_key(msg, req_id, op), _instance_id(msg, req_id, op, True)
        )
    if op == "update":
        return _update(msg, req_id)
    if op == "service_set":
        threshold: Any = msg.get("protect_threshold")
        if threshold is not None and (
            type(threshold) not in (int, float) or not 0.0 <= threshold <= 1.0
        ):
            raise _reject(req_id, op, "field 'protect_threshold' must be a number in 0..1")
        service_metadata = msg.get("metadata")
        if service_metadata is not None:
            if not isinstance(service_metadata, dict):
                raise _reject(req_id, op, "field 'metadata' must be a map of string to string")
            validate_metadata(service_metadata, req_id, op)
        if threshold is None and service_metadata is None:
            raise _reject(req_id, op, "give 'protect_threshold' or 'metadata' (or both)")
        return SetService(
            req_id,
            _service_key(msg, req_id, op),
            None if threshold is None else float(threshold),
            service_metadata,
        )
    if op == "instances":
        return QueryInstances(
            req_id, _service_key(msg, req_id, op), _bool(msg, "healthy_only", False, req_id, op)
        )
    if op == "services":
        ns = _name(msg, "namespace", DEFAULT_NAMESPACE, limits.MAX_NAMESPACE_LEN, req_id, op)
        group = None
        if msg.get("group") is not None:
            group = _name(msg, "group", DEFAULT_GROUP, limits.MAX_GROUP_LEN, req_id, op)
        page_size = msg.get("page_size")
        if page_size is None:
            page_size = limits.DEFAULT_SERVICES_PAGE
        elif type(page_size) is not int or not 1 <= page_size <= limits.MAX_SERVICES_PAGE:
            raise _reject(
                req_id, op, f"field 'page_size' must be an integer in 1..{limits.MAX_SERVICES_PAGE}"
            )
        return ListServices(req_id, ns, group, page_size, parse_cursor(msg.get("cursor"), req_id))
    if op == "stats":
        return GetStats(req_id)
    if op == "ping":
        return Ping(req_id)
    if op in ("digests", "reconcile", "cluster"):
        from meshreg.wire.peer import parse_peer_request  # peer ops: rare, kept apart

        return parse_peer_request(op, msg, req_id)  # type: ignore[no-any-return]
    if op is None:
        what = "field 'op' is missing"
    elif not isinstance(op, str):
        what = f"field 'op' must be a string, got {type(op).__name__}"
    else:
        what = f"unknown op {op[:32]!r}"
    raise RequestRejected(ErrorCode.UNKNOWN_OP, f"{what}; known ops: {', '.join(OPS)}", req_id)


def services_cursor(group: str, service: str) -> str:
    """The ``next_cursor`` of a ``services`` page that ended at (group, service).

    Opaque to clients; it names the last service listed (``/`` is outside the
    name alphabet, so it splits unambiguously), and the next page resumes after
    it even if that service is gone by then.
    """
    return f"{group}/{service}"


def parse_cursor(cursor: Any, req_id: int) -> tuple[str, str] | None:
    """A ``services`` cursor (None: the first page) -> (group, service) to resume after."""
    if cursor is None:
        return None
    group, sep, service = cursor.partition("/") if type(cursor) is str else ("", "", "")
    if (
        not sep
        or not 0 < len(group) <= limits.MAX_GROUP_LEN
        or not 0 < len(service) <= limits.MAX_SERVICE_LEN
        or _NAME_RE.match(group) is None
        or _NAME_RE.match(service) is None
    ):
        raise _reject(
            req_id,
            "services",
            "field 'cursor' is not a cursor from a services reply: pass the 'next_cursor' of "
            "the previous page unchanged, or leave it out for the first page",
        )
    return group, service


def _reject(
    req_id: int, op: str, message: str, code: ErrorCode = ErrorCode.INVALID_ARGUMENT
) -> RequestRejected:
    return RequestRejected(code, f"{op}: {message}", req_id, op)


def _name(
    msg: dict[str, Any], field: str, default: str | None, max_len: int, req_id: int, op: str
) -> str:
    value = msg.get(field)
    if value is None:  # nil means absent: take the default
        value = default
    if value is None:
        raise _reject(req_id, op, f"field '{field}' is required")
    if type(value) is not str:
        raise _reject(req_id, op, f"field '{field}' must be a string")
    if not 0 < len(value) <= max_len:
        raise _reject(req_id, op, f"field '{field}' must be 1..{max_len} characters")
    if _NAME_RE.match(value) is None:
        raise _reject(req_id, op, f"field '{field}' may only contain letters, digits and @.:_-")
    return value


def _service_key(msg: dict[str, Any], req_id: int, op: str) -> ServiceKey:
    return ServiceKey(
        _name(msg, "namespace", DEFAULT_NAMESPACE, limits.MAX_NAMESPACE_LEN, req_id, op),
        _name(msg, "group", DEFAULT_GROUP, limits.MAX_GROUP_LEN, req_id, op),
        _name(msg, "service", None, limits.MAX_SERVICE_LEN, req_id, op),
    )


def _beat_key(msg: dict[str, Any], req_id: int) -> ServiceKey:
    """A beat's service key, checked by type and length only.

    A beat only looks a record up; a name outside the alphabet can never match
    a registered one (register checks it fully), so it just gets NOT_FOUND.
    """
    ns = msg.get("namespace")
    if ns is None:
        ns = DEFAULT_NAMESPACE
    group = msg.get("group")
    if group is None:
        group = DEFAULT_GROUP
    service = msg.get("service")
    if (
        type(ns) is not str
        or type(group) is not str
        or type(service) is not str
        or not 0 < len(ns) <= limits.MAX_NAMESPACE_LEN
        or not 0 < len(group) <= limits.MAX_GROUP_LEN
        or not 0 < len(service) <= limits.MAX_SERVICE_LEN
    ):
        return _service_key(msg, req_id, "beat")  # raises, naming the bad field
    return ServiceKey(ns, group, service)


def _instance_id(msg: dict[str, Any], req_id: int, op: str, strict_host: bool) -> InstanceId:
    ip = msg.get("ip")
    if type(ip) is not str or not 0 < len(ip) <= limits.MAX_HOST_LEN:
        raise _reject(
            req_id, op, f"field 'ip' must be a string of 1..{limits.MAX_HOST_LEN} characters"
        )
    if strict_host and not is_valid_host(ip):
        raise _reject(req_id, op, f"field 'ip' {ip!r} is not an IP address or host name")
    port = msg.get("port")
    if type(port) is not int or not 0 < port < 65536:
        raise _reject(req_id, op, "field 'port' must be an integer in 1..65535")
    cluster = msg.get("cluster")
    if cluster is None:
        cluster = DEFAULT_CLUSTER
    if type(cluster) is not str or not 0 < len(cluster) <= limits.MAX_CLUSTER_LEN:
        raise _reject(
            req_id,
            op,
            f"field 'cluster' must be a string of 1..{limits.MAX_CLUSTER_LEN} characters",
        )
    if strict_host and _CLUSTER_RE.match(cluster) is None:
        raise _reject(req_id, op, "field 'cluster' may only contain letters, digits and _.-")
    return InstanceId(ip, port, cluster)


def is_valid_host(host: str) -> bool:
    """True for an IPv4/IPv6 literal or an RFC 1123 host name."""
    if _HOSTNAME_RE.match(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    # ipaddress accepts anything as an IPv6 zone ("fe80::1%<anything>"): allow names only.
    _, sep, zone = host.partition("%")
    return not sep or _ZONE_RE.match(zone) is not None


def _bool(msg: dict[str, Any], field: str, default: bool, req_id: int, op: str) -> bool:
    value = msg.get(field)
    if value is None:
        value = default
    if type(value) is not bool:
        raise _reject(req_id, op, f"field '{field}' must be true or false")
    return value


def _register(msg: dict[str, Any], req_id: int) -> RegisterInstance:
    op = "register"
    key = _service_key(msg, req_id, op)
    iid = _instance_id(msg, req_id, op, True)
    weight = msg.get("weight")
    if weight is None:
        weight = 1.0
    if (
        type(weight) not in (int, float)
        or not math.isfinite(weight)
        or not 0.0 <= weight <= limits.MAX_WEIGHT
    ):
        raise _reject(req_id, op, f"field 'weight' must be a number in 0..{limits.MAX_WEIGHT:g}")
    enabled = _bool(msg, "enabled", True, req_id, op)
    metadata = msg.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        raise _reject(req_id, op, "field 'metadata' must be a map of string to string")
    else:
        validate_metadata(metadata, req_id, op)
    return RegisterInstance(req_id, key, iid, float(weight), enabled, metadata)


def _update(msg: dict[str, Any], req_id: int) -> UpdateInstance:
    op = "update"
    key = _service_key(msg, req_id, op)
    iid = _instance_id(msg, req_id, op, True)
    weight = msg.get("weight")
    if weight is not None and (
        type(weight) not in (int, float)
        or not math.isfinite(weight)
        or not 0.0 <= weight <= limits.MAX_WEIGHT
    ):
        raise _reject(req_id, op, f"field 'weight' must be a number in 0..{limits.MAX_WEIGHT:g}")
    enabled = msg.get("enabled")
    if enabled is not None and type(enabled) is not bool:
        raise _reject(req_id, op, "field 'enabled' must be true or false")
    if weight is None and enabled is None:
        raise _reject(req_id, op, "give 'weight' or 'enabled' (or both)")
    return UpdateInstance(req_id, key, iid, None if weight is None else float(weight), enabled)


def validate_metadata(metadata: dict[Any, Any], req_id: int = 0, op: str = "register") -> None:
    """Check a metadata map against the documented limits."""
    if len(metadata) > limits.MAX_METADATA_ENTRIES:
        raise _reject(
            req_id,
            op,
            f"metadata has {len(metadata)} entries; the limit is {limits.MAX_METADATA_ENTRIES}",
            ErrorCode.TOO_LARGE,
        )
    total = 0
    for k, v in metadata.items():
        if type(k) is not str or type(v) is not str:
            raise _reject(req_id, op, "field 'metadata' must be a map of string to string")
        if not 0 < len(k) <= limits.MAX_METADATA_KEY_LEN:
            raise _reject(
                req_id,
                op,
                f"metadata key must be 1..{limits.MAX_METADATA_KEY_LEN} characters",
                ErrorCode.TOO_LARGE if k else ErrorCode.INVALID_ARGUMENT,
            )
        if len(v) > limits.MAX_METADATA_VALUE_LEN:
            raise _reject(
                req_id,
                op,
                f"metadata value for {k!r} is {len(v)} characters; the limit is "
                f"{limits.MAX_METADATA_VALUE_LEN}",
                ErrorCode.TOO_LARGE,
            )
        total += len(k) + len(v)
    if total > limits.MAX_METADATA_CHARS:
        raise _reject(
            req_id,
            op,
            f"metadata totals {total} characters; the limit is {limits.MAX_METADATA_CHARS}",
            ErrorCode.TOO_LARGE,
        )
