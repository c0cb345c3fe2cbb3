"""CAS-counter worker for review38 (tests/review38/r38lab.py starts it), inside a lab
namespace, with the public Client only.

Modes:
  cas     read (content int, revision) then publish content+1 with if_revision=revision,
          --count times at most, --max-seconds at most; one JSON line per op in --out.
  listen  config_listen on one node; every callback one JSON line in --out; until stdin
          says quit (or --max-seconds).
  dump    current + history of the data id on one node, one JSON line on stdout.
  ready   poll cluster() until ready and every member up (bounded), print "ready".
  init    publish "0" with if_revision=0 (retry bounded), print the revision.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time

from meshreg import Client
from meshreg.errors import ConflictError, OutcomeUnknownError, ServerError, ServerUnreachableError


def kind(exc: Exception) -> str:
    if isinstance(exc, ConflictError):
        return "conflict"
    if isinstance(exc, OutcomeUnknownError):
        return "unknown"
    if isinstance(exc, ServerError):
        if exc.code == 8:
            return (
                "nothing"
                if "nothing was written" in str(exc) and "outcome" not in str(exc)
                else "unknown"
            )
        return f"other{exc.code}"
    if isinstance(exc, ServerUnreachableError):
        return "unknown"  # no answer: may have applied
    return "exc"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("--servers", required=True)
    p.add_argument("--data-id", default="ctr")
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--max-seconds", type=float, default=40)
    p.add_argument("--out", default="")
    p.add_argument("--name", default="w")
    p.add_argument("--timeout", type=float, default=6.0)
    p.add_argument("--members", type=int, default=3)
    a = p.parse_args()
    servers = [s for s in a.servers.split(",") if s]
    c = Client(servers, timeout=a.timeout, server_order="listed", sessions=False)
    end = time.monotonic() + a.max_seconds
    try:
        if a.mode == "ready":
            while time.monotonic() < end:
                try:
                    v = c.cluster()
                    up = [
                        m for m in v.get("members", []) if m.get("state") == "up" or m.get("self")
                    ]
                    if v.get("ready") and len(up) >= a.members:
                        print("ready", flush=True)
                        return 0
                except Exception:
                    pass
                time.sleep(0.2)
            print("not-ready", flush=True)
            return 1
        if a.mode == "init":
            while time.monotonic() < end:
                try:
                    info = c.config_publish(a.data_id, "0", if_revision=0)
                    print(info.revision, flush=True)
                    return 0
                except ConflictError:
                    g = c.config_get(a.data_id)
                    print(g.revision if g else -1, flush=True)
                    return 0
                except Exception as exc:  # noqa: BLE001
                    print(f"# {exc}", file=sys.stderr)
                    time.sleep(0.3)
            return 1
        if a.mode == "dump":
            cur = c.config_get(a.data_id)
            hist = c.config_history(a.data_id, limit=5000)
            print(
                json.dumps(
                    {
                        "cur": None
                        if cur is None
                        else [cur.revision, cur.content, cur.md5, cur.deleted],
                        "hist": [[h.revision, h.content, h.md5, h.origin, h.deleted] for h in hist],
                    }
                ),
                flush=True,
            )
            return 0
        out = open(a.out, "a", encoding="utf-8")  # noqa: SIM115 (closed at the end)

        def emit(rec):
            rec["w"] = a.name
            out.write(json.dumps(rec) + "\n")
            out.flush()

        if a.mode == "listen":

            def cb(content, revision):
                emit({"k": "cb", "t": time.monotonic(), "c": content, "rev": revision})

            info = c.config_listen(a.data_id, cb)
            emit({"k": "listen", "rev": None if info is None else info.revision})
            print("ready", flush=True)
            while time.monotonic() < end:
                r, _, _ = select.select([sys.stdin.fileno()], [], [], 0.2)
                if r:
                    chunk = os.read(sys.stdin.fileno(), 100)
                    if not chunk or b"quit" in chunk:
                        break
            emit({"k": "end"})
            return 0

        def quit_asked():
            r, _, _ = select.select([sys.stdin.fileno()], [], [], 0)
            if r:
                chunk = os.read(sys.stdin.fileno(), 100)
                return not chunk or b"quit" in chunk
            return False

        if a.mode == "mix":
            import random

            rng = random.Random(hash(a.name) & 0xFFFF)
            announced = False
            for i in range(a.count):
                if time.monotonic() >= end or quit_asked():
                    break
                t0 = time.monotonic()
                try:
                    g = c.config_get(a.data_id)
                except Exception as exc:  # noqa: BLE001
                    emit({"k": "rerr", "t0": t0, "kind": kind(exc), "msg": str(exc)[:300]})
                    continue
                rev = g.revision if g else 0
                emit({"k": "read", "t0": t0, "t1": time.monotonic(), "rev": rev, "srv": c.server})
                op = rng.choice(["publish", "publish", "gray", "promote", "drop", "rollback"])
                content = f"{a.name}#{i}"
                t1 = time.monotonic()
                try:
                    if op == "publish":
                        info = c.config_publish(a.data_id, content, if_revision=rev)
                    elif op == "gray":
                        info = c.config_gray(
                            a.data_id, content, labels={"canary": "1"}, if_revision=rev
                        )
                    elif op == "promote":
                        info = c.config_promote(a.data_id, if_revision=rev)
                    elif op == "drop":
                        info = c.config_gray_drop(a.data_id, if_revision=rev)
                    else:
                        info = c.config_rollback(a.data_id, max(1, rev - 1), if_revision=rev)
                    emit(
                        {
                            "k": "ack",
                            "op": op,
                            "t0": t1,
                            "t1": time.monotonic(),
                            "from": rev,
                            "rev": info.revision,
                            "md5": info.md5,
                            "srv": c.server,
                        }
                    )
                except Exception as exc:  # noqa: BLE001
                    emit(
                        {
                            "k": "err",
                            "op": op,
                            "t0": t1,
                            "t1": time.monotonic(),
                            "from": rev,
                            "kind": kind(exc),
                            "msg": str(exc)[:300],
                        }
                    )
                if not announced:
                    print("ready", flush=True)
                    announced = True
            emit({"k": "done"})
            if not announced:
                print("ready", flush=True)
            return 0
        if a.mode == "cre":
            announced = False
            for i in range(a.count):
                if time.monotonic() >= end or quit_asked():
                    break
                t0 = time.monotonic()
                try:
                    g = c.config_get(a.data_id)
                except Exception as exc:  # noqa: BLE001
                    emit({"k": "rerr", "t0": t0, "kind": kind(exc), "msg": str(exc)[:300]})
                    continue
                emit(
                    {
                        "k": "read",
                        "t0": t0,
                        "t1": time.monotonic(),
                        "rev": g.revision if g else 0,
                        "srv": c.server,
                        "live": g is not None,
                    }
                )
                t1 = time.monotonic()
                op = "create" if g is None else "delete"
                content = f"{a.name}#{i}"
                try:
                    if g is None:
                        info = c.config_publish(a.data_id, content, if_revision=0)
                    else:
                        info = c.config_delete(a.data_id, if_revision=g.revision)
                    emit(
                        {
                            "k": "ack",
                            "op": op,
                            "t0": t1,
                            "t1": time.monotonic(),
                            "from": 0 if g is None else g.revision,
                            "rev": info.revision,
                            "md5": info.md5,
                            "c": content if op == "create" else None,
                            "srv": c.server,
                        }
                    )
                except Exception as exc:  # noqa: BLE001
                    emit(
                        {
                            "k": "err",
                            "op": op,
                            "t0": t1,
                            "t1": time.monotonic(),
                            "kind": kind(exc),
                            "msg": str(exc)[:400],
                        }
                    )
                if not announced:
                    print("ready", flush=True)
                    announced = True
            emit({"k": "done"})
            if not announced:
                print("ready", flush=True)
            return 0
        # cas
        announced = False
        for _ in range(a.count):
            if time.monotonic() >= end or quit_asked():
                break
            t0 = time.monotonic()
            try:
                g = c.config_get(a.data_id)
            except Exception as exc:  # noqa: BLE001
                emit(
                    {
                        "k": "rerr",
                        "t0": t0,
                        "t1": time.monotonic(),
                        "kind": kind(exc),
                        "msg": str(exc)[:300],
                    }
                )
                continue
            if g is None or g.deleted:
                v, rev = 0, (0 if g is None else g.revision)
            else:
                v, rev = int(g.content), g.revision
            emit(
                {
                    "k": "read",
                    "t0": t0,
                    "t1": time.monotonic(),
                    "rev": g.revision if g else 0,
                    "v": v,
                    "srv": c.server,
                }
            )
            t1 = time.monotonic()
            try:
                info = c.config_publish(a.data_id, str(v + 1), if_revision=rev)
                emit(
                    {
                        "k": "ack",
                        "t0": t1,
                        "t1": time.monotonic(),
                        "from": rev,
                        "rev": info.revision,
                        "v": v + 1,
                        "md5": info.md5,
                        "srv": c.server,
                    }
                )
            except Exception as exc:  # noqa: BLE001
                emit(
                    {
                        "k": "err",
                        "t0": t1,
                        "t1": time.monotonic(),
                        "from": rev,
                        "v": v + 1,
                        "kind": kind(exc),
                        "msg": str(exc)[:400],
                    }
                )
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
