"""A peer seen up again gets this node's config digests at the next tick (replication.py
``RETURN_DIGESTS_GAP``): records and commits queued on a connection that a partition or
a heartbeat closed are lost with it, and the regular round-robin anti-entropy would reach
that peer only at its turn, several ``sync_interval`` later (fake clock)."""

from __future__ import annotations

import math

from meshreg.configcenter.core import ConfigStore
from meshreg.configcenter.model import ConfigKey
from meshreg.configcenter.replication import RETURN_DIGESTS_GAP, ConfigReplicator, SendDigests

IDS = ("n0", "n1", "n2")
K = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")


def digests_to(effects: list[object]) -> list[str]:
    return [e.peer for e in effects if isinstance(e, SendDigests)]


def test_a_peer_that_comes_back_gets_digests_at_once_and_at_most_once_per_gap() -> None:
    store = ConfigStore("n0")
    store.publish(K, "a", now=0.0)
    rep = ConfigReplicator("n0", IDS, store, 0.0, sync_interval=1000.0)
    rep.set_members_up(IDS)  # both peers come up at start: the start's catch-up covers it
    assert rep.next_wake() > 0.0 and digests_to(rep.tick(0.5)) == []
    rep.set_members_up({"n0", "n2"})  # n1 cut off: nothing to send
    assert digests_to(rep.tick(5.0)) == []
    rep.set_members_up(IDS)  # healed
    assert rep.next_wake() == -math.inf
    (sent,) = [e for e in rep.tick(5.1) if isinstance(e, SendDigests)]
    assert sent.peer == "n1" and not sent.reply and [d.key for d in sent.digests] == [K]
    rep.set_members_up({"n0", "n2"})  # it flaps within the gap: the first send stands
    rep.set_members_up(IDS)
    assert digests_to(rep.tick(5.1 + RETURN_DIGESTS_GAP / 2)) == []
    rep.set_members_up({"n0", "n2"})
    rep.set_members_up(IDS)
    assert digests_to(rep.tick(5.1 + RETURN_DIGESTS_GAP)) == ["n1"]
