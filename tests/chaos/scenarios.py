"""Fault scenarios on a three-node meshreg cluster in network namespaces, and their judge.

Each scenario builds a fresh lab (netlab.Lab), starts one node, one provider and one
checker per namespace, waits for a converged baseline, applies its fault, waits for the
cluster to converge after the fault ends, tears everything down and judges the samples.

The judge (``Run.analyze``), per node and per sample:

* **live**: on a node that is not itself faulted, every instance whose provider is alive
  (not deregistered, not killed) and not cut off from that node must be present and
  healthy. A node is faulted from the fault's start until it has converged after the fault
  ended (paused, partitioned away, killed/restarting). The instances of a provider that is
  itself cut off (the partitioned namespace's provider) are exempt on every node from the
  fault's start until the whole cluster has converged after the heal.
* **removed**: once a node has shown a deregistered or dead provider's instance absent
  (after its removal began), it must never show it again (a restart of that node resets this).
* **converged**: after the fault ends, every node must show every live instance present
  and healthy and every removed one absent, and stay so, within ``bound`` seconds; the
  time it took is measured.
* **provider death**: every node shows each dead instance unhealthy before it disappears.

Random choices (which node, which instances, the impairer's randomness) come from the
seed, which is printed with every result; timelines use seconds since the run started.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from netlab import HERE, Lab, LabError, Proc, iptables_command, read_line, run

Key = tuple[str, str]  # (service, "ip:port")


@dataclass
class Settings:
    nodes: int = 3
    services: int = 10
    per_service: int = 3  # instances per service per provider (namespace)
    port: int = 7800
    check_interval: float = 0.5
    unhealthy_after: float = 3.0
    evict_after: float = 6.0
    peer_timeout: float = 1.5
    beat_interval: float = 0.5
    sample_interval: float = 0.15
    sample_timeout: float = 1.0
    converge_bound: float = 5.0  # s after the fault ends
    settle: float = 3.0  # s a converged cluster is watched before the run ends
    max_run_seconds: float = 110.0  # hard bound on one scenario (setup to teardown)
    beat_only: bool = False  # also a provider with per-instance beats in every namespace
    ipv6: bool = False  # the nodes on IPv6 addresses only (netlab SUBNET6)

    def service_names(self) -> list[str]:
        return [f"chaos-s{i}" for i in range(self.services)]

    @classmethod
    def for_scenario(cls, name: str) -> Settings:
        """The settings scenario ``name`` runs with: the defaults, and ``SHORT_HEALTH``
        for the scenarios whose fault is sized by evict_after (``SHORT_HEALTH_SCENARIOS``)."""
        base = replace(cls(), **SHORT_HEALTH) if name in SHORT_HEALTH_SCENARIOS else cls()
        # two cuts that cross need four nodes; four cuts, a node three hops from another, five
        nodes = {"crossing-cuts": 4, "five-cuts": 5, "no-majority": 5}.get(name, base.nodes)
        return replace(
            base, beat_only=name in BEAT_ONLY_SCENARIOS, nodes=nodes, ipv6=name.endswith("-ipv6")
        )


# Health timings for the scenarios whose fault must outlast evict_after (pause, partition)
# or that wait for it (provider-death): each fault is sized from these settings, so the
# events come in the same order, with the same 2 s margins, as with the defaults, about 2 s
# sooner per scenario.  unhealthy_after stays above peer_timeout (a silent owner is taken
# over before anyone judges its instances; the stall threshold, min(peer_timeout,
# unhealthy_after) / 3, is unchanged) and holds 4 beats (0.5 s).  Not dereg-partition: its
# cut must end after the minority marks instances unhealthy and before it evicts them, and
# at these timings the first margin would be one sweep.  Not the loss scenarios: TCP's
# retransmission backoff under 20 % loss does not shrink with the timings.
SHORT_HEALTH = {"unhealthy_after": 2.0, "evict_after": 4.0}
SHORT_HEALTH_SCENARIOS = ("provider-death", "pause", "partition", "no-majority")
# the faults a client of another language (per-instance beats, no session) met otherwise
BEAT_ONLY_SCENARIOS = ("oneway-port", "pub-blocked", "crossing-cuts", "five-cuts")


@dataclass
class Inst:
    key: Key
    provider: int
    removing_at: float | None = None  # monotonic time its removal began
    removal: str = ""  # "dereg" | "dead"


@dataclass
class Window:
    """One fault: [start, end], the nodes it faults and the providers it cuts off."""

    name: str
    start: float
    end: float | None = None
    faulted: set[int] = field(default_factory=set)
    exempt: set[int] = field(default_factory=set)
    bound: float = 5.0
    strict_after_end: bool = False  # faulted node judged from the fault's end (restart: ready)
    obs_end: float = 0.0  # filled in by analyze: next window's start or the run's end
    converged_at: dict[int, float | None] = field(default_factory=dict)

    def recovered(self, j: int) -> float:
        if self.strict_after_end and self.end is not None:
            return self.end
        at = self.converged_at.get(j)
        return at if at is not None else self.obs_end

    def cluster_converged(self) -> float | None:
        if any(v is None for v in self.converged_at.values()) or not self.converged_at:
            return None
        return max(v for v in self.converged_at.values() if v is not None)


@dataclass
class Violation:
    t: float
    node: int
    kind: str  # missing | unhealthy | reappeared | no-converge | slow-converge | ...
    detail: str


@dataclass
class Result:
    scenario: str
    seed: int
    duration: float = 0.0
    converge: list[tuple[str, float | None, float]] = field(default_factory=list)
    bad_samples: int = 0  # (node, sample) pairs with a live instance missing/unhealthy
    worst_sample: int = 0  # most live instances missing or unhealthy in one such sample
    reappeared: int = 0  # (node, sample) pairs showing a removed instance again
    minority: str = ""
    notes: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    report: str = ""  # timeline and log tails (filled when there are violations)
    workdir: str = ""

    @property
    def ok(self) -> bool:
        return not self.violations

    def converge_text(self) -> str:
        parts = []
        for name, secs, bound in self.converge:
            parts.append(f"{name}: {'never' if secs is None else f'{secs:.1f}s'} (<= {bound:g}s)")
        return "; ".join(parts) or "-"


class Abort(Exception):
    pass


class Run:
    def __init__(self, scenario: str, seed: int, settings: Settings | None = None) -> None:
        self.scenario = scenario
        self.seed = seed
        self.s = settings or Settings()
        self.rng = random.Random(seed)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"meshreg-chaos-{scenario}-"))
        self.lab = Lab(self.s.nodes, self.workdir, ipv6=self.s.ipv6)
        self.origin = time.monotonic()
        self.hard_deadline = self.origin + self.s.max_run_seconds
        self.events: list[tuple[float, str]] = []
        self.samples: list[list[dict]] = [[] for _ in range(self.s.nodes)]
        self._pos = [0] * self.s.nodes
        self._partial = [""] * self.s.nodes
        self.nodes: list[Proc | None] = [None] * self.s.nodes
        self.providers: list[Proc | None] = [None] * self.s.nodes
        self.instances: dict[Key, Inst] = {}
        self.windows: list[Window] = []
        self.restarts: list[tuple[float, int]] = []
        self.judge_from = float("inf")
        self.notes: list[str] = []
        self.dereg_replies: list[str] = []
        self.extra_violations: list[Violation] = []  # judged during the run (configs)

    # -- bookkeeping -------------------------------------------------------------------
    def rel(self, t: float) -> float:
        return t - self.origin

    def event(self, text: str, t: float | None = None) -> float:
        t = time.monotonic() if t is None else t
        self.events.append((t, text))
        return t

    def name(self, j: int) -> str:
        return f"n{j + 1}" if j >= 0 else "-"

    def addr(self, j: int) -> str:
        host = self.lab.addresses[j]
        return f"[{host}]:{self.s.port}" if ":" in host else f"{host}:{self.s.port}"

    # -- processes ---------------------------------------------------------------------
    def start_node(self, j: int) -> None:
        s = self.s
        peers: list[str] = []
        for i in range(s.nodes):
            peers += ["--peer", self.addr(i)]
        argv = [
            sys.executable,
            "-m",
            "meshreg",
            "node",
            "--host",
            self.lab.addresses[j],
            "--port",
            str(s.port),
            "--node-id",
            self.name(j),
            *peers,
            "--check-interval",
            str(s.check_interval),
            "--unhealthy-after",
            str(s.unhealthy_after),
            "--evict-after",
            str(s.evict_after),
            "--peer-timeout",
            str(s.peer_timeout),
            "--insecure",  # namespace-private addresses: keys are tested in test_security
            "--data-dir",  # configs on disk; the same directory after a restart
            str(self.workdir / f"data-{self.name(j)}"),
        ]
        self.nodes[j] = self.lab.spawn(j, f"node-{self.name(j)}", argv)
        self.event(f"{self.name(j)} started (pid {self.nodes[j].pid})")  # type: ignore[union-attr]

    def start_checker(self, j: int) -> None:
        out = self.workdir / f"samples-{self.name(j)}.jsonl"
        out.touch()
        argv = [
            sys.executable,
            str(HERE / "checker.py"),
            "--node",
            self.addr(j),
            "--services",
            ",".join(self.s.service_names()),
            "--interval",
            str(self.s.sample_interval),
            "--timeout",
            str(self.s.sample_timeout),
            "--max-seconds",
            str(self.s.max_run_seconds + 30),
            "--out",
            str(out),
        ]
        self.lab.spawn(j, f"checker-{self.name(j)}", argv)

    def start_provider(self, j: int, index: int | None = None, sessions: bool = True) -> Proc:
        """A provider in node j's namespace, through node j; ``index`` (>= nodes) names
        a second one there (ports from 30000 + 1000 * index), ``sessions`` False: it
        beats per instance (``Client(sessions=False)``)."""
        index = j if index is None else index
        port_base = 20000 if index == j else 30000 + 1000 * index
        argv = [
            sys.executable,
            str(HERE / "provider.py"),
            "--server",
            self.addr(j),
            "--ip",
            self.lab.addresses[j],
            "--services",
            ",".join(self.s.service_names()),
            "--per-service",
            str(self.s.per_service),
            "--beat-interval",
            str(self.s.beat_interval),
            "--max-seconds",
            str(self.s.max_run_seconds + 30),
            "--port-base",
            str(port_base),
        ] + ([] if sessions else ["--no-sessions"])
        label = self.name(j) if index == j else f"{self.name(j)}-{index}"
        proc = self.lab.spawn(j, f"provider-{label}", argv, pipe=True)
        self.providers.extend([None] * max(0, index + 1 - len(self.providers)))
        self.providers[index] = proc
        for si, svc in enumerate(self.s.service_names()):
            for k in range(self.s.per_service):
                key = (svc, f"{self.lab.addresses[j]}:{port_base + 100 * si + k}")
                self.instances[key] = Inst(key, index)
        return proc

    # -- samples -------------------------------------------------------------------------
    def poll(self) -> None:
        for j in range(self.s.nodes):
            path = self.workdir / f"samples-{self.name(j)}.jsonl"
            try:
                with open(path, encoding="utf-8") as fh:
                    fh.seek(self._pos[j])
                    data = fh.read()
                    self._pos[j] = fh.tell()
            except OSError:
                continue
            lines = (self._partial[j] + data).split("\n")
            self._partial[j] = lines.pop()
            for line in lines:
                if line.strip():
                    self.samples[j].append(json.loads(line))

    def latest(self, j: int, since: float) -> dict | None:
        for sample in reversed(self.samples[j]):
            if sample["t0"] >= since:
                return sample
            break
        return None

    def wait_for(self, predicate: Callable[[], object], timeout: float, what: str) -> float:
        """Poll samples until ``predicate`` holds; returns the time it held."""
        deadline = min(time.monotonic() + timeout, self.hard_deadline)
        while True:
            self.poll()
            if predicate():
                return time.monotonic()
            if time.monotonic() >= deadline:
                raise Abort(f"timed out after {timeout:g}s waiting for {what}")
            time.sleep(self.s.sample_interval / 2)  # polling interval

    def observe(self, seconds: float) -> None:
        """Let the fault (or the steady state) last ``seconds``, collecting samples."""
        end = min(time.monotonic() + seconds, self.hard_deadline)
        while time.monotonic() < end:
            self.poll()
            time.sleep(min(self.s.sample_interval, max(0.0, end - time.monotonic())))
        self.poll()

    # -- expectations ------------------------------------------------------------------
    def live_at(self, inst: Inst, t1: float) -> bool:
        return inst.removing_at is None or inst.removing_at > t1

    def converged(self, sample: dict) -> bool:
        if not sample.get("ok"):
            return False
        inst = sample["inst"]
        for key, meta in self.instances.items():
            shown = inst.get(key[0], {}).get(key[1])
            if self.live_at(meta, sample["t1"]):
                if shown is not True:
                    return False
            elif shown is not None and meta.removing_at is not None:
                return False
        return True

    def all_converged(self, since: float) -> bool:
        for j in range(self.s.nodes):
            sample = self.latest(j, since)
            if sample is None or not self.converged(sample):
                return False
        return True

    def all_ready(self, since: float) -> bool:
        for j in range(self.s.nodes):
            sample = self.latest(j, since)
            if sample is None or not sample.get("ok") or not sample.get("ready"):
                return False
            members = sample.get("members", {})
            if len(members) != self.s.nodes - 1 or any(v != "up" for v in members.values()):
                return False
        return True

    def sees_down(self, j: int, k: int, since: float) -> bool:
        sample = self.latest(j, since)
        return bool(sample and sample.get("ok") and sample["members"].get(self.name(k)) == "down")

    def node_ready(self, j: int, since: float) -> bool:
        sample = self.latest(j, since)
        return bool(sample and sample.get("ok") and sample.get("ready"))

    def first_ready(self, j: int, since: float) -> float:
        """When node j first said it was ready after ``since`` (the sample's start)."""
        for x in self.samples[j]:
            if x["t0"] >= since and x.get("ok") and x.get("ready"):
                return float(x["t0"])
        return time.monotonic()

    # -- the common parts of a scenario --------------------------------------------------
    def setup(self) -> None:
        self.lab.up()
        self.event(
            "lab up: "
            + ", ".join(
                f"{n}={a}" for n, a in zip(self.lab.namespaces, self.lab.addresses, strict=True)
            )
        )
        for j in range(self.s.nodes):
            self.start_node(j)
            self.start_checker(j)
        t = time.monotonic()
        self.wait_for(lambda: self.all_ready(t), 40, "every node ready with every peer up")
        self.event("cluster ready")
        n = self.s.nodes
        procs = [self.start_provider(j) for j in range(n)]
        if self.s.beat_only:
            procs += [self.start_provider(j, n + j, sessions=False) for j in range(n)]
        for i, proc in enumerate(procs):
            line = read_line(proc, 40)
            if not line or not line.startswith("ready"):
                raise Abort(f"provider {i} in {self.name(i % n)} did not register: {line!r}")
        t = self.event(f"providers registered {len(self.instances)} instances")
        self.wait_for(lambda: self.all_converged(t), 20, "every instance healthy on every node")
        self.judge_from = self.event("baseline converged; judging from here")
        self.observe(2.0)

    def open_window(self, name: str, faulted: set[int], exempt: set[int], bound: float) -> Window:
        w = Window(name, self.event(f"FAULT {name}"), None, faulted, exempt, bound)
        self.windows.append(w)
        return w

    def close_window(self, w: Window, t: float | None = None) -> None:
        w.end = self.event(f"FAULT END {w.name}", t)

    def settle(self, w: Window, extra: float = 0.0) -> None:
        """Wait until the cluster converged after ``w`` and stayed so ``settle`` seconds."""
        assert w.end is not None
        deadline = w.end + w.bound + self.s.settle + extra + 2.0
        stable_since: float | None = None
        while time.monotonic() < min(deadline, self.hard_deadline):
            self.poll()
            if self.all_converged(w.end):
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since >= self.s.settle + extra:
                    return
            else:
                stable_since = None
            time.sleep(self.s.sample_interval)
        self.poll()

    def kill_provider(self, index: int) -> tuple[list[Key], float]:
        """SIGKILL provider ``index``: its instances (returned, with when) must go."""
        proc = self.providers[index]
        assert proc is not None
        t = time.monotonic()
        proc.kill()
        keys = sorted(k for k, m in self.instances.items() if m.provider == index)
        for key in keys:
            self.instances[key].removing_at, self.instances[key].removal = t, "dead"
        self.event(f"provider {index} SIGKILL ({len(keys)} instances)")
        return keys, t

    def judge_death(self, keys: list[Key], died: float, bound: float) -> None:
        """Dead instances gone from every node within ``bound`` s of the death, and for
        good, judged on the samples up to now (a fault may still be on)."""
        self.poll()
        until = time.monotonic()
        for j in range(self.s.nodes):
            gone = None
            for x in self.samples[j]:
                if not died <= x["t0"] <= until or not x.get("ok"):
                    continue
                shown = [x["inst"].get(s, {}).get(a) for s, a in keys]
                gone = (gone or x["t0"]) if all(v is None for v in shown) else None
            took = "never" if gone is None else f"{gone - died:.1f}s"
            self.notes.append(f"{self.name(j)}: dead instances gone for good after {took}")
            if gone is None or gone - died > bound:
                self.extra_violations.append(
                    Violation(
                        until,
                        j,
                        "dead-kept",
                        f"{len(keys)} dead instances not gone within {bound:g}s during the "
                        f"fault (gone for good after {took}, watched {until - died:.1f}s)",
                    )
                )

    def drop_rule(self, j: int, rule: list[str], on: bool) -> None:
        """Add (remove) an iptables rule in node j's namespace (it goes with the lab)."""
        ipt = iptables_command()
        if ipt is None:
            raise Abort("iptables is not installed")
        run("ip", "netns", "exec", self.lab.namespaces[j], ipt, "-A" if on else "-D", *rule,
            check=on)  # fmt: skip

    def kill_node(self, j: int) -> None:
        node = self.nodes[j]
        assert node is not None
        node.kill()
        self.restarts.append((self.event(f"{self.name(j)} SIGKILL"), j))

    def deregister(self, keys: list[Key]) -> None:
        """Deregister instances through their providers, all at once; wait for the replies."""
        for key in keys:
            inst = self.instances[key]
            proc = self.providers[inst.provider]
            assert proc is not None and proc.popen.stdin is not None
            ip, port = key[1].split(":")
            inst.removing_at = time.monotonic()
            inst.removal = "dereg"
            proc.popen.stdin.write(f"dereg {key[0]} {ip} {port}\n".encode())
            proc.popen.stdin.flush()
        self.event(f"deregister {len(keys)}: " + " ".join(f"{s}/{a}" for s, a in keys))
        for key in keys:
            proc = self.providers[self.instances[key].provider]
            assert proc is not None
            line = read_line(proc, 12.0)
            self.dereg_replies.append(line or "")
            if not line or not line.startswith("ok"):
                raise Abort(f"deregistration failed: {line!r}")
        self.event("deregistrations answered")

    def teardown(self) -> None:
        self.poll()
        self.lab.close()
        self.event("lab down")

    # -- judging ---------------------------------------------------------------------------
    def analyze(self) -> Result:
        res = Result(self.scenario, self.seed, duration=time.monotonic() - self.origin)
        res.workdir = str(self.workdir)
        res.notes = list(self.notes)
        run_end = max([s["t1"] for per in self.samples for s in per] or [time.monotonic()])
        for i, w in enumerate(self.windows):
            w.obs_end = self.windows[i + 1].start if i + 1 < len(self.windows) else run_end
            end = w.end if w.end is not None else w.obs_end
            for j in range(self.s.nodes):
                # samples answered before the next fault began: one still in flight when it
                # began may be cut by it (a SIGKILL) and says nothing about this window
                later = [x for x in self.samples[j] if end <= x["t0"] and x["t1"] <= w.obs_end]
                at = None
                for x in reversed(later):
                    if not self.converged(x):
                        break
                    at = x["t0"]
                w.converged_at[j] = at
                if at is None:
                    res.violations.append(
                        Violation(
                            w.obs_end,
                            j,
                            "no-converge",
                            f"after {w.name}: not converged by the end "
                            f"({w.obs_end - end:.1f}s after it)",
                        )
                    )
                elif at - end > w.bound:
                    res.violations.append(
                        Violation(
                            at,
                            j,
                            "slow-converge",
                            f"after {w.name}: {at - end:.1f}s > {w.bound:g}s",
                        )
                    )
            done = w.cluster_converged()
            res.converge.append((w.name, None if done is None else max(0.0, done - end), w.bound))
        self._judge_samples(res)
        res.violations.extend(self.extra_violations)
        res.minority = self._minority()
        res.report = self.format_report(res) if res.violations else ""
        return res

    def _faulted(self, j: int, t0: float, t1: float) -> bool:
        return any(j in w.faulted and w.start <= t1 and t0 <= w.recovered(j) for w in self.windows)

    def _exempt(self, p: int, t0: float, t1: float) -> bool:
        for w in self.windows:
            if p in w.exempt and w.start <= t1:
                until = w.cluster_converged() or w.obs_end
                if t0 <= until:
                    return True
        return False

    def _judge_samples(self, res: Result) -> None:
        for j in range(self.s.nodes):
            reached: dict[Key, bool] = {}
            restarts = sorted(t for t, k in self.restarts if k == j)
            seen_unhealthy: set[Key] = set()
            for x in self.samples[j]:
                while restarts and restarts[0] <= x["t0"]:
                    restarts.pop(0)
                    reached.clear()
                if x["t0"] < self.judge_from:
                    continue
                if not x.get("ok"):
                    if not self._faulted(j, x["t0"], x["t1"]):
                        res.notes.append(
                            f"{self.name(j)} did not answer a sample at "
                            f"{self.rel(x['t0']):.1f}s ({x.get('err')})"
                        )
                    continue
                inst = x["inst"]
                bad = 0
                if not self._faulted(j, x["t0"], x["t1"]):
                    for key, meta in self.instances.items():
                        if not self.live_at(meta, x["t1"]):
                            continue
                        if self._exempt(meta.provider, x["t0"], x["t1"]):
                            continue
                        shown = inst.get(key[0], {}).get(key[1])
                        if shown is True:
                            continue
                        bad += 1
                        kind = "missing" if shown is None else "unhealthy"
                        res.violations.append(Violation(x["t0"], j, kind, f"{key[0]}/{key[1]}"))
                    if bad:
                        res.bad_samples += 1
                        res.worst_sample = max(res.worst_sample, bad)
                again = 0
                for key, meta in self.instances.items():
                    if meta.removing_at is None or x["t0"] <= meta.removing_at:
                        continue
                    shown = inst.get(key[0], {}).get(key[1])
                    if shown is None:
                        reached[key] = True
                        continue
                    if shown is False:
                        seen_unhealthy.add(key)
                    if reached.get(key):
                        again += 1
                        res.violations.append(
                            Violation(
                                x["t0"],
                                j,
                                "reappeared",
                                f"{key[0]}/{key[1]} (healthy={shown}, {meta.removal})",
                            )
                        )
                if again:
                    res.reappeared += 1
            dead = [k for k, m in self.instances.items() if m.removal == "dead"]
            skipped = [k for k in dead if reached.get(k) and k not in seen_unhealthy]
            if skipped:
                res.violations.append(
                    Violation(
                        self.samples[j][-1]["t0"],
                        j,
                        "no-unhealthy-phase",
                        f"{len(skipped)} dead instances vanished without "
                        f"being shown unhealthy first",
                    )
                )

    def _minority(self) -> str:
        parts = []
        for w in self.windows:
            if not w.faulted or w.end is None:
                continue
            for j in sorted(w.faulted):
                xs = [x for x in self.samples[j] if w.start <= x["t0"] <= w.end]
                ok = [x for x in xs if x.get("ok")]
                if not ok:
                    parts.append(f"{w.name}: {self.name(j)} answered 0/{len(xs)} samples")
                    continue
                stats = {"own": [0, 0, 0, 99999], "others": [0, 0, 0, 99999]}
                for x in ok:
                    counts = {"own": [0, 0, 0], "others": [0, 0, 0]}
                    for key, meta in self.instances.items():
                        if not self.live_at(meta, x["t1"]):
                            continue
                        side = "own" if meta.provider == j else "others"
                        shown = x["inst"].get(key[0], {}).get(key[1])
                        counts[side][0 if shown is True else 1 if shown is False else 2] += 1
                    for side, c in counts.items():
                        st = stats[side]
                        st[1] = max(st[1], c[1])
                        st[2] = max(st[2], c[2])
                        st[3] = min(st[3], c[0])
                        st[0] = c[0] + c[1] + c[2]
                view = ", ".join(f"{k} {v}" for k, v in sorted(ok[-1].get("members", {}).items()))
                parts.append(
                    f"{w.name}: {self.name(j)} answered {len(ok)}/{len(xs)}; peers [{view}]; "
                    f"others' live {stats['others'][0]}: healthy>={stats['others'][3]}, "
                    f"unhealthy<={stats['others'][1]}, missing<={stats['others'][2]}; "
                    f"own {stats['own'][0]}: healthy>={stats['own'][3]}, "
                    f"missing<={stats['own'][2]}"
                )
        return " | ".join(parts) or "-"

    def format_report(self, res: Result, log_lines: int = 30) -> str:
        out = [
            f"scenario {self.scenario}  seed {self.seed}  (replay: bin/meshreg-chaos "
            f"--scenario {self.scenario} --seed {self.seed})",
            f"converge: {res.converge_text()}",
            f"live instance missing/unhealthy on an unfaulted node: {res.bad_samples} "
            f"samples (worst {res.worst_sample} at once); removed shown again: "
            f"{res.reappeared} samples",
            f"minority: {res.minority}",
            "timeline (s since start):",
        ]
        items = [(t, f"    {'':6} {text}") for t, text in self.events]
        groups: dict[tuple[int, str], list[Violation]] = {}
        for v in res.violations:
            groups.setdefault((v.node, v.kind), []).append(v)
        for (j, kind), vs in groups.items():
            ts = sorted({v.t for v in vs})
            keys = sorted({v.detail for v in vs})
            shown = ", ".join(keys[:6]) + (f" ... (+{len(keys) - 6})" if len(keys) > 6 else "")
            items.append(
                (
                    ts[0],
                    f"    {self.name(j):6} VIOLATION {kind}: {len(vs)} in "
                    f"{len(ts)} samples {self.rel(ts[0]):.2f}..{self.rel(ts[-1]):.2f}s"
                    f": {shown}",
                )
            )
        for t, line in sorted(items, key=lambda it: it[0]):
            out.append(f"  {self.rel(t):7.2f} {line.strip()}")
        if res.notes:
            out.append("notes: " + "; ".join(res.notes[:10]))
        for proc in self.lab.procs:
            if proc.name.startswith("node-"):
                out.append(f"--- tail of {proc.name} log ({proc.log_path}) ---")
                out.append(proc.log_tail(log_lines))
        return "\n".join(out)

    def cleanup_workdir(self) -> None:
        if not os.environ.get("MESHREG_CHAOS_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)


# -- the scenarios ---------------------------------------------------------------------------
def sc_kill(r: Run) -> None:
    k = r.rng.randrange(r.s.nodes)
    w = r.open_window(f"kill {r.name(k)}", {k}, set(), r.s.converge_bound)
    w.strict_after_end = True  # judged again from the moment it reports ready
    r.kill_node(k)
    t = time.monotonic()
    others = [j for j in range(r.s.nodes) if j != k]
    r.wait_for(lambda: all(r.sees_down(j, k, t) for j in others), 15, "peers to see it down")
    r.event(f"peers see {r.name(k)} down")
    r.observe(1.0)
    r.start_node(k)
    t = time.monotonic()
    r.wait_for(lambda: r.node_ready(k, t), 40, f"{r.name(k)} ready after restart")
    r.close_window(w, r.first_ready(k, t))
    r.settle(w)


def sc_kill_ipv6(r: Run) -> None:
    """The cluster on IPv6 addresses only (a cluster on IPv6 never formed: its peers'
    addresses were read back as hosts without a port, and the peer sockets could not
    connect to IPv6): configs written through one node and read on another, then
    ``kill``."""
    cli = [sys.executable, "-m", "meshreg", "config"]
    for j in range(r.s.nodes):
        content = f"written through {r.name(j)}"
        data_id = f"ipv6-{j}.txt"
        done = run("ip", "netns", "exec", r.lab.namespaces[j], *cli, "publish", data_id,
                   "--content", content, "-s", r.addr(j), timeout=30, check=False)  # fmt: skip
        if done.returncode != 0:
            raise Abort(f"config publish through {r.addr(j)}: {done.stderr.strip()}")
        k = (j + 1) % r.s.nodes  # read on the next node (it may lag a moment: wait)
        argv = ("ip", "netns", "exec", r.lab.namespaces[k], *cli, "get", data_id, "-s", r.addr(k))

        def read(argv: tuple[str, ...] = argv, content: str = content) -> bool:
            got = run(*argv, timeout=30, check=False)
            return got.returncode == 0 and got.stdout.strip() == content

        r.wait_for(read, 10, f"{data_id} read on {r.name(k)}")
    r.event("configs written and read across the IPv6 nodes")
    sc_kill(r)


def sc_rolling(r: Run) -> None:
    for k in range(r.s.nodes):
        w = r.open_window(f"restart {r.name(k)}", {k}, set(), r.s.converge_bound)
        w.strict_after_end = True
        node = r.nodes[k]
        assert node is not None
        code = node.stop(10.0)
        r.restarts.append((r.event(f"{r.name(k)} stopped (SIGTERM, exit {code})"), k))
        r.start_node(k)
        t = time.monotonic()
        r.wait_for(lambda k=k, t=t: r.node_ready(k, t), 40, f"{r.name(k)} ready")
        r.close_window(w, r.first_ready(k, t))
        r.settle(w)


def sc_provider_death(r: Run) -> None:
    p = r.rng.randrange(r.s.nodes)
    bound = r.s.evict_after + 2 * r.s.check_interval + 1.5
    w = r.open_window(f"provider {r.name(p)} killed", set(), set(), bound)
    proc = r.providers[p]
    assert proc is not None
    t = time.monotonic()
    proc.kill()
    for meta in r.instances.values():
        if meta.provider == p:
            meta.removing_at, meta.removal = t, "dead"
    r.event(f"provider-{r.name(p)} SIGKILL ({r.s.services * r.s.per_service} instances)")
    r.close_window(w, t)
    r.settle(w)


def sc_pause(r: Run, seconds: float | None = None) -> None:
    """SIGSTOP one node for 2 s more than evict_after (8 s at the defaults), SIGCONT."""
    seconds = r.s.evict_after + 2.0 if seconds is None else seconds
    k = r.rng.randrange(r.s.nodes)
    w = r.open_window(f"pause {r.name(k)} {seconds:g}s", {k}, set(), r.s.converge_bound)
    node = r.nodes[k]
    assert node is not None
    node.pause()
    r.event(f"{r.name(k)} SIGSTOP")
    r.observe(seconds - (time.monotonic() - w.start))
    node.resume()
    r.close_window(w, r.event(f"{r.name(k)} SIGCONT"))
    r.settle(w)


def sc_partition(r: Run, seconds: float | None = None) -> None:
    """Cut one node off for 4 s more than evict_after (10 s at the defaults), heal."""
    seconds = r.s.evict_after + 4.0 if seconds is None else seconds
    k = r.rng.randrange(r.s.nodes)
    w = r.open_window(f"partition {r.name(k)} {seconds:g}s", {k}, {k}, r.s.converge_bound)
    r.lab.link(k, False)
    r.event(f"switch port of {r.name(k)} down")
    r.observe(seconds - (time.monotonic() - w.start))
    r.lab.link(k, True)
    r.close_window(w, r.event(f"switch port of {r.name(k)} up"))
    r.settle(w)


def sc_dereg_partition(r: Run, seconds: float = 6.0, count: int = 10) -> None:
    """Partition one node for ~2 s less than its eviction time (takeover after peer_timeout,
    eviction evict_after later); majority providers deregister meanwhile."""
    k = r.rng.randrange(r.s.nodes)
    w = r.open_window(
        f"partition {r.name(k)} {seconds:g}s + deregister", {k}, {k}, r.s.converge_bound
    )
    r.lab.link(k, False)
    r.event(f"switch port of {r.name(k)} down")
    r.observe(1.0)
    majority = sorted(key for key, m in r.instances.items() if m.provider != k)
    r.deregister(r.rng.sample(majority, count))
    r.observe(seconds - (time.monotonic() - w.start))
    r.lab.link(k, True)
    r.close_window(w, r.event(f"switch port of {r.name(k)} up"))
    r.settle(w, extra=3.0)  # the issue saw deregistered instances back for ~6 s


def sc_loss(r: Run, seconds: float = 20.0) -> None:
    w = r.open_window(f"20% loss + 10-30ms delay {seconds:g}s", set(), set(), r.s.converge_bound)
    r.lab.impair(range(r.s.nodes), 0.2, (0.010, 0.030), r.seed)
    r.event("impairment on: every node's eth0 egress (NFQUEUE handler per namespace)")
    r.observe(seconds - (time.monotonic() - w.start))
    r.lab.clear_impairment()
    r.close_window(w, r.event("impairment off"))
    r.settle(w)
    flaps = 0
    for j in range(r.s.nodes):
        prev: dict[str, str] = {}
        for x in r.samples[j]:
            if x.get("ok") and w.start <= x["t0"] <= (w.end or 0):
                for m, st in x["members"].items():
                    if prev.get(m) == "up" and st == "down":
                        flaps += 1
                prev = x["members"]
    r.notes.append(f"peer up->down transitions seen during the loss: {flaps}")


def sc_oneway_port(r: Run, seconds: float = 25.0) -> None:
    """A one-way link at the application level (review14c F1): node b drops what node a's
    replication port (P+2) sends it, everything else works. 3 s in, the providers of the
    third node die: they must be gone from every node within evict_after + 4 s while the
    fault is still on, and no live instance (sessions or per-instance beats) may look
    unhealthy or missing anywhere meanwhile (before the fix: dead instances kept healthy
    on every node for the whole fault)."""
    a, b = r.rng.sample(range(r.s.nodes), 2)
    c = next(j for j in range(r.s.nodes) if j not in (a, b))
    rule = ["INPUT", "-i", "eth0", "-s", r.lab.addresses[a], "-p", "tcp", "--sport",
            str(r.s.port + 2), "-j", "DROP"]  # fmt: skip
    _port_fault(r, [(b, rule)], f"{r.name(b)} deaf to {r.name(a)}:P+2", c, seconds, 8.0)


def _port_fault(
    r: Run,
    rules: list[tuple[int, list[str]]],
    name: str,
    victim: int,
    seconds: float,
    bound: float,
) -> None:
    """Each (j, rule) in node j's namespace for ``seconds``; 3 s in, both providers of
    node ``victim`` die: gone from every node within evict_after + 4 s while the rules
    hold."""
    w = r.open_window(f"{name} {seconds:g}s", set(), set(), bound)
    for j, rule in rules:
        r.drop_rule(j, rule, True)
    r.observe(3.0)
    dead = [r.kill_provider(p) for p in (victim, r.s.nodes + victim)]
    r.observe(seconds - (time.monotonic() - w.start))
    r.judge_death(dead[0][0] + dead[1][0], dead[0][1], r.s.evict_after + 4.0)
    for j, rule in rules:
        r.drop_rule(j, rule, False)
    r.close_window(w, r.event("rules removed"))
    r.settle(w)


def sc_pub_blocked(r: Run, seconds: float = 25.0) -> None:
    """A firewall that forgot one port (review14c F2): node a's replication port (P+2)
    closed to every peer; a hears everyone, requests work both ways. The per-instance
    beaters talking to a must stay healthy on every node; 3 s in, another node's
    providers die: gone everywhere within evict_after + 4 s, during the fault (before the
    fix: a's beat-only instances unhealthy on the other nodes for the whole fault)."""
    a, c = r.rng.sample(range(r.s.nodes), 2)
    rule = ["INPUT", "-i", "eth0", "-p", "tcp", "--dport", str(r.s.port + 2), "-j", "DROP"]
    _port_fault(r, [(a, rule)], f"{r.name(a)}:P+2 closed", c, seconds, 5.0)


def sc_crossing_cuts(r: Run, seconds: float = 25.0) -> None:
    """Two cuts that cross (review15 F2), four nodes: a <-> b and c <-> d cannot reach
    each other, every other pair can, so no node hears every other. 3 s in, a's providers
    (a session one and a per-instance-beat one) die: gone from every node within
    evict_after + 4 s while the cuts last, and no live instance missing or unhealthy
    anywhere (before the fix: the dead session instances stayed healthy on every node
    for the whole fault; nobody judged sessions while the views differed this way)."""
    a, b, c, d = r.rng.sample(range(r.s.nodes), 4)
    rules = []
    for x, y in ((a, b), (b, a), (c, d), (d, c)):  # each end drops what the other sends
        rules.append((x, ["INPUT", "-i", "eth0", "-s", r.lab.addresses[y], "-j", "DROP"]))
    name = f"cut {r.name(a)}<->{r.name(b)} and {r.name(c)}<->{r.name(d)}"
    _port_fault(r, rules, name, a, seconds, 8.0)


def sc_five_cuts(r: Run, seconds: float = 25.0) -> None:
    """Four cuts on five nodes (review16 F3): a <-> b, a <-> d, b <-> c and b <-> e cannot
    reach each other, so no node hears every other and a is three hops from b (a hears c
    and e, which hear d, which hears b).  3 s in, a's providers (a session one and a
    per-instance-beat one) die: gone from every node within evict_after + 4 s while the
    cuts last, and no live instance missing or unhealthy anywhere (before the fix: a and b
    took peers for full hearers from the views they knew, and the dead instances of the
    services owned by a or b stayed healthy on every node for the whole fault)."""
    a, b, c, d, e = r.rng.sample(range(r.s.nodes), 5)
    rules = []
    for x, y in ((a, b), (a, d), (b, c), (b, e)):
        for p, q in ((x, y), (y, x)):  # each end drops what the other sends
            rules.append((p, ["INPUT", "-i", "eth0", "-s", r.lab.addresses[q], "-j", "DROP"]))
    cuts = ", ".join(f"{r.name(x)}<->{r.name(y)}" for x, y in ((a, b), (a, d), (b, c), (b, e)))
    _port_fault(r, rules, f"cut {cuts}", a, seconds, 8.0)


def sc_no_majority(r: Run, seconds: float | None = None) -> None:
    """Five nodes, two of them killed (their providers, alive, lose their only server and
    are exempt until the end), then one of the three left cut off for 6 s more than
    evict_after: no side sees a majority of the five.  Neither
    may evict what it cannot hear: the pair keeps the cut-off node's live instances
    listed (unhealthy is allowed) the whole cut (before: evicted evict_after into it, and
    a consumer of the pair was handed an empty list: review75 down2-short seed 23).  Then
    the heal and the two restarts; everything converges."""
    seconds = r.s.evict_after + 6.0 if seconds is None else seconds
    d1, d2, k = r.rng.sample(range(r.s.nodes), 3)
    pair = [j for j in range(r.s.nodes) if j not in (d1, d2, k)]
    w = r.open_window(
        f"{r.name(d1)}, {r.name(d2)} down, then {r.name(k)} cut off {seconds:g}s",
        {d1, d2, k},
        {d1, d2, k},
        r.s.converge_bound,
    )
    w.strict_after_end = True  # judged again once the restarted nodes are ready
    for d in (d1, d2):
        r.kill_node(d)
    t = time.monotonic()
    rest = [k, *pair]
    r.wait_for(
        lambda: all(r.sees_down(j, d, t) for j in rest for d in (d1, d2)), 15, "peers see them down"
    )
    r.event(f"{r.name(d1)} and {r.name(d2)} seen down")
    r.observe(1.0)
    cut = time.monotonic()
    r.lab.link(k, False)
    r.event(f"switch port of {r.name(k)} down")
    r.observe(seconds - (time.monotonic() - cut))
    r.lab.link(k, True)
    heal = r.event(f"switch port of {r.name(k)} up")
    # the pair kept k's live instances listed: from evict_after into the cut (with a
    # sweep and a peer timeout of margin) to the heal, none missing in any sample
    since = cut + r.s.peer_timeout + r.s.evict_after + 2 * r.s.check_interval
    mine = [key for key, m in r.instances.items() if m.provider == k]
    judged = missing = 0
    for j in pair:
        for x in r.samples[j]:
            if not (since <= x["t0"] and x["t1"] <= heal and x.get("ok")):
                continue
            judged += 1
            gone = [key for key in mine if x["inst"].get(key[0], {}).get(key[1]) is None]
            if gone:
                missing += 1
                r.extra_violations.append(
                    Violation(
                        x["t0"],
                        j,
                        "no-majority-evicted",
                        f"{len(gone)} live instances of {r.name(k)}'s provider missing, "
                        f"e.g. {gone[0][0]}/{gone[0][1]}",
                    )
                )
    if judged == 0:
        r.extra_violations.append(Violation(heal, pair[0], "no-samples", "none in the cut"))
    r.notes.append(
        f"no majority: {missing} of {judged} samples of the pair {r.name(pair[0])}, "
        f"{r.name(pair[1])} missed {r.name(k)}'s live instances"
    )
    starts = time.monotonic()
    for d in (d1, d2):
        r.start_node(d)
    r.wait_for(lambda: all(r.node_ready(d, starts) for d in (d1, d2)), 40, "restarts ready")
    r.close_window(w, max(r.first_ready(d, starts) for d in (d1, d2)))
    r.settle(w)


SCENARIOS: dict[str, Callable[[Run], None]] = {
    "kill": sc_kill,
    "kill-ipv6": sc_kill_ipv6,
    "rolling-restart": sc_rolling,
    "provider-death": sc_provider_death,
    "pause": sc_pause,
    "partition": sc_partition,
    "dereg-partition": sc_dereg_partition,
    "loss-delay": sc_loss,
    "oneway-port": sc_oneway_port,
    "pub-blocked": sc_pub_blocked,
    "crossing-cuts": sc_crossing_cuts,
    "five-cuts": sc_five_cuts,
    "no-majority": sc_no_majority,
}

from config_scenarios import CONFIG_SCENARIOS  # noqa: E402  (needs Run, defined above)

SCENARIOS.update(CONFIG_SCENARIOS)


def run_scenario(name: str, seed: int | None = None, settings: Settings | None = None) -> Result:
    """Run one scenario end to end; always tears the lab down. The workdir (node logs,
    samples) is deleted when the run passed and kept (named in the report) otherwise."""
    seed = random.randrange(1, 2**31) if seed is None else seed
    r = Run(name, seed, settings or Settings.for_scenario(name))
    aborted = ""
    try:
        r.setup()
        SCENARIOS[name](r)
    except (Abort, LabError) as exc:
        aborted = str(exc)
        r.event(f"ABORTED: {exc}")
    finally:
        r.teardown()
    res = r.analyze()
    if aborted:
        res.violations.append(Violation(time.monotonic(), -1, "aborted", aborted))
        res.report = r.format_report(res)
    if res.ok:
        r.cleanup_workdir()
    else:
        res.report += f"\nnode logs and samples kept in {r.workdir}"
    return res
