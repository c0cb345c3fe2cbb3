"""review48 helpers: a 3-node cluster (review36's Node/running) and clients that record
what the application sees (subscription callbacks, config listener callbacks)."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "review36"))
from helpers import HOST, free_port_pair, holds_for, wait_until  # noqa: E402,F401
from r36lib import SHORT, Node, members_up, new_nodes, running, wait_ready  # noqa: E402,F401

from meshreg.client import Client  # noqa: E402


class Recorder:
    """Subscription callbacks of one service: (t, frozenset of healthy addresses)."""

    def __init__(self) -> None:
        self.events: list[tuple[float, frozenset[str]]] = []
        self.lock = threading.Lock()

    def __call__(self, xs: list[Any]) -> None:
        with self.lock:
            self.events.append((time.monotonic(), frozenset(i.address for i in xs if i.healthy)))

    def last(self) -> frozenset[str] | None:
        with self.lock:
            return self.events[-1][1] if self.events else None


class ConfigRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[float, str | None, int]] = []
        self.lock = threading.Lock()

    def __call__(self, content: str | None, revision: int) -> None:
        with self.lock:
            self.events.append((time.monotonic(), content, revision))

    def last(self) -> tuple[str | None, int] | None:
        with self.lock:
            return self.events[-1][1:] if self.events else None


def client(servers: list[str], **kw: Any) -> Client:
    kw.setdefault("handle_sigterm", False)
    return Client(servers, **kw)


def node_of(nodes: list[Node], address: str) -> Node:
    return next(n for n in nodes if n.address == address)


def quiet_logs() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )


def restore_lost_cluster(nodes: list[Node], snap: str, bump: int) -> None:
    """The cluster is lost and restored from ``snap`` as OPERATIONS.md says: every node
    killed, restored with ``--bump-revision bump``, started again, and ready."""
    from helpers import run_cli

    for n in nodes:
        n.kill()
    for n in nodes:
        r = run_cli("snapshot", "restore", snap, "--data-dir", n.data_dir, "--force",
                    "--bump-revision", str(bump))  # fmt: skip
        assert r.returncode == 0, r.stderr
    for n in nodes:
        n.launch(n.peers)
    for n in nodes:
        wait_ready(n, 40)
