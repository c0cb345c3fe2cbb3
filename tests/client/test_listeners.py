"""meshreg/client/listeners.py: a listener muted by (un)subscribe's caller is not called
again, whatever was queued for it (review48 F3); the others go on."""

from __future__ import annotations

from meshreg.client.listeners import ListenerTable


def test_a_muted_listener_ignores_calls_queued_before_and_the_others_go_on() -> None:
    table = ListenerTable()
    got: list[tuple[str, int]] = []

    def a(n: int) -> None:
        got.append(("a", n))

    def b(n: int) -> None:
        got.append(("b", n))

    la, lb, la_other = table.add("svc", a), table.add("svc", b), table.add("other", a)
    queued = [la, lb, la_other]  # what the notifier thread holds
    for live in queued:
        live(1)
    table.mute("svc", a)  # unsubscribe("svc", a) returned
    for live in queued:
        live(2)
    assert got == [("a", 1), ("b", 1), ("a", 1), ("b", 2), ("a", 2)]
    assert la == a and la != b  # the I/O thread's removal finds it by the callback
    table.mute("svc", None)  # every listener of the service
    lb(3)
    la_other(3)
    assert got[-1] == ("a", 3) and ("b", 3) not in got


def test_a_listener_whose_subscription_failed_is_forgotten() -> None:
    table = ListenerTable()
    live = table.add("svc", print)
    table.discard("svc", live)
    assert not table._by_key
    table.mute("svc", print)  # nothing left to mute: no error
    assert live.live  # (never handed to the I/O thread)


def test_an_equal_callback_is_held_once_and_a_failed_repeat_keeps_the_one_taken() -> None:
    """review55 F4: each repeated subscribe of one callback added an entry for good.  The
    one held is returned again; a repeat that fails does not drop the one subscribed
    before, nor one still on its way in another thread."""
    table = ListenerTable()
    calls: list[int] = []
    first = table.add("k", calls.append)
    table.take(first)
    again = table.add("k", calls.append)
    assert again is first
    table.discard("k", again)  # the repeat failed (a time-out): the first one stays
    first(1)
    assert calls == [1]
    racing = table.add("k2", calls.append)
    other = table.add("k2", calls.append)  # two threads at once
    table.discard("k2", racing)  # one fails: the other is still on its way
    table.take(other)
    other(2)
    assert calls == [1, 2]
    lone = table.add("k3", calls.append)
    table.discard("k3", lone)  # never taken: forgotten
    assert table.add("k3", calls.append) is not lone
