"""Bounded stamps against clock skew (docs/DISTRO.md, "Bounded stamps").

Nodes whose clocks differ by a few seconds replicate as before (the bound is far
above what NTP leaves); a node whose clock is more than ``MAX_CLOCK_AHEAD`` ahead
of a peer's has its stamps rejected by that peer, visibly (``future_stamps``), and
never drags the peer's clock past the bound, while the peer's own writes still reach
it: neither is ever left unable to replicate what the other accepts.
"""

from __future__ import annotations

import os
import sys

from meshreg.core.versions import TAG_BITS
from meshreg.wire import limits

sys.path.insert(0, os.path.dirname(__file__))

from network import Network  # noqa: E402
from test_distro_sim import (  # noqa: E402
    add_providers,
    check_invariants,
    core_of,
    run_settled,
    scenario_message,
)

WALL = 1_790_000_000.0  # s; the slower node's wall clock at simulated time 0


def skewed_cluster(seed: int, skews: list[float]) -> Network:
    net = Network(seed, [f"n{i}" for i in range(len(skews))])
    for node, skew in zip(net.nodes.values(), skews, strict=True):
        node.wall_offset = WALL + skew
    for i, node_id in enumerate(net.nodes):
        net.at(0.1 * i, net.start, node_id)
    return net


def test_nodes_with_a_5_s_clock_skew_replicate_and_converge() -> None:
    net = skewed_cluster(61, [0.0, 5.0, 2.5])
    providers = add_providers(net, services=8, per_service=3)
    problems = run_settled(net, 60.0)
    problems += check_invariants(net, providers)
    for node_id in net.nodes:
        counters = core_of(net, node_id).counters
        if counters["future_stamps"] or counters["replication_errors"]:
            problems.append(f"{node_id} rejected peer data: {counters}")
    assert net.counts.get("peer_data_rejected", 0) == 0
    assert not problems, scenario_message(net, "5 s clock skew", problems)


def test_a_node_more_than_the_bound_ahead_is_rejected_visibly_and_moves_no_clock() -> None:
    ahead = limits.MAX_CLOCK_AHEAD + 5.0
    net = skewed_cluster(62, [0.0, ahead])
    add_providers(net, services=8, per_service=2)
    net.run_until(40.0)
    slow, fast = core_of(net, "n0"), core_of(net, "n1")
    assert slow.counters["future_stamps"] > 0  # n1's writes, refused by n0
    assert net.counts.get("peer_data_rejected", 0) > 0  # and reported (rate-limited)
    bound_us = int((40.0 + WALL + limits.MAX_CLOCK_AHEAD) * 1_000_000)
    assert slow.hlc.last_us <= bound_us  # never dragged past the bound
    assert fast.counters["future_stamps"] == 0  # n0's stamps are in n1's past: accepted
    # what n0 wrote (the services it owns) reached n1
    mine = [k for k in slow.store.services if slow.owner_of(k) == "n0"]
    assert mine and all(k in fast.store.services for k in mine)
    # and n1's stamps still pass the wire everywhere: its clock is its own wall clock
    assert fast.hlc.last_us >> (63 - TAG_BITS) == 0
