"""review39 F1: ``ConfigReplicator._fresh`` (configcenter/replication.py:426, "data id ->
the view it was last caught up in") gains an entry for every data id whose first write of
a view was caught up on this node (replication.py:758) and loses it only when the view
changes (a member down or up, learners, owners: ``_fresh.clear()``).  In a cluster whose
members stay up, every data id ever written keeps its entry (its ConfigKey and strings
alive) after it was deleted and its tombstone purged (``keep_days``): created-and-deleted
data ids (per deploy, per tenant) grow the table without bound.  docs/CONFIG.md:120-121
("Memory: every data id held is bounded by 2 x (max_configs + max_tombstones)") and
CONFIG.md:195 ("There is no unbounded table").

Replicators on a fake clock, three members up throughout (the harness of
tests/configcenter/test_config_idempotent.py: effects delivered in order).  Each round
creates and deletes data ids; once every tombstone is purged the stores hold nothing, and
the table should hold no more than what the stores hold.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from meshreg.configcenter.core import ConfigStore
from meshreg.configcenter.model import ConfigKey, ConfigLimits
from meshreg.configcenter.replication import (
    ConfigReplicator,
    ConfigWrite,
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
)

IDS = ("n0", "n1", "n2")
KEEP = 60.0  # s of history (keep_days, in seconds)


class Net3:
    def __init__(self) -> None:
        self.now = 0.0
        limits = ConfigLimits(keep_revisions=5, keep_seconds=KEEP)
        self.reps = {i: ConfigReplicator(i, IDS, ConfigStore(i, limits), 0.0) for i in IDS}
        for r in self.reps.values():
            r.set_members_up(IDS)
        self.queue: deque[tuple[str, str, Any]] = deque()
        self.replies: list[Any] = []

    def run(self, node: str, effects: list[Any]) -> None:
        for e in effects:
            if isinstance(e, Persist):
                continue
            if isinstance(e, ReplyEntry | ReplyError):
                self.replies.append(e)
            else:
                self.queue.append((node, e.peer, e))

    def deliver(self) -> None:
        while self.queue:
            src, dst, m = self.queue.popleft()
            r = self.reps[dst]
            if isinstance(m, ForwardWrite):
                out = r.write(self.now, m.write)
            elif isinstance(m, SendRecord):
                out = r.on_record(self.now, src, m.entry)
            elif isinstance(m, SendAck):
                out = r.on_ack(self.now, src, m.key, m.revision, m.origin, m.md5, m.ok, m.current)
            elif isinstance(m, SendCommit):
                out = r.on_commit(m.key, m.revision, m.origin, m.md5)
            elif isinstance(m, FetchVersions):
                out = r.on_fetch(src, m.key, m.request_id)
            elif isinstance(m, SendKeyVersions):
                out = r.on_key_versions(self.now, src, m.key, m.entries, m.request_id)
            elif isinstance(m, SendDigests):
                out = r.on_digests(src, m.digests, m.reply, m.after, m.upto)
            elif isinstance(m, SendHave):
                out = r.on_have(src, m.items, m.reply)
            else:
                out = r.on_versions(m.entries)
            self.run(dst, out)

    def write(self, node: str, w: ConfigWrite) -> Any:
        self.run(node, self.reps[node].write(self.now, w))
        self.deliver()
        for _ in range(50):  # acks and commits: a few ticks
            if any(getattr(r, "request", None) == w.request for r in self.replies):
                break
            self.now += 0.01
            for i, r in self.reps.items():
                self.run(i, r.tick(self.now))
            self.deliver()
        got = [r for r in self.replies if r.request == w.request]
        assert got and isinstance(got[-1], ReplyEntry), got
        return got[-1]

    def purge(self) -> None:
        self.now += KEEP + 1.0
        for r in self.reps.values():
            for _ in range(1000):  # bounded steps (prune_step a call)
                if not r.store.prune(self.now):
                    break
            self.run(r.node_id, r.tick(self.now))
        self.deliver()


@pytest.mark.timeout(60)
def test_created_and_deleted_data_ids_leave_nothing_behind_once_purged() -> None:
    net = Net3()
    per_round = 300
    sizes = []
    for rnd in range(3):
        for i in range(per_round):
            key = ConfigKey("public", "DEFAULT_GROUP", f"deploy-{rnd}-{i}")
            node = IDS[i % 3]
            net.write(node, ConfigWrite(("p", rnd, i), "publish", key, {"content": "x"}))
            net.write(node, ConfigWrite(("d", rnd, i), "delete", key, {}))
        net.purge()
        held = [len(list(r.store.keys())) for r in net.reps.values()]
        assert held == [0, 0, 0], f"the stores still hold data ids after the purge: {held}"
        sizes.append(sum(len(r._fresh) for r in net.reps.values()))
        assert net.reps["n0"].up == frozenset(IDS)  # the view never changed
    # nothing is held any more (every data id deleted and purged), round after round
    assert sizes[-1] <= per_round, (
        f"ConfigReplicator._fresh entries (3 nodes) after rounds of {per_round} created, "
        f"deleted and purged data ids: {sizes}; the stores hold none of them"
    )
