"""The core's typed results (core/results) as the maps a reply carries.

One encoder per result type, key by key, in the order docs/PROTOCOL.md shows them (its
byte dumps are checked by tests/wire/test_protocol_doc.py): this module is where the
shape of a reply is decided, and the core never sees it.  ``to_wire`` is the entry
point (wire/replies uses it as msgpack's ``default``, so nested results encode too).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import msgpack

from meshreg.core.cluster_messages import DigestPage, ReconcileReply
from meshreg.core.instance_views import MAX_ROWS, MIN_ROWS
from meshreg.core.quotas import LimitsPolicy
from meshreg.core.results import (
    BatchResult,
    ClusterResult,
    EntryRefused,
    EntryResult,
    InstancesResult,
    MemberRow,
    NamespacesResult,
    PingResult,
    PreservationStats,
    RevisionsResult,
    ServicesResult,
    SessionClosed,
    SessionOpened,
    SessionRenewed,
    StatsResult,
    Written,
)
from meshreg.wire.peer import payload_to_wire


def revisions_map(r: RevisionsResult) -> dict[str, Any]:
    return {"epoch": r.epoch, "stale": list(r.stale)}


def namespaces_map(r: NamespacesResult) -> dict[str, Any]:
    return {
        "namespaces": [
            {"namespace": ns, "services": services, "configs": configs}
            for ns, services, configs in r.namespaces
        ],
        "next_after": r.next_after,
    }


def instances_map(r: InstancesResult) -> dict[str, Any]:
    m = _instances_head(r)
    m["instances"] = _instance_maps(r.instances)
    _instances_tail(r, m)
    return m


def _instances_head(r: InstancesResult) -> dict[str, Any]:
    key = r.key
    return {
        "namespace": key.namespace,
        "group": key.group,
        "service": key.service,
        "epoch": r.epoch,
        "revision": r.revision,
        "protect_threshold": r.protect_threshold,
        "protected": r.protected,
        "service_metadata": r.service_metadata,
    }


def _instance_maps(rows: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [
        {
            "ip": ip,
            "port": port,
            "cluster": cluster,
            "weight": weight,
            "enabled": enabled,
            "healthy": healthy,
            "metadata": metadata,
        }
        for ip, port, cluster, weight, enabled, healthy, metadata in rows
    ]


# a large service's instance list, packed: its rows' identity (the core keeps the same
# tuple while the service's revision stands: core/instance_views) -> (the rows, kept so
# the identity is not reused, and their packed array); the most recently packed kept,
# within PACKED_ROWS_BYTES counting each twice (the array, and about as much for the
# rows it holds on to: those of a revision the core dropped stay until then) (review52
# F3: mapping and packing 50,000 instances was most of an ``instances`` read's 250 ms)
PACKED_ROWS_BYTES = 32 * 1024 * 1024
_packed_rows: OrderedDict[int, tuple[tuple[Any, ...], bytes]] = OrderedDict()
_packed_bytes = [0]  # the arrays' bytes, counted twice


def clear_packed() -> None:
    """Forget every packed list (a node's close: their memory back; the cache is the
    process's, shared by the nodes a test or the simulation runs in it)."""
    _packed_rows.clear()
    _packed_bytes[0] = 0


def packed_stats() -> dict[str, int]:
    """``stats.runtime.instance_lists``' ``packed`` lists and their ``packed_bytes``."""
    return {"packed": len(_packed_rows), "packed_bytes": _packed_bytes[0] // 2}


def instances_packed(r: InstancesResult) -> bytes:
    """``msgpack.packb(instances_map(r))``, the same bytes, with a large service's
    instance array packed once for as long as the core keeps its rows (a list above
    the core's ``MAX_ROWS`` is built anew per read: not kept here either)."""
    rows = r.instances
    if len(rows) < MIN_ROWS:
        return msgpack.packb(instances_map(r))  # type: ignore[no-any-return]
    held = _packed_rows.get(id(rows))  # (its rows held: the identity is that tuple's)
    if held is not None:
        _packed_rows.move_to_end(id(rows))
        array = held[1]
    else:
        array = msgpack.packb(_instance_maps(rows))
        if len(rows) <= MAX_ROWS:
            _packed_rows[id(rows)] = (rows, array)
            _packed_bytes[0] += 2 * len(array)
            while _packed_bytes[0] > PACKED_ROWS_BYTES and len(_packed_rows) > 1:
                _, (_, dropped) = _packed_rows.popitem(last=False)
                _packed_bytes[0] -= 2 * len(dropped)
    head = _instances_head(r)
    tail: dict[str, Any] = {}
    _instances_tail(r, tail)
    parts = [_map_header(len(head) + 1 + len(tail))]
    parts.extend(msgpack.packb(k) + msgpack.packb(v) for k, v in head.items())
    parts.append(_INSTANCES_KEY)
    parts.append(array)
    parts.extend(msgpack.packb(k) + msgpack.packb(v) for k, v in tail.items())
    return b"".join(parts)


_INSTANCES_KEY = msgpack.packb("instances")


def _map_header(n: int) -> bytes:
    return bytes((0x80 | n,)) if n < 16 else b"\xde" + n.to_bytes(2, "big")


def _instances_tail(r: InstancesResult, m: dict[str, Any]) -> None:
    """The fields an ``instances`` result carries after its list, when told."""
    if r.uptime is not None:
        m["uptime"] = r.uptime
    if r.synced is not None:
        m["synced"] = r.synced
    if r.table_age is not None:
        m["table_age"] = r.table_age


def services_map(r: ServicesResult) -> dict[str, Any]:
    return {
        "namespace": r.namespace,
        "services": [{"group": g, "service": s} for g, s in r.services],
        "count": r.count,
        "next_cursor": r.next_cursor,
    }


def ping_map(r: PingResult) -> dict[str, Any]:
    out: dict[str, Any] = {"epoch": r.epoch, "version": r.version, "address": r.address}
    if r.members is not None:
        out["members_up"], out["members"] = r.members
    out["ready"] = r.ready
    if r.held_by:
        out["held_by"] = list(r.held_by)
    if r.resyncing:
        out["resyncing"] = True
    if r.config_ready is not None:
        out["config_ready"] = r.config_ready
    if r.config_waiting:
        out["config_waiting"] = r.config_waiting
    if r.config_writes_refused:
        out["config_writes_refused"] = r.config_writes_refused
    if r.unhealthy_after is not None:
        out["unhealthy_after"] = r.unhealthy_after
    return out


def session_opened_map(r: SessionOpened) -> dict[str, Any]:
    return {
        "session": r.session,
        "instances": r.instances,
        "unhealthy_after": r.unhealthy_after,
        "evict_after": r.evict_after,
        "write_rate": r.write_rate,
    }


def session_renewed_map(r: SessionRenewed) -> dict[str, Any]:
    out: dict[str, Any] = {"instances": r.instances, "known": r.known}
    if not r.ready:  # (only then: the usual reply keeps its bytes)
        out["ready"] = False
    if r.minority is not None:
        out["members_up"], out["members"] = r.minority
    if r.unhealthy_after is not None:
        out["unhealthy_after"] = r.unhealthy_after
    if r.held is not None:
        out["held"] = [
            {"group": k.group, "service": k.service, "ip": i.ip, "port": i.port,
             "cluster": i.cluster}
            for k, i in r.held
        ]  # fmt: skip
        out["held_more"] = r.held_more
    if r.digest is not None:
        out["digest"] = r.digest
    return out


def session_closed_map(r: SessionClosed) -> dict[str, Any]:
    return {"deregistered": r.deregistered}


def entry_result(r: EntryResult) -> list[Any] | None:
    """A ``register_batch`` entry's result: nil (registered), or ``[code, message]``."""
    return [int(r.code), r.message] if type(r) is EntryRefused else None


def written_map(r: Written) -> dict[str, Any]:
    return {"stamp": r.stamp}


def batch_map(r: BatchResult) -> dict[str, Any]:
    # "stamps": per entry, the stamp a registered one left (PROTOCOL.md 2.1 "After"), or
    # nil; a separate array, so that a client that reads "results" alone reads it as before
    return {
        "results": [entry_result(e) for e in r.results],
        "stamps": [e.stamp if type(e) is Written else None for e in r.results],
    }


def _preservation_map(p: PreservationStats) -> dict[str, Any]:
    return {
        "enabled": p.enabled,
        "state": p.state,
        "active": p.active,
        "active_for": p.active_for,
        "evicting": p.evicting,
        "silent": p.silent,
        "of": p.total,
        "held": p.held,
        "threshold": p.threshold,
        "min_instances": p.min_instances,
        "times_entered": p.times_entered,
        "max_duration": p.max_duration,
        "times_expired": p.times_expired,
    }


_LIMIT_NAMES = tuple(f.name for f in fields(LimitsPolicy))


def _limits_map(limits: LimitsPolicy) -> dict[str, int]:
    """``[limits]`` under the names the node config gives them."""
    return {name: getattr(limits, name) for name in _LIMIT_NAMES}


def stats_map(r: StatsResult) -> dict[str, Any]:
    counts, timings, usage, sessions = r.instances, r.timings, r.usage, r.sessions
    m: dict[str, Any] = {
        "address": r.address,
        "version": r.version,
        "epoch": r.epoch,
        "uptime": r.uptime,
        "services": r.services,
        "instances": {
            "total": counts.total,
            "healthy": counts.healthy,
            "unhealthy": counts.unhealthy,
        },
        "requests": dict(r.requests),
        "beats_total": r.beats_total,
        "beats_per_second": r.beats_per_second,
        "errors": dict(r.errors),
        "errors_total": r.errors_total,
        "notifications": r.notifications,
        "subscribers": r.subscribers,
        "watched_services": r.watched_services,
        "revision": r.revision,
        "timings": {
            "check_interval": timings.check_interval,
            "unhealthy_after": timings.unhealthy_after,
            "evict_after": timings.evict_after,
        },
        "self_preservation": _preservation_map(r.self_preservation),
        "stalls": r.stalls,
        "judged_in_stall_grace": r.judged_in_stall_grace,
        "judged_in_member_grace": r.judged_in_member_grace,
        "late_writes": r.late_writes,
        "usage": {
            "namespaces": usage.namespaces,
            "services": usage.services,
            "empty_services": usage.empty_services,
            "instances": usage.instances,
            "metadata_bytes": usage.metadata_bytes,
            "tombstones": usage.tombstones,
            "tombstones_dropped": usage.tombstones_dropped,
            "overrides": usage.overrides,
            "overrides_expired": usage.overrides_expired,
            "overrides_cleared": usage.overrides_cleared,
        },
        "limits": _limits_map(r.limits),
        "rejected_quota": dict(r.rejected_quota),
        "sessions": {
            "count": sessions.count,
            "instances": sessions.instances,
            "renewals": sessions.renewals,
            "renewals_per_second": sessions.renewals_per_second,
            "silent": sessions.silent,
            "forgotten": sessions.forgotten,
        },
    }
    member = r.member
    if member is not None:
        m.update(member.counters)
        m["node_id"] = member.node_id
        m["ready"] = member.ready
        m["health_judgment"] = member.health_judgment
        m["disputed_views"] = member.disputed_views
        m["members"] = list(member.members)
        m["clock_skewed"] = member.clock_skewed
        m["clock_lead"] = member.clock_lead
    if r.runtime is not None:
        m.update(r.runtime)
    return m


def _member_map(m: MemberRow) -> dict[str, Any]:
    return {
        "id": m.id,
        "address": m.address,
        "state": m.state,
        "self": m.self,
        "services": m.services,
        "instances": m.instances,
        "lag": m.lag,
        "last_heard": m.last_heard,
        "configured": m.configured,
        "clock_offset": m.clock_offset,
        "stream_silent": m.stream_silent,
        "announced": m.announced,
    }


def cluster_map(r: ClusterResult) -> dict[str, Any]:
    m = {"node": r.node, "ready": r.ready, "members": [_member_map(m) for m in r.members]}
    if r.runtime is not None:
        m.update(r.runtime)
    return m


def digest_page_map(r: DigestPage) -> dict[str, Any]:
    """A ``digests`` page: ``[namespace, group, service, digest, instances]`` each."""
    return {
        "node": r.node,
        "digests": [[k.namespace, k.group, k.service, d, n] for k, d, n in r.entries],
        "more": r.more,
    }


def reconcile_map(r: ReconcileReply) -> dict[str, Any]:
    return {"services": [payload_to_wire(p) for p in r.services]}


RESULT_MAPS: dict[type, Callable[[Any], Any]] = {
    InstancesResult: instances_map,
    RevisionsResult: revisions_map,
    ServicesResult: services_map,
    NamespacesResult: namespaces_map,
    PingResult: ping_map,
    SessionOpened: session_opened_map,
    SessionRenewed: session_renewed_map,
    SessionClosed: session_closed_map,
    Written: written_map,
    BatchResult: batch_map,
    StatsResult: stats_map,
    ClusterResult: cluster_map,
    DigestPage: digest_page_map,
    ReconcileReply: reconcile_map,
}
"""Every ``core.results.Result`` but None (tests/wire/test_result_maps.py checks it)."""

# results packed faster whole than through their map (the same bytes: wire/replies)
_WRITTEN_PREFIX = b"\x81\xa5stamp"  # {"stamp": ...}


def written_packed(r: Written) -> bytes:
    """``msgpack.packb(written_map(r))`` without building the map (every register's and
    deregister's answer)."""
    stamp = r.stamp
    if 0xFFFFFFFF < stamp < 2**64:  # (every stamp of a clock past 1970 + 71 minutes)
        return _WRITTEN_PREFIX + b"\xcf" + stamp.to_bytes(8, "big")
    packed: bytes = msgpack.packb(stamp)
    return _WRITTEN_PREFIX + packed


RESULT_PACKERS: dict[type, Callable[[Any], bytes]] = {
    InstancesResult: instances_packed,
    Written: written_packed,
}


def to_wire(result: Any) -> Any:
    """A core result as its wire map (anything else as it is: a value of msgpack's)."""
    encode = RESULT_MAPS.get(type(result))
    return result if encode is None else encode(result)
