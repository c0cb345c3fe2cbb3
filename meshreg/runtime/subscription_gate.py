"""Admission of notification subscriptions (the XPUB runs in manual mode).

A subscription takes effect only once the runtime has admitted it: its topic is a
service topic or a prefix of whole names (see wire/notifications), the subscriber
may read it (the ACL), and the node holds fewer than ``max_subscriptions``.  This is
what keeps a client from making the node hold arbitrary topics (memory) or read
another namespace's changes.

What is counted is what libzmq holds: one entry per topic and *connection*.  A SUB
sends every ``subscribe`` it is asked for (a client may repeat a topic 200,000 times
on one connection), but libzmq keeps one entry for them and, when the connection
closes, makes up **one** unsubscription per topic it held.  So a subscription message
names its connection (``conn``: the ``;N`` of its ``User-Id``, transport/zap) and a
repeat from the same connection is not counted again (``again``: nothing changes, no
sync either); counting repeats filled the cap for good (review12, F-subcap).

The unsubscriptions libzmq makes up carry no sender (and it makes them for topics we
refused too), so each topic keeps two counts, admitted and refused, and such an
unsubscription takes one from refused first: a wrong match can only leave a topic
counted as watched a little longer (a notification encoded for nobody), never make a
watched topic look unwatched.  That needs *every* refusal of a valid topic remembered:
one that was not (review37 F1: a table full of 100,000 refused topics "forgot" the next)
made its closed connection's unsubscription take another connection's admitted one,
and the node stopped publishing to a subscriber libzmq still held.  An invalid topic
(``is_topic`` false) is never admitted, so its refusals need no memory and its
unsubscriptions are ignored.  The memory of refused valid topics is bounded by the
runtime, not by forgetting: past ``MAX_REFUSED`` it drops every notification
connection (``overflowing``; transport ``reset_notifications``), whose unsubscriptions
then empty the table exactly.  Which connections hold a topic is remembered to tell
repeats (``_holders``); an unsubscription without a sender cannot say whose entry
ended, so a topic keeps at most ``HOLDER_SLACK`` entries more than it counts, the
oldest dropped first (a live connection forgotten that way counts once more if it
repeats the topic: over, never under).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

from meshreg.model import ServiceKey
from meshreg.wire import limits
from meshreg.wire.config_replies import CONFIG_TOPIC_PREFIX, parse_config_topic
from meshreg.wire.notifications import SEP, parse_topic

# per node; ~1.3 KB each with what the node keeps per topic (measured: 200,000 on one
# connection took a node from 40 to 299 MB, review of 2026-12-07)
DEFAULT_MAX_SUBSCRIPTIONS = 200_000
MAX_REFUSED = 100_000  # refused subscriptions of valid topics held before a reset (above)
HOLDER_SLACK = 64  # connections remembered per topic beyond those it counts (see above)
# One namespace holds more than a quarter of the pool only while a quarter stays free for
# the others: a key that may read one namespace filled the whole pool, and every other
# tenant's watch on that node was refused (review of 2026-12-07).  Exact, unlike a count
# per connection or key: every unsubscription names its topic, so its namespace.
NAMESPACE_SHARE = 4  # the share and the reserve: max_subscriptions // NAMESPACE_SHARE
# the name rules of wire/messages (alphabet) and wire/limits (lengths), on the raw bytes
_NAME = re.compile(rb"[0-9A-Za-z@.:_\-]+\Z")
_MAX_LENS = (limits.MAX_NAMESPACE_LEN, limits.MAX_GROUP_LEN, limits.MAX_SERVICE_LEN)


def is_topic(topic: bytes) -> bool:
    """A topic the node publishes under, or a prefix of whole names: a service
    ``ns NUL group NUL service NUL``, a group ``ns NUL group NUL``, a namespace
    ``ns NUL``, or everything ``""`` (PROTOCOL.md 4.1); or a config topic
    ``NUL config NUL ns NUL [group NUL [data_id NUL]]`` (PROTOCOL.md 4.3).  Each name
    follows the name rules (alphabet and length): a name no request could carry names
    nothing the node publishes (an unkeyed node admitted 50,000 with spaces in them,
    and synced each: review of 2026-12-07)."""
    if not topic:
        return True
    if topic[:1] == SEP:
        if parse_config_topic(topic) is None:
            return False
        parts = topic[len(CONFIG_TOPIC_PREFIX) : -1].split(SEP)
    else:
        if not topic.endswith(SEP):
            return False
        parts = topic[:-1].split(SEP)
        if len(parts) > 3:
            return False
    return all(
        len(part) <= most and _NAME.match(part) is not None
        for part, most in zip(parts, _MAX_LENS, strict=False)
    )


def topic_namespace(topic: bytes) -> bytes:
    """The namespace a topic (or prefix) watches; ``b""`` for everything (``""``)."""
    if topic[:1] == SEP:
        topic = topic[len(CONFIG_TOPIC_PREFIX) :]
    return topic.split(SEP, 1)[0]


class SubscriptionGate:
    """Decides subscriptions; counts what it admitted and refused, per topic and connection."""

    def __init__(self, max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS) -> None:
        self.max_subscriptions = max_subscriptions
        self.share = max_subscriptions // NAMESPACE_SHARE  # also the room kept for others
        self.by_namespace: Counter[bytes] = Counter()  # admitted, per topic_namespace
        self.admitted: Counter[bytes] = Counter()
        self.refused: Counter[bytes] = Counter()
        # topic -> {connection: admitted?}, oldest first (repeats are told by it)
        self._holders: dict[bytes, dict[str, bool]] = {}
        self.total = 0
        self.config_total = 0  # of ``total``: config topics (a listening client's data ids)
        self.refused_acl = 0
        self.refused_invalid = 0
        self.refused_full = 0
        self.refused_share = 0  # a namespace above its share while the pool runs short
        self.repeats = 0  # subscriptions a connection held already: not counted again
        self.refused_held = 0  # refused subscriptions of valid topics libzmq holds
        self.ended = 0  # subscriptions held (admitted or refused) that ended, ever

    def subscribe(self, topic: bytes, readable: bool, conn: str = "") -> str | None:
        """None if admitted, ``again`` if ``conn`` holds it admitted already (nothing
        changes), else why not (``invalid``, ``denied``, ``full``, ``share``: its
        namespace holds ``share`` or more while fewer than ``share`` are free).

        ``readable``: the subscriber may read ``topic`` (the ACL's answer); ``conn``:
        the connection it came on ("": unknown, every message counts)."""
        holders = self._holders.get(topic) if conn else None
        held = holders.get(conn) if holders is not None else None
        if held:
            self.repeats += 1
            return "again"
        why = None
        if not is_topic(topic):  # never admitted: nothing to remember (module docstring)
            self.refused_invalid += 1
            return "invalid"
        if not readable:
            why, self.refused_acl = "denied", self.refused_acl + 1
        elif self.total >= self.max_subscriptions:
            why, self.refused_full = "full", self.refused_full + 1
        elif (
            self.total >= self.max_subscriptions - self.share
            and self.by_namespace[topic_namespace(topic)] >= self.share
        ):
            why, self.refused_share = "share", self.refused_share + 1
        if why is None:
            if held is not None and self._take(self.refused, topic):  # refused before
                self.refused_held -= 1  # on this connection: now admitted
            self.admitted[topic] += 1
            self.by_namespace[topic_namespace(topic)] += 1
            self.total += 1
            self.config_total += is_config_topic(topic)
        elif held is not None:
            return why  # refused before on this connection: counted there already
        else:  # every one: see the module docstring (the runtime bounds them)
            self.refused[topic] += 1
            self.refused_held += 1
        if conn:
            if holders is None:
                holders = self._holders[topic] = {}
            holders[conn] = why is None
            self._trim(topic, holders)
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

    def unsubscribe(self, topic: bytes, conn: str = "") -> bool:
        """True if this ends an admitted subscription (the core should count it).
        ``conn``: the connection that unsubscribed ("": libzmq's, for a closed one)."""
        holders = self._holders.get(topic)
        if conn and holders is not None and conn in holders:  # its own: exact
            admitted = holders.pop(conn)
            took = self._take(self.admitted if admitted else self.refused, topic)
            ended, refused = took and admitted, took and not admitted
        else:  # no sender: a refused one first (above)
            refused = self._take(self.refused, topic)
            ended = not refused and self._take(self.admitted, topic)
        if refused:
            self.refused_held -= 1
        self.ended += refused or ended
        if ended:
            self._take(self.by_namespace, topic_namespace(topic))
            self.total -= 1
            self.config_total -= is_config_topic(topic)
        if holders is not None:
            self._trim(topic, holders)
        return ended

    @property
    def overflowing(self) -> bool:
        """More refused subscriptions of valid topics held than ``MAX_REFUSED``: the
        runtime drops every notification connection (module docstring)."""
        return self.refused_held > MAX_REFUSED

    @staticmethod
    def _take(counts: Counter[bytes], topic: bytes) -> bool:
        """One less of ``topic`` in ``counts``; False if it had none."""
        n = counts.get(topic, 0)
        if n <= 0:
            counts.pop(topic, None)
            return False
        if n == 1:
            del counts[topic]
        else:
            counts[topic] = n - 1
        return True

    def _trim(self, topic: bytes, holders: dict[str, bool]) -> None:
        """Keep at most ``HOLDER_SLACK`` connections beyond what ``topic`` counts."""
        counted = self.admitted.get(topic, 0) + self.refused.get(topic, 0)
        if not counted:
            self._holders.pop(topic, None)
            return
        excess = len(holders) - counted - HOLDER_SLACK
        for conn in list(itertools.islice(holders, max(excess, 0))):
            del holders[conn]

    def compact(self) -> None:
        """Rebuild the tables at their present size (runtime/memory_release: a dict keeps
        the table of its largest size, 10 MB each after a flood of 200,000 ended)."""
        self.admitted = Counter(self.admitted)
        self.refused = Counter(self.refused)
        self.by_namespace = Counter(self.by_namespace)
        self._holders = {topic: dict(h) for topic, h in self._holders.items()}

    def holders_remembered(self) -> int:
        """Connection entries kept to tell repeats (bounded: see the module docstring)."""
        return sum(len(h) for h in self._holders.values())


def topic_key(topic: bytes) -> ServiceKey | None:
    return parse_topic(topic)


def is_config_topic(topic: bytes) -> bool:
    """A config topic (the registry's core does not count it: no service topic starts
    with NUL, since a namespace is never empty)."""
    return topic[:1] == SEP
