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

import pytest
from configcenter.test_config_idempotent import IDS, Net3

from meshreg.configcenter.core import AGE_SKEW_MARGIN
from meshreg.configcenter.model import ConfigKey, ConfigLimits
from meshreg.configcenter.replication import ConfigWrite, ReplyEntry

KEEP = 60.0  # s of history (keep_days, in seconds)


class Churn(Net3):
    """test_config_idempotent's three replicators, keeping ``KEEP`` s of history."""

    def __init__(self) -> None:
        super().__init__(ConfigLimits(keep_revisions=5, keep_seconds=KEEP))

    def acknowledged(self, node: str, w: ConfigWrite) -> None:
        self.write(node, w)
        self.deliver()
        for _ in range(50):  # acks and commits: a few ticks
            if self.answers(w.request):
                break
            self.tick(0.01, 0.01)
        got = self.answers(w.request)
        assert got and isinstance(got[-1], ReplyEntry), got

    def purge(self) -> None:
        self.now += KEEP + AGE_SKEW_MARGIN + 1.0  # (the age rules' clock-skew margin)
        for r in self.reps.values():
            for _ in range(1000):  # bounded steps (prune_step a call)
                if not r.store.prune(self.now):
                    break
            self.run(r.node_id, r.tick(self.now))
        self.deliver()


@pytest.mark.timeout(60)
def test_created_and_deleted_data_ids_leave_nothing_behind_once_purged() -> None:
    net = Churn()
    per_round = 300
    sizes = []
    for rnd in range(3):
        for i in range(per_round):
            key = ConfigKey("public", "DEFAULT_GROUP", f"deploy-{rnd}-{i}")
            node = IDS[i % 3]
            net.acknowledged(node, ConfigWrite(("p", rnd, i), "publish", key, {"content": "x"}))
            net.acknowledged(node, ConfigWrite(("d", rnd, i), "delete", key, {}))
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
