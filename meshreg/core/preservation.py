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

*Tripping.*  The node is *tripped* when ``silent >= self_preservation_min``
and ``silent > self_preservation_threshold * total`` (defaults: at least 10,
and more than 85%).  Outside the mode a silent instance is evicted
``evict_after - unhealthy_after`` (15 s) after it turned silent, so the silent
set only ever holds instances that went quiet within that one span: a share
of it is "missed their beats at once".  Instances dying one after another are
evicted on time and never add up; a handful dying together (fewer than the
minimum) is normal and evicted on time too.

*Transitions* (evaluated once per sweep, before anything is evicted):

=========== =============== =========== ==================================
state       at a sweep      next state  effect
=========== =============== =========== ==================================
NORMAL      tripped         PRESERVING  :class:`SelfPreservationStarted`
NORMAL      not tripped     NORMAL      (evicts, unless in the grace span)
PRESERVING  tripped         PRESERVING  (evicts nothing)
PRESERVING  not tripped     NORMAL      :class:`SelfPreservationEnded`
=========== =============== =========== ==================================

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
replaced by new registrations (which grow ``total``), or self-preservation is
turned off (``self_preservation = false``).  The node says so in its log and
in ``stats``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from meshreg.core.health import HealthPolicy


class PreservationState(enum.Enum):
    NORMAL = "normal"  # evicting as usual
    PRESERVING = "preserving"  # evicting nothing


@dataclass(frozen=True, slots=True)
class SelfPreservationStarted:
    """Most instances went silent at once: evictions are held (log loudly)."""

    silent: int
    total: int
    threshold: float
    min_instances: int


@dataclass(frozen=True, slots=True)
class SelfPreservationEnded:
    """Beats came back: the mode ended; still-silent instances are evicted later."""

    silent: int
    total: int
    lasted: float  # s in the mode
    evictions_resume_in: float  # s until held instances may be evicted


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
        self._events: list[SelfPreservationStarted | SelfPreservationEnded] = []

    @property
    def active(self) -> bool:
        return self.state is PreservationState.PRESERVING

    def tripped(self, silent: int, total: int) -> bool:
        """More than the threshold share, and at least the minimum, silent at once."""
        p = self.policy
        return (
            p.self_preservation
            and silent >= p.self_preservation_min
            and silent > p.self_preservation_threshold * total
        )

    def assess(self, now: float, silent: int, total: int, overdue: int) -> bool:
        """One sweep's counts in; whether this sweep may evict out."""
        self.silent, self.total = silent, total
        tripped = self.tripped(silent, total)
        if tripped and not self.active:
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

    def take_events(self) -> list[SelfPreservationStarted | SelfPreservationEnded]:
        events, self._events = self._events, []
        return events

    def result(self, now: float) -> dict[str, Any]:
        """The ``self_preservation`` part of ``stats`` (counts as of the last sweep)."""
        p = self.policy
        return {
            "enabled": p.self_preservation,
            "active": self.active,
            "active_for": round(now - self.entered_at, 3) if self.entered_at is not None else None,
            "evicting": not self.active and now >= self.evict_from,
            "silent": self.silent,
            "of": self.total,
            "held": self.held,
            "threshold": p.self_preservation_threshold,
            "min_instances": p.self_preservation_min,
            "times_entered": self.times_entered,
        }
