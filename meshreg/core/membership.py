"""Peers up and down, from beacons and deadlines.

Theory of operation
-------------------
Every node beacons to its peers every ``beacon_interval``.  A peer is *up*
from the first beacon heard and *down* once silent for ``peer_timeout``.
The asymmetry is the hysteresis: going down takes ``peer_timeout`` (many
beacon intervals) of silence, so a lost beacon or a short stall never moves
responsibility; coming back is immediate, because a node that is heard is
certainly alive.  A beacon with a new epoch is a restart of the same member.

Members are identified by node id (``--node-id``, default ``host:port``); the
configured peer list gives addresses to connect to, and beacons name the id
behind each address.  The live member list (self plus peers up) is what the
responsibility mapping hashes over.

A peer list that differs from the others' (a node added to its own list only, a
node restarted with a shorter one) would split the registry: a node that is not
subscribed to a member never counts it in.  So a node introduces itself (``join``,
core/distro) to the peers it lists that do not hear it, and they keep its address
(``configured`` False) **while it lists them**: its beacons name the members it lists
(``configured`` ids), and a learned peer whose beacons stop naming us is forgotten, as
is one never heard ``NEVER_HEARD_AFTER`` peer timeouts after its join or down for
``FORGET_DOWN_AFTER`` peer timeouts.  Membership is thus the configured lists read
both ways: a typo that listed a node of another cluster is undone by fixing the list,
and a learned address cannot stay for good.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from meshreg.core.effects import MemberChanged, MemberState

MAX_ADDRESSES = 64
"""Addresses a node keeps, configured and introduced, itself included: a full mesh of
Distro members is meant for a few to a few dozen nodes; a ``join`` beyond this is
refused (counted) so no peer can make a node open connections without bound."""
MAX_PENDING = 8
"""Learned addresses not heard from yet, at most (a scale-out adds a node or two at a
time): joins naming more are refused until some are heard or forgotten."""
NEVER_HEARD_AFTER = 3.0  # peer timeouts: a learned address never heard is forgotten
FORGET_DOWN_AFTER = 10.0  # peer timeouts: a learned member down this long is forgotten


@dataclass
class Peer:
    address: str
    node_id: str | None = None  # learned from its beacons
    epoch: int | None = None
    state: MemberState = MemberState.DOWN
    ready: bool = False  # False while the peer says it is catching up
    last_heard: float = float("-inf")
    last_seq: int = 0  # the peer's newest delta sequence, from its beacons
    view: tuple[str, ...] | None = None  # the members it hashes over, from its beacons
    unheard: tuple[str, ...] = ()  # ids views it knows name and it does not hear (beacons)
    configured: bool = True  # False: learned from its join, not from our peer list
    learned_at: float = float("-inf")  # when its join taught us the address
    lists_us: bool | None = None  # whether its beacons' ``configured`` name us (None: untold)
    announced: str | None = None  # the address its beacons give (our list may spell it by name)
    # its peer list as its beacons tell it: how many members, and the ids of those it has
    # heard (itself included); None: untold (``majorities_may_miss``)
    listed: tuple[int, frozenset[str]] | None = None
    holds_us: bool = False  # its beacons' ``held`` name us (core/distro: a crash loop)
    # since when (our clock) its registry table has collected registrations, from its
    # beacons' ``table_age``; -inf: not told (an older node: its table counts as old)
    table_since: float = -math.inf
    clock_offset: float | None = None  # its wall clock minus ours, s (its beacons' ``wall``)
    clock_far: bool = False  # that offset is past MAX_CLOCK_SKEW (core/distro)
    # (when heard, how far our clock ran ahead of its) beacon by beacon, the last
    # LEAD_SAMPLES (core/distro ``_clock_lead``): a beacon's delay only adds to the
    # second, so the least is the best estimate
    lead_samples: list[tuple[float, float]] = field(default_factory=list)
    _least: float | None = field(default=None, repr=False)  # their least, once computed
    # its beacons' ``leads`` entry for us, s: how far its clock ran ahead of ours by our
    # beacons (the least of its samples: our beacons' delay only adds), and when heard;
    # so our clock runs at least ``-told_lead`` ahead of its (core/distro ``_clock_lead``)
    told_lead: float | None = None
    unhealthy_ms: int | None = None  # its beacons' ``unhealthy_after``, ms (None: untold)
    told_at: float = float("-inf")
    down_since: float = float("-inf")
    # its replication stream (beacons on P+2) against its beacons' second path (requests):
    stream_heard: float = float("-inf")  # its last beacon on the stream
    request_heard: float = float("-inf")  # its last beacon by request (its requests reach us)
    by_request_since: float = float("inf")  # heard by request since, the stream silent
    stream_lost: bool = False  # that has lasted peer_timeout (reported; ``cluster``)
    repair_failing: bool = False  # ... and a repair round with it failed (reported)
    cannot_reach_us: bool = False  # its beacons' ``unreachable`` name us: we push to it
    # since when (our clock) its ready beacons' views (``members``) have not named us while
    # we were ready, and the last such beacon (core/distro ``_heard_by``); inf: they name us
    lacks_us_since: float = math.inf
    lacks_us_last: float = -math.inf
    deaf_to_us: bool = False  # that has lasted DEAF_GRACE: it does not hear us (``_member_counts``)
    left_epoch: int | None = None  # the incarnation that said it was leaving (``left``)
    left_at: float = -math.inf  # when it said so

    def least_lead(self) -> float:
        """The least of ``lead_samples`` (there must be some): the best estimate of how
        far our clock runs ahead of its, an upper bound whatever the beacons' delays.
        Kept between samples: every beacon of any peer asks it of every peer."""
        least = self._least
        if least is None:
            least = self._least = min(lead for _, lead in self.lead_samples)
        return least

    def sample_lead(self, now: float, lead: float, keep: int, window: float) -> None:
        """One more of ``lead_samples``; those past ``keep`` or older than ``window``
        go."""
        samples = self.lead_samples
        samples.append((now, lead))
        least = self._least
        while len(samples) > keep or now - samples[0][0] > window:
            if samples[0][1] == least:
                least = None  # (the least leaves: computed again when asked)
            del samples[0]
        self._least = None if least is None else min(least, lead)


def majorities_may_miss(
    mine: int, my_ids: frozenset[str], theirs: int, their_ids: frozenset[str]
) -> bool:
    """Whether a majority of our peer list (``mine`` members; the ids of those we have
    heard, ourselves included) and a majority of another member's (``theirs``, its
    heard ids) may share no member: then two nodes could each gather a config majority
    and commit the same revision (review25 F4: 3 -> 5 members in one rolling restart,
    {A, D, E} and {B, C}).  A list and the same list with one member added or removed
    always share one; two added, or one replaced in a 3-member list, may not.  Members
    whose ids are not known yet (not heard) are taken as shared: no alarm while a cluster
    starts, one as soon as the ids show the lists apart.  A majority of ours avoids the
    shared members as far as it can (those only ours first), and so does theirs; they
    must still meet in the shared ones."""
    known = len(my_ids & their_ids)
    shared = min(mine, theirs, known + (mine - len(my_ids)) + (theirs - len(their_ids)))
    in_shared_ours = mine // 2 + 1 - (mine - shared)
    in_shared_theirs = theirs // 2 + 1 - (theirs - shared)
    return in_shared_ours + in_shared_theirs <= shared


def dialable(address: str) -> bool:
    """Whether another node can connect to ``address``: a node bound to every interface
    (``0.0.0.0``, ``::``) announces that, which names no machine (DISTRO.md "Joining")."""
    host = address.rpartition(":")[0]
    return host not in ("0.0.0.0", "::", "[::]", "")


class Membership:
    """The member list as this node sees it."""

    def __init__(
        self,
        self_id: str,
        self_address: str,
        peer_addresses: list[str],
        peer_timeout: float,
        aliases: dict[str, str] | None = None,
    ) -> None:
        """``aliases``: ``ip:port`` -> the listed address of a peer our list names by host
        name (config ``peer_aliases``): its beacons announce the former."""
        self.self_id = self_id
        self.aliases = aliases or {}
        self.self_address = self_address
        self.peer_timeout = peer_timeout
        self.peers: dict[str, Peer] = {
            a: Peer(a) for a in dict.fromkeys(peer_addresses) if a != self_address
        }
        self._live: tuple[str, ...] = (self_id,)
        # Counts the changes of what ``up_peers`` returns (who is up, their ids, ready
        # flags and views): a caller that derived something from them at one count need
        # not derive it again while the count stays (core/distro, on every beacon/tick).
        self.revision = 0
        # At most the oldest ``last_heard`` of a peer that is up (inf: none is up): while
        # ``now - _oldest_heard < peer_timeout`` no peer can go down, and ``tick`` skips
        # the scan (it runs on every loop turn).  Beacons only move it down (to ``now``),
        # a scan sets it exactly; ``last_heard`` raised elsewhere keeps it a bound.
        self._oldest_heard = math.inf
        # learned addresses forgotten lately -> until when their beacons are ignored (some
        # may still be on the way when the runtime unsubscribes)
        self._forgotten: dict[str, float] = {}

    def live_members(self) -> tuple[str, ...]:
        """Sorted ids of self and every peer that is up."""
        return self._live

    def _recompute(self) -> None:
        ids = {self.self_id}
        ids.update(
            p.node_id for p in self.peers.values() if p.state is MemberState.UP and p.node_id
        )
        self._live = tuple(sorted(ids))

    def peer_at(self, address: str) -> Peer | None:
        """The peer at ``address`` as it announces itself (our list may spell it by name)."""
        peer = self.peers.get(address)
        if peer is None and self.aliases:
            listed = self.aliases.get(address)
            if listed is not None:
                peer = self.peers.get(listed)
        return peer

    def peer_by_id(self, node_id: str) -> Peer | None:
        for p in self.peers.values():
            if p.node_id == node_id:
                return p
        return None

    def heard(
        self,
        node_id: str,
        address: str,
        epoch: int,
        ready: bool,
        seq: int,
        now: float,
        view: tuple[str, ...] | None = None,
        unheard: tuple[str, ...] = (),
    ) -> list[MemberChanged]:
        """A beacon arrived; returns what changed (up, restart)."""
        if node_id == self.self_id:
            return []
        peer = self.peer_at(address)
        if peer is None:
            if now < self._forgotten.get(address, -math.inf):
                return []  # sent before we unsubscribed
            # we subscribed to it: our list names it, spelled otherwise
            peer = self.peers[address] = Peer(address)
        revoked = False
        if peer.left_epoch == epoch and peer.node_id == node_id:
            if now - peer.left_at < self.peer_timeout:
                return []  # its beacons from before its leave, still on the way
            peer.left_epoch, revoked = None, True  # still beaconing: it did not leave
        changes: list[MemberChanged] = []
        restarted = peer.epoch is not None and peer.epoch != epoch
        after_leave = restarted and peer.left_epoch == peer.epoch and peer.node_id == node_id
        if peer.node_id not in (None, node_id):  # another node took this address
            restarted = True
        if (
            peer.node_id != node_id
            or peer.ready != ready
            or peer.view != view
            or peer.unheard != unheard
        ):
            self.revision += 1
        peer.node_id, peer.ready, peer.last_heard, peer.last_seq = node_id, ready, now, seq
        peer.view, peer.unheard = view, unheard
        if now < self._oldest_heard:
            self._oldest_heard = now
        if peer.state is MemberState.DOWN or restarted:
            peer.state = MemberState.UP
            changes.append(
                MemberChanged(
                    node_id,
                    peer.address,
                    MemberState.UP,
                    restarted,
                    leave_revoked=revoked,
                    after_leave=after_leave,
                )
            )
        peer.epoch = epoch
        if changes:
            self.revision += 1
            self._recompute()
        return changes

    def left(self, node_id: str, address: str, epoch: int, now: float) -> list[MemberChanged]:
        """A peer said it is stopping (its last beacon): down now, and its incarnation's
        beacons still on the way are ignored for ``peer_timeout``; its next incarnation is
        heard as usual.  One that still beacons after that did not stop (a forged leave):
        counted up again (``leave_revoked``)."""
        peer = self.peer_at(address)
        if peer is None or peer.node_id != node_id or peer.epoch != epoch:
            return []  # not the incarnation we know at that address
        peer.left_epoch, peer.left_at = epoch, now
        if peer.state is not MemberState.UP:
            return []
        peer.state = MemberState.DOWN
        peer.down_since = now
        self.revision += 1
        self._recompute()
        return [MemberChanged(node_id, peer.address, MemberState.DOWN, left=True)]

    def introduce(self, addresses: tuple[str, ...], now: float) -> tuple[list[str], int]:
        """Addresses a member gave us (``join``): the ones we did not know are kept as
        peers (down until heard); returns them, and how many were refused because the
        node holds ``MAX_ADDRESSES`` addresses, or ``MAX_PENDING`` never heard, already."""
        added: list[str] = []
        refused = 0
        pending = sum(1 for p in self.peers.values() if not p.configured and p.node_id is None)
        for address in addresses:
            if address == self.self_address or self.peer_at(address) or not dialable(address):
                continue
            if len(self.peers) + 1 >= MAX_ADDRESSES or pending >= MAX_PENDING:
                refused += 1
                continue
            self.peers[address] = Peer(address, configured=False, learned_at=now)
            pending += 1
            added.append(address)
        return added, refused

    def forget(self, address: str, now: float) -> list[MemberChanged]:
        """Drop a learned peer (its list no longer names us, or it is long gone); its
        beacons still on the way are ignored for a peer timeout."""
        peer = self.peers.pop(address, None)
        if len(self._forgotten) >= MAX_ADDRESSES:
            self._forgotten = {a: t for a, t in self._forgotten.items() if t > now}
        self._forgotten[address] = now + self.peer_timeout
        if peer is None or peer.state is not MemberState.UP:
            return []
        self.revision += 1
        self._recompute()
        return [MemberChanged(peer.node_id or "", address, MemberState.DOWN)]

    def stale_learned(self, now: float) -> list[tuple[str, str]]:
        """Learned peers to forget now, with why: never heard ``NEVER_HEARD_AFTER`` peer
        timeouts after their join, or down for ``FORGET_DOWN_AFTER``."""
        never, down = NEVER_HEARD_AFTER * self.peer_timeout, FORGET_DOWN_AFTER * self.peer_timeout
        stale = []
        for p in self.peers.values():
            if p.configured or p.state is MemberState.UP:
                continue
            if p.node_id is None and now - p.learned_at >= never:
                stale.append((p.address, f"not heard from {never:g} s after its join"))
            elif p.node_id is not None and now - p.down_since >= down:
                stale.append((p.address, f"down for {down:g} s"))
        return stale

    def listed(self) -> int:
        """How many members our peer list names, ourselves included."""
        return 1 + sum(1 for p in self.peers.values() if p.configured)

    def never_heard(self) -> tuple[str, ...]:
        """Sorted addresses of the configured peers not heard once (a typo, a firewall)."""
        return tuple(
            sorted(a for a, p in self.peers.items() if p.configured and p.last_heard == -math.inf)
        )

    def configured_ids(self) -> tuple[str, ...]:
        """Ids of the peers our list names that we have heard (beacons carry them)."""
        return tuple(sorted({p.node_id for p in self.peers.values() if p.configured and p.node_id}))

    def tick(self, now: float) -> list[MemberChanged]:
        """Mark peers silent for ``peer_timeout`` down."""
        timeout = self.peer_timeout
        if now - self._oldest_heard < timeout:
            return []  # every peer up was heard later than that (float subtraction is
            # monotonic: their ``now - last_heard`` are no larger)
        changes = []
        oldest = math.inf
        for peer in self.peers.values():
            if peer.state is MemberState.UP:
                if now - peer.last_heard >= timeout:
                    peer.state = MemberState.DOWN
                    peer.down_since = now
                    changes.append(
                        MemberChanged(peer.node_id or "", peer.address, MemberState.DOWN)
                    )
                elif peer.last_heard < oldest:
                    oldest = peer.last_heard
        self._oldest_heard = oldest
        if changes:
            self.revision += 1
            self._recompute()
        return changes

    def said_left(self) -> set[str]:
        """Addresses of the peers down because they said they were stopping (``left``),
        not because they fell silent: they apply nothing more."""
        return {
            p.address
            for p in self.peers.values()
            if p.state is not MemberState.UP
            and p.left_epoch is not None
            and p.left_epoch == p.epoch
        }

    def up_peers(self) -> list[Peer]:
        return [p for p in self.peers.values() if p.state is MemberState.UP and p.node_id]
