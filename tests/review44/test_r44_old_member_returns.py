"""review44 (regression check, passes): an old member comes back with its OLD data
directory after the cluster moved on without it, while another member is cut off (3
nodes); two old members come back together while two others are cut off (5 nodes: the
old pair and the one up-to-date node left are the majority).

The data ids are owned by n3 (the returning node), so while it was down their ownership
moved to n1/n2, and it moves back at its return.  Meanwhile: publishes, gray publish,
promote, gray drop, rollbacks and deletes, all acknowledged.  n3 then starts again with
its old store, with n1 cut off (n3 + n2 are a majority).

docs/CONFIG.md, the ready gate: "a ready node holds every version acknowledged before it
started"; the merge rule: "A higher revision always wins"; Delete: "a late copy never
resurrects the data id".  Expected: every answer n3 gives (a fresh client, no revision
floor of its own) is the last acknowledged version or a refusal (not ready); a CAS
through n3 at its OLD revision is a CONFLICT and at the last one succeeds; the deleted
data id stays deleted; after the heal every node holds the same current version and
every acknowledged version won its revision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from r44lab import Lab44, keep_workdir, load, skip_reason, wait

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("n", "down", "cut"), [(3, [2], [0]), (5, [3, 4], [0, 1])], ids=["3-nodes", "5-nodes"]
)
def test_an_old_member_back_with_its_old_store_serves_nothing_stale(
    tmp_path: Path, n: int, down: list[int], cut: list[int]
) -> None:
    lab = Lab44(tmp_path / "lab", n=n, peer_timeout=1.0)
    ok = False
    try:
        lab.up_nodes(range(n))
        ids = [f"r44-old-{i}" for i in range(400) if lab.owner(f"r44-old-{i}") == down[0]][:2]
        live_id, dead_id = ids
        ups = [j for j in range(n) if j not in down]
        w_live = lab.repl44(0, ups, live_id)
        w_dead = lab.repl44(0, ups, dead_id)
        acks: dict[str, list[dict[str, Any]]] = {live_id: [], dead_id: []}

        def do(w: Any, data_id: str, cmd: str) -> dict[str, Any]:
            out = w(cmd)
            assert out.get("ok"), (data_id, cmd, out, lab.events)
            acks[data_id].append({**out, "cmd": cmd})
            return out

        do(w_live, live_id, "publish old1")
        do(w_dead, dead_id, "publish old1")
        for j in down:
            assert wait(
                lambda: (
                    (lab.dump(j, live_id) or {}).get("cur", [0])[0] == 1  # noqa: B023
                    and (lab.dump(j, dead_id) or {}).get("cur", [0])[0] == 1  # noqa: B023
                ),
                10,
            )  # noqa: B023
        for j in down:
            lab.kill(j)  # its data dir stays
        assert wait(lambda: all(lab.up_count(j) == len(ups) for j in ups), 20), lab.events
        for cmd in ("publish v2", "gray g3", "promote", "publish v5", "gray g6", "drop",
                    "delete", "publish v9", "rollback 2", "gray g11"):  # fmt: skip
            do(w_live, live_id, cmd)
        for cmd in ("publish v2", "rollback 1", "delete"):
            do(w_dead, dead_id, cmd)
        last = {d: acks[d][-1]["rev"] for d in acks}
        done = [(d, a["cmd"], a["rev"]) for d in acks for a in acks[d]]
        lab.ev(f"acknowledged while n{down[0] + 1} was down: {done}")
        for j in cut:
            lab.link(j, False)  # cut off: the old members and the rest are a majority
        back = down[0]
        # the readers first (a Python start-up takes longer than the node's catch-up)
        reader = {d: lab.repl44(back, [back], d) for d in ids}
        gray_reader = lab.repl44(back, [back], live_id, labels="gray=1")
        for j in down:
            lab.start_node(j)  # the old data dir
        lout = lab.workdir / "listen-back.jsonl"
        listener = lab.worker(back, "listen", "--servers", lab.addr(back), "--out", str(lout),
                              "--name", "lb", "--max-seconds", "60", data_id=live_id)  # fmt: skip
        stale: list[Any] = []
        answers = {"ok": 0, "refused": 0}
        reasons: list[str] = []

        def look() -> bool:
            good = 0
            for d, r in reader.items():
                got = r("get")
                if got.get("ok") or got.get("absent"):
                    answers["ok"] += 1
                    want_dead = d == dead_id
                    if (got.get("ok") and (want_dead or got.get("rev") != last[d])) or (
                        got.get("absent") and not want_dead
                    ):
                        stale.append((d, got))
                    good += 1
                else:
                    answers["refused"] += 1
                    why = str(got.get("error")) + ": " + str(got.get("msg"))[:90]
                    if why not in reasons:
                        reasons.append(why)
            g = gray_reader("get")
            if g.get("ok") and g.get("content") != "g11":
                stale.append(("gray", g))
            return good == 2 and g.get("ok")

        # read at once and over and over from n3's start: every answer counts
        got_through = wait(look, 40, step=0.02)
        lab.ev(f"n{back + 1} reads: {answers}; refused as {reasons}; stale {stale[:5]}")
        assert got_through, lab.events
        assert not stale, f"n{back + 1} back with its old store served stale versions: {stale[:5]}"
        from netlab import read_line

        assert read_line(listener, 30) == "ready", lab.events
        heard = [r for r in load(lout) if r.get("rev") is not None]
        lab.ev(f"a listener on n{back + 1} from its start: {[(r['k'], r['rev']) for r in heard]}")
        assert heard and all(r["rev"] >= last[live_id] for r in heard), (heard, last)
        cas = lab.repl44(back, [back], live_id)
        old = cas("publish x 1")
        assert old.get("error") == "ConflictError", (old, lab.events)
        new = cas(f"publish v{last[live_id] + 1} {last[live_id]}")
        assert new.get("ok") and new.get("rev") == last[live_id] + 1, (new, lab.events)
        acks[live_id].append({**new, "cmd": "cas"})
        again = lab.repl44(back, [back], dead_id)("publish new 0")
        assert again.get("ok") and again.get("rev") == last[dead_id] + 1, (again, lab.events)
        acks[dead_id].append({**again, "cmd": "create"})
        for j in cut:
            lab.link(j, True)

        def agreed() -> Any:
            ds = {d: [lab.dump(j, d) for j in range(n)] for d in ids}
            for d in ids:
                if any(x is None for x in ds[d]) or len({repr(x["cur"]) for x in ds[d]}) != 1:
                    return None
            return ds

        ds = wait(agreed, 40, step=0.5)
        assert ds, f"nodes did not agree after the heal: {lab.events}"
        for d in ids:
            hist = ds[d][0]["hist"]
            winners: dict[int, Any] = {}
            for h in hist:
                winners.setdefault(h[0], h)  # the winner first
            for a in acks[d]:
                w = winners.get(a["rev"])
                assert w is not None, (d, a, hist)
                if a["cmd"].startswith(("publish", "cas", "create")):
                    assert w[1] == a["content"], (d, a, w)
            assert ds[d][0]["cur"][0] == acks[d][-1]["rev"], (d, ds[d][0]["cur"], acks[d][-1])
        print("\n".join(map(str, lab.events)))
        ok = True
    finally:
        if not ok:
            keep_workdir(tmp_path / "lab", "/tmp/r44/failed")
        lab.close()
