"""review48 F5 (low): in a brand-new cluster (first start, nothing restarted), a provider's
deregistration of a service's last instance reaches a subscribed consumer only when the
nodes' tables are 15 s old: the consumer keeps handing the deregistered instance out of
select() (~300 times at 20/s in the lab), and logs that "the whole cluster restarted".
README "Push-empty protection" describes the 15 s guard for restarted nodes; Nacos and
Consul apply a deregistration at once."""

from __future__ import annotations

import logging
import tempfile
import time

import pytest
from r48lib import Recorder, client, new_nodes, running, wait_ready, wait_until

from meshreg.errors import NoInstanceAvailableError


@pytest.mark.timeout(120)
def test_scale_to_zero_in_a_new_cluster_reaches_consumers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="meshreg.client")
    nodes = new_nodes(3, tempfile.mkdtemp(prefix="r48-f5-"))
    with running(nodes):
        for n in nodes:
            wait_ready(n)
        addrs = [n.address for n in nodes]
        p = client(addrs)
        # three consumers, each starting at another node of the list
        cs = [client(addrs[k:] + addrs[:k], server_order="listed") for k in range(3)]
        try:
            seen = [Recorder() for _ in cs]
            for c, r in zip(cs, seen, strict=True):
                c.subscribe("fresh", r)
            p.register("fresh", "10.19.0.1", 1)
            wait_until(lambda: all(r.last() == {"10.19.0.1:1"} for r in seen), 10, what="listed")
            p.deregister("fresh", "10.19.0.1", 1)
            t0 = time.monotonic()
            handed_out = 0

            def emptied() -> bool:
                nonlocal handed_out
                done = True
                for c in cs:
                    try:
                        c.select("fresh")
                    except NoInstanceAvailableError:
                        continue
                    handed_out += 1
                    done = False
                return done

            try:
                wait_until(emptied, 5, 0.05, "consumer sees the deregistration")
            except AssertionError:
                wait_until(emptied, 30, 0.05, "consumer sees it at all")
                young = [r.getMessage() for r in caplog.records if "restarted" in r.getMessage()]
                pytest.fail(
                    f"a new cluster: the last instance's deregistration reached the consumer "
                    f"{time.monotonic() - t0:.1f} s later; select() of the 3 consumers handed the "
                    f"deregistered instance out {handed_out} times meanwhile; log: {young[:2]}"
                )
        finally:
            p.close(1)
            for c in cs:
                c.close(1)
