# ruff: noqa: E501, B905, SIM102, SIM110, SIM114
"""review26: a long, randomized, seeded soak of a 3-node meshreg cluster over real
processes, with an oracle checked from a history log (Jepsen style).

    python tests/review26/soak.py --seed N --minutes M [--out DIR]
    python tests/review26/soak.py --check DIR          # re-run the checker on a run's logs

What runs (all inside a private network namespace, deleted at the end):
* 3 ``meshreg node`` processes (fast timings: check 0.2, unhealthy 1.5, evict 3, peer
  timeout 1), each with a group id of its own so that iptables ``--gid-owner`` can cut
  chosen node pairs on their peer ports (tests/review25/nslab.py);
* providers (``--role provider``): a ``meshreg.Client`` that registers 1-2 instances in
  each of 2 services (session or per-instance beats), started, SIGTERMed, SIGKILLed and
  SIGSTOPped (longer than evict_after) at random; every incarnation has addresses of its
  own (10.x.y.1:port) so the history is unambiguous;
* one consumer per node (``--role consumer``): a single-server Client that subscribes to
  every service and logs every callback (epoch, revision, instances), listens to the 3
  config data ids (``config_listen``) and reads them every 0.4 s;
* three config writers (``--role writer``): a plain sequential ``config_publish`` and two
  compare-and-set writers (``config_get`` then ``if_revision``), each with another first
  server; every outcome logged; stopped before the final window;
* samplers (threads of the driver): every node's full listing of every service and its
  raw ``config_get`` of every data id, every 0.3 s;
* node faults, one episode at a time (``--kinds`` to choose): pause (SIGSTOP 4-7 s),
  pause_long (8-14 s), kill (SIGKILL + restart, same data dir), isolate (cut from both
  peers), oneway (one node stops hearing another), loss (20-40 % of one node's output),
  double (one node paused or isolated while another restarts), rolling (all three
  restarted in turn), kill_pair (two at once), stutter (SIGSTOP/SIGCONT bursts of about
  peer_timeout).  Every fault phase is followed by a quiet window of 14-18 s.

The oracle (``check``): see the docstring of ``check``.  Decisions are drawn from seeded
generators (one per thread), so a seed replays the same schedule (timing is real).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent.parent
HOST = "127.0.0.1"
FAST = ["--check-interval", "0.2", "--unhealthy-after", "1.5", "--evict-after", "3",
        "--peer-timeout", "1.0"]  # fmt: skip
EVICT = 3.0
BOUND = EVICT + 5.0  # after a heal (and a provider's own event): the oracle's bound
SERVICES = ["orders", "stock", "users", "pay"]
DATA_IDS = ["cfg-a", "cfg-b", "cfg-c"]
PORTS = [7800, 7810, 7820]
GIDS = [2601, 2602, 2603]


def now() -> float:
    return time.monotonic()


def _pdeath() -> None:
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


# =========================================================================================
# roles (child processes)
# =========================================================================================
def role_provider(a: argparse.Namespace) -> int:
    from meshreg import Client

    servers = a.servers.split(",")
    services = a.services.split(",")
    end = now() + a.max_seconds
    out = open(a.out, "a", buffering=1)  # noqa: SIM115
    beat = 0.4
    c = Client(servers, beat_interval=beat, timeout=3.0, attempt_timeout=0.7,
               sessions=not a.no_sessions)  # fmt: skip
    try:
        regs = []
        for si, svc in enumerate(services):
            for j in range(a.per):
                regs.append((svc, a.ip, 9000 + 10 * si + j))
        for svc, ip, port in regs:
            while now() < end:
                try:
                    c.register(svc, ip, port)
                    out.write(json.dumps({"t": now(), "ev": "registered", "svc": svc,
                                          "addr": f"{ip}:{port}"}) + "\n")  # fmt: skip
                    break
                except Exception as exc:  # retried: writes are idempotent
                    out.write(json.dumps({"t": now(), "ev": "register_err", "svc": svc,
                                          "err": repr(exc)[:200]}) + "\n")  # fmt: skip
                    time.sleep(0.2)
        out.write(json.dumps({"t": now(), "ev": "ready"}) + "\n")
        stop = threading.Event()
        while now() < end and not stop.wait(0.5):
            pass
    finally:
        t0 = now()
        try:
            c.close()
            out.write(json.dumps({"t": now(), "ev": "closed", "t0": t0}) + "\n")
        except BaseException as exc:  # noqa: BLE001
            out.write(json.dumps({"t": now(), "ev": "close_err", "err": repr(exc)[:200]}) + "\n")
    return 0


def role_consumer(a: argparse.Namespace) -> int:
    from meshreg import Client

    end = now() + a.max_seconds
    out = open(a.out, "a", buffering=1)  # noqa: SIM115
    lock = threading.Lock()

    def write(d: dict[str, Any]) -> None:
        with lock:
            out.write(json.dumps(d) + "\n")

    c = Client([a.server], timeout=3.0, attempt_timeout=0.7, resync_interval=5.0,
               handle_sigterm=False)  # fmt: skip

    def listener(svc: str):
        def cb(xs: Any) -> None:
            write({"t": now(), "ev": "view", "svc": svc, "epoch": getattr(xs, "epoch", None),
                   "rev": getattr(xs, "revision", None),
                   "protected": bool(getattr(xs, "protected", False)),
                   "inst": {x.address: bool(x.healthy) for x in xs}})  # fmt: skip

        return cb

    for svc in SERVICES:
        while now() < end:
            try:
                c.subscribe(svc, listener(svc))
                break
            except Exception as exc:  # noqa: BLE001
                write({"t": now(), "ev": "subscribe_err", "svc": svc, "err": repr(exc)[:200]})
                time.sleep(0.5)
    def clistener(d: str):
        def cb(content: Any, revision: Any) -> None:
            write({"t": now(), "ev": "listen", "id": d, "rev": revision, "content": content})

        return cb

    for d in DATA_IDS:
        try:
            c.config_listen(d, clistener(d))
        except Exception as exc:  # noqa: BLE001
            write({"t": now(), "ev": "listen_err", "id": d, "err": repr(exc)[:200]})
    write({"t": now(), "ev": "ready"})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while now() < end and not stop.is_set():
        for d in DATA_IDS:
            t0 = now()
            try:
                info = c.config_get(d)
                if info is None:
                    write({"t": now(), "t0": t0, "ev": "cfg", "id": d, "rev": 0, "content": None})
                else:
                    write({"t": now(), "t0": t0, "ev": "cfg", "id": d, "rev": info.revision,
                           "content": info.content, "cache": info.from_cache})  # fmt: skip
            except Exception as exc:  # noqa: BLE001
                write({"t": now(), "t0": t0, "ev": "cfg_err", "id": d, "err": repr(exc)[:200]})
        stop.wait(0.4)
    try:
        c.close(timeout=2.0)
    except Exception:  # noqa: BLE001
        pass
    return 0


def role_writer(a: argparse.Namespace) -> int:
    from meshreg import Client

    end = now() + a.max_seconds
    out = open(a.out, "a", buffering=1)  # noqa: SIM115
    rng = random.Random(a.seed * 31 + ord(a.name[0]))
    c = Client(a.servers.split(","), timeout=3.0, attempt_timeout=0.7, handle_sigterm=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    seq = 0
    while now() < end and not stop.is_set():
        seq += 1
        d = rng.choice(DATA_IDS)
        content = f"{a.name}{seq}-{d}"
        t0 = now()
        try:
            if_rev = None
            if a.cas:
                cur = c.config_get(d)
                if_rev = 0 if cur is None else cur.revision
            info = c.config_publish(d, content, if_revision=if_rev)
            out.write(json.dumps({"t0": t0, "t": now(), "ev": "ack", "id": d, "seq": seq,
                                  "content": content, "rev": info.revision,
                                  "if_rev": if_rev}) + "\n")  # fmt: skip
        except Exception as exc:  # noqa: BLE001
            out.write(json.dumps({"t0": t0, "t": now(), "ev": "err", "id": d, "seq": seq,
                                  "content": content, "err": type(exc).__name__,
                                  "msg": str(exc)[:300]}) + "\n")  # fmt: skip
        stop.wait(0.25)
    try:
        c.close(timeout=2.0)
    except Exception:  # noqa: BLE001
        pass
    return 0


# =========================================================================================
# the driver (inside the namespace)
# =========================================================================================
def iptables() -> str:
    for p in ("/usr/sbin/iptables-legacy", "/sbin/iptables-legacy", "/usr/sbin/iptables",
              "/sbin/iptables"):  # fmt: skip
        if os.path.exists(p):
            return p
    return "iptables"


def ipt(*args: str) -> None:
    subprocess.run([iptables(), *args], capture_output=True, timeout=10, check=True)


class Node:
    def __init__(self, i: int, out: Path) -> None:
        self.i, self.port, self.gid, self.out = i, PORTS[i], GIDS[i], out
        self.proc: subprocess.Popen[bytes] | None = None
        self.incarnation = 0
        self.data = out / f"data{i}"
        self.data.mkdir(parents=True, exist_ok=True)

    @property
    def addr(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> None:
        self.incarnation += 1
        peers = sum((["--peer", f"{HOST}:{p}"] for p in PORTS), [])
        log = open(self.out / f"node{self.i}.{self.incarnation}.log", "wb")  # noqa: SIM115
        gid = self.gid

        def pre() -> None:
            _pdeath()
            os.setgroups([])
            os.setgid(gid)

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "meshreg", "node", "--host", HOST, "--port",
             str(self.port), *FAST, *peers, "--data-dir", str(self.data)],
            stdout=log, stderr=log, preexec_fn=pre,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        log.close()

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)


def wait_ping(node: Node, timeout: float) -> bool:
    import msgpack
    import zmq

    end = now() + timeout
    while now() < end:
        s = zmq.Context.instance().socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, 500)
        try:
            s.connect(f"tcp://{node.addr}")
            s.send(msgpack.packb({"v": 1, "id": 1, "op": "ping"}))
            s.recv()
            return True
        except zmq.Again:
            pass
        finally:
            s.close()
        time.sleep(0.1)
    return False


class History:
    def __init__(self, path: Path) -> None:
        self.f = open(path, "a", buffering=1)  # noqa: SIM115
        self.lock = threading.Lock()

    def __call__(self, ev: str, **kw: Any) -> None:
        with self.lock:
            self.f.write(json.dumps({"t": now(), "ev": ev, **kw}) + "\n")


def sampler(node: Node, hist_path: Path, stop: threading.Event, every: float = 0.3) -> None:
    import msgpack
    import zmq

    ctx = zmq.Context.instance()
    sock = None
    rid = 0
    f = open(hist_path, "a", buffering=1)  # noqa: SIM115
    while not stop.is_set():
        if sock is None:
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(f"tcp://{node.addr}")
        t0 = now()
        wanted: dict[int, str | None] = {}
        for svc in [None, *SERVICES, *(f"cfg:{d}" for d in DATA_IDS)]:
            rid += 1
            body: dict[str, Any] = {"v": 1, "id": rid, "op": "cluster" if svc is None else "instances"}
            if svc is not None and svc.startswith("cfg:"):
                body.update(op="config_get", namespace="public", group="DEFAULT_GROUP",
                            data_id=svc[4:])  # fmt: skip
            elif svc is not None:
                body.update(service=svc, healthy_only=False)
            wanted[rid] = svc
            sock.send_multipart([b"", msgpack.packb(body)])
        inst: dict[str, dict[str, bool]] = {}
        extra: dict[str, Any] = {}
        deadline = t0 + 0.6
        err = ""
        while wanted and now() < deadline:
            if not sock.poll(max(1, int((deadline - now()) * 1000))):
                break
            rep = msgpack.unpackb(sock.recv_multipart()[-1], raw=False)
            if rep.get("id") not in wanted:
                continue
            svc = wanted.pop(rep["id"])
            if svc is not None and svc.startswith("cfg:"):
                if rep.get("ok"):
                    extra.setdefault("cfg", {})[svc[4:]] = [rep["result"].get("revision"),
                                                            rep["result"].get("content")]
                else:
                    extra.setdefault("cfg", {})[svc[4:]] = [None, str(rep.get("error"))[:80]]
                continue
            if not rep.get("ok"):
                err = str(rep.get("error"))[:200]
                continue
            r = rep["result"]
            if svc is None:
                extra["up"] = sum(1 for m in r.get("members", []) if m.get("state") == "up")
                extra["epoch"] = r.get("epoch")
            else:
                inst[svc] = {f"{x['ip']}:{x['port']}": bool(x["healthy"]) for x in r["instances"]}
                extra.setdefault("revs", {})[svc] = [r.get("epoch"), r.get("revision")]
        rec: dict[str, Any] = {"t0": t0, "t": now(), "node": node.i, "inc": node.incarnation}
        if wanted or err:
            rec.update(ok=False, err=err or "timeout")
            sock.close(0)
            sock = None
        else:
            rec.update(ok=True, inst=inst, **extra)
        f.write(json.dumps(rec) + "\n")
        stop.wait(max(0.0, every - (now() - t0)))
    if sock is not None:
        sock.close(0)


class Providers:
    """Provider processes, started/stopped/killed/paused at random by one thread."""

    def __init__(self, out: Path, hist: History, seed: int, max_seconds: float) -> None:
        self.out, self.hist, self.rng = out, hist, random.Random(seed * 7919 + 1)
        self.max_seconds = max_seconds
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.paused: dict[int, float] = {}  # k -> resume at
        self.next_k = 1
        self.ended: list[int] = []
        self.shape: dict[int, tuple[str, list[str], int]] = {}
        self.lock = threading.Lock()

    def start_one(self) -> None:
        k = self.next_k
        self.next_k += 1
        servers = [f"{HOST}:{p}" for p in PORTS]
        self.rng.shuffle(servers)
        nserv = self.rng.choice([1, 3, 3])
        servers = servers[:nserv]
        svcs = self.rng.sample(SERVICES, 2)
        per = self.rng.choice([1, 2])
        sessions = self.rng.random() < 0.6
        ip = f"10.{k // 250}.{k % 250}.1"
        reuse = None
        if self.ended and self.rng.random() < 0.35:
            # a restarted process on the same address (a crash-looping pod): the newest
            # ended incarnation's ip, services and count
            reuse = self.ended.pop()
            ip, svcs, per = self.shape[reuse]
        self.shape[k] = (ip, svcs, per)
        addrs = {s: [f"{ip}:{9000 + 10 * si + j}" for j in range(per)] for si, s in enumerate(svcs)}
        args = [sys.executable, str(HERE), "--role", "provider", "--servers", ",".join(servers),
                "--services", ",".join(svcs), "--per", str(per), "--ip", ip,
                "--out", str(self.out / f"prov{k}.jsonl"),
                "--max-seconds", str(self.max_seconds)]  # fmt: skip
        if not sessions:
            args.append("--no-sessions")
        log = open(self.out / f"prov{k}.log", "wb")  # noqa: SIM115
        # no PR_SET_PDEATHSIG here: it fires when the *thread* that forked exits (the churn
        # thread ends before the final window); the namespace's cleanup kills leftovers
        p = subprocess.Popen(args, stdout=log, stderr=log,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
        log.close()
        self.procs[k] = p
        self.hist("prov_start", k=k, pid=p.pid, servers=servers, addrs=addrs, sessions=sessions,
                  reuse=reuse)

    def live(self) -> list[int]:
        return [k for k, p in self.procs.items() if p.poll() is None]

    def step(self) -> None:
        t = now()
        for k, at in list(self.paused.items()):
            if t >= at:
                os.kill(self.procs[k].pid, signal.SIGCONT)
                del self.paused[k]
                self.hist("prov_cont", k=k)
        live = [k for k in self.live() if k not in self.paused]
        for k, p in list(self.procs.items()):
            if p.poll() is not None and not getattr(p, "_reported", False):
                p._reported = True  # type: ignore[attr-defined]
                self.hist("prov_exit", k=k, rc=p.returncode)
                # its address may be taken again once the process is gone (not while a
                # SIGTERMed one still closes: review25 F3, a known race)
                self.ended.append(k)
        x = self.rng.random()
        if len(live) < 3 or (x < 0.3 and len(live) < 6):
            self.start_one()
        elif x < 0.45:
            k = self.rng.choice(live)
            self.hist("prov_term", k=k)
            self.procs[k].send_signal(signal.SIGTERM)
        elif x < 0.6:
            k = self.rng.choice(self.live())
            self.hist("prov_kill", k=k)
            self.procs[k].kill()
        elif x < 0.75:
            k = self.rng.choice(live)
            d = self.rng.uniform(EVICT + 0.5, EVICT + 3.0)
            self.hist("prov_stop", k=k, secs=d)
            os.kill(self.procs[k].pid, signal.SIGSTOP)
            self.paused[k] = now() + d
        # else: nothing this step

    def resume_all(self) -> None:
        for k in list(self.paused):
            try:
                os.kill(self.procs[k].pid, signal.SIGCONT)
            except OSError:
                pass
            self.hist("prov_cont", k=k)
        self.paused.clear()

    def kill_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                    p.kill()
                    p.wait(5)
                except OSError:
                    pass


def cut_rules(src: Node, dst: Node, mark: int) -> None:
    """src stops hearing dst's and dst stops hearing... the flows src opens to dst's
    peer ports, both directions (nslab.block)."""
    ipt("-A", "OUTPUT", "-p", "tcp", "-m", "owner", "--gid-owner", str(src.gid), "--dport",
        f"{dst.port + 2}:{dst.port + 3}", "-j", "CONNMARK", "--set-mark", str(mark))  # fmt: skip
    ipt("-A", "OUTPUT", "-m", "connmark", "--mark", str(mark), "-j", "DROP")


def driver(a: argparse.Namespace) -> int:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    hist = History(out / "events.jsonl")
    rng = random.Random(a.seed)
    duration = a.minutes * 60.0
    t_start = now()
    hist("run_start", seed=a.seed, minutes=a.minutes, bound=BOUND)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
    ipt("-F", "OUTPUT")
    nodes = [Node(i, out) for i in range(3)]
    stop = threading.Event()
    churn_stop = threading.Event()
    writers: list[subprocess.Popen[bytes]] = []
    children: list[subprocess.Popen[bytes]] = []
    provs = Providers(out, hist, a.seed, duration + 120)
    marks = iter(range(0x2601, 0x9000))
    try:
        for n in nodes:
            n.start()
            hist("node_start", node=n.i, inc=n.incarnation, pid=n.proc.pid)
        time.sleep(3.0)
        samplers = [threading.Thread(target=sampler, args=(n, out / f"samples{n.i}.jsonl", stop),
                                     daemon=True) for n in nodes]  # fmt: skip
        for s in samplers:
            s.start()
        for n in nodes:
            args = [sys.executable, str(HERE), "--role", "consumer", "--server", n.addr,
                    "--out", str(out / f"consumer{n.i}.jsonl"),
                    "--max-seconds", str(duration + 120)]  # fmt: skip
            log = open(out / f"consumer{n.i}.log", "wb")  # noqa: SIM115
            children.append(subprocess.Popen(args, stdout=log, stderr=log, preexec_fn=_pdeath))
        # a plain sequential writer through every node, and two compare-and-set writers
        # (read, then publish with if_revision), each starting with another node
        for wname, order, cas in (("w", [0, 1, 2], False), ("x", [1, 2, 0], True),
                                  ("y", [2, 0, 1], True)):  # fmt: skip
            wargs = [sys.executable, str(HERE), "--role", "writer", "--seed", str(a.seed),
                     "--servers", ",".join(nodes[j].addr for j in order), "--name", wname,
                     "--out", str(out / f"writer-{wname}.jsonl"),
                     "--max-seconds", str(duration + 120)]  # fmt: skip
            if cas:
                wargs.append("--cas")
            log = open(out / f"writer-{wname}.log", "wb")  # noqa: SIM115
            wp = subprocess.Popen(wargs, stdout=log, stderr=log, preexec_fn=_pdeath)
            children.append(wp)
            writers.append(wp)

        # provider churn thread
        def churn() -> None:
            while not churn_stop.is_set() and not stop.is_set():
                try:
                    provs.step()
                except Exception as exc:  # noqa: BLE001
                    hist("churn_err", err=repr(exc))
                churn_stop.wait(provs.rng.uniform(1.0, 3.5))

        for _ in range(3):
            provs.start_one()
        ct = threading.Thread(target=churn, daemon=True)
        ct.start()
        hist("quiet", until=now() + 10)
        time.sleep(10)

        kinds = ["pause", "kill", "isolate", "oneway", "loss", "pause_long", "double",
                 "rolling", "kill_pair", "stutter"]
        if a.kinds:
            kinds = a.kinds.split(",")
        while now() - t_start < duration:
            kind = rng.choice(kinds)
            i = rng.randrange(3)
            n = nodes[i]
            hold = rng.uniform(4.0, 7.0)
            if kind == "pause":
                hist("fault", kind=kind, node=i, hold=hold)
                n.signal(signal.SIGSTOP)
                time.sleep(hold)
                n.signal(signal.SIGCONT)
            elif kind == "kill":
                down = rng.uniform(0.5, 4.0)
                hist("fault", kind=kind, node=i, hold=down)
                n.kill()
                time.sleep(down)
                n.start()
                hist("node_start", node=n.i, inc=n.incarnation, pid=n.proc.pid)
            elif kind == "isolate":
                hist("fault", kind=kind, node=i, hold=hold)
                for o in nodes:
                    if o is not n:
                        cut_rules(n, o, next(marks))
                        cut_rules(o, n, next(marks))
                time.sleep(hold)
                ipt("-F", "OUTPUT")
            elif kind == "oneway":
                j = rng.choice([x for x in range(3) if x != i])
                hist("fault", kind=kind, node=i, other=j, hold=hold)
                cut_rules(n, nodes[j], next(marks))  # i no longer hears j
                time.sleep(hold)
                ipt("-F", "OUTPUT")
            elif kind == "pause_long":
                hold = rng.uniform(8.0, 14.0)
                hist("fault", kind=kind, node=i, hold=hold)
                n.signal(signal.SIGSTOP)
                time.sleep(hold)
                n.signal(signal.SIGCONT)
            elif kind == "double":
                # node i paused or isolated, and meanwhile node j killed and restarted
                j = rng.choice([x for x in range(3) if x != i])
                first = rng.choice(["pause", "isolate"])
                down = rng.uniform(0.5, 3.0)
                hist("fault", kind=kind, node=i, other=j, first=first, hold=hold, down=down)
                if first == "pause":
                    n.signal(signal.SIGSTOP)
                else:
                    for o in nodes:
                        if o is not n:
                            cut_rules(n, o, next(marks))
                            cut_rules(o, n, next(marks))
                time.sleep(hold / 3)
                nodes[j].kill()
                hist("node_kill", node=j)
                time.sleep(down)
                nodes[j].start()
                hist("node_start", node=j, inc=nodes[j].incarnation, pid=nodes[j].proc.pid)
                time.sleep(max(0.5, hold * 2 / 3 - down))
                n.signal(signal.SIGCONT)
                ipt("-F", "OUTPUT")
            elif kind == "rolling":
                # a rolling restart, one node after the other, each as soon as the one
                # before answers a ping, plus a gap
                order = rng.sample(range(3), 3)
                gaps = [rng.uniform(0.0, 2.0) for _ in order]
                hist("fault", kind=kind, node=order[0], order=order, gaps=gaps)
                for j, g in zip(order, gaps):
                    nodes[j].kill()
                    hist("node_kill", node=j)
                    time.sleep(rng.uniform(0.2, 1.0))
                    nodes[j].start()
                    hist("node_start", node=j, inc=nodes[j].incarnation, pid=nodes[j].proc.pid)
                    wait_ping(nodes[j], 15.0)
                    hist("node_ping", node=j)
                    time.sleep(g)
            elif kind == "kill_pair":
                j = rng.choice([x for x in range(3) if x != i])
                down = rng.uniform(0.5, 3.0)
                hist("fault", kind=kind, node=i, other=j, hold=down)
                n.kill()
                nodes[j].kill()
                time.sleep(down)
                n.start()
                nodes[j].start()
                hist("node_start", node=i, inc=n.incarnation, pid=n.proc.pid)
                hist("node_start", node=j, inc=nodes[j].incarnation, pid=nodes[j].proc.pid)
            elif kind == "stutter":
                # a GC storm: stopped 0.5-1.5 s (about peer_timeout), running 0.2-0.8 s,
                # for 6-10 s
                hold = rng.uniform(6.0, 10.0)
                steps = []
                while sum(steps) < hold:
                    steps += [rng.uniform(0.5, 1.5), rng.uniform(0.2, 0.8)]
                hist("fault", kind=kind, node=i, hold=sum(steps), steps=len(steps) // 2)
                for x, d in enumerate(steps):
                    n.signal(signal.SIGSTOP if x % 2 == 0 else signal.SIGCONT)
                    time.sleep(d)
                n.signal(signal.SIGCONT)
            elif kind == "loss":
                p = rng.choice([0.2, 0.3, 0.4])
                hist("fault", kind=kind, node=i, hold=hold, p=p)
                ipt("-A", "OUTPUT", "-p", "tcp", "-m", "owner", "--gid-owner", str(n.gid),
                    "-m", "statistic", "--mode", "random", "--probability", str(p), "-j", "DROP")  # fmt: skip
                time.sleep(hold)
                ipt("-F", "OUTPUT")
            quiet = rng.uniform(14.0, 18.0)
            hist("heal", kind=kind, node=i, until=now() + quiet)
            time.sleep(quiet)
        # the end: no more churn, every paused provider resumed, a last quiet window
        stop_churn = now()
        churn_stop.set()
        ct.join(10)
        provs.resume_all()
        for wp in writers:  # no writes in the last window: listeners must settle
            wp.send_signal(signal.SIGTERM)
        for wp in writers:
            try:
                wp.wait(8)
            except subprocess.TimeoutExpired:
                wp.kill()
        hist("final", at=stop_churn)
        time.sleep(BOUND + 4)
        # final config read from every node
        final_cfg(nodes, out, hist)
        hist("run_end")
    finally:
        stop.set()
        for ch in children:
            if ch.poll() is None:
                ch.send_signal(signal.SIGTERM)
        for ch in children:
            try:
                ch.wait(5)
            except subprocess.TimeoutExpired:
                ch.kill()
        provs.kill_all()
        for n in nodes:
            n.kill()
        subprocess.run([iptables(), "-F", "OUTPUT"], check=False, capture_output=True)
    return 0


def final_cfg(nodes: list[Node], out: Path, hist: History) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import msgpack
    import zmq

    ctx = zmq.Context.instance()
    res: dict[str, Any] = {}
    for n in nodes:
        for d in DATA_IDS:
            s = ctx.socket(zmq.REQ)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVTIMEO, 3000)
            s.connect(f"tcp://{n.addr}")
            got: dict[str, Any] = {}
            try:
                s.send(msgpack.packb({"v": 1, "id": 1, "op": "config_get", "namespace": "public",
                                      "group": "DEFAULT_GROUP", "data_id": d}))  # fmt: skip
                got["get"] = msgpack.unpackb(s.recv(), raw=False)
                s.send(msgpack.packb({"v": 1, "id": 2, "op": "config_history",
                                      "namespace": "public", "group": "DEFAULT_GROUP",
                                      "data_id": d, "page_size": 200}))  # fmt: skip
                got["hist"] = msgpack.unpackb(s.recv(), raw=False)
            except zmq.Again:
                got["err"] = "timeout"
            finally:
                s.close()
            res[f"{n.i}/{d}"] = got
    (out / "final_cfg.json").write_text(json.dumps(res, default=str))
    hist("final_cfg")


# =========================================================================================
# the oracle
# =========================================================================================
def load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def check(out: Path) -> dict[str, Any]:
    """(1) live: a provider that is alive, not paused, ready for BOUND s, is listed healthy
    on every node (that answers) in every sample taken BOUND s or more after the last heal;
    (2) gone: a provider that ended (SIGTERM, SIGKILL) is absent from every node in every
    sample taken BOUND s after max(its end, the last heal); and once absent from every node
    it is never listed again (resurrection);
    (3) consumers: within one (epoch) a service's revision never goes backwards; at the end
    of every quiet window a consumer's view equals its node's listing when that listing
    held still over the last 4 s;
    (4) config: every acknowledged publish's revision grows per data id in ack order; the
    final version on every node is at least the last acknowledged revision, and the
    history holds each acknowledged content at its revision; no reader sees a data id's
    revision go backwards."""
    ev = load(out / "events.jsonl")
    samples = sorted((s for i in range(3) for s in load(out / f"samples{i}.jsonl")),
                     key=lambda s: s["t"])  # fmt: skip
    v: list[dict[str, Any]] = []
    t_run = next((e["t"] for e in ev if e["ev"] == "run_start"), 0.0)

    # fault phases: [fault t, heal t]; quiet windows: [heal t, next fault t)
    windows: list[tuple[float, float]] = []
    last_heal = None
    faults = []
    for e in ev:
        if e["ev"] == "fault":
            if last_heal is not None:
                windows.append((last_heal, e["t"]))
            last_heal = None
            faults.append(e)
        elif e["ev"] == "heal":
            last_heal = e["t"]
        elif e["ev"] == "quiet":
            last_heal = e["t"]
        elif e["ev"] == "run_end" and last_heal is not None:
            windows.append((last_heal, e["t"]))
            last_heal = None
    if last_heal is not None and samples:
        windows.append((last_heal, samples[-1]["t"]))

    def window_of(t: float) -> tuple[float, float] | None:
        for w in windows:
            if w[0] <= t < w[1]:
                return w
        return None

    # provider incarnations
    prov: dict[int, dict[str, Any]] = {}
    for e in ev:
        k = e.get("k")
        if e["ev"] == "prov_start":
            prov[k] = {"start": e["t"], "addrs": e["addrs"], "sessions": e["sessions"],
                       "servers": e["servers"], "end": None, "end_kind": None,
                       "pauses": [], "ready": None}  # fmt: skip
        elif e["ev"] in ("prov_term", "prov_kill") and prov[k]["end"] is None:
            prov[k]["end"] = e["t"]
            prov[k]["end_kind"] = e["ev"]
        elif e["ev"] == "prov_exit" and prov[k]["end"] is None:
            prov[k]["end"] = e["t"]
            prov[k]["end_kind"] = "exit"
        elif e["ev"] == "prov_stop":
            prov[k]["pauses"].append([e["t"], None])
        elif e["ev"] == "prov_cont":
            if prov[k]["pauses"] and prov[k]["pauses"][-1][1] is None:
                prov[k]["pauses"][-1][1] = e["t"]
    for k, p in prov.items():
        for e in load(out / f"prov{k}.jsonl"):
            if e["ev"] == "ready":
                p["ready"] = e["t"]
            if e["ev"] == "closed":
                p["closed"] = e["t"]
    # the next incarnation on the same address (reuse): the older one's "gone" checks stop
    # at its start
    for k, p in prov.items():
        p["others"] = [q for kk, q in prov.items() if kk != k and q["addrs"] == p["addrs"]]

    def covered(p: dict[str, Any], t: float) -> bool:
        """Another incarnation on the same addresses holds them at t (or did less than
        BOUND s before)."""
        w = window_of(t)
        if w is None:  # a fault phase: a stalled node may still list the other one
            return any(q["start"] <= t for q in p["others"])
        return any(q["start"] <= t and (q["end"] is None or t < max(q["end"], w[0]) + BOUND)
                   for q in p["others"])  # fmt: skip

    def live_settled(p: dict[str, Any], t: float) -> bool:
        if p["ready"] is None or p["ready"] + BOUND > t:
            return False
        if p["end"] is not None and p["end"] <= t:
            return False
        for a0, a1 in p["pauses"]:
            if a0 <= t and (a1 is None or a1 + BOUND > t):
                return False
        return True

    checks = {"live": 0, "gone": 0, "consumer_conv": 0, "consumer_rev": 0, "cfg_reads": 0}
    gone_all: dict[tuple[int, str, str], float] = {}  # when first absent on every node
    last_seen_absent: dict[tuple[int, str, str, int], bool] = {}
    resurrected: set[tuple[int, str, str]] = set()
    settled_absent: dict[tuple[int, str, str, int], tuple[int, float] | None] = {}
    flapped: set[tuple[int, str, str, int]] = set()
    seen_on: dict[tuple[int, str, str, int], int] = {}  # listed there (incarnation)
    for s in samples:
        if not s.get("ok"):
            continue
        t, i = s["t"], s["node"]
        w = window_of(s["t0"])
        settled = w is not None and s["t0"] >= w[0] + BOUND
        for k, p in prov.items():
            for svc, addrs in p["addrs"].items():
                listed = s["inst"].get(svc, {})
                for ad in addrs:
                    key = (k, svc, ad)
                    present = ad in listed
                    if settled and live_settled(p, s["t0"]):
                        checks["live"] += 1
                        if not present or not listed[ad]:
                            v.append({"kind": "live-not-listed-healthy", "t": t - t_run,
                                      "node": i, "inc": s["inc"], "svc": svc, "addr": ad,
                                      "k": k, "state": "missing" if not present else "unhealthy",
                                      "window": [w[0] - t_run, w[1] - t_run]})  # fmt: skip
                    if p["end"] is not None and p["end"] <= s["t0"] and not covered(p, s["t0"]):
                        base = max(p["end"], w[0]) if w else None
                        if settled and base is not None and s["t0"] >= base + BOUND:
                            checks["gone"] += 1
                            if present:
                                v.append({"kind": "dead-still-listed", "t": t - t_run,
                                          "node": i, "inc": s["inc"], "svc": svc, "addr": ad,
                                          "k": k, "end_kind": p["end_kind"],
                                          "end": p["end"] - t_run, "healthy": listed[ad]})  # fmt: skip
                        # resurrection
                        if key in gone_all and present and s["t0"] > gone_all[key]:
                            if key not in resurrected:
                                v.append({"kind": "resurrected", "t": t - t_run, "node": i,
                                          "inc": s["inc"], "svc": svc, "addr": ad, "k": k,
                                          "gone_all_at": gone_all[key] - t_run,
                                          "end_kind": p["end_kind"], "end": p["end"] - t_run})  # fmt: skip
                                resurrected.add(key)
                        # per node: once absent (after the end, in this node incarnation),
                        # listed again later in the same incarnation
                        nk = (k, svc, ad, i)
                        if present:
                            seen_on[nk] = s["inc"]
                        if (not present and settled_absent.get(nk) is None
                                and seen_on.get(nk) == s["inc"]):  # fmt: skip
                            settled_absent[nk] = (s["inc"], s["t"])
                        elif present and settled_absent.get(nk) is not None and nk not in flapped:
                            inc0, ta = settled_absent[nk]
                            if inc0 == s["inc"] and s["t0"] > ta:
                                flapped.add(nk)
                                v.append({"kind": "dead-reappeared-on-node", "t": t - t_run,
                                          "node": i, "inc": s["inc"], "svc": svc, "addr": ad,
                                          "k": k, "absent_at": ta - t_run,
                                          "end_kind": p["end_kind"], "end": p["end"] - t_run,
                                          "healthy": listed[ad]})  # fmt: skip
                        last_seen_absent[(k, svc, ad, i)] = not present
                        if key not in gone_all and all(
                            last_seen_absent.get((k, svc, ad, j)) for j in range(3)
                        ):
                            gone_all[key] = s["t"]

    # (3) consumers
    listened: dict[int, dict[str, tuple[int, Any]]] = {}
    by_node: dict[int, list[dict[str, Any]]] = {}
    for s in samples:
        if s.get("ok"):
            by_node.setdefault(s["node"], []).append(s)
    for ci in range(3):
        recs = load(out / f"consumer{ci}.jsonl")
        last: dict[str, tuple[Any, int]] = {}
        views = [r for r in recs if r["ev"] == "view"]
        for r in views:
            checks["consumer_rev"] += 1
            prev = last.get(r["svc"])
            if prev is not None and prev[0] == r["epoch"] and r["rev"] < prev[1]:
                v.append({"kind": "consumer-revision-backwards", "t": r["t"] - t_run,
                          "consumer": ci, "svc": r["svc"], "epoch": r["epoch"],
                          "from": prev[1], "to": r["rev"]})  # fmt: skip
            last[r["svc"]] = (r["epoch"], r["rev"])
        # convergence: every 2 s of a quiet window after its first BOUND s, the consumer's
        # latest view (all instances, with health) must equal its node's listing in some
        # sample within 1.5 s of that moment (the node's listing moves too)
        ns = by_node.get(ci, [])
        for w0, w1 in windows:
            tq = w0 + BOUND
            while tq < w1 - 1.5:
                near = [s for s in ns if tq - 1.5 <= s["t0"] <= tq + 1.5]
                if len(near) >= 3:
                    for svc in SERVICES:
                        sets = [s["inst"].get(svc, {}) for s in near]
                        vv = [r for r in views if r["svc"] == svc and r["t"] <= tq]
                        cview = vv[-1]["inst"] if vv else {}
                        before = [r for r in views if r["svc"] == svc and r["t"] <= tq - 1.5]
                        cands = [r["inst"] for r in views if r["svc"] == svc
                                 and tq - 1.5 < r["t"] <= tq + 1.5]  # fmt: skip
                        cands.append(before[-1]["inst"] if before else {})
                        checks["consumer_conv"] += 1
                        if all(c != x for x in sets for c in cands):
                            v.append({"kind": "consumer-diverged", "t": tq - t_run,
                                      "consumer": ci, "svc": svc, "node_lists": sets[:1] + sets[-1:],
                                      "consumer_view": cview,
                                      "view_t": (vv[-1]["t"] - t_run) if vv else None,
                                      "view_rev": [vv[-1]["epoch"], vv[-1]["rev"]] if vv else None})  # fmt: skip
                tq += 2.0
        # config listeners: never backwards; the last one heard equals the final version
        lastl: dict[str, tuple[int, Any]] = {}
        for r in recs:
            if r["ev"] != "listen" or r["rev"] is None:
                continue
            prev = lastl.get(r["id"])
            if prev is not None and r["rev"] < prev[0]:
                v.append({"kind": "config-listener-backwards", "t": r["t"] - t_run,
                          "consumer": ci, "id": r["id"], "from": prev[0], "to": r["rev"]})  # fmt: skip
            lastl[r["id"]] = (r["rev"], r["content"])
        listened[ci] = lastl
        # config reads
        lastc: dict[str, int] = {}
        for r in recs:
            if r["ev"] != "cfg":
                continue
            checks["cfg_reads"] += 1
            prev = lastc.get(r["id"], 0)
            if r["rev"] < prev:
                v.append({"kind": "config-read-backwards", "t": r["t"] - t_run, "consumer": ci,
                          "id": r["id"], "from": prev, "to": r["rev"],
                          "cache": r.get("cache")})  # fmt: skip
            lastc[r["id"]] = max(prev, r["rev"])

    # node reads (raw config_get, sampler): per node incarnation, never backwards; across
    # incarnations (same data dir) reported separately
    for i in range(3):
        seen: dict[str, tuple[int, int]] = {}
        for s in by_node.get(i, []):
            for d, (rev, _c) in (s.get("cfg") or {}).items():
                if rev is None:
                    continue
                checks["cfg_reads"] += 1
                prev = seen.get(d)
                if prev is not None and rev < prev[1]:
                    v.append({"kind": "node-config-read-backwards" + ("" if prev[0] == s["inc"]
                              else "-across-restart"), "t": s["t"] - t_run, "node": i,
                              "inc": s["inc"], "id": d, "from": prev[1], "to": rev})  # fmt: skip
                if prev is None or rev >= prev[1] or prev[0] != s["inc"]:
                    seen[d] = (s["inc"], max(rev, prev[1] if prev and prev[0] == s["inc"] else 0))

    # (4) config writes
    acks, errs = [], []
    lastack: dict[str, dict[str, Any]] = {}
    for wname in ("w", "x", "y", ""):
        wr = load(out / (f"writer-{wname}.jsonl" if wname else "writer.jsonl"))
        wacks = [r for r in wr if r["ev"] == "ack"]
        acks += wacks
        errs += [r for r in wr if r["ev"] == "err"]
        mine: dict[str, dict[str, Any]] = {}
        for r in wacks:  # one writer's acks, in its order: revisions grow
            p = mine.get(r["id"])
            if p is not None and r["rev"] <= p["rev"]:
                v.append({"kind": "config-ack-not-increasing", "t": r["t"] - t_run,
                          "writer": wname, "id": r["id"], "prev": [p["rev"], p["content"]],
                          "now": [r["rev"], r["content"]]})  # fmt: skip
            if r.get("if_rev") is not None and r["rev"] != r["if_rev"] + 1:
                v.append({"kind": "config-cas-ack-wrong-revision", "t": r["t"] - t_run,
                          "writer": wname, "id": r["id"], "if_rev": r["if_rev"],
                          "rev": r["rev"], "content": r["content"]})  # fmt: skip
            mine[r["id"]] = r
            if r["id"] not in lastack or r["rev"] > lastack[r["id"]]["rev"]:
                lastack[r["id"]] = r
    by_rev: dict[tuple[str, int], set[str]] = {}
    for r in acks:
        by_rev.setdefault((r["id"], r["rev"]), set()).add(r["content"])
    for (d, rev), cs in by_rev.items():
        if len(cs) > 1:
            v.append({"kind": "config-two-acks-one-revision", "id": d, "rev": rev,
                      "contents": sorted(cs)})  # fmt: skip
    fc_path = out / "final_cfg.json"
    fc = json.loads(fc_path.read_text()) if fc_path.exists() else {}
    for key, got in fc.items():
        ni, d = key.split("/")
        g = got.get("get") or {}
        if not g.get("ok"):
            v.append({"kind": "config-final-unreadable", "node": int(ni), "id": d,
                      "got": str(got)[:300]})  # fmt: skip
            continue
        rev = g["result"].get("revision", 0)
        for ci, lastl in listened.items():
            got_l = lastl.get(d)
            if int(ni) == 0 and got_l is not None and got_l[0] != rev:
                v.append({"kind": "config-listener-not-converged", "consumer": ci, "id": d,
                          "listened": got_l[0], "final": rev})  # fmt: skip
        la = lastack.get(d)
        if la is not None and rev < la["rev"]:
            v.append({"kind": "config-ack-lost-final", "node": int(ni), "id": d,
                      "final_rev": rev, "last_ack": [la["rev"], la["content"]]})  # fmt: skip
        h = got.get("hist") or {}
        items = (h.get("result") or {}).get("items", []) if h.get("ok") else []
        winners: dict[int, str] = {}
        for it in items:
            winners.setdefault(it.get("revision"), it.get("content"))
        if items:
            for r in acks:
                if r["id"] != d:
                    continue
                c = winners.get(r["rev"])
                if c is not None and c != r["content"]:
                    v.append({"kind": "config-ack-overwritten", "node": int(ni), "id": d,
                              "rev": r["rev"], "acked": r["content"], "history": c})  # fmt: skip
    summary = {
        "providers": len(prov),
        "prov_terms": sum(1 for e in ev if e["ev"] == "prov_term"),
        "prov_kills": sum(1 for e in ev if e["ev"] == "prov_kill"),
        "prov_pauses": sum(1 for e in ev if e["ev"] == "prov_stop"),
        "node_faults": {k: sum(1 for f in faults if f["kind"] == k)
                        for k in ("pause", "kill", "isolate", "oneway", "loss", "pause_long",
                                  "double", "rolling", "kill_pair", "stutter")},  # fmt: skip
        "samples": len(samples),
        "samples_ok": sum(1 for s in samples if s.get("ok")),
        "config_acks": len(acks),
        "config_errs": len(errs),
        "checks": checks,
        "violations": len(v),
        "by_kind": {},
    }
    for x in v:
        summary["by_kind"][x["kind"]] = summary["by_kind"].get(x["kind"], 0) + 1
    (out / "violations.json").write_text(json.dumps(v, indent=1))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


# =========================================================================================
# outside: the namespace
# =========================================================================================
def outside(a: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("needs root (ip netns, iptables)", file=sys.stderr)
        return 2
    ns = f"r26soak{os.getpid()}"
    out = Path(a.out or f"/tmp/soak26/seed{a.seed}-{int(time.time())}")
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
        cmd = ["ip", "netns", "exec", ns, sys.executable, str(HERE), "--role", "driver",
               "--seed", str(a.seed), "--minutes", str(a.minutes), "--out", str(out)]  # fmt: skip
        if a.kinds:
            cmd += ["--kinds", a.kinds]
        print(f"run dir {out}", flush=True)
        try:
            subprocess.run(cmd, env=env, timeout=a.minutes * 60 + 180)
        except subprocess.TimeoutExpired:
            print("driver timed out", file=sys.stderr)
    finally:
        r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", ns], check=False)
    summary = check(out)
    print(json.dumps(summary, indent=1))
    return 1 if summary["violations"] else 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--role", default="outside")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--out", default="")
    p.add_argument("--check", default="")
    p.add_argument("--servers", default="")
    p.add_argument("--server", default="")
    p.add_argument("--services", default="")
    p.add_argument("--per", type=int, default=1)
    p.add_argument("--ip", default="")
    p.add_argument("--no-sessions", action="store_true")
    p.add_argument("--cas", action="store_true")
    p.add_argument("--kinds", default="", help="node fault kinds to draw from (comma list)")
    p.add_argument("--name", default="w")
    p.add_argument("--max-seconds", type=float, default=600.0)
    a = p.parse_args()
    if a.check:
        s = check(Path(a.check))
        print(json.dumps(s, indent=1))
        return 1 if s["violations"] else 0
    if a.role == "provider":
        return role_provider(a)
    if a.role == "consumer":
        return role_consumer(a)
    if a.role == "writer":
        return role_writer(a)
    if a.role == "driver":
        return driver(a)
    return outside(a)


if __name__ == "__main__":
    sys.exit(main())
