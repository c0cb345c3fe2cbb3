"""review44 (regression check): gray release writes (gray publish, promote, gray drop),
rollbacks, deletes and publishes from one client through every node while the data id's
owner is SIGKILLed and restarted and another member is cut off and healed.

docs/CONFIG.md: writes are "acknowledged by a majority"; "The loser stays in the history"
(an acknowledged version wins its revision); "a client carries the highest revision it has
seen per data id (`min_revision`) ... so the client never steps backwards".

Judged: the writer's acknowledged revisions strictly increase; every acknowledged write is
the winner of its revision on every node after the heal (its main content and its delete
flag); every reader (one plain, one matching the gray rule) never sees a revision go
backwards, and every (revision, content) a plain reader saw is that revision's winner; all
nodes agree at the end.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from r44lab import HERE, Lab44, keep_workdir, skip_reason, wait

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]


def _load(p: Path) -> list[dict[str, Any]]:
    if not p.exists():
        return []
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]


@pytest.mark.timeout(300)
def test_gray_writes_rollbacks_and_deletes_survive_a_killed_owner_and_a_cut(
    tmp_path: Path,
) -> None:
    lab = Lab44(tmp_path / "lab", n=3, peer_timeout=1.0)
    ok = False
    try:
        lab.up_nodes(range(3))
        data_id = "r44-gray"
        own = lab.owner(data_id)
        lab.ev(f"owner n{own + 1}")
        # never the writer's namespace (n1's): cut with it, the writer reaches no majority
        # (with the data id's owner at n3, as on port 7800, this cut n1 and the writer)
        other = next(j for j in range(3) if j != own and j != 0)
        servers = ",".join(lab.addr(j) for j in range(3))
        procs = []
        outs = {}
        for name, j, extra in (("writer", 0, []), ("plain", 1, []),
                               ("gray", 2, ["--labels", "gray=1"])):  # fmt: skip
            outs[name] = lab.workdir / f"{name}.jsonl"
            mode = "writer" if name == "writer" else "reader"
            argv = [
                sys.executable, str(HERE / "r44_grayload.py"), mode, "--servers", servers,
                "--data-id", data_id, "--seconds", "60", "--out", str(outs[name]), *extra,
            ]  # fmt: skip
            procs.append(lab.lab.spawn(j, f"{name}-{len(lab.lab.procs)}", argv))

        def acks() -> int:
            return sum(1 for r in _load(outs["writer"]) if r.get("ok"))

        def acks_grow(by: int, t: float) -> bool:
            base = acks()
            return bool(wait(lambda: acks() >= base + by, t, step=0.2))

        assert acks_grow(20, 20), lab.events
        lab.kill(own)
        assert acks_grow(10, 20), lab.events
        lab.start_node(own)
        assert lab.wait_ready(own, 3), lab.events
        assert acks_grow(10, 20), lab.events
        lab.link(other, False)
        assert acks_grow(10, 20), lab.events
        lab.kill(own)  # with `other` cut: no majority, writes are refused
        time.sleep(0.5)
        lab.start_node(own)
        lab.link(other, True)
        assert lab.wait_ready(own, 3), lab.events
        assert acks_grow(20, 30), lab.events
        for name in outs:
            Path(str(outs[name]) + ".stop").touch()
        for p in procs:
            p.popen.wait(15)

        def agreed() -> Any:
            ds = [lab.dump(j, data_id) for j in range(3)]
            if any(x is None for x in ds) or len({json.dumps(x) for x in ds}) != 1:
                return None
            return ds

        ds = wait(agreed, 40, step=0.5)
        assert ds, f"nodes did not agree: {lab.events}"
        winners: dict[int, Any] = {}
        for h in ds[0]["hist"]:
            winners.setdefault(h[0], h)
        wrecs = _load(outs["writer"])
        good = [r for r in wrecs if r.get("ok")]
        errs: dict[str, int] = {}
        for r in wrecs:
            if not r.get("ok"):
                errs[r["err"]] = errs.get(r["err"], 0) + 1
        bad: list[Any] = []
        revs = [r["rev"] for r in good]
        if revs != sorted(set(revs)):
            bad.append(("acked revisions not strictly increasing", revs))
        for r in good:
            w = winners.get(r["rev"])
            if w is None:
                bad.append(("acked revision not in history", r))
            elif bool(w[4]) != bool(r["deleted"]) or (not r["deleted"] and w[1] != r["content"]):
                bad.append(("acked write not the winner", r, w))
        for name in ("plain", "gray"):
            last = 0
            for r in _load(outs[name]):
                if "rev" not in r:
                    continue
                if r["rev"] < last:
                    bad.append((name, "backwards", last, r))
                last = max(last, r["rev"])
                w = winners.get(r["rev"])
                if name == "plain" and w is not None and not r["deleted"] and w[1] != r["content"]:
                    bad.append((name, "read a version that lost", r, winners[r["rev"]]))
        ops = ("publish", "gray", "promote", "drop", "rollback", "delete")
        by_op = {o: sum(1 for r in good if r["op"] == o) for o in ops}
        slowest = max((r["t1"] - r["t0"] for r in wrecs), default=0)
        over1 = sum(1 for r in wrecs if r["t1"] - r["t0"] > 1)
        reads = [len(_load(outs[n])) for n in ("plain", "gray")]
        summary = (
            f"{len(good)} acknowledged writes ({by_op}), errors {errs}, slowest write "
            f"{slowest:.2f} s, writes over 1 s {over1}, reads {reads}"
        )
        lab.ev(summary)
        print("\n".join(map(str, lab.events)))
        assert not bad, f"{summary}: {bad[:5]}"
        ok = True
    finally:
        if not ok:
            keep_workdir(tmp_path / "lab", "/tmp/r44/failed")
        lab.close()
