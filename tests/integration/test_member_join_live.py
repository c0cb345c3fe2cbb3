"""Peer lists that differ: a node started with a longer (or shorter) list than the others.

Before joins, the nodes that were not given a new node's address never subscribed to its
replication stream: the services the new node owned by its own view stayed on it alone
(a split no read showed; review12's F-scaleout).  Now a node that hears a peer it lists
whose view lacks it introduces itself (the ``join`` peer op) and the peer keeps it while
it lists the peer: every node ends up hashing over the same members, and every
registration is on every node.
"""

from __future__ import annotations

from collections.abc import Callable

from conftest import CLUSTER_TIMINGS
from helpers import NodeProcess, free_port_pair, run_cli, service_owned_by, start_all, wait_until

from meshreg import Client

FAST = {"beat_interval": 0.3, "timeout": 5.0, "attempt_timeout": 1.0}


def _peers(nodes: list[str]) -> list[str]:
    args: list[str] = []
    for address in nodes:
        args += ["--peer", address]
    return args


def _members(node: NodeProcess) -> list[str]:
    with Client([node.address]) as c:
        view = c.cluster()
    return sorted(m["id"] for m in view["members"] if m["state"] == "up")


def _listed(node: NodeProcess, service: str) -> set[str]:
    with Client([node.address], timeout=2.0) as c:
        return {i.address for i in c.instances(service, healthy_only=False)}


def test_a_node_added_to_its_own_list_only_joins_every_node(
    started_nodes: list[NodeProcess],
) -> None:
    """Scale-out done on the new node alone: A, B, C list each other, D lists all four.
    Every node must come to hash over A, B, C, D, and a service D owns in that view,
    registered through D, must be listed on A, B and C."""
    ports = [free_port_pair() for _ in range(4)]
    addrs = [f"127.0.0.1:{p}" for p in ports]
    old = [NodeProcess(*CLUSTER_TIMINGS, *_peers(addrs[:3]), port=p) for p in ports[:3]]
    started_nodes.extend(old)
    start_all(old)
    new = NodeProcess(*CLUSTER_TIMINGS, *_peers(addrs), port=ports[3])
    started_nodes.append(new)
    new.start()
    everyone = [*old, new]
    wait_until(
        lambda: all(_members(n) == sorted(addrs) for n in everyone),
        timeout=20,
        what="every node to see all four members",
    )
    service = service_owned_by(new.address, addrs, "scaled")
    with Client([new.address], **FAST) as provider:
        provider.register(service, "10.7.0.1", 8080)
        wait_until(
            lambda: all(_listed(n, service) == {"10.7.0.1:8080"} for n in everyone),
            timeout=10,
            what=f"{service} (owned by the new node) listed on every node",
        )
    with Client([new.address]) as c:
        view = c.cluster()
    joined = {m["id"]: m for m in view["members"]}
    assert set(joined) == set(addrs)
    with Client([old[0].address]) as c:
        view = c.cluster()
    by_id = {m["id"]: m for m in view["members"]}
    assert by_id[new.address]["configured"] is False  # learned from its join
    assert by_id[old[1].address]["configured"] is True
    shown = run_cli("cluster", "-s", old[0].address)
    assert shown.returncode == 0, shown.stderr
    assert f"+{new.address}" in shown.stdout and "not in this node's peer list" in shown.stdout
    assert "lists this node, which does not list it" in old[0].log()  # the operator is warned


def test_a_node_restarted_with_a_shorter_list_hears_the_others_again(
    start_cluster: Callable[..., list[NodeProcess]],
    started_nodes: list[NodeProcess],
) -> None:
    """Scale-in done wrong: C restarted listing only A and itself.  B still lists C and
    runs, so it is a member: C must hear B again (B introduces itself), and a service B
    owns, registered through B, must be listed on C."""
    nodes = start_cluster(3)
    a, b, c = nodes
    addrs = [n.address for n in nodes]
    wait_until(lambda: all(_members(n) == sorted(addrs) for n in nodes), timeout=20)
    c.kill()
    short = NodeProcess(*CLUSTER_TIMINGS, *_peers([a.address, c.address]), port=c.port)
    started_nodes.append(short)
    short.start()
    wait_until(
        lambda: _members(short) == sorted(addrs),
        timeout=20,
        what="the restarted node to hear B again",
    )
    service = service_owned_by(b.address, addrs, "kept")
    with Client([b.address], **FAST) as provider:
        provider.register(service, "10.7.0.2", 8080)
        wait_until(
            lambda: _listed(short, service) == {"10.7.0.2:8080"},
            timeout=10,
            what=f"{service} (owned by B) listed on the restarted node",
        )


def _up(node: NodeProcess) -> set[str]:
    with Client([node.address], timeout=3.0) as c:
        return {m["address"] for m in c.cluster()["members"] if m["state"] == "up"}


def _rows(node: NodeProcess) -> set[str]:
    """Every member row's address, whatever its state."""
    with Client([node.address], timeout=3.0) as c:
        return {m["address"] for m in c.cluster()["members"]}


def test_a_typo_that_listed_another_clusters_node_is_undone_by_fixing_it(
    started_nodes: list[NodeProcess],
) -> None:
    """Two clusters X = {A, B} and Y = {C, D}; B restarted with C in its list by mistake
    (review13): C keeps B while B lists it, nobody else is pulled in, and once B's list
    is fixed and B restarted, C forgets B and the clusters are apart again (a learned
    member is kept only while its beacons name us)."""
    ports = [free_port_pair() for _ in range(4)]
    a, b, c, d = (f"127.0.0.1:{p}" for p in ports)
    lists = [[a, b], [a, b], [c, d], [c, d]]
    nodes = [
        NodeProcess(*CLUSTER_TIMINGS, *_peers(m), port=p) for p, m in zip(ports, lists, strict=True)
    ]
    started_nodes.extend(nodes)
    xa, xb, yc, yd = start_all(nodes)
    wait_until(lambda: _up(yc) == {c, d} and _up(xa) == {a, b}, 15, what="two clusters")
    xb.stop()
    typo = NodeProcess(*CLUSTER_TIMINGS, *_peers([a, b, c]), port=xb.port)
    started_nodes.append(typo)
    typo.start()
    wait_until(lambda: b in _up(yc), 15, what="C to keep B, which lists it")
    assert _up(yd) == {c, d} and _up(xa) == {a, b}  # the typo pulls in nobody else
    typo.stop()
    fixed = NodeProcess(*CLUSTER_TIMINGS, *_peers([a, b]), port=xb.port)
    started_nodes.append(fixed)
    fixed.start()
    # (B restarting shows "catching up" on C, not up, for a moment: wait for C to drop
    # B's row, which it does once B, ready, beacons a list without C)
    wait_until(
        lambda: (
            _up(yc) == {c, d}
            and b not in _rows(yc)
            and _up(fixed) == {a, b}
            and _up(xa) == {a, b}
        ),
        15,
        what="X and Y apart again once B's list is fixed",
    )
    assert "forgot learned peer" in yc.log()
