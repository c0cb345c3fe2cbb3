"""review85: the REPORT's table: each node's figures at the given sample times.
    python table.py SAMPLES.jsonl 0,630,1290"""
from __future__ import annotations

import json
import sys

rows = {r["t"]: r for r in map(json.loads, open(sys.argv[1]))}
times = [float(x) for x in sys.argv[2].split(",")]
cols = ["node", "t (s)", "RSS MB", "fds", "threads", "cpu s", "configs.sqlite3 KB", "-wal KB",
        "registry-state -wal KB", "ping p50 ms", "config_get p50 ms", "services", "instances",
        "reg. tombstones", "sessions", "subscribers", "configs", "cfg tombstones",
        "history entries", "cfg subscribers"]
print("| " + " | ".join(cols) + " |")
print("|" + "---|" * len(cols))
for port in rows[times[0]]["nodes"]:
    for t in times:
        n = rows[t]["nodes"][port]
        p, f, s = n["proc"], n["files"], n["stats"]
        vals = [port, int(t), f"{p['rss_kb'] / 1024:.1f}", p["fds"], p["threads"], f"{p['cpu_s']:.0f}",
                f.get("configs.sqlite3", 0) // 1024, f.get("configs.sqlite3-wal", 0) // 1024,
                f.get("registry-state.sqlite3-wal", 0) // 1024, n["ping"]["p50_ms"],
                n["config_get"]["p50_ms"], s["services"], s["instances"]["total"],
                s["usage"]["tombstones"], s["sessions"]["count"], s["subscribers"],
                s["config"]["configs"], s["config"]["tombstones"], s["config"]["history_entries"],
                s["config"]["subscribers"]]
        print("| " + " | ".join(str(v) for v in vals) + " |")
lg = [(t, rows[t].get("loadgen", {})) for t in times]
print()
print("| load generator t (s) | RSS MB | fds | threads |")
print("|---|---|---|---|")
for t, p in lg:
    if "rss_kb" in p:
        print(f"| {int(t)} | {p['rss_kb'] / 1024:.1f} | {p['fds']} | {p['threads']} |")
