"""review17 F9 (low, operations): a node whose configured peers are all down answers every
config read with "this node is catching up on configs from a majority of its 2 configured
members after a start; retry shortly or on another node" for as long as they stay down.
Neither hint helps: there is no other node up, and it will not catch up by itself. The
message does not say that it sees no peer up, nor name the way out the README gives
("a lone survivor whose peers never come back: `meshreg config force-ready -s
HOST:PORT`", or `--config-force-ready`).

Expected (brief / README "A node that cannot be reached gives a one-line error naming the
address"; errors name what failed, where, and what to try): after the node has waited a
while with no majority up, the error says how many members it sees and mentions
force-ready."""

from __future__ import annotations

from helpers import NodeProcess, free_port_pair, run_cli, wait_until


def test_catching_up_without_peers_names_force_ready(started_nodes, tmp_path) -> None:
    port, gone = free_port_pair(), free_port_pair()
    node = NodeProcess(
        "--peer",
        f"127.0.0.1:{port}",
        "--peer",
        f"127.0.0.1:{gone}",
        "--peer-timeout",
        "1",
        "--data-dir",
        str(tmp_path / "d"),
        port=port,
    )
    started_nodes.append(node)
    node.start()
    out = None

    def refused() -> bool:
        nonlocal out
        out = run_cli("config", "get", "app.yaml", "-s", node.address, "--timeout", "1")
        return out.returncode == 1 and "catching up" in out.stderr

    wait_until(refused, 10.0, 0.5, "the node to refuse config reads while catching up")
    # its only peer never comes up: the error must say so and name the way out
    try:
        wait_until(lambda: refused() and "force-ready" in out.stderr, 10.0, 0.5, "the hint")
    except AssertionError:
        raise AssertionError(
            f"with its only peer never up, the node's config read error says only: "
            f"{out.stderr.strip()!r} (no word that no peer is up, nor of force-ready)"
        ) from None
    assert "sees 1 of them up, and needs 2" in out.stderr
    assert f"meshreg config force-ready -s {node.address}" in out.stderr
