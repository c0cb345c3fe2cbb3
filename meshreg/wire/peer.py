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
  older node, read as alive = version and down = 0, or = alive if unhealthy);
  optional ``"scoped":[[ip, port, cluster, session, base]]``: the removals of that
  list that are of one session only (a session's close; core/store
  ``_written_before``); a node that ignores it removes more, never less.
* digest: ``{"v","node","epoch","services","digest"}``: how many services the
  sender is responsible for and one checksum over them (see core/digests).
* deltas: ``{"v","node","epoch","seq","deltas":[payload, ...]}``: consecutive deltas
  in one message (``wire/batching`` builds them under load); the i-th payload (a
  delta's service fields, as above) is delta ``seq + i``.  Each payload is validated
  exactly as a single delta's; a bad one is rejected (``DeltaBatch.rejected``)
  without dropping the others, and its missing seq brings a repair like a lost
  delta.  At most ``MAX_BATCH_DELTAS`` payloads (more: the whole message is
  rejected).
* sessions: ``{"v","node","epoch","sessions":[[session, namespace, alive]]}``:
  client session renewals the sender received (core/sessions), at most
  ``MAX_SESSION_ENTRIES`` per message; no seq (a lost one is made good by the
  next renewal, a beat interval later).  An upsert's instance may carry
  ``"session"`` (the session keeping it alive; absent: its own beats).

Peer requests (the peer plane: ``messages.parse_peer_message``) have the
request envelope and reply shape of client requests: ``digests`` (page
through the per-service checksums of the services the node is responsible
for) and ``reconcile`` (send our records of some services, get the node's
merged records back); the replies are checked here too (``parse_digest_page``,
``parse_reconcile_reply``).  ``sessions``, ``beacon`` (the replication message's
fields: the beacon's second path) and ``join`` (the addresses of members the
receiver does not hear: core/distro ``_introduce``) are acknowledged with nil.
``cluster`` (the member view) is a client op.

Everything is validated here, with the checks client requests pass (names,
hosts, clusters, weights, metadata: the ``check_*`` of wire/messages), node
ids and addresses printable, every stamp an integer in 0..``MAX_STAMP`` and
every count bounded; the core sees only these dataclasses.  Whether a stamp
is too far ahead of the receiver's clock is the core's to judge (it has the
clock): core/distro, "Bounded stamps".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from meshreg.core.cluster_messages import (  # the core's types: parsed into here
    MAX_DIGEST_PAGE,
    MAX_RECONCILE_SERVICES,
    MAX_SESSION_ENTRIES,
    Beacon,
    CallReply,
    DigestPage,
    DigestSummary,
    InvalidReply,
    ReconcileReply,
    ReplicatedDelta,
    ServicePayload,
    SessionBeats,
    payload_stamps,
)
from meshreg.core.effects import InstanceView
from meshreg.core.membership import MAX_ADDRESSES
from meshreg.core.requests import Join, ListDigests, PushBeacon, PushSessions, Reconcile
from meshreg.core.results import EntryRefused, EntryResult, Written
from meshreg.errors import ErrorCode, RemoteProtocolError
from meshreg.model import InstanceId
from meshreg.wire import limits
from meshreg.wire.messages import (
    FORWARDED_OPS,
    PEER_OPS,
    PEER_PLANE_OPS,
    GetCluster,
    RequestRejected,
    _client_op,
    _header,
    _unknown_op,
    check_address,
    check_instance_id,
    check_key,
    check_metadata,
    check_name,
    check_node_id,
    check_session_id,
    check_threshold,
    check_weight,
    decode_body,
    unpack_peer,
)
from meshreg.wire.notifications import instance_to_wire

# re-exported: they lived here before (the message types now live in core)
__all__ = ["PEER_OPS", "GetCluster", "MAX_DIGEST_PAGE", "MAX_RECONCILE_SERVICES"]
__all__ += ["MAX_SESSION_ENTRIES", "Beacon", "DigestPage", "DigestSummary", "ListDigests"]
__all__ += ["Reconcile", "ReplicatedDelta", "ServicePayload", "SessionBeats", "payload_stamps"]

# instances + tombstones per ``reconcile`` request or reply (one big service)
MAX_RECONCILE_INSTANCES = limits.MAX_PEER_ENTRIES
MAX_DELTA_ENTRIES = limits.MAX_PEER_ENTRIES  # upserts + removals in one replicated delta
MAX_MEMBERS = 256  # node ids in a beacon's member view
MAX_BATCH_DELTAS = 1024  # deltas in one ``deltas`` message (a sender makes at most 256)


@dataclass(frozen=True, slots=True)
class DeltaBatch:
    """A ``deltas`` message: its valid deltas in seq order, and the seqs it rejected."""

    node: str
    epoch: int
    deltas: tuple[ReplicatedDelta, ...]
    rejected: tuple[tuple[int, str], ...] = ()  # (seq, why) of each invalid payload


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, ErrorCode.INVALID_ARGUMENT)


def _uint(value: Any, what: str, upper: int = 2**64 - 1) -> int:
    if type(value) is not int or not 0 <= value <= upper:
        raise _bad(f"{what} must be an unsigned integer")
    return value


def _stamp(value: Any, what: str) -> int:
    """A version stamp (core/versions): an integer in 0..MAX_STAMP."""
    if type(value) is not int or not 0 <= value <= limits.MAX_STAMP:
        raise _bad(f"{what} must be a version stamp, an integer in 0..{limits.MAX_STAMP}")
    return value


def instance_to_peer(v: InstanceView) -> dict[str, Any]:
    """The client-facing fields plus the stamps peers merge by."""
    d = instance_to_wire(v)
    d["version"] = v.version
    d["alive"] = v.alive
    d["down"] = v.down
    if v.session is not None:
        d["session"] = v.session
    return d


def _instance(d: Any, checked: dict[str, str] | None = None) -> InstanceView:
    """One replicated instance, checked in full.  ``checked``: a metadata map that
    passed already (the previous instance's): an equal one passes as it did, and the
    view takes that one object (the instances of a service mostly carry equal maps)."""
    if not isinstance(d, dict):
        raise _bad("instance must be a map")
    iid = check_instance_id(d.get("ip"), d.get("port"), d.get("cluster"))
    weight = check_weight(d.get("weight"))
    enabled, healthy = d.get("enabled"), d.get("healthy")
    if type(enabled) is not bool or type(healthy) is not bool:
        raise _bad("enabled and healthy must be booleans")
    metadata = d.get("metadata")  # equal to a map that passed: passes, and is shared
    metadata = checked if checked is not None and metadata == checked else check_metadata(metadata)
    version = _stamp(d.get("version"), "version")
    alive = _stamp(d.get("alive", version), "alive")
    down = _stamp(d.get("down", 0 if healthy else alive), "down")
    if alive < version:
        raise _bad("alive must be >= version (a write is evidence of life)")
    if alive and (down < alive) != healthy:
        raise _bad("healthy must equal down < alive")
    session = d.get("session")
    if session is not None:
        session = check_session_id(session)
    return InstanceView(
        iid.ip,
        iid.port,
        iid.cluster,
        weight,
        enabled,
        healthy,
        metadata,
        version,
        alive,
        down,
        session,
    )


def _removal(r: Any) -> tuple[InstanceId, int, int]:
    if not isinstance(r, list) or len(r) not in (4, 5):
        raise _bad("removal must be [ip, port, cluster, version, alive]")
    iid = check_instance_id(r[0], r[1], r[2])
    alive = _stamp(r[4], "alive") if len(r) == 5 else 0
    return iid, _stamp(r[3], "version"), alive


def _scope(r: Any) -> tuple[InstanceId, str, int]:
    if not isinstance(r, list) or len(r) != 5:
        raise _bad("scoped removal must be [ip, port, cluster, session, base]")
    return check_instance_id(r[0], r[1], r[2]), check_session_id(r[3]), _stamp(r[4], "base")


def payload_to_wire(p: ServicePayload) -> dict[str, Any]:
    return {
        "namespace": p.key.namespace,
        "group": p.key.group,
        "service": p.key.service,
        "upsert": [instance_to_peer(v) for v in p.upserts],
        "remove": [[i.ip, i.port, i.cluster, ver, alive] for i, ver, alive in p.removals],
        "settings": None if p.settings is None else list(p.settings),
        **(
            {"scoped": [[i.ip, i.port, i.cluster, s, b] for i, s, b in p.scopes]}
            if p.scopes
            else {}
        ),
        **(
            {
                "overrides": [
                    [i.ip, i.port, i.cluster, w, e, wv, ev] for i, w, e, wv, ev in p.overrides
                ]
            }
            if p.overrides
            else {}
        ),
    }


def _override(o: Any) -> tuple[InstanceId, float | None, bool | None, int, int]:
    """One operator override (core/overrides): [ip, port, cluster, weight, enabled,
    weight's stamp, enabled's stamp], weight and enabled nil when not overridden (a
    field's stamp 0: not carried)."""
    if not isinstance(o, list) or len(o) != 7:
        raise _bad(
            "override must be [ip, port, cluster, weight or nil, enabled or nil, "
            "weight version, enabled version]"
        )
    iid = check_instance_id(o[0], o[1], o[2])
    weight = None if o[3] is None else check_weight(o[3])
    if o[4] is not None and type(o[4]) is not bool:
        raise _bad("override enabled must be true, false or nil")
    return iid, weight, o[4], _stamp(o[5], "override version"), _stamp(o[6], "override version")


def payload_from_wire(d: Any, max_entries: int = MAX_DELTA_ENTRIES) -> ServicePayload:
    if not isinstance(d, dict):
        raise _bad("service payload must be a map")
    upsert, remove = d.get("upsert"), d.get("remove")
    if not isinstance(upsert, list) or not isinstance(remove, list):
        raise _bad("upsert and remove must be lists")
    if len(upsert) + len(remove) > max_entries:
        raise RemoteProtocolError(
            f"{len(upsert) + len(remove)} entries in one service payload; the limit is "
            f"{max_entries}",
            ErrorCode.TOO_LARGE,
        )
    settings = d.get("settings")
    if settings is not None:
        if not isinstance(settings, list) or len(settings) != 3:
            raise _bad("settings must be [protect_threshold in 0..1, version, metadata]")
        settings = (
            check_threshold(settings[0]),
            _stamp(settings[1], "settings version"),
            check_metadata(settings[2]),
        )
    key = check_key(d.get("namespace"), d.get("group"), d.get("service"))
    upserts = []
    checked = None
    for x in upsert:
        view = _instance(x, checked)
        checked = view.metadata
        upserts.append(view)
    overrides = d.get("overrides", [])
    if not isinstance(overrides, list):
        raise _bad("overrides must be a list")
    if len(overrides) > max_entries:
        raise RemoteProtocolError(
            f"{len(overrides)} overrides in one service payload; the limit is {max_entries}",
            ErrorCode.TOO_LARGE,
        )
    scoped = d.get("scoped", [])
    if not isinstance(scoped, list) or len(scoped) > len(remove):
        raise _bad("scoped must be a list of at most as many entries as remove")
    return ServicePayload(
        key,
        tuple(upserts),
        tuple(_removal(x) for x in remove),
        settings,
        tuple(_override(x) for x in overrides),
        tuple(_scope(x) for x in scoped),
    )


def _unpack(body: bytes, what: str) -> Any:
    """One peer body, within the peer plane's size and structure limits."""
    if len(body) > limits.MAX_PEER_BODY_BYTES:
        raise RemoteProtocolError(
            f"{what} is {len(body)} bytes; the limit is {limits.MAX_PEER_BODY_BYTES}",
            ErrorCode.TOO_LARGE,
        )
    try:
        return unpack_peer(body)
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(f"{what}: {exc.message}", exc.code) from None


# -- a forwarded write's result -----------------------------------------------------
def encode_written(p: ServicePayload) -> bytes:
    """What a forwarded write left on its owner: the extra frame of the owner's reply,
    merged by the node that relayed the write (read-your-writes, PROTOCOL.md 1.8)."""
    body: bytes = msgpack.packb(payload_to_wire(p))
    return body


def decode_written(body: bytes) -> ServicePayload:
    """The owner's result frame, checked like a delta (one instance or settings)."""
    return payload_from_wire(_unpack(body, "a forwarded write's result"), max_entries=1)


def encode_written_batch(payloads: list[ServicePayload]) -> bytes:
    """``encode_written`` for a forwarded ``register_batch``: one payload per service."""
    body: bytes = msgpack.packb([payload_to_wire(p) for p in payloads])
    return body


def decode_written_batch(body: bytes) -> list[ServicePayload]:
    """The owner's result frame of a forwarded ``register_batch``, each payload checked
    like a delta; at most ``MAX_BATCH_REGISTER`` services and instances in all."""
    items = _unpack(body, "a forwarded batch's result")
    if not isinstance(items, list) or len(items) > limits.MAX_BATCH_REGISTER:
        raise _bad(f"a forwarded batch's result must be a list of 0..{limits.MAX_BATCH_REGISTER}")
    payloads = [payload_from_wire(d, limits.MAX_BATCH_REGISTER) for d in items]
    if sum(len(p.upserts) + len(p.removals) for p in payloads) > limits.MAX_BATCH_REGISTER:
        raise _bad(f"a forwarded batch's result holds more than {limits.MAX_BATCH_REGISTER}")
    return payloads


def decode_batch_reply(body: bytes, count: int) -> list[EntryResult]:
    """The per-entry results in an owner's reply to a forwarded ``register_batch`` part
    of ``count`` entries: each None or ``[code, message]`` (an ``EntryRefused``).
    Raises RemoteProtocolError for anything else (an error reply too: the relaying
    node then applies the part)."""
    reply = _unpack(body, "a forwarded batch's reply")
    if not isinstance(reply, dict) or reply.get("ok") is not True:
        error = reply.get("error") if isinstance(reply, dict) else None
        raise _bad(f"the owner refused the batch: {str(error)[:200]}")
    result = reply.get("result")
    results = result.get("results") if isinstance(result, dict) else None
    if not isinstance(results, list) or len(results) != count:
        raise _bad(f"a forwarded batch's reply must hold 'results', {count} entries")
    for r in results:
        if r is not None and not (
            isinstance(r, list)
            and len(r) == 2
            and type(r[0]) is int
            and type(r[1]) is str
            and len(r[1]) <= 1000
        ):
            raise _bad("a forwarded batch's result entry must be nil or [code, message]")
    assert isinstance(result, dict)  # (checked with ``results`` above)
    stamps = result.get("stamps")  # (an older owner sends none: no stamp to relay)
    if stamps is None:
        stamps = [None] * count
    elif not isinstance(stamps, list) or len(stamps) != count:
        raise _bad(f"a forwarded batch's 'stamps' must hold {count} entries")
    out: list[EntryResult] = []
    for r, s in zip(results, stamps, strict=True):
        if r is not None:
            out.append(EntryRefused(r[0], r[1]))
        elif s is None:
            out.append(None)
        elif type(s) is int and 0 <= s <= limits.MAX_STAMP:
            out.append(Written(s))
        else:
            raise _bad("a forwarded batch's stamp must be nil or an integer stamp")
    return out


# -- replication channel ---------------------------------------------------------
def encode_beacon(b: Beacon) -> list[bytes]:
    return [b"beacon", msgpack.packb({"v": limits.PROTOCOL_VERSION, **beacon_fields(b)})]


def encode_delta(d: ReplicatedDelta) -> list[bytes]:
    body = {"v": limits.PROTOCOL_VERSION, "node": d.node, "epoch": d.epoch, "seq": d.seq}
    body.update(payload_to_wire(d.payload))
    return [b"delta", msgpack.packb(body)]


def pack_payload(p: ServicePayload) -> bytes:
    """A payload's msgpack map, as one element of a ``deltas`` message."""
    packed: bytes = msgpack.packb(payload_to_wire(p))
    return packed


_BATCH_HEAD: bytes = msgpack.packb("v") + msgpack.packb(limits.PROTOCOL_VERSION)
_DELTAS_KEY: bytes = msgpack.packb("deltas")


def batch_overhead(node: str, epoch: int, seq: int) -> bytes:
    """The bytes of a ``deltas`` body before its payloads' array (sizes are exact)."""
    head: bytes = (
        b"\x85"  # a map of 5 entries
        + _BATCH_HEAD
        + msgpack.packb("node")
        + msgpack.packb(node)
        + msgpack.packb("epoch")
        + msgpack.packb(epoch)
        + msgpack.packb("seq")
        + msgpack.packb(seq)
        + _DELTAS_KEY
    )
    return head


def array_header(n: int) -> bytes:
    """msgpack's header of an array of ``n`` elements (1, 3 or 5 bytes)."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def encode_packed_delta(node: str, epoch: int, seq: int, packed: bytes) -> list[bytes]:
    """The ``delta`` message ``encode_delta`` makes, from a payload ``pack_payload`` made."""
    # payload_to_wire's map of 6 entries (7 with overrides), spliced into one of 10 (11)
    assert packed[0] in (0x86, 0x87)
    head = batch_overhead(node, epoch, seq)
    return [b"delta", bytes((packed[0] + 4,)) + head[1 : -len(_DELTAS_KEY)] + packed[1:]]


def encode_delta_batch(node: str, epoch: int, seq: int, packed: list[bytes]) -> list[bytes]:
    """A ``deltas`` message: payloads packed by ``pack_payload``, the first one ``seq``."""
    body = b"".join((batch_overhead(node, epoch, seq), array_header(len(packed)), *packed))
    return [b"deltas", body]


def encode_digest(d: DigestSummary) -> list[bytes]:
    body = {
        "v": limits.PROTOCOL_VERSION,
        "node": d.node,
        "epoch": d.epoch,
        "services": d.services,
        "digest": d.digest,
    }
    return [b"digest", msgpack.packb(body)]


def encode_sessions(b: SessionBeats) -> list[bytes]:
    body = {
        "v": limits.PROTOCOL_VERSION,
        "node": b.node,
        "epoch": b.epoch,
        "sessions": [list(e) for e in b.entries],
    }
    return [b"sessions", msgpack.packb(body)]


def _session_entries(value: Any) -> tuple[tuple[str, str, int], ...]:
    if not isinstance(value, list) or len(value) > MAX_SESSION_ENTRIES:
        raise _bad(f"sessions must be a list of at most {MAX_SESSION_ENTRIES} entries")
    entries = []
    for e in value:
        if not isinstance(e, list) or len(e) != 3:
            raise _bad("a sessions entry must be [session, namespace, alive]")
        entries.append(
            (
                check_session_id(e[0]),
                check_name(e[1], "namespace", limits.MAX_NAMESPACE_LEN),
                _stamp(e[2], "alive"),
            )
        )
    return tuple(entries)


_VIEWS_KEPT = 64  # (address, member list) pairs remembered; more: forget them all
_views: dict[tuple[str, tuple[Any, ...] | None], tuple[tuple[str, ...] | None]] = {}


def _beacon_view(address: Any, members: Any) -> tuple[str, tuple[str, ...] | None]:
    """A beacon's address and member view (sorted), checked.

    Every peer sends the same address and, mostly, the same member list every beacon
    interval: a pair that passed before passes again as it did (its sorted view
    reused), so it is checked once, not on every beacon.  Only pairs that passed are
    remembered, keyed by their exact strings (a key holding anything but strings
    never equals one), so anything else is checked in full, and refused with the same
    error, every time.  A pure function's memo, bounded: a sender churning views costs
    the full check, as before."""
    key = None
    if type(address) is str and (
        members is None or (type(members) is list and len(members) <= MAX_MEMBERS)
    ):
        key = (address, None if members is None else tuple(members))
        try:
            hit = _views.get(key)
        except TypeError:  # an unhashable member (not a node id): refused below
            key = None
        else:
            if hit is not None:
                return address, hit[0]
    address = check_address(address)
    if members is not None:
        if not isinstance(members, list) or len(members) > MAX_MEMBERS:
            raise _bad(f"members must be a list of at most {MAX_MEMBERS} node ids")
        members = tuple(sorted(check_node_id(x, "member id") for x in members))
    if key is not None:
        if len(_views) >= _VIEWS_KEPT:
            _views.clear()
        _views[key] = (members,)
    return address, members


def beacon_fields(b: Beacon) -> dict[str, Any]:
    """A beacon's body fields but ``v`` (the replication message's, the ``beacon`` peer
    op's: the same map)."""
    body: dict[str, Any] = {
        "node": b.node,
        "address": b.address,
        "epoch": b.epoch,
        "ready": b.ready,
        "seq": b.seq,
    }
    if b.members is not None:
        body["members"] = list(b.members)
    if b.configured is not None:
        body["configured"] = list(b.configured)
    if b.held is not None:
        body["held"] = list(b.held)
    if b.wall is not None:
        body["wall"] = b.wall
    if b.unreachable is not None:
        body["unreachable"] = list(b.unreachable)
    if b.unheard is not None:
        body["unheard"] = list(b.unheard)
    if b.listed is not None:
        body["listed"] = b.listed
    if b.leaving:
        body["leaving"] = True
    if b.table_age is not None:
        body["table_age"] = b.table_age
    if b.leads is not None:
        body["leads"] = dict(b.leads)
    if b.unhealthy_ms is not None:
        body["unhealthy_after_ms"] = b.unhealthy_ms
    return body


def _beacon(node: str, epoch: int, m: dict[str, Any]) -> Beacon:
    """A beacon's fields, checked (a replication ``beacon`` or a ``beacon`` peer op)."""
    ready = m.get("ready")
    if type(ready) is not bool:
        raise _bad("ready must be a boolean")
    address, members = _beacon_view(m.get("address"), m.get("members"))
    configured = m.get("configured")
    if configured is not None:
        configured = _beacon_view(address, configured)[1]  # node ids, like a view
    held = m.get("held")
    if held is not None:
        held = _beacon_view(address, held)[1]  # node ids, like a view
    seq = _uint(m.get("seq"), "seq")
    wall = m.get("wall")
    if wall is not None:
        wall = _uint(wall, "wall")
    unreachable = m.get("unreachable")
    if unreachable is not None:
        unreachable = _beacon_view(address, unreachable)[1]  # node ids, like a view
    unheard = m.get("unheard")
    if unheard is not None:
        unheard = _beacon_view(address, unheard)[1]  # node ids, like a view
    listed = m.get("listed")
    if listed is not None and (type(listed) is not int or not 1 <= listed <= MAX_MEMBERS + 1):
        raise _bad(f"listed must be an integer in 1..{MAX_MEMBERS + 1}")
    leaving = m.get("leaving", False)
    if type(leaving) is not bool:
        raise _bad("leaving must be a boolean")
    table_age = m.get("table_age")
    if table_age is not None:
        table_age = _uint(table_age, "table_age")
    leads = m.get("leads")
    if leads is not None:
        leads = _leads(leads)
    # advice only: a value out of this node's bounds (a newer node's wider ones) is
    # ignored, not the whole beacon (refusing it would count the sender down)
    unhealthy_ms = m.get("unhealthy_after_ms")
    if type(unhealthy_ms) is not int or not 100 <= unhealthy_ms <= MAX_UNHEALTHY_MS:
        unhealthy_ms = None
    return Beacon(
        node,
        address,
        epoch,
        ready,
        seq,
        members,
        configured,
        held,
        wall,
        unreachable,
        unheard,
        listed,
        leaving,
        table_age,
        leads,
        unhealthy_ms,
    )


MAX_UNHEALTHY_MS = 30 * 86_400_000  # a node's unhealthy_after, ms, at most (meshreg/config)
MAX_LEAD_MS = 10**12  # ms (~31 years): a clock sample beyond it is no clock


def _leads(value: Any) -> tuple[tuple[str, int], ...]:
    """A beacon's ``leads``: a map of node id to a signed ms sample, at most
    ``MAX_MEMBERS`` entries."""
    if type(value) is not dict or len(value) > MAX_MEMBERS:
        raise _bad(f"leads must be a map of at most {MAX_MEMBERS} node ids to ms")
    out = []
    for node_id, ms in value.items():
        if type(ms) is not int or not -MAX_LEAD_MS <= ms <= MAX_LEAD_MS:
            raise _bad(f"leads values must be integers in -{MAX_LEAD_MS}..{MAX_LEAD_MS} (ms)")
        out.append((check_node_id(node_id, "leads node id"), ms))
    return tuple(sorted(out))


def decode_replication(
    frames: list[bytes],
) -> Beacon | ReplicatedDelta | DeltaBatch | DigestSummary | SessionBeats:
    """Validate one message from a peer's replication PUB socket."""
    if len(frames) != 2:
        raise RemoteProtocolError(f"replication message must have 2 frames, got {len(frames)}")
    kind, body = frames
    m = _unpack(body, "replication body")
    if not isinstance(m, dict) or m.get("v") != limits.PROTOCOL_VERSION:
        raise RemoteProtocolError("replication body must be a v1 map")
    node = check_node_id(m.get("node"))
    epoch = _uint(m.get("epoch"), "epoch")
    if kind == b"beacon":
        return _beacon(node, epoch, m)
    if kind == b"delta":
        return ReplicatedDelta(node, epoch, _uint(m.get("seq"), "seq"), payload_from_wire(m))
    if kind == b"deltas":
        return _delta_batch(node, epoch, m)
    if kind == b"sessions":
        return SessionBeats(node, epoch, _session_entries(m.get("sessions")))
    if kind == b"digest":
        return DigestSummary(
            node, epoch, _uint(m.get("services"), "services"), _uint(m.get("digest"), "digest")
        )
    raise RemoteProtocolError(f"unknown replication kind {kind[:16]!r}")


def _delta_batch(node: str, epoch: int, m: dict[str, Any]) -> DeltaBatch:
    """The deltas of a ``deltas`` body, each checked as a single delta is."""
    payloads = m.get("deltas")
    if not isinstance(payloads, list) or not payloads:
        raise _bad("deltas must be a non-empty list of delta payloads")
    if len(payloads) > MAX_BATCH_DELTAS:
        raise RemoteProtocolError(
            f"{len(payloads)} deltas in one message; the limit is {MAX_BATCH_DELTAS}",
            ErrorCode.TOO_LARGE,
        )
    first = _uint(m.get("seq"), "seq", 2**64 - len(payloads))
    deltas: list[ReplicatedDelta] = []
    rejected: list[tuple[int, str]] = []
    for i, d in enumerate(payloads):
        try:
            deltas.append(ReplicatedDelta(node, epoch, first + i, payload_from_wire(d)))
        except RemoteProtocolError as exc:  # only this one: the others are good
            rejected.append((first + i, exc.message))
    return DeltaBatch(node, epoch, tuple(deltas), tuple(rejected))


# -- peer requests ------------------------------------------------------------------
def parse_peer_request(body: bytes) -> Any:
    """Validate untrusted ``body`` bytes from a peer (``parse_peer_message``)."""
    return parse_peer_message(decode_body(body, limits.MAX_PEER_BODY_BYTES))


def parse_peer_message(msg: Any) -> Any:
    """Validate an untrusted decoded body from a peer: ``PEER_OPS`` (ListDigests,
    Reconcile, PushSessions) or a forwarded write (``FORWARDED_OPS``, as the client
    plane parses it)."""
    req_id = _header(msg)
    op = msg.get("op")
    if op in FORWARDED_OPS:
        return _client_op(msg, req_id, op)
    if op in PEER_OPS:
        return parse_peer_op(op, msg, req_id)
    raise _unknown_op(op, req_id, PEER_PLANE_OPS, " on the peer port")


def client_write_on_peer_port(msg: Any, host: str, port: int) -> RequestRejected | None:
    """A client's write sent to the peer port (P+3) by mistake: it carries no forward id
    (a node's forward does: ``[fid, b"", body]``), so it is refused, not applied as a
    forward, and told which port to use (review54 F5: a ``register`` there was applied,
    answered in a forward's frames the client could not read, and left behind)."""
    op = msg.get("op") if type(msg) is dict else None
    if op not in FORWARDED_OPS:
        return None
    req_id = msg.get("id") if type(msg.get("id")) is int else 0
    return RequestRejected(
        ErrorCode.UNKNOWN_OP,
        f"{op} sent to {host}:{port + 3}, this node's peer port (P+3: the other nodes' "
        f"forwards and calls); nothing was applied: clients use port P, {host}:{port}",
        req_id,
    )


def peer_call_fields(
    req: ListDigests | Reconcile | PushSessions | Join | PushBeacon,
) -> dict[str, Any]:
    """The fields of a peer call the core made (``PeerCall.request``), for
    ``replies.encode_request(req.op, tag, **fields)``: what ``parse_peer_op`` reads."""
    if type(req) is ListDigests:
        c = req.cursor
        return {
            "cursor": None if c is None else [c.namespace, c.group, c.service],
            "limit": req.limit,
            "node": req.node,
            "ready": req.ready,
        }
    if type(req) is Reconcile:
        return {"node": req.node, "services": [payload_to_wire(p) for p in req.services]}
    if type(req) is Join:
        return {"node": req.node, "addresses": list(req.addresses)}
    if type(req) is PushBeacon:
        return beacon_fields(req.beacon)
    assert type(req) is PushSessions
    beats = req.beats
    fields = {"node": beats.node, "epoch": beats.epoch, "sessions": beats.entries}
    if req.relayed:
        fields["relayed"] = True
    return fields


def parse_peer_op(
    op: str, msg: dict[str, Any], req_id: int
) -> ListDigests | Reconcile | PushSessions | Join | PushBeacon:
    """Validate a peer op's fields (``messages.parse_peer_message``, for PEER_OPS)."""
    try:
        if op == "digests":
            cursor = msg.get("cursor")
            key = None
            if cursor is not None:
                if not isinstance(cursor, list) or len(cursor) != 3:
                    raise _bad("cursor must be [namespace, group, service] or nil")
                key = check_key(*cursor)
            limit = msg.get("limit", MAX_DIGEST_PAGE)
            if type(limit) is not int or not 0 < limit <= MAX_DIGEST_PAGE:
                raise _bad(f"limit must be in 1..{MAX_DIGEST_PAGE}")
            caller = msg.get("node")
            if caller is not None:
                caller = check_node_id(caller)
            ready = msg.get("ready", True)
            if type(ready) is not bool:
                raise _bad("ready must be a boolean")
            return ListDigests(req_id, key, limit, caller, ready)
        if op == "reconcile":
            node = check_node_id(msg.get("node"))
            return Reconcile(req_id, node, _payloads(msg.get("services")))
        if op == "join":
            node = check_node_id(msg.get("node"))
            addresses = msg.get("addresses")
            if not isinstance(addresses, list) or not 0 < len(addresses) <= MAX_ADDRESSES:
                raise _bad(f"addresses must be a list of 1..{MAX_ADDRESSES} host:port strings")
            return Join(req_id, node, tuple(check_address(a, "address") for a in addresses))
        if op == "beacon":
            node = check_node_id(msg.get("node"))
            return PushBeacon(req_id, _beacon(node, _uint(msg.get("epoch"), "epoch"), msg))
        if op == "sessions":
            node = check_node_id(msg.get("node"))
            epoch = _uint(msg.get("epoch"), "epoch")
            relayed = msg.get("relayed", False)
            if type(relayed) is not bool:
                raise _bad("relayed must be a boolean")
            entries = _session_entries(msg.get("sessions"))
            return PushSessions(req_id, SessionBeats(node, epoch, entries), relayed)
    except RemoteProtocolError as exc:
        raise RequestRejected(exc.code, f"{op}: {exc.message}", req_id, op) from None
    raise RequestRejected(ErrorCode.UNKNOWN_OP, f"unknown peer op {op!r}", req_id)


def _payloads(services: Any) -> tuple[ServicePayload, ...]:
    """The service payloads of a reconcile request or reply, within the bounds."""
    if not isinstance(services, list) or len(services) > MAX_RECONCILE_SERVICES:
        raise _bad(f"services must be a list of at most {MAX_RECONCILE_SERVICES}")
    payloads = tuple(payload_from_wire(s, MAX_RECONCILE_INSTANCES) for s in services)
    total = sum(len(p.upserts) + len(p.removals) for p in payloads)
    if total > MAX_RECONCILE_INSTANCES:
        raise RemoteProtocolError(
            f"reconcile carries {total} instances and tombstones; the limit is "
            f"{MAX_RECONCILE_INSTANCES}",
            ErrorCode.TOO_LARGE,
        )
    return payloads


# -- replies to our peer calls (untrusted until here) ------------------------------------
def decode_peer_reply(body: bytes) -> tuple[int, bool, Any]:
    """(id, ok, result) of a reply to a peer call, decoded within the peer plane's
    limits (``messages.unpack_peer``); the result is checked by ``parse_*_reply``; for
    an error, the ``error`` map (``refused_as_unknown``)."""
    reply = _unpack(body, "peer reply")
    if not isinstance(reply, dict) or type(reply.get("id")) is not int or "ok" not in reply:
        raise RemoteProtocolError("peer reply is not a map with 'id' and 'ok'")
    ok = reply["ok"] is True
    return reply["id"], ok, reply.get("result") if ok else reply.get("error")


def refused_as_unknown(error: Any) -> bool:
    """Whether a peer call's error (``decode_peer_reply``) is UNKNOWN_OP: an older node
    that does not know the op (a rolling upgrade)."""
    return isinstance(error, dict) and error.get("code") == int(ErrorCode.UNKNOWN_OP)


def parse_call_result(result: Any) -> CallReply:
    """A peer call's untrusted result as the core takes it (``peer_reply``): a digest
    page (``digests``, ``more``), a reconcile reply (``services``), or what failed.
    The core checks that the kind answers the call it made."""
    try:
        if isinstance(result, dict) and "digests" in result:
            return parse_digest_page(result)
        if isinstance(result, dict) and "services" in result:
            return ReconcileReply(parse_reconcile_reply(result))
    except RemoteProtocolError as exc:
        return InvalidReply(exc.message)
    return InvalidReply(
        "peer reply: neither a digest page (digests, more) nor a reconcile reply (services)"
    )


def parse_reconcile_reply(result: Any) -> tuple[ServicePayload, ...]:
    """A peer's ``reconcile`` result: its merged payload of each service we sent."""
    if not isinstance(result, dict):
        raise _bad("reconcile reply must be a map")
    try:
        return _payloads(result.get("services"))
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(f"reconcile reply: {exc.message}", exc.code) from None


def parse_digest_page(result: Any) -> DigestPage:
    """A peer's ``digests`` result: ``[[ns, group, service, digest, instances]]``, more."""
    try:
        if not isinstance(result, dict):
            raise _bad("must be a map")
        digests, more = result.get("digests"), result.get("more")
        if not isinstance(digests, list) or len(digests) > MAX_DIGEST_PAGE:
            raise _bad(f"digests must be a list of at most {MAX_DIGEST_PAGE} entries")
        if type(more) is not bool:
            raise _bad("more must be a boolean")
        entries = []
        for e in digests:
            if not isinstance(e, list) or len(e) != 5:
                raise _bad("an entry must be [namespace, group, service, digest, instances]")
            entries.append(
                (
                    check_key(e[0], e[1], e[2]),
                    _uint(e[3], "digest"),
                    _uint(e[4], "instances"),
                )
            )
        return DigestPage(tuple(entries), more)
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(f"digests reply: {exc.message}", exc.code) from None
