"""Configuration-center fault scenarios (docs/CHAOS.md, "Config scenarios").

On the registry lab of scenarios.py (nodes with a ``--data-dir`` each, providers, checkers,
the registry judge), one config writer per namespace (config_writer.py) publishes to
``DATA_IDS`` through its own node, some writes with ``if_revision``, and reads each data id
back. After the faults heal and the writers stop, every node is dumped (current version
and history of every data id, with the public Client from inside its namespace) until the
checks hold or ``CONVERGE_BOUND`` passes, then judged:

* **ack-missing**: every acknowledged (data id, revision, md5) is in every node's history;
* **ack-lost-revision**: it is the winner of its revision there (history lists the winner
  of a revision first);
* **diverged**: every node holds the same current (revision, md5) of every data id;
* **refused-appeared**: the md5 of a write refused "nothing was written" (answered in
  under 1.9 s: one attempt, no earlier one that may have landed) appears on no node;
* **read-backwards**: no writer saw a data id's revision go down (its acks and reads);
* ``config-partition`` also: **minority-ack** (the cut-off node acknowledged a write it
  got while cut off), **minority-no-refusal** / **minority-wrong-error** (it must refuse
  with UNAVAILABLE, or CONFLICT for a compare-and-set on a revision already passed),
  **majority-stalled** (each majority writer gets acknowledgements while the node is cut
  off, once the peers saw it down), **heal-slow** (the healed node shows its peers up more
  than ``HEAR_BOUND`` after the heal).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from netlab import HERE, Proc, read_line
from scenarios import Abort, Run, Violation

from meshreg.configcenter.model import ConfigKey
from meshreg.configcenter.replication import responsible_config_node

DATA_IDS = [f"chaos-cfg-{i}" for i in range(8)]
WRITE_INTERVAL = 0.25  # s between a writer's operations (keeps < 100 revisions per data id)
CONVERGE_BOUND = 20.0  # s after the writers stop (anti-entropy: every 5 s, one peer in turn)
QUICK_REFUSAL = 1.9  # s; a "nothing was written" answered faster had one attempt only
# The registry judge's bound after a fault in these scenarios, as in the registry scenarios.
# It was 8 s while a healed node heard its peers only 5.3-5.7 s after an 8 s cut (its peer
# connections sat in TCP retransmission backoff); the peer plane's ZMTP heartbeats
# (transport/sockets.py PeerLiveness) replace such connections, and it hears them in ~0.5 s
REGISTRY_BOUND = 5.0
# s after the heal by which the healed node must show every peer up again (heard a beacon):
# heartbeat timeout + connect timeout (0.75 s each at --peer-timeout 1.5) + a beacon
HEAR_BOUND = 2.0


class ConfigLoad:
    """The writers of one run and their logs."""

    def __init__(self, r: Run) -> None:
        self.r = r
        self.writers: list[Proc] = []
        self.logs = [r.workdir / f"config-{r.name(j)}.jsonl" for j in range(r.s.nodes)]
        self.records: list[list[dict[str, Any]]] = [[] for _ in range(r.s.nodes)]
        self._pos = [0] * r.s.nodes
        self.dumps: list[dict[str, Any]] = []

    def owner(self, data_id: str) -> int:
        members = [self.r.addr(j) for j in range(self.r.s.nodes)]
        addr = responsible_config_node(ConfigKey("public", "DEFAULT_GROUP", data_id), members)
        return members.index(addr)

    def start(self) -> None:
        r = self.r
        for j in range(r.s.nodes):
            argv = [
                sys.executable,
                str(HERE / "config_writer.py"),
                "--server",
                r.addr(j),
                "--name",
                f"w{r.name(j)}",
                "--data-ids",
                ",".join(DATA_IDS),
                "--interval",
                str(WRITE_INTERVAL),
                "--max-seconds",
                str(r.s.max_run_seconds + 30),
                "--out",
                str(self.logs[j]),
            ]
            self.writers.append(r.lab.spawn(j, f"cfgwriter-{r.name(j)}", argv, pipe=True))
        for j, proc in enumerate(self.writers):
            line = read_line(proc, 20)
            if line != "ready":
                raise Abort(f"config writer {r.name(j)} never got a write acknowledged: {line!r}")
        r.event("config writers acknowledged (one per node, CAS every 3rd write)")

    def poll(self) -> None:
        for j, path in enumerate(self.logs):
            try:
                with open(path, encoding="utf-8") as fh:
                    fh.seek(self._pos[j])
                    data = fh.read()
            except OSError:
                continue
            end = data.rfind("\n") + 1
            self._pos[j] += len(data[:end].encode())
            for line in data[:end].splitlines():
                if line.strip():
                    self.records[j].append(json.loads(line))

    def stop(self) -> None:
        for proc in self.writers:
            if proc.alive() and proc.popen.stdin is not None:
                try:
                    proc.popen.stdin.write(b"quit\n")
                    proc.popen.stdin.flush()
                except OSError:
                    pass
        for proc in self.writers:
            try:
                proc.popen.wait(10)
            except Exception:
                proc.kill()
        self.poll()
        acks = sum(1 for per in self.records for x in per if x["k"] == "ack")
        errs = sum(1 for per in self.records for x in per if x["k"] == "err")
        self.r.event(f"config writers stopped: {acks} acknowledged, {errs} refused/failed")

    def dump(self) -> list[dict[str, Any]]:
        r = self.r
        procs = []
        for j in range(r.s.nodes):
            argv = [
                sys.executable,
                str(HERE / "config_writer.py"),
                "--server",
                r.addr(j),
                "--data-ids",
                ",".join(DATA_IDS),
                "--dump",
            ]
            procs.append(r.lab.spawn(j, f"cfgdump-{r.name(j)}", argv, pipe=True))
        out = []
        for j, proc in enumerate(procs):
            try:
                stdout, _ = proc.popen.communicate(timeout=20)
                out.append(json.loads(stdout.decode().strip().splitlines()[-1]))
            except Exception as exc:
                proc.kill()
                raise Abort(f"config dump of {r.name(j)} failed: {exc}") from None
        return out

    # -- the judge ---------------------------------------------------------------------------
    def judge(self, dumps: list[dict[str, Any]]) -> list[Violation]:
        r = self.r
        now = time.monotonic()
        out: list[Violation] = []
        acked = [
            (x["id"], x["rev"], x["md5"]) for per in self.records for x in per if x["k"] == "ack"
        ]
        refused = {
            x["md5"]
            for per in self.records
            for x in per
            if x["k"] == "err" and x["kind"] == "nothing" and x["t1"] - x["t0"] < QUICK_REFUSAL
        }
        for j, d in enumerate(dumps):
            for data_id, rev, md5 in acked:
                hist = d[data_id]["hist"]
                at = [h for h in hist if h[0] == rev]
                if not any(h[1] == md5 for h in at):
                    out.append(Violation(now, j, "ack-missing", f"{data_id} r{rev} {md5[:8]}"))
                elif at[0][1] != md5:
                    out.append(
                        Violation(
                            now,
                            j,
                            "ack-lost-revision",
                            f"{data_id} r{rev} {md5[:8]} lost to {at[0][1][:8]} (origin "
                            f"{at[0][2]})",
                        )
                    )
            for data_id in DATA_IDS:
                for h in d[data_id]["hist"]:
                    if h[1] in refused:
                        out.append(
                            Violation(now, j, "refused-appeared", f"{data_id} r{h[0]} {h[1][:8]}")
                        )
                if d[data_id]["cur"] != dumps[0][data_id]["cur"]:
                    out.append(
                        Violation(
                            now,
                            j,
                            "diverged",
                            f"{data_id}: {d[data_id]['cur']} here, {dumps[0][data_id]['cur']} "
                            f"on {r.name(0)}",
                        )
                    )
        for j, per in enumerate(self.records):
            high: dict[str, int] = {}
            for x in per:
                if x["k"] not in ("ack", "read"):
                    continue
                if x["rev"] < high.get(x["id"], -1):  # a read of a data id never seen: -1
                    out.append(
                        Violation(
                            x["t0"],
                            j,
                            "read-backwards",
                            f"{x['id']}: {x['k']} r{x['rev']} after r{high[x['id']]}",
                        )
                    )
                high[x["id"]] = max(high.get(x["id"], -1), x["rev"])
        return out

    def converge_and_judge(self) -> None:
        """Dump every node until the checks hold (or the bound passes); keep the verdict."""
        r = self.r
        t0 = time.monotonic()
        deadline = min(t0 + CONVERGE_BOUND, r.hard_deadline - 5)
        while True:
            dumps = self.dump()
            bad = self.judge(dumps)
            if not bad or time.monotonic() >= deadline:
                break
        self.dumps = dumps
        (r.workdir / "config-dumps.json").write_text(json.dumps(dumps), encoding="utf-8")
        took = time.monotonic() - t0
        r.event(f"config check after {took:.1f}s: {len(bad)} violations")
        acks = sum(1 for per in self.records for x in per if x["k"] == "ack")
        kinds: dict[str, int] = {}
        for per in self.records:
            for x in per:
                if x["k"] == "err":
                    kinds[x["kind"]] = kinds.get(x["kind"], 0) + 1
        r.notes.append(
            f"configs: {acks} acknowledged writes, refusals {kinds or '{}'}; "
            f"every node consistent {took:.1f}s after the writers stopped"
            + ("" if not bad else " (NOT: see violations)")
        )
        r.extra_violations.extend(bad)


def _finish(r: Run, load: ConfigLoad) -> None:
    r.observe(2.0)
    load.stop()
    load.converge_and_judge()


def sc_config_partition(r: Run, seconds: float = 8.0) -> None:
    """Cut one node off for ``seconds`` (> peer timeout) while every node's writer writes."""
    load = ConfigLoad(r)
    load.start()
    r.observe(2.0)
    k = r.rng.randrange(r.s.nodes)
    w = r.open_window(f"config partition {r.name(k)} {seconds:g}s", {k}, {k}, REGISTRY_BOUND)
    cut = w.start
    r.lab.link(k, False)
    # judged from here: a write sent while `ip link` was still at work (tens of ms after
    # `cut`) can be acknowledged; seed 832169641 had one, acknowledged 29 ms after `cut`
    down = r.event(f"switch port of {r.name(k)} down")
    others = [j for j in range(r.s.nodes) if j != k]
    r.wait_for(lambda: all(r.sees_down(j, k, cut) for j in others), seconds, "peers see it down")
    seen_down = r.event(f"peers see {r.name(k)} down")
    r.observe(seconds - (time.monotonic() - cut))
    r.lab.link(k, True)
    heal = r.event(f"switch port of {r.name(k)} up")
    r.close_window(w, heal)
    r.settle(w)
    _finish(r, load)
    heard = next(
        (
            x["t0"]
            for x in r.samples[k]
            if x["t0"] >= heal
            and x.get("ok")
            and all(x["members"].get(r.name(j)) == "up" for j in others)
        ),
        None,
    )
    if heard is None or heard - heal > HEAR_BOUND:
        r.extra_violations.append(
            Violation(
                heal,
                k,
                "heal-slow",
                f"heard its peers {'never' if heard is None else f'{heard - heal:.1f}s'} "
                f"after the heal (bound {HEAR_BOUND:g}s)",
            )
        )
    # the minority: acknowledged nothing it got while cut off, refused with UNAVAILABLE
    mine = [x for x in load.records[k] if x["k"] == "err" or x["k"] == "ack"]
    during = [x for x in mine if x["t0"] >= down and x["t1"] <= heal]
    for x in during:
        if x["k"] == "ack":
            r.extra_violations.append(
                Violation(x["t1"], k, "minority-ack", f"{x['id']} r{x['rev']} acknowledged")
            )
        elif x["code"] not in (8, 11):  # UNAVAILABLE; or CONFLICT: a compare-and-set
            # against a revision the node already knows was passed (revisions only grow, so
            # the write fails on every node, cut off or not; nothing written: seed 1176861508)
            r.extra_violations.append(
                Violation(x["t1"], k, "minority-wrong-error", f"{x['id']}: {x['msg']}")
            )
    # a refusal counts if it was asked while cut off: a write refused "nothing was written"
    # is retried on UNAVAILABLE for the writer's whole timeout (4 s), so one asked in the
    # cut's last 4 s is answered after the heal. An 8 s cut holds two or three writes, and
    # the first is "outcome unknown" (sent before the node saw its peers down); with a
    # compare-and-set's CONFLICT between, the "nothing was written" one was asked at 13.5 s
    # and answered after the heal at 17.32 s (CI, seed 762837149)
    asked = [x for x in mine if down <= x["t0"] < heal]
    if not any(x["k"] == "err" and x["kind"] == "nothing" for x in asked):
        r.extra_violations.append(
            Violation(heal, k, "minority-no-refusal", "no 'nothing was written' refusal")
        )
    late = seen_down + 2.5  # the writes in flight at the cut have had their answer
    for j in others:
        n = sum(1 for x in load.records[j] if x["k"] == "ack" and late <= x["t0"] <= heal)
        if n == 0:
            r.extra_violations.append(
                Violation(heal, j, "majority-stalled", "no acknowledged write while cut off")
            )
    r.notes.append(
        f"minority {r.name(k)}: {sum(x['k'] == 'err' for x in during)} writes refused while "
        f"cut off ({sum(x['k'] == 'err' and x['kind'] == 'nothing' for x in asked)} "
        "'nothing was written' asked while cut off); heard its peers "
        + ("never" if heard is None else f"{heard - heal:.1f}s")
        + " after the heal"
    )


def sc_config_pause_kill(r: Run, pause: float = 4.0) -> None:
    """SIGSTOP the owner of a data id (> peer timeout: the peers take it over, then it comes
    back believing it still owns it), then SIGKILL a node right after it acknowledged a
    write of a data id it owns, and restart it on its data directory."""
    load = ConfigLoad(r)
    load.start()
    r.observe(2.0)
    target = r.rng.choice(DATA_IDS)
    k = load.owner(target)
    w = r.open_window(
        f"pause {r.name(k)} (owner of {target}) {pause:g}s", {k}, set(), REGISTRY_BOUND
    )
    node = r.nodes[k]
    assert node is not None
    node.pause()
    r.event(f"{r.name(k)} SIGSTOP")
    r.observe(pause - (time.monotonic() - w.start))
    node.resume()
    r.close_window(w, r.event(f"{r.name(k)} SIGCONT"))
    r.settle(w)
    k2 = r.rng.randrange(r.s.nodes)
    owned = [d for d in DATA_IDS if load.owner(d) == k2] or DATA_IDS
    load.poll()
    start = time.monotonic()
    deadline = start + 10
    hit = None
    while hit is None and time.monotonic() < deadline:
        load.poll()
        for per in load.records:
            for x in per:
                if x["k"] == "ack" and x["t1"] > start and x["id"] in owned:
                    hit = x
        time.sleep(0.005)
    if hit is None:
        raise Abort(f"no write of a data id owned by {r.name(k2)} acknowledged in 10 s")
    w2 = r.open_window(f"kill {r.name(k2)} after an ack", {k2}, set(), REGISTRY_BOUND)
    w2.strict_after_end = True
    r.kill_node(k2)
    after = time.monotonic() - hit["t1"]
    r.notes.append(f"{r.name(k2)} SIGKILLed {after:.3f}s after {hit['id']} r{hit['rev']} was acked")
    t = time.monotonic()
    others = [j for j in range(r.s.nodes) if j != k2]
    r.wait_for(lambda: all(r.sees_down(j, k2, t) for j in others), 15, "peers to see it down")
    r.observe(1.0)
    r.start_node(k2)
    t = time.monotonic()
    r.wait_for(lambda: r.node_ready(k2, t), 40, f"{r.name(k2)} ready after restart")
    r.close_window(w2, r.first_ready(k2, t))
    r.settle(w2)
    _finish(r, load)


def sc_config_loss(r: Run, seconds: float = 12.0) -> None:
    """20% loss and 10-30 ms delay on every node's egress while the writers write."""
    load = ConfigLoad(r)
    load.start()
    r.observe(2.0)
    w = r.open_window(f"config 20% loss + 10-30ms delay {seconds:g}s", set(), set(), REGISTRY_BOUND)
    r.lab.impair(range(r.s.nodes), 0.2, (0.010, 0.030), r.seed)
    r.event("impairment on: every node's eth0 egress")
    r.observe(seconds - (time.monotonic() - w.start))
    r.lab.clear_impairment()
    r.close_window(w, r.event("impairment off"))
    r.settle(w)
    _finish(r, load)
    acks = sum(
        1 for per in load.records for x in per if x["k"] == "ack" and w.start <= x["t0"] <= w.end
    )
    r.notes.append(f"{acks} config writes acknowledged during the loss")
    if acks == 0:
        r.extra_violations.append(
            Violation(w.end or 0.0, -1, "stalled", "no config write acknowledged during the loss")
        )


CONFIG_SCENARIOS = {
    "config-partition": sc_config_partition,
    "config-pause-kill": sc_config_pause_kill,
    "config-loss": sc_config_loss,
}
