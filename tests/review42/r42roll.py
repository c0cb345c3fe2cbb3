"""review42: membership changes one node at a time (README "Add or remove one node at a
time", docs/OPERATIONS.md "Replacing a dead node") under config load, then judged.

Load for the whole run: CAS counter writers (r38_worker.py ``cas``: read, publish n+1 with
``if_revision``), plain publishers (r42_worker.py ``pub``), one counter listener per node
started (r38_worker.py ``listen``; servers: its node first, then the others).  A plan is a
list of steps: ("start", j, members), ("restart", j, members), ("stop", j), ("kill", j).
After each step the run waits (bounded) for new acknowledged writes, so load crosses every
step.  At the end every final member is dumped until they agree (bounded) and judged:
r38lab.judge_counter for the counter (no lost update, final = acknowledged increments,
every acknowledged write the winner of its revision, readers never backwards, listeners
strictly increasing and current, nodes agree) and ``judge_pub`` for the publishes.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from r38lab import _winners, judge_counter  # noqa: E402  (r42lab put review38 on the path)
from r42lab import HERE, Lab42, load, wait

Step = tuple[Any, ...]
CTR = "r42-ctr"
PUB = "r42-pub"


def judge_pub(recs: dict[str, list[dict[str, Any]]], dumps: dict[int, Any]) -> list[str]:
    v: list[str] = []
    acks = [r for rs in recs.values() for r in rs if r["k"] == "ack"]
    by_rev: dict[int, list[Any]] = {}
    for a in acks:
        by_rev.setdefault(a["rev"], []).append(a)
    for r, lst in sorted(by_rev.items()):
        if len(lst) > 1:
            v.append(f"pub: two acks at revision {r}: {json.dumps(lst)}")
    for w, rs in recs.items():
        hi = 0
        for r in rs:
            if r["k"] == "read" and r["rev"]:
                if r["rev"] < hi:
                    v.append(
                        f"pub: {w} read revision {r['rev']} after seeing {hi} ({r.get('srv')})"
                    )
                hi = max(hi, r["rev"])
            elif r["k"] == "ack":
                if r["rev"] <= hi:
                    v.append(f"pub: {w} acknowledged at {r['rev']} after seeing {hi}")
                hi = max(hi, r["rev"])
    if len({json.dumps(d and d["cur"]) for d in dumps.values()}) != 1:
        v.append(f"pub: nodes disagree: {[d and d['cur'] for d in dumps.values()]}")
    for j, d in dumps.items():
        if not d:
            v.append(f"pub: n{j + 1}: no dump")
            continue
        win = _winners(d)
        for a in acks:
            h = win.get(a["rev"])
            if h is None or h[2] != a["md5"]:
                v.append(
                    f"pub: n{j + 1}: acknowledged {a['c']} at {a['rev']} is not the winner ({h})"
                )
    return v


class Roll:
    def __init__(self, workdir: Path, n: int, first: Sequence[int], seconds: float = 200.0):
        self.lab = Lab42(workdir, n=n, peer_timeout=1.0)
        self.first = list(first)
        self.seconds = seconds
        self.running: set[int] = set()
        self.cas: list[Any] = []
        self.pubs: list[Any] = []
        self.listeners: dict[int, Any] = {}
        self.progress: list[str] = []

    # -- helpers ---------------------------------------------------------------------
    def servers(self, j: int) -> str:
        order = [j] + [i for i in range(self.lab.n) if i != j]
        return ",".join(self.lab.addr(i) for i in order)

    def ready(self, j: int) -> bool:
        m = len([i for i in self.lab.lists[j] if i in self.running])
        return self.lab.wait_ready(j, m, timeout=30)

    def acks(self) -> int:
        n = 0
        for f in self.lab.workdir.glob("[cp]*.jsonl"):
            n += sum(1 for r in load(f) if r["k"] == "ack")
        return n

    def listen(self, j: int) -> None:
        p = self.lab.worker(j, "listen", "--servers", self.servers(j), "--out",
                            str(self.lab.workdir / f"listen-n{j + 1}.jsonl"),
                            "--max-seconds", str(self.seconds + 60), data_id=CTR)  # fmt: skip
        from netlab import read_line

        if read_line(p, 15) != "ready":
            raise RuntimeError(f"listener on n{j + 1} not ready")
        self.listeners[j] = p

    # -- the run ---------------------------------------------------------------------
    def up(self) -> None:
        for j in self.first:
            self.lab.lists[j] = list(self.first)
        self.lab.up_nodes(self.first)
        self.running = set(self.first)
        from netlab import read_line

        line = self.lab.oneshot(self.first[0], "init", data_id=CTR)
        if line is None or not line.strip().isdigit():
            raise RuntimeError(f"init failed: {line!r}")
        self.init_rev = int(line)
        for j in self.first:
            self.listen(j)
        for w, j in enumerate(self.first):
            self.cas.append(self.lab.worker(
                j, "cas", "--servers", self.servers(j), "--count", "1000000",
                "--max-seconds", str(self.seconds), "--out", str(self.lab.workdir / f"cas{w}.jsonl"),  # noqa: E501
                "--name", f"cas{w}", data_id=CTR))  # fmt: skip
            if w < 2:
                p = self.lab.lab.spawn(j, f"pub{w}", [
                    sys.executable, str(HERE / "r42_worker.py"), "pub", "--servers", self.servers(j),  # noqa: E501
                    "--data-id", PUB, "--max-seconds", str(self.seconds),
                    "--out", str(self.lab.workdir / f"pub{w}.jsonl"), "--name", f"pub{w}"], pipe=True)  # fmt: skip  # noqa: E501
                self.pubs.append(p)
        for p in self.cas + self.pubs:
            if read_line(p, 20) != "ready":
                raise RuntimeError("writer not ready")
        self.lab.ev("load going")

    def step(self, s: Step) -> None:
        what, j = s[0], s[1]
        base = self.acks()
        if what == "start":
            self.lab.lists[j] = list(s[2])
            self.lab.start_node(j)
            self.running.add(j)
            if not self.ready(j):
                raise RuntimeError(f"n{j + 1} not ready:\n{self.lab.nodes[j].log_tail()}")  # type: ignore[union-attr]
            if j not in self.listeners:
                self.listen(j)
        elif what == "restart":
            self.running.discard(j)
            self.lab.stop(j)
            self.lab.lists[j] = list(s[2])
            self.lab.start_node(j)
            self.running.add(j)
            if not self.ready(j):
                raise RuntimeError(f"n{j + 1} not ready:\n{self.lab.nodes[j].log_tail()}")  # type: ignore[union-attr]
        elif what == "stop":
            self.running.discard(j)
            self.lab.stop(j)
        elif what == "kill":
            self.running.discard(j)
            self.lab.kill(j, wipe=bool(s[2]) if len(s) > 2 else False)
        got = wait(lambda: self.acks() >= base + 10, 20, step=0.1)
        self.progress.append(f"{s[:2]} {'ok' if got else 'NO PROGRESS'} (+{self.acks() - base})")

    def finish(self, final: Sequence[int], bound: float = 40.0) -> tuple[list[str], dict[str, Any]]:
        for p in self.cas + self.pubs:
            if p.alive() and p.popen.stdin is not None:
                try:
                    p.popen.stdin.write(b"quit\n")
                    p.popen.stdin.flush()
                except OSError:
                    pass
        wait(lambda: not any(p.alive() for p in self.cas + self.pubs), 20)
        for p in self.cas + self.pubs:
            p.kill()
        self.lab.ev("load stopped")

        def agreed() -> Any:
            ctr = {j: self.lab.dump(j, CTR) for j in final}
            pub = {j: self.lab.dump(j, PUB) for j in final}
            listens = {j: load(self.lab.workdir / f"listen-n{j + 1}.jsonl") for j in self.listeners}
            same = all(d for d in [*ctr.values(), *pub.values()]) and all(
                len({json.dumps(d["cur"]) for d in ds.values()}) == 1
                and len({json.dumps(sorted(map(tuple, d["hist"]))) for d in ds.values()}) == 1
                for ds in (ctr, pub)
            )
            top = max((h[0] for h in next(iter(ctr.values()))["hist"]), default=0) if same else -1
            cur = all(
                [r for r in ls if r["k"] == "cb"]
                and [r for r in ls if r["k"] == "cb"][-1]["rev"] == top
                for ls in listens.values()
            )
            return (ctr, pub, listens) if same and cur else None

        got = wait(agreed, bound, step=1.0)
        if got is None:  # judge what there is
            ctr = {j: self.lab.dump(j, CTR) for j in final}
            pub = {j: self.lab.dump(j, PUB) for j in final}
            listens = {j: load(self.lab.workdir / f"listen-n{j + 1}.jsonl") for j in self.listeners}
        else:
            ctr, pub, listens = got
        cas_recs = {
            f"cas{w}": load(self.lab.workdir / f"cas{w}.jsonl") for w in range(len(self.cas))
        }
        pub_recs = {
            f"pub{w}": load(self.lab.workdir / f"pub{w}.jsonl") for w in range(len(self.pubs))
        }
        v = judge_counter(self.init_rev, cas_recs, ctr, listens)
        v += judge_pub(pub_recs, pub)
        if got is None:
            v.append(f"not converged within {bound} s")
        stats = {
            "cas_acks": sum(1 for rs in cas_recs.values() for r in rs if r["k"] == "ack"),
            "cas_errs": {},
            "pub_acks": sum(1 for rs in pub_recs.values() for r in rs if r["k"] == "ack"),
            "pub_errs": {},
            "progress": self.progress,
        }
        for key, recs in (("cas_errs", cas_recs), ("pub_errs", pub_recs)):
            for rs in recs.values():
                for r in rs:
                    if r["k"] in ("err", "rerr"):
                        stats[key][r["kind"]] = stats[key].get(r["kind"], 0) + 1
        return v, stats

    def close(self) -> None:
        self.lab.close()


def run(workdir: Path, n: int, first: Sequence[int], plan: Sequence[Step], final: Sequence[int],
        seconds: float = 200.0) -> tuple[list[str], dict[str, Any], Roll]:  # fmt: skip
    roll = Roll(workdir, n, first, seconds)
    try:
        roll.up()
        for s in plan:
            roll.step(s)
        v, stats = roll.finish(final)
        return v, stats, roll
    finally:
        roll.close()


GROW_SHRINK: list[Step] = [
    ("start", 3, [0, 1, 2, 3]),
    ("restart", 0, [0, 1, 2, 3]), ("restart", 1, [0, 1, 2, 3]), ("restart", 2, [0, 1, 2, 3]),
    ("start", 4, [0, 1, 2, 3, 4]),
    ("restart", 0, [0, 1, 2, 3, 4]), ("restart", 1, [0, 1, 2, 3, 4]),
    ("restart", 2, [0, 1, 2, 3, 4]), ("restart", 3, [0, 1, 2, 3, 4]),
    ("stop", 4),
    ("restart", 0, [0, 1, 2, 3]), ("restart", 1, [0, 1, 2, 3]),
    ("restart", 2, [0, 1, 2, 3]), ("restart", 3, [0, 1, 2, 3]),
    ("stop", 3),
    ("restart", 0, [0, 1, 2]), ("restart", 1, [0, 1, 2]), ("restart", 2, [0, 1, 2]),
]  # fmt: skip

# node n3 (index 2) dies and is replaced by n4 (index 3) at a new address, with an
# operator's mistake on the way: n2 restarted with the old list (naming n3) for a while
REPLACE: list[Step] = [
    ("kill", 2, False),
    ("restart", 0, [0, 1]),
    ("restart", 1, [0, 1, 2]),  # the mistake: n2 still lists the dead n3
    ("restart", 1, [0, 1]),  # fixed
    ("start", 3, [0, 1, 3]),
    ("restart", 0, [0, 1, 3]), ("restart", 1, [0, 1, 3]),
]  # fmt: skip

if __name__ == "__main__":
    import shutil
    import tempfile

    which = sys.argv[1]
    wd = Path(tempfile.mkdtemp(prefix=f"r42-{which}-"))
    t = time.monotonic()
    if which == "grow":
        v, stats, roll = run(wd / "lab", 5, [0, 1, 2], GROW_SHRINK, [0, 1, 2])
    else:
        v, stats, roll = run(wd / "lab", 4, [0, 1, 2], REPLACE, [0, 1, 3])
    print(json.dumps({"violations": v[:30], "n_violations": len(v), **stats,
                      "seconds": round(time.monotonic() - t, 1)}, indent=1))  # fmt: skip
    print("events:", roll.lab.events)
    if not v:
        shutil.rmtree(wd, ignore_errors=True)
    else:
        print("kept", wd)
