"""transport/handshakes.HandshakeWatch on real sockets: a mechanism mismatch is reported
(and said at once), a success of one endpoint does not forget another's refusal, and
``reconnect`` connects the refused endpoints again (review17 F3, F5)."""

from __future__ import annotations

import math
import time

import zmq
import zmq.utils.z85

from meshreg.transport.handshakes import HandshakeWatch

DEADLINE = 5.0  # s


def drain_until(watch: HandshakeWatch, predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if watch.monitor.poll(50):
            watch.drain(time.monotonic())
        if predicate():
            return
    raise AssertionError(f"no {what} within {DEADLINE}s")


def test_a_mechanism_mismatch_is_reported_and_kept_apart_from_other_endpoints() -> None:
    ctx = zmq.Context()
    plain = ctx.socket(zmq.ROUTER)  # a peer without a key
    plain_port = plain.bind_to_random_port("tcp://127.0.0.1")
    pub, sec = zmq.curve_keypair()
    keyed = ctx.socket(zmq.ROUTER)  # a peer with the key
    keyed.curve_server = True
    keyed.curve_secretkey = sec
    keyed_port = keyed.bind_to_random_port("tcp://127.0.0.1")
    client_pub, client_sec = zmq.curve_keypair()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.immediate = 1  # messages only to connections whose handshake succeeded
    sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = client_pub, client_sec, pub
    watch = HandshakeWatch(sock)
    try:
        bad = f"tcp://127.0.0.1:{plain_port}"
        sock.connect(bad)
        drain_until(watch, lambda: bad in watch.refused, "failure")
        assert watch.endpoint == bad and watch.retry_at < math.inf
        # which end notices first is a race: a mismatch is said at once, a connection
        # closed mid-handshake after a few in a row (libzmq reconnects after those)
        drain_until(watch, watch.worth_saying, "failure worth saying")
        sock.connect(f"tcp://127.0.0.1:{keyed_port}")  # succeeds: bad stays refused
        sock.send(b"hello")
        assert keyed.poll(int(DEADLINE * 1000)), "the keyed endpoint's handshake"
        assert keyed.recv_multipart()[-1] == b"hello"
        end = time.monotonic() + 1.0  # the events so far, the success included (bounded:
        while time.monotonic() < end and watch.monitor.poll(100):  # bad fails on and on)
            watch.drain(time.monotonic())
        good = f"tcp://127.0.0.1:{keyed_port}"
        assert bad in watch.refused and good not in watch.refused and good not in watch.streak
        assert watch.retry_at < math.inf
        watch.reconnect(sock)
        assert watch.retry_at == math.inf and not watch.refused
        drain_until(watch, lambda: bad in watch.refused, "the retried endpoint's failure")
    finally:
        watch.close(sock)
        for s in (sock, plain, keyed):
            s.close(linger=0)
        ctx.term()
