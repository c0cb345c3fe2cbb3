"""Anti-entropy sends only what the other side lacks, in bounded steps (replication.py,
"Repair"): a round's digests go ``DIGEST_STEP`` data ids per message with the key range
they cover; where one node is ahead it pushes the versions above the other's current
revision, not the whole history; where the current versions agree but the histories
differ, the two exchange a hash per revision kept (``SendHave``) and push the versions
of the revisions that differ only (fake clock, no network: messages are handed over by hand)."""

from __future__ import annotations

from typing import Any

from meshreg.configcenter.core import ConfigStore
from meshreg.configcenter.model import ConfigKey
from meshreg.configcenter.replication import (
    DIGEST_STEP,
    ConfigReplicator,
    SendDigests,
    SendHave,
    SendVersions,
)

IDS = ("n0", "n1")
K = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")


def pair() -> tuple[ConfigReplicator, ConfigReplicator]:
    a = ConfigReplicator("n0", IDS, ConfigStore("n0"), 0.0, sync_interval=5.0)
    b = ConfigReplicator("n1", IDS, ConfigStore("n1"), 0.0, sync_interval=1000.0)
    for r in (a, b):
        r.set_members_up(IDS)
    return a, b


def exchange(a: ConfigReplicator, b: ConfigReplicator, effects: list[Any]) -> dict[str, int]:
    """Deliver ``effects`` (from a to b) and every answer, to the end; counts what went."""
    sent = {"versions": 0, "digests": 0, "have_ids": 0, "messages": 0}
    queue = [(a, b, e) for e in effects]
    while queue:
        src, dst, e = queue.pop(0)
        sent["messages"] += 1
        if isinstance(e, SendDigests):
            sent["digests"] += len(e.digests)
            out = dst.on_digests(src.node_id, e.digests, e.reply, e.after, e.upto)
        elif isinstance(e, SendHave):
            sent["have_ids"] += sum(len(ids) for _, ids in e.items)
            out = dst.on_have(src.node_id, e.items, e.reply)
        elif isinstance(e, SendVersions):
            sent["versions"] += len(e.entries)
            out = dst.on_versions(e.entries)
        else:
            continue  # Persist: the store already holds it
        queue.extend((dst, src, o) for o in out)
    return sent


def test_the_node_ahead_pushes_only_the_versions_above_the_other_current() -> None:
    a, b = pair()
    for i in range(50):
        b.store.apply(a.store.publish(K, f"v{i}", now=float(i)))
    a.store.publish(K, "v50", now=50.0)
    steps = [e for e in a.tick(5.0) if isinstance(e, SendDigests)]
    sent = exchange(a, b, steps)
    assert sent["versions"] == 1, sent  # before: all 51 kept versions
    assert b.store.current(K) == a.store.current(K)
    assert b.store.history_hash(K) == a.store.history_hash(K)


def test_the_node_behind_asks_and_gets_only_what_it_lacks() -> None:
    a, b = pair()
    for i in range(30):
        a.store.apply(b.store.publish(K, f"v{i}", now=float(i)))
    b.store.publish(K, "v30", now=30.0)
    b.store.publish(K, "v31", now=31.0)
    sent = exchange(a, b, [e for e in a.tick(5.0) if isinstance(e, SendDigests)])
    assert sent["versions"] == 2, sent
    assert a.store.current(K) == b.store.current(K)


def test_same_current_different_histories_exchange_revision_hashes_then_the_missing() -> None:
    a, b = pair()
    versions = [a.store.publish(K, f"v{i}", now=float(i)) for i in range(40)]
    for v in versions:
        if v.revision != 7:  # b lacks revision 7 ...
            b.store.apply(v)
    marked = a.store.commit(K, 12, versions[11].origin, versions[11].md5)
    assert marked is not None  # ... and a holds revision 12 committed, b does not
    b.store.apply(b.store.publish(ConfigKey("public", "G", "only-b"), "x", now=1.0))
    assert a.store.current(K) == b.store.current(K)
    sent = exchange(a, b, [e for e in a.tick(5.0) if isinstance(e, SendDigests)])
    assert sent["versions"] == 2 + 1, sent  # the two K versions b lacked, only-b to a
    assert b.store.history_hash(K) == a.store.history_hash(K)
    assert b.store.get(K, revision=12).committed and b.store.get(K, revision=7).content == "v6"
    assert a.store.current(ConfigKey("public", "G", "only-b")) is not None
    again = exchange(a, b, [e for e in a.tick(10.0) if isinstance(e, SendDigests)])
    assert again["versions"] == 0 and again["have_ids"] == 0, again  # converged: quiet


def test_a_round_goes_in_bounded_steps_that_cover_every_data_id() -> None:
    a, b = pair()
    n = 2 * DIGEST_STEP + 10
    keys = [ConfigKey("public", "G", f"d{i:05d}") for i in range(n)]
    for i, key in enumerate(keys):
        a.store.publish(key, "x", now=1.0)
        if i % 3 == 0:
            b.store.apply(a.store.current(key))  # type: ignore[arg-type]
    b.store.publish(ConfigKey("public", "G", "d00001x"), "y", now=1.0)  # only b, mid-range
    b.store.publish(ConfigKey("public", "H", "zz"), "y", now=1.0)  # only b, past a's last
    steps: list[SendDigests] = []
    now = 5.0
    steps += [e for e in a.tick(now) if isinstance(e, SendDigests)]
    assert len(steps) == 1 and len(steps[0].digests) == DIGEST_STEP
    while a.next_wake() <= now + 0.1:  # the next steps, one per wake-up
        now = a.next_wake()
        out = [e for e in a.tick(now) if isinstance(e, SendDigests)]
        assert len(out) == 1 and len(out[0].digests) <= DIGEST_STEP
        steps += out
    assert len(steps) == 3 and steps[-1].upto is None and steps[0].after is None
    assert [s.after for s in steps[1:]] == [s.upto for s in steps[:-1]]
    assert sum(len(s.digests) for s in steps) == n
    sent = exchange(a, b, list(steps))
    assert sent["versions"] == n - len(range(0, n, 3)) + 2, sent
    assert set(a.store.keys()) == set(b.store.keys())
