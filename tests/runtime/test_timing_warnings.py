"""Timings a cluster works badly with are said at start (allowed: a test may want them).

A node whose ``unhealthy_after`` is not above its ``peer_timeout`` marks the instances
renewed through a peer cut off from it before it can tell the peer is gone (a review
with real processes, 2026-12-07: unhealthy_after 2 s, peer_timeout 3 s: 7 of 23 live
instances marked in a cut, while 3 s / 1.5 s marked none in 5 runs)."""

from __future__ import annotations

import logging

import pytest
from helpers import free_port_pair

from meshreg.config import ClusterPolicy, HealthPolicy, NodeConfig
from meshreg.runtime.node import NodeRuntime


def _warnings(caplog: pytest.LogCaptureFixture, unhealthy: float, peer_timeout: float,
              peers: tuple[str, ...]) -> list[str]:  # fmt: skip
    config = NodeConfig(
        host="127.0.0.1",
        port=free_port_pair(4),
        peers=peers,
        health=HealthPolicy(check_interval=0.5, unhealthy_after=unhealthy,
                            evict_after=2 * unhealthy),  # fmt: skip
        cluster=ClusterPolicy(peer_timeout=peer_timeout, beacon_interval=0.25),
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="meshreg.node"):
        NodeRuntime(config)._check_timings()
    return [r.getMessage() for r in caplog.records if "not above peer_timeout" in r.getMessage()]


def test_unhealthy_after_not_above_the_peer_timeout_is_warned_of_in_a_cluster(
    caplog: pytest.LogCaptureFixture,
) -> None:
    (line,) = _warnings(caplog, 2.0, 3.0, ("127.0.0.1:1",))
    assert "unhealthy_after (2s)" in line and "peer_timeout (3s)" in line
    assert "--unhealthy-after" in line
    assert _warnings(caplog, 3.0, 3.0, ("127.0.0.1:1",))  # equal: still too late
    assert _warnings(caplog, 3.0, 1.5, ("127.0.0.1:1",)) == []
    assert _warnings(caplog, 2.0, 3.0, ()) == []  # a single node has no peer to lose
