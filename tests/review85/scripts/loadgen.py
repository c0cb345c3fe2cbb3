"""review85 soak load generator: churn of providers, consumers, configs, connections
against a 3-node cluster, through the public Client only.  Every loop is bounded by a
count and by --minutes.  Writes a JSON line of counters to --out every 10 s.

    python loadgen.py --cluster WORKDIR/cluster.json --minutes 22 --out WORKDIR/loadgen.jsonl
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time

from meshreg import Client

logging.basicConfig(level=logging.ERROR)
HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--cluster", required=True)
ap.add_argument("--minutes", type=float, default=22.0)
ap.add_argument("--out", required=True)
ap.add_argument("--scale", type=float, default=1.0, help="rate multiplier")
ap.add_argument("--only", default="", help="comma list of loops to run (default all)")
args = ap.parse_args()
SERVERS = json.load(open(args.cluster))["servers"]
T0 = time.monotonic()
DEADLINE = T0 + args.minutes * 60
STOP = threading.Event()
counts: collections.Counter[str] = collections.Counter()
errors: collections.Counter[str] = collections.Counter()
lock = threading.Lock()


def count(k: str, n: int = 1) -> None:
    with lock:
        counts[k] += n


def err(where: str, exc: BaseException) -> None:
    with lock:
        errors[f"{where}:{type(exc).__name__}"] += 1


def alive() -> bool:
    return not STOP.is_set() and time.monotonic() < DEADLINE


def pace(seconds: float) -> None:
    STOP.wait(seconds / args.scale)


def gen(period: float) -> int:
    return int((time.monotonic() - T0) // period)


def active_services() -> list[str]:  # rolling window: a new generation every 10 s, 5 alive
    g = gen(10.0)
    return [f"svc-{x}-{i}" for x in range(max(0, g - 4), g + 1) for i in range(4)]


def active_ids() -> list[str]:  # config data ids: a generation every 15 s, 3 alive
    g = gen(15.0)
    return [f"cfg-{x}-{i}" for x in range(max(0, g - 2), g + 1) for i in range(10)]


def rand_ip() -> str:
    return f"10.{random.randrange(200)}.{random.randrange(250)}.{random.randrange(1, 250)}"


def safe_close(c: Client, where: str) -> None:
    try:
        c.close()
        count(f"{where}_closed")
    except Exception as exc:  # noqa: BLE001
        err(f"{where}_close", exc)


# -- loops ---------------------------------------------------------------------------------
def providers_inproc() -> None:
    """Session clients in this process registering 3 instances each; at most 8 live;
    the oldest closed cleanly (30%: one deregistered first)."""
    live: collections.deque[tuple[Client, str, list[tuple[str, int]]]] = collections.deque()
    for _ in range(100_000):
        if not alive():
            break
        try:
            c = Client(SERVERS, timeout=3.0, handle_sigterm=False)
            svc = random.choice(active_services()[-8:])
            addrs = [(rand_ip(), random.randrange(1024, 60000)) for _ in range(3)]
            for ip, port in addrs:
                c.register(svc, ip, port, metadata={"kind": "inproc"})
            count("inproc_registered", 3)
            live.append((c, svc, addrs))
        except Exception as exc:  # noqa: BLE001
            err("inproc_register", exc)
        while len(live) > 8:
            c, svc, addrs = live.popleft()
            if random.random() < 0.3:
                try:
                    c.deregister(svc, *addrs[0])
                    count("inproc_deregistered")
                except Exception as exc:  # noqa: BLE001
                    err("inproc_deregister", exc)
            safe_close(c, "inproc")
        pace(0.5)
    for c, _, _ in live:
        safe_close(c, "inproc")


def providers_killed() -> None:
    """Child processes that register 3 instances; most SIGKILLed after 2-5 s (their
    instances lapse and are evicted), 25% SIGTERMed (clean close, exit 143)."""
    kids: list[tuple[subprocess.Popen[bytes], float]] = []
    for _ in range(10_000):
        if not alive():
            break
        now = time.monotonic()
        for p, t in list(kids):
            if now >= t:
                if random.random() < 0.25:
                    p.send_signal(signal.SIGTERM)
                    count("kids_termed")
                else:
                    p.kill()
                    count("kids_killed")
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
                kids.remove((p, t))
        if len(kids) < 4:
            svc = random.choice(active_services()[-8:])
            p = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "provider_child.py"), "--servers",
                 ",".join(SERVERS), "--service", svc, "--n", "3"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            kids.append((p, time.monotonic() + random.uniform(3.0, 6.0)))
            count("kids_started")
        pace(0.8)
    for p, _ in kids:
        p.kill()
        p.wait(5)


def consumers_short() -> None:
    """New Client each 0.5 s: subscribe to 2 live services, read a third, unsubscribe one,
    closed after 1-3 s; at most 6 live."""
    live: collections.deque[tuple[Client, float]] = collections.deque()
    for _ in range(100_000):
        if not alive():
            break
        try:
            c = Client(SERVERS, timeout=3.0, handle_sigterm=False)
            names = random.sample(active_services(), 3)
            for n in names[:2]:
                c.subscribe(n, lambda xs: count("consumer_pushes"))
            c.instances(names[2])
            c.unsubscribe(names[0])
            count("consumer_subscribes", 2)
            live.append((c, time.monotonic() + random.uniform(1.0, 3.0)))
        except Exception as exc:  # noqa: BLE001
            err("consumer", exc)
        while live and (len(live) > 6 or live[0][1] < time.monotonic()):
            safe_close(live.popleft()[0], "consumer")
        pace(0.5)
    for c, _ in live:
        safe_close(c, "consumer")


def consumer_long() -> None:
    """One long-lived client following the rolling window: subscribes to new names,
    unsubscribes expired ones, reads instances() of each live name."""
    c = Client(SERVERS, timeout=3.0, handle_sigterm=False)
    subscribed: set[str] = set()
    cb = lambda xs: count("long_pushes")  # noqa: E731
    for _ in range(100_000):
        if not alive():
            break
        try:
            want = set(active_services())
            for n in want - subscribed:
                c.subscribe(n, cb)
                count("long_subscribes")
            for n in subscribed - want:
                c.unsubscribe(n, cb)
                count("long_unsubscribes")
            subscribed = want
            for n in random.sample(sorted(want), min(5, len(want))):
                c.instances(n, healthy_only=False)
                count("long_reads")
        except Exception as exc:  # noqa: BLE001
            err("long_consumer", exc)
        pace(1.0)
    safe_close(c, "long")


def config_writer() -> None:
    """Publishes to the rolling window of data ids (~30/s at scale 1), deletes the ids of
    the generation that fell out of the window."""
    c = Client(SERVERS, timeout=5.0, handle_sigterm=False)
    last: set[str] = set()
    for i in range(1_000_000):
        if not alive():
            break
        ids = active_ids()
        cur = set(ids)
        for gone in sorted(last - cur):
            try:
                c.config_delete(gone)
                count("cfg_deleted")
            except Exception as exc:  # noqa: BLE001
                err("cfg_delete", exc)
        last = cur
        try:
            d = random.choice(ids)
            c.config_publish(d, f"k: {i}\npad: {'x' * random.randrange(50, 400)}\n", type="yaml")
            count("cfg_published")
        except Exception as exc:  # noqa: BLE001
            err("cfg_publish", exc)
        pace(0.033)
    safe_close(c, "cfg_writer")


def config_listeners() -> None:
    """A long-lived client listening to the live ids (listen new, unlisten expired), and a
    short-lived client per second that listens to 2 ids, reads one, and closes."""
    c = Client(SERVERS, timeout=3.0, handle_sigterm=False)
    listening: set[str] = set()
    cb = lambda content, rev: count("cfg_long_pushes")  # noqa: E731
    short: collections.deque[tuple[Client, float]] = collections.deque()
    for _ in range(100_000):
        if not alive():
            break
        try:
            want = set(active_ids())
            for d in want - listening:
                c.config_listen(d, cb)
                count("cfg_listens")
            for d in listening - want:
                c.config_unlisten(d, cb)
                count("cfg_unlistens")
            listening = want
        except Exception as exc:  # noqa: BLE001
            err("cfg_long_listen", exc)
        try:
            s = Client(SERVERS, timeout=3.0, handle_sigterm=False)
            ids = random.sample(active_ids(), 3)
            for d in ids[:2]:
                s.config_listen(d, lambda content, rev: count("cfg_short_pushes"))
            s.config_get(ids[2])
            short.append((s, time.monotonic() + random.uniform(0.5, 2.0)))
            count("cfg_short_clients")
        except Exception as exc:  # noqa: BLE001
            err("cfg_short", exc)
        while short and (len(short) > 4 or short[0][1] < time.monotonic()):
            safe_close(short.popleft()[0], "cfg_short")
        pace(1.0)
    for s, _ in short:
        safe_close(s, "cfg_short")
    safe_close(c, "cfg_long")


def connection_churn() -> None:
    """Connect, one call, close: ~6/s, to one random node each."""
    for i in range(1_000_000):
        if not alive():
            break
        try:
            c = Client([random.choice(SERVERS)], timeout=2.0, handle_sigterm=False)
            if i % 2:
                c.ping()
            else:
                c.config_get(random.choice(active_ids()))
            count("churn_calls")
            safe_close(c, "churn")
        except Exception as exc:  # noqa: BLE001
            err("churn", exc)
        pace(0.15)


def stable() -> None:
    """The steady working set: one provider holding 'stable-svc' (4 instances) all along,
    and a config 'stable-cfg' published once."""
    c = Client(SERVERS, timeout=3.0, handle_sigterm=False)
    for k in range(4):
        c.register("stable-svc", "10.250.0.1", 9000 + k)
    c.config_publish("stable-cfg", "stable: true\n")
    STOP.wait(max(0.0, DEADLINE - time.monotonic()))
    safe_close(c, "stable")


LOOPS = {f.__name__: f for f in (providers_inproc, providers_killed, consumers_short,
                                  consumer_long, config_writer, config_listeners,
                                  connection_churn, stable)}


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *a: STOP.set())
    only = [x for x in args.only.split(",") if x] or list(LOOPS)
    threads = [threading.Thread(target=LOOPS[n], name=n, daemon=True) for n in only]
    for t in threads:
        t.start()
    with open(args.out, "a") as out:
        for _ in range(100_000):
            if not alive():
                break
            STOP.wait(10)
            with lock:
                row = {"t": round(time.monotonic() - T0, 1), "counts": dict(counts),
                       "errors": dict(errors)}
            out.write(json.dumps(row) + "\n")
            out.flush()
    STOP.set()
    for t in threads:
        t.join(30)
    with lock:
        print(json.dumps({"counts": dict(counts), "errors": dict(errors)}))


main()
