"""``attacks``: issue 10's probe replayed against nodes started here, with the node's RSS
sampled and a bystander pinging it (bench/README.md, "Security", lists every attack).
"""

from __future__ import annotations

import argparse
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import msgpack
import zmq
from zmq.utils.monitor import recv_monitor_message

from bench.common import (
    GROUP,
    HOST,
    MB,
    NS,
    QUIET,
    READY_SECONDS,
    BenchKeys,
    Column,
    Curve,
    NodeProc,
    Procs,
    Say,
    Scenario,
    collect,
    connect,
    dist_ms,
    make_keys,
    ping,
    request,
    rss_bytes,
    start_cluster,
    stats,
    table,
    wait_until,
)
from bench.load import preload, run_load, start_background
from bench.runner import run_alone
from meshreg.wire.replies import encode_request

PING_WAIT = 3.0  # s the bystander waits for its last pings after the attack
ALIVE_WAIT = 5.0  # s a node may take to answer ping after an attack
RSS_EVERY = 0.02  # s between RSS samples
ATTACKS = ("H1", "H3", "H4", "M1", "M4", "M2", "M6", "F2")
FAKE_VERSION = 2**63 - 1  # the probe's poisoned stamp


# -- what runs beside every attack ----------------------------------------------------
def _bystander(
    port: int, rate: float, limit: float, curve: Curve | None, stop: Any, cleanups: list[Any]
) -> Callable[[], dict[str, Any]]:
    """Once a first ping is answered (the connection and CURVE handshake not measured),
    the call that pings at ``rate``/s until ``stop`` (or ``limit`` s) and reports every
    answer's time."""
    pc = time.perf_counter
    ctx = zmq.Context()
    sock = connect(ctx, zmq.DEALER, port, curve)
    cleanups += [ctx.term, lambda: sock.close(linger=0)]
    sent: dict[int, float] = {}
    latencies: list[float] = []
    errors: Counter[str] = Counter()

    def take(timeout_ms: float) -> None:
        if not sock.poll(timeout_ms):
            return
        for _ in range(10_000):  # bounded: what has arrived
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            t = pc()
            try:
                reply = msgpack.unpackb(frames[-1])
                t0 = sent.pop(reply["id"], None)
                if not reply.get("ok"):
                    errors[str(reply.get("error", {}).get("name"))] += 1
            except Exception:
                errors["BAD_REPLY"] += 1
                continue
            if t0 is not None:
                latencies.append(t - t0)

    sock.send_multipart([b"", encode_request("ping", 0)])
    sent[0] = pc()
    take(READY_SECONDS * 1000)
    latencies.clear()

    def pings() -> dict[str, Any]:
        rid = 0
        interval = 1.0 / rate
        t_next = pc()
        deadline = t_next + limit
        while not stop.is_set() and pc() < deadline:  # bounded by the deadline
            now = pc()
            if now >= t_next:
                rid += 1
                try:
                    sock.send_multipart([b"", encode_request("ping", rid)], zmq.NOBLOCK)
                    sent[rid] = now
                except zmq.Again:
                    errors["send queue full"] += 1
                t_next = max(t_next + interval, now)
            take(max(0.0, t_next - pc()) * 1000)
        t_end = pc() + PING_WAIT
        while sent and pc() < t_end:  # bounded: the last pings' answers
            take(100)
        return {"sent": rid, "latencies": latencies, "unanswered": len(sent), "errors": errors}

    return pings


class Bystander:
    """A client in its own process pinging the node at a steady rate."""

    def __init__(
        self, procs: Procs, ctx: Any, port: int, rate: float, limit: float, curve: Curve | None
    ) -> None:
        what = "the bystander's first ping"
        self.stop_event = ctx.Event()
        job = (port, rate, limit, curve, self.stop_event)
        (self.proc,), go, self.out = procs.start_workers(ctx, _bystander, [job], what)
        go.set()

    def stop(self) -> dict[str, Any]:
        self.stop_event.set()
        got = collect(self.out, 1, [self.proc], PING_WAIT + 10, "the bystander's pings")[0]
        self.proc.join(5)
        if "aborted" in got:
            raise RuntimeError(f"the bystander failed: {got['aborted']}")
        return {"pings_sent": got["sent"], "ping_ms": dist_ms(got["latencies"]),
                "pings_unanswered": got["unanswered"], "ping_errors": got["errors"]}  # fmt: skip


class RssSampler:
    """VmRSS of one process every RSS_EVERY s in a thread: before and the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(RSS_EVERY):  # until stopped (the attack is bounded)
            self.peak = max(self.peak, rss_bytes(self.pid))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss_bytes(self.pid))


# -- the attacker's sockets -------------------------------------------------------------
class Attacker:
    """Attacker sockets in one context, and what libzmq saw of their connections
    (monitors on the first ``monitored`` sockets): connected, dropped by the node,
    handshakes refused."""

    def __init__(self, curve: Curve | None, monitored: int = 32) -> None:
        self.ctx = zmq.Context()
        self.ctx.set(zmq.MAX_SOCKETS, 4096)
        self.curve = curve
        self.monitored = monitored
        self.socks: list[zmq.Socket] = []
        self.monitors: list[zmq.Socket] = []
        self.events: Counter[str] = Counter()
        self.replies: Counter[str] = Counter()

    def open(self, kind: int, port: int, monitor: bool = False, **options: Any) -> zmq.Socket:
        """A connected socket (:func:`connect`); monitored if ``monitor`` or among the first
        ``monitored``."""
        watch = monitor or len(self.monitors) < self.monitored
        sock = connect(
            self.ctx, kind, port, self.curve, self.monitors if watch else None, **options
        )
        self.socks.append(sock)
        return sock

    def read_events(self) -> None:
        for mon in self.monitors:
            for _ in range(100_000):  # bounded: what has arrived
                try:
                    msg = recv_monitor_message(mon, zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.events[zmq.Event(msg["event"]).name] += 1

    def wait_events(self, name: str, count: int, timeout: float) -> bool:
        return (
            wait_until(lambda: self.read_events() or self.events[name] >= count, timeout, 0.02)
            is not None
        )

    def exchange(
        self, sock: zmq.Socket, bodies: Iterator[bytes], seconds: float, window: int = 64
    ) -> int:
        """Send ``bodies`` on a DEALER, ``window`` in flight, for at most ``seconds``;
        count the replies by outcome (then wait at most 2 s for the last); how many sent."""
        pc = time.perf_counter
        deadline = pc() + seconds
        sent = outstanding = 0
        done = False

        def take(outstanding: int) -> int:
            for _ in range(outstanding):
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                outstanding -= 1
                self.replies[outcome(frames[-1])] += 1
            return outstanding

        while not done and pc() < deadline:  # bounded by the deadline
            while outstanding < window:
                body = next(bodies, None)
                if body is None:
                    done = True
                    break
                try:
                    sock.send_multipart([b"", body], zmq.NOBLOCK)
                except zmq.Again:
                    break
                sent += 1
                outstanding += 1
            if sock.poll(min(100, max(1, (deadline - pc()) * 1000))):
                outstanding = take(outstanding)
        t_end = pc() + 2.0
        while outstanding and pc() < t_end:  # bounded: the last replies
            if sock.poll(100):
                outstanding = take(outstanding)
        if outstanding:
            self.replies["no answer"] += outstanding
        return sent

    def hold_subs(self, port: int, n: int, size: int, seconds: float) -> None:
        """``n`` SUBs with a ``size``-byte topic (its frame size is what counts), held for
        ``seconds`` while their connection events are read."""
        for _ in range(n):
            self.open(zmq.SUB, port, SUBSCRIBE=b"\x01" * size)
        wait_until(lambda: self.read_events(), seconds, 0.1)  # never true: the whole time

    def close(self) -> None:
        self.read_events()
        for s in self.monitors + self.socks:
            s.close(linger=0)
        self.ctx.term()

    def answers(self) -> str:
        """What came back, in a few words."""
        parts = [f"{k} x{v:,}" for k, v in self.replies.most_common() if v]
        ev = self.events
        refused = sum(v for k, v in ev.items() if k.startswith("HANDSHAKE_FAILED"))
        if ev["DISCONNECTED"]:
            parts.append(f"dropped x{ev['DISCONNECTED']:,}")
        if refused:
            parts.append(f"handshake refused x{refused:,}")
        if len(self.socks) > len(self.monitors) and (ev["DISCONNECTED"] or refused):
            parts.append(f"(seen on {len(self.monitors)} of {len(self.socks)} sockets)")
        return ", ".join(parts) or "nothing"


def outcome(body: bytes) -> str:
    """A reply in a word: ok, its error's name, or garbage."""
    try:
        reply = msgpack.unpackb(body)
        return "ok" if reply.get("ok") else str(reply["error"]["name"])
    except Exception:
        return "garbage"


def instance(service: str, ip: str, port: int, namespace: str = NS) -> dict[str, Any]:
    return dict(namespace=namespace, group=GROUP, service=service, ip=ip, port=port,
                cluster="DEFAULT")  # fmt: skip


# -- one attack ----------------------------------------------------------------------------
@dataclass
class Env:
    """What an attack gets: the target node (and its cluster), the keys, the settings."""

    procs: Procs
    ctx: Any
    opts: argparse.Namespace
    nodes: list[NodeProc]
    keys: BenchKeys
    secure: bool  # the nodes have a key
    attacker: Curve | None  # the attacker's keys (None: no CURVE)
    busy: Any = None  # stops the background load keeping the node busy (M1)

    @property
    def node(self) -> NodeProc:
        return self.nodes[0]

    @property
    def client(self) -> Curve | None:
        """The keys of a legitimate client (the bystander's, the set-up's)."""
        return self.keys.app if self.secure else None


@dataclass
class Attack:
    id: str
    name: str
    scale: str  # the probe's volume -> this run's
    run: Callable[[Env, Attacker], dict[str, Any]]
    nodes: int = 1
    setup: Callable[[Env], None] | None = None
    args: list[str] = field(default_factory=list)  # after the nodes' other args (F2: timings)


def run_attack(
    attack: Attack, who: str, procs: Procs, ctx: Any, opts: argparse.Namespace,
    keys: BenchKeys, log_dir: str, say: Say, shared: dict[Any, list[NodeProc]],
) -> dict[str, Any]:  # fmt: skip
    """Start the node(s) (with a key unless ``who`` is "plain node"), set up, attack.
    ``--share-nodes``: the node(s) of an earlier attack on the same kind (count, key, extra
    args), kept in ``shared``."""
    secure = who != "plain node"
    attacker = {"stranger key": keys.stranger, "client key": keys.app}.get(who)
    args = QUIET + (keys.node_args() if secure else []) + attack.args
    curve = keys.app if secure else None
    kind = (attack.nodes, secure, tuple(attack.args))
    nodes = shared.get(kind, [])
    try:
        if not nodes or not all(n.alive() for n in nodes):
            if attack.nodes > 1:
                nodes = start_cluster(procs, attack.nodes, log_dir, args, curve)
            else:
                nodes = [procs.node(log_dir, args, curve=curve)]
        if opts.share_nodes:
            shared[kind] = nodes
        env = Env(procs, ctx, opts, nodes, keys, secure, attacker)
        if attack.setup is not None:
            attack.setup(env)
        row = {"attack": f"{attack.id} {attack.name}", "id": attack.id, "target": who,
               "scale": attack.scale, **_attacked(attack, env)}  # fmt: skip
        say(
            f"  {row['attack']} ({who}): {row.get('sent', '')}; RSS {row['rss_mb']}; ping p99 "
            f"{row['ping_ms']['p99']} ms; alive {row['alive']}; {row['answers']}"
        )
        return row
    finally:
        procs.stop_children()
        if not opts.share_nodes:
            procs.stop_all()


def _attacked(attack: Attack, env: Env) -> dict[str, Any]:
    """The attack with the bystander and the RSS sampler running; then the node's state."""
    node = env.node
    rss = RssSampler(node.pid)
    limit = 900.0  # a bound only: stop() ends it
    bystander = Bystander(env.procs, env.ctx, node.port, env.opts.ping_rate, limit, env.client)
    atk = Attacker(env.attacker)
    t0 = time.perf_counter()
    try:
        got = attack.run(env, atk)
    finally:
        took = time.perf_counter() - t0
        atk.close()
        pings = bystander.stop()
        rss.stop()
    alive = node.alive() and ping(node.port, ALIVE_WAIT, env.client)
    if alive:
        time.sleep(env.opts.settle)  # benchmark pacing: let freed memory show
    after = rss_bytes(node.pid) if node.alive() else 0
    rss.peak = max(rss.peak, after)  # still growing when the attack ended
    stats: dict[str, Any] = {}
    if alive:
        try:
            reply = request(node.port, encode_request("stats", 1), env.client)
            stats = (reply or {}).get("result") or {}
        except zmq.ZMQError:
            pass
    held = ("services", "instances", "subscribers", "errors_total")
    security = ("security", "handshakes_refused", "permission_denied", "subscriptions_refused")
    mb = {k: round(v / MB, 1) for k, v in (("before", rss.before), ("peak", rss.peak),
                                            ("after", after))}  # fmt: skip
    return {"seconds": round(took, 2), "rss_mb": mb, "alive": alive, "answers": atk.answers(),
            "replies": dict(atk.replies), "connection_events": dict(atk.events), **pings, **got,
            "node_held": {k: stats.get(k) for k in held},
            "node_security": {k: stats.get(k) for k in security}}  # fmt: skip


# -- the attacks -----------------------------------------------------------------------
def _register_orders(env: Env) -> None:
    body = encode_request("register", 1, **instance("orders", "10.0.0.1", 8080))
    reply = request(env.node.port, body, env.client)
    if not (reply or {}).get("ok"):
        raise RuntimeError(f"setting up H1: register orders answered {reply}")


def reconcile_body(rid: int) -> bytes:
    """The probe's H1: a fake healthy instance in ``orders\\0evil`` stamped 2^63-1, and a
    tombstone for the real ``orders`` instance."""
    fake = {"ip": "10.66.6.6", "port": 6666, "cluster": "DEFAULT", "weight": 1.0,
            "enabled": True, "healthy": True, "metadata": {}, "version": FAKE_VERSION,
            "alive": FAKE_VERSION, "down": 0}  # fmt: skip

    def payload(service: str, upsert: list[Any], remove: list[Any]) -> dict[str, Any]:
        return {"namespace": NS, "group": GROUP, "service": service, "upsert": upsert,
                "remove": remove, "settings": None}  # fmt: skip

    services = [
        payload("orders\0evil", [fake], []),
        payload("orders", [], [["10.0.0.1", 8080, "DEFAULT", FAKE_VERSION, FAKE_VERSION]]),
    ]
    return encode_request("reconcile", rid, node="evil", services=services)


def h1(env: Env, atk: Attacker) -> dict[str, Any]:
    n = env.opts.h1_count
    sock = atk.open(zmq.DEALER, env.node.port)
    sent = atk.exchange(sock, (reconcile_body(i + 1) for i in range(n)), seconds=10.0)
    atk.read_events()
    query = {"namespace": NS, "group": GROUP, "service": "orders"}
    reply = request(env.node.port, encode_request("instances", 1, **query), env.client)
    found = ((reply or {}).get("result") or {}).get("instances") or []
    listed = sorted(f"{i['ip']}:{i['port']}" for i in found)
    after = encode_request("register", 2, **instance("after", "10.9.9.9", 1))
    probe = request(env.node.port, after, env.client)
    effect = f"orders lists {', '.join(listed) or 'nothing'}; a new register: " + (
        outcome(msgpack.packb(probe)) if probe else "no answer"
    )
    return {"sent": f"{sent} reconcile requests", "effect": effect}


def h3_notify(env: Env, atk: Attacker) -> dict[str, Any]:
    n, size, seconds = env.opts.h3_subs, env.opts.h3_bytes, env.opts.sub_seconds
    atk.hold_subs(env.node.port + 1, n, size, seconds)
    connects = atk.events["CONNECTED"] + atk.events["HANDSHAKE_SUCCEEDED"]
    return {
        "sent": f"{n} SUBs x {size // 1024} KB, {seconds:g} s",
        "bytes_offered_mb": round(connects * size * n / max(1, len(atk.monitors)) / MB, 1),
    }


def zmtp_null_subscribe(port: int, topic: bytes, timeout: float = 3.0) -> tuple[str, int]:
    """A SUB speaking ZMTP 3.0 (NULL mechanism) by hand: greeting, READY, one subscription
    message; then wait for the node to close the connection.  (outcome, bytes sent).

    By hand because libzmq's own SUB keeps a topic in a trie it frees recursively: closing
    a SUB holding a 1 MiB subscription overflows the stack and kills the attacker.
    """

    def frame(body: bytes, command: bool = False) -> bytes:
        flags = 0x04 if command else 0x00
        if len(body) > 255:
            return bytes([flags | 0x02]) + len(body).to_bytes(8, "big") + body
        return bytes([flags, len(body)]) + body

    greeting = b"\xff" + b"\0" * 8 + b"\x7f\x03\x00" + b"NULL".ljust(20, b"\0") + b"\0" * 32
    ready = frame(b"\x05READY\x0bSocket-Type" + (3).to_bytes(4, "big") + b"SUB", command=True)
    data = greeting + ready + frame(b"\x01" + topic)
    sent = 0
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        try:
            s.sendall(data)
            sent = len(data)
            deadline = time.perf_counter() + timeout
            while time.perf_counter() < deadline:  # bounded: until closed or the deadline
                if not s.recv(65536):
                    return "dropped", sent
        except TimeoutError:
            return "kept open", sent
        except OSError:  # reset or broken pipe: the node closed it
            return "dropped", sent
    return "kept open", sent


def h3_replication(env: Env, atk: Attacker) -> dict[str, Any]:
    """8 x 1 MiB subscriptions on port+2, each re-sent as soon as it is dropped (as a SUB
    reconnects) for ``--sub-seconds``.  With a key, the attacker's libzmq SUB (stranger
    key) subscribes 60 KB instead (see zmtp_null_subscribe; the handshake comes first)."""
    n, seconds = env.opts.h3_repl_subs, env.opts.sub_seconds
    port = env.node.port + 2
    if env.attacker is not None:
        atk.hold_subs(port, n, env.opts.h3_bytes, seconds)
        return {"sent": f"{n} SUBs x {env.opts.h3_bytes // 1024} KB on port+2, {seconds:g} s"}
    total = rounds = 0
    deadline = time.perf_counter() + seconds
    pool = ThreadPoolExecutor(n)
    try:
        while time.perf_counter() < deadline:  # bounded by the deadline
            jobs = [pool.submit(zmtp_null_subscribe, port, b"\x01" * MB) for _ in range(n)]
            for job in jobs:
                how, sent = job.result()
                atk.replies[how] += 1
                total += sent
            rounds += 1
            time.sleep(0.1)  # a SUB's reconnect interval: the probe's pace
    finally:
        pool.shutdown()
    return {"sent": f"{n} x 1 MiB subscriptions on port+2, {rounds} rounds in {seconds:g} s "
                    f"({total / MB:,.0f} MiB)"}  # fmt: skip


def big_frames(env: Env, atk: Attacker, body: bytes, n: int, batch: int) -> int:
    """``n`` copies of ``body`` on the client port, each on its own connection,
    ``batch`` connections at a time, each batch waiting (3 s at most) to be dropped."""
    sent = 0
    deadline = time.perf_counter() + env.opts.max_attack_seconds
    frame = zmq.Frame(body)  # one buffer for every send
    while sent < n and time.perf_counter() < deadline:  # bounded in count and time
        k = min(batch, n - sent)
        before = atk.events["DISCONNECTED"] + sum(
            v for e, v in atk.events.items() if e.startswith("HANDSHAKE_FAILED")
        )
        # no reconnection: each frame goes out once, on its own connection
        socks = [
            atk.open(zmq.DEALER, env.node.port, monitor=True, RECONNECT_IVL=-1) for _ in range(k)
        ]
        for s in socks:
            s.send_multipart([b"", frame], copy=False)
        sent += k
        atk.wait_events("DISCONNECTED", before + k, 3.0)
        for s in socks:  # an answer, if any (a reply means the node decoded it)
            if s.poll(0):
                atk.replies[outcome(s.recv_multipart()[-1])] += 1
    return sent


def h4(env: Env, atk: Attacker) -> dict[str, Any]:
    n, size = env.opts.h4_count, env.opts.h4_bytes
    body = msgpack.packb({"op": "reconcile", "v": 1, "id": 1, "pad": b"\0" * size})
    assert b"\xa2op\xa9reconcile" in body[:48]
    sent = big_frames(env, atk, body, n, 1)
    return {"sent": f"{sent} x {size / MB:g} MiB"}


def _busy(env: Env) -> None:
    env.busy = start_background(
        env.procs, env.ctx, [env.node], env.opts.busy_rate, 1000,
        limit=env.opts.max_attack_seconds + 60, curve=env.client, services=("busy-0", "busy-1"),
    )  # fmt: skip


def m1(env: Env, atk: Attacker) -> dict[str, Any]:
    n, size = env.opts.m1_count, env.opts.m1_bytes
    try:
        sent = big_frames(env, atk, b"\0" * size, n, 10)
    finally:
        env.busy()
    return {"sent": f"{sent} x {size / MB:g} MiB, node at {env.opts.busy_rate:,.0f} beats/s"}


def m4(env: Env, atk: Attacker) -> dict[str, Any]:
    seconds = env.opts.slow_seconds
    for _ in range(3):  # subscribed to the whole namespace, never read
        atk.open(zmq.SUB, env.node.port + 1, SUBSCRIBE=NS.encode() + b"\0")
    atk.wait_events("HANDSHAKE_SUCCEEDED", 3, 5.0)
    row = run_load(
        env.procs, env.ctx, [(env.node.port, ("churn", 2000, None))], [env.node.pid],
        window=64, seconds=seconds, warmup=0.0, curve=env.client,
    )  # fmt: skip
    changes = row["ok"]
    return {"sent": f"3 SUBs never reading, {changes:,} changes in {seconds:g} s",
            "changes": changes}  # fmt: skip


def _junk(kind: str) -> Callable[[Env, Attacker], dict[str, Any]]:
    def body(i: int) -> bytes:
        if kind == "services":
            return encode_request("register", i, **instance(f"junk-{i}", "10.1.1.1", 1))
        if kind == "service_set":
            return encode_request(
                "service_set", i, namespace=NS, group=GROUP, service=f"empty-{i}",
                protect_threshold=0.5,
            )  # fmt: skip
        return encode_request("register", i, **instance("x", "10.1.1.1", 1, f"ns-{i}"))

    def attack(env: Env, atk: Attacker) -> dict[str, Any]:
        seconds = env.opts.junk_seconds
        sock = atk.open(zmq.DEALER, env.node.port)
        bodies = (body(i) for i in range(1, 10_000_000))
        sent = atk.exchange(sock, bodies, seconds, window=128)
        return {"sent": f"{sent:,} {'registrations' if kind != 'service_set' else kind} "
                        f"in {seconds:g} s"}  # fmt: skip

    return attack


def _many_services(env: Env) -> None:
    n = env.opts.m6_services
    services = tuple(f"svc-{k}" for k in range(n))
    preload(env.node.port, "register", n, services, curve=env.client)


def m6(env: Env, atk: Attacker) -> dict[str, Any]:
    seconds = env.opts.flood_seconds
    row = run_load(
        env.procs, env.ctx, [(env.node.port, ("services", 1)), (env.node.port, ("stats", 1))],
        [env.node.pid], window=8, seconds=seconds, warmup=0.0, curve=env.client,
    )  # fmt: skip
    atk.replies.update({"ok": row["ok"], **row["error_names"]})
    return {
        "sent": f"{row['sent']:,} services+stats in {seconds:g} s on "
        f"{env.opts.m6_services:,} services ({row['ops_per_second']:,.0f}/s answered)"
    }


# -- F2: a tenant's burst and its lapse (review83 F2) -------------------------------------
F2_BATCH = 500  # instances per register_batch (57 KB bodies: within the 64 KiB limit)
F2_SERVICE = 40_000  # instances per service at most
F2_RENEW = 20_000  # instances registered between two renewals of the session
F2_CALL = 60.0  # s one request of the burst may wait for its answer
F2_MARGIN = 30.0  # s the eviction may take beyond unhealthy + evict + 3 check intervals
F2_POLL = 0.25  # s between two looks at every node's instance count
STALLED = re.compile(r"this node was stalled for ([0-9.]+)s")


def f2_timings(opts: argparse.Namespace) -> list[str]:
    """The nodes' health timings for F2 (after QUIET's, so these count)."""
    return ["--unhealthy-after", f"{opts.unhealthy_after:g}", "--evict-after",
            f"{opts.evict_after:g}", "--check-interval", f"{opts.check_interval:g}"]  # fmt: skip


def longest_stall(node: NodeProc) -> float:
    """The longest "this node was stalled for" in the node's log, in s (0: none)."""
    found = (STALLED.search(line) for line in node.log_lines())
    return max((float(m.group(1)) for m in found if m), default=0.0)


def f2_call(atk: Attacker, sock: zmq.Socket, op: str, rid: int, **fields: Any) -> dict[str, Any]:
    """One request on ``sock`` (a DEALER) and its result, the reply counted in
    ``atk.replies``; raises when it is refused or unanswered within F2_CALL."""
    sock.send_multipart([b"", encode_request(op, rid, **fields)])
    deadline = time.perf_counter() + F2_CALL
    for _ in range(1000):  # bounded: a late reply to an earlier request is skipped
        if not sock.poll(max(1, int((deadline - time.perf_counter()) * 1000))):
            break
        body = sock.recv_multipart()[-1]
        reply = msgpack.unpackb(body)
        if reply.get("id") != rid:
            continue
        atk.replies[outcome(body)] += 1
        if not reply.get("ok"):
            raise RuntimeError(f"{op} answered {reply.get('error')}")
        return dict(reply.get("result") or {})
    atk.replies["no answer"] += 1
    raise RuntimeError(f"no answer to {op} within {F2_CALL:g} s")


def f2_entries(start: int, n: int, session: str) -> list[dict[str, Any]]:
    """Instances start..start+n-1: distinct ips, services of F2_SERVICE each, one session."""
    return [{"namespace": NS, "group": GROUP, "service": f"f2-{k // F2_SERVICE}",
             "ip": f"10.{k >> 16}.{k >> 8 & 255}.{k & 255}", "port": 1000, "session": session}
            for k in range(start, start + n)]  # fmt: skip


def f2(env: Env, atk: Attacker) -> dict[str, Any]:
    """One client registers ``--f2-instances`` in one session through node 0, back to back,
    renewing every F2_RENEW; then goes silent: the time until every node holds none, and
    the nodes' stalls (stats ``stalls``, the longest "stalled for" their logs tell)."""
    o, pc = env.opts, time.perf_counter
    ports = [node.port for node in env.nodes]
    stalls_before = [stats(p, 10.0, env.client)["stalls"] for p in ports]
    sock = atk.open(zmq.DEALER, env.node.port)
    rid = 1
    session = f2_call(atk, sock, "session_open", rid, namespace=NS)["session"]
    registered = 0
    t0 = pc()
    deadline = t0 + o.max_attack_seconds
    for start in range(0, o.f2_instances, F2_BATCH):  # bounded in count and time
        if pc() > deadline:
            break
        batch = f2_entries(start, min(F2_BATCH, o.f2_instances - start), session)
        rid += 1
        res = f2_call(atk, sock, "register_batch", rid, namespace=NS, instances=batch)
        refused = [r for r in res["results"] if r is not None]
        if refused:
            raise RuntimeError(f"{len(refused)} of a batch of {len(batch)} refused: {refused[0]}")
        registered += len(batch)
        if start % F2_RENEW == 0:
            rid += 1
            f2_call(atk, sock, "session_renew", rid, namespace=NS, session=session)
    burst = pc() - t0
    rid += 1
    held = f2_call(atk, sock, "session_renew", rid, namespace=NS, session=session)["instances"]
    renewed = pc()  # the client goes away here, its session open (a crash)

    def evicted() -> bool:
        return all(stats(p, 5.0, env.client)["instances"]["total"] == 0 for p in ports)

    bound = o.unhealthy_after + o.evict_after + 3 * o.check_interval + F2_MARGIN
    gone = wait_until(evicted, bound, F2_POLL)
    if gone is None:
        raise RuntimeError(f"the lapsed session's instances still held after {bound:g} s")
    lapse = gone - renewed
    after = [stats(p, 10.0, env.client) for p in ports]
    stalls = [s["stalls"] for s in after]
    longest = [longest_stall(node) for node in env.nodes]
    preserved = [(s.get("self_preservation") or {}).get("times_entered") for s in after]
    effect = f"stalls {'/'.join(map(str, stalls))}"
    if any(stalls_before):
        effect += f" ({'/'.join(map(str, stalls_before))} before)"
    if any(longest):
        effect += f", longest {max(longest):.1f} s"
    short = registered < o.f2_instances
    return {
        "sent": f"{registered:,} instances in 1 session through node 0 in {burst:.1f} s "
        f"({registered / burst:,.0f}/s){' (time bound)' if short else ''}, then silent",
        "effect": f"{effect}; evicted everywhere in {lapse:.0f} s",
        "f2": {"instances": registered, "wanted": o.f2_instances, "held_at_last_renew": held,
               "per_second": round(registered / burst), "burst_s": round(burst, 2),
               "lapse_s": round(lapse, 2), "lapse_bound_s": bound, "stalls": stalls,
               "stalls_before": stalls_before, "longest_stall_logged_s": longest,
               "self_preservation_entered": preserved,
               "timings": {"unhealthy_after": o.unhealthy_after, "evict_after": o.evict_after,
                           "check_interval": o.check_interval}},
    }  # fmt: skip


def attacks(opts: argparse.Namespace) -> list[Attack]:
    o = opts
    return [
        Attack("H1", "reconcile on the client port", f"1 -> {o.h1_count}", h1,
               setup=_register_orders),
        Attack("H3", f"{o.h3_subs} x {o.h3_bytes // 1024} KB subscriptions on port+1",
               f"600 x 60 KB, 8 s -> {o.h3_subs} x 60 KB, {o.sub_seconds:g} s", h3_notify),
        Attack("H3", f"{o.h3_repl_subs} x 1 MiB subscriptions on port+2 (2 nodes)",
               f"8 x 1 MiB -> {o.h3_repl_subs} x 1 MiB, {o.sub_seconds:g} s", h3_replication,
               nodes=2),
        Attack("H4", f"'op':'reconcile' bodies of {o.h4_bytes / MB:g} MiB on the client port",
               f"3 -> {o.h4_count}", h4),
        Attack("M1", f"{o.m1_count} x {o.m1_bytes / MB:g} MiB frames, node busy",
               f"100 -> {o.m1_count}", m1, setup=_busy),
        Attack("M4", "3 SUBs that never read, writer churning",
               f"40 s -> {o.slow_seconds:g} s", m4),
        Attack("M2", "one-shot registrations of distinct services",
               f"60 s -> {o.junk_seconds:g} s", _junk("services")),
        Attack("M2", "service_set on distinct empty services",
               f"1M -> {o.junk_seconds:g} s", _junk("service_set")),
        Attack("M2", "registrations in distinct namespaces",
               f"500k -> {o.junk_seconds:g} s", _junk("namespaces")),
        Attack("M6", "services + stats flood",
               f"200k services -> {o.m6_services:,}", m6, setup=_many_services),
        Attack("F2", "a tenant's burst and its lapse (3 nodes)",
               f"200k -> {o.f2_instances:,}; health {o.unhealthy_after:g}/{o.evict_after:g}/"
               f"{o.check_interval:g} s", f2, nodes=3, args=f2_timings(o)),
    ]  # fmt: skip


SECURE_RUNS = {  # which attacks also run against a node with a key, and as whom
    "H1": ("stranger key", "no key", "client key"),
    "H3": ("stranger key", "no key"),
}


def run(procs: Procs, ctx: Any, opts: argparse.Namespace, say: Say, log_dir: str) -> Any:
    """Every attack: {"rows", "failed"}."""
    opts.h3_bytes, opts.h4_bytes, opts.m1_bytes = 60 * 1024, 8 * MB, 16 * MB
    only = [x.upper() for x in opts.only or () if x.lower() not in ("etcd", "zookeeper")]
    only = only or list(ATTACKS)
    unknown = [a for a in only if a not in ATTACKS]
    if unknown:
        raise ValueError(f"unknown attack {', '.join(unknown)}; choose from {', '.join(ATTACKS)}")
    keys = make_keys(log_dir)
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    shared: dict[Any, list[NodeProc]] = {}
    for attack in attacks(opts):
        if attack.id not in only:
            continue
        whos = ["plain node"]
        if opts.secure:
            whos += [w for w in SECURE_RUNS.get(attack.id, ())]
        for who in whos:
            try:
                rows.append(run_attack(attack, who, procs, ctx, opts, keys, log_dir, say, shared))
            except Exception as exc:  # report and go on with the next attack
                failed.append(f"{attack.id} {attack.name} ({who}): {type(exc).__name__}: {exc}")
                say(f"  FAILED {failed[-1]}")
    return {"rows": rows, "failed": failed}


COLUMNS: list[Column] = [
    ("attack", "attack", "{}"), ("probe -> here", "scale", "{}"),
    ("node / attacker", lambda r: r["target"] if r["target"] == "plain node" else
     f"key; {r['target']}", "{}"),
    ("sent", lambda r: r.get("sent", ""), "{}"),
    ("RSS MB before/peak/after", lambda r: "{before:.0f} / {peak:.0f} / {after:.0f}".format(
        **r["rss_mb"]), "{}"),
    ("ping p50/p99 ms (unanswered)", lambda r: f"{r['ping_ms']['p50']:.1f} / "
     f"{r['ping_ms']['p99']:.1f} ({r['pings_unanswered']})", "{}"),
    ("alive", lambda r: "yes" if r["alive"] else "NO", "{}"),
    ("answers", lambda r: r["answers"] + (f"; {r['effect']}" if r.get("effect") else ""), "{}"),
]  # fmt: skip


def report(result: dict[str, Any], say: Say) -> None:
    rows = result["rows"]
    say(table(rows, COLUMNS, right={4, 5}))
    held = [r for r in rows if r["id"] in ("M2", "M6")]
    for r in held:
        h = r["node_held"]
        n = (h["instances"] or {}).get("total")
        say(f"  {r['attack']}: the node held {h['services']} services, {n} instances (stats)")
    for r in (r for r in rows if r["id"] == "F2"):
        f = r["f2"]
        say(f"  {r['attack']}: {f['instances']:,} registered in {f['burst_s']} s "
            f"({f['per_second']:,}/s); lapse (last renew -> none on every node) "
            f"{f['lapse_s']} s; stalls per node {f['stalls']} (before {f['stalls_before']}), "
            f"longest logged {f['longest_stall_logged_s']} s; self-preservation entered "
            f"{f['self_preservation_entered']}")  # fmt: skip
    for line in result.get("failed", []):
        say(f"  failed: {line}")


SCENARIOS = (
    Scenario("attacks", run, report, "issue 10's attacks replayed: RSS, a bystander's pings, "
             "what the attacker got (with and without a key)",
             {"h1_count": (20, 2), "h3_subs": (600, 20), "h3_repl_subs": (8, 2), "h4_count": (5, 1),
              "m1_count": (100, 4), "sub_seconds": (5.0, 1.0), "slow_seconds": (20.0, 1.0),
              "junk_seconds": (10.0, 1.0), "flood_seconds": (10.0, 1.0),
              "m6_services": (20_000, 200), "ping_rate": (50.0, 50.0), "settle": (1.0, 1.0),
              "busy_rate": (20_000.0, 20_000.0), "max_attack_seconds": (60.0, 60.0),
              "f2_instances": (200_000, 2_000), "unhealthy_after": (15.0, 1.0),
              "evict_after": (30.0, 2.0), "check_interval": (5.0, 0.5)}),
)  # fmt: skip


if __name__ == "__main__":  # python -m bench.attacks
    run_alone("attacks")
