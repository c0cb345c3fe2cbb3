"""Self-preservation: stop evicting when most beats stop at once (Eureka's rule).

Theory of operation
-------------------
When a node stops hearing most of its providers at the same moment, the
likeliest cause is the node's own network (a bad link, a partition, a long
stall of the process), not a simultaneous death of the providers.  Evicting
them would empty the registry for every consumer; so the node holds them
instead, marked unhealthy, until beats come back.

*Counting.*  At every health sweep (once per ``check_interval``: one check
window) the sweep counts, over the instances it judges (on a cluster member,
only those of the services this node is responsible for; the others' beats go
to their own responsible node):

* ``total``:  every such instance still in the table;
* ``silent``: those with no beat for ``unhealthy_after`` or more (the ones
  that are, or are about to be, unhealthy);
* ``overdue``: those with no beat for ``evict_after`` or more (due for
  eviction).

*Junk does not count* (issue 10, M3).  An instance that never beat after it
was registered here (a one-shot registration: ``last_beat <= registered_at``,
core/store) is left out of ``total`` and ``silent`` alike, and is evicted when
overdue even while the mode holds the others.  The mode exists for beat
streams that stop at once; a registration that was never followed by a beat
is no stream that stopped, only a claim nobody kept up.  Without this rule,
140 one-shot registrations beside 20 live instances (87% silent at once)
turned the mode on for good: the junk was held, so it stayed silent, so the
mode stayed on, and a live provider that then really died stayed listed.
What it costs: providers that register and lose their network before their
first beat (within one beat interval, 5 s) are evicted as if dead; they
register again when their beats get through (a copy merged from a peer has
no local registration time and always counts).

*Tripping.*  The node is *tripped* when ``silent >= self_preservation_min``
and ``silent > self_preservation_threshold * total`` (defaults: at least 10,
and more than 85%), from at least ``MIN_SILENT_STREAMS`` (2) beat streams: an
instance beating on its own is one, a client session (one process, all its
instances) is one.  Outside the mode a silent instance is evicted
``evict_after - unhealthy_after`` (15 s) after it turned silent, so the silent
set only ever holds instances that went quiet within that one span: a share
of it is "missed their beats at once".  Instances dying one after another are
evicted on time and never add up; a handful dying together (fewer than the
minimum) is normal and evicted on time too.

*Transitions* (evaluated once per sweep, before anything is evicted;
"long" is an episode that has lasted ``self_preservation_max``, 900 s):

=========== ==================== =========== ==================================
state       at a sweep           next state  effect
=========== ==================== =========== ==================================
NORMAL      tripped              PRESERVING  :class:`SelfPreservationStarted`
NORMAL      not tripped          NORMAL      (evicts, unless in the grace span)
PRESERVING  tripped, not long    PRESERVING  (evicts nothing but junk)
PRESERVING  tripped, long        EXPIRED     :class:`SelfPreservationExpired`
PRESERVING  not tripped          NORMAL      :class:`SelfPreservationEnded`
EXPIRED     tripped              EXPIRED     (evicts as usual)
EXPIRED     not tripped          NORMAL      (armed again)
=========== ==================== =========== ==================================

*An episode cannot last forever.*  After ``self_preservation_max`` in the
mode the node evicts again, with a warning in its log, and stays EXPIRED
(evicting) until a sweep finds the node no longer tripped; only then can a
new episode start.  A fault of a quarter of an hour is no blip the mode
should ride out: an instance silent that long is gone either way, and the
registry had better say so than keep listing it.  So whatever trips the mode
- junk that beat once, a fleet killed at once - a provider that really died
is evicted within ``self_preservation_max`` plus ``evict_after``.  Eureka
holds for as long as renewals stay low (and users turn it off for that);
this is the bounded version of the same rule.  A cluster member cut off from
every peer, or apart from a majority of the configured members, evicts nothing anyway
(core/distro ``may_judge``), however long.

*While PRESERVING* nothing is evicted; unhealthy marking goes on as usual
(consumers asking for healthy instances stop seeing the silent ones), and a
beat heals an instance as always.

*Leaving.*  The mode ends by itself at the first sweep that is not tripped:
beats came back (silent instances beat again and stop counting), the silent
ones were deregistered, or new registrations grew ``total``.  Beats do not
all come back in the same check window (each provider beats on its own
schedule), so when the mode ends evictions stay suspended for one more
``evict_after - unhealthy_after``: every instance held by the mode gets the
same unhealthy-to-evicted span as any silent instance, counted from the end of
the mode.  (An instance that was not silent when the mode ended is due no
earlier than that anyway, so the suspension delays nothing else.)

*The baseline is the table itself*, recounted at every sweep: a deliberate
deregistration or a completed eviction removes the instance from ``total``
at once, and nothing is remembered between sweeps but the state.  So a
scale-down, by deregistration or by evictions each under the threshold,
lowers the baseline with it and cannot leave the node in the mode.  (Eureka
keeps an expected-renewals figure that evictions do not lower and that is
recomputed only every 15 minutes, so after a large scale-down without
deregistration it can stay in self-preservation for good: Netflix/eureka
#1073, #1267.)

*What it cannot tell apart:* most providers really dying at the same moment
without deregistering (``kill -9`` of nearly a whole fleet) looks exactly
like a network fault.  They are held, unhealthy, until they are deregistered,
replaced by new registrations (which grow ``total``), the episode expires
(``self_preservation_max``), or self-preservation is turned off
(``self_preservation = false``).  The node says so in its log and in ``stats``.
"""

from __future__ import annotations

import enum

from meshreg.core.effects import PreservationEvent as Event
from meshreg.core.effects import (  # re-exported: defined with every other effect
    SelfPreservationEnded,
    SelfPreservationExpired,
    SelfPreservationStarted,
)
from meshreg.core.health import HealthPolicy
from meshreg.core.results import PreservationStats

# Silent instances from one stream (one client session: one process) are one provider
# that stopped, not this node's network: evicted on time (review24 F4: one crashed
# process with 20 of a node's 21 instances held them, and served them under a protect
# threshold, up to self_preservation_max)
MIN_SILENT_STREAMS = 2


class PreservationState(enum.Enum):
    NORMAL = "normal"  # evicting as usual
    PRESERVING = "preserving"  # evicting nothing (but junk)
    EXPIRED = "expired"  # an episode lasted too long: evicting until no longer tripped


class SelfPreservation:
    """The self-preservation state of one node (time is an argument)."""

    def __init__(self, policy: HealthPolicy) -> None:
        self.policy = policy
        self.state = PreservationState.NORMAL
        self.entered_at: float | None = None  # when the current PRESERVING began
        self.evict_from = float("-inf")  # no eviction before this time (the grace span)
        self.silent = 0  # counts of the last sweep
        self.total = 0
        self.held = 0  # overdue instances the last sweep did not evict
        self.times_entered = 0
        self.times_expired = 0
        self._events: list[Event] = []

    @property
    def active(self) -> bool:
        return self.state is PreservationState.PRESERVING

    def tripped(self, silent: int, total: int, streams: int | None = None) -> bool:
        """More than the threshold share, and at least the minimum, silent at once, from
        at least MIN_SILENT_STREAMS beat streams (``streams``: None, not counted)."""
        p = self.policy
        return (
            p.self_preservation
            and silent >= p.self_preservation_min
            and silent > p.self_preservation_threshold * total
            and (streams is None or streams >= MIN_SILENT_STREAMS)
        )

    def assess(
        self, now: float, silent: int, total: int, overdue: int, streams: int | None = None
    ) -> bool:
        """One sweep's counts in; whether this sweep may evict out (the table above).
        ``streams``: how many beat streams the silent instances came from (an instance
        beating on its own is one; a client session, all its instances, is one)."""
        self.silent, self.total = silent, total
        tripped = self.tripped(silent, total, streams)
        if self.state is PreservationState.EXPIRED:
            if not tripped:
                self.state = PreservationState.NORMAL  # armed again
        elif tripped and self.active:
            assert self.entered_at is not None
            lasted = now - self.entered_at
            if lasted >= self.policy.self_preservation_max:
                self.state = PreservationState.EXPIRED
                self.entered_at = None
                self.times_expired += 1
                self._events.append(SelfPreservationExpired(silent, total, lasted, overdue))
        elif tripped:
            self.state = PreservationState.PRESERVING
            self.entered_at = now
            self.times_entered += 1
            p = self.policy
            self._events.append(
                SelfPreservationStarted(
                    silent, total, p.self_preservation_threshold, p.self_preservation_min
                )
            )
        elif not tripped and self.active:
            assert self.entered_at is not None
            grace = self.policy.evict_after - self.policy.unhealthy_after
            self.state = PreservationState.NORMAL
            self.evict_from = now + grace
            self._events.append(SelfPreservationEnded(silent, total, now - self.entered_at, grace))
            self.entered_at = None
        evicting = not self.active and now >= self.evict_from
        self.held = 0 if evicting else overdue
        return evicting

    def take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def result(self, now: float) -> PreservationStats:
        """The ``self_preservation`` part of ``stats`` (counts as of the last sweep)."""
        p = self.policy
        return PreservationStats(
            enabled=p.self_preservation,
            state=self.state.value,
            active=self.active,
            active_for=round(now - self.entered_at, 3) if self.entered_at is not None else None,
            evicting=not self.active and now >= self.evict_from,
            silent=self.silent,
            total=self.total,
            held=self.held,
            threshold=p.self_preservation_threshold,
            min_instances=p.self_preservation_min,
            times_entered=self.times_entered,
            max_duration=p.self_preservation_max,
            times_expired=self.times_expired,
        )
