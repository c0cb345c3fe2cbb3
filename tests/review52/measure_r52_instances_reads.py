"""review52 F3: `instances` of one large service, read by one client's few connections,
takes the node's loop from every other client (no cost limit on `instances`).

A MEASUREMENT, not in the suite (its bound is a latency, which a loaded CI machine may
miss: performance is measured, never asserted in a test); run it by name:
``pytest tests/review52/measure_r52_instances_reads.py``.  Fixed (core/instance_views,
wire/result_maps ``instances_packed``): a large service's list is kept while its
revision stands; measured on 2 cores, 32 reading connections: 4,818 replies of 5 MB read
in 8 s, another client's register median 60 ms, max 112 ms (before: median 1.8-2.1 s).
The kept lists' correctness: tests/core/test_instance_views.py.

SECURITY.md "Limits per client", expensive reads: `services`, `cluster` and `stats` "cost
the node work that grows with the registry or the cluster; each key (each connection, on
a node without a key) has a token bucket, and the node one across all clients, so a
flood of them cannot take the node from the hot path (beats and `instances` are never
rate-limited)".  But an `instances` reply is built anew for every request (not cached
per revision as config reads are), and its cost grows with the service: ~100-250 ms of
the node's single loop for a service of 50,000 instances (`max_instances_per_service`
default 50,000).  A client that reads its replies is within every byte budget, so
nothing paces it: the loop serves the connections in turn and every other client's
request waits behind the reader's.

By hand (/tmp/r52/probe_instances.py, default config, no key, 50,000 instances of
~80 B): another client's `register` 1.1 ms alone; with 4 reading connections x 2 in
flight p50 497 ms (max 947); 16 connections p50 819 ms; 48 connections p50 5,711 ms (max
6,219), i.e. ~120 ms per request ahead of it: ~130 connections take a beat past
`unhealthy_after` (15 s) and every instance of the node's other clients turns unhealthy.
A tenant whose key may write only its own namespace can make such a service itself
(register_batch, within max_instances_per_service and max_instances_per_client): with
CURVE and review37's tenant ACL (/tmp/r52/probe_inst_keyed.py), tenant A's 24 reading
connections took tenant B's register from 1.4 ms to 13,153 ms.
"""

from __future__ import annotations

import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
from r52lib import NodeProcess, dealer, packb, raw_request

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "review23"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "review37"))
from r23lib import keyed_node, make_keys  # noqa: E402
from r37lib import TENANTS_ACL  # noqa: E402

HERE = Path(__file__).resolve().parent
INSTANCES = 50_000  # the default max_instances_per_service
CONNS, IN_FLIGHT = 32, 2  # the reading fleet: one process, 32 connections
SECONDS = 10.0
BOUND = 1.0  # s: the slowest of another client's registers (1 ms alone)


def _register_many(port: int, namespace: str = "public", curve: Any = None) -> None:
    sock = dealer(port, curve=curve)
    try:
        for start in range(0, INSTANCES, 500):
            entries = [
                {"service": "big", "ip": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                 "port": 80}
                for i in range(start, min(INSTANCES, start + 500))
            ]  # fmt: skip
            batch = {"v": 1, "id": start + 1, "op": "register_batch", "namespace": namespace,
                     "instances": entries}  # fmt: skip
            sock.send_multipart([b"", packb(batch)])
            assert sock.poll(20_000), "no reply to register_batch"
            reply = msgpack.unpackb(sock.recv_multipart()[-1])
            assert reply["ok"] and not any(reply["result"]["results"]), str(reply)[:300]
    finally:
        sock.close()


def _register_latency(port: int, namespace: str = "public", curve: Any = None) -> float:
    start = time.monotonic()
    reply = raw_request(
        port,
        {"v": 1, "id": 1, "op": "register", "namespace": namespace, "service": "small",
         "ip": "192.0.2.1", "port": 8080},
        30.0,
        curve,
    )  # fmt: skip
    assert reply["ok"], reply
    return time.monotonic() - start


def _judge(node: NodeProcess, reader_args: list[str], victim: str, curve: Any) -> None:
    """Start the reading fleet (r52_reader.py ``reader_args``) and time the victim's
    registers (namespace ``victim``) meanwhile: at least 3, within the fleet's run."""
    fleet = None
    try:
        alone = min(_register_latency(node.port, victim, curve) for _ in range(5))
        fleet = subprocess.Popen(
            [sys.executable, str(HERE / "r52_reader.py"), *reader_args],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert fleet.stdout is not None
        ready, _, _ = select.select([fleet.stdout], [], [], SECONDS)
        assert ready and fleet.stdout.readline().strip() == "reading", "the fleet read nothing"
        latencies = []
        end = time.monotonic() + SECONDS / 2
        while time.monotonic() < end or len(latencies) < 3:
            latencies.append(_register_latency(node.port, victim, curve))
            time.sleep(0.1)
        out, _ = fleet.communicate(timeout=SECONDS + 40)
        latencies.sort()
        median = latencies[len(latencies) // 2]
        assert fleet.returncode == 0 and int(out.strip() or 0) > 0, f"fleet failed: {out!r}"
        assert latencies[-1] <= BOUND, (
            f"while one process read `instances` of a {INSTANCES}-instance service on "
            f"{CONNS} connections ({IN_FLIGHT} in flight each, {out.strip()} replies read), "
            f"another client's register took median {median * 1000:.0f} ms, max "
            f"{latencies[-1] * 1000:.0f} ms over {len(latencies)} (alone: "
            f"{alone * 1000:.1f} ms; bound {BOUND * 1000:.0f} ms)"
        )
    finally:
        if fleet is not None and fleet.poll() is None:
            fleet.kill()
            fleet.wait(5)


def _fleet(port: int, *extra: str) -> list[str]:
    return [str(port), "big", str(CONNS), str(IN_FLIGHT), str(SECONDS), *extra]


@pytest.mark.timeout(150)
def test_reading_a_large_service_does_not_stall_other_clients(tmp_path: Path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "data"))
    try:
        node.start()
        _register_many(node.port)
        _judge(node, _fleet(node.port), "public", None)
    finally:
        node.stop()
        node.cleanup()


@pytest.mark.timeout(150)
def test_a_tenant_reading_its_own_large_service_does_not_stall_another_tenant(
    tmp_path: Path,
) -> None:
    """With CURVE and an ACL confining tenantA and tenantB to their namespaces: tenantA
    makes its own 50,000-instance service and reads it; tenantB registers."""
    keys = make_keys(tmp_path, "tenantA", "tenantB", "ops")
    node = keyed_node(tmp_path, TENANTS_ACL, keys)
    try:
        node.start()
        _register_many(node.port, "nsA", keys["tenantA"])
        fleet = _fleet(node.port, "nsA", str(tmp_path / "tenantA.key"),
                       str(tmp_path / "cluster.key"))  # fmt: skip
        _judge(node, fleet, "nsB", keys["tenantB"])
    finally:
        node.stop()
        node.cleanup()
