"""The node's configuration center: the glue between the loop and ``ConfigReplicator``.

The runtime (runtime/node.py) hands this plane the config requests of its clients (after
parsing and the ACL check), the config messages of its peers (peer port, frames
``[CONFIG_FRAME, body]``), the member view and the clock; the plane carries out what
the replicator decides, in its order:

* **Group commit, pipelined** (runtime/config_commit.py).  ``serve``, ``on_peer`` and
  ``tick`` only queue the replicator's effects in the current turn; ``flush`` (once per
  loop turn: ``tick`` calls it, the runtime calls ``tick`` in every ``prepare``) hands
  the turn's versions to the writer (ONE fsynced SQLite transaction, on the writer
  thread in a node) and carries out the effects of every turn whose commit is done, in
  their order; the runtime also calls ``committed`` when the writer's wake-up fd is
  readable.  So nothing is acknowledged - a client reply, an ack to a peer - before it
  is on disk, and while turn N is fsynced the loop serves turn N+1 (a turn's records
  go to the peers at its end, in parallel with its fsync: they acknowledge nothing).
  After the commit, the version shown of every persisted data id (one a majority
  acknowledged: ``ConfigStore.shown``) is compared with the one last announced: a
  change is published on the client XPUB (``encode_config_change``), on every node,
  whether the change was written here or replicated.  A read of a data id
  with a version not committed yet is answered after that commit (held in its turn).
* Sends to peers are one-way messages on the peer DEALERs (wire/config_peer); a send
  that cannot leave now is dropped (records are resent, the rest is repaired by
  anti-entropy).  A turn's records, acks and commits for one peer leave as one
  ``config_batch`` (in their order), not one message each.
* A write this node is not responsible for is forwarded once (``config_forward``); the
  owner answers with ``config_forward_reply``, merged here too (read-your-writes), then
  relayed to the client.  No answer within ``FORWARD_TIMEOUT`` of the client's write
  arriving here: UNAVAILABLE, outcome unknown, naming the owner - before the client's
  attempt budget ends (``CONFIG_WRITE_ATTEMPT``, configcenter/model.py), so the client
  hears it and re-sends with the same request id, which the owner applies at most once.

**Ready gate** (configcenter/ready.py).  A node with peers starts not ready: it asks
every peer for its digests a page at a time (``config_sync`` with a cursor; the next page
is asked when one arrives, a page not there 0.5 s after its ask is asked again) and
answers config reads with UNAVAILABLE until it has caught up with the whole digest set
of a majority of the configured members (itself included): for each, every data id where
the peer was ahead is now at least as far here.  Writes need no gate (the replicator's
per-data-id catch-up covers them).

**Reads that are behind.**  A read whose ``min_revision`` is above what this node holds
waits up to ``PARK_SECONDS`` for the version to arrive (it usually is on its way: the
client saw it on another node), then gets UNAVAILABLE.  At most ``MAX_PARKED`` wait; a
namespace is sure of ``MAX_PARKED_PER_NAMESPACE`` places, and takes more only while as
many stay free for the others (one tenant does not take them all; a cluster that uses one
namespace still has 7,500, review60 F9).
Their deadlines are a heap (one entry per read, at its first wait): a turn costs nothing
per waiting read (each turn that expired some walked them all: 796 us a turn with 10,000
waiting, 110 us now).

Time: every ``now`` here is wall-clock seconds (the runtime's monotonic clock plus its
offset): the store stamps versions with it and prunes by age; deadlines use it too.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from meshreg.config import NodeConfig
from meshreg.configcenter.core import ConfigStore, ConfigView
from meshreg.configcenter.model import (
    BEHIND_WAIT,
    ConfigEntry,
    ConfigKey,
    ConfigRejected,
    check_content,
)
from meshreg.configcenter.ready import ReadyGate
from meshreg.configcenter.replication import (
    FORWARD_TIMEOUT,
    ConfigReplicator,
    Effect,
    FetchVersions,
    ForwardWrite,
    Persist,
    ReplyEntry,
    ReplyError,
    SendAck,
    SendCommit,
    SendDigests,
    SendHave,
    SendKeyVersions,
    SendRecord,
    SendVersions,
)
from meshreg.configcenter.sqlite_store import SqliteConfigStore, database_path
from meshreg.core.distro import clock_skewed_refusal
from meshreg.errors import ErrorCode, RemoteProtocolError, RequestRejected
from meshreg.log_limiter import LogLimiter
from meshreg.runtime.config_commit import RETRY_INTERVAL, CommitPipeline, Turn
from meshreg.runtime.config_trace import HopTrace
from meshreg.runtime.unlisted_notice import UnlistedNotice
from meshreg.security.acl import ALL, Access, Principal
from meshreg.security.authz import permits
from meshreg.wire.config_messages import (
    ConfigHistory,
    ConfigRequest,
    ForceConfigReady,
    GetConfig,
    ListConfigs,
    ListenConfig,
    PublishConfig,
    PublishGray,
    UnlistenConfig,
    as_config_write,
    config_get_fields,
)
from meshreg.wire.config_peer import (
    ConfigAck,
    ConfigBatch,
    ConfigCommit,
    ConfigDigests,
    ConfigFetch,
    ConfigForward,
    ConfigForwardReply,
    ConfigHave,
    ConfigKeyVersions,
    ConfigRecord,
    ConfigSync,
    ConfigVersions,
    decode_config_peer,
    encode_batches,
    encode_config_peer,
    encode_replication_effect,
    entry_to_wire,
    key_to_wire,
)
from meshreg.wire.config_replies import (
    config_topic,
    encode_config_change,
    entry_result,
    history_result,
    list_result,
    listen_result,
    pack_entry_result,
    parse_config_topic,
    without_echo,
)
from meshreg.wire.replies import encode_error, encode_ok, encode_ok_packed

log = logging.getLogger("meshreg.node")

PARK_SECONDS = BEHIND_WAIT  # s; a read behind its min_revision waits this long for it to
# arrive (the client's attempt budget of such a read is above it: CONFIG_BEHIND_ATTEMPT)
MAX_PARKED = 10_000  # reads waiting at once; more: UNAVAILABLE at once
MAX_PARKED_PER_NAMESPACE = MAX_PARKED // 4  # of them, a namespace's share: it may take
# more only while this many places stay free for the others (alone: 7,500 of the 10,000)
PRUNE_INTERVAL = 1.0  # s; one bounded history prune step per interval
PRUNE_BEHIND_INTERVAL = 0.02  # s; the next step when the last stopped at its budget
MAX_FORWARDS = 10_000  # forwarded writes awaiting their owner's answer
MAX_SYNCS_AT_READY = 10_000  # subscriptions made while catching up, synced once ready
CONNECT_GRACE = 1.0  # s; a peer message that found no live connection is tried again this
# long, and a forward the peer timeout longer (its owner may have died: once the view drops
# it, the write goes to the new owner), but never past FORWARD_WAIT_MAX
FORWARD_WAIT_MAX = 2.0  # s; under FORWARD_TIMEOUT (2.2 s): a forward that never left is
# answered "nothing was written" before the forward's own deadline
RESEND_EVERY = 0.05  # s; ... at this interval (a DEALER connecting, or reconnecting)
UNHEARD_RETRY = 0.2  # s; a forward refused by an owner that has not heard us yet is sent
# again this much later (it hears us within a beacon or two: ~10 tries at most per write)
MAX_UNSENT = 10_000  # peer messages waiting for a connection; more: given up at once
CACHED_REPLY_MAX = 64 * 1024  # bytes; a get's packed result up to this size is kept ...
CACHED_REPLIES_BYTES = 16 * 1024 * 1024  # ... while all of them stay below this (else cleared)

SendPeer = Callable[[str, list[bytes]], bool]  # (member address, frames) -> sent now?
SendReply = Callable[[list[bytes], bytes], None]  # (client envelope, reply body)
Notify = Callable[[list[bytes]], None]
SendBack = Callable[[bytes, list[bytes]], bool]  # (routing id on the peer port, frames)


def _cannot_send_back(_via: bytes, _frames: list[bytes]) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class _ClientAsk:
    """A client's write waiting for its answer (the replicator's opaque ``request``)."""

    envelope: list[bytes]
    req_id: int
    msg: dict[str, Any]  # the request as it came, to forward it
    # decided again after its owner left unanswered (``_redecide_forwards``): the first
    # attempt may have been written, so no refusal of it may say "nothing was written"
    maybe_written: bool = False


@dataclass(frozen=True, slots=True)
class _PeerAsk:
    """A write a peer forwarded here: the answer goes back to it with ``tag``."""

    sender: str
    tag: int
    msg: dict[str, Any] | None = None  # the request as it came: passed on by a learner
    maybe_written: bool = False  # as _ClientAsk's
    # the routing id of the connection it came on, when the sender reads answers there
    # (``reply_here``): the answer goes back on it, the path known to work
    via: bytes | None = None


@dataclass(slots=True)
class _Reply:
    """A read's answer held until a commit (it shows a version saved in it)."""

    envelope: list[bytes]
    body: bytes
    req_id: int  # a failed commit: an error answers it instead
    op: str
    reserved: int = 0  # counted in its connection's reply bytes meanwhile (HeldReplies)


class HeldReplies(Protocol):
    """The runtime's per-connection reply budget (transport/replies ``ReplyGuard``): a
    read's answer held for a commit counts in its connection's reply bytes from when it
    is made, so a client pipelining large reads is paced (its next requests wait) instead
    of having them all built, held, then released together past its budget (review14a
    F1)."""

    def reserve(self, envelope: list[bytes], size: int) -> int:
        """Count ``size`` bytes for the connection; returns what was counted."""
        ...

    def send(self, envelope: list[bytes], body: bytes, reserved: int) -> None:
        """Send a reply ``reserve`` counted ``reserved`` for."""
        ...

    def cancel(self, envelope: list[bytes], reserved: int) -> None:
        """A reserved reply that will not go (an error answers its request instead)."""
        ...


@dataclass(slots=True)
class _Forward:
    ask: _ClientAsk | _PeerAsk
    owner: str
    deadline: float
    write: ForwardWrite | None = None  # to decide it again if its owner leaves the view
    arrived: float = 0.0


@dataclass(slots=True)
class _Unsent:
    """A forward, or a forward's reply, that found no live connection to its peer (the
    DEALER is connecting or reconnecting: ZMQ_IMMEDIATE refuses the send): tried again
    every ``RESEND_EVERY`` until ``until``.  A forward is decided again each time (the
    owner may have been seen down meanwhile: the new owner gets it, or this node applies
    it); one not sent by ``until`` is refused as "nothing was written" (it never left)."""

    peer: str
    frames: list[bytes]
    until: float
    next_try: float
    write: ForwardWrite | None = None  # a forward, or None: a forward's reply
    arrived: float = 0.0  # a forward: when the client's write arrived here
    why: str = ""  # a forward: the owner's refusal to relay at the end (else "not reachable")


@dataclass(slots=True)
class _Parked:
    envelope: list[bytes]
    req: GetConfig | ListenConfig
    address: str | None
    deadline: float


class ConfigPlane:
    """One node's configuration center (see the module docstring)."""

    def __init__(
        self,
        config: NodeConfig,
        now: float,
        send_peer: SendPeer,
        send_reply: SendReply,
        notify: Notify,
        limiter: LogLimiter | None = None,
        commit_thread: bool = False,
        watched: Callable[[ConfigKey], bool] | None = None,
        held_replies: HeldReplies | None = None,
        aliases: dict[str, str] | None = None,
        count_error: Callable[[ErrorCode], None] | None = None,
        clock_lead: Callable[[], float] | None = None,
        clock_skewed: Callable[[], bool] | None = None,
        send_back: SendBack | None = None,
        first_tag: int = 0,
    ) -> None:
        """``commit_thread``: commit on a writer thread (a node; its runtime polls
        ``wakeup_fd`` and calls ``committed``), else inline in ``flush`` (deterministic:
        the simulation, the tests).  ``watched``: whether any listener subscription
        gets a data id's notifications (None: always); a change nobody gets is not
        encoded nor sent (it is still recorded as announced).  ``held_replies``: the
        runtime's reply budget, told of the read answers held for a commit (None: not
        counted; the simulation, the tests).  ``aliases``: ``ip:port`` -> the listed
        address of a peer our list names by host name (config ``peer_aliases``): its
        messages name it by the former.  ``count_error``: counts an error answered to a
        client after its request was handed over (``stats.errors``; review17 F4).
        ``clock_lead``: how far this node's wall clock runs ahead of its peers' (write
        deadlines are judged by theirs: core/distro ``_clock_lead``).  ``send_back``:
        frames to the peer connection with this routing id on the peer port (the answer
        to a forward that asked for it); False: not sent (then the DEALER way).
        ``first_tag``: forwards are tagged from it up (a node passes its incarnation's
        epoch in the high bits: an owner's late answer to the previous incarnation's forward
        cannot match a new one's tag; review30, suspected)."""
        self._aliases = aliases or {}
        self.member = config.address
        self.fast_gets = 0  # config gets ``fast_get`` answered (stats.requests: review37 F3)
        self.forward_grace = min(CONNECT_GRACE + config.cluster.peer_timeout, FORWARD_WAIT_MAX)
        self._peer_timeout = config.cluster.peer_timeout
        self.peers = tuple(config.peer_addresses())
        self.store = ConfigStore(self.member, config.config_limits())
        # a version loaded unacknowledged reached this node before this start: it settles
        # 2.5 s after the start, whatever its writer's clock (review46 F4: loaded versions
        # settled by ``modified``, and a writer behind had them shown at once again)
        self.store.now = now
        self.max_content_bytes = config.config_max_content_bytes
        self.db: SqliteConfigStore | None = None
        loaded = 0
        # whole: not a store that started empty (a new, wiped or restored data directory,
        # or none) and has not caught up since: such a node does not count itself among
        # the majorities it catches up from (review42 F1; docs/CONFIG.md "The ready gate")
        intact, seen = not self.peers, set[str]()
        joining = bool(self.peers) and config.config_join_existing  # (review43 F1)
        if config.data_dir:
            self.db = SqliteConfigStore(database_path(config.data_dir))
            loaded = self.db.load_into(self.store)
            self.store.settle_loaded(now)  # (those long settled stay shown: review46 F4)
            self.db.load_floors(self.store)
            # (a database created by this start is empty, a floors file beside it or not)
            empty = self.db.created or (not loaded and not self.store.purged_floors)
            if self.peers:
                intact, seen, joining = self.db.load_state(empty, joining)
        joining = joining and not intact
        self.replicator = ConfigReplicator(self.member, self.peers, self.store, now)
        rep = self.replicator
        rep.intact, rep.seen_whole, rep.joining = intact, seen, joining
        self._send_peer, self._send_reply, self._notify = send_peer, send_reply, notify
        self._send_back = send_back or _cannot_send_back
        self._held_replies = held_replies
        self._watched = watched
        self._count_error = count_error or (lambda code: None)
        self._clock_lead = clock_lead or (lambda: 0.0)
        # this node's clock is off a majority's past MAX_CLOCK_SKEW (core/distro): it
        # counts itself out and serves no registry reads; no config reads either (review44
        # F4: it kept serving them)
        self._clock_skewed = clock_skewed or (lambda: False)
        self._limiter = limiter or LogLimiter(log)
        self._announced: dict[ConfigKey, tuple[int, str, str, bool]] = {
            k: _identity(e) for k in list(self.store.keys()) if (e := self.store.shown(k, now))
        }
        # a new member waits two peer timeouts for slow peers to answer (review43 F3)
        self.gate = ReadyGate(self.peers, self.replicator.majority, self.store, intact,
                              new_after=now + 2 * config.cluster.peer_timeout,
                              joining=joining)  # fmt: skip
        self.ready = self.gate.ready
        self._sync_at_ready: set[ConfigKey] = set()  # subscribed while not ready (subscribed)
        self.armed_at = now  # when the gate last started catching up (a start, an absence)
        self._not_ready_why = "after a start"
        # a stall this long: a peer may have gone a peer timeout without a beacon from here
        self.absent_after = config.cluster.peer_timeout - config.cluster.beacon_interval
        self._majority_up = not self.peers  # does this node see a majority (itself included)
        self.forced_ready = bool(self.peers) and config.config_force_ready
        if self.forced_ready:  # the operator's override (docs/CONFIG.md "The ready gate")
            self.ready = True
            log.warning(
                "configs: READY FORCED (--config-force-ready): serving config reads from "
                "this node's disk (%d data ids) without catching up from a majority of its %d "
                "configured members; a write acknowledged by a majority without this node is "
                "missing here until a peer comes back; config writes still need a majority. "
                "Remove the flag once the peers are back",
                len(self.store),
                len(self.peers) + 1,
            )
        self._next_prune = now + PRUNE_INTERVAL
        self._wake = now
        self._unlisted = UnlistedNotice()  # peers whose lists do not name this node
        self._forwards: dict[int, _Forward] = {}
        self._unsent: list[_Unsent] = []
        self._now = now  # the time of the input being handled (replies kept for a resend)
        self._next_tag = first_tag
        self._parked: dict[ConfigKey, list[_Parked]] = {}
        # (deadline, n, key) of each waiting read, pushed at its first wait (a read parked
        # again keeps its deadline and entry); an entry of a read answered since is stale
        self._park_deadlines: list[tuple[float, int, ConfigKey]] = []
        self._park_n = itertools.count()
        self._parked_by_namespace: dict[str, int] = {}
        self._unconfirmed: dict[ConfigKey, float] = {}  # current not shown yet: look again at
        self._trace = HopTrace(self.member)  # off unless MESHREG_CONFIG_TRACE is set
        self.saved_records = True  # False: never ``saved`` records (a test's older node)
        for key in list(self.store.keys()):  # loaded, not shown yet: looked at again later
            current = self.store.current(key)
            if current is not None and self.store.shown(key, now) is not current:
                self._unconfirmed[key] = min(self.store.settles_at(current), now + 10.0)
        self._parked_count = 0
        # this turn's effects until ``flush``, then on their way to disk (config_commit)
        self._commits = CommitPipeline(
            (lambda: self.db) if self.db is not None else None,
            commit_thread,
            settle_of=self.store.arrival_settle,
        )
        self._outbox: dict[str, list[SendRecord | SendAck | SendCommit]] = {}  # per peer
        # the records and commits packed for one peer's batch, reused for the other
        # peers' (the same items): emptied at the end of each ``_finish_turns``
        self._packed: dict[Any, tuple[Any, bytes]] = {}
        self._disk_failed_since: float | None = None  # for the "works again" log line
        # (data id, gray served, gray host) -> (the entry, its packed get result): the
        # current entry's result is packed once, not per get (the entry object is
        # immutable: `is` checks it)
        self._replies: dict[tuple[ConfigKey, bool, bool | None], tuple[ConfigEntry, bytes]] = {}
        self._replies_bytes = 0
        self.counters = {
            "peer_messages_in": 0,
            "peer_messages_rejected": 0,
            "peer_sends_failed": 0,
            "forwards_redecided": 0,  # forwards whose owner left the view: decided again
            "forwards_waiting": 0,  # forwards that found no connection to the owner at first
            "forwards_unheard": 0,  # forwards the owner had not heard us for: tried again
            "forwards_refused_unheard": 0,  # forwards from a node not heard yet: refused
            "subscription_syncs": 0,  # current versions sent on a new exact config subscription
            "notifications": 0,
            "notifications_unwatched": 0,  # changes no listener subscription gets: not sent
            "listens": 0,
            "unlistens": 0,
            "reads_waited": 0,
            "reads_held": 0,  # read answers held for a commit (they show a version in it)
            "reads_not_ready": 0,
            "refused_disk": 0,  # writes refused: this node's commits keep failing
            "group_commits": 0,
            "group_commit_versions": 0,
        }
        self._room_for_held("loaded")
        log.info(
            "configs: %s, %d versions of %d data ids loaded; %d configured members (majority %d)%s",
            f"database {self.db.path}" if self.db else "in memory only (no data_dir)",
            loaded,
            len(self.store),
            len(self.replicator.members),
            self.replicator.majority,
            ""
            if self.ready
            else "; catching up from the peers before serving reads"
            + (
                ""
                if intact
                else " (the store started empty: it counts only peers whose stores "
                "are whole, not itself"
                + (
                    "; it joins a cluster that holds configs (--config-join-existing): "
                    "never as a new member)"
                    if joining
                    else ")"
                )
            ),
        )

    @property
    def wakeup_fd(self) -> int | None:
        """Readable when the writer thread finished a commit (None: no thread)."""
        return self._commits.wakeup_fd

    def committed(self, now: float) -> None:
        """The writer's wake-up fd was readable: carry out the turns committed."""
        self._commits.clear_wakeup()
        self._finish_turns(now)
        self._wake = min(self._wake, self._next_wake())  # what they left to wait for
        self._choose_records()

    def _choose_records(self) -> None:
        """With a majority of 2, the next writes' records follow this node's save (and say
        so: ``saved``, the peers then commit on their own save) when nothing of this node
        is on its way to disk: the save is then the turn's alone (low load, where the
        commit messages and their loop turns were most of a publish's cost).  With turns
        in flight (load) they leave before the save, as with more members: the save would
        wait behind those turns and every publish's latency with it."""
        self.replicator.records_after_save = self.saved_records and self._commits.idle()

    def close(self, now: float | None = None, drain: bool = True) -> None:
        """Drain, then close: the current turn is committed, everything in flight waited
        for (``config_commit.CLOSE_SECONDS`` at most) and carried out, then the database
        is closed.  ``drain`` False: close only (what was not committed is lost, as in a
        crash: the simulation's kill)."""
        if self.db is None:
            return
        try:
            for turn, error in self._commits.close(self._now if now is None else now, drain):
                self._carry_out_turn(turn, error, self._now)
            for peer in list(self._outbox):
                self._send_outbox(peer)
        except Exception:  # the sockets may be gone already: the disk is what matters
            log.exception("configs: carrying out the last committed turns at close")
        finally:
            if self._commits.mode == "inline":
                self.db.close()  # a thread writer closed its connection itself
            self.db = None

    # -- the member view and time -------------------------------------------------------
    def set_learners(self, learners: frozenset[str], unlisted: frozenset[str]) -> None:
        """Learned members up (this node's learners) and configured peers up whose lists
        do not name this node (it is theirs); docs/CONFIG.md "A new node: learner"."""
        rep = self.replicator
        before = (rep.learners, rep.unlisted)
        rep.set_learners(learners, unlisted)
        if (rep.learners, rep.unlisted) == before:
            return
        if rep.learners - before[0]:
            log.info("configs: learners (pushed every version committed here, never "
                     "counted in a majority): %s", ", ".join(sorted(rep.learners)))  # fmt: skip
        self._unlisted.update(rep.unlisted, self._now)  # said if it lasts (review61 F1)
        self._wake = min(self._wake, self._unlisted.due_at)
        if self._unlisted.ended():
            log.info("configs: every configured peer up lists this node: a full member")

    def _say_unlisted(self, now: float) -> None:
        if named := self._unlisted.due(now):
            log.warning(
                "configs: the peer lists of %s do not name this node: it serves config "
                "reads as their learner and forwards every config write; give every node "
                'the same peer list (docs/CONFIG.md, "A new node: learner")',
                ", ".join(sorted(named)),
            )

    def set_hash_names(self, names: dict[str, str]) -> None:
        """The peers our list names by host name, under the address each announces: the
        owners are hashed over announced addresses (``ConfigReplicator.set_hash_names``)."""
        self.replicator.set_hash_names(names)

    def set_not_owners(self, members: frozenset[str]) -> None:
        """Configured members up that some configured peer up does not list (its
        learners): no data id's owner (``ConfigReplicator.set_not_owners``)."""
        self.replicator.set_not_owners(members)

    def set_lists_apart(self, apart: dict[str, int]) -> None:
        """Configured peers up whose lists may make a majority disjoint from ours (address
        -> how many members its list names): config writes are refused meanwhile."""
        rep = self.replicator
        before = rep.lists_apart
        rep.set_lists_apart(apart)
        if rep.lists_apart and rep.lists_apart != before:
            log.error(
                "configs: this node lists %d members and %s: a majority of each list may "
                "share no node, so config writes are REFUSED until the lists agree; finish "
                "the rolling restart with one list, and add or remove one node at a time "
                '(docs/CONFIG.md, "Changing the members")',
                len(rep.members),
                ", ".join(f"{a} lists {n}" for a, n in sorted(apart.items())),
            )
        elif before and not rep.lists_apart:
            log.info(
                "configs: the peer lists agree again (within one member): config writes resume"
            )

    def set_members_up(self, up: set[str] | frozenset[str], now: float | None = None) -> None:
        """The peers this node sees up.  Seeing a majority again after it saw none: what
        the majority acknowledged meanwhile is missing here, so config reads wait for a
        fresh catch-up (``rearm``); while cut off, reads are served from what it holds."""
        self.replicator.set_members_up(up | {self.member})
        self.gate.set_up(up)
        if self.replicator.next_wake() < self._wake:  # a peer came back: digests now
            self._wake = -math.inf
        if self._forwards:
            self._redecide_forwards(self._now if now is None else now)
        majority_up = len(self.replicator.up) >= self.replicator.majority
        if majority_up and not self._majority_up:
            self.rearm(self._now if now is None else now, "after it was cut off from a majority")
        self._majority_up = majority_up

    def _redecide_forwards(self, now: float) -> None:
        """Forwards waiting on an owner no longer up (it stopped: its leave beacon, or it
        went silent) are decided again now, when they carry a ``request_id`` (applied at
        most once: the new owner answers with the version if the old one committed it);
        they waited ``FORWARD_TIMEOUT`` and failed with an unknown outcome before
        (review27 F1).  One without waits, as before: sent again it could apply twice."""
        up = self.replicator.up
        for tag, fwd in list(self._forwards.items()):
            msg = fwd.ask.msg
            if fwd.owner in up or fwd.write is None or msg is None or not msg.get("request_id"):
                continue
            del self._forwards[tag]
            self.counters["forwards_redecided"] += 1
            ask = replace(fwd.ask, maybe_written=True)
            # a re-send: the old owner may have applied it (and others written on top
            # before it left), so the new owner asks a majority for its request id before
            # applying it (review50 F4: without it, one client write was applied twice,
            # the second time over another client's later write)
            again = replace(fwd.write.write, forwarded=False, request=ask, resend=True)
            self._run_now(self.replicator.write(now, again, fwd.arrived), now, fwd.arrived)

    def stalled(self, now: float, late: float) -> None:
        """The loop found it was stopped ``late`` s (SIGSTOP, a VM freeze, starvation).
        Long enough that a peer may have taken this node for down (``absent_after``: the
        peer timeout less a beacon interval), the others may have written without it:
        each data id's next write here fetches a majority's versions first (a write
        queued meanwhile is judged, CAS included, against them, not against this node's
        stale view), and config reads wait for a fresh catch-up (``rearm``)."""
        if late >= self.absent_after:
            self.replicator.forget_caught_up()
            self.rearm(now, f"after this node was stopped for {late:.1f} s")

    def rearm(self, now: float, why: str) -> None:
        """Not ready again: config reads are refused (UNAVAILABLE, the client asks another
        node) until this node caught up with a majority, as at a start; writes, listeners
        and replication go on.  A node without peers, not ready yet, or forced ready by
        the operator is left as it is."""
        if not self.ready or self.forced_ready or not self.gate.rearm():
            return
        self.ready = False
        self.armed_at = now
        self._not_ready_why = why
        self._wake = -math.inf  # the gate's asks go at the next tick
        log.warning(
            "configs: %s, acknowledged writes may be missing here: config reads refused "
            "(UNAVAILABLE) until caught up with a majority of the %d configured members",
            why,
            len(self.replicator.members),
        )

    def tick(self, now: float, judge: float | None = None) -> float:
        """Timers (resends, deadlines, anti-entropy, prune, the ready round); returns the
        wall-clock time this must be called again at the latest.  ``judge``: the deadlines
        of answers awaited from peers (acks, forwards, catch-up reads) are judged up to
        then only, the start of the loop's last poll (None: ``now``; the runtime's rule)."""
        judge = now if judge is None else min(judge, now)
        self._now = now
        self._take_time(now)
        if now >= self._unlisted.due_at:
            self._say_unlisted(now)
        if now < self._wake and (now < self._next_prune or not len(self.store)):
            if self._commits.busy():
                self.flush(now)
            if now >= self._next_prune and not len(self.store):  # nothing to prune
                # (_next_wake): only the age cutoff moves, on a turn that came anyway
                self._next_prune = now + PRUNE_INTERVAL
                self.store.prune(now)
            return self._wake
        self._run(self.replicator.tick(now, judge), now)
        if self._unsent:
            self._resend(now)
        for tag, fwd in list(self._forwards.items()):
            if judge >= fwd.deadline:
                del self._forwards[tag]
                self._reply_error(
                    fwd.ask,
                    ErrorCode.UNAVAILABLE,
                    f"the data id's responsible node {fwd.owner} did not answer within "
                    f"{FORWARD_TIMEOUT:g} s; nothing is confirmed, the outcome is unknown (the "
                    "write may still appear): re-send it with the same request_id, here or on "
                    "another node (applied at most once); without one, read the data id first",
                )
        if self._park_deadlines and self._park_deadlines[0][0] <= now:
            self._expire_parked(now)
        if self._unconfirmed:
            due = [k for k, at in self._unconfirmed.items() if now >= at]
            for key in due:  # one still on its way to disk: its save's turn sets it again
                del self._unconfirmed[key]
            self._announce([k for k in due if k not in self._commits.unsaved], now)
        if self._catching_up():
            self._ask_digests(self.gate.tick(now))
            self._gate_check(now)  # (a new member's wait may have ended)
        prune = now >= self._next_prune
        if prune:
            self._next_prune = now + PRUNE_INTERVAL
        self._wake = float("inf")  # recomputed by flush, from every deadline
        self.flush(now)  # this turn's versions are on disk before any is pruned
        if prune:
            removed = self.store.prune(now)
            if self.store.prune_behind:
                # a step that stopped at its budget goes on soon (deleted data ids beyond
                # max_tombstones too): writes faster than one step per interval (1,000
                # versions/s) grew the history past keep_revisions until the namespace's
                # byte limit refused every publish (bench config, 14 s rows)
                self._next_prune = now + PRUNE_BEHIND_INTERVAL
                self._wake = min(self._wake, self._next_prune)
            if removed and self._floors_saved(now):
                self._commits.remove(removed)  # deleted after every earlier save
                for key in {e.key for e in removed}:
                    if self.store.current(key) is None:
                        self._announced.pop(key, None)
        return self._wake

    def _floors_saved(self, now: float) -> bool:
        """A purge raised a revision floor: on disk before its tombstones are deleted
        (else a restart could start a re-created data id at 1 again).  False when it
        could not be written: the rows stay on disk this time (purged again after a
        restart; the floor is tried again at the next purge)."""
        store = self.store
        if not store.floors_changed or self.db is None:
            store.floors_changed = False
            return True
        try:
            self.db.save_floors(store.purged_floors)
        except OSError as exc:
            self._limiter.warning(
                "config-floors", now, "configs: could not write %s (%s); the purged "
                "tombstones stay on disk until it can be written",
                self.db.floors_path, exc,
            )  # fmt: skip
            return False
        store.floors_changed = False
        return True

    def flush(self, now: float) -> None:
        """The end of a loop turn: its versions go to the writer (one transaction), then
        the effects of every turn committed by now are carried out in their order
        (announcements, sends, replies); then the next wake-up, computed once per turn."""
        self._now = now
        self._commits.end_turn(now)
        self._finish_turns(now)  # the turn's records leave before an inline commit
        if self._commits.commit_pending(now):  # a small turn, nothing in flight: fsync here
            self._finish_turns(now)
        self._wake = min(self._wake, self._next_wake())
        self._choose_records()

    def _finish_turns(self, now: float) -> None:
        for turn, error in self._commits.finished(now):
            self._carry_out_turn(turn, error, now)
        for peer in list(self._outbox):
            self._send_outbox(peer)
        self._packed.clear()  # (the entries it keeps alive: this turn's only)

    def _carry_out_turn(self, turn: Turn, error: BaseException | None, now: float) -> None:
        if error is None and self._disk_failed_since is not None and turn.ops:
            log.warning(
                "configs: saving to %s works again after %.1f s of failures; config writes "
                "accepted again", self.db.path.parent if self.db else "?",
                now - self._disk_failed_since,
            )  # fmt: skip
            self._disk_failed_since = None
        if error is not None and self._disk_failed_since is None:
            self._disk_failed_since = now
        if error is None:
            saved = sum(len(entries) for save, entries, _ in turn.ops if save)
            if saved:
                self.counters["group_commits"] += 1  # turns (a transaction may hold several)
                self.counters["group_commit_versions"] += saved
            for effect in turn.effects:
                self._carry_out(effect, now)
            return
        # not on disk (tried again with the next turn): no reply, ack or send shows any
        # of its versions; its writers and readers get an error, its peer sends are
        # dropped (records are resent, the rest is repaired by anti-entropy)
        self._limiter.warning(
            "config-commit", now, "configs: saving %d versions to %s failed (%s: %s); %d "
            "replies, acks and sends of that loop turn not sent, writers answered UNAVAILABLE; "
            "new config writes refused until a save works; tried again every %g s",
            turn.versions, self.db.path.parent if self.db else "?", type(error).__name__, error,
            len(turn.effects), RETRY_INTERVAL,
        )  # fmt: skip
        why = f"this node could not save configs to its disk ({type(error).__name__}: {error})"
        for effect in turn.effects:
            if type(effect) is ForwardWrite:
                self._forward(effect, now)  # it carries no version: it goes
            elif type(effect) is ReplyEntry or type(effect) is ReplyError:
                self._reply_error(
                    effect.request,
                    ErrorCode.UNAVAILABLE,
                    f"{why}; the outcome is unknown (the write may still appear): re-send "
                    "it with the same request_id, here or on another node",
                )
            elif type(effect) is _Reply:
                if effect.reserved and self._held_replies is not None:
                    self._held_replies.cancel(effect.envelope, effect.reserved)
                self._count_error(ErrorCode.UNAVAILABLE)
                self._send_reply(effect.envelope, encode_error(effect.req_id,
                                 ErrorCode.UNAVAILABLE, f"{effect.op}: {why}; retry, or ask "
                                 "another node"))  # fmt: skip

    def _next_wake(self) -> float:
        # A prune of an empty store removes nothing (its age cutoff moves in ``tick``
        # when a turn comes anyway): no wake-up for it, a loop turn a second saved on
        # every node without configs.  Once a data id is held the prune wakes it again.
        prune = self._next_prune if len(self.store) else math.inf
        times = [self.replicator.next_wake(), prune, self._unlisted.due_at]
        if (retry := self._commits.retry_at()) is not None:  # a failed commit: again then
            times.append(retry)
        if (lazy := self._commits.lazy_due()) is not None:  # peers' flags: written by then
            times.append(lazy)
        if self._catching_up():
            times.append(self.gate.next_wake())
        if self._forwards:
            times.append(min(f.deadline for f in self._forwards.values()))
        if self._unsent:
            times.append(min(u.next_try for u in self._unsent))
        if self._park_deadlines:  # (a stale entry: one early wake, which pops it)
            times.append(self._park_deadlines[0][0])
        if self._unconfirmed:
            times.append(min(self._unconfirmed.values()))
        return min(times)

    # -- client requests ----------------------------------------------------------------
    def serve(
        self,
        envelope: list[bytes],
        req: ConfigRequest,
        msg: dict[str, Any],
        by: str,
        address: str | None,
        now: float,
    ) -> bytes | None:
        """A parsed, authorized config request: the reply body now, or None (the answer
        comes later through ``send_reply``).  Raises RequestRejected."""
        self._now = now
        self._take_time(now)
        self.replicator.set_cannot_save(self._commits.failing is not None and self.db is not None)
        kind = type(req)
        if isinstance(req, GetConfig | ListenConfig):
            try:
                body = self._read(envelope, req, address, now)
            except RequestRejected as exc:
                if exc.revision is None:
                    raise
                # a delete's NOT_FOUND names its revision (the client's floor): held
                # behind this node's commit of it, as the version a read shows
                self._count_error(exc.code)
                body = encode_error(exc.req_id, exc.code, exc.message, revision=exc.revision)
            if body is not None and self._hold(_Reply(envelope, body, req.req_id, req.op), req.key):
                return None  # after the commit of the version it shows
            return body
        if kind is ListConfigs or kind is ConfigHistory:
            self._check_ready(req)
            try:
                if isinstance(req, ListConfigs):
                    page = self.store.list_page(
                        req.namespace, req.group, req.pattern, req.page_size, req.cursor,
                        req.deleted,
                    )  # fmt: skip
                    body = encode_ok(req.req_id, list_result(page))
                else:
                    assert isinstance(req, ConfigHistory)
                    history = self.store.history(req.key, req.page_size, req.cursor)
                    store = self.store
                    body = encode_ok(
                        req.req_id, history_result(history, lambda e: store.pending(e, now))
                    )
            except ConfigRejected as exc:  # (the store's reads do not count their refusals)
                self.count_refused(exc.reason)
                raise _rejected(req, exc) from None
            # it may show a version not committed yet: after the commit (a history page, of
            # its data id's); not while the disk fails: each retry's failure would refuse
            # it, for as long as the disk is full (review58 F2): memory's then (peers'
            # versions their majority holds; writes here are refused meanwhile)
            reply = _Reply(envelope, body, req.req_id, req.op)
            key = req.key if isinstance(req, ConfigHistory) else None
            if self._commits.failing is None and self._hold(reply, key):
                return None
            return body
        if kind is UnlistenConfig:
            self.counters["unlistens"] += 1
            return encode_ok(req.req_id, None)
        if kind is ForceConfigReady:
            return encode_ok(req.req_id, self.force_ready(by, now))
        refusal = self.disk_refusal(now)
        if refusal is not None:
            self.counters["refused_disk"] += 1
            self.count_refused("disk_failing")
            raise RequestRejected(ErrorCode.UNAVAILABLE, f"{req.op}: {refusal}", req.req_id,
                                  req.op, unwritten=True)  # fmt: skip
        if type(req) is PublishConfig or type(req) is PublishGray:
            self._check_content_size(req)
        ask = _ClientAsk(envelope, req.req_id, msg)
        if self._trace.on:
            self._trace("write_in", req.key, 0)  # type: ignore[union-attr]
        self._run(self.replicator.write(now, as_config_write(req, ask, by)), now)
        return None

    def _check_content_size(self, req: PublishConfig | PublishGray) -> None:
        """TOO_LARGE here, before the write is forwarded: its owner, bounding a peer
        message by the same cap, dropped an oversized forward unanswered, and the client
        heard "outcome unknown ... re-send it" 2.2 s later for a write never made
        (review45 F2).  A str's UTF-8 is at most 4 bytes a character: most contents are
        not encoded again here."""
        cap = self.max_content_bytes
        if len(req.content) * 4 <= cap:
            return
        name = "content" if type(req) is PublishConfig else "gray content"
        try:
            check_content(req.content, cap, name)
        except ConfigRejected as exc:
            self.count_refused(exc.reason)
            raise _rejected(req, exc) from None

    def fast_get(self, msg: Any, now: float, principal: Principal | None = None) -> bytes | None:
        """A plain ``config_get`` answered from the packed reply the last full read of the
        same version left (``_packed_result``), or None: the request takes the full path
        (``serve``), which gives the same bytes or the precise error.

        The config twin of the fast beat (runtime/node.py): most gets of a busy
        configuration read a version already read, so the request object, the name
        checks and the result encoding are skipped.  Only when the answer cannot differ:
        this node ready, the key's names validated before (``config_get_fields``), the
        version the one a read shows now (current, acknowledged or settled, no gray
        rule, not older than the client's ``min_revision``) and nothing of the key on
        its way to disk (a full read would be held until that commit).  ``principal``: the
        client key of a node with ``--key`` (None: open): it must be allowed to read the group."""
        fields = config_get_fields(msg)
        if fields is None or not self.ready or self._clock_skewed():
            return None
        req_id, key, least = fields
        if principal is not None and not permits(
            principal, Access.READ, key.namespace, key.group, ALL
        ):
            return None  # the full path refuses it, and counts it
        cached = self._replies.get((key, False, None))
        if cached is None:
            return None
        entry = cached[0]
        if (
            self.store.shown(key, now) is not entry
            or entry.revision < least
            or entry.gray is not None
            or key in self._commits.unsaved
        ):
            return None
        self._now = now
        self.fast_gets += 1
        return encode_ok_packed(req_id, cached[1])

    def disk_refusal(self, now: float) -> str | None:
        """Why this node refuses config writes (its commits keep failing), or None."""
        failing = self._commits.failing
        if failing is None or self.db is None:
            return None
        since, error = failing
        return (
            f"this node cannot save configs to its data directory {self.db.path.parent} "
            f"({type(error).__name__}: {error}; failing for {max(now - since, 0.0):.1f} s, "
            f"{self._commits.failures_in_a_row} attempts); nothing was written: write "
            "through another node, and fix the disk there (free space, permissions, the "
            "device): the node retries every 0.1 s and accepts writes once a save works"
        )

    def status(self, now: float) -> dict[str, Any]:
        """Readiness for ``cluster``: caught up, whether the disk takes writes, and the
        majority a write needs against the configured members seen up (reads may be
        ready while writes are refused: review27 notes)."""
        rep = self.replicator
        store = "whole" if rep.intact else "joining" if rep.joining else "fresh"
        return {"ready": self.ready, "forced_ready": self.forced_ready,
                "disk_refusal": self.disk_refusal(now), "members": len(rep.members),
                "members_up": len(rep.up), "majority": rep.majority, "store": store,
                "waiting": self.waiting_for_peers(now)}  # fmt: skip

    def force_ready(self, principal: str, now: float) -> dict[str, Any]:
        """The operator's override of the ready gate at run time (``meshreg config
        force-ready``, op ``config_force_ready``; the access check was made before):
        serve config reads from this node's disk now, without catching up from a
        majority - a lone survivor's way out without a restart with
        ``--config-force-ready``.  ``principal``: who asked (the log names them).
        Idempotent: a node already ready is left as it is (``forced_ready`` stays
        False when it caught up by itself, or has no peers: nothing to force).  Returns
        ``{"node", "was_ready", "forced_ready"}``."""
        was_ready = self.ready
        who = repr(principal) if principal else "an unnamed client"
        if not was_ready:
            self.ready = self.forced_ready = True  # the gate goes on (``_catching_up``)
            log.warning(
                "configs: READY FORCED by %s (admin op config_force_ready): serving config "
                "reads from this node's disk (%d data ids) without catching up from a "
                "majority of its %d configured members (caught up with %d); a write "
                "acknowledged by a majority without this node is missing here until a peer "
                "comes back; config writes still need a majority",
                who,
                len(self.store),
                len(self.replicator.members),
                len(self.gate.synced) + 1,
            )
        else:
            log.info(
                "configs: force-ready asked by %s: already ready (%s); nothing changed",
                who,
                "forced" if self.forced_ready else "caught up" if self.peers else "no peers",
            )
        return {"node": self.member, "was_ready": was_ready, "forced_ready": self.forced_ready}

    def count_refused(self, reason: str) -> None:
        """A config request refused: ``stats.config.rejected[reason]`` (every refusal is
        there, by reason: the store's own, and those made before it by the wire's
        validation, the ACL or a client's limits, runtime/node.py)."""
        rejected = self.store.rejected
        rejected[reason] = rejected.get(reason, 0) + 1

    def waiting_for_peers(self, now: float) -> str | None:
        """Why config reads wait when the wait does not end by itself (peers down), for
        ``ping`` (review43 F2: ``ping --ready`` said "try again in a moment" to a node
        that waits for whole peers that are down); None: ready, or catching up (also for
        a peer timeout after it started catching up: its peers' beacons may not have come
        yet, and it told an operator to start peers that were up, or to force it ready:
        review58 F1)."""
        if self.ready or now - self.armed_at < self._peer_timeout:
            return None
        rep = self.replicator
        members, up = len(rep.members), len(rep.up)
        if not self._majority_up:
            return (
                f"configs wait for a majority of the {members} configured members to be up "
                "(start the others, or, if they will not come back, `meshreg config "
                f"force-ready -s {self.member}`)"
            )
        need = members - members // 2  # members - majority + 1 (odd: a majority)
        new_member_possible = not self.gate.joining and now < self.gate.new_after
        if not rep.intact and len(rep.up) - 1 < need and not new_member_possible:
            return (
                "configs: its data directory started empty (new, wiped or restored), so it "
                f"needs {need} peers whose stores are whole, or every peer, and sees "
                f"{up - 1} peers up: start the ones that are down"
                + self._joining_said()
                + ' (docs/CONFIG.md "A store that started empty")'
            )
        return None

    def _joining_said(self) -> str:
        """Why no node here is a new cluster's member, when that is the reason."""
        if self.gate.joining:
            return "; started with --config-join-existing, it is never a new cluster's member"
        if self.gate.joining_heard():
            return (
                "; a peer started with --config-join-existing says this cluster holds configs"
                " already, so no node takes itself for a new cluster's member (a new cluster:"
                " start its members without that flag)"
            )
        return ""

    def _check_ready(self, req: ConfigRequest) -> None:
        if self._clock_skewed():
            self.count_refused("clock_skewed")
            raise clock_skewed_refusal(req.req_id, req.op)
        if not self.ready:
            self.counters["reads_not_ready"] += 1
            self.count_refused("not_ready")
            members = len(self.replicator.members)
            need = members - members // 2  # members - majority + 1 (odd: a majority)
            empty, waits = "", ""
            if not self.replicator.intact:  # review42 F1: not with itself
                peers_up = len(self.replicator.up) - 1
                waits = (  # review43 F2: say that it waits for the peers down
                    f"; it sees {peers_up} peers up: start the ones that are down, it waits "
                    "for them"
                    if peers_up < need
                    else ""
                )
                empty = (
                    "its data directory started empty (new, wiped or restored), so it counts "
                    f"only peers whose stores are whole and needs {need} of them (caught up "
                    f"with {self.gate.whole_synced()}{waits}{self._joining_said()}); "
                )
            if self._majority_up:
                hint = f"{empty}retry {'' if waits else 'shortly '}on another node"
            elif self._now - self.armed_at < self._peer_timeout:
                # just started: peers that are up may not be heard yet (a fault review of
                # 2026-12-07: a node restarted beside two live peers told its clients to
                # start the others or force it ready, for its first 0.25 s)
                hint = (
                    f"{empty}it has heard {len(self.replicator.up)} of them so far, "
                    f"{self._now - self.armed_at:.2g}s after it began catching up (peers are heard "
                    f"within {self._peer_timeout:g}s): retry shortly or on another node"
                )
            else:  # it cannot catch up as it is (review17 F9: it said "retry shortly")
                hint = (
                    f"{empty}it sees {len(self.replicator.up)} of them up, and needs "
                    f"{members // 2 + 1}: start the others, or, if they will not come back, "
                    f"serve what it holds with `meshreg config force-ready -s {self.member}` "
                    '(or start it with --config-force-ready; docs/CONFIG.md "The node")'
                )
            raise RequestRejected(
                ErrorCode.UNAVAILABLE,
                f"{req.op}: this node is catching up on configs from a majority of its "
                f"{members} configured members {self._not_ready_why}; {hint}",
                req.req_id,
                req.op,
            )

    def _read(
        self,
        envelope: list[bytes],
        req: GetConfig | ListenConfig,
        address: str | None,
        now: float,
        deadline: float | None = None,
    ) -> bytes | None:
        """The reply of a read, or None: it waits (parked) until ``deadline`` (default
        ``now + PARK_SECONDS``) for a revision this node does not hold yet."""
        self._check_ready(req)
        labels = dict(req.labels)
        if isinstance(req, ListenConfig):
            self.counters["listens"] += 1
            current = self.store.shown(req.key, now)
            resolved = None
            if (
                current is not None
                and not current.deleted
                and (
                    current.revision > req.revision
                    or (current.revision == req.revision and req.md5 is not None)
                )
            ):  # newer, or maybe another version at the held revision (PROTOCOL.md 2.22)
                view = self.store.resolve(req.key, labels, address, now=now)
                resolved = entry_result(view.entry, view.gray, view.listed)
            return encode_ok(req.req_id, listen_result(current, req.revision, resolved, req.md5))
        try:
            if req.revision is not None:
                entry = self.store.get(req.key, req.revision, req.min_revision, now)
                return encode_ok(req.req_id, entry_result(entry))
            view = self.store.resolve(req.key, labels, address, req.min_revision, now)
            return encode_ok_packed(req.req_id, self._packed_result(view))
        except ConfigRejected as exc:
            first = deadline is None
            deadline = now + PARK_SECONDS if deadline is None else deadline
            namespace = req.key.namespace
            if (
                exc.reason == "behind"
                and now < deadline
                and self._parked_count < MAX_PARKED
                and (
                    self._parked_by_namespace.get(namespace, 0) < MAX_PARKED_PER_NAMESPACE
                    or self._parked_count < MAX_PARKED - MAX_PARKED_PER_NAMESPACE
                )
            ):
                parked = _Parked(envelope, req, address, deadline)
                self._parked.setdefault(req.key, []).append(parked)
                self._parked_count += 1
                self._parked_by_namespace[namespace] = (
                    self._parked_by_namespace.get(namespace, 0) + 1
                )
                if first:
                    self.counters["reads_waited"] += 1
                    due = (deadline, next(self._park_n), req.key)
                    heapq.heappush(self._park_deadlines, due)
                self._wake = min(self._wake, parked.deadline)
                return None
            raise _rejected(req, exc) from None

    def _packed_result(self, view: ConfigView) -> bytes:
        entry = view.entry
        slot = (entry.key, view.gray, view.listed)
        cached = self._replies.get(slot)
        if cached is not None and cached[0] is entry:
            return cached[1]
        packed = pack_entry_result(entry, view.gray, view.listed)
        if cached is not None:
            del self._replies[slot]
            self._replies_bytes -= len(cached[1])
        if len(packed) <= CACHED_REPLY_MAX:
            if self._replies_bytes + len(packed) > CACHED_REPLIES_BYTES:
                self._replies.clear()
                self._replies_bytes = 0
            self._replies[slot] = (entry, packed)
            self._replies_bytes += len(packed)
        return packed

    def _unpark(self, key: ConfigKey, count: int) -> None:
        self._parked_count -= count
        left = self._parked_by_namespace[key.namespace] - count
        if left:
            self._parked_by_namespace[key.namespace] = left
        else:
            del self._parked_by_namespace[key.namespace]

    def _retry_parked(self, key: ConfigKey, now: float) -> None:
        waiting = self._parked.pop(key, None)
        if not waiting:
            return
        self._unpark(key, len(waiting))
        for p in waiting:
            self._answer_parked(p, now)

    def _expire_parked(self, now: float) -> None:
        """Answer the reads whose wait is over (UNAVAILABLE, unless their version came):
        the data ids of the due heap entries only."""
        heap = self._park_deadlines
        while heap and heap[0][0] <= now:
            key = heapq.heappop(heap)[2]
            waiting = self._parked.get(key)
            if not waiting or waiting[0].deadline > now:
                continue  # (answered since, or with another read of its deadline)
            # a data id's waiting reads are in deadline order (each new one waits the
            # longest; a read parked again keeps its place): the due ones lead
            n = 1
            while n < len(waiting) and waiting[n].deadline <= now:
                n += 1
            due = waiting[:n]
            if n < len(waiting):
                del waiting[:n]
            else:
                del self._parked[key]
            self._unpark(key, n)
            for p in due:
                self._answer_parked(p, float("inf"))

    def _answer_parked(self, p: _Parked, now: float) -> None:
        """Answer a waiting read now (again parked if still behind and not due)."""
        try:
            body = self._read(p.envelope, p.req, p.address, now, p.deadline)
        except RequestRejected as exc:
            self._count_error(exc.code)
            body = encode_error(exc.req_id, exc.code, exc.message, exc.unwritten, exc.revision)
        if body is not None and not self._hold(
            _Reply(p.envelope, body, p.req.req_id, p.req.op), p.req.key
        ):
            self._send_reply(p.envelope, body)

    def _hold(self, reply: _Reply, key: ConfigKey | None = None) -> bool:
        """Hold a read's answer behind the commit of ``key`` (None: of any data id: a list
        or a history page); True: held, and counted in its connection's reply bytes."""
        if not (self._commits.hold_any(reply) if key is None else self._commits.hold(key, reply)):
            return False
        self.counters["reads_held"] += 1
        if self._held_replies is not None:
            reply.reserved = self._held_replies.reserve(reply.envelope, len(reply.body))
        return True

    # -- peer messages ------------------------------------------------------------------
    def on_peer(self, body: bytes, now: float, via: bytes | None = None) -> None:
        """One config message from a peer (the peer port, or an answer on our DEALER);
        never raises on bad input.  ``via``: the routing id of the connection it came on
        (the peer port's), for answers the sender reads there."""
        self._now = now
        self._take_time(now)
        self.replicator.set_cannot_save(self._commits.failing is not None and self.db is not None)
        self.counters["peer_messages_in"] += 1
        try:
            msg = decode_config_peer(body, self.max_content_bytes)
        except RemoteProtocolError as exc:
            self._peer_rejected(f"bad config message from a peer: {exc}", now)
            return
        listed = self._aliases.get(msg.sender) if self._aliases else None
        if listed is not None:  # a peer our list names by host name: spelled as listed
            msg = replace(msg, sender=listed)
            if type(msg) is ConfigBatch:
                msg = replace(msg, items=tuple(replace(m, sender=listed) for m in msg.items))
        sender = msg.sender
        rep = self.replicator
        if sender == self.member or (sender not in rep.members and sender not in rep.learners):
            self._peer_rejected(f"config message from {sender!r}, not a configured peer", now)
            if type(msg) is ConfigForward and msg.reply_here and via is not None:
                self._refuse_unheard(msg, via)
            return
        items: tuple[Any, ...] = msg.items if type(msg) is ConfigBatch else (msg,)
        if sender not in rep.members:  # a learner: it reads and catches up, never votes
            refused = [m for m in items if type(m) not in _FROM_LEARNERS]
            if refused:
                self._peer_rejected(
                    f"{type(refused[0]).__name__} from learner {sender!r} (a member our "
                    "peer list does not name: it may read, never vote)",
                    now,
                )
                items = tuple(m for m in items if type(m) in _FROM_LEARNERS)
        effects = []
        for item in items:
            effects += self._handle(item, now, via)
        self._run(effects, now)

    def _handle(self, msg: Any, now: float, via: bytes | None = None) -> list[Effect]:
        """One validated peer message (or batch item) from a configured peer."""
        sender, rep = msg.sender, self.replicator
        effects: list[Effect] = []
        match msg:
            case ConfigSync() if msg.paged:
                effects = rep.on_sync(sender, msg.after, msg.ask)
            case ConfigSync():  # a node before pages: every digest in one message
                effects = [SendDigests(sender, tuple(self.store.digests()), False,
                                       fresh=not rep.intact)]  # fmt: skip
            case ConfigRecord():
                if self._trace.on:
                    self._trace("record_in", msg.entry.key, msg.entry.revision, sender)
                effects = rep.on_record(now, sender, msg.entry, msg.saved)
            case ConfigAck():
                if self._trace.on:
                    self._trace("ack_in", msg.key, msg.revision, sender)
                effects = rep.on_ack(now, sender, msg.key, msg.revision, msg.origin, msg.md5,
                                     msg.ok, msg.current, msg.committed)  # fmt: skip
            case ConfigCommit():
                if self._trace.on:
                    self._trace("commit_in", msg.key, msg.revision, sender)
                effects = rep.on_commit(msg.key, msg.revision, msg.origin, msg.md5)
            case ConfigFetch():
                effects = rep.on_fetch(sender, msg.key, msg.request_id)
            case ConfigKeyVersions():
                effects = rep.on_key_versions(now, sender, msg.key, msg.entries, msg.request_id,
                                              msg.fresh, msg.floor)  # fmt: skip
            case ConfigDigests():
                if self._catching_up() and not msg.reply:  # a page (or a round's step)
                    self._ask_digests(self.gate.on_page(now, sender, msg.digests, msg.after,
                                                        msg.upto, msg.ask, msg.fresh,
                                                        msg.known, msg.joining))  # fmt: skip
                    self._gate_check(now)
                if not msg.fresh and rep.saw_whole(sender):
                    self._save_state()
                effects = rep.on_digests(sender, msg.digests, msg.reply, msg.after, msg.upto,
                                         now)  # fmt: skip
            case ConfigHave():
                effects = rep.on_have(sender, msg.items, msg.reply, now, msg.keep)
            case ConfigVersions():
                effects = rep.on_versions(msg.entries)
            case ConfigForward():
                back = via if msg.reply_here else None
                ask = _PeerAsk(sender, msg.tag, msg.raw, via=back)
                write = as_config_write(msg.request, ask, msg.by)
                # (our disk failing: ``cannot_save`` passes it on to the owner over the
                # others, which applies it; refused only if nobody else is up)
                effects = rep.write(now, replace(write, forwarded=True))
            case ConfigForwardReply():
                effects = self._forward_answered(msg, now)
        return effects

    def _refuse_unheard(self, msg: ConfigForward, via: bytes) -> None:
        """A forward from a node neither our list names nor we have heard yet (a node
        just started as a learner, whose beacons have not reached us): answered at once,
        nothing written, so that it tries again instead of waiting out its deadline (CI
        once: "outcome unknown" 2.2 s later, the forward dropped here in silence)."""
        self.counters["forwards_refused_unheard"] += 1
        message = (
            f"the data id's responsible node {self.member} has not heard node "
            f"{msg.sender} yet (its peer list does not name it and no beacon of it has "
            "arrived); nothing was written: retry shortly, and give every node the same "
            'peer list (docs/CONFIG.md, "A new node: learner")'
        )
        self._send_back(via, encode_config_peer(
            "config_forward_reply", self.member, tag=msg.tag, ok=False,
            code=int(ErrorCode.UNAVAILABLE), message=message, written=False, unheard=True,
        ))  # fmt: skip

    def _forward_answered(self, msg: ConfigForwardReply, now: float) -> list[Effect]:
        fwd = self._forwards.get(msg.tag)
        if fwd is None or fwd.owner != msg.sender:
            return []  # late (already answered UNAVAILABLE) or not ours
        del self._forwards[msg.tag]
        if msg.unheard and fwd.write is not None and now < fwd.arrived + self.forward_grace:
            # the owner has not heard us yet (we just started): it will within a beacon
            # or two; decided again every UNHEARD_RETRY until the grace, then refused
            self.counters["forwards_unheard"] += 1
            until = fwd.arrived + self.forward_grace
            again = _Unsent(fwd.owner, [], until, now + UNHEARD_RETRY, fwd.write, fwd.arrived)
            again.why = msg.message  # relayed if the grace ends first
            self._keep(again, now)
            return []
        if not msg.ok or msg.entry is None:
            assert msg.code is not None
            self._reply_error(fwd.ask, msg.code, msg.message, msg.unwritten, msg.current)
            return []
        # read-your-writes here too: hold the acknowledged version before answering
        effects = self.replicator.on_versions([msg.entry])
        effects.append(ReplyEntry(fwd.ask, msg.entry, msg.gray))
        return effects

    def _peer_rejected(self, message: str, now: float) -> None:
        self.counters["peer_messages_rejected"] += 1
        self._limiter.warning("config-peer", now, "%s", message)

    # -- the ready gate -----------------------------------------------------------------
    def _ask_digests(self, asks: list[tuple[str, ConfigKey | None]]) -> None:
        """Send the gate's asks: a page of a peer's digests after a cursor."""
        ask = {"ask": self.gate.generation} if self.gate.generation else {}  # after a rearm
        for peer, after in asks:
            cursor = None if after is None else key_to_wire(after)
            self._send(peer, encode_config_peer("config_sync", self.member, after=cursor, **ask))

    def _now_intact(self, now: float, how: str) -> None:
        """The store holds what a majority acknowledged (``how``: caught up, or forced by
        the operator): it counts itself again, from now on and after a restart."""
        if self.replicator.intact:
            return
        self.gate.intact = True
        self._run(self.replicator.set_intact(now, self.gate.new), now)
        self._save_state()
        log.info("configs: this node's store, started empty, is whole (%s%s): it counts "
                 "itself in the majorities it catches up from again", how,
                 ", as a new member: no peer it caught up from had seen it before"
                 if self.gate.new else "")  # fmt: skip

    def _take_time(self, now: float) -> None:
        """The input's time, for the store (a version stored now settles
        ``SETTLE_SECONDS`` after it reached this node: ``ConfigStore.now``), and how far our
        clock runs ahead of the cluster's (``clock_lead``), for the write deadlines (judged
        by the cluster's clock, negative leads too) and the settle time of the versions
        loaded at the start (only a lead ahead: a node behind waits longer, never shows a
        version sooner)."""
        self.store.now = now
        lead = self._clock_lead()
        self.replicator.clock_lead = lead
        self.store.clock_lead = max(0.0, lead)

    def _save_state(self) -> None:
        """Whether the store is whole and the members seen whole, on disk (a failure is
        logged: the next start may then catch up as a store that started empty, or not
        tell a wiped peer from a new one: ``ConfigReplicator.seen_whole``)."""
        if self.db is None:
            return
        rep = self.replicator
        try:
            self.db.save_state(rep.intact, rep.seen_whole, rep.joining)
        except OSError as exc:
            self._limiter.warning("config-state", self._now, "configs: could not write %s "
                                  "(%s)", self.db.state_path, exc)  # fmt: skip

    def _room_for_held(self, when: str) -> None:
        raised = self.store.room_for_held()
        if raised:
            names = sorted(raised)
            log.warning(
                "configs: %d namespace(s) %s hold more config content than the default "
                "per-namespace limit (%d bytes; every kept version's): %s. They keep room for "
                "a quarter of it above what they hold (written before the limit existed, "
                "e.g. by an older version); set [config] max_bytes_per_namespace on every "
                'node (0: no per-namespace limit) to decide (docs/CONFIG.md "Limits")',
                len(names),
                when,
                self.store.limits.max_bytes_per_namespace,
                ", ".join(f"{ns!r} {raised[ns][0]} -> limit {raised[ns][1]}" for ns in names[:10])
                + (f" (and {len(names) - 10} more)" if len(names) > 10 else ""),
            )

    def _catching_up(self) -> bool:
        """The ready gate runs: not ready yet, or forced ready by the operator (it catches
        up all the same, and is no longer forced once it has: ``_gate_check``)."""
        return not self.ready or self.forced_ready

    def _gate_check(self, now: float) -> None:
        if self.forced_ready and self.gate.ready:
            self.forced_ready = False  # a normal member again: rearmed after an absence
            self._now_intact(now, "caught up after it was forced ready")
            log.warning(
                "configs: caught up with %d of %d configured members since the operator "
                "forced this node ready: no longer forced (%d data ids)",
                len(self.gate.synced) + 1,
                len(self.replicator.members),
                len(self.store),
            )
            return
        if self.ready or not self.gate.ready:
            return
        self.ready = True
        self._now_intact(now, "caught up")
        self._room_for_held("caught up")
        waiting, self._sync_at_ready = self._sync_at_ready, set()
        for key in sorted(waiting):  # the subscriptions made while it caught up
            self.subscribed(config_topic(key))
        log.info(
            "configs: caught up with %d of %d configured members; serving config "
            "reads (%d data ids)",
            len(self.gate.synced) + 1,
            len(self.replicator.members),
            len(self.store),
        )

    # -- carrying out the replicator's effects ------------------------------------------
    def _run(self, effects: list[Effect], now: float) -> None:
        """Queue effects for this turn's ``flush`` (nothing leaves before its commit); not
        ready yet: the data ids stored go to the ready gate."""
        self._commits.add(effects)
        if self._catching_up():
            stored = [e.key for f in effects if type(f) is Persist for e in f.entries]
            if stored:
                self.gate.on_stored(now, stored)
                self._gate_check(now)

    def _carry_out(self, effect: Effect | _Reply, now: float) -> None:
        self._now = now
        if self._trace.on:
            self._trace_effect(effect)
        match effect:
            case Persist():  # a data id a later turn saves again: that turn announces it
                unsaved = self._commits.unsaved
                self._announce(dict.fromkeys(e.key for e in effect.entries
                                             if e.key not in unsaved), now)  # fmt: skip
            case SendRecord() | SendAck() | SendCommit():
                self._outbox.setdefault(effect.peer, []).append(effect)
            case SendDigests() | SendHave() | SendVersions() | FetchVersions() | SendKeyVersions():
                self._send_outbox(effect.peer)  # what went before it leaves before it
                for frames in encode_replication_effect(self.member, effect):
                    self._send(effect.peer, frames)
            case ForwardWrite():
                self._forward(effect, now)
            case ReplyEntry():
                self._reply_entry(effect.request, effect.entry, effect.gray)
            case ReplyError():
                self._reply_error(
                    effect.request, effect.code, effect.message, effect.unwritten, effect.current
                )
            case _Reply():
                if effect.reserved and self._held_replies is not None:
                    self._held_replies.send(effect.envelope, effect.body, effect.reserved)
                else:
                    self._send_reply(effect.envelope, effect.body)

    def _trace_effect(self, effect: Effect | _Reply) -> None:
        t = self._trace
        match effect:
            case Persist():
                for e in effect.entries:
                    t("marked" if effect.mark else "saved", e.key, e.revision)
            case SendRecord():
                t("records_out", effect.entry.key, effect.entry.revision, effect.peer)
            case SendAck():
                t("ack_out", effect.key, effect.revision, effect.peer)
            case SendCommit():
                t("commit_out", effect.key, effect.revision, effect.peer)
            case ReplyEntry() if isinstance(effect.request, _ClientAsk):
                t("reply", effect.entry.key, effect.entry.revision)

    def subscribed(self, topic: bytes) -> None:
        """An exact config topic was subscribed (a listener's SUB connected, or reconnected
        after this node restarted): publish the data id's current version on it, as a
        service's sync (PROTOCOL.md 4.5), so a listener that missed a change while its SUB
        was away pulls it now instead of at its next resync.  Up-to-date listeners ignore
        it (same revision).  A version not yet saved is announced by its flush."""
        names = parse_config_topic(topic)
        if names is None or len(names) != 3:
            return
        key = ConfigKey(*names)
        if not self.ready:
            # Catching up (a start, an absence): what it shows may be older than what it
            # announced before a crash (a follower's commit marks are saved lazily), and a
            # listener must never be told a revision goes back: synced once ready.
            if len(self._sync_at_ready) < MAX_SYNCS_AT_READY:  # beyond: its resync does
                self._sync_at_ready.add(key)
            return
        current = self.store.shown(key, self._now)
        if current is None or key in self._commits.unsaved:
            return
        self.counters["subscription_syncs"] += 1
        self._notify(encode_config_change(current))

    def _announce(self, keys: Iterable[ConfigKey], now: float) -> None:
        """Publish to listeners the version of ``keys`` shown now, if it changed.  **Only a
        version a majority acknowledged** (``committed``: never lost) is shown, or one
        written ``SETTLE_SECONDS`` ago ("outcome unknown", yet current): a record may be
        one its owner never saved (records leave before the owner's fsync), so a peer that
        only saved it must not show it (``ConfigStore.shown``; reads follow the same rule).
        """
        for key in keys:
            current = self.store.current(key)
            if current is None:
                continue
            if key in self._parked:
                self._retry_parked(key, now)
            shown = self.store.shown(key, now)
            if shown is not current:  # look again once it has settled
                self._unconfirmed[key] = min(self.store.settles_at(current), now + 10.0)
            else:
                self._unconfirmed.pop(key, None)
            if shown is None:
                continue
            identity = _identity(shown)
            if self._announced.get(key) != identity:
                self._announced[key] = identity
                if self._trace.on:
                    self._trace("notify", key, shown.revision)
                if self._watched is None or self._watched(key):
                    self.counters["notifications"] += 1
                    self._notify(encode_config_change(shown))
                else:
                    self.counters["notifications_unwatched"] += 1

    def _send_outbox(self, peer: str) -> None:
        """The records, acks and commits queued for a peer this turn: one message."""
        effects = self._outbox.pop(peer, None)
        if effects:
            for frames in encode_batches(self.member, effects, self._packed):
                self._send(peer, frames)

    def _send(self, peer: str, frames: list[bytes]) -> bool:
        if self._send_peer(peer, frames):
            return True
        self.counters["peer_sends_failed"] += 1
        return False

    def _forward(self, effect: ForwardWrite, now: float, arrived: float | None = None) -> None:
        ask = effect.write.request
        # a client's, or a peer's that this node passes on (a learner, a failing disk)
        assert isinstance(ask, _ClientAsk | _PeerAsk) and ask.msg is not None
        arrived = now if arrived is None else arrived  # answered within FORWARD_TIMEOUT of it
        if effect.peer not in self.replicator.up:
            # decided before its owner left: it waited for the turn in flight (it leaves
            # after that turn's commit), so the leave found no forward to decide again
            # and it went to a stopped owner (CI: review27's graceful stop); never sent
            # anywhere, it is decided again now, request id or not
            self.counters["forwards_redecided"] += 1
            again = replace(effect.write, forwarded=False)
            self._run_now(self.replicator.write(now, again, arrived), now, arrived)
            return
        if len(self._forwards) >= MAX_FORWARDS:
            self._reply_error(ask, ErrorCode.UNAVAILABLE, "too many config writes in flight "
                              "on this node; nothing was written: retry shortly", True)  # fmt: skip
            return
        self._next_tag += 1
        tag = self._next_tag
        frames = encode_config_peer(
            "config_forward",
            self.member,
            tag=tag,
            request=ask.msg,
            by=effect.write.args["by"],
            reply_here=True,  # answer on our connection: the owner's to us may be cut
        )
        if self._send_peer(effect.peer, frames):
            self._forwards[tag] = _Forward(
                ask, effect.peer, arrived + FORWARD_TIMEOUT, effect, arrived
            )
            return
        self.counters["forwards_waiting"] += 1
        until = arrived + self.forward_grace
        self._keep(_Unsent(effect.peer, frames, until, now + RESEND_EVERY, effect, arrived), now)

    def _send_or_keep(self, peer: str, frames: list[bytes], now: float) -> None:
        """Send now if the peer's connection is live, else keep it to try again for
        ``CONNECT_GRACE`` (a DEALER just made, or reconnecting after a blip)."""
        if not self._send_peer(peer, frames):
            self._keep(_Unsent(peer, frames, now + CONNECT_GRACE, now + RESEND_EVERY), now)

    def _keep(self, unsent: _Unsent, now: float) -> None:
        if len(self._unsent) >= MAX_UNSENT:
            unsent.until = now
            self._give_up(unsent)
        else:
            self._unsent.append(unsent)

    def _resend(self, now: float) -> None:
        waiting, self._unsent = self._unsent, []
        for u in waiting:
            if now < u.next_try:
                self._unsent.append(u)
            elif now >= u.until:
                self._give_up(u)
            elif u.write is not None:  # decided again: the owner may have changed
                again = replace(u.write.write, forwarded=False)
                self._run_now(self.replicator.write(now, again, u.arrived), now, u.arrived)
            elif self._send_peer(u.peer, u.frames):
                continue
            else:
                u.next_try = now + RESEND_EVERY
                self._unsent.append(u)

    def _run_now(self, effects: list[Effect], now: float, arrived: float) -> None:
        """A forward decided again: its effects at once (a local write's Persist goes
        through the turn's queue as usual; a forward keeps its first deadline)."""
        rest: list[Effect] = []
        for effect in effects:
            if type(effect) is ForwardWrite:
                self._forward(effect, now, arrived)
            else:
                rest.append(effect)
        if rest:
            self._run(rest, now)

    def _give_up(self, u: _Unsent) -> None:
        self.counters["peer_sends_failed"] += 1
        if u.write is not None:  # it never left (or was never taken): nothing was written
            ask = u.write.write.request
            assert isinstance(ask, _ClientAsk | _PeerAsk)
            self._reply_error(
                ask,
                ErrorCode.UNAVAILABLE,
                u.why
                or f"the data id's responsible node {u.peer} is not reachable from this node "
                f"(no connection for {self.forward_grace:g} s); nothing was written: retry "
                "shortly or on another node",
                unwritten=True,
            )

    def _reply_entry(self, request: Any, entry: ConfigEntry, gray: bool) -> None:
        if isinstance(request, _PeerAsk):
            self._reply_peer(request, ok=True, entry=entry_to_wire(entry), gray=gray)
        elif isinstance(request, _ClientAsk):
            result = entry_result(entry, gray)
            if request.msg.get("echo") is False:  # (validated: a bool)
                result = without_echo(result, request.msg.get("op", ""))
            self._send_reply(request.envelope, encode_ok(request.req_id, result))

    def _reply_error(
        self,
        request: Any,
        code: ErrorCode,
        message: str,
        unwritten: bool = False,
        current: int | None = None,
    ) -> None:
        """``unwritten``: refused before anything was written (the client may retry
        anywhere): said in the reply (``error.written``), relayed by a forwarder; so is
        ``current``, a CAS's CONFLICT's current revision (``error.current``)."""
        if getattr(request, "maybe_written", False):  # an earlier attempt may have been
            unwritten = False
            message = message.replace(
                "nothing was written",
                "an earlier attempt of this write (to an owner that left before answering) "
                "may have been written: re-send it with the same request_id (applied at most "
                "once), or read the data id",
            )
        if isinstance(request, _PeerAsk):
            more: dict[str, Any] = {"written": False} if unwritten else {}
            if current is not None:
                more["current"] = current
            self._reply_peer(request, ok=False, code=int(code), message=message[:4096], **more)
        elif isinstance(request, _ClientAsk):
            self._count_error(code)
            body = encode_error(request.req_id, code, message, unwritten, current=current)
            self._send_reply(request.envelope, body)

    def _reply_peer(self, request: _PeerAsk, **fields: Any) -> None:
        """The answer to a forwarded write, kept for a resend if the connection is down."""
        frames = encode_config_peer("config_forward_reply", self.member, tag=request.tag, **fields)
        if request.via is not None and self._send_back(request.via, frames):
            return  # on the forward's own connection
        self._send_or_keep(request.sender, frames, self._now)

    # -- stats --------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "forced_ready": self.forced_ready,
            "members": len(self.replicator.members),
            "majority": self.replicator.majority,
            "members_up": len(self.replicator.up),
            "learners": len(self.replicator.learners),
            "learner_of": len(self.replicator.unlisted),
            "max_content_bytes": self.max_content_bytes,
            "data_dir": str(self.db.path.parent) if self.db is not None else None,
            **self.store.stats(),
            **self.replicator.counters,
            **self.gate.counters,
            "sync_waiting": self.gate.waiting(),
            **self.counters,
            **self._commits.stats(),
            "forwards_pending": len(self._forwards),
            "commits_awaiting_answers": self.replicator.awaiting_answers(),
            "reads_waiting": self._parked_count,
        }


# What a learner (a member our list does not name) may send: its catch-up and repair
# (digests, histories, versions) and a write to forward; never a record, an ack or a
# commit: it does not vote (docs/CONFIG.md "A new node: learner").
_FROM_LEARNERS = frozenset({ConfigSync, ConfigDigests, ConfigHave, ConfigVersions, ConfigForward})


def _identity(entry: ConfigEntry) -> tuple[int, str, str, bool]:
    """What a listener tells apart: the revision, the main and gray md5, deleted."""
    return (entry.revision, entry.md5, entry.gray.md5 if entry.gray else "", entry.deleted)


def _rejected(req: ConfigRequest, exc: ConfigRejected) -> RequestRejected:
    revision = exc.revision if type(req) is GetConfig and req.revision is None else None
    return RequestRejected(
        exc.code, f"{req.op}: {exc.message}", req.req_id, req.op, revision=revision
    )
