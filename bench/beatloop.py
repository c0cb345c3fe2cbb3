"""``beatloop``: CPU per beat of the node's request loop against the raw echo loop, both in
one process on the same queued beats (bench/README.md).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import zmq

from bench.common import HOST, Say, Scenario, connect, free_port_block
from bench.load import echo_batch
from bench.runner import run_alone
from meshreg.config import NodeConfig
from meshreg.runtime.node import NodeRuntime
from meshreg.wire.messages import decode_body, parse_message
from meshreg.wire.replies import encode_request

DRAIN_SECONDS = 30.0  # s; a run gives up after this (reported as an error)


def _fields(i: int) -> dict[str, Any]:
    return {"service": f"svc{i % 10}", "ip": f"10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}",
            "port": 8080}  # fmt: skip


def _cpu_per_message(
    ctx: zmq.Context[Any], port: int, bodies: list[bytes], drain: Any, done: Any
) -> float:
    """Queue ``bodies`` at ``port`` from a DEALER, then ``drain()`` until ``done()``: the
    draining thread's CPU microseconds per message (the replies read, so the next run
    starts empty)."""
    dealer = connect(ctx, zmq.DEALER, port, SNDHWM=0, RCVHWM=0)  # HWM 0: bounded by len(bodies)
    try:
        for body in bodies:
            dealer.send_multipart([b"", body])
        cpu, deadline = 0.0, time.monotonic() + DRAIN_SECONDS
        while not done() and time.monotonic() < deadline:
            t0 = time.thread_time()
            drain()
            cpu += time.thread_time() - t0
        if not done():
            raise RuntimeError(f"not all {len(bodies)} beats answered within {DRAIN_SECONDS}s")
        for _ in bodies:
            if not dealer.poll(int(DRAIN_SECONDS * 1000)):
                raise RuntimeError("a reply did not come back")
            dealer.recv_multipart()
        return float(cpu / len(bodies) * 1e6)
    finally:
        dealer.close()


def run(opts: argparse.Namespace, say: Any = print) -> dict[str, Any]:
    n = opts.beats
    rt = NodeRuntime(NodeConfig(host=HOST, port=free_port_block(4)))
    rt.bind()
    ctx = zmq.Context()
    echo = ctx.socket(zmq.ROUTER)
    try:
        router = rt._router
        assert router is not None
        now = time.monotonic()
        for i in range(n):
            req = parse_message(decode_body(encode_request("register", i + 1, **_fields(i))))
            rt.core.handle(req, now)
        rt.core.take_effects()
        bodies = [encode_request("beat", i + 1, **_fields(i)) for i in range(n)]
        for s in (router, echo):
            s.setsockopt(zmq.RCVHWM, 0)  # bounded by n
            s.setsockopt(zmq.SNDHWM, 0)  # no reply dropped while the dealer is not reading
        echo.setsockopt(zmq.LINGER, 0)
        echo_port = echo.bind_to_random_port(f"tcp://{HOST}")

        echoed = [0]

        def echo_drain() -> None:
            echoed[0] += echo_batch(echo)

        node_us, echo_us = [], []
        for _ in range(opts.repeat):
            echoed[0] = 0
            echo_us.append(
                _cpu_per_message(ctx, echo_port, bodies, echo_drain, lambda: echoed[0] >= n)
            )
            target = rt.core.stats.beats + n
            node_us.append(_cpu_per_message(ctx, rt.config.port, bodies,
                                            lambda: rt._drain_requests(router),
                                            lambda t=target: rt.core.stats.beats >= t))  # fmt: skip
        row = {
            "beats": n,
            "echo_us_per_message": round(min(echo_us), 2),
            "node_us_per_beat": round(min(node_us), 2),
            "ratio": round(min(echo_us) / min(node_us), 2),
            "runs_echo_us": [round(x, 2) for x in echo_us],
            "runs_node_us": [round(x, 2) for x in node_us],
        }
        say(f"  {row}")
        return {"rows": [row]}
    finally:
        echo.close()
        ctx.term()
        rt.close()


def report(result: dict[str, Any], say: Say) -> None:
    r = result["rows"][0]
    say(f"CPU per message, best of {len(r['runs_node_us'])}: echo loop "
        f"{r['echo_us_per_message']} us, node loop {r['node_us_per_beat']} us per beat: "
        f"{r['ratio']}x")  # fmt: skip


SCENARIOS = (
    Scenario("beatloop", lambda procs, ctx, opts, say, _: run(opts, say), report,
             "CPU per beat of the node's request loop vs the raw echo loop, in one process",
             {"beats": (20_000, 5000), "repeat": (6, 2)}),
)  # fmt: skip

if __name__ == "__main__":  # python -m bench.beatloop
    run_alone("beatloop")
