"""The notification outbox (runtime/notify_outbox): what a full subscriber queue refuses
waits, in order, and goes out when there is room; a queue that stays full makes the
outbox lossy for a while instead of holding everyone's notifications.  A fake XPUB with
a scripted room stands for libzmq's NODROP behaviour; the clock is a number."""

from __future__ import annotations

import zmq

from meshreg.runtime.notify_outbox import HOLD_S, MAX_HELD_BYTES, OVERFLOW_STEP, NotifyOutbox


class FakeXpub:
    """One subscriber's queue on topic b"topic": ``room`` messages fit; NODROP refuses
    beyond; a lossy send it has no room for is lost, and libzmq leaves it out (later
    sends skip it, NODROP or not) until it reads.  Other topics: nobody full watches."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.lossy = False
        self.left_out = False
        self.delivered: list[bytes] = []
        self.lost: list[bytes] = []
        self.lossy_calls: list[bool] = []

    def send(self, frames: list[bytes]) -> None:
        if frames[0] != b"topic":
            self.delivered.append(frames[1])
            return
        if self.left_out or self.room <= 0:
            if not self.lossy and not self.left_out:
                raise zmq.Again()
            self.left_out = True
            self.lost.append(frames[1])
            return
        self.room -= 1
        self.delivered.append(frames[1])

    def read(self, n: int) -> None:
        self.room += n
        self.left_out = False

    def set_lossy(self, lossy: bool) -> None:
        self.lossy = lossy
        self.lossy_calls.append(lossy)


def _outbox(room: int) -> tuple[FakeXpub, NotifyOutbox]:
    xpub = FakeXpub(room)
    return xpub, NotifyOutbox(xpub.send, xpub.set_lossy)


def _msg(i: int, size: int = 8) -> list[bytes]:
    return [b"topic", str(i).encode().ljust(size, b".")]


def _numbers(payloads: list[bytes]) -> list[int]:
    return [int(p.rstrip(b".")) for p in payloads]


def test_notifications_go_out_at_once_while_there_is_room() -> None:
    xpub, outbox = _outbox(room=10)
    for i in range(10):
        outbox.send(_msg(i), now=0.0)
    assert len(xpub.delivered) == 10 and outbox.held == 0
    assert outbox.flush(0.0) is None and outbox.held_total == 0
    assert xpub.lossy_calls == []


def test_refused_notifications_wait_in_order_and_go_out_when_there_is_room() -> None:
    xpub, outbox = _outbox(room=3)
    for i in range(8):
        outbox.send(_msg(i), now=1.0)
    assert _numbers(xpub.delivered) == [0, 1, 2]
    assert outbox.held == 5 and outbox.held_total == 5
    assert outbox.flush(1.0005) == 1.0005 + 0.001  # still full: try again next turn
    xpub.read(2)
    assert outbox.flush(1.001) is not None
    outbox.send(_msg(8), now=1.001)  # behind what waits, not ahead of it
    xpub.read(100)
    assert outbox.flush(1.002) is None
    assert _numbers(xpub.delivered) == list(range(9))
    assert xpub.lost == [] and outbox.sent_lossy == 0 and xpub.lossy_calls == []


def test_a_held_topic_holds_back_no_other_topic() -> None:
    xpub, outbox = _outbox(room=0)
    outbox.send(_msg(0), now=0.0)
    outbox.send([b"other", b"o1"], now=0.0)
    outbox.send(_msg(1), now=0.0)
    outbox.send([b"other", b"o2"], now=0.0)
    assert xpub.delivered == [b"o1", b"o2"] and outbox.held == 2
    xpub.read(5)
    assert outbox.flush(0.1) is None
    assert xpub.delivered == [b"o1", b"o2", b"0.......", b"1......."]


def test_a_subscriber_that_reads_slowly_loses_nothing() -> None:
    """Every message sent resets the wait: only a topic that moves for HOLD_S makes the
    outbox give up on its head."""
    xpub, outbox = _outbox(room=0)
    for i in range(50):
        outbox.send(_msg(i), now=0.0)
    now = 0.0
    while outbox.held:
        now += HOLD_S / 2
        xpub.read(1)
        outbox.flush(now)
    assert _numbers(xpub.delivered) == list(range(50)) and xpub.lost == []
    assert outbox.sent_lossy == 0


def test_a_topic_stuck_for_hold_s_sends_its_head_lossy_and_goes_on() -> None:
    xpub, outbox = _outbox(room=0)
    for i in range(5):
        outbox.send(_msg(i), now=10.0)
    assert outbox.flush(10.0 + HOLD_S / 2) is not None and outbox.held == 5
    assert outbox.flush(10.0 + HOLD_S + 0.001) is None
    # the head went lossy (lost for the full subscriber, which libzmq then leaves out),
    # the rest went with NODROP (skipping it): nothing waits any more
    assert xpub.lost == [b"0......."] + [_msg(i)[1] for i in range(1, 5)]
    assert outbox.held == 0 and outbox.sent_lossy == 1
    assert xpub.lossy_calls == [True, False] and not xpub.lossy
    # it reads again: NODROP holds for it again
    xpub.read(1)
    outbox.send(_msg(5), now=11.0)
    outbox.send(_msg(6), now=11.0)
    assert xpub.delivered[-1] == b"5......." and outbox.held == 1


def test_more_than_max_held_bytes_waiting_shed_the_oldest_down_to_three_quarters() -> None:
    xpub, outbox = _outbox(room=0)
    size = 64 * 1024
    fit = MAX_HELD_BYTES // (len(b"topic") + size)
    for i in range(fit):
        outbox.send(_msg(i, size), now=0.0)
    assert outbox.held == fit and xpub.lossy_calls == []
    outbox.send(_msg(-1, size), now=0.0)
    shed = outbox.sent_lossy
    assert 0 < shed < fit and not xpub.lossy  # the oldest, in order, NODROP on again
    assert _numbers(xpub.lost[:2]) == [0, 1]
    assert outbox.held * (len(b"topic") + size) <= MAX_HELD_BYTES * 3 // 4


def test_an_overflow_of_small_notifications_is_shed_in_bounded_steps() -> None:
    """review29 F4: 16 MiB of ~100-byte syncs are ~150,000 notifications; sent lossy all at
    once they blocked the loop 0.4-2 s.  A step per overflowing send and per turn."""
    xpub, outbox = _outbox(room=0)
    n = 0
    while outbox.sent_lossy == 0:
        outbox.send(_msg(n, 96), now=0.0)
        n += 1
    assert outbox.sent_lossy == OVERFLOW_STEP  # one step, not everything held
    # libzmq now skips the full subscriber: the rest go at each turn, a step at a time
    held = outbox.held
    while outbox.held:
        before = outbox.held
        outbox.flush(now=0.0)
        assert 0 < before - outbox.held <= OVERFLOW_STEP
    assert len(xpub.lost) == n and held > 10 * OVERFLOW_STEP


def test_libzmq_refuses_only_for_a_full_matching_subscriber_and_lossy_turns_it_off() -> None:
    """What FakeXpub stands for, on real sockets: with XPUB_NODROP a send raises Again
    once a subscriber it matches is full; a topic nobody full watches still goes; with
    NODROP off (lossy) the same send goes (and is lost for the full subscriber).  libzmq
    then leaves that subscriber out (an inactive pipe: later sends skip it, NODROP or
    not) until it has read its queue down; then NODROP holds for it again."""
    ctx = zmq.Context.instance()
    xpub, sub = ctx.socket(zmq.XPUB), ctx.socket(zmq.SUB)
    try:
        for s in (xpub, sub):
            s.setsockopt(zmq.LINGER, 0)
        xpub.setsockopt(zmq.SNDHWM, 10)
        xpub.setsockopt(zmq.SNDBUF, 4096)
        xpub.setsockopt(zmq.XPUB_NODROP, 1)
        port = xpub.bind_to_random_port("tcp://127.0.0.1")
        sub.setsockopt(zmq.RCVHWM, 1)
        sub.setsockopt(zmq.RCVBUF, 4096)
        sub.connect(f"tcp://127.0.0.1:{port}")
        sub.setsockopt(zmq.SUBSCRIBE, b"full")
        assert xpub.poll(10_000), "no subscription within 10 s"
        xpub.recv()
        body = b"x" * 1024

        def fill() -> int:
            sent = 0
            while sent < 100_000:  # bounded: HWM 10 + the kernel's buffers fill first
                try:
                    xpub.send_multipart([b"full", body], zmq.NOBLOCK)
                except zmq.Again:
                    return sent
                sent += 1
            raise AssertionError("100,000 sends to a subscriber that reads nothing went")

        sent = fill()
        assert sent >= 10, sent
        xpub.send_multipart([b"other", body], zmq.NOBLOCK)  # nobody full watches it: goes
        xpub.setsockopt(zmq.XPUB_NODROP, 0)
        xpub.send_multipart([b"full", body], zmq.NOBLOCK)  # lossy: goes (lost for sub)
        xpub.setsockopt(zmq.XPUB_NODROP, 1)
        xpub.send_multipart([b"full", body], zmq.NOBLOCK)  # sub left out: goes (skipped)
        for _ in range(sent):  # read it down (what it queued): libzmq takes it back
            assert sub.poll(10_000), "a queued notification did not arrive within 10 s"
            sub.recv_multipart()
        assert fill() >= 10  # and refuses for it again once it is full
    finally:
        xpub.close()
        sub.close()
