"""Shared bits of the review13b tests (outside review: real processes only)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import CLUSTER_TIMINGS
from helpers import NodeProcess, free_port_pair, raw_request, start_all, wait_until

from meshreg import Client


def views(nodes: list[NodeProcess], service: str) -> list[dict[str, tuple[bool, float, bool]]]:
    """Per node: address -> (enabled, weight, healthy), every instance."""
    out = []
    for n in nodes:
        body = {"v": 1, "id": 1, "op": "instances", "service": service, "healthy_only": False}

        def answered(n: NodeProcess = n, body: dict[str, Any] = body) -> dict[str, Any] | None:
            reply = raw_request(n.port, body)  # a node back from a freeze refuses reads
            refused = reply.get("error", {}).get("name") == "UNAVAILABLE"  # until resynced
            return None if refused else reply

        reply = wait_until(answered, 10, 0.05, f"{n.address} answers a read")
        assert reply["ok"], reply
        out.append(
            {
                f"{i['ip']}:{i['port']}": (i["enabled"], float(i["weight"]), i["healthy"])
                for i in reply["result"]["instances"]
            }
        )
    return out


def cluster_nodes(n: int, *extra: str, data_dirs: list[str] | None = None) -> list[NodeProcess]:
    ports = [free_port_pair() for _ in range(n)]
    peers: list[str] = []
    for p in ports:
        peers += ["--peer", f"127.0.0.1:{p}"]
    nodes = []
    for i, p in enumerate(ports):
        dd = ("--data-dir", data_dirs[i]) if data_dirs else ()
        nodes.append(NodeProcess(*CLUSTER_TIMINGS, *peers, *dd, *extra, port=p))
    return nodes


def ready(nodes: list[NodeProcess]) -> bool:
    ids = []
    for n in nodes:
        with Client([n.address], timeout=2.0) as c:
            view = c.cluster()
        if not view["ready"] or any(m["state"] != "up" for m in view["members"]):
            return False
        ids.append(sorted(m["id"] for m in view["members"]))
    return all(v == ids[0] for v in ids)


def restart(nodes: list[NodeProcess]) -> None:
    for n in nodes:
        n.cleanup()
    start_all(nodes)
    wait_until(lambda: ready(nodes), timeout=30, what="cluster to form again")


def cont_all(nodes: list[NodeProcess]) -> None:
    for n in nodes:
        n.signal(signal.SIGCONT)


def owner_of(nodes: list[NodeProcess]) -> NodeProcess:
    """The node responsible for the one service the cluster holds (``cluster`` counts a
    member's services)."""
    with Client([nodes[0].address], timeout=2.0) as c:
        view = c.cluster()
    owners = [m["address"] for m in view["members"] if m["services"] > 0]
    assert len(owners) == 1, view
    return next(n for n in nodes if n.address == owners[0])


__all__ = ["Callable", "os", "start_all", "wait_until"]


@pytest.fixture(name="procs")
def procs_fixture() -> Iterator[list[NodeProcess]]:
    """``procs``: the node processes a test started (it appends them): continued if
    stopped, then killed, at teardown (imported by the test modules: a conftest here
    would shadow the root one they import from)."""
    started: list[NodeProcess] = []
    yield started
    cont_all(started)
    for n in started:
        n.cleanup()
