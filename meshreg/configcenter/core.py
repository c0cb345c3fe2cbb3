"""The configuration store: versioned configs, CAS, history, gray release, merge (sans-IO).

Theory of operation
-------------------
The store holds, per data id (:class:`~meshreg.configcenter.model.ConfigKey`), every
version it keeps (its history, in arrival order per revision) and the **current** one: the
highest of them by :func:`~meshreg.configcenter.model.merge_order`.  Time is an argument
(``now``, wall-clock seconds); nothing here reads a clock, a file or a socket.  The caller
(the replication layer, then the runtime) persists what a method returns.

* **Local writes** (``publish``, ``delete``, ``rollback``, ``publish_gray``, ``promote``,
  ``drop_gray``) run on the data id's responsible node.  Each validates its input, checks
  the optional compare-and-set (``if_revision``: 0 = the data id must not exist; any other
  number = it must be at exactly that revision; a mismatch is CONFLICT naming the current
  revision), then makes the next revision: ``current.revision + 1`` (1 for a new data id),
  or the write's ``revision_floor`` if that is higher (publish and delete: an import keeps
  the archive's revisions, docs/CONFIG.md "Import"), and stores it as current.  A refused
  write changes nothing (the check runs before any mutation) and is counted in
  ``stats()["rejected"]`` by reason.
* **A delete is a tombstone revision**: it replicates like any write and, since any older
  copy has a lower revision, a late copy never resurrects the data id.  Publishing again
  continues the revision sequence.
* **Replicated versions** (``apply``) are merged: stored in the history if not held yet,
  and current if they win the merge order.  The answer says whether this node
  *acknowledges* the version: it acknowledges the first version it stored at a revision
  and no other one at that revision, so two owners that both assigned revision r cannot
  both be acknowledged by a majority (two majorities share a node).  ``commit`` marks the
  version a majority acknowledged; the merge rule prefers it at its revision.
* **Reads** (``get``, ``resolve``, ``list``, ``history``) answer from memory.  A reader
  that carries the highest revision it has seen (``min_revision``) is refused with
  UNAVAILABLE rather than served an older one, so it never steps backwards.
* **Gray release**: an entry may carry a gray version with a rule (labels and/or client
  addresses).  ``resolve`` gives matching clients the gray content, everyone else the main
  one; ``promote`` makes the gray content main, ``drop_gray`` removes it.  Each of those
  is a revision of its own, so listeners and replication see it like any change.
* **Request ids**: a local write may carry the client's request id; the version keeps it
  (it replicates and is persisted with the version), and ``find_request`` finds the
  version a request id made while that version is in the history, so the replication
  layer answers a re-sent write with it instead of applying it twice.  It scans the data
  id's kept versions (at most ``keep_revisions`` and conflicts: ~5 us at 100), where an
  index cost ~190 bytes of memory a version (review85 F1).  Two versions
  of one revision with one request id (two owners during a membership change each
  applied the same re-send) are **one write**: the merge rule picks one as for any two
  versions, ``find_request`` returns that one, and the other is not counted as a
  conflict (it is not a separate write that lost).
* **Retention**: past revisions are kept while among the last ``keep_revisions`` and
  younger than ``keep_seconds``; the current entry always stays; a tombstone older than
  ``keep_seconds`` is purged with its data id.  ``prune(now)`` removes at most
  ``prune_step`` versions and scans at most ``prune_step`` data ids per call, resuming
  where it stopped (bounded work per tick); the data ids that went past
  ``keep_revisions`` since their last prune go first (a hot data id among 100,000 does
  not wait a pass over all of them); ``prune_behind`` says a call stopped at its budget
  with versions left to remove, so the caller prunes again soon: writes faster than one
  step per interval must not grow the history past its limits.

* **Quotas** (docs/CONFIG.md "Limits"): a local write that makes a data id live (a create,
  or a publish or rollback of a deleted one) is refused (RESOURCE_EXHAUSTED) when its
  namespace holds ``max_configs_per_namespace`` live data ids, or the node ``max_configs``;
  updates and deletes always go, and versions merged from peers are never refused for
  them (their owner decided: refusing would keep the nodes apart).  The counts are of the
  live current versions this node holds, kept as each current version changes, so every
  node counts the same once it holds the same versions.  Deleted data ids do not count:
  they are bounded by ``max_tombstones`` (beyond it ``prune`` purges the oldest first,
  before ``keep_seconds``), and every data id held by ``held_limit`` (the memory backstop).

Invariants: a data id's current entry has the largest revision it holds; at most
``MAX_VERSIONS_PER_REVISION`` versions per revision; at most ``held_limit`` data ids held;
``live_configs`` and ``live_by_namespace`` count the current versions that are not deletes.
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

import xxhash

from meshreg.configcenter.model import (
    DEFAULT_CONFIG_TYPE,
    DEFAULT_HISTORY_PAGE,
    DEFAULT_LIST_PAGE,
    MAX_GROUP_LEN,
    MAX_HISTORY_PAGE,
    MAX_LIST_PAGE,
    MAX_NAMESPACE_LEN,
    VERSION_BYTES,
    Change,
    ConfigDigest,
    ConfigEntry,
    ConfigKey,
    ConfigLimits,
    ConfigRejected,
    GrayRelease,
    check_config_key,
    check_config_name,
    check_content,
    check_description,
    check_gray_rule,
    check_modified_by,
    check_new_config_key,
    check_revision_floor,
    check_tags,
    check_type,
    config_key_bytes,
    content_md5,
    invalid,
    merge_order,
    pattern_regex,
)
from meshreg.core.sorted_keys import SortedKeys
from meshreg.errors import ErrorCode

MAX_VERSIONS_PER_REVISION = 8  # versions of one data id at one revision (owners racing)
STATS_NAMESPACES = 20  # the largest namespaces stats() lists (live data ids each)
HASH_PARTS_MAX = 131_072  # revisions whose part of the history hash text is kept
# (ConfigStore._hash_parts, ~250 bytes each: ~32 MB at most); more: made at each hash
AGE_SKEW_MARGIN = 30.0  # s; the age rules (keep_seconds) wait this much more: a member's
# clock may be this far off and stay one (core/distro MAX_CLOCK_SKEW)
SETTLE_SECONDS = 2.5  # s after it reached this node; a version no majority acknowledged
# is shown to reads and listeners only this late: its owner answers within its 2 s ack
# timeout (replication.DEFAULT_ACK_TIMEOUT), committed or "outcome unknown", and no copy
# reaches a node before its owner made it (``ConfigStore.settles_at``)


class Outcome(str, enum.Enum):
    """What ``apply`` did with a replicated version."""

    CURRENT = "current"  # stored and now the current version
    HISTORY = "history"  # stored, but another version is current
    DUPLICATE = "duplicate"  # already held (its committed flag may have been raised)
    REFUSED = "refused"  # not stored (too many versions at its revision, or no room)


@dataclass(frozen=True, slots=True)
class Applied:
    outcome: Outcome
    ack: bool  # this node acknowledges having persisted this version
    stored: ConfigEntry | None  # what the caller must persist (None: nothing changed)
    current: ConfigEntry | None  # the data id's current version after the merge


@dataclass(frozen=True, slots=True)
class ConfigView:
    """What one client gets for a data id: the main version or the gray one.  ``listed``:
    whether the gray rule lists the client's address (None: the rule names no hosts), told
    to the client so that a disk copy shared with clients of other labels on this host
    can be served to them as the node would (review18 F4)."""

    entry: ConfigEntry
    gray: bool
    listed: bool | None = None

    @property
    def content(self) -> str:
        return self.entry.gray.content if self.gray and self.entry.gray else self.entry.content

    @property
    def md5(self) -> str:
        return self.entry.gray.md5 if self.gray and self.entry.gray else self.entry.md5

    @property
    def type(self) -> str:
        return self.entry.gray.type if self.gray and self.entry.gray else self.entry.type


@dataclass(frozen=True, slots=True)
class ListPage:
    items: list[ConfigEntry]
    next_cursor: str | None  # pass it back for the next page; None: no more


@dataclass(frozen=True, slots=True)
class HistoryPage:
    items: list[ConfigEntry]  # newest first; several versions of one revision: winner first
    next_cursor: int | None  # the revision to continue below; None: no more


def list_cursor(key: ConfigKey) -> str:
    """Opaque to clients: ``group/data_id`` of the last data id examined (``/`` is outside
    the name alphabet, so it splits unambiguously)."""
    return f"{key.group}/{key.data_id}"


# content per history page at most (a page stops at the revision that reaches it; at least
# one): what one request makes the node build, and hold until its turn's commit
HISTORY_PAGE_BYTES = 4 * 1024 * 1024


class ConfigStore:
    """Every config this node holds, with history; sans-IO (see the module docstring)."""

    def __init__(self, node_id: str, limits: ConfigLimits | None = None) -> None:
        self.node_id = node_id
        self.limits = limits or ConfigLimits()
        self._current: dict[ConfigKey, ConfigEntry] = {}
        # per data id: revision -> versions in arrival order (the first is the one acked)
        self._history: dict[ConfigKey, dict[int, list[ConfigEntry]]] = {}
        self._keys = SortedKeys()  # every ConfigKey held, for paged lists
        # (a write's request id is looked up in its data id's versions here, ``find_request``:
        # an index of its own cost ~190 bytes a version, review85 F1)
        self._prune_after: ConfigKey | None = None  # where the last prune scan stopped
        self.prune_behind = False  # the last prune stopped at its budget: more to remove
        # s this node's wall clock runs ahead of the cluster's (>= 0; the runtime's,
        # core/distro): a version is settled ``SETTLE_SECONDS`` after its ``modified`` by
        # the cluster's clock, not ours (review42 F2: a node 10 s ahead showed a version no
        # majority had acknowledged 0.01 s after it was written)
        self.clock_lead = 0.0
        # the time of the input being handled (the runtime's clock; None: not given): a
        # version stored from then on settles ``SETTLE_SECONDS`` after it reached this
        # node, by this node's clock, whatever its writer's clock said (review44 F1: a
        # writer 10 s behind stamped ``modified`` in the past, and every peer showed its
        # unacknowledged versions at once; F2: one ahead made them wait 2.5 s + its lead)
        self.now: float | None = None
        # (key, revision, origin, md5) -> when that version, not acknowledged yet, settles
        # here: versions stored with a known time only, until acknowledged or removed
        self._settle_at: dict[tuple[ConfigKey, int, str, str], float] = {}
        # versions this node wrote whose write ended "outcome unknown" and that it still
        # offers to its peers (replication ``_driven``): never settled by time here, as
        # this node knows no majority acknowledged them (yet): a cut-off owner showed a
        # version it wrote as the cut began, that the majority then replaced at its
        # revision (review of 2026-12-07: two contents at one revision for a listener)
        self._held: set[tuple[ConfigKey, int, str, str]] = set()
        # data ids that went past keep_revisions since their last prune (an ordered set):
        # pruned first, so a hot data id among many waits for no pass over all of them
        self._over: dict[ConfigKey, None] = {}
        # the highest revision of the purged tombstones, per bucket of data ids
        # (``floor_bucket``): a data id created again after its tombstone was purged goes
        # on above it, never back to 1 (``_commit_local``); bounded: FLOOR_BUCKETS ints
        self.purged_floors: dict[int, int] = {}
        self.floors_changed = False  # set by a purge; the persistence layer clears it
        self._age_cutoff: float | None = None  # the last prune's age cutoff (s, wall clock)
        self._oldest: dict[ConfigKey, float] = {}  # per data id: <= its oldest `modified`
        # per data id: (history hash, the age cutoff it excluded versions by, or None)
        self._hashes: dict[ConfigKey, tuple[int, float | None]] = {}
        # per data id: revision -> (its versions when last hashed, the repr of their
        # sorted items): history_hash re-uses a revision's part while its versions are
        # the same objects (a digest round hashes every data id changed since the last;
        # repr was 60% of it).  Rebuilt at each hash, so it holds the revisions kept;
        # at most HASH_PARTS_MAX revisions over all data ids (more: not kept)
        self._hash_parts: dict[ConfigKey, dict[int, tuple[tuple[ConfigEntry, ...], str]]] = {}
        self.hash_parts = 0  # revisions in _hash_parts
        self.rejected: dict[str, int] = {}
        self.conflicts = 0  # versions of other writes stored at a revision already held
        self.history_entries = 0
        self.content_bytes = 0  # characters of content over every version held
        # what the byte quotas count: content plus VERSION_BYTES per version held, in all
        # and per namespace (review85 F1: content alone left a node's memory unbounded)
        self.held_bytes = 0
        self.bytes_by_namespace: dict[str, int] = {}
        self.namespace_room: dict[str, int] = {}  # raised per-namespace limits (room_for_held)
        # live (not deleted) current versions, in all and per namespace (the quotas);
        # kept by _set_current, so O(1) per change and per check
        self.live_configs = 0
        self.live_by_namespace: dict[str, int] = {}
        # the data ids whose current version is a delete, in the order they became one
        # here (the oldest first: purged first beyond max_tombstones)
        self._tombstones: dict[ConfigKey, None] = {}
        # data ids this node purged (a tombstone beyond max_tombstones, or by age) -> the
        # revision of the purged tombstone, the PURGED_KEPT most recent: a version at or
        # below it is not taken back from a peer that has not purged the data id yet
        # (review44's five-node test under load, 1 run in 3 on 8cb245a too: two nodes
        # purged A, a third purged A, got it back from one of them a moment later as its
        # newest tombstone, and purged B instead: the nodes held different data ids)
        self._purged: OrderedDict[ConfigKey, int] = OrderedDict()
        self.tombstones_purged_early = 0  # purged beyond max_tombstones, before keep_seconds

    # -- reads -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._current)

    def current(self, key: ConfigKey) -> ConfigEntry | None:
        """The current version (a tombstone included), or None."""
        return self._current.get(key)

    def live_by_namespace_where(self, readable: Callable[[str, str], bool]) -> dict[str, int]:
        """``live_by_namespace`` counting only the data ids of the (namespace, group)s
        ``readable`` accepts: what a client the ACL confines may be told (review30 F2).
        O(data ids): for a rate-limited read."""
        counts: dict[str, int] = {}
        seen: dict[tuple[str, str], bool] = {}
        for key, entry in self._current.items():
            if entry.deleted:
                continue
            where = (key.namespace, key.group)
            ok = seen.get(where)
            if ok is None:
                ok = seen[where] = readable(*where)
            if ok:
                counts[key.namespace] = counts.get(key.namespace, 0) + 1
        return counts

    def shown(self, key: ConfigKey, now: float | None) -> ConfigEntry | None:
        """The version reads and listeners get at ``now``: the current one if a majority
        acknowledged it (``committed``) or it was written ``SETTLE_SECONDS`` ago (its
        write timed out: "outcome unknown", yet it stays), else the newest version below
        it that is (at its own revision first: a version shown before another one won
        that revision stays shown until the winner settles, not the revision below; the
        fault simulation's seed 463: a node cut off alone showed its own r10 by the settle
        rule, then, healed, r9 while the majority's r10 waited for its commit message);
        ``now`` None: the current one.  A record may reach a peer before its owner saved
        it (replication.py), so a version not yet acknowledged may still be lost: it is
        not shown until then."""
        entry = self._current.get(key)
        if entry is None or now is None:
            return entry
        if self._settled(entry, now):
            return entry
        by_rev = self._history.get(key, {})
        for rev in (entry.revision, entry.revision - 1):  # the usual answer: no sort
            held = by_rev.get(rev)
            if held:
                settled = [e for e in held if self._settled(e, now)]
                if settled:
                    return max(settled, key=merge_order)
        for rev in sorted((r for r in by_rev if r < entry.revision - 1), reverse=True):
            settled = [e for e in by_rev[rev] if self._settled(e, now)]
            if settled:
                return max(settled, key=merge_order)
        return None

    def settles_at(self, entry: ConfigEntry) -> float:
        """When a version no majority acknowledged is shown here: ``SETTLE_SECONDS`` after
        it reached this node (stored while ``now`` was given: the runtime gives its start
        time while it loads its disk); else (a store used without a time) after its
        ``modified``, judged by the cluster's clock (``clock_lead``: a node ahead waits
        for it, review42 F2)."""
        ident = (entry.key, entry.revision, entry.origin, entry.md5)
        if self._held and ident in self._held:
            return math.inf
        at = self._settle_at.get(ident)
        if at is not None:
            return at
        return entry.modified + SETTLE_SECONDS + self.clock_lead

    def _settled(self, entry: ConfigEntry, now: float) -> bool:
        return entry.committed or now >= self.settles_at(entry)

    def pending(self, entry: ConfigEntry, now: float) -> bool:
        """Whether ``entry`` is not shown here at ``now``: no majority acknowledged it yet
        and the settle rule does not show it (or its writer holds it: ``hold``).  History
        marks such versions: a page listed them as if they were in effect."""
        return not self._settled(entry, now)

    def hold(self, entry: ConfigEntry) -> None:
        """Show ``entry`` (written here, "outcome unknown") only once committed: this node
        is still asking its peers for it (``ConfigReplicator``'s drive)."""
        self._held.add((entry.key, entry.revision, entry.origin, entry.md5))

    def release(self, entry: ConfigEntry) -> None:
        """The drive of ``entry`` ended (committed, lost, given up): the usual rule again."""
        self._held.discard((entry.key, entry.revision, entry.origin, entry.md5))

    def held(self) -> int:
        return len(self._held)

    def holds(self, key: ConfigKey, revision: int, origin: str, md5: str, committed: bool) -> bool:
        """Whether this very version (revision, origin, md5) is held here, with its
        committed flag if ``committed``."""
        for v in self._history.get(key, {}).get(revision, ()):
            if v.origin == origin and v.md5 == md5 and (v.committed or not committed):
                return True
        return False

    def arrival_settle(self, entry: ConfigEntry) -> float:
        """When ``entry``, unacknowledged, is shown here by this node's own clock (2.5 s
        after it arrived); 0.0: not known (acknowledged, or stored without a time).  The
        persistence layer keeps it with the version (sqlite_store ``settles_at``)."""
        return self._settle_at.get((entry.key, entry.revision, entry.origin, entry.md5), 0.0)

    def restore_settle(self, entry: ConfigEntry, at: float) -> None:
        """At a load (``now`` = the start): ``entry``, just loaded unacknowledged, arrived
        before the restart and is shown from ``at`` (its ``arrival_settle`` then), not
        2.5 s after the start: a version this node showed before it stopped is shown at
        once again (a reader would step back a revision), and one that arrived less than
        2.5 s before is shown when it would have been.  Never later than the start's
        rule (a clock set back since)."""
        ident = (entry.key, entry.revision, entry.origin, entry.md5)
        held = self._settle_at.get(ident)
        if held is not None and at < held:
            self._settle_at[ident] = at

    def settle_loaded(self, start: float) -> None:
        """After a start's load (stored with ``now`` = the start): a version written long
        enough before the start that its owner decided it even if the writer's clock was
        behind by all a member may be (``modified`` + SETTLE_SECONDS + AGE_SKEW_MARGIN at or
        before the start) is settled as it was before the restart, not hidden again for
        2.5 s (a reader would see an older version than before it)."""
        for ident in [i for i in self._settle_at if self._old_at(i, start)]:
            del self._settle_at[ident]

    def _old_at(self, ident: tuple[ConfigKey, int, str, str], start: float) -> bool:
        key, revision, origin, md5 = ident
        versions = self._history.get(key, {}).get(revision, ())
        return any(
            v.origin == origin and v.md5 == md5
            and v.modified + SETTLE_SECONDS + AGE_SKEW_MARGIN <= start
            for v in versions
        )  # fmt: skip

    def get(
        self,
        key: ConfigKey,
        revision: int | None = None,
        min_revision: int = 0,
        now: float | None = None,
    ) -> ConfigEntry:
        """The live version shown at ``now`` (``shown``; or the version at ``revision``);
        NOT_FOUND if none."""
        entry = self.shown(key, now)
        self._check_caught_up(key, entry, min_revision)
        if revision is not None:
            versions = self._history.get(key, {}).get(revision)
            if not versions:
                raise self._reject(
                    ErrorCode.NOT_FOUND,
                    f"{key}: no revision {revision} here ("
                    + (
                        f"current {entry.revision}"
                        if entry
                        else "none shown yet"
                        if key in self._current
                        else "the data id does not exist"
                    )
                    + f"; history keeps the last {self.limits.keep_revisions} revisions)",
                    "not_found",
                )
            found = max(versions, key=merge_order)
            if found.deleted:
                raise self._reject(
                    ErrorCode.NOT_FOUND, f"{key}: revision {revision} is a delete", "not_found"
                )
            return found
        if entry is None or entry.deleted:
            where = f" (deleted at revision {entry.revision})" if entry else ""
            exc = self._reject(ErrorCode.NOT_FOUND, f"{key} does not exist{where}", "not_found")
            exc.revision = entry.revision if entry else None  # a floor for the client's reads
            raise exc
        return entry

    def resolve(
        self,
        key: ConfigKey,
        client_labels: Mapping[str, str],
        client_address: str | None,
        min_revision: int = 0,
        now: float | None = None,
    ) -> ConfigView:
        """The version this client gets: gray if the entry's gray rule selects it."""
        entry = self.get(key, min_revision=min_revision, now=now)
        if entry.gray is None:
            return ConfigView(entry, False)
        rule = entry.gray.rule
        listed = rule.lists(client_address) if rule.addresses else None
        return ConfigView(entry, listed is True or rule.matches(client_labels, None), listed)

    def list_page(
        self,
        namespace: str,
        group: str | None = None,
        pattern: str | None = None,
        page_size: int = DEFAULT_LIST_PAGE,
        cursor: str | None = None,
        deleted: bool = False,
    ) -> ListPage:
        """One page of the live data ids of a namespace (or one group), sorted by (group,
        data id), filtered by a ``*``/``?`` pattern on the data id (``deleted``: the
        deleted ones, tombstones kept, too).  At most 10 pages' worth of data ids are
        examined per call, so a sparse pattern returns a short page with a cursor instead
        of scanning everything."""
        check_config_name(namespace, "namespace", MAX_NAMESPACE_LEN)
        if group is not None:
            check_config_name(group, "group", MAX_GROUP_LEN)
        regex = pattern_regex(pattern)
        if type(page_size) is not int or not 1 <= page_size <= MAX_LIST_PAGE:
            raise invalid(f"field 'page_size' must be an integer in 1..{MAX_LIST_PAGE}", "bad_page")
        start = ConfigKey(namespace, group or "", "")
        inclusive = True
        if cursor is not None:
            g, sep, d = cursor.partition("/") if type(cursor) is str else ("", "", "")
            if not sep or not g or not d:
                raise invalid(
                    "field 'cursor' is not a cursor from a list reply: pass 'next_cursor' "
                    "back unchanged, or leave it out for the first page",
                    "bad_cursor",
                )
            start, inclusive = ConfigKey(namespace, g, d), False
        items: list[ConfigEntry] = []
        budget = page_size * 10
        last: ConfigKey | None = None
        for key in self._keys.after(start, inclusive):
            if key.namespace != namespace or (group is not None and key.group != group):
                return ListPage(items, None)
            if budget == 0 or len(items) == page_size:
                return ListPage(items, list_cursor(last) if last else None)
            budget -= 1
            last = key
            entry = self._current[key]
            if (deleted or not entry.deleted) and regex.match(key.data_id):
                items.append(entry)
        return ListPage(items, None)

    def history(
        self, key: ConfigKey, page_size: int = DEFAULT_HISTORY_PAGE, before: int | None = None
    ) -> HistoryPage:
        """The versions of a data id, newest revision first (at one revision: the merge
        winner first), below revision ``before`` if given: at most ``page_size`` revisions'
        worth, and at most ``HISTORY_PAGE_BYTES`` of content (at least one revision's):
        a page of 200 versions at the content cap was 200 MiB to build and hold
        (review14a F1); the cursor gives the rest."""
        if type(page_size) is not int or not 1 <= page_size <= MAX_HISTORY_PAGE:
            raise invalid(
                f"field 'page_size' must be an integer in 1..{MAX_HISTORY_PAGE}", "bad_page"
            )
        revisions = sorted(self._history.get(key, {}), reverse=True)
        if before is not None:
            revisions = [r for r in revisions if r < before]
        items: list[ConfigEntry] = []
        by_rev = self._history.get(key, {})
        size = 0
        for i, rev in enumerate(revisions):
            if len(items) >= page_size or (items and size >= HISTORY_PAGE_BYTES):
                return HistoryPage(items, revisions[i - 1])
            for v in sorted(by_rev[rev], key=merge_order, reverse=True):
                if not self.attempt_superseded(v):
                    items.append(v)
                    size += content_size(v)
        return HistoryPage(items, None)

    def find_request(self, key: ConfigKey, request_id: str) -> ConfigEntry | None:
        """The version a write with this request id made, while it is in the data id's
        history (the dedup window is the retention: ``keep_revisions``, ``keep_seconds``);
        None if none is held (or ``request_id`` is empty).  Several held (two owners
        applied one re-send at one revision, or a first attempt only a minority held sits
        below the version its re-send made): **one write**, and this is it: a committed
        one first, then the highest in merge order (revision first).  A function of the
        versions held, so every node that holds the same ones names the same."""
        by_rev = self._history.get(key) if request_id else None
        if not by_rev:
            return None
        # a scan, not an index: at most the data id's kept versions (keep_revisions, 100 by
        # default: a few microseconds), where an index cost ~190 bytes a version (review85)
        found = [v for vs in by_rev.values() for v in vs if v.request_id == request_id]
        return max(found, key=_request_order) if found else None

    def attempt_superseded(self, entry: ConfigEntry) -> bool:
        """``entry`` is an attempt of a write that took effect as another, committed
        version at another revision (its request id's ``find_request``): history leaves
        it out, so one request id shows as one write."""
        if not entry.request_id or entry.committed:
            return False
        chosen = self.find_request(entry.key, entry.request_id)
        return chosen is not None and chosen.committed and chosen.revision != entry.revision

    def entries(self, key: ConfigKey) -> list[ConfigEntry]:
        """Every version held of a data id, oldest revision first, arrival order within."""
        by_rev = self._history.get(key, {})
        return [e for rev in sorted(by_rev) for e in by_rev[rev]]

    def keys(self) -> Iterator[ConfigKey]:
        return iter(self._keys)

    def keys_after(self, after: ConfigKey | None) -> Iterator[ConfigKey]:
        """The data ids above ``after`` (None: all), in key order."""
        return iter(self._keys) if after is None else self._keys.after(after)

    def digests(self, keys: Iterable[ConfigKey] | None = None) -> list[ConfigDigest]:
        """Anti-entropy digests of current entries, with their history hash."""
        wanted = self._keys if keys is None else keys
        return [self.digest(k) for k in wanted if k in self._current]

    def digest(self, key: ConfigKey) -> ConfigDigest:
        return ConfigDigest.of(self._current[key], self.history_hash(key))

    def kept_versions(self, key: ConfigKey) -> list[ConfigEntry]:
        """The versions a peer should hold too: those within the revision window of the
        retention (``keep_revisions`` below the current one) and not older than this
        store's last age cutoff (``prune``)."""
        current = self._current.get(key)
        if current is None:
            return []
        low = (
            0
            if self.limits.keep_revisions is None
            else (current.revision - self.limits.keep_revisions)
        )
        cutoff = self._age_cutoff
        return [
            e
            for e in self.entries(key)
            if e.revision > low and (cutoff is None or e.modified >= cutoff or e is current)
        ]

    def revision_hashes(self, key: ConfigKey) -> dict[int, int]:
        """Each kept revision of a data id -> a 64-bit hash of the versions held at it
        (identities and committed flags): what two nodes whose history hashes differ
        compare, revision by revision (anti-entropy's ``SendHave``)."""
        by_rev: dict[int, list[str]] = {}
        for e in self.kept_versions(key):
            gray = e.gray.md5 if e.gray else ""
            by_rev.setdefault(e.revision, []).append(
                f"{e.origin} {e.md5} {gray} {e.deleted:d}{e.committed:d}"
            )
        return {
            r: int(xxhash.xxh64_intdigest("|".join(sorted(v)).encode())) for r, v in by_rev.items()
        }

    def history_hash(self, key: ConfigKey) -> int:
        """A 64-bit hash of the kept versions' identities (and committed flags): equal on
        two nodes that keep the same versions, whatever order they arrived in.  Kept until
        the data id's versions change, or the age cutoff moves past one of them (a digest
        round asks it of every data id: most did not change).

        The hash is of ``repr`` of the sorted items (revision, origin, md5, gray md5,
        deleted, committed) of the kept versions: that text is built from each kept
        revision's part (its items, sorted), re-used from the last hash of the data id
        while the revision holds the same version objects, so a data id that gained a
        revision costs one repr, not one per version (the same text, the same hash)."""
        cutoff = self._age_cutoff
        uncut = cutoff is None or self._oldest.get(key, 0.0) >= cutoff  # no version too old
        cached = self._cached_hash(key, uncut)
        if cached is not None:
            return cached
        held = len(self._history.get(key, ()))  # revisions (a data id not held: none)
        if uncut and (  # every version young enough: the kept ones are the window's
            key in self._hash_parts or self.hash_parts + held <= HASH_PARTS_MAX
        ):
            text = self._kept_text(key)
        else:  # (a data id's first parts cost more than this: none beyond the bound)
            text = repr(sorted(_hash_item(e) for e in self.kept_versions(key)))
        value = int(xxhash.xxh64_intdigest(text.encode())) or 1
        self._hashes[key] = (value, None if uncut else cutoff)
        return value

    def _cached_hash(self, key: ConfigKey, uncut: bool) -> int | None:
        """The data id's last history hash if it still holds (``uncut``: no version of it
        is older than the age cutoff), else None."""
        cached = self._hashes.get(key)
        if cached is not None and (cached[1] == self._age_cutoff or (cached[1] is None and uncut)):
            return cached[0]
        return None

    def hash_work(self, key: ConfigKey) -> int:
        """The revisions ``history_hash(key)`` would go through now: 0 while its last hash
        holds (most data ids of a digest round), else every revision held of it (the
        measure a digest step's work is bounded by; ``replication.DIGEST_STEP_HASHES``)."""
        cutoff = self._age_cutoff
        uncut = cutoff is None or self._oldest.get(key, 0.0) >= cutoff
        if self._cached_hash(key, uncut) is not None:
            return 0
        return len(self._history.get(key, ()))

    def _kept_text(self, key: ConfigKey) -> str:
        """``repr(sorted(items of kept_versions(key)))`` when no version is older than the
        age cutoff: the revisions above the window's low end, each one's part re-used
        while its versions are the same objects (``_hash_parts``)."""
        current = self._current.get(key)
        if current is None:
            return "[]"
        keep = self.limits.keep_revisions
        low = 0 if keep is None else current.revision - keep
        by_rev = self._history[key]
        old = self._hash_parts.get(key, {})
        get = old.get
        parts: dict[int, tuple[tuple[ConfigEntry, ...], str]] = {}
        for rev in sorted(by_rev):
            if rev <= low:
                continue
            versions = by_rev[rev]
            part = get(rev)
            if part is not None:  # the same version objects: the same text
                held = part[0]
                if len(versions) == 1:  # (the usual revision: one version)
                    if len(held) == 1 and held[0] is versions[0]:
                        parts[rev] = part
                        continue
                elif len(held) == len(versions) and all(
                    a is b for a, b in zip(held, versions, strict=True)
                ):
                    parts[rev] = part
                    continue
            if len(versions) == 1:
                parts[rev] = ((versions[0],), repr(_hash_item(versions[0])))
            else:
                items = sorted(_hash_item(e) for e in versions)
                parts[rev] = (tuple(versions), ", ".join(map(repr, items)))
        count = self.hash_parts - len(old) + len(parts)
        if count <= HASH_PARTS_MAX:  # kept for the next hash
            self._hash_parts[key] = parts
            self.hash_parts = count
        elif old:  # over the bound: this data id's parts are not kept (made each time)
            del self._hash_parts[key]
            self.hash_parts -= len(old)
        return "[" + ", ".join(text for _, text in parts.values()) + "]"

    def stats(self) -> dict[str, Any]:
        limits = self.limits
        return {
            "configs": self.live_configs,
            "tombstones": len(self._tombstones),
            "tombstones_purged_early": self.tombstones_purged_early,
            "purged_remembered": len(self._purged),
            "namespaces": len(self.live_by_namespace),
            # the largest namespaces, live data ids each (what max_configs_per_namespace
            # limits): at most STATS_NAMESPACES of them
            "configs_by_namespace": self.namespace_counts(STATS_NAMESPACES),
            "limits": {
                "max_configs": limits.max_configs,
                "max_configs_per_namespace": limits.max_configs_per_namespace,
                "max_tombstones": limits.max_tombstones,
                "max_total_bytes": limits.max_total_bytes,
                "max_bytes_per_namespace": limits.max_bytes_per_namespace,
            },
            "history_entries": self.history_entries,
            "content_chars": self.content_bytes,
            "held_bytes": self.held_bytes,
            "conflicts": self.conflicts,
            "hash_parts": self.hash_parts,
            "rejected": dict(self.rejected),
        }

    def namespace_counts(self, top: int | None = None) -> dict[str, int]:
        """Live data ids per namespace, the largest first (``top``: that many at most)."""
        ranked = sorted(self.live_by_namespace.items(), key=lambda kv: (-kv[1], kv[0]))
        return dict(ranked if top is None else ranked[:top])

    # -- local writes (the responsible node) ---------------------------------------------
    def publish(
        self,
        key: ConfigKey,
        content: Any,
        type: Any = None,
        *,
        now: float,
        by: str = "",
        description: Any = None,
        tags: Any = None,
        if_revision: int | None = None,
        request_id: str = "",
        revision_floor: int = 0,
    ) -> ConfigEntry:
        """Create or replace a data id's main content (its gray version, if any, stays).
        ``type`` None: the type it has (text if it does not exist).  ``revision_floor``:
        the revision made is at least this (an import keeps the archive's revisions, so
        a client that saw them in the old cluster is not left behind; 0: none)."""
        try:
            floor = check_revision_floor(revision_floor)
            key = check_new_config_key(check_config_key(*key))
            text = check_content(content, self.limits.max_content_bytes)
            kind = None if type is None else check_type(type)
            desc = check_description(description)
            tag_pairs = check_tags(tags)
            by = check_modified_by(by)
        except ConfigRejected as exc:
            raise self._count(exc) from None
        prev = self._check_write(key, if_revision, now)
        if kind is None:
            kind = prev.type if prev is not None and not prev.deleted else DEFAULT_CONFIG_TYPE
        return self._commit_local(
            key,
            prev,
            now=now,
            by=by,
            content=text,
            type=kind,
            description=desc,
            tags=tag_pairs,
            change=Change.PUBLISH,
            request_id=request_id,
            floor=floor,
        )

    def delete(
        self,
        key: ConfigKey,
        *,
        now: float,
        by: str = "",
        if_revision: int | None = None,
        request_id: str = "",
        revision_floor: int = 0,
    ) -> ConfigEntry:
        """A tombstone revision.  Deleting what does not exist is NOT_FOUND (with
        ``if_revision`` 0 it is a no-op match, still NOT_FOUND: there is nothing to delete),
        unless ``revision_floor`` is above the revision it holds (its tombstone's, its
        purged floor, or 0): then the tombstone is written at the floor, so a data id
        deleted at an import's source keeps its revision here and a later create goes on
        above it (a client that saw the delete is not left behind).  ``revision_floor``
        otherwise as ``publish``'s."""
        try:
            floor = check_revision_floor(revision_floor)
            by = check_modified_by(by)
        except ConfigRejected as exc:
            raise self._count(exc) from None
        prev = self._check_write(key, if_revision, now)
        if prev is None or prev.deleted:
            held = prev.revision if prev is not None else self.purged_floor(key)
            if floor <= held:
                raise self._reject(ErrorCode.NOT_FOUND, f"{key} does not exist", "not_found")
            if prev is None:
                try:
                    check_new_config_key(key)
                except ConfigRejected as exc:
                    raise self._count(exc) from None
        return self._commit_local(
            key,
            prev,
            now=now,
            by=by,
            content="",
            type=prev.type if prev is not None else DEFAULT_CONFIG_TYPE,
            description="",
            tags=(),
            gray=None,
            change=Change.DELETE,
            deleted=True,
            request_id=request_id,
            floor=floor,
        )

    def rollback(
        self,
        key: ConfigKey,
        revision: int,
        *,
        now: float,
        by: str = "",
        if_revision: int | None = None,
        request_id: str = "",
    ) -> ConfigEntry:
        """A new revision with the main content of ``revision`` (which must be in the
        history and not a delete); the gray version, if any, stays."""
        try:
            by = check_modified_by(by)
            if type(revision) is not int or revision < 1:
                raise invalid("field 'revision' must be a positive integer", "bad_revision")
        except ConfigRejected as exc:
            raise self._count(exc) from None
        prev = self._check_write(key, if_revision, now)
        target = self.get(key, revision)  # NOT_FOUND if pruned or a delete (counted)
        return self._commit_local(
            key,
            prev,
            now=now,
            by=by,
            content=target.content,
            type=target.type,
            description=target.description,
            tags=target.tags,
            change=Change.ROLLBACK,
            request_id=request_id,
        )

    def publish_gray(
        self,
        key: ConfigKey,
        content: Any,
        *,
        labels: Any = None,
        clients: Any = None,
        type: Any = None,
        now: float,
        by: str = "",
        if_revision: int | None = None,
        request_id: str = "",
        revision_floor: int = 0,
    ) -> ConfigEntry:
        """Set (or replace) the gray version of an existing data id (``revision_floor``
        as ``publish``'s: an import replays a gray step at its source's revision)."""
        try:
            floor = check_revision_floor(revision_floor)
            text = check_content(content, self.limits.max_content_bytes)
            rule = check_gray_rule(labels, clients)
            by = check_modified_by(by)
            kind = None if type is None else check_type(type)
        except ConfigRejected as exc:
            raise self._count(exc) from None
        prev = self._existing(key, if_revision, "publish a gray version of", now)
        gray = GrayRelease(text, kind or prev.type, content_md5(text), rule)
        return self._derive(prev, now, by, floor, gray=gray, change=Change.GRAY,
                            request_id=request_id)  # fmt: skip

    def promote(
        self,
        key: ConfigKey,
        *,
        now: float,
        by: str = "",
        if_revision: int | None = None,
        request_id: str = "",
        revision_floor: int = 0,
    ) -> ConfigEntry:
        """The gray version becomes the main one (for everyone)."""
        floor = self._floor_checked(revision_floor)
        prev, g = self._with_gray(key, by, if_revision, "promote the gray version of", now)
        return self._derive(
            prev, now, by, floor, content=g.content, type=g.type, md5=g.md5, gray=None,
            change=Change.PROMOTE, request_id=request_id,
        )  # fmt: skip

    def drop_gray(
        self,
        key: ConfigKey,
        *,
        now: float,
        by: str = "",
        if_revision: int | None = None,
        request_id: str = "",
        revision_floor: int = 0,
    ) -> ConfigEntry:
        """Remove the gray version; every client gets the main one again."""
        floor = self._floor_checked(revision_floor)
        prev, _ = self._with_gray(key, by, if_revision, "drop the gray version of", now)
        return self._derive(
            prev, now, by, floor, gray=None, change=Change.GRAY_DROP, request_id=request_id
        )

    def _floor_checked(self, revision_floor: int) -> int:
        try:
            return check_revision_floor(revision_floor)
        except ConfigRejected as exc:
            raise self._count(exc) from None

    def _with_gray(
        self, key: ConfigKey, by: str, if_revision: int | None, what: str, now: float
    ) -> tuple[ConfigEntry, GrayRelease]:
        """The current version and its gray one, after the checks (refused: counted)."""
        self._checked_by(by)
        prev = self._existing(key, if_revision, what, now)
        if prev.gray is None:
            raise self._reject(
                ErrorCode.NOT_FOUND, f"cannot {what} {key}: it has no gray version", "no_gray"
            )
        return prev, prev.gray

    # -- replication ---------------------------------------------------------------------
    def apply(self, entry: ConfigEntry) -> Applied:
        """Merge a version a peer sent (or the persistence layer loaded)."""
        key = entry.key
        by_rev = self._history.get(key)
        held = by_rev.get(entry.revision, []) if by_rev else []
        for i, version in enumerate(held):
            if version.same_version(entry):
                stored = None
                if entry.committed and not version.committed:
                    stored = self._replace_version(key, i, version.as_committed())
                return Applied(Outcome.DUPLICATE, i == 0, stored, self._current.get(key))
        if by_rev is None and entry.revision <= self._purged.get(key, 0):
            # purged here (``_purge``): a peer that has not purged it yet sent it
            self.rejected["replica_purged"] = self.rejected.get("replica_purged", 0) + 1
            return Applied(Outcome.REFUSED, False, None, None)
        if len(held) >= MAX_VERSIONS_PER_REVISION or (
            by_rev is None and len(self._history) >= self.limits.held_limit
        ):  # (the memory backstop only: the quotas are the owner's, never checked here)
            self.rejected["replica_refused"] = self.rejected.get("replica_refused", 0) + 1
            return Applied(Outcome.REFUSED, False, None, self._current.get(key))
        cur = self._current.get(key)
        cutoff = self._age_cutoff
        if (
            cutoff is not None
            and entry.modified < cutoff
            and cur is not None
            and merge_order(entry) < merge_order(cur)
        ):  # pruned by age here already: a peer that has not pruned yet sent it
            return Applied(Outcome.REFUSED, False, None, cur)
        if held and not _twin(entry, held):  # two writes at one revision: the loser stays
            self.conflicts += 1  # (two versions of one request id are one write: not counted)
        self._store(entry, self.now)  # (appends to ``held``)
        current = self._current[key]
        outcome = Outcome.CURRENT if current is entry else Outcome.HISTORY
        return Applied(outcome, not held, entry, current)

    def commit(self, key: ConfigKey, revision: int, origin: str, md5: str) -> ConfigEntry | None:
        """Mark a held version as acknowledged by a majority; the updated version (for the
        caller to persist) or None if it is not held or already marked."""
        for i, version in enumerate(self._history.get(key, {}).get(revision, [])):
            if version.identity == (origin, md5):
                if version.committed:
                    return None
                return self._replace_version(key, i, version.as_committed())
        return None

    # -- retention -----------------------------------------------------------------------
    @property
    def tombstones_over(self) -> int:
        """Deleted data ids held beyond ``max_tombstones`` (the next prunes purge them)."""
        return max(0, len(self._tombstones) - self.limits.max_tombstones)

    def prune(self, now: float) -> list[ConfigEntry]:
        """Purge the oldest deleted data ids beyond ``max_tombstones`` (their versions,
        ``prune_step`` at most, at least one data id's), then remove at most ``prune_step``
        past versions (scanning at most ``prune_step`` data ids), resuming after the last
        data id scanned; the removed versions, for the persistence layer to delete."""
        step = self.limits.prune_step
        keep_n = self.limits.keep_revisions
        keep = self.limits.keep_seconds
        # judged with the skew a member's clock may have as margin: a version's
        # ``modified`` is its writer's clock, and one 25 s behind had its tombstone purged
        # 25 s early on every peer, so a member away less than keep_days brought the data
        # id back (review44 F5); beyond AGE_SKEW_MARGIN a node counts itself out
        cutoff = None if keep is None else now - keep - AGE_SKEW_MARGIN
        self._age_cutoff = cutoff
        age_limit = float("-inf") if cutoff is None else cutoff
        self.prune_behind = False
        removed = self._purge_over(step)
        if not removed:  # (a purge beyond max_tombstones is this call's work)
            removed = self._trim_over(step, keep_n)
            if not self.prune_behind:
                removed = self._prune_scan(step, keep_n, cutoff, age_limit, removed)
        else:
            self.prune_behind = self.tombstones_over > 0
        return removed

    def _purge_over(self, step: int) -> list[ConfigEntry]:
        """The oldest deleted data ids beyond ``max_tombstones``, purged (``prune_step``
        versions at most, at least one data id's), as ``keep_seconds`` purges them: their
        revision goes into the bucket's floor, so a data id created again goes on above."""
        removed: list[ConfigEntry] = []
        over = self.tombstones_over
        while over > 0:
            key = next(iter(self._tombstones))
            if removed and len(removed) + sum(map(len, self._history[key].values())) > step:
                break
            removed.extend(self._purge(key))
            self.tombstones_purged_early += 1
            over -= 1
        return removed

    def _purge(self, key: ConfigKey) -> list[ConfigEntry]:
        """Drop a deleted data id, its revision kept in its bucket's floor."""
        current = self._current[key]
        self.raise_floor(key, current.revision)
        if current.committed:  # (an unacknowledged one: another version may win its
            # revision on a majority, and must not be refused then)
            self._purged[key] = current.revision
            self._purged.move_to_end(key)
            if len(self._purged) > PURGED_KEPT:
                self._purged.popitem(last=False)
        return self._drop_key(key)

    def purged_through(self, key: ConfigKey) -> int:
        """The revision up to which ``key`` was purged here lately (0: not known): its
        versions at or below it are not taken back (``apply``)."""
        return self._purged.get(key, 0)

    def _trim_over(self, step: int, keep_n: int | None) -> list[ConfigEntry]:
        """The data ids past ``keep_revisions`` since their last prune (``_over``), cut
        back to it first: at most ``step`` versions removed and ``step`` data ids looked
        at.  The scan (``_prune_scan``) visits ``step`` data ids a call, so with many data
        ids a hot one waited a whole pass, growing by its write rate meanwhile."""
        removed: list[ConfigEntry] = []
        over = self._over
        if keep_n is None:
            over.clear()
            return removed
        for _ in range(min(step, len(over))):
            key = next(iter(over))
            by_rev = self._history.get(key)
            if by_rev is not None and len(by_rev) > keep_n:
                current = self._current[key].revision
                for rev in sorted(by_rev, reverse=True)[keep_n:]:
                    if len(removed) >= step:
                        self.prune_behind = True
                        return removed  # this data id is not done: first next time
                    if rev != current:
                        versions = by_rev.pop(rev)
                        removed.extend(versions)
                        self._forget(versions)
                        self._hashes.pop(key, None)
            del over[key]
        self.prune_behind = bool(over)
        return removed

    def _prune_scan(
        self,
        step: int,
        keep_n: int | None,
        cutoff: float | None,
        age_limit: float,
        removed: list[ConfigEntry],
    ) -> list[ConfigEntry]:
        trimmed = len(removed)  # (by _trim_over, first)
        start = self._prune_after
        keys = list(islice(self._keys.after(start) if start else iter(self._keys), step))
        for key in keys:
            by_rev = self._history[key]
            current = self._current[key]
            if current.deleted and cutoff is not None and current.modified < cutoff:
                if removed and len(removed) + sum(map(len, by_rev.values())) > step:
                    self.prune_behind = True
                    return removed  # the whole data id goes next time
                removed.extend(self._purge(key))
                self._prune_after = key
                continue
            old = self._oldest.get(key, 0.0) < age_limit  # some version may be too old
            if not old and (keep_n is None or len(by_rev) <= keep_n):
                self._prune_after = key  # nothing too old, not too many: O(1) per data id
                continue
            ranked: Iterable[tuple[int, int]] = enumerate(sorted(by_rev, reverse=True))
            if not old:  # only the revisions beyond the last keep_n can go
                ranked = islice(ranked, keep_n, None)
            for rank, rev in ranked:
                if len(removed) >= step:
                    self.prune_behind = True
                    return removed  # this data id is not done: resume at it
                if rev == current.revision:
                    continue
                versions = by_rev[rev]
                too_many = keep_n is not None and rank >= keep_n
                too_old = old and max(v.modified for v in versions) < age_limit
                if too_many or too_old:
                    removed.extend(versions)
                    self._forget(by_rev.pop(rev))
                    self._hashes.pop(key, None)
            if old:
                self._oldest[key] = min(v.modified for vs in by_rev.values() for v in vs)
            self._prune_after = key
        if len(keys) == step:
            # more data ids after these: resume there next time (soon if this scan was
            # busy: data ids after may be as far over)
            self.prune_behind = len(removed) - trimmed >= step // 2
            return removed
        self._prune_after = None  # a full pass ended: start over next time
        return removed

    # -- internals -----------------------------------------------------------------------
    def _reject(self, code: ErrorCode, message: str, reason: str) -> ConfigRejected:
        return self._count(ConfigRejected(code, message, reason))

    def _count(self, exc: ConfigRejected) -> ConfigRejected:
        self.rejected[exc.reason] = self.rejected.get(exc.reason, 0) + 1
        return exc

    def _checked_by(self, by: str) -> str:
        try:
            return check_modified_by(by)
        except ConfigRejected as exc:
            raise self._count(exc) from None

    def _check_caught_up(self, key: ConfigKey, entry: ConfigEntry | None, min_rev: int) -> None:
        have = entry.revision if entry is not None else 0
        if min_rev > have:
            raise self._reject(
                ErrorCode.UNAVAILABLE,
                f"{key}: this node holds revision {have} and you have seen {min_rev}; it may "
                "be catching up: retry shortly or on another node (a min_revision no node "
                "ever made is refused the same way)",
                "behind",
            )

    def _check_write(
        self, key: ConfigKey, if_revision: int | None, now: float
    ) -> ConfigEntry | None:
        """The current version, after the CAS check; raises (counted) on a mismatch:
        CONFLICT, or UNAVAILABLE (nothing written) when ``if_revision`` is what reads show
        and the current version is one a majority has not acknowledged yet (``shown``):
        whether the CAS holds is not known until that version settles, and a CONFLICT
        naming a revision no read shows left a client re-reading and retrying in a loop
        (review38, ~700 times a second on a cut-off owner)."""
        try:
            key = check_config_key(*key)
        except ConfigRejected as exc:
            raise self._count(exc) from None
        prev = self._current.get(key)
        if if_revision is not None:
            if type(if_revision) is not int or if_revision < 0:
                raise self._count(
                    invalid("field 'if_revision' must be an integer >= 0", "bad_revision")
                )
            live = prev is not None and not prev.deleted
            have = prev.revision if prev is not None and live else 0
            if have != if_revision:
                self._check_settled(key, prev, if_revision, now)
                if not live:
                    state = "does not exist" + (
                        f" (deleted at revision {prev.revision})" if prev is not None else ""
                    )
                else:
                    state = f"is at revision {have}"
                raise self._count(
                    ConfigRejected(
                        ErrorCode.CONFLICT,
                        f"{key} {state}, not {if_revision}: read it, reconcile, and write "
                        f"again with if_revision {have} (CLI: --if-revision {have})",
                        "cas_conflict",
                        revision=have,
                    )
                )
        return prev

    def _check_settled(
        self, key: ConfigKey, prev: ConfigEntry | None, if_revision: int, now: float
    ) -> None:
        if prev is None or self._settled(prev, now):
            return
        seen = self.shown(key, now)
        shows = seen.revision if seen is not None and not seen.deleted else 0
        if shows != if_revision:
            return  # a CONFLICT whatever that write's fate
        state = ("a delete at " if prev.deleted else "") + f"revision {prev.revision}"
        raise self._reject(
            ErrorCode.UNAVAILABLE,
            f"{key}: {state} is being written and a majority has not acknowledged it yet "
            f"(reads show {shows or 'none'}), so whether if_revision "
            f"{if_revision} still holds is not known; nothing was written: retry in a "
            f"moment (it settles within {SETTLE_SECONDS:g} s)",
            "cas_in_flight",
        )

    def _existing(
        self, key: ConfigKey, if_revision: int | None, what: str, now: float
    ) -> ConfigEntry:
        prev = self._check_write(key, if_revision, now)
        if prev is None or prev.deleted:
            raise self._reject(
                ErrorCode.NOT_FOUND, f"cannot {what} {key}: it does not exist", "not_found"
            )
        return prev

    def _commit_local(
        self,
        key: ConfigKey,
        prev: ConfigEntry | None,
        *,
        now: float,
        by: str,
        floor: int = 0,
        **fields: Any,
    ) -> ConfigEntry:
        """A new revision after ``prev`` (at least ``floor``); the gray version stays
        unless ``gray`` is given."""
        if "gray" not in fields:
            fields["gray"] = prev.gray if prev is not None and not prev.deleted else None
        # new, or created again after its tombstone was purged: above that one; above the
        # purged floor even when a version is held (review44 F5: an old member brought
        # back revision 1 of a data id deleted and purged at revision 2 here, and this
        # node acknowledged a new write at 2, which the tombstone kept elsewhere beat)
        base = max(prev.revision if prev is not None else 0, self.purged_floor(key))
        entry = ConfigEntry(
            key=key,
            revision=max(base + 1, floor),
            origin=self.node_id,
            md5=content_md5(fields["content"]),
            modified=now,
            modified_by=by,
            **fields,
        )
        self._admit(entry, prev)
        self._store(entry, now)
        return entry

    def raise_floor(self, key: ConfigKey, revision: int) -> None:
        """A peer's purged floor of ``key``'s bucket (a new owner's catch-up): a majority
        that acknowledged a tombstone holds it or its floor, so the next revision goes on
        above it here too (review44 F5)."""
        bucket = floor_bucket(key)
        if revision > self.purged_floors.get(bucket, 0):
            self.purged_floors[bucket] = revision
            self.floors_changed = True

    def purged_floor(self, key: ConfigKey) -> int:
        """The revision a data id not held goes on above: its bucket's purged floor."""
        return self.purged_floors.get(floor_bucket(key), 0) if self.purged_floors else 0

    def _derive(
        self, prev: ConfigEntry, now: float, by: str, floor: int = 0, **changes: Any
    ) -> ConfigEntry:
        changes.setdefault("request_id", "")  # never the previous write's id
        entry = replace(
            prev,
            revision=max(prev.revision + 1, floor, self.purged_floor(prev.key) + 1),
            origin=self.node_id,
            modified=now,
            modified_by=by,
            committed=False,
            **changes,
        )
        self._admit(entry, prev)
        self._store(entry, now)
        return entry

    def _admit(self, entry: ConfigEntry, prev: ConfigEntry | None) -> None:
        """A local write's new version fits the quotas: ``max_total_bytes`` held (every
        kept version's content plus ``VERSION_BYTES``; a deletion always fits), and, if it
        makes the data id live (a create, or a publish or rollback of a deleted one),
        ``max_configs_per_namespace`` live data ids in its namespace and ``max_configs`` in
        all (an update or a delete always fits).  Versions merged from peers are never
        refused for them (they were admitted by their owner: refusing them would keep the
        nodes apart), so these are the write's quotas, as etcd's backend quota is."""
        if not entry.deleted and (prev is None or prev.deleted):
            self._check_room(entry.key, prev is None)
        if entry.deleted:
            return
        size = content_size(entry) + VERSION_BYTES
        cap = self.limits.max_total_bytes
        if self.held_bytes + size > cap:
            raise self._reject(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"{entry.key}: this node holds {self.held_bytes} bytes of config versions "
                f"(every kept version's content, plus {VERSION_BYTES} a version for what a "
                f"node keeps beside it), and this one's {size} would pass its limit "
                f"([config] max_total_bytes {cap}); keep fewer revisions (keep_revisions, "
                "keep_days in [config]: a deleted data id's kept versions count until they "
                "are pruned), delete data ids, or raise max_total_bytes",
                "max_total_bytes",
            )
        per_ns = self.limits.max_bytes_per_namespace
        ns = entry.key.namespace
        in_ns = self.bytes_by_namespace.get(ns, 0)
        if per_ns and self.namespace_room:
            per_ns = max(per_ns, self.namespace_room.get(ns, 0))
        if per_ns and in_ns + size > per_ns:
            raise self._reject(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"{entry.key}: namespace {ns!r} holds {in_ns} bytes of config versions (every "
                f"kept version's content, plus {VERSION_BYTES} a version), and this one's "
                f"{size} would pass its limit ([config] "
                f"max_bytes_per_namespace {per_ns}); keep fewer revisions (keep_revisions, "
                "keep_days in [config]: a deleted data id's kept versions count until they "
                "are pruned, so deleting frees nothing at once), or raise "
                "max_bytes_per_namespace on every node (0: no per-namespace limit)",
                "max_bytes_per_namespace",
            )

    def room_for_held(self) -> dict[str, tuple[int, int]]:
        """Namespaces held above the default per-namespace limit (written before the limit
        existed: after an upgrade every write of theirs was refused, review41 F1) keep a
        quarter of the limit as room above what they hold now; called when the node has
        loaded its disk and when it has caught up.  Returns the namespaces raised: name ->
        (bytes held, the limit now).  Nothing when the limit was set (0 or a size)."""
        per_ns = self.limits.max_bytes_per_namespace
        if not (self.limits.room_for_held and per_ns):
            return {}
        raised = {}
        for ns, held in self.bytes_by_namespace.items():
            room = held + per_ns // 4
            if held > per_ns and room > self.namespace_room.get(ns, 0):
                self.namespace_room[ns] = room
                raised[ns] = (held, room)
        return raised

    def _check_room(self, key: ConfigKey, new: bool) -> None:
        """A data id may become live here: its namespace and the node are below their
        limits of live data ids (``new``: it is not held at all: below ``held_limit``
        too).  Raises RESOURCE_EXHAUSTED (counted) naming the figures and the setting."""
        limits = self.limits
        per_ns = limits.max_configs_per_namespace
        in_ns = self.live_by_namespace.get(key.namespace, 0)
        if per_ns and in_ns >= per_ns:
            raise self._reject(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"cannot create {key}: namespace {key.namespace!r} holds {in_ns} live "
                f"configs, its limit ([config] max_configs_per_namespace {per_ns}); delete "
                "some of its configs (a deleted one stops counting at once), or raise "
                "max_configs_per_namespace on every node (0: no per-namespace limit)",
                "max_configs_per_namespace",
            )
        if self.live_configs >= limits.max_configs:
            raise self._reject(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"cannot create {key}: this node holds {self.live_configs} live configs "
                f"over {len(self.live_by_namespace)} namespaces, its limit ([config] "
                f"max_configs {limits.max_configs}; deleted ones do not count); delete "
                "configs, or raise max_configs on every node",
                "max_configs",
            )
        if new and len(self._history) >= limits.held_limit:
            raise self._reject(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"cannot create {key}: this node holds {len(self._history)} data ids "
                f"({len(self._tombstones)} of them deleted, purged beyond [config] "
                f"max_tombstones {limits.max_tombstones}, the oldest first, up to "
                f"{limits.prune_step} versions a step, every 20 ms while behind), its limit (2 x "
                "(max_configs + max_tombstones)); retry in a few seconds",
                "held_limit",
            )

    def _set_current(self, key: ConfigKey, new: ConfigEntry | None) -> None:
        """Make ``new`` the data id's current version (None: drop it), keeping the live
        counts and the tombstone order."""
        old = self._current.get(key)
        was_live = old is not None and not old.deleted
        live = new is not None and not new.deleted
        if new is None:
            del self._current[key]
        else:
            self._current[key] = new
        if was_live != live:
            ns = key.namespace
            if live:
                self.live_configs += 1
                self.live_by_namespace[ns] = self.live_by_namespace.get(ns, 0) + 1
            else:
                self.live_configs -= 1
                left = self.live_by_namespace[ns] - 1
                if left:
                    self.live_by_namespace[ns] = left
                else:
                    del self.live_by_namespace[ns]
        if new is not None and new.deleted:
            if old is None or not old.deleted:
                self._tombstones[key] = None
        else:
            self._tombstones.pop(key, None)

    def _store(self, entry: ConfigEntry, now: float | None) -> None:
        key = entry.key
        if now is not None and not entry.committed:
            self._settle_at[(key, entry.revision, entry.origin, entry.md5)] = now + SETTLE_SECONDS
        by_rev = self._history.get(key)
        if by_rev is None:
            by_rev = self._history[key] = {}
            self._keys.add(key)
        by_rev.setdefault(entry.revision, []).append(entry)
        keep = self.limits.keep_revisions
        if keep is not None and len(by_rev) > keep:
            self._over[key] = None
        self.history_entries += 1
        size = content_size(entry)
        self.content_bytes += size
        held = size + VERSION_BYTES
        self.held_bytes += held
        ns = key.namespace
        self.bytes_by_namespace[ns] = self.bytes_by_namespace.get(ns, 0) + held
        current = self._current.get(key)
        if current is None or merge_order(entry) > merge_order(current):
            self._set_current(key, entry)
        self._hashes.pop(key, None)  # its history changed
        if entry.modified < self._oldest.get(key, float("inf")):
            self._oldest[key] = entry.modified

    def _replace_version(self, key: ConfigKey, index: int, new: ConfigEntry) -> ConfigEntry:
        self._hashes.pop(key, None)
        versions = self._history[key][new.revision]
        old = versions[index]
        if new.committed and self._settle_at:
            self._settle_at.pop((key, old.revision, old.origin, old.md5), None)
        versions[index] = new
        current = self._current[key]
        if current is old or merge_order(new) > merge_order(current):
            self._set_current(key, new)
        return new

    def _forget(self, versions: list[ConfigEntry]) -> None:
        if self._settle_at:
            for v in versions:
                self._settle_at.pop((v.key, v.revision, v.origin, v.md5), None)
        self.history_entries -= len(versions)
        by_ns = self.bytes_by_namespace
        for v in versions:
            size = content_size(v)
            self.content_bytes -= size
            held = size + VERSION_BYTES
            self.held_bytes -= held
            remaining = by_ns[v.key.namespace] - held
            if remaining:
                by_ns[v.key.namespace] = remaining
            else:
                del by_ns[v.key.namespace]

    def _drop_key(self, key: ConfigKey) -> list[ConfigEntry]:
        versions = [v for vs in self._history.pop(key).values() for v in vs]
        self._forget(versions)
        self._set_current(key, None)
        self._oldest.pop(key, None)
        self._hashes.pop(key, None)
        self.hash_parts -= len(self._hash_parts.pop(key, ()))
        self._keys.discard(key)
        self._over.pop(key, None)
        return versions


FLOOR_BUCKETS = 4096  # buckets of purged-tombstone revision floors (32 KB at most)
PURGED_KEPT = 10_000  # purged data ids remembered (``ConfigStore.purged_through``)


def floor_bucket(key: ConfigKey) -> int:
    """The bucket of ``key``'s purged-tombstone revision floor: the same on every node and
    in every process (xxh64 of the key's bytes), so each node's floors agree.  Data ids
    sharing a bucket share a floor: a re-created one may start higher than it needs to,
    never lower than its own tombstone."""
    return int(xxhash.xxh64_intdigest(config_key_bytes(key))) % FLOOR_BUCKETS


def _request_order(entry: ConfigEntry) -> tuple[Any, ...]:
    return (entry.committed, merge_order(entry))


def _hash_item(e: ConfigEntry) -> tuple[int, str, str, str, bool, bool]:
    """What ``history_hash`` hashes of a version (its identity and committed flag)."""
    return (e.revision, e.origin, e.md5, e.gray.md5 if e.gray else "", e.deleted, e.committed)


def _twin(entry: ConfigEntry, held: Iterable[ConfigEntry]) -> bool:
    """``entry`` carries the request id of a version held at its revision: two owners both
    applied one re-sent write during a membership change (one write, two versions)."""
    rid = entry.request_id
    return bool(rid) and any(v.request_id == rid for v in held)


def content_size(entry: ConfigEntry) -> int:
    """Bytes of content a version holds (its gray version's included): what the store
    counts and what an anti-entropy push step is bounded by."""
    return len(entry.content) + (len(entry.gray.content) if entry.gray else 0)
