"""review56 F2: after a restart of the whole cluster, once ONE provider has registered
again, every consumer is handed an EMPTY list for the services whose providers have not
re-registered yet -- although they never stopped and the tables are seconds old.  The
consumer's callback gets [] (and `select()` raises NoInstanceAvailableError) until the
late provider's next renewal registers its instances again (up to a beat interval, 5 s
at the defaults).

What the docs promise (README, "Push-empty protection"): "A list from a restarted node
whose registry table is less than 15 s old that drops instances the consumer sees, empty
or partial, is not trusted at all (its providers may not have registered again yet): the
consumer keeps its list and asks again every second until that node lists them or its
table is 15 s old. ... after a whole-cluster restart every table is young (the
`instances` reply's `table_age`), so neither a node's restart nor a whole-cluster restart
blinds consumers."  README, Consumers: "A consumer never goes blind, even while the
registry is in trouble".  The relaxation the README adds ("A young node asked for the
second opinion on an emptying change that came from a node the consumer already trusts
and whose table is young too, and that agrees, is believed (in a new cluster every node
is young ...)") is what lets it through: a whole-cluster restart looks like a new cluster
as soon as any provider's registrations make the restarted nodes trusted.  review33 F1
(the same restart, ONE provider) passes because nothing is trusted before it returns.

Observed (5 nodes, README "A cluster", short health timings; provider process A with 100
instances over svc0..3 and provider process B with 100 over svc4..7, both on sessions,
renewing every 1 s; 6 consumers, one per node and one given every node): every node
SIGTERMed at once (exit 0) and started again 5 s later.  The providers register again by
themselves, A 0.25 s before B.  In 3 runs of 3, 2, 3 and 5 of the 6 consumers were called
with 0 instances for each of svc4..7 (B's), then with the 25 again 0.13-0.25 s later;
svc0..3 never dipped.  With B's return delayed by 2 s (below: stopped during the
restart), every consumer held [] for B's service for 1.3-1.8 s, 4 runs of 4, with SIGTERM
and with SIGKILL alike, with short and with default health timings (B stopped ~8 s, half
of the default `unhealthy_after`).  The nodes' tables were 2-3 s old.

Here: 3 nodes (default health timings, peer_timeout 1 s), two provider processes (services
r56a and r56b, 3 instances each), a consumer per node; every node SIGTERMed, started again
5 s later; provider B (SIGSTOPped during the restart) continued 2 s after A's instances
are listed again; no consumer may be handed a list of either service short of its 3 live
instances.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import NodeProcess, free_port_pair, raw_request, start_all, wait_until  # noqa: E402

from meshreg import Client  # noqa: E402

PROVIDER = r"""
import sys
from meshreg import Client
c = Client(sys.argv[1].split(","), beat_interval=1.0, handle_sigterm=False)
for k in range(3):
    c.register(sys.argv[2], sys.argv[3], 8000 + k)
print("registered", flush=True)
sys.stdin.readline()
c.close()
"""


def _listed(port: int, service: str) -> int:
    try:
        reply = raw_request(port, {"v": 1, "id": 1, "op": "instances", "namespace": "public",
                                   "service": service, "healthy_only": True}, 1.0)  # fmt: skip
    except Exception:
        return -1
    return len(reply["result"]["instances"]) if reply["ok"] else -1


@pytest.mark.timeout(120)
def test_full_restart_does_not_empty_lists_of_late_providers(started_nodes) -> None:
    # default health timings (unhealthy after 15 s): B's stop below (~8 s) is no death
    ports = [free_port_pair() for _ in range(3)]
    peers = [arg for p in ports for arg in ("--peer", f"127.0.0.1:{p}")]
    nodes = [NodeProcess("--peer-timeout", "1.0", *peers, port=p) for p in ports]
    started_nodes.extend(nodes)
    start_all(nodes)
    servers = ",".join(n.address for n in nodes)
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))}  # fmt: skip
    providers = [
        subprocess.Popen([sys.executable, "-c", PROVIDER, servers, service, ip],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for service, ip in (("r56a", "10.56.2.1"), ("r56b", "10.56.2.2"))
    ]  # fmt: skip
    events: list[tuple[float, str, int]] = []
    lock = threading.Lock()

    def listener(service: str):
        def on_change(instances) -> None:
            with lock:
                events.append((time.monotonic(), service,
                               sum(1 for i in instances if i.healthy and i.enabled)))  # fmt: skip

        return on_change

    try:
        for p in providers:
            assert p.stdout is not None and p.stdout.readline().strip() == "registered"
        wait_until(lambda: all(_listed(n.port, s) == 3 for n in nodes for s in ("r56a", "r56b")),
                   15, 0.1, "both services listed on every node")  # fmt: skip
        consumers = [Client([n.address]) for n in nodes]  # one per node, as a sidecar's
        try:
            for consumer in consumers:
                for service in ("r56a", "r56b"):
                    consumer.subscribe(service, listener(service))
            wait_until(lambda: sum(1 for _, _, n in events if n == 3) >= 6,
                       10, 0.05, "every consumer holding both lists")  # fmt: skip
            t0 = time.monotonic()
            os.kill(providers[1].pid, signal.SIGSTOP)  # B registers again later than A
            stoppers = [threading.Thread(target=n.stop) for n in nodes]
            for t in stoppers:
                t.start()
            for t in stoppers:
                t.join()
            assert [n.proc.returncode for n in nodes if n.proc] == [0, 0, 0]
            down_until = time.monotonic() + 5.0  # the maintenance window
            wait_until(lambda: time.monotonic() >= down_until, 10, 0.1, "the window to pass")
            start_all(nodes)
            wait_until(lambda: all(_listed(n.port, "r56a") == 3 for n in nodes), 30, 0.1,
                       "provider A registered again on every node")  # fmt: skip
            a_back = time.monotonic()
            wait_until(lambda: time.monotonic() - a_back >= 2.0, 5, 0.1, "B's delay")
            os.kill(providers[1].pid, signal.SIGCONT)
            wait_until(
                lambda: all(_listed(n.port, s) == 3 for n in nodes for s in ("r56a", "r56b")),
                30, 0.1, "both providers registered again on every node",
            )  # fmt: skip
            settled = time.monotonic()
            wait_until(lambda: time.monotonic() - settled >= 2.0, 5, 0.1, "pushes to land")
        finally:
            for consumer in consumers:
                consumer.close()
    finally:
        for p in providers:
            os.kill(p.pid, signal.SIGCONT)
            try:
                assert p.stdin is not None
                p.stdin.write("\n")
                p.stdin.flush()
                p.wait(5)
            except Exception:
                p.kill()
    with lock:
        emptied = [(round(t - t0, 2), s, n) for t, s, n in events if t >= t0 and n < 3]
        after = [(round(t - t0, 2), s, n) for t, s, n in events if t >= t0]
    assert not emptied, (
        f"after the whole cluster was stopped with SIGTERM and started again, the consumer "
        f"was handed lists short of the providers' live instances (t after the stop, "
        f"service, healthy instances): {emptied}; every callback since the stop: {after}"
    )
