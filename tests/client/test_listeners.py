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
