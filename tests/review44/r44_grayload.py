"""review44's gray-release load (runs in a namespace; the public Client).

``writer``: one client cycling publish, gray, promote, gray, gray-drop, rollback, delete
(no CAS) for ``--seconds``; one JSON line per write: {"op", "ok", "rev", "content",
"deleted", "err", "t0", "t1"}.  ``reader``: reads every 20 ms, one line per answer
{"rev", "content", "deleted", "t"} or {"err"}; ``--labels gray=1`` reads as a gray client.
Stops at ``--seconds`` or when ``<out>.stop`` exists.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time

from meshreg import Client


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("--servers", required=True)
    p.add_argument("--data-id", required=True)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--out", required=True)
    p.add_argument("--labels", default="")
    a = p.parse_args()
    labels = dict(kv.split("=", 1) for kv in a.labels.split(",") if kv)
    c = Client(a.servers.split(","), timeout=6.0, sessions=False, labels=labels or None)
    out = open(a.out, "a", encoding="utf-8")  # noqa: SIM115
    end = time.monotonic() + a.seconds
    d = a.data_id

    def stop() -> bool:
        return time.monotonic() >= end or os.path.exists(a.out + ".stop")

    try:
        if a.mode == "reader":
            while not stop():
                try:
                    i = c.config_get(d)
                    rec = (
                        {"rev": i.revision, "content": i.content, "deleted": i.deleted}
                        if i is not None
                        else {"absent": True}
                    )
                except Exception as exc:  # noqa: BLE001
                    rec = {"err": type(exc).__name__}
                rec["t"] = time.monotonic()
                out.write(json.dumps(rec) + "\n")
                out.flush()
                time.sleep(0.02)
            return 0
        published: list[int] = []
        ops = itertools.cycle(["publish", "gray", "promote", "gray", "drop", "rollback",
                               "publish", "delete"])  # fmt: skip
        for n in itertools.count(1):
            if stop():
                break
            op = next(ops)
            t0 = time.monotonic()
            rec = {"op": op, "n": n}
            try:
                if op == "publish":
                    i = c.config_publish(d, f"p{n}")
                elif op == "gray":
                    i = c.config_gray(d, f"g{n}", labels={"gray": "1"})
                elif op == "promote":
                    i = c.config_promote(d)
                elif op == "drop":
                    i = c.config_gray_drop(d)
                elif op == "rollback":
                    target = published[-2] if len(published) > 1 else published[-1]
                    rec["target"] = target
                    i = c.config_rollback(d, target)
                else:
                    i = c.config_delete(d)
                rec.update(ok=True, rev=i.revision, content=i.content, deleted=i.deleted)
                if op == "publish":
                    published.append(i.revision)
            except Exception as exc:  # noqa: BLE001
                rec.update(ok=False, err=type(exc).__name__, msg=str(exc)[:200])
            rec.update(t0=t0, t1=time.monotonic())
            out.write(json.dumps(rec) + "\n")
            out.flush()
            if not rec["ok"]:
                time.sleep(0.1)
    finally:
        out.close()
        c.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
