"""Counters for the ``stats`` request: requests by op, errors by code, beat rate."""

from __future__ import annotations

from collections import deque

from meshreg.errors import ErrorCode

RATE_WINDOW = 10.0  # s; beats per second is averaged over about this window


class NodeStats:
    """Plain counters; the beat rate comes from samples taken at each tick."""

    def __init__(self, now: float) -> None:
        self.started_at = now
        self.requests: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.beats = 0
        self.notifications = 0
        self._samples: deque[tuple[float, int]] = deque([(now, 0)])

    def count_error(self, code: ErrorCode) -> None:
        self.errors[code.name] = self.errors.get(code.name, 0) + 1

    def sample(self, now: float) -> None:
        """Remember (now, beats) so that ``beat_rate`` can average a window."""
        samples = self._samples
        samples.append((now, self.beats))
        while len(samples) > 2 and samples[1][0] <= now - RATE_WINDOW:
            samples.popleft()

    def beat_rate(self, now: float) -> float:
        """Beats per second over the last window (to the latest sample and now)."""
        t0, b0 = self._samples[0]
        span = now - t0
        return (self.beats - b0) / span if span > 0 else 0.0

    def uptime(self, now: float) -> float:
        return now - self.started_at
