"""review84 helpers: a node with ``[limits] write_rate_per_client``, instance counts and
stats by raw requests (ports from the suite's ``free_port_pair``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from helpers import NodeProcess, raw_request


def limited_config(where: Path, rate: int) -> str:
    path = where / f"limits-{rate}.toml"
    path.write_text(f"[limits]\nwrite_rate_per_client = {rate}\n")
    return str(path)


def count(port: int, service: str = "app", curve: Any = None) -> int:
    body = {"v": 1, "id": 1, "op": "instances", "namespace": "public",
            "group": "DEFAULT_GROUP", "service": service}  # fmt: skip
    reply = raw_request(port, body, 3.0, curve)
    assert reply["ok"], reply
    return len(reply["result"]["instances"])


def stats(node: NodeProcess, curve: Any = None) -> dict[str, Any]:
    reply = raw_request(node.port, {"v": 1, "id": 1, "op": "stats"}, 3.0, curve)
    assert reply["ok"], reply
    return reply["result"]


def instances(n: int, service: str = "app", net: int = 9) -> list[dict[str, Any]]:
    return [{"service": service, "ip": f"10.{net}.{i // 250}.{i % 250}", "port": 80}
            for i in range(n)]  # fmt: skip


class Lines(logging.Handler):
    """The ``meshreg`` logger's records (the client's warnings), with their time."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[float, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((time.monotonic(), record.levelname, record.getMessage()))

    def __enter__(self) -> Lines:
        logger = logging.getLogger("meshreg")
        self._level = logger.level
        logger.addHandler(self)
        logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger("meshreg")
        logger.removeHandler(self)
        logger.setLevel(self._level)
