"""review36 F1: a node resumed after a stall longer than its peers' timeouts answers
registry reads from its stale table, as ``synced``, before it has resynced: a provider's
deregistration made while it was stopped is listed healthy, and a registration made
meanwhile is missing.

The node knows it was stopped (it logs "this node was stalled for N s ... resyncing with
its peers first" and checks for a stall "before reading any of its input", DISTRO.md),
and its config center refuses reads in the same state; but `instances` is answered from
the table of before the stall, with ``synced: true`` ("its table is the cluster's ...
trust its answer", PROTOCOL.md 2.6), for about 0.25 s, and a read that waited in its
socket during the stall is answered the same way.  A node catching up after a restart
refuses reads for exactly this reason (review24 F8, DISTRO.md "Catch-up").

Expected: an answer from the resumed node that is not stale: either UNAVAILABLE until it
has resynced with its peers (as a catching-up node), or the cluster's current list.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from r36lib import Node, new_nodes, running, wait_until  # noqa: E402

from meshreg.client import Client  # noqa: E402

SVC = "stall36"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[Node]]:
    with running(new_nodes(3, str(tmp_path))) as nodes:
        yield nodes


def _down_on(node: Node, address: str) -> bool:
    c = node.cluster()
    return bool(c) and any(
        m["address"] == address and m.get("state") == "down" for m in c["members"]
    )


def _healthy(reply: dict[str, Any] | None) -> set[str] | None:
    if not reply or not reply.get("ok"):
        return None
    return {f"{i['ip']}:{i['port']}" for i in reply["result"]["instances"] if i["healthy"]}


@pytest.mark.timeout(120)
def test_resumed_node_does_not_answer_from_its_stale_table(cluster: list[Node]) -> None:
    a, b, victim = cluster
    prov = Client([a.address, b.address], handle_sigterm=False, server_order="listed")
    try:
        for j in (1, 2, 3):
            prov.register(SVC, f"10.36.1.{j}", 80)
        wait_until(lambda: len(victim.listing(SVC) or {}) == 3, 10, 0.05, "victim lists 3")

        victim.signal(signal.SIGSTOP)
        wait_until(lambda: _down_on(a, victim.address) and _down_on(b, victim.address), 15,
                   0.1, "the others count the stopped node down")  # fmt: skip
        prov.deregister(SVC, "10.36.1.1", 80)  # gone while the node is stopped
        prov.register(SVC, "10.36.1.9", 80)  # new while the node is stopped
        want = {"10.36.1.2:80", "10.36.1.3:80", "10.36.1.9:80"}
        wait_until(lambda: _healthy(a.req("instances", 1.0, service=SVC)) == want
                   and _healthy(b.req("instances", 1.0, service=SVC)) == want, 10, 0.05,
                   "both running nodes list the new state")  # fmt: skip

        queued: dict[str, Any] = {}
        asking = threading.Event()

        def read_while_stopped() -> None:  # a read that waits for the stopped node
            asking.set()
            queued["r"] = victim.req("instances", 30.0, service=SVC)

        th = threading.Thread(target=read_while_stopped)
        th.start()
        assert asking.wait(10), "the read was not sent"

        victim.signal(signal.SIGCONT)
        t_cont = time.monotonic()
        stale: list[tuple[float, list[str], bool]] = []
        answers = 0
        while time.monotonic() - t_cont < 2.0:  # bounded: 2 s of reads after SIGCONT
            r = victim.req("instances", 1.0, service=SVC)
            got = _healthy(r)
            if got is not None:
                answers += 1
                if got != want:
                    assert r is not None
                    stale.append((round(time.monotonic() - t_cont, 3), sorted(got),
                                  bool(r["result"].get("synced"))))  # fmt: skip
        th.join(35)
        q = _healthy(queued.get("r"))
        msgs = []
        if q is not None and q != want:
            msgs.append(f"the read queued during the stall was answered {sorted(q)} "
                        f"(synced={queued['r']['result'].get('synced')})")  # fmt: skip
        if stale:
            msgs.append(f"{len(stale)} of {answers} reads in the 2 s after SIGCONT answered a "
                        f"stale list, first {stale[0]}, last {stale[-1]}")  # fmt: skip
        assert not msgs, (
            f"the resumed node answered from its stale table (want {sorted(want)}): "
            + "; ".join(msgs)
        )
    finally:
        prov.close(2.0)
