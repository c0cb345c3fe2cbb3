"""Change notifications on PUB/SUB: ``[topic, body]``.

Topic: ``namespace NUL group NUL service NUL`` (UTF-8).  The trailing NUL
makes a service's topic no prefix of another's; ``namespace NUL`` alone
subscribes to a whole namespace.  Names never contain NUL (see messages).

Bodies (msgpack maps):

* delta: ``{"v","kind":"delta","epoch","namespace","group","service","base",
  "revision","upsert":[instance...],"remove":[[ip,port,cluster]...]}``
* sync:  ``{"v","kind":"sync","epoch","namespace","group","service","revision"}``
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgpack

from meshreg.errors import RemoteProtocolError
from meshreg.model import ServiceKey
from meshreg.wire import limits
from meshreg.wire.results import check_notification

if TYPE_CHECKING:  # annotations only: a client decodes without loading the node's effects
    from meshreg.core.effects import InstanceView, ServiceChanged, SyncAnnounced

SEP = b"\x00"
# A delta whose body is larger goes out as a sync (the watcher sees a newer revision and
# pulls): a subscriber's queue on the node is bounded in messages only (transport/sockets
# NOTIFY_SNDHWM), so the size of each bounds what one that never reads pins (review23 F1)
MAX_DELTA_NOTIFICATION_BYTES = 16 * 1024


def topic_for(key: ServiceKey) -> bytes:
    """The PUB/SUB topic of one service."""
    return SEP.join((key.namespace.encode(), key.group.encode(), key.service.encode(), b""))


def namespace_topic(namespace: str) -> bytes:
    """The topic prefix of every service in a namespace."""
    return namespace.encode() + SEP


def parse_topic(topic: bytes) -> ServiceKey | None:
    """The service of a full topic; None for a prefix or anything else."""
    parts = topic.split(SEP)
    if len(parts) != 4 or parts[3] != b"" or not all(parts[:3]):
        return None
    try:
        ns, group, service = (p.decode() for p in parts[:3])
    except UnicodeDecodeError:
        return None
    return ServiceKey(ns, group, service)


def instance_to_wire(v: InstanceView) -> dict[str, Any]:
    return {
        "ip": v.ip,
        "port": v.port,
        "cluster": v.cluster,
        "weight": v.weight,
        "enabled": v.enabled,
        "healthy": v.healthy,
        "metadata": v.metadata,
    }


def _upserts(change: ServiceChanged) -> list[dict[str, Any]]:
    """The upserted instances as watchers see them: an operator's override (core/overrides)
    over the provider's weight and enabled."""
    upserts = [instance_to_wire(v) for v in change.upserted]
    if change.overrides:
        by_id = {(o[0].ip, o[0].port, o[0].cluster): o for o in change.overrides}
        for entry in upserts:
            o = by_id.get((entry["ip"], entry["port"], entry["cluster"]))
            if o is not None:
                if o[1] is not None:
                    entry["weight"] = o[1]
                if o[2] is not None:
                    entry["enabled"] = o[2]
    return upserts


def encode_change(change: ServiceChanged, epoch: int) -> list[bytes]:
    key = change.key
    body = {
        "v": limits.PROTOCOL_VERSION,
        "kind": "delta",
        "epoch": epoch,
        "namespace": key.namespace,
        "group": key.group,
        "service": key.service,
        "base": change.base,
        "revision": change.revision,
        "upsert": _upserts(change),
        "remove": [[i.ip, i.port, i.cluster] for i in change.removed],
        "protect_threshold": change.protect_threshold,
        "service_metadata": change.service_metadata,
    }
    return [topic_for(key), msgpack.packb(body)]


def encode_change_bounded(change: ServiceChanged, epoch: int) -> tuple[list[bytes], bool]:
    """``encode_change``, or a sync when the delta is above MAX_DELTA_NOTIFICATION_BYTES
    (True: sent as a sync)."""
    frames = encode_change(change, epoch)
    if len(frames[1]) <= MAX_DELTA_NOTIFICATION_BYTES:
        return frames, False
    body = {
        "v": limits.PROTOCOL_VERSION,
        "kind": "sync",
        "epoch": epoch,
        "namespace": change.key.namespace,
        "group": change.key.group,
        "service": change.key.service,
        "revision": change.revision,
    }
    return [frames[0], msgpack.packb(body)], True


def encode_sync(sync: SyncAnnounced, epoch: int) -> list[bytes]:
    key = sync.key
    body = {
        "v": limits.PROTOCOL_VERSION,
        "kind": "sync",
        "epoch": epoch,
        "namespace": key.namespace,
        "group": key.group,
        "service": key.service,
        "revision": sync.revision,
    }
    return [topic_for(key), msgpack.packb(body)]


def decode_notification(frames: list[bytes]) -> dict[str, Any]:
    """Decode a notification (client side); raises RemoteProtocolError."""
    if len(frames) != 2:
        raise RemoteProtocolError(f"notification must have 2 frames, got {len(frames)}")
    try:
        msg = msgpack.unpackb(frames[1], raw=False, strict_map_key=False)
    except Exception as exc:
        raise RemoteProtocolError(
            f"notification is not valid msgpack ({type(exc).__name__})"
        ) from None
    if not isinstance(msg, dict) or msg.get("kind") not in ("delta", "sync"):
        raise RemoteProtocolError("notification is not a delta or sync map")
    for field in ("epoch", "revision"):
        if type(msg.get(field)) is not int:
            raise RemoteProtocolError(f"notification field {field!r} must be an integer")
    return check_notification(msg)
