"""review25 F2: a node whose wall clock is a few seconds BEHIND (3 s; DISTRO.md "Clock
skew": "Smaller offsets are not fenced", the cluster shows it up) makes every registry
write it forwards fail: the copy it sends to the service's owner carries a deadline on
its own clock (core/distro ``_copy_deadline``: ``min(deadline, now + wall_offset +
wait)``), which the owner, whose clock is right, finds past at arrival and refuses
("reached node ... 1s after its deadline ... check the clocks"); the forwarding node
relays the refusal instead of applying the write itself.

Every fresh client that talks to that node (the CLI: ``meshreg register``,
``deregister``, ``service-set``, ``instance-set``; any client before it learns the owners,
or after an owner failed to answer) gets UNAVAILABLE for the 2/3 of the services other
nodes own, whatever the client's own clock.  From about 2 s behind (the forwarder's wait
is ``peer_request_timeout``, 2 s).

Expected (README "The Python client": a write through a node that forwards it is
answered "with the owner's answer or by applying the write itself"; DISTRO.md "Clock
skew" names no failure for a node behind by seconds).  Actual: refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import service_owned_by, start_all, wait_until
from r25lib import make_nodes, members_up, new_ports

from meshreg import Client
from meshreg.errors import MeshregError

BEHIND = -3.0
TIMINGS = ("--check-interval", "0.2", "--unhealthy-after", "3", "--evict-after", "6",
           "--peer-timeout", "1.0")  # fmt: skip


@pytest.mark.timeout(90)
def test_writes_forwarded_by_a_node_3s_behind_succeed(started_nodes, tmp_path: Path) -> None:
    nodes = make_nodes(new_ports(3), TIMINGS, str(tmp_path), skews={0: BEHIND})
    started_nodes.extend(nodes)
    start_all(nodes)
    wait_until(lambda: members_up(nodes), 20, 0.2, "3 members up")
    ids = [n.address for n in nodes]
    failed: dict[str, str] = {}
    tried = 0
    for owner in (1, 2):
        for k in range(3):
            svc = service_owned_by(ids[owner], ids, f"fw25-{owner}{k}-")
            tried += 1
            # a fresh client per write, as each CLI command is: it goes through its server
            with Client([nodes[0].address], timeout=3.0) as c:
                try:
                    c.register(svc, "10.25.1.1", 80)
                except MeshregError as exc:
                    failed[svc] = str(exc)[:240]
    assert not failed, (
        f"{len(failed)} of {tried} registrations through a node {-BEHIND:g} s behind (owned "
        f"by the other nodes) failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items())
    )
