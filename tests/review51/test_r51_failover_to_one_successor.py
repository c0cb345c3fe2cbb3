"""review51 F2: a dead node's clients all fail over to the same node.

``server_order="random"`` rotates the list given (``servers[start:] + servers[:start]``),
it does not shuffle it: every client that started on node k has node k+1 next.  When node
k dies, all of its clients move to node k+1 and none to the others; with 3 nodes the
survivor next in the list then carries two thirds of the fleet, with 5 nodes 40 %.
Measured (notes/review51.md): 80 clients on 3 nodes, 34/24/22; the node with 34 killed:
58/22 (all 34 to one), and after an outage 15/48/17, the node with 48 killed: 15/65.
Consul's client agents shuffle their server list each on its own (a failed server goes
to the end of a per-agent random order: agent/router/manager.go), and Nacos's client
starts from a random index (ServerListManager); what matters is that successors differ
between clients.
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from r51lib import SHORT, new_nodes, running, wait_until, watching_clients  # noqa: E402

CLIENTS = 60


@pytest.mark.timeout(180)
def test_a_dead_nodes_clients_spread_over_the_survivors() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        running(new_nodes(3, tmp, SHORT)) as nodes,
        watching_clients([n.address for n in nodes], CLIENTS, "succ") as clients,
    ):
        addrs = [n.address for n in nodes]
        before = {c: c.server for c in clients}
        counts = collections.Counter(before.values())
        victim_addr, _ = counts.most_common(1)[0]
        victim = next(n for n in nodes if n.address == victim_addr)
        victim.kill()
        moved = [c for c in clients if before[c] == victim_addr]
        wait_until(lambda: all(c.server != victim_addr for c in moved), 20, 0.1,
                   "the dead node's clients moved")  # fmt: skip
        to = collections.Counter(c.server for c in moved)
        survivors = [a for a in addrs if a != victim_addr]
        least = min(to.get(a, 0) for a in survivors)
        # each moved client's next server is either survivor at random: with >= 20 of
        # them, none to one survivor has a chance of 2 * 0.5**20 (~2e-6) once shuffled,
        # and was certain with the rotated list
        assert least >= 1, (
            f"{CLIENTS} clients over 3 nodes ({dict(counts)}); {victim_addr} killed: its "
            f"{len(moved)} clients went to {dict(to)} (the other survivor got {least}); "
            f"fleet now {dict(collections.Counter(c.server for c in clients))}"
        )
