"""The configuration center's write protocol: acknowledged by a majority (sans-IO).

Theory of operation
-------------------
Every node holds every config (``ConfigStore``).  The cluster has a fixed list of
**configured members** (``--peer``, the same on every node); ``majority`` is more than half
of it, the node itself included, whether or not the others are up.

* **Who writes.** A data id's responsible node is the rendezvous winner
  (``responsible_config_node``: core/mapping's score over the key's own bytes,
  ``config_key_bytes``, so configs and services map independently) among the configured
  members this node sees up.  A node that is not responsible forwards the write
  (``ForwardWrite``); a forwarded write is applied where it lands, never forwarded again.
* **Refuse early.** A node that sees fewer than ``majority`` configured members up refuses
  the write at once with UNAVAILABLE: nothing was written (a minority never accepts a
  config write; registry writes stay AP).
* **Catch up first.** Before its first write of a data id after a change of its member
  view (or a restart), the responsible node fetches the data id's versions from a majority
  (``FetchVersions`` / ``SendKeyVersions``) and merges them: any acknowledged version is on
  a majority, and two majorities share a node, so a new owner never reassigns the revision
  of a version its predecessor had acknowledged (say, killed right after its reply).
  Writes to the data id wait for that round (``ack_timeout`` at most, else UNAVAILABLE:
  nothing was written).
* **Write.** The responsible node assigns the next revision (the core checks the input
  and the compare-and-set), sends the version to every other configured member
  (``SendRecord``, again every ``resend_interval`` to those that have not answered) and
  persists it (``Persist``, carried out before the effects after it).  The records come
  first: they may leave while this node's own fsync runs (a record is not an
  acknowledgement; etcd/raft's leader does the same, Raft thesis 10.2.1).  This node
  counts its own acknowledgement from the start, but everything that count can lead to
  (the reply, the commit messages) comes from a later input, carried out after this
  ``Persist`` (the runtime's turn order), so nothing is answered before it is on this
  disk too.  If it crashes before its save, a peer may hold a version this node lost:
  it was never acknowledged, and the merge rule settles it (docs/CONFIG.md).
* **Acknowledge.** A peer merges the version (``ConfigStore.apply``), persists it, and
  answers (``SendAck``): ok if it is the first version it stored at that revision, not ok
  (with its current version, which the writer merges) otherwise.  Each node acknowledges
  at most one version per (data id, revision), so two owners racing during a membership
  change cannot both gather a majority.
* **Commit and answer.** When a majority (the writer included) acknowledged, the writer
  marks the version committed (persisted), answers the client with it, and tells the
  peers (``SendCommit``); the merge rule prefers the committed version at its revision.
  If ``ack_timeout`` passes first, or so many peers refused that a majority is out of
  reach, the client gets UNAVAILABLE saying the outcome is unknown (the version may
  still spread and win): read, then retry.
* **Request ids: at most once.** A write may carry the client's request id (the same on
  every re-send of one logical write); the version it makes keeps it, so it replicates
  and is persisted with the version.  A write whose id already made a version held here
  is answered with that version and never applied again (``_replay``): at once if it is
  committed (on any node), by joining the wait if it is still waiting for its majority
  here, else by driving that version's replication again (its owner died or timed out
  before the majority answered).  A new owner's catch-up (above) brings the versions of
  its predecessor first, so a re-send after an owner change finds the original.  The
  window is the history's retention (``ConfigStore.find_request``).
* **Repair.** Every ``sync_interval`` the node starts a round to one peer in turn: its
  digests (key, revision, md5, origin, committed, history hash) in steps of at most
  ``DIGEST_STEP`` data ids and ``DIGEST_STEP_HASHES`` revisions to hash (history hashes
  not cached), in key order, each with the key range it covers (``SendDigests``),
  ``DIGEST_STEP_GAP`` apart.  The receiver looks at that range only:
  where it is ahead it pushes the versions the sender lacks (``SendVersions``: above the
  sender's current revision, or at it and not its current version or with a committed
  flag it lacks), where the sender is ahead it answers with its digest (the sender
  pushes likewise), where the current versions agree but the histories differ it sends
  a hash per revision it keeps (``SendHave``) and gets the versions of the revisions
  that differ.  A peer
  seen up again (after a partition, a pause or a stalled connection, whose queued
  records and commits may have been dropped with the connection) gets a round at the
  next tick, at most once per ``RETURN_DIGESTS_GAP``, rather than at its turn.
* **A starting node's sync** (its ready gate, ``ready.py``) asks for the digests a page
  at a time (``on_sync``: ``SYNC_PAGE`` data ids after its cursor, with their range);
  each page is handled by ``on_digests`` like a round's step, so what either side lacks
  is pushed in steps too.
* **Reads** are answered from the local store, with the version a majority acknowledged
  (or one written ``SETTLE_SECONDS`` ago: ``ConfigStore.shown``), never a record its
  owner may have lost; a reader that carries the highest revision it has seen is
  refused (UNAVAILABLE) rather than given an older one.

Inputs: ``write``, ``read``, ``on_record``, ``on_ack``, ``on_commit``, ``on_digests``,
``on_have``, ``on_versions``, ``on_sync``, ``set_members_up``, ``tick(now)``.  Outputs:
lists of effects (below), carried out in order.  No clock, socket or file here.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from meshreg.configcenter.core import ConfigStore, ConfigView, content_size
from meshreg.configcenter.model import CONFIG_WRITE_ATTEMPT as CONFIG_WRITE_ATTEMPT
from meshreg.configcenter.model import DEFAULT_ACK_TIMEOUT as DEFAULT_ACK_TIMEOUT
from meshreg.configcenter.model import FORWARD_TIMEOUT as FORWARD_TIMEOUT
from meshreg.configcenter.model import (
    ConfigDigest,
    ConfigEntry,
    ConfigKey,
    ConfigRejected,
    config_key_bytes,
)
from meshreg.core.mapping import responsible_for_bytes
from meshreg.errors import ErrorCode

# The write timing contract (DEFAULT_ACK_TIMEOUT, FORWARD_TIMEOUT, CONFIG_WRITE_ATTEMPT) is
# in configcenter/model, which the client imports without this module.
DEFAULT_RESEND_INTERVAL = 0.25  # s; resend a version to the peers that have not answered
# A write answered "outcome unknown" is still offered to the peers that have not answered,
# this often, until a majority acknowledged it (committed, shown), one refused it (another
# version won its revision) or a version of its revision is committed (``_driven``)
DRIVE_INTERVAL = 1.0
DRIVE_MAX = 4096  # such versions at most (the oldest is given up: the settle rule again)
DEFAULT_SYNC_INTERVAL = 5.0  # s; digests to one peer per interval (anti-entropy)
DIGEST_STEP = 1024  # data ids per digest message: a round is sent in steps of this many
DIGEST_STEP_GAP = 0.02  # s between two steps of a round (other work runs in between)
DIGEST_STEP_HASHES = 2048  # revisions a round's step may have to hash, at most (a data id
# whose history hash is not cached costs its revisions; at least one data id a step): a
# step of 240 data ids that each gained revisions since the last round cost 14-19 ms of
# CPU in one loop turn (3-5 ms at 200 publishes/s), the peer's answer as much again;
# the listener's slowest changes waited behind them (tail12).  ~1-5 ms a step now.
SYNC_PAGE = DIGEST_STEP  # data ids per page of digests answering a starting node's ask
# (``on_sync``): ~130 KB with short names, at most ~1 MB (a digest is <= 1,000 bytes)
MAX_RANGE_SCAN = 4 * DIGEST_STEP  # data ids of its own a receiver looks at per message
RETURN_DIGESTS_GAP = 1.0  # s; at most this often digests to a peer that came back up
# Versions pushed to one peer per step (``SendVersions``), at most, by count and by content
# bytes (one larger version goes alone); the rest waits ``DIGEST_STEP_GAP`` per step, so a
# fresh node catching up on a big table gets its versions over many short loop turns (the
# current versions first, then the histories), not one message of every kept version.
PUSH_STEP_VERSIONS = 128  # ~10 ms to encode, decode and merge on either side
PUSH_STEP_BYTES = 512 * 1024
# Revision hashes worked out per ``config_have`` step at most (one data id's list is never
# split): where the histories of a digest step's data ids differ, the lists go in steps
# ``DIGEST_STEP_GAP`` apart.  One digest step of 1,024 data ids keeping 100 revisions each
# was 102,400 hashes in one call (230-380 ms); a hash costs 2-4 us: a step ~4-8 ms.
HAVE_STEP_REVISIONS = 2048
# ... and data ids per step at most: the peer works out its own hashes of every data id
# listed (up to its ``keep_revisions`` each), whatever this node lists of it.  A node
# catching up holds one revision of each: 2,048 data ids listed in one step made its
# peer hash 204,800 revisions in one call (365-418 ms, ``bench.config_catchup --ids
# 2000``); 64 data ids of 100 revisions: 6,400 hashes, ~15-25 ms.
HAVE_STEP_KEYS = 64
FRESH_SLACK = 64  # caught-up entries beyond twice the data ids held before a sweep of
# those purged (amortized O(1) per entry: ``tick``)
# Versions committed with ``saved`` records whose other peers had not answered yet: each
# gets a commit message on its answer unless it marked the version itself (``on_ack``).
# Past this many the oldest is dropped (that peer's flag then comes with anti-entropy).
AWAITING_MAX = 4_096


def responsible_config_node(
    key: ConfigKey, members: Iterable[str], names: Mapping[str, str] | None = None
) -> str:
    """The member responsible for a data id: rendezvous hashing, ties to the larger id.
    ``names``: a member hashed under another name (``ConfigReplicator.hash_names``)."""
    if not names:
        return responsible_for_bytes(config_key_bytes(key), members)
    by_name = {names.get(m, m): m for m in members}
    return by_name[responsible_for_bytes(config_key_bytes(key), by_name)]


# -- commands and effects ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConfigWrite:
    """A client's write: ``op`` is publish, delete, rollback, gray, promote or gray_drop;
    ``args`` the operation's fields (content, type, desc, tags, revision, labels, clients,
    by).  ``request`` is opaque to this module (the runtime's reply address)."""

    request: Any
    op: str
    key: ConfigKey
    args: Mapping[str, Any] = field(default_factory=dict)
    if_revision: int | None = None
    forwarded: bool = False
    request_id: str = ""  # the client's id of this logical write ('': none, no dedup)
    resend: bool = False  # the client sent it before (an attempt timed out or failed over)
    deadline: float | None = None  # wall s past which it must not make a version (None: none)
    caught_up: bool = False  # its CAS named a revision above this owner's: fetched once


@dataclass(frozen=True, slots=True)
class Persist:
    """Write these versions durably (one transaction) before carrying out what follows
    (a ``SendRecord`` before it may leave at once: a record is not an acknowledgement).
    ``mark``: only the committed flag of versions saved before is raised; what follows
    needs the versions on disk, not the flag (the runtime may let it go before the flag's
    own fsync; a reply still waits for it).  ``lazy`` (a mark only): nothing waits for
    the flag at all, so the runtime may write it with a later transaction: a peer's flag
    learnt from a commit message, which the protocol may lose anyway (one-way; anti-
    entropy brings flags a node lacks), so a crash before it is written loses no more than
    a dropped commit message does.  The writer's own flag is never lazy (its reply waits
    for it: the merge rule prefers a committed version at its revision)."""

    entries: tuple[ConfigEntry, ...]
    mark: bool = False
    lazy: bool = False


@dataclass(frozen=True, slots=True)
class SendRecord:
    """A version for ``peer`` to persist and acknowledge.  ``saved``: this node, its
    origin, voted for it and has it on disk when the record leaves (the runtime sends it
    only once this node's saves of the data id so far are durable); set only in a cluster
    whose majority is 2 (``ConfigReplicator.on_record``: the peer then knows a majority
    holds it on its own save), where records otherwise leave before the owner's save."""

    peer: str
    entry: ConfigEntry
    saved: bool = False


@dataclass(frozen=True, slots=True)
class SendAck:
    peer: str
    key: ConfigKey
    revision: int
    origin: str
    md5: str
    ok: bool
    current: ConfigEntry | None  # not ok: the version this node holds instead
    committed: bool = False  # this node marked it committed itself (a ``saved`` record)


@dataclass(frozen=True, slots=True)
class SendCommit:
    peer: str
    key: ConfigKey
    revision: int
    origin: str
    md5: str


@dataclass(frozen=True, slots=True)
class SendDigests:
    """The digests of every data id the sender holds in the key range (``after``,
    ``upto``] (None: unbounded; both None: all of them)."""

    peer: str
    digests: tuple[ConfigDigest, ...]
    reply: bool  # True: an answer to the peer's digests (do not answer again)
    after: ConfigKey | None = None
    upto: ConfigKey | None = None
    ask: int = 0  # a page answering a ``config_sync`` that carried this ask number
    fresh: bool = False  # the sender's store is not intact (``ConfigReplicator.intact``)
    known: bool = False  # the sender saw the peer's store whole before (``seen_whole``)
    joining: bool = False  # the sender's store is not intact and joins a cluster that holds
    # configs (``ConfigReplicator.joining``): no new member may count it


RevisionHash = tuple[int, int]  # a revision kept, and the hash of its versions held
# (ConfigStore.revision_hashes: their identities and committed flags)


@dataclass(frozen=True, slots=True)
class SendHave:
    """The revisions the sender keeps of data ids whose histories differ (same current
    version), each with the hash of its versions: the receiver pushes its versions of
    the revisions missing from the list or hashed otherwise, and (``reply`` False)
    answers with its own list where the sender has revisions it lacks or hashes
    otherwise."""

    peer: str
    items: tuple[tuple[ConfigKey, tuple[RevisionHash, ...]], ...]
    reply: bool
    keep: int | None = None  # the sender's keep_revisions (None: no limit, or not told)


@dataclass(frozen=True, slots=True)
class SendVersions:
    peer: str
    entries: tuple[ConfigEntry, ...]


@dataclass(frozen=True, slots=True)
class FetchVersions:
    """Ask a peer for the versions of a data id's highest revision it holds (answer:
    ``SendKeyVersions``), and the version ``request_id`` made if it holds one."""

    peer: str
    key: ConfigKey
    request_id: str = ""  # a re-sent write's id: look it up in the whole history too


@dataclass(frozen=True, slots=True)
class SendKeyVersions:
    peer: str
    key: ConfigKey
    entries: tuple[ConfigEntry, ...]
    request_id: str = ""  # the fetch's (which round it answers)
    fresh: bool = False  # the sender's store is not intact (``ConfigReplicator.intact``)
    floor: int = 0  # the sender's purged floor of the data id's bucket (review44 F5)


@dataclass(frozen=True, slots=True)
class ForwardWrite:
    peer: str
    write: ConfigWrite


@dataclass(frozen=True, slots=True)
class ReplyEntry:
    request: Any
    entry: ConfigEntry  # a write's committed version, or what a read returns
    gray: bool = False


@dataclass(frozen=True, slots=True)
class ReplyError:
    request: Any
    code: ErrorCode
    message: str
    unwritten: bool = False  # a write refused before anything was written (wire ``written``)
    current: int | None = None  # a CAS's CONFLICT: the current revision (``error.current``)


Effect = (
    Persist
    | SendRecord
    | SendAck
    | SendCommit
    | SendDigests
    | SendHave
    | SendVersions
    | FetchVersions
    | SendKeyVersions
    | ForwardWrite
    | ReplyEntry
    | ReplyError
)


@dataclass(slots=True)
class _Pending:
    write: ConfigWrite
    entry: ConfigEntry
    deadline: float
    resend_at: float
    acked: set[str]
    refused: set[str]
    joined: list[Any] = field(default_factory=list)  # re-sends of it: answered alike
    inferred: set[str] = field(default_factory=set)  # acked peers that marked it themselves
    flagged: bool = False  # its records say ``saved`` (sent after this node's save)
    answered: bool = False  # ``write.request`` got its answer ("outcome unknown"): driven


# What a peer lacks of one data id, worked out when its turn to be pushed comes (so a
# round that finds 100,000 data ids to push costs O(data ids), not O(versions)): None, all
# kept versions; a digest, those ``_lacked`` by its holder; a set, those of these revisions.
PushWant = ConfigDigest | frozenset[int] | None


@dataclass(slots=True)
class _PushQueue:
    """The versions waiting to be pushed to one peer (anti-entropy): the current versions
    of the data ids first (``heads``), then the rest of each (``wants``, expanded into
    ``ready`` one data id at a time).  A data id asked for again while it waits is not
    queued twice (``queued``)."""

    heads: deque[ConfigEntry] = field(default_factory=deque)
    wants: deque[tuple[ConfigKey, PushWant, ConfigEntry | None]] = field(default_factory=deque)
    ready: deque[ConfigEntry] = field(default_factory=deque)
    queued: set[ConfigKey] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.heads or self.wants or self.ready)


@dataclass(slots=True)
class _HaveQueue:
    """The data ids whose revision hashes are still to be listed to one peer
    (``config_have``), in the order their digests came; one asked for again while it
    waits is not queued twice.  The hashes are worked out when its step goes."""

    keys: deque[ConfigKey] = field(default_factory=deque)
    queued: set[ConfigKey] = field(default_factory=set)


@dataclass(slots=True)
class _CatchUp:
    """The writes of one data id waiting for a majority's versions of it, in the order
    they arrived (one round per data id, so they are applied in that order: review19 F1),
    and per request id asked about ('': the plain catch-up) the members that answered."""

    writes: list[tuple[ConfigWrite, float]]  # with the time each arrived
    deadline: float
    resend_at: float
    answered: dict[str, set[str]]


class ConfigReplicator:
    """One node's side of the write protocol (module docstring)."""

    def __init__(
        self,
        node_id: str,
        members: Iterable[str],
        store: ConfigStore,
        now: float,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
        resend_interval: float = DEFAULT_RESEND_INTERVAL,
        sync_interval: float = DEFAULT_SYNC_INTERVAL,
    ) -> None:
        self.node_id = node_id
        self.members = tuple(sorted(set(members) | {node_id}))
        self.majority = len(self.members) // 2 + 1
        self.store = store
        self.ack_timeout = ack_timeout
        self.resend_interval = resend_interval
        self.sync_interval = sync_interval
        self.up: frozenset[str] = frozenset({node_id})
        self._up_sorted = [node_id]  # ``up`` sorted (responsible(): once per view, not write)
        self._owners = [node_id]  # ``up`` but ``not_owners``, sorted: who owns data ids
        # Learners (etcd's): members up that our list does not name (joined: core/distro),
        # pushed every version this node commits, never counted; and the configured peers
        # up whose lists do not name us: while there are any, we are their learner (we own
        # no data id and forward every write). ``set_learners``; docs/CONFIG.md.
        self.learners: frozenset[str] = frozenset()
        self.lists_apart: frozenset[str] = frozenset()  # ``set_lists_apart``
        self.not_owners: frozenset[str] = frozenset()  # ``set_not_owners``
        self.cannot_save = False  # ``set_cannot_save``
        # False: this node's store started empty (a new or wiped data directory) and has
        # not caught up since: it may lack versions its former self acknowledged, so it
        # does not count itself among a catch-up's majority, and its answers say
        # ``fresh`` (they count for nobody's); the runtime sets it (``set_intact``)
        self.intact = True
        # its store is not intact and the operator said the cluster holds configs already
        # (``--config-join-existing``): its pages say ``joining``, so that no node takes
        # itself for a new cluster's member while hearing it (ready gate; review43 F1)
        self.joining = False
        self.new = False  # it became intact in this run as a new member (ready gate)
        # the members whose digests came from a whole store (not ``fresh``): a page to one
        # of them says ``known``, so that if its store started empty since (wiped), it
        # does not take itself for a new cluster's member (ready gate); the runtime keeps
        # it on disk (``saw_whole``)
        self.seen_whole: set[str] = set()
        self.unlisted: frozenset[str] = frozenset()
        # the members hashed under another name than the list's: a peer the list names by
        # host name, under the address it announces (``set_hash_names``)
        self.hash_names: dict[str, str] = {}
        self._peers = tuple(m for m in self.members if m != node_id)  # every write names them
        self._pending: dict[tuple[ConfigKey, int, str, str], _Pending] = {}
        # writes of this node answered "outcome unknown", still offered to the peers that
        # have not answered every DRIVE_INTERVAL (oldest first; ``_drive``), their versions
        # held unshown here meanwhile (``ConfigStore.hold``)
        self._driven: dict[tuple[ConfigKey, int, str, str], _Pending] = {}
        self._next_drive = math.inf
        # With a majority of 2, a write's records say ``saved`` and follow this node's own
        # save when no other write of this node waits for its majority and this is True:
        # the runtime sets it per turn (True when nothing of its own is on the way to disk,
        # so the save is the turn's alone).  Low load, one publish at a time; under load
        # the records go before the save as with more members (a save queued behind others
        # would put that wait before every record)
        self.records_after_save = True
        # flagged versions committed here -> the peers still to answer (``_late_commit``)
        self._awaiting: dict[tuple[ConfigKey, int, str, str], set[str]] = {}
        # (time, n, key): a heap of each pending write's next time (its resend or
        # deadline), pushed whenever one is set; an item whose write is gone or has a
        # newer time is dropped when it comes to the top (``next_wake``: once per loop
        # turn, was a scan of every write in flight)
        self._pending_times: list[tuple[float, int, tuple[ConfigKey, int, str, str]]] = []
        self._pending_pushes = 0
        # data id -> its catch-up after a view change, with the request checks of re-sent
        # writes this node holds no version of (``write``)
        self._catching_up: dict[ConfigKey, _CatchUp] = {}
        self._view = 0  # bumped on every change of ``up``
        self._returned: set[str] = set()  # peers seen up again: digests at the next tick
        self._seen_up: set[str] = set()  # peers ever seen up (the first time is the start's
        # catch-up, config_sync, not a return)
        self._returned_at: dict[str, float] = {}  # peer -> when it last got those
        self._fresh: dict[ConfigKey, int] = {}  # data id -> the view it was last caught up in
        self._away_view = -1  # the view ``forget_caught_up`` began (-1: never away)
        self._next_sync = now + sync_interval
        self._sync_turn = 0
        self._rounds: dict[str, ConfigKey | None] = {}  # peer -> the last data id sent
        self._next_step = math.inf  # the next step of the digest rounds under way
        self._push: dict[str, _PushQueue] = {}  # peer -> versions still to push to it
        self.sync_page = SYNC_PAGE  # data ids per page of digests answering config_sync
        self._next_push = math.inf  # the next step of those pushes
        self._have: dict[str, _HaveQueue] = {}  # peer -> data ids to list to it (config_have)
        self._next_have = math.inf  # the next step of those lists
        # s our wall clock runs ahead of the peers' (the runtime's, core/distro): write
        # deadlines are judged by the cluster's clock (review22: a node 5 s ahead refused
        # every write it owned as late, and no other node could take them)
        self.clock_lead = 0.0
        self.counters = {"forwarded": 0, "refused_minority": 0, "timed_out": 0, "committed": 0,
                         "deduplicated": 0, "request_checks": 0, "cas_catch_ups": 0, "pushed": 0,
                         "push_steps": 0, "sync_pages_out": 0, "have_steps": 0,
                         "refused_learner": 0, "late_writes": 0,
                         "refused_lists_apart": 0, "driven": 0, "committed_late": 0,
                         "drive_given_up": 0}  # fmt: skip

    # -- membership ----------------------------------------------------------------------
    def set_members_up(self, up: Iterable[str]) -> None:
        """The configured members this node currently sees up (itself always is)."""
        new = frozenset(m for m in up if m in self.members) | {self.node_id}
        for gone in self.up - new:  # its pushes wait for its return's round, which asks
            self._push.pop(gone, None)  # again for what it still lacks
            self._have.pop(gone, None)  # (and compares the histories again)
        self._returned |= (new - self.up) & self._seen_up
        self._seen_up |= new - {self.node_id}
        if new != self.up:
            self.up = new
            self._up_sorted = sorted(new)
            self._owners = [m for m in self._up_sorted if m not in self.not_owners]
            self._view += 1
            self._fresh.clear()

    def set_learners(self, learners: Iterable[str], unlisted: Iterable[str]) -> None:
        """The learned members up (``learners``) and the configured peers up whose lists
        do not name this node (``unlisted``: while any, it is a learner itself)."""
        new = frozenset(m for m in learners if m not in self.members)
        for gone in self.learners - new:
            self._push.pop(gone, None)
            self._have.pop(gone, None)
        self.learners = new
        unlisted = frozenset(m for m in unlisted if m in self.members and m != self.node_id)
        if unlisted != self.unlisted:
            self.unlisted = unlisted
            self._view += 1  # who owns what changed: catch up again before a write
            self._fresh.clear()

    def set_not_owners(self, members: Iterable[str]) -> None:
        """Configured members up that own no data id: the learners of a configured peer
        up (its list does not name them), which refuse a write as owner; every node
        counts them out alike (review25 F6: a node restarted with a longer list forwarded
        writes to a new member that the others' lists did not name yet)."""
        new = frozenset(members) - {self.node_id}
        if new != self.not_owners:
            self.not_owners = new
            self._set_owners()

    def _set_owners(self) -> None:
        owners = [m for m in self._up_sorted if m not in self.not_owners]
        if owners != self._owners:
            self._owners = owners
            self._view += 1  # who owns what changed: catch up again before a write
            self._fresh.clear()

    def set_lists_apart(self, peers: Iterable[str]) -> None:
        """The configured peers up whose peer lists are so unlike ours that a majority of
        each may share no member (core/membership ``majorities_may_miss``): while any,
        this node takes no config write as its owner (review25 F4)."""
        self.lists_apart = frozenset(peers)

    @property
    def is_learner(self) -> bool:
        """Some configured peers up do not list this node: it writes nothing itself."""
        return bool(self.unlisted)

    def forget_caught_up(self) -> None:
        """This node was away (stopped past the peer timeout): every data id's next write
        here first fetches a majority's versions, as after a change of the members up,
        and asks them about its request id, as for a re-send: a write that waited in this
        node's socket meanwhile may have been re-sent elsewhere and made a version."""
        self._view += 1
        self._away_view = self._view
        self._fresh.clear()

    def responsible(self, key: ConfigKey) -> str:
        """The data id's owner among the configured members up; a learner counts itself
        out, as the peers whose lists do not name it do (their view)."""
        if self.unlisted or self.cannot_save:
            others = [m for m in self._owners if m != self.node_id]
            return responsible_config_node(key, others) if others else self.node_id
        return responsible_config_node(key, self._owners, self.hash_names)

    def set_hash_names(self, names: dict[str, str]) -> None:
        """Owners are hashed over the addresses the members announce, the same on every
        node whatever its list's spelling (review45 F1: lists naming the nodes by host name,
        ``localhost:P``, had each node hash itself as ``127.0.0.1:P`` and its peers as
        listed, so two or three nodes took themselves for a data id's owner; review46 F1:
        the same with lists that do not name the node itself).  A change moves owners:
        every data id's next write here catches up first."""
        if names != self.hash_names:
            self.hash_names = names
            self._view += 1
            self._fresh.clear()

    def set_cannot_save(self, failing: bool) -> None:
        """This node's saves keep failing (a full disk): it counts itself out of the
        owners, as a learner does, and passes on the writes forwarded to it as their
        owner in the others' view (review25 F7: its data ids could be written through no
        node while the other two, a majority, were fine)."""
        if failing != self.cannot_save:
            self.cannot_save = failing
            self._view += 1  # who owns what changed here: catch up again before a write
            self._fresh.clear()

    def saw_whole(self, sender: str) -> bool:
        """Digests came from ``sender``'s whole store; True if it was not known yet."""
        if sender in self.seen_whole or sender not in self.members:
            return False
        self.seen_whole.add(sender)
        return True

    def set_intact(self, now: float, new: bool = False) -> list[Effect]:
        """This node's store caught up (the ready gate passed; ``new``: as a new
        cluster's): it holds what a majority acknowledged, so it counts itself again; the
        catch-ups that waited for an answer more go on."""
        if self.intact:
            return []
        self.intact, self.new, self.joining = True, new, False
        for peer in self.peers:  # digests from a whole store: each peer sees it whole now
            self._start_round(peer, now)  # (``seen_whole``), not only at its next round
        effects: list[Effect] = []
        for key, catch_up in list(self._catching_up.items()):
            for answered in catch_up.answered.values():
                answered.add(self.node_id)
            effects += self._caught_up(now, key, catch_up)
        return effects

    @property
    def peers(self) -> tuple[str, ...]:
        """The configured members but this node (fixed at construction)."""
        return self._peers

    def _refusal(self, write: ConfigWrite) -> tuple[str, str] | None:
        """Why this node, the write's owner, cannot take it (its counter, the message):
        nothing is written (UNAVAILABLE, ``written: false``); None: it can."""
        key = write.key
        if self.unlisted:  # a learner: the peers that do not list it would refuse its records
            names = ", ".join(sorted(self.unlisted))
            return "refused_learner", (
                f"{key}: this node is a config learner (the peer lists of {names} do not "
                "name it yet) and no other member is up to take the write: nothing was "
                "written; retry on another node, and give every node the same peer list"
            )
        if self.cannot_save:  # nobody else up to pass it on to
            return "", (
                f"{key}: this node cannot save configs to its disk and no other member is up "
                "to take the write: nothing was written; fix the disk (free space, "
                "permissions, the device)"
            )
        if self.lists_apart:  # a majority of ours and of theirs may share no member
            names = ", ".join(sorted(self.lists_apart))
            return "refused_lists_apart", (
                f"{key}: config writes are refused while the peer lists of this node "
                f"({len(self.members)} members) and of {names} differ by more than one "
                "member: a majority of each could share no node, and two writes of one "
                "revision could both be acknowledged; nothing was written. Finish the "
                "rolling restart with one list, and add or remove one node at a time "
                '(docs/CONFIG.md, "Changing the members")'
            )
        if len(self.up) < self.majority:
            rejected = self.store.rejected  # (every refused config request is there too)
            rejected["minority"] = rejected.get("minority", 0) + 1
            down = [m for m in self.members if m not in self.up]
            named = ", ".join(down[:8]) + (f" and {len(down) - 8} more" if len(down) > 8 else "")
            return "refused_minority", (
                f"config writes need a majority of the {len(self.members)} configured "
                f"members ({self.majority}); this node sees {len(self.up)} up and not "
                f"{named}: nothing was written; start the members that are down (if they "
                "run, this node is cut off from them: retry on a node that reaches a "
                "majority, and check the network between them)"
            )
        return None

    # -- client requests -----------------------------------------------------------------
    def write(self, now: float, write: ConfigWrite, arrived: float | None = None) -> list[Effect]:
        """A client's write (``arrived``: when it came, if it waited for a catch-up): on
        the owner, answered within ``ack_timeout`` of its arrival."""
        arrived = now if arrived is None else arrived
        done = self.store.find_request(write.key, write.request_id)
        if done is not None and done.committed:  # any node that holds it committed answers
            return self._replay(now, write, done, arrived)
        if done is None and write.deadline is not None and now - self.clock_lead > write.deadline:
            return [self._late(write, now, arrived)]
        owner = self.responsible(write.key)
        # a forwarded write is applied where it lands, but by a node that counts itself
        # out (a learner, a disk that fails), which passes it on once more: the next node
        # applies it (it never forwards a forwarded write), so there is no loop
        if owner != self.node_id and (not write.forwarded or self.unlisted or self.cannot_save):
            self.counters["forwarded"] += 1
            return [ForwardWrite(owner, replace(write, forwarded=True))]
        refusal = self._refusal(write)
        if refusal is not None:
            counter, message = refusal
            if counter:
                self.counters[counter] += 1
            return [ReplyError(write.request, ErrorCode.UNAVAILABLE, message, unwritten=True)]
        # A re-send that made no version here may have made one on the owner before (the
        # owner changed, or its answer was lost): ask a majority for the request id first
        # (so may any write that waited here while this node was away: not caught up since)
        suspect = write.resend or self._fresh.get(write.key, -1) < self._away_view
        check = write.request_id if suspect and done is None else ""
        catch_up = self._catching_up.get(write.key)
        if catch_up is not None:  # after the writes before it, in their order
            catch_up.writes.append((write, arrived))
            if check in catch_up.answered:
                return []
            self.counters["request_checks"] += bool(check)  # a re-send asked about
            catch_up.answered[check] = {self.node_id} if self.intact else set()
            return [FetchVersions(p, write.key, check) for p in self.peers]
        if (self._fresh.get(write.key) != self._view or check) and self.majority > 1:
            self.counters["request_checks"] += bool(check)  # a re-send asked about
            return self._catch_up(now, write, arrived, check)
        if done is not None:  # a re-send: the version it made, never a second one
            return self._replay(now, write, done, arrived)
        if self._behind_cas(write):
            # the client saw a revision this owner does not hold: written by another owner
            # while the member views differed (a node rejoining: each took itself for the
            # owner), after this one caught up.  A majority holds it if it was
            # acknowledged: fetch their versions once and decide on them, rather than a
            # CONFLICT naming a revision no read shows (review41's rolling upgrade)
            self.counters["cas_catch_ups"] += 1
            return self._catch_up(now, replace(write, caught_up=True), arrived, "")
        try:
            entry = self._apply_local(now, write)
        except ConfigRejected as exc:  # (UNAVAILABLE: a CAS undecided, retry: nothing written)
            unwritten = exc.code is ErrorCode.UNAVAILABLE
            current = exc.revision if exc.code is ErrorCode.CONFLICT else None
            return [ReplyError(write.request, exc.code, exc.message, unwritten, current)]
        pending = _Pending(write, entry, arrived + self.ack_timeout, now + self.resend_interval,
                           {self.node_id}, set())  # fmt: skip
        if self.majority == 1:
            return [Persist((entry,)), *self._commit(pending)]
        alone = not self._pending  # no other write of this node waits for its majority
        self._track(_pending_key(entry), pending)
        if self.majority == 2 and alone and self.records_after_save:  # flagged (on_record)
            pending.flagged = True
            return [Persist((entry,)), *self._records(entry, self.peers, True)]
        # the records go out in parallel with this node's own save (Raft thesis 10.2.1): a
        # record is not an acknowledgement; this node's own vote counts only once its save
        # is durable, since everything the count leads to (the reply, the commit message)
        # is carried out after this Persist
        return [*(SendRecord(p, entry) for p in self.peers), Persist((entry,))]

    def _catch_up(self, now: float, write: ConfigWrite, arrived: float, check: str) -> list[Effect]:
        """Fetch a majority's versions of the data id (and of the request id ``check``)
        before ``write`` is decided; it waits in the round (``_caught_up`` runs it)."""
        self._catching_up[write.key] = _CatchUp(
            [(write, arrived)], arrived + self.ack_timeout, now + self.resend_interval,
            {check: {self.node_id} if self.intact else set()},
        )  # fmt: skip
        return [FetchVersions(p, write.key, check) for p in self.peers]

    def _behind_cas(self, write: ConfigWrite) -> bool:
        """A compare-and-set on a revision above this node's current one (not asked
        about yet): this owner may lack a version another owner wrote."""
        if write.if_revision is None or write.caught_up or self.majority == 1:
            return False
        current = self.store.current(write.key)
        held = current.revision if current is not None else 0
        return type(write.if_revision) is int and write.if_revision > held

    def _records(self, entry: ConfigEntry, peers: Iterable[str], flagged: bool) -> list[Effect]:
        """Records of ``entry`` for ``peers``; ``flagged``: its write's records say
        ``saved`` (this node made it, voted for it, and sends them once its save is
        durable), so a peer that stores it as its vote knows a majority holds it
        (``on_record``) and needs no commit message."""
        saved = flagged and self.majority == 2 and entry.origin == self.node_id
        return [SendRecord(p, entry, saved) for p in peers]

    def read(
        self,
        request: Any,
        key: ConfigKey,
        min_revision: int = 0,
        labels: Mapping[str, str] | None = None,
        address: str | None = None,
        revision: int | None = None,
        now: float | None = None,
    ) -> list[Effect]:
        """A read: the version shown at ``now`` (``ConfigStore.shown``: one a majority
        acknowledged, or settled); None: the current one."""
        try:
            if revision is not None:
                return [ReplyEntry(request, self.store.get(key, revision, min_revision, now))]
            view: ConfigView = self.store.resolve(key, labels or {}, address, min_revision, now)
        except ConfigRejected as exc:
            return [ReplyError(request, exc.code, exc.message)]
        return [ReplyEntry(request, view.entry, view.gray)]

    # -- peer messages -------------------------------------------------------------------
    def on_record(
        self, now: float, sender: str, entry: ConfigEntry, saved: bool = False
    ) -> list[Effect]:
        """A version to persist and acknowledge.  ``saved`` (its origin, the sender, voted
        for it and had it on disk when it sent it) in a cluster whose majority is 2: if
        this node's vote goes to it too (the first version it stored at that revision), the
        two votes are a majority once this save is durable, so the version is committed:
        marked here (after the save, lazily) and announced without a commit message, and
        the ack says so (the origin then sends none)."""
        applied = self.store.apply(entry)
        effects: list[Effect] = []
        if applied.stored is not None:
            effects.append(Persist((applied.stored,)))
        inferred = False
        if saved and applied.ack and sender == entry.origin and self.majority == 2:
            marked = self.store.commit(entry.key, entry.revision, entry.origin, entry.md5)
            if marked is not None:
                effects.append(Persist((marked,), mark=True, lazy=True))
            inferred = True
        current = None if applied.ack else applied.current
        effects.append(
            SendAck(sender, entry.key, entry.revision, entry.origin, entry.md5, applied.ack,
                    current, inferred)
        )  # fmt: skip
        return effects

    def on_ack(
        self,
        now: float,
        sender: str,
        key: ConfigKey,
        revision: int,
        origin: str,
        md5: str,
        ok: bool,
        current: ConfigEntry | None = None,
        committed: bool = False,
    ) -> list[Effect]:
        """A peer's answer to a record; ``committed``: it marked the version itself (a
        ``saved`` record: no commit message for it).  With a majority of 2 the commit
        messages go only to the peers that answered without marking it: at the commit to
        those heard from, later to each on its answer (``_late_commit``)."""
        effects: list[Effect] = []
        if current is not None:
            effects += self._merge([current])
        pkey = (key, revision, origin, md5)
        pending = self._pending.get(pkey)
        if pending is None and self._driven:
            pending = self._driven.get(pkey)
        if pending is None or sender not in self.members:
            if pending is None and self._awaiting:
                effects += self._late_commit(sender, key, revision, origin, md5, committed)
            return effects
        (pending.acked if ok else pending.refused).add(sender)
        if committed and ok:
            pending.inferred.add(sender)
        if len(pending.acked) >= self.majority:
            self._drop(pkey, pending)
            if pending.answered:
                self.counters["committed_late"] += 1
            return effects + self._commit(pending)
        if len(self.members) - len(pending.refused) < self.majority:
            self._drop(pkey, pending)
            return effects + self._unknown(pending, "other versions were written concurrently")
        return effects

    def on_fetch(self, sender: str, key: ConfigKey, request_id: str = "") -> list[Effect]:
        """A catching-up owner's question: the versions of the data id's highest revision
        (all a new owner needs to continue the sequence; history comes by repair), and
        those of ``request_id`` (a re-sent write's: its version may be below the top)."""
        current = self.store.current(key)
        top = [e for e in self.store.entries(key) if current and e.revision == current.revision]
        made = [
            e for e in self.store.entries(key) if e.request_id == request_id and e not in top
        ] if request_id and self.store.find_request(key, request_id) else []  # fmt: skip
        floor = self.store.purged_floor(key)
        return [SendKeyVersions(sender, key, tuple(top + made), request_id, not self.intact, floor)]

    def on_key_versions(
        self,
        now: float,
        sender: str,
        key: ConfigKey,
        entries: Iterable[ConfigEntry],
        request_id: str = "",
        fresh: bool = False,
        floor: int = 0,
    ) -> list[Effect]:
        """A peer's versions of a data id this node catches up on (``fresh``: the peer's
        store is not intact: merged, not counted; it is asked again), and its purged floor
        of the data id's bucket: the next revision goes above it (a majority that
        acknowledged a tombstone purged since holds its revision there: review44 F5)."""
        if floor:
            self.store.raise_floor(key, floor)
        effects = self._merge(entries)
        catch_up = self._catching_up.get(key)
        if catch_up is None or sender not in self.members or fresh:
            return effects
        answered = catch_up.answered.get(request_id)
        if answered is None:
            return effects
        answered.add(sender)
        return effects + self._caught_up(now, key, catch_up)

    def _enough(self, answered: set[str]) -> bool:
        """``answered`` (intact members, this node among them if it is intact) hold every
        version a majority acknowledged: a majority when this node is intact; else
        ``members - majority + 1`` others, which meet every majority's intact members
        (a store that started empty holds none of what its former self acknowledged)."""
        if self.intact:
            return len(answered) >= self.majority
        return len(answered - {self.node_id}) >= len(self.members) - self.majority + 1

    def _caught_up(self, now: float, key: ConfigKey, catch_up: _CatchUp) -> list[Effect]:
        """Once every round of ``catch_up`` is answered by enough members: its writes."""
        if not all(self._enough(a) for a in catch_up.answered.values()):
            return []
        effects: list[Effect] = []
        del self._catching_up[key]
        self._fresh[key] = self._view
        checked = catch_up.answered.keys() - {""}
        for write, arrived in catch_up.writes:  # a majority's versions are here: in order
            if write.request_id in checked:
                write = replace(write, resend=False)
            effects += self.write(now, write, arrived)
        return effects

    def on_commit(self, key: ConfigKey, revision: int, origin: str, md5: str) -> list[Effect]:
        marked = self.store.commit(key, revision, origin, md5)
        return [Persist((marked,), mark=True, lazy=True)] if marked is not None else []

    def on_digests(
        self,
        sender: str,
        digests: Iterable[ConfigDigest],
        reply: bool,
        after: ConfigKey | None = None,
        upto: ConfigKey | None = None,
        now: float | None = None,
    ) -> list[Effect]:
        """A peer's digests: push what it lacks of every data id where this node is ahead.

        ``reply`` False: the sender's digests of the data ids in (``after``, ``upto``];
        also answer with digests of the data ids where the sender is ahead (revision 0 for
        those this node lacks), so it pushes what this node lacks, and with the versions
        kept (``SendHave``) where the current versions agree but the histories differ.
        ``reply`` True: only those data ids are considered, and nothing is asked.  Only
        the versions the sender lacks go: those above its current revision, or at it but
        not its current version (or with a committed flag it lacks); the rest of a history
        goes through ``SendHave``.  The versions go in steps (``_queue_push``); ``now``
        (the runtime's clock) paces the steps after the first."""
        theirs = {d.key: d for d in digests}
        keys = list(theirs)
        if not reply:  # the data ids of the range that the sender lacks
            scan = self.store.keys_after(after)
            for key in itertools.islice(scan, MAX_RANGE_SCAN):
                if upto is not None and key > upto:
                    break
                if key not in theirs:
                    keys.append(key)
        push: list[tuple[ConfigKey, PushWant]] = []
        want: list[ConfigDigest] = []
        have: list[ConfigKey] = []
        store = self.store
        for key in keys:
            other = theirs.get(key)
            current = store.current(key)
            if current is None:
                if other is not None and not reply and other.revision:
                    want.append(ConfigDigest(key, 0, "", "", False))  # this node lacks it
                continue
            if (
                other is not None  # the same current version (most data ids of a round):
                and other.revision == current.revision  # no ConfigDigest built to see it
                and other.md5 == current.md5
                and other.origin == current.origin
                and other.committed == current.committed
            ):
                if not reply and other.history != store.history_hash(key):
                    have.append(key)
                continue
            mine = store.digest(key)
            if other is None or other.revision == 0:
                push.append((key, None))
            elif _digest_order(mine) > _digest_order(other):
                push.append((key, other))
            elif _digest_order(other) > _digest_order(mine):
                if not reply:
                    want.append(mine)
            elif other.history != mine.history and not reply:
                have.append(key)
        effects: list[Effect] = self._queue_push(sender, push, now)
        if want:
            # (fresh: else a peer would record this store as whole from an answer)
            effects.append(SendDigests(sender, tuple(want), True, fresh=not self.intact))
        return effects + self._queue_have(sender, have, now)

    def on_have(
        self,
        sender: str,
        items: Iterable[tuple[ConfigKey, Iterable[RevisionHash]]],
        reply: bool,
        now: float | None = None,
        keep: int | None = None,
    ) -> list[Effect]:
        """A peer's revisions kept of data ids whose histories differ: push this node's
        versions of the revisions it lacks or holds otherwise (duplicates are merged as
        no-ops); ``reply`` False: answer with this node's list where the peer has
        revisions this node lacks or holds otherwise.  Only revisions both windows keep
        are compared (``keep``: the peer's ``keep_revisions``, below its highest revision
        listed; this node's own below its current): a node keeping fewer revisions would
        prune the others again, and they would be pushed at every round."""
        push: list[tuple[ConfigKey, PushWant]] = []
        back: list[tuple[ConfigKey, tuple[RevisionHash, ...]]] = []
        own = self.store.limits.keep_revisions
        for key, hashes in items:
            theirs = dict(hashes)
            mine = self.store.revision_hashes(key)
            low = max(theirs) - keep if keep and theirs else 0  # it keeps those above
            differ = {r for r, h in mine.items() if r > low and theirs.get(r) != h}
            if differ:
                push.append((key, frozenset(differ)))
            current = self.store.current(key)
            mine_low = current.revision - own if own and current is not None else 0
            if not reply and any(r > mine_low and mine.get(r) != h for r, h in theirs.items()):
                back.append((key, tuple(mine.items())))
        effects: list[Effect] = self._queue_push(sender, push, now)
        if back:
            effects.append(SendHave(sender, tuple(back), True, self.store.limits.keep_revisions))
        return effects

    def on_versions(self, entries: Iterable[ConfigEntry]) -> list[Effect]:
        return self._merge(entries)

    # -- time ------------------------------------------------------------------------------
    def tick(self, now: float, judge: float | None = None) -> list[Effect]:
        """Timers; ``judge``: the awaited answers (acks, catch-up reads) are given up on
        for deadlines up to then only (None: ``now``): the runtime's last poll's start,
        so that answers that came in time but wait unread after a stall count."""
        judge = now if judge is None else judge
        effects: list[Effect] = []
        if len(self._fresh) > 2 * len(self.store) + FRESH_SLACK:
            # data ids purged since (deleted past keep_days or beyond max_tombstones):
            # their entries go, or a stable cluster creating and deleting data ids kept
            # one per data id ever written (review39 F1); a create catches up again
            current = self.store.current
            self._fresh = {k: v for k, v in self._fresh.items() if current(k) is not None}
        for key, catch_up in list(self._catching_up.items()):
            if judge >= catch_up.deadline:
                del self._catching_up[key]
                self.counters["timed_out"] += 1
                effects.extend(
                    ReplyError(
                        w.request,
                        ErrorCode.UNAVAILABLE,
                        f"{key}: could not read it from a majority ({self.majority}) of the "
                        f"{len(self.members)} configured members within {self.ack_timeout:g} "
                        "s; nothing was written: retry",
                        unwritten=True,
                    )
                    for w, _ in catch_up.writes
                )
            elif now >= catch_up.resend_at:
                catch_up.resend_at = now + self.resend_interval
                effects.extend(
                    FetchVersions(p, key, rid)
                    for rid, answered in catch_up.answered.items()
                    for p in self.peers
                    if p not in answered
                )
        for pkey, pending in list(self._pending.items()):
            if judge >= pending.deadline:
                del self._pending[pkey]
                self.counters["timed_out"] += 1
                effects += self._unknown(
                    pending,
                    f"{len(pending.acked)} of the {len(self.members)} configured members "
                    f"acknowledged within {self.ack_timeout:g} s (a majority is "
                    f"{self.majority})",
                )
                self._drive(pkey, pending, now)
            elif now >= pending.resend_at:
                pending.resend_at = now + self.resend_interval
                self._track(pkey, pending)
                answered = pending.acked | pending.refused
                waiting = [p for p in self.peers if p not in answered]
                effects += self._records(pending.entry, waiting, pending.flagged)
        if now >= self._next_drive:
            effects += self._drive_tick(now)
        for peer in sorted(self._returned):
            if now >= self._returned_at.get(peer, -math.inf) + RETURN_DIGESTS_GAP:
                self._returned_at[peer] = now
                self._start_round(peer, now)
        self._returned.clear()
        if now >= self._next_sync and self.peers:
            self._next_sync = now + self.sync_interval
            others = [p for p in self.peers if p in self.up] or list(self.peers)
            peer = others[self._sync_turn % len(others)]
            self._sync_turn += 1
            self._start_round(peer, now)
        if now >= self._next_step:
            effects.extend(self._digest_steps(now))
        if now >= self._next_push:
            effects.extend(self._push_steps(now))
        if now >= self._next_have:
            effects.extend(self._have_steps(now))
        return effects

    def _queue_have(self, peer: str, keys: list[ConfigKey], now: float | None) -> list[Effect]:
        """Queue the data ids whose histories differ from ``peer``'s, for their revision
        hashes (``SendHave``), and list the first step at once if none was waiting: a few
        go as before, a digest step's worth of long histories in steps of
        ``HAVE_STEP_REVISIONS`` hashes, ``DIGEST_STEP_GAP`` apart."""
        if not keys:
            return []
        queue = self._have.get(peer)
        idle = queue is None or not queue.keys
        if queue is None:
            queue = self._have[peer] = _HaveQueue()
        for key in keys:
            if key not in queue.queued:
                queue.queued.add(key)
                queue.keys.append(key)
        if not idle:
            return []  # its steps are under way: these follow
        effects = self._have_step(peer, queue)
        if queue.keys:
            at = -math.inf if now is None else now + DIGEST_STEP_GAP
            self._next_have = min(self._next_have, at)
        else:
            del self._have[peer]
        return effects

    def _have_step(self, peer: str, queue: _HaveQueue) -> list[Effect]:
        """Data ids off the peer's queue, with this node's revision hashes, until
        ``HAVE_STEP_REVISIONS`` hashes or ``HAVE_STEP_KEYS`` data ids (at least one), as
        one ``SendHave``."""
        items: list[tuple[ConfigKey, tuple[RevisionHash, ...]]] = []
        hashes = 0
        while queue.keys and hashes < HAVE_STEP_REVISIONS and len(items) < HAVE_STEP_KEYS:
            key = queue.keys.popleft()
            queue.queued.discard(key)
            if self.store.current(key) is None:
                continue  # (purged since)
            listed = tuple(self.store.revision_hashes(key).items())
            hashes += max(1, len(listed))
            items.append((key, listed))
        if not items:
            return []
        self.counters["have_steps"] += 1
        return [SendHave(peer, tuple(items), False, self.store.limits.keep_revisions)]

    def _have_steps(self, now: float) -> list[Effect]:
        """One step of every peer's ``config_have`` queue (a peer seen down lost it)."""
        effects: list[Effect] = []
        for peer, queue in list(self._have.items()):
            effects += self._have_step(peer, queue)
            if not queue.keys:
                del self._have[peer]
        self._next_have = now + DIGEST_STEP_GAP if self._have else math.inf
        return effects

    def _queue_push(
        self, peer: str, wants: list[tuple[ConfigKey, PushWant]], now: float | None
    ) -> list[Effect]:
        """Queue what ``peer`` lacks of these data ids (the current version of each ahead
        of every history), and push the first step at once if nothing was waiting for it:
        a small repair goes as before, a large one (a fresh node's whole table) in steps
        of ``PUSH_STEP_VERSIONS`` / ``PUSH_STEP_BYTES``, ``DIGEST_STEP_GAP`` apart."""
        if not wants:
            return []
        queue = self._push.get(peer)
        idle = queue is None or not queue
        if queue is None:
            queue = self._push[peer] = _PushQueue()
        for key, want in wants:
            if key in queue.queued:
                continue  # still waiting: it goes with what it lacked when asked first
            current = self.store.current(key)
            if current is None:
                continue
            queue.queued.add(key)
            head = current if _wanted(current, want) else None
            if head is not None:
                queue.heads.append(head)
            queue.wants.append((key, want, head))
        if not idle:
            return []  # its steps are under way: these follow
        effects = self._push_step(peer, queue)
        if queue:
            at = -math.inf if now is None else now + DIGEST_STEP_GAP
            self._next_push = min(self._next_push, at)
        else:
            del self._push[peer]
        return effects

    def _push_step(self, peer: str, queue: _PushQueue) -> list[Effect]:
        """At most ``PUSH_STEP_VERSIONS`` versions and ``PUSH_STEP_BYTES`` of content
        (at least one version) off the peer's queue, as one ``SendVersions``."""
        batch: list[ConfigEntry] = []
        size = expanded = 0
        while len(batch) < PUSH_STEP_VERSIONS:
            if queue.heads:
                part = queue.heads
            elif queue.ready:
                part = queue.ready
            elif queue.wants and expanded < PUSH_STEP_VERSIONS:  # the next data id's
                expanded += 1  # versions, now (bounded by its history; and so many a step:
                # data ids whose current version was all they lacked add nothing)
                key, want, head = queue.wants.popleft()
                queue.queued.discard(key)
                queue.ready.extend(
                    e for e in self.store.kept_versions(key)
                    if _wanted(e, want) and not (head is not None and e.same_version(head))
                )  # fmt: skip
                continue
            else:
                break
            n = content_size(part[0])
            if batch and size + n > PUSH_STEP_BYTES:
                break
            batch.append(part.popleft())
            size += n
        if not batch:
            return []
        self.counters["pushed"] += len(batch)
        self.counters["push_steps"] += 1
        return [SendVersions(peer, tuple(batch))]

    def _push_steps(self, now: float) -> list[Effect]:
        """One step of every peer's push queue (a peer seen down lost its queue:
        ``set_members_up``; one not seen up yet, but asking, keeps it)."""
        effects: list[Effect] = []
        for peer, queue in list(self._push.items()):
            effects += self._push_step(peer, queue)
            if not queue:
                del self._push[peer]
        self._next_push = now + DIGEST_STEP_GAP if self._push else math.inf
        return effects

    def _start_round(self, peer: str, now: float) -> None:
        """Digests to ``peer``, in steps of ``DIGEST_STEP`` data ids (a round under way
        to it goes on where it is)."""
        if peer not in self._rounds:
            self._rounds[peer] = None
            self._next_step = min(self._next_step, now)

    def _digest_steps(self, now: float) -> list[Effect]:
        """One step of every round under way: the next ``DIGEST_STEP`` data ids in key
        order (fewer past ``DIGEST_STEP_HASHES`` revisions to hash), with the key range
        they cover (the last step's range is open)."""
        effects: list[Effect] = []
        for peer, after in list(self._rounds.items()):
            step = self._page(peer, after, DIGEST_STEP, DIGEST_STEP_HASHES)
            effects.append(step)
            if step.upto is not None:
                self._rounds[peer] = step.upto
            else:
                del self._rounds[peer]
        self._next_step = now + DIGEST_STEP_GAP if self._rounds else math.inf
        return effects

    def on_sync(self, sender: str, after: ConfigKey | None, ask: int = 0) -> list[Effect]:
        """A starting node's ask for a page of digests (its ready gate, ready.py): those
        of the next ``sync_page`` data ids after ``after`` (None: from the first), with the
        range they cover; the asker asks for the next page when it has this one, so this
        node keeps nothing per asker and spends one page's work per ask.  ``ask``: the
        asker's number for this catch-up, echoed (a page built before it is told apart)."""
        self.counters["sync_pages_out"] += 1
        page = self._page(sender, after, self.sync_page)
        return [replace(page, ask=ask) if ask else page]

    def _page(
        self, peer: str, after: ConfigKey | None, size: int, hashes: int | None = None
    ) -> SendDigests:
        """The digests of the ``size`` data ids after ``after`` in key order, covering
        (``after``, the last of them], or (``after``, end) if no data id is left after;
        ``hashes``: fewer data ids if theirs would cost more revisions to hash than that
        (``ConfigStore.hash_work``; the first data id goes whatever it costs)."""
        store = self.store
        scan = store.keys_after(after)
        if hashes is None:
            keys = list(itertools.islice(scan, size + 1))
        else:
            keys, work = [], 0
            for key in itertools.islice(scan, size + 1):  # bounded: size + 1 keys
                work += store.hash_work(key) if len(keys) < size else 0
                if keys and work > hashes:
                    keys.append(key)  # not in this step: the next one starts at it
                    size = len(keys) - 1
                    break
                keys.append(key)
        more = len(keys) > size
        keys = keys[:size]
        upto = keys[-1] if more else None
        return SendDigests(
            peer, tuple(store.digests(keys)), False, after, upto, fresh=not self.intact,
            known=peer in self.seen_whole, joining=self.joining,
        )  # fmt: skip

    def next_wake(self) -> float:
        """The latest time ``tick`` must be called next."""
        if self._returned:
            return -math.inf
        times = [self._next_sync if self.peers else float("inf"), self._next_step,
                 self._next_push, self._next_have]  # fmt: skip
        heap, pending = self._pending_times, self._pending
        while heap:
            at, _, pkey = heap[0]
            p = pending.get(pkey)
            if p is not None and min(p.deadline, p.resend_at) == at:
                times.append(at)  # the earliest of every write in flight
                break
            heapq.heappop(heap)  # answered, timed out, or set again since
        for c in self._catching_up.values():
            times.append(min(c.deadline, c.resend_at))
        times.append(self._next_drive)
        return min(times)

    # -- internals -----------------------------------------------------------------------
    def _track(self, pkey: tuple[ConfigKey, int, str, str], pending: _Pending) -> None:
        """Hold ``pending`` (new, or its resend time set again) and push its next time;
        the heap is rebuilt from the writes in flight when stale items outnumber them."""
        self._pending[pkey] = pending
        heap = self._pending_times
        if len(heap) > 4 * len(self._pending) + 64:
            heap[:] = [(min(p.deadline, p.resend_at), i, k)
                       for i, (k, p) in enumerate(self._pending.items())]  # fmt: skip
            heapq.heapify(heap)
            self._pending_pushes = len(heap)
            return  # (``pending`` is in it, with its time)
        self._pending_pushes += 1
        heapq.heappush(heap, (min(pending.deadline, pending.resend_at), self._pending_pushes, pkey))

    def _apply_local(self, now: float, write: ConfigWrite) -> ConfigEntry:
        s, a, key, cas, rid = self.store, write.args, write.key, write.if_revision, write.request_id
        by = a.get("by", "")
        if write.op == "publish":
            return s.publish(
                key,
                a.get("content"),
                a.get("type"),
                now=now,
                by=by,
                description=a.get("desc"),
                tags=a.get("tags"),
                if_revision=cas,
                request_id=rid,
                revision_floor=a.get("revision_floor", 0),
            )
        if write.op == "delete":
            return s.delete(key, now=now, by=by, if_revision=cas, request_id=rid,
                            revision_floor=a.get("revision_floor", 0))  # fmt: skip
        if write.op == "rollback":
            return s.rollback(key, a.get("revision"), now=now, by=by, if_revision=cas,  # type: ignore[arg-type]
                              request_id=rid)  # fmt: skip
        floor = a.get("revision_floor", 0)
        if write.op == "gray":
            return s.publish_gray(
                key,
                a.get("content"),
                labels=a.get("labels"),
                clients=a.get("clients"),
                type=a.get("type"),
                now=now,
                by=by,
                if_revision=cas,
                request_id=rid,
                revision_floor=floor,
            )
        if write.op == "promote":
            return s.promote(key, now=now, by=by, if_revision=cas, request_id=rid,
                             revision_floor=floor)  # fmt: skip
        if write.op == "gray_drop":
            return s.drop_gray(key, now=now, by=by, if_revision=cas, request_id=rid,
                               revision_floor=floor)  # fmt: skip
        raise ConfigRejected(ErrorCode.UNKNOWN_OP, f"unknown config write {write.op!r}")

    def _commit(self, pending: _Pending) -> list[Effect]:
        entry = pending.entry
        marked = self.store.commit(entry.key, entry.revision, entry.origin, entry.md5)
        committed = marked or self._held_committed(entry) or entry
        self.counters["committed"] += 1
        effects: list[Effect] = []
        if marked is not None:
            effects.append(Persist((marked,), mark=True))
        if not pending.answered:
            effects.append(ReplyEntry(pending.write.request, committed))
        effects.extend(ReplyEntry(r, committed) for r in pending.joined)
        peers = self.peers
        if pending.flagged:  # the others hear it on their answer (on_ack), if they need it
            heard = pending.acked | pending.refused
            unheard = {p for p in peers if p not in heard}
            if unheard:
                awaiting = self._awaiting
                if len(awaiting) >= AWAITING_MAX:  # the oldest: anti-entropy brings its flag
                    del awaiting[next(iter(awaiting))]
                awaiting[(entry.key, entry.revision, entry.origin, entry.md5)] = unheard
            peers = tuple(p for p in peers if p in heard and p not in pending.inferred)
        effects.extend(SendCommit(p, entry.key, entry.revision, entry.origin, entry.md5)
                       for p in peers)  # fmt: skip
        # learners get the committed version itself (they acknowledge nothing)
        if self.learners:
            pushed = committed if committed.committed else committed.as_committed()
            effects.extend(SendVersions(p, (pushed,)) for p in sorted(self.learners))
        return effects

    def _held_committed(self, entry: ConfigEntry) -> ConfigEntry | None:
        """The held copy of ``entry``'s version if it is marked committed already (a peer
        that marked it itself pushed it here before its ack came: anti-entropy)."""
        for e in self.store.entries(entry.key):
            if e.committed and e.same_version(entry):
                return e
        return None

    def awaiting_answers(self) -> int:
        """Flagged versions committed here whose other peers have not all answered (at
        most ``AWAITING_MAX``; stats ``commits_awaiting_answers``)."""
        return len(self._awaiting)

    def _late_commit(
        self, sender: str, key: ConfigKey, revision: int, origin: str, md5: str, marked: bool
    ) -> list[Effect]:
        """An answer that came after its flagged version's commit here: nothing if the
        peer marked it itself, else (it refused, or runs a version without ``saved``
        records) the commit message it would have had at the commit."""
        pkey = (key, revision, origin, md5)
        waiting = self._awaiting.get(pkey)
        if waiting is None or sender not in waiting:
            return []
        waiting.discard(sender)
        if not waiting:
            del self._awaiting[pkey]
        return [] if marked else [SendCommit(sender, key, revision, origin, md5)]

    def _unknown(self, pending: _Pending, why: str) -> list[Effect]:
        """A pending write that will not commit here: answered with the committed version
        of the same request id if another owner's is held (two owners applied one re-send
        during a membership change: one write, its winner is the answer), else UNAVAILABLE,
        outcome unknown."""
        asked = (*(() if pending.answered else (pending.write.request,)), *pending.joined)
        twin = self._twin(pending)
        if twin is not None:
            self.counters["deduplicated"] += 1
            return [ReplyEntry(r, twin) for r in asked]
        retry = (
            "re-send it with the same request_id (applied at most once)"
            if pending.write.request_id
            else "read the data id, then retry"
        )
        message = (
            f"{pending.entry.key} revision {pending.entry.revision}: {why}; the outcome is "
            f"unknown (the write may still appear): {retry}"
        )
        return [ReplyError(r, ErrorCode.UNAVAILABLE, message) for r in asked]

    def _twin(self, pending: _Pending) -> ConfigEntry | None:
        """The committed version another owner made of ``pending``'s request id, if held."""
        rid = pending.write.request_id
        twin = self.store.find_request(pending.entry.key, rid) if rid else None
        if twin is not None and twin.committed and not twin.same_version(pending.entry):
            return twin
        return None

    def _rival(self, entry: ConfigEntry) -> ConfigEntry | None:
        """Another version of ``entry``'s revision committed here (it won), if any."""
        return next((e for e in self.store.entries(entry.key)
                     if e.revision == entry.revision and e.committed
                     and not e.same_version(entry)), None)  # fmt: skip

    def _drive(self, pkey: tuple[ConfigKey, int, str, str], pending: _Pending, now: float) -> None:
        """Keep offering a version whose write timed out ("outcome unknown") to the peers
        that have not answered, and hold it unshown here until a majority acknowledges it
        (then committed and shown everywhere, as a write answered late) or it loses: a
        cut-off owner that took a write before it saw its peers go showed it 2.5 s later
        by the settle rule, and listeners there then saw the majority's version replace
        it at the same revision (review of 2026-12-07).  Not when a version of the same
        request id or of its revision is committed (it lost, or was made elsewhere)."""
        if self._twin(pending) is not None or self._rival(pending.entry) is not None:
            return
        if self.store.current(pending.entry.key) is None:
            return
        if len(self._driven) >= DRIVE_MAX:  # the oldest: the settle rule again
            old = next(iter(self._driven))
            self._drop(old, self._driven[old])
            self.counters["drive_given_up"] += 1
        pending.answered, pending.joined = True, []
        pending.deadline, pending.resend_at = math.inf, now + DRIVE_INTERVAL
        self._driven[pkey] = pending
        self.store.hold(pending.entry)
        self._next_drive = min(self._next_drive, pending.resend_at)
        self.counters["driven"] += 1

    def _drop(self, pkey: tuple[ConfigKey, int, str, str], pending: _Pending) -> None:
        """``pending`` is no longer waited for (answered, or driven no more)."""
        self._pending.pop(pkey, None)
        if self._driven.pop(pkey, None) is not None:
            self.store.release(pending.entry)

    def _drive_tick(self, now: float) -> list[Effect]:
        """The driven versions' records again, to the peers that have not answered; a
        version whose revision another committed version won, or that is gone, stops."""
        effects: list[Effect] = []
        next_at = math.inf
        for pkey, pending in list(self._driven.items()):
            entry = pending.entry
            if self._rival(entry) is not None or not self.store.holds(
                entry.key, entry.revision, entry.origin, entry.md5, False
            ):
                self._drop(pkey, pending)
                continue
            if now >= pending.resend_at:
                pending.resend_at = now + DRIVE_INTERVAL
                answered = pending.acked | pending.refused
                effects += self._records(entry, [p for p in self.peers if p not in answered],
                                         False)  # fmt: skip
            next_at = min(next_at, pending.resend_at)
        self._next_drive = next_at
        return effects

    def driven(self) -> int:
        """Versions answered "outcome unknown" still offered to peers (stats)."""
        return len(self._driven)

    def _late(self, write: ConfigWrite, now: float, arrived: float) -> ReplyError:
        """A write past its ``deadline`` (the client's wall clock) makes no version: it
        waited (in a stopped owner's socket, a forward, a catch-up) while its client gave
        up on it and may have written since; applied now, it would land on top of those
        writes (review19 F1; a registry write's rule, PROTOCOL.md 2.1 "Deadline").  One
        that arrived in time and waited here (for an owner that stopped answering, then
        left this node's view) does not blame the clocks (a fault review of 2026-12-07)."""
        self.counters["late_writes"] += 1
        assert write.deadline is not None
        past = now - self.clock_lead - write.deadline
        late = f"{past:.3g}s after its deadline (the client's clock)"
        if arrived - self.clock_lead <= write.deadline:
            message = (
                f"{write.key}: the write waited on node {self.node_id} for the data id's "
                f"responsible node until {late}: nothing was written (the client has sent it "
                "again or given up); its owner stopped answering (stopped, or cut off) "
                "until this node stopped counting it: retry (a call's default budget for "
                "config writes covers that)"
            )
        else:
            message = (
                f"{write.key}: the write reached node {self.node_id} {late}: nothing was "
                "written (the client has sent it again or given up); if every write is "
                "refused so, this node's clock is ahead of the client's: check the clocks "
                "(NTP)"
            )
        return ReplyError(write.request, ErrorCode.UNAVAILABLE, message, unwritten=True)

    def _replay(
        self, now: float, write: ConfigWrite, done: ConfigEntry, arrived: float
    ) -> list[Effect]:
        """A write whose request id made ``done`` already (a re-send after a timeout or a
        failover): answer with that version once a majority holds it, never apply again.
        Committed: at once.  Still waiting for its majority here: joins that wait.  Else
        (its owner died or timed out before the majority answered): its replication is
        driven again from here, like a new write of that very version."""
        if done.change.value != write.op:
            return [ReplyError(write.request, ErrorCode.INVALID_ARGUMENT,
                f"request_id {write.request_id!r} already made revision {done.revision} of "
                f"{done.key} (a {done.change.value}), not a {write.op}: use a new request id "
                "per write")]  # fmt: skip
        content = write.args.get("content")
        if write.op == "publish" and isinstance(content, str) and content != done.content:
            # a re-send is the same write, byte for byte: another content under the id is
            # another write, which "success" would lose silently (review of 2026-12-07)
            return [ReplyError(write.request, ErrorCode.INVALID_ARGUMENT,
                f"request_id {write.request_id!r} already made revision {done.revision} of "
                f"{done.key} with other content (md5 {done.md5}); a re-send carries the same "
                "content: use a new request id per write")]  # fmt: skip
        self.counters["deduplicated"] += 1
        if done.committed:
            return [ReplyEntry(write.request, done)]
        pending = self._pending.get(_pending_key(done))
        if pending is not None:
            pending.joined.append(write.request)
            return []
        rival = self._rival(done)
        if rival is not None:  # another version won its revision: this write never took effect
            return [ReplyError(write.request, ErrorCode.CONFLICT,
                f"request_id {write.request_id!r} made revision {done.revision} of {done.key}, "
                f"but a concurrent version (written by {rival.origin}) won that revision; "
                "nothing of this write is current: read the data id, then write again with a "
                "new request id")]  # fmt: skip
        mine = {self.node_id}
        ack = self.store.apply(done).ack  # held: whether this node acknowledges it
        pending = _Pending(write, done, arrived + self.ack_timeout, now + self.resend_interval,
                           mine if ack else set(), set() if ack else mine)  # fmt: skip
        if len(pending.acked) >= self.majority:
            return self._commit(pending)
        alone = not self._pending
        self._track(_pending_key(done), pending)
        pending.flagged = ack and self.majority == 2 and alone and self.records_after_save
        return self._records(done, self.peers, pending.flagged)

    def _merge(self, entries: Iterable[ConfigEntry]) -> list[Effect]:
        stored = [a.stored for a in map(self.store.apply, entries) if a.stored is not None]
        return [Persist(tuple(stored))] if stored else []


def _pending_key(entry: ConfigEntry) -> tuple[ConfigKey, int, str, str]:
    return (entry.key, entry.revision, entry.origin, entry.md5)


def _wanted(e: ConfigEntry, want: PushWant) -> bool:
    if want is None:
        return True
    if isinstance(want, frozenset):
        return e.revision in want
    return bool(_lacked([e], want))


def _digest_order(d: ConfigDigest) -> tuple[int, bool, str, str]:
    return (d.revision, d.committed, d.origin, d.md5)


def _lacked(kept: list[ConfigEntry], other: ConfigDigest) -> list[ConfigEntry]:
    """The versions a peer whose current version is ``other`` lacks for sure: those
    above its revision, and those at it that are not its current version (or are, with a
    committed flag it lacks)."""
    return [
        e
        for e in kept
        if e.revision > other.revision
        or (
            e.revision == other.revision
            and not (
                e.origin == other.origin and e.md5 == other.md5 and e.committed <= other.committed
            )
        )
    ]


__all__ = [
    "ConfigReplicator",
    "ConfigWrite",
    "Effect",
    "RevisionHash",
    "responsible_config_node",
]
