"""review38: contended compare-and-set on one data id, in the chaos lab's namespaces.

A 3-node cluster (tests/chaos/netlab.py: one network namespace per node, ``--data-dir``
each, ``[config] keep_revisions = 0`` so every revision stays in the history), W writer
processes (r38_worker.py, the public ``Client``, two servers each: their own node first)
that loop "read (content n, revision r); publish n+1 with if_revision r", and one
``config_listen`` process per node.  A fault is held until a condition shows it took
effect (acks landing elsewhere), never for a fixed time.  Then every node is dumped until
current versions, histories and listeners agree (bounded), and judged (``judge_counter``,
``judge_create_delete``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "chaos"))

from netlab import Lab, Proc, iptables_command, read_line, run, unavailable_reason  # noqa: E402

from meshreg.configcenter.model import ConfigKey  # noqa: E402
from meshreg.configcenter.replication import responsible_config_node  # noqa: E402

WORKER = str(HERE / "r38_worker.py")
PORT = 7800
DATA_ID = "r38-ctr"


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    return unavailable_reason()


class CasLab:
    def __init__(self, workdir: Path, n: int = 3, peer_timeout: float = 1.0) -> None:
        self.n = n
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "node.toml"
        self.conf.write_text("[config]\nkeep_revisions = 0\n")
        self.lab = Lab(n, workdir)
        self.peer_timeout = peer_timeout
        self.nodes: list[Proc | None] = [None] * n
        self.writers: list[Proc] = []
        self.listeners: list[Proc] = []
        self.events: list[tuple[float, str]] = []

    # -- cluster ---------------------------------------------------------------------
    def ev(self, what: str) -> None:
        self.events.append((round(time.monotonic(), 3), what))

    def addr(self, j: int) -> str:
        return f"{self.lab.addresses[j]}:{PORT}"

    def owner(self, data_id: str = DATA_ID) -> int:
        members = [self.addr(j) for j in range(self.n)]
        owner = responsible_config_node(ConfigKey("public", "DEFAULT_GROUP", data_id), members)
        return members.index(owner)

    def start_node(self, j: int) -> None:
        peers: list[str] = []
        for i in range(self.n):
            peers += ["--peer", self.addr(i)]
        argv = [
            sys.executable,
            "-m",
            "meshreg",
            "node",
            "--host",
            self.lab.addresses[j],
            "--port",
            str(PORT),
            *peers,
            "--check-interval",
            "0.5",
            "--unhealthy-after",
            "3",
            "--evict-after",
            "6",
            "--peer-timeout",
            str(self.peer_timeout),
            "--insecure",
            "--data-dir",
            str(self.workdir / f"data-n{j + 1}"),
            "--config",
            str(self.conf),
        ]
        self.nodes[j] = self.lab.spawn(j, f"node-n{j + 1}", argv)
        self.ev(f"n{j + 1} started")

    def worker(self, j: int, mode: str, *args: str, data_id: str = DATA_ID) -> Proc:
        argv = [sys.executable, WORKER, mode, "--data-id", data_id, *args]
        return self.lab.spawn(j, f"{mode}-n{j + 1}-{len(self.lab.procs)}", argv, pipe=True)

    def oneshot(
        self, j: int, mode: str, *args: str, timeout: float = 20.0, data_id: str = DATA_ID
    ) -> str | None:
        p = self.worker(
            j,
            mode,
            "--servers",
            self.addr(j),
            "--max-seconds",
            str(timeout),
            *args,
            data_id=data_id,
        )
        line = read_line(p, timeout + 5)
        try:
            p.popen.wait(5)
        except Exception:
            p.kill()
        return line

    def wait_ready(self, j: int, timeout: float = 30.0) -> bool:
        return self.oneshot(j, "ready", "--members", str(self.n), timeout=timeout) == "ready"

    def up(self) -> None:
        self.lab.up()
        for j in range(self.n):
            self.start_node(j)
        for j in range(self.n):
            if not self.wait_ready(j):
                raise RuntimeError(f"n{j + 1} not ready:\n{self.nodes[j].log_tail()}")  # type: ignore[union-attr]
        self.ev("cluster ready")

    def close(self) -> None:
        self.lab.close()

    def drop(self, j: int, rule: list[str]) -> None:
        """An iptables rule in node j's namespace (removed with the namespace)."""
        ipt = iptables_command()
        if ipt is None:
            raise RuntimeError("iptables missing")
        run("ip", "netns", "exec", self.lab.namespaces[j], ipt, "-A", *rule)

    def repl(self, j: int, servers: list[int], data_id: str) -> Repl:
        argv = [
            sys.executable,
            str(HERE / "r38_repl.py"),
            "--data-id",
            data_id,
            "--servers",
            ",".join(self.addr(i) for i in servers),
        ]
        return Repl(self.lab.spawn(j, f"repl-n{j + 1}-{len(self.lab.procs)}", argv, pipe=True))

    # -- load ------------------------------------------------------------------------
    def start_load(self, mode: str, writers: int, max_seconds: float = 40.0) -> None:
        if mode == "cas":
            line = self.oneshot(self.owner(), "init")
            if line is None or not line.strip().isdigit():
                raise RuntimeError(f"init failed: {line!r}")
            self.init_rev = int(line)
        for j in range(self.n):
            p = self.worker(
                j,
                "listen",
                "--servers",
                self.addr(j),
                "--out",
                str(self.workdir / f"listen-n{j + 1}.jsonl"),
                "--max-seconds",
                "120",
            )
            if read_line(p, 15) != "ready":
                raise RuntimeError("listener not ready")
            self.listeners.append(p)
        for w in range(writers):
            j = w % self.n
            servers = f"{self.addr(j)},{self.addr((j + 1) % self.n)}"
            self.writers.append(
                self.worker(
                    j,
                    mode,
                    "--servers",
                    servers,
                    "--count",
                    "100000",
                    "--max-seconds",
                    str(max_seconds),
                    "--out",
                    str(self.workdir / f"w{w}.jsonl"),
                    "--name",
                    f"w{w}",
                )
            )
        for p in self.writers:
            if read_line(p, 20) != "ready":
                raise RuntimeError("writer not ready")
        self.ev("writers going")

    def records(self) -> dict[str, list[dict[str, Any]]]:
        return {f"w{w}": load(self.workdir / f"w{w}.jsonl") for w in range(len(self.writers))}

    def acks_since(self, t: float, avoid: str | None = None) -> int:
        return sum(
            1
            for rs in self.records().values()
            for r in rs
            if r["k"] == "ack" and r["t1"] >= t and (avoid is None or r.get("srv") != avoid)
        )

    def wait_for(self, cond: Callable[[], bool], timeout: float, what: str) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return True
            time.sleep(0.05)
        self.ev(f"timed out waiting: {what}")
        return False

    def stop_load(self) -> None:
        for p in self.writers:
            if p.alive() and p.popen.stdin is not None:
                try:
                    p.popen.stdin.write(b"quit\n")
                    p.popen.stdin.flush()
                except OSError:
                    pass
        deadline = time.monotonic() + 20
        for p in self.writers:
            while p.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if p.alive():
                p.kill()
        self.ev("writers stopped")

    def settle_and_dump(self, bound: float = 30.0) -> tuple[dict[int, Any], dict[int, list[Any]]]:
        deadline = time.monotonic() + bound
        while True:
            dumps: dict[int, Any] = {}
            for j in range(self.n):
                line = self.oneshot(j, "dump", timeout=10)
                try:
                    dumps[j] = json.loads(line or "")
                except ValueError:
                    dumps[j] = None
            listens = {j: load(self.workdir / f"listen-n{j + 1}.jsonl") for j in range(self.n)}
            if settled(dumps, listens) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for p in self.listeners:
            try:
                p.popen.stdin.write(b"quit\n")  # type: ignore[union-attr]
                p.popen.stdin.flush()  # type: ignore[union-attr]
            except OSError:
                pass
        self.ev("dumped")
        return dumps, {j: load(self.workdir / f"listen-n{j + 1}.jsonl") for j in range(self.n)}


def load(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.endswith("\n") and line.strip():
                    out.append(json.loads(line))
    except OSError:
        pass
    return out


def _top(d: Any) -> int | None:
    return max((h[0] for h in d["hist"]), default=0) if d else None


def settled(dumps: dict[int, Any], listens: dict[int, list[Any]]) -> bool:
    if any(d is None for d in dumps.values()):
        return False
    curs = {json.dumps(d["cur"]) for d in dumps.values()}
    hists = {json.dumps(sorted(map(tuple, d["hist"]))) for d in dumps.values()}
    tops = {_top(d) for d in dumps.values()}
    return (
        len(curs) == 1
        and len(hists) == 1
        and len(tops) == 1
        and all(_listener_current(ls, dumps[j]) for j, ls in listens.items())
    )


def _listener_current(ls: list[dict[str, Any]], dump: Any) -> bool:
    """The listener's last callback is the node's top revision, or (a callback runs only
    when what the client is served changes: docs/CONFIG.md, Listening) it said absent and
    the data id is deleted now."""
    cbs = [r for r in ls if r["k"] == "cb"]
    if not cbs:
        return False
    return bool(cbs[-1]["rev"] == _top(dump) or (cbs[-1]["c"] is None and dump["cur"] is None))


def _winners(d: Any) -> dict[int, list[Any]]:
    w: dict[int, list[Any]] = {}
    for h in d["hist"]:  # the winner of a revision is listed first
        w.setdefault(h[0], h)
    return w


def _common(acks, recs, dumps, listens) -> list[str]:  # type: ignore[no-untyped-def]
    v = []
    by_rev: dict[int, list[Any]] = {}
    for a in acks:
        by_rev.setdefault(a["rev"], []).append(a)
    for r, lst in sorted(by_rev.items()):
        if len(lst) > 1:
            v.append(f"two acks at revision {r}: {json.dumps(lst)}")
    for a in acks:
        if a["rev"] != a["from"] + 1 and a["from"] != 0:
            v.append(f"ack at {a['rev']} from if_revision {a['from']}")
    if len({json.dumps(d and d["cur"]) for d in dumps.values()}) != 1:
        v.append(f"nodes disagree: {[d and d['cur'] for d in dumps.values()]}")
    for w, rs in recs.items():
        hi = 0
        for r in rs:
            if r["k"] == "read" and r["rev"]:
                if r["rev"] < hi:
                    v.append(
                        f"{w} read revision {r['rev']} after seeing {hi} (from {r.get('srv')})"
                    )
                hi = max(hi, r["rev"])
            elif r["k"] == "ack":
                hi = max(hi, r["rev"])
    for j, ls in listens.items():
        revs = [r["rev"] for r in ls if r["k"] == "cb"]
        bad = [(a, b) for a, b in zip(revs, revs[1:], strict=False) if b <= a]
        if bad:
            v.append(f"listener on n{j + 1}: revision {bad[0][1]} after {bad[0][0]}")
        if dumps.get(j) and revs and not _listener_current(ls, dumps[j]):
            v.append(f"listener on n{j + 1} ended at {revs[-1]}, the node at {_top(dumps[j])}")
    return v


def judge_counter(init_rev: int, recs, dumps, listens) -> list[str]:  # type: ignore[no-untyped-def]
    acks = [r for rs in recs.values() for r in rs if r["k"] == "ack"]
    errs = [r for rs in recs.values() for r in rs if r["k"] == "err"]
    maybe = [e for e in errs if e["kind"] != "conflict" and e["kind"] != "nothing"]
    v = _common(acks, recs, dumps, listens)
    by_from: dict[int, list[Any]] = {}
    for a in acks:
        by_from.setdefault(a["from"], []).append(a)
    for f, lst in sorted(by_from.items()):
        if len(lst) > 1:
            v.append(
                f"lost update: {len(lst)} CAS writes acknowledged from revision {f}: "
                f"{json.dumps(lst)}"
            )
    for j, d in dumps.items():
        if not d or not d["cur"]:
            v.append(f"n{j + 1}: no current version")
            continue
        final = int(d["cur"][1])
        if not len(acks) <= final <= len(acks) + len(maybe):
            v.append(
                f"n{j + 1}: counter {final}, acknowledged {len(acks)}, outcome unknown {len(maybe)}"
            )
        win = _winners(d)
        for a in acks:
            h = win.get(a["rev"])
            if h is None or h[2] != a["md5"]:
                v.append(
                    f"n{j + 1}: acknowledged {a['v']} at {a['rev']} is not the winner there ({h})"
                )
        for r in sorted(win):
            if r > init_rev and r - 1 in win and int(win[r][1]) != int(win[r - 1][1]) + 1:
                v.append(f"n{j + 1}: revision {r} holds {win[r][1]} after {win[r - 1][1]}")
    return v


def judge_create_delete(recs, dumps, listens) -> list[str]:  # type: ignore[no-untyped-def]
    acks = [r for rs in recs.values() for r in rs if r["k"] == "ack"]
    v = _common(acks, recs, dumps, listens)
    for j, d in dumps.items():
        if not d:
            v.append(f"n{j + 1}: no dump")
            continue
        win = _winners(d)
        for a in acks:
            h = win.get(a["rev"])
            if (
                h is None
                or (a["op"] == "create" and h[2] != a["md5"])
                or (a["op"] == "delete" and not h[4])
            ):
                v.append(
                    f"n{j + 1}: acknowledged {a['op']} at {a['rev']} is not the winner there ({h})"
                )
        revs = sorted(win)
        for r0, r1 in zip(revs, revs[1:], strict=False):
            if r1 == r0 + 1 and win[r0][4] == win[r1][4]:
                v.append(
                    f"n{j + 1}: revisions {r0} and {r1} are both "
                    f"{'deletes' if win[r0][4] else 'live'}"
                )
    return v


def keep_workdir(workdir: Path, dest: str = "/tmp/r38/failed") -> None:
    """Keep a failed run's logs (the lab's namespaces are gone by then)."""
    try:
        target = Path(dest) / f"{workdir.name}-{int(time.time())}"
        shutil.copytree(workdir, target, ignore=shutil.ignore_patterns("data-*"))
    except OSError:
        pass


class Repl:
    """r38_repl.py: one command, one JSON answer (bounded)."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc
        line = read_line(proc, 15)
        if not line or not json.loads(line).get("ready"):
            raise RuntimeError(f"repl not ready: {line!r}")

    def __call__(self, command: str, timeout: float = 20.0) -> dict[str, Any]:
        assert self.proc.popen.stdin is not None
        self.proc.popen.stdin.write(command.encode() + b"\n")
        self.proc.popen.stdin.flush()
        line = read_line(self.proc, timeout)
        if line is None:
            raise RuntimeError(f"no answer to {command!r} within {timeout} s")
        return dict(json.loads(line))
