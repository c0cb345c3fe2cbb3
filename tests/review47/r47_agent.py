"""review47 agent: runs inside a node's network namespace. One provider Client and one
consumer Client (both through the given servers, listed order), and a sampler of the
local node's full listings. Prints JSON lines on stdout:

    {"k": "ready"}
    {"k": "S", "t": mono, "node": n, "svc": s, "got": {addr: healthy} | null}   a node's sample
    {"k": "E", "t": mono, "svc": s, "got": [healthy addrs]}             consumer push
    {"k": "ok"|"err", "cmd": line, "t0": mono, "t1": mono, "msg": ...}  a command's outcome

Commands on stdin: ``reg SVC IP PORT``, ``dereg SVC IP PORT``, ``who`` (the provider's
current server, in ``msg``), ``quit``.  ``--node`` may list several nodes (comma). Bounded by
``--max-seconds``; monotonic clocks are shared by every namespace of one machine.
"""

from __future__ import annotations

import argparse
import json
import select
import sys
import threading
import time

import msgpack
import zmq

from meshreg import Client

_out = threading.Lock()


def emit(**kw: object) -> None:
    with _out:
        sys.stdout.write(json.dumps(kw) + "\n")
        sys.stdout.flush()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--servers", required=True)
    p.add_argument("--node", required=True)  # host:port sampled
    p.add_argument("--services", required=True)
    p.add_argument("--every", type=float, default=0.2)
    p.add_argument("--max-seconds", type=float, default=200.0)
    a = p.parse_args()
    servers = a.servers.split(",")
    services = a.services.split(",")
    end = time.monotonic() + a.max_seconds
    prov = Client(servers, handle_sigterm=False, server_order="listed")
    cons = Client(servers, handle_sigterm=False, server_order="listed")
    stop = threading.Event()

    def cb_for(svc: str):  # type: ignore[no-untyped-def]
        def cb(xs: list) -> None:  # type: ignore[type-arg]
            emit(k="E", t=time.monotonic(), svc=svc, got=sorted(i.address for i in xs if i.healthy))

        return cb

    for s in services:  # the nodes may still be starting: retry, bounded
        while True:
            try:
                cons.subscribe(s, cb_for(s))
                break
            except Exception:  # noqa: BLE001
                if time.monotonic() > end - a.max_seconds + 30:
                    raise
                time.sleep(0.2)

    def sampler(node: str) -> None:
        ctx = zmq.Context.instance()
        sock = None
        rid = 0
        while not stop.is_set() and time.monotonic() < end:
            for s in services:
                if sock is None:
                    sock = ctx.socket(zmq.DEALER)
                    sock.setsockopt(zmq.LINGER, 0)
                    sock.connect(f"tcp://{node}")
                rid += 1
                body = {"v": 1, "id": rid, "op": "instances", "service": s, "healthy_only": False}
                sock.send_multipart([b"", msgpack.packb(body)])
                got = None
                dl = time.monotonic() + 0.4
                while time.monotonic() < dl:
                    if sock.poll(int(max(1, (dl - time.monotonic()) * 1000))):
                        frames = sock.recv_multipart()
                        r = msgpack.unpackb(frames[-1], raw=False)
                        if r.get("id") != rid:
                            continue
                        if r.get("ok"):
                            got = {f"{i['ip']}:{i['port']}": bool(i["healthy"])
                                   for i in r["result"]["instances"]}  # fmt: skip
                        break
                else:
                    sock.close()
                    sock = None
                emit(k="S", t=time.monotonic(), node=node, svc=s, got=got)
            stop.wait(a.every)

    ths = [threading.Thread(target=sampler, args=(n,), daemon=True) for n in a.node.split(",")]
    for th in ths:
        th.start()

    def run(line: str) -> None:
        parts = line.split()
        t0 = time.monotonic()
        try:
            if parts[0] == "reg":
                prov.register(parts[1], parts[2], int(parts[3]))
            elif parts[0] == "dereg":
                prov.deregister(parts[1], parts[2], int(parts[3]))
            elif parts[0] == "who":
                emit(k="ok", cmd=line, t0=t0, t1=time.monotonic(), msg=prov.server)
                return
            emit(k="ok", cmd=line, t0=t0, t1=time.monotonic())
        except Exception as exc:  # noqa: BLE001
            msg = f"{type(exc).__name__}: {exc}"[:300]
            emit(k="err", cmd=line, t0=t0, t1=time.monotonic(), msg=msg)

    emit(k="ready", t=time.monotonic())
    while time.monotonic() < end:
        r, _, _ = select.select([sys.stdin], [], [], 0.5)
        if not r:
            continue
        line = sys.stdin.readline()
        if not line or line.strip() == "quit":
            break
        threading.Thread(target=run, args=(line.strip(),), daemon=True).start()
    stop.set()
    for th in ths:
        th.join(3)
    for c in (prov, cons):
        try:
            c.close(2.0)
        except Exception:  # noqa: BLE001
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
