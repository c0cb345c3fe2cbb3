"""The notification XPUB's admission rules (runtime/subscription_gate.py)."""

from __future__ import annotations

import pytest

from meshreg.runtime.subscription_gate import HOLDER_SLACK, SubscriptionGate, is_topic

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
        # names a request could not carry (an unkeyed node admitted and synced them)
        (b"public\x00DEFAULT_GROUP\x00my orders\x00", False),
        (b"pub lic\x00", False),
        (b"n" * 64 + b"\x00", True),
        (b"n" * 65 + b"\x00", False),  # a namespace is at most 64 characters
        (b"public\x00" + b"g" * 129 + b"\x00", False),
        (b"public\x00g\x00" + b"s" * 256 + b"\x00", True),
        (b"public\x00g\x00" + b"s" * 257 + b"\x00", False),
        (b"\x00config\x00public\x00DEFAULT_GROUP\x00app.yaml\x00", True),
        (b"\x00config\x00public\x00", True),
        (b"\x00config\x00public\x00DEFAULT_GROUP\x00app yaml\x00", False),
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


def test_one_namespace_takes_more_than_its_share_only_while_the_others_have_room() -> None:
    """A read-only key filled the pool with topics of its own namespace, and every other
    tenant's watch on that node was refused (review of 2026-12-07).  A namespace holds
    more than a quarter of the pool only while a quarter stays free."""
    gate = SubscriptionGate(max_subscriptions=8)  # share and reserve: 2

    def topic(ns: str, n: int) -> bytes:
        return f"{ns}\x00g\x00s{n}\x00".encode()

    assert [gate.subscribe(topic("a", n), True, "1") for n in range(7)] == [None] * 6 + ["share"]
    assert gate.refused_share == 1 and gate.by_namespace[b"a"] == 6
    assert gate.subscribe(topic("b", 0), True, "2") is None  # the others' room
    assert gate.subscribe(b"\x00config\x00b\x00g\x00d\x00", True, "2") is None  # b's too
    assert gate.subscribe(topic("c", 0), True, "3") == "full"  # the pool, as before
    assert gate.by_namespace[b"b"] == 2 and gate.total == 8
    # a's unsubscriptions give its room back, counted exactly (no sender needed)
    assert gate.unsubscribe(topic("a", 0)) and gate.unsubscribe(topic("a", 1))
    assert gate.by_namespace[b"a"] == 4
    assert gate.subscribe(topic("a", 9), True, "1") == "share"  # 2 free: kept for others
    assert gate.subscribe(topic("c", 0), True, "3") is None
    assert gate.subscribe(b"", True, "4") is None  # everything: a namespace of its own
    assert gate.by_namespace == {b"a": 4, b"b": 2, b"c": 1, b"": 1}
    for n in range(2, 6):
        assert gate.unsubscribe(topic("a", n))
    assert b"a" not in gate.by_namespace  # an empty namespace is not kept


def test_watches_finds_every_subscription_libzmq_would_deliver_a_config_change_to() -> None:
    """A config change's topic is watched by an admitted subscription to it, to its group
    or namespace prefix, or to everything; not by another data id's, another group's, a
    service's, or a refused or ended one (the plane then encodes no notification)."""
    from meshreg.configcenter.model import ConfigKey
    from meshreg.wire.config_replies import config_namespace_topic, config_topic

    key = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")
    topic = config_topic(key)
    for sub in (topic, config_namespace_topic("public", "DEFAULT_GROUP"),
                config_namespace_topic("public"), b""):  # fmt: skip
        gate = SubscriptionGate()
        assert not gate.watches(topic)
        assert gate.subscribe(sub, True) is None
        assert gate.watches(topic), sub
        assert topic.startswith(sub)  # what libzmq's prefix match delivers
        gate.unsubscribe(sub)
        assert not gate.watches(topic), sub
    gate = SubscriptionGate()
    for sub in (config_topic(ConfigKey("public", "DEFAULT_GROUP", "app")),
                config_namespace_topic("public", "OTHER"), config_namespace_topic("pub"),
                b"public\x00", SERVICE):  # fmt: skip
        assert gate.subscribe(sub, True) is None
    assert gate.subscribe(topic, False) == "denied"  # refused: libzmq never holds it
    assert not gate.watches(topic)


def test_a_connections_repeats_count_once_and_its_close_gives_the_topic_back() -> None:
    """libzmq keeps one entry per topic and connection, and makes up one unsubscription
    per topic when the connection closes (no sender): the count follows that."""
    gate = SubscriptionGate(max_subscriptions=3)
    assert gate.subscribe(SERVICE, True, "1") is None
    for _ in range(10):
        assert gate.subscribe(SERVICE, True, "1") == "again"
    assert gate.total == 1 and gate.repeats == 10
    assert gate.subscribe(SERVICE, True, "2") is None  # another connection: its own entry
    assert gate.total == 2
    assert gate.unsubscribe(SERVICE) is True  # connection 1 closed
    assert gate.total == 1 and gate.watches(SERVICE)
    assert gate.unsubscribe(SERVICE, "2") is True  # connection 2 unsubscribed itself
    assert gate.total == 0 and not gate.watches(SERVICE)
    assert gate.holders_remembered() == 0


def test_a_repeat_after_a_refusal_is_admitted_when_there_is_room_and_counted_once() -> None:
    gate = SubscriptionGate(max_subscriptions=1)
    other = b"public\x00DEFAULT_GROUP\x00payments\x00"
    assert gate.subscribe(other, True, "1") is None
    assert gate.subscribe(SERVICE, True, "2") == "full"
    assert gate.subscribe(SERVICE, True, "2") == "full"
    assert gate.refused[SERVICE] == 1  # one entry in libzmq, however often refused
    assert gate.unsubscribe(other, "1") is True
    assert gate.subscribe(SERVICE, True, "2") is None
    assert gate.total == 1 and not gate.refused
    assert gate.unsubscribe(SERVICE) is True  # connection 2 closed: one unsubscription
    assert gate.total == 0


def test_connections_remembered_per_topic_are_bounded_by_what_it_counts() -> None:
    """Closed connections' entries cannot be told apart (no sender): a topic keeps at
    most HOLDER_SLACK more than it counts, whatever the churn."""
    gate = SubscriptionGate()
    assert gate.subscribe(SERVICE, True, "stays") is None
    for n in range(10 * HOLDER_SLACK):  # connections that subscribe and close
        assert gate.subscribe(SERVICE, True, f"c{n}") is None
        assert gate.unsubscribe(SERVICE) is True
    assert gate.total == 1
    assert gate.holders_remembered() <= 1 + HOLDER_SLACK
    assert gate.unsubscribe(SERVICE) is True  # the last one closes
    assert gate.total == 0 and gate.holders_remembered() == 0


def test_a_closed_connections_refusals_never_end_another_connections_subscription() -> None:
    """review37 F1: a connection refused more topics than a bounded table remembered;
    libzmq's unsubscriptions for its closed connection (no sender) then took the victim's
    admitted subscription of a topic it had been refused too.  Every refusal of a valid
    topic is remembered now (invalid topics are never admitted: nothing to remember)."""
    gate = SubscriptionGate()
    assert gate.subscribe(SERVICE, True, "victim") is None
    junk = [b"junk%06d" % i for i in range(100_010)]  # above the old table's 100,000
    denied = [b"other%06d\x00" % i for i in range(100_010)]
    for topic in junk:
        assert gate.subscribe(topic, False, "attacker") == "invalid"
    for topic in denied:
        assert gate.subscribe(topic, False, "attacker") == "denied"
    assert gate.subscribe(SERVICE, False, "attacker") == "denied"
    for topic in [*junk, *denied, SERVICE]:  # the attacker's connection closes
        assert gate.unsubscribe(topic) is False
    assert gate.total == 1 and gate.watches(SERVICE)
    assert not gate.refused
    assert gate.unsubscribe(SERVICE) is True  # the victim's own close
    assert gate.total == 0 and gate.holders_remembered() == 0


def test_refused_subscriptions_held_past_the_bound_make_the_gate_overflow() -> None:
    """The table of refusals is exact, so its memory is bounded by the runtime: past
    MAX_REFUSED it drops every notification connection (tests/runtime/test_notify_reset)."""
    from meshreg.runtime.subscription_gate import MAX_REFUSED

    gate = SubscriptionGate()
    for i in range(MAX_REFUSED + 1):
        assert gate.subscribe(b"junk%d" % i, False, "a") == "invalid"  # costs nothing
    assert gate.refused_held == 0 and gate.holders_remembered() == 0
    for i in range(MAX_REFUSED):
        assert gate.subscribe(b"other%d\x00" % i, False, "a") == "denied"
    assert not gate.overflowing
    assert gate.subscribe(b"other\x00", False, "a") == "denied"
    assert gate.subscribe(b"other\x00", False, "a") == "denied"  # a repeat: held once
    assert gate.overflowing and gate.refused_held == MAX_REFUSED + 1
    assert gate.unsubscribe(b"other\x00") is False
    assert not gate.overflowing
