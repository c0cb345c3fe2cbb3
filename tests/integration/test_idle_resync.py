"""An idle consumer's periodic resync costs its node one ``revisions`` request per 500
watched services, not one ``instances`` pull per service (review24: one idle client
watching 2,000 services sent its node 200 pulls a second, forever)."""

from __future__ import annotations

import pytest
from helpers import NodeProcess, RawDealer, wait_until

from meshreg import Client

WATCHED = 600  # two checks a resync (500 a request)
RESYNC = 0.5  # s


def _requests(ops: RawDealer) -> dict[str, int]:
    return ops.call("stats")["result"]["requests"]


@pytest.mark.timeout(60)
def test_an_idle_consumer_checks_its_views_instead_of_pulling_them() -> None:
    node = NodeProcess()
    prov = cons = ops = None
    try:
        node.start()
        ops = RawDealer(node.port)
        prov = Client([node.address])
        prov.register_many(
            [{"service": f"s{i}", "ip": "10.9.0.1", "port": 80} for i in range(WATCHED // 2)]
        )  # half exist, half are watched while absent
        cons = Client([node.address], resync_interval=RESYNC)
        for i in range(WATCHED):
            cons.subscribe(f"s{i}", lambda xs: None)
        pulls = _requests(ops).get("instances", 0)
        assert pulls >= WATCHED
        checks = _requests(ops).get("revisions", 0)
        wait_until(
            lambda: _requests(ops).get("revisions", 0) >= checks + 8, 20, 0.05, "4 resyncs"
        )
        counts = _requests(ops)
        assert counts.get("instances", 0) - pulls <= 2, (
            f"{counts.get('instances', 0) - pulls} pulls in 4 resyncs of {WATCHED} idle views"
        )
        # still pushed: a change reaches the view, and the next checks find it current
        prov.register("s1", "10.9.0.2", 80)
        wait_until(lambda: len(cons.instances("s1")) == 2, 10, 0.02, "the pushed change")
    finally:
        for cl in (cons, prov):
            if cl is not None:
                cl.close(timeout=5)
        if ops is not None:
            ops.close()
        node.cleanup()
