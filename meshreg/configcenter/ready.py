"""The ready gate of a starting node: caught up with a majority's digests (sans-IO).

Theory of operation
-------------------
A node with peers starts **not ready**: it answers config reads UNAVAILABLE until it holds,
for a majority of the configured members (itself included), every data id at least as far
as that member held it when asked.  An acknowledged version is on a majority, and two
majorities share a node, so a ready node holds every version acknowledged before it
started (or a later one).  Writes do not wait for the gate (the replicator's per-data-id
catch-up covers them).

* **Paged digests.**  The node asks each peer for its digests a page at a time
  (``config_sync`` with a cursor, ``after``: the last data id of the page before, None at
  first); the peer answers with the digests of the next ``SYNC_PAGE`` data ids in key
  order and the range they cover, (``after``, ``upto``], ``upto`` None on the last page
  (``ConfigReplicator.on_sync``; the answering node keeps no state per asker).  On each
  page the gate notes, per data id, the version the peer holds where it is ahead of this
  node, moves the peer's cursor to ``upto`` and asks for the next page at once: pages are
  a round trip apart, so neither node's loop spends more than one page's work in a turn
  and no message holds more than one page (a table of 100,000 data ids was one message of
  several MB before).  Any digest message that is not an answer to a digest message
  (``reply`` False) lists every data id the peer holds in its range, so a page of a
  periodic anti-entropy round covering the cursor counts as well.
* **The whole set.**  A peer counts for the gate only once its pages covered the whole
  key space in order (the last page, ``upto`` None, reached from the cursor) **and**
  every data id it was ahead on is now as far here (``on_stored``: the data ids this
  node stored a version of; each is checked once per store, not the whole table per
  message).  A page that does not start at or below the cursor (late, duplicated, or
  after one lost) moves nothing.
* **Loss and death.**  A peer whose next page has not come ``SYNC_ASK_INTERVAL`` after
  the ask is asked for it again (``tick``), from the same cursor: a lost ask or page
  costs one interval, a peer that died half-way is asked until it answers (from where it
  stopped: what it sent before stays noted) or a majority of the others are through.  A
  peer whose pages are all in, that this node is still behind on, and whose versions
  stopped coming (``SYNC_STALL`` without progress: the pushes were lost) is paged again
  from the start: the pages ask it to push again.
* **Memory**: per peer a cursor and the data ids it is ahead on (at most its table,
  itself bounded by ``held_limit``); nothing on the answering side.

* **A store that started empty** (a new or wiped data directory, a restored snapshot:
  ``intact`` False; docs/CONFIG.md "The ready gate") may lack versions its former self
  acknowledged, so the node does not count itself: it needs ``members - majority + 1``
  peers whose stores are whole (they meet every majority's surviving members), or every
  peer (review42 F1: a node replaced at its address with an empty data directory said
  ready after hearing one peer that lacked an acknowledged write, and acknowledged a
  second version at its revision).  Its pages say ``fresh`` and count for nobody.  A
  new cluster has no whole store to catch up from: a node no peer it caught up from has
  seen whole before (pages without ``known``: each node remembers the members whose
  digests it got from a whole store) is a new member, and a majority, itself included,
  will do.  A wiped node's peers have seen it (the anti-entropy rounds every few
  seconds), so it waits for the whole stores.  A new member also waits two peer timeouts
  from its start, for every peer whose pages came, however slow, and for every peer up
  (its beacons heard) while it is up (review43 F3: two stores wiped one after the other
  took each other for new members while the whole third one, on a slow link, had not
  been heard yet; then again when it was up but its pages, on the peer-request port,
  were still on their way; one heard later still is not waited for).  Beyond that,
  only the operator knows that a cluster holds configs already: a node started with
  ``--config-join-existing`` (etcd's ``--initial-cluster-state existing``: a wiped or
  replaced member, a member added to a running cluster) is never a new member, and its
  pages say ``joining``, so that no node that hears one is either (review43 F1: a member
  started for the first time, a wiped one and the only whole store cut off look like a
  new cluster's start to every other rule; Raft elects an empty leader there too).
  Without the flag, this assumes that at most a minority of the stores are lost at once,
  as any majority protocol does.

* **Again after an absence.**  A running node that was stopped longer than the peer
  timeout (SIGSTOP, a VM freeze) or cut off from a majority missed what was acknowledged
  meanwhile: ``rearm`` makes it not ready again and it catches up the same way, except
  that only pages answering its new asks count (each ask carries the rearm's number, the
  page echoes it): a page or a round's step sent before, still queued, may predate what
  the others acknowledged meanwhile.  (A peer that does not echo the number, from before
  this rule, cannot make a rearmed node ready: reads go to the other nodes meanwhile.)

Inputs: ``tick(now)``, ``on_page``, ``on_stored``, ``rearm``.  Outputs: the asks to send, as
(peer, cursor) pairs.  No clock, socket or file here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from meshreg.configcenter.core import ConfigStore
from meshreg.configcenter.model import ConfigDigest, ConfigKey, merge_order

SYNC_ASK_INTERVAL = 0.5  # s; a peer's next page not there this long after the ask: asked
# again (a LAN round trip and two loop turns take a few ms; a loaded node tens of ms)
MAX_GENERATION = 2**31 - 1  # the wire's bound of an ask number (it wraps to 1)
SYNC_STALL = 2.0  # s; a peer whose pages are all in but that this node is still behind on,
# with no data id caught up on for this long (its pushes were lost): its pages asked again
# (its answers ask it to push again), before the next anti-entropy round (5 s) would

Order = tuple[int, bool, str, str]  # merge_order's first four: revision, committed, origin, md5
Ask = tuple[str, ConfigKey | None]  # (peer, cursor): "your digests after this data id"


@dataclass(slots=True)
class _Peer:
    cursor: ConfigKey | None = None  # the pages seen cover (-inf, cursor]; None: none yet
    complete: bool = False  # the last page was reached: the whole key space seen
    next_ask: float = -math.inf  # when to ask for the page after ``cursor`` (again)
    progress_at: float = -math.inf  # when this node last caught up on a data id it was ahead on
    fresh: bool = False  # its last page said its store is not intact (it counts for nobody)
    known: bool = False  # its last page said it saw this node's store whole before
    joining: bool = False  # its last page said it joins a cluster that holds configs


class ReadyGate:
    """A starting node's catch-up with a majority's digests (module docstring)."""

    def __init__(
        self,
        peers: Iterable[str],
        majority: int,
        store: ConfigStore,
        intact: bool = True,
        new_after: float = -math.inf,
        joining: bool = False,
    ) -> None:
        """``intact``: this node's store is whole (not a new or wiped data directory
        that has not caught up yet: "A store that started empty" in the module
        docstring).  ``new_after``: when it may be ready as a new member at the earliest
        (the runtime: its start plus two peer timeouts, for slow peers to answer).
        ``joining``: the operator said the cluster holds configs already
        (``--config-join-existing``): never a new member."""
        self.store = store
        self.majority = majority
        self.intact = intact
        self.joining = joining
        self.new = False  # made ready as a new member (no peer had seen it: ``_enough``)
        self.new_after = new_after
        self._heard: set[str] = set()  # peers a page came from (a new member waits for them)
        self._up: frozenset[str] = frozenset()  # peers up now (a new member waits for them)
        self._now = -math.inf  # the time of the last input
        self._peers = {p: _Peer() for p in peers}
        self._need: dict[str, dict[ConfigKey, Order]] = {p: {} for p in self._peers}
        self.synced: set[str] = set()  # peers caught up with
        self.ready = not self._peers
        self.generation = 0  # rearms so far: the asks' number, echoed in their pages
        self.counters = {"sync_pages_in": 0, "sync_pages_ignored": 0, "sync_asks": 0,
                         "sync_restarts": 0, "sync_rearms": 0,
                         "sync_pages_stale": 0}  # fmt: skip

    def rearm(self) -> bool:
        """Not ready again, caught up with nobody: the node may have missed acknowledged
        versions (stopped longer than the peer timeout, or cut off from a majority), so it
        catches up as at a start.  False (nothing changed) without peers."""
        if not self._peers:
            return False
        self._peers = {p: _Peer() for p in self._peers}
        self._need = {p: {} for p in self._peers}
        self.synced = set()
        self.ready = False
        self.generation = self.generation % MAX_GENERATION + 1
        self.counters["sync_rearms"] += 1
        return True

    def tick(self, now: float) -> list[Ask]:
        """The asks due: a peer's next page not there ``SYNC_ASK_INTERVAL`` after the
        last ask (or never asked yet)."""
        if self.ready:
            return []
        self._now = now
        if not self.intact and now >= self.new_after:
            self._decide()  # a new member's wait for the peers that answer is over
            if self.ready:
                return []
        asks: list[Ask] = []
        for peer, state in self._peers.items():
            if (
                state.complete
                and (self._need[peer] or state.fresh)
                and (now >= state.progress_at + SYNC_STALL)
            ):  # its pushes stopped, or it was catching up itself (counted once caught up)
                state.complete, state.cursor = False, None
                state.next_ask = -math.inf
                self.synced.discard(peer)
                self.counters["sync_restarts"] += 1
            if not state.complete and now >= state.next_ask:
                state.next_ask = now + SYNC_ASK_INTERVAL
                asks.append((peer, state.cursor))
        self.counters["sync_asks"] += len(asks)
        return asks

    def next_wake(self) -> float:
        """When ``tick`` has asks to send at the latest (inf: none)."""
        if self.ready:
            return math.inf
        wake = min(
            (s.progress_at + SYNC_STALL if s.complete else s.next_ask
             for p, s in self._peers.items() if not s.complete or self._need[p] or s.fresh),
            default=math.inf,
        )  # fmt: skip
        if not self.intact and self._now < self.new_after:
            return min(wake, self.new_after)  # a new member's wait ends then
        return wake

    def on_page(
        self,
        now: float,
        sender: str,
        digests: Iterable[ConfigDigest],
        after: ConfigKey | None,
        upto: ConfigKey | None,
        ask: int = 0,
        fresh: bool = False,
        known: bool = False,
        joining: bool = False,
    ) -> list[Ask]:
        """A peer's digests of every data id it holds in (``after``, ``upto``] (None: open):
        noted if the range starts at or below the peer's cursor; answered with the ask
        for the next page (none after the last, or for a page that moved nothing).  After
        a ``rearm``, only a page answering this catch-up's asks (``ask`` equal to the
        generation) counts: a page or a round's step sent before (queued while this node
        was stopped) may be older than what was acknowledged meanwhile."""
        state = self._peers.get(sender)
        if self.ready or state is None or state.complete:
            return []
        self._now = now
        self._heard.add(sender)
        if self.generation and ask != self.generation:
            self.counters["sync_pages_stale"] += 1
            return []
        cursor = state.cursor
        starts = after is None or (cursor is not None and after <= cursor)
        extends = upto is None or cursor is None or upto > cursor
        if not (starts and extends):
            self.counters["sync_pages_ignored"] += 1
            return []
        self.counters["sync_pages_in"] += 1
        state.fresh, state.known, state.joining = fresh, known, joining
        need = self._need[sender]
        for d in digests:
            if cursor is not None and d.key <= cursor:
                continue  # noted from an earlier page
            theirs = (d.revision, d.committed, d.origin, d.md5)
            if not self._caught_up(d.key, theirs):
                need[d.key] = theirs
        if upto is None:
            state.complete = True
            state.next_ask = math.inf
            state.progress_at = now
            self._check(sender)
            return []
        state.cursor = upto
        state.next_ask = now + SYNC_ASK_INTERVAL
        self.counters["sync_asks"] += 1
        return [(sender, upto)]

    def on_stored(self, now: float, keys: Iterable[ConfigKey]) -> None:
        """Versions of these data ids were stored here: the peers ahead on them may be
        caught up with now."""
        if self.ready:
            return
        self._now = now
        keys = set(keys)
        for peer, need in self._need.items():
            if not need:
                continue
            caught_up = [k for k in keys if k in need and self._caught_up(k, need[k])]
            if caught_up:
                self._peers[peer].progress_at = now
            for key in caught_up:
                del need[key]
            if not need:
                self._check(peer)

    def _caught_up(self, key: ConfigKey, theirs: Order) -> bool:
        """This node is as far as a peer's digest on ``key``: the version it shows (what a
        read gets) is at or above it, or it holds that very version (with the flag, if
        committed there).  Its current version above it does not count if not shown:
        a record of a write in flight (uncommitted) over the acknowledged versions this
        node lacks made it ready showing an older version than a majority acknowledged
        (the learner simulation's seed 345: r21 shown and synced to a listener at the
        ready, while r24 was acknowledged; r23-r24 came 5 ms later)."""
        shown = self.store.shown(key, self._now if self._now > -math.inf else None)
        if shown is not None and merge_order(shown)[:4] >= theirs:
            return True
        revision, committed, origin, md5 = theirs
        if revision <= self.store.purged_through(key):
            return True  # purged here already: not taken back (core ``_purge``)
        return self.store.holds(key, revision, origin, md5, committed)

    def set_up(self, peers: Iterable[str]) -> None:
        """The peers this node sees up now (their beacons heard): a new member waits for
        their pages too, while they are up (a whole store on a slow peer-request link)."""
        self._up = frozenset(p for p in peers if p in self._peers)

    def joining_heard(self) -> bool:
        """A peer's pages said it joins a cluster that holds configs: no new member here."""
        return any(s.joining for s in self._peers.values())

    def whole_synced(self) -> int:
        """Peers caught up with whose stores are whole (not ``fresh``)."""
        return sum(1 for p in self.synced if not self._peers[p].fresh)

    def waiting(self) -> int:
        """Data ids the peers not caught up with are still ahead on (stats)."""
        return sum(len(n) for n in self._need.values())

    def _check(self, peer: str) -> None:
        if self._peers[peer].complete and not self._need[peer]:
            self.synced.add(peer)
        self._decide()

    def _decide(self) -> None:
        enough = self._enough()
        if enough:
            self.new = not self.intact and enough == "new"
            self.ready = self.intact = True
            self._need = {p: {} for p in self._peers}  # freed: nothing reads it any more

    def _enough(self) -> str:
        """Caught up with enough members to hold every version a majority acknowledged
        (the module docstring, "A store that started empty"): "" (not yet), "whole", or
        "new" (a new member: no peer caught up with had seen it whole before)."""
        peers, synced = self._peers, self.synced
        whole = sum(1 for p in synced if not peers[p].fresh)
        if self.intact:
            return "whole" if whole + 1 >= self.majority else ""
        if whole >= len(peers) + 1 - self.majority + 1 or len(synced) == len(peers):
            return "whole"
        if self.joining or any(s.joining for s in peers.values()):
            return ""  # the operator said the cluster holds configs: no new member here
        unknown = not any(peers[p].known for p in synced)
        waited = self._now >= self.new_after and self._heard | self._up <= synced
        return "new" if unknown and waited and len(synced) + 1 >= self.majority else ""


__all__ = ["SYNC_ASK_INTERVAL", "SYNC_STALL", "ReadyGate"]
