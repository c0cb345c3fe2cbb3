"""review85 focused run: Client objects made and closed in one process, again and again,
against SERVERS; prints this process's RSS, fds, threads, live gc objects and the top
tracemalloc growth every --report clients.  Bounded by --count and --seconds.

    python client_churn.py --servers 127.0.0.1:P --count 3000 --seconds 240 \
        [--mode ping|register|subscribe|listen] [--node-pid PID]
"""
from __future__ import annotations

import argparse
import collections
import gc
import logging
import os
import random
import time
import tracemalloc

from meshreg import Client

logging.basicConfig(level=logging.ERROR)
ap = argparse.ArgumentParser()
ap.add_argument("--servers", required=True)
ap.add_argument("--count", type=int, default=2000)
ap.add_argument("--seconds", type=float, default=240)
ap.add_argument("--mode", default="ping")
ap.add_argument("--report", type=int, default=250)
ap.add_argument("--node-pid", type=int, default=0)
ap.add_argument("--trace", action="store_true")
a = ap.parse_args()


def proc(pid: int) -> str:
    rss = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return (f"rss={rss / 1024:.1f}MB fds={len(os.listdir(f'/proc/{pid}/fd'))} "
            f"threads={len(os.listdir(f'/proc/{pid}/task'))}")


def types() -> collections.Counter[str]:
    return collections.Counter(type(o).__name__ for o in gc.get_objects())


if a.trace:
    tracemalloc.start(10)
base_types = None
snap0 = None
t0 = time.monotonic()
for i in range(1, a.count + 1):
    if time.monotonic() - t0 > a.seconds:
        print("time bound reached at", i)
        break
    c = Client(a.servers, timeout=3.0, handle_sigterm=False)
    if a.mode == "ping":
        c.ping()
    elif a.mode == "register":
        c.register(f"churn-{i % 50}", "10.9.9.9", 1000 + i % 60000)
    elif a.mode == "subscribe":
        c.subscribe(f"churn-{i % 50}", lambda xs: None)
    elif a.mode == "listen":
        c.config_listen(f"churn-{i % 50}", lambda content, rev: None)
    elif a.mode == "instances":
        c.instances(f"churn-{random.randrange(1000)}")
    c.close()
    del c
    if i == a.report:
        gc.collect()
        base_types = types()
        if a.trace:
            snap0 = tracemalloc.take_snapshot()
    if i % a.report == 0:
        gc.collect()
        line = f"{i} t={time.monotonic() - t0:.0f}s self: {proc(os.getpid())} objs={len(gc.get_objects())}"
        if a.node_pid:
            line += f" | node: {proc(a.node_pid)}"
        print(line, flush=True)
gc.collect()
if base_types is not None:
    grew = types() - base_types
    print("object types grown since the first report:", grew.most_common(15))
if snap0 is not None:
    for st in tracemalloc.take_snapshot().compare_to(snap0, "lineno")[:12]:
        print(st)
