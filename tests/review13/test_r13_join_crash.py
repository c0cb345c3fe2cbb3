"""review13: one ``join`` naming a host the node cannot resolve kills the node.

``join`` (PROTOCOL.md 2.12b) carries ``host:port`` strings; the receiver subscribes to
each new one, and ``tcp_endpoint`` raises ``ConfigError("cannot resolve host ...")`` out
of the event loop (meshreg/runtime/node.py ``_carry_out`` -> transport
``add_replication_peer``): the process exits 1 before it replies. Who can send it: any
process that reaches P+3 of a node without a key; with keys, any member, e.g. one that
resolved a peer's host name that this node's resolver cannot (split DNS, a failing DNS
server): the sender repeats the join every peer timeout, so the node crash-loops.
Bad network input must be refused with an error and counted, never crash the node.
"""

from __future__ import annotations

from conftest import CLUSTER_TIMINGS
from helpers import NodeProcess, free_port_pair, raw_request, start_all, wait_until
from r13util import Dealer, peers


def test_a_join_with_an_unresolvable_host_name_does_not_kill_the_node(
    started_nodes: list[NodeProcess],
) -> None:
    ports = [free_port_pair() for _ in range(2)]
    addrs = [f"127.0.0.1:{p}" for p in ports]
    nodes = [NodeProcess(*CLUSTER_TIMINGS, *peers(addrs), port=p) for p in ports]
    started_nodes.extend(nodes)
    start_all(nodes)
    sender = Dealer(ports[0] + 3)  # A's peer port
    try:
        sender.send("join", node="x", addresses=["r13-no-such-host.invalid:7800"])
        answered = sender.sock.poll(5000)
    finally:
        sender.close()
    a = nodes[0]
    assert a.proc is not None
    wait_until(lambda: a.proc.poll() is not None or answered, 5, what="A's fate")
    assert a.proc.poll() is None, (
        f"A exited with status {a.proc.returncode} after one join naming an unresolvable "
        f"host; the end of its log:\n" + "\n".join(a.log().splitlines()[-3:])
    )
    assert raw_request(a.port, {"v": 1, "id": 1, "op": "ping"}, 3.0)["ok"]


def test_a_new_node_advertising_a_name_its_peers_cannot_resolve_kills_them(
    started_nodes: list[NodeProcess],
) -> None:
    """The legitimate path to the same crash: B is started with ``--advertise`` set to a
    host name that only B's machine knows (or a typo). B starts (it does not resolve the
    name); A, running, hears B's beacon, learns the address and exits 1. Every running
    node that hears B dies the same way, and again after each restart while B runs: one
    node's typo takes the cluster down. A fix: refuse/skip an address that does not
    resolve (log, count, try again later), never raise out of the loop; B could also
    check at start that its advertised name resolves."""
    ports = [free_port_pair() for _ in range(2)]
    addrs = [f"127.0.0.1:{p}" for p in ports]
    a = NodeProcess(*CLUSTER_TIMINGS, *peers(addrs), port=ports[0])
    b = NodeProcess(
        *CLUSTER_TIMINGS, *peers(addrs), "--advertise", "r13-typo.invalid", port=ports[1]
    )
    started_nodes += [a, b]
    a.start()
    b.launch()
    assert a.proc is not None and b.proc is not None

    def settled() -> bool:
        if a.proc.poll() is not None or b.proc.poll() is not None:
            return True
        try:  # both up and A has heard B: A's view has two members
            reply = raw_request(a.port, {"v": 1, "id": 1, "op": "cluster"}, 1.0)
            return sum(m["state"] == "up" for m in reply["result"]["members"]) >= 2
        except Exception:
            return False

    wait_until(settled, 20, 0.2, "A to hear B (or a process to exit)")
    assert a.proc.poll() is None, (
        f"A (a running, healthy node) exited with status {a.proc.returncode} when B "
        f"advertised 'r13-typo.invalid'; B's state: "
        f"{'running' if b.proc.poll() is None else b.proc.returncode}; A's log ends:\n"
        + "\n".join(a.log().splitlines()[-2:])
    )
