"""review29 F3: on a cluster without keys, one forged `beacon` with `leaving: true` sent to
a node's P+3 makes it count a live peer down for good: it ignores every later beacon of
that incarnation (membership.py: ``left_epoch``), so the live peer stays down in its view
until that peer restarts, while the peer still counts it up (views apart: both own the
same services; configs lose their majority on a 2-node cluster).

Without a key anyone who reaches the ports "may do anything" (SECURITY.md), so this is
in the documented exposure; but before the `leaving` flag (CHANGELOG, review27 F1) a
forged beacon was undone by the peer's next real one within a beacon interval, and now
one datagram splits the views indefinitely, logged as an ordinary "peer ... is down".
A member that goes on beaconing is evidently not leaving: expected, as with any silence,
that it is counted up again once its beacons keep coming (Consul/Serf: a "leave" intent
is superseded by a newer alive message of the same node).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "review27"))
from r27lib import all_ready, cluster, req  # noqa: E402
from r29lib import RawDealer, wait_until  # noqa: E402


def _state(node, address: str) -> str | None:  # type: ignore[no-untyped-def]
    r = req(node, "cluster")
    if not r or not r.get("ok"):
        return None
    for m in r["result"]["members"]:
        if m.get("address") == address:
            return str(m.get("state"))
    return None


@pytest.mark.timeout(90)
def test_a_forged_leave_beacon_does_not_keep_a_live_peer_down(tmp_path: Path) -> None:
    nodes = cluster(2, str(tmp_path))
    try:
        wait_until(lambda: all_ready(nodes), 30, what="both nodes ready")
        a, b = nodes
        epoch = req(b, "ping")["result"]["epoch"]
        forged = dict(node=b.address, address=b.address, epoch=epoch, ready=True,
                      seq=10**9, leaving=True)  # fmt: skip
        d = RawDealer(a.port + 3)  # any process that reaches P+3: no key on this cluster
        try:
            r = d.call("beacon", timeout=3, **forged)
        finally:
            d.close()
        assert r.get("ok"), r
        wait_until(lambda: _state(a, b.address) == "down", 5, what="A counts B down")
        # B is alive and beacons every 0.5 s; give A three peer timeouts (3 s each)
        try:
            wait_until(lambda: _state(a, b.address) == "up", 9, interval=0.25,
                       what="A counts the live B up again")  # fmt: skip
        except AssertionError:
            pytest.fail(
                "one forged leaving beacon to A's P+3 made A count the live B down for "
                f"good: still {_state(a, b.address)!r} 9 s later while B beacons every "
                f"0.5 s and B counts A {_state(b, a.address)!r}"
            )
    finally:
        for n in nodes:
            n.cleanup()
