"""What a node sends the client, decoded once into typed objects.

Every reply and notification passes through here on its way in: the frames are
decoded and checked as untrusted input (wire/replies, wire/notifications,
wire/results) and turned into the frozen dataclasses below.  The rest of the
client (session, agent, Client) reads attributes; no other client module indexes
a node's raw maps.

* :func:`decode_reply_frames` -> :class:`ReplyOk` or :class:`ReplyError` (the id
  says which request it answers; the result is still unchecked, because only the
  request's op says what shape it must have);
* :func:`decode_result` -> the typed result of an op (:class:`InstancesSnapshot`,
  :class:`ServicesPage`, :class:`ClusterView`, :class:`SessionRenewal`,
  :class:`BatchOutcome`), or the
  checked map for results the client hands to the user as they are (ping, stats);
* :func:`decode_notification_frames` -> :class:`ServiceDelta` or :class:`ServiceSync`.

Each raises :class:`RemoteProtocolError` naming what was wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshreg.client.configs import (
    ConfigChanged,
    decode_config_notification,
    decode_config_result,
    is_config_topic,
)
from meshreg.errors import RemoteProtocolError
from meshreg.model import Instance, InstanceId, InstanceList, ServiceKey
from meshreg.wire.notifications import decode_notification
from meshreg.wire.replies import decode_reply
from meshreg.wire.results import check_result

MAX_ERROR_MESSAGE = 4096  # chars of a node's error message kept (it is shown to users)
MAX_RETRY_AFTER = 60.0  # s; a rate limit's wait above it is not taken (the call fails)


# -- replies -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplyOk:
    request_id: int
    result: Any  # checked by decode_result once the request's op is known


@dataclass(frozen=True)
class ReplyError:
    request_id: int
    code: int
    message: str
    unwritten: bool = False  # ``error.written`` false: a config write that wrote nothing
    revision: int | None = None  # ``error.revision``: a config_get's NOT_FOUND of a delete
    current: int | None = None  # ``error.current``: a CAS's CONFLICT, the current revision
    retry_after: float | None = None  # ``error.retry_after``: a rate limit's wait, in s
    rate: int | None = None  # ``error.rate``: the write rate's limit, writes per second


Reply = ReplyOk | ReplyError


def decode_reply_frames(frames: list[bytes]) -> Reply:
    """A DEALER's frames ``['', body]`` -> the reply; RemoteProtocolError if unreadable."""
    if len(frames) != 2 or frames[0] != b"":
        raise RemoteProtocolError(f"{len(frames)} frames instead of ['', body]")
    msg = decode_reply(frames[1])
    if msg["ok"]:
        return ReplyOk(msg["id"], msg.get("result"))
    err = msg["error"]
    message = str(err.get("message", ""))[:MAX_ERROR_MESSAGE]
    revision = err.get("revision")
    if revision is not None and (type(revision) is not int or not 0 < revision < 2**63):
        raise RemoteProtocolError(f"error reply: 'revision' {revision!r} is not a revision")
    current = err.get("current")  # (0: no such data id; its own key: older clients refuse
    if current is not None and (type(current) is not int or not 0 <= current < 2**63):
        current = None  # a 'revision' of 0). Informative only: a bad one is left out
    retry_after = err.get("retry_after")  # a rate limit's refusal: when to send it again
    if type(retry_after) not in (int, float) or not 0 <= retry_after <= MAX_RETRY_AFTER:
        retry_after = None  # informative only: a bad one is left out (the call fails)
    rate = err.get("rate")
    if type(rate) is not int or not 0 < rate < 2**31:
        rate = None  # informative only, as above
    return ReplyError(
        msg["id"], err["code"], message, err.get("written") is False, revision, current,
        None if retry_after is None else float(retry_after), rate,
    )  # fmt: skip


# -- results -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RevisionCheck:
    """The ``revisions`` result: the node's epoch and the indices of the stale entries."""

    epoch: int
    stale: tuple[int, ...]


@dataclass(frozen=True)
class InstancesSnapshot:
    """The ``instances`` result: a service's list at (epoch, revision)."""

    epoch: int | None
    revision: int
    instances: tuple[Instance, ...]
    protected: bool = False
    protect_threshold: float | None = None  # None: not sent (the last known one holds)
    service_metadata: dict[str, str] | None = None  # None: not sent
    uptime: float | None = None  # s the answering node has been up (None: not sent)
    synced: bool = False  # the node caught up from its peers: its list is the cluster's
    # s the node's table has collected registrations (None: not sent): young after a
    # whole-cluster restart though synced (review33 F1)
    table_age: float | None = None

    def listing(self) -> InstanceList:
        """As the user gets it from a query answered by the node."""
        return InstanceList(
            list(self.instances),
            self.revision,
            self.epoch,
            self.protected,
            dict(self.service_metadata or {}),
        )


@dataclass(frozen=True)
class ServicesPage:
    services: tuple[str, ...]
    next_cursor: Any  # None on the last page; otherwise sent back as it came
    count: int | None = None  # services in the namespace and group (None: not sent)
    groups: tuple[str, ...] = ()  # the group of each service, in the same order


@dataclass(frozen=True)
class NamespaceInfo:
    """A namespace a node holds something in: its services (with instances or settings)
    and its live configs (data ids that are not deleted)."""

    namespace: str
    services: int
    configs: int


@dataclass(frozen=True)
class NamespacesPage:
    namespaces: tuple[NamespaceInfo, ...]
    next_after: str | None  # None on the last page


@dataclass(frozen=True)
class Member:
    id: str
    address: str  # host:port of its request socket
    state: str  # "up", "down", ...


_OWNING = ("up", "resyncing")  # member states that own services


@dataclass(frozen=True)
class ClusterView:
    node: str
    members: tuple[Member, ...]
    raw: Mapping[str, Any]  # the checked map, for ``Client.cluster()``

    def up(self) -> tuple[Member, ...]:
        """The members that own services (a node resyncing after a stall does: it says
        so of itself while it refuses reads)."""
        return tuple(m for m in self.members if m.state in _OWNING)

    def majority(self) -> tuple[int, int, bool]:
        """(configured members the node sees up, itself included; configured members;
        whether that is a majority)."""
        rows = [m for m in self.raw.get("members", ()) if m.get("configured", True)]
        up = sum(1 for m in rows if m.get("state") in _OWNING)
        return up, len(rows), up * 2 > len(rows)


@dataclass(frozen=True)
class EntryRefusal:
    """A ``register_batch`` entry the node refused (it changed nothing)."""

    code: int
    message: str


@dataclass(frozen=True)
class BatchOutcome:
    """The ``register_batch`` result: per entry, None (registered) or its refusal, and
    the stamp a registered one left (None: not told, an older node)."""

    results: tuple[EntryRefusal | None, ...]
    stamps: tuple[int | None, ...] = ()


@dataclass(frozen=True)
class SessionRenewal:
    instances: int  # instances the node holds in the session
    known: bool | None  # False: the node had never heard of the session (None: not said)
    ready: bool = True  # False: the node is still catching up (the two above may lag)
    minority: tuple[int, int] | None = None  # (members up, members): it sees no majority
    unhealthy_after: float | None = None  # the node's (s): renew at least 3 times within it
    # asked for (``list``): the session's instances on the node, as (group, service, ip,
    # port, cluster); ``held_more``: it holds more than it named
    held: tuple[tuple[str, str, str, int, str], ...] | None = None
    held_more: bool = False
    # the node's instance set in the session as one number (model ``session_member_hash``
    # summed mod 2**64; None: an older node): same count, other set (review78 F4)
    digest: int | None = None


def snapshot_from_map(r: Mapping[str, Any]) -> InstancesSnapshot:
    """A checked ``instances`` result (wire/results) -> InstancesSnapshot."""
    threshold = r.get("protect_threshold")
    metadata = r.get("service_metadata")
    uptime = r.get("uptime")
    table_age = r.get("table_age")
    return InstancesSnapshot(
        r.get("epoch"),
        r.get("revision", 0),
        tuple(Instance.from_wire(d) for d in r["instances"]),
        bool(r.get("protected", False)),
        float(threshold) if threshold is not None else None,
        {str(k): str(v) for k, v in metadata.items()} if metadata is not None else None,
        float(uptime) if uptime is not None else None,
        r.get("synced") is True,
        float(table_age) if table_age is not None else None,
    )


def decode_result(op: str, raw: Any) -> Any:
    """The typed result of ``op``; RemoteProtocolError when it has the wrong shape.
    Writes (register, beat, ...) return nothing the client reads: passed through."""
    if op.startswith("config_"):  # the configuration center (client/configs.py)
        return decode_config_result(op, raw)
    r = check_result(op, raw)
    if op == "instances":
        return snapshot_from_map(r)
    if op == "revisions":
        return RevisionCheck(r["epoch"], tuple(r["stale"]))
    if op == "services":
        count = r.get("count")
        return ServicesPage(
            tuple(s["service"] for s in r["services"]),
            r.get("next_cursor"),
            count if type(count) is int else None,
            tuple(s["group"] for s in r["services"]),
        )
    if op == "namespaces":
        return NamespacesPage(
            tuple(
                NamespaceInfo(n["namespace"], n["services"], n["configs"]) for n in r["namespaces"]
            ),
            r.get("next_after"),
        )
    if op == "cluster":
        members = tuple(Member(m["id"], m["address"], m["state"]) for m in r["members"])
        return ClusterView(r["node"], members, r)
    if op == "session_renew":
        seen = (r["members_up"], r["members"]) if "members" in r and "members_up" in r else None
        unhealthy = r.get("unhealthy_after")
        held = r.get("held")
        return SessionRenewal(
            r["instances"],
            r.get("known"),
            r.get("ready") is not False,
            seen,
            float(unhealthy) if unhealthy is not None else None,
            None
            if held is None
            else tuple((h["group"], h["service"], h["ip"], h["port"], h["cluster"]) for h in held),
            r.get("held_more") is True,
            r.get("digest"),
        )
    if op == "register_batch":
        results = tuple(None if e is None else EntryRefusal(e[0], e[1]) for e in r["results"])
        stamps = r.get("stamps")
        told = tuple(stamps) if stamps is not None and len(stamps) == len(results) else ()
        return BatchOutcome(results, told)
    return r


# -- notifications -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceDelta:
    """A change to a service: apply it on top of ``base`` to reach ``revision``."""

    key: ServiceKey
    epoch: int
    revision: int
    base: int | None
    upsert: tuple[Instance, ...] = ()
    remove: tuple[InstanceId, ...] = ()
    protect_threshold: float | None = None  # None: unchanged
    service_metadata: dict[str, str] | None = None  # None: unchanged


@dataclass(frozen=True)
class ServiceSync:
    """The node's current revision of a service (nothing to apply; a gap if it differs)."""

    key: ServiceKey
    epoch: int
    revision: int


Notification = ServiceDelta | ServiceSync
Pushed = Notification | ConfigChanged  # what a SUB delivers: a service's or a config's change


def notification_from_map(msg: Mapping[str, Any]) -> Notification:
    """A checked notification map (wire/notifications) -> ServiceDelta or ServiceSync."""
    key = ServiceKey(msg["namespace"], msg["group"], msg["service"])
    if msg["kind"] == "sync":
        return ServiceSync(key, msg["epoch"], msg["revision"])
    threshold = msg.get("protect_threshold")
    metadata = msg.get("service_metadata")
    return ServiceDelta(
        key,
        msg["epoch"],
        msg["revision"],
        msg.get("base"),
        tuple(Instance.from_wire(d) for d in msg.get("upsert") or ()),
        tuple(InstanceId(ip, port, cluster) for ip, port, cluster in msg.get("remove") or ()),
        float(threshold) if threshold is not None else None,
        {str(k): str(v) for k, v in metadata.items()} if metadata is not None else None,
    )


def decode_notification_frames(frames: list[bytes]) -> Pushed:
    """A SUB's frames [topic, body] -> the notification; RemoteProtocolError if malformed."""
    if frames and is_config_topic(frames[0]):
        return decode_config_notification(frames)
    return notification_from_map(decode_notification(frames))
