"""The client's policies, sans-IO: what to send, to whom, when, and what to tell the user.

Theory of operation
-------------------
:class:`ClientSession` holds no socket, reads no clock and starts no thread.  Its
inputs are user commands (:data:`Command`), decoded replies and notifications
(meshreg/client/messages), the outcome of a connection or a direct send, and
``tick(now)``; each input returns the :data:`Action` list the I/O loop carries out
(meshreg/client/agent.py): connect to a server, send a request, (un)subscribe a
topic, call a listener, save a list to disk, complete or fail a caller's call, log a
line.  ``next_wake(now)`` says when to tick next.  Time is the ``now`` passed in
(seconds, monotonic); the tests drive it with a fake clock.

Rules (each with its constant below):

* **Requests** are idempotent, matched to replies by id only.  At most
  ``MAX_IN_FLIGHT`` are in flight; more wait in a FIFO backlog.  A call has a whole
  budget (``timeout``) and an attempt budget (``attempt_timeout``).
* **Registry writes** carry, per attempt, a ``deadline`` (the attempt's end plus
  ``DEADLINE_SLACK``, wall clock) past which no node applies them; a node that forwards
  one answers ``FORWARD_LEAD`` before it (core/requests), so within the attempt.  One no
  node answered in time fails with ``OutcomeUnknownError`` listing each attempt (whom,
  as responsible node or forwarder by the view, how long): it may have been applied.
* **Failover and backoff.** An attempt without a reply makes the server suspect: the
  next server in the list is used and everything pending is sent again.  After a
  whole round of servers failed, further switches wait ``BACKOFF_BASE`` doubling to
  ``BACKOFF_MAX`` until some server answers.  A failover makes the loop move its
  SUB too (``ConnectServer``) and re-pull every watched service.  Away from its first
  server (``_home``: the list is in the client's own order), the client pings it every
  ``HOME_RETURN_INTERVAL`` and goes back once it answers ready and sees a majority
  (``_probe_home``), so a fleet spreads again after an outage.
* **Offline.** Once every server failed an attempt since the last answer from any node
  (``offline``), waiting again teaches nothing: a read of a service or data id with a
  disk copy is served from it at once (said once until a node answers, as after a
  time-out; for services with the others: see "Logging"), and so are the reads waiting
  when that becomes known; a read with no copy fails at once with the error a time-out
  would give.  Meanwhile one ``ping`` is always in flight to the current server (its
  budget reaches the next switch), so the backoff goes on with nothing else to send,
  and a node that comes back is heard at once on the current connection; the other
  servers are pinged straight (``OFFLINE_PROBES`` a round, one round every
  ``OFFLINE_PROBE_INTERVAL``), and the first of them that answers becomes the server at
  once (``_probe_others``): ``offline`` never outlives a node's return.  The first
  answer (or notification) ends it, and every service served stale is pulled again.
* **Routing.** While the client has registrations it refreshes the cluster view every
  ``VIEW_INTERVAL``; a write goes straight to its service's responsible node
  (``core.mapping.responsible_node``), and through the server when that node is not
  reachable (the view is then forgotten until refreshed).
* **Bulk registration.** ``RegisterBatch`` commands (``register_many``) go out as
  ``register_batch`` requests of at most ``BATCH_ENTRIES`` instances (and
  ``BATCH_BYTES``), at most ``BATCHES_IN_FLIGHT`` at once: the window bounds what a
  renewal can wait behind at the node.  With a cluster view, a batch holds the
  instances of one responsible node and goes straight to it.  Each entry gets its
  own result; refusals are logged once per server and kind, with a count.  A node
  without the op (UNKNOWN_OP) gets single ``register`` requests from then on.
* **Priority.** Session opens and renewals skip the request window and its backlog:
  they never queue behind registrations.
* **Liveness.** Per-instance beats every ``beat_interval`` (and one ``ping`` of the
  server: does it see a majority?); or, with a client session, one ``session_renew``
  for all of them.  A beat answered NOT_FOUND registers that
  instance again; UNAVAILABLE (a member still catching up) is left alone (the next
  beat retries; docs/PROTOCOL.md 5.2); other errors are logged.  A renewal that holds
  fewer instances than acknowledged ``SHORT_RENEWALS`` times in a row, or that the node
  does not know, registers the session's instances again (redo).  A node that does not
  know sessions (UNKNOWN_OP) turns the session off for good: per-instance beats.
  A session's renewals go out at least every ``unhealthy_after / BEATS_PER_UNHEALTHY``
  of the node (told by the ``session_open`` reply; never more often than every
  ``MIN_BEAT_INTERVAL``), said in one warning, so that a node tuned for fast failure
  detection does not see every instance flap between two beats (review24 F11); a
  per-instance client is told nothing (beat and ping replies do not carry it).
  A node whose session table (or this client's share of it) is full refuses the open
  or the renewal with RESOURCE_EXHAUSTED: the session is *suspended* (one log line),
  the registrations are kept alive with per-instance beats (those the node held in the
  session are registered again without it), and every ``SESSION_RETRY`` the client
  opens it again; once it is open, they are registered in it again (one batch) and
  one renewal keeps them alive as before.  A registration naming the session that a
  node refuses with RESOURCE_EXHAUSTED (it could not open the session there) is sent
  once more without it.
* **Watches.** A watched service is a pushed view (cache.ServiceView): deltas, a gap
  -> pull, a pull every ``resync_interval``.  A view kept only because it was read
  (``pinned``, no listener) and not read for ``PIN_IDLE`` is dropped at a resync (while
  a node answers): a read of many services once does not cost their pulls forever.  A
  watcher that sends nothing else pings every ``PROBE_INTERVAL`` so a dead server is
  noticed.
* **Empty protection.** An answer that would drop instances from a non-empty view, from
  a node younger than ``YOUNG_NODE_GRACE`` in an incarnation this client has not taken an
  answer from yet (a restart, or a node not heard before: it may still be catching up,
  or its providers may not have registered again), or whose young table started after a
  node last told us the view (a whole-cluster restart: trusted or not, it never saw those
  providers), is not believed: the view is kept and
  pulled again ``YOUNG_RECHECK`` later, until that node answers without dropping any, or
  is old enough (but a young node, caught up from its peers, that agrees with an empty
  list a trusted incarnation with a young table gave is believed, if those tables told us
  the view: a new cluster's nodes are all young).
  Otherwise an answer or push that would empty it makes the client ask
  another server (the same one, with one), and that answer is taken as it is; only an
  answer that contradicts the empty one is worth a warning (a confirmed scale to zero is
  an INFO line).  An emptying change this client made itself (its ``deregister`` or
  ``close()`` removed every instance left, within ``OWN_REMOVAL_WINDOW``) needs no
  second opinion.
* **Reading your writes.** For ``READ_YOUR_WRITES_WINDOW`` after this client's own write
  to a watched service, reads go to the server rather than to the pushed view.
* **Logging.** Problems are logged at most once per kind and server per ``LOG_INTERVAL``
  (with a count of those suppressed), never once per instance.  What concerns many
  watched services at once (a node's restart, a provider's scale to zero, an outage:
  lists served stale, then live data again; the same for listened configs) is one line
  per kind and server per ``LOG_INTERVAL`` naming how many services or data ids
  (``_note``): the first at once, the ones after it in the same interval summed up when
  it ends.
"""

from __future__ import annotations

import heapq
import itertools
import math
import traceback
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from meshreg.client.actions import (
    Action,
    CallListener,
    Complete,
    ConnectServer,
    DirectSend,
    Fail,
    LogLine,
    SaveToDisk,
    SendRequest,
    UnwatchTopic,
    WatchTopic,
)
from meshreg.client.cache import Outcome, ServiceView
from meshreg.client.commands import (
    Call,
    CloseSession,
    Command,
    ConfigCall,
    ConfigListen,
    ConfigUnlisten,
    Deregister,
    ForgetRegistrations,
    Listener,
    ListRegistrations,
    NoteWrite,
    ReadCached,
    Register,
    RegisterBatch,
    Registration,
    ReplyTo,
    Settle,
    Shutdown,
    Subscribe,
    Unsubscribe,
)
from meshreg.client.config_session import CONFIG_WRITES, ConfigPolicy
from meshreg.client.configs import ConfigChanged
from meshreg.client.defaults import RETRYING_IN_BACKGROUND
from meshreg.client.messages import (
    BatchOutcome,
    ClusterView,
    EntryRefusal,
    InstancesSnapshot,
    Pushed,
    Reply,
    ReplyError,
    ReplyOk,
    RevisionCheck,
    ServiceDelta,
    SessionRenewal,
    decode_result,
)
from meshreg.configcenter.model import CONFIG_WRITE_ATTEMPT, ConfigKey
from meshreg.core.mapping import responsible_node
from meshreg.core.requests import DEADLINE_SLACK, FORWARD_LEAD
from meshreg.core.versions import highest_stamp_at
from meshreg.errors import (
    ClientClosedError,
    ErrorCode,
    MeshregError,
    OutcomeUnknownError,
    RemoteProtocolError,
    ServerUnreachableError,
    server_error,
    with_listener_kept,
    with_registration_kept,
)
from meshreg.log_limiter import LogBudget
from meshreg.model import (
    DEFAULT_CLUSTER,
    SESSION_DIGEST_MOD,
    InstanceId,
    ServiceKey,
    session_key_hash,
)
from meshreg.wire.limits import MAX_STAMP
from meshreg.wire.replies import encode_request
from meshreg.wire.results import split_address

WRITE_OPS = frozenset(("register", "deregister", "beat", "update", "service_set", "register_batch"))
# Registry writes carry a deadline: the wall time after which a node must not apply them
# (PROTOCOL.md 2.1, "Deadline"): this attempt's end, plus a margin for clock differences. An attempt
# that waits longer (a stopped node's socket, a forward whose owner does not answer) is
# void by then, and the client has sent it again elsewhere or given up: applied late, it
# could undo a later write of ours (a deregistration, a registration again).
# A node that forwards such a write answers it FORWARD_LEAD before its deadline (the owner's
# answer, or its own fallback), so the answer arrives before the attempt ends even when the
# owner is stopped (core/requests: the timing contract; DEADLINE_SLACK is defined there).
DEADLINE_OPS = frozenset(
    ("register", "deregister", "update", "register_batch", "service_set", "session_close")
)
# Config writes carry one too (a write waiting in a stopped owner's socket would land on
# top of the client's later writes: review19 F1); their time-outs are the config plane's
STAMPED_OPS = DEADLINE_OPS | CONFIG_WRITES
# s after a register try failed that its instance's deregister goes again, when one was
# made while it was out (``_undo_if_last_word``): past its copies' deadlines
UNDO_AFTER = DEADLINE_SLACK + 0.5
# s past a register copy's deadline (this client's clock) before a deregister goes again:
# the margin for a node whose clock is behind this client's (review72 F2)
COPY_CLOCK_MARGIN = 0.5
MAX_COPY_WINDOWS = 4096  # instances whose register copies are tracked before a prune pass
# Writes told the stamp they left, which the client's next write of the instance carries
# as ``after`` (PROTOCOL.md 2.1 "After"): stamped above it, whatever the nodes' clocks
AFTER_OPS = frozenset(("register", "deregister"))
# writes whose copies that were not answered are tracked until void (``_copies_out``)
COPY_TRACKED_OPS = frozenset(("register", "register_batch", "deregister"))
MAX_STAMPS_KEPT = 100_000  # instances whose last stamp is kept (the oldest go first)
# Writes whose time-out raises OutcomeUnknownError naming each attempt (beats: logged only)
UNKNOWN_OUTCOME_OPS = WRITE_OPS - {"beat"}
_READ_OPS = frozenset(("instances", "services"))  # a node catching up refuses them
CATCHING_UP_RETRY = 0.25  # s before a read refused by a node catching up is sent again
RATE_RETRY_MARGIN = 0.05  # s a call must have left after a rate limit's wait to send it again
MAX_IN_FLIGHT = 512  # requests awaiting a reply at once; more wait in the backlog (FIFO)
BACKLOG_HIGH = 8 * MAX_IN_FLIGHT  # requests waiting to be sent before commands wait too
SHORT_RENEWALS = 2  # renewals in a row holding fewer instances than acknowledged: redo
# renewals in a row holding more instances than this client holds in the session: the next
# one asks the node to name them, and those this client does not hold are deregistered
LONG_RENEWALS = 3
# s between tries to open the session again after a node refused it (RESOURCE_EXHAUSTED:
# its session table, or this client's share of it, is full); per-instance beats meanwhile
SESSION_RETRY = 30.0
# A node marks an instance unhealthy after ``unhealthy_after`` without a beat: at least this
# many beats (or renewals) fit in it, so one lost or late beat never marks it (Nacos: 5 s
# beats against 15 s)
BEATS_PER_UNHEALTHY = 3
MIN_BEAT_INTERVAL = 0.1  # s; never beat or renew more often, whatever a node says
CUT_SHORT = 0.1  # s; an attempt ended sooner was not timed out: its link went (errors say so)
VIEW_INTERVAL = 10.0  # s; how often a client with registrations refreshes the cluster view
# s a member learned from the view stays a server to fall back on after the last view that
# named it heard (or, never heard, after the first that named it): a member removed or
# never there (a typo in a node's list) was tried at every failover for good (an
# operations review: 11 minutes after)
LEARNED_MEMBER_TTL = 300.0
YOUNG_NODE_GRACE = 15.0  # s; a node up for less may list nothing only because providers
# have not registered again yet (three default beat intervals), or only part of a service
# while it catches up from its peers: what its lists drop waits
YOUNG_RECHECK = 1.0  # s; a list held back from a young node is pulled again this often
# s after this client's own deregister or close during which an emptying push of a
# service whose instances it all removed itself is its own doing: applied at once
OWN_REMOVAL_WINDOW = 10.0
NOTED_KEYS = 10_000  # distinct services a summed-up log line counts (more: not told apart)
# s a view kept only because it was read (no listener) stays watched after its last read
PIN_IDLE = 300.0
READ_YOUR_WRITES_WINDOW = 2.0  # s after a write during which reads bypass the pushed view
# s a watch waits for its first push (the node answers a subscription it admits with the
# service's revision at once) before saying the node may have refused it (review14b F5)
SUBSCRIPTION_CONFIRM = 5.0
BACKOFF_BASE = 0.5  # s; first pause after every server failed once
BACKOFF_MAX = 30.0  # s; longest pause between switches while no server answers
MAX_SERVERS = 64  # servers given plus cluster members learned from the view
PROBE_INTERVAL = 5.0  # s; a client that only watches pings its server this often
DIRECT_RETRY = 0.05  # s; wait before trying again a member whose connection is coming up
DIRECT_INSIST = 20  # tries (about 1 s) to reach a member that must answer (a confirmation)
# A server that sees no majority of the configured members: at most this many other
# servers are asked for their view, at most once per beat interval (and this often)
MAJORITY_PROBES, MAJORITY_PROBE_MIN, MAJORITY_PROBE_MAX = 8, 1.0, 60.0
# Offline: the other servers are pinged directly, at most this many per round (taken in
# turn from the list), one round this often; the first that answers becomes the server
OFFLINE_PROBES, OFFLINE_PROBE_INTERVAL = 8, 1.0
# s; a client on another server than its first (after a failover, an outage) pings its
# first this often and goes back to it once it answers ready and sees a majority: after
# an outage the fleet was left on the node that came back first (review51 F1: 160
# clients, 46/57/57 became 131/17/12 and stayed), as Consul's agents rebalance
HOME_RETURN_INTERVAL = 30.0
PULL_TIMEOUT = 3.0  # s; least budget of a watch's pull
# a register no node could take raises, and is kept and made once a node answers
KEPT_REGISTRATION = (
    "the registration is kept: it is made once a node answers (the client keeps trying "
    "every few seconds); deregister() drops it"
)
KEPT_REGISTER_RETRY = 3.0  # s between two tries of the kept registrations (Nacos 2: 3 s)
MAX_KEPT_REGISTRATIONS = 100_000  # kept at once (a caller in a loop: bounded memory)
DROPPED = MeshregError("the kept registration was dropped while a try was in flight")
# a first subscribe no node could answer raises, and keeps its listener (Nacos 2's redo)
KEPT_SUBSCRIBER = (
    "the listener is kept: it is called with the list once a node answers (the client "
    "keeps trying); unsubscribe() drops it"
)
# views checked in one ``revisions`` request at most, and their names' bytes (the node
# takes 1,000 entries and a 64 KiB body: names are up to 128 + 256 characters)
REVISIONS_CHUNK = 500
REVISIONS_CHUNK_BYTES = 48 * 1024
MAX_WHY = 500  # chars of an unreadable reply kept to explain a later time-out
BATCH_ENTRIES = 256  # instances per register_batch (the node takes up to 1000)
BATCH_BYTES = 48 * 1024  # bytes per register_batch body at most (the node's limit: 64 KiB)
BATCHES_IN_FLIGHT = 8  # register_batch requests awaiting a reply at once (~2,000 instances)
BULK_HIGH = 4 * BATCHES_IN_FLIGHT * BATCH_ENTRIES  # queued instances before commands wait


# what a handshake refusal says when the keys or the ACL are the cause
# (transport/handshakes ``_why``)
_KEY_REFUSALS = ("security mechanism mismatch", "authentication refused")


@dataclass(frozen=True)
class SessionSettings:
    beat_interval: float  # s; per-instance beats or one session renewal this often
    attempt_timeout: float  # s; one server's time to answer before the next is tried
    resync_interval: float  # s; watched services are re-pulled this often
    empty_protection: bool = True  # an empty list needs a second opinion
    secure: bool = False  # CURVE is on: an unanswered call hints at keys and the ACL
    labels: tuple[tuple[str, str], ...] = ()  # this client's labels (config gray release)
    wall_offset: float | None = None  # wall clock = now + this; None: writes carry no deadline
    # a call not sent yet fails as soon as every server refused the connection (nothing
    # listens there), not at its time-out: for one-shot commands (the CLI), which have
    # nothing to wait for; a long-lived client waits, a node may be starting
    fail_when_refused: bool = False


@dataclass(frozen=True)
class SessionStatus:
    """What the user's threads may read at any time (replaced whole, never mutated)."""

    server: str
    servers: tuple[tuple[str, int], ...]
    session_id: str | None  # None: sessions off, or fallen back on per-instance beats
    renewals_failed: int
    beat_every: float  # s between beats or renewals: beat_interval, or less (a node's timings)
    kept_registrations: int = 0  # registers no node could take yet (made once one answers)


@dataclass(slots=True)
class Pending:
    op: str
    body: bytes
    fields: dict[str, Any]
    timeout: float  # s; the whole call's budget, for the error message
    deadline: float  # absolute; the call fails after it
    attempt_deadline: float  # absolute; the server is suspected after it
    reply_to: ReplyTo = None
    on_reply: Callable[[Any], None] | None = None
    on_error: Callable[[BaseException], None] | None = None
    tried: list[str] = field(default_factory=list)
    via: str | None = None  # the member it goes straight to (None: the server)
    insist: int = 0  # tries left to reach ``via`` while its connection is being set up
    sent: int = 0  # attempts sent (a config write's re-sends carry ``resend``)
    attempts: list[tuple[str, float]] = field(default_factory=list)  # (to whom, when sent)
    owner: str | None = None  # a write: its responsible node's address by the view (None:
    # no view when it was first sent)
    delivered: bool = False  # it may have reached a node: sent on a connection whose
    # handshake completed (else it never left this client: review19 F8)
    direct_only: bool = False  # ``via`` or nothing: never through the server (a probe)
    # a read the server refused while catching up, sent to it again at ``attempt_deadline``
    # (every server refused it: they are all catching up, or there is only one)
    again: BaseException | None = None
    # a write of which one copy was refused unwritten while others were out (on_reply):
    # what that node said, for the error if no other copy answers
    refused_copy: str | None = None
    refusals: int = 0  # copies refused unwritten (all of them: the call was not applied)
    copies: int = 0  # copies that may have reached a node (sent on a live connection)
    late_resent: bool = False  # a copy refused as late was sent once more (``_late_copy``)
    queued: int = 0  # copies waiting on the server connection's handshake (may leave yet)
    budget: float = 1.0  # s; each attempt's time to answer (a config write's is longer:
    # every re-send keeps it, review70 F2)
    # a second opinion (empty protection): the server whose list it checks, whose answer
    # is taken only when no other server can give one (review70 F1)
    avoid: str | None = None
    # a write stamped with deadlines: each copy sent, (to whom, when it is void: its
    # deadline on this client's clock); no node applies a copy after its deadline
    voids: list[tuple[str, float]] = field(default_factory=list)

    def next_attempt(self, now: float) -> float:
        """The deadline of an attempt that starts now."""
        return min(self.deadline, now + self.budget)


@dataclass(slots=True)
class BulkChunk:
    """The handle of a ``RegisterBatch`` with one ``reply_to``: completed with the
    ``(index, error)`` of the items that failed once ``left`` reaches 0."""

    reply_to: ReplyTo
    left: int
    failed: list[tuple[int, BaseException]] = field(default_factory=list)
    late: set[int] = field(default_factory=set)  # items sent once more after a late refusal


def _refused_late(code: int, message: str) -> bool:
    """A write (or batch entry) refused because it reached the node after its deadline
    (core/registry, configcenter/replication: "... after its deadline ...")."""
    return code == ErrorCode.UNAVAILABLE and "after its deadline" in message


@dataclass(slots=True)
class KeptSlot:
    """The slot of a kept registration tried again in a ``register_batch``
    (``_try_kept``): ``done`` as for ``_register``; ``wanted`` False once it was dropped
    (deregistered while the batch was out)."""

    done: Callable[[BaseException | None], None]
    wanted: Callable[[], bool]
    late: bool = False  # sent once more after a late refusal (``_late_entry``)


# a registration waiting for (or in) a ``register_batch``: (registration, its slot: the
# caller's handle, a (BulkChunk, index), a KeptSlot, or None for a redo of the client's
# own; deadline; its try's number)
BulkItem = tuple[Registration, Any, float, int]


@dataclass(slots=True)
class RegisterTries:
    """One instance's register tries not answered yet (a caller's, a redo, a kept one's),
    each numbered as it began (``_try_began``): what a try's answer may still do is told
    by the numbers of the newest try begun, of the newest deregister handled meanwhile,
    and of the try whose answer the client holds (review65 F1: one flag per instance let
    a try older than the deregister count as current once a newer register began)."""

    out: int = 0
    begun: int = 0
    deregistered: int = 0
    held: int = 0

    def withdrawn(self, number: int) -> bool:
        """A deregister of the instance was handled after try ``number`` began."""
        return self.deregistered > number

    def current(self, number: int) -> bool:
        """Try ``number`` is still the last word: no deregister, no register since."""
        return self.deregistered < number and self.begun <= number

    def hold(self, number: int) -> bool:
        """Whether try ``number``'s "registered" is to be held (then it is): not
        withdrawn, and no later try's answer is held already."""
        if self.deregistered > number or self.held > number:
            return False
        self.held = number
        return True

    def last_word_deregister(self) -> bool:
        """No register began since the newest deregister (it is the caller's last word)."""
        return self.deregistered > self.begun


@dataclass
class Watch:
    view: ServiceView
    listeners: list[Listener] = field(default_factory=list)
    pulling: bool = False
    repull: bool = False  # a gap was seen while a pull was in flight
    fresh_reads_until: float = 0.0  # after our own write: read from the server, not the view
    pinned: bool = False  # kept without listeners: a service the client asked for
    read_at: float = 0.0  # the last read of the view (a pinned one is dropped PIN_IDLE after)
    recheck_at: float = math.inf  # pull again then: a young node's list was held back
    # when a node last told us this list (an answer taken, a push applied): a young table
    # started after it never saw the instances' providers (a whole-cluster restart)
    told_at: float = -math.inf
    confirming: tuple[str, str] | None = None  # (why, whose) an empty list awaits a 2nd opinion
    # while confirming: the server that emptied it pushed instances since (a redeploy of a
    # one-instance service): an empty second opinion is older than that (review72 F4)
    refilled: bool = False
    said_stale: bool = False  # logged that we serve a copy no node has confirmed
    # a first answer that listed nothing from a young node not caught up from its peers,
    # kept while another server is asked (its answer is taken instead; if none answers,
    # this one: ``_pull_failed``), with the server that gave it
    held_first: tuple[InstancesSnapshot, str] | None = None
    # subscribed on the current server then, and no push came since (inf: one came)
    awaiting_push_since: float = math.inf
    waiting: list[tuple[ReplyTo, Listener | None]] = field(default_factory=list)


def _ident_of(namespace: str, f: dict[str, Any]) -> tuple[ServiceKey, InstanceId]:
    """The instance a register or deregister (or a batch entry) names."""
    key = ServiceKey(namespace, f["group"], f["service"])
    return key, InstanceId(f["ip"], f["port"], f.get("cluster", DEFAULT_CLUSTER))


def _age(seconds: float) -> str:
    """A duration for a person: 42s, 17 min, 5.2 h, 90 days."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def malformed_reply_error(op: str, source: str, why: object) -> RemoteProtocolError:
    """The error a caller sees when a node answered with something we cannot read."""
    return RemoteProtocolError(
        f"{op}: the node at {source} sent a malformed reply: {why}; "
        "is it a meshreg node of a compatible version? check --server / MESHREG_SERVERS"
    )


class ClientSession:
    """One client's state and policies; see the module's theory of operation."""

    def __init__(
        self,
        servers: list[tuple[str, int]],
        settings: SessionSettings,
        session: tuple[str, str] | None = None,
        shuffle: Callable[[list[Any]], None] | None = None,
    ) -> None:
        """``session``: (namespace, session id) registrations are kept alive by (None:
        per-instance beats).  ``shuffle``: puts the members learned from the cluster view
        in this client's own order before they join the server list (the loop gives
        ``random.shuffle``; None: the view's order), so the clients of a node that dies
        do not all fail over to one member (review51 F2)."""
        self.settings = settings
        self.servers = list(servers)
        self._given = len(self.servers)  # the first ones: the caller's, never forgotten
        # learned server -> when a view last named it heard (or first named it at all)
        self._learned_at: dict[tuple[str, int], float] = {}
        self._unheard_dropped: set[tuple[str, int]] = set()  # forgotten, never heard since
        self.session = session
        self._shuffle = shuffle
        self.registrations: dict[tuple[ServiceKey, InstanceId], Registration] = {}
        self.watches: dict[ServiceKey, Watch] = {}
        self.closed = False
        self.renewals_failed = 0  # session renewals that got an error or no answer
        self.strays_dropped = 0  # instances deregistered again (``_drop_strays``)
        self.connect_errors: dict[str, str] = {}  # server -> why it could not be used
        self.epochs: dict[str, int | None] = {}  # server -> the incarnation it last answered
        # server -> until when the table of its last answer taken is young (YOUNG_NODE_GRACE)
        self._young_until: dict[str, float] = {}
        self._no_revisions: set[str] = set()  # servers that answered ``revisions`` UNKNOWN_OP
        self._catching_up_at: str | None = None  # refused a read as catching up: move on
        self._leaving: str | None = None  # why the next failover leaves its server, if not silence
        # who sent the reply being resolved (a request sent ``via`` a member may have been
        # answered by the server after all: review17 F7)
        self.replied_by = ""
        # a pull from (empty protection judges a restart per server, not per view)
        self.malformed: dict[str, tuple[str, float]] = {}  # server -> (its last unreadable
        # reply, when); forgotten when it answers properly
        self._now = 0.0
        self._out: list[Action] = []
        self._log = LogBudget()
        # (kind, server) -> (level, what is said of one service, of several, what they
        # are, services or data ids concerned): lines about many watched services or
        # listened data ids, said once per LOG_INTERVAL (``_note``); when each was last said
        # (level, text, many, what, keys, when the first key was noted)
        self._notes: dict[tuple[str, str], tuple[str, str, str, str, dict[Any, None], float]] = {}
        self._noted_at: dict[tuple[str, str], float] = {}
        self._own_removals: dict[tuple[ServiceKey, InstanceId], float] = {}  # -> when
        self._ids = itertools.count(1)
        self._pending: dict[int, Pending] = {}
        self._backlog: deque[tuple[int, Pending]] = deque()  # beyond MAX_IN_FLIGHT, FIFO
        self._earliest = math.inf  # <= every attempt deadline in flight
        self._server_index = 0
        self.server = self._address(0)  # the server in use, host:port
        self._session_acked = 0  # registrations in the session the node acknowledged
        # ... as one number: their model ``session_key_hash`` summed mod 2**64, the
        # renewal's ``digest`` of the same set (``_count_acked``, ``_set_acked``)
        self._session_digest = 0
        self._short_renewals = 0  # renewals in a row that held fewer than that
        # a node's [limits] write_rate_per_client, learned from a refusal (``error.rate``):
        # a re-registration of the session is given the time that rate needs
        self._write_rate: int | None = None
        # the server whose renewal, answered while it caught up, said it had never heard of
        # the session ("": none): its first renewal once ready that holds fewer instances
        # than acknowledged registers them again at once (a whole-cluster restart: the
        # renewal while catching up opened the session, the next one said "known" with
        # none held, and a second was awaited: 10 s unlisted, a review of 2026-12-07)
        self._unknown_while_catching_up = ""
        self._digest_differs = 0  # ... as many, but another set (by the digest)
        self._long_renewals = 0  # ... more than that (``_drop_strays``)
        self._list_session = False  # the next renewal asks the node to name them
        self._session_opened = False
        self._session_confirmed = False  # a node answered its open or a renewal
        # s between two renewals (or rounds of beats): beat_interval, or less for a node
        # whose unhealthy_after is short (``_learn_timings``)
        self.beat_every = settings.beat_interval
        self._timings_asked_at = -math.inf  # (``_ask_timings``)
        self._ask_at_handshake = False  # (``server_disconnected``, ``server_handshaken``)
        self._suspended: tuple[str, str] | None = None  # the session a refusal set aside
        self._session_retry_at = math.inf  # when to try opening it again (SESSION_RETRY)
        # The cluster view: writes go straight to a service's responsible node.
        self._members: tuple[str, ...] = ()
        self._member_address: dict[str, str] = {}
        self._next_view = 0.0
        self._next_majority_probe = 0.0  # (``_seek_majority``)
        self._next_offline_probe = 0.0  # (``_probe_others``)
        # this client's first server (its own order: Client shuffles the list given); away
        # from it, ``_probe_home`` asks it every HOME_RETURN_INTERVAL
        self._home = self._address(0) if self.servers else ""
        self._next_home_probe = math.inf
        self._home_probing = False
        self._offline_probe_from = 0  # the list index the next round starts after
        self._probing: set[str] = set()  # servers an offline probe is in flight to
        self._server_heard_at = -math.inf  # the current server's last reply or push
        self._majority_pause = 0.0  # s between two probes (doubling; 0 after a move)
        # the server's latest renewal or ping said it sees no majority either: a write
        # sent straight to an owner says no ``direct`` (a node cut off like our server
        # would refuse it for nothing: the server would forward it back there; review78
        # F2, two of four members down); False again with another server (``_use_server``)
        self._server_minority = False
        self._link_up = False  # the server connection's handshake completed (``delivered``)
        self._refused_by: set[str] = set()  # servers that refused a connection since a link
        # the last failure of its handshake since it was made: (what libzmq said, definitive)
        self._link_refused: tuple[str, bool] | None = None
        # the current connection attempt reached TCP (libzmq reports a retry after a
        # handshake failure too: this tells it from a connect that nothing accepted)
        self._attempt_tcp = False
        # its TCP connection is made (the port accepted it), whatever the handshake
        self._link_tcp = False
        # per server, what the offline error names (review59 F1, F4: it forgot it): a
        # definitive handshake refusal since its last handshake (keys, ACL: waiting cannot
        # cure it), and the servers whose connection completed a handshake before
        self._handshake_refused: dict[str, str] = {}
        self._handshaken: set[str] = set()
        # registers no node could take (review59 F2): made once a node answers
        self._kept_registrations: dict[tuple[ServiceKey, InstanceId], Registration] = {}
        self._kept_trying: set[tuple[ServiceKey, InstanceId]] = set()  # a try in flight
        # registrations a failed try of which may have reached a node (not unsent), until
        # registered or deregistered: a deregister of one kept must then be sent
        self._may_hold: set[tuple[ServiceKey, InstanceId]] = set()
        # register tries not answered yet, per instance (``_try_began``, ``_try_ended``):
        # a register and a deregister of one instance at once (two threads, a redo)
        self._register_tries: dict[tuple[ServiceKey, InstanceId], RegisterTries] = {}
        self._try_numbers = itertools.count(1)
        # deregisters to send again once a register's copies are past their deadlines (a
        # heap: when, order, instance, its id fields)
        self._undo_later: list[tuple[float, int, tuple[ServiceKey, InstanceId], dict[str, Any]]]
        self._undo_later = []
        self._undo_order = itertools.count()
        # registers to send again once a deregister's copies are void (when, order, ident)
        self._redo_later: list[tuple[float, int, tuple[ServiceKey, InstanceId]]] = []
        # per instance: until when a copy of a register of it that was not the one
        # answered (an earlier attempt's, held by a stalled node) may still be applied
        # (``Pending.voids``): a deregister made before then goes again after it, so
        # that the late copy cannot bring the instance back (review72 F2)
        self._copies_until: dict[tuple[ServiceKey, InstanceId], float] = {}
        # the same for a deregister's copies: a register made before they are void goes
        # again after them, so that a late copy cannot remove it for good (review73 F-C)
        self._dereg_copies_until: dict[tuple[ServiceKey, InstanceId], float] = {}
        # per instance, the highest stamp a node said a write of it left (``after``)
        self._stamps: dict[tuple[ServiceKey, InstanceId], int] = {}
        self._left_any = False  # some request may have left this client (a handshake)
        self._next_kept_try = math.inf
        self._next_kept_pull = math.inf  # the next pull of the watches kept never loaded
        # the server whose notifications the loop's SUB takes (it keeps it, subscriptions
        # and all, when it connects to the same server again)
        self._subscribed_on = ""
        # per replaced connection (its number): calls about to be failed as "never left"
        # (with that error), and the copies of calls in flight that were queued on it;
        # what they are depends on whether it completed a handshake the loop had not seen
        # yet (``previous_connection_closed``)
        self._connection = 0  # the number of the server connection (one per ConnectServer)
        self._settling: dict[int, list[tuple[int, Pending, MeshregError]]] = {}
        self._riding: dict[int, dict[int, int]] = {}
        self._next_probe = 0.0
        self._failed_switches = 0  # server switches since the last reply from anyone
        self._next_switch = 0.0  # before this, no switch again (backoff)
        self._backoff_rounds = 0  # switches made while backing off: the pause doubles
        self._silent: dict[str, None] = {}  # servers that failed an attempt since the last
        # answer from any node, in order (a dict: ordered, no duplicates)
        self._silent_since = 0.0  # when the first of them failed
        self.offline = False  # every server is in _silent: see "Offline"
        self._next_beat = self._next_resync = self._next_push_check = 0.0
        self._next_recheck = math.inf  # <= every watch's recheck_at
        # bulk registration: (registration, caller's handle, deadline) waiting for a batch
        # (and its try's number, ``_try_began``)
        self._bulk: deque[BulkItem] = deque()
        self._closing_client = False  # the client's close began: no registration from now
        self._abandoned: BaseException | None = None  # the loop ended (``abandon``): why
        self._listing: tuple[ReplyTo, float] | None = None  # close's list, and until when it
        # waits for the registrations in flight
        self._settle: tuple[ReplyTo, float] | None = None  # the close's last wait (Settle)
        self._batches_in_flight = 0
        self._batches_out: dict[int, list[Any]] = {}  # batch number -> its items, in flight
        self._batch_numbers = itertools.count(1)
        self._batches = True  # False: the server does not know register_batch (older)
        self.status = self._new_status()  # replaced whole when _status_changed is set
        self._status_changed = False
        self.configs = ConfigPolicy(self, dict(settings.labels))  # config_session.py

    # -- what the loop reads ---------------------------------------------------------------
    @property
    def backlog_full(self) -> bool:
        """Commands should wait: the requests already queued are enough to send."""
        return len(self._backlog) >= BACKLOG_HIGH or len(self._bulk) >= BULK_HIGH

    def watching(self, key: ServiceKey) -> bool:
        return key in self.watches

    def next_wake(self, now: float) -> float:
        """When ``tick`` has something to do next (at most a second away)."""
        wake = min(now + 1.0, self._next_beat, self._next_resync, self._earliest,
                   self._next_recheck, self._session_retry_at)  # fmt: skip
        if self._listing is not None:
            wake = min(wake, self._listing[1])
        if self._settle is not None:
            wake = min(wake, self._settle[1])
        if self._undo_later:
            wake = min(wake, self._undo_later[0][0])
        if self._redo_later:
            wake = min(wake, self._redo_later[0][0])
        if self.registrations:
            wake = min(wake, self._next_view)
        if self.watches or self.configs.listens:
            wake = min(wake, self._next_probe)
        for kind in self._notes:
            wake = min(wake, self._noted_at.get(kind, -math.inf) + self._log.interval)
        if not self.offline and self.server != self._home:
            wake = min(wake, self._next_home_probe)  # (inf: the next tick sets it)
        if self.offline:
            wake = min(wake, self._next_offline_probe)  # the other servers' probes
            if not self._pending and not self._backlog:
                wake = now  # the offline probe goes out (tick)
        return min(wake, self.configs.next_wake())

    def _address(self, index: int) -> str:
        host, port = self.servers[index]
        return f"{host}:{port}"

    def _new_status(self) -> SessionStatus:
        return SessionStatus(
            self.server,
            tuple(self.servers),
            self.session[1] if self.session is not None else None,
            self.renewals_failed,
            self.beat_every,
            len(self._kept_registrations),
        )

    def _list_registrations(self) -> None:
        """Answer the close's list once no registration is in flight (or its wait is
        over): one answered after the list would stay registered (review55 F3)."""
        if self._listing is None:
            return
        reply_to, until = self._listing
        in_flight = (
            self._bulk
            or self._batches_out
            or any(
                p.op == "register"
                for p in (*self._pending.values(), *(p for _, p in self._backlog))
            )
        )
        if in_flight and self._now < until:
            return
        self._listing = None
        ids = ("namespace", "group", "service", "ip", "port", "cluster")
        listed = [
            (r.key, r.iid, {k: r.fields[k] for k in ids}) for r in self.registrations.values()
        ]
        if self._closing_client:  # and what a node may apply yet: a register still out
            # (answered after the close's wait) or one that failed after it left (review72
            # F3): deregistered too, then again after it if it lands (``Settle``)
            for key, iid in sorted(self._registering() | self._may_hold):
                if (key, iid) not in self.registrations:
                    names = {"namespace": key.namespace, "group": key.group}
                    listed.append((key, iid, {**names, "service": key.service, **iid._asdict()}))
        self._out.append(Complete(reply_to, tuple(listed)))

    def _check_settled(self) -> None:
        """Answer the close's ``Settle`` once nothing of this client's registrations is
        out (a register try, a deregister to send again, a deregister unanswered), or at
        its end with the instances left unsettled."""
        if self._settle is None:
            return
        reply_to, until = self._settle
        deregistering = [
            p for p in (*self._pending.values(), *(p for _, p in self._backlog))
            if p.op == "deregister"
        ]  # fmt: skip
        busy = self._register_tries or self._undo_later or deregistering or self._bulk
        if busy and self._now < until:
            return
        self._settle = None
        left = {*self._register_tries, *(ident for _, _, ident, _ in self._undo_later)}
        left.update(_ident_of(p.fields["namespace"], p.fields) for p in deregistering)
        self._out.append(Complete(reply_to, tuple(sorted(left))))

    def _take(self) -> list[Action]:
        if self._listing is not None:
            self._list_registrations()
        if self._settle is not None:
            self._check_settled()
        if self._notes:
            self._flush_notes()
        out, self._out = self._out, []
        if self._status_changed:
            self._status_changed = False
            self.status = self._new_status()
        return out

    # -- inputs ------------------------------------------------------------------------------
    def start(self, now: float) -> list[Action]:
        self._now = now
        self._next_beat = now + self.beat_every
        self._next_resync = now + self.settings.resync_interval
        self._connect()
        self._subscribed_on = self.server
        return self._take()

    def handle(self, command: Command, now: float) -> list[Action]:
        """A command from the user's threads."""
        self._now = now
        match command:
            case Call(op, fields, timeout, reply_to):
                self.request(op, fields, timeout, reply_to)
            case Register(reg, timeout, reply_to):
                self._unkeep((reg.key, reg.iid))  # this register replaces the kept one
                self._register(reg, timeout, reply_to, keep=True)
            case RegisterBatch(items, timeout, reply_to):
                for reg, _ in items:  # these registers replace the kept ones
                    self._unkeep((reg.key, reg.iid))
                if reply_to is not None:  # one handle for all: each item reports to it
                    chunk = BulkChunk(reply_to, len(items))
                    items = tuple((reg, (chunk, i)) for i, (reg, _) in enumerate(items))
                    if not items:
                        self._out.append(Complete(reply_to, []))
                self._register_bulk(items, timeout)
            case Deregister(key, iid, fields, timeout, reply_to):
                self._deregister(key, iid, fields, timeout, reply_to)
            case NoteWrite(key):
                self._wrote(key)
            case Subscribe():
                self._subscribe(command)
            case Unsubscribe(key, listener, reply_to):
                self._unsubscribe(key, listener, reply_to)
            case ReadCached(key, healthy_only, reply_to):
                self._out.append(Complete(reply_to, self._read_cached(key, healthy_only)))
            case CloseSession(timeout, reply_to):
                self._close_session(timeout, reply_to)
            case ListRegistrations(reply_to, closing, wait):
                self._closing_client = self._closing_client or closing
                self._listing = (reply_to, self._now + wait)
                self._list_registrations()
            case ForgetRegistrations(reply_to):
                self.registrations.clear()
                self._set_acked(())
                self._out.append(Complete(reply_to, None))
            case Settle(reply_to, wait):
                self._settle = (reply_to, self._now + wait)
                self._check_settled()
            case Shutdown(reply_to):
                self.closed = True
                self._out.append(Complete(reply_to, None))
            case ConfigCall() | ConfigListen() | ConfigUnlisten():
                self.configs.handle(command)
        return self._take()

    def on_reply(self, source: str, reply: Reply, now: float) -> list[Action]:
        """A decoded reply from ``source`` (the server, or a member a write went to)."""
        self._now = now
        self._failed_switches = self._backoff_rounds = 0  # somebody answers: no more backoff
        if source == self.server:
            self._server_heard_at = now
        if self._silent:
            self._heard()
        if self.configs.stale:
            self.configs.server_answers()  # listeners served from disk: a node is back
        pending = self._pending.pop(reply.request_id, None)
        if self._backlog:
            self._pump()
        if pending is None:
            return self._take()  # a late answer to an attempt we already re-sent
        self.replied_by = source
        if isinstance(reply, ReplyOk):
            try:
                result = decode_result(pending.op, reply.result)
            except RemoteProtocolError as exc:
                self._malformed_from(source, f"{pending.op}: {exc}")
                self._resolve(pending, None, malformed_reply_error(pending.op, source, exc))
                return self._take()
            self.malformed.pop(source, None)
            self._resolve(pending, result, None)
        else:
            self.malformed.pop(source, None)
            if self._rate_limited(pending, reply, source):
                self._pending[reply.request_id] = pending  # sent again at attempt_deadline
                return self._take()
            if (
                pending.avoid is not None
                and source == pending.via
                and reply.code == ErrorCode.UNAVAILABLE
            ):  # a second opinion from a member catching up: asked again soon, or of
                # another server (review70 F3: it failed as "no server answers", and
                # nothing asked until the resync)
                self._pending[reply.request_id] = pending
                self._second_opinion_later(reply.request_id, pending, reply, source)
                return self._take()
            if (
                source == pending.via
                and source == pending.owner
                and reply.code == ErrorCode.UNAVAILABLE
                and reply.unwritten
                and not _refused_late(reply.code, reply.message)
            ):  # sent straight to the owner of our view, which sees no majority (cut off:
                # PROTOCOL.md 2.1, "Direct"; review75 F1, F2): through the server now, and
                # the view is forgotten until fetched again
                self._forget_view()
                pending.via = None
                pending.attempt_deadline = pending.next_attempt(now)
                self._pending[reply.request_id] = pending
                self._send(reply.request_id, pending)
                return self._take()
            if self._catching_up(pending, reply, source):
                self._pending[reply.request_id] = pending
                if len({*pending.tried, source}) < len(self.servers):
                    # the next server answers it: its attempt ends now, and the next tick
                    # fails over as for a server that did not answer (not here: the loop
                    # is reading the server's socket, which a failover replaces)
                    pending.attempt_deadline = now
                    self._catching_up_at = source
                else:  # every server is catching up (or there is one): ask again shortly
                    pending.again = server_error(reply.code, reply.message, source)
                    pending.attempt_deadline = min(pending.deadline, now + CATCHING_UP_RETRY)
                self._earliest = min(self._earliest, pending.attempt_deadline)
                return self._take()
            error = server_error(
                reply.code, reply.message, source, reply.unwritten, reply.revision, reply.current
            )
            pending.refusals += reply.unwritten
            if self._late_copy(pending, reply):
                # a copy that waited out its deadline (queued while no node listened, in
                # a stopped node): not applied; the call has time left: once more now,
                # with a new deadline (review63: the call failed with "check the clocks"
                # 10 s before its time-out, the node up and ready)
                pending.late_resent = True
                pending.refused_copy = f"{source} refused one copy: {reply.message}"
                pending.attempt_deadline = pending.next_attempt(now)
                self._pending[reply.request_id] = pending
                self._send(reply.request_id, pending)
                return self._take()
            if reply.unwritten and pending.refusals < pending.copies and pending.op in STAMPED_OPS:
                # One copy was not applied (refused as late: it waited out its deadline in
                # a stopped node), not the call: a copy sent since may be, and the first
                # answer under the call's id was taken as the call's ("not applied", and
                # the instance was registered: review35 F1).  Wait for the others (every
                # copy refused so: not applied); at the call's end with no other answer,
                # its outcome is unknown.
                pending.refused_copy = f"{source} refused one copy: {reply.message}"
                pending.delivered = True  # (that copy reached a node: so may the others)
                self._pending[reply.request_id] = pending
                self._earliest = min(self._earliest, pending.attempt_deadline)
                return self._take()
            self._resolve(pending, None, error)
        return self._take()

    def _rate_limited(self, pending: Pending, reply: ReplyError, source: str) -> bool:
        """A call refused by a rate limit (RESOURCE_EXHAUSTED with ``retry_after``: the
        node's ``[limits] write_rate_per_client`` or read rate; nothing applied) with time
        left for the wait: sent to the same node again after it (``again``: the refusal is
        the call's error if its time runs out first).  Without the time: the refusal now."""
        wait = reply.retry_after
        if wait is None or reply.code != ErrorCode.RESOURCE_EXHAUSTED:
            return False
        if reply.rate is not None:
            self._write_rate = reply.rate
        if self._now + wait + RATE_RETRY_MARGIN >= pending.deadline:
            return False
        # this copy was refused, not applied: one more copy goes, and the call's answer is
        # the last refusal if none is taken (not "outcome unknown": review84 F3)
        pending.refusals += reply.unwritten
        pending.again = server_error(reply.code, reply.message, source)
        pending.attempt_deadline = self._now + wait
        self._earliest = min(self._earliest, pending.attempt_deadline)
        return True

    def _late_copy(self, pending: Pending, reply: ReplyError) -> bool:
        """A write's copy refused as late (PROTOCOL.md 2.1, "Deadline": UNAVAILABLE,
        written false, "after its deadline"), the first such of the call, with an attempt's
        time left: sent once more (a second late refusal is the call's answer: the clocks
        differ, as the message says)."""
        return (
            reply.unwritten
            and pending.op in STAMPED_OPS
            and not pending.late_resent
            and _refused_late(reply.code, reply.message)
            and self._now + pending.budget < pending.deadline
        )

    def _catching_up(self, pending: Pending, reply: ReplyError, source: str) -> bool:
        """A read our server refused as UNAVAILABLE: a cluster member catching up from its
        peers answers none (review24 F8: it answered what it held so far, nothing of a
        live service to a consumer starting then).  Move on to the next server, unless
        every server has refused it already."""
        return (
            reply.code == ErrorCode.UNAVAILABLE
            and pending.op in _READ_OPS
            and pending.via is None
            and source == self.server
            and self._now + CATCHING_UP_RETRY < pending.deadline
        )

    def on_malformed_reply(self, source: str, why: str, now: float) -> list[Action]:
        """Something from ``source`` that is not a reply: no id to tell whose it was, so
        it is remembered, and calls it then fails to answer say why instead of "no reply"."""
        self._now = now
        self._malformed_from(source, why)
        return self._take()

    def on_notification(self, note: Pushed, now: float) -> list[Action]:
        self._now = now
        self._server_heard_at = now
        if self._silent:  # the current server publishes: it is up (its replies follow)
            self._heard()
        if isinstance(note, ConfigChanged):
            self.configs.on_notification(note)
            return self._take()
        watch = self.watches.get(note.key)
        if watch is None:
            return self._take()
        watch.awaiting_push_since = math.inf  # the subscription holds
        if (
            watch.confirming is not None
            and isinstance(note, ServiceDelta)
            and note.upsert
            and watch.confirming[1] == self.server
        ):
            watch.refilled = True  # the emptier lists instances again, at a newer revision
        if (
            isinstance(note, ServiceDelta)
            and self.settings.empty_protection
            and watch.view.would_be_emptied_by(note)
            and not self._own_emptying(watch)
        ):
            self._confirm_empty(note.key, f"a push from {self.server} would empty it")
            return self._take()
        outcome = watch.view.apply_notification(note)
        if outcome is Outcome.APPLIED:
            watch.told_at = now
            listing = watch.view.listing()
            self._out.append(SaveToDisk(note.key, listing))
            for cb in watch.listeners:
                self._out.append(CallListener(cb, listing))
        elif outcome is Outcome.GAP:
            self._pull(note.key)
        return self._take()

    def on_malformed_notification(self, why: str, now: float) -> list[Action]:
        self._now = now
        self._warn("notification", f"ignoring a malformed notification from {self.server}: {why}")
        return self._take()

    def server_connected(self, address: str, error: str | None) -> None:
        """The loop's outcome of ``ConnectServer``: an error keeps the unconnected socket
        (its requests time out and the next server is tried) and is named in the error."""
        self._link_up = False  # a new connection: nothing sent on it has left yet
        self._link_refused = None
        self._link_tcp = self._attempt_tcp = False
        if error is None:
            self.connect_errors.pop(address, None)
        else:
            self.connect_errors[address] = error

    def server_tcp_connected(self) -> None:
        """The loop saw the server connection's TCP connect complete: a process holds the
        port, so a handshake that does not follow is a node stopped or hung, not one
        that does not run (review57 F3)."""
        self._link_tcp = self._attempt_tcp = True
        self._leaving = None  # (a refusal kept through a backoff is over: a process listens)

    def server_handshaken(self) -> None:
        """The loop saw the server connection's handshake complete: what was queued on it
        leaves now (until then libzmq holds it, and drops it with the connection)."""
        self._link_up = True
        self._left_any = True
        if self._ask_at_handshake:
            # reconnected to a server that had dropped the connection: restarted, maybe
            # with other timings (review68 F1); the request leaves with the next actions
            self._ask_at_handshake = False
            self._ask_timings()
        self._link_refused = None
        self._refused_by.clear()
        self._handshake_refused.pop(self.server, None)
        if len(self._handshaken) < MAX_SERVERS:
            self._handshaken.add(self.server)
        for p in self._pending.values():
            if p.via is None and p.sent:
                p.delivered = True
                p.copies, p.queued = p.copies + p.queued, 0

    def previous_connection_closed(
        self, connection: int, handshaken: bool, now: float
    ) -> list[Action]:
        """The loop's answer to ``ConnectServer(settle=connection)``: whether the
        connection it replaced completed a handshake the loop had not reported yet before
        it was closed. If it did, what was queued on it may have left: a call about to be
        failed as "never left (not applied)" had its outcome unknown (at its deadline) or
        goes on (on the new connection); a copy queued there counts as one that may have
        reached a node. (The window the loop's poll leaves: a handshake completing between
        the poll and the deadline check; review34 and review35 notes.)"""
        self._now = now
        settling = self._settling.pop(connection, [])
        riding = self._riding.pop(connection, {})
        if handshaken:
            self._left_any = True  # (a handshake the loop saw only now: review62)
            for req_id, queued in riding.items():
                p = self._pending.get(req_id)
                if p is not None and queued:
                    p.delivered = True
                    p.copies += queued
        for req_id, p, unsent_error in settling:
            if not handshaken:
                self._resolve(p, None, unsent_error)
                continue
            p.delivered = True
            p.copies += riding.get(req_id, 0) or 1
            if now < p.deadline:  # its answer went to the closed socket: ask again
                self._pending[req_id] = p
                p.attempt_deadline = p.next_attempt(now)
                self._send(req_id, p)
            else:
                self._resolve(p, None, self._unanswered(p))
        return self._take()

    def server_disconnected(self, now: float) -> list[Action]:
        """The loop saw the server connection drop (the node stopped or died): what is
        sent from now on waits in libzmq until a handshake completes again, so it has not
        left this client (review24 notes: the first write after every node went down was
        reported as an unknown outcome).  With another server to go to, go now: waiting
        for an attempt to time out (1 s), or for the next probe of a client that only
        watches (5 s), stalled every client of a node stopped for a rolling restart and
        left its consumers' views frozen meanwhile (review27 F2, F7)."""
        self._now = now
        was_up, self._link_up = self._link_up, False
        self._link_tcp = False
        self._ask_at_handshake = was_up
        if len(self.servers) > 1 and not self.closed and not self._closing():
            refused = self._link_refused
            self._leaving = (
                f"refused this client's handshake ({refused[0]})"
                if refused is not None and not was_up  # (review54 F3: it said "stopped")
                else "closed the connection (it stopped or restarted)"
            )
            self._failover()
        return self._take()

    def server_unreachable(self, now: float) -> list[Action]:
        """The loop saw a connection attempt to the server fail (nothing listens there: a
        node down, or awaiting replacement) before any handshake on it: with another
        server to go to, go now rather than after an attempt's time-out (review27 F8:
        every new client paid 1 s on a dead member first in its list)."""
        self._now = now
        self._link_tcp = False
        reached, self._attempt_tcp = self._attempt_tcp, False
        if self._link_up:
            return self._take()
        if not reached:  # nothing listened for this attempt: a refusal seen before is over
            # (review69 F2: "a process listens there", and refused, for a stopped node)
            self._handshake_refused.pop(self.server, None)
            self._link_refused = None
        self._refused_by.add(self.server)
        if self.settings.fail_when_refused and len(self._refused_by) >= len(self.servers):
            self._fail_unsent()
        if len(self.servers) > 1 and not self.closed and not self._closing():
            self._leaving = "refused the connection (no node listens there)"
            self._failover()
        return self._take()

    def _drop_unsent(self, connection: int) -> None:
        """Replace the server's DEALER: its queue holds what never left this client (no
        handshake completed on it), which libzmq delivers once one does, after the call
        was failed as "never left this client (not applied)" (review34: a config write so
        failed was applied 0.13 s later, when its stopped node resumed; with one server
        the failover that replaces the socket was backing off).  What else waits on it
        goes again on the new one (its old copies are dropped with the socket); not what
        is past its deadline: it is failed, and a copy on the new connection could be
        applied once that connects."""
        self._connect(settle=connection)
        now = self._now
        for req_id, p in self._pending.items():
            if p.via is None and p.sent and not p.delivered and now < p.deadline:
                self._send(req_id, p)

    def _fail_unsent(self) -> None:
        """Every server refused the connection (``fail_when_refused``): fail what has
        not left this client, now (it would wait in libzmq to its time-out), and replace
        the server's DEALER, whose queue holds them: libzmq would deliver them once a node
        listens there, and a write said "not applied" would be applied (review31 F1)."""
        where = ", ".join(sorted(self._refused_by))
        refused = self._refusal([self.server])  # a node listens there: its handshake failed
        cause = (
            f"the handshake with meshreg server(s) {where} failed ({self.server} said: "
            f"{refused[0]})"
            if refused is not None
            else f"meshreg server(s) {where} refused the connection (nothing listens there)"
        )
        failed, connection = False, self._connection
        for req_id, p in list(self._pending.items()):
            if p.via is not None or p.delivered:
                continue
            failed = True
            del self._pending[req_id]
            unapplied = " (not applied)" if p.op in WRITE_OPS or p.op in CONFIG_WRITES else ""
            hint = self._unreachable_hint()
            if refused is None and hint.startswith(f"{self.server} refused the connection"):
                hint = "is `meshreg node` running there? check --server / MESHREG_SERVERS"
            error = ServerUnreachableError(  # (review82 F9: the refusal was said twice)
                f"{p.op}: {cause}, so the request never left this client{unapplied}; " + hint
            )
            error.unsent = True
            error.refused = refused is not None and refused[1]  # (a sidecar stops waiting)
            # failed once the loop has closed the socket it waits on (below)
            self._settling.setdefault(connection, []).append((req_id, p, error))
        if failed:
            self._connect(settle=connection)  # a new socket to the same server
        self._pump()  # what waited in the backlog goes, and fails at the next refusal

    def server_refused(self, why: str, definitive: bool, now: float | None = None) -> list[Action]:
        """The loop saw the server connection's handshake fail (``why``); ``definitive``:
        a refusal or a mismatch (the ACL, the keys), not a connection closed midway.  A
        definitive one counts as refused for ``fail_when_refused`` (review45 F5: a CLI
        command refused by the node's ACL waited its whole ``--timeout`` to say so)."""
        self._link_refused = (why, definitive)
        if definitive and (self.server in self._handshake_refused
                           or len(self._handshake_refused) < MAX_SERVERS):  # fmt: skip
            self._handshake_refused[self.server] = why
        if definitive and not self._link_up and self.settings.fail_when_refused:
            if now is not None:
                self._now = now
            self._refused_by.add(self.server)
            if len(self._refused_by) >= len(self.servers):
                self._fail_unsent()
            elif not self.closed and not self._closing():
                self._leaving = f"refused this client's handshake ({why})"
                self._failover()
        return self._take()

    def direct_send_result(self, request_id: int, outcome: DirectSend, now: float) -> list[Action]:
        """The loop's outcome of a ``SendRequest`` via a member.  Not connected yet: wait
        for it when that node must answer (``insist``), else go through the server; an
        address that cannot be used: through the server."""
        self._now = now
        p = self._pending.get(request_id)
        if p is None:
            return self._take()
        if outcome is DirectSend.SENT:
            if 0 < p.insist < DIRECT_INSIST:  # sent on a retry: its attempt starts now (its
                # deadline was the last retry's, past: the next tick sent it through the
                # server, and the server that emptied a list was its own second opinion)
                p.attempt_deadline = p.next_attempt(now)
                self._earliest = min(self._earliest, p.attempt_deadline)
            p.insist = 0  # from now on an ordinary attempt
            p.delivered = True  # (an IMMEDIATE socket sends only on a connection)
            p.copies += 1
        elif outcome is DirectSend.NOT_CONNECTED and p.insist > 0:
            p.insist -= 1  # a second opinion must come from that node: wait for it
            p.attempt_deadline = min(p.deadline, now + DIRECT_RETRY)
            self._earliest = min(self._earliest, p.attempt_deadline)
        elif p.direct_only:  # that node or nobody: it is not reachable
            del self._pending[request_id]
            self._resolve(p, None, ServerUnreachableError(f"{p.op}: {p.via} not reachable"))
        elif p.avoid is None or not self._second_opinion_elsewhere(request_id, p, now, False):
            p.via = None  # the server forwards it
            self._send(request_id, p)
        return self._take()

    def _second_opinion_elsewhere(self, req_id: int, p: Pending, now: float, wait: bool) -> bool:
        """A second opinion whose member cannot answer now (``p.via``: silent, not
        reachable, catching up): asked of the next server that is neither the one whose
        list it checks (``p.avoid``) nor one asked already; else, ``wait``, the last one
        asked is given until one attempt before the deadline.  False: nobody else is left;
        the caller sends it through the server, whose own answer is then the last resort
        (review17 F7: the other server is dead).  review70 F1: it went through the server
        at the first silence, and the server that had emptied the list was taken as
        agreeing with itself while the other, slow, still listed the instance."""
        asked = {to for to, _ in p.attempts}
        for address in self._servers_after_current():
            if address != p.avoid and address not in asked:
                p.via, p.insist = address, DIRECT_INSIST
                p.attempt_deadline = p.next_attempt(now)
                self._send(req_id, p)
                return True
        last_resort = p.deadline - p.budget
        if wait and now < last_resort:
            p.attempt_deadline = last_resort
            self._earliest = min(self._earliest, last_resort)
            return True
        return False

    def _second_opinion_later(
        self, req_id: int, p: Pending, reply: ReplyError, source: str
    ) -> None:
        """A second opinion refused by a member catching up: another server, else the
        same one again after CATCHING_UP_RETRY, else (no time left) the server's own."""
        now = self._now
        if self._second_opinion_elsewhere(req_id, p, now, False):
            return
        if now + CATCHING_UP_RETRY < p.deadline - p.budget:
            p.again = server_error(reply.code, reply.message, source)
            p.attempt_deadline = now + CATCHING_UP_RETRY
            self._earliest = min(self._earliest, p.attempt_deadline)
            return
        p.via = None
        p.attempt_deadline = p.next_attempt(now)
        self._send(req_id, p)

    def _servers_after_current(self) -> Iterator[str]:
        """Every server, in this client's order, from the one after the current server."""
        n = len(self.servers)
        for k in range(1, n + 1):
            yield self._address((self._server_index + k) % n)

    def member_disconnected(self, address: str, now: float) -> list[Action]:
        """The loop saw the connection to a member that writes went straight to drop (it
        stopped, or died): what waits on it goes through the server now, not at the end
        of its attempt; the view is forgotten until fetched again (that member may have
        left it).  A probe of that node alone fails; a request that must come from that
        node (``insist``) waits its turn as before."""
        self._now = now
        sent_there = [(r, p) for r, p in self._pending.items() if p.via == address]
        if sent_there:
            self._forget_view()
        for req_id, p in sent_there:
            if p.insist > 0:
                continue
            if p.avoid is not None and self._second_opinion_elsewhere(req_id, p, now, False):
                continue
            if p.direct_only:
                del self._pending[req_id]
                self._resolve(p, None, ServerUnreachableError(f"{p.op}: {address} went away"))
                continue
            p.via = None
            p.attempt_deadline = p.next_attempt(now)
            self._send(req_id, p)
        return self._take()

    def tick(self, now: float) -> list[Action]:
        """Timers: beats or renewal, resync, the cluster view, the probe, deadlines."""
        self._now = now
        if now >= self._next_beat:
            self._next_beat = now + self.beat_every
            self._send_beats()
        if now >= self._next_resync:
            self._next_resync = now + self.settings.resync_interval
            self._drop_idle_views()
            self._resync()
        if now >= self._next_recheck:
            self._next_recheck = math.inf
            for key, watch in list(self.watches.items()):
                if now >= watch.recheck_at:
                    watch.recheck_at = math.inf
                    self._pull(key)
                else:
                    self._next_recheck = min(self._next_recheck, watch.recheck_at)
        if now >= self._next_view and self.registrations:
            self._refresh_view()
        if now >= self._session_retry_at and not self.offline:
            self._retry_session()
        if now >= self._next_kept_try and not self.offline:
            self._try_kept()
        if now >= self._next_kept_pull:
            self._next_kept_pull = math.inf
            for key, watch in list(self.watches.items()):
                if not watch.view.loaded and watch.listeners:
                    if not watch.pulling and not self.offline:
                        self._pull(key)
                    self._next_kept_pull = now + KEPT_REGISTER_RETRY
        if now >= self._next_push_check:
            self._next_push_check = now + 1.0
            self._check_pushes()
        self.configs.tick(now)
        if (self.watches or self.configs.listens) and now >= self._next_probe:
            # A watcher sends nothing on its own: ping so a dead server is noticed, and one
            # cut off from most members too (``_probed``)
            self._next_probe = now + PROBE_INTERVAL
            if not self._pending:
                self.request("ping", {}, self.settings.attempt_timeout, on_reply=self._probed)
        while self._redo_later and now >= self._redo_later[0][0]:
            when, _, ident = heapq.heappop(self._redo_later)
            reg = self.registrations.get(ident)  # (still registered: the caller's last word)
            if reg is not None and ident not in self._registering():
                self._after_copies(ident, when)
                self._register(reg, self._liveness_timeout(), None)
        while self._undo_later and now >= self._undo_later[0][0]:
            when, _, ident, fields = heapq.heappop(self._undo_later)
            tries = self._register_tries.get(ident)
            if not (
                ident in self.registrations
                or ident in self._kept_registrations
                or (tries is not None and not tries.last_word_deregister())
            ):  # the deregister is still the caller's last word (else a register since)
                self._after_copies(ident, when)
                self._send_undo(ident[0], fields)
        self._check_deadlines()
        if self.offline and not self._pending and not self._backlog:
            # Nothing else in flight: ask the current server until the next switch, so a
            # node that comes back is heard at once and the backoff goes on.
            self.request("ping", {}, max(self.settings.attempt_timeout, self._next_switch - now))
        if self.offline and now >= self._next_offline_probe:
            self._probe_others()
        if self.offline or self.server == self._home:
            self._next_home_probe = math.inf
        elif self._next_home_probe == math.inf:  # away since now
            self._next_home_probe = now + HOME_RETURN_INTERVAL
        elif now >= self._next_home_probe:
            self._probe_home()
        return self._take()

    def _check_pushes(self) -> None:
        """Say so when a watch had no push ``SUBSCRIPTION_CONFIRM`` after subscribing on a
        server that answers: a node answers a subscription it admits with a push at once,
        so it probably refused it (its subscription limit full, or its ACL); changes then
        reach this client by the resync only (review14b F5: the refusal was silent)."""
        if self.offline or self.server in self._silent:
            return
        late = self._now - SUBSCRIPTION_CONFIRM
        refused = [k for k, w in self.watches.items() if w.awaiting_push_since <= late]
        if not refused:
            return
        for key in refused:
            self.watches[key].awaiting_push_since = math.inf  # said once per subscription
        names = ", ".join(str(k) for k in refused[:5]) + (" ..." if len(refused) > 5 else "")
        self._warn(
            "subscription",
            f"watch of {names}: meshreg server {self.server} sent no push within "
            f"{SUBSCRIPTION_CONFIRM:g}s of the subscription; it may have refused it (its "
            "subscription limit is full, or its ACL: `meshreg stats` on that node shows "
            "subscriptions_refused). Changes reach this client by the resync every "
            f"{self.settings.resync_interval:g}s only",
        )

    def _fail_request(
        self,
        reply_to: ReplyTo,
        on_error: Callable[[BaseException], None] | None,
        error: BaseException,
    ) -> None:
        """A request that will never be answered: its caller's handle fails, or its
        callback gets the error (config calls and registrations wait on callbacks: review55
        F1, they waited out their time-out after a close)."""
        if reply_to is not None:
            self._out.append(Fail(reply_to, error))
        elif on_error is not None:
            on_error(error)

    def abandon(self, error: BaseException) -> list[Action]:
        """The loop is ending: fail every call still waiting with ``error``."""
        self._abandoned = error  # a request made from now on (a callback's retry) fails
        settling = [p for waiting in self._settling.values() for _, p, _ in waiting]
        waiting = [*self._pending.values(), *(p for _, p in self._backlog), *settling]
        self._pending.clear()
        self._backlog.clear()
        self._settling.clear()
        for p in waiting:
            self._fail_request(p.reply_to, p.on_error, error)
        for items in [list(self._bulk), *self._batches_out.values()]:
            for _, slot, _, _ in items:
                self._entry_done(slot, error)
        self._bulk.clear()
        self._batches_out.clear()
        self._register_tries.clear()
        self._undo_later.clear()
        self._redo_later.clear()
        for w in self.watches.values():
            for reply_to, _ in w.waiting:
                self._out.append(Fail(reply_to, error))
            w.waiting.clear()
        self.configs.abandon(error)
        return self._take()

    # -- logging ----------------------------------------------------------------------------
    def _warn(self, kind: Hashable, text: str) -> None:
        line = self._log.line(kind, self._now, text)
        if line is not None:
            self._out.append(LogLine("warning", line))

    def _note(
        self,
        level: str,
        kind: str,
        server: str,
        key: ServiceKey | ConfigKey,
        text: str,
        many: str = "",
        what: str = "watched services",
    ) -> None:
        """``key``: ``text`` at ``level``, said with the other keys of the same kind and
        server in one line per LOG_INTERVAL (module docstring, "Logging"); ``many``: what
        that line says when it names several (default ``text``: what the first's says);
        ``what``: what it calls them."""
        noted = self._notes.get((kind, server))
        if noted is None:
            noted = self._notes[(kind, server)] = (level, text, many or text, what, {}, self._now)
        if len(noted[4]) < NOTED_KEYS:
            noted[4][key] = None

    def _unnote(self, kinds: tuple[str, ...], key: ServiceKey | ConfigKey) -> bool:
        """Take ``key`` out of the lines of these kinds not said yet (a service back
        before its "no server answers" was summed up: neither is said of it, else the
        two came out in the wrong order); True if it was in one."""
        found = False
        for noted in [n for n in self._notes if n[0] in kinds]:
            keys = self._notes[noted][4]
            if key in keys:
                found = True
                del keys[key]
                if not keys:
                    del self._notes[noted]
        return found

    def _flush_notes(self) -> None:
        for kind, (level, one, many, what, keys, since) in list(self._notes.items()):
            if self._now < self._noted_at.get(kind, -math.inf) + self._log.interval:
                continue  # said within the interval: summed up when it ends
            if self._now - since >= 1.0:  # (review59: read as news 10 s after, once over)
                late = (
                    f" (noted {self._now - since:.1f}s ago; lines of this kind are held back "
                    f"to one per {self._log.interval:.0f}s)"
                )
                one, many = one + late, many + late
            del self._notes[kind]
            self._noted_at[kind] = self._now
            if len(self._noted_at) > 1024:  # kinds x servers: a small set; never unbounded
                self._noted_at = {k: t for k, t in self._noted_at.items() if k in self._notes}
            first = next(iter(keys))
            if len(keys) == 1:
                self._out.append(LogLine(level, f"{first}: {one}"))
                continue
            subject = f"{len(keys)}{'+' if len(keys) >= NOTED_KEYS else ''} {what} (e.g. {first})"
            self._out.append(LogLine(level, f"{subject}: {many}"))

    def _own_emptying(self, watch: Watch) -> bool:
        """Every instance of the view is one this client removed itself just now."""
        if not watch.view.instances or not self._own_removals:
            return False
        since = self._now - OWN_REMOVAL_WINDOW
        key = watch.view.key
        return all(
            self._own_removals.get((key, iid), -math.inf) >= since for iid in watch.view.instances
        )

    def _removed_own(self, key: ServiceKey, iid: InstanceId) -> None:
        """This client deregistered (or closed the session of) ``iid`` of ``key``."""
        if key not in self.watches:
            return
        if len(self._own_removals) >= 4 * MAX_IN_FLIGHT:  # bounded: drop the stale ones
            since = self._now - OWN_REMOVAL_WINDOW
            self._own_removals = {k: t for k, t in self._own_removals.items() if t >= since}
        self._own_removals[(key, iid)] = self._now

    # -- connections --------------------------------------------------------------------------
    def _connect(self, settle: int | None = None) -> None:
        """A new connection to the current server. Calls failed as "never left" on the
        old one (``settle``: its number) wait on whether it completed a handshake unseen
        (``previous_connection_closed``); so do the copies queued on it, which count as
        not sent until the loop says."""
        host, port = self.servers[self._server_index]
        old = self._connection
        riding = {req_id: p.queued for req_id, p in self._pending.items() if p.queued}
        for p in self._pending.values():  # dropped with the old socket
            p.queued = 0
        if riding:
            self._riding[old] = riding
        self._connection += 1
        ask = old if riding or settle is not None else None
        self._out.append(ConnectServer(host, port, ask))

    def _failover(self) -> None:
        """The current server did not answer in time: reconnect (to the next one).

        After a whole round of servers failed, further switches back off: the pause
        between two switches is BACKOFF_BASE, doubling at each switch up to BACKOFF_MAX,
        until some server answers.
        """
        now = self._now
        self._failed_switches += 1
        catching_up = self._catching_up_at == self.server  # it answered: a refusal
        self._catching_up_at = None
        leaving, self._leaving = self._leaving, None
        if not catching_up:
            self._went_silent(self.server)
        if self._failed_switches > len(self.servers):
            if now < self._next_switch:
                for p in self._pending.values():  # wait on the current connection meanwhile
                    p.attempt_deadline = min(p.deadline, self._next_switch)
                self._recompute_earliest()
                self._leaving = leaving  # said at the switch (review59: "did not answer")
                return
            pause = BACKOFF_BASE * 2 ** min(self._backoff_rounds, 16)
            self._next_switch = now + min(BACKOFF_MAX, pause)
            self._backoff_rounds += 1
        old = self.server
        self._server_index = (self._server_index + 1) % len(self.servers)
        self.server = self._address(self._server_index)
        self._status_changed = True
        if self.server != old:
            if catching_up:
                why = (
                    "is still catching up from its peers (it started moments ago) and "
                    "answers no read yet"
                )
            elif leaving is not None:
                why = leaving
            else:
                why = (
                    f"did not answer in time (a read waits {self.settings.attempt_timeout:g}s "
                    f"per attempt, a config write {CONFIG_WRITE_ATTEMPT:g}s)"
                )
            self._warn("failover", f"meshreg server {old} {why}; trying {self.server}")
        self._use_server()
        self._ask_timings()  # (the same server too: it may have restarted, review68 F1)

    def _use_server(self) -> None:
        """The server changed: connect, send what is in flight there, pull and listen
        again (the new server may be another incarnation)."""
        now = self._now
        self._connect()
        self._forget_view()
        self._server_minority = False
        for req_id, p in self._pending.items():
            if p.via is not None and (p.direct_only or p.avoid is not None):
                continue  # asked of that member, whatever the server (a probe of it: review70)
            p.attempt_deadline = p.next_attempt(now)
            p.tried.append(self.server)
            p.via = None
            self._send(req_id, p)
        # a new SUB only for another server: the same server's keeps its subscriptions and
        # sends no new first push (review56: "sent no push within 5s ... may have refused
        # it" after every stop of a client's only server)
        resubscribed = self.server != self._subscribed_on
        self._subscribed_on = self.server
        for key in self.watches:
            self.watches[key].pulling = False
            if resubscribed:
                self.watches[key].awaiting_push_since = now  # subscribed there anew
            self._pull(key)
        self.configs.relisten()  # pushes may have been missed meanwhile

    def _ask_timings(self) -> None:
        """The server changed, and its timings may differ (the last node of a rolling
        restart to ``--unhealthy-after 3`` stopped: its clients, told 15 s, renewed every
        5 s on the others until their next turn, and were marked unhealthy): renew the
        session (or, without one, ping) now; the answer says them (``_learn_timings``).
        At most once a beat interval: a client whose servers fail one after another does
        not renew at every switch."""
        if not self.registrations or self._now < self._timings_asked_at + self.beat_every:
            return
        self._timings_asked_at = self._now
        asking = {p.op for p in self._pending.values()}  # (re-sent there already)
        if self.session is not None and self._session_acked:
            if "session_renew" not in asking:
                self._renew_session()
        elif "ping" not in asking:
            self.request("ping", {}, self._liveness_timeout(), on_reply=self._pinged,
                         on_error=lambda exc: None)  # fmt: skip

    def _seek_majority(self, seen: tuple[int, int]) -> None:
        """The server sees no majority of the configured members (``seen``: up, of how
        many): cut off from the others, it cannot pass on what this client renews or
        beats there, and they may judge its instances silent (review20 F3: a provider
        that reaches every node lost its instances on the majority side).  Ask the
        other servers for their view; move to one that sees a majority."""
        now = self._now
        if now < self._next_majority_probe or len(self.servers) < 2 or self._closing():
            return
        # again after a pause doubling while no move comes of it (a 2|2 split, a 2-node
        # cluster with one down: no node sees a majority for as long as it lasts)
        first = max(self.settings.beat_interval, MAJORITY_PROBE_MIN)
        self._majority_pause = min(max(self._majority_pause * 2, first), MAJORITY_PROBE_MAX)
        self._next_majority_probe = now + self._majority_pause
        current = self.server
        others = [a for a in map(self._address, range(len(self.servers))) if a != current]
        for address in others[:MAJORITY_PROBES]:  # a ping is cheap (a cluster view is not)

            def got(pong: Any, address: str = address) -> None:
                up, total = pong.get("members_up"), pong.get("members")
                sees = type(up) is int and type(total) is int and up * 2 > total > 1
                if sees and self.server == current:
                    self._move_to(address, seen, (up, total))

            self.request("ping", {}, self.settings.attempt_timeout, on_reply=got,
                         on_error=lambda exc: None, via=address, direct_only=True)  # fmt: skip

    def _probe_others(self) -> None:
        """Offline: ping the other servers directly; the first that answers becomes the
        server at once.  The backoff's pause is spent on the current server (its ping),
        and a switch goes to the next in the list whether it is back or not: after a
        freeze of every node, a provider waited up to 30 s on one still frozen (then on
        the next frozen one) while others answered, and those evicted its live instances
        (review47 F1); a client given one server stayed on the learned member it had
        fallen back on after its own came back (review47 F2)."""
        self._next_offline_probe = self._now + OFFLINE_PROBE_INTERVAL
        count = len(self.servers)
        if count < 2 or self._closing():
            return
        waiting_on, asked = self.server, self._now
        start, sent = self._offline_probe_from, 0
        for step in range(1, count + 1):
            index = (start + step) % count
            address = self._address(index)
            if address == waiting_on or address in self._probing:
                continue
            if sent == OFFLINE_PROBES:
                break
            sent += 1
            self._offline_probe_from = index
            self._probing.add(address)

            def answered(pong: Any, address: str = address) -> None:
                self._probing.discard(address)
                # (not once the server waited on answered meanwhile: no needless move)
                if (
                    self.server == waiting_on != address
                    and self.replied_by == address  # (not re-sent through a server)
                    and self._server_heard_at < asked
                    and not self._closing()
                ):
                    self._switch_to(
                        address,
                        f"meshreg server {waiting_on} still does not answer and {address} "
                        f"does again; using {address}",
                        "offline-probe",
                    )

            def failed(exc: BaseException, address: str = address) -> None:
                self._probing.discard(address)

            self.request("ping", {}, self.settings.attempt_timeout, on_reply=answered,
                         on_error=failed, via=address, priority=True,
                         direct_only=True)  # fmt: skip

    def _probe_home(self) -> None:
        """Away from this client's first server: ping it straight, and go back to it if it
        answers ready and sees a majority of its cluster (the fleet spreads again over
        the nodes after an outage, each client on its own first; review51 F1)."""
        self._next_home_probe = self._now + HOME_RETURN_INTERVAL
        if self._home_probing or self._closing():
            return
        home, away_on = self._home, self.server
        self._home_probing = True

        def answered(pong: Any) -> None:
            self._home_probing = False
            up, total = pong.get("members_up"), pong.get("members")
            sees = type(up) is int and type(total) is int and (up * 2 > total or total <= 1)
            if (
                sees
                and pong.get("ready") is not False
                and self.replied_by == home  # (not re-sent through a server)
                and self.server == away_on != home
                and not self.offline
                and not self._closing()
            ):
                self._switch_to(
                    home,
                    f"meshreg server {home} (this client's first) answers again; back to it "
                    f"from {away_on}, so that the clients spread over the nodes again",
                    "home",
                    "info",
                )

        def failed(exc: BaseException) -> None:
            self._home_probing = False

        self.request("ping", {}, self.settings.attempt_timeout, on_reply=answered,
                     on_error=failed, via=home, priority=True, direct_only=True)  # fmt: skip

    def _closing(self) -> bool:
        """A session close is in flight: no server move meanwhile (it would send the
        close again to a node whose table may be older than the one that had it)."""
        return any(p.op == "session_close" for p in self._pending.values())

    def _move_to(self, address: str, seen: tuple[int, int], there: tuple[int, int]) -> None:
        """Use ``address`` as the server (it sees a majority; the current one did not)."""
        if address == self.server or self._closing():
            return
        self._majority_pause = 0.0
        # What this client registered or deregistered through the cut-off server may be
        # missing on the majority, and a swap keeps the session's count (a register there
        # and a deregistration: the renewals' "holds fewer" never fires; review75 F2,
        # partition seed 39): the next renewal names what the node holds (strays go),
        # and the session's instances are registered again there (a repeat where held)
        redo = self.session is not None and bool(self.registrations)
        if redo:
            self._list_session = True
        self._switch_to(
            address,
            f"meshreg server {self.server} sees only {seen[0]} of the {seen[1]} configured "
            f"members (cut off from the others, or, a cluster starting, it has not heard "
            f"them yet: what this client renews or beats there may not reach them); using "
            f"{address}, which sees {there[0]} of {there[1]}",
            "majority",
        )
        if redo and self.server == address:
            self._reregister_session()

    def _switch_to(
        self, address: str, why: str, kind: str = "failover", level: str = "warning"
    ) -> None:
        """Use ``address`` (a server of the list) as the server now, saying ``why``."""
        indices = [i for i in range(len(self.servers)) if self._address(i) == address]
        if not indices or address == self.server:
            return
        self._server_index = indices[0]
        self.server = address
        self._status_changed = True
        line = self._log.line(kind, self._now, why)
        if line is not None:
            self._out.append(LogLine(level, line))
        self._use_server()
        self._ask_timings()

    # -- offline: every server failed (see the theory of operation) -----------------------------
    def _went_silent(self, server: str) -> None:
        """``server`` failed an attempt; once every server has, the client is offline:
        callers waiting on a first pull or listen with a disk copy get it now."""
        if not self._silent:
            self._silent_since = self._now
        if server not in self._silent and len(self._silent) < MAX_SERVERS:
            self._silent[server] = None
        if self.offline or any(self._address(i) not in self._silent
                               for i in range(len(self.servers))):  # fmt: skip
            return
        self.offline = True
        error = self.offline_error("instances")
        for watch in self.watches.values():
            if watch.waiting and watch.view.loaded:  # from disk: no answer will come sooner
                self._say_stale(watch, error)
                self._resolve_waiting(watch)
        self.configs.went_offline()

    def _heard(self) -> None:
        """A node answered: the client is not offline; what was served stale is pulled
        again now rather than at the next resync."""
        if self._silent:  # silent until now: its subscriptions may only now be arriving
            for watch in self.watches.values():
                if watch.awaiting_push_since < math.inf:
                    watch.awaiting_push_since = self._now
        self._silent.clear()
        self.configs.heard_again()
        if self._kept_registrations:
            self._try_kept()
        offline, self.offline = self.offline, False
        for key, watch in list(self.watches.items()):
            if watch.pulling:
                continue
            if (offline and watch.said_stale) or (not watch.view.loaded and watch.listeners):
                self._pull(key)  # (not loaded: a subscriber kept while none answered)

    def offline_error(self, op: str) -> ServerUnreachableError:
        """The error of a read made while offline that nothing cached can answer: what a
        time-out would say, without waiting for one."""
        tried = list(self._silent)
        mismatched = [s for s in tried if s in self._handshake_refused]
        if mismatched:  # a node listens there, and refused this client's handshake
            first = mismatched[0]
            others = [s for s in tried if s not in mismatched]
            silent = f", and {', '.join(others)} did not answer" if others else ""
            error = ServerUnreachableError(
                f"{op}: the handshake with meshreg server(s) {', '.join(mismatched)} failed "
                f"({first} said: {self._handshake_refused[first]}){silent}; this read does "
                "not wait while none answers; " + self._key_hint()
            )
            error.unsent = True
            error.refused = len(mismatched) == len(tried)  # (keys: waiting cannot cure it)
            return error
        if all(s in self._refused_by for s in tried):  # none was given time: none listens
            hint = self._unreachable_hint()
            if hint.startswith(f"{self.server} refused the connection"):  # (said already)
                hint = "is `meshreg node` running there? check --server / MESHREG_SERVERS"
            return ServerUnreachableError(
                f"{op}: meshreg server(s) {', '.join(tried)} refused the connection (nothing "
                f"listens there); this read does not wait while none answers"
                f"{RETRYING_IN_BACKGROUND}; " + hint
            )
        errors = self.connect_errors
        why = "".join(f" ({s}: {errors[s]})" for s in tried if s in errors)
        since = self._now - self._silent_since + self.settings.attempt_timeout
        return ServerUnreachableError(
            f"{op}: no reply from meshreg server(s) {', '.join(tried)}{why}: none has answered "
            f"for {since:.3g}s (each was given {self.settings.attempt_timeout:g}s at least); "
            f"this read does not wait again while none answers{RETRYING_IN_BACKGROUND}; "
            + self._unreachable_hint()
        )

    def _unreachable_hint(self) -> str:
        """What to check when no server answers (with CURVE: the keys and the ACL)."""
        refused = self._refusal([self.server])
        if refused is not None and refused[0].startswith(_KEY_REFUSALS):
            # the node said it: a mechanism mismatch, or its ACL (`meshreg ping` without
            # --key against a keyed node led with "is `meshreg node` running there?")
            return "a process listens there and refused the handshake: " + self._key_hint()
        if refused is not None and self.server not in self._handshaken:
            # closed midway by something that never took this client's key: the keys, or
            # a port that is not a node's (review69 F1: an HTTP server's, said keys only)
            return (
                "a process listens there and ended the handshake: is it a meshreg node's "
                "request port (check --server / MESHREG_SERVERS)? or " + self._key_hint()
            )
        if self.server in self._refused_by and refused is None:
            # nothing listens there (a refused TCP connection): a key cannot be the cause
            # (a new user's review: the hint about keys for a port nobody listens on)
            return (
                f"{self.server} refused the connection (nothing listens there): is `meshreg "
                "node` running there? check --server / MESHREG_SERVERS"
            )
        if self._link_tcp and not self._link_up and self._link_refused is None:
            if self.server in self._handshaken:  # (review59 F4: as the time-out said it)
                return (
                    f"{self.server} took this client's key and answered before, and now "
                    "answers no handshake nor request: the node there may be stopped "
                    "(SIGSTOP, a paused VM), hung or overloaded (`meshreg stats -s "
                    f"{self.server}` and its log say which)"
                )
            return (
                f"{self.server} accepted the TCP connection but did not complete the "
                "ZeroMQ handshake: the node there may be stopped (SIGSTOP, a paused VM), "
                f"hung or overloaded (`meshreg stats -s {self.server}` and its log say which)"
            )
        if (
            not self._link_tcp
            and refused is None
            and self.server not in self._refused_by
            and self.server not in self.connect_errors  # (its own words: a name, say)
        ):
            # a SYN neither answered nor refused: not "is the node running?" nor the keys
            # (a fault review of 2026-12-07: a stopped node's full listen queue)
            return (
                f"no TCP connection to {self.server} completed, and none was refused: a "
                "firewall dropping the port, a host that is down, or a node there stopped or "
                "overloaded whose listen queue is full (SIGSTOP, a paused VM: `ss -ltn` on "
                "its host shows it); check --server / MESHREG_SERVERS"
            )
        return "is `meshreg node` running there? check --server / MESHREG_SERVERS; or " + (
            self._key_hint()
        )

    def _key_hint(self) -> str:
        """What to check when a node refused this client's handshake."""
        return (
            "the node refused this client's key: is server_key the cluster's public key, "
            "and this client's key in the node's ACL?"
            if self.settings.secure
            else "if the node runs with --key, give this client key= and server_key= (CLI: "
            "--key, --server-key)"
        )

    # -- the cluster view: writes straight to the responsible node ------------------------------
    def _refresh_view(self) -> None:
        self._next_view = self._now + VIEW_INTERVAL

        def got(view: ClusterView) -> None:
            seen_up, configured, majority = view.majority()
            if configured > 1 and not majority:  # (beats only: no renewal says it)
                self._seek_majority((seen_up, configured))
            up = view.up()
            self._members = tuple(sorted({m.id for m in up}))
            self._member_address = {m.id: m.address for m in up}
            # every member the view names is a server to fall back on (at a start, the
            # node's peers are not heard yet: review18's client, given one server that
            # died then, failed over only to them); the view refreshes when it names one
            # heard (an id), and one named only unheard for LEARNED_MEMBER_TTL is dropped
            # and not taken again until heard: a typo in a node's list (an operations
            # review: tried at every failover 11 minutes on)
            learned = [(split_address(m.address), bool(m.id)) for m in view.members]
            if self._shuffle is not None:
                self._shuffle(learned)  # (each client its own order: review51 F2)
            for address, heard in learned:
                if heard:
                    self._unheard_dropped.discard(address)
                elif address in self._unheard_dropped:
                    continue
                if address not in self.servers and len(self.servers) < MAX_SERVERS:
                    self.servers.append(address)
                    self._status_changed = True
                    self._learned_at[address] = self._now  # (first seen)
                if heard and address in self.servers:
                    self._learned_at[address] = self._now
            self._forget_learned()

        def failed(exc: BaseException) -> None:  # keep the view we have; the server serves
            if isinstance(exc, RemoteProtocolError):
                self._warn("view", f"ignoring a cluster view: {exc}")

        self.request("cluster", {}, self.settings.attempt_timeout, on_reply=got, on_error=failed)

    def _forget_learned(self) -> None:
        """Drop the learned servers no view has named heard for ``LEARNED_MEMBER_TTL``
        (never the caller's own, nor the one in use)."""
        stale = [
            a
            for a in self.servers[self._given :]
            if self._now - self._learned_at.get(a, -math.inf) > LEARNED_MEMBER_TTL
            and f"{a[0]}:{a[1]}" != self.server
        ]
        for address in stale:
            index = self.servers.index(address)
            del self.servers[index]
            self._learned_at.pop(address, None)
            if len(self._unheard_dropped) < MAX_SERVERS:
                self._unheard_dropped.add(address)
            if index < self._server_index:
                self._server_index -= 1
            self._status_changed = True

    def _forget_view(self) -> None:
        """The view led us astray (or the server changed): use the server until refreshed."""
        self._members = ()
        self._next_view = self._now + self.settings.attempt_timeout

    # -- requests -------------------------------------------------------------------------------
    def request(
        self,
        op: str,
        fields: dict[str, Any],
        timeout: float,
        reply_to: ReplyTo = None,
        on_reply: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        via: str | None = None,
        priority: bool = False,
        attempt_timeout: float | None = None,
        direct_only: bool = False,
        avoid: str | None = None,
    ) -> None:
        """Send ``op`` (or queue it behind MAX_IN_FLIGHT, FIFO); ``priority``: at once,
        past the window and its backlog (session renewals); ``attempt_timeout``: this
        request's budget per attempt (None: the setting); ``direct_only``: to ``via``
        or not at all (a probe of that node: never through the server); ``avoid``: a
        second opinion on this server's answer (``_second_opinion_elsewhere``)."""
        if self._abandoned is not None:  # the loop is ending: nothing leaves any more
            self._fail_request(reply_to, on_error, self._abandoned)
            return
        req_id = next(self._ids)
        now = self._now
        attempt = self.settings.attempt_timeout if attempt_timeout is None else attempt_timeout
        pending = Pending(
            op,
            encode_request(op, req_id, **fields),
            fields,
            timeout,
            now + timeout,
            now + min(timeout, attempt),
            reply_to,
            on_reply,
            on_error,
            [self.server],
            budget=attempt,
            avoid=avoid,
        )
        if via is not None:
            pending.via = via
            pending.insist = DIRECT_INSIST
            pending.direct_only = direct_only
        if not priority and (self._backlog or len(self._pending) >= MAX_IN_FLIGHT):
            self._backlog.append((req_id, pending))  # waits its turn (FIFO): ``_pump``
            return
        self._pending[req_id] = pending
        self._dispatch(req_id, pending)

    def _dispatch(self, req_id: int, pending: Pending) -> None:
        """Send a request now: a write straight to its service's responsible node."""
        if pending.op in WRITE_OPS and len(self._members) > 1 and pending.via is None:
            f = pending.fields
            if pending.op == "register_batch":  # grouped by owner: its first entry's
                f = {**f["instances"][0], "namespace": f["namespace"]}
            key = ServiceKey(f["namespace"], f["group"], f["service"])
            owner = self._member_address.get(responsible_node(key, self._members))
            pending.owner = owner
            if owner is not None and owner != self.server:
                pending.via = owner
                # half the budget straight to the owner at most, the rest through the
                # server: a beat's whole budget is one attempt's, and a beat to an owner
                # this client cannot reach (stopped, cut off from it but not from its
                # server) was never sent through the server (review14c F7)
                half = (pending.deadline - self._now) / 2
                pending.attempt_deadline = min(pending.attempt_deadline, self._now + half)
        self._send(req_id, pending)

    def _send(self, req_id: int, pending: Pending) -> None:
        if pending.sent and pending.fields.get("request_id") and "resend" not in pending.fields:
            pending.fields = {**pending.fields, "resend": True}  # a config write sent again:
            pending.body = encode_request(pending.op, req_id, **pending.fields)  # say so
        offset = self.settings.wall_offset
        if offset is not None and pending.op in STAMPED_OPS:  # each attempt its own
            now = self._now
            void_at = now + max(pending.attempt_deadline - now, 0.0) + DEADLINE_SLACK
            pending.voids.append((pending.via or self.server, void_at))
            pending.fields = {**pending.fields, "deadline": round((void_at + offset) * 1000)}
            if pending.op in AFTER_OPS and self._stamps:  # after the client's last write of
                f = pending.fields  # the instance, whichever node stamped it (review72 F1)
                after = self._stamps.get(_ident_of(f["namespace"], f))
                if after is not None:
                    f["after"] = after
            pending.body = encode_request(pending.op, req_id, **pending.fields)
        direct = (
            pending.via is not None and pending.via == pending.owner and not self._server_minority
        )
        if direct is not ("direct" in pending.fields):  # (PROTOCOL.md 2.1, "Direct")
            fields = {k: v for k, v in pending.fields.items() if k != "direct"}
            if direct:
                fields["direct"] = True
            pending.fields = fields
            pending.body = encode_request(pending.op, req_id, **fields)
        pending.sent += 1
        if pending.via is None:
            if self._link_up:
                pending.delivered = True
                pending.copies += 1
            else:
                pending.queued += 1
        to = pending.via or self.server
        if not (pending.insist and pending.attempts and pending.attempts[-1][0] == to):
            pending.attempts.append((to, self._now))  # (a retry while connecting is not one)
        if pending.attempt_deadline < self._earliest:
            self._earliest = pending.attempt_deadline
        self._out.append(SendRequest(req_id, pending.body, pending.via))

    def _pump(self) -> None:
        """Send from the backlog while fewer than MAX_IN_FLIGHT are in flight; fail what
        waited past its whole deadline."""
        now, backlog, pending = self._now, self._backlog, self._pending
        while backlog and len(pending) < MAX_IN_FLIGHT:
            req_id, p = backlog.popleft()
            if now >= p.deadline:
                self._resolve(p, None, self._unanswered(p))
                continue
            p.attempt_deadline = p.next_attempt(now)
            p.tried = [self.server]
            pending[req_id] = p
            self._dispatch(req_id, p)

    def _recompute_earliest(self) -> None:
        self._earliest = min((p.attempt_deadline for p in self._pending.values()), default=math.inf)

    def _malformed_from(self, source: str, why: str) -> None:
        if source in self.malformed or len(self.malformed) < MAX_SERVERS:
            self.malformed[source] = (why[:MAX_WHY], self._now)
        self._warn(("malformed", source), f"ignoring a malformed reply from {source}: {why}")

    def _resolve(self, pending: Pending, result: Any, error: BaseException | None) -> None:
        """Run a request's completion hooks, then complete the caller's call."""
        if (len(pending.voids) > 1 or (error is not None and pending.voids)) and (
            pending.op in COPY_TRACKED_OPS  # a copy not answered may still land
        ):
            self._copies_out(pending, None if error is not None else self.replied_by)
        if error is None and pending.op in AFTER_OPS and type(result) is dict:
            ident = _ident_of(pending.fields["namespace"], pending.fields)
            stamp = result.get("stamp")  # what the write left (older nodes: nothing)
            if type(stamp) is int and 0 <= stamp <= MAX_STAMP:  # (a node takes no more)
                self._heard_stamp(ident, stamp)
            if pending.op == "deregister" and ident in self.registrations:
                # registered again while this deregister was out: the register may have
                # reached the owner first (straight to it, the deregister through the
                # server, or a slow link) and been undone by it; it goes again, after it
                heapq.heappush(self._redo_later, (self._now, next(self._undo_order), ident))
        try:
            if error is None:
                if pending.on_reply is not None:
                    pending.on_reply(result)
            elif pending.on_error is not None:
                pending.on_error(error)
        except Exception:  # a bug: logged, and the caller still gets its answer
            self._out.append(
                LogLine(
                    "error",
                    f"meshreg client: completion of {pending.op} failed\n"
                    + traceback.format_exc().rstrip(),
                )
            )
        if pending.reply_to is not None:
            if error is None:
                self._out.append(Complete(pending.reply_to, result))
            else:
                self._out.append(Fail(pending.reply_to, error))

    def _copies_out(self, pending: Pending, answered_by: str | None) -> None:
        """A register, batch or deregister ends with copies of it that may still be
        applied until their deadlines: the latest of those that were not the one answered
        (``answered_by``: its server; each of its copies counts if it had more than one,
        as which one answered is not told), per instance (``_copies_until``; a
        deregister's: ``_dereg_copies_until``)."""
        voids = pending.voids
        if answered_by is not None and sum(1 for to, _ in voids if to == answered_by) == 1:
            voids = [(to, t) for to, t in voids if to != answered_by]
        until = max((t for _, t in voids), default=0.0)
        if until <= self._now:
            return
        f = pending.fields
        entries = f["instances"] if pending.op == "register_batch" else (f,)
        windows = self._dereg_copies_until if pending.op == "deregister" else self._copies_until
        if len(windows) >= MAX_COPY_WINDOWS:  # bounded: the passed ones go
            for ident in [i for i, t in windows.items() if t + COPY_CLOCK_MARGIN <= self._now]:
                del windows[ident]
        for e in entries:
            ident = _ident_of(f["namespace"], e)
            if windows.get(ident, 0.0) < until:
                windows[ident] = until
            if pending.op == "deregister" and ident in self.registrations:
                self._after_dereg_copies(ident)  # registered again while it was out

    def _after_dereg_copies(self, ident: tuple[ServiceKey, InstanceId]) -> None:
        """``ident`` is registered (held): if a copy of an earlier deregister of it may
        still be applied, register it again once none can, so that the late copy does
        not leave it removed until the next beat's NOT_FOUND (review73 F-C)."""
        void_at = self._copies_void_at(ident, self._dereg_copies_until)
        if void_at:
            when = void_at + COPY_CLOCK_MARGIN
            heapq.heappush(self._redo_later, (when, next(self._undo_order), ident))

    def _after_copies(self, ident: tuple[ServiceKey, InstanceId], void: float) -> None:
        """A write sent again because a copy of an earlier one may have been applied until
        ``void`` (its deadline plus the clock margin, this client's clock): the copy's
        stamp, which this client was never told, is below the highest a node can issue
        then, so the write goes with that as ``after``.  Without it, a register sent again
        after a deregister's copies, finding the instance held with the stamp it was told,
        was a repeat (no write): a copy applied late by a node cut off from the others
        (forwarding to an owner it could not reach, then applying it itself) replicated
        after the heal and removed the live instance on every node until the session's
        next redo (review78 deaf-short seed 24: 2 s)."""
        offset = self.settings.wall_offset
        if offset is not None:
            self._heard_stamp(ident, highest_stamp_at(void + offset))

    def _heard_stamp(self, ident: tuple[ServiceKey, InstanceId], stamp: int) -> None:
        """A node told the stamp its register or deregister of ``ident`` left: the next
        write of it carries the highest one as ``after`` (review72 F1)."""
        stamps = self._stamps
        held = stamps.pop(ident, 0)
        stamps[ident] = max(held, stamp)  # (re-inserted: the oldest go first when full)
        if len(stamps) > MAX_STAMPS_KEPT:
            del stamps[next(iter(stamps))]

    def _copies_void_at(
        self, ident: tuple[ServiceKey, InstanceId], windows: dict[Any, float] | None = None
    ) -> float:
        """When no copy of a register (``windows``: of a deregister) of ``ident`` can be
        applied any more, by the deadlines it carried (0: none out).  A node whose clock
        is behind this client's may apply one up to COPY_CLOCK_MARGIN later: the window
        stays open that long (review73 F-B)."""
        windows = self._copies_until if windows is None else windows
        until = windows.get(ident, 0.0)
        if until and until + COPY_CLOCK_MARGIN <= self._now:
            del windows[ident]
            return 0.0
        return until

    def _undo_at(self, when: float, ident: tuple[ServiceKey, InstanceId], fields: Any) -> None:
        """Send ``ident``'s deregister again at ``when`` if it is still the last word."""
        heapq.heappush(self._undo_later, (when, next(self._undo_order), ident, fields))

    def _refusal(self, servers: list[str]) -> tuple[str, bool] | None:
        """Why the server connection's handshakes failed, and whether definitively: the
        last failure, unless every one of ``servers`` refused definitively (a mismatch, the
        ACL) since its last completed handshake.  That refusal stands: a connection made
        since that is not refused yet (an attempt's failover; CI under load: a key
        mismatch said "no connection completed its handshake" and kept a listener), or
        one closed midway, does not undo it: against a keyed node, a client without a
        key often sees its connection closed ("Broken pipe") before it reads the node's
        greeting (9 to 15 first attempts in 30 on 2 loaded cores), and the mismatch only
        on a later attempt.  An attempt that finds nothing listening ends it
        (``server_unreachable``: the node stopped, maybe to fix its keys or ACL)."""
        refused = self._link_refused
        known = bool(servers) and all(s in self._handshake_refused for s in servers)
        if known and (refused is None or not refused[1]):
            # the server the caller names ("{self.server} said: ..."), in its own words
            # (review69 F6: another server's refusal was put in its mouth)
            whose = self.server if self.server in servers else servers[-1]
            return (self._handshake_refused[whose], True)
        return refused

    def _unanswered(self, p: Pending) -> MeshregError:
        """The error of a call no server answered within its deadline."""
        if p.op in UNKNOWN_OUTCOME_OPS and p.sent and p.delivered:
            return self._write_unanswered(p)
        tried = list(dict.fromkeys(p.tried))
        errors = self.connect_errors
        why = "".join(f" ({s}: {errors[s]})" for s in tried if s in errors)
        since = p.deadline - p.timeout  # the call's start
        garbled = [s for s in tried if self.malformed.get(s, ("", -1.0))[1] >= since]
        if garbled:  # it did answer, with something we cannot read
            return malformed_reply_error(p.op, garbled[0], self.malformed[garbled[0]][0])
        unsent = ""
        refused = self._refusal(tried)
        if not p.delivered and p.sent:  # a write, or a read: it never left this client
            said = f" ({self.server} said: {refused[0]})" if refused else ""
            unsent = (
                f"; no connection to them completed its handshake{said}, so the request "
                "never left this client"
                + (" (not applied)" if p.op in WRITE_OPS or p.op in CONFIG_WRITES else "")
            )
        copy = (
            f"; meanwhile {p.refused_copy} (another copy may be applied)" if p.refused_copy else ""
        )
        # it reached a node (review34 nit: "is `meshreg node` running there? ... keys"
        # misled about a node that was only stopped or overloaded)
        last = p.attempts[-1][0] if p.attempts else self.server
        hint = (
            f"it reached {last} (the connection completed its handshake: a node runs "
            "there and took this client's key), which did not answer: it may be stopped, "
            f"overloaded or waiting on its peers; `meshreg stats -s {last}` and its log "
            "say which"
            if p.delivered
            else self._unreachable_hint()
        )
        error = ServerUnreachableError(
            f"{p.op}: no reply from meshreg server(s) {', '.join(tried)} "
            f"within {p.timeout:.3g}s{why}{unsent}{copy}; " + hint
        )
        error.unsent = not p.delivered
        error.refused = bool(not p.delivered and refused and refused[1])
        return error

    def _write_unanswered(self, p: Pending) -> OutcomeUnknownError:
        """The error of a registry write no node answered: it went out, so it may have been
        applied (the outcome is unknown), and each attempt says whom it went to, in what
        role, and how long that node was given; not "unreachable", which a node that was
        only forwarding to a stopped owner is not."""
        since = p.deadline - p.timeout  # the call's start
        garbled = [s for s, _ in p.attempts if self.malformed.get(s, ("", -1.0))[1] >= since]
        if garbled:  # it did answer, with something we cannot read
            return malformed_reply_error(p.op, garbled[0], self.malformed[garbled[0]][0])
        f, errors, now = p.fields, self.connect_errors, self._now
        if p.op == "register_batch":
            what = f"{len(f['instances'])} instances of namespace {f['namespace']}"
        elif "ip" in f:
            what = f"{f['service']} {f['ip']}:{f['port']} ({f['namespace']}/{f['group']})"
        else:
            what = f"{f['service']} ({f['namespace']}/{f['group']})"
        steps = []
        for i, (to, sent_at) in enumerate(p.attempts):
            ended = p.attempts[i + 1][1] if i + 1 < len(p.attempts) else now
            if to == p.owner:
                role = "the service's responsible node"
            elif p.owner is not None:
                role = f"forwarding it to the responsible node {p.owner}"
            else:
                role = "applies it or forwards it to the service's responsible node"
            why = f", {errors[to]}" if to in errors else ""
            took = ended - sent_at
            if took < CUT_SHORT:  # not a time-out: the link went (review33: "in 0s")
                said = (
                    f"no reply, attempt cut short after {took * 1000:.0f} ms (its connection "
                    "closed or was refused)"
                )
            else:
                said = f"no reply in {took:.2g}s"
            steps.append(f"{to} ({role}): {said}{why}")
        why_silent = ""
        if self.settings.wall_offset is not None and p.op in DEADLINE_OPS:
            until = (
                f" until {DEADLINE_SLACK:g}s after this error at the latest (each attempt "
                "carries a deadline past which no node applies it); read the service after "
                "that"
            )
            why_silent = (
                ". A node that forwards a write answers within the attempt even when the "
                "service's responsible node is stopped (it applies the write itself "
                f"{FORWARD_LEAD:g}s before the attempt's deadline), so each node named did not "
                "answer itself: stopped (SIGSTOP, a VM pause), overloaded, or unreachable"
            )
        else:
            until = " (it carried no deadline); read the service"
        hint = (
            "; " + self._unreachable_hint()
            if self.offline  # no node answered anything meanwhile: maybe not even running
            else ""
        )
        return OutcomeUnknownError(
            f"{p.op} {what}: outcome unknown: no answer within the call's {p.timeout:.3g}s "
            f"time-out, so it may have been applied, or may still be{until}, or send it again "
            f"(registry writes are idempotent). Attempts: {'; '.join(steps)}{why_silent}"
            + (
                f". Meanwhile {p.refused_copy} (another copy may be applied)"
                if p.refused_copy
                else ""
            )
            + hint
        )

    def _check_deadlines(self) -> None:
        """Fail calls past their deadline; fail over when the server is suspect.

        O(1) until the earliest attempt deadline (``_earliest``, a lower bound kept by
        ``_send``) has passed: then one pass over what is in flight recomputes it."""
        now = self._now
        self._pump()
        if now < self._earliest:
            return
        self._earliest = math.inf  # lowered again by every _send below
        suspect = dropped = False
        connection = self._connection  # the one undelivered copies wait on
        for req_id, p in list(self._pending.items()):
            if now >= p.deadline:
                del self._pending[req_id]
                if p.again is not None:  # refused (catching up) to the end: say so
                    self._resolve(p, None, p.again)
                    continue
                if p.via is None and p.sent and not p.delivered:
                    # "never left (not applied)", once the loop has closed the socket
                    # it waits on and seen that no handshake let it out meanwhile
                    unsent_error = self._unanswered(p)
                    self._settling.setdefault(connection, []).append((req_id, p, unsent_error))
                    if not dropped:
                        dropped = True
                        self._drop_unsent(connection)
                    suspect = True
                    continue
                # it never answered: try the next server for the rest; not when it went
                # straight to another member (that says nothing of the server's health)
                suspect = suspect or p.via is None
                self._resolve(p, None, self._unanswered(p))
            elif now >= p.attempt_deadline:
                if p.again is not None:  # refused while catching up: ask it again
                    p.again = None
                    p.attempt_deadline = p.next_attempt(now)
                    self._send(req_id, p)
                elif p.via is not None and p.insist > 0:
                    self._send(req_id, p)  # still connecting to the node we must ask
                elif p.direct_only:  # a probe of a node that is silent: nothing more
                    del self._pending[req_id]
                    self._resolve(p, None, ServerUnreachableError(f"{p.op}: {p.via} silent"))
                elif p.via is not None and p.avoid is not None:  # a second opinion
                    if not self._second_opinion_elsewhere(req_id, p, now, True):
                        p.via = None  # nobody else: the server's own answer, at last
                        p.attempt_deadline = p.next_attempt(now)
                        self._send(req_id, p)
                elif p.via is not None:  # the responsible node is silent: go through the server
                    p.via = None
                    p.attempt_deadline = p.next_attempt(now)
                    self._forget_view()
                    self._send(req_id, p)
                else:
                    suspect = True
            if req_id in self._pending and p.attempt_deadline < self._earliest:
                self._earliest = p.attempt_deadline
        if suspect:
            self._failover()

    # -- registrations and liveness ---------------------------------------------------------------
    def _register(
        self,
        reg: Registration,
        timeout: float,
        reply_to: ReplyTo,
        done: Callable[[BaseException | None], None] | None = None,
        keep: bool = False,
        wanted: Callable[[], bool] | None = None,
        began: int | None = None,
    ) -> None:
        """``done``: called with None once registered, or with the error; ``keep``: a
        failure waiting may cure keeps the registration, made once a node answers
        (``_try_kept``), and says so to the caller (``registration_kept``); ``wanted``:
        False once the registration was dropped (a kept one deregistered while this try
        was in flight: its deregister went after it, it must not be kept alive);
        ``began``: this try's number, when it began already (``_try_began``: a bulk
        entry sent singly, a retry)."""
        ident = (reg.key, reg.iid)
        if self._closing_client:  # (the close lists what to deregister: not this one)
            if began is not None:
                self._try_ended(ident)
            error = ClientClosedError(
                f"register {reg.key} {reg.iid}: this meshreg Client is closing; nothing was "
                "registered"
            )
            if done is not None:
                done(error)
            if reply_to is not None:
                self._out.append(Fail(reply_to, error))
            return
        number = self._try_began(ident) if began is None else began
        if self.session is None:
            reg.fields.pop("session", None)  # sessions off, or fallen back on beats
        self._open_session()
        named = reg.session  # the session this attempt names (None: its own beats)
        started = self._now

        def registered(result: Any) -> None:
            tries = self._try_ended(ident)
            if tries.withdrawn(number):
                self._undo_if_last_word(tries, reg)
            if wanted is not None and not wanted():
                if done is not None:
                    done(DROPPED)
                return
            if not tries.hold(number):  # deregistered after it began, or a later
                if done is not None:  # register's answer is held: the caller's
                    done(None)  # register did happen; what came after decides
                if reply_to is not None:
                    self._out.append(Complete(reply_to, result))
                return
            self._forget_kept(ident)  # (made by the caller's own register again, maybe)
            aside = False
            if self.session is None:
                reg.fields.pop("session", None)  # fell back while it was in flight
                aside = named is not None and self._suspended is not None
            elif reg.session is not None and ident not in self.registrations:
                self._count_acked(reg, 1)
            self.registrations[ident] = reg
            self._after_dereg_copies(ident)
            if aside:
                self._out_of_session(reg)  # registered in the session just set aside
            self._wrote(reg.key)
            if done is not None:
                done(None)
            if reply_to is not None:
                self._out.append(Complete(reply_to, result))

        def failed(exc: BaseException) -> None:
            if (
                named is not None
                and getattr(exc, "code", None) == ErrorCode.RESOURCE_EXHAUSTED
                and not self._session_confirmed
                and (reg.key, reg.iid) not in self.registrations
                and self._current(ident, number)  # (not after its deregister: review65 F2)
            ):
                # no node has confirmed the session: it may be the session the node
                # refused (its table is full), not the instance: once more, kept alive by
                # beats (an instance quota refuses it again: the caller gets that answer)
                reg.fields.pop("session", None)
                left = max(self.settings.attempt_timeout, started + timeout - self._now)
                self._register(reg, left, reply_to, done, keep, wanted, began=number)
                return
            tries = self._try_ended(ident)
            if self._tried(reg, exc) and tries.withdrawn(number):
                self._undo_if_last_word(tries, reg, later=True)
            current = tries.current(number)
            closing = self._closing_client
            if keep and current and ident not in self.registrations and not closing:
                kept = with_registration_kept(exc, KEPT_REGISTRATION)
                if kept.registration_kept and self._keep_registration(reg):
                    exc = kept
            if done is not None:
                done(exc)
            if reply_to is not None:
                self._out.append(Fail(reply_to, exc))

        self.request("register", reg.fields, timeout, None, registered, failed)

    def _keep_registration(self, reg: Registration) -> bool:
        """Keep ``reg`` to make it once a node answers; False: the bound is reached (the
        caller is told it failed, not that it is kept)."""
        ident = (reg.key, reg.iid)
        if ident not in self._kept_registrations and len(self._kept_registrations) >= (
            MAX_KEPT_REGISTRATIONS
        ):
            return False
        self._kept_registrations[ident] = reg
        self._status_changed = True
        self._next_kept_try = min(self._next_kept_try, self._now + KEPT_REGISTER_RETRY)
        return True

    def _unkeep(self, ident: tuple[ServiceKey, InstanceId]) -> bool:
        """No longer kept (made, replaced, deregistered); whether it was."""
        if self._kept_registrations.pop(ident, None) is None:
            return False
        self._status_changed = True
        return True

    def _forget_kept(self, ident: tuple[ServiceKey, InstanceId]) -> None:
        """Registered: neither kept nor possibly held unknown any more."""
        self._may_hold.discard(ident)
        self._unkeep(ident)

    def _try_began(self, ident: tuple[ServiceKey, InstanceId]) -> int:
        """A register try of ``ident`` begins: its number (the newest word on it)."""
        tries = self._register_tries.get(ident)
        if tries is None:
            tries = self._register_tries[ident] = RegisterTries()
        tries.out += 1
        tries.begun = number = next(self._try_numbers)
        return number

    def _try_ended(self, ident: tuple[ServiceKey, InstanceId]) -> RegisterTries:
        """A register try of ``ident`` is answered or given up: the instance's record (a
        blank one if none: nothing to weigh it against)."""
        tries = self._register_tries.get(ident)
        if tries is None:
            return RegisterTries()
        tries.out -= 1
        if tries.out <= 0:
            del self._register_tries[ident]
        return tries

    def _current(self, ident: tuple[ServiceKey, InstanceId], number: int) -> bool:
        """Try ``number`` is still the caller's last word on ``ident`` (no deregister, no
        newer register since it began)."""
        tries = self._register_tries.get(ident)
        return tries is None or tries.current(number)

    def _undo_if_last_word(
        self, tries: RegisterTries, reg: Registration, later: bool = False
    ) -> None:
        """A try that began before the instance's deregister is answered "registered", or
        failed in a way that may have been applied (``later``): its deregister once more,
        after it, while the deregister is still the caller's last word (no register
        since).  The two may have reached the owner by different ways (a forward, a
        failover) in either order.  A failed try's copies may still be applied until
        ``DEADLINE_SLACK`` past its end (each carries a deadline past which no node
        applies it): that deregister goes ``UNDO_AFTER`` later, after them all."""
        if not tries.last_word_deregister():
            return
        when = self._now + UNDO_AFTER if later else self._now
        ident = (reg.key, reg.iid)
        void_at = self._copies_void_at(ident)  # another attempt's copy may come later
        if void_at:
            when = max(when, void_at + COPY_CLOCK_MARGIN)
        if when > self._now:
            self._undo_at(when, ident, reg.beat_fields)
            return
        self._send_undo(reg.key, reg.beat_fields)

    def _send_undo(self, key: ServiceKey, fields: dict[str, Any]) -> None:
        self.request(
            "deregister",
            dict(fields),
            self._liveness_timeout(),
            on_reply=lambda _: self._wrote(key),
            on_error=lambda exc: None,  # (the caller's deregister was answered already)
        )

    def _tried(self, reg: Registration, exc: BaseException) -> bool:
        """A register try of ``reg`` failed with ``exc``: unless it never left this client
        (``unsent``), a node may hold it, and its deregister must be sent (review61 F4: a
        kept registration no try of which left is only dropped; review62: a replacement's
        unsent try does not make an earlier one unsent).  Returns whether it may be held."""
        if getattr(exc, "unsent", False) or exc is DROPPED:
            return False
        if not with_registration_kept(exc, "").registration_kept:
            return False  # refused for good (a quota, the ACL): not applied, never kept
        if len(self._may_hold) > 2 * len(self._kept_registrations) + 1024:  # bounded
            self._may_hold &= self._kept_registrations.keys() | self._registering()
        self._may_hold.add((reg.key, reg.iid))
        return True

    def _try_kept(self) -> None:
        """Register again what no node could take (when a node answers again, and every
        KEPT_REGISTER_RETRY): made, it is a registration as any other (kept alive, redone,
        deregistered at close); refused for good (a quota, the ACL), it is dropped, said."""
        if self._closing_client and self._kept_registrations:  # the close drops them
            self._kept_registrations.clear()
            self._status_changed = True
        kept = bool(self._kept_registrations)
        self._next_kept_try = self._now + KEPT_REGISTER_RETRY if kept else math.inf
        bulk = []  # (with register_batch) tried in batches: 50,000 kept are 196 requests
        timeout = self._liveness_timeout()
        for ident, reg in list(self._kept_registrations.items()):
            if ident in self._kept_trying:
                continue
            self._kept_trying.add(ident)

            def done(exc: BaseException | None, ident: Any = ident, reg: Any = reg) -> None:
                self._kept_trying.discard(ident)
                if exc is DROPPED:
                    return
                if exc is None:  # (``registered`` took it from the kept ones)
                    self._note("info", "kept registered", self.server, reg.key,
                               f"registered {reg.iid}, kept while no node could take it",
                               "registered, kept while no node could take them",
                               "services")  # fmt: skip
                    return
                if self._kept_registrations.get(ident) is not reg:
                    return  # deregistered, or made by the caller's register, meanwhile
                if not with_registration_kept(exc, "").registration_kept:
                    del self._kept_registrations[ident]
                    self._status_changed = True
                    self._warn(("kept-register", reg.key),
                               f"registering {reg.key} {reg.iid} (kept while no node could "
                               f"take it) was refused: {exc}; it is dropped")  # fmt: skip

            wanted = lambda ident=ident, reg=reg: self._kept_registrations.get(ident) is reg  # noqa: E731
            if self._batches and len(self._kept_registrations) > 1:
                bulk.append((reg, KeptSlot(done, wanted)))
            else:
                self._register(reg, timeout, None, done, wanted=wanted)
        if bulk:
            self._register_bulk(bulk, timeout)

    def _register_bulk(self, items: Any, timeout: float) -> None:
        """Queue registrations for ``register_batch`` requests (``_pump_bulk``)."""
        if self._closing_client:
            error = ClientClosedError("register_many: this meshreg Client is closing")
            for _, slot in items:
                self._entry_done(slot, error)
            return
        began = self._try_began
        if not self._batches:  # an older server: one register each
            for reg, slot in items:
                self._register_single(reg, timeout, slot, began((reg.key, reg.iid)))
            return
        self._open_session()
        deadline = self._now + timeout
        self._bulk.extend((reg, slot, deadline, began((reg.key, reg.iid))) for reg, slot in items)
        self._pump_bulk()

    def _pump_bulk(self) -> None:
        """Send batches while fewer than BATCHES_IN_FLIGHT are out.  With a cluster view,
        the instances taken are grouped by responsible node (one batch each)."""
        bulk, now = self._bulk, self._now
        while bulk and self._batches_in_flight < BATCHES_IN_FLIGHT:
            members = self._members
            take = BATCH_ENTRIES * max(1, len(members))
            chunk = []
            while bulk and len(chunk) < take:
                item = bulk.popleft()
                reg, slot = item[0], item[1]
                if self._unwanted(reg, slot):  # dropped, replaced by a newer register or
                    self._try_ended((reg.key, reg.iid))  # deregistered while it waited
                    if slot is not None:  # (review62)
                        slot.done(DROPPED)
                    continue
                if now >= item[2]:
                    self._bulk_failed([item], self._unqueued(item))
                    continue
                if self.session is None:
                    item[0].fields.pop("session", None)  # sessions off, or fallen back
                chunk.append(item)
            groups: dict[Any, list[Any]] = {}
            for item in chunk:
                key = item[0].key
                owner = responsible_node(key, members) if len(members) > 1 else ""
                groups.setdefault((key.namespace, owner), []).append(item)
            for (namespace, _), group in groups.items():
                for start in range(0, len(group), BATCH_ENTRIES):
                    self._send_batch(namespace, group[start : start + BATCH_ENTRIES])

    def _unwanted(self, reg: Registration, slot: Any) -> bool:
        """A try of the client's own no longer wanted: a kept one dropped or replaced, a
        redo of a registration the client no longer holds as it was (deregistered,
        registered again by its caller, its session closed)."""
        if type(slot) is KeptSlot:
            return not slot.wanted()
        return slot is None and self.registrations.get((reg.key, reg.iid)) is not reg

    def _unqueued(self, item: BulkItem) -> MeshregError:
        error = ServerUnreachableError(
            f"register: not sent within its time-out (queued behind other registrations "
            f"to {self.server}; not applied); give register_many a larger timeout"
        )
        error.unsent = True  # it never left this client
        return error

    def _send_batch(self, namespace: str, items: list[Any]) -> None:
        """One ``register_batch`` (halved while its body is above BATCH_BYTES)."""
        stamps = self._stamps
        entries = [  # each after the stamp its last write was told (PROTOCOL.md 2.1 "After")
            {**reg.fields, "after": after}
            if stamps and (after := stamps.get((reg.key, reg.iid))) is not None
            else reg.fields
            for reg, *_ in items
        ]
        fields = {"namespace": namespace, "instances": entries}
        if len(items) > 1 and len(encode_request("register_batch", 0, **fields)) > BATCH_BYTES:
            half = len(items) // 2
            self._send_batch(namespace, items[:half])
            self._send_batch(namespace, items[half:])
            return
        self._batches_in_flight += 1
        timeout = max(self.settings.attempt_timeout, max(i[2] for i in items) - self._now)
        named = [item[0].session is not None for item in items]  # as sent

        def replied(result: BatchOutcome) -> None:
            self._batches_in_flight -= 1
            if len(result.results) != len(items):
                why = malformed_reply_error("register_batch", self.server, "wrong result count")
                self._bulk_failed(items, why)
            else:
                for (reg, _, _, _), stamp in zip(items, result.stamps, strict=False):
                    if stamp is not None:  # the next write of it carries it (after), the
                        self._heard_stamp((reg.key, reg.iid), stamp)  # undos sent below too
                self._batch_results(items, result.results, named)
            self._pump_bulk()

        def failed(exc: BaseException) -> None:
            self._batches_in_flight -= 1
            if getattr(exc, "code", None) == ErrorCode.UNKNOWN_OP:
                self._batches = False  # an older server: single registers from now on
                self._warn(
                    ("batch-op", self.server),
                    f"meshreg server {self.server} does not know register_batch ({exc}); "
                    "registering one instance per request",
                )
                queued = [*items, *self._bulk]
                self._bulk.clear()
                for reg, slot, _, number in queued:
                    self._register_single(reg, timeout, slot, number)
                return
            self._bulk_failed(items, exc)
            self._pump_bulk()

        number = next(self._batch_numbers)
        self._batches_out[number] = items

        def answered(on: Callable[[Any], None]) -> Callable[[Any], None]:
            def run(value: Any) -> None:
                self._batches_out.pop(number, None)
                on(value)

            return run

        self.request(
            "register_batch", fields, timeout, on_reply=answered(replied), on_error=answered(failed)
        )

    def _batch_results(
        self, items: list[Any], results: tuple[EntryRefusal | None, ...], named: list[bool]
    ) -> None:
        """Each entry's result: registered (kept alive from now on), or its error; the
        refusals are logged as one line per server and kind.  ``named``: whether each
        entry named the session when sent (see ``_register`` for what a refusal then
        means)."""
        refused: dict[int, list[Any]] = {}
        again = []  # refused RESOURCE_EXHAUSTED while naming the session: without it
        for (reg, reply_to, deadline, number), result, in_session in zip(
            items, results, named, strict=True
        ):
            ident = (reg.key, reg.iid)
            if result is None:
                tries = self._try_ended(ident)
                if tries.withdrawn(number):  # (see ``_register``)
                    self._undo_if_last_word(tries, reg)
                if self._unwanted(reg, reply_to):
                    if reply_to is not None:
                        reply_to.done(DROPPED)  # (see ``_register``'s ``wanted``)
                    continue
                if not tries.hold(number):
                    self._entry_done(reply_to, None)
                    continue
                self._forget_kept(ident)
                aside = False
                if self.session is None:
                    reg.fields.pop("session", None)
                    aside = in_session and self._suspended is not None
                elif reg.session is not None and ident not in self.registrations:
                    self._count_acked(reg, 1)
                self.registrations[ident] = reg
                self._after_dereg_copies(ident)
                if aside:
                    self._out_of_session(reg)
                self._wrote(reg.key)
                self._entry_done(reply_to, None)
                continue
            code = result.code
            if self._late_entry(result, reply_to, deadline):
                again.append((reg, reply_to, deadline, number))  # (review63: the call
                continue  # failed on "check the clocks", its time-out far off)
            if (
                in_session
                and code == ErrorCode.RESOURCE_EXHAUSTED
                and (not self._session_confirmed or ident in self.registrations)
                and self._current(ident, number)  # (not after its deregister: review65 F2)
            ):  # as in _register; and one the client holds must not be left unbeaten
                self._leave_session(reg)
                again.append((reg, reply_to, deadline, number))
                continue
            exc = server_error(code, result.message, self.server)
            refused.setdefault(code, []).append((reg, exc))
            self._entry_failed(reg, reply_to, exc, number)
        self._bulk.extend(again)  # the caller sends the next batches (_pump_bulk)
        for code, errors in refused.items():
            self._warn(
                ("batch-refused", self.server, code),
                f"meshreg server {self.server} refused {len(errors)} of {len(items)} "
                f"registrations of a batch (e.g. {errors[0][0].key} {errors[0][0].iid}: "
                f"{errors[0][1]})",
            )

    def _late_entry(self, result: EntryRefusal, slot: Any, deadline: float) -> bool:
        """An entry of a caller's batch refused as late (its copy waited out its deadline:
        queued while no node listened, in a stopped node), with an attempt's time left:
        queued once more (``_late_copy`` for a whole request); a second late refusal is
        its answer."""
        if not _refused_late(result.code, result.message) or (
            self._now + self.settings.attempt_timeout >= deadline
        ):
            return False
        if type(slot) is tuple:
            chunk, index = slot
            if index in chunk.late:
                return False
            chunk.late.add(index)
            return True
        if type(slot) is KeptSlot and not slot.late:
            slot.late = True
            return True
        return False

    def _register_single(self, reg: Registration, timeout: float, slot: Any, number: int) -> None:
        """One ``register`` for an item of a bulk registration (an older server); a try of
        the client's own no longer wanted is not sent (review65 F2)."""
        if self._unwanted(reg, slot):
            self._try_ended((reg.key, reg.iid))
            if slot is not None:
                slot.done(DROPPED)
        elif type(slot) is KeptSlot:
            self._register(reg, timeout, None, slot.done, wanted=slot.wanted, began=number)
        elif type(slot) is tuple:
            done = lambda exc: self._entry_done(slot, exc)  # noqa: E731
            self._register(reg, timeout, None, done, keep=True, began=number)
        elif slot is not None:
            self._register(reg, timeout, slot, keep=True, began=number)
        else:  # a redo of the client's own: never kept (review62); held only as it was
            wanted = lambda: not self._unwanted(reg, None)  # noqa: E731
            self._register(reg, timeout, None, wanted=wanted, began=number)

    def _entry_failed(self, reg: Registration, slot: Any, exc: BaseException, number: int) -> None:
        """An item of a bulk registration failed: kept, as a ``register`` is, when waiting
        may cure its error (no node answered, none ready), and its caller told so.  Only a
        caller's: a redo of this client's own (``slot`` None: a session lost, say) is not
        (review62: an instance deregistered while its redo was out came back); nor one no
        longer the caller's last word (a deregister or a newer register since)."""
        tries = self._try_ended((reg.key, reg.iid))
        if self._tried(reg, exc) and tries.withdrawn(number):
            self._undo_if_last_word(tries, reg, later=True)
        current = tries.current(number)
        caller = slot is not None and type(slot) is not KeptSlot
        if caller and current and (reg.key, reg.iid) not in self.registrations:
            kept = with_registration_kept(exc, KEPT_REGISTRATION)
            closing = self._closing_client
            if kept.registration_kept and not closing and self._keep_registration(reg):
                exc = kept
        self._entry_done(slot, exc)

    def _entry_done(self, slot: Any, exc: BaseException | None) -> None:
        """An item of a bulk registration is done: its caller's handle, or its chunk's
        (``(BulkChunk, index)``: completed once, when its last item is done), or a kept
        registration's (``KeptSlot``)."""
        if type(slot) is KeptSlot:
            slot.done(exc)
        elif type(slot) is tuple:
            chunk, index = slot
            if exc is not None:
                chunk.failed.append((index, exc))
            chunk.left -= 1
            if chunk.left == 0:
                self._out.append(Complete(chunk.reply_to, chunk.failed))
        elif slot is not None:
            self._out.append(Complete(slot, None) if exc is None else Fail(slot, exc))

    def _bulk_failed(self, items: list[Any], exc: BaseException) -> None:
        """Registrations whose batch got no usable answer: each caller gets ``exc``;
        one log line per server and kind."""
        for reg, reply_to, _, number in items:
            self._entry_failed(reg, reply_to, exc, number)
        self._warn(
            ("batch-failed", self.server, type(exc).__name__),
            f"{len(items)} registrations not registered through {self.server}: {exc}",
        )

    def _deregister(
        self,
        key: ServiceKey,
        iid: InstanceId,
        fields: dict[str, Any],
        timeout: float,
        reply_to: ReplyTo,
    ) -> None:
        reg = self.registrations.pop((key, iid), None)
        if reg is not None and reg.session is not None:
            self._count_acked(reg, -1)
        ident = (key, iid)
        tries = self._register_tries.get(ident)
        if tries is not None:  # a register of it is out: it must not leave it held
            tries.deregistered = next(self._try_numbers)
        if self._unkeep(ident) and (
            reg is None
            and ident not in self._may_hold
            and ident not in self._kept_trying
            and ident not in self._registering()
        ):  # no try of it ever left this client: nothing to undo (review61 F4)
            if reply_to is not None:
                self._out.append(Complete(reply_to, None))
            return
        self._may_hold.discard(ident)
        self._removed_own(key, iid)
        self.request("deregister", fields, timeout, reply_to, on_reply=lambda _: self._wrote(key))
        void_at = self._copies_void_at(ident)
        if void_at and tries is None:  # (a try out: its end decides, _undo_if_last_word)
            # an earlier attempt of a register answered (or failed) already may still be
            # applied, after this deregister: it goes again once no copy can (review72 F2)
            self._undo_at(void_at + COPY_CLOCK_MARGIN, ident, fields)

    def _wrote(self, key: ServiceKey) -> None:
        """Our own write may not be in the pushed view yet: read our writes from the server."""
        watch = self.watches.get(key)
        if watch is not None:
            watch.fresh_reads_until = self._now + READ_YOUR_WRITES_WINDOW

    def _liveness_timeout(self) -> float:
        return max(self.beat_every, self.settings.attempt_timeout)

    def _open_session(self) -> None:
        """Open the session before the first registration names it (a node that has not
        heard of it opens it on the registration or renewal anyway: this only says hello
        early and learns the node's timings)."""
        if self.session is None or self._session_opened:
            return
        self._session_opened = True
        namespace, sid = self.session
        self.request(
            "session_open",
            {"namespace": namespace, "session": sid},
            self._liveness_timeout(),
            on_reply=self._session_opened_by,
            on_error=self._renewal_failed,
            priority=True,
        )

    def _session_opened_by(self, result: Any) -> None:
        self._session_answered(result)
        self._learn_timings(result)
        rate = result.get("write_rate") if isinstance(result, dict) else None
        if type(rate) is int and 0 <= rate < 2**31:  # the node's write rate (0: none), for
            self._write_rate = rate or None  # a redo's time before any refusal (review84 F1)

    def _session_answered(self, _: Any) -> None:
        if self.session is not None:
            self._session_confirmed = True

    def _learn_timings(self, result: Any) -> None:
        """A node's ``unhealthy_after`` (a map that may hold it): beat or renew at least
        ``BEATS_PER_UNHEALTHY`` times within it (module docstring, "Liveness")."""
        if not isinstance(result, dict):
            return
        unhealthy = result.get("unhealthy_after")
        if type(unhealthy) not in (int, float) or not 0 < unhealthy < math.inf:
            return
        fit = max(MIN_BEAT_INTERVAL, unhealthy / BEATS_PER_UNHEALTHY)
        every = min(self.settings.beat_interval, fit)
        if every == self.beat_every:
            return
        self.beat_every = every
        self._status_changed = True
        self._next_beat = min(self._next_beat, self._now + every)
        if every < self.settings.beat_interval:
            self._warn(
                ("beat-interval", unhealthy),
                f"meshreg server {self.server} says instances are marked unhealthy after "
                f"{unhealthy:g}s without a beat (the least unhealthy_after of the members "
                f"it hears), less than "
                f"{BEATS_PER_UNHEALTHY} of this client's beat intervals (beat_interval "
                f"{self.settings.beat_interval:g}s): renewing every {every:.3g}s instead; "
                f"set beat_interval (CLI: --beat-interval) to "
                f"{math.floor(fit * 1000) / 1000:g}s or less, or raise "
                "the nodes' unhealthy_after",
            )

    def _send_beats(self) -> None:
        if self.session is not None and self._session_acked:
            self._renew_session()
            if self._session_acked >= len(self.registrations):
                return  # every registration is in the session: no loop over them
        timeout = self._liveness_timeout()
        beats = 0
        for reg in list(self.registrations.values()):
            if reg.session is not None:
                continue  # kept alive by the session's renewal
            beats += 1
            self.request(
                "beat",
                reg.beat_fields,
                timeout,
                on_error=lambda exc, reg=reg: self._beat_failed(reg, exc),
            )
        if beats:
            # A beat's reply says nothing of the node's view; one ping per interval does
            # (``members_up``/``members`` from a node that sees no majority), as a
            # renewal's reply does for session clients: without it, a per-instance
            # client learned that its server was cut off only from the cluster view's
            # refresh (VIEW_INTERVAL), when its instances could already be marked.
            self.request("ping", {}, timeout, on_reply=self._pinged, on_error=lambda exc: None)

    def _pinged(self, pong: Any) -> None:
        """The server's ``ping`` reply: its ``unhealthy_after`` (beat often enough: a
        beat's reply says nothing of it); seek a majority if it sees none."""
        self._learn_timings(pong)
        self._probed(pong)

    def _probed(self, pong: Any) -> None:
        """A ping answered (a watcher's probe, a beater's ping): move to a server that sees
        a majority if this one sees none, as a provider does on its renewals.  A consumer
        stayed on a node cut off from its peers, which marks every instance renewed
        elsewhere unhealthy: select() failed for the whole cut while the other servers
        listed them healthy (review of 2026-12-07, 6 of 6 runs)."""
        if not isinstance(pong, dict):
            return
        up, total = pong.get("members_up"), pong.get("members")
        minority = type(up) is int and type(total) is int and total > 1 and up * 2 <= total
        self._server_minority = minority
        if minority:
            self._seek_majority((up, total))
        else:  # (the next minority is probed at once)
            self._majority_pause, self._next_majority_probe = 0.0, 0.0

    def _beat_failed(self, reg: Registration, exc: BaseException) -> None:
        code = getattr(exc, "code", None)
        if isinstance(exc, ServerUnreachableError):
            self._warn(  # one line per server and interval, not per instance
                ("beat", self.server),
                f"beats are not answered (e.g. {reg.key} {reg.iid}): {exc}",
            )
        elif code == ErrorCode.NOT_FOUND:
            if (reg.key, reg.iid) not in self.registrations:
                return  # deregistered meanwhile
            self._warn(
                ("reregister", self.server),
                f"instances unknown to {self.server} (evicted or the node restarted), "
                f"e.g. {reg.key} {reg.iid}; registering them again",
            )
            # a numbered try as a redo is (not sent once deregistered, undone if answered
            # after a deregister of it), batched with the others a restarted node lost
            self._register_bulk([(reg, None)], self._liveness_timeout())
        elif code == ErrorCode.UNAVAILABLE:
            # A member still catching up does not hold the instance yet: neither register
            # again nor fail over; the next beat retries (docs/PROTOCOL.md 5.2).
            return
        else:
            self._warn(
                ("beat-error", self.server, code),
                f"beats refused by {self.server} (e.g. {reg.key} {reg.iid}): {exc}",
            )

    def _count_acked(self, reg: Registration, step: int) -> None:
        """``reg`` enters (``step`` 1) or leaves (-1) the registrations the node
        acknowledged in the session: the count and the digest move together, as the
        node's ``count`` and ``digest`` do (core/sessions), so a renewal compares like
        with like."""
        self._session_acked += step
        share = session_key_hash(reg.key, reg.iid)
        self._session_digest = (self._session_digest + step * share) % SESSION_DIGEST_MOD

    def _set_acked(self, regs: Iterable[Registration]) -> None:
        """The registrations acknowledged in the session are ``regs`` from now on (none:
        the session was closed, set aside or given up)."""
        regs = list(regs)
        self._session_acked = len(regs)
        total = sum(session_key_hash(reg.key, reg.iid) for reg in regs)
        self._session_digest = total % SESSION_DIGEST_MOD
        self._digest_differs = 0

    def _renew_session(self) -> None:
        """One renewal for every registration in the session (the whole liveness cost)."""
        assert self.session is not None
        namespace, sid = self.session

        def renewed(result: SessionRenewal) -> None:
            self._session_answered(result)
            if result.unhealthy_after is not None:  # (an operator may have changed it)
                self._learn_timings({"unhealthy_after": result.unhealthy_after})
            self._server_minority = result.minority is not None
            if result.minority is not None:
                self._seek_majority(result.minority)
            else:  # (the next minority is probed at once)
                self._majority_pause, self._next_majority_probe = 0.0, 0.0
            if not result.ready:  # a member catching up: what it holds may lag (2.3a)
                if result.known is False:
                    self._unknown_while_catching_up = self.server
                return
            held, acked = result.instances, self._session_acked
            unknown = result.known is False or (
                self._unknown_while_catching_up == self.server and held < acked
            )
            self._unknown_while_catching_up = ""
            if result.held is not None:
                self._drop_strays(result)
            self._long_renewals = self._long_renewals + 1 if held > acked else 0
            if self._long_renewals >= LONG_RENEWALS:
                self._long_renewals, self._list_session = 0, True
            if unknown and acked:
                self._short_renewals = SHORT_RENEWALS  # the node never heard of it
            elif held < acked:
                self._short_renewals += 1
            else:
                self._short_renewals = 0
            self._check_digest(result, held, acked)
            if self._short_renewals >= SHORT_RENEWALS and self._redo_in_flight():
                self._short_renewals = 0  # the redo under way registers them (below)
            if self._short_renewals >= SHORT_RENEWALS:
                self._short_renewals = 0
                self._warn(
                    ("session-redo", self.server),
                    f"meshreg server {self.server} holds {held} of the {acked} instances "
                    "of this client's session (a node restarted, they were evicted while "
                    "this process was stopped, or an operator deregistered them: to take an "
                    "instance out for good, stop this process or drain it with "
                    "`meshreg instance-set --enabled false`); registering them again",
                )
                self._reregister_session()

        fields: dict[str, Any] = {"namespace": namespace, "session": sid}
        if self._list_session:
            fields["list"] = True
        self.request(
            "session_renew",
            fields,
            self._liveness_timeout(),
            on_reply=renewed,
            on_error=self._renewal_failed,
            priority=True,
        )

    def _check_digest(self, result: SessionRenewal, held: int, acked: int) -> None:
        """The node holds as many instances in the session as this client acknowledged,
        but (by the renewal's ``digest``) not the same ones: a registration and a
        deregistration acknowledged by an owner cut off right after, before it saw the
        cut (review78 F4); the count rules never see it.  ``SHORT_RENEWALS`` such renewals
        in a row (one may cross a registration in flight) do what a move away from a
        cut-off server does (``_move_to``, review75 F2): the next renewal names what the
        node holds (the strays go) and the session's instances are registered again
        through the server (a repeat where held).  An older node tells no digest."""
        digest = result.digest
        if digest is None or held != acked or digest == self._session_digest:
            self._digest_differs = 0  # (other counts: the count rules handle them)
            return
        self._digest_differs += 1
        if self._digest_differs < SHORT_RENEWALS:
            return
        self._digest_differs = 0
        if self._redo_in_flight():
            return
        self._warn(
            ("session-differs", self.server),
            f"meshreg server {self.server} holds {held} instances in this client's "
            "session, as many as this client registered in it, but not the same ones (a "
            "registration or deregistration acknowledged by a node cut off from the "
            "others right after: the rest of the cluster lacks it); registering them again "
            "and deregistering those this client does not hold",
        )
        self._list_session = True
        self._reregister_session()

    def _drop_strays(self, result: SessionRenewal) -> None:
        """The node named the instances it holds in this client's session: deregister
        those this client does not hold (nor is registering). Its renewals would keep
        them alive for good: a deregistration lost with the node that applied it (it died
        before replicating it), or undone by a node back from a stall longer than removals
        are remembered (review36 F2, F3)."""
        assert result.held is not None and self.session is not None
        self._list_session = result.held_more  # more to look at: name them again
        namespace = self.session[0]
        busy = self._registering()
        strays = []
        for group, service, ip, port, cluster in result.held:
            ident = (ServiceKey(namespace, group, service), InstanceId(ip, port, cluster))
            if ident not in self.registrations and ident not in busy:
                strays.append(ident)
        if not strays:
            return
        self.strays_dropped += len(strays)
        named = ", ".join(f"{k.service} {i}" for k, i in strays[:5])
        self._warn(
            ("session-strays", self.server),
            f"meshreg server {self.server} holds {len(strays)} instance(s) in this client's "
            f"session that this client deregistered (e.g. {named}): a deregistration lost "
            "with a node that died before passing it on, or undone by a node back from a "
            "long stall; deregistering them again",
        )
        for key, iid in strays:
            fields = {"namespace": key.namespace, "group": key.group, "service": key.service,
                      "ip": iid.ip, "port": iid.port, "cluster": iid.cluster}  # fmt: skip
            self.request("deregister", fields, self._liveness_timeout())

    def _registering(self) -> set[tuple[ServiceKey, InstanceId]]:
        """What this client is registering now (not acknowledged yet)."""
        busy = {(reg.key, reg.iid) for reg, _, _, _ in self._bulk}
        for items in self._batches_out.values():
            busy.update((item[0].key, item[0].iid) for item in items)
        for p in [*self._pending.values(), *(p for _, p in self._backlog)]:
            if p.op == "register":
                busy.add(_ident_of(p.fields["namespace"], p.fields))
        return busy

    def _redo_in_flight(self) -> bool:
        """A redo's registrations (the client's own: no caller's slot) are still queued or
        out.  A renewal that finds the node short meanwhile must not start another: under
        a write rate (``[limits] write_rate_per_client``) each redo re-sends every
        instance, and the copies queued behind the first took the rate's turns, so each
        refusal told a later one and the redo never ended (CI on 6345740: 2,744 of 3,000
        back 41 s after a restart, the refusals' waits growing 13 -> 26 s)."""
        if any(item[1] is None for item in self._bulk):
            return True
        return any(item[1] is None for items in self._batches_out.values() for item in items)

    def _reregister_session(self) -> None:
        """Register the session's instances again, through the server that said it holds
        fewer (the view is forgotten until fetched again): straight to their owners,
        each a repeat there, nothing reached that server while the owner's link to it
        lost messages (review75 F4); through it, the owner's answer brings them back to
        it (the forwarder applies what the owner wrote: PROTOCOL.md 1.8)."""
        self._forget_view()
        timeout = self._liveness_timeout() + len(self.registrations) / 5000
        if self._write_rate:  # the node limits this client's writes: the time it needs
            timeout += len(self.registrations) / self._write_rate  # (review84 F1)
        redo = [(reg, None) for reg in self.registrations.values() if reg.session is not None]
        self._register_bulk(redo, timeout)

    def _renewal_failed(self, exc: BaseException) -> None:
        self.renewals_failed += 1
        self._status_changed = True
        if getattr(exc, "code", None) == ErrorCode.UNKNOWN_OP and self.session is not None:
            # a node older than sessions: fall back on per-instance beats, for good
            self._out.append(
                LogLine(
                    "warning",
                    f"meshreg server {self.server} does not know sessions ({exc}); keeping "
                    "registrations alive with per-instance beats",
                )
            )
            self.session = None
            self._status_changed = True
            self._set_acked(())
            for reg in self.registrations.values():
                reg.fields.pop("session", None)
            return
        if getattr(exc, "code", None) == ErrorCode.RESOURCE_EXHAUSTED:
            if self.session is not None:
                self._suspend_session(exc)
            return  # else suspended already (an open and a renewal both refused)
        if getattr(exc, "code", None) == ErrorCode.PERMISSION_DENIED and not self._session_acked:
            # a key that may not write here, refused before the session kept anything
            # alive: the registration's own PERMISSION_DENIED tells the caller, and there
            # is nothing to close
            self._session_opened = False
            self._out.append(LogLine("debug", f"session refused by {self.server}: {exc}"))
            return
        if not self.registrations:  # the last one went while the renewal was on its way
            self._out.append(LogLine("debug", f"session renewal failed ({self.server}): {exc}"))
            return
        self._warn(
            ("session", self.server, type(exc).__name__),
            f"session renewal failed (server {self.server}); "
            f"{len(self.registrations)} registrations depend on it: {exc}",
        )

    def _suspend_session(self, exc: BaseException) -> None:
        """The node refused the session (RESOURCE_EXHAUSTED): per-instance beats until
        ``_retry_session`` opens it again (module docstring, "Liveness")."""
        assert self.session is not None
        self._suspended, self.session = self.session, None
        self._session_opened = self._session_confirmed = False
        self._short_renewals = 0
        self._set_acked(())
        self._session_retry_at = self._now + SESSION_RETRY
        self._status_changed = True
        held = [reg for reg in self.registrations.values() if reg.session is not None]
        self._warn(
            ("session-refused", self.server),
            f"meshreg server {self.server} refused this client's session ({exc}); keeping "
            f"{len(self.registrations)} registrations alive with per-instance beats, and "
            f"trying the session again every {SESSION_RETRY:g} s",
        )
        for reg in held:  # the node may hold them in the session: out of it, one batch
            reg.fields.pop("session", None)
        if held:
            self._register_bulk(
                [(reg, None) for reg in held], self._liveness_timeout() + len(held) / 5000
            )

    def _out_of_session(self, reg: Registration) -> None:
        """A registration the node took in the session after the client set it aside:
        registered again without it, so that its beats count."""
        self._register_bulk([(reg, None)], self._liveness_timeout())

    def _leave_session(self, reg: Registration) -> None:
        """``reg`` is kept alive by its own beats from now on."""
        if reg.fields.pop("session", None) is None:
            return
        if self.session is not None and (reg.key, reg.iid) in self.registrations:
            self._count_acked(reg, -1)  # it was counted as held in the session

    def _retry_session(self) -> None:
        """Try to open the suspended session again; once open, the registrations go
        back into it (one batch), and one renewal keeps them alive."""
        assert self._suspended is not None
        self._session_retry_at = math.inf  # one try in flight
        namespace, sid = self._suspended

        def opened(result: Any) -> None:
            self._learn_timings(result)
            if self._suspended is None or self.closed:
                return
            self.session, self._suspended = self._suspended, None
            self._session_opened = self._session_confirmed = True
            self._status_changed = True
            back = [reg for reg in self.registrations.values() if reg.key.namespace == namespace]
            for reg in back:
                reg.fields["session"] = sid
            self._set_acked(back)  # each counts as held, as after a redo
            self._out.append(
                LogLine(
                    "info",
                    f"meshreg server {self.server} opened this client's session again; "
                    f"{len(back)} registrations are kept alive by it from now on",
                )
            )
            if back:
                self._reregister_session()

        def refused(exc: BaseException) -> None:
            self._session_retry_at = self._now + SESSION_RETRY
            self._out.append(LogLine("debug", f"session still refused by {self.server}: {exc}"))

        self.request(
            "session_open",
            {"namespace": namespace, "session": sid},
            self._liveness_timeout(),
            on_reply=opened,
            on_error=refused,
            priority=True,
        )

    def _close_session(self, timeout: float, reply_to: ReplyTo) -> None:
        """Close the session: the node deregisters every instance registered in it."""
        self._suspended, self._session_retry_at = None, math.inf  # no more tries to open it
        if self.session is None or not self._session_opened:
            # never opened (a client that only read): nothing to close on any node
            self._out.append(Complete(reply_to, {"deregistered": 0}))
            return
        namespace, sid = self.session
        for ident, reg in list(self.registrations.items()):
            if reg.session is not None:
                del self.registrations[ident]
                self._removed_own(*ident)
        acked = self._session_acked
        self._set_acked(())
        fields = {"namespace": namespace, "session": sid}
        if self._session_confirmed or acked:
            self.request("session_close", fields, timeout, reply_to)
            return
        # no node ever answered its open (nor acknowledged one of its registrations): a
        # close no node answers is nothing to warn of (review45 F10: "could not close
        # session ... on close" after a sidecar stopped before any node answered); sent
        # all the same, in case a registration whose reply was lost opened it; not when no
        # connection ever completed a handshake (``_left_any``): nothing left this client
        # (review61 F4: close() waited its whole time-out)
        if not self._left_any:
            self._out.append(Complete(reply_to, {"deregistered": 0}))
            return
        self.request(
            "session_close", fields, timeout,
            on_reply=lambda result: self._out.append(Complete(reply_to, result)),
            on_error=lambda exc: self._out.append(Complete(reply_to, {"deregistered": 0})),
        )  # fmt: skip

    # -- watches -------------------------------------------------------------------------------
    def _subscribe(self, cmd: Subscribe) -> None:
        key, listener = cmd.key, cmd.listener
        watch = self.watches.get(key)
        loaded = cmd.saved is not None or (watch is not None and watch.view.loaded)
        if self.offline and not loaded:  # nothing to serve, and no node answers: say so now
            error = self.offline_error("instances")
            kept = with_listener_kept(error, KEPT_SUBSCRIBER) if listener is not None else error
            if kept.listener_kept:  # (Nacos 2's redo) pulled when a node answers
                self._next_kept_pull = min(self._next_kept_pull, self._now + KEPT_REGISTER_RETRY)
                watch = self._watch(key) if watch is None else watch
                if listener not in watch.listeners:
                    watch.listeners.append(listener)
            self._out.append(Fail(cmd.reply_to, kept))
            return
        if watch is None:
            watch = self._watch(key)
            if cmd.saved is not None:
                wall = self.settings.wall_offset
                age = None
                if cmd.saved_at is not None and wall is not None:
                    age = max(0.0, self._now + wall - cmd.saved_at)
                watch.view.preload(list(cmd.saved), age)
        watch.pinned = watch.pinned or cmd.pinned
        watch.read_at = self._now
        if listener is not None and listener not in watch.listeners:  # (once, as Nacos)
            watch.listeners.append(listener)
        if self.offline and watch.view.from_disk and not watch.said_stale:
            self._say_stale(watch, self.offline_error("instances"))  # served now, said once
        if watch.view.loaded and not (watch.view.from_disk and not watch.said_stale):
            if listener is not None:
                self._out.append(CallListener(listener, watch.view.listing()))
            self._out.append(Complete(cmd.reply_to, watch.view.listing()))
            return
        watch.waiting.append((cmd.reply_to, listener))
        self._pull(key, cmd.timeout)

    def _watch(self, key: ServiceKey) -> Watch:
        """A new watch of ``key``: its topic subscribed, its first push awaited."""
        watch = self.watches[key] = Watch(ServiceView(key))
        watch.awaiting_push_since = self._now
        self._out.append(WatchTopic(key))
        return watch

    def _unsubscribe(self, key: ServiceKey, listener: Listener | None, reply_to: ReplyTo) -> None:
        watch = self.watches.get(key)
        if watch is not None:
            watch.listeners = [
                cb for cb in watch.listeners if listener is not None and cb != listener
            ]
            if not watch.listeners and not watch.pinned:
                self._drop_watch(key)
        self._out.append(Complete(reply_to, None))

    def _drop_idle_views(self) -> None:
        """Views kept only for reads that nobody read for PIN_IDLE: no longer watched (a
        later read pulls the service again).  Not while no node answers: the view may be
        all there is to serve."""
        if self.offline or self._silent:
            return
        idle = self._now - PIN_IDLE
        for key, w in list(self.watches.items()):
            if w.pinned and not w.listeners and not w.waiting and w.read_at <= idle:
                self._drop_watch(key)

    def _drop_watch(self, key: ServiceKey) -> None:
        del self.watches[key]
        self._out.append(UnwatchTopic(key))

    def _read_cached(self, key: ServiceKey, healthy_only: bool) -> tuple[str, Any]:
        watch = self.watches.get(key)
        if watch is None or not watch.view.loaded:
            return ("none", None)
        watch.read_at = self._now
        if self._now < watch.fresh_reads_until:
            return ("bypass", watch.view.listing(healthy_only))
        return ("view", watch.view.listing(healthy_only))

    def _resync(self) -> None:
        """The periodic backstop: the views taken from the current server's incarnation
        are checked in ``revisions`` requests (one per namespace and REVISIONS_CHUNK
        views), and only the stale ones pulled again: an idle client costs its node one
        request per resync, not one per watched service (review24: 2,000 watches, 200
        ``instances`` requests a second).  Any other view (still loading, from disk, from
        another node or incarnation, rechecking) is pulled, as before."""
        server = self.server
        current = self.epochs.get(server) if server not in self._no_revisions else None
        batches: dict[str, list[ServiceKey]] = {}
        for key, w in list(self.watches.items()):
            v = w.view
            if (
                current is None
                or v.epoch != current
                or not v.loaded
                or v.from_disk
                or w.pulling
                or w.confirming is not None
                or w.recheck_at != math.inf
            ):
                self._pull(key)
            else:
                batches.setdefault(key.namespace, []).append(key)
        if current is None:
            return
        for namespace, keys in batches.items():
            chunk: list[ServiceKey] = []
            size = 0
            for key in keys:
                chunk.append(key)
                size += len(key.group) + len(key.service) + 16
                if len(chunk) >= REVISIONS_CHUNK or size >= REVISIONS_CHUNK_BYTES:
                    self._check_revisions(namespace, current, chunk)
                    chunk, size = [], 0
            if chunk:
                self._check_revisions(namespace, current, chunk)

    def _check_revisions(self, namespace: str, epoch: int, keys: list[ServiceKey]) -> None:
        """One ``revisions`` request; pull what it says is stale (on an error: all)."""
        entries = []
        for key in keys:
            view = self.watches[key].view
            entries.append([key.group, key.service, view.revision, bool(view.instances)])
        server = self.server

        def checked(result: RevisionCheck) -> None:
            for i in result.stale:
                if i < len(keys):
                    self._pull(keys[i])

        def failed(exc: BaseException) -> None:
            if getattr(exc, "code", None) == ErrorCode.UNKNOWN_OP:
                self._no_revisions.add(server)  # an older node: pull, as it expects
            for key in keys:
                self._pull(key)

        self.request(
            "revisions",
            {"namespace": namespace, "epoch": epoch, "services": entries},
            max(PULL_TIMEOUT, self.settings.attempt_timeout),
            on_reply=checked,
            on_error=failed,
        )

    def _pull(self, key: ServiceKey, timeout: float | None = None, confirm: bool = False) -> None:
        """Re-pull a service's list; ``confirm``: ask another server, and trust its answer
        even if it empties the list (empty protection asks for that second opinion)."""
        watch = self.watches.get(key)
        if watch is None:
            return
        if watch.pulling:  # the reply in flight may predate what made us pull again
            watch.repull = True
            return
        watch.pulling = True
        watch.repull = False
        via = avoid = None
        if confirm and len(self.servers) > 1:  # another server than the one it checks
            avoid = watch.confirming[1] if watch.confirming is not None else self.server
            via = next(a for a in self._servers_after_current() if a != avoid)

        def pulled(snap: InstancesSnapshot) -> None:
            watch.pulling = False
            if self.watches.get(key) is not watch:  # dropped meanwhile: no news for the
                watch.view.apply_snapshot(snap)  # watch in its place nor its disk copy
                self._resolve_waiting(watch)  # (review70 F4: an older list was saved)
                return
            self._pulled(watch, snap, self.replied_by, confirm)

        def failed(exc: BaseException) -> None:
            watch.pulling = False
            if self.watches.get(key) is not watch:
                for reply_to, _ in watch.waiting:
                    self._out.append(Fail(reply_to, exc))
                watch.waiting.clear()
                return
            self._pull_failed(watch, exc)

        self.request(
            "instances",
            {"namespace": key.namespace, "group": key.group, "service": key.service},
            timeout or max(PULL_TIMEOUT, self.settings.attempt_timeout),
            on_reply=pulled,
            on_error=failed,
            via=via,
            avoid=avoid,
        )

    def _pulled(self, watch: Watch, snap: InstancesSnapshot, source: str, confirm: bool) -> None:
        key = watch.view.key
        # not an incarnation of this server we took an answer from (a restart, or a server
        # not heard before), and young: what its list drops may only be missing there yet
        age = _table_age(snap)
        # ... or, whatever incarnation, a young table that started after a node last told
        # us this list: it never saw these instances registered (review56 F2: after a
        # whole-cluster restart, the first provider back made each node trusted, and the
        # services of providers not back yet were emptied, second opinion and all)
        before = age is not None and watch.told_at < self._now - age
        young = (snap.epoch != self.epochs.get(source) or before) and (
            age is not None and age < YOUNG_NODE_GRACE
        )
        # ... unless it is the second opinion on a list emptied by an incarnation already
        # trusted (its push, or its answer) whose table is young too, and agrees, caught up
        # from its peers: in a new cluster every node is young, and a scale to zero reached
        # consumers only once the tables were 15 s old (review48 F5: select() handed out
        # the removed instance).  Not when the node that emptied it is old: a young node
        # is then one that restarted, and both may be wrong for a moment (review49 F2: a
        # provider's node crashed and restarted, consumers were called with [])
        agrees = (
            confirm
            and not before  # (in a new cluster the young tables told us the list)
            and watch.confirming is not None
            and not snap.instances
            and snap.synced
            and self._young_until.get(watch.confirming[1], -math.inf) > self._now
        )
        if young and not agrees and self._would_drop(watch, snap):
            self._note(
                "warning",
                "young",
                source,
                key,
                (
                    f"{source} and the peers it caught up from started {age:.1f}s ago "
                    "(the whole cluster restarted)"
                    if snap.synced
                    else f"{source} started {age:.1f}s ago"
                )
                + " and lists "
                + ("nothing" if not snap.instances else "only part of it")
                + " yet; keeping the last list until its providers have had time to register "
                "again and it has caught up from its peers",
            )
            watch.recheck_at = self._now + YOUNG_RECHECK
            self._next_recheck = min(self._next_recheck, watch.recheck_at)
            self._resolve_waiting(watch)
            return
        if (
            not confirm
            and self.settings.empty_protection
            and not watch.view.loaded
            and not snap.instances
            and not snap.synced
            and age is not None
            and age < YOUNG_NODE_GRACE
            and len(self.servers) > 1
        ):
            # A first answer, empty, from a node that started a moment ago and has not
            # caught up from its peers (restarted inside a cut, say): it may only lack what
            # they hold.  Another server is asked first (review of 2026-12-07: a consumer
            # started on a node restarted inside a cut got [] for a service the other
            # nodes listed healthy, 2 of 2 runs).
            watch.held_first = (snap, source)
            self._confirm_empty(
                key, f"{source} started {age:.1f}s ago, has not caught up from its peers "
                "and lists nothing"
            )  # fmt: skip
            return
        watch.held_first = None
        self.epochs.pop(source, None)  # re-inserted: the dict keeps the newest last
        self.epochs[source] = snap.epoch  # an answer of this incarnation is taken
        if len(self.epochs) > MAX_SERVERS:
            del self.epochs[next(iter(self.epochs))]
        if age is not None and age < YOUNG_NODE_GRACE:
            self._young_until[source] = self._now + YOUNG_NODE_GRACE - age
            if len(self._young_until) > MAX_SERVERS:
                del self._young_until[next(iter(self._young_until))]
        else:
            self._young_until.pop(source, None)
        if not confirm and self._would_empty(watch, snap) and not self._own_emptying(watch):
            self._confirm_empty(key, f"{source} answered an empty list")
            return
        if confirm and watch.confirming is not None:
            (why, whose), watch.confirming = watch.confirming, None
            refilled, watch.refilled = watch.refilled, False
            if not snap.instances and refilled:  # the emptier pushed instances since: this
                self._out.append(  # "empty" is older than that; its list is pulled again
                    LogLine(
                        "debug",
                        f"{key}: {source} lists nothing, but {whose} pushed "
                        "instances since it emptied the list; asking it again",
                    )  # fmt: skip
                )
                self._resolve_waiting(watch)
                self._pull(key)
                return
            if not snap.instances:  # a scale to zero (a provider stopped): not a fault
                agrees = (
                    f"{source} agrees"
                    if source != whose
                    else f"no other server answered; {source} lists nothing still"
                )
                self._note("info", "emptied", whose, key, f"emptied ({why}; {agrees})")
            elif watch.view.instances:
                self._note(
                    "warning",
                    "contradicted",
                    whose,
                    key,
                    f"{why}, but {source} lists {len(snap.instances)} instances; keeping the "
                    "last list as that server lists it (a node that lags or lost its "
                    "providers?)",
                )
        outcome = watch.view.apply_snapshot(snap)
        watch.told_at = self._now
        self._unnote(("young",), key)  # a list taken: "keeping the last list" is over
        listing = watch.view.listing()
        if watch.said_stale:  # said with the others back from ``source`` (``_say_stale``)
            watch.said_stale = False
            if not self._unnote(("stale", "stale from disk"), key):
                self._note("info", "live again", source, key, f"live data again from {source}")
        if outcome is not Outcome.UNCHANGED:
            self._out.append(SaveToDisk(key, listing))
            for cb in watch.listeners:
                if all(cb is not waiter for _, waiter in watch.waiting):
                    self._out.append(CallListener(cb, listing))
        self._resolve_waiting(watch)
        if outcome is Outcome.GAP or watch.repull:  # already stale: pull again
            self._pull(key)

    def _pull_failed(self, watch: Watch, exc: BaseException) -> None:
        key = watch.view.key
        if watch.held_first is not None and not watch.view.loaded:
            # no second opinion on a young node's empty first answer: that answer it is
            (snap, source), watch.held_first = watch.held_first, None
            watch.confirming = None
            self._pulled(watch, snap, source, True)
            return
        if watch.view.loaded:  # no node answers: serve what we have (memory or disk)
            self._say_stale(watch, exc)
            self._resolve_waiting(watch)
            return
        for reply_to, cb in watch.waiting:
            kept = with_listener_kept(exc, KEPT_SUBSCRIBER) if cb is not None else exc
            self._out.append(Fail(reply_to, kept))
            if cb is not None and cb in watch.listeners and not kept.listener_kept:
                watch.listeners.remove(cb)
            if kept.listener_kept:  # pulled again in a few seconds (and when one answers)
                self._next_kept_pull = min(self._next_kept_pull, self._now + KEPT_REGISTER_RETRY)
        if not watch.waiting and watch.listeners and not with_listener_kept(exc, "").listener_kept:
            # a kept subscriber's later pull refused for good (the ACL, a bad name): said,
            # and dropped, not tried every few seconds for ever (review60 F4)
            self._warn(("kept-subscriber", key), f"subscription to {key} refused: {exc}; its "
                       f"{len(watch.listeners)} listener(s) are dropped")  # fmt: skip
            watch.listeners.clear()
        watch.waiting.clear()
        if not watch.listeners and not watch.pinned and self.watches.get(key) is watch:
            self._drop_watch(key)

    def _say_stale(self, watch: Watch, exc: BaseException) -> None:
        """Log, once until a node answers again, that a watch serves an unconfirmed list:
        an outage concerns every watched service at once, so it is said with the others in
        one line per LOG_INTERVAL naming how many (``_note``; review51 F4: 200 watched
        services wrote 200 warnings, and 200 "live data again" lines when a node answered).
        Not per server: none answers (the error names those tried)."""
        if watch.said_stale:
            return
        watch.said_stale = True
        key, why = watch.view.key, f"no meshreg server answers ({exc})"
        if not watch.view.from_disk:
            self._note("warning", "stale", "", key, f"{why}; serving the last known list")
            return
        why += "; serving the disk cache"
        age = watch.view.disk_age
        if age is None:
            self._note("warning", "stale from disk", "", key, why)
            return
        written = f"written {_age(age)} ago"  # each copy's own: the line names the first's
        many = f"{why} ({key.service}'s {written})"
        self._note("warning", "stale from disk", "", key, f"{why} ({written})", many)

    def _resolve_waiting(self, watch: Watch) -> None:
        """Answer callers waiting on a pull with the list we keep."""
        listing = watch.view.listing()
        for reply_to, cb in watch.waiting:
            if cb is not None:
                self._out.append(CallListener(cb, listing))
            self._out.append(Complete(reply_to, listing))
        watch.waiting.clear()

    def _would_drop(self, watch: Watch, snap: InstancesSnapshot) -> bool:
        """A snapshot that lacks an instance of a non-empty view (protection on)."""
        if not (self.settings.empty_protection and watch.view.loaded and watch.view.instances):
            return False
        listed = {inst.id for inst in snap.instances}
        return any(iid not in listed for iid in watch.view.instances)

    def _would_empty(self, watch: Watch, snap: InstancesSnapshot) -> bool:
        """A snapshot that would blank out a non-empty list (needs a second opinion)."""
        return (
            self.settings.empty_protection
            and watch.view.loaded
            and bool(watch.view.instances)
            and not snap.instances
        )

    def _confirm_empty(self, key: ServiceKey, why: str) -> None:
        """Keep the list until a second opinion: said only if it contradicts (``_pulled``)."""
        watch = self.watches.get(key)
        if watch is not None:
            watch.confirming = (why, self.server)
            watch.refilled = False
        self._out.append(
            LogLine("debug", f"{key}: {why}; asking for a second opinion before taking it")
        )
        self._pull(key, confirm=True)


def _table_age(snap: InstancesSnapshot) -> float | None:
    """How long the answering node's table has collected registrations: ``table_age``;
    from a node that does not send it, its uptime unless it caught up from its peers
    (``synced``: its table is theirs, taken as old).  None: old enough."""
    if snap.table_age is not None:
        return snap.table_age
    return None if snap.synced else snap.uptime
