"""An interactive public Client for review44 (runs in a namespace): review38's r38_repl.py
with rollback and the gray release writes.

stdin, one command a line: ``get``, ``publish CONTENT [IF_REVISION]``, ``delete
[IF_REVISION]``, ``rollback REV [IF_REVISION]``, ``gray CONTENT [IF_REVISION]`` (labels
``gray=1``), ``promote [IF_REVISION]``, ``drop [IF_REVISION]``, ``history``, ``stats`` (the server's
config ``history_entries``), ``quit``.
stdout, one JSON line per command: {"ok": true, "rev", "content", "deleted", "gray",
"server", "t"} or {"ok": false, "absent": true} or {"ok": false, "error", "reason", "msg"}.
``t``: the seconds the call took.  Prints {"ready": true} first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from meshreg import Client


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--servers", required=True)
    p.add_argument("--data-id", required=True)
    p.add_argument("--timeout", type=float, default=8.0)
    p.add_argument("--labels", default="")
    a = p.parse_args()
    labels = dict(kv.split("=", 1) for kv in a.labels.split(",") if kv)
    kw = {"labels": labels} if labels else {}
    c = Client(a.servers.split(","), timeout=a.timeout, server_order="listed", sessions=False, **kw)
    print(json.dumps({"ready": True}), flush=True)
    d = a.data_id
    try:
        for line in sys.stdin:
            words = line.split()
            if not words or words[0] == "quit":
                break
            t0 = time.monotonic()

            def rev(i: int, words: list[str] = words) -> int | None:
                return int(words[i]) if len(words) > i else None

            try:
                w = words[0]
                if w == "get":
                    info = c.config_get(d)
                elif w == "publish":
                    info = c.config_publish(d, words[1], if_revision=rev(2))
                elif w == "delete":
                    info = c.config_delete(d, if_revision=rev(1))
                elif w == "rollback":
                    info = c.config_rollback(d, int(words[1]), if_revision=rev(2))
                elif w == "gray":
                    info = c.config_gray(d, words[1], labels={"gray": "1"}, if_revision=rev(2))
                elif w == "promote":
                    info = c.config_promote(d, if_revision=rev(1))
                elif w == "drop":
                    info = c.config_gray_drop(d, if_revision=rev(1))
                elif w == "stats":  # the config store's history rows on the server
                    s = c.stats().get("config", {})
                    out = {"ok": True, "history_entries": s.get("history_entries"),
                           "server": c.server}  # fmt: skip
                    print(json.dumps(out), flush=True)
                    continue
                elif w == "history":
                    infos = c.config_history(d)
                    out = {
                        "ok": True,
                        "revs": [[i.revision, i.content, i.deleted] for i in infos],
                        "server": c.server,
                    }
                    print(json.dumps(out), flush=True)
                    continue
                else:
                    raise ValueError(f"unknown command {w!r}")
                if info is None:
                    out = {"ok": False, "absent": True, "server": c.server}
                else:
                    out = {
                        "ok": True,
                        "rev": info.revision,
                        "content": info.content,
                        "deleted": info.deleted,
                        "gray": getattr(getattr(info, "gray", None), "content", None),
                        "server": c.server,
                    }
            except Exception as exc:  # noqa: BLE001
                out = {
                    "ok": False,
                    "error": type(exc).__name__,
                    "reason": getattr(exc, "reason", None),
                    "msg": str(exc)[:400],
                }
            out["t"] = round(time.monotonic() - t0, 3)
            print(json.dumps(out), flush=True)
    finally:
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
