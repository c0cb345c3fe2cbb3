"""review78 F3: a node that sees no majority closes the heartbeat fast path for every beat
(``DistroNode._gate_fast_beats``: ``self._cut_off`` -> ``registry.fast_gate = False``),
not only for the beats sent straight to it as their owner (``"direct": true``, the only
ones ``handle`` refuses).  Before the fix a node that was not isolated kept the fast path
for the services it owns (``fast_gate`` = its owner cache); an isolated node (no peer
heard) had it closed already (``_replicating``, unchanged).  So the cost is new where a
node hears some peers but no majority: both sides of 2 | 3 in five, 2 of 4 up, 2 of 5 up.
There every beat of the services it owns - through the server or straight to it - pays
the full path: tests/review78/gate_cpu.py measured 5.0 us per beat with the gate open and
11.7 us closed (2.3x; bench/beatloop.py's method, 20,000 beats, best of 6).

Seeded simulation (tests/sim network, real ``NodeRuntime``s), 4 nodes, short timings: an
instance of a service n0 owns among {n0, n1} registered through n0 at t=2; n2 and n3
stopped at t=3 for good; at t=12 n0 and n1 agree on their view (n0, n1), neither is
isolated, each sees 2 of 4 (``_minority``), and a plain beat of the healthy instance (not
direct: never refused) is declined by ``RegistryNode.fast_beat``
(meshreg/core/registry.py): the gate is ``False``.  At e12a23e (before the fix) it is
taken (the gate is the owner cache).
"""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(os.path.dirname(HERE), "sim")
sys.path.insert(0, SIM)

from network import Network  # noqa: E402
from test_faults_sim import SHORT  # noqa: E402

from meshreg.core.mapping import responsible_node  # noqa: E402
from meshreg.core.registry import RegistryNode  # noqa: E402
from meshreg.model import ServiceKey  # noqa: E402


@pytest.mark.timeout(60)
def test_f3_a_node_seeing_two_of_four_takes_every_beat_through_the_full_path() -> None:
    net = Network(7803, ["n0", "n1", "n2", "n3"], health=SHORT.health, cluster=SHORT.cluster)
    key = ("public", "DEFAULT_GROUP", "")
    service = next(
        f"svc{i}"
        for i in range(50)
        if responsible_node(ServiceKey(key[0], key[1], f"svc{i}"), ("n0", "n1")) == "n0"
    )
    for i, node_id in enumerate(net.nodes):
        net.at(0.1 * i, net.start, node_id)
    done: list[object] = []
    fields = {"service": service, "ip": "10.1.0.1", "port": 80}
    net.at(
        2.0,
        lambda: net.client_request(
            net.nodes["n0"], "register", next(net.req_ids), fields, done.append
        ),
    )
    for node_id in ("n2", "n3"):
        net.at(3.0, net.crash, node_id)
    beats: list[object] = []  # its client beats through n0 every 0.5 s (the first after a
    # view change takes the full path: it raises the record's evidence to the new floor)
    net.every(0.5, lambda: net.client_request(net.nodes["n0"], "beat", next(net.req_ids), fields,
                                              beats.append), start=2.5)  # fmt: skip
    net.run_until(12.0)
    core = net.nodes["n0"].core
    assert done and beats and all(b[0] == "ok" for b in beats) and core.members() == ("n0", "n1"), (
        f"setup: {done} {beats[-3:]} {core.members()}"
    )
    assert not core._replicating, "setup: views agree, not isolated"
    reg: RegistryNode = core.registry
    gate = reg.fast_gate
    taken = reg.fast_beat((key[0], key[1], service), ("10.1.0.1", 80, "DEFAULT"), net.now)
    assert taken, (
        f"n0 (n2, n3 down; n0 and n1 up, agreeing; it sees {core._member_counts()} "
        f"up/configured, cut_off={getattr(core, '_cut_off', None)}): a plain beat of a "
        f"healthy instance (not direct: never refused) was declined by the fast path "
        f"(fast_gate={gate!r}); every beat of the services it owns now costs the full path "
        "(2.3x the CPU: tests/review78/gate_cpu.py)"
    )
