"""Start / stop the 3-node soak cluster on 127.0.0.1 (review85).

    python cluster.py start WORKDIR [--base PORT]   # writes WORKDIR/cluster.json
    python cluster.py stop WORKDIR                  # SIGTERM, then SIGKILL, by pid
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

TIMINGS = ["--check-interval", "0.2", "--unhealthy-after", "2", "--evict-after", "4",
           "--peer-timeout", "1.0"]
NODE_TOML = """\
[config]
keep_revisions = 3      # small retention: history must stay <= 3 past revisions per id
keep_days = 0.005       # 432 s: deleted data ids and old history purged within the run
"""


def free_block(base: int, n: int = 3, span: int = 10) -> list[int]:
    for start in range(base, base + 2000, 50):
        ports = [start + k * span for k in range(n)]
        ok = True
        for p in ports:
            for q in range(p, p + 4):
                with socket.socket() as s:
                    try:
                        s.bind(("127.0.0.1", q))
                    except OSError:
                        ok = False
        if ok:
            return ports
    raise SystemExit("no free ports")


def start(workdir: str, base: int) -> None:
    os.makedirs(workdir, exist_ok=True)
    ports = free_block(base)
    conf = os.path.join(workdir, "node.toml")
    with open(conf, "w") as fh:
        fh.write(NODE_TOML)
    peers: list[str] = []
    for p in ports:
        peers += ["--peer", f"127.0.0.1:{p}"]
    nodes = []
    traced = os.environ.get("R85_TRACED") == "1"  # the first node under tracemalloc
    here = os.path.dirname(os.path.abspath(__file__))
    for k, p in enumerate(ports):
        ddir = os.path.join(workdir, f"data-{p}")
        log = open(os.path.join(workdir, f"node-{p}.log"), "w")
        head = ([sys.executable, os.path.join(here, "traced_node.py")] if traced and k == 0
                else [sys.executable, "-m", "meshreg", "node"])
        proc = subprocess.Popen(
            [*head, "--host", "127.0.0.1", "--port", str(p),
             "--config", conf, "--data-dir", ddir, *TIMINGS, *peers],
            stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True)
        nodes.append({"port": p, "pid": proc.pid, "data_dir": ddir})
    with open(os.path.join(workdir, "cluster.json"), "w") as fh:
        json.dump({"nodes": nodes, "servers": [f"127.0.0.1:{p}" for p in ports]}, fh)
    deadline = time.monotonic() + 30
    from meshreg import Client
    for p in ports:
        while time.monotonic() < deadline:
            r = subprocess.run([sys.executable, "-m", "meshreg", "ping", "--ready", "-s",
                                f"127.0.0.1:{p}", "--timeout", "1"], capture_output=True)
            if r.returncode == 0:
                break
            time.sleep(0.3)  # (the poll's interval; the loop is bounded by the deadline)
        else:
            raise SystemExit(f"node 127.0.0.1:{p} not ready within 30 s: see its log in {workdir}")
    print(json.dumps(nodes))


def stop(workdir: str) -> None:
    with open(os.path.join(workdir, "cluster.json")) as fh:
        nodes = json.load(fh)["nodes"]
    for n in nodes:
        try:
            os.kill(n["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    for n in nodes:
        while time.monotonic() < deadline:
            try:
                os.kill(n["pid"], 0)
                with open(f"/proc/{n['pid']}/stat") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
            except (ProcessLookupError, FileNotFoundError):
                break
            time.sleep(0.1)
        else:
            try:
                os.kill(n["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    cmd, wd = sys.argv[1], sys.argv[2]
    base = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--base" else 21000
    start(wd, base) if cmd == "start" else stop(wd)
