"""``replication``: CPU per replicated delta, one per PUB message against batched, in one
process over a real PUB/SUB pair (bench/README.md).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import zmq

from bench.common import Say, Scenario, connect, free_port_block, table
from bench.runner import run_alone
from meshreg.core.distro import Broadcast, ClusterPolicy, DistroNode
from meshreg.core.health import HealthPolicy
from meshreg.core.mapping import responsible_node
from meshreg.model import ServiceKey
from meshreg.wire.batching import DeltaBatcher
from meshreg.wire.messages import decode_body, parse_message
from meshreg.wire.peer import Beacon, DeltaBatch, ReplicatedDelta, decode_replication
from meshreg.wire.replies import encode_request

A, B = "127.0.0.1:7000", "127.0.0.1:7100"
RECEIVE_SECONDS = 60.0  # s; the receiver gives up after this (a lost message: reported)


def services_of_a(count: int) -> list[str]:
    """Service names whose responsible node is A (so the receiver only applies them)."""
    names = (f"svc{i}" for i in range(10_000))
    owned = (
        n for n in names if responsible_node(ServiceKey("public", "DEFAULT_GROUP", n), (A, B)) == A
    )
    return [next(owned) for _ in range(count)]


def make_deltas(n: int) -> list[ReplicatedDelta]:
    now = time.monotonic()
    core = DistroNode(HealthPolicy(), ClusterPolicy(), A, A, [A, B], 1, now)
    core.assume_caught_up(now)
    services = services_of_a(4)
    out: list[ReplicatedDelta] = []
    for i in range(n):
        ip = f"10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}"
        fields = {"service": services[i % 4], "ip": ip, "port": 8080, "weight": 1.0,
                  "metadata": {"zone": "bench"}}  # fmt: skip
        core.handle(parse_message(decode_body(encode_request("register", i + 1, **fields))), now)
        for e in core.take_effects():
            if type(e) is Broadcast and type(e.message) is ReplicatedDelta:
                out.append(e.message)
    return out


def run_once(deltas: list[ReplicatedDelta], batcher: DeltaBatcher) -> dict[str, Any]:
    ctx = zmq.Context()
    port = free_port_block(1)
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.setsockopt(zmq.SNDHWM, 0)  # bounded by len(deltas): nothing dropped
    pub.bind(f"tcp://127.0.0.1:{port}")
    sub = connect(ctx, zmq.SUB, port, RCVHWM=0, SUBSCRIBE=b"")
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the slow joiner: until a probe gets through
            pub.send_multipart([b"probe", b""])
            if sub.poll(50):
                while sub.poll(0):
                    sub.recv_multipart()
                break
        now = time.monotonic()
        receiver = DistroNode(HealthPolicy(), ClusterPolicy(), B, B, [A, B], 2, now)
        receiver.assume_caught_up(now)
        receiver.on_replication(Beacon(A, A, 1, True, 0, (A, B)), now)  # A is up, owns them
        assert receiver.members() == (A, B)
        # sender: what the runtime does per delta (batcher, send), then the turn's flush
        t0 = time.thread_time()
        messages = size = 0
        for d in deltas:
            for frames in batcher.add(d, now):
                pub.send_multipart(frames, zmq.NOBLOCK)
                messages, size = messages + 1, size + len(frames[1])
        last = batcher.flush()
        if last is not None:
            pub.send_multipart(last, zmq.NOBLOCK)
            messages, size = messages + 1, size + len(last[1])
        sent_cpu = time.thread_time() - t0
        # receiver: what _drain_replication does per message
        applied, cpu = 0, 0.0
        deadline = time.monotonic() + RECEIVE_SECONDS
        while applied < len(deltas) and time.monotonic() < deadline:
            if not sub.poll(100):
                continue
            t0 = time.thread_time()
            for _ in range(512):
                try:
                    frames = sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                msg = decode_replication(frames)
                if isinstance(msg, DeltaBatch):
                    for d in msg.deltas:
                        receiver.on_replication(d, now)
                    applied += len(msg.deltas)
                else:
                    receiver.on_replication(msg, now)
                    applied += 1
                receiver.take_effects()
            cpu += time.thread_time() - t0
        return {
            "deltas": len(deltas),
            "applied": applied,
            "messages": messages,
            "bytes_per_delta": round(size / len(deltas), 1),
            "sender_us_per_delta": round(sent_cpu / len(deltas) * 1e6, 2),
            "receiver_us_per_delta": round(cpu / max(1, applied) * 1e6, 2),
        }
    finally:
        pub.close()
        sub.close()
        ctx.term()


def run(opts: argparse.Namespace, say: Any = print) -> dict[str, Any]:
    deltas = make_deltas(opts.deltas)
    say(f"{len(deltas)} deltas (registrations of distinct instances over 4 services)")
    rows = []
    for label, max_deltas in (("one per message", 1), ("batched (256 deltas / 256 KiB)", None)):
        runs = [
            run_once(deltas, DeltaBatcher(max_deltas) if max_deltas else DeltaBatcher())
            for _ in range(opts.repeat)
        ]
        best = min(runs, key=lambda r: r["sender_us_per_delta"] + r["receiver_us_per_delta"])
        rows.append({"mode": label, **best, "runs": runs})
        say(f"  {label}: {best}")
    return {"rows": rows}


def report(result: dict[str, Any], say: Say) -> None:
    say("CPU time of the calling thread\n" + table(result["rows"], [
        ("mode", "mode", "{}"), ("deltas", "applied", "{:,}"), ("messages", "messages", "{:,}"),
        ("bytes/delta", "bytes_per_delta", "{}"),
        ("sender us/delta", "sender_us_per_delta", "{:.2f}"),
        ("receiver us/delta", "receiver_us_per_delta", "{:.2f}"),
    ]))  # fmt: skip


SCENARIOS = (
    Scenario("replication", lambda procs, ctx, opts, say, _: run(opts, say), report,
             "CPU per replicated delta, sender and receiver: one per message vs batched",
             {"deltas": (20_000, 5000), "repeat": (3, 1)}),
)  # fmt: skip

if __name__ == "__main__":  # python -m bench.replication
    run_alone("replication")
