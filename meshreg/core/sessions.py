"""Client sessions: one renewal keeps every instance registered in the session alive.

Theory of operation
-------------------
* **What a session is.**  A client opens a session (``session_open``), renews
  it every beat interval (``session_renew``, one small message however many
  instances it holds) and registers instances *in* it (``register`` with a
  ``session`` field).  The session, not each instance, then carries the
  liveness evidence: an instance in a session is judged by its session's last
  renewal, with the usual rules (``unhealthy_after``, ``evict_after``).
  Instances registered without a session keep their per-instance beats.
* **Where the evidence lives.**  Every node holds every session (a table of
  a few hundred bytes per session, bounded by ``[limits] max_sessions``):
  the node a renewal reaches records it and replicates it to every peer (one
  entry of a ``sessions`` replication message; core/distro), so whichever
  node judges an instance's service knows how recently its session renewed.
  There is no session owner to lose: a renewal counts wherever it lands.
* **The index.**  ``SessionRecord.instances`` maps each service to the ids of
  the session's instances in it; the store keeps it in step with its table
  (``attach``/``detach`` wherever a record enters, leaves or changes session).
  An instance names its session in its record (``InstanceRecord.session``),
  which is replicated with the instance like its other fields.
  ``count`` and ``digest`` (the set as one number, model ``session_member_hash``
  summed mod 2**64) follow the index there; a renewal's answer carries both, so a
  client sees a set that differs from its own at the same count (review78 F4).
* **First sight is a renewal.**  A session a node learns of through an
  instance (a registration, a merged copy) before any renewal counts as
  renewed then: a node that restarted, caught up or adopted services judges
  nobody before ``unhealthy_after`` has passed since it learned of them, and
  the next renewal (within a beat interval) reaches it through replication.
  Nothing turns unhealthy because a node died.  Likewise a session whose latest
  renewal came through a member that left the view lately (``via``, its client's
  server): its client learns that from that server only, then moves (core/distro
  ``_relays_left``).
* **Proven.**  Like an instance that never beat (core/preservation), a
  session never renewed since it was first seen here is *unproven*: its
  instances are left out of self-preservation's count.
* **Forgetting.**  A session with no instance and no renewal for
  ``empty_session_after`` (10 s, capped by ``evict_after``; core/health) is dropped
  by the sweep (``collect``).  An empty session keeps nothing alive, so it need not
  wait ``evict_after``: a flood of empty opens that walks away holds the table for
  seconds.  A client that opens a session and registers right away fills it within
  a round trip; one that renews an empty session (every beat interval) keeps it.  A
  session forgotten here comes back with the next sign of it (a renewal, an instance
  merged from a peer), as at first sight.
* **Shares.**  Each session a client opened through this node (``session_open``,
  or a ``session_renew`` of a session unknown here) is counted against that client
  (its key's name, or its connection on a node without keys: the runtime says who),
  up to ``[limits] max_sessions_per_client`` (default ``max_sessions // 16``); the
  count drops when the session is closed or forgotten.  So one client cannot take the
  whole table from the others (review finding F-sessflood).  A session a ``register``
  creates counts in its client's share too (review13: registers naming fresh session
  ids, then deregistered and renewed, walked around the share), counted by the node
  the client sent it to, also when that node forwards it to the service's owner
  (core/distro ``_charge_session``: the owner does not know the client); sessions
  learned from peers, or created from a forward, count in no share; every session
  counts in ``max_sessions``.

Pure: no clock (times are arguments), no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator

from meshreg.model import SESSION_DIGEST_MOD, InstanceId, ServiceKey, session_key_hash

DEFAULT_MAX_SESSIONS = 100_000  # sessions per node (core/quotas.LimitsPolicy.max_sessions)


def session_label(sid: str) -> str:
    """A session id as messages and logs show it: its first 8 characters.  The id is the
    capability to renew and close the session, and node logs are read by more people
    than its client (review23: rejection lines printed whole ids)."""
    return sid[:8] + "..."


class SessionRecord:
    """One session: its namespace, liveness and the instances it holds."""

    __slots__ = (
        "id",
        "namespace",
        "last_renewed",
        "evidence",
        "alive",
        "first_seen",
        "renewed",
        "suspect",
        "instances",
        "count",
        "digest",
        "marked_at",
        "opener",
        "via",
        "access_checked",
    )

    def __init__(
        self, sid: str, namespace: str, now: float, opener: Hashable | None = None
    ) -> None:
        self.id = sid
        self.namespace = namespace
        self.last_renewed = now  # local monotonic time of the latest renewal (or first sight)
        # local time of the latest sign of life known here (a renewal seen here or by a
        # peer, a record's evidence), never first sight: what may refute a peer's judgment
        # or be told as evidence (core/registry ``seen``).  A node that restarted and
        # learnt a dead client's session from its peers took the first sight for a
        # renewal and overruled the owner's eviction (review75 F3)
        self.evidence = -math.inf
        self.alive = 0  # version stamp of the latest renewal known here (replicated)
        self.first_seen = now
        self.renewed = False  # a renewal seen after first sight (core/preservation: proven)
        self.suspect = False  # some instance may be unhealthy: a renewal heals them
        self.instances: dict[ServiceKey, set[InstanceId]] = {}
        self.count = 0  # instances held (the sum of the sets)
        # the set itself as one number (model ``session_member_hash`` summed mod 2**64),
        # told with each renewal: a client whose count matches but whose set differs (one
        # registered, another deregistered on a cut-off owner: review78 F4) sees it
        self.digest = 0
        # The renewal time (``last_renewed``) at which a health pass found the session
        # silent and lined up all its healthy instances to be marked unhealthy: the
        # session check between sweeps (core/health) skips it until it renews or gains
        # a healthy instance. -inf: not marked.
        self.marked_at = -math.inf
        self.opener = opener  # the client whose share it counts in (None: nobody's)
        # the peer whose renewal of it was the latest news here ("": ours, or none yet):
        # where views differ, a peer starting to relay that peer's renewals to another
        # first sends it these sessions' latest stamps (core/distro ``_set_relays``)
        self.via = ""
        # the access generation (runtime: ACL reloads) its instances were last checked
        # against, at a renewal by its client (core/registry ``check_session_access``);
        # -1: never, or a service entered the session since (registered through a node
        # whose ACL was another, in a rolling restart: review18 F1)
        self.access_checked = -1


class Sessions:
    """Every session this node knows, and the instances each holds."""

    def __init__(self) -> None:
        self.by_id: dict[str, SessionRecord] = {}
        self.instance_count = 0  # instances held in sessions, all sessions
        self.expired = 0  # sessions whose instances a sweep here found silent (stats)
        self.opened: dict[Hashable, int] = {}  # client -> sessions in its share ("Shares")
        self.forgotten = 0  # empty sessions the sweep dropped (stats)

    def __len__(self) -> int:
        return len(self.by_id)

    def __iter__(self) -> Iterator[SessionRecord]:
        return iter(list(self.by_id.values()))

    def get(self, sid: str) -> SessionRecord | None:
        return self.by_id.get(sid)

    def ensure(
        self, sid: str, namespace: str, now: float, opener: Hashable | None = None
    ) -> SessionRecord:
        """The session ``sid``, created (renewed at first sight) if unknown; a new one
        counts in ``opener``'s share (None: nobody's)."""
        sess = self.by_id.get(sid)
        if sess is None:
            sess = self.by_id[sid] = SessionRecord(sid, namespace, now, opener)
            if opener is not None:
                self.opened[opener] = self.opened.get(opener, 0) + 1
        return sess

    def share_of(self, client: Hashable) -> int:
        """Sessions in ``client``'s share."""
        return self.opened.get(client, 0)

    def _forget(self, sess: SessionRecord) -> None:
        opener = sess.opener
        if opener is not None:
            left = self.opened[opener] - 1
            if left:
                self.opened[opener] = left
            else:
                del self.opened[opener]

    def renew(
        self, sid: str, namespace: str, seen_at: float, alive: int, now: float
    ) -> SessionRecord:
        """A renewal seen at local time ``seen_at`` with stamp ``alive``; only newer counts."""
        sess = self.by_id.get(sid)
        if sess is None:
            sess = self.by_id[sid] = SessionRecord(sid, namespace, now)
        if seen_at > sess.last_renewed:
            sess.last_renewed = seen_at
            if seen_at > sess.first_seen:
                sess.renewed = True
        if seen_at > sess.evidence:
            sess.evidence = seen_at
        if alive > sess.alive:
            sess.alive = alive
        return sess

    def saw(self, sid: str, seen_at: float) -> None:
        """Evidence from a replicated record that the session lived at ``seen_at`` (a
        registration in it, or a renewal another node saw and stamped into the record):
        it counts as a renewal here, so the sweep does not judge on older news than the
        record carries (a healed partition: chaos ``dereg-partition``)."""
        sess = self.by_id.get(sid)
        if sess is None:
            return
        if seen_at > sess.last_renewed:
            sess.last_renewed = seen_at
            if seen_at > sess.first_seen:
                sess.renewed = True
        if seen_at > sess.evidence:
            sess.evidence = seen_at

    def last_renewed(self, sid: str) -> float:
        """When the sweep last counts the session renewed (its first sight at the least)."""
        sess = self.by_id.get(sid)
        return sess.last_renewed if sess is not None else -math.inf

    def evidence(self, sid: str) -> float:
        """When the session was last known alive (``SessionRecord.evidence``; -inf: never)."""
        sess = self.by_id.get(sid)
        return sess.evidence if sess is not None else -math.inf

    # -- the index (called by the store) ------------------------------------------------
    def attach(self, sid: str, key: ServiceKey, iid: InstanceId, now: float, healthy: bool) -> None:
        sess = self.ensure(sid, key.namespace, now)
        ids = sess.instances.get(key)
        if ids is None:
            ids = sess.instances[key] = set()
            sess.access_checked = -1  # a service its client's access was not checked for
        if iid not in ids:
            ids.add(iid)
            sess.count += 1
            sess.digest = (sess.digest + session_key_hash(key, iid)) % SESSION_DIGEST_MOD
            self.instance_count += 1
        if not healthy:
            sess.suspect = True
        else:
            sess.marked_at = -math.inf  # a healthy instance the last marking did not see

    def detach(self, sid: str, key: ServiceKey, iid: InstanceId) -> None:
        sess = self.by_id.get(sid)
        if sess is None:
            return
        ids = sess.instances.get(key)
        if ids is not None and iid in ids:
            ids.discard(iid)
            sess.count -= 1
            sess.digest = (sess.digest - session_key_hash(key, iid)) % SESSION_DIGEST_MOD
            self.instance_count -= 1
            if not ids:
                del sess.instances[key]

    def mark_suspect(self, sid: str) -> None:
        sess = self.by_id.get(sid)
        if sess is not None:
            sess.suspect = True

    def drop(self, sid: str) -> SessionRecord | None:
        sess = self.by_id.pop(sid, None)
        if sess is not None:
            self.instance_count -= sess.count
            self._forget(sess)
        return sess

    def collect(self, now: float, empty_after: float) -> int:
        """Forget sessions with no instance and no renewal for ``empty_after``
        ("Forgetting"); returns how many."""
        cutoff = now - empty_after
        stale = [s for s in self.by_id.values() if not s.count and s.last_renewed <= cutoff]
        for sess in stale:
            del self.by_id[sess.id]
            self._forget(sess)
        self.forgotten += len(stale)
        return len(stale)
