"""review83 F2: one low-privilege key, within its quotas, stalls every node of a 3-node
cluster for seconds, and other tenants' config reads fail meanwhile.

``tenant-a`` may write its own namespace ``ta`` only.  It opens a session and sends
``register_batch``es of 500 instances through one node, back to back, up to its
``max_instances_per_client`` (200,000: every instance is within its quota, its
namespace's service and metadata shares).  There is no per-client write rate (reads have
``read_rate_per_client``; Consul has per-client request rate limits).  In the review
(367,000 instances through two nodes) every node logged "this node was stalled for
5-16 s (stopped, frozen or starved) ... resyncing with its peers", the nodes took each
other for down, and each refused config reads ("catching up ... after this node was
stopped") for a while: tenant-b's ``config_get`` failed 31 of 277 times on one node,
latencies up to 1.7 s; when the flood's session lapsed, the 367,000 instances going
silent at once stalled the nodes again (up to 15.9 s) and turned self-preservation on
for 900 s (no eviction of anybody's dead instances on that node).

Reproduced here: 200,000 instances through one node, then the session left to lapse
(the client crashed); tenant-b reads a config on every node every 0.1 s meanwhile.
Expected: one tenant's burst within its quotas, and its lapse, do not stall the nodes (a
node's loop turn stays under its stall threshold, ``stats.stalls`` 0) and the other
tenant's reads are all answered."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import raw_request, wait_until
from r83lib import Keys, ok, start_keyed

pytestmark = pytest.mark.timeout(300)

CLIENTS = {
    "tenant-a": 'allow = [{ namespace = "ta", access = "write" }]',
    "tenant-b": 'allow = [{ namespace = "tb", access = "admin" }]',
}
FLOOD = 200_000  # the default max_instances_per_client
BATCH = 500  # 64 KiB bodies


def test_a_tenant_burst_within_its_quota_does_not_stall_the_cluster(tmp_path: Path) -> None:
    keys = Keys(tmp_path, CLIENTS)
    nodes = start_keyed(keys, 3)
    try:
        with keys.dealer("tenant-b", nodes[1].port) as b:
            wait_until(
                lambda: b.call("config_publish", namespace="tb", data_id="db",
                               content="s3cret", timeout=15)["ok"],
                30, 0.2, "a first config write (the members up)",
            )  # fmt: skip
        failures: list[str] = []
        reads = [0]
        stop = threading.Event()

        def probe(port: int) -> None:
            with keys.dealer("tenant-b", port) as b:
                while not stop.is_set():
                    try:
                        r = b.call("config_get", timeout=3.0, namespace="tb", data_id="db")
                        if not r["ok"]:
                            failures.append(f":{port} {r['error']['message'][:160]}")
                    except AssertionError:  # no reply within 3 s
                        failures.append(f":{port} no answer within 3 s")
                        return
                    reads[0] += 1
                    stop.wait(0.1)

        probes = [threading.Thread(target=probe, args=(n.port,)) for n in nodes]
        for t in probes:
            t.start()
        registered, deadline = 0, time.monotonic() + 120
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
                res = ok(a.call("register_batch", timeout=60, namespace="ta", instances=batch))
                registered += sum(1 for r in res["results"] if r is None)
                if start % 20_000 == 0:
                    ok(a.call("session_renew", timeout=30, namespace="ta", session=session))
            ok(a.call("session_renew", timeout=30, namespace="ta", session=session))
            # tenant-a goes away without closing its session (a crash): its instances turn
            # unhealthy after unhealthy_after (15 s) and are evicted after evict_after (30 s)

            def stats(n: Any) -> dict[str, Any]:
                reply = raw_request(n.port, {"v": 1, "id": 1, "op": "stats"}, 10,
                                    keys.curve("cluster"))  # fmt: skip
                return reply["result"]  # type: ignore[no-any-return]

            wait_until(lambda: all(stats(n)["instances"]["total"] == 0 for n in nodes), 90, 1.0,
                       "the lapsed session's instances evicted on every node")  # fmt: skip
            stop.set()
            for t in probes:
                t.join(10)
            stalls = {n.address: stats(n)["stalls"] for n in nodes}
        assert registered == FLOOD, f"only {registered} of {FLOOD} registered in 120 s"
        stalled = [line for n in nodes for line in n.log().splitlines() if "stalled for" in line]
        assert not failures and not any(stalls.values()), (
            f"tenant-a registered {registered} instances (its quota) through one node; "
            f"then went silent; tenant-b's config reads on the three nodes: {len(failures)} of "
            f"{reads[0] + len(failures)} failed {failures[:3]}; stats.stalls {stalls}; "
            f"{len(stalled)} stall lines logged, e.g. {[s[24:90] for s in stalled[:3]]}"
        )
    finally:
        for n in nodes:
            n.cleanup()
