"""Request messages and their validation.

A request body is one msgpack map.  ``parse_request`` turns untrusted bytes
into one of the frozen request dataclasses below or raises
:class:`RequestRejected`, which carries the wire error code, a message naming
the offending field, and the request id / op when they could be read (so the
error reply can be matched by the caller).  Unknown extra keys are ignored
(forward compatibility); missing optional keys take the documented defaults.

Two planes, chosen by the caller, never by the body (the port a body came in
on says which): the client plane (``decode_body(body)`` + ``parse_message``:
``CLIENT_OPS``; a peer operation gets PERMISSION_DENIED) and the peer plane
(``decode_body(body, limits.MAX_PEER_BODY_BYTES)`` + wire/peer's ``parse_peer_message``:
``PEER_OPS`` plus the writes a node forwards, ``FORWARDED_OPS``).  The name,
host and metadata checks below are shared by both planes and by the peer
messages of ``wire/peer``: a name a client may not send, a peer may not either.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Any

import msgpack

from meshreg.core.requests import (  # the core's request types: parsed into here
    Beat,
    CheckRevisions,
    DeregisterInstance,
    EntryRejected,
    GetCluster,
    GetStats,
    ListNamespaces,
    ListServices,
    Ping,
    QueryInstances,
    RegisterBatch,
    RegisterInstance,
    Request,
    SessionClose,
    SessionOpen,
    SessionRenew,
    SetService,
    UpdateInstance,
    services_cursor,
)
from meshreg.errors import ErrorCode, RemoteProtocolError, RequestRejected
from meshreg.model import (
    DEFAULT_CLUSTER,
    DEFAULT_GROUP,
    DEFAULT_NAMESPACE,
    InstanceId,
    ServiceKey,
)
from meshreg.wire import limits
from meshreg.wire.bodies import _decode_error as _decode_error  # re-exported (wire/peer)
from meshreg.wire.bodies import _header as _header
from meshreg.wire.bodies import not_utf8_error, shown
from meshreg.wire.config_messages import CONFIG_OPS, parse_config_message
from meshreg.wire.limits import MAX_STAMP

# Nacos-compatible name alphabets (ASCII only: names become PUB/SUB topics,
# joined by NUL, so NUL and anything outside these sets must never get in).
# re-exported: the request types lived here before they moved to core/requests
__all__ = ["Beat", "DeregisterInstance", "GetCluster", "GetStats", "ListServices", "Ping"]
__all__ += ["QueryInstances", "RegisterInstance", "Request", "RequestRejected", "SessionClose"]
__all__ += ["CheckRevisions", "EntryRejected", "ListNamespaces", "RegisterBatch"]
__all__ += ["SessionOpen", "SessionRenew", "SetService", "UpdateInstance", "services_cursor"]

_NAME_RE = re.compile(r"[0-9A-Za-z@.:_\-]+\Z")
_CLUSTER_RE = re.compile(r"[0-9A-Za-z_.\-]+\Z")
_ZONE_RE = re.compile(r"[0-9A-Za-z_.\-]{1,64}\Z")
_SESSION_RE = re.compile(r"[0-9a-f]{32}\Z")
# Dotted quads: a subset of what _HOSTNAME_RE accepts (labels of digits), tried first
# because it is the common case and about 0.4 us cheaper to match.
_IPV4_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}\Z")
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*\.?\Z"
)


REGISTRY_OPS = (
    "register",
    "deregister",
    "beat",
    "update",
    "service_set",
    "instances",
    "revisions",
    "services",
    "namespaces",
    "stats",
    "ping",
    "cluster",
    "session_open",
    "session_renew",
    "session_close",
    "register_batch",
)
# CONFIG_OPS (wire/config_messages): the configuration center's, served by
# runtime/config_plane (the runtime routes them there before the registry's core sees them).
CLIENT_OPS = REGISTRY_OPS + CONFIG_OPS
PEER_OPS = ("digests", "reconcile", "sessions", "join", "beacon")  # node to node only (wire/peer)
FORWARDED_OPS = ("register", "deregister", "beat", "update", "service_set", "register_batch")
OPS = CLIENT_OPS  # the ops a client may send
PEER_PLANE_OPS = PEER_OPS + FORWARDED_OPS  # what a node accepts from a peer


def decode_body(body: bytes, max_bytes: int = limits.MAX_BODY_BYTES) -> Any:
    """msgpack-decode one body of at most ``max_bytes``, bounded in structure.

    The caller says which plane the body came from: ``limits.MAX_BODY_BYTES``
    (clients, the default) or ``limits.MAX_PEER_BODY_BYTES`` (peers).  The size
    is checked before any decoding, and the decoder itself bounds every string,
    array and map and the nesting depth (``unpack_bounded``), so no body expands
    beyond its limits before validation.  A decoder failure is MALFORMED, a value
    beyond a structural limit TOO_LARGE.
    """
    size = len(body)
    if size > max_bytes:
        raise RequestRejected(
            ErrorCode.TOO_LARGE, f"request body is {size} bytes; the limit is {max_bytes}"
        )
    try:
        if max_bytes <= _MAX_BODY:  # the client plane (every beat): inline
            # strings, bins and exts: msgpack bounds them by len(body) (its default)
            return _unpackb(
                body,
                raw=False,
                strict_map_key=True,
                max_map_len=_MAX_MAP,
                max_array_len=_MAX_ARRAY,
            )
        return unpack_peer(body)
    except Exception as exc:
        if not size:
            raise RequestRejected(
                ErrorCode.MALFORMED, "the body frame is empty: a request is one msgpack map"
            ) from None
        if isinstance(exc, UnicodeDecodeError) and max_bytes <= _MAX_BODY:
            raise not_utf8_error(body) from None
        raise _decode_error(exc) from None


_PEER_DECODE: dict[str, Any] = {  # the peer plane's decoder limits (see unpack_peer)
    "raw": False,
    "strict_map_key": True,
    "max_str_len": limits.MAX_STR_BYTES,
    "max_bin_len": limits.MAX_STR_BYTES,
    "max_ext_len": limits.MAX_STR_BYTES,
    "max_map_len": limits.MAX_MAP_ENTRIES,
    "max_array_len": limits.MAX_PEER_ENTRIES,
}


def unpack_peer(body: bytes) -> Any:
    """``msgpack.unpackb`` with the peer plane's structural limits (``decode_body``):
    strings ``MAX_STR_BYTES``, maps ``MAX_MAP_ENTRIES``, arrays ``MAX_PEER_ENTRIES``,
    at most ``MAX_PEER_CONTAINERS`` maps and arrays in all (counted as they are built,
    so decoding stops there), nesting ``MAX_NESTING``.

    Raises RequestRejected: TOO_LARGE beyond a limit, MALFORMED otherwise.
    """
    if len(body) <= limits.MAX_PEER_CONTAINERS:
        # Each map or array takes at least one byte: a body this short cannot hold more
        # than the limit, so it is decoded without counting (a Python call per map and
        # array: ~0.7 us per replicated instance; a batch of deltas is at most 256 KiB).
        try:
            return _unpackb(body, **_PEER_DECODE)
        except Exception as exc:
            raise _decode_error(exc) from None
    left = limits.MAX_PEER_CONTAINERS

    def count(value: Any) -> Any:  # up to 8 MiB: count maps and arrays as they are built
        nonlocal left
        left -= 1
        if left < 0:
            raise RemoteProtocolError(
                f"body holds more than {limits.MAX_PEER_CONTAINERS} maps and arrays",
                ErrorCode.TOO_LARGE,
            )
        return value

    try:
        return _unpackb(body, **_PEER_DECODE, object_hook=count, list_hook=count)
    except Exception as exc:
        raise _decode_error(exc) from None


_unpackb = msgpack.unpackb
# the client plane's limits as module globals (one lookup each on the beat path)
_MAX_BODY, _MAX_MAP, _MAX_ARRAY = (
    limits.MAX_BODY_BYTES,
    limits.MAX_MAP_ENTRIES,
    limits.MAX_ARRAY_LEN,
)


def _malformed(exc: Exception) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"body is not one valid msgpack value ({type(exc).__name__})", ErrorCode.MALFORMED
    )


def parse_request(body: bytes) -> Request:
    """Validate untrusted ``body`` bytes from a client and return a typed request."""
    return parse_message(decode_body(body))


BeatFields = tuple[int, tuple[str, str, str], tuple[str, int, str]]


_MAX_ID, _V = limits.MAX_REQUEST_ID, limits.PROTOCOL_VERSION  # module globals: one lookup each
_MAX_NS, _MAX_GROUP, _MAX_SERVICE = (
    limits.MAX_NAMESPACE_LEN,
    limits.MAX_GROUP_LEN,
    limits.MAX_SERVICE_LEN,
)
_MAX_HOST, _MAX_CLUSTER = limits.MAX_HOST_LEN, limits.MAX_CLUSTER_LEN


def beat_fields(msg: Any) -> BeatFields | None:
    """A well-formed beat's ``(id, (namespace, group, service), (ip, port, cluster))``.

    The heartbeat fast path: the same type and length checks ``parse_message``
    makes for a beat, but plain tuples instead of a request object and two
    NamedTuples (a NamedTuple key hashes and compares equal to the tuple).
    None for anything else, which then takes ``parse_message`` and gets its
    precise error.  (Required fields by subscript, a missing one is None here:
    cheaper per beat than ``dict.get``; limits as module globals.)
    """
    if type(msg) is not dict:
        return None
    try:
        if msg["op"] != "beat":
            return None
        req_id = msg["id"]
        version = msg["v"]
        service = msg["service"]
        ip = msg["ip"]
        port = msg["port"]
    except KeyError:
        return None
    if (
        type(req_id) is not int
        or not 0 <= req_id <= _MAX_ID
        or type(version) is not int
        or version != _V
    ):
        return None
    ns = msg.get("namespace")
    if ns is None:
        ns = DEFAULT_NAMESPACE
    group = msg.get("group")
    if group is None:
        group = DEFAULT_GROUP
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
        or not 0 < len(ns) <= _MAX_NS
        or not 0 < len(group) <= _MAX_GROUP
        or not 0 < len(service) <= _MAX_SERVICE
        or not 0 < len(ip) <= _MAX_HOST
        or not 0 < port < 65536
        or not 0 < len(cluster) <= _MAX_CLUSTER
    ):
        return None
    return req_id, (ns, group, service), (ip, port, cluster)


def parse_message(msg: Any) -> Request:
    """Validate an untrusted decoded body from a client and return a typed request.

    Only ``CLIENT_OPS``: a peer operation gets PERMISSION_DENIED (peers use
    their own port and ``parse_peer_message``).
    """
    req_id = _header(msg)
    return _client_op(msg, req_id, msg.get("op"))


def _unknown_op(op: Any, req_id: int, known: tuple[str, ...], where: str = "") -> RequestRejected:
    if op is None:
        what = "field 'op' is missing"
    elif not isinstance(op, str):
        what = f"field 'op' must be a string, got {type(op).__name__}"
    else:
        what = f"unknown op {op[:24]!r}{where}"
    return RequestRejected(ErrorCode.UNKNOWN_OP, f"{what}; known ops: {', '.join(known)}", req_id)


def _client_op(msg: dict[str, Any], req_id: int, op: Any) -> Request:
    if op == "beat":  # the hot path: checked first, validated by type and length only
        return Beat(req_id, _beat_key(msg, req_id), _instance_id(msg, req_id, op, False))
    if op == "register":
        return _register(msg, req_id)
    if op == "register_batch":
        return _register_batch(msg, req_id)
    if op == "deregister":
        return DeregisterInstance(
            req_id,
            _service_key(msg, req_id, op),
            _instance_id(msg, req_id, op, True),
            _deadline(msg, req_id, op),
            _after(msg, req_id, op),
        )
    if op == "update":
        return _update(msg, req_id)
    if op == "service_set":
        threshold: Any = msg.get("protect_threshold")
        if threshold is not None:
            try:
                threshold = check_threshold(threshold)
            except RemoteProtocolError as exc:
                raise _reject(req_id, op, exc.message) from None
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
            threshold,
            service_metadata,
            _deadline(msg, req_id, op),
        )
    if op == "instances":
        return QueryInstances(
            req_id, _service_key(msg, req_id, op), _bool(msg, "healthy_only", False, req_id, op)
        )
    if op == "revisions":
        return _revisions(msg, req_id)
    if op == "services":
        ns = _name(msg, "namespace", DEFAULT_NAMESPACE, limits.MAX_NAMESPACE_LEN, req_id, op)
        group = None
        if msg.get("group") is not None:
            group = _name(msg, "group", DEFAULT_GROUP, limits.MAX_GROUP_LEN, req_id, op)
        page_size = _page_size(
            msg, limits.DEFAULT_SERVICES_PAGE, limits.MAX_SERVICES_PAGE, req_id, op
        )
        cursor = msg.get("cursor")
        if type(cursor) is str and cursor.startswith("~"):  # sealed (meshreg/security/cursors)
            if len(cursor) > MAX_SEALED_CURSOR or _SEALED_RE.fullmatch(cursor) is None:
                raise _reject(req_id, op, _NOT_A_CURSOR)
            return ListServices(req_id, ns, group, page_size, None, cursor)
        return ListServices(req_id, ns, group, page_size, parse_cursor(cursor, req_id))
    if op == "namespaces":
        return _namespaces(msg, req_id)
    if op == "stats":
        return GetStats(req_id)
    if op == "ping":
        return Ping(req_id)
    if op == "cluster":
        return GetCluster(req_id)
    if op == "session_open" or op == "session_renew" or op == "session_close":
        return _session_op(msg, req_id, op)
    if op in CONFIG_OPS:
        return parse_config_message(msg)  # type: ignore[return-value]
    if op in PEER_OPS:
        raise RequestRejected(
            ErrorCode.PERMISSION_DENIED,
            f"peer operation {op!r} is not accepted on the client port",
            req_id,
            op,
        )
    raise _unknown_op(op, req_id, REGISTRY_OPS + ("config_*",))  # short: 11 config ops


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
        raise _reject(req_id, "services", _NOT_A_CURSOR)
    return group, service


_NOT_A_CURSOR = (
    "field 'cursor' is not a cursor from a services reply: pass the 'next_cursor' of "
    "the previous page unchanged, or leave it out for the first page"
)
# a sealed cursor: "~" and base64url (nonce, a group/service name, tag)
MAX_SEALED_CURSOR = 1 + (12 + limits.MAX_GROUP_LEN + 1 + limits.MAX_SERVICE_LEN + 16) * 4 // 3 + 4
_SEALED_RE = re.compile(r"~[A-Za-z0-9_-]+")


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
    try:
        return check_name(value, field, max_len)
    except RemoteProtocolError as exc:
        raise _reject(req_id, op, exc.message, exc.code) from None


def _invalid(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, ErrorCode.INVALID_ARGUMENT)


# -- checks shared by every plane (client requests, forwarded writes, peer messages) --------
_GOOD_NAMES: dict[tuple[str, int], bool] = {}  # names that passed, by max length: a bulk
# registration repeats a few services many times (bounded: cleared at _GOOD_NAMES_MAX)
_GOOD_NAMES_MAX = 4096


# cluster names and session ids that passed (bounded like _GOOD_NAMES): every replicated
# or registered instance names one, and a node holds few distinct ones
_GOOD_CLUSTERS: set[str] = set()
_GOOD_SESSIONS: set[str] = set()


def _remember(good: set[str], value: str) -> None:
    if len(good) >= _GOOD_NAMES_MAX:
        good.clear()
    good.add(value)


def check_name(value: Any, field: str, max_len: int) -> str:
    """A namespace, group or service name; raises RemoteProtocolError naming ``field``."""
    if type(value) is str and (value, max_len) in _GOOD_NAMES:
        return value
    if type(value) is not str:
        if value is None:
            raise _invalid(f"field '{field}' is required (a string of 1..{max_len} characters)")
        raise _invalid(f"field '{field}' must be a string")
    if not 0 < len(value) <= max_len:
        raise _invalid(f"field '{field}' must be 1..{max_len} characters")
    if _NAME_RE.match(value) is None:
        raise _invalid(f"field '{field}' may only contain letters, digits and @.:_-")
    if len(_GOOD_NAMES) >= _GOOD_NAMES_MAX:
        _GOOD_NAMES.clear()
    _GOOD_NAMES[value, max_len] = True
    return value


def check_key(namespace: Any, group: Any, service: Any) -> ServiceKey:
    """A service key whose three names pass ``check_name`` (no defaults)."""
    return ServiceKey(
        check_name(namespace, "namespace", limits.MAX_NAMESPACE_LEN),
        check_name(group, "group", limits.MAX_GROUP_LEN),
        check_name(service, "service", limits.MAX_SERVICE_LEN),
    )


def check_instance_id(ip: Any, port: Any, cluster: Any, strict: bool = True) -> InstanceId:
    """An instance id; ``strict`` False checks types and lengths only (a beat: it
    only looks a record up, and no record has a name outside the alphabets)."""
    if type(ip) is not str or not 0 < len(ip) <= limits.MAX_HOST_LEN:
        raise _invalid(f"field 'ip' must be a string of 1..{limits.MAX_HOST_LEN} characters")
    if strict and not is_valid_host(ip):
        raise _invalid(f"field 'ip' {ip!r} is not an IP address or host name")
    if type(port) is not int or not 0 < port < 65536:
        raise _invalid("field 'port' must be an integer in 1..65535")
    if type(cluster) is not str or not 0 < len(cluster) <= limits.MAX_CLUSTER_LEN:
        raise _invalid(
            f"field 'cluster' must be a string of 1..{limits.MAX_CLUSTER_LEN} characters"
        )
    if strict and cluster not in _GOOD_CLUSTERS:
        if _CLUSTER_RE.match(cluster) is None:
            raise _invalid("field 'cluster' may only contain letters, digits and _.-")
        _remember(_GOOD_CLUSTERS, cluster)
    return InstanceId(ip, port, cluster)


def check_weight(weight: Any) -> float:
    if (
        type(weight) not in (int, float)
        or not math.isfinite(weight)
        or not 0.0 <= weight <= limits.MAX_WEIGHT
    ):
        raise _invalid(f"field 'weight' must be a number in 0..{limits.MAX_WEIGHT:g}")
    return float(weight)


def check_threshold(value: Any) -> float:
    """A service's protection threshold: a number in 0..1 (0 turns protection off)."""
    if type(value) not in (int, float) or not 0.0 <= value <= 1.0:
        raise _invalid("field 'protect_threshold' must be a number in 0..1")
    return float(value)


def check_node_id(value: Any, field: str = "node") -> str:
    """A node id (``--node-id``, default host:port): printable, no control characters."""
    if type(value) is not str or not 0 < len(value) <= limits.MAX_NODE_ID_LEN:
        raise _invalid(f"{field} must be a string of 1..{limits.MAX_NODE_ID_LEN} characters")
    if not value.isprintable():
        raise _invalid(f"{field} {value[:64]!r} contains control characters")
    return value


def check_address(value: Any, field: str = "address") -> str:
    """A node address ``host:port`` (an IPv6 host with or without brackets)."""
    if type(value) is not str or not 0 < len(value) <= limits.MAX_ADDRESS_LEN:
        raise _invalid(f"{field} must be a string of 1..{limits.MAX_ADDRESS_LEN} characters")
    host, _, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not (port.isdigit() and port.isascii() and 0 < int(port) < 65536 and is_valid_host(host)):
        raise _invalid(f"{field} {value[:64]!r} is not host:port")
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
    cluster = msg.get("cluster")
    if cluster is None:
        cluster = DEFAULT_CLUSTER
    try:
        return check_instance_id(msg.get("ip"), msg.get("port"), cluster, strict_host)
    except RemoteProtocolError as exc:
        raise _reject(req_id, op, exc.message, exc.code) from None


def is_valid_host(host: str) -> bool:
    """True for an IPv4/IPv6 literal or an RFC 1123 host name."""
    if _IPV4_RE.match(host) or _HOSTNAME_RE.match(host):
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


def _weight(msg: dict[str, Any], req_id: int, op: str) -> float | None:
    """The 'weight' field, checked; None when absent."""
    weight = msg.get("weight")
    if weight is None:
        return None
    try:
        return check_weight(weight)
    except RemoteProtocolError as exc:
        raise _reject(req_id, op, exc.message, exc.code) from None


def _register(msg: dict[str, Any], req_id: int) -> RegisterInstance:
    op = "register"
    key = _service_key(msg, req_id, op)
    iid = _instance_id(msg, req_id, op, True)
    weight = _weight(msg, req_id, op)
    enabled = _bool(msg, "enabled", True, req_id, op)
    metadata = msg.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        raise _reject(req_id, op, "field 'metadata' must be a map of string to string")
    else:
        validate_metadata(metadata, req_id, op)
    session = msg.get("session")
    if session is not None:
        session = _session_id(session, req_id, op)
    return RegisterInstance(
        req_id,
        key,
        iid,
        1.0 if weight is None else weight,
        enabled,
        metadata,
        session,
        _deadline(msg, req_id, op),
        _after(msg, req_id, op),
    )


def _after(msg: dict[str, Any], req_id: int, op: str) -> int | None:
    """The optional ``after`` of a register or deregister: the stamp the client was told
    for its previous write of the instance (PROTOCOL.md 2.1, "After"), opaque."""
    after = msg.get("after")
    if after is None:
        return None
    if type(after) is not int or not 0 <= after <= MAX_STAMP:
        raise _reject(
            req_id,
            op,
            "field 'after' must be the integer 'stamp' of an earlier write's result "
            f"(0 <= after < 2**63), got {str(after)[:32]}",
        )
    return after


MAX_DEADLINE_MS = 2**53  # a JSON/JavaScript number keeps every integer below it


def _deadline(msg: dict[str, Any], req_id: int, op: str) -> float | None:
    """The optional ``deadline`` of a registry write: the client's wall clock, in
    milliseconds since the Unix epoch, after which the write is void (PROTOCOL.md 2.1,
    "Deadline")."""
    deadline = msg.get("deadline")
    if deadline is None:
        return None
    if type(deadline) is not int or not 0 < deadline < MAX_DEADLINE_MS:
        raise _reject(
            req_id,
            op,
            "field 'deadline' must be an integer of milliseconds since the Unix epoch "
            f"(0 < deadline < 2^53), got {shown(deadline)}",
        )
    return deadline / 1000.0


BATCH_ENTRY_FIELDS = ("group", "service", "ip", "port", "cluster", "weight", "enabled")


def _register_batch(msg: dict[str, Any], req_id: int) -> RegisterBatch:
    """``register_batch``: the envelope (namespace, the ``instances`` array) is checked
    whole; each entry alone, with ``register``'s rules: an entry that fails becomes an
    ``EntryRejected`` (its per-entry result), and the others still apply."""
    op = "register_batch"
    ns = _name(msg, "namespace", DEFAULT_NAMESPACE, limits.MAX_NAMESPACE_LEN, req_id, op)
    items = msg.get("instances")
    if type(items) is not list:
        raise _reject(req_id, op, "field 'instances' must be an array of instance maps")
    if not items:
        raise _reject(req_id, op, "field 'instances' is empty; give 1 or more instances")
    if len(items) > limits.MAX_BATCH_REGISTER:
        raise _reject(
            req_id,
            op,
            f"field 'instances' has {len(items)} entries; the limit is "
            f"{limits.MAX_BATCH_REGISTER}: split the batch",
            ErrorCode.TOO_LARGE,
        )
    deadline = msg.get("deadline")  # the batch's: every entry's (checked with each)
    return RegisterBatch(
        req_id,
        ns,
        tuple(_batch_entry(e, ns, req_id, i, deadline) for i, e in enumerate(items)),
    )


def _revisions(msg: dict[str, Any], req_id: int) -> CheckRevisions:
    """``revisions``: the namespace, the views' epoch and the entries, each checked whole
    (one bad entry refuses the request, naming it: it is a client's bug, not data)."""
    op = "revisions"
    ns = _name(msg, "namespace", DEFAULT_NAMESPACE, limits.MAX_NAMESPACE_LEN, req_id, op)
    epoch = msg.get("epoch")
    if type(epoch) is not int or not 0 <= epoch <= MAX_STAMP:
        raise _reject(req_id, op, "field 'epoch' must be an integer in 0..2^63-1 (the views')")
    items = msg.get("services")
    if type(items) is not list:
        raise _reject(
            req_id, op, "field 'services' must be an array of [group, service, revision, held]"
        )
    if len(items) > limits.MAX_REVISIONS_CHECK:
        raise _reject(
            req_id,
            op,
            f"field 'services' has {len(items)} entries; the limit is "
            f"{limits.MAX_REVISIONS_CHECK}: split the check",
            ErrorCode.TOO_LARGE,
        )
    entries = []
    for i, e in enumerate(items):
        if (
            type(e) is not list
            or len(e) != 4
            or type(e[2]) is not int
            or not 0 <= e[2] <= MAX_STAMP
            or type(e[3]) is not bool
        ):
            raise _reject(
                req_id,
                op,
                f"services[{i}] must be [group, service, revision, held]: two names, an "
                "integer in 0..2^63-1 and true or false",
            )
        try:
            group = check_name(e[0], "group", limits.MAX_GROUP_LEN)
            service = check_name(e[1], "service", limits.MAX_SERVICE_LEN)
        except RemoteProtocolError as exc:
            raise _reject(req_id, op, f"services[{i}]: {exc.message}") from None
        entries.append((group, service, e[2], e[3]))
    return CheckRevisions(req_id, ns, epoch, tuple(entries))


def _namespaces(msg: dict[str, Any], req_id: int) -> ListNamespaces:
    """``namespaces``: ``after`` (a namespace name, or absent: the first page) and
    ``page_size``."""
    op = "namespaces"
    after = ""
    if msg.get("after") is not None:
        after = _name(msg, "after", "", limits.MAX_NAMESPACE_LEN, req_id, op)
    size = _page_size(msg, limits.DEFAULT_NAMESPACES_PAGE, limits.MAX_NAMESPACES_PAGE, req_id, op)
    return ListNamespaces(req_id, after, size)


def _page_size(msg: dict[str, Any], default: int, most: int, req_id: int, op: str) -> int:
    page_size = msg.get("page_size")
    if page_size is None:
        return default
    if type(page_size) is not int or not 1 <= page_size <= most:
        raise _reject(req_id, op, f"field 'page_size' must be an integer in 1..{most}")
    return page_size


def _batch_entry(
    entry: Any, ns: str, req_id: int, index: int, deadline: Any = None
) -> RegisterInstance | EntryRejected:
    where = f"register_batch: instances[{index}]"
    if type(entry) is not dict:
        return EntryRejected(ErrorCode.INVALID_ARGUMENT, f"{where} must be a map")
    own = entry.get("namespace")
    if own is not None and own != ns:
        return EntryRejected(
            ErrorCode.INVALID_ARGUMENT,
            f"{where}: field 'namespace' differs from the batch's {ns!r}; a batch registers "
            "in one namespace: leave it out, or send one batch per namespace",
        )
    entry["namespace"] = ns  # the decoded entry is ours: no copy per entry
    if deadline is not None:
        entry["deadline"] = deadline
    elif "deadline" in entry:
        del entry["deadline"]  # an entry's own is not a field of register_batch
    try:
        return _register(entry, req_id)
    except RequestRejected as exc:
        return EntryRejected(exc.code, f"{where}: {exc.message.removeprefix('register: ')}")


def encode_batch_entry(reg: RegisterInstance) -> dict[str, Any]:
    """An accepted entry as it goes on the wire again (a node forwarding part of a batch)."""
    key, iid = reg.key, reg.instance
    entry: dict[str, Any] = {
        "group": key.group,
        "service": key.service,
        "ip": iid.ip,
        "port": iid.port,
        "cluster": iid.cluster,
        "weight": reg.weight,
        "enabled": reg.enabled,
        "metadata": reg.metadata,
    }
    if reg.session is not None:
        entry["session"] = reg.session
    if reg.after is not None:  # (the owner stamps it above: PROTOCOL.md 2.1 "After")
        entry["after"] = reg.after
    return entry


def check_register_fields(fields: dict[str, Any]) -> RegisterInstance:
    """A ``register``'s fields as a client holds them, checked with the node's rules
    without encoding them first (a bulk registration checks each instance); raises
    RequestRejected.  Only plain types pass (``str``, ``int``, ``float``, ``bool``,
    ``dict``): what msgpack encodes as they are."""
    return _register(fields, 0)


def check_session_id(value: Any) -> str:
    """A session id: 32 lowercase hex digits (128 bits, e.g. ``secrets.token_hex(16)``)."""
    if type(value) is str and value in _GOOD_SESSIONS:
        return value
    if type(value) is not str or _SESSION_RE.match(value) is None:
        raise _invalid(
            "field 'session' must be a session id: 32 lowercase hex digits (128 random "
            "bits, e.g. secrets.token_hex(16)), or leave it out of session_open to have "
            "the node choose one"
        )
    _remember(_GOOD_SESSIONS, value)
    return value


def _session_id(value: Any, req_id: int, op: str) -> str:
    try:
        return check_session_id(value)
    except RemoteProtocolError as exc:
        raise _reject(req_id, op, exc.message, exc.code) from None


def _session_op(
    msg: dict[str, Any], req_id: int, op: str
) -> SessionOpen | SessionRenew | SessionClose:
    ns = _name(msg, "namespace", DEFAULT_NAMESPACE, limits.MAX_NAMESPACE_LEN, req_id, op)
    session = msg.get("session")
    if op == "session_open":
        return SessionOpen(
            req_id, ns, None if session is None else _session_id(session, req_id, op)
        )
    if session is None:
        raise _reject(req_id, op, "field 'session' is required (the id session_open returned)")
    sid = _session_id(session, req_id, op)
    if op == "session_renew":
        listed = msg.get("list", False)
        if type(listed) is not bool:
            raise _reject(req_id, op, "field 'list' must be true or false")
        return SessionRenew(req_id, ns, sid, listed)
    return SessionClose(req_id, ns, sid, _deadline(msg, req_id, op))


def _update(msg: dict[str, Any], req_id: int) -> UpdateInstance:
    op = "update"
    key = _service_key(msg, req_id, op)
    iid = _instance_id(msg, req_id, op, True)
    weight = _weight(msg, req_id, op)
    enabled = msg.get("enabled")
    if enabled is not None and type(enabled) is not bool:
        raise _reject(req_id, op, "field 'enabled' must be true or false")
    clear = msg.get("clear", False)
    if type(clear) is not bool:
        raise _reject(
            req_id, op, "field 'clear' must be true or false (true: drop the operator override)"
        )
    if clear and (weight is not None or enabled is not None):
        raise _reject(
            req_id,
            op,
            "field 'clear' drops the override: give it alone, without 'weight' or 'enabled'",
        )
    if weight is None and enabled is None and not clear:
        raise _reject(req_id, op, "give 'weight' or 'enabled' (or both), or 'clear': true")
    return UpdateInstance(req_id, key, iid, weight, enabled, _deadline(msg, req_id, op), clear)


def validate_metadata(metadata: dict[Any, Any], req_id: int = 0, op: str = "register") -> None:
    """Check a client's metadata map against the documented limits (``check_metadata``)."""
    try:
        check_metadata(metadata)
    except RemoteProtocolError as exc:
        raise _reject(req_id, op, exc.message, exc.code) from None


def check_metadata(metadata: Any) -> dict[str, str]:
    """A metadata map within the documented limits; raises RemoteProtocolError."""
    if not isinstance(metadata, dict):
        raise _invalid("field 'metadata' must be a map of string to string")
    if len(metadata) > limits.MAX_METADATA_ENTRIES:
        raise RemoteProtocolError(
            f"metadata has {len(metadata)} entries; the limit is {limits.MAX_METADATA_ENTRIES}",
            ErrorCode.TOO_LARGE,
        )
    total = 0
    for k, v in metadata.items():
        if type(k) is not str or type(v) is not str:
            raise _invalid("field 'metadata' must be a map of string to string")
        if not 0 < len(k) <= limits.MAX_METADATA_KEY_LEN:
            raise RemoteProtocolError(
                f"metadata key must be 1..{limits.MAX_METADATA_KEY_LEN} characters",
                ErrorCode.TOO_LARGE if k else ErrorCode.INVALID_ARGUMENT,
            )
        if len(v) > limits.MAX_METADATA_VALUE_LEN:
            raise RemoteProtocolError(
                f"metadata value for {k[:32]!r} is {len(v)} characters; the limit is "
                f"{limits.MAX_METADATA_VALUE_LEN}",
                ErrorCode.TOO_LARGE,
            )
        total += len(k) + len(v)
    if total > limits.MAX_METADATA_CHARS:
        raise RemoteProtocolError(
            f"metadata totals {total} characters; the limit is {limits.MAX_METADATA_CHARS}",
            ErrorCode.TOO_LARGE,
        )
    return metadata
