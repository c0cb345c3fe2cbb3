"""An interactive public Client for review38's step-by-step tests (runs in a namespace).

stdin, one command a line: ``get``, ``publish CONTENT [IF_REVISION]``, ``delete``,
``history``, ``list`` (answer {"ok": true, "revs": [...]}), ``quit``.  stdout, one JSON
line per command: {"ok": true, "rev", "content", "deleted",
"server"} or {"ok": false, "absent": true} (config_get's default), or {"ok": false,
"error": class name, "msg"}.  Prints {"ready": true} first.
"""

from __future__ import annotations

import argparse
import json
import sys

from meshreg import Client


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--servers", required=True)
    p.add_argument("--data-id", required=True)
    p.add_argument("--timeout", type=float, default=8.0)
    p.add_argument("--cache-dir", default=None)
    a = p.parse_args()
    c = Client(
        a.servers.split(","),
        timeout=a.timeout,
        server_order="listed",
        sessions=False,
        cache_dir=a.cache_dir,
    )
    print(json.dumps({"ready": True}), flush=True)
    try:
        for line in sys.stdin:
            words = line.split()
            if not words or words[0] == "quit":
                break
            try:
                if words[0] == "get":
                    info = c.config_get(a.data_id)
                elif words[0] == "publish":
                    if_rev = int(words[2]) if len(words) > 2 else None
                    info = c.config_publish(a.data_id, words[1], if_revision=if_rev)
                elif words[0] == "delete":
                    info = c.config_delete(a.data_id)
                elif words[0] in ("history", "list"):
                    if words[0] == "history":
                        infos = c.config_history(a.data_id)
                    else:
                        infos = [i for i in c.config_list(a.data_id) if i.data_id == a.data_id]
                    print(
                        json.dumps(
                            {"ok": True, "revs": [i.revision for i in infos], "server": c.server}
                        ),
                        flush=True,
                    )
                    continue
                else:
                    raise ValueError(f"unknown command {words[0]!r}")
                if info is None:
                    out = {"ok": False, "absent": True, "server": c.server}
                else:
                    out = {
                        "ok": True,
                        "rev": info.revision,
                        "content": info.content,
                        "deleted": info.deleted,
                        "server": c.server,
                    }
            except Exception as exc:  # noqa: BLE001
                out = {"ok": False, "error": type(exc).__name__, "msg": str(exc)[:400]}
            print(json.dumps(out), flush=True)
    finally:
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
