"""Subscription syncs paced per topic (runtime/sync_pacer): at most one per SYNC_EVERY,
whatever the subscriptions (review29 F2), on a fake clock."""

from __future__ import annotations

from meshreg.runtime import sync_pacer
from meshreg.runtime.sync_pacer import SyncPacer

T, U = b"ns\x00g\x00orders\x00", b"ns\x00g\x00pay\x00"


def test_the_first_sync_goes_at_once_and_the_next_ones_share_one_at_the_windows_end() -> None:
    p = SyncPacer(every=0.2)
    assert p.admit(T, 10.0)
    assert p.admit(U, 10.05)  # another topic: its own window
    assert not any(p.admit(T, 10.0 + k * 0.001) for k in range(1, 150))  # a loop
    assert p.deferred == 149 and p.next_due() == 10.2
    assert p.take_due(10.19) == []
    assert p.take_due(10.2) == [T]
    assert p.next_due() is None
    assert not p.admit(T, 10.3)  # within the window of the deferred one: deferred again
    assert p.take_due(10.4) == [T]
    assert p.admit(T, 10.61)  # a quiet topic again: at once


def test_however_fast_a_client_loops_a_topic_gets_one_sync_per_window() -> None:
    p = SyncPacer(every=0.2)
    sent, now = 0, 0.0
    for k in range(100_000):  # 10 s of subscriptions, one per 0.1 ms
        now = k * 0.0001
        sent += p.admit(T, now)
        sent += len(p.take_due(now))
    assert 49 <= sent <= 51, sent  # 10 s / 0.2 s


def test_memory_stays_bounded_by_recent_topics() -> None:
    p = SyncPacer(every=0.2)
    for k in range(3 * sync_pacer.PRUNE_ABOVE):
        assert p.admit(b"t%d\x00" % k, k * 1.0)  # each topic once, long apart
    assert len(p._last) <= sync_pacer.PRUNE_ABOVE + 1
