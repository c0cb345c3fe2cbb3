"""Catch-up of a restarted cluster node holding a large registry.

Starts N nodes (default 3) on 127.0.0.1, registers S services x I instances
(default 20 x 10,000 = 200,000) through node A with a pipelined DEALER,
waits until every node holds them all, SIGKILLs node C, restarts it on the
same port and times how long until it reports ready and holds every
instance, and whether any survivor marked a peer down meanwhile (a node busy
for longer than --peer-timeout would look dead).

    python bench/catchup.py [--services 20] [--instances 10000] [--peer-timeout 3]

Every process is stopped on the way out; every loop is bounded by a deadline.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

import msgpack
import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cluster import NodeProc, Procs, free_port_block, machine_info  # noqa: E402

HOST = "127.0.0.1"


def request(ctx: zmq.Context[Any], port: int, op: str, timeout: float = 10.0) -> Any:
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
    try:
        sock.connect(f"tcp://{HOST}:{port}")
        sock.send(msgpack.packb({"v": 1, "id": 1, "op": op}))
        return msgpack.unpackb(sock.recv(), raw=False)["result"]
    finally:
        sock.close()


def wait_for(what: str, predicate: Any, timeout: float, interval: float = 0.05) -> float:
    start = time.perf_counter()
    deadline = start + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--services", type=int, default=20)
    ap.add_argument("--instances", type=int, default=10_000, help="per service")
    ap.add_argument("--peer-timeout", type=float, default=3.0)
    ap.add_argument("--window", type=int, default=500, help="registrations in flight")
    opts = ap.parse_args()
    total = opts.services * opts.instances
    info = machine_info()
    print(f"machine: {info.get('cpu')} x{info.get('nproc')}, {info.get('python')}")
    print(
        f"settings: {opts.nodes} nodes, {opts.services} services x {opts.instances} = "
        f"{total} instances, peer timeout {opts.peer_timeout}s"
    )
    ports = [free_port_block() for _ in range(opts.nodes)]
    peers: list[str] = []
    for p in ports:
        peers += ["--peer", f"{HOST}:{p}"]
    args = [
        "--peer-timeout",
        f"{opts.peer_timeout:g}",
        "--unhealthy-after",
        "120",
        "--evict-after",
        "240",
        *peers,
    ]
    procs = Procs()
    ctx: zmq.Context[Any] = zmq.Context()
    with tempfile.TemporaryDirectory(prefix="meshreg-catchup-") as log_dir:
        try:
            nodes = [procs.add(NodeProc(p, args, log_dir).start()) for p in ports]
            for n in nodes:
                n.wait_ping()
            wait_for(
                "the cluster to form",
                lambda: all(
                    len(request(ctx, n.port, "stats")["members"]) == opts.nodes for n in nodes
                ),
                60,
            )
            dealer = ctx.socket(zmq.DEALER)
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.setsockopt(zmq.RCVTIMEO, 30_000)
            dealer.connect(f"tcp://{HOST}:{ports[0]}")
            t0 = time.perf_counter()
            sent = got = 0
            for s in range(opts.services):
                for i in range(opts.instances):
                    body = {
                        "v": 1,
                        "id": sent,
                        "op": "register",
                        "service": f"svc{s}",
                        "ip": f"10.{i // 250 % 250}.{i % 250}.{1 + i // 62500}",
                        "port": 8000 + s,
                        "metadata": {"zone": "a", "version": "1.2.3"},
                    }
                    dealer.send_multipart([b"", msgpack.packb(body)])
                    sent += 1
                    while sent - got > opts.window:
                        dealer.recv_multipart()
                        got += 1
            while got < sent:
                dealer.recv_multipart()
                got += 1
            dealer.close()
            reg_s = time.perf_counter() - t0
            repl_s = wait_for(
                "every node to hold every instance",
                lambda: all(
                    request(ctx, n.port, "stats")["instances"]["total"] == total for n in nodes
                ),
                300,
                0.2,
            )
            victim = nodes[-1]
            victim.kill()
            wait_for(
                "the survivors to see the victim down",
                lambda: len(request(ctx, nodes[0].port, "stats")["members"]) == opts.nodes - 1,
                30,
            )
            t1 = time.perf_counter()
            victim.start()
            victim.wait_ping()
            wait_for(
                "the restarted node to be ready",
                lambda: request(ctx, victim.port, "stats")["ready"],
                300,
            )
            ready_s = time.perf_counter() - t1
            at_ready = request(ctx, victim.port, "stats")["instances"]["total"]
            wait_for(
                "the restarted node to hold every instance",
                lambda: request(ctx, victim.port, "stats")["instances"]["total"] == total,
                300,
            )
            full_s = time.perf_counter() - t1
            flaps = sum(
                line.count("is down")
                for n in nodes[:-1]
                for line in n.log_lines()
                if victim.address not in line
            )
            print()
            print("| measure | value |")
            print("|---|---|")
            print(f"| register {total} through node A | {reg_s:.1f} s ({total / reg_s:,.0f}/s) |")
            print(f"| replicated to every node after the last reply | {repl_s:.2f} s |")
            print(
                f"| restarted node ready (from its start) | {ready_s:.2f} s, holding {at_ready} |"
            )
            print(f"| restarted node holds all {total} (from its start) | {full_s:.2f} s |")
            print(f"| false 'peer down' among survivors | {flaps} |")
        finally:
            procs.stop_all()
            ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
