"""review24 F1: after its server restarts, a consumer is blind to every change for 15 s.

A consumer (``Client([A, B, C])``, talking to A) watches a service.  A is restarted (a
rolling restart of the registry: SIGTERM, start again; it is caught up and ready from its
peers within a second).  Meanwhile the service changed: a provider replaced an instance
(deregistered the old one, registered a new one; an app's own rolling deploy).  The
restarted node lists the new set as soon as it is ready, but the consumer keeps its old
list (the deregistered instance in, the new one missing) for YOUNG_NODE_GRACE = 15 s,
because the node's list "drops" an instance the consumer had and the node is young.

README, Consumers: "pushed on every change"; the young-node guard is described as
protecting against a node that "may not have registered again yet, or it is still
catching up from its peers" -- here the node has caught up (ready) and the drop is a real
deregistration; the new instance is hidden too, although it cannot be the artefact the
guard is about.  Nacos users expect a reconnect to bring a full push at once.
"""

from __future__ import annotations

import time

import pytest
from helpers import wait_until
from r24lib import addresses, all_up, cluster, ready

from meshreg import Client


@pytest.mark.timeout(120)
def test_consumer_sees_changes_made_while_its_server_was_down(tmp_path) -> None:
    nodes = cluster(3, str(tmp_path))
    a, b, c = nodes
    prov = cons = None
    try:
        wait_until(lambda: all_up(nodes), 20, 0.1, "3 members up")
        prov = Client([b.address, c.address], beat_interval=0.5)
        prov.register("orders", "10.5.0.1", 80)
        prov.register("orders", "10.5.0.2", 80)
        cons = Client([a.address, b.address, c.address], server_order="listed")
        assert cons.server == a.address
        views: list[list[str]] = []
        cons.subscribe("orders", lambda xs: views.append(sorted(i.address for i in xs)))
        wait_until(lambda: views and views[-1] == ["10.5.0.1:80", "10.5.0.2:80"], 10, 0.02,
                   "the consumer sees both instances")  # fmt: skip

        assert a.stop() == 0
        prov.deregister("orders", "10.5.0.1", 80)  # the old instance goes ...
        prov.register("orders", "10.5.0.3", 80)  # ... a new one replaces it
        want = ["10.5.0.2:80", "10.5.0.3:80"]
        a.start()
        t0 = time.monotonic()
        wait_until(lambda: ready(a) and addresses(a, "orders") == want, 10, 0.05,
                   "the restarted node is ready and lists the new set")  # fmt: skip
        node_ok = time.monotonic() - t0
        try:
            wait_until(lambda: sorted(i.address for i in cons.instances("orders")) == want,
                       3.0, 0.05, "the consumer's view")  # fmt: skip
        except AssertionError:
            pass
        seen = sorted(i.address for i in cons.instances("orders"))
        waited = time.monotonic() - t0
        assert seen == want, (
            f"{waited:.1f}s after its server {a.address} restarted (it was ready and listed "
            f"{want} after {node_ok:.1f}s), the consumer still shows {seen}: the deregistered "
            "10.5.0.1 is still served and the new 10.5.0.3 is hidden (young-node guard, 15 s)"
        )
    finally:
        for cl in (cons, prov):
            if cl is not None:
                cl.close(timeout=3)
        for n in nodes:
            n.cleanup()
