"""The in-memory transport behaves as the ZeroMQ sockets the runtime relies on."""

from __future__ import annotations

import pytest
import zmq

from meshreg.transport.base import Transport
from meshreg.transport.memory import MemoryNetwork, MemoryTransport
from meshreg.transport.zeromq import ZmqTransport

A, B = "10.0.0.1:7000", "10.0.0.2:7000"


def pair(seed: int = 1) -> tuple[MemoryNetwork, MemoryTransport, MemoryTransport]:
    net = MemoryNetwork(seed)
    return net, net.transport("a"), net.transport("b")


def test_both_transports_have_the_interface() -> None:
    net = MemoryNetwork(0)
    for transport in (net.transport("a"), ZmqTransport()):
        assert isinstance(transport, Transport)
        transport.close()


def test_router_routes_replies_by_the_identity_it_prepended() -> None:
    net, a, b = pair()
    router = b.bind_peer_requests("10.0.0.2", 7003)
    dealer = a.connect_peer(B)
    dealer.send_multipart([b"fid", b"", b"body"])
    with pytest.raises(zmq.Again):
        router.recv_multipart()  # not yet: it is on its way
    net.run_until(1.0)
    ident, *rest = router.recv_multipart()
    assert rest == [b"fid", b"", b"body"]
    router.send_multipart([ident, b"fid", b"", b"reply"])
    router.send_multipart([b"\x00gone", b"", b"dropped"])  # unroutable: dropped
    net.run_until(2.0)
    assert dealer.recv_multipart() == [b"fid", b"", b"reply"]
    with pytest.raises(zmq.Again):
        dealer.recv_multipart()


def test_a_dealer_to_nothing_bound_fails_at_once_and_a_crash_loses_what_is_in_flight() -> None:
    net, a, b = pair()
    dealer = a.connect_peer(B)
    with pytest.raises(zmq.Again):  # ZMQ_IMMEDIATE: no connection, nothing queued
        dealer.send_multipart([b"", b"call"])
    router = b.bind_peer_requests("10.0.0.2", 7003)
    dealer.send_multipart([b"", b"call"])
    router.close()  # b crashed with the message in flight
    net.run_until(1.0)
    assert net.counts == {"dropped_dst_down": 1}


def test_frames_read_one_by_one_say_whether_more_follow() -> None:
    net, a, b = pair()
    router = b.bind_requests("10.0.0.2", 7000)
    replies: list[list[bytes]] = []
    client = net.client(B, replies.append)
    client.send_multipart([b"", b"request"])
    net.run_until(1.0)
    recv, send = b.fast_io()
    frames = [recv(router, zmq.NOBLOCK, False)]
    while frames[-1].more:
        frames.append(recv(router, 0, False))
    assert [f.bytes for f in frames][1:] == [b"", b"request"]
    send(router, frames[0], zmq.SNDMORE)
    send(router, b"", zmq.SNDMORE)
    send(router, b"ok", 0)
    net.run_until(2.0)
    assert replies == [[b"", b"ok"]]


def test_pub_reaches_connected_subscribers_and_partitions_cut_it() -> None:
    net, a, b = pair()
    pub = a.bind_replication("10.0.0.1", 7002)
    sub = b.connect_replication([A])
    poller = b.poller()
    poller.register(sub, zmq.POLLIN)
    pub.send_multipart([b"beacon", b"1"])
    net.run_until(1.0)
    assert poller.poll(0) == [(sub, zmq.POLLIN)]
    assert sub.recv_multipart() == [b"beacon", b"1"]
    net.groups = [frozenset({"a"}), frozenset({"b"})]
    pub.send_multipart([b"beacon", b"2"])
    net.run_until(2.0)
    assert poller.poll(0) == []
    assert net.counts["dropped_partition"] == 1
    assert net.counts["pub_beacon"] == 2


def test_a_paused_transport_gets_its_input_in_order_on_release() -> None:
    net, a, b = pair()
    woken: list[float] = []
    b.on_input = lambda: woken.append(net.now)
    pub = a.bind_replication("10.0.0.1", 7002)
    sub = b.connect_replication([A])
    net.pause("b")
    for i in range(3):
        pub.send_multipart([b"delta", bytes([i])])
        net.run_until(net.now + 0.1)
    assert woken == []
    net.deliver_held(net.release("b"))
    assert [sub.recv_multipart()[1] for _ in range(3)] == [b"\x00", b"\x01", b"\x02"]
    assert woken == []  # held input is put in without waking: the caller runs the turn


def test_loss_and_delays_are_a_function_of_the_seed() -> None:
    def run(seed: int) -> tuple[list[tuple[float, bytes]], dict[str, int]]:
        net, a, b = pair(seed)
        net.loss = 0.3
        got: list[tuple[float, bytes]] = []
        b.on_input = lambda: got.append((net.now, sub.recv_multipart()[1]))
        pub = a.bind_replication("10.0.0.1", 7002)
        sub = b.connect_replication([A])
        for i in range(50):
            pub.send_multipart([b"delta", bytes([i])])
        net.run_until(1.0)
        return got, net.counts

    assert run(5) == run(5)
    got, counts = run(5)
    assert 0 < counts["lost"] < 50 and len(got) == 50 - counts["lost"]
    assert [m for _, m in got] != sorted(m for _, m in got)  # delays reorder
