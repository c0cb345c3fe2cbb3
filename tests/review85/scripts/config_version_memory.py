"""review85 focused run: node RSS per kept config version with tiny contents.  Publishes
--ids data ids x --versions versions (content ~10 bytes) with --threads threads through one
Client, then prints the node's RSS growth, history entries and content characters.

    python config_version_memory.py --port P --node-pid PID --ids 200 --versions 60
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import threading
import time

from meshreg import Client

logging.basicConfig(level=logging.ERROR)
ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--node-pid", type=int, required=True)
ap.add_argument("--ids", type=int, default=200)
ap.add_argument("--versions", type=int, default=60)
ap.add_argument("--threads", type=int, default=8)
ap.add_argument("--seconds", type=float, default=180)
a = ap.parse_args()


def rss_kb() -> int:
    with open(f"/proc/{a.node_pid}/status") as fh:
        return next(int(x.split()[1]) for x in fh if x.startswith("VmRSS:"))


def cfg_stats() -> dict:
    r = subprocess.run([sys.executable, "-m", "meshreg", "stats", "--json", "-s",
                        f"127.0.0.1:{a.port}"], capture_output=True, text=True)
    c = json.loads(r.stdout)["config"]
    return {k: c[k] for k in ("configs", "history_entries", "content_chars")}


c = Client([f"127.0.0.1:{a.port}"], timeout=10.0)
before, s0 = rss_kb(), cfg_stats()
deadline = time.monotonic() + a.seconds


def work(k: int) -> None:
    for v in range(a.versions):
        for i in range(k, a.ids, a.threads):
            if time.monotonic() > deadline:
                return
            c.config_publish(f"vm-{i}", f"v: {v}")


t0 = time.monotonic()
ts = [threading.Thread(target=work, args=(k,)) for k in range(a.threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
after, s1 = rss_kb(), cfg_stats()
n = s1["history_entries"] - s0["history_entries"]
print(f"{time.monotonic() - t0:.1f}s: node RSS {before / 1024:.1f} -> {after / 1024:.1f} MB "
      f"(+{(after - before) / 1024:.1f} MB) for +{n} versions held, "
      f"+{s1['content_chars'] - s0['content_chars']} content chars: "
      f"{(after - before) * 1024 / max(n, 1):.0f} bytes of RSS per version; stats {s1}")
c.close()
