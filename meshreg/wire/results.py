"""Checks on the replies a client consumes: results are untrusted input too.

A node of another version, a proxy, or something that is not a meshreg node at all
may answer with anything.  The client checks every result it acts on before it
touches it, so a bad answer becomes one clear :class:`RemoteProtocolError` naming
the field, never a ``TypeError`` deep in the client (or a dead I/O thread).

The checks are on types and shapes, not on the request limits: a newer node may
allow longer names or more metadata, and a client should still read its answers.
Keys a check does not know are allowed (documented as "new keys may appear").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from meshreg.addresses import split_node_address
from meshreg.errors import ConfigError, RemoteProtocolError
from meshreg.wire import limits

MAX_MEMBERS = 1024  # members in a ``cluster`` reply (a cluster of more is not supported)
MAX_ID_LEN = 256  # chars; a member id (peers accept the same, wire/peer.py)
MAX_ADDRESS_LEN = limits.MAX_HOST_LEN + 8  # chars; "[host]:port"


def _bad(what: str) -> RemoteProtocolError:
    return RemoteProtocolError(what)


def _map(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"{what} is {_kind(value)}, not a map")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _bad(f"{what} is {_kind(value)}, not a list")
    return value


def _str(value: Any, what: str, max_len: int = limits.MAX_SERVICE_LEN, empty: bool = False) -> str:
    if type(value) is not str or len(value) > max_len or (not value and not empty):
        raise _bad(f"{what} must be a string of {0 if empty else 1}..{max_len} characters")
    return value


def _int(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise _bad(f"{what} must be an unsigned integer")
    return value


def _number(value: Any, what: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise _bad(f"{what} must be a finite number")
    return float(value)


def _bool(value: Any, what: str) -> bool:
    if type(value) is not bool:
        raise _bad(f"{what} must be true or false")
    return value


def _str_map(value: Any, what: str) -> dict[str, str]:
    m = _map(value, what)
    if not all(type(k) is str and type(v) is str for k, v in m.items()):
        raise _bad(f"{what} must map strings to strings")
    return m


def _optional(m: dict[str, Any], key: str, check: Callable[[Any, str], Any], what: str) -> None:
    """Check ``m[key]`` unless it is absent or nil."""
    if m.get(key) is not None:
        check(m[key], what)


def _kind(value: Any) -> str:
    return "nil" if value is None else f"a {type(value).__name__}"


def split_address(text: Any, what: str = "address") -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` from a node -> (host, port); a bare IPv6 host
    (``::1:7800``, as nodes print their peers) splits at the last colon."""
    _str(text, what, MAX_ADDRESS_LEN)
    try:
        host, port = split_node_address(text)
    except ConfigError:
        raise _bad(f"{what} {text!r} is not host:port") from None
    if any(not c.isprintable() or c.isspace() or c in "/[]" for c in host):
        raise _bad(f"{what} {text!r} has a character no host name has")
    return host, port


def check_instance(d: Any, what: str = "instance") -> dict[str, Any]:
    """An instance map (replies, notifications, the disk cache): the fields
    :meth:`meshreg.model.Instance.from_wire` reads, with their types."""
    m = _map(d, what)
    _str(m.get("ip"), f"{what} ip", limits.MAX_HOST_LEN)
    port = m.get("port")
    if type(port) is not int or not 0 < port < 65536:
        raise _bad(f"{what} port must be an integer in 1..65535")
    if "cluster" in m:
        _str(m["cluster"], f"{what} cluster", limits.MAX_CLUSTER_LEN)
    if "weight" in m:
        _number(m["weight"], f"{what} weight")
    for flag in ("enabled", "healthy"):
        if flag in m:
            _bool(m[flag], f"{what} {flag}")
    _optional(m, "metadata", _str_map, f"{what} metadata")
    return m


def check_instances(result: Any) -> dict[str, Any]:
    r = _map(result, "the result")
    _int(r.get("revision"), "revision")
    _optional(r, "epoch", _int, "epoch")
    for i, d in enumerate(_list(r.get("instances"), "instances")):
        check_instance(d, f"instances[{i}]")
    if "protected" in r:
        _bool(r["protected"], "protected")
    _optional(r, "uptime", _number, "uptime")
    _optional(r, "synced", _bool, "synced")
    _optional(r, "table_age", _number, "table_age")
    return _check_settings(r)


def _check_settings(m: dict[str, Any]) -> dict[str, Any]:
    """A service's settings, in a snapshot or a delta."""
    _optional(m, "service_metadata", _str_map, "service_metadata")
    _optional(m, "protect_threshold", _number, "protect_threshold")
    return m


def check_services(result: Any) -> dict[str, Any]:
    r = _map(result, "the result")
    for i, s in enumerate(_list(r.get("services"), "services")):
        s = _map(s, f"services[{i}]")
        _str(s.get("service"), f"services[{i}] service")
        _str(s.get("group"), f"services[{i}] group", limits.MAX_GROUP_LEN)
    return r


def check_cluster(result: Any) -> dict[str, Any]:
    r = _map(result, "the result")
    _str(r.get("node"), "node", MAX_ID_LEN)
    _bool(r.get("ready"), "ready")
    members = _list(r.get("members"), "members")
    if len(members) > MAX_MEMBERS:
        raise _bad(f"members lists {len(members)} nodes; at most {MAX_MEMBERS} are supported")
    for i, m in enumerate(members):
        m = _map(m, f"members[{i}]")
        # A peer not heard from yet has no id (""); one that is up must have one.
        ident = _str(m.get("id"), f"members[{i}] id", MAX_ID_LEN, empty=True)
        state = _str(m.get("state"), f"members[{i}] state", 32)
        if state == "up" and not ident:
            raise _bad(f"members[{i}] is up but has no id")
        split_address(m.get("address"), f"members[{i}] address")
        _bool(m.get("self"), f"members[{i}] self")
        for key in ("services", "instances", "lag"):
            _int(m.get(key), f"members[{i}] {key}")
        _optional(m, "last_heard", _number, f"members[{i}] last_heard")
        _optional(m, "configured", _bool, f"members[{i}] configured")  # absent: older node
    _optional(r, "counts", _bool, "counts")  # false: services and instances not shown
    return r


def check_ping(result: Any) -> dict[str, Any]:
    r = _map(result, "the result")
    _int(r.get("epoch"), "epoch")
    _str(r.get("version"), "version", 64)
    _str(r.get("address"), "address", MAX_ADDRESS_LEN)
    _optional(r, "members_up", _int, "members_up")
    _optional(r, "members", _int, "members")
    _optional(r, "unhealthy_after", _number, "unhealthy_after")
    for i, who in enumerate(_list(r.get("held_by", []), "held_by")):
        _str(who, f"held_by[{i}]", MAX_ADDRESS_LEN)
    return r


def check_stats(result: Any) -> dict[str, Any]:
    """The keys ``meshreg stats`` prints; the rest is informational and passed through."""
    r = _map(result, "the result")
    _str(r.get("address"), "address", MAX_ADDRESS_LEN)
    _str(r.get("version"), "version", 64)
    for key in ("epoch", "services", "subscribers", "errors_total"):
        _int(r.get(key), key)
    for key in ("uptime", "beats_per_second"):
        _number(r.get(key), key)
    instances = _map(r.get("instances"), "instances")
    for key in ("total", "healthy", "unhealthy"):
        _int(instances.get(key), f"instances {key}")
    for key in ("errors", "requests"):
        counts = _map(r.get(key), key)
        if not all(type(k) is str and type(v) is int for k, v in counts.items()):
            raise _bad(f"{key} must map names to counts")
    return r


def check_session_open(result: Any) -> dict[str, Any]:
    r = _map(result, "the result")
    session = _str(r.get("session"), "session", 64)
    if len(session) != 32 or any(c not in "0123456789abcdef" for c in session):
        raise _bad("session must be 32 lowercase hex digits")
    _optional(r, "instances", _int, "instances")
    for key in ("unhealthy_after", "evict_after"):
        _optional(r, key, _number, key)
    return r


def check_session_renew(result: Any) -> dict[str, Any]:
    r = _map(result, "the result")
    _int(r.get("instances"), "instances")
    _optional(r, "known", _bool, "known")
    _optional(r, "ready", _bool, "ready")
    _optional(r, "members_up", _int, "members_up")
    _optional(r, "members", _int, "members")
    _optional(r, "unhealthy_after", _number, "unhealthy_after")
    _optional(r, "held_more", _bool, "held_more")
    digest = r.get("digest")  # (PROTOCOL.md 2.3b; an older node sends none)
    if digest is not None and (type(digest) is not int or not 0 <= digest < 1 << 64):
        raise _bad("digest must be an integer in 0..2^64-1")
    for i, e in enumerate(_list(r.get("held", []), "held")):
        m = _map(e, f"held[{i}]")
        for name in ("group", "service", "ip", "cluster"):
            if type(m.get(name)) is not str:
                raise _bad(f"held[{i}].{name} must be a string")
        _int(m.get("port"), f"held[{i}].port")
    return r


def check_register_batch(result: Any) -> dict[str, Any]:
    """Per-entry results: each nil (registered) or ``[code, message]`` (refused).  The
    count is the caller's to check (it knows how many entries it sent)."""
    r = _map(result, "the result")
    for i, e in enumerate(_list(r.get("results"), "results")):
        if e is not None and not (
            isinstance(e, list) and len(e) == 2 and type(e[0]) is int and type(e[1]) is str
        ):
            raise _bad(f"results[{i}] must be nil or [code, message]")
    stamps = r.get("stamps")  # (PROTOCOL.md 2.1a; an older node sends none)
    if stamps is not None:
        for i, s in enumerate(_list(stamps, "stamps")):
            if s is not None and (type(s) is not int or not 0 <= s <= limits.MAX_STAMP):
                raise _bad(f"stamps[{i}] must be nil or a stamp (an integer in 0..2^63-1)")
    return r


def check_revisions(result: Any) -> dict[str, Any]:
    r = _map(result, "the result")
    _int(r.get("epoch"), "epoch")
    for i, s in enumerate(_list(r.get("stale"), "stale")):
        if type(s) is not int or s < 0:
            raise _bad(f"stale[{i}] must be an entry's index (an integer from 0)")
    return r


def check_namespaces(result: Any) -> dict[str, Any]:
    r = _map(result, "the result")
    for i, n in enumerate(_list(r.get("namespaces"), "namespaces")):
        entry = _map(n, f"namespaces[{i}]")
        if type(entry.get("namespace")) is not str or not entry["namespace"]:
            raise _bad(f"namespaces[{i}].namespace must be a name")
        _int(entry.get("services"), f"namespaces[{i}].services")
        _int(entry.get("configs"), f"namespaces[{i}].configs")
    after = r.get("next_after")
    if after is not None and type(after) is not str:
        raise _bad("next_after must be a namespace name or nil")
    return r


def check_session_close(result: Any) -> dict[str, Any]:
    r = _map(result, "the result")
    _int(r.get("deregistered"), "deregistered")
    return r


CHECKS: dict[str, Callable[[Any], Any]] = {
    "session_open": check_session_open,
    "session_renew": check_session_renew,
    "session_close": check_session_close,
    "register_batch": check_register_batch,
    "instances": check_instances,
    "revisions": check_revisions,
    "services": check_services,
    "namespaces": check_namespaces,
    "cluster": check_cluster,
    "ping": check_ping,
    "stats": check_stats,
}


def check_result(op: str, result: Any) -> Any:
    """``result`` when it has the shape ``op``'s reply must have; else RemoteProtocolError.
    Writes (register, beat, ...) return nothing the client reads: anything passes."""
    check = CHECKS.get(op)
    return result if check is None else check(result)


def check_notification(msg: dict[str, Any]) -> dict[str, Any]:
    """A notification's names and, for a delta, its instance lists (the decoder checked
    its kind, epoch and revision)."""
    _str(msg.get("namespace"), "namespace", limits.MAX_NAMESPACE_LEN)
    _str(msg.get("group"), "group", limits.MAX_GROUP_LEN)
    _str(msg.get("service"), "service")
    if msg.get("kind") != "delta":
        return msg
    _optional(msg, "base", _int, "base")
    for i, d in enumerate(_list(msg.get("upsert", []), "upsert")):
        check_instance(d, f"upsert[{i}]")
    for i, r in enumerate(_list(msg.get("remove", []), "remove")):
        if not isinstance(r, list) or len(r) != 3:
            raise _bad(f"remove[{i}] must be [ip, port, cluster]")
        check_instance({"ip": r[0], "port": r[1], "cluster": r[2]}, f"remove[{i}]")
    return _check_settings(msg)
