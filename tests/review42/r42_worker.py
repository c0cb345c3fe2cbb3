"""review42: a plain-publish writer (no if_revision) that also reads with the client's floor.

pub: loop "get, publish NAME#i" (unconditional), --count times at most, --max-seconds at
most, until stdin says quit; one JSON line per op in --out (as r38_worker.py: k read / ack /
err / rerr).  The Client keeps its floor per data id, so a read never going backwards is
the client's own guarantee (docs/CONFIG.md, "Never backwards").
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "review38"))
from r38_worker import kind  # noqa: E402

from meshreg import Client  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("--servers", required=True)
    p.add_argument("--data-id", default="pub")
    p.add_argument("--count", type=int, default=100000)
    p.add_argument("--max-seconds", type=float, default=60)
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="p")
    p.add_argument("--timeout", type=float, default=6.0)
    a = p.parse_args()
    c = Client([s for s in a.servers.split(",") if s], timeout=a.timeout,
               server_order="listed", sessions=False)  # fmt: skip
    end = time.monotonic() + a.max_seconds
    out = open(a.out, "a", encoding="utf-8")  # noqa: SIM115

    def emit(rec: dict) -> None:
        rec["w"] = a.name
        out.write(json.dumps(rec) + "\n")
        out.flush()

    def quit_asked() -> bool:
        r, _, _ = select.select([sys.stdin.fileno()], [], [], 0)
        if r:
            chunk = os.read(sys.stdin.fileno(), 100)
            return not chunk or b"quit" in chunk
        return False

    announced = False
    try:
        for i in range(a.count):
            if time.monotonic() >= end or quit_asked():
                break
            t0 = time.monotonic()
            try:
                g = c.config_get(a.data_id)
                emit({"k": "read", "t0": t0, "t1": time.monotonic(),
                      "rev": g.revision if g else 0, "srv": c.server})  # fmt: skip
            except Exception as exc:  # noqa: BLE001
                emit({"k": "rerr", "t0": t0, "kind": kind(exc), "msg": str(exc)[:300]})
            content = f"{a.name}#{i}"
            t1 = time.monotonic()
            try:
                info = c.config_publish(a.data_id, content)
                emit({"k": "ack", "t0": t1, "t1": time.monotonic(), "rev": info.revision,
                      "md5": info.md5, "c": content, "srv": c.server})  # fmt: skip
            except Exception as exc:  # noqa: BLE001
                emit({"k": "err", "t0": t1, "t1": time.monotonic(), "c": content,
                      "kind": kind(exc), "msg": str(exc)[:400]})  # fmt: skip
            if not announced:
                print("ready", flush=True)
                announced = True
        emit({"k": "done"})
        if not announced:
            print("ready", flush=True)
        return 0
    finally:
        c.close()


if __name__ == "__main__":
    sys.exit(main())
