"""Memory given back after a large release (runtime/memory_release), with a fake clock,
and on a real node flooded with subscriptions."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import pytest
import zmq
from helpers import HOST, NodeProcess, raw_request, wait_until

from meshreg import Client
from meshreg.core.subscriber_counts import SubscriberCounts
from meshreg.runtime.memory_release import ReleasePolicy, trim_heap
from meshreg.runtime.subscription_gate import SubscriptionGate

pytestmark = pytest.mark.timeout(120)


def test_release_once_the_ends_have_stopped() -> None:
    policy = ReleasePolicy(drop=1000, min_interval=60.0, quiet=2.0)
    assert policy.due(0, 0.0) == 0
    assert policy.due(500, 5.0) == 0  # few
    assert policy.due(3000, 10.0) == 0  # 3,000 ended, still ending
    assert policy.due(4000, 11.0) == 0  # still ending
    assert policy.due(4000, 12.0) == 0  # for 1 s only
    assert policy.due(4000, 13.0) == 4000  # 2 s without an end
    assert policy.released == 1
    assert policy.due(4000, 25.0) == 0  # counted from the release on
    policy.due(11_000, 30.0)
    assert policy.due(11_000, 40.0) == 0  # 7,000 ended, but one release per minute
    assert policy.due(11_000, 73.0) == 7000
    assert policy.due(11_990, 200.0) == 0  # a few: nothing to give back
    assert policy.released == 2


def test_tables_rebuilt_at_their_size_keep_what_they_count() -> None:
    gate = SubscriptionGate(max_subscriptions=100_000)
    counts = SubscriberCounts()
    topics = [f"ns\x00G\x00s{i}\x00".encode() for i in range(50_000)]
    for t in topics:
        assert gate.subscribe(t, readable=True, conn="c1") is None
        counts.subscribed(None)
    for t in topics[1:]:
        assert gate.unsubscribe(t, conn="c1")
    assert gate.ended == 49_999
    big = sys.getsizeof(gate.admitted), sys.getsizeof(gate._holders)
    gate.compact()
    counts.compact()
    assert sys.getsizeof(gate.admitted) < big[0] // 100
    assert sys.getsizeof(gate._holders) < big[1] // 100
    assert gate.total == 1 and gate.watches(topics[0]) and not gate.watches(topics[1])
    assert gate.subscribe(topics[0], readable=True, conn="c1") == "again"  # still held
    assert gate.unsubscribe(topics[0], conn="c1") and gate.total == 0
    assert counts.total() == 50_000


def test_trim_heap_says_what_it_gave_back(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="meshreg.node")
    thread = trim_heap("a test")
    if thread is None:
        pytest.skip("no malloc_trim in this C library (not glibc)")
    thread.join(10)
    assert any("a test: resident memory" in r.getMessage() for r in caplog.records)


def test_a_node_gives_memory_back_after_a_subscription_flood_ends(
    start_node: Callable[..., NodeProcess],
) -> None:
    """The review of 2026-12-07: 200,000 subscriptions took a node from 40 to 270 MB,
    and it stayed at 245 MB once they had ended.  Now the node rebuilds its tables and
    trims its heap (measured: 249 -> 108 MB); here 30,000, and watchers still served."""
    node = start_node("--log-level", "info")
    flood = 30_000
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SNDHWM, 0)
    sub.setsockopt(zmq.RCVHWM, 10)

    def stats() -> dict:
        return raw_request(node.port, {"v": 1, "id": 1, "op": "stats"})["result"]

    try:
        sub.connect(f"tcp://{HOST}:{node.port + 1}")
        for i in range(flood):
            sub.setsockopt(zmq.SUBSCRIBE, f"public\x00G\x00s{i}\x00".encode())
        wait_until(lambda: stats()["subscriptions_admitted"] >= flood, 60, interval=0.2,
                   what="the flood admitted")  # fmt: skip
        assert stats()["memory_releases"] == 0
    finally:
        sub.close()
    wait_until(lambda: stats()["subscriptions_admitted"] == 0, 30, interval=0.2,
               what="the flood's subscriptions ended")  # fmt: skip
    wait_until(lambda: stats()["memory_releases"] == 1, 30, interval=0.2,
               what="memory given back")  # fmt: skip
    wait_until(lambda: "subscriptions or instances ended: resident memory" in node.log(), 10,
               what="the release logged")  # fmt: skip
    with Client([node.address]) as client:
        seen: list[int] = []
        client.subscribe("orders", lambda xs: seen.append(len(xs)))
        wait_until(lambda: seen, 10, what="a watcher served after the release")
        client.register("orders", "10.0.0.1", 8080)
        wait_until(lambda: seen[-1] == 1, 10, what="a change pushed after the release")
