"""Log a recurring problem once per interval, with the count suppressed since."""

from __future__ import annotations

import logging
from collections.abc import Hashable

LOG_INTERVAL = 10.0  # s; at most one line per kind of problem per interval


class LogLimiter:
    def __init__(self, logger: logging.Logger, interval: float = LOG_INTERVAL) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}

    def warning(self, kind: Hashable, now: float, msg: str, *args: object) -> None:
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        if len(self._last) > 1024:  # kinds come from a small set; never grow unbounded
            self._last.clear()
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            msg += f" ({suppressed} similar suppressed in the last {self.interval:g} s)"
        self.logger.warning(msg, *args)
