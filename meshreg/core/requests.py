"""The requests the core handles (its inputs), parsed by meshreg.wire from untrusted bytes.

The core owns these types; wire depends on core, never the reverse.  Each request is
a frozen dataclass with its ``req_id`` and, as a class attribute, its wire ``op``.
Client requests (``Request``) come from the client port, or forwarded by a peer on the
peer port; ``ListDigests``, ``Reconcile`` and ``PushSessions`` only from peers (core/distro).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey

if TYPE_CHECKING:  # annotations only: a client parsing its own requests loads no peer types
    from meshreg.core.cluster_messages import Beacon, ServicePayload, SessionBeats

DEFAULT_SERVICES_PAGE = 1000  # services per ``services`` reply when not asked (~50 KB)

# The timing contract of a registry write's ``deadline`` (PROTOCOL.md 2.1, "Deadline"), in
# one place: the client sends its attempt's end plus DEADLINE_SLACK; a node that forwards
# the write answers by the deadline less FORWARD_LEAD (the owner's answer, or its own
# fallback, ``DistroNode.forward_wait``), so the answer reaches the client FORWARD_MARGIN
# before its attempt ends, instead of the client giving up on a node that is working on
# its write (review13, F-freeze-reg: the owner frozen, every write failed at the time-out).
DEADLINE_SLACK = 0.5  # s past the attempt's end (clock differences between client and node)
FORWARD_MARGIN = 0.3  # s; the answer's trip back to the client and its loop turns
FORWARD_LEAD = DEADLINE_SLACK + FORWARD_MARGIN  # s before the deadline a forward's wait ends
FORWARD_MIN_WAIT = 0.1  # s; the least a forward waits for the owner (a LAN round trip and
# the owner's turn take milliseconds): a short attempt, or a client clock behind the node's
# s a node waits for the owner's answer to a beat it forwards, then applies it itself: a
# beat carries no deadline, and the client's attempt (1 s by default) must hear a working
# server's answer when the owner is stopped or just cut off (a peer timeout before the
# server counts it down); with ``peer_request_timeout`` (2 s) it gave up on its server
# and failed over to the next one (the cut-off owner itself, in the chaos test
# test_cut_off_owner's first version)
BEAT_FORWARD_WAIT = 0.5


@dataclass(frozen=True, slots=True)
class RegisterInstance:
    req_id: int
    key: ServiceKey
    instance: InstanceId
    weight: float
    enabled: bool
    metadata: dict[str, str]
    session: str | None = None  # the client session keeping it alive (None: its own beats)
    deadline: float | None = None  # wall time (s) after which it is void (PROTOCOL.md 2.1)
    after: int | None = None  # the stamp of the client's previous write of it ("After")
    op = "register"


@dataclass(frozen=True, slots=True)
class EntryRejected:
    """An entry of a ``register_batch`` that failed its checks: its per-entry result."""

    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class RegisterBatch:
    """Many registrations of one namespace in one request (``register_batch``).

    ``entries`` in request order: a ``RegisterInstance`` (with the batch's ``req_id``)
    for each entry that passed its checks, an ``EntryRejected`` for each that did not.
    Each entry gets its own result; a rejected one changes nothing."""

    req_id: int
    namespace: str
    entries: tuple[RegisterInstance | EntryRejected, ...]
    op = "register_batch"


@dataclass(frozen=True, slots=True)
class SessionOpen:
    """Open (or renew) a client session in a namespace (core/sessions).

    ``session`` None: the node chooses the id."""

    req_id: int
    namespace: str
    session: str | None
    op = "session_open"


@dataclass(frozen=True, slots=True)
class SessionRenew:
    """Renew a session: every instance registered in it counts as beating."""

    req_id: int
    namespace: str
    session: str
    # list the session's instances in the reply (``SessionRenewed.held``): the client
    # holds fewer than the node says and looks for those it no longer registers
    listed: bool = False
    op = "session_renew"


@dataclass(frozen=True, slots=True)
class SessionClose:
    """Close a session: deregister every instance registered in it."""

    req_id: int
    namespace: str
    session: str
    deadline: float | None = None  # wall time (s) after which it is void (PROTOCOL.md 2.1)
    op = "session_close"


@dataclass(frozen=True, slots=True)
class DeregisterInstance:
    req_id: int
    key: ServiceKey
    instance: InstanceId
    deadline: float | None = None  # wall time (s) after which it is void
    after: int | None = None  # the stamp of the client's previous write of it ("After")
    op = "deregister"


@dataclass(frozen=True, slots=True)
class Beat:
    req_id: int
    key: ServiceKey
    instance: InstanceId
    op = "beat"


@dataclass(frozen=True, slots=True)
class UpdateInstance:
    """An operator's override of an instance (drain: enabled=False; weight), kept over
    the provider's own values (core/overrides); ``clear``: drop it."""

    req_id: int
    key: ServiceKey
    instance: InstanceId
    weight: float | None
    enabled: bool | None
    deadline: float | None = None  # wall time (s) after which it is void
    clear: bool = False  # drop the override: the provider's own values apply again
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
    deadline: float | None = None  # wall time (s) after which it is void (PROTOCOL.md 2.1)
    op = "service_set"


@dataclass(frozen=True, slots=True)
class QueryInstances:
    req_id: int
    key: ServiceKey
    healthy_only: bool
    op = "instances"


@dataclass(frozen=True, slots=True)
class CheckRevisions:
    """Which of a client's views of a namespace's services are stale on this node
    (docs/PROTOCOL.md ``revisions``): the periodic resync of a watcher in one request, so
    an idle client costs one request per resync, not one pull per watched service."""

    req_id: int
    namespace: str
    epoch: int  # the epoch the client's views were pulled in (another: every one is stale)
    # (group, service, revision the view holds, whether it holds instances)
    entries: tuple[tuple[str, str, int, bool], ...]
    # the client's read access, (group, service) -> may it read it (None: everything);
    # set by the runtime from the ACL, never on the wire: one it may not read is stale
    visible: Callable[[str, str], bool] | None = field(default=None, compare=False)
    op = "revisions"


@dataclass(frozen=True, slots=True)
class ListServices:
    """One page of a namespace's services (docs/PROTOCOL.md, ``services``)."""

    req_id: int
    namespace: str
    group: str | None  # None: every group of the namespace
    page_size: int = DEFAULT_SERVICES_PAGE
    after: tuple[str, str] | None = None  # (group, service) from the cursor; None: first page
    # a cursor the node sealed (it named a service the client may not read): the runtime
    # opens it into ``after`` (meshreg/security/cursors)
    sealed: str | None = None
    # the client's read access, (group, service) -> may it read it (None: everything);
    # set by the runtime from the ACL, never on the wire
    visible: Callable[[str, str], bool] | None = field(default=None, compare=False)
    op = "services"


# services a filtered ``services`` page examines at most (a client that may read few of a
# namespace's many services: the page ends early with a sealed cursor, not an O(N) scan)
SERVICES_SCAN_LIMIT = 5000


DEFAULT_NAMESPACES_PAGE = 1000  # namespaces per ``namespaces`` reply unless asked


@dataclass(frozen=True, slots=True)
class ListNamespaces:
    """One page of the namespaces this node holds something in, by name (docs/PROTOCOL.md
    ``namespaces``): a backup script finds every namespace to export, a console lists
    tenants; ``stats`` names only the largest."""

    req_id: int
    after: str = ""  # the last namespace of the previous page; "": from the first
    page_size: int = DEFAULT_NAMESPACES_PAGE
    # live data ids per namespace (the configuration center's), set by the runtime; the
    # registry's services the core counts itself
    configs: Mapping[str, int] = field(default_factory=dict, compare=False)
    # the namespaces the client may read something in (None: every one); set by the
    # runtime from the ACL, never on the wire: the others are not named
    visible: Callable[[str], bool] | None = field(default=None, compare=False)
    # the services the client may read (None: every one); set with ``visible``: only they
    # are counted, and a namespace is named only where it may read a service or a data
    # id (review30 F2: the totals said what a confined key may not read)
    readable: Callable[[ServiceKey], bool] | None = field(default=None, compare=False)
    # the namespaces the client may read whole (None: none known): counted without
    # looking at their services (review37 F6: 180 ms of the loop per request)
    whole: Callable[[str], bool] | None = field(default=None, compare=False)
    op = "namespaces"


@dataclass(frozen=True, slots=True)
class GetStats:
    req_id: int
    op = "stats"


@dataclass(frozen=True, slots=True)
class Ping:
    req_id: int
    op = "ping"


@dataclass(frozen=True, slots=True)
class GetCluster:
    """The member view (``meshreg cluster``; clients use it to find owners)."""

    req_id: int
    op = "cluster"


Request = (
    RegisterInstance
    | RegisterBatch
    | DeregisterInstance
    | Beat
    | UpdateInstance
    | SetService
    | QueryInstances
    | CheckRevisions
    | ListServices
    | ListNamespaces
    | GetStats
    | Ping
    | GetCluster
    | SessionOpen
    | SessionRenew
    | SessionClose
)
"""A client request (the client plane; a peer may forward the writes among them)."""


@dataclass(frozen=True, slots=True)
class ListDigests:
    """The ``digests`` peer op: a page of the services the answering member is
    responsible for, after ``cursor``."""

    req_id: int
    cursor: ServiceKey | None
    limit: int
    node: str | None = None  # the asking member's id (None: it did not say)
    ready: bool = True  # False: the asking member is still catching up
    op = "digests"

    @property
    def caller(self) -> str | None:
        """The asking member's id when it says it is catching up (else None)."""
        return None if self.ready else self.node


@dataclass(frozen=True, slots=True)
class Reconcile:
    req_id: int
    node: str
    services: tuple[ServicePayload, ...]
    op = "reconcile"


@dataclass(frozen=True, slots=True)
class PushSessions:
    """The ``sessions`` peer op: the renewals a node received, sent over the request
    path as well as published (a second path: a replication stream stalled by loss
    does not silence every session renewed through its node).  ``relayed``: a peer
    passes on renewals another node received, to a node that does not hear it (two
    cuts that cross: core/distro ``_set_relays``); never relayed again."""

    req_id: int
    beats: SessionBeats
    relayed: bool = False
    op = "sessions"


@dataclass(frozen=True, slots=True)
class Join:
    """The ``join`` peer op: a member whose beacons show it does not hear some of the
    members the sender hears (a peer list that differs, e.g. a node added to its own
    list only) is given their addresses; it subscribes to the ones it did not know, so
    every node hashes over the same members (docs/DISTRO.md "Joining")."""

    req_id: int
    node: str  # the introducing member's id
    addresses: tuple[str, ...]  # host:port of the members it hears (itself included)
    op = "join"


@dataclass(frozen=True, slots=True)
class PushBeacon:
    """The ``beacon`` peer op: a node's beacon, sent over the request path to every peer
    that is up as well as published (a second path, as for sessions): a replication
    stream lost one way (a firewall missing port P+2, a blackholed flow) must not take
    the node out of that peer's view while the two still talk (review14c F1/F2)."""

    req_id: int
    beacon: Beacon
    op = "beacon"


PeerRequest = ListDigests | Reconcile | PushSessions | Join | PushBeacon
"""A request only a peer sends (the peer plane)."""


def services_cursor(group: str, service: str) -> str:
    """The ``next_cursor`` of a ``services`` page that ended at (group, service).

    Opaque to clients; it names the last service listed (``/`` is outside the
    name alphabet, so it splits unambiguously), and the next page resumes after
    it even if that service is gone by then.
    """
    return f"{group}/{service}"
