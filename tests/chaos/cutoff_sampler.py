"""For test_cut_off_server (review20 F3): samples NODES' full listing (healthy_only
false) of SERVICES every 0.2 s for SECONDS, one JSON line per answer: [monotonic time,
node, service, {address: healthy} or null]."""

from __future__ import annotations

import json
import sys
import time

import msgpack
import zmq


def ask(ctx: zmq.Context, addr: str, svc: str) -> dict[str, bool] | None:
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 400)
    s.connect(f"tcp://{addr}")
    try:
        body = {"v": 1, "id": 1, "op": "instances", "service": svc, "healthy_only": False}
        s.send(msgpack.packb(body))
        r = msgpack.unpackb(s.recv(), raw=False)
        if not r.get("ok"):
            return None
        return {f"{i['ip']}:{i['port']}": i["healthy"] for i in r["result"]["instances"]}
    except zmq.Again:
        return None
    finally:
        s.close()


def main() -> None:
    nodes, svcs = sys.argv[1].split(","), sys.argv[2].split(",")
    end = time.monotonic() + float(sys.argv[3])
    ctx = zmq.Context()
    with open(sys.argv[4], "w", encoding="utf-8") as out:
        while time.monotonic() < end:
            for a in nodes:
                for s in svcs:
                    out.write(json.dumps([time.monotonic(), a, s, ask(ctx, a, s)]) + "\n")
            out.flush()
            time.sleep(0.2)


if __name__ == "__main__":
    main()
