"""review85 focused run: ONE long-lived Client that churns names: subscribe/unsubscribe
(--mode sub), instances() reads (--mode read), config publish+delete (--mode cfg),
config_listen/unlisten (--mode listen), register/deregister (--mode reg) of ever-new
names.  Prints this process's RSS, live gc objects and the object types that grew;
with --trace, tracemalloc's top growth.  Bounded by --count and --seconds.

    python longlived_churn.py --servers 127.0.0.1:P --mode sub --count 3000 --seconds 120
"""
from __future__ import annotations

import argparse
import collections
import gc
import logging
import os
import time
import tracemalloc

from meshreg import Client

logging.basicConfig(level=logging.ERROR)
ap = argparse.ArgumentParser()
ap.add_argument("--servers", required=True)
ap.add_argument("--count", type=int, default=3000)
ap.add_argument("--seconds", type=float, default=120)
ap.add_argument("--mode", default="sub")
ap.add_argument("--report", type=int, default=500)
ap.add_argument("--trace", action="store_true")
ap.add_argument("--node-pid", type=int, default=0)
a = ap.parse_args()


def rss(pid: int) -> str:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return f"{int(line.split()[1]) / 1024:.1f}MB"
    return "?"


def types() -> collections.Counter[str]:
    return collections.Counter(type(o).__name__ for o in gc.get_objects())


if a.trace:
    tracemalloc.start(8)
c = Client(a.servers, timeout=5.0, handle_sigterm=False)
cb = lambda *x: None  # noqa: E731
base = snap = None
t0 = time.monotonic()
for i in range(1, a.count + 1):
    if time.monotonic() - t0 > a.seconds:
        print("time bound reached at", i)
        break
    name = f"ll-{a.mode}-{i}"
    if a.mode == "sub":
        c.subscribe(name, cb)
        c.unsubscribe(name, cb)
    elif a.mode == "read":
        c.instances(name)
    elif a.mode == "cfg":
        c.config_publish(name, f"v: {i}\n")
        c.config_publish(name, f"v: {i + 1}\n")
        c.config_delete(name)
    elif a.mode == "listen":
        c.config_listen(name, cb)
        c.config_unlisten(name, cb)
    elif a.mode == "reg":
        c.register(name, "10.8.8.8", 80)
        c.deregister(name, "10.8.8.8", 80)
    elif a.mode == "get":
        c.config_get(name)
    if i == a.report:
        gc.collect()
        base = types()
        if a.trace:
            snap = tracemalloc.take_snapshot()
    if i % a.report == 0:
        gc.collect()
        line = (f"{i} t={time.monotonic() - t0:.0f}s rss={rss(os.getpid())} "
                f"objs={len(gc.get_objects())} threads={len(os.listdir('/proc/self/task'))} "
                f"fds={len(os.listdir('/proc/self/fd'))}")
        if a.node_pid:
            line += f" | node rss={rss(a.node_pid)}"
        print(line, flush=True)
gc.collect()
if base is not None:
    print("grown since first report:", (types() - base).most_common(12))
if snap is not None:
    for st in tracemalloc.take_snapshot().compare_to(snap, "lineno")[:10]:
        print(st)
c.close()
