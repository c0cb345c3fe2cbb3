"""Counters for the ``stats`` request: requests by op, errors by code, beat and session
renewal rates."""

from __future__ import annotations

from collections import deque

from meshreg.errors import ErrorCode

RATE_WINDOW = 10.0  # s; beats (renewals) per second are averaged over about this window


class NodeStats:
    """Plain counters; the beat and renewal rates come from samples taken at each tick."""

    def __init__(self, now: float) -> None:
        self.started_at = now
        self.requests: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.beats = 0
        self.notifications = 0
        # (when, beats, session renewals): the rates average from the oldest to now
        self._samples: deque[tuple[float, int, int]] = deque([(now, 0, 0)])

    def count_error(self, code: ErrorCode) -> None:
        self.errors[code.name] = self.errors.get(code.name, 0) + 1

    def sample(self, now: float, renewals: int = 0) -> None:
        """Remember (now, beats, session renewals so far) so that ``beat_rate`` and
        ``renewal_rate`` can average a window."""
        samples = self._samples
        samples.append((now, self.beats, renewals))
        while len(samples) > 2 and samples[1][0] <= now - RATE_WINDOW:
            samples.popleft()

    def beat_rate(self, now: float) -> float:
        """Beats per second over the last window (to the latest sample and now)."""
        t0, b0, _ = self._samples[0]
        span = now - t0
        return (self.beats - b0) / span if span > 0 else 0.0

    def renewal_rate(self, now: float, renewals: int) -> float:
        """Session renewals per second over the last window (``renewals``: so far)."""
        t0, _, r0 = self._samples[0]
        span = now - t0
        return (renewals - r0) / span if span > 0 else 0.0

    def uptime(self, now: float) -> float:
        return now - self.started_at
