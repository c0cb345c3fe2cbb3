"""review83 F2: one low-privilege key, within its quotas, stalls every node of a 3-node
cluster for seconds, and other tenants' config reads fail meanwhile.

``tenant-a`` may write its own namespace ``ta`` only.  It opens a session and sends
``register_batch``es of 500 instances through one node, back to back, up to its
``max_instances_per_client`` (200,000: every instance is within its quota, its
namespace's service and metadata shares).  In the review (367,000 instances through two
nodes) every node logged "this node was stalled for 5-16 s (stopped, frozen or starved)
... resyncing with its peers" and refused config reads ("catching up ... after this node
was stopped") for a while: tenant-b's ``config_get`` failed 31 of 277 times on one node;
when the flood's session lapsed, the instances going silent at once "stalled" the nodes
again.  Those stalls were false (a tick asked to be woken at a time already past: see
tests/core/test_mass_expiry_no_false_stall.py, which fails on that code).

Reproduced here: 200,000 instances through one node, then the session left to lapse
(the client crashed; health timings of 5 s and 10 s, not 15 s and 30 s); tenant-b reads
a config every 0.05 s with the Python client given the three nodes, as an application
does.  Expected: every read answered, and the lapsed instances evicted on every node.

Not asserted here: that no node logs a stall.  Whether a loop turn stays under the 1 s
stall threshold is a timing, and this machine's 2 cores are shared with the suite's
other workers (CI of a0ce6e3: 1.1-1.9 s "stalls" of real starvation on each node while
other tests ran beside this one; 0 in 4 runs alone).  It runs in the suite's
one-at-a-time group (tests/conftest.py): beside another load test, no node answered a
read within 5 s at times.  The figure is measured alone by
``python -m bench attacks --only F2`` (stalls per node, the bystander's pings); the test
prints the stalls it saw."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import raw_request, wait_until
from r83lib import Keys, ok, start_keyed

from meshreg.client import Client
from meshreg.errors import MeshregError

pytestmark = pytest.mark.timeout(300)

CLIENTS = {
    "tenant-a": 'allow = [{ namespace = "ta", access = "write" }]',
    "tenant-b": 'allow = [{ namespace = "tb", access = "admin" }]',
}
FLOOD = 200_000  # the default max_instances_per_client
BATCH = 500  # 64 KiB bodies
# unhealthy and evicted 5 s and 10 s after the last renewal, checked every 1 s (the
# defaults, 15, 30 and 5 s, made the test 50 s, most of it waiting); the stall threshold
# stays 1 s (a third of the least of the peer timeout, 3 s, and unhealthy_after)
TIMINGS = ("--unhealthy-after", "5", "--evict-after", "10", "--check-interval", "1")


def stats(keys: Keys, n: Any) -> dict[str, Any]:
    reply = raw_request(n.port, {"v": 1, "id": 1, "op": "stats"}, 10, keys.curve("cluster"))
    return reply["result"]  # type: ignore[no-any-return]


def test_a_tenant_burst_within_its_quota_leaves_other_tenants_served(tmp_path: Path) -> None:
    keys = Keys(tmp_path, CLIENTS)
    nodes = start_keyed(keys, 3, *TIMINGS)
    try:
        with keys.dealer("tenant-b", nodes[1].port) as b:
            wait_until(
                lambda: b.call("config_publish", namespace="tb", data_id="db",
                               content="s3cret", timeout=15)["ok"],
                30, 0.2, "a first config write (the members up)",
            )  # fmt: skip
        # every node serves config reads (a fresh node catches up from a majority first;
        # CI of a0ce6e3: 22 reads refused "catching up ... after a start" on a node still
        # starting when the reads began)
        wait_until(lambda: all(stats(keys, n)["config"]["ready"] for n in nodes), 60, 0.2,
                   "every node ready for config reads")  # fmt: skip
        failures: list[str] = []
        reads = [0]
        stop = threading.Event()
        reader = Client([n.address for n in nodes], namespace="tb",
                        key=str(tmp_path / "tenant-b.key"),
                        server_key=str(tmp_path / "cluster.pub"), timeout=10.0)  # fmt: skip

        def probe() -> None:
            while not stop.is_set():
                try:
                    got = reader.config_get("db")
                    if got is None or got.content != "s3cret" or got.from_cache:
                        failures.append(f"config_get answered {got!r}")
                except MeshregError as exc:
                    failures.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                reads[0] += 1
                stop.wait(0.05)

        prober = threading.Thread(target=probe)
        prober.start()
        registered, deadline = 0, time.monotonic() + 120
        try:
            with keys.dealer("tenant-a", nodes[0].port) as a:
                session = ok(a.call("session_open", namespace="ta"))["session"]
                for start in range(0, FLOOD, BATCH):
                    if time.monotonic() > deadline:
                        break
                    batch = [
                        {"service": f"flood{k // 40_000}", "ip": f"10.{k >> 16}.{k >> 8 & 255}."
                         f"{k & 255}", "port": 1000, "session": session}
                        for k in range(start, start + BATCH)
                    ]  # fmt: skip
                    res = ok(a.call("register_batch", timeout=60, namespace="ta",
                                    instances=batch))  # fmt: skip
                    registered += sum(1 for r in res["results"] if r is None)
                    if start % 20_000 == 0:
                        ok(a.call("session_renew", timeout=30, namespace="ta", session=session))
                ok(a.call("session_renew", timeout=30, namespace="ta", session=session))
            # tenant-a goes away without closing its session (a crash): its instances turn
            # unhealthy after unhealthy_after (5 s here) and are evicted after evict_after
            wait_until(
                lambda: all(stats(keys, n)["instances"]["total"] == 0 for n in nodes), 90, 1.0,
                "the lapsed session's instances evicted on every node",
            )
        finally:
            stop.set()
            prober.join(15)
            reader.close()
        stalls = {n.address: stats(keys, n)["stalls"] for n in nodes}
        stalled = [line for n in nodes for line in n.log().splitlines() if "stalled for" in line]
        print(f"stats.stalls {stalls}; e.g. {[s[24:90] for s in stalled[:3]]}")
        assert registered == FLOOD, f"only {registered} of {FLOOD} registered in 120 s"
        assert reads[0] > 100 and not failures, (
            f"tenant-a registered {registered} instances (its quota) through one node, then "
            f"went silent; tenant-b's config reads through a client given the three nodes: "
            f"{len(failures)} of {reads[0]} failed {failures[:3]}; stats.stalls {stalls}; "
            f"{len(stalled)} stall lines logged, e.g. {[s[24:90] for s in stalled[:3]]}"
        )
    finally:
        for n in nodes:
            n.cleanup()
