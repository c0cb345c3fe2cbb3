"""Notifications in a burst larger than a subscriber's queue on the node (NOTIFY_SNDHWM):
a subscriber that pauses and reads again gets every one, in order; one that never reads
holds nobody up for long (runtime/notify_outbox).  Before the outbox, libzmq dropped
what exceeded the queue, for a reading subscriber too whenever the node's I/O thread fell
behind its loop, and the last change of a service reached the consumer only at its 10 s
re-pull (review24's disk-cache test failed 4 runs in 8 on a loaded 2-core VM)."""

from __future__ import annotations

import threading
from typing import Any

import msgpack
import pytest
import zmq
from helpers import NodeProcess, RawDealer, wait_until

from meshreg.client.agent import SUB_RCVHWM
from meshreg.runtime.notify_outbox import HOLD_S
from meshreg.transport.sockets import NOTIFY_SNDHWM

CHANGES = 3 * NOTIFY_SNDHWM
META = {f"k{j}": "v" * 1000 for j in range(4)}  # ~4 KB deltas: 12 MB, past kernel buffers
TOPIC = b"public\0DEFAULT_GROUP\0burst\0"


class Reader(threading.Thread):
    """A SUB on the service's topic; reads every notification once ``go`` is set.
    ``queue``: its own RCVHWM (the Python client's is 100,000; a small one makes the
    node's queue for it fill as soon as it pauses)."""

    def __init__(self, port: int, go: bool, queue: int) -> None:
        super().__init__(daemon=True)
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, queue)
        if queue < 100:
            self.sock.setsockopt(zmq.RCVBUF, 4096)
        self.sock.connect(f"tcp://127.0.0.1:{port}")
        self.sock.setsockopt(zmq.SUBSCRIBE, TOPIC)
        self.ports: list[int] = []
        self.go = threading.Event()
        self.stop = threading.Event()
        if go:
            self.go.set()

    def run(self) -> None:
        self.go.wait(60)
        while not self.stop.is_set():
            if self.sock.poll(50):
                body = msgpack.unpackb(self.sock.recv_multipart()[1])
                if body["kind"] == "delta":
                    self.ports.extend(u["port"] for u in body["upsert"])

    def close(self) -> None:
        self.stop.set()
        self.go.set()
        self.join(5)
        self.sock.close()


def _notification_stats(ops: RawDealer) -> dict[str, Any]:
    result = ops.call("stats")["result"]
    return {k: result.get(f"notifications_{k}", 0) for k in ("held", "held_total", "sent_lossy")}


def _burst(dealer: RawDealer, ops: RawDealer, reader: Reader | None) -> None:
    """CHANGES registers of the watched service, 200 in flight; ``reader`` is let go as
    soon as the node holds a notification it had no room for."""
    in_flight = 0
    for port in range(1, CHANGES + 1):
        dealer.send("register", service="burst", ip="10.0.0.1", port=port, metadata=META)
        in_flight += 1
        if in_flight >= 200:
            assert all(r["ok"] for r in dealer.replies(100, 30))
            in_flight -= 100
            waiting = reader is not None and not reader.go.is_set()
            if waiting and _notification_stats(ops)["held"]:
                assert reader is not None
                reader.go.set()
    assert all(r["ok"] for r in dealer.replies(in_flight, 30))


def _subscribers(ops: RawDealer) -> int:
    return ops.call("stats")["result"]["subscribers"]


@pytest.mark.timeout(90)
def test_a_subscriber_that_pauses_gets_every_notification_in_order() -> None:
    node = NodeProcess()
    dealer = ops = reader = None
    try:
        node.start()
        dealer, ops = RawDealer(node.port), RawDealer(node.port)
        reader = Reader(node.port + 1, go=False, queue=10)
        reader.start()
        wait_until(lambda: _subscribers(ops) == 1, 10, 0.02, "the reader's subscription")
        _burst(dealer, ops, reader)
        held = reader.go.is_set()
        reader.go.set()
        try:
            wait_until(lambda: len(reader.ports) >= CHANGES, 10, 0.02, "every notification")
        except AssertionError:
            pass  # said below, with what it got
        stats = _notification_stats(ops)
        assert reader.ports == list(range(1, CHANGES + 1)), (
            f"{len(reader.ports)} notifications, {len(set(reader.ports))} distinct "
            f"(the node's notification stats: {stats}; it gives up after {HOLD_S}s)"
        )
        assert held and stats["held_total"] > 0 and stats["sent_lossy"] == 0, stats
    finally:
        if reader is not None:
            reader.close()
        for d in (dealer, ops):
            if d is not None:
                d.close()
        node.cleanup()


@pytest.mark.timeout(90)
def test_a_subscriber_that_never_reads_holds_nobody_up() -> None:
    """A stopped subscriber on the same service: the node waits HOLD_S for it, then sends
    one notification lossy (libzmq leaves the full subscriber out from then on); a
    subscriber that reads (a queue as the Python client's) gets every change."""
    node = NodeProcess()
    dealer = ops = reader = None
    stuck = zmq.Context.instance().socket(zmq.SUB)
    try:
        node.start()
        dealer, ops = RawDealer(node.port), RawDealer(node.port)
        stuck.setsockopt(zmq.LINGER, 0)
        stuck.setsockopt(zmq.RCVHWM, 1)
        stuck.setsockopt(zmq.RCVBUF, 4096)
        stuck.connect(f"tcp://127.0.0.1:{node.port + 1}")
        stuck.setsockopt(zmq.SUBSCRIBE, TOPIC)
        reader = Reader(node.port + 1, go=True, queue=SUB_RCVHWM)
        reader.start()
        wait_until(lambda: _subscribers(ops) == 2, 10, 0.02, "both subscriptions")
        _burst(dealer, ops, None)
        try:
            wait_until(lambda: CHANGES in reader.ports, 20, 0.02, "the burst's last change")
        except AssertionError as exc:
            got = reader.ports
            raise AssertionError(
                f"{exc}: the reader got {len(got)} notifications, the last {got[-3:]}; "
                f"the node's notification stats: {_notification_stats(ops)}"
            ) from None
        stats = _notification_stats(ops)
        assert stats["sent_lossy"] >= 1, stats
        assert reader.ports == list(range(1, CHANGES + 1)), (
            f"the reader missed {CHANGES - len(set(reader.ports))} notifications ({stats})"
        )
    finally:
        stuck.close()
        if reader is not None:
            reader.close()
        for d in (dealer, ops):
            if d is not None:
                d.close()
        node.cleanup()
