"""review25 F6: in the middle of the documented scale-out (3 -> 5: the new nodes D, E
started first with the full list; then old node A restarted with it), A takes D and E
for voting members and computes config owners over all five, so it forwards the writes
of the data ids D or E own in its view to them; but D and E are still learners of B and
C (whose lists do not name them), so they refuse the forwarded write: UNAVAILABLE "this
node is a config learner ... and no other member is up to take the write" (B and C are
up). About 2/5 of the data ids cannot be written through A (14 of 30 in one run) until
every old node runs the new list. A client with the other servers in its list retries
there ("nothing was written") and succeeds; one that talks to A only (a sidecar) fails.

Expected (README "Add or remove a node": during the change "nothing is split
meanwhile"; CONFIG.md "A new node: learner": a learner "forwards its writes"; it is
not the owner of any data id). Actual: refused.

Since the fix of review25 F4, a change of two members at once refuses config writes until
the lists agree (a majority of 3 of 5 and one of 2 of 3 may share no node); the same
forwarding happened with one node added (3 -> 4), the supported change, so this test
adds one: D, then A restarted with the 4-member list.  Fixed: a member that a
configured peer up does not list owns no data id on any node.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import NodeProcess, raw_request, start_all, wait_until
from r25lib import new_ports, peer_args

from meshreg import Client
from meshreg.configcenter.model import ConfigKey
from meshreg.configcenter.replication import responsible_config_node
from meshreg.errors import MeshregError

TIMINGS = ("--check-interval", "0.2", "--unhealthy-after", "3", "--evict-after", "6",
           "--peer-timeout", "1.0")  # fmt: skip


def _cfg(n: NodeProcess) -> dict:
    try:
        r = raw_request(n.port, {"v": 1, "id": 1, "op": "stats"}, 1.0)
    except Exception:  # noqa: BLE001
        return {}
    return r.get("result", {}).get("config", {}) if r.get("ok") else {}


@pytest.mark.timeout(150)
def test_config_writes_through_a_node_restarted_with_the_new_list_succeed(
    started_nodes, tmp_path: Path
) -> None:
    ports = new_ports(4)
    addrs = [f"127.0.0.1:{p}" for p in ports]

    def mk(i: int, k: int) -> NodeProcess:
        n = NodeProcess(*TIMINGS, *peer_args(ports[:k]), "--data-dir", f"{tmp_path}/d{i}",
                        port=ports[i])  # fmt: skip
        started_nodes.append(n)
        return n

    nodes = [mk(i, 3) for i in range(3)] + [mk(3, 4)]
    start_all(nodes[:3])
    wait_until(lambda: all(_cfg(n).get("ready") for n in nodes[:3]), 30, 0.2, "A, B, C ready")
    start_all(nodes[3:])
    wait_until(lambda: all(_cfg(n).get("ready") for n in nodes[3:]), 30, 0.2, "D ready")
    nodes[0].stop()
    nodes[0] = a = mk(0, 4)  # the first old node restarted with the new list
    a.start()
    wait_until(lambda: _cfg(a).get("ready") and _cfg(a).get("members_up") == 4, 30, 0.2,
               "A sees 4 members")  # fmt: skip
    failed: dict[str, str] = {}
    tried = 0
    for i in range(400):
        did = f"gl25-{i}"
        owner4 = responsible_config_node(ConfigKey("public", "DEFAULT_GROUP", did), addrs)
        if owner4 != addrs[3]:
            continue
        tried += 1
        with Client([a.address], timeout=3) as c:
            try:
                c.config_publish(did, "x")
            except MeshregError as exc:
                failed[did] = str(exc)[:260]
        if tried == 6:
            break
    assert not failed, (
        f"{len(failed)} of {tried} config writes through A (restarted with the 4-member "
        f"list; B and C up) of data ids D owns over the 4 members failed: "
        + "; ".join(f"{k}: {v}" for k, v in list(failed.items())[:2])
    )
