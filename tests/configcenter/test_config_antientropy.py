"""Anti-entropy sends only what the other side lacks, in bounded steps (replication.py,
"Repair"): a round's digests go ``DIGEST_STEP`` data ids per message with the key range
they cover; where one node is ahead it pushes the versions above the other's current
revision, not the whole history; where the current versions agree but the histories
differ, the two exchange a hash per revision kept (``SendHave``) and push the versions
of the revisions that differ only (fake clock, no network: messages are handed over by hand)."""

from __future__ import annotations

from typing import Any

from meshreg.configcenter.core import ConfigStore
from meshreg.configcenter.model import ConfigKey, ConfigLimits
from meshreg.configcenter.replication import (
    DIGEST_STEP,
    DIGEST_STEP_GAP,
    DIGEST_STEP_HASHES,
    HAVE_STEP_KEYS,
    HAVE_STEP_REVISIONS,
    PUSH_STEP_BYTES,
    PUSH_STEP_VERSIONS,
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


def exchange(
    a: ConfigReplicator,
    b: ConfigReplicator,
    effects: list[Any],
    now: float = 5.0,
    steps: list[tuple[float, SendVersions]] | None = None,
) -> dict[str, int]:
    """Deliver ``effects`` (from a to b) and every answer, to the end, ticking both nodes
    through the push steps that follow (``DIGEST_STEP_GAP`` apart, on the fake clock; not
    the next round); counts what went.  ``steps``: each ``SendVersions`` with its time."""
    sent = {"versions": 0, "digests": 0, "have_ids": 0, "messages": 0, "version_messages": 0}
    queue = [(a, b, e) for e in effects]
    while True:
        while queue:
            src, dst, e = queue.pop(0)
            sent["messages"] += 1
            if isinstance(e, SendDigests):
                sent["digests"] += len(e.digests)
                out = dst.on_digests(src.node_id, e.digests, e.reply, e.after, e.upto, now)
            elif isinstance(e, SendHave):
                sent["have_ids"] += sum(len(ids) for _, ids in e.items)
                out = dst.on_have(src.node_id, e.items, e.reply, now, e.keep)
            elif isinstance(e, SendVersions):
                sent["versions"] += len(e.entries)
                sent["version_messages"] += 1
                if steps is not None:
                    steps.append((now, e))
                out = dst.on_versions(e.entries)
            else:
                continue  # Persist: the store already holds it
            queue.extend((dst, src, o) for o in out)
        wake = min(a.next_wake(), b.next_wake())
        if wake > now + 1.0:  # the next round, not a step of this one
            return sent
        now = max(now, wake)
        queue += [(a, b, e) for e in a.tick(now)] + [(b, a, e) for e in b.tick(now)]


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


def test_a_node_keeping_fewer_revisions_is_not_pushed_what_it_prunes_again() -> None:
    """keep_revisions 100 and 5: the history hashes never agree (each covers its own
    window), but a round pushes nothing outside the smaller window (before: the 25 older
    revisions of each data id, pruned again there within a second, at every round); a
    revision inside it that the smaller node lacks still goes."""
    a = ConfigReplicator("n0", IDS, ConfigStore("n0"), 0.0, sync_interval=5.0)
    b = ConfigReplicator("n1", IDS, ConfigStore("n1", ConfigLimits(keep_revisions=5)), 0.0,
                         sync_interval=1000.0)  # fmt: skip
    for r in (a, b):
        r.set_members_up(IDS)
    keys = [ConfigKey("public", "G", f"k{i}") for i in range(20)]
    for i in range(30):
        for key in keys:
            entry = a.store.publish(key, f"{key.data_id} {i}", now=float(i))
            if not (key == keys[0] and entry.revision == 28):  # b lacks k0 r28
                b.store.apply(entry)
    for _ in range(100):  # bounded steps (a step may find nothing and stop)
        b.store.prune(30.0)
    assert len(b.store.kept_versions(keys[0])) == 4 and len(a.store.kept_versions(keys[0])) == 30
    for now in (5.0, 10.0):  # two rounds, both ways
        sent = exchange(a, b, [e for e in a.tick(now) if isinstance(e, SendDigests)], now)
        assert sent["versions"] == (1 if now == 5.0 else 0), sent  # k0 r28 (once)
        sent = exchange(b, a, [e for e in b.tick(now + 1000.0) if isinstance(e, SendDigests)],
                        now)  # fmt: skip
        assert sent["versions"] == 0, sent
    assert [e.revision for e in b.store.kept_versions(keys[0])] == [26, 27, 28, 29, 30]


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


def test_a_rounds_step_is_cut_by_the_history_hashes_it_would_work_out() -> None:
    """A step stops before the data id that would take it past ``DIGEST_STEP_HASHES``
    revisions to hash (a data id whose hash is not cached costs its revisions held; the
    first goes whatever it costs), so a round after many changes is many short loop turns,
    not one: 240 data ids of 100 revisions were one step of 14-19 ms of CPU; every data id
    is still covered once, in order; with the hashes warm the round is one step again."""
    a, b = pair()
    a.store.limits = ConfigLimits(keep_revisions=None)  # (nothing pruned: all held)
    per = 100
    n = 3 * DIGEST_STEP_HASHES // per  # 61 data ids: 6,100 revisions to hash
    keys = [ConfigKey("public", "G", f"d{i:03d}") for i in range(n)]
    for r in range(per):
        for key in keys:
            a.store.publish(key, f"{r}", now=1.0)
    assert a.store.hash_work(keys[0]) == per
    big = ConfigKey("public", "G", "d010x")  # more than a step's budget alone
    for r in range(DIGEST_STEP_HASHES + 5):
        a.store.publish(big, f"{r}", now=1.0)

    def round_at(now: float) -> list[SendDigests]:
        steps = [e for e in a.tick(now) if isinstance(e, SendDigests)]
        while a.next_wake() <= now + 1.0:  # its next steps, one per wake-up
            now = a.next_wake()
            steps += [e for e in a.tick(now) if isinstance(e, SendDigests)]
        return steps

    steps = round_at(5.0)
    work = [sum(len(a.store.entries(d.key)) for d in s.digests) for s in steps]
    assert all(
        w <= DIGEST_STEP_HASHES or len(s.digests) == 1 for w, s in zip(work, steps, strict=True)
    )
    assert [len(s.digests) for s in steps if any(d.key == big for d in s.digests)] == [1]
    assert len(steps) >= 4, [len(s.digests) for s in steps]
    assert steps[0].after is None and steps[-1].upto is None
    assert [s.after for s in steps[1:]] == [s.upto for s in steps[:-1]]
    assert [d.key for s in steps for d in s.digests] == sorted([*keys, big])
    assert all(a.store.hash_work(k) == 0 for k in [*keys, big])  # worked out: cached
    again = round_at(10.0)  # nothing changed since: one step, as before the bound
    assert len(again) == 1 and len(again[0].digests) == n + 1
    a.store.publish(keys[5], "new", now=11.0)  # a change costs its data id again
    assert a.store.hash_work(keys[5]) == per + 1 and a.store.hash_work(keys[6]) == 0
    sent = exchange(a, b, steps, 12.0)  # and the steps still repair the peer
    assert sent["versions"] > 0 and set(b.store.keys()) == {*keys, big}


def big_table(a: ConfigReplicator, ids: int, revisions: int, size: int = 1024) -> list[ConfigKey]:
    keys = [ConfigKey("public", "G", f"cfg{i:04d}") for i in range(ids)]
    for r in range(revisions):
        for i, key in enumerate(keys):
            a.store.publish(key, f"{r:04d}{i:04d}".ljust(size, "x"), now=float(r))
    return keys


def test_a_fresh_node_gets_a_big_table_in_bounded_steps_current_versions_first() -> None:
    """A node that lacks every data id: the versions come ``PUSH_STEP_VERSIONS`` (and
    ``PUSH_STEP_BYTES``) per message, ``DIGEST_STEP_GAP`` apart on the fake clock, the
    current version of every data id before any history, and the catch-up ends with
    every kept version (before: one push of all 24,000, chunked only by 4 MiB)."""
    a, b = pair()
    keys = big_table(a, 240, 100)
    # a running node's hashes are warm (its last round worked them out): one digest step
    # of the 240 data ids (DIGEST_STEP_HASHES splits the step of a table never hashed)
    a.store.digests()
    steps: list[tuple[float, SendVersions]] = []
    sent = exchange(a, b, [e for e in a.tick(5.0) if isinstance(e, SendDigests)], 5.0, steps)
    assert sent["versions"] == 240 * 100, sent
    assert len(steps) == -(-240 * 100 // PUSH_STEP_VERSIONS)
    for _, step in steps:
        assert len(step.entries) <= PUSH_STEP_VERSIONS
        assert sum(len(e.content) for e in step.entries) <= PUSH_STEP_BYTES
    times = [t for t, _ in steps]
    assert all(t2 - t1 >= DIGEST_STEP_GAP - 1e-9 for t1, t2 in zip(times, times[1:], strict=False))
    heads = [e for _, step in steps[:2] for e in step.entries]  # 240 data ids: two steps
    assert {e.key for e in heads} == set(keys)
    assert all(e.revision == 100 for e in heads[:240])
    for key in keys:
        assert b.store.current(key) == a.store.current(key)
        assert b.store.history_hash(key) == a.store.history_hash(key)
    again = exchange(a, b, [e for e in a.tick(10.0) if isinstance(e, SendDigests)], 10.0)
    assert again["versions"] == 0 and again["have_ids"] == 0, again  # converged: quiet


def test_large_versions_are_capped_by_bytes_and_one_above_the_cap_goes_alone() -> None:
    a, b = pair()
    big = PUSH_STEP_BYTES // 3 + 1  # three of them exceed the cap
    big_table(a, 2, 3, size=big)  # 6 versions of ~170 KiB
    huge = ConfigKey("public", "G", "huge")
    a.store.publish(huge, "h" * (PUSH_STEP_BYTES + 10), now=1.0)
    steps: list[tuple[float, SendVersions]] = []
    sent = exchange(a, b, [e for e in a.tick(5.0) if isinstance(e, SendDigests)], 5.0, steps)
    assert sent["versions"] == 7
    sizes = [sum(len(e.content) for e in s.entries) for _, s in steps]
    assert all(
        n <= PUSH_STEP_BYTES or len(s.entries) == 1 for n, (_, s) in zip(sizes, steps, strict=True)
    )
    assert [len(s.entries) for _, s in steps] == [2, 1, 2, 2], sizes  # current ones; the huge alone
    assert b.store.current(huge) == a.store.current(huge)


def test_a_round_during_the_pushes_queues_nothing_twice_and_a_peer_down_drops_its_queue() -> None:
    a, b = pair()
    big_table(a, 50, 20)
    first = [e for e in a.tick(5.0) if isinstance(e, SendDigests)]
    asked = b.on_digests("n0", first[0].digests, False, first[0].after, first[0].upto, 5.0)
    wants = [e for e in asked if isinstance(e, SendDigests)]
    out = a.on_digests("n1", wants[0].digests, True, None, None, 5.0)
    assert [len(e.entries) for e in out if isinstance(e, SendVersions)] == [PUSH_STEP_VERSIONS]
    again = a.on_digests("n1", wants[0].digests, True, None, None, 5.001)  # asked again
    assert again == []  # its steps are under way: nothing new, nothing twice
    pushed = [e for e in a.tick(a.next_wake()) if isinstance(e, SendVersions)]
    assert len(pushed) == 1 and a.counters["pushed"] == 2 * PUSH_STEP_VERSIONS
    a.set_members_up({"n0"})  # n1 seen down: the rest of its queue is dropped
    assert [e for e in a.tick(a.next_wake()) if isinstance(e, SendVersions)] == []
    assert a.next_wake() > 6.0
    a.set_members_up({"n0", "n1"})  # back: a round at once brings the rest
    for e in pushed + [e for e in out if isinstance(e, SendVersions)]:
        b.on_versions(e.entries)
    now = a.next_wake()
    exchange(a, b, [e for e in a.tick(now) if isinstance(e, SendDigests)], now)
    for key in a.store.keys_after(None):
        assert b.store.history_hash(key) == a.store.history_hash(key)


def test_a_peer_not_seen_up_yet_that_asks_gets_every_step() -> None:
    """A starting node asks before this node's view has it up (beacons race the sync):
    its pushes go on (only a peer seen *down* loses its queue)."""
    a = ConfigReplicator("n0", IDS, ConfigStore("n0"), 0.0, sync_interval=1000.0)
    b = ConfigReplicator("n1", IDS, ConfigStore("n1"), 0.0, sync_interval=1000.0)
    b.set_members_up(IDS)  # a's view lags: n1 not up yet (never was, for a)
    big_table(a, 10, 30)
    asked = b.on_digests("n0", a.store.digests(), False, None, None, 5.0)
    sent = exchange(b, a, [e for e in asked if isinstance(e, SendDigests)], 5.0)
    assert sent["versions"] == 300 and sent["version_messages"] == 3, sent
    for key in a.store.keys_after(None):
        assert b.store.history_hash(key) == a.store.history_hash(key)


def test_many_data_ids_one_revision_behind_get_their_current_versions_in_steps() -> None:
    """A peer one revision behind on 1,000 data ids (a partition healed): the 1,000
    current versions go 128 a step, and working out that nothing else is lacked is spread
    over the steps too (at most 128 data ids' histories looked at per step)."""
    a, b = pair()
    keys = big_table(a, 1000, 3, size=16)
    for key in keys:
        for e in a.store.entries(key):
            if e.revision < 3:
                b.store.apply(e)
    steps: list[tuple[float, SendVersions]] = []
    sent = exchange(a, b, [e for e in a.tick(5.0) if isinstance(e, SendDigests)], 5.0, steps)
    assert sent["versions"] == 1000 and len(steps) == 8, sent
    assert all(e.revision == 3 for _, s in steps for e in s.entries)
    for key in keys:
        assert b.store.history_hash(key) == a.store.history_hash(key)


def differing_histories() -> tuple[ConfigReplicator, ConfigReplicator, list[ConfigKey]]:
    """Two replicators holding 60 data ids of 100 revisions whose current versions agree
    and every history differs (b lacks revision 50 of each)."""
    a, b = pair()
    keys = [ConfigKey("public", "G", f"h{i:03d}") for i in range(60)]
    for r in range(100):
        for key in keys:
            entry = a.store.publish(key, f"{key.data_id} {r}", now=float(r))
            if entry.revision != 50:
                b.store.apply(entry)
    return a, b, keys


def test_long_differing_histories_are_listed_in_bounded_steps_then_repaired() -> None:
    """60 data ids of 100 revisions, the current versions agree, every history differs
    (b lacks revision 50 of each): a's revision hashes go at most ``HAVE_STEP_REVISIONS``
    per ``config_have`` (a data id's list never split), the first at once, the next
    ``DIGEST_STEP_GAP`` apart (before: all 6,000 in one call and one message), and b
    still gets every missing revision."""
    a, b, keys = differing_histories()
    assert all(a.store.current(k) == b.store.current(k) for k in keys)
    now = 1.0  # (a's own round is due at 5.0)
    out = a.on_digests("n1", b.store.digests(), False, None, None, now)  # b's digests
    lists = [e for e in out if isinstance(e, SendHave)]
    times = [now] * len(lists)
    while a.next_wake() <= now + 1.0:  # the next steps, one per wake-up
        assert a.next_wake() == now + DIGEST_STEP_GAP
        now = a.next_wake()
        step = [e for e in a.tick(now) if isinstance(e, SendHave)]
        assert len(step) == 1
        lists += step
        times.append(now)
    assert [len(e.items) for e in lists] == [PER_STEP] * (60 // PER_STEP) + (
        [60 % PER_STEP] if 60 % PER_STEP else []
    )
    assert all(not e.reply for e in lists)
    assert [k for e in lists for k, _ in e.items] == keys  # each once, in key order
    assert all(len(hashes) == 100 for e in lists for _, hashes in e.items)
    assert a.counters["have_steps"] == len(lists) and len(lists) > 1
    for at, e in zip(times, lists, strict=True):  # b answers each; a pushes revision 50
        exchange(b, a, list(b.on_have("n0", e.items, False, at, e.keep)), at)
    for key in keys:
        assert b.store.get(key, revision=50).content == f"{key.data_id} 49"
        assert b.store.history_hash(key) == a.store.history_hash(key)


PER_STEP = HAVE_STEP_REVISIONS // 100 + (HAVE_STEP_REVISIONS % 100 > 0)  # data ids of 100


def test_short_histories_are_listed_at_most_have_step_keys_data_ids_a_step() -> None:
    """A node catching up holds one revision of each data id (b: revision 2 of 200; a:
    revisions 1 and 2): b's lists name at most ``HAVE_STEP_KEYS`` data ids a step, since a
    works out its own hashes of every data id listed (2,048 such data ids in one step,
    a holding 100 revisions each, made one call of 365-418 ms); a still gets the lists'
    answers and b every revision it lacks."""
    a, b = pair()
    keys = [ConfigKey("public", "G", f"s{i:03d}") for i in range(200)]
    for r in range(2):
        for key in keys:
            entry = a.store.publish(key, f"{key.data_id} {r}", now=float(r))
            if entry.revision == 2:
                b.store.apply(entry)
    now = 1.0
    out = b.on_digests("n0", a.store.digests(), False, None, None, now)
    lists = [e for e in out if isinstance(e, SendHave)]
    while b.next_wake() <= now + 1.0:
        now = b.next_wake()
        lists += [e for e in b.tick(now) if isinstance(e, SendHave)]
    assert [len(e.items) for e in lists] == [64, 64, 64, 8] and HAVE_STEP_KEYS == 64
    assert [k for e in lists for k, _ in e.items] == keys
    for e in lists:  # a answers each: it pushes revision 1 of the data ids listed
        exchange(a, b, list(a.on_have("n1", e.items, False, now, e.keep)), now)
    for key in keys:
        assert b.store.get(key, revision=1).content == f"{key.data_id} 0"
        assert b.store.history_hash(key) == a.store.history_hash(key)


def test_a_data_id_asked_again_while_listed_is_queued_once_and_a_peer_down_drops_it() -> None:
    a, b, keys = differing_histories()
    digests = b.store.digests()
    first = [e for e in a.on_digests("n1", digests, False, None, None, 1.0)
             if isinstance(e, SendHave)]  # fmt: skip
    assert [k for k, _ in first[0].items] == keys[:PER_STEP]
    # asked again while the rest waits: nothing at once; the waiting ones are not queued
    # twice, the ones already listed are queued again (a new question, after the others)
    assert a.on_digests("n1", digests, False, None, None, 1.001) == []
    listed = []
    now = 1.0
    while a.next_wake() <= now + 1.0:
        now = a.next_wake()
        listed += [k for e in a.tick(now) if isinstance(e, SendHave) for k, _ in e.items]
    assert listed == keys[PER_STEP:] + keys[:PER_STEP]
    a.on_digests("n1", digests, False, None, None, now)  # a new round: listed again
    a.set_members_up({"n0"})  # n1 seen down: the rest is dropped
    assert [e for e in a.tick(a.next_wake()) if isinstance(e, SendHave)] == []
    assert a.next_wake() >= 5.0  # nothing left but a's own round
