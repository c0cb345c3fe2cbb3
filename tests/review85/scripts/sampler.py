"""review85 sampler: every --every s, for each node and the load generator process:
RSS, fds, threads; each node's data-dir file sizes and `meshreg stats --json` (the CLI);
read latency (ping and config_get through a long-lived client per node, 20 each; an
instances() of stable-svc through a fresh client).  One JSON line per sample.

    python sampler.py --cluster WORKDIR/cluster.json --loadgen-pid PID --minutes 23 --out F
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time

from meshreg import Client

logging.basicConfig(level=logging.ERROR)
ap = argparse.ArgumentParser()
ap.add_argument("--cluster", required=True)
ap.add_argument("--loadgen-pid", type=int, default=0)
ap.add_argument("--minutes", type=float, default=23.0)
ap.add_argument("--every", type=float, default=30.0)
ap.add_argument("--out", required=True)
args = ap.parse_args()
cluster = json.load(open(args.cluster))


def proc(pid: int) -> dict:
    try:
        rss = 0
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        thr = len(os.listdir(f"/proc/{pid}/task"))
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        cpu = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        return {"rss_kb": rss, "fds": fds, "threads": thr, "cpu_s": cpu}
    except (FileNotFoundError, ProcessLookupError):
        return {"gone": True}


def dir_sizes(d: str) -> dict:
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            try:
                out[os.path.relpath(p, d)] = os.path.getsize(p)
            except OSError:
                pass
    return out


def stats(addr: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "meshreg", "stats", "--json", "-s", addr,
                        "--timeout", "5"], capture_output=True, text=True)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {"error": r.stderr[-300:]}


def timed(fn, n: int) -> dict:
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        try:
            fn()
        except Exception:  # noqa: BLE001
            xs.append(float("nan"))
            continue
        xs.append((time.perf_counter() - t) * 1000)
    ok = sorted(x for x in xs if x == x)
    return {"p50_ms": round(statistics.median(ok), 3) if ok else None,
            "max_ms": round(ok[-1], 3) if ok else None, "fail": len(xs) - len(ok)}


clients = {n["port"]: Client([f"127.0.0.1:{n['port']}"], timeout=3.0) for n in cluster["nodes"]}
deadline = time.monotonic() + args.minutes * 60
t0 = time.monotonic()
with open(args.out, "a") as out:
    for _ in range(10_000):
        if time.monotonic() >= deadline:
            break
        row = {"t": round(time.monotonic() - t0, 1), "wall": time.time(), "nodes": {}}
        for n in cluster["nodes"]:
            addr = f"127.0.0.1:{n['port']}"
            c = clients[n["port"]]
            lat_ping = timed(c.ping, 20)
            lat_cfg = timed(lambda: c.config_get("stable-cfg"), 20)

            def fresh() -> None:
                with Client([addr], timeout=3.0, handle_sigterm=False) as f:
                    f.instances("stable-svc")

            lat_fresh = timed(fresh, 3)
            row["nodes"][n["port"]] = {"proc": proc(n["pid"]), "files": dir_sizes(n["data_dir"]),
                                       "stats": stats(addr), "ping": lat_ping,
                                       "config_get": lat_cfg, "fresh_instances": lat_fresh}
        if args.loadgen_pid:
            row["loadgen"] = proc(args.loadgen_pid)
        row["sampler"] = proc(os.getpid())
        out.write(json.dumps(row) + "\n")
        out.flush()
        time.sleep(max(0.0, args.every - (time.monotonic() - t0) % args.every))
for c in clients.values():
    c.close()
