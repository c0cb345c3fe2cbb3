"""review13: ``--advertise`` with a spelling of the node's address that differs from the
one its peers' lists use (a host name against IPs, the common deploy mistake).

The error message of ``--advertise`` says "give this node's own IP address or host name";
a node given ``--advertise localhost`` while every list names it ``127.0.0.1:P`` starts,
logs at INFO "peer 127.0.0.1:P is this node (localhost:P)", and then: its peer lists it
twice (the configured address down, ``+localhost:P`` up) and the config center refuses
every config message of it ("not a configured peer"): with two nodes, configs never
become ready and every config write is refused. The failure ``--advertise`` was added to
remove (CHANGELOG "Unreleased") comes back through the option itself.
"""

from __future__ import annotations

from conftest import CLUSTER_TIMINGS
from helpers import NodeProcess, free_port_pair, run_cli, wait_until
from r13util import peers


def test_advertise_spelled_differently_from_the_peer_lists(
    started_nodes: list[NodeProcess],
) -> None:
    ports = [free_port_pair() for _ in range(2)]
    addrs = [f"127.0.0.1:{p}" for p in ports]
    a = NodeProcess(*CLUSTER_TIMINGS, *peers(addrs), "--advertise", "localhost", port=ports[0])
    b = NodeProcess(*CLUSTER_TIMINGS, *peers(addrs), port=ports[1])
    started_nodes += [a, b]
    a.launch()
    b.launch()
    try:
        a.wait_ready()
    except AssertionError as exc:
        # acceptable fix: A refuses to start, saying its list names it 127.0.0.1:P
        assert "advertise" in str(exc) and addrs[0] in str(exc), exc
        return
    b.wait_ready()

    def published() -> bool:
        out = run_cli("config", "publish", "a.yaml", "--content", "a: 1", "-s", addrs[1])
        return out.returncode == 0

    try:
        wait_until(published, 20, 1.0, "a config write on B (2 of 2 members up)")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n{run_cli('cluster', '-s', addrs[1]).stdout}"
            f"{run_cli('config', 'publish', 'a.yaml', '--content', 'a: 1', '-s', addrs[1]).stderr}"
            f"A's log mentions: {[x for x in a.log().splitlines() if 'this node' in x][:1]}\n"
            f"B's log: {[x for x in b.log().splitlines() if 'not a configured peer' in x][:1]}"
        ) from None
