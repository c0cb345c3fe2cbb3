"""The messages nodes exchange, as the core sees them (parsed and checked by wire/peer).

The core owns these types; wire encodes them and parses untrusted bytes into them.
Replication (PUB/SUB): ``Beacon``, ``ReplicatedDelta`` (one ``ServicePayload``),
``SessionBeats``, ``DigestSummary``.  Replies to the core's peer calls:
``DigestPage`` (``digests``), ``ReconcileReply`` (``reconcile``), or
``InvalidReply`` when wire found a reply malformed.  The bounds below are the
core's: it never sends more in one message, and wire accepts no more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from meshreg.model import InstanceId, ServiceKey, hot_value

if TYPE_CHECKING:  # an annotation only: a client parsing its requests loads no effects
    from meshreg.core.effects import InstanceView

MAX_DIGEST_PAGE = 2000  # services per ``digests`` reply
MAX_RECONCILE_SERVICES = 64  # services per ``reconcile`` request
MAX_SESSION_ENTRIES = 4096  # session renewals in one ``sessions`` message (~250 KB)


@dataclass(frozen=True, slots=True)
class Beacon:
    node: str
    address: str
    epoch: int
    ready: bool
    seq: int
    members: tuple[str, ...] | None = None  # the sender's member view (None: not told)
    configured: tuple[str, ...] | None = None  # ids its peer list names (None: not told)
    held: tuple[str, ...] | None = None  # ids it holds out of the members (a crash loop)
    wall: int | None = None  # its wall clock when sent, ms since the epoch (clock skew)
    # ids of the peers it hears by request only and cannot reach (their P+2 and P+3):
    # each pushes it its changes (core/distro ``_push_changes``)
    unreachable: tuple[str, ...] | None = None
    # ids the member views it knows (its own, its peers') name and it does not hear: a
    # peer that hears all it knows of may still not hear everyone (review16 F3)
    unheard: tuple[str, ...] | None = None
    # how many members its peer list names, itself included (with ``configured``: whether
    # its list and ours can make two disjoint config majorities, core/membership
    # ``majorities_may_miss``; review25 F4)
    listed: int | None = None
    # its last: it is stopping (SIGTERM): count it down now, not after peer_timeout
    # (review27 F1: config writes to the data ids it owned failed for 3 s)
    leaving: bool = False
    # ms its registry table has been collecting registrations (``table_age`` of reads):
    # since its start, or since the oldest start among the peers it caught up from; a
    # whole-cluster restart makes every table young at once (review33 F1).  None: an
    # older node (not told)
    table_age: int | None = None
    # per peer it samples (node id, ms): how far its wall clock ran ahead of that peer's
    # by that peer's beacons, the least of its samples (a beacon's delay only adds; < 0:
    # behind).  With the receiver's own samples of the sender, a bound both ways on the
    # pair's offset, whatever the delays (core/distro ``_clock_lead``).  None: not told
    leads: tuple[tuple[str, int], ...] | None = None
    # its ``unhealthy_after``, ms: a node tells its clients the least of the members' it
    # hears, so a client renewing through a node not yet restarted by a rolling restart
    # that lowered it renews fast enough for the restarted ones.  None: an older node
    unhealthy_ms: int | None = None


@hot_value  # frozen to mypy; one per replicated delta (meshreg/model)
class ServicePayload:
    """One service's records and tombstones, as replicated."""

    key: ServiceKey
    upserts: tuple[InstanceView, ...]
    removals: tuple[tuple[InstanceId, int, int], ...]  # (id, tombstone version, alive)
    settings: tuple[float, int, dict[str, str]] | None = None  # (threshold, version, metadata)
    # operator overrides (core/overrides): (id, weight, enabled, weight's stamp, enabled's
    # stamp); None: not set
    overrides: tuple[tuple[InstanceId, float | None, bool | None, int, int], ...] = ()
    # the removals that are of one session only (core/store ``_written_before``): (id,
    # session, base); a removal not listed outranks every copy written before it
    scopes: tuple[tuple[InstanceId, str, int], ...] = ()


@hot_value  # frozen to mypy; one per replicated delta (meshreg/model)
class ReplicatedDelta:
    node: str
    epoch: int
    seq: int
    payload: ServicePayload


@dataclass(frozen=True, slots=True)
class SessionBeats:
    """Client session renewals a node received: (session, namespace, alive stamp) each."""

    node: str
    epoch: int
    entries: tuple[tuple[str, str, int], ...]


@dataclass(frozen=True, slots=True)
class DigestSummary:
    node: str
    epoch: int
    services: int
    digest: int


@dataclass(frozen=True, slots=True)
class DigestPage:
    """One page of a ``digests`` listing: (key, digest, instances) per service, in
    ascending key order; ``more``: later pages follow.  A member's answer to the call
    (core/distro), and a peer's answer as wire/peer parses it."""

    entries: tuple[tuple[ServiceKey, int, int], ...]
    more: bool
    node: str = ""  # the listing member (sent; a parsed reply does not need it)


@dataclass(frozen=True, slots=True)
class ReconcileReply:
    """A ``reconcile`` result: the answering member's merged payload of each service
    it was sent (its answer, and a peer's answer as wire/peer parses it)."""

    services: tuple[ServicePayload, ...]


@dataclass(frozen=True, slots=True)
class InvalidReply:
    """A reply to a peer call that failed validation (wire/peer): what failed."""

    reason: str


CallReply = DigestPage | ReconcileReply | InvalidReply
"""What ``peer_reply`` takes: a peer call's result, parsed by wire/peer."""


def payload_stamps(p: ServicePayload) -> int:
    """The highest version stamp a payload carries (what the receiver's clock bounds)."""
    top = p.settings[1] if p.settings is not None else 0
    for v in p.upserts:
        top = max(top, v.version, v.alive, v.down)
    for _, t_version, t_alive in p.removals:
        top = max(top, t_version, t_alive)
    for o in p.overrides:
        top = max(top, o[3], o[4])
    return top
