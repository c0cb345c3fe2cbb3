"""The notification XPUB's admission rules (runtime/subscription_gate.py)."""

from __future__ import annotations

import pytest

from meshreg.runtime.subscription_gate import SubscriptionGate, is_topic

SERVICE = b"public\x00DEFAULT_GROUP\x00orders\x00"


@pytest.mark.parametrize(
    "topic, ok",
    [
        (SERVICE, True),
        (b"public\x00DEFAULT_GROUP\x00", True),
        (b"public\x00", True),
        (b"", True),
        (b"public", False),  # a bare prefix would match "public2" too
        (b"public\x00DEFAULT_GROUP\x00orders", False),
        (b"a\x00b\x00c\x00d\x00", False),
        (b"\x00", False),
        (b"public\x00\x00orders\x00", False),
        (b"\xff\xfe\x00", False),
        (b"x" * 60_000, False),
    ],
)
def test_topic_forms(topic: bytes, ok: bool) -> None:
    assert is_topic(topic) is ok


def test_refused_subscriptions_are_not_counted_and_their_unsubscribe_is_absorbed() -> None:
    gate = SubscriptionGate(max_subscriptions=10)
    assert gate.subscribe(SERVICE, True) is None
    assert gate.subscribe(SERVICE, False) == "denied"
    # libzmq reports both connections' unsubscriptions alike; the refused one goes first,
    # so the topic stays watched until the admitted one is gone too
    assert gate.unsubscribe(SERVICE) is False
    assert gate.total == 1
    assert gate.unsubscribe(SERVICE) is True
    assert gate.total == 0
    assert gate.unsubscribe(SERVICE) is False  # an unsubscribe nobody subscribed for


def test_cap_and_invalid_topics() -> None:
    gate = SubscriptionGate(max_subscriptions=2)
    assert gate.subscribe(b"a\x00", True) is None
    assert gate.subscribe(b"b\x00", True) is None
    assert gate.subscribe(b"c\x00", True) == "full"
    assert gate.subscribe(b"junk", True) == "invalid"
    assert (gate.refused_full, gate.refused_invalid, gate.total) == (1, 1, 2)
    assert gate.unsubscribe(b"c\x00") is False  # the refused one's: nothing to count
    assert gate.unsubscribe(b"a\x00") is True
    assert gate.subscribe(b"c\x00", True) is None
    assert gate.total == 2
