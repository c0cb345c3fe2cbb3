"""Config quotas (meshreg/configcenter/core.py "Quotas"; review14a F3, review14b F3): live data
ids per namespace (``max_configs_per_namespace``) and per node (``max_configs``), checked
on a create only (updates and deletes always go), never on versions merged from peers;
deleted data ids do not count, and are bounded by ``max_tombstones`` (the oldest purged
first, before ``keep_seconds``).  Fake clock: ``now`` is a number."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from meshreg.config import ConfigError, load_node_config
from meshreg.configcenter.core import ConfigStore, Outcome
from meshreg.configcenter.model import (
    DEFAULT_MAX_CONFIGS,
    DEFAULT_MAX_CONFIGS_PER_NAMESPACE,
    VERSION_BYTES,
    ConfigEntry,
    ConfigKey,
    ConfigLimits,
    ConfigRejected,
)
from meshreg.errors import ErrorCode

DAY = 86400.0


def store(node: str = "n1", **limits: object) -> ConfigStore:
    return ConfigStore(node, ConfigLimits(**limits))  # type: ignore[arg-type]


def refused(fn: object, *args: object, **kw: object) -> ConfigRejected:
    with pytest.raises(ConfigRejected) as info:
        fn(*args, **kw)  # type: ignore[operator]
    return info.value


def key(ns: str, i: int, group: str = "g") -> ConfigKey:
    return ConfigKey(ns, group, f"d{i}")


def recount(s: ConfigStore) -> dict[str, int]:
    """The live data ids per namespace, counted from scratch (what the kept counts must be)."""
    out: dict[str, int] = {}
    for k in s.keys_after(None):
        cur = s.current(k)
        if cur is not None and not cur.deleted:
            out[k.namespace] = out.get(k.namespace, 0) + 1
    return out


def check_counts(s: ConfigStore) -> None:
    counts = recount(s)
    assert s.live_by_namespace == counts
    assert s.live_configs == sum(counts.values()) == s.stats()["configs"]
    deleted = sum(1 for k in s.keys_after(None) if (c := s.current(k)) is not None and c.deleted)
    assert s.stats()["tombstones"] == deleted


def test_the_default_per_namespace_limit_is_well_below_the_node_limit() -> None:
    assert 0 < DEFAULT_MAX_CONFIGS_PER_NAMESPACE <= DEFAULT_MAX_CONFIGS // 5


def test_one_namespace_full_leaves_the_others_free() -> None:
    s = store(max_configs_per_namespace=3, max_configs=100)
    for i in range(3):
        s.publish(key("a", i), "x", now=1.0)
    before = (s.stats(), len(s))
    exc = refused(s.publish, key("a", 9), "x", now=2.0)
    assert exc.code is ErrorCode.RESOURCE_EXHAUSTED
    # names the namespace, the count, the limit and the setting to raise
    for part in ("namespace 'a'", "holds 3 live configs", "max_configs_per_namespace 3", "a/g/d9"):
        assert part in exc.message, exc.message
    assert exc.reason == "max_configs_per_namespace"
    after = s.stats()
    assert after["rejected"] == {"max_configs_per_namespace": 1}
    assert (after["configs"], len(s)) == (before[0]["configs"], before[1])  # nothing changed
    assert s.current(key("a", 9)) is None
    # another namespace, an update and a delete all go
    s.publish(key("b", 0), "x", now=2.0)
    s.publish(key("a", 0), "y", now=2.0)
    s.delete(key("a", 1), now=3.0)
    # a delete gives its slot back at once (the tombstone does not count)
    s.publish(key("a", 9), "x", now=3.0)
    assert s.namespace_counts() == {"a": 3, "b": 1}
    check_counts(s)


def test_re_creating_a_deleted_data_id_is_a_create() -> None:
    """A publish or a rollback of a deleted data id makes it live again: checked; a gray
    publish of a live one is an update: not checked."""
    s = store(max_configs_per_namespace=2)
    s.publish(key("a", 0), "v1", now=1.0)
    s.delete(key("a", 0), now=2.0)
    s.publish(key("a", 1), "x", now=2.0)
    s.publish(key("a", 2), "x", now=2.0)
    assert refused(s.publish, key("a", 0), "v2", now=3.0).reason == "max_configs_per_namespace"
    assert refused(s.rollback, key("a", 0), 1, now=3.0).reason == "max_configs_per_namespace"
    s.publish_gray(key("a", 1), "gray", labels={"zone": "x"}, now=3.0)
    s.promote(key("a", 1), now=3.0)
    s.delete(key("a", 2), now=4.0)
    assert s.rollback(key("a", 0), 1, now=5.0).content == "v1"
    check_counts(s)


def test_zero_means_no_per_namespace_limit_only_max_configs() -> None:
    s = store(max_configs_per_namespace=0, max_configs=4)
    for i in range(4):
        s.publish(key("a", i), "x", now=1.0)
    exc = refused(s.publish, key("b", 0), "x", now=1.0)
    assert exc.reason == "max_configs" and exc.code is ErrorCode.RESOURCE_EXHAUSTED
    for part in ("holds 4 live configs", "max_configs 4", "1 namespaces", "deleted ones do not"):
        assert part in exc.message, exc.message


def test_deleted_data_ids_do_not_count_against_max_configs() -> None:
    """review14a F3 in the core: fill the node, delete everything, create again at once."""
    s = store(max_configs=50, max_configs_per_namespace=0)
    for i in range(50):
        s.publish(key("public", i, "sandbox"), "x", now=1.0)
    assert refused(s.publish, key("public", 0, "prod"), "y", now=1.0).reason == "max_configs"
    for i in range(50):
        s.delete(key("public", i, "sandbox"), now=2.0)
    assert s.stats()["configs"] == 0 and s.stats()["tombstones"] == 50
    s.publish(key("public", 0, "prod"), "y", now=2.0)  # no wait for keep_days
    check_counts(s)


def test_versions_from_peers_are_never_refused_for_a_quota() -> None:
    """The owner decided; a replica that refused would keep the nodes apart.  Two owners
    that each admitted a create at the limit: both stored everywhere, and the next local
    create is refused."""
    owner1, owner2, replica = (store(n, max_configs_per_namespace=2) for n in ("n1", "n2", "n3"))
    owner1.publish(key("a", 0), "x", now=1.0)
    e1 = owner1.publish(key("a", 1), "x", now=1.0)
    e2 = owner2.publish(key("a", 2), "x", now=1.0)
    for e in (*(owner1.entries(key("a", 0))), e1, e2):
        out = replica.apply(e)
        assert out.outcome is Outcome.CURRENT and out.ack
    assert replica.live_by_namespace == {"a": 3}  # over its limit: the owners decided
    assert refused(replica.publish, key("a", 7), "x", now=2.0).reason == (
        "max_configs_per_namespace"
    )
    assert "holds 3 live configs" in refused(replica.publish, key("a", 8), "x", now=2.0).message
    # a replicated delete frees a slot: counts follow the current version wherever it comes from
    replica.apply(owner1.delete(key("a", 0), now=3.0))  # 2 live: still at the limit
    assert refused(replica.publish, key("a", 7), "x", now=3.0).reason == (
        "max_configs_per_namespace"
    )
    replica.apply(owner1.delete(key("a", 1), now=3.0))
    replica.publish(key("a", 7), "x", now=4.0)
    check_counts(replica)


def test_every_node_counts_the_same_whatever_the_order() -> None:
    """Random creates, deletes, re-creates and concurrent versions at one revision, applied
    to three replicas in three orders: the same counts, equal to a recount."""
    rnd = random.Random(7)
    owners = [store(n, max_configs_per_namespace=0) for n in ("n1", "n2")]
    made: list[ConfigEntry] = []
    for step in range(400):
        owner = owners[rnd.randrange(2)]
        k = key(rnd.choice("abc"), rnd.randrange(12))
        cur = owner.current(k)
        if cur is not None and not cur.deleted and rnd.random() < 0.4:
            made.append(owner.delete(k, now=float(step)))
        else:
            made.append(owner.publish(k, f"c{step}", now=float(step)))
        if rnd.random() < 0.5:  # the other owner hears it (sometimes not: concurrent revisions)
            owners[1 - owners.index(owner)].apply(made[-1])
    results = []
    for seed in range(3):
        replica = store("r", max_configs_per_namespace=0)
        order = made[:]
        random.Random(seed).shuffle(order)
        for e in order:
            replica.apply(e)
        check_counts(replica)
        results.append(dict(replica.live_by_namespace))
    assert results[0] == results[1] == results[2]
    for o in owners:
        check_counts(o)


def test_committed_flag_and_purge_keep_the_counts() -> None:
    s = store()
    e = s.publish(key("a", 0), "x", now=1.0)
    assert s.commit(e.key, e.revision, e.origin, e.md5) is not None
    d = s.delete(key("a", 0), now=2.0)
    s.commit(d.key, d.revision, d.origin, d.md5)
    assert s.live_by_namespace == {} and s.stats()["tombstones"] == 1
    s.prune(2.0 + 31 * DAY)  # keep_seconds (30 days) purges the tombstone
    assert s.current(key("a", 0)) is None and s.stats()["tombstones"] == 0
    check_counts(s)


def test_deleted_data_ids_beyond_max_tombstones_are_purged_oldest_first() -> None:
    """Bounded separately: at most max_tombstones deleted data ids (each with its kept
    history) wait for keep_days; beyond it the oldest go at the next prunes, well before
    keep_seconds (fake clock: one second later), in steps of prune_step versions, and a
    data id created again goes on above its purged revision."""
    s = store(max_tombstones=3, prune_step=4, max_configs_per_namespace=0)
    for i in range(6):
        s.publish(key("a", i), "x", now=1.0)
        s.publish(key("a", i), "y", now=1.0)  # two versions, then the tombstone: three each
    for i in range(6):
        s.delete(key("a", i), now=2.0 + i)
    assert s.stats()["tombstones"] == 6 and s.tombstones_over == 3
    removed = s.prune(10.0)
    assert {e.key for e in removed} == {key("a", 0)}  # 3 versions; a second would pass 4
    removed = s.prune(11.0) + s.prune(12.0)
    assert {e.key for e in removed} == {key("a", 1), key("a", 2)}
    assert s.tombstones_over == 0 and s.stats()["tombstones"] == 3
    assert s.stats()["tombstones_purged_early"] == 3 and s.floors_changed
    assert [k.data_id for k in s.keys_after(None)] == ["d3", "d4", "d5"]  # the newest stay
    again = s.publish(key("a", 0), "z", now=13.0)
    assert again.revision > 3  # above the purged tombstone's revision, never back to 1
    check_counts(s)


def test_a_delete_that_revives_nothing_is_not_counted_as_live() -> None:
    """An import's tombstone for a data id never held (revision_floor): a tombstone only."""
    s = store(max_configs_per_namespace=1)
    s.publish(key("a", 0), "x", now=1.0)
    s.delete(key("a", 5), now=1.0, revision_floor=7)
    assert s.live_by_namespace == {"a": 1} and s.stats()["tombstones"] == 1
    check_counts(s)


def test_data_ids_held_are_bounded_for_peers_too() -> None:
    """The memory backstop: 2 x (max_configs + max_tombstones) data ids held; a peer's
    version of a new data id beyond it is refused (counted), a held one still merges."""
    s = store(max_configs=1, max_tombstones=1, max_configs_per_namespace=0)
    peer = store("n2", max_configs=100, max_configs_per_namespace=0)
    versions = [peer.publish(key("a", i), "x", now=1.0) for i in range(5)]
    assert [s.apply(v).outcome for v in versions] == [Outcome.CURRENT] * 4 + [Outcome.REFUSED]
    assert s.stats()["rejected"] == {"replica_refused": 1}
    assert s.apply(peer.publish(key("a", 0), "y", now=2.0)).outcome is Outcome.CURRENT


def test_stats_list_the_largest_namespaces_and_the_limits() -> None:
    s = store(max_configs_per_namespace=0)
    for ns, n in (("small", 1), ("big", 5), ("mid", 3)):
        for i in range(n):
            s.publish(key(ns, i), "x", now=1.0)
    st = s.stats()
    assert list(st["configs_by_namespace"].items()) == [("big", 5), ("mid", 3), ("small", 1)]
    assert st["namespaces"] == 3 and st["configs"] == 9
    assert st["limits"]["max_configs_per_namespace"] == 0
    assert s.namespace_counts(1) == {"big": 5}


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_configs_per_namespace"):
        ConfigLimits(max_configs_per_namespace=-1)
    with pytest.raises(ValueError, match="max_tombstones"):
        ConfigLimits(max_tombstones=0)
    assert ConfigLimits().held_limit == 2 * (ConfigLimits().max_configs + 100_000)


def test_the_settings_are_read_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("[config]\nmax_configs_per_namespace = 0\nmax_tombstones = 500\n")
    limits = load_node_config(path).config_limits()
    assert (limits.max_configs_per_namespace, limits.max_tombstones) == (0, 500)
    assert replace(limits, max_tombstones=1).max_tombstones == 1
    path.write_text("[config]\nmax_configs_per_namespace = -5\n")
    with pytest.raises(ConfigError, match="max_configs_per_namespace"):
        load_node_config(path).config_limits()
    path.write_text('[config]\nmax_tombstones = "many"\n')
    with pytest.raises(ConfigError, match="max_tombstones must be a number"):
        load_node_config(path)


def test_creates_and_deletes_faster_than_the_purge_meet_the_backstop_until_it_catches_up() -> None:
    """Local creates of new data ids stop at held_limit (deleted ones waiting for their
    purge), with a message saying to retry; the next prune makes room."""
    s = store(max_configs=1, max_tombstones=1, max_configs_per_namespace=0)
    for i in range(4):  # no prune in between: 4 tombstones, held_limit 2 x (1 + 1)
        s.publish(key("a", i), "x", now=1.0)
        s.delete(key("a", i), now=1.0)
    exc = refused(s.publish, key("a", 9), "x", now=1.0)
    assert exc.reason == "held_limit" and exc.code is ErrorCode.RESOURCE_EXHAUSTED
    for part in ("holds 4 data ids", "4 of them deleted", "max_tombstones 1", "retry"):
        assert part in exc.message, exc.message
    s.publish(key("a", 0), "again", now=1.0)  # a held one: no backstop, only the quotas
    s.prune(2.0)
    s.delete(key("a", 0), now=2.0)
    s.prune(2.1)
    assert s.stats()["tombstones"] == 1
    s.publish(key("a", 9), "x", now=2.2)
    check_counts(s)


def test_one_namespace_takes_at_most_its_share_of_the_content_bytes() -> None:
    """review23 F4: one tenant's publishes of its own data ids filled max_total_bytes and no
    other namespace could publish 4 bytes (for as long as the history is kept).  Each kept
    version counts its content plus VERSION_BYTES (review85 F1)."""
    one = 10 + VERSION_BYTES  # a version of 10 characters
    s = store(max_content_bytes=10, max_bytes_per_namespace=2 * one, max_total_bytes=10 * one)
    s.publish(key("a", 0), "x" * 10, now=1.0)
    s.publish(key("a", 0), "y" * 10, now=2.0)  # history: both versions count
    exc = refused(s.publish, key("a", 1), "z", now=3.0)
    assert exc.code is ErrorCode.RESOURCE_EXHAUSTED and exc.reason == "max_bytes_per_namespace"
    for part in (f"namespace 'a' holds {2 * one} bytes", f"max_bytes_per_namespace {2 * one}",
                 "a/g/d1"):  # fmt: skip
        assert part in exc.message, exc.message
    assert s.current(key("a", 1)) is None
    s.publish(key("b", 0), "w" * 10, now=3.0)  # another namespace: room
    s.delete(key("a", 0), now=4.0)  # a delete always goes (its tombstone counts too)
    assert s.bytes_by_namespace == {"a": 2 * one + VERSION_BYTES, "b": one}
    assert s.held_bytes == 3 * one + VERSION_BYTES and s.content_bytes == 30
    assert s.stats()["limits"]["max_bytes_per_namespace"] == 2 * one
    with pytest.raises(ValueError, match="max_bytes_per_namespace"):
        ConfigLimits(max_content_bytes=10, max_bytes_per_namespace=one - 1)


def test_a_namespace_held_above_the_default_limit_keeps_room_after_an_upgrade() -> None:
    """review41 F1: the per-namespace limit came with an upgrade; a namespace an older
    version let grow past it refused every write after the upgrade, a 4-byte publish
    included. Under the default limit (not set by the operator) such a namespace keeps a
    quarter of the limit as room above what it held when the node loaded or caught up;
    a limit the operator set is kept as set."""
    one = 10 + VERSION_BYTES  # a version of 10 characters
    limit = 8 * one
    old = store("n2", max_content_bytes=10, max_bytes_per_namespace=0)  # the older version
    versions = [old.publish(key("a", i), "x" * 10, now=1.0) for i in range(12)]  # 12 held
    for room_for_held, fits in ((True, True), (False, False)):
        s = store(max_content_bytes=10, max_bytes_per_namespace=limit, room_for_held=room_for_held)
        for e in versions:
            s.apply(e)  # from disk or peers: never refused
        raised = s.room_for_held()
        if fits:
            room = 12 * one + limit // 4  # a quarter of the limit above what it holds
            assert raised == {"a": (12 * one, room)}
            s.publish(key("a", 20), "y" * 10, now=2.0)  # within its room
            s.publish(key("a", 21), "y" * 10, now=2.0)  # the room exactly
            exc = refused(s.publish, key("a", 22), "z", now=3.0)  # past it
            assert f"max_bytes_per_namespace {room}" in exc.message, exc.message
        else:  # the operator's own limit: as set
            assert raised == {}
            assert refused(s.publish, key("a", 20), "y", now=2.0).reason == (
                "max_bytes_per_namespace"
            )
        for i in range(8):  # another namespace: the limit as set
            s.publish(key("b", i), "w" * 10, now=3.0)
        assert refused(s.publish, key("b", 8), "w", now=3.0).reason == "max_bytes_per_namespace"

