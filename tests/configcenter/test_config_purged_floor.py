"""A purged tombstone's revision stays taken (review44 F5).

A delete acknowledged at revision 2 by n2..n4, then purged there (``max_tombstones``, or
``keep_days``: only the bucket's floor stays); an old member, away meanwhile, brings back
revision 1 of the data id (the documented resurrection). Before, the nodes that purged
made or acknowledged the next write at revision 2 (``prev.revision + 1``: the floor was
used only for a data id not held), and the tombstone kept on a cut-off node beat it at
the heal: an acknowledged publish lost.  Now every new revision goes above the purged
floor, and a new owner's catch-up takes the floor of the data id's bucket from the peers
it asks (a majority that acknowledged the tombstone holds it, or its floor).
"""

from __future__ import annotations

from meshreg.configcenter.core import AGE_SKEW_MARGIN, ConfigStore, floor_bucket
from meshreg.configcenter.model import ConfigEntry, ConfigKey, ConfigLimits, content_md5
from meshreg.configcenter.replication import ConfigReplicator, SendKeyVersions
from meshreg.wire.config_peer import decode_config_peer, encode_replication_effect

K = ConfigKey("public", "DEFAULT_GROUP", "a.txt")
IDS = ("n0", "n1", "n2")
DAY = 86400.0


def purged(node: str, restarted: bool = True) -> ConfigStore:
    """A store that held ``K`` at 1, deleted it at 2 and purged the tombstone; then
    (``restarted``) started again: only the bucket's floor stays (from its file), not
    the memory of what it purged, which refuses the old copy until then."""
    s = ConfigStore(node, ConfigLimits(keep_seconds=DAY))
    s.publish(K, "v1", now=0.0)
    deleted = s.delete(K, now=1.0)
    assert deleted.revision == 2
    s.commit(K, 2, deleted.origin, deleted.md5)  # acknowledged
    while s.prune(2 * DAY):
        pass
    assert s.current(K) is None and s.purged_floor(K) == 2
    if not restarted:
        return s
    again = ConfigStore(node, ConfigLimits(keep_seconds=DAY))
    again.purged_floors.update(s.purged_floors)  # (sqlite_store ``load_floors``)
    return again


def test_the_old_copy_is_refused_while_the_node_remembers_the_purge() -> None:
    """(core ``_purge``: the last PURGED_KEPT data ids purged are remembered.)"""
    s = purged("n1", restarted=False)
    assert s.apply(old_v1()).outcome.name == "REFUSED" and s.current(K) is None
    assert s.publish(K, "v2", now=2 * DAY).revision == 3


def old_v1() -> ConfigEntry:
    """Revision 1 as a member away since before the delete still holds it."""
    return ConfigEntry(K, 1, "n0", "v1", "text", content_md5("v1"), 0.0, committed=True)


def test_a_write_over_a_resurrected_version_goes_above_the_purged_floor() -> None:
    s = purged("n1")
    s.apply(old_v1())  # the old member's copy: the data id is back at revision 1
    assert s.current(K).revision == 1  # type: ignore[union-attr]
    assert s.publish(K, "v2", now=2 * DAY).revision == 3  # before: 2, the tombstone's
    t = purged("n1")
    t.apply(old_v1())
    assert t.publish_gray(K, "g", labels={"a": "b"}, now=2 * DAY).revision == 3  # (derived)


def test_a_new_owners_catch_up_takes_the_purged_floor_of_the_peers_it_asks() -> None:
    """The owner (here n0, the old member itself) never saw the delete: the peers'
    answers to its catch-up carry their floor of the data id's bucket, on the wire too."""
    peer = ConfigReplicator("n1", IDS, purged("n1"), 0.0)
    (answer,) = peer.on_fetch("n0", K)
    assert isinstance(answer, SendKeyVersions) and answer.floor == 2 and answer.entries == ()
    (frames,) = encode_replication_effect("n1", answer)
    decoded = decode_config_peer(frames[1])
    assert decoded.floor == 2  # type: ignore[union-attr]
    owner_store = ConfigStore("n0", ConfigLimits())
    owner_store.apply(old_v1())
    owner = ConfigReplicator("n0", IDS, owner_store, 0.0)
    owner.on_key_versions(1.0, "n1", K, (), "", False, decoded.floor)  # type: ignore[union-attr]
    assert owner_store.purged_floors == {floor_bucket(K): 2} and owner_store.floors_changed
    assert owner_store.publish(K, "v2", now=2.0).revision == 3
    (plain,) = ConfigReplicator("n2", IDS, ConfigStore("n2", ConfigLimits()), 0.0).on_fetch("n0", K)
    assert isinstance(plain, SendKeyVersions) and plain.floor == 0
    (frames,) = encode_replication_effect("n2", plain)
    assert b"floor" not in frames[1]  # absent when 0 (older nodes: the same)


def test_the_age_purge_leaves_a_clock_skews_margin() -> None:
    """review44 F5, with a clock: a tombstone's ``modified`` is its writer's clock, and one
    25 s behind had it purged 25 s early on every peer (a member away for less than
    ``keep_days`` then brought the data id back).  The age rules wait AGE_SKEW_MARGIN (the
    skew a member may have) more; beyond it, a node counts itself out."""
    s = ConfigStore("n1", ConfigLimits(keep_seconds=100.0))
    s.publish(K, "v1", now=0.0)
    s.delete(K, now=1.0)
    assert s.prune(1.0 + 100.0 + AGE_SKEW_MARGIN - 1.0) == []
    assert s.current(K) is not None and s.current(K).deleted  # type: ignore[union-attr]
    assert s.prune(1.0 + 100.0 + AGE_SKEW_MARGIN + 1.0) != [] and s.current(K) is None
