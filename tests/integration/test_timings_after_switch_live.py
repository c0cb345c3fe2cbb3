"""A client moved to another server learns that server's timings at once.

The last node of a rolling restart to ``--unhealthy-after 3`` stops right after its
client's session renewal; the client (told 15 s by it, so renewing every 5 s) moves to a
node restarted already.  Before, it renewed there only at its next 5 s turn: the others,
judging by 3 s, marked its instances unhealthy in the first seconds after the roll
(CI 2026-12-06: review27 F6's test, about 1 run in 100 under load, when the client's
server happened to be the last one restarted).  Now a server switch renews at once, and
the renewal's answer says the new server's ``unhealthy_after``.

Deterministic: the client's server is the last one restarted (``server_order="listed"``),
and it is stopped as soon as its renewal count moves (within 0.1 s of a renewal), so the
next 5 s turn would come ~5 s after the last renewal, past the 3 s (+ 0.5 s check) at
which the restarted nodes judge.
"""

from __future__ import annotations

import os

import pytest
from helpers import HOST, NodeProcess, free_port_pair, holds_for, raw_request, start_all, wait_until

from meshreg import Client
from meshreg.core.mapping import responsible_node
from meshreg.model import ServiceKey

NEW = ("--unhealthy-after", "3", "--check-interval", "0.5")


def ask(node: NodeProcess, op: str, **fields: object) -> dict | None:
    try:
        reply = raw_request(node.port, {"v": 1, "id": 1, "op": op, **fields}, 1.0)
    except Exception:  # (zmq.Again: it does not answer now)
        return None
    return reply["result"] if reply.get("ok") else None


def ready(nodes: list[NodeProcess]) -> bool:
    for node in nodes:
        pong, view = ask(node, "ping"), ask(node, "cluster")
        if not (pong and pong.get("ready") and view):
            return False
        if sum(m.get("state") == "up" for m in view["members"]) != len(nodes):
            return False
    return True


def renewals(node: NodeProcess) -> int | None:
    stats = ask(node, "stats")
    return None if stats is None else stats["sessions"]["renewals"]


def start_three(tmp_path) -> list[NodeProcess]:  # type: ignore[no-untyped-def]
    """Three nodes naming each other, default timings, each with its data dir."""
    ports = [free_port_pair() for _ in range(3)]
    peers = sum((["--peer", f"{HOST}:{p}"] for p in ports), [])
    nodes = [
        NodeProcess(*peers, "--data-dir", os.path.join(tmp_path, f"d{i}"), port=p)
        for i, p in enumerate(ports)
    ]
    return start_all(nodes)


def all_healthy(on: list[NodeProcess], services: list[str]) -> bool:
    """Every one of ``services`` lists a healthy instance on every node of ``on`` that
    answers."""
    for n in on:
        for s in services:
            r = ask(n, "instances", namespace="public", group="DEFAULT_GROUP",
                    service=s, healthy_only=True)  # fmt: skip
            if r is not None and not r["instances"]:
                return False
    return True


@pytest.mark.timeout(150)
def test_a_client_moved_by_the_last_restart_learns_the_new_timings_at_once(tmp_path) -> None:
    nodes = start_three(tmp_path)
    last = nodes[2]  # the client's server, restarted last
    order = [last.address, nodes[0].address, nodes[1].address]
    provider = Client(order, server_order="listed", handle_sigterm=False)
    try:
        wait_until(lambda: ready(nodes), 30, 0.1, "3 members up and ready")
        services = [f"svc{k}" for k in range(6)]  # spread over the three owners
        for k, s in enumerate(services):
            provider.register(s, "10.0.0.1", 8000 + k)
        for n in nodes[:2]:
            assert n.stop() == 0
            n.extra = (*NEW, *n.extra)
            n.start(30)
            wait_until(lambda: ready(nodes), 60, 0.1, "ready again after the restart")
        seen = renewals(last)
        assert seen is not None
        wait_until(lambda: renewals(last) != seen, 12, 0.05, f"a renewal on {last.address}")
        assert last.stop() == 0  # just after the renewal: the client moves to a new node
        # the two restarted nodes judge every service now, by 3 s: past the 5 s turn
        holds_for(lambda: all_healthy(nodes[:2], services), 6.0, 0.2, "every instance of the live "
                  "provider stays healthy on the restarted nodes once it moved to one")  # fmt: skip
        last.extra = (*NEW, *last.extra)
        last.start(30)
        wait_until(lambda: ready(nodes), 60, 0.1, "ready again after the last restart")
        holds_for(lambda: all_healthy(nodes, services), 4.0, 0.2, "every instance of the live "
                  "provider stays healthy on every node after the roll")  # fmt: skip
    finally:
        provider.close(timeout=1)
        for n in nodes:
            n.cleanup()


@pytest.mark.timeout(150)
def test_a_client_of_a_node_not_yet_restarted_renews_fast_enough_for_the_restarted(
    tmp_path,
) -> None:
    """Mid-roll: one node restarted with ``--unhealthy-after 3``, the client's server
    not yet.  Before, the client's server told it 15 s (its own), the client renewed
    every 5 s, and the restarted node marked the instances it judges unhealthy between
    renewals for as long as the roll lasted.  Now beacons carry each node's
    ``unhealthy_after`` and the client's server tells it the least of the members it
    hears: the client renews every second, and nothing flaps."""
    nodes = start_three(tmp_path)
    restarted, server = nodes[0], nodes[2]
    ids = tuple(sorted(n.address for n in nodes))
    # services the restarted node judges (the owner of each, with every member up)
    services = [s for s in (f"svc{k}" for k in range(60))
                if responsible_node(ServiceKey("public", "DEFAULT_GROUP", s), ids)
                == restarted.address][:4]  # fmt: skip
    assert len(services) == 4
    provider = Client([server.address, nodes[1].address, restarted.address],
                      server_order="listed", handle_sigterm=False)  # fmt: skip
    try:
        wait_until(lambda: ready(nodes), 30, 0.1, "3 members up and ready")
        for k, s in enumerate(services):
            provider.register(s, "10.0.0.1", 8000 + k)
        assert restarted.stop() == 0
        restarted.extra = (*NEW, *restarted.extra)
        restarted.start(30)
        wait_until(lambda: ready(nodes), 60, 0.1, "ready again after the restart")
        wait_until(lambda: (ask(server, "ping") or {}).get("unhealthy_after") == 3.0, 10, 0.1,
                   f"{server.address} (15 s) telling its clients 3 s")  # fmt: skip
        # (the client learns it at its next renewal, within its 5 s: then every second)
        wait_until(lambda: provider.beat_every == 1.0, 10, 0.1,
                   "the client renewing every second")  # fmt: skip
        holds_for(lambda: all_healthy(nodes, services), 8.0, 0.2, "every instance of the "
                  "live provider stays healthy while its server runs the old setting")  # fmt: skip
    finally:
        provider.close(timeout=1)
        for n in nodes:
            n.cleanup()
