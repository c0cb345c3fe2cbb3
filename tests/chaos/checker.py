"""Sample one node's view for the chaos suite: one JSON line per sample.

Runs inside the node's namespace; every ``--interval`` seconds it asks its node (over one
DEALER, pipelined, answers matched by request id) for ``cluster`` and for every service's
full instance list (``healthy_only`` false), and writes::

    {"t0": <monotonic before>, "t1": <monotonic after>, "ok": true, "ready": bool,
     "members": {"id": "up|down|catching up"}, "inst": {service: {"ip:port": healthy}}}

or ``{"t0", "t1", "ok": false, "err": "..."}`` when the node did not answer in time (then
the socket is replaced, so late answers of a paused node are not mixed in). Monotonic
clocks are shared across network namespaces, so the times line up with the test's.
Bounded: exits after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import msgpack
import zmq


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--node", required=True, help="host:port of the node to sample")
    p.add_argument("--services", required=True, help="comma-separated service names")
    p.add_argument("--interval", type=float, default=0.15)
    p.add_argument("--timeout", type=float, default=0.5)
    p.add_argument("--max-seconds", type=float, default=600.0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    services = [s for s in args.services.split(",") if s]
    ctx = zmq.Context.instance()
    sock = None
    next_id = 1
    end = time.monotonic() + args.max_seconds
    with open(args.out, "a", encoding="utf-8") as out:
        next_at = time.monotonic()
        while time.monotonic() < end:
            if sock is None:
                sock = ctx.socket(zmq.DEALER)
                sock.setsockopt(zmq.LINGER, 0)
                if args.node.startswith("["):  # [v6]:port: libzmq needs IPV6 to connect
                    sock.setsockopt(zmq.IPV6, 1)
                sock.connect(f"tcp://{args.node}")
            t0 = time.monotonic()
            wanted: dict[int, str | None] = {}
            bodies = [("cluster", None)] + [("instances", s) for s in services]
            for op, svc in bodies:
                body: dict[str, object] = {"v": 1, "id": next_id, "op": op}
                if svc is not None:
                    body.update(service=svc, healthy_only=False)
                wanted[next_id] = svc
                next_id += 1
                sock.send_multipart([b"", msgpack.packb(body)])
            sample: dict[str, object] = {"t0": t0, "ok": False}
            inst: dict[str, dict[str, bool]] = {}
            deadline = t0 + args.timeout
            error = ""
            while wanted and time.monotonic() < deadline:
                if not sock.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                    break
                frames = sock.recv_multipart()
                reply = msgpack.unpackb(frames[-1], raw=False)
                rid = reply.get("id")
                if rid not in wanted:
                    continue
                svc = wanted.pop(rid)
                if not reply.get("ok"):
                    error = str(reply.get("error"))
                    continue
                result = reply["result"]
                if svc is None:
                    sample["ready"] = bool(result.get("ready"))
                    sample["members"] = {
                        m["id"]: m["state"] for m in result.get("members", []) if not m.get("self")
                    }
                else:
                    inst[svc] = {
                        f"{i['ip']}:{i['port']}": bool(i["healthy"]) for i in result["instances"]
                    }
            sample["t1"] = time.monotonic()
            if wanted or error:
                sample["err"] = error or f"no answer within {args.timeout}s"
                sock.close(0)
                sock = None
            else:
                sample["ok"] = True
                sample["inst"] = inst
            out.write(json.dumps(sample) + "\n")
            out.flush()
            next_at = max(next_at + args.interval, time.monotonic())
            time.sleep(max(0.0, next_at - time.monotonic()))  # the sampling interval
    return 0


if __name__ == "__main__":
    sys.exit(main())
