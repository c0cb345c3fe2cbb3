"""Log a recurring problem once per interval, with the count suppressed since."""

from __future__ import annotations

import logging
from collections.abc import Hashable

LOG_INTERVAL = 10.0  # s; at most one line per kind of problem per interval


class LogBudget:
    """Whether a kind of problem may be logged now, without a logger (sans-IO users
    such as the client session turn the line into an action)."""

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self.interval = interval
        self._last: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}

    def line(self, kind: Hashable, now: float, msg: str) -> str | None:
        """``msg`` (plus the count suppressed since the last one), or None: not now."""
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return None
        if len(self._last) > 1024:  # kinds come from a small set; never grow unbounded
            self._last.clear()
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            msg += f" ({suppressed} similar suppressed in the last {self.interval:g} s)"
        return msg


class LogLimiter:
    def __init__(self, logger: logging.Logger, interval: float = LOG_INTERVAL) -> None:
        self.logger = logger
        self.interval = interval
        self._budget = LogBudget(interval)

    def warning(self, kind: Hashable, now: float, msg: str, *args: object) -> None:
        line = self._budget.line(kind, now, msg)
        if line is not None:
            self.logger.warning(line, *args)

    def info(self, kind: Hashable, now: float, msg: str, *args: object) -> None:
        """As ``warning``, at INFO: what is routine but still worth a (bounded) line."""
        line = self._budget.line(kind, now, msg)
        if line is not None:
            self.logger.info(line, *args)
