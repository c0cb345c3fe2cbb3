"""Helpers for review72's tests: the seeded simulation of tests/sim (real node runtimes
on the in-memory transport, a simulated clock) and the client session harness of
tests/client (a fake clock, no sockets)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
for sub in ("sim", "client"):
    path = os.path.join(TESTS, sub)
    if path not in sys.path:
        sys.path.insert(0, path)

from network import Network, SimNode  # noqa: E402
from test_distro_sim import scenario_message  # noqa: E402
from test_runtime_sim import WHERE, listed, owned_by, register_fields, request  # noqa: E402

from meshreg.core.requests import DEADLINE_SLACK  # noqa: E402
from meshreg.transport.memory import MemChannel, MemDealer, MemPub  # noqa: E402
from meshreg.wire import limits  # noqa: E402
from meshreg.wire.messages import decode_body  # noqa: E402

__all__ = [
    "WHERE",
    "Network",
    "SimNode",
    "cluster",
    "deadline_ms",
    "held",
    "listed",
    "owned_by",
    "register_fields",
    "request",
    "run_until_true",
    "runtime",
    "scenario_message",
    "Faults",
    "close_took",
]


def cluster(seed: int, wall_offsets: dict[str, float], n: int = 3) -> Network:
    """``n`` nodes n0..n{n-1} started 0.1 s apart; ``wall_offsets``: a node's wall clock
    ahead (s) of the others'."""
    net = Network(seed, [f"n{i}" for i in range(n)])
    for node_id, offset in wall_offsets.items():
        net.nodes[node_id].wall_offset = offset
    for i, node_id in enumerate(net.nodes):
        net.at(0.1 * i, net.start, node_id)
    return net


def runtime(net: Network, node_id: str) -> Any:
    rt = net.nodes[node_id].runtime
    assert rt is not None, f"{node_id} is down"
    return rt


def deadline_ms(net: Network, attempt: float, client_wall: float = 0.0) -> int:
    """An attempt's deadline as the Python client stamps it (its wall clock ``client_wall``
    ahead of the simulation's)."""
    return round((net.now + client_wall + attempt + DEADLINE_SLACK) * 1000)


def run_until_true(
    net: Network, cond: Callable[[], bool], limit: float, step: float = 0.0005
) -> None:
    while not cond():
        assert net.now < limit, "condition never held"
        net.run_until(net.now + step)


def held(net: Network, node_id: str, service: str, index: int) -> bool:
    """Whether ``node_id`` lists instance ``index`` of ``service`` (a read on it)."""
    out = request(net, net.nodes[node_id], "instances", service=service, **WHERE)
    run_until_true(net, lambda: bool(out), net.now + 1.0)
    assert out[0][0] == "ok", out
    return listed(out[0], index)


class Faults:
    """Link faults on top of the network's ``drop`` hook: forwards of one op from one
    node to another lost (a peer request port dropped one way, DISTRO.md's failure
    table), and one node's replication deltas to another held back (a backed-up PUB
    stream) or lost (best-effort PUB: repaired by anti-entropy)."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.inner = net.drop
        self.lost_forwards: set[tuple[str, str, str]] = set()  # (src, dst, op)
        self.late_deltas: dict[tuple[str, str], float] = {}  # (src, dst) -> extra delay s
        self.dropped: list[str] = []
        net.drop = self.drop

    def drop(self, src: MemChannel, dst: MemChannel, frames: list[bytes]) -> bool:
        if type(src) is MemDealer and len(frames) == 3 and self.lost_forwards:
            op = decode_body(frames[2], limits.MAX_PEER_BODY_BYTES).get("op", "?")
            if (src.name, dst.name, op) in self.lost_forwards:
                self.dropped.append(f"{self.net.now:.4f} forward {op} {src.name}->{dst.name}")
                return True
        if type(src) is MemPub and src.kind == "PUB" and frames[0] in (b"delta", b"deltas"):
            extra = self.late_deltas.get((src.name, dst.name))
            if extra is not None:
                if extra == float("inf"):
                    self.dropped.append(
                        f"{self.net.now:.4f} {frames[0]!r} {src.name}->{dst.name} lost"
                    )
                    return True
                self.dropped.append(f"{self.net.now:.4f} {frames[0]!r} {src.name}->{dst.name} late")
                self.net.after(extra + self.net.delay(), self.net._arrive, src, dst, frames)
                return True
        return self.inner(src, dst, frames) if self.inner is not None else False


def close_took(budget: float, sessions: bool) -> float:
    """How long ``Client.close(budget)`` takes with a register out and a server that
    reads every request and answers none (a stopped node, connected and silent): one
    ZeroMQ ROUTER on loopback, no node process (review73 F-D, review74 F2)."""
    import threading
    import time

    import msgpack
    import zmq

    from meshreg.client.client import Client

    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    stop, register_read = threading.Event(), threading.Event()

    def drain() -> None:  # read and never answer; say when the register came
        while not stop.is_set():
            if router.poll(50):
                body = router.recv_multipart()[-1]
                if msgpack.unpackb(body, raw=False).get("op") == "register":
                    register_read.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    client = Client(servers=f"127.0.0.1:{port}", timeout=3.0, sessions=sessions,
                    handle_sigterm=False)  # fmt: skip

    def register() -> None:
        try:
            client.register("orders", "10.0.0.1", 80)
        except Exception:  # noqa: S110  (the close ends it)
            pass

    caller = threading.Thread(target=register)
    try:
        caller.start()
        assert register_read.wait(10.0), "the register never reached the silent server"
        began = time.monotonic()
        client.close(timeout=budget)
        return time.monotonic() - began
    finally:
        stop.set()
        caller.join(5.0)
        reader.join(1.0)
        router.close()
        ctx.term()
