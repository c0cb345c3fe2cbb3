"""Admission of notification subscriptions (the XPUB runs in manual mode).

A subscription takes effect only once the runtime has admitted it: its topic is a
service topic or a prefix of whole names (see wire/notifications), the subscriber
may read it (the ACL), and the node holds fewer than ``max_subscriptions``.  This is
what keeps a client from making the node hold arbitrary topics (memory) or read
another namespace's changes.

Unsubscriptions carry no sender (libzmq makes them up when a connection closes, and
it also does so for topics we never admitted), so counts cannot be kept per
connection.  The gate keeps two counts per topic, admitted and refused, and matches
an unsubscription to a refused one first: a wrong match can only leave a topic
counted as watched a little longer (a notification encoded for nobody), never make
a watched topic look unwatched.
"""

from __future__ import annotations

from collections import Counter

from meshreg.model import ServiceKey
from meshreg.wire.config_replies import parse_config_topic
from meshreg.wire.notifications import SEP, parse_topic

DEFAULT_MAX_SUBSCRIPTIONS = 200_000  # per node; ~0.5 KB each in libzmq's trie
MAX_REFUSED_TOPICS = 100_000  # distinct refused topics remembered (see above)


def is_topic(topic: bytes) -> bool:
    """A topic the node publishes under, or a prefix of whole names: a service
    ``ns NUL group NUL service NUL``, a group ``ns NUL group NUL``, a namespace
    ``ns NUL``, or everything ``""`` (PROTOCOL.md 4.1); or a config topic
    ``NUL config NUL ns NUL [group NUL [data_id NUL]]`` (PROTOCOL.md 4.3)."""
    if not topic:
        return True
    if topic[:1] == SEP:
        return parse_config_topic(topic) is not None
    if not topic.endswith(SEP):
        return False
    parts = topic[:-1].split(SEP)
    if len(parts) > 3 or not all(parts):
        return False
    try:
        for part in parts:
            part.decode()
    except UnicodeDecodeError:
        return False
    return True


class SubscriptionGate:
    """Decides subscriptions; counts what it admitted and refused."""

    def __init__(self, max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS) -> None:
        self.max_subscriptions = max_subscriptions
        self.admitted: Counter[bytes] = Counter()
        self.refused: Counter[bytes] = Counter()
        self.total = 0
        self.config_total = 0  # of ``total``: config topics (a listening client's data ids)
        self.refused_acl = 0
        self.refused_invalid = 0
        self.refused_full = 0

    def subscribe(self, topic: bytes, readable: bool) -> str | None:
        """None if admitted, else why not (``invalid``, ``denied``, ``full``).

        ``readable``: the subscriber may read ``topic`` (the ACL's answer)."""
        why = None
        if not is_topic(topic):
            why, self.refused_invalid = "invalid", self.refused_invalid + 1
        elif not readable:
            why, self.refused_acl = "denied", self.refused_acl + 1
        elif self.total >= self.max_subscriptions:
            why, self.refused_full = "full", self.refused_full + 1
        if why is None:
            self.admitted[topic] += 1
            self.total += 1
            self.config_total += is_config_topic(topic)
        elif topic in self.refused or len(self.refused) < MAX_REFUSED_TOPICS:
            self.refused[topic] += 1
        return why

    def watches(self, topic: bytes) -> bool:
        """Whether an admitted subscription receives a message published under ``topic``
        (a whole topic): one to the topic itself, to a prefix of whole names of it, or to
        everything (``b""``), as libzmq's prefix match would find.  Errs on the side of
        watched, as the counts do (module docstring), never the other way."""
        admitted = self.admitted
        if not admitted:
            return False
        if b"" in admitted:
            return True
        end = topic.find(SEP, 1)
        while end >= 0:
            if topic[: end + 1] in admitted:
                return True
            end = topic.find(SEP, end + 1)
        return False

    def unsubscribe(self, topic: bytes) -> bool:
        """True if this ends an admitted subscription (the core should count it)."""
        if self.refused[topic] > 0:
            self.refused[topic] -= 1
            if not self.refused[topic]:
                del self.refused[topic]
            return False
        self.refused.pop(topic, None)
        if self.admitted[topic] > 0:
            self.admitted[topic] -= 1
            self.total -= 1
            self.config_total -= is_config_topic(topic)
            if not self.admitted[topic]:
                del self.admitted[topic]
            return True
        self.admitted.pop(topic, None)
        return False


def topic_key(topic: bytes) -> ServiceKey | None:
    return parse_topic(topic)


def is_config_topic(topic: bytes) -> bool:
    """A config topic (the registry's core does not count it: no service topic starts
    with NUL, since a namespace is never empty)."""
    return topic[:1] == SEP
