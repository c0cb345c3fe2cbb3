"""review85: print the sampler's JSON lines as compact tables (one per node).

    python analyze.py SAMPLES.jsonl [extra.dotted.stat ...]
"""
from __future__ import annotations

import json
import sys

DEFAULT = ["services", "usage.services", "usage.empty_services", "usage.instances",
           "usage.tombstones", "sessions.count", "sessions.instances", "subscribers",
           "watched_services", "client_instances_held", "config.configs", "config.tombstones",
           "config.history_entries", "config.subscribers", "notifications_held",
           "replies.waiting", "instance_lists.kept", "instance_lists.packed_bytes"]


def get(d, path):
    for p in path.split("."):
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


rows = [json.loads(line) for line in open(sys.argv[1])]
keys = DEFAULT + sys.argv[2:]
ports = list(rows[0]["nodes"])
for port in ports:
    print(f"== node {port}")
    hdr = ["t", "rss_MB", "fds", "thr", "cpu_s", "db_KB", "wal_KB", "rs_wal_KB", "ping50", "cfg50",
           "fresh50"] + [k.split(".")[-1][:10] for k in keys]
    print(" ".join(f"{h:>10}" for h in hdr))
    for r in rows:
        n = r["nodes"][port]
        pr, f = n["proc"], n["files"]
        vals = [r["t"], round(pr.get("rss_kb", 0) / 1024, 1), pr.get("fds"), pr.get("threads"),
                round(pr.get("cpu_s", 0), 1), f.get("configs.sqlite3", 0) // 1024,
                f.get("configs.sqlite3-wal", 0) // 1024,
                f.get("registry-state.sqlite3-wal", 0) // 1024,
                n["ping"]["p50_ms"], n["config_get"]["p50_ms"], n["fresh_instances"]["p50_ms"]]
        vals += [get(n["stats"], k) for k in keys]
        print(" ".join(f"{str(v):>10}" for v in vals))
print("== loadgen / sampler")
for r in rows:
    print(r["t"], r.get("loadgen"), r.get("sampler"))
