"""review44 F5: with a writer whose clock runs behind, its tombstone is stamped in the past
and its peers purge it up to that lag before the writer does (``keep_days``); an old member
back within ``keep_days`` then brings the deleted data id back on them, and a peer that had
acknowledged the delete at revision R acknowledges a new write at the same revision R: two
acknowledged versions of one revision, one of which loses.

docs/CONFIG.md (History retention): "A tombstone older than keep_seconds is purged with its
data id (after that, a node that was away longer than 30 days could bring the data id
back ...)"; the merge rule: "Each node acknowledges at most one version per (data id,
revision) ... so at most one version per revision can be committed".  Here the member was
away for less than ``keep_days`` (43 s in this test: ``keep_days = 0.0005``).

Why: ``ConfigStore.prune`` compares the tombstone's ``modified`` (the writer's wall clock)
with this node's own clock (core.py ``_prune_scan``: ``current.modified < cutoff``, cutoff
``now - keep_seconds``); the purge drops the data id's versions, and with them the node's
record of which version it acknowledged at R (``_drop_key``); ``apply`` takes a lower
revision again for a purged data id (its purged floor is only used for new writes), and a
new write goes on from that version's revision + 1 (``_derive``: ``base = prev.revision``).

Three nodes, ``keep_days = 0.0005`` (43.2 s).  n3 owns the data id, its clock 25 s behind.
``publish v1`` acknowledged by all; n1 is SIGKILLed (its store keeps v1); ``delete``
acknowledged (n3, n2) at revision 2.  n2 (right clock) purges it about 18 s later; n3 would
at 43 s.  n3 is cut off, n1 starts again (away about 20 s), and a client publishes v2
through n1: acknowledged by n1 and n2 at revision 2.  n3 is healed: its tombstone (origin
n3, committed) and v2 (origin n1 or n2, committed) meet at revision 2, and the merge rule's
origin order makes the tombstone win: the acknowledged publish is lost.
Expected: the delete and the new publish are not both acknowledged at one revision; the
data id is not live again on n2/n3 before keep_days.  Control: every clock right (n2 still
holds the tombstone when n3 returns: passes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from r44lab import Lab44, keep_workdir, skew_params, skip_reason, wait

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]

W, OLD, P = 2, 0, 1  # the writer (owner, clock behind), the old member, the peer that purges
CONF = "[config]\nkeep_revisions = 0\nkeep_days = 0.0005\n"  # 43.2 s


@pytest.mark.timeout(240)
@pytest.mark.parametrize(**skew_params(-25.0, "writer-25s-behind"))
def test_an_early_purge_never_lets_two_writes_be_acknowledged_at_one_revision(
    tmp_path: Path, skew: float
) -> None:
    lab = Lab44(tmp_path / "lab", n=3, peer_timeout=1.0, conf=CONF)
    lab.skew = {W: skew} if skew else {}
    ok = False
    try:
        lab.up_nodes(range(3))
        data_id = next(f"r44-purge-{i}" for i in range(400) if lab.owner(f"r44-purge-{i}") == W)
        w = lab.repl44(W, [W], data_id)
        assert w("publish v1")["ok"]
        assert wait(lambda: (lab.dump(OLD, data_id) or {}).get("cur", [0])[0] == 1, 10)
        lab.kill(OLD)
        assert wait(lambda: lab.up_count(W) == 2, 20), lab.events
        deleted = w("delete")
        assert deleted.get("ok"), deleted
        t_del = time.monotonic()
        lab.ev(f"delete acknowledged: {deleted}")

        def purged(j: int) -> bool:
            d = lab.dump(j, data_id)
            return d is not None and d["cur"] is None and d["hist"] == []

        wait(lambda: purged(P), 20, step=0.5)  # n2: about 18 s with the skew; 43 s without
        lab.ev(f"n{P + 1} purged: {purged(P)} at {time.monotonic() - t_del:.1f} s; "
               f"n{W + 1} (the writer) purged: {purged(W)}")  # fmt: skip
        lab.link(W, False)
        lab.start_node(OLD)  # its old store: v1 at revision 1
        away = time.monotonic() - t_del
        assert lab.wait_ready(OLD, 2), lab.events
        c = lab.repl44(OLD, [OLD], data_id)
        seen = c("get")
        lab.ev(f"n{OLD + 1} back after {away:.1f} s (< 43.2 s); a read through it: {seen}")
        new: dict = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            new = c("publish v2")
            if new.get("ok"):
                break
            time.sleep(0.3)
        lab.ev(f"publish v2 through n{OLD + 1}: {new}")
        assert new.get("ok"), lab.events
        lab.link(W, True)

        def agreed():  # type: ignore[no-untyped-def]
            ds = [lab.dump(j, data_id) for j in range(3)]
            if any(d is None for d in ds) or len({repr(d["cur"]) for d in ds}) != 1:
                return None
            return ds

        ds = wait(agreed, 30, step=0.5)
        lab.ev(f"at the end: {ds and [d['cur'] for d in ds]}; the writer's history "
               f"{ds and ds[W]['hist']}")  # fmt: skip
        print("\n".join(map(str, lab.events)))
        assert ds, lab.events
        problems = []
        if new["rev"] <= deleted["rev"]:
            problems.append(
                f"the delete was acknowledged at revision {deleted['rev']} and the publish "
                f"through n{OLD + 1} at revision {new['rev']}"
            )
        if seen.get("ok"):
            problems.append(
                f"n{OLD + 1} (away {away:.0f} s < keep_days) served the deleted data id: {seen}"
            )
        cur = ds[0]["cur"]
        if cur is None or cur[1] != "v2":
            problems.append(f"the acknowledged publish v2 is not current at the end: {cur}")
        assert not problems, "; ".join(problems)
        ok = True
    finally:
        if not ok:
            keep_workdir(tmp_path / "lab", "/tmp/r44/failed")
        lab.close()


@pytest.mark.timeout(240)
def test_a_purge_beyond_max_tombstones_never_lets_two_writes_be_acknowledged_at_one_revision(
    tmp_path: Path,
) -> None:
    """The same without any clock off: ``max_tombstones = 1`` (docs/CONFIG.md: "beyond it
    the prune purges the oldest first (the order they became deletes on this node) ... a
    node away while the delete was made and purged could bring the data id back (the same
    trade; it needs max_tombstones deletes in between)").  Five nodes, clocks right.  A's
    owner n5.  ``publish A v1``, ``publish B v1`` acknowledged by all; n1 SIGKILLed (its
    store: A v1); ``delete A`` acknowledged at revision 2 (n2..n5).  n5 is cut off;
    ``delete B`` (n2, n3, n4): each of them now holds two tombstones and purges A's; n5
    keeps it.  n1 starts again (away a few seconds), and ``publish A v2`` through n1 is
    acknowledged (n1..n4) at revision 2.  n5 is healed.
    Expected: no two acknowledged versions of one revision (the resurrection is the
    documented trade; losing an acknowledged write is not)."""
    conf = "[config]\nkeep_revisions = 0\nmax_tombstones = 1\n"
    lab = Lab44(tmp_path / "lab", n=5, peer_timeout=1.0, conf=conf)
    ok = False
    try:
        lab.up_nodes(range(5))
        a = next(f"r44-tomb-{i}" for i in range(400) if lab.owner(f"r44-tomb-{i}") == 4)
        b = "r44-tomb-b"
        wa, wb = lab.repl44(1, [1], a), lab.repl44(1, [1], b)
        assert wa("publish v1")["ok"] and wb("publish v1")["ok"]
        assert wait(lambda: all((lab.dump(j, a) or {}).get("cur") for j in range(5)), 20), (
            "setup: A v1 not on every node",
            lab.events,
        )
        lab.kill(0)
        assert wait(lambda: lab.up_count(1) == 4, 30), ("setup: n1 not seen down", lab.events)
        deleted = wa("delete")
        assert deleted.get("ok"), ("setup: delete A", deleted)
        assert wait(lambda: all((lab.dump(j, a) or {}).get("cur", 0) is None
                                for j in range(1, 5)), 20), ("setup: the delete of A not on n2..n5",
                                                            lab.events)  # fmt: skip
        lab.link(4, False)
        assert wait(lambda: lab.up_count(1) == 3, 30), ("setup: n5 not seen cut", lab.events)
        gone_b = wb("delete")
        assert gone_b.get("ok"), ("setup: delete B", gone_b, lab.events)

        def purged(j: int) -> bool:
            d = lab.dump(j, a)
            return d is not None and d["cur"] is None and d["hist"] == []

        if not wait(lambda: all(purged(j) for j in (1, 2, 3)), 20):
            held = {f"n{j + 1}": (lab.dump(j, a), lab.dump(j, b)) for j in (1, 2, 3)}
            print("n2..n4 hold (A, B):", json.dumps(held))  # (what each holds: CI once)
            raise AssertionError(("setup: n2..n4 did not purge A", lab.events))
        lab.ev(f"n2..n4 purged A; n5 purged A: {purged(4)}")
        lab.start_node(0)  # its old store: A v1 at revision 1
        assert lab.wait_ready(0, 4), ("setup: n1 not ready", lab.events)
        c = lab.repl44(0, [0], a)
        seen = c("get")
        new: dict = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            new = c("publish v2")
            if new.get("ok"):
                break
            time.sleep(0.3)
        lab.ev(f"n1 back: read {seen}; publish A v2 through n1: {new}")
        assert new.get("ok"), ("setup: publish A v2 through n1", new, lab.events)
        lab.link(4, True)

        def agreed():  # type: ignore[no-untyped-def]
            ds = [lab.dump(j, a) for j in range(5)]
            if any(d is None for d in ds) or len({repr(d["cur"]) for d in ds}) != 1:
                return None
            return ds

        ds = wait(agreed, 30, step=0.5)
        lab.ev(f"at the end: {ds and ds[0]['cur']}; n5's history {ds and ds[4]['hist']}")
        print("\n".join(map(str, lab.events)))
        assert ds, ("nodes did not agree after the heal", lab.events)
        problems = []
        if new["rev"] <= deleted["rev"]:
            problems.append(
                f"the delete of A was acknowledged at revision {deleted['rev']} and the "
                f"publish at revision {new['rev']}"
            )
        cur = ds[0]["cur"]
        if cur is None or cur[1] != "v2":
            problems.append(f"the acknowledged publish A v2 is not current at the end: {cur}")
        assert not problems, "; ".join(problems)
        ok = True
    finally:
        if not ok:
            keep_workdir(tmp_path / "lab", "/tmp/r44/failed")
        lab.close()
