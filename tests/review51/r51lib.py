"""review51 helpers (the tests kept in the suite): a loopback cluster (review36's Node,
imported, never changed) and freezing a node until every thread is stopped.  The
reviewer's fleets of clients, node figures and measurement scripts are on branch
review51 (tests/review51/r51_fleet.py, measure_*.py)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "review36"))
sys.path.insert(0, os.path.join(HERE, ".."))
from helpers import process_stopped, wait_until  # noqa: E402,F401
from r36lib import SHORT, Node, new_nodes, running  # noqa: E402,F401

from meshreg.client import Client  # noqa: E402


@contextmanager
def watching_clients(servers: list[str], n: int, service: str) -> Iterator[list[Client]]:
    """``n`` clients given ``servers`` (the default random order), each watching
    ``service``; closed at the end whatever happens."""
    with fleet(servers, n, lambda c, i: c.subscribe(service, lambda xs: None)) as clients:
        yield clients


@contextmanager
def fleet(
    servers: list[str], n: int, setup: Callable[[Client, int], object]
) -> Iterator[list[Client]]:
    """``n`` clients given ``servers``, each set up by ``setup(client, i)``; closed at the
    end whatever happens."""
    clients: list[Client] = []
    try:
        for i in range(n):
            c = Client(servers, handle_sigterm=False)
            setup(c, i)
            clients.append(c)
        yield clients
    finally:
        for c in clients:
            try:
                c.close(0.5)
            except Exception:  # noqa: BLE001
                pass


def freeze(node: Node) -> None:
    node.signal(signal.SIGSTOP)
    assert node.proc is not None
    pid = node.proc.pid
    wait_until(lambda: process_stopped(pid), 5, 0.005, f"{node.address} stopped")


def thaw(node: Node) -> None:
    node.signal(signal.SIGCONT)
